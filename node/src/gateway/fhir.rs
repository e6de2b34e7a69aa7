//! A record source over a hospital's FHIR R4 server (its REST API): the
//! patient is found by the hospital's record number
//! (`Patient?identifier=<system>|<number>`, the number linked to the ledger
//! id off the ledger as for [`DirectorySource`]), and each category is a
//! few searches of that patient's resources (laboratory `Observation`s,
//! `MedicationRequest`s, …). Each resource travels as its JSON.
//!
//! A server that ignores a search parameter must not leak another
//! patient's records: every resource returned is kept only if it refers to
//! the patient found. Every answer is size-bounded, paging stays on the
//! configured base URL, and a resource is read once per listing — the
//! bytes hashed for the manifest are the bytes sent.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use medledger_contracts::types::{Category, PatientId};
use medledger_transfer::MANIFEST_ITEMS_MAX;
use serde_json::Value;

use super::{DirectorySource, PatientLink, RecordSource, SourceItem};

/// Largest answer read from the server.
const ANSWER_BYTES_MAX: u64 = 16 * 1024 * 1024;
/// Most pages followed for one search.
const PAGES_MAX: usize = 50;
/// Resource bytes kept between listing and sending.
const CACHE_BYTES_MAX: usize = 64 * 1024 * 1024;
/// How long one request to the server may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The searches that make up a category: (resource type, extra parameter).
fn searches(category: Category) -> &'static [(&'static str, Option<(&'static str, &'static str)>)] {
    match category {
        Category::LabReports => &[
            ("Observation", Some(("category", "laboratory"))),
            ("DiagnosticReport", Some(("category", "LAB"))),
        ],
        Category::Imaging => &[
            ("ImagingStudy", None),
            ("DiagnosticReport", Some(("category", "RAD"))),
        ],
        Category::Prescriptions => &[("MedicationRequest", None)],
        Category::DischargeSummaries => &[(
            "DocumentReference",
            Some(("type", "http://loinc.org|18842-5")),
        )],
        Category::Diagnoses => &[("Condition", None)],
        Category::Procedures => &[("Procedure", None)],
        Category::Allergies => &[("AllergyIntolerance", None)],
        Category::Immunizations => &[("Immunization", None)],
        Category::ClinicalNotes => &[("DocumentReference", Some(("category", "clinical-note")))],
        Category::FullRecord => &[],
    }
}

fn other(message: impl Into<String>) -> std::io::Error {
    std::io::Error::other(message.into())
}

/// Whether `id` is a FHIR id: 1 to 64 of `[A-Za-z0-9-.]`.
fn is_fhir_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// A JSON value that is a FHIR id.
fn fhir_id(value: &Value) -> Option<&str> {
    value.as_str().filter(|id| is_fhir_id(id))
}

/// Whether `resource` refers to `Patient/<patient>` (as `subject` or
/// `patient`, the two ways the searched resource types name their patient).
fn refers_to(resource: &Value, patient: &str) -> bool {
    let wanted = format!("Patient/{patient}");
    ["subject", "patient"].iter().any(|field| {
        resource[field]["reference"]
            .as_str()
            .is_some_and(|r| r == wanted || r.ends_with(&format!("/{wanted}")))
    })
}

#[derive(Default)]
struct Cache {
    items: HashMap<(String, String), Vec<u8>>,
    order: VecDeque<(String, String)>,
    bytes: usize,
}

impl Cache {
    fn put(&mut self, key: (String, String), bytes: Vec<u8>) {
        self.bytes += bytes.len();
        if let Some(old) = self.items.insert(key.clone(), bytes) {
            self.bytes -= old.len();
        } else {
            self.order.push_back(key);
        }
        while self.bytes > CACHE_BYTES_MAX {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some(gone) = self.items.remove(&oldest) {
                self.bytes -= gone.len();
            }
        }
    }
}

