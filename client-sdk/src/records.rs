//! Fetching records through the gateway, on the requester's side: the
//! protocol itself (messages, sealing, rules 1-5) is `medledger_transfer`,
//! re-exported here so an SDK user needs one import.

pub use medledger_transfer::*;

use medledger_contracts::encoding::{Hash32, from_bytes};
use medledger_contracts::light::PROVED_VALUE_BYTES_MAX;
use medledger_contracts::records::OwnAccessRecord;
use medledger_contracts::state::StateKey;
use medledger_contracts::transaction::Signer;
use medledger_contracts::types::{InstitutionId, RequestId};

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
            if let Some(message) = take_frame(&mut self.buffer)? {
                return Ok(Some(message));
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

/// Takes the first whole frame off `buffer`: `None` until one has arrived
/// whole; an error for a frame over the limit or one that does not decode.
pub fn take_frame(buffer: &mut Vec<u8>) -> Result<Option<GatewayResponse>, crate::SdkError> {
    let Some(length) = buffer.first_chunk::<4>() else {
        return Ok(None);
    };
    let length = u32::from_be_bytes(*length) as usize;
    if length > GATEWAY_MESSAGE_BYTES_MAX {
        return Err(crate::SdkError::Decode(format!(
            "a frame of {length} bytes is too large"
        )));
    }
    let Some(frame) = buffer.get(4..4 + length) else {
        return Ok(None);
    };
    let message = medledger_contracts::encoding::from_bytes(frame, GATEWAY_MESSAGE_BYTES_MAX)
        .map_err(|e| crate::SdkError::Decode(format!("gateway frame: {e}")))?;
    buffer.drain(..4 + length);
    Ok(Some(message))
}

/// Fetches the records released under a committed, authorised `request`
/// from `holder`, through the practitioner's own node (`client`), into
/// `out_dir` (one file per resource, `category/name`): makes a one-time
/// key of the chain's suite, signs the fetch, opens every chunk, checks
/// every item's size and content hash against the manifest, then waits for the holder's `AccessServed`
/// and checks it lists the same hashes. Any failure stops the transfer.
pub async fn fetch_records(
    client: &crate::Client,
    practitioner: &crate::Identity,
    request: RequestId,
    holder: InstitutionId,
    out_dir: &std::path::Path,
) -> Result<FetchedRecords, crate::SdkError> {
    let (key, manifest, frames) = open_fetch(client, practitioner, request, holder).await?;
    let release = ReleaseOf::Access(request);
    receive(
        client,
        practitioner,
        key,
        manifest,
        frames,
        out_dir,
        release,
    )
    .await
}

/// A patient fetches their own records [R7.8] released under a committed
/// `OwnRecordsRequest` they made of `holder` (see
/// [`crate::TxBuilder::own_records_request`]), through any member's node
/// (`light`'s), into `out_dir`, with every check [`fetch_records`] makes:
/// sealed to a one-time key made here, each item's size and hash against
/// the manifest, the manifest's salted hashes against the holder's
/// committed release — which `light` checks against a certified state root
/// (a proof from the genesis file's validators), so the relaying node
/// cannot report a release of its own making for records it sealed itself.
pub async fn fetch_own_records(
    light: &crate::LightClient,
    patient: &crate::Identity,
    request: RequestId,
    holder: InstitutionId,
    out_dir: &std::path::Path,
) -> Result<FetchedRecords, crate::SdkError> {
    let Signer::Patient(patient_id) = patient.signer else {
        return Err(SdkError::Decode(
            "a patient fetches their own records with their own key".into(),
        ));
    };
    let client = light.client();
    let key =
        TransferKey::generate(client.chain().suite).map_err(|e| SdkError::Decode(e.to_string()))?;
    let committed_at = committed_height(client, &request).await?;
    let authorization = OwnFetchAuthorization {
        committed_at,
        chain: client.chain().id.clone(),
        request,
        holder: holder.clone(),
        patient: patient_id,
        one_time_key: key.public(),
        time: crate::client::now(),
    };
    let signed = SignedOwnFetch {
        signature: patient
            .key()
            .sign(&authorization.digest(client.chain().hash())),
        public_key: patient.key().public_key(),
        authorization,
    };
    let (manifest, frames) = post_fetch(
        client,
        patient,
        "/v1/records/own-fetch",
        medledger_contracts::encoding::to_bytes(&signed),
        Some(&key),
    )
    .await?;
    let release = ReleaseOf::OwnAccess(request, light, &holder);
    receive(client, patient, key, manifest, frames, out_dir, release).await
}

/// Where a transfer's release is recorded.
#[derive(Clone, Copy)]
enum ReleaseOf<'a> {
    /// A practitioner's access (`/v1/accesses/{id}`), as their own node
    /// reports it.
    Access(RequestId),
    /// A patient's own request (`/v1/own-accesses/{id}`) of a holder,
    /// proved to the light client.
    OwnAccess(RequestId, &'a crate::LightClient, &'a InstitutionId),
}

