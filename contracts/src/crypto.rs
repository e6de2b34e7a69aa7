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
//! 5. `sm2`: SM2 signatures (GB/T 32918.2) over the same 32-byte message
//!    digests, with the signer-identity value `Z` computed from the default
//!    user id of GB/T 35276, [`SM2_USER_ID`]; keys are SEC1 compressed
//!    points of the recommended curve (GB/T 32918.5), checked on decoding.
//!    The keys and signatures are built and tested against the standard's
//!    example. The ledger's rules run on `sm2-sm3` ([`CryptoSuite::Sm2Sm3`]:
//!    SM2 keys, SM3 hashes); a node refuses to run it yet (its network
//!    identity and records sealing are Ed25519 and HPKE).

use core::fmt;

use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::{Signer as _, SigningKey};
use ed25519_zebra::VerificationKey;
use serde::{Deserialize, Serialize};

use crate::encoding::{Hash32, HashFunction};

/// The user id from which an SM2 key's signer-identity value `Z` is
/// computed: GB/T 35276's default, the one certified GM/T devices and
/// libraries use when none is agreed. The ledger binds a key to its owner
/// itself (registrations, admissions), so a per-signer id would add nothing
/// and every verifier would have to be told it.
pub const SM2_USER_ID: &str = "1234567812345678";

/// The signature and hash suite a chain is created with: fixed in genesis,
/// so every key, signature and ledger hash of a chain is of one suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CryptoSuite {
    /// Ed25519 signatures, SHA-256 hashes.
    Ed25519Sha256,
    /// SM2 signatures (GB/T 32918.2), SM3 hashes (GB/T 32905): the
    /// national-cryptography profile.
    Sm2Sm3,
}

impl CryptoSuite {
    /// The suite's name as written in genesis files.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ed25519Sha256 => "ed25519-sha256",
            Self::Sm2Sm3 => "sm2-sm3",
        }
    }

    /// Parses a suite name.
    pub fn from_name(name: &str) -> Result<Self, SuiteError> {
        match name {
            "ed25519-sha256" => Ok(Self::Ed25519Sha256),
            "sm2-sm3" => Ok(Self::Sm2Sm3),
            other => Err(SuiteError::Unknown(other.to_string())),
        }
    }

    /// The hash function of every ledger hash on a chain of this suite.
    pub const fn hash_function(self) -> HashFunction {
        match self {
            Self::Ed25519Sha256 => HashFunction::Sha256,
            Self::Sm2Sm3 => HashFunction::Sm3,
        }
    }

    /// The signature scheme of every key on a chain of this suite.
    pub fn scheme(self) -> &'static str {
        match self {
            Self::Ed25519Sha256 => "ed25519",
            Self::Sm2Sm3 => "sm2",
        }
    }

    /// Whether a node on a chain of this suite has a transport key of its
    /// own (`InstitutionSpec::transport_key`): on `sm2-sm3`, because
    /// libp2p's Noise handshake, which authenticates nodes to each other,
    /// takes Ed25519 and not SM2. That Ed25519 key names a node on the
    /// network and signs nothing the ledger keeps except the proof that
    /// its holder has it.
    pub const fn has_transport_keys(self) -> bool {
        matches!(self, Self::Sm2Sm3)
    }

    /// The one suite whose keys are of `key`'s scheme.
    pub fn of_key(key: &PublicKey) -> Self {
        match key {
            PublicKey::Ed25519(_) => Self::Ed25519Sha256,
            PublicKey::Sm2(_) => Self::Sm2Sm3,
        }
    }

    /// Whether `key` belongs to this suite.
    pub fn accepts(self, key: &PublicKey) -> bool {
        matches!(
            (self, key),
            (Self::Ed25519Sha256, PublicKey::Ed25519(_)) | (Self::Sm2Sm3, PublicKey::Sm2(_))
        )
    }

    /// A key of another suite's scheme is refused wherever a key enters the
    /// chain's ledger (rule 5): no mixing within a chain.
    pub fn check_key(self, key: &PublicKey) -> Result<(), CryptoError> {
        if self.accepts(key) {
            Ok(())
        } else {
            Err(CryptoError::SchemeNotOnThisChain {
                scheme: key.scheme(),
                suite: self.name(),
            })
        }
    }

    /// [`Self::check_key`] for a signature carried in a transaction's
    /// payload (not its own signature).
    pub fn check_signature(self, signature: &Signature) -> Result<(), CryptoError> {
        let scheme = match signature {
            Signature::Ed25519 { .. } => "ed25519",
            Signature::Sm2 { .. } => "sm2",
        };
        if scheme == self.scheme() {
            Ok(())
        } else {
            Err(CryptoError::SchemeNotOnThisChain {
                scheme,
                suite: self.name(),
            })
        }
    }
}

