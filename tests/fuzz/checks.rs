//! What the fuzz targets check on each input, in one place: the targets under `fuzz_targets/`
//! (libFuzzer, nightly) and `tests/fuzz_corpora.rs` (every committed corpus file, on stable)
//! include this file with `#[path]`. Each check panics when an invariant fails; the library
//! itself must never panic, whatever the input.
//!
//! The first bytes of an input choose the variant (content type, encoding, policy, where a
//! stream is cut), so one corpus file is one reproducible case. It uses only `tollgate` and
//! crates the root package depends on, so the root test can include it as it is.

use bytes::Bytes;
use std::io::Write;
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use tollgate::mask::decode::{DecodeError, decode};
use tollgate::mask::json;
use tollgate::mask::restore::{EventStreamRestorer, Restorer, SseRestorer, StreamRestore};
use tollgate::mask::stream_decode::StreamDecoder;
use tollgate::mask::vault::Vault;
use tollgate::mask::{MaskError, MaskPolicy, Masker};
use tollgate::policy::{Policy, RecordingPolicy, Source};
use tollgate::providers::eventstream::Frame;
use tollgate::providers::{Catalog, sse};

// ── Shared set-up ───────────────────────────────────────────────────────────────────────────

/// The embedded masking.yaml, compiled once.
fn default_policy() -> &'static MaskPolicy {
    static POLICY: LazyLock<MaskPolicy> = LazyLock::new(|| {
        MaskPolicy::parse(&tollgate::mask::embedded_policy()).expect("embedded masking.yaml")
    });
    &POLICY
}

/// A policy with every kind of custom identifier list, refused attachments and a blocking rule.
fn custom_policy() -> &'static MaskPolicy {
    const YAML: &str = "\
rules:
  jwt: { action: block }
identifiers:
  - name: code-names
    category: project
    literals: [Nightjar, Project Falcon]
    match: substring
  - name: internal-hosts
    domains: ['*.corp.example', build.example.org]
  - name: customer-ids
    regexes: ['\\bACME-[0-9]{4}\\b']
attachments: refuse
";
    static POLICY: LazyLock<MaskPolicy> = LazyLock::new(|| {
        MaskPolicy::parse(&Source::inline("masking.yaml", YAML)).expect("fuzz masking.yaml")
    });
    &POLICY
}

const SCOPE: &str = "fuzz";

fn new_vault() -> Arc<Vault> {
    Arc::new(Vault::new(Duration::from_secs(600), 64 << 20))
}

/// The `Content-Encoding` values a variant byte picks from; stacked ones are undone in reverse.
const ENCODINGS: [Option<&str>; 8] = [
    None,
    Some("gzip"),
    Some("deflate"),
    Some("br"),
    Some("zstd"),
    Some("gzip, zstd"),
    Some("identity"),
    Some("x-gzip"),
];

/// Compresses `data` as `coding` (a list, applied in order) lists it.
fn encode(coding: Option<&str>, data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    for c in coding.unwrap_or("").split(',').map(str::trim) {
        out = match c {
            "gzip" | "x-gzip" => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(&out).expect("gzip");
                e.finish().expect("gzip")
            }
            "deflate" => {
                let mut e =
                    flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(&out).expect("deflate");
                e.finish().expect("deflate")
            }
            "br" => {
                let mut o = Vec::new();
                let params = brotli::enc::BrotliEncoderParams {
                    quality: 2,
                    ..Default::default()
                };
                brotli::BrotliCompress(&mut &out[..], &mut o, &params).expect("br");
                o
            }
            "zstd" => zstd::encode_all(&out[..], 1).expect("zstd"),
            _ => out,
        };
    }
    out
}

/// Cut points into a body of `len` bytes, from up to 8 pairs of bytes.
fn cuts(spec: &[u8], len: usize) -> Vec<usize> {
    let mut points: Vec<usize> = spec
        .chunks_exact(2)
        .map(|p| usize::from(u16::from_le_bytes([p[0], p[1]])) % (len + 1))
        .collect();
    points.sort_unstable();
    points
}

