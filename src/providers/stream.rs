//! Where each provider puts the model's output in its answers, written down once: which fields
//! of a streamed event carry text in pieces (deltas), which stream slot each piece continues
//! (a choice, a tool call, a content block, a candidate), which events end a slot, and which
//! fields hold a JSON document rather than prose (tool-call arguments). Restoring and recording
//! read answers through this, whatever the provider.
//!
//! Shapes are recognised by the event's own content, not the host, so OpenAI-compatible APIs
//! (Mistral, Groq, DeepSeek, xAI, Together, OpenRouter, Copilot, …) are read as OpenAI chat.
//!
//! | shape | delta fields (slot) | slot ends |
//! |---|---|---|
//! | OpenAI chat | `choices[].delta.content`, `.reasoning_content`, `.reasoning`, `.refusal` (choice `index`); `choices[].delta.tool_calls[].function.arguments` (choice, tool call `index`; JSON), the legacy `choices[].delta.function_call.arguments` (JSON) | `finish_reason`, `[DONE]` |
//! | OpenAI Responses | `response.output_text.delta`, `.refusal.delta`, `.reasoning_text.delta`, `.reasoning_summary_text.delta`, `.custom_tool_call_input.delta` `delta` (`output_index`, `content_index`/`summary_index`); `response.function_call_arguments.delta` `delta` (JSON) | any `….done` of that `output_index`; `response.completed`/`failed`/`incomplete` |
//! | Anthropic | `content_block_delta` `delta.text`, `delta.thinking`, `delta.partial_json` (JSON) (block `index`) | `content_block_stop`, `message_delta`, `message_stop` |
//! | Gemini | `candidates[].content.parts[].text` (candidate `index`, part) | `finishReason` |
//! | Bedrock ConverseStream | `delta.text`, `delta.reasoningContent.text`, `delta.toolUse.input` (JSON) (`contentBlockIndex`) | `contentBlockStop`, `messageStop` |
//! | Cohere v2 | `content-delta` `delta.message.content.text`, `tool-call-delta` `delta.message.tool_calls.function.arguments` (JSON) (`index`) | `content-end`, `tool-call-end`, `message-end` |
//!
//! Whole values (Responses `….done` events and `response.completed`, non-streamed bodies, final
//! message objects) are not deltas: every string in them is restored as a whole, and a field
//! named `arguments` holds a JSON document.

use serde_json::Value;

/// How a field's text is to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Prose or code the model wrote: a restored value goes in as it is.
    Text,
    /// A JSON document (tool-call arguments): a restored value landing inside one of its
    /// strings is escaped for that string.
    Json,
}

/// A field of an event that carries a piece of a longer text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delta {
    /// The field's path as [`crate::mask::json::JsonPath`] prints it (`choices[0].delta.content`).
    pub path: String,
    /// The slot it continues: deltas of one slot join into one text.
    pub slot: String,
    pub kind: Kind,
}

/// What one event means for the stream's slots.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Shape {
    pub deltas: Vec<Delta>,
    /// Prefixes of the slots this event ends (an empty prefix ends every slot).
    pub ends: Vec<String>,
}

impl Shape {
    fn end_all() -> Self {
        Self {
            deltas: Vec::new(),
            ends: vec![String::new()],
        }
    }

    fn delta(&mut self, path: String, slot: String, kind: Kind) {
        self.deltas.push(Delta { path, slot, kind });
    }

    /// Whether this event ends `slot`.
    pub fn ends(&self, slot: &str) -> bool {
        self.ends.iter().any(|p| slot.starts_with(p.as_str()))
    }
}

