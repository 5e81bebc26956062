//! Masking end to end: what the fake upstream received never holds a secret, and the client gets
//! its own text back, for each API shape, streamed and not, compressed and not.

mod common;

use common::*;
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::io::Write;

const GITHUB: &str = "ghp_aB3cD4eF5gH6iJ7kL8mN9oP0qR1sT2uVwXyZ";
const AWS: &str = "AKIAZ7Q2MD3XK4LP5N6R";
const PROJECT: &str = "Nightjar";

fn prompt() -> String {
    format!("deploy {PROJECT} with token {GITHUB} and key {AWS} — ünïcödé ok?")
}

fn masking_policy() -> &'static str {
    "identifiers:\n  - name: code-names\n    category: project\n    literals: [Nightjar]\n"
}

async fn proxy_with_masking(upstream: &Upstream) -> TestProxy {
    ProxySetup::new(upstream)
        .masking(masking_policy())
        .start()
        .await
}

fn assert_nothing_leaked(upstream: &Upstream) {
    let received = upstream.received();
    assert!(!received.is_empty());
    for r in received {
        let body = String::from_utf8_lossy(&r.body);
        for secret in [GITHUB, AWS, PROJECT] {
            assert!(
                !body.contains(secret),
                "`{secret}` reached the upstream: {body}"
            );
        }
        assert!(body.contains("TOLLGATE_GITHUB_PAT_"), "{body}");
        assert!(body.contains("TOLLGATE_AWS_ACCESS_KEY_ID_"), "{body}");
        assert!(body.contains("TOLLGATE_CODE_NAMES_"), "{body}");
    }
}

