//! Records in transit: what a practitioner signs to fetch records under a
//! committed request, the gateway protocol's messages, and HPKE (RFC 9180)
//! sealing of each chunk to the practitioner's one-time key.
//!
//! Rules:
//! 1. The practitioner makes a one-time X25519 key and signs a
//!    [`FetchAuthorization`] naming the chain, the committed request, the
//!    holder, that key and the time, under the tag `medledger/records-fetch/v1`.
//! 2. The holder answers with a [`Manifest`] (one entry per resource: path,
//!    category, size, SHA-256) and the HPKE encapsulated key; the HPKE info
//!    string is `medledger/records/v1 ‖ transfer id`.
//! 3. Chunks come in order, each sealed with the one sender context (so its
//!    HPKE sequence number is its position) and bound by its AAD to the
//!    transfer, item, chunk number and whether it ends its item: a chunk
//!    replayed, reordered, moved or altered does not open.
//! 4. The holder submits `AccessServed` with the manifest's hashes, salted,
//!    when it sends the manifest and answers `Wait` to chunk requests until
//!    that release is committed: no content leaves before the ledger has it.
//!    Salted: each recorded hash is [`released_hash`]`(salt, SHA-256)`, the
//!    salt exported from the transfer's HPKE context (label
//!    `medledger/content-salt/v1`), which only the holder and the one-time
//!    key's owner can compute. Another member reading the ledger cannot
//!    confirm a guess of a small, predictable record's bytes; the requester
//!    keeps the salt ([`FetchedRecords::content_salt`]) and can show an
//!    auditor which bytes were released by revealing it.
//! 5. The requester checks each item's SHA-256 and size against the manifest,
//!    and the manifest's salted hashes against the holder's committed
//!    `AccessServed`.

use hpke::aead::{AeadCtxR, AeadCtxS, ChaCha20Poly1305};
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use medledger_contracts::crypto::{PublicKey, Signature};
use medledger_contracts::encoding::{Hash32, hash_of};
use medledger_contracts::types::{
    Category, ChainId, InstitutionId, PractitionerId, RequestId, Timestamp,
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

const FETCH_TAG: &[u8] = b"medledger/records-fetch/v1";
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
    /// The one-time X25519 public key the records are sealed to.
    pub one_time_key: [u8; 32],
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
    /// The digest the practitioner signs.
    pub fn digest(&self) -> Hash32 {
        hash_of(FETCH_TAG, self)
    }
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
    /// SHA-256 of its bytes (`AccessServed` records it salted: [`released_hash`]).
    pub sha256: Hash32,
}

/// What the holder will send (rule 2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The transfer's id.
    pub transfer: Hash32,
    /// The HPKE encapsulated key.
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