/// `bytes` in pieces cut at `points` (sorted), empty pieces included.
fn pieces<'a>(bytes: &'a [u8], points: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::with_capacity(points.len() + 1);
    let mut at = 0;
    for &p in points {
        out.push(&bytes[at..p]);
        at = p;
    }
    out.push(&bytes[at..]);
    out
}

/// What serde_json makes of `text` as one JSON document: `Some(true)` strict JSON, `Some(false)`
/// not, `None` when serde_json cannot tell (nesting past its recursion limit, a number past
/// f64's range: both valid JSON, which serde_json refuses without its optional features).
fn serde_verdict(text: &str) -> Option<bool> {
    // Into a Value, not IgnoredAny: skipping a string, serde_json does not check its escapes
    // name characters (a lone surrogate).
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(_) => Some(true),
        Err(e) => {
            let msg = e.to_string();
            if msg.contains("recursion limit exceeded") || msg.contains("number out of range") {
                None
            } else {
                Some(false)
            }
        }
    }
}

// ── request_body ────────────────────────────────────────────────────────────────────────────

/// The `Content-Type` values a variant byte picks from.
const CONTENT_TYPES: [Option<&str>; 8] = [
    Some("application/json"),
    Some("application/json; charset=utf-8"),
    None,
    Some("text/plain"),
    Some("application/vnd.api+json"),
    Some("application/x-ndjson"),
    Some("text/plain; charset=\"US-ASCII\""),
    Some("application/json; charset=latin1"),
];

/// A request body through decoding and masking, as the proxy takes it.
///
/// Input: a variant byte (bits 0-2 the encoding, bit 3 whether the rest is compressed here
/// first, so the masker sees content rather than a broken stream; bit 7 the custom policy),
/// a content-type byte, then the body.
///
/// Invariants: decoding undoes what was encoded; what is inspected as JSON is strict JSON and
/// what is refused as not strict JSON is not; a masked JSON body is JSON; the body sent on is
/// what was inspected; restoring the masked body gives the body back.
pub fn request_body(data: &[u8]) {
    let [flags, kind, body @ ..] = data else {
        return;
    };
    if body.is_empty() {
        return;
    }
    let coding = ENCODINGS[usize::from(flags & 7)];
    let content_type = CONTENT_TYPES[usize::from(kind & 7)];
    let policy = if flags & 0x80 != 0 {
        custom_policy()
    } else {
        default_policy()
    };
    let sent = if flags & 8 != 0 {
        let encoded = encode(coding, body);
        let decoded = decode(coding, Bytes::from(encoded.clone()), policy.max_body)
            .unwrap_or_else(|e| panic!("{coding:?} does not undo itself: {e}"));
        assert_eq!(&decoded.bytes[..], body, "{coding:?} round trip");
        encoded
    } else {
        body.to_vec()
    };
    // The content the masker inspects, if it can be decoded at all.
    let content = decode(coding, Bytes::from(sent.clone()), policy.max_body)
        .ok()
        .map(|d| (d.bytes, d.changed));

    let vault = new_vault();
    let masker = Masker {
        policy,
        vault: &vault,
        scope: SCOPE,
    };
    let result = masker.mask_body(content_type, coding, Bytes::from(sent.clone()));
    let Some((content, decoded)) = content else {
        assert!(result.is_err(), "a body that does not decode was masked");
        return;
    };
    let Ok(text) = std::str::from_utf8(&content) else {
        assert!(result.is_err(), "a body that is not UTF-8 was masked");
        return;
    };
    let json_typed = content_type.is_some_and(|t| {
        let t = t.to_ascii_lowercase();
        t.starts_with("application/json") || t.contains("+json")
    });
    let looks_json = text
        .trim_start_matches(|c: char| c.is_whitespace() || c == '\u{feff}')
        .starts_with(['{', '[']);
    // A body that decodes to nothing is read as what its type says (and empty JSON is not JSON).
    let as_json = json_typed || looks_json;
    let masked = match result {
        Ok(masked) => masked,
        Err(MaskError::NotStrictJson(e)) => {
            assert!(as_json, "refused as not JSON though not read as JSON: {e}");
            assert_ne!(
                serde_verdict(text),
                Some(true),
                "strict JSON refused as not strict JSON: {e}"
            );
            return;
        }
        Err(_) => return,
    };
    if as_json {
        assert_ne!(
            serde_verdict(text),
            Some(false),
            "a body that is not strict JSON was inspected as JSON and passed"
        );
    }
    let out = match &masked.body {
        Some(b) => std::str::from_utf8(b)
            .expect("a masked body is UTF-8")
            .to_owned(),
        None => {
            assert!(
                !decoded || content.is_empty(),
                "a decoded body would leave with its encoding"
            );
            assert!(
                masked.findings.is_empty(),
                "findings but the body unchanged"
            );
            text.to_owned()
        }
    };
    if as_json {
        assert_ne!(
            serde_verdict(&out),
            Some(false),
            "a masked JSON body is not JSON: {out:?}"
        );
    }
    if masked.findings.is_empty() {
        assert_eq!(out, text, "nothing found, yet the body changed");
        return;
    }
    // Base64 payloads are masked inside and encoded again: their placeholders sit inside the
    // base64, where no restorer looks.
    if masked.findings.iter().any(|f| f.path.contains(">base64")) {
        return;
    }
    let restorer = Restorer::new(vault.clone(), SCOPE);
    if as_json {
        let restored = restorer.restore_json(&out).unwrap_or_else(|| out.clone());
        if let (Ok(a), Ok(b)) = (
            serde_json::from_str::<serde_json::Value>(text),
            serde_json::from_str::<serde_json::Value>(&restored),
        ) {
            assert!(
                equivalent(&a, &b, None),
                "restoring the masked body does not give it back:\n{text}\n{restored}"
            );
        }
    } else {
        let restored = restorer.restore_text(&out).unwrap_or_else(|| out.clone());
        assert_eq!(
            restored, text,
            "restoring the masked text does not give it back"
        );
    }
}