/// A public key, tagged by scheme.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PublicKey {
    /// An Ed25519 public key (32 bytes, compressed Edwards point).
    Ed25519([u8; 32]),
    /// An SM2 public key: the SEC1 compressed point (`02` or `03`, then `x`).
    Sm2(#[serde(with = "bytes33")] [u8; 33]),
}

/// A signature, tagged by scheme. (Ordered only because Malachite keeps
/// signatures in ordered collections; the order means nothing.)
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Signature {
    /// An Ed25519 signature: `R` then `S`.
    Ed25519 {
        /// The commitment point `R`.
        r: [u8; 32],
        /// The scalar `S`.
        s: [u8; 32],
    },
    /// An SM2 signature: `r` then `s`, big-endian, each in `[1, n-1]`.
    Sm2 {
        /// `r = (e + x1) mod n`.
        r: [u8; 32],
        /// `s`.
        s: [u8; 32],
    },
}

/// 33 bytes as BCS writes a fixed array (no length), which serde derives
/// only up to 32 (an SM2 compressed point; `#[serde(with = …)]`).
pub mod bytes33 {
    use serde::de::{Error as _, SeqAccess, Visitor};
    use serde::ser::SerializeTuple as _;
    use serde::{Deserializer, Serializer};

    /// Writes the 33 bytes.
    pub fn serialize<S: Serializer>(bytes: &[u8; 33], serializer: S) -> Result<S::Ok, S::Error> {
        let mut tuple = serializer.serialize_tuple(33)?;
        for byte in bytes {
            tuple.serialize_element(byte)?;
        }
        tuple.end()
    }

    /// Reads exactly 33 bytes.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<[u8; 33], D::Error> {
        struct Bytes33;
        impl<'de> Visitor<'de> for Bytes33 {
            type Value = [u8; 33];
            fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str("33 bytes")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<[u8; 33], A::Error> {
                let mut bytes = [0u8; 33];
                for (i, byte) in bytes.iter_mut().enumerate() {
                    *byte = seq
                        .next_element()?
                        .ok_or_else(|| A::Error::invalid_length(i, &self))?;
                }
                Ok(bytes)
            }
        }
        deserializer.deserialize_tuple(33, Bytes33)
    }
}

/// Why a crypto suite's name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SuiteError {
    /// Not a suite at all.
    #[error("unknown crypto suite {0:?} (known: ed25519-sha256, sm2-sm3)")]
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
    #[error("unknown key scheme {0:?} (known: ed25519, sm2)")]
    UnknownScheme(String),
    /// Not a valid key of its scheme (e.g. a small-order point).
    #[error(transparent)]
    Invalid(#[from] CryptoError),
}

/// Why a key or signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The bytes are not a point on the curve, or not its canonical encoding.
    #[error("public key is not a valid point of its scheme's curve in canonical encoding")]
    MalformedKey,
    /// The key has small order: anyone could forge signatures for it.
    #[error("public key is weak (small order) and is refused")]
    WeakKey,
    /// The key and signature are of different schemes.
    #[error("signature scheme does not match the key's scheme")]
    SchemeMismatch,
    /// The signature does not verify (ZIP-215 for Ed25519).
    #[error("signature does not verify")]
    BadSignature,
    /// A key or signature of another suite's scheme than the chain's (rule 5).
    #[error("{scheme} keys and signatures are not accepted on a chain of suite {suite}")]
    SchemeNotOnThisChain {
        /// The key's or signature's scheme.
        scheme: &'static str,
        /// The chain's suite.
        suite: &'static str,
    },
    /// An SM2 secret is 0, at least the curve's order, or `n - 1` (for
    /// which SM2's `(1 + d)^-1` does not exist).
    #[error("not a usable SM2 secret key")]
    BadSecretKey,
}

