//! Multi-turn tool loops as real agents run them, one per API shape: the agent reads a file full
//! of secrets through a tool, the model (scripted, seeing only what the proxy let through) writes
//! those values elsewhere with a second tool call, and the agent sends the whole history back on
//! the next turn. The upstream must never see a secret, in any turn; the agent must get its real
//! values back, in valid JSON; and the history must mask back to exactly what the model wrote.

mod common;

use base64::Engine as _;
use common::upstream::{Answer, Received};
use common::*;
use serde_json::{Value, json};
use std::io::Write;
use tollgate::providers::eventstream::{Frame, FrameReader};

/// Fresh secrets for each run, so nothing can be matched by its literal.
struct Secrets {
    github: String,
    db_password: String,
    aws_id: String,
    aws_secret: String,
}

fn random_from(alphabet: &[u8], n: usize, seed: &mut u64) -> String {
    (0..n)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            alphabet[(*seed % alphabet.len() as u64) as usize] as char
        })
        .collect()
}

impl Secrets {
    fn fresh() -> Self {
        let mut seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1;
        let alnum = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        Self {
            github: format!("ghp_{}", random_from(alnum, 36, &mut seed)),
            // Digits, letters and the punctuation that needs escaping in JSON and shells.
            db_password: format!("{}#9!\"x", random_from(alnum, 10, &mut seed)),
            aws_id: format!(
                "AKIA{}",
                random_from(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16, &mut seed)
            ),
            aws_secret: random_from(
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
                40,
                &mut seed,
            ),
        }
    }

    fn env_file(&self) -> String {
        format!(
            "GITHUB_TOKEN={}\nDATABASE_URL=postgres://app:{}@db.internal:5432/app\nAWS_ACCESS_KEY_ID={}\nAWS_SECRET_ACCESS_KEY={}\n",
            self.github,
            urlencode_free(&self.db_password),
            self.aws_id,
            self.aws_secret
        )
    }

    fn all(&self) -> Vec<&str> {
        vec![
            &self.github,
            &self.db_password,
            &self.aws_id,
            &self.aws_secret,
        ]
    }
}

/// The password as people paste it into URLs: unencoded.
fn urlencode_free(pw: &str) -> String {
    pw.to_owned()
}

/// Fails if any secret, or its JSON-escaped spelling, is in what the upstream received.
fn assert_upstream_saw_no_secret(upstream: &Upstream, secrets: &Secrets) {
    let received = upstream.received();
    assert!(!received.is_empty());
    for r in received {
        let body = decoded_body(&r);
        // Every string at every level of JSON-in-a-string, decoded.
        let mut strings = vec![body.clone()];
        let mut i = 0;
        while i < strings.len() {
            if let Ok(v) = serde_json::from_str::<Value>(&strings[i]) {
                collect_strings(&v, &mut strings);
            }
            i += 1;
        }
        for text in &strings {
            for s in secrets.all() {
                assert!(
                    !text.contains(s),
                    "a secret reached the upstream at {}: {body}",
                    r.path
                );
            }
        }
    }
}

fn collect_strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| collect_strings(x, out)),
        Value::Object(m) => m.values().for_each(|x| collect_strings(x, out)),
        _ => {}
    }
}

fn decoded_body(r: &Received) -> String {
    match r
        .headers
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
    {
        Some("zstd") => String::from_utf8(zstd::decode_all(&r.body[..]).unwrap()).unwrap(),
        _ => String::from_utf8_lossy(&r.body).into_owned(),
    }
}

/// Pieces of `n` characters: every placeholder the model writes is split across events.
fn pieces(text: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars.chunks(n).map(|c| c.iter().collect()).collect()
}

fn request_json(r: &Received) -> Value {
    serde_json::from_str(&decoded_body(r)).expect("the upstream got JSON")
}

async fn send(proxy: &TestProxy, url: &str, body: &Value) -> reqwest::Response {
    let res = client(proxy)
        .post(url)
        .header("content-type", "application/json")
        .header("x-test-model", "1")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res
}

fn sse_data(body: &str) -> Vec<Value> {
    body.split("\n\n")
        .filter_map(|e| {
            let data: Vec<&str> = e
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            (!data.is_empty()).then(|| data.join("\n"))
        })
        .filter(|d| d != "[DONE]")
        .map(|d| serde_json::from_str(&d).unwrap_or_else(|e| panic!("{e}: {d}")))
        .collect()
}