/// Whether a restored JSON value is the original. A value is restored by where it lands: into
/// a JSON document held in a string it goes escaped only under `arguments` (elsewhere the string
/// is prose), and a number masked as a credential comes back as a string of its digits.
fn equivalent(
    original: &serde_json::Value,
    restored: &serde_json::Value,
    key: Option<&str>,
) -> bool {
    use serde_json::Value;
    match (original, restored) {
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(k, v)| b.get(k).is_some_and(|w| equivalent(v, w, Some(k))))
        }
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(v, w)| equivalent(v, w, key))
        }
        (Value::String(a), Value::String(b)) if a == b => true,
        (Value::String(a), Value::String(b)) => {
            let inner = |s: &str| serde_json::from_str::<Value>(s).ok();
            match (inner(a), inner(b)) {
                (Some(x), Some(y)) if equivalent(&x, &y, None) => true,
                // Prose restoring into a document it holds: all is back, unescaped.
                (Some(_), _) if key != Some("arguments") => {
                    b.matches("TOLLGATE_").count() <= a.matches("TOLLGATE_").count()
                }
                _ => false,
            }
        }
        (Value::Number(n), Value::String(s)) => match n.as_u64() {
            Some(n) => n.to_string() == *s,
            // Past u64 serde_json reads it as f64 and prints it otherwise.
            None => !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()),
        },
        (a, b) => a == b,
    }
}

// ── json_walker ─────────────────────────────────────────────────────────────────────────────

/// Every string of a JSON document (keys and values), in document order, as serde_json
/// decodes them.
fn serde_strings(text: &str) -> Option<Vec<String>> {
    use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
    use std::cell::RefCell;
    use std::fmt;

    struct Collect<'a>(&'a RefCell<Vec<String>>);

    impl<'de> DeserializeSeed<'de> for Collect<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Collect<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_str<E>(self, v: &str) -> Result<(), E> {
            self.0.borrow_mut().push(v.to_owned());
            Ok(())
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while seq.next_element_seed(Collect(self.0))?.is_some() {}
            Ok(())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while map.next_key_seed(Collect(self.0))?.is_some() {
                map.next_value_seed(Collect(self.0))?;
            }
            Ok(())
        }
    }

    let seen = RefCell::new(Vec::new());
    let mut de = serde_json::Deserializer::from_str(text);
    Collect(&seen).deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(seen.into_inner())
}