/// A public key already checked and decompressed ([`PublicKey::prepare`]):
/// for Ed25519, ed25519-zebra's key for single verification and the curve
/// point itself for [`verify_batch`], so a batch does not decompress it
/// again; for SM2, the point with its `Z` value computed.
#[derive(Clone, Debug)]
pub struct PreparedKey(Prepared);

// Ed25519 is every key of today's chains and stays inline (no allocation
// on the hot path); SM2's larger key is shared, so a clone stays cheap.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
enum Prepared {
    Ed25519 {
        key: VerificationKey,
        point: EdwardsPoint,
    },
    Sm2(std::sync::Arc<sm2::dsa::VerifyingKey>),
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
    /// The cache serves keys from outside (signed reads, transactions), so a
    /// key of another suite than `suite`, the caller's chain's, is refused
    /// before any work (rule 5): it neither costs a verification nor takes
    /// a cache slot.
    pub fn prepare(&self, suite: CryptoSuite, key: &PublicKey) -> Result<PreparedKey, CryptoError> {
        suite.check_key(key)?;
        // A panic cannot leave the map half-changed: poisoning is ignored.
        let lock = || self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(prepared) = lock().get(key) {
            return Ok(prepared.clone());
        }
        // Prepared outside the lock: concurrent callers do not wait on it.
        let prepared = key.prepare()?;
        let mut keys = lock();
        if keys.len() >= self.max {
            keys.clear();
        }
        keys.insert(*key, prepared.clone());
        Ok(prepared)
    }
}

/// Rule 3 for one signature, by ed25519-zebra.
fn verify_single(
    key: &VerificationKey,
    message: &Hash32,
    signature: &Signature,
) -> Result<(), CryptoError> {
    let Signature::Ed25519 { r, s } = signature else {
        return Err(CryptoError::SchemeMismatch);
    };
    key.verify(
        &ed25519_zebra::Signature::from_bytes(&join(r, s)),
        &message.0,
    )
    .map_err(|_| CryptoError::BadSignature)
}

/// Rule 5 for one signature: SM2 over `Z ‖ message`, by RustCrypto's `sm2`.
fn verify_sm2(
    key: &sm2::dsa::VerifyingKey,
    message: &Hash32,
    signature: &Signature,
) -> Result<(), CryptoError> {
    use sm2::dsa::signature::Verifier as _;
    let Signature::Sm2 { r, s } = signature else {
        return Err(CryptoError::SchemeMismatch);
    };
    // Parsing refuses r or s outside [1, n-1].
    let signature =
        sm2::dsa::Signature::from_bytes(&join(r, s)).map_err(|_| CryptoError::BadSignature)?;
    key.verify(&message.0, &signature)
        .map_err(|_| CryptoError::BadSignature)
}

fn join(r: &[u8; 32], s: &[u8; 32]) -> [u8; 64] {
    let mut bytes = [0u8; 64];
    bytes[..32].copy_from_slice(r);
    bytes[32..].copy_from_slice(s);
    bytes
}

fn split(bytes: &[u8]) -> ([u8; 32], [u8; 32]) {
    let mut r = [0u8; 32];
    let mut s = [0u8; 32];
    r.copy_from_slice(&bytes[..32]);
    s.copy_from_slice(&bytes[32..64]);
    (r, s)
}

/// Rule 4: an Ed25519 key checked and decompressed.
fn ed25519_verifying_key(bytes: &[u8; 32]) -> Result<VerificationKey, CryptoError> {
    if !is_canonical(bytes) {
        return Err(CryptoError::MalformedKey);
    }
    if small_order_encodings().contains(bytes) {
        return Err(CryptoError::WeakKey);
    }
    // One decompression (a square root): whether it is on the curve.
    VerificationKey::try_from(*bytes).map_err(|_| CryptoError::MalformedKey)
}