#[tokio::test]
async fn claude_code_reads_a_secret_file_and_writes_it_elsewhere() {
    let secrets = Secrets::fresh();
    let upstream = Upstream::start().await;
    // The model copies the file it was shown into a Write tool call, streamed in pieces.
    upstream.set_model(|r| {
        let req = request_json(r);
        let messages = req["messages"].as_array().unwrap();
        let last = messages.last().unwrap();
        if last["content"][0]["content"] == "File created successfully" {
            return Answer::sse(vec![
                format!("event: message_start\ndata: {}", json!({"type": "message_start", "message": {"id": "m2", "content": []}})),
                format!("event: content_block_start\ndata: {}", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})),
                format!("event: content_block_delta\ndata: {}", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Done."}})),
                format!("event: content_block_stop\ndata: {}", json!({"type": "content_block_stop", "index": 0})),
                format!("event: message_stop\ndata: {}", json!({"type": "message_stop"})),
            ]);
        }
        let shown = last["content"][0]["content"].as_str().unwrap();
        let file: String = shown
            .lines()
            .map(|l| l.split_once('→').map_or(l, |(_, t)| t).to_owned() + "\n")
            .collect();
        let input = json!({"file_path": "/app/backup.env", "content": file}).to_string();
        let mut events = vec![
            format!("event: message_start\ndata: {}", json!({"type": "message_start", "message": {"id": "m1", "content": []}})),
            format!("event: content_block_start\ndata: {}", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})),
        ];
        for p in pieces(&format!("Copying {file}"), 4) {
            events.push(format!("event: content_block_delta\ndata: {}", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}})));
        }
        events.push(format!("event: content_block_stop\ndata: {}", json!({"type": "content_block_stop", "index": 0})));
        events.push(format!("event: content_block_start\ndata: {}", json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_2", "name": "Write", "input": {}}})));
        for p in pieces(&input, 5) {
            events.push(format!("event: content_block_delta\ndata: {}", json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": p}})));
            events.push(format!("event: ping\ndata: {}", json!({"type": "ping"})));
        }
        events.push(format!("event: content_block_stop\ndata: {}", json!({"type": "content_block_stop", "index": 1})));
        events.push(format!("event: message_delta\ndata: {}", json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}})));
        events.push(format!("event: message_stop\ndata: {}", json!({"type": "message_stop"})));
        Answer::sse(events)
    });
    let proxy = ProxySetup::new(&upstream).start().await;
    let env = secrets.env_file();
    let numbered: String = env
        .lines()
        .enumerate()
        .map(|(i, l)| format!("     {}→{l}\n", i + 1))
        .collect();
    let mut messages = vec![
        json!({"role": "user", "content": [{"type": "text", "text": "back up .env"}]}),
        json!({"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"file_path": "/app/.env"}}]}),
        json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": numbered}]}),
    ];
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 1024, "stream": true, "system": [{"type": "text", "text": "You are Claude Code."}], "messages": messages});
    let text = send(&proxy, "https://api.anthropic.com/v1/messages", &body)
        .await
        .text()
        .await
        .unwrap();
    let (mut prose, mut input_json) = (String::new(), String::new());
    for e in sse_data(&text) {
        match (e["type"].as_str(), e["index"].as_u64()) {
            (Some("content_block_delta"), Some(0)) => {
                prose.push_str(e["delta"]["text"].as_str().unwrap())
            }
            (Some("content_block_delta"), Some(1)) => {
                input_json.push_str(e["delta"]["partial_json"].as_str().unwrap())
            }
            _ => {}
        }
    }
    assert!(
        !text.contains("TOLLGATE_"),
        "a placeholder reached the agent: {text}"
    );
    assert_eq!(prose, format!("Copying {env}"));
    let input: Value = serde_json::from_str(&input_json).expect("the tool input is valid JSON");
    assert_eq!(input["content"], env, "the agent writes the real values");

    // Next turn: the whole history goes back, including the tool call with the real values.
    messages.push(json!({"role": "assistant", "content": [{"type": "text", "text": prose}, {"type": "tool_use", "id": "toolu_2", "name": "Write", "input": input}]}));
    messages.push(json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_2", "content": "File created successfully"}]}));
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 1024, "stream": true, "messages": messages});
    let text = send(&proxy, "https://api.anthropic.com/v1/messages", &body)
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains("Done."));
    assert_upstream_saw_no_secret(&upstream, &secrets);
    // The model's own tool call comes back to it as it wrote it.
    let received = upstream.received();
    let turn1 = request_json(&received[0]);
    let turn2 = request_json(&received[1]);
    let shown: String = turn1["messages"][2]["content"][0]["content"]
        .as_str()
        .unwrap()
        .lines()
        .map(|l| l.split_once('→').unwrap().1.to_owned() + "\n")
        .collect();
    assert_eq!(
        turn2["messages"][3]["content"][1]["input"]["content"],
        shown
    );
}

