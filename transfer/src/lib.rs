//! The records-transfer protocol, used by the holder's gateway and the
//! requester's SDK alike: what a practitioner signs to fetch records under a
//! committed request, the gateway protocol's messages, and the sealing of
//! each chunk to the practitioner's one-time key — HPKE (RFC 9180) on an
//! `ed25519-sha256` chain, its SM counterpart ([`sm`]) on `sm2-sm3`
//! ([`TransferKey`], [`TransferSealer`] and [`TransferOpener`] pick by the
//! chain's suite).
//!
//! Rules (`H` is the chain's hash function, SHA-256 or SM3):
//! 1. The practitioner makes a one-time key (X25519; SM2 on `sm2-sm3`) and
//!    signs a [`FetchAuthorization`] naming the chain, the committed
//!    request, the holder, that key and the time, under the tag
//!    `medledger/records-fetch/v2` (a patient fetching their own records
//!    signs an [`OwnFetchAuthorization`] instead, tag
//!    `medledger/records-fetch-own/v1`). A key of the other suite, or one that is
//!    not a usable key (a point off the curve, a low-order X25519 key), is
//!    refused before anything is read ([`RecipientKey::validate`]).
//! 2. The holder answers with a [`Manifest`] (one entry per resource: path,
//!    category, size, `H` of its bytes) and the encapsulated key; the HPKE
//!    info string is `medledger/records/v1 ‖ transfer id`.
//! 3. Chunks come in order, each sealed with the one sender context (so its
//!    HPKE sequence number is its position) and bound by its AAD to the
//!    transfer, item, chunk number and whether it ends its item: a chunk
//!    replayed, reordered, moved or altered does not open.
//! 4. The holder submits `AccessServed` with the manifest's hashes, salted,
//!    when it sends the manifest and answers `Wait` to chunk requests until
//!    that release is committed: no content leaves before the ledger has it.
//!    Salted: each recorded hash is [`released_hash`]`(salt, H(bytes))`, the
//!    salt exported from the transfer's HPKE context (on `sm2-sm3` from its
//!    SM key schedule; label
//!    `medledger/content-salt/v1`), which only the holder and the one-time
//!    key's owner can compute. Another member reading the ledger cannot
//!    confirm a guess of a small, predictable record's bytes; the requester
//!    keeps the salt ([`FetchedRecords::content_salt`]) and can show an
//!    auditor which bytes were released by revealing it.
//! 5. The requester checks each item's hash and size against the manifest,
//!    and the manifest's salted hashes against the holder's committed
//!    `AccessServed`.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod sm;

use hpke::aead::{AeadCtxR, AeadCtxS, ChaCha20Poly1305};
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use medledger_contracts::crypto::{CryptoSuite, PublicKey, Signature};
use medledger_contracts::encoding::{Hash32, HashFunction};
use medledger_contracts::types::{
    Category, ChainId, InstitutionId, PatientId, PractitionerId, RequestId, Timestamp,
};
use serde::{Deserialize, Serialize};

/// Largest gateway message on the wire (a chunk plus its framing).
pub const GATEWAY_MESSAGE_BYTES_MAX: usize = CHUNK_BYTES + 64 * 1024;
/// Largest gateway request on the wire: a signed fetch is a few hundred
/// bytes (its ids are bounded), a chunk request a few dozen.
pub const GATEWAY_REQUEST_BYTES_MAX: usize = 4 * 1024;
/// Plaintext bytes per sealed chunk.
pub const CHUNK_BYTES: usize = 256 * 1024;
/// Most resources in one transfer (the ledger's limit on content hashes).
pub const MANIFEST_ITEMS_MAX: usize =
    medledger_contracts::constants::CONTENT_HASHES_PER_RELEASE_MAX;

// v2: the one-time key is tagged by suite (`RecipientKey`).
const FETCH_TAG: &[u8] = b"medledger/records-fetch/v2";
const OWN_FETCH_TAG: &[u8] = b"medledger/records-fetch-own/v1";
const INFO_TAG: &[u8] = b"medledger/records/v1";

type Kem = X25519HkdfSha256;

