"""The official openai and anthropic Python SDKs through Tollgate, configured the way users do:
HTTPS_PROXY and SSL_CERT_FILE in the environment. Prints what the fake upstream said."""
import anthropic
import openai

oa = openai.OpenAI(api_key="sk-test-key", max_retries=0)
done = oa.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
print("openai:", done.choices[0].message.content)

stream = oa.chat.completions.create(
    model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True
)
print("openai-stream:", "".join(c.choices[0].delta.content or "" for c in stream))

an = anthropic.Anthropic(api_key="sk-ant-test", max_retries=0)
events = an.messages.create(
    model="claude-x", max_tokens=10, messages=[{"role": "user", "content": "hi"}], stream=True
)
text = "".join(
    e.delta.text for e in events if e.type == "content_block_delta" and e.delta.type == "text_delta"
)
print("anthropic-stream:", text)

try:
    oa.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}],
        extra_headers={"Host": "api.anthropic.com"},
    )
except openai.APIStatusError as e:
    print("refused:", e.status_code, e.message)
