//! Putting values back: placeholders in responses are replaced by what they stand for before
//! the client sees them, in JSON bodies and in SSE streams as they flow.
//!
//! A stream may split a placeholder anywhere: across SSE events, TCP chunks or UTF-8 characters.
//! The restorer holds back only the bytes that could still become a placeholder; everything else
//! goes on at once.

use super::json::{Segment, rewrite_strings};
use super::vault::{MAX_LEN, PREFIX, Vault, is_placeholder_byte};
use std::collections::HashMap;
use std::sync::Arc;

/// Restores the placeholders of one scope.
#[derive(Clone)]
pub struct Restorer {
    vault: Arc<Vault>,
    scope: Arc<str>,
}

impl Restorer {
    pub fn new(vault: Arc<Vault>, scope: &str) -> Self {
        Self {
            vault,
            scope: scope.into(),
        }
    }

    /// Whether anything of this scope could need restoring.
    pub fn is_active(&self) -> bool {
        self.vault.has_scope(&self.scope)
    }

    /// `text` with every known placeholder replaced; `None` when nothing changed.
    pub fn restore_text(&self, text: &str) -> Option<String> {
        self.restore_with(text, |value, out| out.push_str(value))
    }

    /// As `restore_text`, escaping each value for the inside of a JSON string literal: for
    /// strings that carry JSON text (tool-call arguments, `partial_json`).
    fn restore_json_fragment(&self, text: &str) -> Option<String> {
        self.restore_with(text, |value, out| {
            let quoted = serde_json::to_string(value).expect("strings serialize");
            out.push_str(&quoted[1..quoted.len() - 1]);
        })
    }

    fn restore_with(&self, text: &str, put: impl Fn(&str, &mut String)) -> Option<String> {
        let mut out: Option<String> = None;
        let mut copied = 0;
        let mut search = 0;
        while let Some(found) = PREFIX_FINDER.find(&text.as_bytes()[search..]) {
            let start = search + found;
            let run_end = start
                + PREFIX.len()
                + text.as_bytes()[start + PREFIX.len()..]
                    .iter()
                    .take_while(|&&b| is_placeholder_byte(b))
                    .count();
            search = start + PREFIX.len();
            // The longest known placeholder the run begins with.
            let hit = (start + PREFIX.len() + 1..=run_end.min(start + MAX_LEN))
                .rev()
                .find_map(|end| {
                    self.vault
                        .restore(&self.scope, &text[start..end])
                        .map(|v| (end, v))
                });
            if let Some((end, value)) = hit {
                let buf = out.get_or_insert_with(|| String::with_capacity(text.len() + 64));
                buf.push_str(&text[copied..start]);
                put(value.expose(), buf);
                copied = end;
                search = end;
            }
        }
        out.map(|mut buf| {
            buf.push_str(&text[copied..]);
            buf
        })
    }

    /// Restores every string of a JSON document. A string that is itself a JSON document (OpenAI
    /// tool-call `arguments`) is restored inside, so values are escaped for where they land.
    pub fn restore_json(&self, doc: &str) -> Option<String> {
        match rewrite_strings::<()>(doc, |s| Ok(self.restore_string(s.text))) {
            Ok(Ok(result)) => result,
            _ => self.restore_text(doc),
        }
    }

    fn restore_string(&self, text: &str) -> Option<String> {
        // Most strings hold no placeholder at all.
        PREFIX_FINDER.find(text.as_bytes())?;
        let trimmed = text.trim_start();
        if trimmed.starts_with('{') || trimmed.starts_with('[') {
            if let Ok(Ok(inner)) = rewrite_strings::<()>(text, |s| Ok(self.restore_text(s.text))) {
                return inner;
            }
            // Not a whole document (a streamed fragment): escape as JSON inside a string.
            return self.restore_json_fragment(text);
        }
        self.restore_text(text)
    }
}

/// How many trailing bytes of `text` could be the beginning of a placeholder, and so must wait
/// for what comes next.
pub fn pending_len(text: &str) -> usize {
    let bytes = text.as_bytes();
    // A run `TOLLGATE_[A-Z0-9_]*` reaching the end.
    if let Some(pos) = text.rfind(PREFIX)
        && bytes[pos + PREFIX.len()..]
            .iter()
            .all(|&b| is_placeholder_byte(b))
        && bytes.len() - pos < MAX_LEN
    {
        return bytes.len() - pos;
    }
    // A proper prefix of `TOLLGATE_` at the end.
    let prefix = PREFIX.as_bytes();
    (1..prefix.len())
        .rev()
        .find(|&n| n <= bytes.len() && bytes[bytes.len() - n..] == prefix[..n])
        .unwrap_or(0)
}

