//! The byte encoding of what is hashed (chain rows) and signed (checkpoints): every value in a
//! fixed order, each one self-delimiting, so two different inputs never encode alike.
//!
//! - byte strings and text: their length as 8 bytes big-endian, then the bytes (text as UTF-8);
//! - integers: 8 bytes big-endian (signed ones two's complement);
//! - fixed-size values (SHA-256 digests): their bytes, nothing else;
//! - optional values: one byte, `0` when absent, or `1` followed by the value.
//!
//! Each form that uses this encoding starts with a tag naming it and its version, and documents
//! its values and their order where it is built (a chain row's hash in `store.rs`, a checkpoint's
//! signed bytes in `checkpoint.rs`). Adding a value means a new version of that form, never a
//! change to an existing one.

/// Bytes being encoded.
#[derive(Debug, Default)]
pub(crate) struct Canonical(Vec<u8>);

impl Canonical {
    /// Starts with a tag naming the form and its version, e.g. `tollgate-row/2`.
    pub(crate) fn new(tag: &[u8]) -> Self {
        let mut out = Self(Vec::with_capacity(256));
        out.bytes(tag);
        out
    }

    pub(crate) fn bytes(&mut self, value: &[u8]) -> &mut Self {
        self.0
            .extend_from_slice(&(value.len() as u64).to_be_bytes());
        self.0.extend_from_slice(value);
        self
    }

    pub(crate) fn text(&mut self, value: &str) -> &mut Self {
        self.bytes(value.as_bytes())
    }

    pub(crate) fn u64(&mut self, value: u64) -> &mut Self {
        self.0.extend_from_slice(&value.to_be_bytes());
        self
    }

    pub(crate) fn i64(&mut self, value: i64) -> &mut Self {
        self.0.extend_from_slice(&value.to_be_bytes());
        self
    }

    /// A value whose size the form fixes (a 32-byte digest): no length before it.
    pub(crate) fn fixed(&mut self, value: &[u8]) -> &mut Self {
        self.0.extend_from_slice(value);
        self
    }

    pub(crate) fn opt_text(&mut self, value: Option<&str>) -> &mut Self {
        match value {
            None => self.0.push(0),
            Some(v) => {
                self.0.push(1);
                self.text(v);
            }
        }
        self
    }

    pub(crate) fn opt_u64(&mut self, value: Option<u64>) -> &mut Self {
        match value {
            None => self.0.push(0),
            Some(v) => {
                self.0.push(1);
                self.u64(v);
            }
        }
        self
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_self_delimiting() {
        let encode = |a: &str, b: &str| {
            let mut c = Canonical::new(b"t");
            c.text(a).text(b);
            c.finish()
        };
        assert_ne!(encode("ab", "c"), encode("a", "bc"));
        let opt = |v: Option<&str>| {
            let mut c = Canonical::new(b"t");
            c.opt_text(v);
            c.finish()
        };
        assert_ne!(opt(None), opt(Some("")));
    }

    #[test]
    fn the_encoding_is_as_documented() {
        let mut c = Canonical::new(b"t");
        c.u64(2).opt_u64(None).opt_text(Some("é")).fixed(&[9, 9]);
        assert_eq!(
            c.finish(),
            [
                &[0, 0, 0, 0, 0, 0, 0, 1, b't'][..],
                &[0, 0, 0, 0, 0, 0, 0, 2],
                &[0],
                &[1, 0, 0, 0, 0, 0, 0, 0, 2, 0xc3, 0xa9],
                &[9, 9],
            ]
            .concat()
        );
    }
}