/// Records read from a FHIR R4 server.
pub struct FhirSource {
    base: String,
    identifier_system: String,
    links: DirectorySource,
    /// Made on first use: a blocking client may not be made on an async
    /// thread, and the gateway calls sources on blocking threads.
    client: OnceLock<reqwest::blocking::Client>,
    cache: Mutex<Cache>,
}

impl FhirSource {
    /// A source over the server at `base`, finding patients by record
    /// numbers of `identifier_system`, linked in `links_dir`.
    pub fn new(base: &str, identifier_system: &str, links_dir: PathBuf) -> anyhow::Result<Self> {
        let base = base.trim_end_matches('/').to_string();
        let parsed = reqwest::Url::parse(&base)
            .map_err(|e| anyhow::anyhow!("gateway fhir_base {base:?}: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            anyhow::bail!("gateway fhir_base {base:?} must be an http or https URL");
        }
        if identifier_system.is_empty() {
            anyhow::bail!(
                "gateway fhir_identifier_system is needed with fhir_base: the system of the hospital's record numbers"
            );
        }
        Ok(Self {
            base,
            identifier_system: identifier_system.to_string(),
            links: DirectorySource::new(links_dir),
            client: OnceLock::new(),
            cache: Mutex::new(Cache::default()),
        })
    }

    fn client(&self) -> std::io::Result<&reqwest::blocking::Client> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        let client = reqwest::blocking::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            // A redirect could lead a search anywhere: it is an error here.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| other(format!("FHIR client: {}", e.without_url())))?;
        Ok(self.client.get_or_init(|| client))
    }

    /// GETs `url` (with `query`) as FHIR JSON, bounded in size.
    fn get(&self, url: &str, query: &[(&str, &str)]) -> std::io::Result<Value> {
        let response = self
            .client()?
            .get(url)
            .query(query)
            .header(reqwest::header::ACCEPT, "application/fhir+json")
            .send()
            // Without the URL: a search's URL holds the record number.
            .map_err(|e| other(format!("FHIR server unreachable: {}", e.without_url())))?;
        let status = response.status();
        if !status.is_success() {
            return Err(other(format!("FHIR server answered {status}")));
        }
        let mut body = Vec::new();
        response
            .take(ANSWER_BYTES_MAX + 1)
            .read_to_end(&mut body)
            .map_err(|e| other(format!("reading the FHIR server's answer: {e}")))?;
        if body.len() as u64 > ANSWER_BYTES_MAX {
            return Err(other(format!(
                "the FHIR server's answer is over {ANSWER_BYTES_MAX} bytes"
            )));
        }
        serde_json::from_slice(&body).map_err(|e| other(format!("the FHIR server's answer: {e}")))
    }

    /// The server's id of the patient with this record number: none if it
    /// knows none; an error if it knows several.
    fn find_patient(&self, record_number: &str) -> std::io::Result<Option<String>> {
        let identifier = format!("{}|{record_number}", self.identifier_system);
        let bundle = self.get(
            &format!("{}/Patient", self.base),
            &[("identifier", &identifier)],
        )?;
        let ids: Vec<String> = entries(&bundle)
            .filter(|r| r["resourceType"] == "Patient")
            .filter_map(|r| fhir_id(&r["id"]).map(str::to_string))
            .collect();
        match ids.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one.clone())),
            _ => Err(other(
                "the FHIR server has several patients with this record number",
            )),
        }
    }

    /// Every resource of `kind` the search finds for `patient`, following
    /// the server's paging, at most `limit`.
    fn search(
        &self,
        kind: &str,
        patient: &str,
        filter: Option<(&str, &str)>,
        limit: usize,
    ) -> std::io::Result<Vec<Value>> {
        let mut query = vec![("patient", patient), ("_count", "100")];
        query.extend(filter);
        let mut bundle = self.get(&format!("{}/{kind}", self.base), &query)?;
        let mut found = Vec::new();
        for _ in 0..PAGES_MAX {
            for resource in entries(&bundle) {
                if resource["resourceType"] != kind {
                    continue; // an OperationOutcome or an included resource
                }
                if !refers_to(resource, patient) {
                    tracing::warn!(
                        kind,
                        "the FHIR server returned a resource of another patient; left out"
                    );
                    continue;
                }
                found.push(resource.clone());
                if found.len() >= limit {
                    return Ok(found);
                }
            }
            let next = bundle["link"].as_array().and_then(|links| {
                links
                    .iter()
                    .find(|l| l["relation"] == "next")
                    .and_then(|l| l["url"].as_str())
                    .map(str::to_string)
            });
            let Some(next) = next else {
                return Ok(found);
            };
            if !under_base(&self.base, &next) {
                return Err(other(
                    "the FHIR server's next page is not under its base URL",
                ));
            }
            bundle = self.get(&next, &[])?;
        }
        Err(other(format!(
            "a {kind} search has more than {PAGES_MAX} pages"
        )))
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The resources of a search bundle's entries.
fn entries(bundle: &Value) -> impl Iterator<Item = &Value> {
    bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| &e["resource"])
}