/// How a string of a whole value (not a delta) is read, given the object keys on its path:
/// `arguments` hold JSON documents; so does a string inside a tool call's structured input
/// (Anthropic and Bedrock `input`, Gemini `args`) when it starts one (a `config.json` a Write
/// tool is given). Prose elsewhere is prose, whatever its first byte.
pub fn whole_kind(keys: &[&str], text: &str) -> Kind {
    let (last, ancestors) = match keys.split_last() {
        Some((last, ancestors)) => (Some(*last), ancestors),
        None => (None, &[][..]),
    };
    let in_tool_input = ancestors.iter().any(|k| matches!(*k, "input" | "args"));
    let document = text.trim_start().starts_with(['{', '[']);
    match last {
        Some("arguments") => Kind::Json,
        _ if in_tool_input && document => Kind::Json,
        _ => Kind::Text,
    }
}

/// The shape of a streamed event whose data is not JSON (`[DONE]` ends everything).
pub fn describe_text(data: &str) -> Shape {
    if data.trim() == "[DONE]" {
        Shape::end_all()
    } else {
        Shape::default()
    }
}

fn index(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(Value::as_u64)
}

/// The shape of one streamed event. `event` is its SSE `event:` name or event-stream
/// `:event-type`, where the stream gives one.
pub fn describe(data: &Value, event: Option<&str>) -> Shape {
    let mut shape = Shape::default();
    let Some(obj) = data.as_object() else {
        return shape;
    };
    let ty = obj.get("type").and_then(Value::as_str).unwrap_or("");
    if let Some(choices) = obj.get("choices").and_then(Value::as_array) {
        openai_chat(choices, &mut shape);
    } else if ty.starts_with("response.") {
        openai_responses(data, ty, &mut shape);
    } else if let Some(candidates) = obj.get("candidates").and_then(Value::as_array) {
        gemini(candidates, &mut shape);
    } else if obj.contains_key("contentBlockIndex")
        || obj.contains_key("stopReason")
        || matches!(
            event,
            Some("contentBlockDelta" | "contentBlockStop" | "messageStop")
        )
    {
        bedrock_converse(data, event, &mut shape);
    } else if ty.contains('-') {
        cohere(data, ty, &mut shape);
    } else {
        anthropic(data, ty, &mut shape);
    }
    shape
}

fn openai_chat(choices: &[Value], shape: &mut Shape) {
    for (k, choice) in choices.iter().enumerate() {
        let c = index(choice, "index").unwrap_or(k as u64);
        let base = format!("choices[{k}]");
        if let Some(delta) = choice.get("delta") {
            for field in ["content", "reasoning_content", "reasoning", "refusal"] {
                if delta.get(field).is_some_and(Value::is_string) {
                    shape.delta(
                        format!("{base}.delta.{field}"),
                        format!("c{c}.{field}"),
                        Kind::Text,
                    );
                }
            }
            // The legacy single `function_call` (before `tool_calls`).
            if delta["function_call"]["arguments"].is_string() {
                shape.delta(
                    format!("{base}.delta.function_call.arguments"),
                    format!("c{c}.function_call"),
                    Kind::Json,
                );
            }
            if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
                for (m, call) in calls.iter().enumerate() {
                    let t = index(call, "index").unwrap_or(m as u64);
                    if call["function"]["arguments"].is_string() {
                        shape.delta(
                            format!("{base}.delta.tool_calls[{m}].function.arguments"),
                            format!("c{c}.t{t}"),
                            Kind::Json,
                        );
                    }
                }
            }
        }
        if choice.get("text").is_some_and(Value::is_string) {
            shape.delta(format!("{base}.text"), format!("c{c}.text"), Kind::Text);
        }
        if choice.get("finish_reason").is_some_and(|f| !f.is_null()) {
            shape.ends.push(format!("c{c}."));
        }
    }
}