/// The JSON walker on any text.
///
/// Invariants: it accepts exactly what serde_json accepts; it hands over every string, keys
/// included, decoded as serde_json decodes it, in order; the raw span of any part of a string
/// decodes to a text holding that part; rewriting every string with itself gives the same
/// document; a document nothing was changed in comes back as `None`.
pub fn json_walker(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut strings = Vec::new();
    let mut spans_checked = 0usize;
    let walked = json::walk_strings::<()>(text, |s| {
        strings.push(s.text.to_owned());
        check_raw_span(text, &s, &mut spans_checked);
        Ok(())
    });
    let valid = walked.is_ok();
    assert_eq!(valid, json::is_valid(text));
    match serde_verdict(text) {
        Some(strict) => assert_eq!(
            valid, strict,
            "the walker and serde_json disagree on whether this is JSON"
        ),
        None => return,
    }
    if !valid {
        return;
    }
    if let Some(expected) = serde_strings(text) {
        assert_eq!(strings, expected, "strings decoded unlike serde_json");
    }
    let unchanged = json::rewrite_strings::<()>(text, |_| Ok(None));
    assert_eq!(unchanged, Ok(Ok(None)));
    let same = json::rewrite_strings::<()>(text, |s| Ok(Some(s.text.to_owned())))
        .expect("valid")
        .expect("no callback error");
    let same = same.unwrap_or_else(|| text.to_owned());
    let a: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(_) => return,
    };
    let b: serde_json::Value = serde_json::from_str(&same).expect("rewritten document is JSON");
    assert_eq!(
        a, b,
        "rewriting every string with itself changed the document"
    );
    // Paths print and the walk over values sees the same strings.
    let mut values = 0usize;
    let walked = json::walk_values::<()>(text, |s| {
        let _ = s.path.to_string();
        let _ = s.key_through_arrays();
        values += usize::from(!s.is_number);
        Ok(())
    });
    assert!(walked.is_ok());
    assert_eq!(values, strings.len());
}

/// The raw span of a part of the string `s` (chosen from the string's own bytes) lies inside the
/// literal and decodes to a text that holds that part.
fn check_raw_span(doc: &str, s: &json::StringRef<'_>, checked: &mut usize) {
    let (full_start, full_end) = s.raw_span(0, s.text.len());
    assert_eq!(
        (full_start, full_end),
        (s.raw_start, s.raw_start + s.raw.len()),
        "the span of a whole string is its literal"
    );
    if *checked > 64 || s.text.is_empty() {
        return;
    }
    *checked += 1;
    let t = s.text;
    let seed = t
        .bytes()
        .fold(t.len(), |h, b| h.wrapping_mul(31) ^ usize::from(b));
    let mut a = seed % (t.len() + 1);
    let mut b = (seed / 7) % (t.len() + 1);
    if a > b {
        std::mem::swap(&mut a, &mut b);
    }
    while !t.is_char_boundary(a) {
        a -= 1;
    }
    while !t.is_char_boundary(b) {
        b += 1;
    }
    if a == b {
        return;
    }
    let (rs, re) = s.raw_span(a, b);
    assert!(
        s.raw_start <= rs && rs <= re && re <= s.raw_start + s.raw.len(),
        "span {rs}..{re} outside the literal"
    );
    let piece: String = serde_json::from_str(&format!("\"{}\"", &doc[rs..re]))
        .unwrap_or_else(|e| panic!("the span {:?} cuts an escape: {e}", &doc[rs..re]));
    assert!(
        piece.contains(&t[a..b]),
        "the span {:?} does not hold {:?}",
        &doc[rs..re],
        &t[a..b]
    );
}

