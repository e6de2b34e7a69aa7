//! The records gateway: records move from the holding hospital's node to the
//! requesting practitioner, sealed end to end, only on a committed and
//! authorised access request.
//!
//! - [`Ledger`]: all the gateway may ask of the node it runs in (the node's
//!   [`crate::shared::Shared`] implements it).
//! - [`RecordSource`]: what a hospital implements over its own system;
//!   [`DirectorySource`] reads a directory of FHIR resources and binaries,
//!   [`fhir::FhirSource`] a FHIR R4 server's REST API.
//! - [`holder`]: the holder's checks, manifest, sealed chunks and the
//!   `AccessServed` it records.
//! - [`transport`]: libp2p request-response between member nodes (Noise:
//!   the peer's identity is its node key, so the holder knows which
//!   member's node asks).
//!
//! The requester's node only relays sealed chunks (HTTP route
//! `POST /v1/records/fetch`): the one-time key is the practitioner's, held by
//! their SDK, so no node but the holder sees the records in the clear.

pub mod fhir;
pub mod holder;
pub mod scope;
pub mod transport;

pub use transport::{Gateway, TransportError};

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use medledger_contracts::Hash32;
use medledger_contracts::crypto::Signature;
use medledger_contracts::encoding::HashFunction;
use medledger_contracts::records::InstitutionRecord;
use medledger_contracts::state::StateReader;
use medledger_contracts::transaction::SignedTransaction;
use medledger_contracts::types::{Category, Chain, InstitutionId, PatientId, TxHash};

use crate::mempool::Refusal;

/// What the records gateway needs from the node it runs in, and nothing
/// more: the chain and this node's institution, the committed state at the
/// node's height, a way to put a transaction signed with the node key on
/// the ledger, and a counter for refusals.
pub trait Ledger: Send + Sync {
    /// The chain this node is on.
    fn chain(&self) -> &Chain;
    /// The institution this node belongs to: the holder it answers for.
    fn institution(&self) -> &InstitutionId;
    /// The newest committed height (0 before the first block).
    fn height(&self) -> u64;
    /// The committed state at [`Ledger::height`].
    fn committed_state(&self) -> &dyn StateReader;
    /// The chain's transaction validity window (genesis, R1), in ms.
    fn tx_validity_window_ms(&self) -> u64;
    /// Every institution the committed state knows, in any status.
    fn institution_records(&self) -> Result<Vec<InstitutionRecord>, RecordsError>;
    /// Admits `tx` into this node's mempool, as a local client's would be.
    fn submit(&self, tx: &SignedTransaction) -> Result<TxHash, Refusal>;
    /// Counts a refusal the gateway answered (`/metrics`).
    fn count_refusal(&self, code: &str);
}

/// Why the institution records could not be read from the committed state.
#[derive(Debug, thiserror::Error)]
pub enum RecordsError {
    /// The store failed.
    #[error("reading institution records: {0}")]
    Store(#[from] medledger_store::StoreError),
    /// A stored record does not decode (a damaged store).
    #[error("an institution record does not decode: {0}")]
    Decode(#[from] medledger_contracts::encoding::DecodeError),
}

/// A resource the holder has for a patient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceItem {
    /// Relative name, `category/file`.
    pub path: String,
    /// Its category.
    pub category: Category,
    /// Its size in bytes.
    pub size: u64,
}

/// The link between a hospital's record number and a patient's ledger id,
/// made at the desk with the patient's signature
/// ([`medledger_contracts::transaction::record_link_message`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatientLink {
    /// The hospital's record number.
    pub record_number: String,
    /// The patient's signature accepting it, its 64 bytes without a scheme
    /// tag (the scheme is the patient's key's: [`Signature::of_scheme`]);
    /// none for a link made before links were signed: the holder serves
    /// nothing under it.
    pub signature: Option<[u8; 64]>,
}