fn openai_responses(data: &Value, ty: &str, shape: &mut Shape) {
    let o = index(data, "output_index").unwrap_or(0);
    let text_slot = |second: &str| {
        let n = index(data, second).unwrap_or(0);
        format!("o{o}.{}{n}", &second[..1])
    };
    match ty {
        "response.output_text.delta" | "response.refusal.delta" => {
            shape.delta("delta".into(), text_slot("content_index"), Kind::Text);
        }
        "response.reasoning_text.delta" => {
            shape.delta("delta".into(), text_slot("content_index"), Kind::Text);
        }
        "response.reasoning_summary_text.delta" => {
            shape.delta("delta".into(), text_slot("summary_index"), Kind::Text);
        }
        "response.function_call_arguments.delta" => {
            shape.delta("delta".into(), format!("o{o}.args"), Kind::Json);
        }
        "response.custom_tool_call_input.delta" => {
            shape.delta("delta".into(), format!("o{o}.input"), Kind::Text);
        }
        "response.completed" | "response.failed" | "response.incomplete" => {
            shape.ends.push(String::new());
        }
        t if t.ends_with(".done") => {
            if data.get("output_index").is_some() {
                shape.ends.push(format!("o{o}."));
            } else {
                shape.ends.push(String::new());
            }
        }
        _ => {}
    }
}

fn anthropic(data: &Value, ty: &str, shape: &mut Shape) {
    let b = index(data, "index").unwrap_or(0);
    match ty {
        "content_block_delta" => {
            let delta = &data["delta"];
            for (field, kind) in [
                ("text", Kind::Text),
                ("thinking", Kind::Text),
                ("partial_json", Kind::Json),
            ] {
                if delta.get(field).is_some_and(Value::is_string) {
                    shape.delta(format!("delta.{field}"), format!("b{b}"), kind);
                }
            }
        }
        "content_block_stop" => shape.ends.push(format!("b{b}")),
        "message_delta" | "message_stop" | "error" => shape.ends.push(String::new()),
        _ => {}
    }
}

fn gemini(candidates: &[Value], shape: &mut Shape) {
    for (k, cand) in candidates.iter().enumerate() {
        let c = index(cand, "index").unwrap_or(k as u64);
        if let Some(parts) = cand["content"]["parts"].as_array() {
            for (j, part) in parts.iter().enumerate() {
                if part.get("text").is_some_and(Value::is_string) {
                    // Thoughts and the answer are separate texts, even at the same position;
                    // the answer starting ends the thoughts.
                    let thought = part.get("thought").and_then(Value::as_bool) == Some(true);
                    let slot = if thought {
                        format!("g{c}.t{j}")
                    } else {
                        shape.ends.push(format!("g{c}.t"));
                        format!("g{c}.p{j}")
                    };
                    shape.delta(
                        format!("candidates[{k}].content.parts[{j}].text"),
                        slot,
                        Kind::Text,
                    );
                }
            }
        }
        if cand.get("finishReason").is_some_and(|f| !f.is_null()) {
            shape.ends.push(format!("g{c}."));
        }
    }
}

fn bedrock_converse(data: &Value, event: Option<&str>, shape: &mut Shape) {
    let b = index(data, "contentBlockIndex").unwrap_or(0);
    let delta = &data["delta"];
    if delta.is_object() {
        for (path, kind) in [
            ("delta.text", Kind::Text),
            ("delta.reasoningContent.text", Kind::Text),
            ("delta.toolUse.input", Kind::Json),
        ] {
            let field = path.split('.').skip(1).fold(delta, |v, k| &v[k]);
            if field.is_string() {
                shape.delta(path.into(), format!("b{b}"), kind);
            }
        }
    } else if event == Some("contentBlockStop") || data.get("contentBlockIndex").is_some() {
        shape.ends.push(format!("b{b}"));
    }
    if event == Some("messageStop") || data.get("stopReason").is_some() {
        shape.ends.push(String::new());
    }
}

fn cohere(data: &Value, ty: &str, shape: &mut Shape) {
    let i = index(data, "index").unwrap_or(0);
    match ty {
        "content-delta" if data["delta"]["message"]["content"]["text"].is_string() => {
            shape.delta(
                "delta.message.content.text".into(),
                format!("k{i}"),
                Kind::Text,
            );
        }
        "tool-call-delta"
            if data["delta"]["message"]["tool_calls"]["function"]["arguments"].is_string() =>
        {
            shape.delta(
                "delta.message.tool_calls.function.arguments".into(),
                format!("k{i}"),
                Kind::Json,
            );
        }
        "content-end" | "tool-call-end" => shape.ends.push(format!("k{i}")),
        "message-end" => shape.ends.push(String::new()),
        _ => {}
    }
}

