//! Records sealing on the national-cryptography primitives, for a chain on
//! the `sm2-sm3` suite: the same one-time key, per-chunk sealing, AAD and
//! content salt as the HPKE sealing ([`crate::Sealer`]), with SM2 key
//! agreement, HKDF over SM3 and SM4-GCM in place of X25519, HKDF-SHA256 and
//! ChaCha20-Poly1305.
//!
//! The gateway and the SDK use it on an `sm2-sm3` chain, through
//! [`crate::TransferKey`], [`crate::TransferSealer`] and
//! [`crate::TransferOpener`].
//!
//! Rules:
//! 1. The requester's one-time key is an SM2 key pair; its public half is
//!    the SEC1 compressed point (33 bytes).
//! 2. The holder draws a fresh SM2 scalar `k` for each transfer and sends
//!    `C1 = [k]G`, compressed, as the encapsulated key. Both ends compute
//!    the shared point `[k]P = [d]C1` and take its coordinates `x2 ‖ y2`,
//!    as SM2 encryption does (GB/T 32918.4).
//! 3. Key schedule: HKDF-SM3 with salt `medledger/records-sm/v1` and input
//!    `x2 ‖ y2`, expanded with info `medledger/records/v1 ‖ transfer ‖ C1 ‖
//!    P ‖ label` for the labels `key` (16 bytes, SM4), `nonce` (12 bytes)
//!    and `exporter` (32 bytes).
//! 4. Chunk `i` of a transfer (counted from 0 by each end, as HPKE's
//!    sequence number) is sealed with SM4-GCM under the key, with the base
//!    nonce XOR `i` (big-endian in its last 8 bytes), and the AAD of
//!    [`crate::chunk_aad`].
//! 5. The content salt is HKDF-SM3-Expand of the exporter secret with the
//!    label `medledger/content-salt/v1`, 32 bytes.
//!
//! The construction is HPKE's shape on SM primitives, not a scheme a GM/T
//! standard defines: it is neither GB/T 32918.4's public-key encryption
//! (whose KDF and `C3` hash differ) nor GB/T 32918.3's key exchange (which
//! is interactive). Its parts are: the SM2 curve's Diffie-Hellman, HKDF
//! over HMAC-SM3 as RFC 8998 uses it, and SM4-GCM. Secrets (the one-time
//! key, the shared point, the key schedule) are wiped when dropped.

use aes_gcm::AesGcm;
use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{Aead as _, KeyInit as _, Payload};
use hkdf::Hkdf;
use medledger_contracts::encoding::Hash32;
use sm2::elliptic_curve::sec1::{FromEncodedPoint as _, ToEncodedPoint as _};
use sm2::{AffinePoint, EncodedPoint, NonZeroScalar, ProjectivePoint, SecretKey};
use sm3::Sm3;
use sm4::Sm4;
use zeroize::{Zeroize as _, Zeroizing};

use crate::{CONTENT_SALT_LABEL, SealError, SealedChunk, chunk_aad, info};

/// SM4 in GCM mode with a 96-bit nonce (RFC 8998's `AEAD_SM4_GCM`).
pub type Sm4Gcm = AesGcm<Sm4, U12>;

const HKDF_SALT: &[u8] = b"medledger/records-sm/v1";

/// A requester's one-time SM2 key (rule 1), wiped when dropped.
pub struct SmOneTimeKey {
    secret: SecretKey,
    public: [u8; 33],
}

impl SmOneTimeKey {
    /// A fresh key from OS entropy.
    pub fn generate() -> Result<Self, SealError> {
        Ok(Self::from_scalar(random_scalar()?))
    }

    /// The key with secret `secret` (the golden vector's fixed key).
    fn from_scalar(secret: NonZeroScalar) -> Self {
        Self {
            public: compressed(&(ProjectivePoint::GENERATOR * *secret).to_affine()),
            secret: SecretKey::from(secret),
        }
    }

    /// The public key to put in the fetch authorization.
    pub fn public(&self) -> [u8; 33] {
        self.public
    }

