//! The one server-sent-events reader, used by restoring and recording alike: where an event
//! ends, its `event:` name, its `data:` lines joined with `\n` as the SSE specification says,
//! and comment lines (`: keep-alive`) told apart.

/// Where the first complete event in `buf` ends: (end of its lines, length of the blank line
/// that ends it). `None` while the event is still arriving.
pub fn event_end(buf: &[u8]) -> Option<(usize, usize)> {
    for i in memchr::memchr2_iter(b'\n', b'\r', buf) {
        match (buf[i], buf.get(i + 1), buf.get(i + 2)) {
            (b'\n', Some(b'\n'), _) => return Some((i + 1, 1)),
            (b'\n', Some(b'\r'), Some(b'\n')) => return Some((i + 1, 2)),
            // CR-only line endings, which the SSE specification also allows.
            (b'\r', Some(b'\r'), _) => return Some((i + 1, 1)),
            // A lone CR at the end of what arrived may still become CRLF.
            (b'\n', Some(b'\r'), None) => return None,
            _ => {}
        }
    }
    None
}

/// An event's lines, each with its line ending (`\n`, `\r\n` or `\r`).
pub fn lines(event: &str) -> impl Iterator<Item = &str> {
    let mut rest = event;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let b = rest.as_bytes();
        let end = match memchr::memchr2(b'\n', b'\r', b) {
            Some(i) if b[i] == b'\r' && b.get(i + 1) == Some(&b'\n') => i + 2,
            Some(i) => i + 1,
            None => b.len(),
        };
        let (line, tail) = rest.split_at(end);
        rest = tail;
        Some(line)
    })
}

/// The fields of one event.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Fields<'a> {
    /// The `event:` line's value, if any.
    pub event: Option<&'a str>,
    /// The `data:` lines, joined with `\n`; `None` when there is none.
    pub data: Option<String>,
}

/// Reads one event's lines (without the blank line that ends it).
pub fn fields(event: &str) -> Fields<'_> {
    let mut out = Fields::default();
    for line in lines(event) {
        let line = line.trim_end_matches(['\n', '\r']);
        let (name, value) = match line.split_once(':') {
            Some((name, value)) => (name, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match name {
            "data" => match &mut out.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => out.data = Some(value.to_owned()),
            },
            "event" => out.event = Some(value),
            _ => {}
        }
    }
    out
}

/// Every complete event of a whole SSE body, in order.
pub fn events(body: &str) -> impl Iterator<Item = Fields<'_>> {
    let mut rest = body;
    std::iter::from_fn(move || {
        loop {
            let (end, sep) = event_end(rest.as_bytes()).or_else(|| {
                // The last event of a body may lack its blank line.
                (!rest.trim().is_empty()).then_some((rest.len(), 0))
            })?;
            let event = &rest[..end];
            rest = &rest[end + sep..];
            let f = fields(event);
            if f.data.is_some() || f.event.is_some() {
                return Some(f);
            }
        }
    })
}

/// Writes `data` as `data:` lines, each ended by `eol` (the stream's own line ending).
pub fn write_data(data: &str, eol: &str, out: &mut Vec<u8>) {
    for line in data.split('\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(eol.as_bytes());
    }
}

/// The line ending an event uses.
pub fn line_ending(event: &str) -> &'static str {
    if event.contains("\r\n") {
        "\r\n"
    } else if event.contains('\n') || !event.contains('\r') {
        "\n"
    } else {
        "\r"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_multi_line_data_and_skips_comments() {
        let body = ": keep-alive\n\nevent: x\ndata: {\"a\":\ndata: 1}\n\ndata:[DONE]\r\n\r\n";
        let all: Vec<_> = events(body).collect();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].event, Some("x"));
        assert_eq!(all[0].data.as_deref(), Some("{\"a\":\n1}"));
        assert_eq!(all[1].data.as_deref(), Some("[DONE]"));
        assert_eq!(event_end(b"data: a\n"), None);
        assert_eq!(event_end(b"data: a\r\n\r\nx"), Some((9, 2)));
        assert_eq!(event_end(b"data: a\r\rdata: b"), Some((8, 1)));
        let cr: Vec<_> = events("data: a\r\rdata: b\r\r").collect();
        assert_eq!(cr.len(), 2);
        assert_eq!(cr[1].data.as_deref(), Some("b"));
    }
}
