//! The crypto suite: public keys and signatures tagged by scheme.
//!
//! Rules:
//! 1. A key or signature on the ledger carries its scheme as the BCS enum
//!    variant, so a second suite (`sm2-sm3`, the national-cryptography
//!    profile) adds a variant without changing any transaction layout.
//! 2. The suite is fixed at genesis: a chain accepts keys of its suite only.
//! 3. `ed25519-sha256`: Ed25519 signatures verified under ZIP-215 (the
//!    rule Zcash fixed so that single and batch verification agree): `S`
//!    canonical, `R` any
//!    encoding of a curve point, and the cofactored equation
//!    `[8][S]B = [8]R + [8][k]A`. One function (`verify_single`, behind
//!    [`PublicKey::verify`] and [`PreparedKey::verify`]) for transactions, consensus votes and proposals, signed reads,
//!    gateway messages, certificates, the light client and the auditor's
//!    replay, and [`verify_batch`] agreeing with it (see there).
//! 4. Keys: a key is refused wherever it enters the ledger, and before any
//!    signature by it is checked, unless it is a canonical encoding of a
//!    curve point that is not of small order (a small-order key would let
//!    anyone forge; a second encoding of one point would be a second id).

use core::fmt;

use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::{Signer as _, SigningKey};
use ed25519_zebra::VerificationKey;
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
    /// The bytes are not a point on the curve, or not its canonical encoding.
    #[error("public key is not a valid Ed25519 point in canonical encoding")]
    MalformedKey,
    /// The key has small order: anyone could forge signatures for it.
    #[error("public key is weak (small order) and is refused")]
    WeakKey,
    /// The key and signature are of different schemes.
    #[error("signature scheme does not match the key's scheme")]
    SchemeMismatch,
    /// The signature does not verify (ZIP-215).
    #[error("signature does not verify")]
    BadSignature,
}

/// A public key already checked and decompressed ([`PublicKey::prepare`]):
/// ed25519-zebra's key for single verification, and the curve point itself
/// for [`verify_batch`], so a batch does not decompress it again.
#[derive(Clone, Copy, Debug)]
pub struct PreparedKey {
    key: VerificationKey,
    point: EdwardsPoint,
}

/// Prepared keys kept between calls, so a key that signs again (a patient's
/// next grant, a hospital's next request) is not checked and decompressed
/// again: on a node that is a few percent of each transaction's cost.
/// Bounded: past `max` keys it starts afresh. A key that fails to prepare
/// is not kept.
pub struct KeyCache {
    keys: std::sync::Mutex<std::collections::HashMap<PublicKey, PreparedKey>>,
    max: usize,
}

impl KeyCache {
    /// An empty cache holding at most `max` keys.
    pub fn new(max: usize) -> Self {
        Self {
            keys: std::sync::Mutex::default(),
            max,
        }
    }

    /// `key` prepared, from the cache or prepared now ([`PublicKey::prepare`]).
    pub fn prepare(&self, key: &PublicKey) -> Result<PreparedKey, CryptoError> {
        // A panic cannot leave the map half-changed: poisoning is ignored.
        let lock = || self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(prepared) = lock().get(key) {
            return Ok(*prepared);
        }
        // Prepared outside the lock: concurrent callers do not wait on it.
        let prepared = key.prepare()?;
        let mut keys = lock();
        if keys.len() >= self.max {
            keys.clear();
        }
        keys.insert(*key, prepared);
        Ok(prepared)
    }
}

/// Rule 3 for one signature, by ed25519-zebra.
fn verify_single(
    key: &VerificationKey,
    message: &Hash32,
    signature: &Signature,
) -> Result<(), CryptoError> {
    key.verify(&zebra_signature(signature), &message.0)
        .map_err(|_| CryptoError::BadSignature)
}

fn zebra_signature(signature: &Signature) -> ed25519_zebra::Signature {
    match signature {
        Signature::Ed25519 { r, s } => {
            let mut bytes = [0u8; 64];
            bytes[..32].copy_from_slice(r);
            bytes[32..].copy_from_slice(s);
            ed25519_zebra::Signature::from_bytes(&bytes)
        }
    }
}

