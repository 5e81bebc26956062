//! Export to HAR 1.2, which browser devtools and other proxies' tools open: every recorded
//! exchange with its bodies as they crossed the wire.

use super::{Record, RecordKind};
use serde_json::{Value, json};

/// A HAR 1.2 document of the given exchanges (other kinds of record are left out).
pub fn har(records: &[(i64, Record)]) -> Value {
    let entries: Vec<Value> = records
        .iter()
        .filter(|(_, r)| r.kind == RecordKind::Exchange)
        .map(|(id, r)| entry(*id, r))
        .collect();
    json!({
        "log": {
            "version": "1.2",
            "creator": {"name": "tollgate", "version": env!("CARGO_PKG_VERSION")},
            "entries": entries,
        }
    })
}

fn entry(id: i64, r: &Record) -> Value {
    let scheme = if r.mode == "forwarded" {
        "http"
    } else {
        "https"
    };
    let url = format!("{scheme}://{}{}", r.host, r.path.as_deref().unwrap_or("/"));
    let ttfb = r.ttfb_ms.unwrap_or(r.duration_ms);
    let (response_text, encoding) = body_text(&r.response_body);
    let mut content = json!({
        "size": r.response_body.len(),
        "mimeType": mime_of(&r.response_body),
        "text": response_text,
    });
    if let Some(encoding) = encoding {
        content["encoding"] = encoding.into();
    }
    let (request_text, request_encoding) = body_text(&r.request_body);
    let mut entry = json!({
        "startedDateTime": r.started_at,
        "time": r.duration_ms,
        "request": {
            "method": r.method.as_deref().unwrap_or("GET"),
            "url": url,
            "httpVersion": "HTTP/1.1",
            "cookies": [],
            "headers": [],
            "queryString": [],
            "headersSize": -1,
            "bodySize": r.request_body.len(),
        },
        "response": {
            "status": r.status.unwrap_or(0),
            "statusText": r.outcome,
            "httpVersion": "HTTP/1.1",
            "cookies": [],
            "headers": [],
            "content": content,
            "redirectURL": "",
            "headersSize": -1,
            "bodySize": r.response_body.len(),
        },
        "cache": {},
        "timings": {"send": 0, "wait": ttfb, "receive": r.duration_ms.saturating_sub(ttfb)},
        "serverIPAddress": "",
        "comment": format!("tollgate exchange {id}, session {}, user {}", r.session_id, r.scope),
    });
    if !r.request_body.is_empty() {
        entry["request"]["postData"] = json!({
            "mimeType": mime_of(&r.request_body),
            "text": request_text,
        });
        if request_encoding.is_some() {
            entry["request"]["postData"]["comment"] = "base64 (the body is not UTF-8 text)".into();
        }
    }
    entry
}

/// The body as text, or base64 with the encoding HAR names for it.
fn body_text(body: &[u8]) -> (String, Option<&'static str>) {
    match std::str::from_utf8(body) {
        Ok(text) => (text.to_owned(), None),
        Err(_) => (base64(body), Some("base64")),
    }
}

fn mime_of(body: &[u8]) -> &'static str {
    let start = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map(|i| body[i]);
    if body.starts_with(b"data:") || body.starts_with(b"event:") {
        "text/event-stream"
    } else if matches!(start, Some(b'{' | b'[')) {
        "application/json"
    } else if std::str::from_utf8(body).is_ok() {
        "text/plain"
    } else {
        "application/octet-stream"
    }
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard_alphabet() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(&[0xff, 0xfe, 0x00, 0x81]), "//4AgQ==");
    }

    #[test]
    fn har_has_the_required_shape() {
        let mut r = Record::new(
            RecordKind::Exchange,
            "127.0.0.1:1",
            "127.0.0.1",
            "intercepted",
            "api.openai.com",
        );
        r.method = Some("POST".into());
        r.path = Some("/v1/chat/completions".into());
        r.status = Some(200);
        r.request_body = br#"{"model":"m"}"#[..].into();
        r.response_body = b"data: {}\n\n".to_vec();
        let doc = har(&[
            (1, r),
            (
                2,
                Record::new(RecordKind::Tunnel, "c", "s", "tunneled", "github.com"),
            ),
        ]);
        let entries = doc["log"]["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 1);
        let e = &entries[0];
        assert_eq!(doc["log"]["version"], "1.2");
        assert_eq!(
            e["request"]["url"],
            "https://api.openai.com/v1/chat/completions"
        );
        assert_eq!(e["request"]["postData"]["mimeType"], "application/json");
        assert_eq!(e["response"]["content"]["mimeType"], "text/event-stream");
        for field in ["startedDateTime", "time", "cache", "timings"] {
            assert!(!e[field].is_null(), "{field}");
        }
    }
}