// ── sse_reader ──────────────────────────────────────────────────────────────────────────────

/// Values the stream's placeholders stand for: a token, a password that needs escaping in
/// JSON, and a multi-line key.
const VALUES: [(&str, &str); 3] = [
    ("github-pat", "ghp_Q7mR2xK9pL4vN8sT3wY6zB1cD5fG0hJ2kM4n"),
    ("password", "p\"w\\d é🙂 x"),
    (
        "private-key",
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n",
    ),
];

/// `@0`, `@1`, `@2` in `body` replaced by the vault's placeholders, `<0` and `>0` by the first
/// and second half of one (placeholders are keyed per vault, so a corpus file names them).
fn with_placeholders(vault: &Vault, body: &[u8]) -> Vec<u8> {
    let placeholders: Vec<String> = VALUES
        .iter()
        .map(|(kind, value)| vault.placeholder(SCOPE, kind, value, true))
        .collect();
    let mut out = Vec::with_capacity(body.len() + 64);
    let mut i = 0;
    while i < body.len() {
        match (body[i], body.get(i + 1)) {
            (m @ (b'@' | b'<' | b'>'), Some(d @ b'0'..=b'2')) => {
                let p = placeholders[usize::from(d - b'0')].as_bytes();
                let half = p.len() / 2;
                out.extend_from_slice(match m {
                    b'@' => p,
                    b'<' => &p[..half],
                    _ => &p[half..],
                });
                i += 2;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// AWS event-stream frames from lines `event-type<TAB>payload`; a line without a tab is an
/// event with no type.
fn frames(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in body.split(|&b| b == b'\n') {
        let (name, payload) = match line.iter().position(|&b| b == b'\t') {
            Some(at) => (&line[..at], &line[at + 1..]),
            None => (&b""[..], line),
        };
        out.extend(Frame::json_event(&String::from_utf8_lossy(name), payload.to_vec()).encode());
    }
    out
}

/// A response stream restored as the proxy restores it: decoded if it came compressed, then
/// SSE events (or AWS event-stream frames) restored as they pass.
///
/// Input: a variant byte (bits 0-1: SSE, event-stream frames built from lines, or raw bytes
/// read as an event stream; bits 2-4: the encoding the stream is compressed with here; bit 5:
/// also fed byte by byte; bit 6: the body is given to the stream decoder as it is, compressed
/// or not), a byte whose low 3 bits count the cuts, that many pairs of bytes (cut points), then
/// the stream; `@0`-`@2` in it become placeholders (`<0`, `>0`: their halves).
///
/// Invariants: however the stream is cut, the restored output is the same as when it comes in
/// one piece; a stream decoder fed in pieces gives what decoding it whole gives; the SSE reader
/// gives back every byte of an event in its lines.
pub fn sse_reader(data: &[u8]) {
    let [flags, n, rest @ ..] = data else {
        return;
    };
    let n = usize::from(n & 7) * 2;
    if rest.len() < n {
        return;
    }
    let (spec, body) = rest.split_at(n);
    let vault = new_vault();
    let body = with_placeholders(&vault, body);
    let event_stream = flags & 3;
    let stream = match event_stream {
        1 => frames(&body),
        _ => body,
    };
    check_sse_reader(&stream);

    // The decoder: on what this check compressed, or on the bytes as they came.
    let coding = ENCODINGS[usize::from((flags >> 2) & 7)];
    let wire = if flags & 0x40 != 0 {
        stream.clone()
    } else {
        encode(coding, &stream)
    };
    let points = cuts(spec, wire.len());
    let plain = match coding.map(|c| StreamDecoder::new(c, 1 << 20)) {
        Some(Ok(Some(mut whole))) => {
            let mut chunked = StreamDecoder::new(coding.unwrap_or(""), 1 << 20)
                .expect("it was built once")
                .expect("a coding");
            let one = whole.push(&wire).and_then(|mut out| {
                out.extend(whole.finish()?);
                Ok(out)
            });
            let mut many: Result<Vec<u8>, DecodeError> = Ok(Vec::new());
            for piece in pieces(&wire, &points) {
                many = many.and_then(|mut out| {
                    out.extend(chunked.push(piece)?);
                    Ok(out)
                });
            }
            let many = many.and_then(|mut out| {
                out.extend(chunked.finish()?);
                Ok(out)
            });
            let whole_body = decode(coding, Bytes::from(wire.clone()), 1 << 20);
            match (&one, &many) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "decoded in pieces unlike whole"),
                (Err(_), Err(_)) => {}
                (a, b) => panic!(
                    "whole and in pieces disagree: {:?} / {:?}",
                    a.as_ref().map(Vec::len),
                    b.as_ref().map(Vec::len)
                ),
            }
            if flags & 0x40 == 0 {
                let one = one
                    .as_ref()
                    .unwrap_or_else(|e| panic!("{coding:?} stream does not decode: {e}"));
                assert_eq!(one, &stream, "{coding:?} stream round trip");
                let whole_body = whole_body.expect("whole body decodes");
                assert_eq!(&whole_body.bytes[..], &stream[..]);
            }
            match one {
                Ok(plain) => plain,
                Err(_) => return,
            }
        }
        Some(Ok(None)) | None => wire.clone(),
        Some(Err(e)) => panic!("{coding:?} refused: {e}"),
    };

    let restorer = Restorer::new(vault.clone(), SCOPE);
    let new_stream = || -> Box<dyn StreamRestore> {
        if event_stream == 0 {
            Box::new(SseRestorer::new(restorer.clone()))
        } else {
            Box::new(EventStreamRestorer::new(restorer.clone()))
        }
    };
    let mut whole = new_stream();
    let mut expected = whole.feed(&plain);
    expected.extend(whole.finish());
    let points = cuts(spec, plain.len());
    let mut chunked = new_stream();
    let mut got = Vec::new();
    for piece in pieces(&plain, &points) {
        got.extend(chunked.feed(piece));
    }
    got.extend(chunked.finish());
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&expected),
        "restored differently when cut at {points:?}"
    );
    assert_eq!(got, expected);
    if flags & 0x20 != 0 && plain.len() <= 4096 {
        let mut bytewise = new_stream();
        let mut got = Vec::new();
        for b in &plain {
            got.extend(bytewise.feed(std::slice::from_ref(b)));
        }
        got.extend(bytewise.finish());
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&expected),
            "restored differently fed byte by byte"
        );
    }
}