impl PreparedKey {
    /// Verifies `signature` over the 32-byte message digest under ZIP-215
    /// (rule 3).
    pub fn verify(&self, message: &Hash32, signature: &Signature) -> Result<(), CryptoError> {
        verify_single(&self.key, message, signature)
    }
}

/// Checks many signatures at once with one multi-scalar equation, about
/// 1.7 times as fast per signature as one by one (the auditor's replay and
/// batches of transactions). `true` when every `(key, message, signature)`
/// passes. Both use ZIP-215's cofactored equation, so a batch of valid
/// signatures always passes, and a batch with an invalid one passes only
/// if the weights happen to cancel its error: with 128-bit weights, about
/// 2^-128 per batch an adversary builds. Callers that must name a failing
/// signature verify one by one after a failed batch.
///
/// The equation is ed25519-zebra's batch equation,
/// `[8]( -[Σ zᵢsᵢ]B + Σ [zᵢ]Rᵢ + Σ_A [Σ zᵢkᵢ]A ) = 0` with `kᵢ =
/// SHA-512(Rᵢ ‖ A ‖ Mᵢ)`, evaluated with curve25519-dalek's multi-scalar
/// multiplication; it is written here rather than called there because
/// ed25519-zebra's verifier takes keys as bytes and decompresses each again
/// in every batch, while a node's keys come prepared from a cache (one
/// decompression was about a third of a batch's cost). `R` is decompressed
/// as ZIP-215 and ed25519-zebra do (any encoding of a curve point), `S`
/// must be canonical; the property tests check it agrees with
/// [`PreparedKey::verify`] on crafted inputs.
///
/// The batch weighs each signature by a 128-bit scalar `zᵢ` that an
/// adversary must not know before it chooses its signatures. `contracts`
/// has no randomness, so the weights are drawn from a hash of the whole
/// batch — every key, message and signature in it, in order (the
/// Fiat–Shamir way): changing any input changes every weight.
pub fn verify_batch(items: &[(PreparedKey, Hash32, Signature)]) -> bool {
    use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
    use curve25519_dalek::traits::{IsIdentity as _, VartimeMultiscalarMul as _};
    use sha2::{Digest, Sha512};
    let mut weights = BatchWeights::of(items);
    let mut base_coefficient = Scalar::ZERO;
    let mut r_coefficients = Vec::with_capacity(items.len());
    let mut r_points = Vec::with_capacity(items.len());
    // One term per distinct key: the signatures by one key add up.
    let mut key_terms: std::collections::HashMap<&[u8], usize> = std::collections::HashMap::new();
    let mut key_coefficients = Vec::new();
    let mut key_points = Vec::new();
    for (key, message, signature) in items {
        let Signature::Ed25519 { r, s } = signature;
        let Some(r_point) = CompressedEdwardsY(*r).decompress() else {
            return false;
        };
        let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(*s)) else {
            return false;
        };
        let key_bytes = key.key.as_ref();
        let challenge = Scalar::from_bytes_mod_order_wide(
            &Sha512::new()
                .chain_update(r)
                .chain_update(key_bytes)
                .chain_update(message.0)
                .finalize()
                .into(),
        );
        let weight = weights.next_weight();
        base_coefficient -= weight * s;
        r_coefficients.push(weight);
        r_points.push(r_point);
        let term = *key_terms.entry(key_bytes).or_insert_with(|| {
            key_coefficients.push(Scalar::ZERO);
            key_points.push(key.point);
            key_points.len() - 1
        });
        key_coefficients[term] += weight * challenge;
    }
    let sum = EdwardsPoint::vartime_multiscalar_mul(
        std::iter::once(&base_coefficient)
            .chain(&key_coefficients)
            .chain(&r_coefficients),
        std::iter::once(&ED25519_BASEPOINT_POINT)
            .chain(&key_points)
            .chain(&r_points),
    );
    sum.mul_by_cofactor().is_identity()
}