/// What the practitioner signs to fetch records (rule 1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchAuthorization {
    /// The chain.
    pub chain: ChainId,
    /// The committed, authorised access request.
    pub request: RequestId,
    /// Who holds the records.
    pub holder: InstitutionId,
    /// The practitioner who made the request.
    pub practitioner: PractitionerId,
    /// The one-time public key the records are sealed to.
    pub one_time_key: RecipientKey,
    /// The practitioner's clock.
    pub time: Timestamp,
    /// The height that committed the request: while its own node is a few
    /// blocks short of it, the holder answers `Wait` and the requester's
    /// gateway asks again.
    pub committed_at: u64,
}

/// A [`FetchAuthorization`] with the practitioner's signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedFetch {
    /// What is authorised.
    pub authorization: FetchAuthorization,
    /// The practitioner's current key.
    pub public_key: PublicKey,
    /// Over [`FetchAuthorization::digest`].
    pub signature: Signature,
}

impl FetchAuthorization {
    /// The digest the practitioner signs on a chain hashing with `hash`.
    pub fn digest(&self, hash: HashFunction) -> Hash32 {
        hash.hash_of(FETCH_TAG, self)
    }
}

/// What a patient signs to fetch their own records under a committed
/// `OwnRecordsRequest` (rule 1, with the patient in the practitioner's
/// place; a tag of its own, so neither signature passes for the other).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnFetchAuthorization {
    /// The chain.
    pub chain: ChainId,
    /// The committed `OwnRecordsRequest`.
    pub request: RequestId,
    /// Who holds the records.
    pub holder: InstitutionId,
    /// The patient who made the request.
    pub patient: PatientId,
    /// The one-time public key the records are sealed to.
    pub one_time_key: RecipientKey,
    /// The patient's clock.
    pub time: Timestamp,
    /// The height that committed the request (as in [`FetchAuthorization`]).
    pub committed_at: u64,
}

impl OwnFetchAuthorization {
    /// The digest the patient signs on a chain hashing with `hash`.
    pub fn digest(&self, hash: HashFunction) -> Hash32 {
        hash.hash_of(OWN_FETCH_TAG, self)
    }
}

/// An [`OwnFetchAuthorization`] with the patient's signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedOwnFetch {
    /// What is authorised.
    pub authorization: OwnFetchAuthorization,
    /// The patient's current key.
    pub public_key: PublicKey,
    /// Over [`OwnFetchAuthorization::digest`].
    pub signature: Signature,
}

/// One resource of a transfer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestItem {
    /// Its name at the holder, relative (e.g. `imaging/study-1.dcm`).
    pub path: String,
    /// Its category.
    pub category: Category,
    /// Its size in bytes.
    pub size: u64,
    /// The chain's hash function over its bytes (SHA-256, or SM3 on
    /// `sm2-sm3`); `AccessServed` records it salted: [`released_hash`].
    pub content_hash: Hash32,
}

/// What the holder will send (rule 2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The transfer's id.
    pub transfer: Hash32,
    /// The encapsulated key: HPKE's, or on `sm2-sm3` the holder's `C1`.
    pub encapsulated_key: Vec<u8>,
    /// The resources, in the order their chunks come.
    pub items: Vec<ManifestItem>,
}

/// A request from the requester's gateway to the holder's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GatewayRequest {
    /// Start a transfer.
    Open(Box<SignedFetch>),
    /// The next chunk of a transfer.
    Chunk {
        /// Which transfer.
        transfer: Hash32,
        /// Its position (0, 1, 2… across all items).
        seq: u64,
    },
    /// Start a transfer of a patient's own records (appended, so the
    /// earlier variants keep their tags).
    OpenOwn(Box<SignedOwnFetch>),
}

/// A sealed chunk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedChunk {
    /// Position in the transfer.
    pub seq: u64,
    /// Which item it belongs to.
    pub item: u32,
    /// Whether it is the item's last.
    pub last_of_item: bool,
    /// Ciphertext with its tag.
    pub sealed: Vec<u8>,
}

