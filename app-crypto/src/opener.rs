//! Opening a records transfer in the browser: the receiving half of
//! `medledger-transfer`'s sealing, for a patient's app fetching their own
//! records (rule R7.8), on either suite. WebCrypto has neither
//! ChaCha20-Poly1305 nor anything of SM, so the whole opening is here.
//!
//! - `ed25519-sha256` chains seal with HPKE (RFC 9180) in base mode:
//!   DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305. The node
//!   uses the `hpke` crate; this is RFC 9180's receiver key schedule written
//!   out (§4.1 DHKEM `Decap`, §5.1 `KeySchedule`, §5.2 nonces, §5.3
//!   `Export`), checked against the RFC's test vector A.2 and against the
//!   node's sealer (the tests below).
//! - `sm2-sm3` chains seal with `transfer::sm`'s schedule: SM2 key
//!   agreement (`x2 ‖ y2` of the shared point), HKDF-SM3 and SM4-GCM.
//!
//! Both then open chunk `i` (counted from 0) with the base nonce XOR `i`
//! and the AAD `transfer ‖ seq ‖ item ‖ last` (`transfer::chunk_aad`), and
//! export the content salt under `medledger/content-salt/v1`.
//!
//! Entropy: none is needed here. The one-time secret comes from the page
//! (`crypto.getRandomValues`), as the signing key does.

use aes_gcm::AesGcm;
use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{Aead as _, KeyInit as _, Payload};
use chacha20poly1305::ChaCha20Poly1305;
use hkdf::Hkdf;
use sha2::Sha256;
use sm2::elliptic_curve::sec1::{FromEncodedPoint as _, ToEncodedPoint as _};
use sm3::Sm3;
use zeroize::{Zeroize as _, Zeroizing};

/// The HPKE info prefix (`transfer`'s `INFO_TAG`); the transfer id follows.
const INFO_TAG: &[u8] = b"medledger/records/v1";
/// The export label of the content salt (records rule 4).
const CONTENT_SALT_LABEL: &[u8] = b"medledger/content-salt/v1";
/// `transfer::sm`'s HKDF salt.
const SM_HKDF_SALT: &[u8] = b"medledger/records-sm/v1";

/// Why a transfer does not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// The one-time secret or the encapsulated key is not usable.
    BadKey,
    /// A chunk does not open: altered, moved, replayed, or not for this key.
    BadChunk,
}

/// The AEAD a transfer is sealed with.
enum Cipher {
    ChaCha(ChaCha20Poly1305),
    Sm4(AesGcm<sm4::Sm4, U12>),
}

/// How the exporter secret expands (HPKE's `LabeledExpand` with "sec", or
/// plain HKDF-SM3 `Expand` as `transfer::sm` does).
#[derive(Clone, Copy)]
enum Exporter {
    Hpke,
    Sm,
}

/// Opens one transfer's chunks in order.
pub struct Opener {
    cipher: Cipher,
    base_nonce: [u8; 12],
    exporter_secret: Zeroizing<[u8; 32]>,
    exporter: Exporter,
    transfer: [u8; 32],
    seq: u64,
}

/// The X25519 public key of a one-time secret (32 bytes from the page).
pub fn x25519_public(secret: &[u8; 32]) -> [u8; 32] {
    x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(*secret)).to_bytes()
}

fn info(transfer: &[u8; 32]) -> Vec<u8> {
    let mut info = INFO_TAG.to_vec();
    info.extend_from_slice(transfer);
    info
}

/// RFC 9180's `LabeledExtract` with HKDF-SHA256: the PRK.
fn labeled_extract(suite_id: &[u8], salt: &[u8], label: &[u8], ikm: &[u8]) -> [u8; 32] {
    let labeled: Zeroizing<Vec<u8>> = Zeroizing::new([b"HPKE-v1", suite_id, label, ikm].concat());
    let (prk, _) = Hkdf::<Sha256>::extract(Some(salt), &labeled);
    prk.into()
}

/// RFC 9180's `LabeledExpand` with HKDF-SHA256 into `out` (at most 255 × 32 bytes).
fn labeled_expand(
    suite_id: &[u8],
    prk: &[u8; 32],
    label: &[u8],
    info: &[u8],
    out: &mut [u8],
) -> Result<(), OpenError> {
    let length = u16::try_from(out.len()).map_err(|_| OpenError::BadKey)?;
    let hkdf = Hkdf::<Sha256>::from_prk(prk).map_err(|_| OpenError::BadKey)?;
    hkdf.expand_multi_info(
        &[&length.to_be_bytes(), b"HPKE-v1", suite_id, label, info],
        out,
    )
    .map_err(|_| OpenError::BadKey)
}

