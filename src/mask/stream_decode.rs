//! Response bodies stream back compressed: undo gzip, deflate, br and zstd, stacked as
//! `Content-Encoding` lists them, chunk by chunk as the chunks arrive, never past a size cap.
//! [`super::decode`] does the same for a whole body.

use super::decode::DecodeError;
use std::borrow::Cow;
use std::io::{self, Write};

/// Decodes a body pushed in chunks. Each push returns what the decompressors can give at once,
/// so a stream (SSE, event-stream) is never held back whole.
pub struct StreamDecoder {
    /// The last listed coding first: the order they are undone in.
    stages: Vec<Stage>,
    limit: usize,
    state: State,
}

enum State {
    Open,
    /// `finish` returned: the decompressors may not be written again.
    Finished,
    /// A push or `finish` failed: nothing past that point can be decoded.
    Failed(Failure),
}

/// What a failure was, to answer again every later call.
enum Failure {
    TooLarge,
    Corrupt { encoding: String },
}

impl StreamDecoder {
    /// `None` when the content-encoding is identity/empty; Err(Unsupported) for unknown codings.
    /// `content_encoding` is a comma-separated list, applied in order; `limit` caps the decoded
    /// bytes of the whole stream (and of each stage of a stacked one).
    pub fn new(content_encoding: &str, limit: usize) -> Result<Option<Self>, DecodeError> {
        let codings: Vec<String> = content_encoding
            .split(',')
            .map(|c| c.trim().to_ascii_lowercase())
            .filter(|c| !c.is_empty() && c != "identity")
            .collect();
        if codings.is_empty() {
            return Ok(None);
        }
        let stages = codings
            .into_iter()
            .rev()
            .map(|coding| Stage::new(coding, limit))
            .collect::<Result<_, _>>()?;
        Ok(Some(Self {
            stages,
            limit,
            state: State::Open,
        }))
    }

    /// Feeds compressed bytes; returns the decoded bytes available now (may be empty). Every
    /// decompressor is flushed, so what the input so far decodes to comes out now.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<u8>, DecodeError> {
        self.check_open()?;
        let mut data = Cow::Borrowed(chunk);
        for stage in &mut self.stages {
            if data.is_empty() {
                // Every later stage was flushed by the previous push: nothing is pending there.
                return Ok(Vec::new());
            }
            match stage.push(&data) {
                Ok(out) => data = Cow::Owned(out),
                Err(e) => return Err(self.fail(e)),
            }
        }
        Ok(data.into_owned())
    }

    /// The compressed stream ended: returns the rest; an error if it was truncated mid-member.
    /// A stream that never received a byte decodes to nothing. Later calls return nothing more.
    pub fn finish(&mut self) -> Result<Vec<u8>, DecodeError> {
        if matches!(self.state, State::Finished) {
            return Ok(Vec::new());
        }
        self.check_open()?;
        self.state = State::Finished;
        let mut data = Vec::new();
        for stage in &mut self.stages {
            match stage.finish(&data) {
                Ok(out) => data = out,
                Err(e) => return Err(self.fail(e)),
            }
        }
        Ok(data)
    }

    fn check_open(&self) -> Result<(), DecodeError> {
        match &self.state {
            State::Open => Ok(()),
            State::Finished => Err(DecodeError::Corrupt {
                encoding: self.encoding(),
                reason: "bytes came after the end of the stream".into(),
            }),
            State::Failed(Failure::TooLarge) => Err(DecodeError::TooLarge { limit: self.limit }),
            State::Failed(Failure::Corrupt { encoding }) => Err(DecodeError::Corrupt {
                encoding: encoding.clone(),
                reason: "an earlier part of the stream could not be decoded".into(),
            }),
        }
    }

    fn fail(&mut self, e: DecodeError) -> DecodeError {
        self.state = State::Failed(match &e {
            DecodeError::TooLarge { .. } => Failure::TooLarge,
            DecodeError::Corrupt { encoding, .. } | DecodeError::Unsupported(encoding) => {
                Failure::Corrupt {
                    encoding: encoding.clone(),
                }
            }
        });
        e
    }

    /// The content-encoding as listed, for errors that are about the whole stream.
    fn encoding(&self) -> String {
        let codings: Vec<&str> = self
            .stages
            .iter()
            .rev()
            .map(|s| s.coding.as_str())
            .collect();
        codings.join(", ")
    }
}

/// One coding of the list, undone into its own capped buffer.
struct Stage {
    coding: String,
    codec: Codec,
    /// Whether any input reached it: a stage that saw none has nothing to finish.
    fed: bool,
}