/// Whether `text` is a hospital record number as links hold it: 1 to 64 of
/// ASCII letters, digits, `-` and `_` (also a safe directory name).
pub fn is_record_number(text: &str) -> bool {
    (1..=64).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A hospital's records, as the gateway sees them. Implement this over the
/// hospital's HIS or FHIR server; [`DirectorySource`] is the reference.
/// The gateway lists and reads only under a link it has verified: `list` and
/// `open` get that link, never the patient id, so a source cannot serve
/// under another.
pub trait RecordSource: Send + Sync {
    /// Every link naming the patient here, in a stable order: the holder
    /// serves under the first whose signature the patient's current key
    /// made, and under none if no link verifies.
    fn links(&self, patient: &PatientId) -> std::io::Result<Vec<PatientLink>>;
    /// The resources under `link`'s record number in `categories` (all of
    /// them for `FullRecord`), in a stable order.
    fn list(&self, link: &PatientLink, categories: &[Category])
    -> std::io::Result<Vec<SourceItem>>;
    /// Reads one resource listed by [`RecordSource::list`] under `link`.
    fn open(&self, link: &PatientLink, path: &str) -> std::io::Result<Box<dyn Read + Send>>;
}

/// Records in a directory: `<root>/<local record number>/<category>/<file>`,
/// where `<category>` is a category's name (`lab-reports`, `imaging`…) and a
/// file is a FHIR R4 resource (JSON) or an attached binary. The link from the
/// hospital's record number to the patient's ledger id is
/// `<root>/patient-links.json` (`{"<record number>": {"patient": "<patient
/// id>", "signature": "<the patient's signature>"}}`), made at the desk with
/// the patient's signature; it never leaves the hospital's node.
pub struct DirectorySource {
    root: PathBuf,
}

/// The links file's name inside the records directory.
pub const LINKS_FILE: &str = "patient-links.json";
/// Largest links file read.
const LINKS_BYTES_MAX: u64 = 256 * 1024 * 1024;

impl DirectorySource {
    /// A source over `root`.
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    /// The links file's entries; one that does not parse, or names no
    /// well-formed record number, is left out (a hand edit gone wrong
    /// costs that entry, not every patient's fetches).
    fn entries(&self) -> std::io::Result<BTreeMap<String, StoredLink>> {
        let path = self.root.join(LINKS_FILE);
        match std::fs::metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) => return Err(e),
            Ok(m) if m.len() > LINKS_BYTES_MAX => {
                return Err(std::io::Error::other(format!(
                    "{} is too large",
                    path.display()
                )));
            }
            Ok(_) => {}
        }
        let text = std::fs::read_to_string(&path)?;
        let entries: BTreeMap<String, serde_json::Value> = serde_json::from_str(&text)
            .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display())))?;
        Ok(entries
            .into_iter()
            .filter(|(number, _)| is_record_number(number))
            .filter_map(|(number, entry)| Some((number, serde_json::from_value(entry).ok()?)))
            .collect())
    }

    /// Every link naming the patient, by record number.
    pub fn patient_links(&self, patient: &PatientId) -> std::io::Result<Vec<PatientLink>> {
        let wanted = patient.0.to_hex();
        Ok(self
            .entries()?
            .into_iter()
            .filter(|(_, link)| link.patient() == wanted)
            .map(|(record_number, link)| PatientLink {
                record_number,
                signature: match link {
                    StoredLink::Signed { signature, .. } => hex::decode(signature)
                        .ok()
                        .and_then(|bytes| <[u8; 64]>::try_from(bytes).ok()),
                    StoredLink::Unsigned(_) => None,
                },
            })
            .collect())
    }

    /// The directory of a link's record number, if there is one.
    fn link_dir(&self, link: &PatientLink) -> Option<PathBuf> {
        Some(self.root.join(&link.record_number))
            .filter(|dir| is_record_number(&link.record_number) && dir.is_dir())
    }

    /// Links a hospital record number to a patient with the patient's
    /// signature over [`medledger_contracts::transaction::record_link_message`]
    /// (the desk's step; the holder checks the signature at each fetch). The
    /// file keeps its 64 bytes, without the scheme: the patient's key says it.
    pub fn link(
        root: &Path,
        record_number: &str,
        patient: &PatientId,
        signature: &Signature,
    ) -> anyhow::Result<()> {
        if !is_record_number(record_number) {
            anyhow::bail!("a record number is 1 to 64 letters, digits, '-' and '_'");
        }
        std::fs::create_dir_all(root)?;
        let source = Self::new(root.to_path_buf());
        let mut links = source.entries()?;
        links.insert(
            record_number.to_string(),
            StoredLink::Signed {
                patient: patient.0.to_hex(),
                signature: signature.to_hex(),
            },
        );
        let path = root.join(LINKS_FILE);
        let tmp = root.join(format!("{LINKS_FILE}.tmp"));
        std::fs::write(&tmp, serde_json::to_string_pretty(&links)?)?;
        std::fs::rename(tmp, path)?;
        Ok(())
    }
}

/// One entry of `patient-links.json`: a signed link, or a bare patient id
/// written before links were signed (read, never served).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
enum StoredLink {
    Signed { patient: String, signature: String },
    Unsigned(String),
}