impl RecordSource for FhirSource {
    fn links(&self, patient: &PatientId) -> std::io::Result<Vec<PatientLink>> {
        self.links.patient_links(patient)
    }

    fn list(
        &self,
        link: &PatientLink,
        categories: &[Category],
    ) -> std::io::Result<Vec<SourceItem>> {
        let Some(server_patient) = self.find_patient(&link.record_number)? else {
            return Ok(Vec::new());
        };
        let wanted = super::categories_to_list(categories);
        let mut seen = HashSet::new();
        let mut items = Vec::new();
        for category in wanted {
            for (kind, filter) in searches(category) {
                // One more than the manifest may hold: the holder refuses it.
                let room = MANIFEST_ITEMS_MAX + 1 - items.len();
                for resource in self.search(kind, &server_patient, *filter, room)? {
                    let Some(id) = fhir_id(&resource["id"]) else {
                        continue;
                    };
                    if !seen.insert(format!("{kind}/{id}")) {
                        continue; // found by an earlier category's search
                    }
                    let path = format!("{}/{kind}-{id}.json", category.name());
                    let bytes = serde_json::to_vec(&resource).map_err(other_json)?;
                    items.push(SourceItem {
                        path: path.clone(),
                        category,
                        size: bytes.len() as u64,
                    });
                    self.cache().put((link.record_number.clone(), path), bytes);
                }
                if items.len() > MANIFEST_ITEMS_MAX {
                    return Ok(items);
                }
            }
        }
        Ok(items)
    }

    fn open(&self, link: &PatientLink, path: &str) -> std::io::Result<Box<dyn Read + Send>> {
        let key = (link.record_number.clone(), path.to_string());
        if let Some(bytes) = self.cache().items.get(&key) {
            return Ok(Box::new(std::io::Cursor::new(bytes.clone())));
        }
        // Gone from the cache (a transfer left idle): read it again. If it
        // changed since it was listed, the requester's hash check says so.
        let (kind, id) = path
            .split_once('/')
            .and_then(|(_, name)| name.strip_suffix(".json"))
            .and_then(|name| name.split_once('-'))
            .filter(|(kind, id)| kind.bytes().all(|b| b.is_ascii_alphabetic()) && is_fhir_id(id))
            .ok_or_else(|| other("not a listed path"))?;
        let server_patient = self
            .find_patient(&link.record_number)?
            .ok_or_else(|| other("patient not known to the FHIR server"))?;
        let resource = self.get(&format!("{}/{kind}/{id}", self.base), &[])?;
        if resource["resourceType"] != kind || !refers_to(&resource, &server_patient) {
            return Err(other("the resource is not this patient's"));
        }
        let bytes = serde_json::to_vec(&resource).map_err(other_json)?;
        Ok(Box::new(std::io::Cursor::new(bytes)))
    }
}