enum Codec {
    Gzip(flate2::write::MultiGzDecoder<Sink>),
    Deflate(flate2::write::ZlibDecoder<Sink>),
    Brotli(Box<brotli::DecompressorWriter<Sink>>),
    Zstd(zstd::stream::write::Decoder<'static, Sink>),
}

impl Stage {
    fn new(coding: String, limit: usize) -> Result<Self, DecodeError> {
        let sink = Sink {
            out: Vec::new(),
            total: 0,
            limit,
            over: false,
        };
        let codec = match coding.as_str() {
            "gzip" | "x-gzip" => Codec::Gzip(flate2::write::MultiGzDecoder::new(sink)),
            "deflate" => Codec::Deflate(flate2::write::ZlibDecoder::new(sink)),
            "br" => Codec::Brotli(Box::new(brotli::DecompressorWriter::new(sink, 8192))),
            "zstd" => Codec::Zstd(
                zstd::stream::write::Decoder::new(sink).map_err(|e| corrupt(&coding, &e))?,
            ),
            _ => return Err(DecodeError::Unsupported(coding)),
        };
        Ok(Self {
            coding,
            codec,
            fed: false,
        })
    }

    fn push(&mut self, input: &[u8]) -> Result<Vec<u8>, DecodeError> {
        self.fed |= !input.is_empty();
        let writer = self.codec.writer();
        let result = write_all(writer, input).and_then(|()| writer.flush());
        self.take(result)
    }

    fn finish(&mut self, input: &[u8]) -> Result<Vec<u8>, DecodeError> {
        self.fed |= !input.is_empty();
        let result = write_all(self.codec.writer(), input).and_then(|()| {
            if self.fed {
                self.codec.finish()
            } else {
                Ok(())
            }
        });
        self.take(result)
    }

    /// The output so far, or why there is none.
    fn take(&mut self, result: io::Result<()>) -> Result<Vec<u8>, DecodeError> {
        let sink = self.codec.sink();
        if sink.over {
            return Err(DecodeError::TooLarge { limit: sink.limit });
        }
        result.map_err(|e| corrupt(&self.coding, &e))?;
        Ok(std::mem::take(&mut sink.out))
    }
}

impl Codec {
    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Codec::Gzip(d) => d,
            Codec::Deflate(d) => d,
            Codec::Brotli(d) => d.as_mut(),
            Codec::Zstd(d) => d,
        }
    }

    fn sink(&mut self) -> &mut Sink {
        match self {
            Codec::Gzip(d) => d.get_mut(),
            Codec::Deflate(d) => d.get_mut(),
            Codec::Brotli(d) => d.get_mut(),
            Codec::Zstd(d) => d.get_mut(),
        }
    }

    /// Flushes the rest out and checks the stream ended on a whole member or frame.
    fn finish(&mut self) -> io::Result<()> {
        match self {
            Codec::Gzip(d) => d.try_finish(),
            Codec::Deflate(d) => d.try_finish(),
            Codec::Brotli(d) => d.close(),
            Codec::Zstd(d) => d.do_finish(),
        }
    }
}

