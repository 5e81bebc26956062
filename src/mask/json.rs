//! The one JSON string walker: finds every string (keys and values) in a JSON document without
//! building a tree, hands each decoded string to a callback, and rewrites only the strings the
//! callback changes. Everything else stays byte for byte as it was.

use std::borrow::Cow;
use std::fmt;

const MAX_DEPTH: usize = 512;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid JSON at byte {at}: {what}")]
pub struct JsonError {
    pub at: usize,
    pub what: &'static str,
}

/// One step of the path to a string: an object key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment<'a> {
    Key(Cow<'a, str>),
    Index(usize),
}

impl Segment<'_> {
    pub fn into_owned(self) -> Segment<'static> {
        match self {
            Segment::Key(k) => Segment::Key(Cow::Owned(k.into_owned())),
            Segment::Index(i) => Segment::Index(i),
        }
    }
}

/// Where a string sits in the document (`messages[2].content`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct JsonPath<'a>(pub Vec<Segment<'a>>);

impl fmt::Display for JsonPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("$");
        }
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Segment::Key(k) if i == 0 => write!(f, "{k}")?,
                Segment::Key(k) => write!(f, ".{k}")?,
                Segment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// What the callback is looking at.
pub struct StringRef<'a> {
    /// The decoded string.
    pub text: &'a str,
    /// Its path; for an object key, the path of the object plus the key.
    pub path: &'a JsonPath<'a>,
    pub is_key: bool,
    /// A number rather than a string (only from [`walk_values`]); `text` and `raw` are the
    /// literal.
    pub is_number: bool,
    /// The literal as it is written, without its quotes (escapes not decoded).
    pub raw: &'a str,
    /// Where `raw` starts in the document.
    pub raw_start: usize,
}

impl StringRef<'_> {
    /// The object key this value sits under, if it is an object member's value.
    pub fn key(&self) -> Option<&str> {
        if self.is_key {
            return None;
        }
        match self.path.0.last() {
            Some(Segment::Key(k)) => Some(k),
            _ => None,
        }
    }

    /// The nearest object key above this value, through arrays: `"auth": ["u", "pw"]` gives
    /// `auth` for both strings.
    pub fn key_through_arrays(&self) -> Option<&str> {
        if self.is_key {
            return None;
        }
        self.path
            .0
            .iter()
            .rev()
            .find(|seg| !matches!(seg, Segment::Index(_)))
            .and_then(|seg| match seg {
                Segment::Key(k) => Some(k.as_ref()),
                Segment::Index(_) => None,
            })
    }

    /// The span of the document that holds the decoded bytes `start..end` of this string: an
    /// escape sequence is never cut (a span that starts or ends inside one grows to cover it).
    pub fn raw_span(&self, start: usize, end: usize) -> (usize, usize) {
        let (s, e) = raw_span_in(self.raw, start, end);
        (self.raw_start + s, self.raw_start + e)
    }
}

/// Maps decoded bytes `start..end` of a string literal's inside `raw` to raw offsets.
pub fn raw_span_in(raw: &str, start: usize, end: usize) -> (usize, usize) {
    if !raw.contains('\\') {
        return (start.min(raw.len()), end.min(raw.len()));
    }
    let b = raw.as_bytes();
    let (mut r, mut d) = (0usize, 0usize);
    let mut raw_start = None;
    while r < b.len() {
        // One unit: a plain byte, or an escape and the bytes it decodes to.
        let (raw_len, dec_len) = if b[r] == b'\\' {
            match b.get(r + 1) {
                Some(b'u') => {
                    let code = b.get(r + 2..r + 6).and_then(hex4).unwrap_or(0);
                    if (0xD800..0xDC00).contains(&code) && b.get(r + 6) == Some(&b'\\') {
                        (12, 4)
                    } else {
                        let len = char::from_u32(code).map_or(1, char::len_utf8);
                        (6, len)
                    }
                }
                _ => (2, 1),
            }
        } else {
            (1, 1)
        };
        if raw_start.is_none() && d + dec_len > start {
            raw_start = Some(r);
        }
        if d + dec_len >= end && raw_start.is_some() {
            return (raw_start.unwrap_or(r), (r + raw_len).min(b.len()));
        }
        r += raw_len;
        d += dec_len;
    }
    (raw_start.unwrap_or(b.len()), b.len())
}