/// Whether `url` (a paging link from the server) is under `base` once both
/// are parsed and normalised: same scheme, host and port, and a path inside
/// the base's, so `..` or `%2e%2e` segments cannot climb out of it, and no
/// encoded slash can hide a segment from that check.
fn under_base(base: &str, url: &str) -> bool {
    let (Ok(base), Ok(next)) = (reqwest::Url::parse(base), reqwest::Url::parse(url)) else {
        return false;
    };
    let lower = url.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") {
        return false;
    }
    let root = base.path().trim_end_matches('/');
    base.scheme() == next.scheme()
        && base.host_str() == next.host_str()
        && base.port_or_known_default() == next.port_or_known_default()
        && next.username().is_empty()
        && next.path().starts_with(&format!("{root}/"))
}

fn other_json(e: serde_json::Error) -> std::io::Error {
    other(e.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn paging_links_stay_under_the_base_once_normalised() {
        let base = "http://127.0.0.1:8080/fhir";
        for ok in [
            "http://127.0.0.1:8080/fhir/Observation?patient=p&page=2",
            "http://127.0.0.1:8080/fhir/Observation/_history",
        ] {
            assert!(under_base(base, ok), "{ok}");
        }
        for bad in [
            "http://127.0.0.1:8080/fhir/../admin/export",
            "http://127.0.0.1:8080/fhir/%2e%2e/admin/export",
            "http://127.0.0.1:8080/fhir/%2E%2E/admin",
            "http://127.0.0.1:8080/fhir%2f..%2fadmin",
            "http://127.0.0.1:8080/fhirx/Observation",
            "http://127.0.0.1:8080/fhir",
            "http://127.0.0.1:9090/fhir/Observation",
            "https://127.0.0.1:8080/fhir/Observation",
            "http://user@127.0.0.1:8080/fhir/Observation",
            "http://127.0.0.2:8080/fhir/Observation",
            "not a url",
        ] {
            assert!(!under_base(base, bad), "{bad}");
        }
    }

    use super::*;

    #[test]
    fn a_resource_is_kept_only_if_it_names_the_patient() {
        let mine = serde_json::json!({"resourceType": "Observation", "subject": {"reference": "Patient/p1"}});
        let full = serde_json::json!({"resourceType": "Immunization", "patient": {"reference": "https://his/fhir/Patient/p1"}});
        let theirs = serde_json::json!({"resourceType": "Observation", "subject": {"reference": "Patient/p10"}});
        let none = serde_json::json!({"resourceType": "Observation"});
        assert!(refers_to(&mine, "p1"));
        assert!(refers_to(&full, "p1"));
        assert!(!refers_to(&theirs, "p1"));
        assert!(!refers_to(&none, "p1"));
    }

    #[test]
    fn ids_and_configuration_are_checked() {
        assert_eq!(fhir_id(&serde_json::json!("obs-1.2")), Some("obs-1.2"));
        assert_eq!(fhir_id(&serde_json::json!("../etc")), None);
        assert_eq!(fhir_id(&serde_json::json!("a/b")), None);
        assert_eq!(fhir_id(&serde_json::json!("")), None);
        assert!(FhirSource::new("ftp://x", "urn:oid:1", PathBuf::new()).is_err());
        assert!(FhirSource::new("http://127.0.0.1:1/fhir", "", PathBuf::new()).is_err());
        assert!(FhirSource::new("http://127.0.0.1:1/fhir/", "urn:oid:1", PathBuf::new()).is_ok());
    }

    #[test]
    fn the_cache_keeps_within_its_bound() {
        let mut cache = Cache::default();
        let number = "MRN-1".to_string();
        for i in 0..5 {
            cache.put(
                (number.clone(), format!("x/{i}")),
                vec![0; CACHE_BYTES_MAX / 4],
            );
        }
        assert!(cache.bytes <= CACHE_BYTES_MAX);
        assert_eq!(cache.items.len(), 4);
        assert!(!cache.items.contains_key(&(number, "x/0".to_string())));
    }
}
