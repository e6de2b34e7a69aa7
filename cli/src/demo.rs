//! `medledger demo`: the consent story on a real local consortium.
//!
//! Four validator processes (`medledger node run`) on 127.0.0.1 agree by BFT
//! consensus and store on RocksDB; the demo submits signed transactions over
//! HTTP, waits for each to commit, then stops the nodes and audits one
//! node's disk: the patient's audit entries with inclusion proofs against the
//! last certified header, and the grant with a JMT proof. The records move
//! through the records gateway, sealed to the doctor's one-time key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use medledger_client_sdk::KeyFile;
use medledger_client_sdk::api;
use medledger_contracts::crypto::CryptoSuite;
use medledger_contracts::encoding::{BoundedString, BoundedVec, Hash32, HashFunction};
use medledger_contracts::merkle;
use medledger_contracts::records::{AuditEntry, GrantRecord};
use medledger_contracts::state::{StateKey, verify_state_proof};
use medledger_contracts::transaction::{Payload, SignedTransaction, Signer, Transaction};
use medledger_contracts::types::*;
use medledger_store::Store;
use serde_json::json;

use medledger_testnet::{Consortium, TestnetLayout};

struct Demo {
    chain: Chain,
    dir: PathBuf,
    layout: TestnetLayout,
    http: reqwest::Client,
    keys: BTreeMap<String, KeyFile>,
    nonce: u64,
    /// Height of the last receipt: the next node asked must have reached it.
    seen_height: u64,
}

impl Demo {
    fn key(&self, label: &str) -> anyhow::Result<KeyFile> {
        self.keys
            .get(label)
            .cloned()
            .with_context(|| format!("no key {label}"))
    }

