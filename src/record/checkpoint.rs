//! Signed checkpoints of the audit chain, so that tampering shows even to someone who could
//! write the database and recompute every hash.
//!
//! The audit writer signs the chain's head (last row, its hash, where the chain starts after a
//! purge) with an Ed25519 key kept in the CA directory, never in the database, every so many
//! records or seconds and at shutdown ([`Checkpointer`]). Each checkpoint is kept in the store's
//! `checkpoints` table and appended to an external file as a JSON line. [`verify`] then checks:
//!
//! - every signature, with public keys the auditor holds;
//! - that each checkpoint's row still holds the hash it signed (a rewritten and rehashed chain
//!   no longer does), unless retention has purged that row since;
//! - that the store reaches the newest checkpoint (a store whose last rows were deleted, and
//!   its head rewritten to match, ends before it: the external file is what shows that, since
//!   whoever cut the store could cut its table of checkpoints too).
//!
//! What it cannot show: changes made on the proxy host before a checkpoint covered them, and
//! checkpoints forged with the signing key by someone who took it from the proxy host.

use super::canonical::Canonical;
use super::store::{Head, Store, StoreError};
use crate::policy::CheckpointPolicy;
use crate::tls::ca::{self, CaError};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{PrivatePkcs8KeyDer, SubjectPublicKeyInfoDer};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// File name of the audit signing key (PKCS#8 PEM, mode 0600) inside the CA directory.
pub const KEY_FILE: &str = "tollgate-audit.key";
/// File name of its public key (SubjectPublicKeyInfo PEM, mode 0644) inside the CA directory:
/// give a copy to whoever audits.
pub const PUBLIC_KEY_FILE: &str = "tollgate-audit.pub";

/// The version of [`Checkpoint::signed_bytes`] this Tollgate writes.
const VERSION: u32 = 1;

/// An Ed25519 SubjectPublicKeyInfo, up to the 32 bytes of the key itself (RFC 8410).
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// The audit signing key or its public half could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Unreadable, or with modes that let other users read or replace it.
    #[error(transparent)]
    File(#[from] CaError),
    #[error("{path}: not a usable {what}: {message}")]
    Parse {
        path: PathBuf,
        what: &'static str,
        message: String,
    },
    #[error(
        "{public} exists but {key} does not: restore the key, or move the public key aside (keep it: it checks what the lost key signed) to make a new pair at the next start"
    )]
    KeyMissing { key: PathBuf, public: PathBuf },
    #[error("{public} is not the public half of {key}")]
    NotAPair { key: PathBuf, public: PathBuf },
}

/// Checkpoints could not be written or checked.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("checkpoint file {path}: {source}")]
    Sink {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{count} signed checkpoints to check, but no public key to check them with: pass --key with a copy of {PUBLIC_KEY_FILE} from the proxy's CA directory"
    )]
    NoKey { count: usize },
    /// The checkpoints do not vouch for the store.
    #[error(transparent)]
    Fault(#[from] CheckpointFault),
}

/// Where a checkpoint was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The store's `checkpoints` table, by row id.
    Store(i64),
    /// The external file, by line (from 1).
    File { path: PathBuf, line: usize },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Store(id) => write!(f, "checkpoint {id} in the store"),
            Origin::File { path, line } => {
                write!(f, "the checkpoint on line {line} of {}", path.display())
            }
        }
    }
}

/// Why the checkpoints do not vouch for the store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointFault {
    #[error("{path} line {line} is not a checkpoint: {message}")]
    Unreadable {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{origin} is in version {version}, unknown to this Tollgate")]
    UnknownVersion { origin: Origin, version: u32 },
    #[error("{origin} is signed by key {key_id}, not by {known}: refused")]
    OtherKey {
        origin: Origin,
        key_id: String,
        known: String,
    },
    #[error("{origin} does not verify with key {key_id}: forged or altered")]
    BadSignature { origin: Origin, key_id: String },
    #[error(
        "truncated: rows after {last} are missing ({origin}, signed at {at}, covers the chain up to row {covered})"
    )]
    Truncated {
        /// The store's last row (0 when it holds none).
        last: i64,
        covered: i64,
        origin: Origin,
        at: String,
    },
    #[error(
        "rewritten: row {row} does not hold the hash {origin} signed at {at}; rows {from} to {row} were changed and the chain recomputed"
    )]
    Rewritten {
        /// The first row after the last checkpoint that still matches.
        from: i64,
        row: i64,
        origin: Origin,
        at: String,
    },
}