#[tokio::test]
async fn codex_cats_a_secret_file_and_applies_a_patch_with_it() {
    let secrets = Secrets::fresh();
    let upstream = Upstream::start().await;
    upstream.set_model(|r| {
        let req = request_json(r);
        let input = req["input"].as_array().unwrap();
        let last = input.last().unwrap();
        if last["output"] == "Success. Updated the following files:\nA backup.env" {
            return Answer::sse(vec![format!("event: response.completed\ndata: {}", json!({"type": "response.completed", "response": {"id": "r2", "output": []}}))]);
        }
        let output: Value = serde_json::from_str(last["output"].as_str().unwrap()).unwrap();
        let file = output["output"].as_str().unwrap();
        let patch: String = format!(
            "*** Begin Patch\n*** Add File: backup.env\n{}*** End Patch\n",
            file.lines().map(|l| format!("+{l}\n")).collect::<String>()
        );
        let args = json!({"input": patch}).to_string();
        let ev = |v: Value| format!("event: {}\ndata: {v}", v["type"].as_str().unwrap());
        let mut events = vec![ev(json!({"type": "response.output_item.added", "output_index": 0, "item": {"type": "function_call", "name": "apply_patch", "call_id": "c2", "arguments": ""}}))];
        for p in pieces(&args, 7) {
            events.push(ev(json!({"type": "response.function_call_arguments.delta", "output_index": 0, "item_id": "fc_1", "delta": p})));
        }
        events.push(ev(json!({"type": "response.function_call_arguments.done", "output_index": 0, "item_id": "fc_1", "arguments": args})));
        events.push(ev(json!({"type": "response.output_item.done", "output_index": 0, "item": {"type": "function_call", "name": "apply_patch", "call_id": "c2", "arguments": args}})));
        events.push(ev(json!({"type": "response.completed", "response": {"id": "r1", "output": [{"type": "function_call", "name": "apply_patch", "call_id": "c2", "arguments": args}]}})));
        Answer::sse(events)
    });
    let proxy = ProxySetup::new(&upstream).start().await;
    let env = secrets.env_file();
    let mut input = vec![
        json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": "copy .env to backup.env"}]}),
        json!({"type": "function_call", "call_id": "c1", "name": "shell", "arguments": json!({"command": ["bash", "-lc", "cat .env"]}).to_string()}),
        json!({"type": "function_call_output", "call_id": "c1", "output": json!({"output": env, "metadata": {"exit_code": 0}}).to_string()}),
    ];
    // Codex compresses its request bodies with zstd.
    let send_zstd = |input: &Vec<Value>| {
        let body = json!({"model": "gpt-5-codex", "stream": true, "instructions": "You are Codex.", "input": input}).to_string();
        let compressed = zstd::encode_all(body.as_bytes(), 3).unwrap();
        client(&proxy)
            .post("https://api.openai.com/v1/responses")
            .header("content-type", "application/json")
            .header("content-encoding", "zstd")
            .header("x-test-model", "1")
            .body(compressed)
            .send()
    };
    let text = send_zstd(&input).await.unwrap().text().await.unwrap();
    assert!(!text.contains("TOLLGATE_"), "{text}");
    let mut args = String::new();
    let mut whole = Vec::new();
    for e in sse_data(&text) {
        match e["type"].as_str().unwrap() {
            "response.function_call_arguments.delta" => args.push_str(e["delta"].as_str().unwrap()),
            "response.function_call_arguments.done" => whole.push(e["arguments"].clone()),
            "response.output_item.done" => whole.push(e["item"]["arguments"].clone()),
            "response.completed" => whole.push(e["response"]["output"][0]["arguments"].clone()),
            _ => {}
        }
    }
    let parsed: Value = serde_json::from_str(&args).expect("streamed arguments are valid JSON");
    let patch = parsed["input"].as_str().unwrap();
    for line in env.lines() {
        assert!(patch.contains(&format!("+{line}\n")), "{patch}");
    }
    assert_eq!(whole.len(), 3);
    for w in whole {
        assert_eq!(
            w,
            Value::String(args.clone()),
            "whole values agree with the deltas"
        );
    }

    input.push(
        json!({"type": "function_call", "call_id": "c2", "name": "apply_patch", "arguments": args}),
    );
    input.push(json!({"type": "function_call_output", "call_id": "c2", "output": "Success. Updated the following files:\nA backup.env"}));
    let res = send_zstd(&input).await.unwrap();
    assert_eq!(res.status(), 200);
    res.text().await.unwrap();
    assert_upstream_saw_no_secret(&upstream, &secrets);
    let received = upstream.received();
    let model_args = {
        // What the model wrote in turn 1, from what it was shown.
        let turn1 = request_json(&received[0]);
        let output: Value =
            serde_json::from_str(turn1["input"][2]["output"].as_str().unwrap()).unwrap();
        let file = output["output"].as_str().unwrap().to_owned();
        json!({"input": format!("*** Begin Patch\n*** Add File: backup.env\n{}*** End Patch\n", file.lines().map(|l| format!("+{l}\n")).collect::<String>())}).to_string()
    };
    assert_eq!(
        request_json(&received[1])["input"][3]["arguments"],
        model_args
    );
}