impl ReleaseOf<'_> {
    fn route(self) -> &'static str {
        match self {
            Self::Access(_) => "accesses",
            Self::OwnAccess(..) => "own-accesses",
        }
    }

    fn request(self) -> RequestId {
        match self {
            Self::Access(id) | Self::OwnAccess(id, ..) => id,
        }
    }

    /// The committed release's salted hashes and height, once there is one.
    async fn committed(
        self,
        client: &crate::Client,
        reader: &crate::Identity,
    ) -> Result<Option<(Vec<Hash32>, u64)>, SdkError> {
        let path = format!("/v1/{}/{}", self.route(), self.request().0.to_hex());
        let hashes = |r: medledger_api::Release| {
            let listed = r.content_hashes.iter().map(|h| h.0).collect();
            (listed, r.height)
        };
        match self {
            Self::Access(_) => Ok(client
                .get_signed_as::<medledger_api::Access>(&path, reader)
                .await?
                .release
                .map(hashes)),
            Self::OwnAccess(id, light, holder) => {
                let answer = client
                    .get_signed_as::<medledger_api::OwnAccess>(&path, reader)
                    .await?;
                // The request is in a block, so a node always has a proof
                // to give: one that sends none is not believed, at once.
                let Some(proved) = answer.proved else {
                    return Err(SdkError::Decode(
                        "the node sent no proof of the release; it is not believed".into(),
                    ));
                };
                let proved = crate::client::decode_proved(&proved)?;
                light.verify(&proved, &StateKey::OwnAccess(id)).await?;
                let bytes = proved.value.as_deref().ok_or_else(|| {
                    SdkError::Decode("the node proves that no such request exists".into())
                })?;
                let record: OwnAccessRecord = from_bytes(bytes, PROVED_VALUE_BYTES_MAX)
                    .map_err(|e| SdkError::Decode(format!("own access record: {e}")))?;
                if Signer::Patient(record.patient) != reader.signer || record.holder != *holder {
                    return Err(SdkError::Decode(
                        "the proved request is not this patient's of this holder".into(),
                    ));
                }
                Ok(record
                    .release
                    .map(|r| (r.content_hashes.iter().copied().collect(), r.at.height)))
            }
        }
    }
}