/// A signed statement of the chain's head at one time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// The form of [`Checkpoint::signed_bytes`].
    pub version: u32,
    /// The last row of the chain.
    pub last_id: i64,
    /// Its hash.
    #[serde(with = "hex")]
    pub hash: Vec<u8>,
    /// How many rows the chain held (`last_id - first_id + 1`).
    pub records: i64,
    /// The first row kept, after purges (1 before any).
    pub first_id: i64,
    /// The hash that row links to (all zeros before any purge).
    #[serde(with = "hex")]
    pub base: Vec<u8>,
    /// When it was signed, RFC 3339 UTC.
    pub at: String,
    /// The signing key's id (see [`PublicKey::id`]).
    pub key_id: String,
    /// Ed25519 over [`Checkpoint::signed_bytes`].
    #[serde(with = "hex")]
    pub signature: Vec<u8>,
}

impl Checkpoint {
    /// Signs `head` as of `at`.
    pub fn sign(key: &AuditKey, head: &Head, at: String) -> Self {
        let mut checkpoint = Checkpoint {
            version: VERSION,
            last_id: head.last_id,
            hash: head.hash.clone(),
            records: head.last_id - head.first_id + 1,
            first_id: head.first_id,
            base: head.base.clone(),
            at,
            key_id: key.public().id(),
            signature: Vec::new(),
        };
        checkpoint.signature = key.pair.sign(&checkpoint.signed_bytes()).as_ref().to_vec();
        checkpoint
    }

    /// What is signed, version 1: the canonical encoding (see [`super::canonical`]) of the tag
    /// `tollgate-checkpoint/1`, then `last_id` (integer), `hash` (bytes), `records` (integer),
    /// `first_id` (integer), `base` (bytes), `at` (text) and `key_id` (text).
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut c = Canonical::new(b"tollgate-checkpoint/1");
        c.i64(self.last_id)
            .bytes(&self.hash)
            .i64(self.records)
            .i64(self.first_id)
            .bytes(&self.base)
            .text(&self.at)
            .text(&self.key_id);
        c.finish()
    }

    /// The key among `keys` whose signature this is.
    fn check_signature<'k>(
        &self,
        origin: &Origin,
        keys: &'k [PublicKey],
    ) -> Result<&'k PublicKey, CheckpointFault> {
        if self.version != VERSION {
            return Err(CheckpointFault::UnknownVersion {
                origin: origin.clone(),
                version: self.version,
            });
        }
        let Some(key) = keys.iter().find(|k| k.id() == self.key_id) else {
            return Err(CheckpointFault::OtherKey {
                origin: origin.clone(),
                key_id: self.key_id.clone(),
                known: keys
                    .iter()
                    .map(PublicKey::id)
                    .collect::<Vec<_>>()
                    .join(" or "),
            });
        };
        if !key.verifies(&self.signed_bytes(), &self.signature) {
            return Err(CheckpointFault::BadSignature {
                origin: origin.clone(),
                key_id: self.key_id.clone(),
            });
        }
        Ok(key)
    }
}

/// An Ed25519 public key that checks checkpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    /// The first 8 bytes of the SHA-256 of the key's 32 bytes, in hex: what checkpoints name.
    pub fn id(&self) -> String {
        to_hex(&ring::digest::digest(&ring::digest::SHA256, &self.0).as_ref()[..8])
    }

    /// Reads a SubjectPublicKeyInfo PEM file (`tollgate-audit.pub`, or `openssl pkey -pubout`).
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text = std::fs::read(path).map_err(|source| CaError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_pem(&text).map_err(|message| KeyError::Parse {
            path: path.to_owned(),
            what: "Ed25519 public key",
            message,
        })
    }

    fn from_pem(pem: &[u8]) -> Result<Self, String> {
        let spki = SubjectPublicKeyInfoDer::from_pem_slice(pem).map_err(|e| e.to_string())?;
        spki.strip_prefix(&SPKI_PREFIX[..])
            .and_then(|raw| <[u8; 32]>::try_from(raw).ok())
            .map(Self)
            .ok_or_else(|| "not an Ed25519 key".to_owned())
    }

    fn to_pem(&self) -> String {
        pem("PUBLIC KEY", &[&SPKI_PREFIX[..], &self.0].concat())
    }

    fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(message, signature)
            .is_ok()
    }
}

/// The key the audit writer signs checkpoints with.
pub struct AuditKey {
    pair: Ed25519KeyPair,
    public: PublicKey,
}

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuditKey({})", self.public.id())
    }
}

impl AuditKey {
    /// A new key, held in memory only.
    pub fn generate() -> Self {
        Self::generate_pkcs8().0
    }

    /// A new key and its PKCS#8 form.
    fn generate_pkcs8() -> (Self, Vec<u8>) {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("the system random source works");
        let key = Self::from_pkcs8(pkcs8.as_ref()).expect("ring reads the keys it makes");
        (key, pkcs8.as_ref().to_vec())
    }

