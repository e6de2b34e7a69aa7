//! Canonical bytes: BCS with bounded containers and domain-separated hashes.
//!
//! Rules:
//! 1. Everything hashed or signed is BCS-encoded; JSON exists only at the
//!    HTTP edge.
//! 2. Every hash input starts with a domain tag (`medledger/<what>/v1`), so
//!    bytes of one type can never be taken for another.
//! 3. Decoding is strict: input larger than the type's limit is refused before
//!    parsing, every vector and string has a maximum length, and trailing
//!    bytes are an error.

use core::fmt;
use core::marker::PhantomData;

use serde::de::{self, DeserializeOwned, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::constants::BCS_CONTAINER_DEPTH_MAX;

/// Domain tags: the first bytes of every hash input.
pub mod tags {
    /// Signing message of a transaction.
    pub const TRANSACTION_SIGNING: &[u8] = b"medledger/tx/v2";
    /// Transaction id (replay protection and references): the transaction
    /// and the key that signs it.
    pub const TRANSACTION_ID: &[u8] = b"medledger/txid/v2";
    /// A transaction as signed: its id with the key and signature it
    /// carries (the leaves of a block's transaction root).
    pub const SIGNED_TRANSACTION: &[u8] = b"medledger/signed-tx/v1";
    /// A patient id derived from the patient's first public key.
    pub const PATIENT_ID: &[u8] = b"medledger/patient/v1";
    /// A practitioner id derived from the practitioner's first public key.
    pub const PRACTITIONER_ID: &[u8] = b"medledger/practitioner/v1";
    /// A proof that the holder of a new key agrees to a key change.
    pub const KEY_POSSESSION: &[u8] = b"medledger/key-possession/v1";
    /// An audit-log entry (leaf data of the audit Merkle tree).
    pub const AUDIT_ENTRY: &[u8] = b"medledger/audit/v1";
    /// A block header.
    pub const BLOCK_HEADER: &[u8] = b"medledger/header/v1";
    /// A validator set.
    pub const VALIDATOR_SET: &[u8] = b"medledger/validator-set/v1";
    /// The genesis file.
    pub const GENESIS: &[u8] = b"medledger/genesis/v1";
    /// A consensus vote (prevote or precommit) signed by a validator's node key.
    pub const CONSENSUS_VOTE: &[u8] = b"medledger/vote/v1";
    /// A consensus proposal signed by a validator's node key.
    pub const CONSENSUS_PROPOSAL: &[u8] = b"medledger/proposal/v1";
    /// A node's proof that its network identity belongs to its node key.
    pub const NODE_IDENTITY: &[u8] = b"medledger/node-identity/v1";
    /// A salted hash of a practitioner's licence number (the number and
    /// salt stay off the ledger).
    pub const LICENCE: &[u8] = b"medledger/licence/v2";
    /// A signed read of the HTTP API (method, path, body hash, time, nonce).
    pub const HTTP_REQUEST: &[u8] = b"medledger/http-request/v2";
    /// A patient's key accepting a recorded guardianship (R4.7).
    pub const GUARDIANSHIP_CONSENT: &[u8] = b"medledger/guardianship-consent/v1";
    /// A patient's key accepting a hospital's record number as theirs (the
    /// link stays at the hospital; the holder checks it before serving).
    pub const RECORD_LINK: &[u8] = b"medledger/record-link/v1";
}

/// A 32-byte digest (of the chain's hash function, SHA-256 or SM3).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
pub struct Hash32(pub [u8; 32]);

impl Hash32 {
    /// The digest as lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex characters.
    pub fn from_hex(text: &str) -> Result<Self, DecodeError> {
        let bytes = hex::decode(text).map_err(|e| DecodeError::Hex(e.to_string()))?;
        let array: [u8; 32] = bytes
            .try_into()
            .map_err(|_| DecodeError::Hex("expected 32 bytes (64 hex characters)".into()))?;
        Ok(Self(array))
    }
}

impl fmt::Debug for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_hex())
    }
}

impl fmt::Display for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_hex())
    }
}

/// A 256-bit hash function a crypto suite names: SHA-256 for
/// `ed25519-sha256`, SM3 (GB/T 32905) for `sm2-sm3`. Every ledger hash of a
/// chain is of its suite's function, so it is passed, never assumed: there
/// is no suite-less way to hash here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashFunction {
    /// SHA-256 (FIPS 180-4).
    Sha256,
    /// SM3 (GB/T 32905-2016).
    Sm3,
}