    /// Waits until the `node`th node has committed `height` (at most 30 s).
    async fn wait_for_height(&self, node: usize, height: u64) -> anyhow::Result<()> {
        let url = format!("{}/v1/status", self.layout.nodes[node].http);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let reached = async {
                let status: api::Status =
                    self.http.get(&url).send().await.ok()?.json().await.ok()?;
                Some(status.height)
            }
            .await
            .is_some_and(|h| h >= height);
            if reached {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not reach height {height} within 30 s",
                    self.layout.nodes[node].institution
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The index of an institution's node.
    fn node_of(&self, institution: &str) -> anyhow::Result<usize> {
        self.layout
            .nodes
            .iter()
            .position(|n| n.institution == institution)
            .with_context(|| format!("no node of {institution}"))
    }

    /// A light client of the `node`th node, trusting only the genesis file.
    fn light_client(&self, node: usize) -> anyhow::Result<medledger_client_sdk::LightClient> {
        let genesis =
            medledger_genesis::GenesisFile::read(&self.dir.join("genesis.json"))?.validate()?;
        let client =
            medledger_client_sdk::Client::new(&self.layout.nodes[node].http, self.chain.clone())?;
        Ok(medledger_client_sdk::LightClient::new(
            client,
            &genesis,
            Duration::from_secs(60),
        )?)
    }

    /// Signs, submits to the `node`th node, waits for the commit, prints the outcome.
    async fn submit(
        &mut self,
        node: usize,
        what: &str,
        signer: Signer,
        key: &KeyFile,
        payload: Payload,
    ) -> anyhow::Result<(TxHash, String)> {
        self.nonce += 1;
        let tx: SignedTransaction = Transaction {
            signer,
            nonce: self.nonce,
            // Half the testnet's validity window, as the SDK gives (R1).
            valid_until: medledger_contracts::types::Timestamp(
                medledger_node::clock::now().0 + medledger_testnet::TX_VALIDITY_WINDOW_MS / 2,
            ),
            payload,
        }
        .sign(&self.chain, key.secret());
        let id = tx.id(&self.chain);
        let target = &self.layout.nodes[node % self.layout.nodes.len()];
        let response = self
            .http
            .post(format!("{}/v1/tx", target.http))
            .json(&api::SubmitBody {
                transaction: hex::encode(tx.to_bytes()),
                wait: true,
                after_height: Some(self.seen_height),
            })
            .send()
            .await
            .with_context(|| format!("submitting to {}", target.http))?;
        if !response.status().is_success() {
            let status = response.status();
            bail!(
                "{what}: {} refused it ({status}): {}",
                target.institution,
                response.text().await?
            );
        }
        let api::SubmitAnswer::Committed(receipt) = response.json().await? else {
            bail!(
                "{what}: {} answered without the receipt it was asked to wait for",
                target.institution
            );
        };
        self.seen_height = self.seen_height.max(receipt.height);
        println!(
            "  block {:>3}  {:<46} via {:<21} → {}",
            receipt.height, what, target.institution, receipt.outcome
        );
        Ok((id, receipt.outcome.status().to_string()))
    }
}

async fn wait_until_committing(demo: &Demo) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(90);
    for node in &demo.layout.nodes {
        loop {
            let height = async {
                let r = demo
                    .http
                    .get(format!("{}/v1/status", node.http))
                    .send()
                    .await
                    .ok()?;
                r.json::<api::Status>().await.ok().map(|s| s.height)
            }
            .await;
            if height.is_some_and(|h| h >= 1) {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not commit a block within 90 s; see {}",
                    node.institution,
                    node.home.join("node.log").display()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

pub fn run(dir: Option<PathBuf>, suite: CryptoSuite) -> anyhow::Result<()> {
    let dir = dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("medledger-demo-{}", std::process::id()))
    });
    println!(
        "medledger demo — a local consortium of four validator processes (BFT consensus, RocksDB), crypto suite {}\n",
        suite.name()
    );
    let layout = medledger_testnet::init_on(
        suite,
        &dir,
        4,
        0,
        0,
        "medledger-demo",
        medledger_testnet::TX_VALIDITY_WINDOW_MS,
    )?;
    let nodes = Consortium::launch(std::env::current_exe()?, layout.clone())?;
    for node in &layout.nodes {
        println!(
            "  started {:<21} {}  (log: {})",
            node.institution,
            node.http,
            node.home.join("node.log").display()
        );
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (patient, grant, last_height) = runtime.block_on(story(&dir, layout.clone()))?;
    // Stop the consortium, then audit the first hospital's disk.
    drop(nodes);
    let hash = medledger_testnet::chain_of(&dir)?.hash();
    audit(&layout.nodes[0].home, hash, patient, grant, last_height)?;
    println!("\nthe consortium's files are in {}", dir.display());
    Ok(())
}

async fn story(dir: &Path, layout: TestnetLayout) -> anyhow::Result<(PatientId, TxHash, u64)> {
    let mut keys = BTreeMap::new();
    for entry in std::fs::read_dir(dir.join("keys"))? {
        let path = entry?.path();
        let label = path
            .file_stem()
            .and_then(|s| s.to_str())
            .context("key file name")?
            .replacen('.', ":", 1);
        keys.insert(label, KeyFile::load(&path)?);
    }
    let chain = medledger_testnet::chain_of(dir)?;
    keys.insert("patient".into(), KeyFile::generate_for(chain.suite)?);
    let mut demo = Demo {
        chain,
        dir: dir.to_path_buf(),
        layout,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(40))
            .build()?,
        keys,
        nonce: 0,
        seen_height: 0,
    };
    wait_until_committing(&demo).await?;
    println!("  all four validators are committing blocks\n");

    let patient_key = demo.key("patient")?;
    let patient = patient_key.patient_id();
    let doctor_key = demo.key("practitioner:dr-second-1")?;
    let doctor = doctor_key.practitioner_id();
    let first = InstitutionId::new("city-first-hospital")?;
    let second = InstitutionId::new("city-second-hospital")?;
    println!(
        "patient {} (a key, no name); doctor at {second}; records at {first}\n",
        &patient.0.to_hex()[..16]
    );

    // The doctor acts on a licence the health commission attested (R4.14):
    // the node shows the attestation beside the doctor's record.
    let doctor_record: api::Practitioner = demo
        .http
        .get(format!(
            "{}/v1/practitioners/{}",
            demo.layout.nodes[0].http,
            doctor.0.to_hex()
        ))
        .send()
        .await?
        .json()
        .await?;
    let Some(licence) = &doctor_record.licence else {
        bail!("the example genesis attests the doctor's licence, but the node shows none");
    };
    println!(
        "the doctor's {} licence {}…: attested by {}, {}, valid until {}, at {}\n",
        licence.kind,
        &licence.licence_hash.to_string()[..12],
        licence.attested_by,
        licence.status,
        humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + Duration::from_millis(licence.valid_until_ms)
        ),
        licence.institutions.join(", "),
    );

    // The first hospital holds the patient's records under its own record
    // number, linked at its desk with the patient's signature (never on the
    // ledger; its gateway checks the signature at each fetch).
    let first_home = demo.layout.nodes[demo.node_of("city-first-hospital")?]
        .home
        .clone();
    demo_records(&first_home.join("records"), &demo.chain, &patient_key)?;
    println!(
        "the patient signs the first hospital's record number as theirs at its desk (the link stays at the hospital)\n"
    );
    demo.submit(
        0,
        "patient registers",
        Signer::Patient(patient),
        &patient_key,
        Payload::RegisterPatient,
    )
    .await?;
    let now = medledger_node::clock::now();
    let categories = BoundedVec::new(vec![Category::LabReports, Category::Imaging])
        .map_err(|_| anyhow::anyhow!("categories"))?;
    let terms = GrantTerms {
        patient,
        grantee: Grantee::Institution(second.clone()),
        categories,
        holders: Holders::Listed(
            BoundedVec::new(vec![first.clone()]).map_err(|_| anyhow::anyhow!("holders"))?,
        ),
        purpose: Purpose::Referral,
        not_before: now,
        expires_at: now.plus_days(30),
        records_from: None,
        records_until: None,
        sensitive_included: BoundedVec::default(),
        notice_hash: demo.chain.hash().tagged_hash(
            b"medledger/notice",
            &[b"referral notice shown to the patient"],
        ),
    };
    let (grant, _) = demo
        .submit(
            1,
            "grant: second hospital may read labs+imaging",
            Signer::Patient(patient),
            &patient_key,
            Payload::Grant(terms),
        )
        .await?;
    // The second hospital checks the grant through another node, trusting
    // only the genesis file: certificate and state proof.
    demo.wait_for_height(3, demo.seen_height).await?;
    let light = demo.light_client(3)?;
    let doctor_identity = medledger_client_sdk::Identity::practitioner(&doctor_key);
    let verified = light.verify_grant(&grant, &doctor_identity).await?;
    println!(
        "             second hospital verifies the grant via {} trusting only genesis: {:?} at block {} (commit certificate + state proof)",
        demo.layout.nodes[3].institution, verified.status, verified.height
    );
    let request_payload = || Payload::AccessRequest {
        grant,
        holder: first.clone(),
        categories: BoundedVec::new(vec![Category::LabReports]).unwrap_or_default(),
        purpose: Purpose::Referral,
    };
    let (request, outcome) = demo
        .submit(
            2,
            "doctor requests lab reports",
            Signer::Practitioner(doctor),
            &doctor_key,
            request_payload(),
        )
        .await?;
    if outcome != "authorized" {
        bail!("the request should have been authorised, got {outcome}");
    }
    // The doctor's system fetches the records from the first hospital's
    // gateway through the second hospital's node: sealed to a one-time key
    // only the doctor's SDK holds; the holder records the release.
    let fetched_dir = dir.join("fetched-by-second-hospital");
    let second_node = demo.node_of("city-second-hospital")?;
    let client = medledger_client_sdk::Client::new(
        &demo.layout.nodes[second_node].http,
        demo.chain.clone(),
    )?;
    let fetched = medledger_client_sdk::records::fetch_records(
        &client,
        &doctor_identity,
        request,
        first.clone(),
        &fetched_dir,
    )
    .await?;
    println!(
        "  block {}  {:<46} via {:<21} → {} resources, sealed end to end, hashes match the release",
        fetched.release_height,
        "doctor fetches them from the first hospital",
        "records gateway",
        fetched.items.len()
    );
    for item in &fetched.items {
        println!(
            "               {:<38} {:>6} bytes  {} {}",
            item.path,
            item.size,
            demo.chain.hash().name(),
            &item.content_hash.to_hex()[..16]
        );
    }
    if fetched
        .items
        .iter()
        .any(|i| i.path == SENSITIVE_DEMO_RECORD)
    {
        bail!("the HIV-labelled result travelled under a grant that leaves it out");
    }
    println!(
        "               (not sent: {SENSITIVE_DEMO_RECORD}, labelled HIV — the grant includes no sensitive class, rule R5.10)"
    );
    demo.seen_height = demo.seen_height.max(fetched.release_height);
    match medledger_client_sdk::records::fetch_records(
        &client,
        &doctor_identity,
        request,
        first.clone(),
        &fetched_dir.join("again"),
    )
    .await
    {
        Err(e) if e.code() == Some("already_served") => {
            println!(
                "             fetching the same request again is refused: already served (the holder records the refusal on the ledger)"
            );
        }
        other => bail!("a second fetch of one request must be refused, got {other:?}"),
    }
    demo.submit(
        0,
        "patient revokes the grant",
        Signer::Patient(patient),
        &patient_key,
        Payload::Revoke { grant },
    )
    .await?;
    // Ask once that node has the revocation's block.
    demo.wait_for_height(3, demo.seen_height).await?;
    let verified = light.verify_grant(&grant, &doctor_identity).await?;
    println!(
        "             the light client now proves it {:?} at block {}",
        verified.status, verified.height
    );
    let (_, outcome) = demo
        .submit(
            1,
            "doctor requests again",
            Signer::Practitioner(doctor),
            &doctor_key,
            request_payload(),
        )
        .await?;
    if outcome != "denied" {
        bail!("the request after revocation should have been refused, got {outcome}");
    }
    // The health commission suspends the doctor's licence: from the next
    // block even a break-glass access by the doctor is denied (and, like
    // every access decision, lands in the patient's audit trail).
    let commission = Signer::Institution(InstitutionId::new("health-commission")?);
    let commission_key = demo.key("admin:health-commission")?;
    let licence_hash = Hash32::from_hex(&doctor_record.licence_hash.to_string())?;
    demo.submit(
        2,
        "commission suspends the doctor's licence",
        commission.clone(),
        &commission_key,
        Payload::SetLicenceStatus {
            licence: licence_hash,
            status: LicenceStatus::Suspended,
        },
    )
    .await?;
    let (_, outcome) = demo
        .submit(
            1,
            "suspended doctor tries to break the glass",
            Signer::Practitioner(doctor),
            &doctor_key,
            Payload::EmergencyAccess {
                patient,
                holder: first.clone(),
                categories: BoundedVec::new(vec![Category::LabReports]).unwrap_or_default(),
                reason: EmergencyReason::LifeThreatening,
            },
        )
        .await?;
    if outcome != "denied" {
        bail!("a suspended doctor's emergency access should have been denied, got {outcome}");
    }
    demo.submit(
        2,
        "commission lifts the suspension",
        commission.clone(),
        &commission_key,
        Payload::SetLicenceStatus {
            licence: licence_hash,
            status: LicenceStatus::Active,
        },
    )
    .await?;
    // The commission attests the second hospital's own credit code and
    // practice licence, as the consortium admitted them (R4.16): from now
    // on that hospital's doctors act only while it is in force.
    let member: api::Institution = demo
        .http
        .get(format!(
            "{}/v1/institutions/{second}",
            demo.layout.nodes[2].http
        ))
        .send()
        .await?
        .json()
        .await?;
    let now = Timestamp::from_system_time(std::time::SystemTime::now());
    let (_, outcome) = demo
        .submit(
            2,
            "commission attests second hospital's licence",
            commission,
            &commission_key,
            Payload::AttestInstitution(InstitutionLicenceTerms {
                institution: second.clone(),
                legal_code: BoundedString::new(member.legal_code)?,
                licence_ref: BoundedString::new(member.licence_ref)?,
                scopes: BoundedVec::default(),
                valid_from: Timestamp(now.0 - 60_000),
                valid_until: now.plus_days(5 * 365),
            }),
        )
        .await?;
    if outcome != "applied" {
        bail!("the commission's attestation of the second hospital should apply, got {outcome}");
    }

    // The patient downloads their own lab reports (R7.8) through the
    // fourth node: asked on the ledger, sealed to a one-time key of the
    // patient's, the release in their history like any other.
    let (own_request, outcome) = demo
        .submit(
            3,
            "patient asks for their own lab reports",
            Signer::Patient(patient),
            &patient_key,
            Payload::OwnRecordsRequest {
                holder: first.clone(),
                categories: BoundedVec::new(vec![Category::LabReports]).unwrap_or_default(),
            },
        )
        .await?;
    if outcome != "authorized" {
        bail!("the patient's own request should have been recorded, got {outcome}");
    }
    let fourth = demo.light_client(3)?;
    let own_dir = dir.join("downloaded-by-the-patient");
    let own = medledger_client_sdk::records::fetch_own_records(
        &fourth,
        &medledger_client_sdk::Identity::patient(&patient_key),
        own_request,
        first.clone(),
        &own_dir,
    )
    .await?;
    println!(
        "  block {:>3}  {:<46} via {:<21} → {} resources, sealed to the patient's key",
        own.release_height,
        "patient downloads them",
        demo.layout.nodes[3].institution,
        own.items.len()
    );
    if !own.items.iter().any(|i| i.path == SENSITIVE_DEMO_RECORD) {
        bail!("the patient's own lab reports should include their HIV test");
    }
    println!(
        "               (their own records: {SENSITIVE_DEMO_RECORD} comes too) into {}",
        own_dir.display()
    );
    demo.seen_height = demo.seen_height.max(own.release_height);

    println!("\nevery node holds the same ledger:");
    let mut heights = Vec::new();
    for node in &demo.layout.nodes {
        let status: api::Status = demo
            .http
            .get(format!("{}/v1/status", node.http))
            .send()
            .await?
            .json()
            .await?;
        heights.push(status.height);
    }
    let common = heights.iter().copied().min().unwrap_or(0);
    let mut first_hash = None;
    for node in &demo.layout.nodes {
        let header: api::Header = demo
            .http
            .get(format!("{}/v1/headers/{common}", node.http))
            .send()
            .await?
            .json()
            .await?;
        let hash = header.hash.to_string();
        println!(
            "  {:<21} height {common}: block {}  state {}  audit log {} entries, root {}",
            node.institution,
            &hash[..16],
            &header.state_root.to_string()[..16],
            header.audit_size,
            &header.audit_root.to_string()[..16],
        );
        match &first_hash {
            None => first_hash = Some(hash),
            Some(h) if *h != hash => bail!("{} disagrees at height {common}", node.institution),
            Some(_) => {}
        }
    }
    Ok((patient, grant, common))
}

/// The demo patient's HIV test: labelled, so outside a grant that does not
/// include that class.
const SENSITIVE_DEMO_RECORD: &str = "lab-reports/observation-hiv-test.json";

/// A few FHIR resources and an imaging file for the demo patient.
fn demo_records(root: &Path, chain: &Chain, patient_key: &KeyFile) -> anyhow::Result<()> {
    let mrn = "MRN-0001";
    let first = InstitutionId::new("city-first-hospital")?;
    let signature =
        medledger_client_sdk::tx::record_link_signature(patient_key, chain, &first, mrn);
    medledger_node::gateway::DirectorySource::link(
        root,
        mrn,
        &patient_key.patient_id(),
        &signature,
    )?;
    let labs = root.join(mrn).join(Category::LabReports.name());
    let imaging = root.join(mrn).join(Category::Imaging.name());
    std::fs::create_dir_all(&labs)?;
    std::fs::create_dir_all(&imaging)?;
    std::fs::write(
        labs.join("observation-hba1c.json"),
        json!({"resourceType": "Observation", "id": "hba1c-1", "status": "final",
               "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4", "display": "Hemoglobin A1c"}]},
               "valueQuantity": {"value": 6.1, "unit": "%"}})
        .to_string(),
    )?;
    std::fs::write(
        labs.join("report-metabolic-panel.json"),
        json!({"resourceType": "DiagnosticReport", "id": "bmp-1", "status": "final",
               "code": {"coding": [{"system": "http://loinc.org", "code": "51990-0", "display": "Basic metabolic panel"}]}})
        .to_string(),
    )?;
    std::fs::write(
        root.join(mrn).join(SENSITIVE_DEMO_RECORD),
        json!({"resourceType": "Observation", "id": "hiv-1", "status": "final",
               "meta": {"security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "HIV"}]},
               "code": {"coding": [{"system": "http://loinc.org", "code": "75622-1", "display": "HIV 1 and 2 tests"}]}})
        .to_string(),
    )?;
    std::fs::write(imaging.join("chest-ct.dcm"), vec![0u8; 64 * 1024])?;
    Ok(())
}