/// DHKEM(X25519, HKDF-SHA256), KEM id 0x0020.
const KEM_SUITE: &[u8] = b"KEM\x00\x20";
/// HPKE suite: KEM 0x0020, KDF 0x0001 (HKDF-SHA256), AEAD 0x0003 (ChaCha20-Poly1305).
const HPKE_SUITE: &[u8] = b"HPKE\x00\x20\x00\x01\x00\x03";

impl Opener {
    /// The receiver's context of an HPKE base-mode transfer: `secret` the
    /// one-time X25519 secret, `enc` the holder's encapsulated key, `info`
    /// the context string.
    pub fn hpke(secret: &[u8; 32], enc: &[u8], info: &[u8]) -> Result<Self, OpenError> {
        let enc: [u8; 32] = enc.try_into().map_err(|_| OpenError::BadKey)?;
        let secret = x25519_dalek::StaticSecret::from(*secret);
        let public = x25519_dalek::PublicKey::from(&secret);
        let dh = secret.diffie_hellman(&x25519_dalek::PublicKey::from(enc));
        // RFC 9180 §7.1.4: an all-zero shared secret (a low-order `enc`) fails.
        if !dh.was_contributory() {
            return Err(OpenError::BadKey);
        }
        // §4.1 Decap: ExtractAndExpand(dh, enc ‖ pkR).
        let eae_prk = Zeroizing::new(labeled_extract(KEM_SUITE, b"", b"eae_prk", dh.as_bytes()));
        let kem_context = [enc.as_slice(), public.as_bytes()].concat();
        let mut shared_secret = Zeroizing::new([0u8; 32]);
        labeled_expand(
            KEM_SUITE,
            &eae_prk,
            b"shared_secret",
            &kem_context,
            shared_secret.as_mut_slice(),
        )?;
        // §5.1 KeySchedule, mode base (0), no PSK.
        let psk_id_hash = labeled_extract(HPKE_SUITE, b"", b"psk_id_hash", b"");
        let info_hash = labeled_extract(HPKE_SUITE, b"", b"info_hash", info);
        let context = [&[0u8][..], &psk_id_hash, &info_hash].concat();
        let secret = Zeroizing::new(labeled_extract(
            HPKE_SUITE,
            shared_secret.as_slice(),
            b"secret",
            b"",
        ));
        let mut key = Zeroizing::new([0u8; 32]);
        let mut base_nonce = [0u8; 12];
        let mut exporter_secret = Zeroizing::new([0u8; 32]);
        labeled_expand(HPKE_SUITE, &secret, b"key", &context, key.as_mut_slice())?;
        labeled_expand(
            HPKE_SUITE,
            &secret,
            b"base_nonce",
            &context,
            &mut base_nonce,
        )?;
        labeled_expand(
            HPKE_SUITE,
            &secret,
            b"exp",
            &context,
            exporter_secret.as_mut_slice(),
        )?;
        Ok(Self {
            cipher: Cipher::ChaCha(ChaCha20Poly1305::new(key.as_slice().into())),
            base_nonce,
            exporter_secret,
            exporter: Exporter::Hpke,
            transfer: [0; 32],
            seq: 0,
        })
    }

    /// The opener of an `ed25519-sha256` transfer `transfer` to the
    /// one-time X25519 `secret`, `enc` from its manifest.
    pub fn hpke_transfer(
        secret: &[u8; 32],
        enc: &[u8],
        transfer: &[u8; 32],
    ) -> Result<Self, OpenError> {
        let mut opener = Self::hpke(secret, enc, &info(transfer))?;
        opener.transfer = *transfer;
        Ok(opener)
    }

    /// The opener of an `sm2-sm3` transfer `transfer` to the one-time SM2
    /// `secret` (a scalar in `[1, n - 1]`), `c1` (compressed) from its
    /// manifest: `transfer::sm`'s rules 2 and 3.
    pub fn sm_transfer(
        secret: &[u8; 32],
        c1: &[u8],
        transfer: &[u8; 32],
    ) -> Result<Self, OpenError> {
        let d = sm2::NonZeroScalar::try_from(secret.as_slice()).map_err(|_| OpenError::BadKey)?;
        let c1_point = decode_point(c1)?;
        let recipient = compressed(&(sm2::ProjectivePoint::GENERATOR * *d).to_affine());
        let shared = (sm2::ProjectivePoint::from(c1_point) * *d).to_affine();
        let mut encoded = shared.to_encoded_point(false);
        // Uncompressed: 0x04, then x2 and y2.
        let coordinates = Zeroizing::new(encoded.as_bytes()[1..65].to_vec());
        encoded.zeroize();
        let hkdf = Hkdf::<Sm3>::new(Some(SM_HKDF_SALT), &coordinates);
        let info = info(transfer);
        let expand = |label: &[u8], out: &mut [u8]| {
            hkdf.expand_multi_info(&[&info, &compressed(&c1_point), &recipient, label], out)
                .map_err(|_| OpenError::BadKey)
        };
        let mut key = Zeroizing::new([0u8; 16]);
        let mut base_nonce = [0u8; 12];
        let mut exporter_secret = Zeroizing::new([0u8; 32]);
        expand(b"key", key.as_mut_slice())?;
        expand(b"nonce", &mut base_nonce)?;
        expand(b"exporter", exporter_secret.as_mut_slice())?;
        Ok(Self {
            cipher: Cipher::Sm4(AesGcm::new(key.as_slice().into())),
            base_nonce,
            exporter_secret,
            exporter: Exporter::Sm,
            transfer: *transfer,
            seq: 0,
        })
    }