/// An SM2 key decoded and checked: a point of the curve (the compressed
/// form cannot name the point at infinity, and SM2's cofactor is 1, so
/// every such point is usable), with `Z` computed.
fn sm2_verifying_key(bytes: &[u8; 33]) -> Result<sm2::dsa::VerifyingKey, CryptoError> {
    if bytes[0] != 0x02 && bytes[0] != 0x03 {
        return Err(CryptoError::MalformedKey);
    }
    // Decoding refuses x >= p and an x with no point.
    sm2::dsa::VerifyingKey::from_sec1_bytes(SM2_USER_ID, bytes)
        .map_err(|_| CryptoError::MalformedKey)
}

impl PreparedKey {
    /// Verifies `signature` over the 32-byte message digest under ZIP-215
    /// (rule 3).
    pub fn verify(&self, message: &Hash32, signature: &Signature) -> Result<(), CryptoError> {
        match &self.0 {
            Prepared::Ed25519 { key, .. } => verify_single(key, message, signature),
            Prepared::Sm2(key) => verify_sm2(key, message, signature),
        }
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
///
/// SM2 has no batch equation: its items are verified one by one, and the
/// Ed25519 items of the same call in one batch.
pub fn verify_batch(items: &[(PreparedKey, Hash32, Signature)]) -> bool {
    if items
        .iter()
        .any(|(key, _, _)| matches!(key.0, Prepared::Sm2(_)))
    {
        let mut ed25519 = Vec::with_capacity(items.len());
        for (key, message, signature) in items {
            match &key.0 {
                Prepared::Sm2(sm2_key) => {
                    if verify_sm2(sm2_key, message, signature).is_err() {
                        return false;
                    }
                }
                Prepared::Ed25519 { .. } => ed25519.push((key.clone(), *message, *signature)),
            }
        }
        return verify_ed25519_batch(&ed25519);
    }
    verify_ed25519_batch(items)
}

/// [`verify_batch`] for Ed25519 items only.
fn verify_ed25519_batch(items: &[(PreparedKey, Hash32, Signature)]) -> bool {
    if items.is_empty() {
        return true;
    }
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
        let (Prepared::Ed25519 { key, point }, Signature::Ed25519 { r, s }) = (&key.0, signature)
        else {
            return false;
        };
        let Some(r_point) = CompressedEdwardsY(*r).decompress() else {
            return false;
        };
        let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(*s)) else {
            return false;
        };
        let key_bytes = key.as_ref();
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
            key_points.push(*point);
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
            if let Prepared::Ed25519 { key, .. } = &key.0 {
                hash.update(key.as_ref());
            }
            hash.update(message.0);
            let (Signature::Ed25519 { r, s } | Signature::Sm2 { r, s }) = signature;
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
    /// of small order (rules 4 and 5).
    pub fn validate(&self) -> Result<(), CryptoError> {
        match self {
            Self::Ed25519(bytes) => ed25519_verifying_key(bytes).map(|_| ()),
            Self::Sm2(bytes) => sm2_verifying_key(bytes).map(|_| ()),
        }
    }

    /// Verifies `signature` over the 32-byte message digest (rules 3 and 5).
    pub fn verify(&self, message: &Hash32, signature: &Signature) -> Result<(), CryptoError> {
        // Not through `prepare`: one signature needs no second
        // decompression for the batch equation.
        match self {
            Self::Ed25519(bytes) => {
                verify_single(&ed25519_verifying_key(bytes)?, message, signature)
            }
            Self::Sm2(bytes) => verify_sm2(&sm2_verifying_key(bytes)?, message, signature),
        }
    }

    /// The key checked (on the curve, not weak) and decompressed, for a
    /// caller that verifies many signatures by the same key: decompressing
    /// costs about as much as the verification itself.
    pub fn prepare(&self) -> Result<PreparedKey, CryptoError> {
        match self {
            Self::Ed25519(bytes) => {
                let key = ed25519_verifying_key(bytes)?;
                // A second decompression, once per key: ed25519-zebra keeps
                // its point private. The bytes are known to decode.
                let point = CompressedEdwardsY(key.into())
                    .decompress()
                    .ok_or(CryptoError::MalformedKey)?;
                Ok(PreparedKey(Prepared::Ed25519 { key, point }))
            }
            Self::Sm2(bytes) => Ok(PreparedKey(Prepared::Sm2(std::sync::Arc::new(
                sm2_verifying_key(bytes)?,
            )))),
        }
    }

    /// The key's bytes without the scheme tag.
    pub fn raw_bytes(&self) -> &[u8] {
        match self {
            Self::Ed25519(bytes) => bytes,
            Self::Sm2(bytes) => bytes,
        }
    }

    /// The scheme's name, as in the key's text form.
    pub fn scheme(&self) -> &'static str {
        match self {
            Self::Ed25519(_) => "ed25519",
            Self::Sm2(_) => "sm2",
        }
    }

