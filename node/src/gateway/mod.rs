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
use medledger_contracts::records::InstitutionRecord;
use medledger_contracts::state::StateReader;
use medledger_contracts::transaction::SignedTransaction;
use medledger_contracts::types::{Category, ChainId, InstitutionId, PatientId, TxHash};

use crate::mempool::Refusal;

/// What the records gateway needs from the node it runs in, and nothing
/// more: the chain and this node's institution, the committed state at the
/// node's height, a way to put a transaction signed with the node key on
/// the ledger, and a counter for refusals.
pub trait Ledger: Send + Sync {
    /// The chain this node is on.
    fn chain(&self) -> &ChainId;
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
    /// The patient's signature accepting it (none for a link made before
    /// links were signed: the holder serves nothing under it).
    pub signature: Option<Signature>,
}

/// A hospital's records, as the gateway sees them. Implement this over the
/// hospital's HIS or FHIR server; [`DirectorySource`] is the reference.
pub trait RecordSource: Send + Sync {
    /// The patient's link to a record number here, if any: the holder
    /// lists nothing unless the patient's current key signed it.
    fn link(&self, patient: &PatientId) -> std::io::Result<Option<PatientLink>>;
    /// The patient's resources in `categories` (all of them for
    /// `FullRecord`), in a stable order; none if the patient is not linked.
    fn list(
        &self,
        patient: &PatientId,
        categories: &[Category],
    ) -> std::io::Result<Vec<SourceItem>>;
    /// Reads one resource listed by [`RecordSource::list`].
    fn open(&self, patient: &PatientId, path: &str) -> std::io::Result<Box<dyn Read + Send>>;
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

    fn links(&self) -> std::io::Result<BTreeMap<String, StoredLink>> {
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
        serde_json::from_str(&text)
            .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display())))
    }

    /// The hospital's record number linked to the patient, if any.
    pub fn record_number(&self, patient: &PatientId) -> std::io::Result<Option<String>> {
        Ok(self.patient_link(patient)?.map(|link| link.record_number))
    }

    /// The patient's link, if any (the first record number, in order, that
    /// names them).
    pub fn patient_link(&self, patient: &PatientId) -> std::io::Result<Option<PatientLink>> {
        let wanted = patient.0.to_hex();
        Ok(self
            .links()?
            .into_iter()
            .find(|(_, link)| link.patient() == wanted)
            .map(|(record_number, link)| PatientLink {
                record_number,
                signature: match link {
                    StoredLink::Signed { signature, .. } => {
                        Signature::ed25519_from_hex(&signature).ok()
                    }
                    StoredLink::Unsigned(_) => None,
                },
            }))
    }

    /// The patient's record directory, if linked.
    fn patient_dir(&self, patient: &PatientId) -> std::io::Result<Option<PathBuf>> {
        Ok(self
            .record_number(patient)?
            .map(|number| self.root.join(number))
            .filter(|dir| dir.is_dir()))
    }

    /// Links a hospital record number to a patient with the patient's
    /// signature over [`medledger_contracts::transaction::record_link_message`]
    /// (the desk's step; the holder checks the signature at each fetch).
    pub fn link(
        root: &Path,
        record_number: &str,
        patient: &PatientId,
        signature: &Signature,
    ) -> anyhow::Result<()> {
        if record_number.is_empty()
            || !record_number
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            anyhow::bail!("a record number is letters, digits, '-' and '_'");
        }
        std::fs::create_dir_all(root)?;
        let source = Self::new(root.to_path_buf());
        let mut links = source.links()?;
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
    fn link(&self, patient: &PatientId) -> std::io::Result<Option<PatientLink>> {
        self.patient_link(patient)
    }

    fn list(
        &self,
        patient: &PatientId,
        categories: &[Category],
    ) -> std::io::Result<Vec<SourceItem>> {
        let Some(dir) = self.patient_dir(patient)? else {
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

    fn open(&self, patient: &PatientId, path: &str) -> std::io::Result<Box<dyn Read + Send>> {
        let dir = self
            .patient_dir(patient)?
            .ok_or_else(|| std::io::Error::other("patient not linked"))?;
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

/// SHA-256 of a reader's bytes and their count, reading in bounded chunks.
pub fn hash_reader(reader: impl Read) -> std::io::Result<(Hash32, u64)> {
    hash_reader_keeping(reader, 0).map(|(hash, size, _)| (hash, size))
}

/// SHA-256 of a reader's bytes and their count, and the bytes themselves
/// if there are at most `keep_max` of them (read once, so the bytes kept are
/// the bytes hashed).
pub fn hash_reader_keeping(
    mut reader: impl Read,
    keep_max: usize,
) -> std::io::Result<(Hash32, u64, Option<Vec<u8>>)> {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
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
    Ok((Hash32(hasher.finalize().into()), total, kept))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_source_lists_linked_patients_by_category_only() {
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
        let labs = source.list(&patient, &[Category::LabReports]).unwrap();
        assert_eq!(
            labs.iter().map(|i| i.path.as_str()).collect::<Vec<_>>(),
            ["lab-reports/a.json", "lab-reports/b.json"]
        );
        assert_eq!(
            source
                .list(&patient, &[Category::FullRecord])
                .unwrap()
                .len(),
            3
        );
        assert!(
            source
                .list(&other, &[Category::FullRecord])
                .unwrap()
                .is_empty()
        );
        assert!(
            source
                .open(&patient, "lab-reports/../imaging/ct.dcm")
                .is_err()
        );
        assert!(
            source
                .open(&patient, "../MRN-1/lab-reports/a.json")
                .is_err()
        );
        let (hash, size) = hash_reader(source.open(&patient, "imaging/ct.dcm").unwrap()).unwrap();
        assert_eq!(size, 10);
        assert_eq!(
            hash,
            medledger_contracts::encoding::tagged_hash(b"", &[&[0u8; 10]])
        );
        assert!(DirectorySource::link(dir.path(), "../x", &patient, &signature).is_err());
        // The link keeps the signature; one written before links were
        // signed (a bare id) is read as unsigned.
        assert_eq!(
            source.link(&patient).unwrap(),
            Some(PatientLink {
                record_number: "MRN-1".into(),
                signature: Some(signature),
            })
        );
        std::fs::write(
            dir.path().join(LINKS_FILE),
            format!("{{\"MRN-2\": \"{}\"}}", other.0.to_hex()),
        )
        .unwrap();
        assert_eq!(
            source.link(&other).unwrap().map(|l| l.signature),
            Some(None)
        );
        assert_eq!(source.link(&patient).unwrap(), None);
    }
}