/// Reads a stopped node's RocksDB and proves what happened to the patient.
fn audit(
    home: &Path,
    hash: HashFunction,
    patient: PatientId,
    grant: TxHash,
    height: u64,
) -> anyhow::Result<()> {
    println!(
        "\naudit of the first hospital's disk (nodes stopped): this patient's entries, proven against the header"
    );
    let store = Store::open(&home.join("data").join("ledger"), hash)?;
    let height = store.height()?.unwrap_or(height);
    let header = store.header(height)?.context("no header")?;
    let mut leaves = Vec::new();
    for index in 0..header.audit_size {
        leaves.push(
            store
                .audit_entry(index)?
                .context("audit entry missing")?
                .leaf_hash(hash),
        );
    }
    for index in store.audit_indexes_for_patient(&patient.0)? {
        let entry: AuditEntry = store.audit_entry(index)?.context("audit entry")?;
        let position = usize::try_from(index)?;
        let proof = merkle::inclusion_proof(hash, &leaves, position).context("proof")?;
        merkle::verify_inclusion(
            hash,
            &header.audit_root,
            header.audit_size,
            index,
            &leaves[position],
            &proof,
        )?;
        println!(
            "  #{:<2} block {:>3}  {}  (inclusion proof ✓)",
            entry.index,
            entry.at.height,
            entry.event_summary()
        );
    }
    let key = StateKey::Grant(grant);
    let (value, proof) = store.get_with_proof(&key, height)?;
    verify_state_proof(hash, header.state_root, &key, value.as_deref(), &proof)?;
    let record: GrantRecord = bcs::from_bytes(&value.context("grant missing")?)?;
    println!(
        "\ngrant {} at height {}: {:?} (JMT proof against the state root ✓)",
        &grant.0.to_hex()[..16],
        height,
        record.status_at(header.time)
    );
    Ok(())
}