    /// Reads PKCS#8 v2 (what ring makes, with the public key, checked against the private one)
    /// or v1 (what `openssl genpkey -algorithm ed25519` makes, the public key derived).
    fn from_pkcs8(der: &[u8]) -> Result<Self, String> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(|e| e.to_string())?;
        let public = PublicKey(
            pair.public_key()
                .as_ref()
                .try_into()
                .map_err(|_| "not an Ed25519 key".to_owned())?,
        );
        Ok(Self { pair, public })
    }

    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// Loads the key from the CA directory `dir`, making it (and its public key file) first if
    /// the directory holds none. Files other users could read (the key) or replace (the
    /// directory, either file) are refused, as the CA's are. Returns whether it was made.
    pub fn load_or_create(dir: &Path) -> Result<(Self, bool), KeyError> {
        let (key_path, pub_path) = (dir.join(KEY_FILE), dir.join(PUBLIC_KEY_FILE));
        ca::create_private_dir(dir)?;
        if !key_path.exists() {
            if pub_path.exists() {
                return Err(KeyError::KeyMissing {
                    key: key_path,
                    public: pub_path,
                });
            }
            let (key, pkcs8) = Self::generate_pkcs8();
            ca::write_new(
                &key_path,
                pem("PRIVATE KEY", &pkcs8).as_bytes(),
                ca::KEY_MODE,
            )?;
            ca::write_new(&pub_path, key.public.to_pem().as_bytes(), ca::CERT_MODE)?;
            return Ok((key, true));
        }
        ca::check_mode(
            &key_path,
            0o077,
            "the audit signing key is readable or writable by other users",
            "600",
        )?;
        let pem_text = std::fs::read(&key_path).map_err(|source| CaError::Io {
            path: key_path.clone(),
            source,
        })?;
        let key = PrivatePkcs8KeyDer::from_pem_slice(&pem_text)
            .map_err(|e| e.to_string())
            .and_then(|der| Self::from_pkcs8(der.secret_pkcs8_der()))
            .map_err(|message| KeyError::Parse {
                path: key_path.clone(),
                what: "Ed25519 private key (PKCS#8)",
                message,
            })?;
        if pub_path.exists() {
            ca::check_mode(
                &pub_path,
                0o022,
                "the audit public key is writable by other users",
                "go-w",
            )?;
            if PublicKey::load(&pub_path)? != key.public {
                return Err(KeyError::NotAPair {
                    key: key_path,
                    public: pub_path,
                });
            }
        } else {
            // The public half is derived from the key: writing it again loses nothing.
            ca::write_new(&pub_path, key.public.to_pem().as_bytes(), ca::CERT_MODE)?;
        }
        Ok((key, false))
    }
}

/// Where the external checkpoint file of `policy` is for the audit database `db`: a relative
/// path is taken from the database's directory.
pub fn file_for(policy: &CheckpointPolicy, db: &Path) -> Option<PathBuf> {
    let file = policy.file.as_ref()?;
    Some(match db.parent() {
        Some(dir) if file.is_relative() => dir.join(file),
        _ => file.clone(),
    })
}

/// Signs the chain's head for the audit writer, off the request path: after `every_records`
/// records or `every` time since the first record no checkpoint covers, whichever comes first,
/// and at shutdown. A checkpoint the store cannot keep is tried again at the next call; one the
/// external file cannot take is logged and left to the next.
pub struct Checkpointer {
    key: AuditKey,
    every_records: u64,
    every: Duration,
    file: Option<PathBuf>,
    /// The last row the newest checkpoint covers; read from the store at the first call.
    signed: Option<i64>,
    /// When rows no checkpoint covers were first seen.
    unsigned_since: Option<Instant>,
}

impl Checkpointer {
    /// A checkpointer for the store at `db`; makes sure the external file can be appended to.
    pub fn new(
        key: AuditKey,
        policy: &CheckpointPolicy,
        db: &Path,
    ) -> Result<Self, CheckpointError> {
        let file = file_for(policy, db);
        if let Some(path) = &file {
            open_sink(path).map_err(|source| CheckpointError::Sink {
                path: path.clone(),
                source,
            })?;
        }
        Ok(Self {
            key,
            every_records: policy.every_records,
            every: policy.every,
            file,
            signed: None,
            unsigned_since: None,
        })
    }

    /// When the next checkpoint falls due if nothing more is written; `None` while every row is
    /// covered. The writer wakes up for it.
    pub fn due(&self) -> Option<Instant> {
        self.unsigned_since.map(|since| since + self.every)
    }

    /// Called by the writer after each turn of its loop: signs the head if it is due.
    pub fn tick(&mut self, store: &Store) {
        self.sign_if(store, false);
    }