impl HashFunction {
    /// The function's name: `sha256` or `sm3`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "sha256",
            Self::Sm3 => "sm3",
        }
    }

    /// The function of a [`Self::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Sha256, Self::Sm3]
            .into_iter()
            .find(|function| function.name() == name)
    }

    /// The function over `tag ‖ parts…`.
    pub fn tagged_hash(self, tag: &[u8], parts: &[&[u8]]) -> Hash32 {
        fn run<D: Digest>(tag: &[u8], parts: &[&[u8]]) -> Hash32 {
            let mut hasher = D::new();
            hasher.update(tag);
            for part in parts {
                hasher.update(part);
            }
            let mut out = [0u8; 32];
            out.copy_from_slice(&hasher.finalize());
            Hash32(out)
        }
        match self {
            Self::Sha256 => run::<Sha256>(tag, parts),
            Self::Sm3 => run::<sm3::Sm3>(tag, parts),
        }
    }

    /// The function over `tag ‖ BCS(value)`.
    pub fn hash_of<T: Serialize + ?Sized>(self, tag: &[u8], value: &T) -> Hash32 {
        self.tagged_hash(tag, &[&to_bytes(value)])
    }

    /// The function over `bytes` alone (the empty Merkle tree's root, a
    /// record's content hash).
    pub fn digest(self, bytes: &[u8]) -> Hash32 {
        self.tagged_hash(bytes, &[])
    }

    /// The function over bytes that come in pieces (a record read or
    /// received in chunks): the same hash as [`Self::digest`] of them all.
    pub fn stream(self) -> StreamHasher {
        match self {
            Self::Sha256 => StreamHasher::Sha256(Sha256::new()),
            Self::Sm3 => StreamHasher::Sm3(sm3::Sm3::new()),
        }
    }
}

/// [`HashFunction::stream`]: a hash fed piece by piece.
#[derive(Clone)]
pub enum StreamHasher {
    /// SHA-256.
    Sha256(Sha256),
    /// SM3.
    Sm3(sm3::Sm3),
}

impl StreamHasher {
    /// Feeds the next piece.
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Self::Sha256(hasher) => hasher.update(bytes),
            Self::Sm3(hasher) => hasher.update(bytes),
        }
    }

    /// The hash of every piece fed.
    pub fn finish(self) -> Hash32 {
        let mut out = [0u8; 32];
        match self {
            Self::Sha256(hasher) => out.copy_from_slice(&hasher.finalize()),
            Self::Sm3(hasher) => out.copy_from_slice(&hasher.finalize()),
        }
        Hash32(out)
    }
}

/// Canonical BCS bytes of a value.
///
/// Our types hold no maps and no unbounded nesting, so BCS cannot fail on them;
/// a failure would be a programming error in a type definition.
pub fn to_bytes<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    match bcs::to_bytes(value) {
        Ok(bytes) => bytes,
        Err(error) => panic!("BCS encoding of a ledger type failed: {error}"),
    }
}

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input is larger than the type allows.
    #[error("input is {actual} bytes, more than the {max} allowed")]
    TooLarge {
        /// Bytes given.
        actual: usize,
        /// Bytes allowed.
        max: usize,
    },
    /// The bytes are not canonical BCS of the expected type (including trailing bytes).
    #[error("not canonical BCS: {0}")]
    Bcs(String),
    /// Hex text was malformed.
    #[error("bad hex: {0}")]
    Hex(String),
}

/// Strictly decodes canonical BCS of at most `max_bytes` bytes.
pub fn from_bytes<T: DeserializeOwned>(bytes: &[u8], max_bytes: usize) -> Result<T, DecodeError> {
    if bytes.len() > max_bytes {
        return Err(DecodeError::TooLarge {
            actual: bytes.len(),
            max: max_bytes,
        });
    }
    bcs::from_bytes_with_limit(bytes, BCS_CONTAINER_DEPTH_MAX)
        .map_err(|e| DecodeError::Bcs(e.to_string()))
}

/// A vector that never holds more than `MAX` items, checked while decoding.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BoundedVec<T, const MAX: usize>(Vec<T>);

impl<T, const MAX: usize> Default for BoundedVec<T, MAX> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<T, const MAX: usize> BoundedVec<T, MAX> {
    /// Wraps `items`, or gives them back when there are more than `MAX`.
    pub fn new(items: Vec<T>) -> Result<Self, Vec<T>> {
        if items.len() > MAX {
            Err(items)
        } else {
            Ok(Self(items))
        }
    }

    /// The items.
    pub fn as_slice(&self) -> &[T] {
        &self.0
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no items.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Iterates over the items.
    pub fn iter(&self) -> core::slice::Iter<'_, T> {
        self.0.iter()
    }

    /// Unwraps the items.
    pub fn into_inner(self) -> Vec<T> {
        self.0
    }

    /// Appends an item, or hands it back when full.
    pub fn push(&mut self, item: T) -> Result<(), T> {
        if self.0.len() >= MAX {
            return Err(item);
        }
        self.0.push(item);
        Ok(())
    }