/// What `AccessServed` records for a resource: its SHA-256 under the
/// transfer's salt (rule 4).
pub fn released_hash(salt: &[u8; 32], sha256: &Hash32) -> Hash32 {
    medledger_contracts::encoding::tagged_hash(
        b"medledger/released-content/v1",
        &[salt.as_slice(), sha256.0.as_slice()],
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

/// What a fetch delivered, verified.
#[derive(Clone, Debug)]
pub struct FetchedRecords {
    /// The manifest, every item checked against its bytes.
    pub items: Vec<ManifestItem>,
    /// Where the records were written.
    pub dir: std::path::PathBuf,
    /// The height at which the holder's `AccessServed` committed the same hashes.
    pub release_height: u64,
    /// The transfer's content salt (rule 4): with it and the bytes, the
    /// requester can show an auditor which records the release recorded.
    /// Only the two ends could compute it; the holder does not keep it.
    pub content_salt: [u8; 32],
}

fn safe_relative(path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    parts.len() == 2
        && parts
            .iter()
            .all(|p| !p.is_empty() && *p != "." && *p != ".." && !p.contains('\\'))
}

/// The gateway's frames (length-prefixed BCS [`GatewayResponse`]s) of a
/// streaming `POST /v1/records/fetch` answer, one at a time.
pub struct FrameReader {
    response: reqwest::Response,
    buffer: Vec<u8>,
}

impl FrameReader {
    /// Reads frames from `response`.
    pub fn new(response: reqwest::Response) -> Self {
        Self {
            response,
            buffer: Vec::new(),
        }
    }

    /// The next frame; `None` when the stream ended between frames.
    pub async fn next(&mut self) -> Result<Option<GatewayResponse>, crate::SdkError> {
        use crate::SdkError;
        loop {
            if self.buffer.len() >= 4 {
                let mut length = [0u8; 4];
                length.copy_from_slice(&self.buffer[..4]);
                let length = u32::from_be_bytes(length) as usize;
                if length > GATEWAY_MESSAGE_BYTES_MAX {
                    return Err(SdkError::Decode(format!(
                        "a frame of {length} bytes is too large"
                    )));
                }
                if self.buffer.len() >= 4 + length {
                    let message = medledger_contracts::encoding::from_bytes(
                        &self.buffer[4..4 + length],
                        GATEWAY_MESSAGE_BYTES_MAX,
                    )
                    .map_err(|e| SdkError::Decode(format!("gateway frame: {e}")))?;
                    self.buffer.drain(..4 + length);
                    return Ok(Some(message));
                }
            }
            match self
                .response
                .chunk()
                .await
                .map_err(|e| SdkError::Http(e.to_string()))?
            {
                Some(bytes) => self.buffer.extend_from_slice(&bytes),
                None if self.buffer.is_empty() => return Ok(None),
                None => return Err(SdkError::Decode("the transfer ended inside a frame".into())),
            }
        }
    }
}

/// Fetches the records released under a committed, authorised `request`
/// from `holder`, through the practitioner's own node (`client`), into
/// `out_dir` (one file per resource, `category/name`): makes a one-time
/// key, signs the fetch, opens every chunk, checks every item's size and
/// SHA-256 against the manifest, then waits for the holder's `AccessServed`
/// and checks it lists the same hashes. Any failure stops the transfer.
pub async fn fetch_records(
    client: &crate::Client,
    practitioner: &crate::Identity,
    request: RequestId,
    holder: InstitutionId,
    out_dir: &std::path::Path,
) -> Result<FetchedRecords, crate::SdkError> {
    use crate::SdkError;
    use sha2::{Digest, Sha256};
    use std::io::Write;

    let (key, manifest, mut frames) = open_fetch(client, practitioner, request, holder).await?;
    let mut opener = key
        .opener(&manifest)
        .map_err(|e| SdkError::Decode(e.to_string()))?;
    std::fs::create_dir_all(out_dir)
        .map_err(|e| SdkError::Decode(format!("{}: {e}", out_dir.display())))?;
    // Nothing of a transfer is handed over until all of it is verified:
    // items land in `.partial` files, renamed at the end, removed on any failure.
    let mut partials = Partials(Vec::new());
    let mut seq = 0u64;
    for (index, item) in manifest.items.iter().enumerate() {
        let path = out_dir.join(&item.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| SdkError::Decode(format!("{}: {e}", parent.display())))?;
        }
        let partial = path.with_file_name(format!(
            ".{}.partial",
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ));
        let mut file = std::fs::File::create(&partial)
            .map_err(|e| SdkError::Decode(format!("{}: {e}", partial.display())))?;
        partials.0.push((partial, path));
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        loop {
            let chunk = match frames.next().await? {
                Some(GatewayResponse::Chunk(chunk)) => chunk,
                Some(GatewayResponse::Refused { code, message }) => {
                    return Err(SdkError::Api {
                        status: 502,
                        code,
                        message,
                    });
                }
                _ => return Err(SdkError::Decode("the transfer ended early".into())),
            };
            if chunk.seq != seq || chunk.item as usize != index {
                return Err(SdkError::Decode(format!(
                    "chunk {} is out of place; transfer aborted",
                    chunk.seq
                )));
            }
            let plain = opener
                .open(&chunk)
                .map_err(|e| SdkError::Decode(format!("tampered chunk, transfer aborted: {e}")))?;
            hasher.update(&plain);
            size += plain.len() as u64;
            file.write_all(&plain)
                .map_err(|e| SdkError::Decode(e.to_string()))?;
            seq += 1;
            if chunk.last_of_item {
                break;
            }
        }
        let hash = Hash32(hasher.finalize().into());
        if hash != item.sha256 || size != item.size {
            return Err(SdkError::Decode(format!(
                "{} does not match the manifest (size {size} of {}, hash differs: {}); transfer aborted",
                item.path,
                item.size,
                hash != item.sha256
            )));
        }
    }
    // The holder's release was committed before its first chunk left; it
    // must list exactly the hashes received, under this transfer's salt.
    let salt = opener
        .content_salt()
        .map_err(|e| SdkError::Decode(e.to_string()))?;
    let expected: Vec<String> = manifest
        .items
        .iter()
        .map(|i| released_hash(&salt, &i.sha256).to_hex())
        .collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let access = client
            .get_signed(
                &format!("/v1/accesses/{}", request.0.to_hex()),
                practitioner,
            )
            .await?;
        if let Some(release) = access.get("release").filter(|r| !r.is_null()) {
            let recorded: Vec<String> = release["content_hashes"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|h| h.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            if recorded != expected {
                return Err(SdkError::Decode(
                    "the holder's committed AccessServed lists other hashes than it sent".into(),
                ));
            }
            partials.hand_over()?;
            return Ok(FetchedRecords {
                items: manifest.items,
                dir: out_dir.to_path_buf(),
                release_height: release["height"].as_u64().unwrap_or(0),
                content_salt: salt,
            });
        }
        if std::time::Instant::now() > deadline {
            return Err(SdkError::Decode(
                "the holder's AccessServed did not commit within 30 s".into(),
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Starts a fetch (the first half of [`fetch_records`]): makes a one-time
/// key, signs the fetch, posts it through the practitioner's own node and
/// reads the holder's manifest. The chunks follow in the returned frames.
pub async fn open_fetch(
    client: &crate::Client,
    practitioner: &crate::Identity,
    request: RequestId,
    holder: InstitutionId,
) -> Result<(OneTimeKey, Manifest, FrameReader), crate::SdkError> {
    use crate::SdkError;
    use medledger_contracts::transaction::Signer;

    let Signer::Practitioner(practitioner_id) = practitioner.signer else {
        return Err(SdkError::Decode(
            "records are fetched by a practitioner".into(),
        ));
    };
    let key = OneTimeKey::generate().map_err(|e| SdkError::Decode(e.to_string()))?;
    // The request may have been submitted through another node: wait
    // (briefly) until this one has committed it too.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let committed_at = loop {
        if let Some(receipt) = client.receipt(&request).await? {
            break receipt.height;
        }
        if std::time::Instant::now() > deadline {
            return Err(SdkError::Api {
                status: 404,
                code: "unknown_transaction".into(),
                message: "the access request is not committed on this node".into(),
            });
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let authorization = FetchAuthorization {
        committed_at,
        chain: client.chain().clone(),
        request,
        holder,
        practitioner: practitioner_id,
        one_time_key: key.public(),
        time: crate::client::now(),
    };
    let signed = SignedFetch {
        signature: practitioner.key().sign(&authorization.digest()),
        public_key: practitioner.key().public_key(),
        authorization,
    };
    let body =
        serde_json::json!({"fetch": hex::encode(medledger_contracts::encoding::to_bytes(&signed))})
            .to_string();
    let response = client
        .post_signed_raw("/v1/records/fetch", body, practitioner)
        .await?;
    let mut frames = FrameReader::new(response);
    let manifest = match frames.next().await? {
        Some(GatewayResponse::Manifest(m)) => m,
        Some(GatewayResponse::Refused { code, message }) => {
            return Err(SdkError::Api {
                status: 403,
                code,
                message,
            });
        }
        _ => {
            return Err(SdkError::Decode(
                "the transfer did not start with a manifest".into(),
            ));
        }
    };
    if manifest.items.len() > MANIFEST_ITEMS_MAX
        || !manifest.items.iter().all(|i| safe_relative(&i.path))
    {
        return Err(SdkError::Decode(
            "the manifest is malformed (too many items or unsafe names)".into(),
        ));
    }
    Ok((key, manifest, frames))
}

/// The files of a transfer in progress: `(partial, final)` paths. Dropped
/// before [`Partials::hand_over`], it removes them (a failed transfer leaves nothing).
struct Partials(Vec<(std::path::PathBuf, std::path::PathBuf)>);

impl Partials {
    /// Every item verified: each partial file takes its final name.
    fn hand_over(&mut self) -> Result<(), crate::SdkError> {
        for (partial, path) in std::mem::take(&mut self.0) {
            std::fs::rename(&partial, &path).map_err(|e| {
                let _ = std::fs::remove_file(&partial);
                crate::SdkError::Decode(format!("{}: {e}", path.display()))
            })?;
        }
        Ok(())
    }
}

impl Drop for Partials {
    fn drop(&mut self) {
        for (partial, _) in &self.0 {
            let _ = std::fs::remove_file(partial);
        }
    }
}

use crate::SdkError;

/// Largest JSON resource handed to the hospital's FHIR server.
const HANDED_RESOURCE_BYTES_MAX: u64 = 16 * 1024 * 1024;
/// Largest transaction Bundle sent to it.
const HANDED_BUNDLE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// The `transaction` Bundle that hands fetched FHIR resources to the
/// requesting hospital's own FHIR R4 server: every JSON resource among
/// `fetched` is POSTed (the server gives it its own id), its patient
/// reference (`subject` or `patient`) replaced by `patient_reference` — the
/// hospital's own patient, e.g. a conditional reference
/// `Patient?identifier=<system>|<record number>` — and `meta.source` set to
/// the access request it came under. Items that are not FHIR JSON
/// (binaries) stay in the directory.
pub fn fhir_transaction(
    fetched: &FetchedRecords,
    request: &RequestId,
    patient_reference: &str,
) -> Result<serde_json::Value, SdkError> {
    let mut entries = Vec::new();
    for item in fetched.items.iter().filter(|i| i.path.ends_with(".json")) {
        let path = fetched.dir.join(&item.path);
        if item.size > HANDED_RESOURCE_BYTES_MAX {
            return Err(SdkError::Decode(format!(
                "{} is over {HANDED_RESOURCE_BYTES_MAX} bytes",
                item.path
            )));
        }
        let text = std::fs::read(&path)
            .map_err(|e| SdkError::Decode(format!("{}: {e}", path.display())))?;
        let Ok(serde_json::Value::Object(mut resource)) = serde_json::from_slice(&text) else {
            continue; // not a FHIR resource
        };
        let Some(kind) = resource
            .get("resourceType")
            .and_then(|t| t.as_str())
            .map(str::to_string)
        else {
            continue;
        };
        resource.remove("id");
        for field in ["subject", "patient"] {
            if resource.contains_key(field) {
                resource.insert(
                    field.into(),
                    serde_json::json!({"reference": patient_reference}),
                );
            }
        }
        resource.insert(
            "meta".into(),
            serde_json::json!({"source": format!("urn:medledger:access:{}", request.0.to_hex())}),
        );
        entries.push(serde_json::json!({
            "resource": resource,
            "request": {"method": "POST", "url": kind},
        }));
    }
    Ok(serde_json::json!({
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": entries,
    }))
}

/// Posts [`fhir_transaction`]'s Bundle to the FHIR server at `base`;
/// returns how many resources it took (its `transaction-response` must
/// answer every entry with a 2xx status).
pub async fn hand_to_fhir(
    fetched: &FetchedRecords,
    request: &RequestId,
    base: &str,
    patient_reference: &str,
) -> Result<usize, SdkError> {
    let bundle = fhir_transaction(fetched, request, patient_reference)?;
    let count = bundle["entry"].as_array().map_or(0, Vec::len);
    if count == 0 {
        return Ok(0);
    }
    let body = serde_json::to_vec(&bundle).map_err(|e| SdkError::Decode(e.to_string()))?;
    if body.len() > HANDED_BUNDLE_BYTES_MAX {
        return Err(SdkError::Decode(format!(
            "the resources make a Bundle over {HANDED_BUNDLE_BYTES_MAX} bytes"
        )));
    }
    let response = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .map_err(|e| SdkError::Http(e.to_string()))?
        .post(base.trim_end_matches('/'))
        .header(reqwest::header::CONTENT_TYPE, "application/fhir+json")
        .header(reqwest::header::ACCEPT, "application/fhir+json")
        .body(body)
        .send()
        .await
        .map_err(|e| SdkError::Http(format!("the FHIR server: {e}")))?;
    let status = response.status();
    let answer: serde_json::Value = response
        .json()
        .await
        .map_err(|e| SdkError::Decode(format!("the FHIR server's answer: {e}")))?;
    let answered = answer["entry"].as_array().map_or(0, |entries| {
        entries
            .iter()
            .filter(|e| {
                e["response"]["status"]
                    .as_str()
                    .is_some_and(|s| s.starts_with('2'))
            })
            .count()
    });
    if !status.is_success() || answered != count {
        return Err(SdkError::Api {
            status: status.as_u16(),
            code: "fhir_transaction".into(),
            message: format!("the FHIR server took {answered} of {count} resources"),
        });
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_fhir_json_is_handed_over_as_the_hospitals_own_patients() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("lab-reports")).unwrap();
        std::fs::create_dir_all(dir.path().join("imaging")).unwrap();
        let observation = br#"{"resourceType":"Observation","id":"o1","meta":{"versionId":"3"},"subject":{"reference":"Patient/p9"}}"#;
        std::fs::write(dir.path().join("lab-reports/o1.json"), observation).unwrap();
        std::fs::write(dir.path().join("lab-reports/notes.json"), b"[1, 2]").unwrap();
        std::fs::write(dir.path().join("imaging/ct.dcm"), [0u8; 64]).unwrap();
        let item = |path: &str, size| ManifestItem {
            path: path.into(),
            category: Category::LabReports,
            size,
            sha256: Hash32([0; 32]),
        };
        let fetched = FetchedRecords {
            items: vec![
                item("lab-reports/o1.json", observation.len() as u64),
                item("lab-reports/notes.json", 6),
                item("imaging/ct.dcm", 64),
            ],
            dir: dir.path().to_path_buf(),
            release_height: 1,
            content_salt: [0; 32],
        };
        let request: RequestId = medledger_contracts::types::TxHash(Hash32([7; 32]));
        let bundle = fhir_transaction(&fetched, &request, "Patient?identifier=s|B-1").unwrap();
        let entries = bundle["entry"].as_array().unwrap();
        assert_eq!(
            entries.len(),
            1,
            "neither a JSON array nor a binary is a resource"
        );
        let resource = &entries[0]["resource"];
        assert_eq!(entries[0]["request"]["url"], "Observation");
        assert!(resource.get("id").is_none());
        assert_eq!(resource["subject"]["reference"], "Patient?identifier=s|B-1");
        assert_eq!(
            resource["meta"],
            serde_json::json!({"source": format!("urn:medledger:access:{}", "07".repeat(32))})
        );
    }

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
        let recorded = released_hash(&salt, &guess);
        assert_ne!(recorded, guess);
        // The format, pinned (docs/formats.md): SHA-256 of the tag, the
        // salt and the plain hash, concatenated.
        assert_eq!(
            released_hash(&[1; 32], &Hash32([2; 32])).to_hex(),
            "ceff0ff5457cbde813f5820df8d1ec579ac947d987b0dffb6f3de2209349625c"
        );
        // A second transfer of the same bytes records another hash: releases
        // of one record cannot be linked by their hashes either.
        let (other_sealer, _) = Sealer::new(&key.public(), Hash32([5; 32])).unwrap();
        assert_ne!(
            released_hash(&other_sealer.content_salt().unwrap(), &guess),
            recorded
        );
    }
}