    /// `scheme:hex`, the form used in files and JSON.
    pub fn to_text(&self) -> String {
        format!("{}:{}", self.scheme(), hex::encode(self.raw_bytes()))
    }

    /// Parses `scheme:hex` and validates the key.
    pub fn from_text(text: &str) -> Result<Self, KeyTextError> {
        let (scheme, hex_part) = text
            .split_once(':')
            .ok_or_else(|| KeyTextError::NoScheme(text.to_string()))?;
        let bytes = || hex::decode(hex_part).map_err(|e| KeyTextError::Hex(e.to_string()));
        let key = match scheme {
            "ed25519" => Self::Ed25519(bytes()?.try_into().map_err(|_| KeyTextError::Length {
                scheme: "ed25519",
                bytes: 32,
            })?),
            "sm2" => Self::Sm2(bytes()?.try_into().map_err(|_| KeyTextError::Length {
                scheme: "sm2",
                bytes: 33,
            })?),
            other => return Err(KeyTextError::UnknownScheme(other.to_string())),
        };
        key.validate()?;
        Ok(key)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self {
            Self::Ed25519 { .. } => "ed25519",
            Self::Sm2 { .. } => "sm2",
        };
        write!(f, "{scheme}-sig:{}", self.to_hex())
    }
}

impl Signature {
    /// The signature's 64 bytes (`R ‖ S`, or SM2's `r ‖ s`) without the
    /// scheme tag.
    pub fn to_bytes(&self) -> [u8; 64] {
        let (Self::Ed25519 { r, s } | Self::Sm2 { r, s }) = self;
        join(r, s)
    }

    /// The signature's 64 bytes without the scheme tag, as hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.to_bytes())
    }

    /// A signature of `key`'s scheme from its 64 untagged bytes
    /// ([`Self::to_bytes`]): for a signature kept or shown without its tag
    /// (a record-number link), whose signer is known.
    pub fn of_scheme(key: &PublicKey, bytes: [u8; 64]) -> Self {
        let (r, s) = split(&bytes);
        match key {
            PublicKey::Ed25519(_) => Self::Ed25519 { r, s },
            PublicKey::Sm2(_) => Self::Sm2 { r, s },
        }
    }

    /// An Ed25519 signature from [`Signature::to_hex`]'s 128 hex characters.
    pub fn ed25519_from_hex(text: &str) -> Result<Self, crate::encoding::DecodeError> {
        let bytes =
            hex::decode(text).map_err(|e| crate::encoding::DecodeError::Hex(e.to_string()))?;
        if bytes.len() != 64 {
            return Err(crate::encoding::DecodeError::Hex(
                "expected 64 bytes (128 hex characters)".into(),
            ));
        }
        let (r, s) = split(&bytes);
        Ok(Self::Ed25519 { r, s })
    }
}

/// A secret signing key. Its bytes never appear in `Debug` output.
///
/// `contracts` has no randomness: callers make the 32 secret bytes from OS
/// entropy (the SDK does) or, in tests and fixtures, from a fixed value.
/// Both schemes sign deterministically (Ed25519 by its definition, SM2 with
/// RFC 6979's nonce under HMAC-SM3).
#[derive(Clone)]
pub struct SecretKey(Secret);

// As `Prepared`: Ed25519 inline, SM2 shared.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
enum Secret {
    Ed25519(SigningKey),
    Sm2(std::sync::Arc<sm2::dsa::SigningKey>),
}