/// The holder's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GatewayResponse {
    /// The transfer's manifest.
    Manifest(Manifest),
    /// A chunk.
    Chunk(SealedChunk),
    /// A refusal with a stable code and a message (never whether the
    /// patient has records here).
    Refused {
        /// Stable code.
        code: String,
        /// For the practitioner.
        message: String,
    },
    /// Ask again, the same request, after `retry_ms`: to a chunk request,
    /// the holder has submitted the release and sends no content until it
    /// is committed; to an open, the holder's node has not yet reached the
    /// height that committed the request. (Last, so the earlier variants
    /// keep their tags.)
    Wait {
        /// Milliseconds to wait before asking again.
        retry_ms: u32,
    },
    /// The manifest of a patient's own transfer (R7.8), which any member's
    /// node may relay: its items (names, sizes, plain content hashes) are
    /// sealed to the patient's one-time key ([`SealedItems`]), so the relay
    /// learns only how many there are (as the ledger's release shows).
    SealedManifest {
        /// The transfer's id.
        transfer: Hash32,
        /// The transfer's encapsulated key (as [`Manifest::encapsulated_key`]).
        encapsulated_key: Vec<u8>,
        /// How many items: the chunks end after the last of the last one.
        item_count: u32,
        /// The items, sealed.
        items: SealedItems,
    },
}

/// A transfer's item list sealed to the one-time key: a one-chunk transfer
/// of its own (its own encapsulation, under [`items_transfer_id`]), so
/// it needs no primitive beyond those that seal the records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedItems {
    /// The encapsulated key of the items' own one-chunk transfer.
    pub encapsulated_key: Vec<u8>,
    /// BCS of the `Vec<ManifestItem>`, sealed as that transfer's one chunk.
    pub sealed: Vec<u8>,
}

/// The id under which a transfer's item list is sealed: derived from the
/// transfer's, never equal to any transfer's.
pub fn items_transfer_id(hash: HashFunction, transfer: &Hash32) -> Hash32 {
    hash.tagged_hash(b"medledger/sealed-items/v1", &[transfer.0.as_slice()])
}

/// Seals `items` to `one_time_key` for `transfer` (the holder's side).
pub fn seal_items(
    hash: HashFunction,
    one_time_key: &RecipientKey,
    transfer: &Hash32,
    items: &[ManifestItem],
) -> Result<SealedItems, SealError> {
    let (mut sealer, encapsulated_key) =
        TransferSealer::new(one_time_key, items_transfer_id(hash, transfer))?;
    let plain = medledger_contracts::encoding::to_bytes(&items);
    let chunk = sealer.seal(0, 0, true, &plain)?;
    Ok(SealedItems {
        encapsulated_key,
        sealed: chunk.sealed,
    })
}

/// The AAD that binds a chunk to its place (rule 3).
pub fn chunk_aad(transfer: &Hash32, seq: u64, item: u32, last_of_item: bool) -> Vec<u8> {
    let mut aad = transfer.0.to_vec();
    aad.extend_from_slice(&seq.to_be_bytes());
    aad.extend_from_slice(&item.to_be_bytes());
    aad.push(u8::from(last_of_item));
    aad
}

/// The HPKE export label of a transfer's content salt (rule 4).
const CONTENT_SALT_LABEL: &[u8] = b"medledger/content-salt/v1";

/// What `AccessServed` records for a resource: its content hash under the
/// transfer's salt (rule 4), with the chain's hash function `hash`.
pub fn released_hash(hash: HashFunction, salt: &[u8; 32], content: &Hash32) -> Hash32 {
    hash.tagged_hash(
        b"medledger/released-content/v1",
        &[salt.as_slice(), content.0.as_slice()],
    )
}

/// The salt a transfer's HPKE context exports (either end's, through `export`).
fn content_salt(
    export: impl FnOnce(&[u8], &mut [u8]) -> Result<(), hpke::HpkeError>,
) -> Result<[u8; 32], SealError> {
    let mut salt = [0u8; 32];
    export(CONTENT_SALT_LABEL, &mut salt).map_err(|e| SealError::Hpke(e.to_string()))?;
    Ok(salt)
}

fn info(transfer: &Hash32) -> Vec<u8> {
    let mut info = INFO_TAG.to_vec();
    info.extend_from_slice(&transfer.0);
    info
}

/// Why sealing or opening failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// A key is malformed.
    #[error("bad key: {0}")]
    Key(String),
    /// HPKE failed (a chunk altered, moved or replayed).
    #[error("HPKE: {0}")]
    Hpke(String),
    /// No OS entropy.
    #[error("no OS entropy: {0}")]
    Entropy(String),
}

