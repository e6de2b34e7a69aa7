//! The crypto suite: public keys and signatures tagged by scheme.
//!
//! Rules:
//! 1. A key or signature on the ledger carries its scheme as the BCS enum
//!    variant, so a second suite (`sm2-sm3`, the national-cryptography
//!    profile) adds a variant without changing any transaction layout.
//! 2. The suite is fixed at genesis: a chain accepts keys of its suite only.
//! 3. `ed25519-sha256`: Ed25519 verified strictly (`verify_strict`: canonical
//!    `S`, no small-order `R` or key); weak (small-order) keys are refused
//!    wherever a key enters the ledger.

use core::fmt;

use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::encoding::Hash32;

/// The signature and hash suite a chain is created with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CryptoSuite {
    /// Ed25519 signatures, SHA-256 hashes.
    Ed25519Sha256,
}

impl CryptoSuite {
    /// The suite's name as written in genesis files.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ed25519Sha256 => "ed25519-sha256",
        }
    }

    /// Parses a suite name. `sm2-sm3` is named in the design but not built
    /// yet, and is refused with a message saying so.
    pub fn from_name(name: &str) -> Result<Self, SuiteError> {
        match name {
            "ed25519-sha256" => Ok(Self::Ed25519Sha256),
            "sm2-sm3" => Err(SuiteError::NotBuilt("sm2-sm3")),
            other => Err(SuiteError::Unknown(other.to_string())),
        }
    }

    /// Whether `key` belongs to this suite.
    pub fn accepts(self, key: &PublicKey) -> bool {
        matches!((self, key), (Self::Ed25519Sha256, PublicKey::Ed25519(_)))
    }
}

/// A public key, tagged by scheme.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PublicKey {
    /// An Ed25519 public key (32 bytes, compressed Edwards point).
    Ed25519([u8; 32]),
}

/// A signature, tagged by scheme.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Signature {
    /// An Ed25519 signature: `R` then `S`.
    Ed25519 {
        /// The commitment point `R`.
        r: [u8; 32],
        /// The scalar `S`.
        s: [u8; 32],
    },
}

/// Why a crypto suite's name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SuiteError {
    /// Named in the design, not built yet.
    #[error("crypto suite {0} is planned but not implemented yet")]
    NotBuilt(&'static str),
    /// Not a suite at all.
    #[error("unknown crypto suite {0:?} (known: ed25519-sha256)")]
    Unknown(String),
}

/// Why a key written as `scheme:hex` is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyTextError {
    /// No `scheme:` prefix.
    #[error("expected scheme:hex, got {0:?}")]
    NoScheme(String),
    /// The part after the scheme is not hex.
    #[error("bad hex in key: {0}")]
    Hex(String),
    /// The wrong length for the scheme.
    #[error("an {scheme} key is {bytes} bytes")]
    Length {
        /// The scheme.
        scheme: &'static str,
        /// Its key length.
        bytes: usize,
    },
    /// A scheme medledger does not use.
    #[error("unknown key scheme {0:?} (known: ed25519)")]
    UnknownScheme(String),
    /// Not a valid key of its scheme (e.g. a small-order point).
    #[error(transparent)]
    Invalid(#[from] CryptoError),
}

/// Why a key or signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The bytes are not a point on the curve.
    #[error("public key is not a valid Ed25519 point")]
    MalformedKey,
    /// The key has small order: anyone could forge signatures for it.
    #[error("public key is weak (small order) and is refused")]
    WeakKey,
    /// The key and signature are of different schemes.
    #[error("signature scheme does not match the key's scheme")]
    SchemeMismatch,
    /// The signature does not verify under strict rules.
    #[error("signature does not verify")]
    BadSignature,
}

/// A public key already checked and decompressed ([`PublicKey::prepare`]).
#[derive(Clone, Copy, Debug)]
pub struct PreparedKey(VerifyingKey);

impl PreparedKey {
    /// Verifies `signature` over the 32-byte message digest, strictly: the
    /// same rules as [`PublicKey::verify`].
    pub fn verify(&self, message: &Hash32, signature: &Signature) -> Result<(), CryptoError> {
        match signature {
            Signature::Ed25519 { r, s } => {
                let mut bytes = [0u8; 64];
                bytes[..32].copy_from_slice(r);
                bytes[32..].copy_from_slice(s);
                let signature = ed25519_dalek::Signature::from_bytes(&bytes);
                self.0
                    .verify_strict(&message.0, &signature)
                    .map_err(|_| CryptoError::BadSignature)
            }
        }
    }
}

