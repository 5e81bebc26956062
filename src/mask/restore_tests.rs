//! Restoring every answer shape: for every chunking (byte by byte, random cuts, UTF-8 splits)
//! and every interleaving of slots, the client gets exactly the text it would have got had the
//! model written the values themselves, with each value escaped for where it landed.

use super::*;
use crate::providers::eventstream::Frame;
use bytes::Bytes;
use proptest::prelude::*;
use serde_json::json;
use std::time::Duration;

const KEY: &str =
    "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n";
const PW: &str = "p\"w\\d é🙂 x";
const TOKEN: &str = "ghp_Q7mR2xK9pL4vN8sT3wY6zB1cD5fG0hJ2kM4n";

struct Fixture {
    restorer: Restorer,
    /// (placeholder, value)
    values: Vec<(String, &'static str)>,
}

fn fixture() -> Fixture {
    let vault = Arc::new(Vault::new(Duration::from_secs(600), 16 << 20));
    let values = [
        ("private-key", KEY),
        ("password", PW),
        ("github-pat", TOKEN),
    ]
    .iter()
    .map(|(kind, v)| (vault.placeholder("s", kind, v, true), *v))
    .collect();
    Fixture {
        restorer: Restorer::new(vault, "s"),
        values,
    }
}

/// What the model writes into a slot: prose around placeholders, or a JSON document whose
/// strings hold them. Returns (with placeholders, with the values as the client must see them).
fn slot_text(f: &Fixture, json_doc: bool, n: usize) -> (String, String) {
    let (p, v) = &f.values[n % 3];
    let (p2, v2) = &f.values[(n + 1) % 3];
    if json_doc {
        let masked =
            json!({"path": "a.txt", "content": format!("{p} then {p2}"), "n": n}).to_string();
        let real =
            json!({"path": "a.txt", "content": format!("{v} then {v2}"), "n": n}).to_string();
        (masked, real)
    } else {
        (
            format!("Text {{\"a\": 1}} {p} é {p2}{p}."),
            format!("Text {{\"a\": 1}} {v} é {v2}{v}."),
        )
    }
}

/// Cuts `text` into pieces at char boundaries given by `cuts`.
fn pieces(text: &str, cuts: &[usize]) -> Vec<String> {
    let mut points: Vec<usize> = cuts
        .iter()
        .map(|c| c % (text.len() + 1))
        .filter(|&c| text.is_char_boundary(c))
        .collect();
    points.sort();
    points.dedup();
    let mut out = Vec::new();
    let mut at = 0;
    for p in points.into_iter().chain([text.len()]) {
        if p > at {
            out.push(text[at..p].to_owned());
            at = p;
        }
    }
    if out.is_empty() {
        out.push(String::new());
    }
    out
}

/// Merges per-slot event lists in the order `order` picks (each slot's own order kept).
fn interleave(mut lists: Vec<Vec<String>>, order: &[usize]) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    while lists.iter().any(|l| !l.is_empty()) {
        let pick = order.get(i).copied().unwrap_or(0) % lists.len();
        i += 1;
        if let Some(l) = (0..lists.len())
            .map(|k| (pick + k) % lists.len())
            .find(|&k| !lists[k].is_empty())
        {
            out.push(lists[l].remove(0));
        }
    }
    out
}

fn feed_chunked(
    r: &mut dyn StreamRestore,
    bytes: &[u8],
    cuts: &[usize],
    bytewise: bool,
) -> Vec<u8> {
    let mut out = Vec::new();
    if bytewise {
        for b in bytes {
            out.extend(r.feed(std::slice::from_ref(b)));
        }
    } else {
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        points.sort();
        let mut at = 0;
        for p in points.into_iter().chain([bytes.len()]) {
            out.extend(r.feed(&bytes[at..p]));
            at = p;
        }
    }
    out.extend(r.finish());
    out
}

fn sse_bytes(events: &[String]) -> Vec<u8> {
    events
        .iter()
        .flat_map(|e| e.bytes().chain(*b"\n\n"))
        .collect()
}