/// Restores a stream of text deltas for one slot (one content block, one tool call's
/// arguments), holding back a possible placeholder start until the next delta decides it.
#[derive(Default)]
pub struct SlotCarry {
    held: String,
}

impl SlotCarry {
    /// Takes the next delta; returns what may be emitted now.
    pub fn push(&mut self, restorer: &Restorer, delta: &str, json_fragment: bool) -> String {
        let mut text = std::mem::take(&mut self.held);
        text.push_str(delta);
        let keep = pending_len(&text);
        self.held = text[text.len() - keep..].to_owned();
        text.truncate(text.len() - keep);
        let restored = if json_fragment {
            restorer.restore_json_fragment(&text)
        } else {
            restorer.restore_text(&text)
        };
        restored.unwrap_or(text)
    }

    /// The end of the slot: whatever was held, restored if it is a whole placeholder.
    pub fn finish(&mut self, restorer: &Restorer, json_fragment: bool) -> String {
        let text = std::mem::take(&mut self.held);
        let restored = if json_fragment {
            restorer.restore_json_fragment(&text)
        } else {
            restorer.restore_text(&text)
        };
        restored.unwrap_or(text)
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

/// Restores an SSE stream event by event. Each `data:` payload that is JSON has its strings
/// restored; a string that ends in a possible placeholder start is shortened and the rest carried
/// into the next event of the same slot (its path plus the event's `index` fields). Held text
/// whose slot does not continue is sent as a copy of the slot's last event carrying just that
/// text, before the event that ended the slot.
pub struct SseRestorer {
    restorer: Restorer,
    /// Bytes of an event not yet complete.
    buf: Vec<u8>,
    slots: HashMap<String, Slot>,
}

struct Slot {
    carry: SlotCarry,
    /// The last event that carried this slot, to copy for a flush: (event lines before data,
    /// data JSON, path).
    template: (String, String, Vec<Segment<'static>>),
    /// The stream's line ending.
    eol: &'static str,
    json_fragment: bool,
}

impl SseRestorer {
    pub fn new(restorer: Restorer) -> Self {
        Self {
            restorer,
            buf: Vec::new(),
            slots: HashMap::new(),
        }
    }

    /// Feeds bytes from upstream; returns the bytes to send to the client now.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(chunk.len() + 64);
        if self.buf.is_empty() {
            // Work on the chunk itself; keep only an unfinished event.
            let at = self.events(chunk, &mut out);
            self.buf.extend_from_slice(&chunk[at..]);
        } else {
            let mut buf = std::mem::take(&mut self.buf);
            buf.extend_from_slice(chunk);
            let at = self.events(&buf, &mut out);
            buf.drain(..at);
            self.buf = buf;
        }
        out
    }

    /// Processes the complete events at the start of `bytes`; returns where the rest begins.
    fn events(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> usize {
        let mut at = 0;
        while let Some((end, sep)) = find_event_end(&bytes[at..]) {
            let (event, separator) = (&bytes[at..at + end], &bytes[at + end..at + end + sep]);
            if self.slots.is_empty() && !may_hold_placeholder(event) {
                // The common case: nothing held, nothing to restore.
                out.extend_from_slice(event);
                out.extend_from_slice(separator);
            } else {
                self.process_event(event, separator, out);
            }
            at += end + sep;
        }
        at
    }

    /// The upstream ended: flush what is left.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let rest = std::mem::take(&mut self.buf);
        self.flush_all(&mut out);
        if !rest.is_empty() {
            match std::str::from_utf8(&rest) {
                Ok(text) => out.extend_from_slice(
                    self.restorer
                        .restore_text(text)
                        .unwrap_or_else(|| text.to_owned())
                        .as_bytes(),
                ),
                Err(_) => out.extend_from_slice(&rest),
            }
        }
        out
    }

    fn process_event(&mut self, event: &[u8], separator: &[u8], out: &mut Vec<u8>) {
        let Ok(text) = std::str::from_utf8(event) else {
            // SSE is UTF-8; anything else passes as it came.
            self.flush_all(out);
            out.extend_from_slice(event);
            out.extend_from_slice(separator);
            return;
        };
        let mut head = String::new();
        let mut data = String::new();
        let mut has_data = false;
        for line in text.split_inclusive('\n') {
            let bare = line.trim_end_matches(['\n', '\r']);
            if let Some(value) = bare.strip_prefix("data:") {
                let value = value.strip_prefix(' ').unwrap_or(value);
                if has_data {
                    data.push('\n');
                }
                data.push_str(value);
                has_data = true;
            } else if !has_data {
                head.push_str(line);
            }
        }
        let is_ping = text.contains("event: ping")
            || data.contains(r#""type":"ping""#)
            || data.contains(r#""type": "ping""#);
        let trimmed = data.trim_start();
        let is_json = has_data && (trimmed.starts_with('{') || trimmed.starts_with('['));
        if !is_json {
            if !is_ping {
                self.flush_all(out);
            }
            match self.restorer.restore_text(text) {
                Some(restored) => out.extend_from_slice(restored.as_bytes()),
                None => out.extend_from_slice(event),
            }
            out.extend_from_slice(separator);
            return;
        }
        let index_key = index_key(&data);
        let mut touched: Vec<String> = Vec::new();
        let restorer = self.restorer.clone();
        let slots = &mut self.slots;
        let rewritten = rewrite_strings::<()>(&data, |s| {
            if s.is_key {
                return Ok(None);
            }
            let key = format!("{}|{index_key}", s.path);
            let json_fragment = looks_like_json_fragment(&s.path.0, s.text);
            let slot_exists = slots.contains_key(&key);
            if !is_delta_field(&s.path.0) || (!slot_exists && pending_len(s.text) == 0) {
                // The common case: no carry, nothing held; restore whole placeholders only.
                return Ok(if PREFIX_FINDER.find(s.text.as_bytes()).is_some() {
                    if json_fragment {
                        restorer.restore_json_fragment(s.text)
                    } else {
                        restorer.restore_text(s.text)
                    }
                } else {
                    None
                });
            }
            touched.push(key.clone());
            if !slot_exists {
                slots.insert(
                    key.clone(),
                    Slot {
                        carry: SlotCarry::default(),
                        template: (String::new(), String::new(), owned_path(&s.path.0)),
                        eol: "\n",
                        json_fragment,
                    },
                );
            }
            let slot = slots.get_mut(&key).expect("inserted above");
            let emitted = slot.carry.push(&restorer, s.text, slot.json_fragment);
            Ok((emitted != s.text).then_some(emitted))
        });
        let data_out = match rewritten {
            Ok(Ok(Some(d))) => Some(d),
            _ => None,
        };
        // Slots this event did not continue end here, unless it is only a keep-alive.
        if !is_ping {
            let ended: Vec<String> = self
                .slots
                .keys()
                .filter(|k| !touched.contains(k))
                .cloned()
                .collect();
            for key in ended {
                self.flush_slot(&key, out);
            }
        }
        for key in &touched {
            if let Some(slot) = self.slots.get_mut(key) {
                slot.template.0 = head.clone();
                slot.eol = line_ending(text);
                slot.template.1 = data.clone();
                if slot.carry.is_empty() {
                    self.slots.remove(key);
                }
            }
        }
        match data_out {
            None => out.extend_from_slice(event),
            Some(data_out) => {
                let mut written = false;
                for line in text.split_inclusive('\n') {
                    if line.starts_with("data:") {
                        if !written {
                            write_data(&data_out, line_ending(text), out);
                            written = true;
                        }
                    } else {
                        out.extend_from_slice(line.as_bytes());
                    }
                }
            }
        }
        out.extend_from_slice(separator);
    }

    fn flush_all(&mut self, out: &mut Vec<u8>) {
        let keys: Vec<String> = self.slots.keys().cloned().collect();
        for key in keys {
            self.flush_slot(&key, out);
        }
    }

    /// Sends a slot's held text as a copy of its last event.
    fn flush_slot(&mut self, key: &str, out: &mut Vec<u8>) {
        let Some(mut slot) = self.slots.remove(key) else {
            return;
        };
        let text = slot.carry.finish(&self.restorer, slot.json_fragment);
        if text.is_empty() {
            return;
        }
        let (head, data, path) = slot.template;
        let copy = rewrite_strings::<()>(&data, |s| {
            Ok((!s.is_key && s.path.0 == path).then(|| text.clone()))
        });
        let data = match copy {
            Ok(Ok(Some(d))) => strip_terminal_fields(&d),
            _ => return,
        };
        let eol = slot.eol;
        out.extend_from_slice(head.as_bytes());
        write_data(&data, eol, out);
        out.extend_from_slice(eol.as_bytes());
    }
}

/// Clears fields that would make a copied event end the stream, or count usage, a second time.
fn strip_terminal_fields(data: &str) -> String {
    let Ok(mut value) = serde_json::from_str::<serde_json::Value>(data) else {
        return data.to_owned();
    };
    fn walk(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                for key in ["finish_reason", "finishReason", "stop_reason"] {
                    if let Some(field) = map.get_mut(key) {
                        *field = serde_json::Value::Null;
                    }
                }
                map.remove("usage");
                map.remove("usageMetadata");
                for child in map.values_mut() {
                    walk(child);
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut value);
    serde_json::to_string(&value).unwrap_or_else(|_| data.to_owned())
}

/// Writes `data` as `data:` lines ending in `eol`, the line ending the stream uses.
fn write_data(data: &str, eol: &str, out: &mut Vec<u8>) {
    for line in data.split('\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(eol.as_bytes());
    }
}

fn line_ending(event: &str) -> &'static str {
    if event.contains("\r\n") { "\r\n" } else { "\n" }
}

/// The event's position markers (`index`, `output_index`, `content_index`, `item_id`), which
/// tell apart slots whose paths are the same (OpenAI tool calls, Anthropic content blocks).
fn index_key(data: &str) -> String {
    let mut key = String::new();
    for marker in [
        "\"index\":",
        "\"output_index\":",
        "\"content_index\":",
        "\"item_id\":",
    ] {
        let mut from = 0;
        while let Some(at) = data[from..].find(marker) {
            let start = from + at + marker.len();
            let value: String = data[start..]
                .trim_start()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '"' || *c == '-')
                .collect();
            key.push_str(&value);
            key.push(',');
            from = start;
        }
    }
    key
}

fn owned_path(path: &[Segment<'_>]) -> Vec<Segment<'static>> {
    path.iter().cloned().map(Segment::into_owned).collect()
}

/// Fields that carry a stream's text in pieces, where a placeholder may be split.
fn is_delta_field(path: &[Segment<'_>]) -> bool {
    matches!(
        path.last(),
        Some(Segment::Key(k)) if matches!(
            k.as_ref(),
            "content" | "text" | "arguments" | "partial_json" | "thinking" | "delta" | "refusal"
        )
    )
}

/// Strings that carry JSON text in pieces: OpenAI's tool-call `arguments`, Anthropic's
/// `partial_json`, the Responses API's argument deltas.
fn looks_like_json_fragment(path: &[Segment<'_>], text: &str) -> bool {
    match path.last() {
        Some(Segment::Key(k)) => {
            k == "arguments"
                || k == "partial_json"
                || (k == "delta" && text.trim_start().starts_with('{'))
        }
        _ => false,
    }
}

/// End of the first complete event in `buf`: (index of the separator, its length).
fn find_event_end(buf: &[u8]) -> Option<(usize, usize)> {
    for i in memchr::memchr_iter(b'\n', buf) {
        match (buf.get(i + 1), buf.get(i + 2)) {
            (Some(b'\n'), _) => return Some((i + 1, 1)),
            (Some(b'\r'), Some(b'\n')) => return Some((i + 1, 2)),
            _ => {}
        }
    }
    None
}

static PREFIX_FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(PREFIX.as_bytes()));

/// Whether an event holds a placeholder, or a string that ends in what could begin one.
fn may_hold_placeholder(event: &[u8]) -> bool {
    let prefix = PREFIX.as_bytes();
    PREFIX_FINDER.find(event).is_some()
        || event.windows(2).enumerate().any(|(i, pair)| {
            // A string ends right after a letter that ends some proper prefix of `TOLLGATE_`.
            let q = i + 1;
            pair[1] == b'"'
                && matches!(pair[0], b'T' | b'O' | b'L' | b'G' | b'A' | b'E')
                && (1..prefix.len()).any(|n| q >= n && event[q - n..q] == prefix[..n])
        })
}