    /// Signs the head if any row is not covered yet (at shutdown).
    pub fn finish(&mut self, store: &Store) {
        self.sign_if(store, true);
    }

    fn sign_if(&mut self, store: &Store, now: bool) {
        if let Err(error) = self.try_sign(store, now) {
            tracing::error!(%error, "cannot sign the audit chain's head; trying again later");
            // Not before the next interval: the writer must not spin on a store that refuses.
            self.unsigned_since = Some(Instant::now());
        }
    }

    fn try_sign(&mut self, store: &Store, now: bool) -> Result<(), StoreError> {
        let signed = match self.signed {
            Some(signed) => signed,
            None => *self.signed.insert(store.last_checkpointed()?),
        };
        let head = match store.head()? {
            Some(head) if head.last_id > signed => head,
            _ => {
                self.unsigned_since = None;
                return Ok(());
            }
        };
        let since = *self.unsigned_since.get_or_insert_with(Instant::now);
        let due = now
            || (head.last_id - signed) as u64 >= self.every_records
            || since.elapsed() >= self.every;
        if !due {
            return Ok(());
        }
        let checkpoint = Checkpoint::sign(&self.key, &head, super::now());
        store.add_checkpoint(&checkpoint)?;
        if let Some(path) = &self.file {
            // Logged and left to the next checkpoint: the file's job is to hold the newest.
            if let Err(error) = append(path, &checkpoint) {
                tracing::error!(file = %path.display(), %error, "cannot append the audit checkpoint to the external file");
            }
        }
        tracing::debug!(last_id = head.last_id, "audit checkpoint signed");
        self.signed = Some(head.last_id);
        self.unsigned_since = None;
        Ok(())
    }
}

/// Opens the external file for appending, creating it if needed. A last line cut short (a
/// crash mid-append) is ended, so the next checkpoint starts a line of its own.
fn open_sink(path: &Path) -> std::io::Result<std::fs::File> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)?;
    let len = file.metadata()?.len();
    if len > 0 {
        let mut last = [0u8];
        file.seek(std::io::SeekFrom::Start(len - 1))?;
        file.read_exact(&mut last)?;
        if last[0] != b'\n' {
            file.write_all(b"\n")?;
        }
    }
    Ok(file)
}

/// Appends one checkpoint as a JSON line, and waits until it is on the disk.
fn append(path: &Path, checkpoint: &Checkpoint) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(checkpoint).expect("checkpoints serialize");
    line.push(b'\n');
    let mut file = open_sink(path)?;
    file.write_all(&line)?;
    file.sync_data()
}

/// The checkpoints of an external file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FileCheckpoints {
    pub checkpoints: Vec<(Origin, Checkpoint)>,
    /// Lines that end before their checkpoint does (a crash mid-append), passed over.
    pub cut_short: Vec<usize>,
}

/// Reads an external checkpoint file. A line that ends before its JSON does was cut short by a
/// crash mid-append (the next start ends it, so the next checkpoint gets a line of its own) and
/// is passed over; any other line that is not a checkpoint is a fault.
pub fn read_file(path: &Path) -> Result<FileCheckpoints, CheckpointError> {
    let text = std::fs::read_to_string(path).map_err(|source| CheckpointError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut out = FileCheckpoints::default();
    for (i, line) in text.split_terminator('\n').enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Checkpoint>(line) {
            Ok(checkpoint) => out.checkpoints.push((
                Origin::File {
                    path: path.to_owned(),
                    line: i + 1,
                },
                checkpoint,
            )),
            Err(e) if e.is_eof() => out.cut_short.push(i + 1),
            Err(e) => {
                return Err(CheckpointFault::Unreadable {
                    path: path.to_owned(),
                    line: i + 1,
                    message: e.to_string(),
                }
                .into());
            }
        }
    }
    Ok(out)
}

/// What [`verify`] found to hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Checkpoints in the store.
    pub in_store: usize,
    /// Checkpoints in the external file, when one was read.
    pub in_file: Option<usize>,
    /// The ids of the keys that signed them.
    pub signers: BTreeSet<String>,
    /// The last row the newest checkpoint of the external file covers.
    pub newest_external: Option<i64>,
    /// Rows after the newest checkpoint, which no signature covers yet.
    pub unsigned: i64,
    /// Lines of the external file cut short, passed over.
    pub cut_short: Vec<usize>,
    /// The first row the store keeps (1 until retention deletes rows).
    pub first_id: i64,
}