    /// RFC 9180 §5.3 `Export` (on SM, HKDF-SM3 `Expand` of the exporter
    /// secret) of `exporter_context` into `out`.
    pub fn export(&self, exporter_context: &[u8], out: &mut [u8]) -> Result<(), OpenError> {
        match self.exporter {
            Exporter::Hpke => labeled_expand(
                HPKE_SUITE,
                &self.exporter_secret,
                b"sec",
                exporter_context,
                out,
            ),
            Exporter::Sm => Hkdf::<Sm3>::from_prk(self.exporter_secret.as_slice())
                .map_err(|_| OpenError::BadKey)?
                .expand(exporter_context, out)
                .map_err(|_| OpenError::BadKey),
        }
    }

    /// The transfer's content salt (records rule 4).
    pub fn content_salt(&self) -> Result<[u8; 32], OpenError> {
        let mut salt = [0u8; 32];
        self.export(CONTENT_SALT_LABEL, &mut salt)?;
        Ok(salt)
    }

    /// Opens the next chunk (`sealed` its ciphertext with tag) with the AAD
    /// `aad`; the sequence number moves on only if it opens.
    pub fn open_with_aad(&mut self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, OpenError> {
        let mut nonce = self.base_nonce;
        for (byte, s) in nonce[4..].iter_mut().zip(self.seq.to_be_bytes()) {
            *byte ^= s;
        }
        let payload = Payload { msg: sealed, aad };
        let plain = match &self.cipher {
            Cipher::ChaCha(c) => c.decrypt(&nonce.into(), payload),
            Cipher::Sm4(c) => c.decrypt(&nonce.into(), payload),
        }
        .map_err(|_| OpenError::BadChunk)?;
        self.seq = self.seq.checked_add(1).ok_or(OpenError::BadChunk)?;
        Ok(plain)
    }

    /// Opens the transfer's next chunk: number `seq`, of item `item`,
    /// whether it ends that item (its AAD, records rule 3).
    pub fn open_chunk(
        &mut self,
        seq: u64,
        item: u32,
        last_of_item: bool,
        sealed: &[u8],
    ) -> Result<Vec<u8>, OpenError> {
        let mut aad = self.transfer.to_vec();
        aad.extend_from_slice(&seq.to_be_bytes());
        aad.extend_from_slice(&item.to_be_bytes());
        aad.push(u8::from(last_of_item));
        self.open_with_aad(sealed, &aad)
    }
}

/// A compressed SM2 point of the curve (33 bytes), or `BadKey`.
fn decode_point(bytes: &[u8]) -> Result<sm2::AffinePoint, OpenError> {
    if bytes.len() != 33 || (bytes[0] != 0x02 && bytes[0] != 0x03) {
        return Err(OpenError::BadKey);
    }
    let encoded = sm2::EncodedPoint::from_bytes(bytes).map_err(|_| OpenError::BadKey)?;
    Option::from(sm2::AffinePoint::from_encoded_point(&encoded)).ok_or(OpenError::BadKey)
}

fn compressed(point: &sm2::AffinePoint) -> [u8; 33] {
    let mut bytes = [0u8; 33];
    bytes.copy_from_slice(point.to_encoded_point(true).as_bytes());
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use medledger_contracts::crypto::CryptoSuite;
    use medledger_contracts::encoding::Hash32;
    use medledger_transfer::{RecipientKey, TransferSealer};

    fn bytes(text: &str) -> Vec<u8> {
        hex::decode(text).unwrap()
    }

    /// RFC 9180 appendix A.2.1 (DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
    /// ChaCha20-Poly1305, base mode): the key schedule's outputs, the first
    /// sequence numbers' ciphertexts, and the exports.
    #[test]
    fn hpke_matches_rfc_9180_a_2_1() {
        let sk_rm: [u8; 32] =
            bytes("8057991eef8f1f1af18f4a9491d16a1ce333f695d4db8e38da75975c4478e0fb")
                .try_into()
                .unwrap();
        let enc = bytes("1afa08d3dec047a643885163f1180476fa7ddb54c6a8029ea33f95796bf2ac4a");
        let info = bytes("4f6465206f6e2061204772656369616e2055726e");
        assert_eq!(
            hex::encode(x25519_public(&sk_rm)),
            "4310ee97d88cc1f088a5576c77ab0cf5c3ac797f3d95139c6c84b5429c59662a"
        );
        let mut opener = Opener::hpke(&sk_rm, &enc, &info).unwrap();
        assert_eq!(hex::encode(opener.base_nonce), "5c4d98150661b848853b547f");
        let aad0 = bytes("436f756e742d30");
        let ct0 = bytes(
            "1c5250d8034ec2b784ba2cfd69dbdb8af406cfe3ff938e131f0def8c8b60b4db21993c62ce81883d2dd1b51a28",
        );
        assert_eq!(
            hex::encode(opener.open_with_aad(&ct0, &aad0).unwrap()),
            "4265617574792069732074727574682c20747275746820626561757479"
        );
        let aad1 = bytes("436f756e742d31");
        let ct1 = bytes(
            "6b53c051e4199c518de79594e1c4ab18b96f081549d45ce015be002090bb119e85285337cc95ba5f59992dc98c",
        );
        assert_eq!(
            hex::encode(opener.open_with_aad(&ct1, &aad1).unwrap()),
            "4265617574792069732074727574682c20747275746820626561757479"
        );
        let mut exported = [0u8; 32];
        opener.export(b"", &mut exported).unwrap();
        assert_eq!(
            hex::encode(exported),
            "4bbd6243b8bb54cec311fac9df81841b6fd61f56538a775e7c80a9f40160606e"
        );
    }

    /// What the node seals (`medledger-transfer`, the `hpke` crate or its
    /// SM schedule), this opens, chunk by chunk and salt for salt; an
    /// altered or reordered chunk, or another key, does not open.
    #[test]
    fn the_nodes_sealing_opens_here_on_either_suite() {
        let transfer = Hash32([3; 32]);
        for suite in [CryptoSuite::Ed25519Sha256, CryptoSuite::Sm2Sm3] {
            let secret = [0x11u8; 32];
            let recipient = match suite {
                CryptoSuite::Ed25519Sha256 => RecipientKey::X25519(x25519_public(&secret)),
                CryptoSuite::Sm2Sm3 => RecipientKey::Sm2(crate::public_key(&secret).unwrap()),
            };
            let (mut sealer, enc) = TransferSealer::new(&recipient, transfer).unwrap();
            let a = sealer.seal(0, 0, false, b"a lab report, ").unwrap();
            let b = sealer.seal(1, 0, true, b"its end").unwrap();
            let open = || match suite {
                CryptoSuite::Ed25519Sha256 => {
                    Opener::hpke_transfer(&secret, &enc, &transfer.0).unwrap()
                }
                CryptoSuite::Sm2Sm3 => Opener::sm_transfer(&secret, &enc, &transfer.0).unwrap(),
            };
            let mut opener = open();
            assert_eq!(
                opener.content_salt().unwrap(),
                sealer.content_salt().unwrap(),
                "{suite:?}"
            );
            assert_eq!(
                opener.open_chunk(0, 0, false, &a.sealed).unwrap(),
                b"a lab report, "
            );
            assert_eq!(
                opener.open_chunk(1, 0, true, &b.sealed).unwrap(),
                b"its end"
            );

            let mut reordered = open();
            assert!(reordered.open_chunk(1, 0, true, &b.sealed).is_err());
            let mut moved = open();
            assert!(moved.open_chunk(0, 1, false, &a.sealed).is_err());
            let mut altered = a.sealed.clone();
            altered[0] ^= 1;
            assert!(open().open_chunk(0, 0, false, &altered).is_err());
            let other = [0x22u8; 32];
            let wrong = match suite {
                CryptoSuite::Ed25519Sha256 => Opener::hpke_transfer(&other, &enc, &transfer.0),
                CryptoSuite::Sm2Sm3 => Opener::sm_transfer(&other, &enc, &transfer.0),
            };
            assert!(wrong.unwrap().open_chunk(0, 0, false, &a.sealed).is_err());
        }
    }

    #[test]
    fn unusable_keys_are_refused() {
        // A low-order X25519 point gives an all-zero shared secret.
        assert_eq!(
            Opener::hpke(&[1; 32], &[0; 32], b"").err(),
            Some(OpenError::BadKey)
        );
        assert_eq!(
            Opener::sm_transfer(&[1; 32], &[4; 33], &[0; 32]).err(),
            Some(OpenError::BadKey)
        );
        assert_eq!(
            Opener::sm_transfer(&[0; 32], &[2; 33], &[0; 32]).err(),
            Some(OpenError::BadKey)
        );
    }
}
