//! Putting values back: placeholders in responses are replaced by what they stand for before
//! the client sees them, in JSON bodies, SSE streams and AWS event streams as they flow.
//!
//! How a value is written back is decided by where its placeholder lands, never guessed from
//! the text: in prose it goes in as it is; inside a string of a JSON document the model writes
//! (tool-call arguments, whole or streamed in pieces) it is escaped for that string; and the
//! JSON of the answer itself escapes it once more. Which fields are prose, which are JSON and
//! which are pieces of a longer text is the providers' wire knowledge ([`crate::providers::stream`]).
//!
//! A stream may split a placeholder anywhere: across events, TCP chunks or UTF-8 characters.
//! Each stream slot (a choice, a tool call, a content block, a candidate) holds back only the
//! bytes that could still become a placeholder; everything else goes on at once, and the slots
//! of an interleaved stream never flush each other. Held text whose slot ends without the
//! placeholder completing is sent as a copy of the slot's last event, before the event that
//! ended the slot.

use super::json::{Segment, StringRef, rewrite_strings};
use super::vault::{MAX_LEN, PREFIX, Vault, is_placeholder_byte};
use crate::providers::eventstream::{self, FrameReader};
use crate::providers::sse;
use crate::providers::stream::{self, Kind, Shape};
use base64::Engine as _;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Restores the placeholders of one scope.
#[derive(Clone)]
pub struct Restorer {
    vault: Arc<Vault>,
    scope: Arc<str>,
}

/// Where a JSON document being read piece by piece stands: inside a string or not; and when
/// that string holds a JSON document itself (a config a tool writes: `"content": "{\"password\":
/// \"…\"}"`), whether it is inside one of that document's strings.
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonLex {
    in_string: bool,
    escaped: bool,
    /// Whether the string's text starts a JSON document; `None` until its first byte that is
    /// not white space.
    holds_document: Option<bool>,
    quoted_inside: bool,
}

impl JsonLex {
    fn advance(&mut self, bytes: &[u8]) {
        for &c in bytes {
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                    if self.holds_document.is_none() && !matches!(c, b'n' | b'r' | b't') {
                        self.holds_document = Some(false);
                    }
                    if c == b'"' && self.holds_document == Some(true) {
                        self.quoted_inside = !self.quoted_inside;
                    }
                } else if c == b'\\' {
                    self.escaped = true;
                } else if c == b'"' {
                    self.in_string = false;
                    self.holds_document = None;
                    self.quoted_inside = false;
                } else if self.holds_document.is_none() && c != b' ' {
                    self.holds_document = Some(matches!(c, b'{' | b'['));
                }
            } else if c == b'"' {
                self.in_string = true;
            }
        }
    }
}

fn json_escaped(value: &str) -> String {
    let quoted = serde_json::to_string(value).unwrap_or_default();
    quoted
        .get(1..quoted.len().saturating_sub(1))
        .unwrap_or("")
        .to_owned()
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

    /// Prose: every known placeholder replaced by its value as it is; `None` when nothing changed.
    pub fn restore_text(&self, text: &str) -> Option<String> {
        self.restore_in(text, Kind::Text, &mut JsonLex::default())
    }

    /// A JSON document the model wrote (whole or not): values landing inside its strings are
    /// escaped for them.
    pub fn restore_json_text(&self, text: &str) -> Option<String> {
        self.restore_in(text, Kind::Json, &mut JsonLex::default())
    }

    /// Restores `text` read as `kind`, continuing from `lex` (the state a JSON document is in
    /// where `text` begins), which is left where `text` ends.
    fn restore_in(&self, text: &str, kind: Kind, lex: &mut JsonLex) -> Option<String> {
        let bytes = text.as_bytes();
        let mut out: Option<String> = None;
        let mut copied = 0;
        let mut lexed = 0;
        let mut search = 0;
        while let Some(found) = PREFIX_FINDER.find(&bytes[search..]) {
            let start = search + found;
            let run_end = start
                + PREFIX.len()
                + bytes[start + PREFIX.len()..]
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
                let escape = kind == Kind::Json && {
                    lex.advance(&bytes[lexed..start]);
                    lexed = start;
                    lex.in_string
                };
                if escape && lex.quoted_inside {
                    // Inside a string of the JSON document the string holds: escaped for that
                    // document, then for the string.
                    buf.push_str(&json_escaped(&json_escaped(value.expose())));
                } else if escape {
                    buf.push_str(&json_escaped(value.expose()));
                } else {
                    buf.push_str(value.expose());
                }
                copied = end;
                search = end;
            }
        }
        if kind == Kind::Json {
            lex.advance(&bytes[lexed..]);
        }
        out.map(|mut buf| {
            buf.push_str(&text[copied..]);
            buf
        })
    }

    /// Restores every string of a whole JSON answer: prose as it is, `arguments` as the JSON
    /// documents they are. A body that is not JSON is restored as prose.
    pub fn restore_json(&self, doc: &str) -> Option<String> {
        match rewrite_strings::<()>(doc, |s| Ok(self.restore_whole(&s))) {
            Ok(Ok(result)) => result,
            _ => self.restore_text(doc),
        }
    }

    fn restore_whole(&self, s: &StringRef<'_>) -> Option<String> {
        // Most strings hold no placeholder at all.
        PREFIX_FINDER.find(s.text.as_bytes())?;
        if s.is_key {
            return self.restore_in(s.text, Kind::Text, &mut JsonLex::default());
        }
        self.restore_in(s.text, whole_kind(s), &mut JsonLex::default())
    }
}