/// The practitioner's one-time key (lives as long as one fetch).
pub struct OneTimeKey {
    secret: <Kem as hpke::Kem>::PrivateKey,
    public: [u8; 32],
}

impl OneTimeKey {
    /// A fresh key from OS entropy.
    pub fn generate() -> Result<Self, SealError> {
        let mut ikm = [0u8; 32];
        getrandom::fill(&mut ikm).map_err(|e| SealError::Entropy(e.to_string()))?;
        let (secret, public) = Kem::derive_keypair(&ikm);
        let bytes = public.to_bytes();
        let mut public = [0u8; 32];
        public.copy_from_slice(&bytes);
        Ok(Self { secret, public })
    }

    /// The public key to put in the [`FetchAuthorization`].
    pub fn public(&self) -> [u8; 32] {
        self.public
    }

    /// An opener for a transfer whose manifest arrived.
    pub fn opener(&self, manifest: &Manifest) -> Result<Opener, SealError> {
        let encapped = <Kem as hpke::Kem>::EncappedKey::from_bytes(&manifest.encapsulated_key)
            .map_err(|e| SealError::Key(e.to_string()))?;
        let ctx = hpke::setup_receiver::<ChaCha20Poly1305, HkdfSha256, Kem>(
            &OpModeR::Base,
            &self.secret,
            &encapped,
            &info(&manifest.transfer),
        )
        .map_err(|e| SealError::Hpke(e.to_string()))?;
        Ok(Opener {
            ctx,
            transfer: manifest.transfer,
        })
    }
}

/// Opens a transfer's chunks, in order.
pub struct Opener {
    ctx: AeadCtxR<ChaCha20Poly1305, HkdfSha256, Kem>,
    transfer: Hash32,
}

impl Opener {
    /// The transfer's content salt (rule 4), as the holder computes it.
    pub fn content_salt(&self) -> Result<[u8; 32], SealError> {
        content_salt(|label, out| self.ctx.export(label, out))
    }

    /// Opens the next chunk.
    pub fn open(&mut self, chunk: &SealedChunk) -> Result<Vec<u8>, SealError> {
        let aad = chunk_aad(&self.transfer, chunk.seq, chunk.item, chunk.last_of_item);
        self.ctx
            .open(&chunk.sealed, &aad)
            .map_err(|e| SealError::Hpke(format!("chunk {} does not open: {e}", chunk.seq)))
    }
}

/// Seals a transfer's chunks, in order (the holder's side).
pub struct Sealer {
    ctx: AeadCtxS<ChaCha20Poly1305, HkdfSha256, Kem>,
    transfer: Hash32,
}

impl Sealer {
    /// A sealer to `one_time_key` for `transfer`, and the encapsulated key to send.
    pub fn new(one_time_key: &[u8; 32], transfer: Hash32) -> Result<(Self, Vec<u8>), SealError> {
        let public = <Kem as hpke::Kem>::PublicKey::from_bytes(one_time_key)
            .map_err(|e| SealError::Key(e.to_string()))?;
        let (encapped, ctx) = hpke::setup_sender::<ChaCha20Poly1305, HkdfSha256, Kem, _>(
            &OpModeS::Base,
            &public,
            &info(&transfer),
            &mut rand_core::TryRngCore::unwrap_err(rand_core::OsRng),
        )
        .map_err(|e| SealError::Hpke(e.to_string()))?;
        Ok((Self { ctx, transfer }, encapped.to_bytes().to_vec()))
    }

    /// The transfer's content salt (rule 4).
    pub fn content_salt(&self) -> Result<[u8; 32], SealError> {
        content_salt(|label, out| self.ctx.export(label, out))
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
            .ctx
            .seal(plain, &aad)
            .map_err(|e| SealError::Hpke(e.to_string()))?;
        Ok(SealedChunk {
            seq,
            item,
            last_of_item,
            sealed,
        })
    }
}