    /// An opener for a transfer whose encapsulated key `c1` arrived.
    pub fn opener(&self, c1: &[u8], transfer: Hash32) -> Result<SmOpener, SealError> {
        let c1 = decode_point(c1)?;
        let shared = shared_coordinates(&c1, &self.secret.to_nonzero_scalar());
        Ok(SmOpener {
            schedule: Schedule::derive(&shared, &compressed(&c1), &self.public, &transfer),
            transfer,
            seq: 0,
        })
    }
}

/// Seals a transfer's chunks in order (the holder's side).
pub struct SmSealer {
    schedule: Schedule,
    transfer: Hash32,
    seq: u64,
}

impl SmSealer {
    /// A sealer to `one_time_key` for `transfer`, and `C1` to send (rule 2).
    pub fn new(one_time_key: &[u8], transfer: Hash32) -> Result<(Self, Vec<u8>), SealError> {
        Self::with_scalar(one_time_key, transfer, random_scalar()?)
    }

    /// As [`Self::new`] with the holder's scalar `k` given (the golden
    /// vector's; every real transfer draws a fresh one).
    fn with_scalar(
        one_time_key: &[u8],
        transfer: Hash32,
        k: NonZeroScalar,
    ) -> Result<(Self, Vec<u8>), SealError> {
        let recipient = decode_point(one_time_key)?;
        let c1 = compressed(&(ProjectivePoint::GENERATOR * *k).to_affine());
        let shared = shared_coordinates(&recipient, &k);
        let schedule = Schedule::derive(&shared, &c1, &compressed(&recipient), &transfer);
        Ok((
            Self {
                schedule,
                transfer,
                seq: 0,
            },
            c1.to_vec(),
        ))
    }

    /// The transfer's content salt (rule 5).
    pub fn content_salt(&self) -> Result<[u8; 32], SealError> {
        self.schedule.content_salt()
    }

    /// Seals the next chunk.
    pub fn seal(
        &mut self,
        seq: u64,
        item: u32,
        last_of_item: bool,
        plain: &[u8],
    ) -> Result<SealedChunk, SealError> {
        let aad = chunk_aad(&self.transfer, seq, item, last_of_item);
        let sealed = self
            .schedule
            .cipher()
            .encrypt(
                &self.schedule.nonce(self.seq).into(),
                Payload {
                    msg: plain,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::Hpke("SM4-GCM could not seal".into()))?;
        self.seq = next(self.seq)?;
        Ok(SealedChunk {
            seq,
            item,
            last_of_item,
            sealed,
        })
    }
}

/// Opens a transfer's chunks in order (the requester's side).
pub struct SmOpener {
    schedule: Schedule,
    transfer: Hash32,
    seq: u64,
}

impl SmOpener {
    /// The transfer's content salt (rule 5), as the holder computes it.
    pub fn content_salt(&self) -> Result<[u8; 32], SealError> {
        self.schedule.content_salt()
    }

    /// Opens the next chunk.
    pub fn open(&mut self, chunk: &SealedChunk) -> Result<Vec<u8>, SealError> {
        let aad = chunk_aad(&self.transfer, chunk.seq, chunk.item, chunk.last_of_item);
        let plain = self
            .schedule
            .cipher()
            .decrypt(
                &self.schedule.nonce(self.seq).into(),
                Payload {
                    msg: &chunk.sealed,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::Hpke(format!("chunk {} does not open", chunk.seq)))?;
        self.seq = next(self.seq)?;
        Ok(plain)
    }
}

/// The sequence number after `seq`: refused at the end of the range
/// rather than wrapping to a nonce already used (as HPKE refuses).
fn next(seq: u64) -> Result<u64, SealError> {
    seq.checked_add(1)
        .ok_or_else(|| SealError::Hpke("the transfer's sequence numbers are spent".into()))
}

/// What both ends derive from the shared point (rule 3), wiped when dropped.
struct Schedule {
    key: [u8; 16],
    base_nonce: [u8; 12],
    exporter: [u8; 32],
}

impl Schedule {
    fn derive(
        shared: &Zeroizing<[u8; 64]>,
        c1: &[u8; 33],
        recipient: &[u8; 33],
        transfer: &Hash32,
    ) -> Self {
        let hkdf = Hkdf::<Sm3>::new(Some(HKDF_SALT), shared.as_slice());
        let info = info(transfer);
        let expand = |label: &[u8], out: &mut [u8]| {
            // Lengths of at most 32 bytes are far below HKDF's 255 blocks.
            #[allow(clippy::expect_used)]
            hkdf.expand_multi_info(&[&info, c1, recipient, label], out)
                .expect("HKDF-SM3 expands up to 8160 bytes");
        };
        let mut schedule = Self {
            key: [0; 16],
            base_nonce: [0; 12],
            exporter: [0; 32],
        };
        expand(b"key", &mut schedule.key);
        expand(b"nonce", &mut schedule.base_nonce);
        expand(b"exporter", &mut schedule.exporter);
        schedule
    }