async fn post(proxy: &TestProxy, url: &str, body: Value) -> reqwest::Response {
    client(proxy)
        .post(url)
        .header("content-type", "application/json")
        .header("x-test-echo", "1")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

/// The `data:` payloads of an SSE body, parsed as an SSE client does (any line ending; a blank
/// line ends an event).
fn events(body: &str) -> Vec<Value> {
    let mut events = Vec::new();
    let mut data: Option<String> = None;
    for line in body.lines() {
        if line.is_empty() {
            if let Some(d) = data.take().filter(|d| d != "[DONE]") {
                events.push(serde_json::from_str(&d).unwrap_or_else(|e| panic!("{e}: {d}")));
            }
        } else if let Some(d) = line.strip_prefix("data:") {
            let d = d.strip_prefix(' ').unwrap_or(d);
            match &mut data {
                Some(acc) => {
                    acc.push('\n');
                    acc.push_str(d);
                }
                None => data = Some(d.to_owned()),
            }
        }
    }
    events
}

#[tokio::test]
async fn openai_chat_json_is_masked_and_restored_including_tool_arguments() {
    let upstream = Upstream::start().await;
    let proxy = proxy_with_masking(&upstream).await;
    let res = post(
        &proxy,
        "https://api.openai.com/v1/chat/completions",
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": prompt()}]}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let message = &body["choices"][0]["message"];
    assert_eq!(message["content"], prompt());
    let args: Value = serde_json::from_str(
        message["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(args["command"], prompt());
    assert_nothing_leaked(&upstream);
}

#[tokio::test]
async fn anthropic_responses_and_gemini_json_answers_are_restored() {
    let upstream = Upstream::start().await;
    let proxy = proxy_with_masking(&upstream).await;
    let anthropic: Value = post(
        &proxy,
        "https://api.anthropic.com/v1/messages",
        json!({"model": "claude", "max_tokens": 10, "messages": [{"role": "user", "content": prompt()}]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(anthropic["content"][0]["text"], prompt());
    assert_eq!(anthropic["content"][1]["input"]["command"], prompt());

    let responses: Value = post(
        &proxy,
        "https://api.openai.com/v1/responses",
        json!({"model": "gpt-5", "input": prompt()}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(responses["output"][0]["content"][0]["text"], prompt());
    let args: Value =
        serde_json::from_str(responses["output"][1]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args["command"], prompt());

    let gemini: Value = post(
        &proxy,
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-pro:generateContent",
        json!({"contents": [{"role": "user", "parts": [{"text": prompt()}]}]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        gemini["candidates"][0]["content"]["parts"][0]["text"],
        prompt()
    );
    assert_nothing_leaked(&upstream);
}

#[tokio::test]
async fn openai_chat_stream_is_restored_across_split_events() {
    let upstream = Upstream::start().await;
    let proxy = proxy_with_masking(&upstream).await;
    let res = post(
        &proxy,
        "https://api.openai.com/v1/chat/completions",
        json!({"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": prompt()}]}),
    )
    .await;
    let text = res.text().await.unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let mut content = String::new();
    let mut arguments = String::new();
    for e in events(&text) {
        let delta = &e["choices"][0]["delta"];
        content.push_str(delta["content"].as_str().unwrap_or(""));
        arguments.push_str(
            delta["tool_calls"][0]["function"]["arguments"]
                .as_str()
                .unwrap_or(""),
        );
    }
    assert_eq!(content, prompt());
    let args: Value = serde_json::from_str(&arguments).unwrap();
    assert_eq!(args["command"], prompt());
    assert!(
        !text.contains("TOLLGATE_"),
        "a placeholder leaked to the client: {text}"
    );
    assert_nothing_leaked(&upstream);
}

#[tokio::test]
async fn anthropic_stream_text_and_tool_input_are_restored_in_order() {
    let upstream = Upstream::start().await;
    let proxy = proxy_with_masking(&upstream).await;
    let res = post(
        &proxy,
        "https://api.anthropic.com/v1/messages",
        json!({"model": "claude", "stream": true, "max_tokens": 10, "messages": [{"role": "user", "content": prompt()}]}),
    )
    .await;
    let text = res.text().await.unwrap();
    let mut blocks: Vec<String> = vec![String::new(), String::new()];
    let mut stopped = [false, false];
    for e in events(&text) {
        let index = e["index"].as_u64().unwrap_or(0) as usize;
        match e["type"].as_str().unwrap() {
            "content_block_delta" => {
                assert!(!stopped[index], "delta after content_block_stop: {text}");
                let d = &e["delta"];
                blocks[index].push_str(d["text"].as_str().or(d["partial_json"].as_str()).unwrap());
            }
            "content_block_stop" => stopped[index] = true,
            _ => {}
        }
    }
    assert_eq!(blocks[0], prompt());
    let input: Value = serde_json::from_str(&blocks[1]).unwrap();
    assert_eq!(input["command"], prompt());
    assert!(
        text.contains(r#""id":"msg_01T""#),
        "non-text fields untouched: {text}"
    );
    assert!(!text.contains("TOLLGATE_"));
    assert_nothing_leaked(&upstream);
}

#[tokio::test]
async fn openai_responses_stream_is_restored() {
    let upstream = Upstream::start().await;
    let proxy = proxy_with_masking(&upstream).await;
    let res = post(
        &proxy,
        "https://api.openai.com/v1/responses",
        json!({"model": "gpt-5", "stream": true, "input": prompt()}),
    )
    .await;
    let text = res.text().await.unwrap();
    let mut deltas = String::new();
    let mut done = None;
    for e in events(&text) {
        match e["type"].as_str().unwrap() {
            "response.output_text.delta" => deltas.push_str(e["delta"].as_str().unwrap()),
            "response.output_text.done" => done = e["text"].as_str().map(str::to_owned),
            _ => {}
        }
    }
    assert_eq!(deltas, prompt());
    assert_eq!(done.unwrap(), prompt());
    assert_nothing_leaked(&upstream);
}

#[tokio::test]
async fn gemini_stream_is_restored() {
    let upstream = Upstream::start().await;
    let proxy = proxy_with_masking(&upstream).await;
    let res = post(
        &proxy,
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse",
        json!({"contents": [{"role": "user", "parts": [{"text": prompt()}]}]}),
    )
    .await;
    let text = res.text().await.unwrap();
    let joined: String = events(&text)
        .iter()
        .map(|e| {
            e["candidates"][0]["content"]["parts"][0]["text"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert_eq!(joined, prompt());
    assert!(!text.contains("TOLLGATE_"));
    assert_nothing_leaked(&upstream);
}

#[tokio::test]
async fn compressed_requests_are_decoded_masked_and_sent_plain() {
    let upstream = Upstream::start().await;
    let proxy = proxy_with_masking(&upstream).await;
    let body =
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": prompt()}]}).to_string();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(body.as_bytes()).unwrap();
    for (encoding, bytes) in [
        ("zstd", zstd::encode_all(body.as_bytes(), 3).unwrap()),
        ("gzip", gz.finish().unwrap()),
    ] {
        let res = client(&proxy)
            .post("https://api.openai.com/v1/chat/completions")
            .header("content-type", "application/json")
            .header("content-encoding", encoding)
            .header("x-test-echo", "1")
            .body(bytes)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{encoding}");
        let reply: Value = res.json().await.unwrap();
        assert_eq!(
            reply["choices"][0]["message"]["content"],
            prompt(),
            "{encoding}"
        );
    }
    for r in upstream.received() {
        assert!(!r.headers.contains_key("content-encoding"));
        serde_json::from_slice::<Value>(&r.body).expect("sent as plain JSON");
    }
    assert_nothing_leaked(&upstream);
}

#[tokio::test]
async fn a_rule_set_not_to_restore_keeps_its_placeholder_in_answers() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream)
        .masking("rules:\n  github-pat: { restore: false }\n")
        .start()
        .await;
    let reply: Value = post(
        &proxy,
        "https://api.openai.com/v1/chat/completions",
        json!({"messages": [{"role": "user", "content": format!("{GITHUB} and {AWS}")}]}),
    )
    .await
    .json()
    .await
    .unwrap();
    let content = reply["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(content.starts_with("TOLLGATE_GITHUB_PAT_"), "{content}");
    assert!(
        content.ends_with(AWS),
        "other rules still restore: {content}"
    );
}

#[tokio::test]
async fn clean_compressed_bodies_leave_as_the_content_that_was_inspected() {
    let upstream = Upstream::start().await;
    let proxy = proxy_with_masking(&upstream).await;
    let body =
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]}).to_string();
    let compressed = zstd::encode_all(body.as_bytes(), 3).unwrap();
    let res = client(&proxy)
        .post("https://api.openai.com/v1/chat/completions")
        .header("content-type", "application/json")
        .header("content-encoding", "zstd")
        .body(compressed.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // A container may carry more than its content (skippable frames, gzip name fields): what
    // leaves is the decoded content the proxy read, without the encoding.
    let received = &upstream.received()[0];
    assert!(!received.headers.contains_key("content-encoding"));
    assert_eq!(received.body, body.as_bytes());
}

#[tokio::test]
async fn sigv4_signed_bodies_with_secrets_are_refused_not_broken() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream).start().await;
    let client = client(&proxy);
    let send = |content: String| {
        client
            .post("https://bedrock-runtime.eu-central-1.amazonaws.com/model/anthropic.claude/invoke")
            .header("content-type", "application/json")
            .header("authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/eu-central-1/bedrock/aws4_request, SignedHeaders=host, Signature=abc")
            .header("x-amz-content-sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
            .body(json!({"messages": [{"role": "user", "content": content}]}).to_string())
            .send()
    };
    let res = send(prompt()).await.unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(res.headers()["x-tollgate-reason"], "signed-body");
    assert_eq!(res.headers()["x-amzn-errortype"], "AccessDeniedException");
    let body: Value = res.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("SigV4"),
        "{body}"
    );
    assert!(upstream.received().is_empty());

    // Nothing to mask: the signed body goes untouched.
    let res = send("hello".into()).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(upstream.received().len(), 1);
}

#[tokio::test]
async fn placeholders_are_stable_across_turns() {
    let upstream = Upstream::start().await;
    let proxy = proxy_with_masking(&upstream).await;
    let history = |n: usize| {
        let mut messages = vec![json!({"role": "user", "content": prompt()})];
        for _ in 0..n {
            messages.push(json!({"role": "assistant", "content": "noted"}));
            messages.push(json!({"role": "user", "content": format!("again {GITHUB}")}));
        }
        json!({"model": "gpt-4o", "messages": messages})
    };
    for turn in 0..2 {
        post(
            &proxy,
            "https://api.openai.com/v1/chat/completions",
            history(turn),
        )
        .await
        .text()
        .await
        .unwrap();
    }
    let placeholders: Vec<String> = upstream
        .received()
        .iter()
        .flat_map(|r| {
            let body = String::from_utf8_lossy(&r.body).into_owned();
            body.match_indices("TOLLGATE_GITHUB_PAT_")
                .map(|(i, _)| body[i..i + 30].to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(placeholders.len(), 3);
    assert!(
        placeholders.iter().all(|p| *p == placeholders[0]),
        "{placeholders:?}"
    );
}

#[tokio::test]
async fn realistic_agent_request_without_secrets_passes_byte_for_byte() {
    let upstream = Upstream::start().await;
    let proxy = proxy_with_masking(&upstream).await;
    let source = include_str!("../src/proxy/handler.rs");
    let body = json!({
        "model": "claude-sonnet",
        "system": [{"type": "text", "text": "You are Claude Code.\n<env>\nWorking directory: /repo\nIs git repo: yes\n</env>\n<system-reminder>Use TodoWrite.</system-reminder>"}],
        "tools": [{"name": "Bash", "description": "Run a command", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}, "timeout": {"type": "number", "description": "ms, max 600000"}}, "required": ["command"]}}],
        "messages": [
            {"role": "user", "content": "Review src/proxy/handler.rs at commit 3f786850e387550fdab836ed7e6dc881de23001b"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_01A", "name": "Read", "input": {"file_path": "/repo/src/proxy/handler.rs"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01A", "content": source}]}
        ],
        "max_tokens": 4096
    })
    .to_string();
    let res = client(&proxy)
        .post("https://api.anthropic.com/v1/messages")
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.text().await.unwrap();
    assert!(
        upstream.received()[0].body == body.as_bytes(),
        "the body was changed"
    );
}

#[tokio::test]
async fn a_blocked_rule_refuses_the_request_naming_the_rule() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream)
        .masking("rules:\n  github-pat: { action: block }\n")
        .start()
        .await;
    let res = post(
        &proxy,
        "https://api.anthropic.com/v1/messages",
        json!({"messages": [{"role": "user", "content": prompt()}]}),
    )
    .await;
    assert_eq!(res.status(), 403);
    assert_eq!(res.headers()["x-tollgate-reason"], "secret-blocked");
    assert_eq!(
        res.headers()["x-tollgate-rule"],
        "masking.rules: github-pat"
    );
    let body = res.text().await.unwrap();
    assert!(!body.contains(GITHUB), "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["type"], "error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("messages[0].content")
    );
    assert!(upstream.received().is_empty());
}

#[tokio::test]
async fn bodies_that_cannot_be_inspected_are_refused() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream).start().await;
    let client = client(&proxy);
    let binary = client
        .post("https://api.openai.com/v1/audio/transcriptions")
        .header("content-type", "application/octet-stream")
        .body(vec![0xffu8, 0xfe, 0x00, 0x81, 0x92])
        .send()
        .await
        .unwrap();
    assert_eq!(binary.status(), 415);
    assert_eq!(binary.headers()["x-tollgate-reason"], "uninspectable-body");
    let unknown = client
        .post("https://api.openai.com/v1/chat/completions")
        .header("content-encoding", "compress")
        .body("whatever")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 400);
    assert_eq!(unknown.headers()["x-tollgate-reason"], "undecodable-body");
    // JSON that a lenient parser reads but a strict one does not: the secret is spelled in
    // `\u` escapes, which only a parser would decode.
    let escaped: String = GITHUB
        .chars()
        .map(|c| format!("\\u{:04x}", c as u32))
        .collect();
    for (content_type, body) in [
        (
            "application/json",
            format!(
                r#"{{"temperature": NaN, "messages": [{{"role": "user", "content": "{escaped}"}}]}}"#
            ),
        ),
        (
            "application/json",
            format!(
                "\u{feff}{{\"messages\": [{{\"role\": \"user\", \"content\": \"{escaped}\"}}]}}"
            ),
        ),
        ("text/plain", format!(r#"{{"messages": "{escaped}",}}"#)),
    ] {
        let res = client
            .post("https://api.anthropic.com/v1/messages")
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400);
        assert_eq!(res.headers()["x-tollgate-reason"], "undecodable-body");
        let err: Value = res.json().await.unwrap();
        assert_eq!(err["type"], "error", "Anthropic's error shape");
        assert!(
            err["error"]["message"]
                .as_str()
                .unwrap()
                .contains("not strict JSON")
        );
    }
    let utf16: Vec<u8> = format!(r#"{{"messages": "{GITHUB}"}}"#)
        .encode_utf16()
        .flat_map(|u| u.to_le_bytes())
        .collect();
    for content_type in ["application/json", "application/json; charset=utf-16le"] {
        let res = client
            .post("https://api.openai.com/v1/chat/completions")
            .header("content-type", content_type)
            .body(utf16.clone())
            .send()
            .await
            .unwrap();
        assert!(
            matches!(res.status().as_u16(), 400 | 415),
            "{content_type}: {}",
            res.status()
        );
    }
    assert!(upstream.received().is_empty());
}

#[tokio::test]
async fn the_first_restored_event_arrives_while_the_upstream_still_streams() {
    let upstream = Upstream::start().await;
    let proxy = proxy_with_masking(&upstream).await;
    // Put a placeholder in this scope's vault, so the stream below goes through the restorer.
    post(
        &proxy,
        "https://api.openai.com/v1/chat/completions",
        json!({"messages": [{"role": "user", "content": prompt()}]}),
    )
    .await
    .text()
    .await
    .unwrap();
    let res = client(&proxy)
        .post("https://api.openai.com/test/gated-sse")
        .body("{}")
        .send()
        .await
        .unwrap();
    let mut stream = res.bytes_stream();
    let first = tokio::time::timeout(std::time::Duration::from_secs(10), stream.next())
        .await
        .expect("the restorer must not hold the stream")
        .unwrap()
        .unwrap();
    assert_eq!(first, "data: {\"n\":1}\n\n");
    upstream.release();
    while stream.next().await.is_some() {}
}

#[tokio::test]
async fn replicas_sharing_a_placeholder_key_give_a_value_the_same_placeholder_and_restore_it() {
    let upstream = Upstream::start().await;
    let key = [7u8; 32];
    let replica = async |key: Option<[u8; 32]>| {
        let mut setup = ProxySetup::new(&upstream).masking(masking_policy());
        if let Some(key) = key {
            setup = setup.placeholder_key(key);
        }
        setup.start().await
    };
    let (a, b, other) = (
        replica(Some(key)).await,
        replica(Some(key)).await,
        replica(None).await,
    );
    let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": format!("use {GITHUB}")}]});
    // One conversation's turns landing on different replicas, each answer restored by the
    // replica that masked its request.
    for proxy in [&a, &b, &other] {
        let answer = post(
            proxy,
            "https://api.openai.com/v1/chat/completions",
            body.clone(),
        )
        .await
        .text()
        .await
        .unwrap();
        assert!(answer.contains(GITHUB), "the echo is restored: {answer}");
    }
    let placeholders: Vec<String> = upstream
        .received()
        .iter()
        .map(|r| {
            let body = String::from_utf8_lossy(&r.body).into_owned();
            let at = body.find("TOLLGATE_GITHUB_PAT_").expect("masked");
            assert!(!body.contains(GITHUB));
            body[at..at + 30].to_owned()
        })
        .collect();
    assert_eq!(placeholders.len(), 3);
    assert_eq!(
        placeholders[0], placeholders[1],
        "same key, same placeholder"
    );
    assert_ne!(
        placeholders[0], placeholders[2],
        "a replica with its own key differs"
    );
}

/// A conversation resent turn after turn, as agents send it: every turn's history leaves
/// masked exactly as it left the turn before (its masking is used again, not redone, which the
/// metrics show), nothing leaks, and the new message's answer is restored.
#[tokio::test]
async fn a_resent_history_leaves_masked_as_before_and_answers_are_restored() {
    let upstream = Upstream::start().await;
    let proxy = proxy_with_masking(&upstream).await;
    let message = |i: usize| {
        let code: String = (0..12)
            .map(|l| format!("let step_{i}_{l} = load(\"cfg/{i}.toml\")?; // reads the settings\n"))
            .collect();
        json!({"role": if i % 2 == 0 { "user" } else { "assistant" },
               "content": format!("{code}turn {i}: {}", prompt())})
    };
    let mut messages = Vec::new();
    for turn in 0..5 {
        messages.push(message(turn));
        let res = post(
            &proxy,
            "https://api.openai.com/v1/chat/completions",
            json!({"model": "gpt-4o", "messages": messages}),
        )
        .await;
        assert_eq!(res.status(), 200);
        let answer: Value = res.json().await.unwrap();
        assert_eq!(
            answer["choices"][0]["message"]["content"], messages[turn]["content"],
            "turn {turn}'s answer is not restored"
        );
    }
    assert_nothing_leaked(&upstream);
    let sent: Vec<Value> = upstream
        .received()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(sent.len(), 5);
    for (turn, pair) in sent.windows(2).enumerate() {
        let (before, now) = (&pair[0]["messages"], &pair[1]["messages"]);
        for i in 0..=turn {
            assert_eq!(
                now[i],
                before[i],
                "message {i} left differently in turn {}",
                turn + 1
            );
        }
    }
    let metrics = admin_client()
        .get(format!("{}/metrics", proxy.admin_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let recalled: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("tollgate_mask_recalled_bytes_total "))
        .expect("the recalled bytes are counted")
        .parse()
        .unwrap();
    // Turn 0 masked values the scope had not seen before, so turn 1 masks message 0 again
    // (a value known now could be in it). Turns 2 to 4 find nothing new: every message they
    // resend is recalled.
    let resent: usize = (2..5)
        .flat_map(|turn| (0..turn).map(|i| message(i).to_string().len()))
        .sum();
    assert_eq!(recalled, resent as f64);
}