/// Checks the store's checkpoints and those of the external `file` against the store, whose
/// chain must already have verified ([`Store::verify`]): every signature with one of `keys`,
/// every checkpoint's hash against its row (unless purged since), and that the store reaches
/// the newest checkpoint.
pub fn verify(
    store: &Store,
    keys: &[PublicKey],
    file: Option<&Path>,
) -> Result<Verified, CheckpointError> {
    let mut all: Vec<(Origin, Checkpoint)> = store
        .checkpoints()?
        .into_iter()
        .map(|(id, c)| (Origin::Store(id), c))
        .collect();
    let in_store = all.len();
    let external = file.map(read_file).transpose()?;
    let newest_external = external
        .as_ref()
        .and_then(|f| f.checkpoints.iter().map(|(_, c)| c.last_id).max());
    let in_file = external.as_ref().map(|f| f.checkpoints.len());
    let cut_short = external
        .as_ref()
        .map(|f| f.cut_short.clone())
        .unwrap_or_default();
    all.extend(external.into_iter().flat_map(|f| f.checkpoints));
    if keys.is_empty() && !all.is_empty() {
        return Err(CheckpointError::NoKey { count: all.len() });
    }

    let mut signers = BTreeSet::new();
    for (origin, checkpoint) in &all {
        signers.insert(checkpoint.check_signature(origin, keys)?.id());
    }

    let head = store.head()?;
    let (first_id, last, base) = match &head {
        Some(h) => (h.first_id, h.last_id, h.base.clone()),
        None => (1, 0, super::store::GENESIS.to_vec()),
    };
    all.sort_by_key(|(_, c)| c.last_id);
    if let Some((origin, newest)) = all.last() {
        if newest.last_id > last {
            return Err(CheckpointFault::Truncated {
                last,
                covered: newest.last_id,
                origin: origin.clone(),
                at: newest.at.clone(),
            }
            .into());
        }
    }
    // Each checkpoint pins every row up to its own through the chain: a mismatch means the
    // rows after the last checkpoint that still matches were changed.
    let mut matched = first_id - 1;
    for (origin, checkpoint) in &all {
        if checkpoint.last_id < first_id - 1 {
            continue; // about rows purged since: true of the head then, not checkable now
        }
        let held = if checkpoint.last_id == first_id - 1 {
            Some(base.clone())
        } else {
            store.hash_at(checkpoint.last_id)?
        };
        if held.as_deref() != Some(checkpoint.hash.as_slice()) {
            return Err(CheckpointFault::Rewritten {
                from: (matched + 1).min(checkpoint.last_id),
                row: checkpoint.last_id,
                origin: origin.clone(),
                at: checkpoint.at.clone(),
            }
            .into());
        }
        matched = matched.max(checkpoint.last_id);
    }
    Ok(Verified {
        in_store,
        in_file,
        signers,
        newest_external,
        unsigned: last - matched,
        cut_short,
        first_id,
    })
}

fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in text.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Byte strings as lowercase hex in the JSON lines.
mod hex {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::to_hex(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        if text.len() % 2 != 0 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(D::Error::custom("not hex"));
        }
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).map_err(D::Error::custom))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::record;
    use super::super::{HashVersion, Record, row_hash};
    use super::*;

    struct Setup {
        dir: tempfile::TempDir,
        store: Store,
        public: PublicKey,
        checkpoints: Checkpointer,
    }

    impl Setup {
        /// A store, a key and a checkpointer that signs every `every_records` records and
        /// appends to `checkpoints.jsonl` beside the store.
        fn new(every_records: u64) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let db = dir.path().join("t.db");
            let store = Store::open(&db).unwrap();
            let (key, _) = AuditKey::load_or_create(&dir.path().join("ca")).unwrap();
            let public = key.public().clone();
            let checkpoints = Checkpointer::new(key, &Self::policy(every_records), &db).unwrap();
            Self {
                dir,
                store,
                public,
                checkpoints,
            }
        }

        fn policy(every_records: u64) -> CheckpointPolicy {
            CheckpointPolicy {
                every_records,
                every: Duration::from_secs(3600),
                file: Some("checkpoints.jsonl".into()),
            }
        }

        /// A new writer for the same store, key and file, as after a restart.
        fn restart(&mut self, every_records: u64) {
            let (key, _) = AuditKey::load_or_create(&self.dir.path().join("ca")).unwrap();
            self.checkpoints = Checkpointer::new(
                key,
                &Self::policy(every_records),
                self.store.sqlite_path().unwrap(),
            )
            .unwrap();
        }

        fn file(&self) -> PathBuf {
            self.dir.path().join("checkpoints.jsonl")
        }

        /// Appends `n` records one by one, as the writer does, checkpointing as they fall due.
        fn write(&mut self, n: u64) {
            for i in 0..n {
                self.store.append(&[record(i)]).unwrap();
                self.checkpoints.tick(&self.store);
            }
        }

        fn verify(&self) -> Result<Verified, CheckpointError> {
            verify(
                &self.store,
                std::slice::from_ref(&self.public),
                Some(&self.file()),
            )
        }

        fn sql(&self, sql: &str) {
            rusqlite::Connection::open(self.store.sqlite_path().unwrap())
                .unwrap()
                .execute_batch(sql)
                .unwrap();
        }

        /// What someone who can write the database does: changes row `id` and recomputes every
        /// hash after it, and the head, with the store's own hash function.
        fn rewrite(&self, id: i64, change: impl Fn(&mut Record)) {
            let conn = rusqlite::Connection::open(self.store.sqlite_path().unwrap()).unwrap();
            let mut prev = self.store.hash_at(id - 1).unwrap().unwrap_or(vec![0; 32]);
            for (row, mut r) in self.store.all().unwrap() {
                if row < id {
                    continue;
                }
                if row == id {
                    change(&mut r);
                    conn.execute(
                        "UPDATE records SET outcome = ?1 WHERE id = ?2",
                        rusqlite::params![r.outcome, row],
                    )
                    .unwrap();
                }
                let hash = row_hash(HashVersion::CURRENT, row, &prev, &r);
                conn.execute(
                    "UPDATE records SET prev_hash = ?1, hash = ?2 WHERE id = ?3",
                    rusqlite::params![prev, hash, row],
                )
                .unwrap();
                prev = hash.to_vec();
            }
            conn.execute("UPDATE chain_head SET hash = ?1", [prev])
                .unwrap();
        }

        fn fault(&self) -> CheckpointFault {
            match self.verify() {
                Err(CheckpointError::Fault(fault)) => fault,
                other => panic!("expected a fault, got {other:?}"),
            }
        }
    }

    #[test]
    fn a_clean_run_verifies_with_its_checkpoints_in_the_store_and_the_file() {
        let mut s = Setup::new(4);
        s.write(10);
        s.checkpoints.finish(&s.store);
        assert_eq!(s.store.verify().unwrap(), None);
        let verified = s.verify().unwrap();
        assert_eq!(verified.in_store, 3, "rows 4, 8 and, at finish, 10");
        assert_eq!(verified.in_file, Some(3));
        assert_eq!(verified.newest_external, Some(10));
        assert_eq!(verified.unsigned, 0);
        assert_eq!(verified.signers, BTreeSet::from([s.public.id()]));
        let stored = s.store.checkpoints().unwrap();
        let (_, last) = stored.last().unwrap();
        assert_eq!((last.last_id, last.records, last.first_id), (10, 10, 1));
        assert_eq!(read_file(&s.file()).unwrap().checkpoints[2].1, *last);
    }

    #[test]
    fn checkpoints_fall_due_after_so_many_records_or_so_long_and_at_finish() {
        let mut s = Setup::new(5);
        s.write(4);
        assert_eq!(s.store.last_checkpointed().unwrap(), 0);
        assert!(
            s.checkpoints.due().is_some(),
            "the clock runs for unsigned rows"
        );
        s.write(1);
        assert_eq!(s.store.last_checkpointed().unwrap(), 5);
        assert_eq!(s.checkpoints.due(), None);
        s.checkpoints.tick(&s.store);
        assert_eq!(
            s.store.checkpoints().unwrap().len(),
            1,
            "nothing new to sign"
        );
        s.checkpoints.every = Duration::ZERO;
        s.write(1);
        assert_eq!(s.store.last_checkpointed().unwrap(), 6, "due by time");
        s.checkpoints.every = Duration::from_secs(3600);
        s.write(2);
        s.checkpoints.finish(&s.store);
        assert_eq!(s.store.last_checkpointed().unwrap(), 8);
    }

    #[test]
    fn a_store_that_refuses_checkpoints_puts_the_next_try_off_rather_than_spin() {
        let mut s = Setup::new(100);
        s.write(1);
        s.checkpoints.unsigned_since = Some(Instant::now() - Duration::from_secs(7200));
        s.sql("DROP TABLE checkpoints");
        s.checkpoints.tick(&s.store);
        let due = s.checkpoints.due().unwrap();
        assert!(
            due > Instant::now() + Duration::from_secs(3000),
            "the writer would wake at once, again and again"
        );
    }

    #[test]
    fn a_restarted_writer_goes_on_from_the_newest_checkpoint_in_the_store() {
        let mut s = Setup::new(3);
        s.write(2);
        s.checkpoints.finish(&s.store);
        s.restart(3);
        s.write(2);
        assert_eq!(
            s.store.last_checkpointed().unwrap(),
            2,
            "3 rows are not yet 3 after it"
        );
        s.write(1);
        assert_eq!(s.store.last_checkpointed().unwrap(), 5);
        assert!(s.verify().is_ok());
    }

    #[test]
    fn a_rewritten_row_with_every_hash_recomputed_is_caught_by_the_signed_checkpoints() {
        let mut s = Setup::new(3);
        s.write(7);
        s.checkpoints.finish(&s.store);
        s.rewrite(5, |r| r.outcome = "nothing to see".into());
        assert_eq!(s.store.verify().unwrap(), None, "the chain itself holds");
        let fault = s.fault();
        assert!(
            matches!(
                &fault,
                CheckpointFault::Rewritten {
                    from: 4,
                    row: 6,
                    origin: Origin::Store(_),
                    ..
                }
            ),
            "{fault}"
        );
        assert!(fault.to_string().contains("rows 4 to 6"), "{fault}");
    }

    #[test]
    fn a_rewrite_whose_stored_checkpoints_were_deleted_too_is_caught_by_the_external_file() {
        let mut s = Setup::new(3);
        s.write(7);
        s.checkpoints.finish(&s.store);
        s.rewrite(2, |r| r.outcome = "nothing to see".into());
        s.sql("DELETE FROM checkpoints");
        let fault = s.fault();
        assert!(
            matches!(
                &fault,
                CheckpointFault::Rewritten {
                    from: 1,
                    row: 3,
                    origin: Origin::File { line: 1, .. },
                    ..
                }
            ),
            "{fault}"
        );
    }

    #[test]
    fn a_store_cut_short_with_its_head_rewritten_is_caught_by_the_external_file() {
        let mut s = Setup::new(3);
        s.write(8);
        s.checkpoints.finish(&s.store);
        let hash5 = to_hex(&s.store.hash_at(5).unwrap().unwrap());
        s.sql(&format!(
            "DELETE FROM records WHERE id > 5;
             UPDATE chain_head SET last_id = 5, hash = x'{hash5}';
             DELETE FROM checkpoints WHERE last_id > 5;"
        ));
        assert_eq!(s.store.verify().unwrap(), None, "the chain itself holds");
        let fault = s.fault();
        assert!(
            matches!(
                &fault,
                CheckpointFault::Truncated {
                    last: 5,
                    covered: 8,
                    origin: Origin::File { line: 3, .. },
                    ..
                }
            ),
            "{fault}"
        );
        assert!(
            fault
                .to_string()
                .starts_with("truncated: rows after 5 are missing"),
            "{fault}"
        );
        // Without the file, the store alone cannot tell.
        assert!(verify(&s.store, std::slice::from_ref(&s.public), None).is_ok());
    }

    #[test]
    fn checkpoints_signed_by_another_key_are_refused() {
        let mut s = Setup::new(3);
        s.write(3);
        let head = s.store.head().unwrap().unwrap();
        let other = AuditKey::generate();
        let forged = Checkpoint::sign(&other, &head, super::super::now());
        std::fs::write(
            s.file(),
            format!("{}\n", serde_json::to_string(&forged).unwrap()),
        )
        .unwrap();
        let fault = s.fault();
        assert!(
            matches!(&fault, CheckpointFault::OtherKey { key_id, .. } if *key_id == other.public().id()),
            "{fault}"
        );
        // Naming the right key does not help a signature made with another.
        let mut spoofed = forged;
        spoofed.key_id = s.public.id();
        std::fs::write(
            s.file(),
            format!("{}\n", serde_json::to_string(&spoofed).unwrap()),
        )
        .unwrap();
        assert!(
            matches!(s.fault(), CheckpointFault::BadSignature { .. }),
            "{}",
            s.fault()
        );
        // And an altered field breaks the signature of a genuine one.
        let (_, mut genuine) = s.store.checkpoints().unwrap().remove(0);
        genuine.last_id = 2;
        std::fs::write(
            s.file(),
            format!("{}\n", serde_json::to_string(&genuine).unwrap()),
        )
        .unwrap();
        assert!(matches!(s.fault(), CheckpointFault::BadSignature { .. }));
    }

    #[test]
    fn checkpoints_of_rows_purged_since_stay_valid() {
        let mut s = Setup::new(2);
        let mut old: Vec<Record> = (0..4).map(record).collect();
        for r in &mut old {
            r.started_at = "2020-01-01T00:00:00Z".into();
        }
        s.store.append(&old[..2]).unwrap();
        s.checkpoints.tick(&s.store);
        s.store.append(&old[2..]).unwrap();
        s.checkpoints.tick(&s.store);
        s.write(2);
        s.store
            .purge("2021-01-01T00:00:00Z", "2021-01-01T00:00:00Z")
            .unwrap();
        s.checkpoints.finish(&s.store);
        assert_eq!(s.store.verify().unwrap(), None);
        // Row 2's checkpoint is about deleted rows; row 4's is the new base's.
        let verified = s.verify().unwrap();
        assert_eq!(verified.in_store, 3);
        assert_eq!(s.store.head().unwrap().unwrap().first_id, 5);
    }

    #[test]
    fn a_line_cut_short_is_passed_over_and_the_next_checkpoint_gets_its_own_line() {
        let mut s = Setup::new(2);
        s.write(2);
        let mut text = std::fs::read_to_string(s.file()).unwrap();
        text.push_str("{\"version\":1,\"last_");
        std::fs::write(s.file(), &text).unwrap();
        assert_eq!(read_file(&s.file()).unwrap().cut_short, [2]);
        // The writer starts again: the cut line is ended, and the next checkpoint follows it.
        s.restart(2);
        s.write(2);
        let verified = s.verify().unwrap();
        assert_eq!(verified.in_file, Some(2));
        assert_eq!(verified.cut_short, [2]);
        assert_eq!(verified.newest_external, Some(4));
        // A line altered otherwise is not passed over.
        let text = std::fs::read_to_string(s.file()).unwrap();
        std::fs::write(
            s.file(),
            text.replacen("\"version\":1", "\"version\":\"1\"", 1),
        )
        .unwrap();
        assert!(matches!(
            s.fault(),
            CheckpointFault::Unreadable { line: 1, .. }
        ));
    }

    #[test]
    fn what_is_signed_is_fixed() {
        let checkpoint = Checkpoint {
            version: 1,
            last_id: 7,
            hash: vec![1; 32],
            records: 7,
            first_id: 1,
            base: vec![0; 32],
            at: "2026-01-02T03:04:05Z".into(),
            key_id: "0011223344556677".into(),
            signature: vec![],
        };
        let digest = ring::digest::digest(&ring::digest::SHA256, &checkpoint.signed_bytes());
        assert_eq!(
            to_hex(digest.as_ref()),
            "6c3a1ef885af3526317ce6a1a00011b800c1b807565dc4dce819445970ecb589"
        );
    }

    #[test]
    fn a_key_made_with_openssl_can_be_put_in_place() {
        // RFC 8410, 10.3 and 10.1: what `openssl genpkey -algorithm ed25519` writes (PKCS#8 v1),
        // and its public key.
        let dir = tempfile::tempdir().unwrap();
        let key = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----\n";
        ca::write_new(&dir.path().join(KEY_FILE), key.as_bytes(), ca::KEY_MODE).unwrap();
        let (key, created) = AuditKey::load_or_create(dir.path()).unwrap();
        assert!(!created);
        let public = std::fs::read_to_string(dir.path().join(PUBLIC_KEY_FILE)).unwrap();
        assert_eq!(
            public,
            "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n"
        );
        assert_eq!(
            PublicKey::from_pem(public.as_bytes()).unwrap(),
            *key.public()
        );
    }

    #[test]
    fn the_key_is_made_once_beside_the_ca_and_refused_when_others_could_read_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca");
        let (key, created) = AuditKey::load_or_create(&ca).unwrap();
        assert!(created);
        let mode = |name: &str| {
            std::fs::metadata(ca.join(name))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode(KEY_FILE), 0o600);
        assert_eq!(mode(PUBLIC_KEY_FILE), 0o644);
        let (again, created) = AuditKey::load_or_create(&ca).unwrap();
        assert!(!created);
        assert_eq!(again.public(), key.public());
        assert_eq!(
            PublicKey::load(&ca.join(PUBLIC_KEY_FILE)).unwrap(),
            *key.public()
        );

        let set = |name: &str, mode: u32| {
            std::fs::set_permissions(ca.join(name), std::fs::Permissions::from_mode(mode)).unwrap()
        };
        set(KEY_FILE, 0o644);
        let err = AuditKey::load_or_create(&ca).unwrap_err().to_string();
        assert!(err.contains("tollgate-audit.key has mode 644"), "{err}");
        set(KEY_FILE, 0o600);

        std::fs::remove_file(ca.join(PUBLIC_KEY_FILE)).unwrap();
        AuditKey::load_or_create(&ca).unwrap();
        assert_eq!(
            PublicKey::load(&ca.join(PUBLIC_KEY_FILE)).unwrap(),
            *key.public(),
            "the public half is written again"
        );

        std::fs::write(
            ca.join(PUBLIC_KEY_FILE),
            AuditKey::generate().public().to_pem(),
        )
        .unwrap();
        assert!(matches!(
            AuditKey::load_or_create(&ca),
            Err(KeyError::NotAPair { .. })
        ));

        std::fs::remove_file(ca.join(KEY_FILE)).unwrap();
        assert!(matches!(
            AuditKey::load_or_create(&ca),
            Err(KeyError::KeyMissing { .. })
        ));
    }
}