/// The public half of the one-time key a transfer is sealed to, of the
/// chain's suite (rule 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecipientKey {
    /// An X25519 key, for HPKE (`ed25519-sha256`).
    X25519([u8; 32]),
    /// An SM2 key, the SEC1 compressed point (`sm2-sm3`, [`sm`]).
    Sm2(#[serde(with = "medledger_contracts::crypto::bytes33")] [u8; 33]),
}

impl RecipientKey {
    /// Whether a transfer can be sealed to it: an SM2 key must be a point of
    /// the curve, an X25519 key must not be of low order (its shared secret
    /// would be zero). The holder asks before it reads anything, so a bad
    /// key costs it one key agreement, not a listing.
    pub fn validate(&self) -> Result<(), SealError> {
        match self {
            Self::X25519(key) => Sealer::new(key, Hash32::default()).map(|_| ()),
            Self::Sm2(key) => sm::decode_point(key).map(|_| ()),
        }
    }

    /// The suite whose chains seal to keys of this kind.
    pub fn suite(&self) -> CryptoSuite {
        match self {
            Self::X25519(_) => CryptoSuite::Ed25519Sha256,
            Self::Sm2(_) => CryptoSuite::Sm2Sm3,
        }
    }
}

/// A requester's one-time key for a chain of either suite.
pub enum TransferKey {
    /// X25519, for HPKE.
    Hpke(OneTimeKey),
    /// SM2, for [`sm`].
    Sm(sm::SmOneTimeKey),
}

impl TransferKey {
    /// A fresh key for a chain of `suite`.
    pub fn generate(suite: CryptoSuite) -> Result<Self, SealError> {
        Ok(match suite {
            CryptoSuite::Ed25519Sha256 => Self::Hpke(OneTimeKey::generate()?),
            CryptoSuite::Sm2Sm3 => Self::Sm(sm::SmOneTimeKey::generate()?),
        })
    }

    /// The public key to put in the [`FetchAuthorization`].
    pub fn public(&self) -> RecipientKey {
        match self {
            Self::Hpke(key) => RecipientKey::X25519(key.public()),
            Self::Sm(key) => RecipientKey::Sm2(key.public()),
        }
    }

    /// An opener for a transfer whose manifest arrived.
    pub fn opener(&self, manifest: &Manifest) -> Result<TransferOpener, SealError> {
        Ok(match self {
            Self::Hpke(key) => TransferOpener::Hpke(key.opener(manifest)?),
            Self::Sm(key) => {
                TransferOpener::Sm(key.opener(&manifest.encapsulated_key, manifest.transfer)?)
            }
        })
    }

    /// Opens the items [`seal_items`] sealed for `transfer` to this key.
    pub fn open_items(
        &self,
        hash: HashFunction,
        transfer: &Hash32,
        items: &SealedItems,
    ) -> Result<Vec<ManifestItem>, SealError> {
        let mut opener = self.opener(&Manifest {
            transfer: items_transfer_id(hash, transfer),
            encapsulated_key: items.encapsulated_key.clone(),
            items: Vec::new(),
        })?;
        let plain = opener.open(&SealedChunk {
            seq: 0,
            item: 0,
            last_of_item: true,
            sealed: items.sealed.clone(),
        })?;
        medledger_contracts::encoding::from_bytes(&plain, GATEWAY_MESSAGE_BYTES_MAX)
            .map_err(|e| SealError::Hpke(format!("the sealed items do not decode: {e}")))
    }
}

/// Opens a transfer's chunks in order, of either suite.
pub enum TransferOpener {
    /// HPKE.
    Hpke(Opener),
    /// SM2, HKDF-SM3 and SM4-GCM.
    Sm(sm::SmOpener),
}

impl TransferOpener {
    /// The transfer's content salt (rule 4), as the holder computes it.
    pub fn content_salt(&self) -> Result<[u8; 32], SealError> {
        match self {
            Self::Hpke(opener) => opener.content_salt(),
            Self::Sm(opener) => opener.content_salt(),
        }
    }

    /// Opens the next chunk.
    pub fn open(&mut self, chunk: &SealedChunk) -> Result<Vec<u8>, SealError> {
        match self {
            Self::Hpke(opener) => opener.open(chunk),
            Self::Sm(opener) => opener.open(chunk),
        }
    }
}

