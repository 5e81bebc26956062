//! Request bodies arrive compressed (Codex CLI sends zstd): decode gzip, deflate, br and zstd,
//! stacked as `Content-Encoding` lists them, never past a size cap (decompression bombs).

use bytes::Bytes;
use std::io::Read;

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("the request body is larger than {limit} bytes once decoded")]
    TooLarge { limit: usize },
    #[error("content-encoding `{0}` is not supported, so the body cannot be inspected")]
    Unsupported(String),
    #[error("the request body is not valid {encoding}: {reason}")]
    Corrupt { encoding: String, reason: String },
}

/// A decoded body, and whether decoding changed it (so the encoding header must go).
pub struct Decoded {
    pub bytes: Bytes,
    pub changed: bool,
}

/// Undoes `content_encoding` (a comma-separated list, applied in order) on `body`.
pub fn decode(
    content_encoding: Option<&str>,
    body: Bytes,
    limit: usize,
) -> Result<Decoded, DecodeError> {
    if body.len() > limit {
        return Err(DecodeError::TooLarge { limit });
    }
    let codings: Vec<String> = content_encoding
        .unwrap_or("")
        .split(',')
        .map(|c| c.trim().to_ascii_lowercase())
        .filter(|c| !c.is_empty() && c != "identity")
        .collect();
    let mut bytes = body;
    // Applied in the order listed, so undone in reverse.
    for coding in codings.iter().rev() {
        let reader: Box<dyn Read + '_> = match coding.as_str() {
            "gzip" | "x-gzip" => Box::new(flate2::read::MultiGzDecoder::new(&bytes[..])),
            "deflate" => Box::new(flate2::read::ZlibDecoder::new(&bytes[..])),
            "br" => Box::new(brotli::Decompressor::new(&bytes[..], 8192)),
            "zstd" => Box::new(
                zstd::stream::read::Decoder::new(&bytes[..]).map_err(|e| corrupt(coding, e))?,
            ),
            other => return Err(DecodeError::Unsupported(other.to_owned())),
        };
        let mut out = Vec::new();
        reader
            .take(limit as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| corrupt(coding, e))?;
        if out.len() > limit {
            return Err(DecodeError::TooLarge { limit });
        }
        bytes = Bytes::from(out);
    }
    Ok(Decoded {
        bytes,
        changed: !codings.is_empty(),
    })
}

fn corrupt(coding: &str, e: std::io::Error) -> DecodeError {
    DecodeError::Corrupt {
        encoding: coding.to_owned(),
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn decodes_each_encoding() {
        let data = b"{\"hello\":\"world\"}".repeat(50);
        let z = zstd::encode_all(&data[..], 3).unwrap();
        let mut br = Vec::new();
        brotli::BrotliCompress(&mut &data[..], &mut br, &Default::default()).unwrap();
        let mut deflate =
            flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        deflate.write_all(&data).unwrap();
        for (enc, body) in [
            ("gzip", gzip(&data)),
            ("zstd", z),
            ("br", br),
            ("deflate", deflate.finish().unwrap()),
            ("identity", data.clone()),
        ] {
            let d = decode(Some(enc), Bytes::from(body), 1 << 20).unwrap();
            assert_eq!(&d.bytes[..], &data[..], "{enc}");
        }
        let stacked = gzip(&zstd::encode_all(&data[..], 3).unwrap());
        let d = decode(Some("zstd, gzip"), Bytes::from(stacked), 1 << 20).unwrap();
        assert_eq!(&d.bytes[..], &data[..]);
    }

    #[test]
    fn refuses_bombs_unknown_and_corrupt_encodings() {
        let bomb = gzip(&vec![b'a'; 10 << 20]);
        assert!(bomb.len() < 100_000);
        assert!(matches!(
            decode(Some("gzip"), Bytes::from(bomb), 1 << 20),
            Err(DecodeError::TooLarge { .. })
        ));
        assert!(matches!(
            decode(Some("compress"), Bytes::from_static(b"x"), 100),
            Err(DecodeError::Unsupported(_))
        ));
        assert!(matches!(
            decode(Some("gzip"), Bytes::from_static(b"not gzip"), 100),
            Err(DecodeError::Corrupt { .. })
        ));
    }
}