/// Checks many signatures at once with one multi-scalar equation
/// (ed25519-dalek's `verify_batch`), about three times faster per signature
/// than one by one; the auditor's replay uses it. `true` when every
/// `(key, message, signature)` passes.
///
/// What [`PreparedKey::verify`] checks one by one and the batch equation does
/// not, is checked here first for each signature: `R` canonically encoded
/// and not of small order; `S` canonical and `R` on the curve are checked
/// by the batch's own decoding; keys are prepared, so on the curve and not
/// weak.
///
/// One difference remains and is inherent to batching: a signature whose
/// equation holds only up to a torsion point of order 2, 4 or 8 (it needs an
/// `R` or key with a torsion part, and the private key, so only the key's
/// holder can make one) is refused by strict verification but passes the
/// batch when the pseudo-random 128-bit weight the batch gives it is a
/// multiple of that order. Such a signature still proves the key's holder
/// signed. Callers that must name a failing signature re-verify one by one.
pub fn verify_batch(items: &[(PreparedKey, Hash32, Signature)]) -> bool {
    let mut messages = Vec::with_capacity(items.len());
    let mut signatures = Vec::with_capacity(items.len());
    let mut keys = Vec::with_capacity(items.len());
    for (key, message, signature) in items {
        let Signature::Ed25519 { r, s } = signature;
        if !r_is_strict(r) {
            return false;
        }
        let mut bytes = [0u8; 64];
        bytes[..32].copy_from_slice(r);
        bytes[32..].copy_from_slice(s);
        messages.push(&message.0[..]);
        signatures.push(ed25519_dalek::Signature::from_bytes(&bytes));
        keys.push(key.0);
    }
    ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok()
}

/// What strict verification requires of `R` before its equation: a
/// canonical encoding (strict verification compares encodings, so any other
/// is refused) of a point not of small order. Checked on the bytes, without
/// decompressing `R` (a square root, as costly as a third of the batch's
/// work per signature); whether `R` is on the curve at all the batch itself
/// finds out.
fn r_is_strict(r: &[u8; 32]) -> bool {
    // y >= p = 2^255 - 19 only if bits 8..255 are all ones and the low byte
    // is at least 0xed.
    let high_ones = r[1..31].iter().all(|b| *b == 0xff) && r[31] & 0x7f == 0x7f;
    if high_ones && r[0] >= 0xed {
        return false;
    }
    // With y canonical, the only other non-canonical encodings are x = 0
    // (y = 1 or y = -1) with the sign bit set; both points have small order.
    if r[31] & 0x80 != 0 {
        let mut y = *r;
        y[31] &= 0x7f;
        let mut one = [0u8; 32];
        one[0] = 1;
        let mut minus_one = [0xffu8; 32];
        minus_one[0] = 0xec;
        minus_one[31] = 0x7f;
        if y == one || y == minus_one {
            return false;
        }
    }
    !small_order_encodings().contains(r)
}

/// The canonical encodings of the eight points of small order.
fn small_order_encodings() -> &'static [[u8; 32]; 8] {
    static ENCODINGS: std::sync::OnceLock<[[u8; 32]; 8]> = std::sync::OnceLock::new();
    ENCODINGS.get_or_init(|| {
        curve25519_dalek::constants::EIGHT_TORSION.map(|point| point.compress().to_bytes())
    })
}

impl PublicKey {
    /// Checks the key is usable: on the curve and not weak.
    pub fn validate(&self) -> Result<(), CryptoError> {
        self.verifying_key().map(|_| ())
    }

    fn verifying_key(&self) -> Result<VerifyingKey, CryptoError> {
        match self {
            Self::Ed25519(bytes) => {
                let key = VerifyingKey::from_bytes(bytes).map_err(|_| CryptoError::MalformedKey)?;
                if key.is_weak() {
                    return Err(CryptoError::WeakKey);
                }
                Ok(key)
            }
        }
    }

    /// Verifies `signature` over the 32-byte message digest, strictly.
    pub fn verify(&self, message: &Hash32, signature: &Signature) -> Result<(), CryptoError> {
        self.prepare()?.verify(message, signature)
    }

    /// The key checked (on the curve, not weak) and decompressed, for a
    /// caller that verifies many signatures by the same key: decompressing
    /// costs about as much as the verification itself.
    pub fn prepare(&self) -> Result<PreparedKey, CryptoError> {
        Ok(PreparedKey(self.verifying_key()?))
    }

    /// The key's bytes without the scheme tag.
    pub fn raw_bytes(&self) -> &[u8] {
        match self {
            Self::Ed25519(bytes) => bytes,
        }
    }

    /// `scheme:hex`, the form used in files and JSON.
    pub fn to_text(&self) -> String {
        match self {
            Self::Ed25519(bytes) => format!("ed25519:{}", hex::encode(bytes)),
        }
    }

    /// Parses `scheme:hex` and validates the key.
    pub fn from_text(text: &str) -> Result<Self, KeyTextError> {
        let (scheme, hex_part) = text
            .split_once(':')
            .ok_or_else(|| KeyTextError::NoScheme(text.to_string()))?;
        match scheme {
            "ed25519" => {
                let bytes = hex::decode(hex_part).map_err(|e| KeyTextError::Hex(e.to_string()))?;
                let array: [u8; 32] = bytes.try_into().map_err(|_| KeyTextError::Length {
                    scheme: "ed25519",
                    bytes: 32,
                })?;
                let key = Self::Ed25519(array);
                key.validate()?;
                Ok(key)
            }
            other => Err(KeyTextError::UnknownScheme(other.to_string())),
        }
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ed25519 { r, s } => write!(f, "ed25519-sig:{}{}", hex::encode(r), hex::encode(s)),
        }
    }
}