/// Seals a transfer's chunks in order (the holder's side), of either suite.
pub enum TransferSealer {
    /// HPKE.
    Hpke(Sealer),
    /// SM2, HKDF-SM3 and SM4-GCM.
    Sm(sm::SmSealer),
}

impl TransferSealer {
    /// A sealer to `one_time_key` for `transfer`, and the encapsulated key
    /// to send; the key's kind picks the sealing, so the caller checks it
    /// is of its chain's suite first ([`RecipientKey::suite`]).
    pub fn new(
        one_time_key: &RecipientKey,
        transfer: Hash32,
    ) -> Result<(Self, Vec<u8>), SealError> {
        Ok(match one_time_key {
            RecipientKey::X25519(key) => {
                let (sealer, encapsulated) = Sealer::new(key, transfer)?;
                (Self::Hpke(sealer), encapsulated)
            }
            RecipientKey::Sm2(key) => {
                let (sealer, encapsulated) = sm::SmSealer::new(key, transfer)?;
                (Self::Sm(sealer), encapsulated)
            }
        })
    }

    /// The transfer's content salt (rule 4).
    pub fn content_salt(&self) -> Result<[u8; 32], SealError> {
        match self {
            Self::Hpke(sealer) => sealer.content_salt(),
            Self::Sm(sealer) => sealer.content_salt(),
        }
    }