impl StoredLink {
    fn patient(&self) -> &str {
        match self {
            Self::Signed { patient, .. } | Self::Unsigned(patient) => patient,
        }
    }
}

/// The categories a source lists for an access to `categories`: every one
/// for `FullRecord`.
fn categories_to_list(categories: &[Category]) -> Vec<Category> {
    if categories.contains(&Category::FullRecord) {
        Category::ALL.to_vec()
    } else {
        categories.to_vec()
    }
}

fn plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/') && !name.contains('\\')
}

impl RecordSource for DirectorySource {
    fn links(&self, patient: &PatientId) -> std::io::Result<Vec<PatientLink>> {
        self.patient_links(patient)
    }

    fn list(
        &self,
        link: &PatientLink,
        categories: &[Category],
    ) -> std::io::Result<Vec<SourceItem>> {
        let Some(dir) = self.link_dir(link) else {
            return Ok(Vec::new());
        };
        let wanted = categories_to_list(categories);
        let mut items = Vec::new();
        for category in wanted {
            let category_dir = dir.join(category.name());
            if !category_dir.is_dir() {
                continue;
            }
            let mut files: Vec<(String, u64)> = Vec::new();
            for entry in std::fs::read_dir(&category_dir)? {
                let entry = entry?;
                let meta = entry.metadata()?;
                let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                    continue;
                };
                if meta.is_file() && plain_name(&name) {
                    files.push((name, meta.len()));
                }
            }
            files.sort();
            items.extend(files.into_iter().map(|(name, size)| SourceItem {
                path: format!("{}/{name}", category.name()),
                category,
                size,
            }));
        }
        Ok(items)
    }

    fn open(&self, link: &PatientLink, path: &str) -> std::io::Result<Box<dyn Read + Send>> {
        let dir = self
            .link_dir(link)
            .ok_or_else(|| std::io::Error::other("no records under this link"))?;
        let mut parts = path.split('/');
        let (Some(category), Some(name), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(std::io::Error::other("not a listed path"));
        };
        if Category::from_name(category).is_none() || !plain_name(name) {
            return Err(std::io::Error::other("not a listed path"));
        }
        Ok(Box::new(std::fs::File::open(
            dir.join(category).join(name),
        )?))
    }
}

/// The requester's side: this node's gateway and where other members' gateways are.
#[derive(Clone)]
pub struct Relay {
    /// This node's gateway transport.
    pub gateway: Gateway,
    /// Other members' gateways by institution.
    pub peers: BTreeMap<String, (libp2p::PeerId, libp2p::Multiaddr)>,
    /// This node's own institution and holder: a practitioner of the holding
    /// institution fetching through their own node is served here, under
    /// the same checks, without a network hop.
    pub local: (String, libp2p::PeerId, std::sync::Arc<holder::Holder>),
}

impl Relay {
    /// Whether this relay can reach `holder`'s gateway.
    pub fn knows(&self, holder: &str) -> bool {
        self.local.0 == holder || self.peers.contains_key(holder)
    }

    /// Sends a request to `holder`'s gateway (or to this node's own holder).
    pub async fn request(
        &self,
        holder: &str,
        request: medledger_transfer::GatewayRequest,
    ) -> Result<medledger_transfer::GatewayResponse, TransportError> {
        if self.local.0 == holder {
            let (peer, local) = (self.local.1, self.local.2.clone());
            return tokio::task::spawn_blocking(move || local.handle(peer, request))
                .await
                .map_err(|e| TransportError::Local(e.to_string()));
        }
        let (peer, address) = self
            .peers
            .get(holder)
            .cloned()
            .ok_or_else(|| TransportError::UnknownHolder(holder.to_string()))?;
        self.gateway.request(peer, address, request).await
    }
}

/// Parses `/ip4/…/tcp/…/p2p/<peer id>` into the peer id and the address.
pub fn parse_peer_address(text: &str) -> anyhow::Result<(libp2p::PeerId, libp2p::Multiaddr)> {
    let address: libp2p::Multiaddr = text
        .parse()
        .map_err(|e| anyhow::anyhow!("gateway peer address {text:?}: {e}"))?;
    let peer = address
        .iter()
        .find_map(|p| match p {
            libp2p::multiaddr::Protocol::P2p(peer) => Some(peer),
            _ => None,
        })
        .ok_or_else(|| {
            anyhow::anyhow!("gateway peer address {text:?} must end in /p2p/<peer id>")
        })?;
    Ok((peer, address))
}