/// The SSE reader on a whole body: events end where `event_end` says, and an event's lines
/// hold every byte of it.
fn check_sse_reader(stream: &[u8]) {
    let mut at = 0;
    while let Some((end, sep)) = sse::event_end(&stream[at..]) {
        assert!(end > 0 && sep > 0 && at + end + sep <= stream.len());
        if let Ok(event) = std::str::from_utf8(&stream[at..at + end]) {
            let joined: String = sse::lines(event).collect();
            assert_eq!(joined, event, "lines lost bytes");
            let fields = sse::fields(event);
            let data_lines = sse::lines(event)
                .filter(|l| l.trim_end_matches(['\n', '\r']).split(':').next() == Some("data"))
                .count();
            assert_eq!(
                fields.data.map_or(0, |d| d.split('\n').count()),
                data_lines,
                "data lines joined wrongly"
            );
            let _ = sse::line_ending(event);
        }
        at += end + sep;
    }
    if let Ok(text) = std::str::from_utf8(stream) {
        for event in sse::events(text) {
            if let Some(data) = event.data {
                let mut out = Vec::new();
                sse::write_data(&data, "\n", &mut out);
                let back: Vec<_> = sse::events(std::str::from_utf8(&out).expect("UTF-8")).collect();
                assert_eq!(back.len(), 1);
                assert_eq!(back[0].data.as_deref(), Some(data.as_str()), "write_data");
            }
        }
    }
}

// ── policy_loader ───────────────────────────────────────────────────────────────────────────