/// Walks `input`, calling `f` for every string; returns the rewritten document if any call
/// returned a replacement, `None` if nothing changed. `f` may fail, which stops the walk.
pub fn rewrite_strings<E>(
    input: &str,
    f: impl FnMut(StringRef<'_>) -> Result<Option<String>, E>,
) -> Result<Result<Option<String>, E>, JsonError> {
    rewrite(input, f, false, None)
}

/// Walks `input`, calling `f` for every string and every number, changing nothing.
pub fn walk_values<E>(
    input: &str,
    f: impl FnMut(StringRef<'_>) -> Result<(), E>,
) -> Result<Result<(), E>, JsonError> {
    walk_values_with(input, f, None)
}

/// The elements of a top-level member's array (`messages[3]`, `tools[0]`): an agent resends
/// them unchanged turn after turn, so the walk may be told that one is already known.
pub trait Elements {
    /// At the start of the object `path` names, at byte `at`, with `rest` the document from
    /// there on: the length of its start that is already known, which is then not walked.
    /// Only an object is asked about: it ends at its closing brace, so a known one is known
    /// whole.
    fn known(&mut self, path: &JsonPath<'_>, at: usize, rest: &str) -> Option<usize>;
    /// The object `path` names, walked: it spans `start..end`.
    fn walked(&mut self, path: &JsonPath<'_>, start: usize, end: usize);
}

/// As [`walk_values`], telling `elements` about each object in a top-level member's array.
pub fn walk_values_with<E>(
    input: &str,
    mut f: impl FnMut(StringRef<'_>) -> Result<(), E>,
    elements: Option<&mut dyn Elements>,
) -> Result<Result<(), E>, JsonError> {
    rewrite(input, |s| f(s).map(|()| None), true, elements).map(|r| r.map(|_| ()))
}

fn rewrite<E>(
    input: &str,
    mut f: impl FnMut(StringRef<'_>) -> Result<Option<String>, E>,
    numbers: bool,
    elements: Option<&mut dyn Elements>,
) -> Result<Result<Option<String>, E>, JsonError> {
    let mut walker = Walker {
        s: input.as_bytes(),
        src: input,
        pos: 0,
        path: JsonPath::default(),
        edits: Vec::new(),
        numbers,
        elements,
    };
    walker.ws();
    match walker.value(&mut f, 0) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Ok(Err(e)),
        Err(e) => return Err(e),
    }
    walker.ws();
    if walker.pos != walker.s.len() {
        return Err(walker.err("trailing characters"));
    }
    if walker.edits.is_empty() {
        return Ok(Ok(None));
    }
    let mut out = String::with_capacity(input.len() + 64);
    let mut at = 0;
    for (start, end, replacement) in walker.edits {
        out.push_str(&input[at..start]);
        out.push_str(&replacement);
        at = end;
    }
    out.push_str(&input[at..]);
    Ok(Ok(Some(out)))
}

/// Walks `input`, calling `f` for every string, changing nothing.
pub fn walk_strings<E>(
    input: &str,
    mut f: impl FnMut(StringRef<'_>) -> Result<(), E>,
) -> Result<Result<(), E>, JsonError> {
    rewrite_strings(input, |s| f(s).map(|()| None)).map(|r| r.map(|_| ()))
}

/// Whether `input` is one valid JSON document.
pub fn is_valid(input: &str) -> bool {
    rewrite_strings::<()>(input, |_| Ok(None)).is_ok()
}

struct Walker<'a, 'e> {
    s: &'a [u8],
    src: &'a str,
    pos: usize,
    path: JsonPath<'a>,
    /// (start, end, replacement JSON string literal), in order.
    edits: Vec<(usize, usize, String)>,
    /// Whether numbers are handed to the callback too.
    numbers: bool,
    elements: Option<&'e mut dyn Elements>,
}

type Step<E> = Result<Result<(), E>, JsonError>;

impl<'a, 'e> Walker<'a, 'e> {
    fn err(&self, what: &'static str) -> JsonError {
        JsonError { at: self.pos, what }
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.s.get(self.pos) {
            self.pos += 1;
        }
    }

    fn value<E>(
        &mut self,
        f: &mut impl FnMut(StringRef<'_>) -> Result<Option<String>, E>,
        depth: usize,
    ) -> Step<E> {
        if depth > MAX_DEPTH {
            return Err(self.err("nesting too deep"));
        }
        match self.s.get(self.pos) {
            Some(b'{') => self.object(f, depth),
            Some(b'[') => self.array(f, depth),
            Some(b'"') => self.string(f, false),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number(f),
            Some(_) => Err(self.err("unexpected character")),
            None => Err(self.err("unexpected end")),
        }
    }

    fn object<E>(
        &mut self,
        f: &mut impl FnMut(StringRef<'_>) -> Result<Option<String>, E>,
        depth: usize,
    ) -> Step<E> {
        self.pos += 1;
        self.ws();
        if self.s.get(self.pos) == Some(&b'}') {
            self.pos += 1;
            return Ok(Ok(()));
        }
        loop {
            if self.s.get(self.pos) != Some(&b'"') {
                return Err(self.err("expected a key"));
            }
            let key_start = self.pos;
            let (key_end, decoded) = self.read_string()?;
            let key = match decoded {
                Some(key) => Cow::Owned(key),
                None => Cow::Borrowed(&self.src[key_start + 1..key_end - 1]),
            };
            self.pos = key_start;
            self.path.0.push(Segment::Key(key));
            if let Err(e) = self.string(f, true)? {
                return Ok(Err(e));
            }
            self.ws();
            if self.s.get(self.pos) != Some(&b':') {
                return Err(self.err("expected `:`"));
            }
            self.pos += 1;
            self.ws();
            let r = self.value(f, depth + 1)?;
            self.path.0.pop();
            if let Err(e) = r {
                return Ok(Err(e));
            }
            self.ws();
            match self.s.get(self.pos) {
                Some(b',') => {
                    self.pos += 1;
                    self.ws();
                }
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Ok(()));
                }
                _ => return Err(self.err("expected `,` or `}`")),
            }
        }
    }

    fn array<E>(
        &mut self,
        f: &mut impl FnMut(StringRef<'_>) -> Result<Option<String>, E>,
        depth: usize,
    ) -> Step<E> {
        self.pos += 1;
        self.ws();
        if self.s.get(self.pos) == Some(&b']') {
            self.pos += 1;
            return Ok(Ok(()));
        }
        let mut index = 0;
        loop {
            self.path.0.push(Segment::Index(index));
            let r = self.element(f, depth + 1)?;
            self.path.0.pop();
            if let Err(e) = r {
                return Ok(Err(e));
            }
            self.ws();
            match self.s.get(self.pos) {
                Some(b',') => {
                    self.pos += 1;
                    self.ws();
                    index += 1;
                }
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Ok(()));
                }
                _ => return Err(self.err("expected `,` or `]`")),
            }
        }
    }

    /// An array's element: a value, unless it is an object in a top-level member's array that
    /// [`Elements`] already knows.
    fn element<E>(
        &mut self,
        f: &mut impl FnMut(StringRef<'_>) -> Result<Option<String>, E>,
        depth: usize,
    ) -> Step<E> {
        let top_level = matches!(self.path.0.as_slice(), [Segment::Key(_), Segment::Index(_)]);
        if !top_level || self.s.get(self.pos) != Some(&b'{') {
            return self.value(f, depth);
        }
        let Some(elements) = self.elements.as_deref_mut() else {
            return self.value(f, depth);
        };
        let start = self.pos;
        if let Some(known) = elements.known(&self.path, start, &self.src[start..])
            && known > 0
            && start + known <= self.s.len()
        {
            self.pos += known;
            return Ok(Ok(()));
        }
        let r = self.value(f, depth)?;
        if let Some(elements) = self.elements.as_deref_mut() {
            elements.walked(&self.path, start, self.pos);
        }
        Ok(r)
    }

    /// Moves past a string literal starting at `pos`; returns the end (after the closing quote)
    /// and, when it has escapes, its decoded text: one pass does both.
    fn read_string(&mut self) -> Result<(usize, Option<String>), JsonError> {
        let open = self.pos;
        let mut i = open + 1;
        let mut plain = i;
        let mut decoded: Option<Vec<u8>> = None;
        loop {
            // Fast scan to the next quote or backslash.
            match memchr2(b'"', b'\\', &self.s[i..]) {
                Some(off) => i += off,
                None => {
                    self.pos = self.s.len();
                    return Err(self.err("unterminated string"));
                }
            }
            if self.s[i] == b'"' {
                self.pos = i + 1;
                let Some(mut out) = decoded else {
                    return Ok((i + 1, None));
                };
                out.extend_from_slice(&self.s[plain..i]);
                let text = String::from_utf8(out).map_err(|_| JsonError {
                    at: open,
                    what: "bad escape",
                })?;
                return Ok((i + 1, Some(text)));
            }
            let out = decoded.get_or_insert_with(|| Vec::with_capacity(self.s.len().min(4096)));
            out.extend_from_slice(&self.s[plain..i]);
            match unescape(self.s, i, out) {
                Some(next) => i = next,
                None if memchr::memchr(b'"', &self.s[i + 1..]).is_none() => {
                    self.pos = self.s.len();
                    return Err(self.err("unterminated string"));
                }
                None => {
                    return Err(JsonError {
                        at: open,
                        what: "bad escape",
                    });
                }
            }
            plain = i;
        }
    }

    fn string<E>(
        &mut self,
        f: &mut impl FnMut(StringRef<'_>) -> Result<Option<String>, E>,
        is_key: bool,
    ) -> Step<E> {
        let start = self.pos;
        let (end, decoded) = self.read_string()?;
        let raw = &self.src[start..end];
        let inner = &raw[1..raw.len() - 1];
        // Escaped or not, a string holds no raw control character (lenient parsers take them).
        if inner.bytes().any(|b| b < 0x20) {
            return Err(JsonError {
                at: start,
                what: "control character in string",
            });
        }
        let text = decoded.as_deref().unwrap_or(inner);
        match f(StringRef {
            text,
            path: &self.path,
            is_key,
            is_number: false,
            raw: inner,
            raw_start: start + 1,
        }) {
            Ok(Some(replacement)) => {
                let literal = serde_json::to_string(&replacement).expect("strings serialize");
                self.edits.push((start, end, literal));
                Ok(Ok(()))
            }
            Ok(None) => Ok(Ok(())),
            Err(e) => Ok(Err(e)),
        }
    }

    fn literal<E>(&mut self, word: &[u8]) -> Step<E> {
        if self.s[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(Ok(()))
        } else {
            Err(self.err("bad literal"))
        }
    }

    fn number<E>(
        &mut self,
        f: &mut impl FnMut(StringRef<'_>) -> Result<Option<String>, E>,
    ) -> Step<E> {
        let start = self.pos;
        while let Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') = self.s.get(self.pos) {
            self.pos += 1;
        }
        let literal = &self.src[start..self.pos];
        if !is_json_number(literal.as_bytes()) {
            return Err(JsonError {
                at: start,
                what: "bad number",
            });
        }
        if self.numbers
            && let Err(e) = f(StringRef {
                text: literal,
                path: &self.path,
                is_key: false,
                is_number: true,
                raw: literal,
                raw_start: start,
            })
        {
            return Ok(Err(e));
        }
        Ok(Ok(()))
    }
}

/// Whether `literal` is a number as JSON writes them: `-? (0 | [1-9][0-9]*) (. [0-9]+)?
/// ([eE] [+-]? [0-9]+)?`. Rust's float syntax is wider (`01`, `1.`, `.5`, `-.0E1`), and so are
/// lenient parsers upstream.
fn is_json_number(literal: &[u8]) -> bool {
    fn digits(b: &[u8], i: &mut usize) -> usize {
        let from = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - from
    }
    let b = literal;
    let mut i = usize::from(b.first() == Some(&b'-'));
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            digits(b, &mut i);
        }
        _ => return false,
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(b, &mut i) == 0 {
            return false;
        }
    }
    if let Some(b'e' | b'E') = b.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = b.get(i) {
            i += 1;
        }
        if digits(b, &mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// Decodes a JSON string literal (with its quotes). `None` for a malformed escape.
#[cfg(test)]
fn decode(raw: &str) -> Option<String> {
    let s = raw.as_bytes();
    let mut out = Vec::new();
    let mut i = 1;
    while i < s.len() - 1 {
        if s[i] == b'\\' {
            i = unescape(s, i, &mut out)?;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The escape at `s[at]` (a backslash) decoded onto `out`; the offset after it, or `None` when
/// it is malformed.
fn unescape(s: &[u8], at: usize, out: &mut Vec<u8>) -> Option<usize> {
    let mut i = at + 2;
    match *s.get(at + 1)? {
        b'"' => out.push(b'"'),
        b'\\' => out.push(b'\\'),
        b'/' => out.push(b'/'),
        b'b' => out.push(8),
        b'f' => out.push(12),
        b'n' => out.push(b'\n'),
        b'r' => out.push(b'\r'),
        b't' => out.push(b'\t'),
        b'u' => {
            let mut code = hex4(s.get(i..i + 4)?)?;
            i += 4;
            if (0xD800..0xDC00).contains(&code) {
                // A high surrogate must be followed by `\uDC00`-`\uDFFF`.
                if s.get(i..i + 2) != Some(b"\\u") {
                    return None;
                }
                let low = hex4(s.get(i + 2..i + 6)?)?;
                if !(0xDC00..0xE000).contains(&low) {
                    return None;
                }
                i += 6;
                code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
            }
            let c = char::from_u32(code)?;
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
        _ => return None,
    }
    Some(i)
}

/// Four hex digits; `from_str_radix` alone would take a sign (`\u+de0`).
fn hex4(digits: &[u8]) -> Option<u32> {
    if digits.len() != 4 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    std::str::from_utf8(digits)
        .ok()
        .and_then(|h| u32::from_str_radix(h, 16).ok())
}

fn memchr2(a: u8, b: u8, hay: &[u8]) -> Option<usize> {
    memchr::memchr2(a, b, hay)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upper_values(input: &str) -> Option<String> {
        rewrite_strings::<()>(input, |s| {
            Ok((!s.is_key && s.text.contains("secret")).then(|| s.text.replace("secret", "XX")))
        })
        .unwrap()
        .unwrap()
    }

    #[test]
    fn rewrites_only_changed_strings_and_keeps_the_rest_byte_for_byte() {
        let input = "{ \"a\" : [1, 2.5e3, true, null, \"keep\"],\n  \"b\": \"my secret\", \"secret\": \"x\" }";
        let out = upper_values(input).unwrap();
        assert_eq!(
            out,
            "{ \"a\" : [1, 2.5e3, true, null, \"keep\"],\n  \"b\": \"my XX\", \"secret\": \"x\" }"
        );
        assert_eq!(upper_values(r#"{"a":"nothing"}"#), None);
    }

    #[test]
    fn decodes_escapes_and_reencodes() {
        let input = r#"{"k":"line\nsecret \"q\" \u00e9"}"#;
        let out = upper_values(input).unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["k"], "line\nXX \"q\" é");
    }

    #[test]
    fn decodes_every_escape_like_serde_json() {
        for raw in [
            r#""plain""#,
            r#""a\"b\\c\/d\b\f\n\r\t""#,
            r#""\u00e9\u4e2d\ud83d\ude00""#,
            r#""mixed é and \u00e9""#,
        ] {
            assert_eq!(
                decode(raw),
                serde_json::from_str::<String>(raw).ok(),
                "{raw}"
            );
        }
        for bad in [r#""\x""#, r#""\ud83d""#, r#""\u12""#] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn unicode_escapes_take_exactly_four_hex_digits() {
        for bad in [r#""\u+de0""#, r#""\ud83d\u+e00""#, r#""\u-001""#] {
            assert_eq!(decode(bad), None, "{bad}");
            assert!(!is_valid(bad), "{bad}");
        }
        assert!(is_valid(r#""\u0DE0""#));
    }

    #[test]
    fn reports_paths() {
        let mut seen = Vec::new();
        rewrite_strings::<()>(r#"{"messages":[{"role":"user","content":"hi"}]}"#, |s| {
            if !s.is_key {
                seen.push(s.path.to_string());
            }
            Ok(None)
        })
        .unwrap()
        .unwrap();
        assert_eq!(seen, vec!["messages[0].role", "messages[0].content"]);
    }

    #[test]
    fn rejects_invalid_documents() {
        for bad in [
            "{",
            "{\"a\":}",
            "[1,]",
            "\"abc",
            "{\"a\":1} x",
            "nul",
            "{'a':1}",
        ] {
            assert!(!is_valid(bad), "{bad}");
        }
        let deep = "[".repeat(1000) + &"]".repeat(1000);
        assert!(!is_valid(&deep));
        for good in ["{}", "[]", "\"s\"", "-1.5e-3", " {\"a\":[{}]} "] {
            assert!(is_valid(good), "{good}");
        }
    }

    #[test]
    fn rejects_control_characters_in_strings_that_also_hold_escapes() {
        for bad in ["\"a\\n\u{1}\"", "{\"k\\t\u{1f}\":1}", "[\"\\\"\t\"]"] {
            assert!(!is_valid(bad), "{bad:?}");
            assert!(serde_json::from_str::<serde_json::Value>(bad).is_err());
        }
        assert!(is_valid("\"a\\n\\u0001\""));
    }

    #[test]
    fn numbers_follow_the_json_grammar_not_rusts_float_syntax() {
        for bad in [
            "01", "1.", ".5", "-.0E+122", "1.e5", "+1", "1e", "1e+", "--1", "-", "1E5.0",
        ] {
            assert!(!is_valid(bad), "{bad}");
            assert!(!is_valid(&format!("[{bad}]")), "[{bad}]");
        }
        for good in ["0", "-0", "10", "-0.0E+12", "1e400", "2.5e-3", "7E+0"] {
            assert!(is_valid(good), "{good}");
        }
    }

    #[test]
    fn callback_errors_stop_the_walk() {
        let r = rewrite_strings(r#"["a","stop","c"]"#, |s| {
            if s.text == "stop" {
                Err("stopped")
            } else {
                Ok(None)
            }
        })
        .unwrap();
        assert_eq!(r, Err("stopped"));
    }

    /// Knows every object whose path ends in an even index; records what it is asked and told.
    struct EveryOther {
        asked: Vec<(String, usize)>,
        walked: Vec<(String, usize, usize)>,
    }

    impl Elements for EveryOther {
        fn known(&mut self, path: &JsonPath<'_>, at: usize, rest: &str) -> Option<usize> {
            self.asked.push((path.to_string(), at));
            match path.0.last() {
                Some(Segment::Index(i)) if i % 2 == 0 => rest.find('}').map(|end| end + 1),
                _ => None,
            }
        }

        fn walked(&mut self, path: &JsonPath<'_>, start: usize, end: usize) {
            self.walked.push((path.to_string(), start, end));
        }
    }

    #[test]
    fn known_elements_of_top_level_arrays_are_not_walked() {
        let doc = r#"{"m":[{"a":"0"},{"a":"1"},"two",{"a":"3"},{"a":"4"}],"n":{"x":[{"a":"deep"}]},"t":[{"a":"t0"}]}"#;
        let mut elements = EveryOther {
            asked: Vec::new(),
            walked: Vec::new(),
        };
        let mut seen = Vec::new();
        walk_values_with(
            doc,
            |s| -> Result<(), ()> {
                if !s.is_key {
                    seen.push(s.text.to_owned());
                }
                Ok(())
            },
            Some(&mut elements),
        )
        .unwrap()
        .unwrap();
        // Only objects directly in a top-level member's array are asked about.
        let asked: Vec<&str> = elements.asked.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(asked, ["m[0]", "m[1]", "m[3]", "m[4]", "t[0]"]);
        assert_eq!(seen, ["1", "two", "3", "deep"]);
        let walked: Vec<&str> = elements
            .walked
            .iter()
            .map(|&(_, start, end)| &doc[start..end])
            .collect();
        assert_eq!(walked, [r#"{"a":"1"}"#, r#"{"a":"3"}"#]);
        // What follows a known element is still read strictly.
        let broken = r#"{"m":[{"a":"0"} x]}"#;
        let mut elements = EveryOther {
            asked: Vec::new(),
            walked: Vec::new(),
        };
        let r = walk_values_with(
            broken,
            |_| -> Result<(), ()> { Ok(()) },
            Some(&mut elements),
        );
        assert!(r.is_err());
    }
}