    /// Keeps only the items for which `keep` is true.
    pub fn retain(&mut self, keep: impl FnMut(&T) -> bool) {
        self.0.retain(keep);
    }
}

impl<T: fmt::Debug, const MAX: usize> fmt::Debug for BoundedVec<T, MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<T, const MAX: usize> core::ops::Deref for BoundedVec<T, MAX> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.0
    }
}

impl<T: Serialize, const MAX: usize> Serialize for BoundedVec<T, MAX> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de, T: Deserialize<'de>, const MAX: usize> Deserialize<'de> for BoundedVec<T, MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BoundedVisitor<T, const MAX: usize>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>, const MAX: usize> Visitor<'de> for BoundedVisitor<T, MAX> {
            type Value = BoundedVec<T, MAX>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a sequence of at most {MAX} items")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                if seq.size_hint().is_some_and(|n| n > MAX) {
                    return Err(de::Error::custom(format!("more than {MAX} items")));
                }
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(MAX));
                while let Some(item) = seq.next_element()? {
                    if items.len() == MAX {
                        return Err(de::Error::custom(format!("more than {MAX} items")));
                    }
                    items.push(item);
                }
                Ok(BoundedVec(items))
            }
        }

        deserializer.deserialize_seq(BoundedVisitor::<T, MAX>(PhantomData))
    }
}

/// A UTF-8 string of at most `MAX` bytes, checked while decoding.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct BoundedString<const MAX: usize>(String);

/// Why a text does not fit a [`BoundedString`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// Longer than allowed.
    #[error("{len} bytes, more than the {max} allowed")]
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// Control characters (newlines, escapes) are never part of a name.
    #[error("contains control characters")]
    ControlCharacters,
}

impl<const MAX: usize> BoundedString<MAX> {
    /// Wraps `text`, or says why it does not fit.
    pub fn new(text: impl Into<String>) -> Result<Self, TextError> {
        let text = text.into();
        if text.len() > MAX {
            return Err(TextError::TooLong {
                len: text.len(),
                max: MAX,
            });
        }
        if text.chars().any(char::is_control) {
            return Err(TextError::ControlCharacters);
        }
        Ok(Self(text))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<const MAX: usize> fmt::Debug for BoundedString<MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<const MAX: usize> fmt::Display for BoundedString<MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<const MAX: usize> Serialize for BoundedString<MAX> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de, const MAX: usize> Deserialize<'de> for BoundedString<MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::new(text).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_hashes_as_the_whole_does_on_both_functions() {
        let bytes: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        for function in [HashFunction::Sha256, HashFunction::Sm3] {
            let mut stream = function.stream();
            for piece in bytes.chunks(97) {
                stream.update(piece);
            }
            assert_eq!(stream.finish(), function.digest(&bytes), "{function:?}");
        }
        assert_ne!(
            HashFunction::Sha256.digest(&bytes),
            HashFunction::Sm3.digest(&bytes)
        );
    }

    #[test]
    fn bounded_vec_refuses_one_item_too_many() {
        let ok: BoundedVec<u8, 3> = from_bytes(&to_bytes(&vec![1u8, 2, 3]), 100).unwrap();
        assert_eq!(ok.as_slice(), &[1, 2, 3]);
        let err = from_bytes::<BoundedVec<u8, 3>>(&to_bytes(&vec![1u8, 2, 3, 4]), 100);
        assert!(matches!(err, Err(DecodeError::Bcs(m)) if m.contains("more than 3")));
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        let mut bytes = to_bytes(&7u32);
        bytes.push(0);
        assert!(from_bytes::<u32>(&bytes, 100).is_err());
    }

    #[test]
    fn oversized_input_is_refused_before_parsing() {
        assert_eq!(
            from_bytes::<u8>(&[0; 11], 10),
            Err(DecodeError::TooLarge {
                actual: 11,
                max: 10
            })
        );
    }

    #[test]
    fn bounded_string_refuses_long_and_control_text() {
        assert!(BoundedString::<4>::new("abcd").is_ok());
        assert!(BoundedString::<4>::new("abcde").is_err());
        assert!(BoundedString::<4>::new("a\nb").is_err());
        let long = to_bytes("abcde");
        assert!(from_bytes::<BoundedString<4>>(&long, 100).is_err());
    }

    #[test]
    fn tags_separate_domains_and_suites_separate_hashes() {
        for hash in [HashFunction::Sha256, HashFunction::Sm3] {
            assert_ne!(
                hash.tagged_hash(tags::TRANSACTION_ID, &[b"x"]),
                hash.tagged_hash(tags::AUDIT_ENTRY, &[b"x"])
            );
        }
        assert_ne!(
            HashFunction::Sha256.tagged_hash(tags::TRANSACTION_ID, &[b"x"]),
            HashFunction::Sm3.tagged_hash(tags::TRANSACTION_ID, &[b"x"])
        );
    }
}
