//! AWS event-stream framing (`application/vnd.amazon.eventstream`), the binary frames Bedrock's
//! InvokeModelWithResponseStream and ConverseStream answer with: read incrementally, checked
//! (both CRCs, every length, every header), and written back byte for byte.
//!
//! A frame is `total length` (u32 BE, the whole frame), `headers length` (u32 BE), a CRC-32 of
//! those 8 bytes, the headers, the payload, and a CRC-32 of everything before it.

/// Prelude: total length, headers length, prelude CRC.
const PRELUDE_LEN: usize = 12;
/// The message CRC that closes every frame.
const CRC_LEN: usize = 4;
/// The smallest frame: a prelude and a message CRC, no headers, no payload.
const MIN_FRAME_LEN: usize = PRELUDE_LEN + CRC_LEN;
/// Larger frames are refused (AWS's own limit is 16 MiB), before their bytes are awaited.
const MAX_FRAME_LEN: usize = 16 << 20;

/// One event-stream message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frame {
    /// In wire order; a name may repeat.
    pub headers: Vec<Header>,
    /// The message body (for Bedrock, JSON).
    pub payload: Vec<u8>,
}

/// One typed header of a frame (`:event-type`, `:content-type`, `:message-type`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// At most 255 bytes on the wire.
    pub name: String,
    /// The typed value.
    pub value: HeaderValue,
}

/// A header's value, one variant per wire type (0 to 9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderValue {
    /// Types 0 (true) and 1 (false), which carry no bytes.
    Bool(bool),
    /// Type 2.
    Byte(i8),
    /// Type 3.
    Short(i16),
    /// Type 4.
    Int(i32),
    /// Type 5.
    Long(i64),
    /// Type 6: at most 65535 bytes.
    Bytes(Vec<u8>),
    /// Type 7: UTF-8, at most 65535 bytes.
    String(String),
    /// Type 8: milliseconds since the Unix epoch.
    Timestamp(i64),
    /// Type 9.
    Uuid([u8; 16]),
}

/// Why bytes are not a valid event-stream frame. After one, the stream's framing is lost: a
/// reader keeps the bad bytes and returns the same error again.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The CRC of the first 8 bytes does not match: the lengths cannot be trusted.
    #[error("event-stream prelude CRC is {actual:#010x}, the prelude says {expected:#010x}")]
    BadPreludeCrc { expected: u32, actual: u32 },
    /// The CRC of the whole frame does not match.
    #[error("event-stream message CRC is {actual:#010x}, the frame says {expected:#010x}")]
    BadMessageCrc { expected: u32, actual: u32 },
    /// The total length is below 16 bytes or cannot hold the headers it declares.
    #[error("an event-stream frame of {total} bytes cannot hold {headers} bytes of headers")]
    InconsistentLengths { total: usize, headers: usize },
    /// A header is cut short, has an unknown value type, or is not UTF-8 where it must be.
    #[error("event-stream header at byte {at} of the headers: {reason}")]
    BadHeader { at: usize, reason: &'static str },
    /// The total length is over 16 MiB.
    #[error("an event-stream frame of {len} bytes is over the {MAX_FRAME_LEN}-byte limit")]
    FrameTooLarge { len: usize },
    /// [`decode_frame`] was given less than the frame.
    #[error("an event-stream frame needs {needed} bytes, only {given} were given")]
    Truncated { needed: usize, given: usize },
    /// [`decode_frame`] was given bytes past the end of the frame.
    #[error("{extra} bytes follow the event-stream frame")]
    TrailingBytes { extra: usize },
}

impl Frame {
    /// An event frame as AWS streams send them: `:event-type`, `:content-type:
    /// application/json`, `:message-type: event`, and a JSON payload.
    pub fn json_event(event_type: &str, payload: Vec<u8>) -> Self {
        let header = |name: &str, value: &str| Header {
            name: name.into(),
            value: HeaderValue::String(value.into()),
        };
        Self {
            headers: vec![
                header(":event-type", event_type),
                header(":content-type", "application/json"),
                header(":message-type", "event"),
            ],
            payload,
        }
    }