/// Whether `bytes` is the one encoding of a point it decodes to (if it
/// decodes at all), checked on the bytes without decompressing.
fn is_canonical(bytes: &[u8; 32]) -> bool {
    // y >= p = 2^255 - 19 only if bits 8..255 are all ones and the low byte
    // is at least 0xed.
    let high_ones = bytes[1..31].iter().all(|b| *b == 0xff) && bytes[31] & 0x7f == 0x7f;
    if high_ones && bytes[0] >= 0xed {
        return false;
    }
    // With y canonical, the only other second encodings are x = 0 (y = 1 or
    // y = -1) with the sign bit set.
    if bytes[31] & 0x80 != 0 {
        let mut y = *bytes;
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
    true
}

/// The canonical encodings of the eight points of small order.
fn small_order_encodings() -> &'static [[u8; 32]; 8] {
    static ENCODINGS: std::sync::OnceLock<[[u8; 32]; 8]> = std::sync::OnceLock::new();
    ENCODINGS.get_or_init(|| {
        curve25519_dalek::constants::EIGHT_TORSION.map(|point| point.compress().to_bytes())
    })
}

/// The batch's weights: SHA-512 in counter mode, keyed by a hash of every
/// item of the batch.
struct BatchWeights {
    seed: [u8; 64],
    counter: u64,
    block: [u8; 64],
    used: usize,
}

impl BatchWeights {
    fn of(items: &[(PreparedKey, Hash32, Signature)]) -> Self {
        use sha2::{Digest, Sha512};
        let mut hash = Sha512::new();
        hash.update(b"medledger/batch-weights/v1");
        hash.update((items.len() as u64).to_le_bytes());
        for (key, message, signature) in items {
            hash.update(key.key.as_ref());
            hash.update(message.0);
            let Signature::Ed25519 { r, s } = signature;
            hash.update(r);
            hash.update(s);
        }
        Self {
            seed: hash.finalize().into(),
            counter: 0,
            block: [0; 64],
            used: 64,
        }
    }

    /// The next weight: 128 bits of the SHA-512 stream, as a scalar.
    fn next_weight(&mut self) -> Scalar {
        use sha2::{Digest, Sha512};
        let mut bytes = [0u8; 16];
        for byte in &mut bytes {
            if self.used == self.block.len() {
                let mut hash = Sha512::new();
                hash.update(self.seed);
                hash.update(self.counter.to_le_bytes());
                self.block = hash.finalize().into();
                self.counter += 1;
                self.used = 0;
            }
            *byte = self.block[self.used];
            self.used += 1;
        }
        Scalar::from(u128::from_le_bytes(bytes))
    }
}

impl PublicKey {
    /// Checks the key is usable: a canonical encoding of a curve point not
    /// of small order (rule 4).
    pub fn validate(&self) -> Result<(), CryptoError> {
        self.verifying_key().map(|_| ())
    }

    fn verifying_key(&self) -> Result<VerificationKey, CryptoError> {
        match self {
            Self::Ed25519(bytes) => {
                if !is_canonical(bytes) {
                    return Err(CryptoError::MalformedKey);
                }
                if small_order_encodings().contains(bytes) {
                    return Err(CryptoError::WeakKey);
                }
                // One decompression (a square root): whether it is on the curve.
                VerificationKey::try_from(*bytes).map_err(|_| CryptoError::MalformedKey)
            }
        }
    }

    /// Verifies `signature` over the 32-byte message digest (rule 3).
    pub fn verify(&self, message: &Hash32, signature: &Signature) -> Result<(), CryptoError> {
        // Not through `prepare`: one signature needs no second
        // decompression for the batch equation.
        verify_single(&self.verifying_key()?, message, signature)
    }