/// The second half of a fetch: opens every chunk into `out_dir`, checks
/// every item against the manifest, then waits for the holder's committed
/// release and checks it lists the same salted hashes.
async fn receive(
    client: &crate::Client,
    reader: &crate::Identity,
    key: TransferKey,
    manifest: Manifest,
    mut frames: FrameReader,
    out_dir: &std::path::Path,
    release_of: ReleaseOf<'_>,
) -> Result<FetchedRecords, crate::SdkError> {
    use std::io::Write;

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
        let mut hasher = client.chain().hash().stream();
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
        let hash = hasher.finish();
        if hash != item.content_hash || size != item.size {
            return Err(SdkError::Decode(format!(
                "{} does not match the manifest (size {size} of {}, hash differs: {}); transfer aborted",
                item.path,
                item.size,
                hash != item.content_hash
            )));
        }
    }
    // The holder's release was committed before its first chunk left; it
    // must list exactly the hashes received, under this transfer's salt.
    let salt = opener
        .content_salt()
        .map_err(|e| SdkError::Decode(e.to_string()))?;
    let expected: Vec<Hash32> = manifest
        .items
        .iter()
        .map(|i| released_hash(client.chain().hash(), &salt, &i.content_hash))
        .collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Some((listed, height)) = release_of.committed(client, reader).await? {
            if listed != expected {
                return Err(SdkError::Decode(
                    "the holder's committed AccessServed lists other hashes than it sent".into(),
                ));
            }
            partials.hand_over()?;
            return Ok(FetchedRecords {
                items: manifest.items,
                dir: out_dir.to_path_buf(),
                release_height: height,
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
) -> Result<(TransferKey, Manifest, FrameReader), crate::SdkError> {
    use crate::SdkError;
    use medledger_contracts::transaction::Signer;

    let Signer::Practitioner(practitioner_id) = practitioner.signer else {
        return Err(SdkError::Decode(
            "records are fetched by a practitioner".into(),
        ));
    };
    let key =
        TransferKey::generate(client.chain().suite).map_err(|e| SdkError::Decode(e.to_string()))?;
    let committed_at = committed_height(client, &request).await?;
    let authorization = FetchAuthorization {
        committed_at,
        chain: client.chain().id.clone(),
        request,
        holder,
        practitioner: practitioner_id,
        one_time_key: key.public(),
        time: crate::client::now(),
    };
    let signed = SignedFetch {
        signature: practitioner
            .key()
            .sign(&authorization.digest(client.chain().hash())),
        public_key: practitioner.key().public_key(),
        authorization,
    };
    let (manifest, frames) = post_fetch(
        client,
        practitioner,
        "/v1/records/fetch",
        medledger_contracts::encoding::to_bytes(&signed),
        None,
    )
    .await?;
    Ok((key, manifest, frames))
}

/// The height that committed `request` on the node `client` asks: the
/// request may have been submitted through another node, so this waits
/// (briefly) until this one has committed it too.
async fn committed_height(client: &crate::Client, request: &RequestId) -> Result<u64, SdkError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Some(receipt) = client.receipt(request).await? {
            return Ok(receipt.height);
        }
        if std::time::Instant::now() > deadline {
            return Err(SdkError::Api {
                status: 404,
                code: "unknown_transaction".into(),
                message: "the request is not committed on this node".into(),
            });
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Posts a signed fetch (BCS bytes) to `path` as `signer` and reads the
/// holder's manifest — in clear, or (`own`: a patient's own transfer,
/// relayed by any member) with its items sealed to `key`, whose number
/// must be the one the relay counted; the chunks follow in the returned
/// frames.
async fn post_fetch(
    client: &crate::Client,
    signer: &crate::Identity,
    path: &str,
    signed_fetch: Vec<u8>,
    own: Option<&TransferKey>,
) -> Result<(Manifest, FrameReader), SdkError> {
    let body = serde_json::json!({"fetch": hex::encode(signed_fetch)}).to_string();
    let response = client.post_signed_raw(path, body, signer).await?;
    let mut frames = FrameReader::new(response);
    let manifest = match (frames.next().await?, own) {
        (Some(GatewayResponse::Manifest(m)), None) => m,
        (
            Some(GatewayResponse::SealedManifest {
                transfer,
                encapsulated_key,
                item_count,
                items,
            }),
            Some(key),
        ) => {
            let items = key
                .open_items(client.chain().hash(), &transfer, &items)
                .map_err(|e| SdkError::Decode(format!("the sealed manifest: {e}")))?;
            if items.len() != item_count as usize {
                return Err(SdkError::Decode(
                    "the sealed manifest lists another number of items than it says".into(),
                ));
            }
            Manifest {
                transfer,
                encapsulated_key,
                items,
            }
        }
        (Some(GatewayResponse::Refused { code, message }), _) => {
            return Err(SdkError::Api {
                status: 403,
                code,
                message,
            });
        }
        _ => {
            return Err(SdkError::Decode(
                "the transfer did not start with a manifest of its kind".into(),
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
    Ok((manifest, frames))
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
    use medledger_contracts::encoding::Hash32;
    use medledger_contracts::types::Category;

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
            content_hash: Hash32([0; 32]),
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
}