/// The text pieces of one event, in order, as (slot, kind, text): what the model said.
pub fn pieces<'v>(data: &'v Value, event: Option<&str>) -> Vec<(String, Kind, &'v str)> {
    describe(data, event)
        .deltas
        .into_iter()
        .filter_map(|d| {
            let value = lookup(data, &d.path)?.as_str()?;
            Some((d.slot, d.kind, value))
        })
        .collect()
}

/// The value at a path written as [`Delta::path`] is.
fn lookup<'v>(data: &'v Value, path: &str) -> Option<&'v Value> {
    let mut v = data;
    for part in path.split('.') {
        let (key, indexes) = match part.find('[') {
            Some(at) => (&part[..at], &part[at..]),
            None => (part, ""),
        };
        v = v.get(key)?;
        for ix in indexes.split(']').filter(|s| !s.is_empty()) {
            v = v.get(ix.trim_start_matches('[').parse::<usize>().ok()?)?;
        }
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_shape_names_its_deltas_slots_and_ends() {
        let chat = json!({"choices": [{"index": 1, "delta": {"content": "a", "tool_calls": [{"index": 2, "function": {"arguments": "{"}}]}, "finish_reason": null}]});
        let s = describe(&chat, None);
        assert_eq!(s.deltas.len(), 2);
        assert_eq!(s.deltas[0].slot, "c1.content");
        assert_eq!(
            s.deltas[1].path,
            "choices[0].delta.tool_calls[0].function.arguments"
        );
        assert_eq!(
            (s.deltas[1].slot.as_str(), s.deltas[1].kind),
            ("c1.t2", Kind::Json)
        );
        let legacy =
            json!({"choices": [{"index": 0, "delta": {"function_call": {"arguments": "{\"a"}}}]});
        let s = describe(&legacy, None);
        assert_eq!(
            (
                s.deltas[0].path.as_str(),
                s.deltas[0].slot.as_str(),
                s.deltas[0].kind
            ),
            (
                "choices[0].delta.function_call.arguments",
                "c0.function_call",
                Kind::Json
            )
        );
        let done = json!({"choices": [{"index": 1, "delta": {}, "finish_reason": "stop"}]});
        assert!(describe(&done, None).ends("c1.t2") && !describe(&done, None).ends("c0.content"));

        let resp = json!({"type": "response.function_call_arguments.delta", "output_index": 3, "delta": "{\"a\""});
        let s = describe(&resp, None);
        assert_eq!(
            (s.deltas[0].slot.as_str(), s.deltas[0].kind),
            ("o3.args", Kind::Json)
        );
        let text_done = json!({"type": "response.output_text.done", "output_index": 3, "content_index": 0, "text": "x"});
        let s = describe(&text_done, None);
        assert!(s.deltas.is_empty() && s.ends("o3.c0") && !s.ends("o4.c0"));

        let anth = json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{"}});
        assert_eq!(
            pieces(&anth, None),
            vec![("b2".to_owned(), Kind::Json, "{")]
        );
        assert!(describe(&json!({"type": "ping"}), None) == Shape::default());

        let gem = json!({"candidates": [{"content": {"parts": [{"text": "hi"}]}, "index": 0}]});
        assert_eq!(
            pieces(&gem, None),
            vec![("g0.p0".to_owned(), Kind::Text, "hi")]
        );

        let bed = json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{\"k\":"}}});
        assert_eq!(
            pieces(&bed, Some("contentBlockDelta")),
            vec![("b1".to_owned(), Kind::Json, "{\"k\":")]
        );
        assert!(describe(&json!({"contentBlockIndex": 1}), Some("contentBlockStop")).ends("b1"));
        assert!(describe_text("[DONE]").ends("anything"));
    }
}