    /// The key checked (on the curve, not weak) and decompressed, for a
    /// caller that verifies many signatures by the same key: decompressing
    /// costs about as much as the verification itself.
    pub fn prepare(&self) -> Result<PreparedKey, CryptoError> {
        let key = self.verifying_key()?;
        // A second decompression, once per key: ed25519-zebra keeps its
        // point private. `verifying_key` has checked the bytes decode.
        let point = CompressedEdwardsY(key.into())
            .decompress()
            .ok_or(CryptoError::MalformedKey)?;
        Ok(PreparedKey { key, point })
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

    /// An Ed25519 signature from [`Signature::to_hex`]'s 128 hex characters.
    pub fn ed25519_from_hex(text: &str) -> Result<Self, crate::encoding::DecodeError> {
        let bytes =
            hex::decode(text).map_err(|e| crate::encoding::DecodeError::Hex(e.to_string()))?;
        let bytes: [u8; 64] = bytes.try_into().map_err(|_| {
            crate::encoding::DecodeError::Hex("expected 64 bytes (128 hex characters)".into())
        })?;
        let (r, s) = bytes.split_at(32);
        let mut signature = Self::Ed25519 {
            r: [0; 32],
            s: [0; 32],
        };
        let Self::Ed25519 { r: to_r, s: to_s } = &mut signature;
        to_r.copy_from_slice(r);
        to_s.copy_from_slice(s);
        Ok(signature)
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
        // S + ℓ is the same scalar mod ℓ but not canonical: ZIP-215 refuses it.
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
    fn a_second_encoding_of_a_key_is_refused() {
        let key = SecretKey::from_seed([4; 32]).public_key();
        let PublicKey::Ed25519(bytes) = key;
        // The identity (small order) is also y = p + 1, a non-canonical y.
        let mut identity_again = [0xffu8; 32];
        identity_again[0] = 0xee;
        identity_again[31] = 0x7f;
        assert_eq!(
            PublicKey::Ed25519(identity_again).validate(),
            Err(CryptoError::MalformedKey)
        );
        // The sign bit flipped gives another point, not another encoding.
        let mut negated = bytes;
        negated[31] ^= 0x80;
        assert!(PublicKey::Ed25519(negated).validate().is_ok());
        assert!(key.validate().is_ok());
    }

    #[test]
    fn key_text_round_trip() {
        let key = SecretKey::from_seed([5; 32]).public_key();
        assert_eq!(PublicKey::from_text(&key.to_text()).unwrap(), key);
        assert!(PublicKey::from_text("rsa:00").is_err());
    }
}

#[cfg(test)]
mod key_checks {
    use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
    use curve25519_dalek::edwards::CompressedEdwardsY;
    use curve25519_dalek::scalar::Scalar;

    use super::{CryptoError, PublicKey};

    /// What the key check should conclude about bytes on the curve: refused
    /// unless the canonical encoding of a point not of small order.
    fn by_decompressing(bytes: &[u8; 32]) -> Option<Result<(), CryptoError>> {
        let point = CompressedEdwardsY(*bytes).decompress()?;
        Some(if point.compress().to_bytes() != *bytes {
            Err(CryptoError::MalformedKey)
        } else if point.is_small_order() {
            Err(CryptoError::WeakKey)
        } else {
            Ok(())
        })
    }

    #[test]
    fn the_key_checks_on_the_bytes_agree_with_decompressing() {
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
        // y + p for every y below 19, both signs: the second encodings,
        // of small-order points and of others (y = 3, 4, 5…).
        let mut second_encodings = 0;
        for y in 0u8..19 {
            let mut bytes = [0xffu8; 32];
            bytes[0] = 0xed + y;
            bytes[31] = 0x7f;
            candidates.push(bytes);
            bytes[31] = 0xff;
            candidates.push(bytes);
            for sign in [0x7f, 0xff] {
                bytes[31] = sign;
                if let Some(point) = CompressedEdwardsY(bytes).decompress() {
                    if !point.is_small_order() {
                        second_encodings += 1;
                        assert_eq!(
                            PublicKey::Ed25519(bytes).validate(),
                            Err(CryptoError::MalformedKey)
                        );
                    }
                }
            }
        }
        assert!(second_encodings >= 10, "{second_encodings}");
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
        for bytes in &candidates {
            match by_decompressing(bytes) {
                Some(expected) => {
                    on_curve += 1;
                    assert_eq!(
                        PublicKey::Ed25519(*bytes).validate(),
                        expected,
                        "{}",
                        hex::encode(bytes)
                    );
                }
                None => assert!(PublicKey::Ed25519(*bytes).validate().is_err()),
            }
        }
        assert!(on_curve > 2_000, "{on_curve} candidates on the curve");
    }
}