    /// The value of the first header called `name`, when it is a string.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        match &self.headers.iter().find(|h| h.name == name)?.value {
            HeaderValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// The frame's bytes, CRCs recomputed: `decode_frame(&f.encode()) == Ok(f)`, and a decoded
    /// frame encodes to the bytes it came from. The wire cannot carry a header name over 255
    /// bytes or a value over 65535; such a name or value is cut to fit (at a character
    /// boundary). A frame over 16 MiB is written but will not be read back.
    pub fn encode(&self) -> Vec<u8> {
        let mut headers = Vec::new();
        for header in &self.headers {
            encode_header(header, &mut headers);
        }
        let total = PRELUDE_LEN + headers.len() + self.payload.len() + CRC_LEN;
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(&be_len(total));
        out.extend_from_slice(&be_len(headers.len()));
        let prelude_crc = crc32fast::hash(&out);
        out.extend_from_slice(&prelude_crc.to_be_bytes());
        out.extend_from_slice(&headers);
        out.extend_from_slice(&self.payload);
        let message_crc = crc32fast::hash(&out);
        out.extend_from_slice(&message_crc.to_be_bytes());
        out
    }
}

/// Incremental reader: push bytes as they arrive, take whole frames out.
#[derive(Debug, Default)]
pub struct FrameReader {
    buf: Vec<u8>,
    /// Bytes of `buf` before this belong to frames already taken.
    start: usize,
}

impl FrameReader {
    /// Appends bytes that arrived.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame, decoded; `Ok(None)` until its last byte has been pushed. A bad
    /// prelude (CRC, lengths, size) is reported as soon as its 12 bytes are in.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        self.take(parse_frame)
    }

    /// The next whole frame's bytes, checked as [`FrameReader::next_frame`] checks them, for
    /// callers that pass frames on unchanged.
    pub fn next_raw(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        self.take(|bytes| {
            parse_frame(bytes)?;
            Ok(bytes.to_vec())
        })
    }

    /// Bytes pushed but not yet taken as a frame: empty at a frame boundary, so a stream that
    /// ends with bytes here was cut mid-frame.
    pub fn remaining(&self) -> &[u8] {
        self.buf.get(self.start..).unwrap_or_default()
    }

    fn take<T>(
        &mut self,
        parse: impl FnOnce(&[u8]) -> Result<T, FrameError>,
    ) -> Result<Option<T>, FrameError> {
        let available = self.remaining();
        let Some(len) = frame_len(available)? else {
            return Ok(None);
        };
        let Some(bytes) = available.get(..len) else {
            return Ok(None);
        };
        let out = parse(bytes)?;
        self.start += len;
        Ok(Some(out))
    }
}

/// Decodes `bytes`, which must be exactly one frame.
pub fn decode_frame(bytes: &[u8]) -> Result<Frame, FrameError> {
    let Some(len) = frame_len(bytes)? else {
        return Err(FrameError::Truncated {
            needed: PRELUDE_LEN,
            given: bytes.len(),
        });
    };
    if bytes.len() < len {
        return Err(FrameError::Truncated {
            needed: len,
            given: bytes.len(),
        });
    }
    if bytes.len() > len {
        return Err(FrameError::TrailingBytes {
            extra: bytes.len() - len,
        });
    }
    parse_frame(bytes)
}

/// The total length of the frame `bytes` starts with, its prelude checked; `None` while the
/// prelude is incomplete.
fn frame_len(bytes: &[u8]) -> Result<Option<usize>, FrameError> {
    let (Some(total), Some(headers), Some(expected)) =
        (be_u32(bytes, 0), be_u32(bytes, 4), be_u32(bytes, 8))
    else {
        return Ok(None);
    };
    let actual = crc32fast::hash(bytes.get(..8).unwrap_or_default());
    if actual != expected {
        return Err(FrameError::BadPreludeCrc { expected, actual });
    }
    let (total, headers) = (total as usize, headers as usize);
    if total > MAX_FRAME_LEN {
        return Err(FrameError::FrameTooLarge { len: total });
    }
    if total < MIN_FRAME_LEN || headers > total - MIN_FRAME_LEN {
        return Err(FrameError::InconsistentLengths { total, headers });
    }
    Ok(Some(total))
}