#[tokio::test]
async fn gemini_function_calls_carry_secrets_out_and_back() {
    let secrets = Secrets::fresh();
    let upstream = Upstream::start().await;
    upstream.set_model(|r| {
        let req = request_json(r);
        let last = req["contents"].as_array().unwrap().last().unwrap().clone();
        let response = &last["parts"][0]["functionResponse"]["response"];
        if response["result"] == "written" {
            return Answer::json(&json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "ok"}]}, "finishReason": "STOP"}]}));
        }
        let content = response["content"].clone();
        Answer::json(&json!({"candidates": [{"content": {"role": "model", "parts": [
            {"functionCall": {"name": "write_file", "args": {"path": "backup.env", "content": content, "env": response["env"]}}}
        ]}, "finishReason": "STOP"}]}))
    });
    let proxy = ProxySetup::new(&upstream).start().await;
    let env = secrets.env_file();
    let mut contents = vec![
        json!({"role": "user", "parts": [{"text": "back up the env"}]}),
        json!({"role": "model", "parts": [{"functionCall": {"name": "read_file", "args": {"path": ".env"}}}]}),
        json!({"role": "user", "parts": [{"functionResponse": {"name": "read_file", "response": {"content": env, "env": {"GITHUB_TOKEN": secrets.github, "DB_PASSWORD": secrets.db_password}}}}]}),
    ];
    let url =
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-pro:generateContent";
    let answer: Value = send(&proxy, url, &json!({"contents": contents}))
        .await
        .json()
        .await
        .unwrap();
    let call = answer["candidates"][0]["content"]["parts"][0]["functionCall"].clone();
    assert_eq!(call["args"]["content"], env);
    assert_eq!(call["args"]["env"]["DB_PASSWORD"], secrets.db_password);
    contents.push(json!({"role": "model", "parts": [{"functionCall": call}]}));
    contents.push(json!({"role": "user", "parts": [{"functionResponse": {"name": "write_file", "response": {"result": "written"}}}]}));
    send(&proxy, url, &json!({"contents": contents})).await;
    assert_upstream_saw_no_secret(&upstream, &secrets);
}

fn frame(event_type: &str, payload: Value) -> Vec<u8> {
    Frame::json_event(event_type, payload.to_string().into_bytes()).encode()
}