impl Signature {
    /// The signature's 64 bytes without the scheme tag, as hex.
    pub fn to_hex(&self) -> String {
        match self {
            Self::Ed25519 { r, s } => format!("{}{}", hex::encode(r), hex::encode(s)),
        }
    }
}

/// A secret signing key. Its bytes never appear in `Debug` output.
///
/// `contracts` has no randomness: callers make the 32-byte seed from OS
/// entropy (the SDK does) or, in tests and fixtures, from a fixed value.
#[derive(Clone)]
pub struct SecretKey(SigningKey);

impl SecretKey {
    /// The Ed25519 key for a 32-byte seed.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self(SigningKey::from_bytes(&seed))
    }

    /// The seed, for writing a key file.
    pub fn seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey::Ed25519(self.0.verifying_key().to_bytes())
    }

    /// Signs a 32-byte message digest.
    pub fn sign(&self, message: &Hash32) -> Signature {
        let bytes = self.0.sign(&message.0).to_bytes();
        let mut r = [0u8; 32];
        let mut s = [0u8; 32];
        r.copy_from_slice(&bytes[..32]);
        s.copy_from_slice(&bytes[32..]);
        Signature::Ed25519 { r, s }
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({:?})", self.public_key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_round_trip_and_tamper() {
        let key = SecretKey::from_seed([7; 32]);
        let message = Hash32([1; 32]);
        let signature = key.sign(&message);
        key.public_key().verify(&message, &signature).unwrap();
        assert_eq!(
            key.public_key().verify(&Hash32([2; 32]), &signature),
            Err(CryptoError::BadSignature)
        );
    }

    #[test]
    fn weak_keys_are_refused() {
        // The identity point (y = 1) has small order.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(
            PublicKey::Ed25519(identity).validate(),
            Err(CryptoError::WeakKey)
        );
    }

    #[test]
    fn non_canonical_s_is_refused() {
        let key = SecretKey::from_seed([9; 32]);
        let message = Hash32([3; 32]);
        let Signature::Ed25519 { r, s } = key.sign(&message);
        // S + ℓ is the same scalar mod ℓ but not canonical: strict verification refuses it.
        let ell: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let mut sum = [0u8; 32];
        let mut carry = 0u16;
        for i in 0..32 {
            let v = u16::from(s[i]) + u16::from(ell[i]) + carry;
            sum[i] = (v & 0xff) as u8;
            carry = v >> 8;
        }
        let forged = Signature::Ed25519 { r, s: sum };
        assert!(key.public_key().verify(&message, &forged).is_err());
    }

    #[test]
    fn key_text_round_trip() {
        let key = SecretKey::from_seed([5; 32]).public_key();
        assert_eq!(PublicKey::from_text(&key.to_text()).unwrap(), key);
        assert!(PublicKey::from_text("rsa:00").is_err());
    }
}

#[cfg(test)]
mod r_checks {
    use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
    use curve25519_dalek::edwards::CompressedEdwardsY;
    use curve25519_dalek::scalar::Scalar;

    use super::r_is_strict;

    /// What strict verification concludes about an `R` on the curve: its
    /// encoding is the canonical one and it has no small order.
    fn by_decompressing(r: &[u8; 32]) -> Option<bool> {
        let point = CompressedEdwardsY(*r).decompress()?;
        Some(point.compress().to_bytes() == *r && !point.is_small_order())
    }

    #[test]
    fn the_byte_checks_on_r_agree_with_decompressing() {
        let mut candidates: Vec<[u8; 32]> = Vec::new();
        for point in EIGHT_TORSION {
            let bytes = point.compress().to_bytes();
            candidates.push(bytes);
            let mut flipped = bytes;
            flipped[31] ^= 0x80;
            candidates.push(flipped);
            // Mixed order: a torsion point plus a prime-order one.
            candidates.push((point + ED25519_BASEPOINT_POINT).compress().to_bytes());
        }
        // y + p for every y below 19, both signs: the non-canonical y's.
        for y in 0u8..19 {
            let mut bytes = [0xffu8; 32];
            bytes[0] = 0xed + y;
            bytes[31] = 0x7f;
            candidates.push(bytes);
            bytes[31] = 0xff;
            candidates.push(bytes);
        }
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..2_000u64 {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let mut bytes = [0u8; 32];
            for (j, chunk) in (0u32..).zip(bytes.chunks_mut(8)) {
                chunk.copy_from_slice(&(seed.rotate_left(j * 13) ^ i).to_le_bytes());
            }
            candidates.push(bytes);
            let point = ED25519_BASEPOINT_POINT * Scalar::from(seed);
            candidates.push(point.compress().to_bytes());
        }
        let mut on_curve = 0;
        for r in &candidates {
            if let Some(expected) = by_decompressing(r) {
                on_curve += 1;
                assert_eq!(r_is_strict(r), expected, "R = {}", hex::encode(r));
            }
        }
        assert!(on_curve > 2_000, "{on_curve} candidates on the curve");
    }
}