trait Summary {
    fn event_summary(&self) -> String;
}

impl Summary for AuditEntry {
    fn event_summary(&self) -> String {
        use medledger_contracts::records::AuditEvent::*;
        match &self.event {
            Granted { .. } => "granted".into(),
            Revoked { .. } => "revoked".into(),
            Relinquished { .. } => "relinquished".into(),
            ConsentRequested { .. } => "consent requested".into(),
            ConsentAnswered { approved, .. } => format!("consent answered (approved: {approved})"),
            DelegationStarted { role, .. } => format!("{role:?} appointed"),
            DelegationEnded { .. } => "delegation ended".into(),
            ControlChanged {
                change,
                effective_at,
            } => format!(
                "account control: {} (from {})",
                change.name(),
                effective_at.0
            ),
            AccessDecided {
                holder,
                decision,
                kind,
                ..
            } => format!("{kind:?}-based access to records at {holder}: {decision:?}"),
            Released {
                holder,
                content_count,
                ..
            } => format!("{holder} released {content_count} resources"),
            EmergencyReviewed { finding, .. } => format!("emergency access reviewed: {finding:?}"),
            EmergencyReviewOverdue {
                requester_institution,
                ..
            } => format!("emergency access by {requester_institution} not reviewed in time"),
            FetchRefused { holder, reason, .. } => {
                format!("{holder} refused a fetch ({})", reason.code())
            }
            OwnRecordsRequested { holder, .. } => {
                format!("the patient asked {holder} for their own records")
            }
        }
    }
}