    fn cipher(&self) -> Sm4Gcm {
        Sm4Gcm::new(&self.key.into())
    }

    /// The base nonce XOR the sequence number (rule 4).
    fn nonce(&self, seq: u64) -> [u8; 12] {
        let mut nonce = self.base_nonce;
        for (byte, s) in nonce[4..].iter_mut().zip(seq.to_be_bytes()) {
            *byte ^= s;
        }
        nonce
    }

    fn content_salt(&self) -> Result<[u8; 32], SealError> {
        let hkdf = Hkdf::<Sm3>::from_prk(&self.exporter)
            .map_err(|_| SealError::Hpke("bad exporter secret".into()))?;
        let mut salt = [0u8; 32];
        hkdf.expand(CONTENT_SALT_LABEL, &mut salt)
            .map_err(|_| SealError::Hpke("HKDF-SM3 expand failed".into()))?;
        Ok(salt)
    }
}

impl Drop for Schedule {
    fn drop(&mut self) {
        self.key.zeroize();
        self.base_nonce.zeroize();
        self.exporter.zeroize();
    }
}

/// A nonzero scalar below the curve's order from OS entropy (a draw of 32
/// bytes at or above the order, about 2^-32 of them, is drawn again).
fn random_scalar() -> Result<NonZeroScalar, SealError> {
    loop {
        let mut bytes = Zeroizing::new([0u8; 32]);
        getrandom::fill(bytes.as_mut_slice()).map_err(|e| SealError::Entropy(e.to_string()))?;
        if let Ok(scalar) = NonZeroScalar::try_from(bytes.as_slice()) {
            return Ok(scalar);
        }
    }
}

/// A compressed SM2 point: refused unless 33 bytes naming a point of the
/// curve (the point at infinity has no compressed form; the cofactor is 1).
pub(crate) fn decode_point(bytes: &[u8]) -> Result<AffinePoint, SealError> {
    let bad = || SealError::Key("not a compressed SM2 point".into());
    if bytes.len() != 33 || (bytes[0] != 0x02 && bytes[0] != 0x03) {
        return Err(bad());
    }
    let encoded = EncodedPoint::from_bytes(bytes).map_err(|_| bad())?;
    Option::from(AffinePoint::from_encoded_point(&encoded)).ok_or_else(bad)
}

fn compressed(point: &AffinePoint) -> [u8; 33] {
    let mut bytes = [0u8; 33];
    bytes.copy_from_slice(point.to_encoded_point(true).as_bytes());
    bytes
}

/// `x2 ‖ y2` of `[scalar]point` (rule 2). Never the point at infinity: the
/// point is on a curve of prime order and the scalar is not zero.
fn shared_coordinates(point: &AffinePoint, scalar: &NonZeroScalar) -> Zeroizing<[u8; 64]> {
    let shared = (ProjectivePoint::from(*point) * **scalar).to_affine();
    let mut bytes = Zeroizing::new([0u8; 64]);
    let mut encoded = shared.to_encoded_point(false);
    // Uncompressed: 0x04, then x and y.
    bytes.copy_from_slice(&encoded.as_bytes()[1..65]);
    encoded.zeroize();
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GB/T 32907-2016 appendix A, example 1: one block.
    #[test]
    fn sm4_matches_the_standards_example() {
        use sm4::cipher::{BlockEncrypt as _, KeyInit as _};
        let key = hex::decode("0123456789abcdeffedcba9876543210").unwrap();
        let cipher = Sm4::new_from_slice(&key).unwrap();
        let mut block = sm4::cipher::generic_array::GenericArray::clone_from_slice(&key);
        cipher.encrypt_block(&mut block);
        assert_eq!(hex::encode(block), "681edf34d206965e86b3e94f536e4246");
        // Example 2: the same block encrypted 1,000,000 times.
        let mut block = sm4::cipher::generic_array::GenericArray::clone_from_slice(&key);
        for _ in 0..1_000_000 {
            cipher.encrypt_block(&mut block);
        }
        assert_eq!(hex::encode(block), "595298c7c6fd271f0402f804c33d3f66");
    }

    /// RFC 8998 appendix A.1: SM4-GCM.
    #[test]
    fn sm4_gcm_matches_rfc_8998() {
        let key = hex::decode("0123456789ABCDEFFEDCBA9876543210").unwrap();
        let nonce = hex::decode("00001234567800000000ABCD").unwrap();
        let aad = hex::decode("FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2").unwrap();
        let plain = hex::decode(
            "AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBBCCCCCCCCCCCCCCCCDDDDDDDDDDDDDDDD\
             EEEEEEEEEEEEEEEEFFFFFFFFFFFFFFFFEEEEEEEEEEEEEEEEAAAAAAAAAAAAAAAA",
        )
        .unwrap();
        let cipher = Sm4Gcm::new_from_slice(&key).unwrap();
        let sealed = cipher
            .encrypt(
                nonce.as_slice().into(),
                Payload {
                    msg: &plain,
                    aad: &aad,
                },
            )
            .unwrap();
        assert_eq!(
            hex::encode_upper(&sealed),
            "17F399F08C67D5EE19D0DC9969C4BB7D5FD46FD3756489069157B282BB200735\
             D82710CA5C22F0CCFA7CBF93D496AC15A56834CBCF98C397B4024A2691233B8D\
             83DE3541E4C2B58177E065A9BF7B62EC"
        );
    }

    #[test]
    fn chunks_open_in_order_and_nothing_altered_moved_or_replayed_opens() {
        let key = SmOneTimeKey::generate().unwrap();
        let transfer = Hash32([9; 32]);
        let (mut sealer, c1) = SmSealer::new(&key.public(), transfer).unwrap();
        let a = sealer.seal(0, 0, false, b"first").unwrap();
        let b = sealer.seal(1, 0, true, b"second").unwrap();
        let mut opener = key.opener(&c1, transfer).unwrap();
        assert_eq!(opener.open(&a).unwrap(), b"first");
        assert_eq!(opener.open(&b).unwrap(), b"second");
        assert_eq!(
            opener.content_salt().unwrap(),
            sealer.content_salt().unwrap()
        );

        // Out of order, replayed, altered, moved, or for another transfer.
        let fresh = || key.opener(&c1, transfer).unwrap();
        assert!(fresh().open(&b).is_err());
        let mut replay = fresh();
        replay.open(&a).unwrap();
        assert!(replay.open(&a).is_err());
        let mut altered = a.clone();
        altered.sealed[0] ^= 1;
        assert!(fresh().open(&altered).is_err());
        let mut moved = a.clone();
        moved.item = 1;
        assert!(fresh().open(&moved).is_err());
        assert!(key.opener(&c1, Hash32([8; 32])).unwrap().open(&a).is_err());
        // Another key cannot open, and derives another salt.
        let other = SmOneTimeKey::generate().unwrap();
        let mut wrong = other.opener(&c1, transfer).unwrap();
        assert!(wrong.open(&a).is_err());
        assert_ne!(
            wrong.content_salt().unwrap(),
            sealer.content_salt().unwrap()
        );
        // A second transfer to the same key gets a fresh C1 and salt.
        let (again, c1_again) = SmSealer::new(&key.public(), transfer).unwrap();
        assert_ne!(c1_again, c1);
        assert_ne!(
            again.content_salt().unwrap(),
            sealer.content_salt().unwrap()
        );
    }

    /// A sealed chunk pinned in `tests/fixtures/sealed-chunk-sm2-sm3.json`
    /// (regenerated on purpose with `MEDLEDGER_UPDATE_GOLDEN=1`), from a
    /// fixed one-time key and a fixed `k`: any change to the construction's
    /// key schedule, nonce, AAD or salt shows here, and
    /// `client-sdk/web/test/sm-golden.test.mjs` opens the same chunk with an
    /// independent GM/T library.
    #[test]
    fn a_sealed_chunk_matches_the_golden_vector() {
        let scalar = |byte: u8| NonZeroScalar::try_from([byte; 32].as_slice()).unwrap();
        let key = SmOneTimeKey::from_scalar(scalar(0x11));
        let transfer = Hash32([0x33; 32]);
        let (mut sealer, c1) =
            SmSealer::with_scalar(&key.public(), transfer, scalar(0x22)).unwrap();
        let plain: &[u8] = br#"{"resourceType":"Observation","status":"final"}"#;
        let first = sealer.seal(0, 0, false, b"chunk zero").unwrap();
        let second = sealer.seal(1, 0, true, plain).unwrap();
        let mut opener = key.opener(&c1, transfer).unwrap();
        assert_eq!(opener.open(&first).unwrap(), b"chunk zero");
        assert_eq!(opener.open(&second).unwrap(), plain);
        let chunks: Vec<_> = [first, second].iter().zip([&b"chunk zero"[..], plain]).map(|(chunk, plain)| serde_json::json!({
                "seq": chunk.seq,
                "item": chunk.item,
                "last_of_item": chunk.last_of_item,
                "aad": hex::encode(crate::chunk_aad(&transfer, chunk.seq, chunk.item, chunk.last_of_item)),
                "plain": hex::encode(plain),
                "sealed": hex::encode(&chunk.sealed),
            })).collect::<Vec<_>>();
        let vector = serde_json::json!({
            "about": "medledger records sealing on sm2-sm3 (transfer/src/sm.rs rules 1-5): two chunks of one transfer from a fixed one-time key and a fixed k. Test keys only.",
            "one_time_secret": hex::encode([0x11; 32]),
            "one_time_key": hex::encode(key.public()),
            "k": hex::encode([0x22; 32]),
            "c1": hex::encode(&c1),
            "transfer": hex::encode(transfer.0),
            "hkdf_salt": hex::encode(HKDF_SALT),
            "info": hex::encode(crate::info(&transfer)),
            "key": hex::encode(sealer.schedule.key),
            "base_nonce": hex::encode(sealer.schedule.base_nonce),
            "content_salt": hex::encode(sealer.content_salt().unwrap()),
            "chunks": chunks,
        });
        let generated = serde_json::to_string_pretty(&vector).unwrap() + "\n";
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/sealed-chunk-sm2-sm3.json");
        if std::env::var_os("MEDLEDGER_UPDATE_GOLDEN").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &generated).unwrap();
        }
        let pinned = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (MEDLEDGER_UPDATE_GOLDEN=1 writes it)",
                path.display()
            )
        });
        assert_eq!(
            generated, pinned,
            "the SM sealing changed; if on purpose, regenerate with MEDLEDGER_UPDATE_GOLDEN=1"
        );
    }

    #[test]
    fn malformed_points_are_refused() {
        let key = SmOneTimeKey::generate().unwrap();
        let mut not_on_curve = key.public();
        // Some x have no point: try until one is refused.
        let refused = (0u8..=255).any(|b| {
            not_on_curve[32] = b;
            decode_point(&not_on_curve).is_err()
        });
        assert!(refused);
        assert!(SmSealer::new(&key.public()[..32], Hash32([1; 32])).is_err());
        let mut uncompressed_tag = key.public();
        uncompressed_tag[0] = 0x04;
        assert!(SmSealer::new(&uncompressed_tag, Hash32([1; 32])).is_err());
        assert!(key.opener(&[0u8; 33], Hash32([1; 32])).is_err());
        // x = p (not below the field's modulus) is refused.
        let mut x_is_p =
            hex::decode("02FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF")
                .unwrap();
        assert!(decode_point(&x_is_p).is_err());
        x_is_p[0] = 0x03;
        assert!(decode_point(&x_is_p).is_err());
    }
}