    /// Seals the next chunk.
    pub fn seal(
        &mut self,
        seq: u64,
        item: u32,
        last_of_item: bool,
        plain: &[u8],
    ) -> Result<SealedChunk, SealError> {
        match self {
            Self::Hpke(sealer) => sealer.seal(seq, item, last_of_item, plain),
            Self::Sm(sealer) => sealer.seal(seq, item, last_of_item, plain),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(transfer: Hash32, encapsulated_key: Vec<u8>) -> Manifest {
        Manifest {
            transfer,
            encapsulated_key,
            items: Vec::new(),
        }
    }

    #[test]
    fn chunks_open_in_order_and_nothing_altered_or_moved_opens() {
        let key = OneTimeKey::generate().unwrap();
        let transfer = Hash32([9; 32]);
        let (mut sealer, enc) = Sealer::new(&key.public(), transfer).unwrap();
        let a = sealer.seal(0, 0, false, b"first").unwrap();
        let b = sealer.seal(1, 0, true, b"second").unwrap();
        let mut opener = key.opener(&manifest(transfer, enc.clone())).unwrap();
        assert_eq!(opener.open(&a).unwrap(), b"first");
        assert_eq!(opener.open(&b).unwrap(), b"second");

        // Out of order, altered, or moved to another item: refused.
        let mut fresh = key.opener(&manifest(transfer, enc.clone())).unwrap();
        assert!(fresh.open(&b).is_err());
        let mut fresh = key.opener(&manifest(transfer, enc.clone())).unwrap();
        let mut altered = a.clone();
        altered.sealed[0] ^= 1;
        assert!(fresh.open(&altered).is_err());
        let mut fresh = key.opener(&manifest(transfer, enc.clone())).unwrap();
        let mut moved = a.clone();
        moved.item = 1;
        assert!(fresh.open(&moved).is_err());
        // Another key cannot open.
        let other = OneTimeKey::generate().unwrap();
        let mut wrong = other.opener(&manifest(transfer, enc.clone())).unwrap();
        assert!(wrong.open(&a).is_err());
        // The salt is the two ends' alone: another key derives another one.
        assert_ne!(
            wrong.content_salt().unwrap(),
            sealer.content_salt().unwrap()
        );
    }

    /// Either suite's key, sealer and opener agree on every chunk and on
    /// the content salt; a key of one suite cannot open the other's.
    #[test]
    fn a_transfer_seals_and_opens_on_either_suite() {
        let transfer = Hash32([3; 32]);
        for suite in [CryptoSuite::Ed25519Sha256, CryptoSuite::Sm2Sm3] {
            let key = TransferKey::generate(suite).unwrap();
            assert_eq!(key.public().suite(), suite);
            assert!(key.public().validate().is_ok());
            let (mut sealer, enc) = TransferSealer::new(&key.public(), transfer).unwrap();
            let a = sealer.seal(0, 0, true, b"a lab report").unwrap();
            let mut opener = key.opener(&manifest(transfer, enc.clone())).unwrap();
            assert_eq!(opener.open(&a).unwrap(), b"a lab report");
            assert_eq!(
                opener.content_salt().unwrap(),
                sealer.content_salt().unwrap()
            );
            let other_suite = match suite {
                CryptoSuite::Ed25519Sha256 => CryptoSuite::Sm2Sm3,
                CryptoSuite::Sm2Sm3 => CryptoSuite::Ed25519Sha256,
            };
            let other = TransferKey::generate(other_suite).unwrap();
            let opened = other
                .opener(&manifest(transfer, enc))
                .and_then(|mut o| o.open(&a));
            assert!(opened.is_err(), "{suite:?}");
        }
    }

    /// A patient's own transfer's items travel sealed (R7.8): the key's
    /// owner opens them on either suite; another key, or the items of
    /// another transfer, do not open.
    #[test]
    fn sealed_items_open_only_with_the_key_and_for_their_transfer() {
        let items = vec![ManifestItem {
            path: "lab-reports/brca.json".into(),
            category: Category::LabReports,
            size: 64,
            content_hash: Hash32([8; 32]),
        }];
        for (suite, hash) in [
            (CryptoSuite::Ed25519Sha256, HashFunction::Sha256),
            (CryptoSuite::Sm2Sm3, HashFunction::Sm3),
        ] {
            let key = TransferKey::generate(suite).unwrap();
            let transfer = Hash32([5; 32]);
            let sealed = seal_items(hash, &key.public(), &transfer, &items).unwrap();
            assert!(
                !sealed.sealed.windows(5).any(|w| w == b"brca."),
                "the name is not in clear"
            );
            assert_eq!(key.open_items(hash, &transfer, &sealed).unwrap(), items);
            assert!(key.open_items(hash, &Hash32([6; 32]), &sealed).is_err());
            let other = TransferKey::generate(suite).unwrap();
            assert!(other.open_items(hash, &transfer, &sealed).is_err());
        }
    }

    /// A key no transfer can be sealed to is refused by `validate`: an SM2
    /// encoding that is no compressed point, a low-order X25519 key.
    #[test]
    fn unusable_one_time_keys_are_refused() {
        assert!(RecipientKey::Sm2([4; 33]).validate().is_err());
        assert!(RecipientKey::X25519([0; 32]).validate().is_err());
    }

    /// Issue 16, item 12: what the ledger records for a resource is its
    /// hash under a salt only the holder and the requester can compute, so
    /// a member who guesses a small record's bytes cannot confirm the guess
    /// from the release (before, the release listed plain SHA-256s).
    #[test]
    fn a_release_lists_salted_hashes_only_the_two_ends_can_compute() {
        let key = OneTimeKey::generate().unwrap();
        let transfer = Hash32([4; 32]);
        let (sealer, enc) = Sealer::new(&key.public(), transfer).unwrap();
        let opener = key.opener(&manifest(transfer, enc)).unwrap();
        let salt = sealer.content_salt().unwrap();
        assert_eq!(opener.content_salt().unwrap(), salt);
        let guess = Hash32(
            sha2::Digest::finalize(sha2::Digest::chain_update(
                sha2::Sha256::default(),
                br#"{"resourceType":"Observation","code":"HIV-1 Ab","value":"positive"}"#,
            ))
            .into(),
        );
        let recorded = released_hash(HashFunction::Sha256, &salt, &guess);
        assert_ne!(recorded, guess);
        // The format, pinned (docs/formats.md): SHA-256 of the tag, the
        // salt and the plain hash, concatenated.
        assert_eq!(
            released_hash(HashFunction::Sha256, &[1; 32], &Hash32([2; 32])).to_hex(),
            "ceff0ff5457cbde813f5820df8d1ec579ac947d987b0dffb6f3de2209349625c"
        );
        // A second transfer of the same bytes records another hash: releases
        // of one record cannot be linked by their hashes either.
        let (other_sealer, _) = Sealer::new(&key.public(), Hash32([5; 32])).unwrap();
        assert_ne!(
            released_hash(
                HashFunction::Sha256,
                &other_sealer.content_salt().unwrap(),
                &guess
            ),
            recorded
        );
    }
}