/// How a whole string value is read, from the object keys on its path.
fn whole_kind(s: &StringRef<'_>) -> Kind {
    let keys: Vec<&str> = s
        .path
        .0
        .iter()
        .filter_map(|seg| match seg {
            Segment::Key(k) => Some(k.as_ref()),
            Segment::Index(_) => None,
        })
        .collect();
    stream::whole_kind(&keys, s.text)
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

/// Restores a stream of text pieces for one slot, holding back a possible placeholder start
/// until the next piece decides it. For a JSON slot it follows the document's strings.
pub struct SlotCarry {
    held: String,
    kind: Kind,
    lex: JsonLex,
}

impl SlotCarry {
    pub fn new(kind: Kind) -> Self {
        Self {
            held: String::new(),
            kind,
            lex: JsonLex::default(),
        }
    }

    /// Takes the next piece; returns what may be emitted now.
    pub fn push(&mut self, restorer: &Restorer, delta: &str) -> String {
        let mut text = std::mem::take(&mut self.held);
        text.push_str(delta);
        let keep = pending_len(&text);
        self.held = text[text.len() - keep..].to_owned();
        text.truncate(text.len() - keep);
        restorer
            .restore_in(&text, self.kind, &mut self.lex)
            .unwrap_or(text)
    }

    /// The end of the slot: whatever was held, restored if it is a whole placeholder.
    pub fn finish(&mut self, restorer: &Restorer) -> String {
        let text = std::mem::take(&mut self.held);
        restorer
            .restore_in(&text, self.kind, &mut self.lex)
            .unwrap_or(text)
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

/// A slot holding text, and the event to copy should it need to flush on its own.
struct Slot {
    carry: SlotCarry,
    /// The envelope of the slot's last event (SSE lines before `data:`, or a whole frame).
    envelope: Vec<u8>,
    /// That event's data, and the path of the slot's field in it.
    data: String,
    path: String,
}

/// An event to send before the current one: (envelope, data).
type Flush = (Vec<u8>, String);

/// The slots of one stream, whatever its envelope: event data in, restored data out.
struct Slots {
    restorer: Restorer,
    /// Ordered, so flushes at the end come out in a stable order.
    slots: BTreeMap<String, Slot>,
}

impl Slots {
    fn new(restorer: Restorer) -> Self {
        Self {
            restorer,
            slots: BTreeMap::new(),
        }
    }

    /// Whether an event's data could need any work: a slot holds text, the data holds a
    /// placeholder or a string ending in what could begin one, or it carries a piece of a JSON
    /// document (whose strings must be followed to know how a later value lands).
    fn needs_work(&self, data: &[u8]) -> bool {
        self.slots.values().any(|s| !s.carry.is_empty())
            || NEEDS_WORK.iter().any(|f| f.find(data).is_some())
            || ends_in_prefix(data)
    }

    /// One event: returns the flushes to send before it and its new data (`None`: unchanged).
    fn event(
        &mut self,
        data: &str,
        name: Option<&str>,
        envelope: &[u8],
    ) -> (Vec<Flush>, Option<String>) {
        let Ok(value) = serde_json::from_str::<Value>(data) else {
            let shape = stream::describe_text(data);
            let flushes = self.flush_ended(&shape, &[]);
            return (flushes, self.restorer.restore_text(data));
        };
        let shape = stream::describe(&value, name);
        let mut touched: Vec<String> = Vec::new();
        let restorer = self.restorer.clone();
        let slots = &mut self.slots;
        let rewritten = rewrite_strings::<()>(data, |s| {
            if s.is_key {
                return Ok(None);
            }
            let path = s.path.to_string();
            let Some(delta) = shape.deltas.iter().find(|d| d.path == path) else {
                // A whole value: restored as a whole, never through a holder.
                if PREFIX_FINDER.find(s.text.as_bytes()).is_none() {
                    return Ok(None);
                }
                return Ok(restorer.restore_in(s.text, whole_kind(&s), &mut JsonLex::default()));
            };
            let slot = slots.entry(delta.slot.clone()).or_insert_with(|| Slot {
                carry: SlotCarry::new(delta.kind),
                envelope: Vec::new(),
                data: String::new(),
                path: String::new(),
            });
            let mut emitted = slot.carry.push(&restorer, s.text);
            if shape.ends(&delta.slot) {
                emitted.push_str(&slot.carry.finish(&restorer));
            }
            touched.push(delta.slot.clone());
            Ok((emitted != s.text).then_some(emitted))
        });
        let data_out = match rewritten {
            Ok(Ok(d)) => d,
            _ => None,
        };
        let flushes = self.flush_ended(&shape, &touched);
        for key in &touched {
            let path = shape
                .deltas
                .iter()
                .find(|d| &d.slot == key)
                .map(|d| d.path.clone())
                .unwrap_or_default();
            let ended = shape.ends(key);
            let remove = match self.slots.get_mut(key) {
                // A JSON slot lives until it ends: it follows its document's strings.
                Some(slot)
                    if !ended && (!slot.carry.is_empty() || slot.carry.kind == Kind::Json) =>
                {
                    slot.envelope = envelope.to_vec();
                    slot.data = data.to_owned();
                    slot.path = path;
                    false
                }
                _ => true,
            };
            if remove {
                self.slots.remove(key);
            }
        }
        (flushes, data_out)
    }

    /// Flushes the slots `shape` ends that this event did not itself continue.
    fn flush_ended(&mut self, shape: &Shape, touched: &[String]) -> Vec<Flush> {
        let ended: Vec<String> = self
            .slots
            .keys()
            .filter(|k| shape.ends(k) && !touched.contains(k))
            .cloned()
            .collect();
        ended.iter().filter_map(|k| self.flush(k)).collect()
    }

    /// Every slot still holding text: the stream ended.
    fn finish(&mut self) -> Vec<Flush> {
        let keys: Vec<String> = self.slots.keys().cloned().collect();
        keys.iter().filter_map(|k| self.flush(k)).collect()
    }

    /// A copy of the slot's last event carrying just its held text.
    fn flush(&mut self, key: &str) -> Option<Flush> {
        let mut slot = self.slots.remove(key)?;
        let text = slot.carry.finish(&self.restorer);
        if text.is_empty() {
            return None;
        }
        let path = slot.path;
        let copy = rewrite_strings::<()>(&slot.data, |s| {
            Ok((!s.is_key && s.path.to_string() == path).then(|| text.clone()))
        });
        match copy {
            Ok(Ok(Some(d))) => Some((slot.envelope, strip_terminal_fields(&d))),
            _ => None,
        }
    }
}

/// Clears fields that would make a copied event end the stream, or count usage, a second time.
fn strip_terminal_fields(data: &str) -> String {
    let Ok(mut value) = serde_json::from_str::<Value>(data) else {
        return data.to_owned();
    };
    fn walk(v: &mut Value) {
        match v {
            Value::Object(map) => {
                for key in ["finish_reason", "finishReason", "stop_reason"] {
                    if let Some(field) = map.get_mut(key) {
                        *field = Value::Null;
                    }
                }
                map.remove("usage");
                map.remove("usageMetadata");
                // Fields a client accumulates or checks for order would come out doubled.
                map.remove("role");
                map.remove("sequence_number");
                for child in map.values_mut() {
                    walk(child);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut value);
    serde_json::to_string(&value).unwrap_or_else(|_| data.to_owned())
}

/// A response body restored as it streams: bytes in, bytes out.
pub trait StreamRestore: Send + Sync {
    /// Feeds bytes from upstream; returns the bytes to send to the client now.
    fn feed(&mut self, chunk: &[u8]) -> Vec<u8>;
    /// The upstream ended: what is left.
    fn finish(&mut self) -> Vec<u8>;
}

/// Restores an SSE stream event by event (see the module's documentation).
pub struct SseRestorer {
    slots: Slots,
    /// Bytes of an event not yet complete.
    buf: Vec<u8>,
}

impl SseRestorer {
    pub fn new(restorer: Restorer) -> Self {
        Self {
            slots: Slots::new(restorer),
            buf: Vec::new(),
        }
    }

    /// Processes the complete events at the start of `bytes`; returns where the rest begins.
    fn events(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> usize {
        let mut at = 0;
        while let Some((end, sep)) = sse::event_end(&bytes[at..]) {
            let (event, separator) = (&bytes[at..at + end], &bytes[at + end..at + end + sep]);
            if !self.slots.needs_work(event) {
                // The common case: nothing held, nothing to restore.
                out.extend_from_slice(event);
            } else {
                self.process_event(event, out);
            }
            out.extend_from_slice(separator);
            at += end + sep;
        }
        at
    }

    fn process_event(&mut self, event: &[u8], out: &mut Vec<u8>) {
        let Ok(text) = std::str::from_utf8(event) else {
            // SSE is UTF-8; anything else passes as it came.
            out.extend_from_slice(event);
            return;
        };
        let fields = sse::fields(text);
        let Some(data) = fields.data else {
            // Comments (`: keep-alive`) and events without data end no slot.
            out.extend_from_slice(event);
            return;
        };
        let eol = sse::line_ending(text);
        // The lines before the data, for copies of this event; an `id:` would repeat.
        let head: String = sse::lines(text)
            .take_while(|l| !l.starts_with("data:"))
            .filter(|l| !l.starts_with("id:"))
            .collect();
        let (flushes, new_data) = self.slots.event(&data, fields.event, head.as_bytes());
        for (envelope, data) in flushes {
            out.extend_from_slice(&envelope);
            sse::write_data(&data, eol, out);
            out.extend_from_slice(eol.as_bytes());
        }
        match new_data {
            None => out.extend_from_slice(event),
            Some(new_data) => {
                let mut written = false;
                for line in sse::lines(text) {
                    if line.starts_with("data:") {
                        if !written {
                            sse::write_data(&new_data, eol, out);
                            written = true;
                        }
                    } else {
                        out.extend_from_slice(line.as_bytes());
                    }
                }
                // The event's last line may lack its line ending (it ends at the separator).
                if !text.ends_with(['\n', '\r']) && out.ends_with(eol.as_bytes()) && written {
                    let last_is_data = sse::lines(text)
                        .last()
                        .is_some_and(|l| l.starts_with("data:"));
                    if last_is_data {
                        out.truncate(out.len() - eol.len());
                    }
                }
            }
        }
    }
}

impl StreamRestore for SseRestorer {
    fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
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

    fn finish(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let rest = std::mem::take(&mut self.buf);
        if !rest.is_empty() && self.slots.needs_work(&rest) {
            // A last event without its blank line.
            self.process_event(&rest, &mut out);
        } else {
            out.extend_from_slice(&rest);
        }
        for (envelope, data) in self.slots.finish() {
            let eol = std::str::from_utf8(&envelope).map_or("\n", sse::line_ending);
            out.extend_from_slice(&envelope);
            sse::write_data(&data, eol, &mut out);
            out.extend_from_slice(eol.as_bytes());
        }
        out
    }
}

/// Restores an AWS event stream (Bedrock's `application/vnd.amazon.eventstream`) frame by
/// frame: ConverseStream JSON events, and InvokeModelWithResponseStream chunks whose `bytes`
/// carry the model's own JSON events in base64. Rewritten frames get their CRCs recomputed.
pub struct EventStreamRestorer {
    slots: Slots,
    reader: FrameReader,
    /// The stream could not be framed: the rest passes as it comes.
    broken: bool,
}

impl EventStreamRestorer {
    pub fn new(restorer: Restorer) -> Self {
        Self {
            slots: Slots::new(restorer),
            reader: FrameReader::default(),
            broken: false,
        }
    }

    fn frame(&mut self, raw: Vec<u8>, out: &mut Vec<u8>) {
        let Ok(frame) = eventstream::decode_frame(&raw) else {
            out.extend_from_slice(&raw);
            return;
        };
        if frame.header_str(":message-type") != Some("event") {
            out.extend_from_slice(&raw);
            return;
        }
        let name = frame.header_str(":event-type").map(str::to_owned);
        let Ok(payload) = std::str::from_utf8(&frame.payload) else {
            out.extend_from_slice(&raw);
            return;
        };
        let wrapped = serde_json::from_str::<Value>(payload)
            .ok()
            .and_then(|v| v.get("bytes").and_then(Value::as_str).map(str::to_owned));
        let (flushes, new_payload) = match wrapped {
            Some(b64) => {
                let Some(inner) = base64::engine::general_purpose::STANDARD
                    .decode(&b64)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                else {
                    out.extend_from_slice(&raw);
                    return;
                };
                if !self.slots.needs_work(inner.as_bytes()) {
                    out.extend_from_slice(&raw);
                    return;
                }
                let (flushes, new_inner) = self.slots.event(&inner, None, &raw);
                let flushes = flushes
                    .into_iter()
                    .map(|(env, data)| (env, wrap_bytes(&data)))
                    .collect::<Vec<_>>();
                let new_payload = new_inner.and_then(|inner| {
                    let encoded = base64::engine::general_purpose::STANDARD.encode(inner);
                    rewrite_strings::<()>(payload, |s| {
                        Ok((s.key() == Some("bytes") && s.path.0.len() == 1)
                            .then(|| encoded.clone()))
                    })
                    .ok()
                    .and_then(Result::ok)
                    .flatten()
                });
                (flushes, new_payload)
            }
            None => {
                if !self.slots.needs_work(payload.as_bytes()) {
                    out.extend_from_slice(&raw);
                    return;
                }
                self.slots.event(payload, name.as_deref(), &raw)
            }
        };
        for (template, data) in flushes {
            out.extend_from_slice(&reframe(&template, data.into_bytes()));
        }
        match new_payload {
            Some(p) => {
                let mut frame = frame;
                frame.payload = p.into_bytes();
                out.extend_from_slice(&frame.encode());
            }
            None => out.extend_from_slice(&raw),
        }
    }
}

/// An InvokeModelWithResponseStream chunk payload for the model's JSON event `inner`.
fn wrap_bytes(inner: &str) -> String {
    serde_json::json!({ "bytes": base64::engine::general_purpose::STANDARD.encode(inner) })
        .to_string()
}

/// The frame `template` with `payload` in place of its own.
fn reframe(template: &[u8], payload: Vec<u8>) -> Vec<u8> {
    match eventstream::decode_frame(template) {
        Ok(mut frame) => {
            frame.payload = payload;
            frame.encode()
        }
        Err(_) => Vec::new(),
    }
}

impl StreamRestore for EventStreamRestorer {
    fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        if self.broken {
            return chunk.to_vec();
        }
        self.reader.push(chunk);
        let mut out = Vec::with_capacity(chunk.len() + 64);
        loop {
            match self.reader.next_raw() {
                Ok(Some(raw)) => self.frame(raw, &mut out),
                Ok(None) => break,
                Err(_) => {
                    // Not a stream we can read: what is left goes as it came.
                    self.broken = true;
                    out.extend_from_slice(self.reader.remaining());
                    break;
                }
            }
        }
        out
    }

    fn finish(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        for (template, data) in self.slots.finish() {
            let wrapped = eventstream::decode_frame(&template).is_ok_and(|f| {
                serde_json::from_slice::<Value>(&f.payload).is_ok_and(|v| v.get("bytes").is_some())
            });
            let data = if wrapped { wrap_bytes(&data) } else { data };
            out.extend_from_slice(&reframe(&template, data.into_bytes()));
        }
        if !self.broken {
            out.extend_from_slice(self.reader.remaining());
        }
        out
    }
}

/// A placeholder, and what events carrying a piece of a JSON document contain (tool-call
/// arguments, partial JSON); each found with memchr's SIMD substring search.
static NEEDS_WORK: std::sync::LazyLock<Vec<memchr::memmem::Finder<'static>>> =
    std::sync::LazyLock::new(|| {
        [PREFIX.as_bytes(), b"arguments", b"partial_json", b"toolUse"]
            .into_iter()
            .map(memchr::memmem::Finder::new)
            .collect()
    });

static PREFIX_FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(PREFIX.as_bytes()));

/// Whether a string in the event ends in what could begin a placeholder.
fn ends_in_prefix(event: &[u8]) -> bool {
    let prefix = PREFIX.as_bytes();
    memchr::memchr_iter(b'"', event).any(|q| {
        // A string ends right after a letter that ends some proper prefix of `TOLLGATE_`.
        q > 0
            && matches!(event[q - 1], b'T' | b'O' | b'L' | b'G' | b'A' | b'E')
            && (1..prefix.len()).any(|n| q >= n && event[q - n..q] == prefix[..n])
    })
}

#[cfg(test)]
#[path = "restore_tests.rs"]
mod tests;