/// `hash` of a reader's bytes and their count, reading in bounded chunks.
pub fn hash_reader(hash: HashFunction, reader: impl Read) -> std::io::Result<(Hash32, u64)> {
    hash_reader_keeping(hash, reader, 0).map(|(hash, size, _)| (hash, size))
}

/// `hash` of a reader's bytes (a record's content hash on a chain of that
/// function) and their count, and the bytes themselves if there are at
/// most `keep_max` of them (read once, so the bytes kept are the bytes
/// hashed).
pub fn hash_reader_keeping(
    hash: HashFunction,
    mut reader: impl Read,
    keep_max: usize,
) -> std::io::Result<(Hash32, u64, Option<Vec<u8>>)> {
    let mut hasher = hash.stream();
    let mut buffer = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    let mut kept = (keep_max > 0).then(Vec::new);
    loop {
        let n = reader.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        total += n as u64;
        if let Some(bytes) = &mut kept {
            if bytes.len() + n > keep_max {
                kept = None;
            } else {
                bytes.extend_from_slice(&buffer[..n]);
            }
        }
    }
    Ok((hasher.finish(), total, kept))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_source_lists_under_a_link_by_category_only() {
        let dir = tempfile::tempdir().unwrap();
        let patient = PatientId(Hash32([3; 32]));
        let other = PatientId(Hash32([4; 32]));
        let signature = Signature::Ed25519 {
            r: [5; 32],
            s: [6; 32],
        };
        DirectorySource::link(dir.path(), "MRN-1", &patient, &signature).unwrap();
        std::fs::create_dir_all(dir.path().join("MRN-1/lab-reports")).unwrap();
        std::fs::create_dir_all(dir.path().join("MRN-1/imaging")).unwrap();
        std::fs::write(dir.path().join("MRN-1/lab-reports/b.json"), b"{}").unwrap();
        std::fs::write(dir.path().join("MRN-1/lab-reports/a.json"), b"{\"x\":1}").unwrap();
        std::fs::write(dir.path().join("MRN-1/imaging/ct.dcm"), vec![0u8; 10]).unwrap();
        let source = DirectorySource::new(dir.path().to_path_buf());
        // The link keeps the signature.
        let links = source.links(&patient).unwrap();
        assert_eq!(
            links,
            [PatientLink {
                record_number: "MRN-1".into(),
                signature: Some(signature.to_bytes()),
            }]
        );
        let link = &links[0];
        assert!(source.links(&other).unwrap().is_empty());
        let labs = source.list(link, &[Category::LabReports]).unwrap();
        assert_eq!(
            labs.iter().map(|i| i.path.as_str()).collect::<Vec<_>>(),
            ["lab-reports/a.json", "lab-reports/b.json"]
        );
        assert_eq!(source.list(link, &[Category::FullRecord]).unwrap().len(), 3);
        assert!(source.open(link, "lab-reports/../imaging/ct.dcm").is_err());
        assert!(source.open(link, "../MRN-1/lab-reports/a.json").is_err());
        let (hash, size) = hash_reader(
            HashFunction::Sha256,
            source.open(link, "imaging/ct.dcm").unwrap(),
        )
        .unwrap();
        assert_eq!(size, 10);
        assert_eq!(
            hash,
            medledger_contracts::encoding::HashFunction::Sha256.digest(&[0u8; 10])
        );
        // A link naming a path, not a record number, reads nothing.
        let climbing = PatientLink {
            record_number: "../MRN-1".into(),
            signature: None,
        };
        assert!(
            source
                .list(&climbing, &[Category::FullRecord])
                .unwrap()
                .is_empty()
        );
        assert!(DirectorySource::link(dir.path(), "../x", &patient, &signature).is_err());
        assert!(DirectorySource::link(dir.path(), &"9".repeat(65), &patient, &signature).is_err());
        // Entries written by hand: a bare id (before links were signed) is
        // read as unsigned; a malformed entry or number costs only itself.
        std::fs::write(
            dir.path().join(LINKS_FILE),
            format!(
                "{{\"MRN-2\": \"{}\", \"MRN-3\": {{\"patient\": \"{}\"}}, \"../up\": \"{}\", \"MRN-1\": {{\"patient\": \"{}\", \"signature\": \"{}\"}}}}",
                other.0.to_hex(),
                other.0.to_hex(),
                other.0.to_hex(),
                patient.0.to_hex(),
                signature.to_hex()
            ),
        )
        .unwrap();
        assert_eq!(
            source.links(&other).unwrap(),
            [PatientLink {
                record_number: "MRN-2".into(),
                signature: None,
            }]
        );
        assert_eq!(source.links(&patient).unwrap().len(), 1);
    }
}