/// Decodes one frame whose prelude [`frame_len`] accepted and whose length it gave.
fn parse_frame(frame: &[u8]) -> Result<Frame, FrameError> {
    let inconsistent = || FrameError::InconsistentLengths {
        total: frame.len(),
        headers: be_u32(frame, 4).unwrap_or_default() as usize,
    };
    let (body, crc) = frame
        .len()
        .checked_sub(CRC_LEN)
        .and_then(|at| frame.split_at_checked(at))
        .ok_or_else(inconsistent)?;
    let expected = be_u32(crc, 0).ok_or_else(inconsistent)?;
    let actual = crc32fast::hash(body);
    if actual != expected {
        return Err(FrameError::BadMessageCrc { expected, actual });
    }
    let headers_len = be_u32(body, 4).ok_or_else(inconsistent)? as usize;
    let (headers, payload) = body
        .get(PRELUDE_LEN..)
        .and_then(|rest| rest.split_at_checked(headers_len))
        .ok_or_else(inconsistent)?;
    Ok(Frame {
        headers: parse_headers(headers)?,
        payload: payload.to_vec(),
    })
}

fn parse_headers(bytes: &[u8]) -> Result<Vec<Header>, FrameError> {
    let mut cursor = Cursor { bytes, at: 0 };
    let mut headers = Vec::new();
    while cursor.at < bytes.len() {
        let start = cursor.at;
        let bad = |reason| FrameError::BadHeader { at: start, reason };
        let name_len = cursor.array::<1>().ok_or_else(|| bad("no name length"))?[0];
        let name = cursor
            .take(usize::from(name_len))
            .ok_or_else(|| bad("the name runs past the headers"))?;
        let name = std::str::from_utf8(name).map_err(|_| bad("the name is not UTF-8"))?;
        let value = read_value(&mut cursor).map_err(bad)?;
        headers.push(Header {
            name: name.to_owned(),
            value,
        });
    }
    Ok(headers)
}

fn read_value(cursor: &mut Cursor<'_>) -> Result<HeaderValue, &'static str> {
    const SHORT: &str = "the value runs past the headers";
    let kind = cursor.array::<1>().ok_or("no value type")?[0];
    Ok(match kind {
        0 => HeaderValue::Bool(true),
        1 => HeaderValue::Bool(false),
        2 => HeaderValue::Byte(i8::from_be_bytes(cursor.array().ok_or(SHORT)?)),
        3 => HeaderValue::Short(i16::from_be_bytes(cursor.array().ok_or(SHORT)?)),
        4 => HeaderValue::Int(i32::from_be_bytes(cursor.array().ok_or(SHORT)?)),
        5 => HeaderValue::Long(i64::from_be_bytes(cursor.array().ok_or(SHORT)?)),
        6 => HeaderValue::Bytes(cursor.sized().ok_or(SHORT)?.to_vec()),
        7 => HeaderValue::String(
            std::str::from_utf8(cursor.sized().ok_or(SHORT)?)
                .map_err(|_| "the string value is not UTF-8")?
                .to_owned(),
        ),
        8 => HeaderValue::Timestamp(i64::from_be_bytes(cursor.array().ok_or(SHORT)?)),
        9 => HeaderValue::Uuid(cursor.array().ok_or(SHORT)?),
        _ => return Err("unknown value type"),
    })
}

/// Reads a header block front to back, every read bounds-checked.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let out = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(out)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    /// A u16 BE length, then that many bytes.
    fn sized(&mut self) -> Option<&'a [u8]> {
        let len = u16::from_be_bytes(self.array()?);
        self.take(usize::from(len))
    }
}

fn encode_header(header: &Header, out: &mut Vec<u8>) {
    let name = cut_str(&header.name, usize::from(u8::MAX));
    out.push(name.len() as u8);
    out.extend_from_slice(name.as_bytes());
    match &header.value {
        HeaderValue::Bool(true) => out.push(0),
        HeaderValue::Bool(false) => out.push(1),
        HeaderValue::Byte(v) => {
            out.push(2);
            out.extend_from_slice(&v.to_be_bytes());
        }
        HeaderValue::Short(v) => {
            out.push(3);
            out.extend_from_slice(&v.to_be_bytes());
        }
        HeaderValue::Int(v) => {
            out.push(4);
            out.extend_from_slice(&v.to_be_bytes());
        }
        HeaderValue::Long(v) => {
            out.push(5);
            out.extend_from_slice(&v.to_be_bytes());
        }
        HeaderValue::Bytes(v) => {
            out.push(6);
            push_sized(v.get(..usize::from(u16::MAX)).unwrap_or(v), out);
        }
        HeaderValue::String(v) => {
            out.push(7);
            push_sized(cut_str(v, usize::from(u16::MAX)).as_bytes(), out);
        }
        HeaderValue::Timestamp(v) => {
            out.push(8);
            out.extend_from_slice(&v.to_be_bytes());
        }
        HeaderValue::Uuid(v) => {
            out.push(9);
            out.extend_from_slice(v);
        }
    }
}