impl SecretKey {
    /// The Ed25519 key for a 32-byte seed.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self(Secret::Ed25519(SigningKey::from_bytes(&seed)))
    }

    /// A key of `suite`'s scheme from 32 secret bytes: the Ed25519 seed, or
    /// SM2's scalar `d` ([`Self::sm2_from_bytes`], which refuses about one
    /// value in 2^224).
    pub fn from_seed_of(suite: CryptoSuite, seed: [u8; 32]) -> Result<Self, CryptoError> {
        match suite {
            CryptoSuite::Ed25519Sha256 => Ok(Self::from_seed(seed)),
            CryptoSuite::Sm2Sm3 => Self::sm2_from_bytes(seed),
        }
    }

    /// The SM2 key whose secret scalar `d` is these 32 big-endian bytes:
    /// refused unless `1 <= d <= n - 2` (GB/T 32918.1).
    pub fn sm2_from_bytes(bytes: [u8; 32]) -> Result<Self, CryptoError> {
        let d = sm2::NonZeroScalar::try_from(bytes.as_slice())
            .map_err(|_| CryptoError::BadSecretKey)?;
        if bool::from((*d + sm2::Scalar::ONE).is_zero()) {
            return Err(CryptoError::BadSecretKey);
        }
        let key = sm2::dsa::SigningKey::from_nonzero_scalar(SM2_USER_ID, d)
            .map_err(|_| CryptoError::BadSecretKey)?;
        Ok(Self(Secret::Sm2(std::sync::Arc::new(key))))
    }

    /// The 32 secret bytes, for writing a key file: the Ed25519 seed, or
    /// SM2's scalar `d`. Which scheme they are for is the public key's
    /// ([`PublicKey::scheme`]); a caller that needs Ed25519 bytes as such
    /// takes [`SecretKey::ed25519_seed`].
    pub fn seed(&self) -> [u8; 32] {
        match &self.0 {
            Secret::Ed25519(key) => key.to_bytes(),
            Secret::Sm2(key) => key.to_bytes().into(),
        }
    }

    /// The Ed25519 seed, or `None` for a key of another scheme: for a
    /// caller that needs an Ed25519 key as such (a node key is also its
    /// libp2p identity).
    pub fn ed25519_seed(&self) -> Option<[u8; 32]> {
        match &self.0 {
            Secret::Ed25519(key) => Some(key.to_bytes()),
            Secret::Sm2(_) => None,
        }
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        match &self.0 {
            Secret::Ed25519(key) => PublicKey::Ed25519(key.verifying_key().to_bytes()),
            Secret::Sm2(key) => {
                use sm2::elliptic_curve::sec1::ToEncodedPoint as _;
                let point = key.verifying_key().as_affine().to_encoded_point(true);
                let mut bytes = [0u8; 33];
                bytes.copy_from_slice(point.as_bytes());
                PublicKey::Sm2(bytes)
            }
        }
    }

    /// Signs a 32-byte message digest.
    pub fn sign(&self, message: &Hash32) -> Signature {
        match &self.0 {
            Secret::Ed25519(key) => {
                let (r, s) = split(&key.sign(&message.0).to_bytes());
                Signature::Ed25519 { r, s }
            }
            Secret::Sm2(key) => {
                use sm2::dsa::signature::Signer as _;
                // Fails only if RFC 6979's nonce gives r = 0, r + k = n or
                // s = 0: probability about 2^-256.
                let signature: sm2::dsa::Signature = key.sign(&message.0);
                let (r, s) = split(&signature.to_bytes());
                Signature::Sm2 { r, s }
            }
        }
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
        let Signature::Ed25519 { r, s } = key.sign(&message) else {
            unreachable!("an Ed25519 key")
        };
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
        let PublicKey::Ed25519(bytes) = key else {
            unreachable!("an Ed25519 key")
        };
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

    /// The example published for the recommended curve (GM/T 0003.5, now
    /// GB/T 32918.5):
    /// secret d, public point, user id 1234567812345678, message "message
    /// digest", and the signature (r, s) made with nonce k.
    const SM2_D: &str = "3945208f7b2144b13f36e38ac6d39f95889393692860b51a42fb81ef4df7c5b8";
    const SM2_X: &str = "09f9df311e5421a150dd7d161e4bc5c672179fad1833fc076bb08ff356f35020";
    const SM2_Y: &str = "ccea490ce26775a52dc6ea718cc1aa600aed05fbf35e084a6632f6072da9ad13";
    const SM2_ZA: &str = "b2e14c5c79c6df5b85f4fe7ed8db7a262b9da7e07ccb0ea9f4747b8ccda8a4f3";
    const SM2_E: &str = "f0b43e94ba45accaace692ed534382eb17e6ab5a19ce7b31f4486fdfc0d28640";
    const SM2_R: &str = "f5a03b0648d2c4630eeac513e1bb81a15944da3827d5b74143ac7eaceee720b3";
    const SM2_S: &str = "b1b6aa29df212fd8763182bc0d421ca1bb9038fd1f7f42d4840b69c485bbc1aa";

    /// GB/T 32905-2016 appendix A: "abc", and "abcd" sixteen times.
    #[test]
    fn sm3_matches_the_standards_examples() {
        use sm3::Digest as _;
        assert_eq!(
            hex::encode(sm3::Sm3::digest(b"abc")),
            "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
        );
        assert_eq!(
            hex::encode(sm3::Sm3::digest("abcd".repeat(16))),
            "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"
        );
    }

    fn bytes32(text: &str) -> [u8; 32] {
        hex::decode(text).unwrap().try_into().unwrap()
    }

    #[test]
    fn sm2_matches_the_standards_example() {
        use sm2::dsa::signature::Verifier as _;
        use sm3::Digest as _;
        let secret = SecretKey::sm2_from_bytes(bytes32(SM2_D)).unwrap();
        // y is odd: the compressed key starts 03.
        let public = secret.public_key();
        assert_eq!(public.to_text(), format!("sm2:03{SM2_X}"));
        assert_eq!(PublicKey::from_text(&public.to_text()).unwrap(), public);
        let PublicKey::Sm2(bytes) = public else {
            unreachable!("an SM2 key")
        };
        let key = sm2_verifying_key(&bytes).unwrap();
        let uncompressed = {
            use sm2::elliptic_curve::sec1::ToEncodedPoint as _;
            key.as_affine().to_encoded_point(false)
        };
        assert_eq!(hex::encode(&uncompressed.as_bytes()[33..]), SM2_Y);
        // e = SM3(Z_A ‖ M) with the standard's Z_A.
        let e = sm3::Sm3::new()
            .chain_update(hex::decode(SM2_ZA).unwrap())
            .chain_update(b"message digest")
            .finalize();
        assert_eq!(hex::encode(e), SM2_E);
        // The standard's signature verifies under the key with Z_A computed
        // from the default user id (so Z_A agrees too), and fails if either
        // half or the message changes.
        let signature =
            sm2::dsa::Signature::from_bytes(&join(&bytes32(SM2_R), &bytes32(SM2_S))).unwrap();
        key.verify(b"message digest", &signature).unwrap();
        assert!(key.verify(b"message digesT", &signature).is_err());
        let mut r = bytes32(SM2_R);
        r[31] ^= 1;
        let altered = sm2::dsa::Signature::from_bytes(&join(&r, &bytes32(SM2_S))).unwrap();
        assert!(key.verify(b"message digest", &altered).is_err());
    }

    #[test]
    fn sm2_signatures_round_trip_and_are_refused_when_wrong() {
        let key = SecretKey::sm2_from_bytes([7; 32]).unwrap();
        let public = key.public_key();
        let message = Hash32([1; 32]);
        let signature = key.sign(&message);
        assert!(matches!(signature, Signature::Sm2 { .. }));
        // Deterministic (RFC 6979 under HMAC-SM3).
        assert_eq!(key.sign(&message), signature);
        public.verify(&message, &signature).unwrap();
        public
            .prepare()
            .unwrap()
            .verify(&message, &signature)
            .unwrap();
        assert_eq!(
            public.verify(&Hash32([2; 32]), &signature),
            Err(CryptoError::BadSignature)
        );
        // r or s of zero, or at least n, does not parse as a signature.
        let Signature::Sm2 { r, .. } = signature else {
            unreachable!("an SM2 signature")
        };
        for s in [[0u8; 32], [0xff; 32]] {
            assert_eq!(
                public.verify(&message, &Signature::Sm2 { r, s }),
                Err(CryptoError::BadSignature)
            );
        }
        // Schemes do not mix: an Ed25519 signature under an SM2 key, and back.
        let ed = SecretKey::from_seed([7; 32]);
        assert_eq!(
            public.verify(&message, &ed.sign(&message)),
            Err(CryptoError::SchemeMismatch)
        );
        assert_eq!(
            ed.public_key().verify(&message, &signature),
            Err(CryptoError::SchemeMismatch)
        );
        // A batch with SM2 items checks them one by one, Ed25519 ones together.
        let ed_item = (
            ed.public_key().prepare().unwrap(),
            message,
            ed.sign(&message),
        );
        let sm2_item = (public.prepare().unwrap(), message, signature);
        assert!(verify_batch(&[ed_item.clone(), sm2_item.clone()]));
        let mut bad = sm2_item.clone();
        bad.1 = Hash32([3; 32]);
        assert!(!verify_batch(&[ed_item, bad]));
        // A chain holds keys of its suite only.
        assert_eq!(
            CryptoSuite::Ed25519Sha256.check_key(&public),
            Err(CryptoError::SchemeNotOnThisChain {
                scheme: "sm2",
                suite: "ed25519-sha256"
            })
        );
        assert!(CryptoSuite::Sm2Sm3.check_key(&public).is_ok());
        assert!(
            CryptoSuite::Ed25519Sha256
                .check_key(&ed.public_key())
                .is_ok()
        );
        assert!(CryptoSuite::Sm2Sm3.check_key(&ed.public_key()).is_err());
        assert!(CryptoSuite::Sm2Sm3.check_signature(&signature).is_ok());
        assert!(
            CryptoSuite::Ed25519Sha256
                .check_signature(&signature)
                .is_err()
        );
    }

    #[test]
    fn sm2_keys_are_checked() {
        // d = 0, d = n - 1 (no (1 + d)^-1) and d >= n are refused.
        let n_minus_1 = "fffffffeffffffffffffffffffffffff7203df6b21c6052b53bbf40939d54122";
        let n = "fffffffeffffffffffffffffffffffff7203df6b21c6052b53bbf40939d54123";
        for d in ["00".repeat(32).as_str(), n_minus_1, n] {
            assert_eq!(
                SecretKey::sm2_from_bytes(bytes32(d)).unwrap_err(),
                CryptoError::BadSecretKey
            );
        }
        let good = SecretKey::sm2_from_bytes(bytes32(SM2_D))
            .unwrap()
            .public_key();
        let PublicKey::Sm2(mut bytes) = good else {
            unreachable!("an SM2 key")
        };
        bytes[0] = 0x04;
        assert_eq!(
            PublicKey::Sm2(bytes).validate(),
            Err(CryptoError::MalformedKey)
        );
        // x = p is not a field element.
        let mut x_is_p = [0xffu8; 33];
        x_is_p[0] = 0x02;
        x_is_p[1..].copy_from_slice(&bytes32(
            "fffffffeffffffffffffffffffffffffffffffff00000000ffffffffffffffff",
        ));
        assert_eq!(
            PublicKey::Sm2(x_is_p).validate(),
            Err(CryptoError::MalformedKey)
        );
        // Some x has no point on the curve.
        let off_curve = (0u8..=255).any(|last| {
            let mut candidate = bytes;
            candidate[0] = 0x02;
            candidate[32] = last;
            PublicKey::Sm2(candidate).validate() == Err(CryptoError::MalformedKey)
        });
        assert!(off_curve);
        assert!(matches!(
            PublicKey::from_text("sm2:02ab"),
            Err(KeyTextError::Length { bytes: 33, .. })
        ));
        // BCS: tag 1, then the 33 bytes with no length.
        let encoded = crate::encoding::to_bytes(&good);
        assert_eq!(encoded.len(), 34);
        assert_eq!(encoded[0], 1);
        let decoded: PublicKey = crate::encoding::from_bytes(&encoded, 64).unwrap();
        assert_eq!(decoded, good);
        assert!(crate::encoding::from_bytes::<PublicKey>(&encoded[..33], 64).is_err());
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