/// Where a decompressor writes: refuses (and remembers) any byte past the limit, so a bomb
/// stops growing memory as soon as it crosses it.
struct Sink {
    out: Vec<u8>,
    total: usize,
    limit: usize,
    over: bool,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() > self.limit.saturating_sub(self.total) {
            self.over = true;
            return Err(io::Error::other("decoded size limit reached"));
        }
        self.total += buf.len();
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `Write::write_all`, but a decompressor that takes no more input has reached the end of its
/// stream, and bytes after it are an error rather than ignored.
fn write_all(writer: &mut dyn Write, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match writer.write(buf) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "bytes follow the end of the compressed stream",
                ));
            }
            Ok(n) => buf = buf.get(n..).unwrap_or_default(),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn corrupt(coding: &str, e: &io::Error) -> DecodeError {
    DecodeError::Corrupt {
        encoding: coding.to_owned(),
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CODINGS: [&str; 4] = ["gzip", "deflate", "br", "zstd"];

    /// Compresses `parts` as one stream of `coding`, flushing after each; returns the bytes and
    /// the length of the stream after each flush.
    fn compress_flushed(coding: &str, parts: &[&[u8]]) -> (Vec<u8>, Vec<usize>) {
        fn run<W: Write>(mut w: W, parts: &[&[u8]], len: impl Fn(&W) -> usize) -> (W, Vec<usize>) {
            let mut marks = Vec::new();
            for part in parts {
                w.write_all(part).unwrap();
                w.flush().unwrap();
                marks.push(len(&w));
            }
            (w, marks)
        }
        match coding {
            "gzip" => {
                let e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                let (e, marks) = run(e, parts, |e| e.get_ref().len());
                (e.finish().unwrap(), marks)
            }
            "deflate" => {
                let e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
                let (e, marks) = run(e, parts, |e| e.get_ref().len());
                (e.finish().unwrap(), marks)
            }
            "br" => {
                let e = brotli::CompressorWriter::new(Vec::new(), 4096, 5, 22);
                let (e, marks) = run(e, parts, |e| e.get_ref().len());
                (e.into_inner(), marks)
            }
            "zstd" => {
                let e = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
                let (e, marks) = run(e, parts, |e| e.get_ref().len());
                (e.finish().unwrap(), marks)
            }
            other => panic!("no test compressor for {other}"),
        }
    }

    fn compress(coding: &str, data: &[u8]) -> Vec<u8> {
        compress_flushed(coding, &[data]).0
    }

    fn sse(events: usize) -> Vec<u8> {
        (0..events)
            .flat_map(|i| {
                format!(
                    "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\
                     \"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"token {i} \
                     TOLLGATE_SECRET_{}\"}}}}\n\n",
                    i * 7919 % 1000
                )
                .into_bytes()
            })
            .collect()
    }

    /// xorshift64: chunk sizes that differ from run to run of the loop, the same on every run.
    fn chunk_sizes(seed: u64, max: usize) -> impl Iterator<Item = usize> {
        let mut x = seed;
        std::iter::from_fn(move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            Some((x % max as u64) as usize + 1)
        })
    }

    fn decode_in_chunks(
        coding: &str,
        body: &[u8],
        sizes: impl Iterator<Item = usize>,
        limit: usize,
    ) -> Result<Vec<u8>, DecodeError> {
        let mut decoder = StreamDecoder::new(coding, limit)?.expect("a coding");
        let mut out = Vec::new();
        let mut rest = body;
        for size in sizes {
            if rest.is_empty() {
                break;
            }
            let (chunk, tail) = rest.split_at(size.min(rest.len()));
            out.extend(decoder.push(chunk)?);
            rest = tail;
        }
        out.extend(decoder.finish()?);
        Ok(out)
    }

    #[test]
    fn decodes_each_encoding_fed_one_byte_at_a_time() {
        let data = sse(200);
        for coding in CODINGS {
            let body = compress(coding, &data);
            let out = decode_in_chunks(coding, &body, std::iter::repeat(1), 1 << 20).unwrap();
            assert!(out == data, "{coding}");
        }
    }

    #[test]
    fn decodes_each_encoding_fed_in_random_chunks() {
        let data = sse(500);
        for coding in CODINGS {
            let body = compress(coding, &data);
            for seed in 1..=8 {
                for max in [3, 100, 5000] {
                    let out =
                        decode_in_chunks(coding, &body, chunk_sizes(seed, max), 1 << 20).unwrap();
                    assert!(out == data, "{coding}, seed {seed}, chunks up to {max}");
                }
            }
        }
    }

    #[test]
    fn undoes_stacked_encodings_in_reverse_order() {
        let data = sse(100);
        // `gzip, zstd`: gzip was applied first, so zstd is undone first.
        let body = compress("zstd", &compress("gzip", &data));
        for sizes in [1, 7, 4096] {
            let out =
                decode_in_chunks("gzip, zstd", &body, std::iter::repeat(sizes), 1 << 20).unwrap();
            assert!(out == data, "chunks of {sizes}");
        }
        let body = compress("gzip", &compress("br", &compress("deflate", &data)));
        let out = decode_in_chunks("Deflate, br , GZIP", &body, chunk_sizes(3, 50), 1 << 20);
        assert!(out.unwrap() == data);
    }

    #[test]
    fn decodes_multi_member_gzip() {
        let (a, b) = (sse(10), sse(20));
        let body = [compress("gzip", &a), compress("gzip", &b)].concat();
        let out = decode_in_chunks("x-gzip", &body, std::iter::repeat(1), 1 << 20).unwrap();
        assert!(out == [a, b].concat());
    }

    #[test]
    fn yields_each_flushed_event_before_the_rest_arrives() {
        let data = sse(40);
        let events: Vec<&[u8]> = data.split_inclusive(|&b| b == b'\n').collect();
        let first: Vec<u8> = events[..3].concat(); // `event:`, `data:`, blank line
        let rest: Vec<u8> = events[3..].concat();
        for coding in CODINGS {
            let (body, marks) = compress_flushed(coding, &[&first, &rest]);
            assert!(
                marks[0] < body.len() / 2,
                "{coding}: the first event is the small half"
            );
            let mut decoder = StreamDecoder::new(coding, 1 << 20).unwrap().unwrap();
            let early = decoder.push(&body[..marks[0]]).unwrap();
            assert!(
                early == first,
                "{coding}: the first event came out whole, at once"
            );
            let mut late = decoder.push(&body[marks[0]..]).unwrap();
            late.extend(decoder.finish().unwrap());
            assert!(late == rest, "{coding}");
        }
    }

    #[test]
    fn truncated_streams_are_errors_on_finish() {
        let data = sse(50);
        for coding in CODINGS {
            let body = compress(coding, &data);
            for cut in [1, 5, body.len() / 2, body.len() - 1] {
                let mut decoder = StreamDecoder::new(coding, 1 << 20).unwrap().unwrap();
                let pushed = decoder.push(&body[..cut]);
                assert!(pushed.is_ok(), "{coding}, cut at {cut}: {pushed:?}");
                let finished = decoder.finish();
                assert!(
                    matches!(finished, Err(DecodeError::Corrupt { .. })),
                    "{coding}, cut at {cut}: {finished:?}"
                );
            }
        }
    }

    #[test]
    fn bytes_after_the_end_of_the_stream_are_errors() {
        let data = sse(5);
        for coding in CODINGS {
            let body = [compress(coding, &data), b"garbage".to_vec()].concat();
            let out = decode_in_chunks(coding, &body, std::iter::repeat(3), 1 << 20);
            assert!(
                matches!(out, Err(DecodeError::Corrupt { .. })),
                "{coding}: {out:?}"
            );
        }
    }

    #[test]
    fn corrupt_input_is_an_error_and_stays_one() {
        for coding in CODINGS {
            let mut decoder = StreamDecoder::new(coding, 1 << 20).unwrap().unwrap();
            let first = decoder
                .push(&[0xff; 64])
                .and_then(|_| decoder.push(&[0xff; 64]))
                .and_then(|_| decoder.finish());
            assert!(
                matches!(first, Err(DecodeError::Corrupt { .. })),
                "{coding}: {first:?}"
            );
            assert!(decoder.push(b"more").is_err(), "{coding}");
            assert!(decoder.finish().is_err(), "{coding}");
        }
    }

    #[test]
    fn refuses_bombs_as_soon_as_they_cross_the_limit() {
        let bomb = vec![0u8; 4 << 20];
        let limit = 1 << 20;
        for coding in CODINGS {
            let body = compress(coding, &bomb);
            assert!(body.len() < 100_000, "{coding}");
            let mut decoder = StreamDecoder::new(coding, limit).unwrap().unwrap();
            let mut decoded = 0;
            let mut result = Ok(());
            for chunk in body.chunks(1024) {
                match decoder.push(chunk) {
                    Ok(out) => decoded += out.len(),
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
            assert!(
                matches!(result, Err(DecodeError::TooLarge { limit: 1_048_576 })),
                "{coding}: {result:?}"
            );
            assert!(decoded <= limit, "{coding}");
            assert!(matches!(
                decoder.push(b""),
                Err(DecodeError::TooLarge { .. })
            ));
            assert!(matches!(
                decoder.finish(),
                Err(DecodeError::TooLarge { .. })
            ));
        }
        // Exactly the limit is still fine.
        let data = vec![b'a'; 1000];
        let body = compress("gzip", &data);
        assert!(decode_in_chunks("gzip", &body, std::iter::repeat(10), 1000).unwrap() == data);
        assert!(matches!(
            decode_in_chunks("gzip", &body, std::iter::repeat(10), 999),
            Err(DecodeError::TooLarge { limit: 999 })
        ));
    }

    #[test]
    fn identity_needs_no_decoder_and_unknown_codings_are_refused() {
        for none in ["", "identity", " Identity , ", ","] {
            assert!(StreamDecoder::new(none, 100).unwrap().is_none(), "{none:?}");
        }
        assert!(matches!(
            StreamDecoder::new("gzip, compress", 100),
            Err(DecodeError::Unsupported(c)) if c == "compress"
        ));
    }

    #[test]
    fn an_empty_stream_decodes_to_nothing() {
        for coding in CODINGS {
            let mut decoder = StreamDecoder::new(coding, 100).unwrap().unwrap();
            assert!(decoder.push(b"").unwrap().is_empty());
            assert!(decoder.finish().unwrap().is_empty(), "{coding}");
            assert!(
                decoder.finish().unwrap().is_empty(),
                "{coding}: finish twice"
            );
            assert!(
                decoder.push(b"late").is_err(),
                "{coding}: push after finish"
            );
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]

            #[test]
            fn damaged_streams_never_panic(
                coding in proptest::sample::select(&CODINGS[..]),
                flips in proptest::collection::vec((any::<usize>(), 1u8..), 0..4),
                tail in proptest::collection::vec(any::<u8>(), 0..16),
                noise in proptest::collection::vec(any::<u8>(), 0..64),
                seed in 1u64..,
            ) {
                let data = sse(20);
                let mut body = compress(coding, &data);
                for (at, mask) in &flips {
                    let at = at % body.len();
                    body[at] ^= mask;
                }
                body.extend(&tail);
                let _ = decode_in_chunks(coding, &body, chunk_sizes(seed, 40), 1 << 20);
                let _ = decode_in_chunks(coding, &noise, chunk_sizes(seed, 8), 1 << 20);
            }
        }
    }
}