fn data_events(out: &[u8]) -> Vec<(Option<String>, Value)> {
    let text = String::from_utf8(out.to_vec())
        .expect("UTF-8 out")
        .replace("\r\n", "\n")
        .replace('\r', "\n");
    crate::providers::sse::events(&text)
        .filter_map(|e| {
            let data = e.data?;
            serde_json::from_str(&data)
                .ok()
                .map(|v| (e.event.map(str::to_owned), v))
        })
        .collect()
}

/// Checks what the client received.
type Check = Box<dyn Fn(&[u8])>;

fn shape_case(shape: usize, f: &Fixture, cuts: &[usize], order: &[usize]) -> (Vec<u8>, Check) {
    match shape {
        // OpenAI chat: two choices and two parallel tool calls, interleaved.
        0 => {
            let mut lists = Vec::new();
            let mut expect = Vec::new();
            for c in 0..2u64 {
                let (masked, real) = slot_text(f, false, c as usize);
                lists.push(pieces(&masked, cuts).into_iter().map(|p| {
                    format!("data: {}", json!({"choices": [{"index": c, "delta": {"content": p}, "finish_reason": null}]}))
                }).collect::<Vec<_>>());
                expect.push((format!("c{c}"), real));
                for t in 0..2u64 {
                    let (masked, real) = slot_text(f, true, (c + t) as usize);
                    lists.push(pieces(&masked, &cuts.iter().map(|x| x * 7 + t as usize).collect::<Vec<_>>()).into_iter().map(|p| {
                        format!("data: {}", json!({"choices": [{"index": c, "delta": {"tool_calls": [{"index": t, "function": {"arguments": p}}]}}]}))
                    }).collect());
                    expect.push((format!("c{c}t{t}"), real));
                }
                // The legacy single function call.
                let (masked, real) = slot_text(f, true, c as usize + 2);
                lists.push(pieces(&masked, &cuts.iter().map(|x| x * 5 + 1).collect::<Vec<_>>()).into_iter().map(|p| {
                    format!("data: {}", json!({"choices": [{"index": c, "delta": {"function_call": {"arguments": p}}}]}))
                }).collect());
                expect.push((format!("c{c}f"), real));
            }
            let mut events = interleave(lists, order);
            events.insert(events.len() / 2, ": keep-alive".into());
            for c in 0..2 {
                events.push(format!(
                    "data: {}",
                    json!({"choices": [{"index": c, "delta": {}, "finish_reason": "stop"}]})
                ));
            }
            events.push("data: [DONE]".into());
            let check = move |out: &[u8]| {
                let mut got: BTreeMap<String, String> = BTreeMap::new();
                for (_, e) in data_events(out) {
                    for ch in e["choices"].as_array().unwrap() {
                        let c = ch["index"].as_u64().unwrap();
                        if let Some(s) = ch["delta"]["content"].as_str() {
                            got.entry(format!("c{c}")).or_default().push_str(s);
                        }
                        if let Some(s) = ch["delta"]["function_call"]["arguments"].as_str() {
                            got.entry(format!("c{c}f")).or_default().push_str(s);
                        }
                        for tc in ch["delta"]["tool_calls"].as_array().into_iter().flatten() {
                            let t = tc["index"].as_u64().unwrap();
                            got.entry(format!("c{c}t{t}"))
                                .or_default()
                                .push_str(tc["function"]["arguments"].as_str().unwrap());
                        }
                    }
                }
                for (slot, real) in &expect {
                    assert_eq!(got.get(slot), Some(real), "slot {slot}");
                }
                assert!(
                    String::from_utf8_lossy(out)
                        .replace("\r\n", "\n")
                        .replace('\r', "\n")
                        .ends_with("data: [DONE]\n\n")
                );
            };
            (sse_bytes(&events), Box::new(check))
        }
        // Anthropic: text, tool input JSON and thinking blocks, with pings between.
        1 => {
            let mut events = vec![format!(
                "event: message_start\ndata: {}",
                json!({"type": "message_start", "message": {"id": "m"}})
            )];
            let mut expect = Vec::new();
            for (b, (kind, field, json_doc)) in [
                ("text_delta", "text", false),
                ("input_json_delta", "partial_json", true),
                ("thinking_delta", "thinking", false),
            ]
            .iter()
            .enumerate()
            {
                let (masked, real) = slot_text(f, *json_doc, b);
                events.push(format!("event: content_block_start\ndata: {}", json!({"type": "content_block_start", "index": b, "content_block": {"type": "text", "text": ""}})));
                for (i, p) in pieces(&masked, cuts).into_iter().enumerate() {
                    events.push(format!("event: content_block_delta\ndata: {}", json!({"type": "content_block_delta", "index": b, "delta": {"type": kind, field.to_owned(): p}})));
                    if i % 2 == 1 {
                        events.push(format!("event: ping\ndata: {}", json!({"type": "ping"})));
                    }
                }
                events.push(format!(
                    "event: content_block_stop\ndata: {}",
                    json!({"type": "content_block_stop", "index": b})
                ));
                expect.push(real);
            }
            events.push(format!(
                "event: message_stop\ndata: {}",
                json!({"type": "message_stop"})
            ));
            let check = move |out: &[u8]| {
                let mut got = vec![String::new(); 3];
                let mut stopped = [false; 3];
                for (_, e) in data_events(out) {
                    let b = e["index"].as_u64().unwrap_or(0) as usize;
                    match e["type"].as_str().unwrap() {
                        "content_block_delta" => {
                            assert!(!stopped[b], "a delta after its block stopped");
                            for k in ["text", "partial_json", "thinking"] {
                                if let Some(s) = e["delta"][k].as_str() {
                                    got[b].push_str(s);
                                }
                            }
                        }
                        "content_block_stop" => stopped[b] = true,
                        _ => {}
                    }
                }
                assert_eq!(got, expect);
            };
            (sse_bytes(&events), Box::new(check))
        }
        // OpenAI Responses: text deltas and argument deltas, then whole values.
        2 => {
            let (text_m, text_r) = slot_text(f, false, 0);
            let (args_m, args_r) = slot_text(f, true, 1);
            let mut lists = vec![
                pieces(&text_m, cuts).into_iter().map(|p| format!("event: response.output_text.delta\ndata: {}", json!({"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "delta": p}))).collect::<Vec<_>>(),
                pieces(&args_m, cuts).into_iter().map(|p| format!("event: response.function_call_arguments.delta\ndata: {}", json!({"type": "response.function_call_arguments.delta", "output_index": 1, "delta": p}))).collect(),
            ];
            let mut events = interleave(std::mem::take(&mut lists), order);
            events.push(format!("data: {}", json!({"type": "response.output_text.done", "output_index": 0, "content_index": 0, "text": text_m})));
            events.push(format!("data: {}", json!({"type": "response.function_call_arguments.done", "output_index": 1, "arguments": args_m})));
            events.push(format!("data: {}", json!({"type": "response.output_item.done", "output_index": 1, "item": {"type": "function_call", "arguments": args_m}})));
            events.push(format!("data: {}", json!({"type": "response.completed", "response": {"output": [{"type": "message", "content": [{"type": "output_text", "text": text_m}]}, {"type": "function_call", "arguments": args_m}]}})));
            let check = move |out: &[u8]| {
                let (mut text, mut args) = (String::new(), String::new());
                let evs = data_events(out);
                for (_, e) in &evs {
                    match e["type"].as_str().unwrap() {
                        "response.output_text.delta" => text.push_str(e["delta"].as_str().unwrap()),
                        "response.function_call_arguments.delta" => {
                            args.push_str(e["delta"].as_str().unwrap())
                        }
                        "response.output_text.done" => assert_eq!(e["text"], text_r),
                        "response.function_call_arguments.done" => {
                            assert_eq!(e["arguments"], args_r)
                        }
                        "response.output_item.done" => assert_eq!(e["item"]["arguments"], args_r),
                        "response.completed" => {
                            assert_eq!(e["response"]["output"][0]["content"][0]["text"], text_r);
                            assert_eq!(e["response"]["output"][1]["arguments"], args_r);
                        }
                        _ => {}
                    }
                }
                assert_eq!(
                    evs.iter()
                        .filter(|(_, e)| e["type"].as_str().unwrap().ends_with(".done"))
                        .count(),
                    3,
                    "no stray whole values"
                );
                assert_eq!(text, text_r);
                assert_eq!(args, args_r);
            };
            (sse_bytes(&events), Box::new(check))
        }
        // Gemini: two candidates, whole objects per event, thoughts before the answer.
        _ => {
            let mut lists = Vec::new();
            let mut expect = Vec::new();
            let (thought_m, thought_r) = slot_text(f, false, 2);
            let thoughts: Vec<String> = pieces(&thought_m, cuts).into_iter().map(|p| format!("data: {}", json!({"candidates": [{"index": 0, "content": {"role": "model", "parts": [{"text": p, "thought": true}]}}]}))).collect();
            for c in 0..2u64 {
                let (masked, real) = slot_text(f, false, c as usize + 1);
                lists.push(pieces(&masked, cuts).into_iter().map(|p| format!("data: {}", json!({"candidates": [{"index": c, "content": {"role": "model", "parts": [{"text": p}]}}]}))).collect::<Vec<_>>());
                expect.push(real);
            }
            let mut events = thoughts;
            events.extend(interleave(lists, order));
            events.push(format!("data: {}", json!({"candidates": [{"index": 0, "content": {"parts": [{"text": ""}]}, "finishReason": "STOP"}, {"index": 1, "content": {"parts": [{"text": ""}]}, "finishReason": "STOP"}], "usageMetadata": {"totalTokenCount": 3}})));
            let check = move |out: &[u8]| {
                let mut got = vec![String::new(); 2];
                let mut thought = String::new();
                for (_, e) in data_events(out) {
                    for cand in e["candidates"].as_array().unwrap() {
                        let c = cand["index"].as_u64().unwrap() as usize;
                        let part = &cand["content"]["parts"][0];
                        let text = part["text"].as_str().unwrap_or("");
                        if part["thought"] == true {
                            assert!(got[c].is_empty(), "a thought after the answer began");
                            thought.push_str(text);
                        } else {
                            got[c].push_str(text);
                        }
                    }
                }
                assert_eq!(got, expect);
                assert_eq!(thought, thought_r);
            };
            (sse_bytes(&events), Box::new(check))
        }
    }
}

fn frame(event_type: &str, payload: Value) -> Vec<u8> {
    Frame::json_event(event_type, payload.to_string().into_bytes()).encode()
}

fn frames_out(out: &[u8]) -> Vec<(String, Value)> {
    let mut reader = FrameReader::default();
    reader.push(out);
    let mut all = Vec::new();
    while let Some(f) = reader.next_frame().expect("valid frames with good CRCs") {
        let ty = f.header_str(":event-type").unwrap_or("").to_owned();
        all.push((ty, serde_json::from_slice(&f.payload).unwrap()));
    }
    assert!(reader.remaining().is_empty());
    all
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn every_sse_shape_restores_exactly_however_it_is_split(
        shape in 0usize..4,
        cuts in proptest::collection::vec(0usize..4000, 0..14),
        order in proptest::collection::vec(0usize..8, 0..80),
        bytewise in proptest::bool::weighted(0.15),
        eol in 0usize..3,
    ) {
        let f = fixture();
        let (bytes, check) = shape_case(shape, &f, &cuts, &order);
        let bytes = with_line_ending(bytes, eol);
        let mut r = SseRestorer::new(f.restorer.clone());
        let out = feed_chunked(&mut r, &bytes, &cuts, bytewise);
        check(&out);
        prop_assert!(!String::from_utf8_lossy(&out).contains("TOLLGATE_"));
    }

    #[test]
    fn bedrock_event_streams_restore_frame_by_frame_with_valid_crcs(
        cuts in proptest::collection::vec(0usize..4000, 0..14),
        wrapped in proptest::bool::ANY,
    ) {
        let f = fixture();
        let (text_m, text_r) = slot_text(&f, false, 0);
        let (args_m, args_r) = slot_text(&f, true, 1);
        let mut bytes = Vec::new();
        if wrapped {
            // InvokeModelWithResponseStream: Anthropic events inside base64 `bytes`.
            let chunk = |v: Value| frame("chunk", json!({"bytes": base64::engine::general_purpose::STANDARD.encode(v.to_string()), "p": "abc"}));
            for p in pieces(&text_m, &cuts) {
                bytes.extend(chunk(json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}})));
            }
            bytes.extend(chunk(json!({"type": "content_block_stop", "index": 0})));
            for p in pieces(&args_m, &cuts) {
                bytes.extend(chunk(json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": p}})));
            }
            bytes.extend(chunk(json!({"type": "content_block_stop", "index": 1})));
            bytes.extend(chunk(json!({"type": "message_stop"})));
        } else {
            for p in pieces(&text_m, &cuts) {
                bytes.extend(frame("contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"text": p}})));
            }
            bytes.extend(frame("contentBlockStop", json!({"contentBlockIndex": 0})));
            for p in pieces(&args_m, &cuts) {
                bytes.extend(frame("contentBlockDelta", json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": p}}})));
            }
            bytes.extend(frame("contentBlockStop", json!({"contentBlockIndex": 1})));
            bytes.extend(frame("messageStop", json!({"stopReason": "tool_use"})));
        }
        let mut r = EventStreamRestorer::new(f.restorer.clone());
        let out = feed_chunked(&mut r, &bytes, &cuts, false);
        let mut got = [String::new(), String::new()];
        for (ty, payload) in frames_out(&out) {
            let e = if wrapped {
                let inner = base64::engine::general_purpose::STANDARD.decode(payload["bytes"].as_str().unwrap()).unwrap();
                serde_json::from_slice::<Value>(&inner).unwrap()
            } else {
                payload
            };
            let b = e["index"].as_u64().or(e["contentBlockIndex"].as_u64()).unwrap_or(0) as usize;
            let piece = e["delta"]["text"].as_str().or(e["delta"]["partial_json"].as_str()).or(e["delta"]["toolUse"]["input"].as_str());
            if let Some(p) = piece {
                prop_assert!(ty == "chunk" || ty == "contentBlockDelta");
                got[b].push_str(p);
            }
        }
        prop_assert_eq!(&got[0], &text_r);
        prop_assert_eq!(&got[1], &args_r);
    }
}

#[test]
fn whole_json_answers_escape_by_field_not_by_first_byte() {
    let f = fixture();
    let (kp, _) = &f.values[0];
    let body = json!({"choices": [{"message": {"content": format!("{{\"k\": \"{kp}\"}}"), "tool_calls": [{"function": {"arguments": json!({"key": kp}).to_string()}}]}}]}).to_string();
    let out: Value = serde_json::from_str(&f.restorer.restore_json(&body).unwrap()).unwrap();
    // Prose that happens to start with `{` gets the value as it is, escaped once by the body.
    assert_eq!(
        out["choices"][0]["message"]["content"],
        format!("{{\"k\": \"{KEY}\"}}")
    );
    // Arguments are a JSON document: the value is escaped for its string in there.
    let args: Value = serde_json::from_str(
        out["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(args["key"], KEY);
}

/// A vault and the default masking policy, for masking what a restored answer sends back.
fn vault_and_policy() -> (Arc<Vault>, crate::mask::MaskPolicy) {
    let vault = Arc::new(Vault::new(Duration::from_secs(600), 16 << 20));
    let source = crate::source::Source::inline("masking.yaml", "{}");
    (vault, crate::mask::MaskPolicy::parse(&source).unwrap())
}

#[test]
fn a_restored_answer_sent_back_masks_to_the_bytes_the_model_wrote() {
    let (vault, policy) = vault_and_policy();
    let m = crate::mask::Masker {
        policy: &policy,
        vault: &vault,
        scope: "s",
    };
    // Turn 1: the client sends secrets; the model answers with their placeholders.
    let first = json!({"messages": [{"role": "user", "content": format!("key:\n{KEY}\ntoken {TOKEN} and postgres://u:{}@db/x", "Zq8xLm2pWq9")}]}).to_string();
    let sent = m
        .mask_body(Some("application/json"), None, Bytes::from(first))
        .unwrap()
        .body
        .unwrap();
    let sent = String::from_utf8(sent.to_vec()).unwrap();
    let content = serde_json::from_str::<Value>(&sent).unwrap()["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    let placeholders: Vec<String> = content
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| crate::mask::vault::is_placeholder_token(w))
        .map(str::to_owned)
        .collect();
    assert_eq!(placeholders.len(), 3, "{sent}");
    let model_args = json!({"command": format!("deploy --key '{}' --token {} --pw {}", placeholders[0], placeholders[1], placeholders[2])}).to_string();
    let model_thinking = format!("I will use {} here.", placeholders[1]);
    let answer = json!({"content": [
        {"type": "thinking", "thinking": model_thinking, "signature": "sig"},
        {"type": "tool_use", "id": "t", "name": "bash", "input": {"command": format!("deploy {}", placeholders[0])}},
    ], "choices": [{"message": {"tool_calls": [{"function": {"arguments": model_args}}]}}]}).to_string();
    let restorer = Restorer::new(vault.clone(), "s");
    let restored = restorer.restore_json(&answer).unwrap();
    assert!(!restored.contains("TOLLGATE_"));
    // Turn 2: the client sends the restored answer back as history; it must mask to exactly
    // what the model wrote (so signed thinking and cached prompts stay valid).
    let again = m
        .mask_body(
            Some("application/json"),
            None,
            Bytes::from(restored.clone()),
        )
        .unwrap();
    let again = String::from_utf8(again.body.unwrap().to_vec()).unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&again).unwrap(),
        serde_json::from_str::<Value>(&answer).unwrap()
    );
}

/// The same stream with another of the line endings SSE allows.
fn with_line_ending(bytes: Vec<u8>, eol: usize) -> Vec<u8> {
    let text = String::from_utf8(bytes).unwrap();
    match eol {
        1 => text.replace('\n', "\r\n").into_bytes(),
        2 => text.replace('\n', "\r").into_bytes(),
        _ => text.into_bytes(),
    }
}

#[test]
fn a_value_landing_in_a_json_document_inside_tool_arguments_is_escaped_for_it_too() {
    let f = fixture();
    let (key_ph, pw_ph) = (&f.values[0].0, &f.values[1].0);
    // The model writes a JSON config through a tool: its strings hold placeholders. Other text
    // with quotes (a script, a heredoc of a dotenv file) gets the values as they are, as the
    // file they came from had them.
    let config = format!("{{\"password\": \"{pw_ph}\", \"key\": \"{key_ph}\"}}");
    let script = format!("cat > .env <<'EOF'\nKEY=\"{key_ph}\"\nEOF\necho \"{pw_ph}\"\n");
    let args = json!({"files": [{"path": "config.json", "content": config},
        {"path": "run.sh", "content": script}]})
    .to_string();
    let restored = f.restorer.restore_json_text(&args).unwrap();
    let doc: Value = serde_json::from_str(&restored).expect("the arguments are still JSON");
    let config: Value = serde_json::from_str(doc["files"][0]["content"].as_str().unwrap())
        .expect("the config is still JSON");
    assert_eq!(config["password"], PW);
    assert_eq!(config["key"], KEY);
    let script = doc["files"][1]["content"].as_str().unwrap();
    assert_eq!(
        script,
        format!("cat > .env <<'EOF'\nKEY=\"{KEY}\"\nEOF\necho \"{PW}\"\n")
    );
    // However the arguments stream in.
    for cut in 1..args.len() {
        if !args.is_char_boundary(cut) {
            continue;
        }
        let mut slot = SlotCarry::new(Kind::Json);
        let mut out = slot.push(&f.restorer, &args[..cut]);
        out.push_str(&slot.push(&f.restorer, &args[cut..]));
        out.push_str(&slot.finish(&f.restorer));
        assert_eq!(out, restored, "cut at {cut}");
    }
}

#[test]
fn a_value_restored_into_a_document_in_an_argument_masks_back_to_what_the_model_wrote() {
    let (vault, policy) = vault_and_policy();
    let m = crate::mask::Masker {
        policy: &policy,
        vault: &vault,
        scope: "s",
    };
    let pw = "Zq8\"xL\\m2pWq9";
    let first =
        json!({"messages": [{"role": "user", "content": format!("{KEY}\nDB_PASSWORD={pw}\n")}]});
    let sent = m
        .mask_body(
            Some("application/json"),
            None,
            Bytes::from(first.to_string()),
        )
        .unwrap()
        .body
        .unwrap();
    let sent = String::from_utf8(sent.to_vec()).unwrap();
    let placeholders: Vec<&str> = sent
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| crate::mask::vault::is_placeholder_token(w))
        .collect();
    assert_eq!(placeholders.len(), 2, "{sent}");
    let config = format!(
        "{{\"key\": \"{}\", \"password\": \"{}\"}}",
        placeholders[0], placeholders[1]
    );
    let script = format!("const pw = \"{}\";\n", placeholders[1]);
    let model_args = json!({"files": [{"path": "c.json", "content": config}, {"path": "r.js", "content": script}]}).to_string();
    let restorer = Restorer::new(vault.clone(), "s");
    let restored = restorer.restore_json_text(&model_args).unwrap();
    assert!(!restored.contains("TOLLGATE_"));
    let history = |args: &str| {
        json!({"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "type": "function",
            "function": {"name": "write", "arguments": args}}]}]})
        .to_string()
    };
    let again = m
        .mask_body(
            Some("application/json"),
            None,
            Bytes::from(history(&restored)),
        )
        .unwrap();
    assert_eq!(
        String::from_utf8(again.body.unwrap().to_vec()).unwrap(),
        history(&model_args)
    );
}

#[test]
fn a_document_in_a_structured_tool_input_gets_values_escaped_for_it() {
    let f = fixture();
    let (kp, _) = &f.values[0];
    let doc = format!("{{\"password\": \"{kp}\"}}");
    for body in [
        // Anthropic tool_use and Gemini functionCall: input objects, not argument strings.
        json!({"content": [{"type": "tool_use", "name": "Write", "input": {"file_path": "c.json", "content": doc}}]}),
        json!({"candidates": [{"content": {"parts": [{"functionCall": {"name": "write", "args": {"files": [doc]}}}]}}]}),
    ] {
        let out = f.restorer.restore_json(&body.to_string()).unwrap();
        let out: Value = serde_json::from_str(&out).unwrap();
        let written = out["content"][0]["input"]["content"]
            .as_str()
            .or(
                out["candidates"][0]["content"]["parts"][0]["functionCall"]["args"]["files"][0]
                    .as_str(),
            )
            .unwrap();
        let inner: Value = serde_json::from_str(written).expect("the written file is JSON");
        assert_eq!(inner["password"], KEY);
    }
    // Prose in an answer that starts with `{` is still prose.
    let text = json!({"content": [{"type": "text", "text": doc}]}).to_string();
    let out: Value = serde_json::from_str(&f.restorer.restore_json(&text).unwrap()).unwrap();
    assert_eq!(
        out["content"][0]["text"],
        format!("{{\"password\": \"{KEY}\"}}")
    );
}