#[tokio::test]
async fn bedrock_converse_stream_tool_use_is_restored_frame_by_frame() {
    let secrets = Secrets::fresh();
    let upstream = Upstream::start().await;
    upstream.set_model(|r| {
        let req = request_json(r);
        let last = req["messages"].as_array().unwrap().last().unwrap().clone();
        let result = &last["content"][0]["toolResult"]["content"][0]["json"];
        if result["written"] == true {
            return Answer {
                content_type: "application/vnd.amazon.eventstream",
                content_encoding: None,
                chunks: vec![frame("messageStop", json!({"stopReason": "end_turn"}))],
                pause: std::time::Duration::ZERO,
            };
        }
        let input = json!({"path": "backup.env", "content": result["content"]}).to_string();
        let mut chunks = vec![frame("messageStart", json!({"role": "assistant"}))];
        for p in pieces(&input, 6) {
            chunks.push(frame(
                "contentBlockDelta",
                json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": p}}}),
            ));
        }
        chunks.push(frame("contentBlockStop", json!({"contentBlockIndex": 0})));
        chunks.push(frame("messageStop", json!({"stopReason": "tool_use"})));
        // Frames do not arrive aligned with TCP reads.
        let all: Vec<u8> = chunks.concat();
        Answer {
            content_type: "application/vnd.amazon.eventstream",
            content_encoding: None,
            chunks: all.chunks(37).map(<[u8]>::to_vec).collect(),
            pause: std::time::Duration::ZERO,
        }
    });
    let proxy = ProxySetup::new(&upstream).start().await;
    let env = secrets.env_file();
    let mut messages = vec![
        json!({"role": "user", "content": [{"text": "back up the env"}]}),
        json!({"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "read", "input": {"path": ".env"}}}]}),
        json!({"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"json": {"content": env}}]}}]}),
    ];
    let url = "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-sonnet-4-5-v1%3A0/converse-stream";
    let bytes = send(&proxy, url, &json!({"messages": messages}))
        .await
        .bytes()
        .await
        .unwrap();
    let mut reader = FrameReader::default();
    reader.push(&bytes);
    let mut input = String::new();
    while let Some(f) = reader.next_frame().expect("frames with valid CRCs") {
        let payload: Value = serde_json::from_slice(&f.payload).unwrap();
        if let Some(p) = payload["delta"]["toolUse"]["input"].as_str() {
            input.push_str(p);
        }
    }
    assert!(reader.remaining().is_empty());
    let input: Value = serde_json::from_str(&input).expect("valid JSON input");
    assert_eq!(input["content"], env);
    messages.push(json!({"role": "assistant", "content": [{"toolUse": {"toolUseId": "t2", "name": "write", "input": input}}]}));
    messages.push(json!({"role": "user", "content": [{"toolResult": {"toolUseId": "t2", "content": [{"json": {"written": true}}]}}]}));
    send(&proxy, url, &json!({"messages": messages})).await;
    assert_upstream_saw_no_secret(&upstream, &secrets);
}

#[tokio::test]
async fn a_gzipped_stream_is_decoded_restored_and_still_streamed() {
    let secrets = Secrets::fresh();
    let upstream = Upstream::start().await;
    upstream.set_model(|r| {
        let req = request_json(r);
        let text = req["messages"][0]["content"].as_str().unwrap().to_owned();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let mut chunks = Vec::new();
        for p in pieces(&text, 3) {
            let event = format!(
                "data: {}\n\n",
                json!({"choices": [{"index": 0, "delta": {"content": p}}]})
            );
            gz.write_all(event.as_bytes()).unwrap();
            gz.flush().unwrap();
            chunks.push(std::mem::take(gz.get_mut()));
        }
        gz.write_all(b"data: [DONE]\n\n").unwrap();
        chunks.push(gz.finish().unwrap());
        Answer {
            content_type: "text/event-stream",
            content_encoding: Some("gzip"),
            chunks,
            pause: std::time::Duration::ZERO,
        }
    });
    let proxy = ProxySetup::new(&upstream).start().await;
    let prompt = format!("deploy with {} please", secrets.github);
    let res = send(
        &proxy,
        "https://api.openai.com/v1/chat/completions",
        &json!({"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": prompt}]}),
    )
    .await;
    assert!(res.headers().get("content-encoding").is_none());
    let text = res.text().await.unwrap();
    let content: String = sse_data(&text)
        .iter()
        .map(|e| {
            e["choices"][0]["delta"]["content"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert_eq!(content, prompt);
    assert_upstream_saw_no_secret(&upstream, &secrets);
}

#[tokio::test]
async fn openai_chat_attachments_are_inspected_or_recorded() {
    let secrets = Secrets::fresh();
    let upstream = Upstream::start().await;
    upstream.set_model(|_| {
        Answer::json(
            &json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}]}),
        )
    });
    let proxy = ProxySetup::new(&upstream).start().await;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is in these?"},
        {"type": "file", "file": {"filename": "prod.env", "file_data": format!("data:text/plain;base64,{}", b64(secrets.env_file().as_bytes()))}},
        {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{}", b64(&[&b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"[..], &[0u8, 1, 2, 3, 250, 251, 252, 253][..]].concat().repeat(8)))}},
    ]}]});
    send(&proxy, "https://api.openai.com/v1/chat/completions", &body).await;
    assert_upstream_saw_no_secret(&upstream, &secrets);
    let sent = request_json(&upstream.received()[0]);
    let data = sent["messages"][0]["content"][1]["file"]["file_data"]
        .as_str()
        .unwrap();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(data.strip_prefix("data:text/plain;base64,").unwrap())
        .unwrap();
    let decoded = String::from_utf8(decoded).unwrap();
    assert!(
        decoded.starts_with("GITHUB_TOKEN=TOLLGATE_GITHUB_PAT_"),
        "{decoded}"
    );
    let (store, _dir) = proxy.stop_and_open_store().await;
    let records = store.all().unwrap();
    let findings = &records
        .iter()
        .find(|(_, r)| r.kind.as_str() == "exchange")
        .unwrap()
        .1
        .findings;
    assert!(
        findings.contains("\"uninspected-attachment\""),
        "{findings}"
    );
    assert!(findings.contains("\"image/png\""), "{findings}");
}