/// `bytes`, at most 65535 of them (callers cut), after their u16 BE length.
fn push_sized(bytes: &[u8], out: &mut Vec<u8>) {
    let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes.get(..usize::from(len)).unwrap_or(bytes));
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn cut_str(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

/// A length as the wire's u32 BE; one past u32 cannot be written, and saturates.
fn be_len(len: usize) -> [u8; 4] {
    u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes()
}

fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let end = at.checked_add(4)?;
    Some(u32::from_be_bytes(bytes.get(at..end)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &str, value: HeaderValue) -> Header {
        Header {
            name: name.to_owned(),
            value,
        }
    }

    fn every_header_type() -> Frame {
        Frame {
            headers: vec![
                header("true", HeaderValue::Bool(true)),
                header("false", HeaderValue::Bool(false)),
                header("byte", HeaderValue::Byte(-7)),
                header("short", HeaderValue::Short(-300)),
                header("int", HeaderValue::Int(0x1234_5678)),
                header("long", HeaderValue::Long(-0x0123_4567_89ab_cdef)),
                header("bytes", HeaderValue::Bytes(vec![0, 1, 2, 255])),
                header("string", HeaderValue::String("région ✓".into())),
                header("time", HeaderValue::Timestamp(1_700_000_000_123)),
                header("uuid", HeaderValue::Uuid(*b"0123456789abcdef")),
                header("empty", HeaderValue::String(String::new())),
            ],
            payload: b"{\"hello\":\"world\"}".to_vec(),
        }
    }

    /// CRC-32/IEEE bit by bit, independent of `crc32fast`.
    fn reference_crc(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    fn three_frames() -> (Vec<Frame>, Vec<u8>) {
        let frames = vec![
            every_header_type(),
            Frame::default(),
            Frame {
                headers: vec![header(":event-type", HeaderValue::String("chunk".into()))],
                payload: vec![b'x'; 300],
            },
        ];
        let bytes = frames.iter().flat_map(Frame::encode).collect();
        (frames, bytes)
    }

    /// A frame with a valid prelude CRC for these lengths, the rest as given.
    fn with_prelude(total: u32, headers: u32, rest: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&total.to_be_bytes());
        out.extend_from_slice(&headers.to_be_bytes());
        out.extend_from_slice(&reference_crc(&out).to_be_bytes());
        out.extend_from_slice(rest);
        out
    }

    /// A frame with these header bytes and both CRCs valid.
    fn with_raw_headers(headers: &[u8], payload: &[u8]) -> Vec<u8> {
        let total = (MIN_FRAME_LEN + headers.len() + payload.len()) as u32;
        let mut out = with_prelude(total, headers.len() as u32, headers);
        out.extend_from_slice(payload);
        let crc = reference_crc(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    #[test]
    fn reference_crc_is_crc32_ieee() {
        assert_eq!(reference_crc(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32fast::hash(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn round_trips_every_header_type() {
        let frame = every_header_type();
        let bytes = frame.encode();
        let decoded = decode_frame(&bytes).unwrap();
        assert_eq!(decoded, frame);
        assert_eq!(decoded.encode(), bytes);
        assert_eq!(
            decode_frame(&Frame::default().encode()).unwrap(),
            Frame::default()
        );
    }

    #[test]
    fn encodes_the_aws_empty_message_vector() {
        // `empty_message` of the AWS event-stream test suite.
        let expected = [
            0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x05, 0xc2, 0x48, 0xeb, 0x7d, 0x98,
            0xc8, 0xff,
        ];
        assert_eq!(Frame::default().encode(), expected);
        assert_eq!(decode_frame(&expected).unwrap(), Frame::default());
    }

    #[test]
    fn decodes_a_hand_built_bedrock_chunk() {
        let payload = br#"{"bytes":"eyJ0eXBlIjoicGluZyJ9"}"#;
        let mut bytes = vec![
            0x00, 0x00, 0x00, 0x7b, // total: 12 + 75 + 32 + 4 = 123
            0x00, 0x00, 0x00, 0x4b, // headers: 75
            0x0a, 0x2e, 0x96, 0xaf, // prelude CRC (Python's zlib.crc32)
        ];
        for (name, value) in [
            (":event-type", "chunk"),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ] {
            bytes.push(name.len() as u8);
            bytes.extend_from_slice(name.as_bytes());
            bytes.push(7);
            bytes.extend_from_slice(&(value.len() as u16).to_be_bytes());
            bytes.extend_from_slice(value.as_bytes());
        }
        bytes.extend_from_slice(payload);
        bytes.extend_from_slice(&[0xa0, 0x1f, 0x56, 0xc4]); // message CRC (Python's zlib.crc32)
        assert_eq!(bytes.len(), 123);
        assert_eq!(reference_crc(&bytes[..8]), 0x0a2e_96af);
        assert_eq!(reference_crc(&bytes[..119]), 0xa01f_56c4);

        let frame = decode_frame(&bytes).unwrap();
        assert_eq!(frame.header_str(":event-type"), Some("chunk"));
        assert_eq!(frame.header_str(":content-type"), Some("application/json"));
        assert_eq!(frame.header_str(":message-type"), Some("event"));
        assert_eq!(frame.header_str(":exception-type"), None);
        assert_eq!(frame.payload, payload);
        assert_eq!(frame.encode(), bytes);
    }

    #[test]
    fn header_str_ignores_headers_of_other_types() {
        let frame = every_header_type();
        assert_eq!(frame.header_str("string"), Some("région ✓"));
        assert_eq!(frame.header_str("int"), None);
        assert_eq!(frame.header_str("bytes"), None);
    }

    #[test]
    fn reader_yields_the_same_frames_however_the_input_is_split() {
        let (frames, bytes) = three_frames();
        for cut in 0..=bytes.len() {
            let mut reader = FrameReader::default();
            let mut got = Vec::new();
            for part in [&bytes[..cut], &bytes[cut..]] {
                reader.push(part);
                while let Some(frame) = reader.next_frame().unwrap() {
                    got.push(frame);
                }
            }
            assert_eq!(got, frames, "cut at {cut}");
            assert!(reader.remaining().is_empty(), "cut at {cut}");
        }
    }

    #[test]
    fn reader_yields_raw_frames_fed_one_byte_at_a_time() {
        let (frames, bytes) = three_frames();
        let mut reader = FrameReader::default();
        let mut got = Vec::new();
        for b in &bytes {
            reader.push(std::slice::from_ref(b));
            while let Some(raw) = reader.next_raw().unwrap() {
                got.push(raw);
            }
        }
        let expected: Vec<Vec<u8>> = frames.iter().map(Frame::encode).collect();
        assert_eq!(got, expected);
        assert_eq!(got.concat(), bytes);
    }

    #[test]
    fn remaining_holds_an_unfinished_frame() {
        let (_, bytes) = three_frames();
        let first = every_header_type().encode().len();
        let mut reader = FrameReader::default();
        reader.push(&bytes[..first + 5]);
        assert!(reader.next_frame().unwrap().is_some());
        assert!(reader.next_frame().unwrap().is_none());
        assert_eq!(reader.remaining(), &bytes[first..first + 5]);
    }

    #[test]
    fn rejects_a_corrupted_prelude_crc() {
        let mut bytes = every_header_type().encode();
        bytes[9] ^= 0x01;
        assert!(matches!(
            decode_frame(&bytes),
            Err(FrameError::BadPreludeCrc { .. })
        ));
        // A reader says so once the prelude is in, and keeps saying so.
        let mut reader = FrameReader::default();
        reader.push(&bytes[..PRELUDE_LEN]);
        assert!(matches!(
            reader.next_frame(),
            Err(FrameError::BadPreludeCrc { .. })
        ));
        assert!(matches!(
            reader.next_raw(),
            Err(FrameError::BadPreludeCrc { .. })
        ));
        // A flipped length is caught by the same CRC.
        let mut bytes = every_header_type().encode();
        bytes[3] ^= 0x01;
        assert!(matches!(
            decode_frame(&bytes),
            Err(FrameError::BadPreludeCrc { .. })
        ));
    }

    #[test]
    fn rejects_a_corrupted_message_crc() {
        let good = every_header_type().encode();
        for at in [PRELUDE_LEN, good.len() / 2, good.len() - 5, good.len() - 1] {
            let mut bytes = good.clone();
            bytes[at] ^= 0x80;
            assert!(
                matches!(decode_frame(&bytes), Err(FrameError::BadMessageCrc { .. })),
                "byte {at}"
            );
            let mut reader = FrameReader::default();
            reader.push(&bytes);
            assert!(matches!(
                reader.next_raw(),
                Err(FrameError::BadMessageCrc { .. })
            ));
        }
    }

    #[test]
    fn truncated_frames_are_errors() {
        let bytes = every_header_type().encode();
        for len in 0..bytes.len() {
            assert!(
                matches!(
                    decode_frame(&bytes[..len]),
                    Err(FrameError::Truncated { .. })
                ),
                "{len} bytes"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            decode_frame(&longer),
            Err(FrameError::TrailingBytes { extra: 1 })
        ));
    }

    #[test]
    fn absurd_lengths_are_errors_before_their_bytes_arrive() {
        for (total, headers) in [(u32::MAX, 0), ((16 << 20) + 1, 0)] {
            let mut reader = FrameReader::default();
            reader.push(&with_prelude(total, headers, &[]));
            assert!(matches!(
                reader.next_frame(),
                Err(FrameError::FrameTooLarge { .. })
            ));
        }
        for (total, headers) in [(0, 0), (15, 0), (16, 1), (100, 85), (100, u32::MAX)] {
            let mut reader = FrameReader::default();
            reader.push(&with_prelude(total, headers, &[]));
            assert!(
                matches!(
                    reader.next_frame(),
                    Err(FrameError::InconsistentLengths { .. })
                ),
                "{total}/{headers}"
            );
        }
        // The largest headers length that fits is accepted.
        let frame = with_raw_headers(&[], b"abc");
        assert!(decode_frame(&frame).is_ok());
    }

    #[test]
    fn malformed_headers_are_errors() {
        let cases: [&[u8]; 8] = [
            &[4, b'n', b'a'],                // name runs past the headers
            &[1, b'n'],                      // no value type
            &[1, b'n', 10],                  // unknown value type
            &[1, b'n', 4, 0, 0, 0],          // integer cut short
            &[1, b'n', 7, 0, 5, b'a', b'b'], // string cut short
            &[1, b'n', 7, 0, 2, 0xff, 0xfe], // string not UTF-8
            &[1, 0xff, 0],                   // name not UTF-8
            &[1, b'n', 9, 1, 2, 3, 4, 5, 6], // uuid cut short
        ];
        for headers in cases {
            let bytes = with_raw_headers(headers, b"{}");
            assert!(
                matches!(decode_frame(&bytes), Err(FrameError::BadHeader { .. })),
                "{headers:?}"
            );
            let mut reader = FrameReader::default();
            reader.push(&bytes);
            assert!(reader.next_raw().is_err(), "{headers:?}");
        }
    }

    #[test]
    fn overlong_names_and_values_are_cut_to_fit() {
        let frame = Frame {
            headers: vec![
                header(&"é".repeat(200), HeaderValue::Bool(true)),
                header("s", HeaderValue::String("✓".repeat(30_000))),
                header("b", HeaderValue::Bytes(vec![7; 70_000])),
            ],
            payload: Vec::new(),
        };
        let decoded = decode_frame(&frame.encode()).unwrap();
        assert_eq!(decoded.headers[0].name, "é".repeat(127));
        assert_eq!(
            decoded.headers[1].value,
            HeaderValue::String("✓".repeat(21_845))
        );
        assert_eq!(
            decoded.headers[2].value,
            HeaderValue::Bytes(vec![7; 65_535])
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn read_all(bytes: &[u8], cuts: &[usize]) {
            let mut reader = FrameReader::default();
            let mut at = 0;
            for &cut in cuts.iter().chain([&bytes.len()]) {
                let cut = cut.min(bytes.len()).max(at);
                reader.push(&bytes[at..cut]);
                at = cut;
                while let Ok(Some(_)) = reader.next_frame() {}
                let _ = reader.next_raw();
            }
            let _ = reader.remaining();
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn random_bytes_never_panic(
                bytes in proptest::collection::vec(any::<u8>(), 0..300),
                mut cuts in proptest::collection::vec(0usize..300, 0..6),
            ) {
                cuts.sort_unstable();
                let _ = decode_frame(&bytes);
                read_all(&bytes, &cuts);
            }

            #[test]
            fn random_headers_behind_valid_crcs_never_panic(
                headers in proptest::collection::vec(any::<u8>(), 0..200),
                payload in proptest::collection::vec(any::<u8>(), 0..50),
            ) {
                let bytes = with_raw_headers(&headers, &payload);
                if let Ok(frame) = decode_frame(&bytes) {
                    prop_assert_eq!(frame.encode(), bytes.clone());
                }
                read_all(&bytes, &[]);
            }
        }
    }
}