/// The policy files, by the variant byte.
const FILES: [&str; 5] = [
    "providers.yaml",
    "policy.yaml",
    "masking.yaml",
    "recording.yaml",
    "identity.yaml",
];

/// Any YAML as one of the policy files (or, variant 5 and up, as every one of them).
///
/// Invariants: loading never panics; a load that fails names the file; what loads can be used
/// (hosts decided, a body masked, a summary written).
pub fn policy_loader(data: &[u8]) {
    let [which, yaml @ ..] = data else {
        return;
    };
    let Ok(text) = std::str::from_utf8(yaml) else {
        return;
    };
    match usize::from(*which) % 8 {
        n @ 0..5 => load_as(FILES[n], text),
        _ => FILES.iter().for_each(|f| load_as(f, text)),
    }
}

fn load_as(file: &str, text: &str) {
    let source = Source::inline(file, text);
    let names_file = |e: &dyn std::fmt::Display, names: &[&str]| {
        let msg = e.to_string();
        assert!(
            names.iter().any(|n| msg.starts_with(&format!("{n}:"))),
            "the error does not name the file: {msg}"
        );
    };
    match file {
        "providers.yaml" => {
            if let Err(e) = Catalog::parse(&source) {
                return names_file(&e, &[file]);
            }
            let policy = Policy::from_all_sources(
                &source,
                &Source::embedded_policy(),
                &Source::embedded_masking(),
            );
            match policy {
                Ok(p) => use_policy(&p),
                Err(e) => names_file(&e, &[file, "(embedded) policy.yaml"]),
            }
        }
        "policy.yaml" => {
            let policy = Policy::from_all_sources(
                &Source::embedded_catalog(),
                &source,
                &Source::embedded_masking(),
            );
            match policy {
                Ok(p) => use_policy(&p),
                Err(e) => names_file(&e, &[file]),
            }
        }
        "masking.yaml" => match MaskPolicy::parse(&source) {
            Ok(policy) => {
                let vault = new_vault();
                let masker = Masker {
                    policy: &policy,
                    vault: &vault,
                    scope: SCOPE,
                };
                let body = r#"{"messages":[{"role":"user","content":"Nightjar at build.corp.example, token ghp_Q7mR2xK9pL4vN8sT3wY6zB1cD5fG0hJ2kM4n, ACME-1234"}]}"#;
                let _ = masker.mask_body(Some("application/json"), None, Bytes::from(body));
            }
            Err(e) => names_file(&e, &[file]),
        },
        "recording.yaml" => {
            if let Err(e) = RecordingPolicy::parse(&source) {
                names_file(&e, &[file]);
            }
        }
        _ => {
            // A JWKS file identity.yaml names is read at load; keep the fuzzer off devices.
            if ["/dev", "/proc", "/sys"].iter().any(|d| text.contains(d)) {
                return;
            }
            match tollgate::identity::Authenticator::parse(&source) {
                Ok(auth) => {
                    let _ = auth.is_enabled();
                    let _ = auth.tokens().lookup("tok");
                }
                Err(e) => names_file(&e, &[file]),
            }
        }
    }
}

/// Asks a loaded policy what it was loaded for.
fn use_policy(policy: &Policy) {
    let _ = policy.summary();
    for host in [
        "api.openai.com",
        "API.Anthropic.com.",
        "[::1]",
        "bedrock-runtime.eu-west-1.amazonaws.com",
        "x.example",
    ] {
        let decision = policy.decide(host);
        let _ = decision.error_format();
        let Some(provider) = decision.provider else {
            continue;
        };
        let fields = vec![("model".to_owned(), "gpt-4o".to_owned())];
        for profile in policy.access().profiles() {
            let _ = policy.masking_for(profile);
            let view = tollgate::providers::residency::RequestView {
                host,
                path: "/v1/chat/completions",
                model: Some("gpt-4o"),
                body_fields: &fields,
                has_body: true,
            };
            let _ = policy.check_request(profile, &provider, view);
            let _ = policy.request_model(host, "/v1/models/gemini-pro:generate", None);
        }
    }
}
