//! Unmasked request bodies, kept only when policy asks (`recording.yaml: store_originals`),
//! sealed with AES-256-GCM under a key that never enters the database.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use std::fmt;

/// The key that seals originals: 32 bytes, given as 64 hex characters.
pub struct OriginalsKey(LessSafeKey);

impl fmt::Debug for OriginalsKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OriginalsKey(***)")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the originals key must be 64 hexadecimal characters (32 bytes)")]
pub struct BadKey;

impl OriginalsKey {
    pub fn from_hex(text: &str) -> Result<Self, BadKey> {
        let text = text.trim();
        if text.len() != 64 {
            return Err(BadKey);
        }
        let mut bytes = [0u8; 32];
        for (i, pair) in text.as_bytes().chunks(2).enumerate() {
            let pair = std::str::from_utf8(pair).map_err(|_| BadKey)?;
            bytes[i] = u8::from_str_radix(pair, 16).map_err(|_| BadKey)?;
        }
        let key = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| BadKey)?;
        Ok(Self(LessSafeKey::new(key)))
    }

    /// `nonce || ciphertext || tag`, bound to `context` (what the record is about).
    pub fn seal(&self, plaintext: &[u8], context: &str) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .expect("the system random source works");
        let mut sealed = plaintext.to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut sealed,
            )
            .expect("sealing a body cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        out
    }

    /// The plaintext, if `sealed` was sealed by this key for `context` and is intact.
    pub fn open(&self, sealed: &[u8], context: &str) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = rest.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buf)
            .ok()?;
        Some(plain.to_vec())
    }
}

/// What a sealed original is bound to: its record's start time and host.
pub fn context(started_at: &str, host: &str) -> String {
    format!("tollgate-original:{started_at}:{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn seals_and_opens_only_with_the_same_key_and_context() {
        let key = OriginalsKey::from_hex(KEY).unwrap();
        let sealed = key.seal(b"ghp_secret", "ctx");
        assert!(!sealed.windows(10).any(|w| w == b"ghp_secret"));
        assert_eq!(key.open(&sealed, "ctx").unwrap(), b"ghp_secret");
        assert!(key.open(&sealed, "other").is_none());
        let other = OriginalsKey::from_hex(&KEY.replace("1f", "ff")).unwrap();
        assert!(other.open(&sealed, "ctx").is_none());
        assert_eq!(format!("{key:?}"), "OriginalsKey(***)");
    }

    #[test]
    fn rejects_malformed_keys() {
        assert_eq!(OriginalsKey::from_hex("abc").unwrap_err(), BadKey);
        assert!(OriginalsKey::from_hex(&"zz".repeat(32)).is_err());
    }
}
