//! Records move between hospitals only on a committed, authorised request:
//! a live four-node testnet where the first hospital holds a patient's
//! records and the second hospital's doctor fetches them through the
//! gateways, sealed to a one-time key.

mod common;

use std::path::Path;

use common::*;
use medledger_client_sdk::records::{
    FetchedRecords, GatewayResponse, fetch_own_records, fetch_records, open_fetch, released_hash,
};
/// The holder's slots per member node (node/src/gateway/holder.rs).
const TRANSFERS_PER_PEER: usize = 16;
use medledger_client_sdk::api;
use medledger_client_sdk::{
    Client, Identity, KeyFile, LightClient, SdkError, TermsBuilder, TxBuilder, TxOutcome,
};
use medledger_contracts::encoding::{BoundedVec, Hash32, from_bytes, to_bytes};
use medledger_contracts::light::{PROVED_VALUE_BYTES_MAX, ProvedValue};
use medledger_contracts::records::OwnAccessRecord;
use medledger_contracts::state::StateKey;
use medledger_contracts::transaction::Payload;
use medledger_contracts::types::{
    Category, Chain, EmergencyReason, Grantee, InstitutionId, LegalBasis, PatientId, Purpose,
    Timestamp, TxHash,
};

fn chain_id() -> Chain {
    common::chain()
}

fn institution(id: &str) -> InstitutionId {
    InstitutionId::new(id).unwrap()
}

fn node_of(net: &Testnet, id: &str) -> usize {
    net.nodes()
        .iter()
        .position(|n| n.institution == id)
        .unwrap()
}

/// Puts records for `patient` at `institution`'s node: two lab resources and
/// an imaging study larger than one chunk.
/// Links MRN-77 at `hospital` to the patient with a signature made as
/// `records sign-link` makes it, for `signed_for` (the hospital itself,
/// unless a test wants a link signed for another).
fn link(net: &Testnet, hospital: &str, signed_for: &str, patient_key: &KeyFile) {
    let key_file = net.dir().join(format!(
        "link-key-{}.json",
        patient_key.patient_id().0.to_hex()
    ));
    if !key_file.exists() {
        patient_key.save(&key_file).unwrap();
    }
    let signed = std::process::Command::new(BIN)
        .args(["records", "sign-link", "--key"])
        .arg(&key_file)
        .arg("--genesis")
        .arg(net.dir().join("genesis.json"))
        .args(["--hospital", signed_for, "--record-number", "MRN-77"])
        .output()
        .unwrap();
    assert!(signed.status.success(), "{signed:?}");
    let signature = String::from_utf8(signed.stdout).unwrap();
    let root = net.nodes()[node_of(net, hospital)].home.join("records");
    let status = std::process::Command::new(BIN)
        .args(["records", "link", "--dir"])
        .arg(&root)
        .args([
            "--record-number",
            "MRN-77",
            "--patient",
            &patient_key.patient_id().0.to_hex(),
            "--signature",
            signature.trim(),
        ])
        .output()
        .unwrap();
    assert!(status.status.success(), "{status:?}");
}

fn hold_records(net: &Testnet, id: &str, patient_key: &KeyFile) -> Vec<(String, Vec<u8>)> {
    link(net, id, id, patient_key);
    let root = net.nodes()[node_of(net, id)].home.join("records");
    let study: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
    let files = vec![
        (
            "lab-reports/glucose.json".to_string(),
            br#"{"resourceType":"Observation","id":"glu","status":"final"}"#.to_vec(),
        ),
        (
            "lab-reports/panel.json".to_string(),
            br#"{"resourceType":"DiagnosticReport","id":"p1","status":"final"}"#.to_vec(),
        ),
        ("imaging/ct-study.dcm".to_string(), study),
        (
            "prescriptions/rx.json".to_string(),
            br#"{"resourceType":"MedicationRequest"}"#.to_vec(),
        ),
        // Sensitive (R5.10), outside every grant that does not include
        // them: a genetic result, and a study whose describing resource
        // beside it is labelled mental health.
        (
            "lab-reports/brca.json".to_string(),
            br#"{"resourceType":"Observation","meta":{"security":[{"code":"GDIS"}]}}"#.to_vec(),
        ),
        ("imaging/eeg.dat".to_string(), vec![7u8; 1000]),
        (
            "imaging/eeg.json".to_string(),
            br#"{"resourceType":"Media","meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"PSY"}]}}"#.to_vec(),
        ),
    ];
    for (path, bytes) in &files {
        let full = root.join("MRN-77").join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, bytes).unwrap();
    }
    files
}

struct Setup {
    client_second: Client,
    patient_key: KeyFile,
    patient: PatientId,
    grant: TxHash,
    doctor: Identity,
}

async fn grant_labs_and_imaging(net: &Testnet) -> (Setup, Vec<(String, Vec<u8>)>) {
    let client = Client::new(
        &net.nodes()[node_of(net, "city-second-hospital")].http,
        chain_id(),
    )
    .unwrap();
    let patient_key = KeyFile::generate().unwrap();
    let patient = patient_key.patient_id();
    let files = hold_records(net, "city-first-hospital", &patient_key);
    let as_patient = TxBuilder::new(chain_id(), Identity::patient(&patient_key));
    client
        .submit_and_wait(&as_patient.register_patient(), None)
        .await
        .unwrap();
    let terms = TermsBuilder::new(
        patient,
        Grantee::Institution(institution("city-second-hospital")),
    )
    .category(Category::LabReports)
    .category(Category::Imaging)
    .holders([institution("city-first-hospital")])
    .purpose(Purpose::Referral)
    .build()
    .unwrap();
    let grant = client
        .submit_and_wait(&as_patient.grant(terms), None)
        .await
        .unwrap();
    assert_eq!(grant.outcome, TxOutcome::Applied);
    let doctor = Identity::practitioner(&testnet_key(net, "practitioner:dr-second-1"));
    (
        Setup {
            client_second: client,
            patient_key,
            patient,
            grant: grant.tx,
            doctor,
        },
        files,
    )
}

async fn request(setup: &Setup, categories: Vec<Category>) -> TxHash {
    let tx = TxBuilder::new(chain_id(), setup.doctor.clone())
        .access_request(
            setup.grant,
            institution("city-first-hospital"),
            categories,
            Purpose::Referral,
        )
        .unwrap();
    let receipt = setup
        .client_second
        .submit_and_wait(&tx, None)
        .await
        .unwrap();
    assert_eq!(receipt.outcome, TxOutcome::Authorized, "{receipt:?}");
    receipt.tx
}

/// The doctor's authorised emergency access to the patient's `category` at
/// the first hospital, fetched into `out`.
async fn emergency_fetch(setup: &Setup, category: Category, out: &Path) -> FetchedRecords {
    let first = institution("city-first-hospital");
    let emergency = TxBuilder::new(chain_id(), setup.doctor.clone()).emergency_access(
        setup.patient,
        first.clone(),
        BoundedVec::new(vec![category]).unwrap(),
        EmergencyReason::PatientUnconscious,
    );
    let receipt = setup
        .client_second
        .submit_and_wait(&emergency, None)
        .await
        .unwrap();
    assert_eq!(receipt.outcome, TxOutcome::Authorized, "{receipt:?}");
    fetch_records(&setup.client_second, &setup.doctor, receipt.tx, first, out)
        .await
        .unwrap()
}

fn refused_code(result: Result<impl std::fmt::Debug, SdkError>) -> String {
    match result {
        Err(e) => e.code().unwrap_or("none").to_string(),
        Ok(v) => panic!("expected a refusal, got {v:?}"),
    }
}

/// The names of the fetched resources, sorted.
/// A light client of `client`'s node, trusting only the testnet's genesis file.
fn light_client(net: &Testnet, client: &Client) -> LightClient {
    let genesis = medledger_genesis::GenesisFile::read(&net.dir().join("genesis.json"))
        .unwrap()
        .validate()
        .unwrap();
    LightClient::new(client.clone(), &genesis, std::time::Duration::from_secs(60)).unwrap()
}

fn sorted_paths(fetched: &FetchedRecords) -> Vec<&str> {
    let mut paths: Vec<&str> = fetched.items.iter().map(|i| i.path.as_str()).collect();
    paths.sort_unstable();
    paths
}

fn read(dir: &Path, path: &str) -> Vec<u8> {
    std::fs::read(dir.join(path)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn granted_records_arrive_sealed_and_exact_and_every_refusal_is_clear() {
    let _turn = ONE_TESTNET_AT_A_TIME.lock().await;
    let mut net = Testnet::new(4);
    net.start_all();
    net.reach(0, 2, 60, "no blocks").await;
    let (setup, files) = grant_labs_and_imaging(&net).await;
    let first = institution("city-first-hospital");

    // Labs and imaging requested: exactly those arrive, byte for byte.
    let request_id = request(&setup, vec![Category::LabReports, Category::Imaging]).await;
    let out = net.dir().join("fetched");
    let fetched = fetch_records(
        &setup.client_second,
        &setup.doctor,
        request_id,
        first.clone(),
        &out,
    )
    .await
    .unwrap();
    let paths = sorted_paths(&fetched);
    assert_eq!(
        paths,
        [
            "imaging/ct-study.dcm",
            "lab-reports/glucose.json",
            "lab-reports/panel.json"
        ]
    );
    for (path, bytes) in files.iter().filter(|(p, _)| paths.contains(&p.as_str())) {
        assert_eq!(&read(&out, path), bytes, "{path} differs");
    }
    assert!(
        !out.join("prescriptions").exists(),
        "an ungranted category travelled"
    );
    for sensitive in [
        "lab-reports/brca.json",
        "imaging/eeg.dat",
        "imaging/eeg.json",
    ] {
        assert!(!out.join(sensitive).exists(), "{sensitive} travelled");
    }
    // The patient's history shows the release.
    let history = setup
        .client_second
        .patient_history(&setup.patient, &Identity::patient(&setup.patient_key))
        .await
        .unwrap();
    assert!(
        history.iter().any(|e| matches!(
            e.event,
            api::AuditEvent::Released {
                content_count: 3,
                ..
            }
        )),
        "{history:?}"
    );

    // The same request again: refused.
    assert_eq!(
        refused_code(
            fetch_records(
                &setup.client_second,
                &setup.doctor,
                request_id,
                first.clone(),
                &out.join("again")
            )
            .await
        ),
        "already_served"
    );

    // A doctor of another hospital cannot use the second hospital's
    // request, through its own node or through the second hospital's.
    let other = Identity::practitioner(&testnet_key(&net, "practitioner:dr-first-1"));
    let request_labs = request(&setup, vec![Category::LabReports]).await;
    let first_client = Client::new(
        &net.nodes()[node_of(&net, "city-first-hospital")].http,
        chain_id(),
    )
    .unwrap();
    assert_eq!(
        refused_code(
            fetch_records(
                &first_client,
                &other,
                request_labs,
                first.clone(),
                &out.join("x")
            )
            .await
        ),
        "not_authorized"
    );
    assert_eq!(
        refused_code(
            fetch_records(
                &setup.client_second,
                &other,
                request_labs,
                first.clone(),
                &out.join("y")
            )
            .await
        ),
        "forbidden"
    );

    // Revoked between request and fetch: refused, and nothing was released.
    let as_patient = TxBuilder::new(chain_id(), Identity::patient(&setup.patient_key));
    let revoked = setup
        .client_second
        .submit_and_wait(&as_patient.revoke(setup.grant), None)
        .await
        .unwrap();
    net.reach(
        node_of(&net, "city-first-hospital"),
        revoked.height,
        30,
        "holder behind",
    )
    .await;
    assert_eq!(
        refused_code(
            fetch_records(
                &setup.client_second,
                &setup.doctor,
                request_labs,
                first.clone(),
                &out.join("z")
            )
            .await
        ),
        "grant_not_active"
    );
    assert!(!out.join("z").join("lab-reports").exists());

    // Records held by the second hospital travel the other way, to a doctor
    // of the first, under a grant that soon expires; once expired, refused.
    let second = institution("city-second-hospital");
    let second_files = hold_records(&net, "city-second-hospital", &setup.patient_key);
    let short = TermsBuilder::new(setup.patient, Grantee::Institution(first.clone()))
        .category(Category::Prescriptions)
        .holders([second.clone()])
        .until(Timestamp(medledger_client_sdk::client::now().0 + 4_000))
        .build()
        .unwrap();
    let short_grant = setup
        .client_second
        .submit_and_wait(&as_patient.grant(short), None)
        .await
        .unwrap();
    assert_eq!(short_grant.outcome, TxOutcome::Applied, "{short_grant:?}");
    let as_first_doctor = TxBuilder::new(chain_id(), other.clone());
    let ask = |categories: Vec<Category>| {
        as_first_doctor
            .access_request(
                short_grant.tx,
                second.clone(),
                categories,
                Purpose::Treatment,
            )
            .unwrap()
    };
    // Sent to another node: it must have committed the grant's block before
    // it tries the request against its state.
    let receipt = first_client
        .submit_and_wait(
            &ask(vec![Category::Prescriptions]),
            Some(short_grant.height),
        )
        .await
        .unwrap();
    assert_eq!(receipt.outcome, TxOutcome::Authorized, "{receipt:?}");
    let rx = fetch_records(
        &first_client,
        &other,
        receipt.tx,
        second.clone(),
        &out.join("rx"),
    )
    .await
    .unwrap();
    assert_eq!(rx.items.len(), 1);
    let (path, bytes) = second_files
        .iter()
        .find(|(p, _)| p.starts_with("prescriptions"))
        .unwrap();
    assert_eq!(&read(&out.join("rx"), path), bytes);
    let late = first_client
        .submit_and_wait(&ask(vec![Category::Prescriptions]), None)
        .await
        .unwrap();
    assert_eq!(late.outcome, TxOutcome::Authorized, "{late:?}");
    tokio::time::sleep(std::time::Duration::from_millis(4_500)).await;
    assert_eq!(
        refused_code(
            fetch_records(
                &first_client,
                &other,
                late.tx,
                second.clone(),
                &out.join("late")
            )
            .await
        ),
        "grant_not_active"
    );

    // Emergency access goes through the same gateway, and is marked.
    let fetched = emergency_fetch(&setup, Category::LabReports, &out.join("emergency")).await;
    // No grant limits it: the genetic result goes too (R5.10).
    assert_eq!(fetched.items.len(), 3);
    let history = setup
        .client_second
        .patient_history(&setup.patient, &Identity::patient(&setup.patient_key))
        .await
        .unwrap();
    assert!(
        history.iter().any(|e| matches!(
            e.event,
            api::AuditEvent::AccessDecided {
                kind: api::AccessKind::Emergency,
                ..
            }
        )),
        "{history:?}"
    );

    // Nothing of the patient in a category here: an empty manifest (no
    // refusal says whether the patient has records), and a release of
    // nothing is recorded, so the fetch completes at once.
    let started = std::time::Instant::now();
    let nothing = emergency_fetch(&setup, Category::Allergies, &out.join("allergies")).await;
    assert!(nothing.items.is_empty());
    assert!(started.elapsed() < std::time::Duration::from_secs(20));

    // A link the patient signed for another hospital (a desk copying a
    // signature made elsewhere): nothing is served under it — the same
    // empty manifest as for a patient with no records here.
    link(
        &net,
        "city-first-hospital",
        "city-second-hospital",
        &setup.patient_key,
    );
    let unsigned =
        emergency_fetch(&setup, Category::LabReports, &out.join("misdirected-link")).await;
    assert!(unsigned.items.is_empty(), "{:?}", unsigned.items);
    link(
        &net,
        "city-first-hospital",
        "city-first-hospital",
        &setup.patient_key,
    );

    // Every refusal that concerned a committed access is on the ledger, in
    // the patient's history: the replay, the other hospital's doctor, and
    // the two fetches after the grant had ended.
    let mut refusals = Vec::new();
    for _ in 0..100 {
        let history = setup
            .client_second
            .patient_history(&setup.patient, &Identity::patient(&setup.patient_key))
            .await
            .unwrap();
        refusals = history
            .iter()
            .filter_map(|e| match &e.event {
                api::AuditEvent::FetchRefused { reason, .. } => Some(reason.clone()),
                _ => None,
            })
            .collect();
        refusals.sort();
        if refusals.len() >= 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    assert_eq!(
        refusals,
        [
            "already_served",
            "grant_not_active",
            "grant_not_active",
            "not_authorized"
        ]
    );

    // The holder counts its refusals by code for its operators.
    let metrics = net.metrics(node_of(&net, "city-first-hospital")).await;
    for code in ["already_served", "not_authorized", "grant_not_active"] {
        assert!(
            metrics.contains(&format!(
                "medledger_gateway_refusals_total{{code=\"{code}\"}}"
            )),
            "{code} not counted:\n{metrics}"
        );
    }

    // No node logged the hospital's record number, a record's name or a
    // byte of its content, after all of that (at the default log level).
    let mut transfers_logged = 0;
    for node in net.nodes() {
        let (name, home) = (&node.institution, &node.home);
        let log = std::fs::read_to_string(home.join("node.log")).unwrap();
        transfers_logged += log.matches("records transfer complete").count();
        for secret in [
            "MRN-77",
            "glucose",
            "ct-study",
            "DiagnosticReport",
            "resourceType",
        ] {
            assert!(!log.contains(secret), "{name}'s log contains {secret:?}");
        }
    }
    assert!(transfers_logged >= 3, "the holders' logs were read");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_health_access_travels_through_the_cdc_node_and_the_patient_sees_it() {
    let _turn = ONE_TESTNET_AT_A_TIME.lock().await;
    // Four validators and the CDC's node (an observer); the other two
    // observers of the layout are not started.
    let mut net = Testnet::layout(4, 3, 0);
    let cdc = node_of(&net, "city-cdc");
    for i in [0, 1, 2, 3, cdc] {
        net.start(i);
    }
    net.reach(0, 2, 60, "no blocks").await;
    let (setup, files) = grant_labs_and_imaging(&net).await;
    let first = institution("city-first-hospital");
    let officer = Identity::practitioner(&testnet_key(&net, "practitioner:cdc-officer-1"));
    let report = |categories: Vec<Category>| {
        TxBuilder::new(chain_id(), officer.clone()).sign(Payload::PublicHealthAccess {
            patient: setup.patient,
            holder: first.clone(),
            categories: BoundedVec::new(categories).unwrap(),
            legal_basis: LegalBasis::InfectiousDiseaseReporting,
            case_hash: Hash32([4; 32]),
        })
    };
    // The CDC's node must have the patient's registration before it tries
    // the access against its state.
    let height = net.height(0).await.unwrap();
    net.reach(cdc, height, 60, "the CDC's node is behind").await;
    let cdc_client = Client::new(&net.nodes()[cdc].http, chain_id()).unwrap();
    let receipt = cdc_client
        .submit_and_wait(&report(vec![Category::LabReports]), None)
        .await
        .unwrap();
    assert_eq!(receipt.outcome, TxOutcome::Authorized, "{receipt:?}");
    let out = net.dir().join("cdc");
    let fetched = fetch_records(&cdc_client, &officer, receipt.tx, first.clone(), &out)
        .await
        .unwrap();
    let paths = sorted_paths(&fetched);
    // A public-health access rests on no grant: a sensitive record of its
    // categories travels too (R5.10 limits grants).
    assert_eq!(
        paths,
        [
            "lab-reports/brca.json",
            "lab-reports/glucose.json",
            "lab-reports/panel.json"
        ]
    );
    for (path, bytes) in files.iter().filter(|(p, _)| p.starts_with("lab-reports")) {
        assert_eq!(&read(&out, path), bytes, "{path} differs");
    }
    // A hospital doctor is not a public-health officer: denied, and a fetch
    // citing the denied access is refused.
    let as_doctor = TxBuilder::new(chain_id(), setup.doctor.clone());
    let not_cdc = as_doctor.sign(Payload::PublicHealthAccess {
        patient: setup.patient,
        holder: first.clone(),
        categories: BoundedVec::new(vec![Category::LabReports]).unwrap(),
        legal_basis: LegalBasis::InfectiousDiseaseReporting,
        case_hash: Hash32([4; 32]),
    });
    let denied = setup
        .client_second
        .submit_and_wait(&not_cdc, None)
        .await
        .unwrap();
    assert!(
        matches!(denied.outcome, TxOutcome::Denied { .. }),
        "{denied:?}"
    );
    assert_eq!(
        refused_code(
            fetch_records(
                &setup.client_second,
                &setup.doctor,
                denied.tx,
                first.clone(),
                &out.join("denied")
            )
            .await
        ),
        "not_authorized"
    );
    // The patient's history marks the public-health access and its release.
    let history = setup
        .client_second
        .patient_history(&setup.patient, &Identity::patient(&setup.patient_key))
        .await
        .unwrap();
    let request = api::Hex32(receipt.tx.0);
    assert!(
        history.iter().any(|e| matches!(
            &e.event,
            api::AuditEvent::AccessDecided {
                request: r,
                kind: api::AccessKind::PublicHealth,
                decision: api::Decision::Authorized,
                ..
            } if *r == request
        )),
        "{history:?}"
    );
    assert!(
        history.iter().any(|e| matches!(
            &e.event,
            api::AuditEvent::Released { request: r, content_count: 3, .. } if *r == request
        )),
        "{history:?}"
    );
}

/// Issue 20: a patient fetches their own records (R7.8) from the first
/// hospital through the second hospital's node, sealed to their one-time
/// key, every item checked, the request and release in their history;
/// the same request is not served twice, nobody else's key or fetch passes,
/// and `medledger patient fetch-own` does it all in one command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patient_fetches_their_own_records_through_any_members_node() {
    let _turn = ONE_TESTNET_AT_A_TIME.lock().await;
    let mut net = Testnet::new(4);
    net.start_all();
    net.reach(0, 2, 60, "no blocks").await;
    let (setup, files) = grant_labs_and_imaging(&net).await;
    let first = institution("city-first-hospital");
    let me = Identity::patient(&setup.patient_key);
    let light = light_client(&net, &setup.client_second);
    let as_patient = TxBuilder::new(chain_id(), me.clone());
    let asked = setup
        .client_second
        .submit_and_wait(
            &as_patient
                .own_records_request(first.clone(), vec![Category::LabReports, Category::Imaging])
                .unwrap(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(asked.outcome, TxOutcome::Authorized, "{asked:?}");

    // Another registered patient citing this request with their own key:
    // the holder refuses it (the request is not theirs).
    let stranger = KeyFile::generate().unwrap();
    let stranger_id = Identity::patient(&stranger);
    setup
        .client_second
        .submit_and_wait(
            &TxBuilder::new(chain_id(), stranger_id.clone()).register_patient(),
            None,
        )
        .await
        .unwrap();
    let out = net.dir().join("own");
    assert_eq!(
        refused_code(fetch_own_records(&light, &stranger_id, asked.tx, first.clone(), &out).await),
        "not_authorized",
        "another patient's fetch citing this request"
    );

    let fetched = fetch_own_records(&light, &me, asked.tx, first.clone(), &out)
        .await
        .unwrap();
    // The release was believed on a proof, not on the relaying node's word:
    // the same proof with the release's hashes altered does not verify.
    let answer: api::OwnAccess = setup
        .client_second
        .get_signed_as(&format!("/v1/own-accesses/{}", asked.tx.0.to_hex()), &me)
        .await
        .unwrap();
    let proved_hex = answer.proved.expect("a proof beside the record");
    let mut proved: ProvedValue =
        from_bytes(&hex::decode(&proved_hex).unwrap(), PROVED_VALUE_BYTES_MAX).unwrap();
    let key = StateKey::OwnAccess(asked.tx);
    light.verify(&proved, &key).await.unwrap();
    let mut record: OwnAccessRecord =
        from_bytes(proved.value.as_deref().unwrap(), PROVED_VALUE_BYTES_MAX).unwrap();
    let release = record.release.as_mut().expect("released");
    assert_eq!(release.at.height, fetched.release_height);
    let mut forged = release.content_hashes.to_vec();
    forged[0] = Hash32([0xee; 32]);
    release.content_hashes = BoundedVec::new(forged).unwrap();
    proved.value = Some(to_bytes(&record));
    assert!(light.verify(&proved, &key).await.is_err());
    // Their own records rest on no grant: the sensitive ones of these
    // categories come too; prescriptions were not asked for.
    assert_eq!(
        sorted_paths(&fetched),
        [
            "imaging/ct-study.dcm",
            "imaging/eeg.dat",
            "imaging/eeg.json",
            "lab-reports/brca.json",
            "lab-reports/glucose.json",
            "lab-reports/panel.json",
        ]
    );
    for (path, bytes) in files
        .iter()
        .filter(|(p, _)| !p.starts_with("prescriptions"))
    {
        assert_eq!(&read(&out, path), bytes, "{path} differs");
    }
    // Once.
    assert_eq!(
        refused_code(
            fetch_own_records(&light, &me, asked.tx, first.clone(), &out.join("again")).await
        ),
        "already_served"
    );
    // A practitioner cannot use a patient's own request.
    assert_eq!(
        refused_code(
            fetch_records(
                &setup.client_second,
                &setup.doctor,
                asked.tx,
                first.clone(),
                &out.join("doctor")
            )
            .await
        ),
        "not_authorized"
    );
    // The ledger has the release, readable by the patient, with the hashes
    // the patient checked; their history shows the request and the release.
    let own: api::OwnAccess = setup
        .client_second
        .get_signed_as(&format!("/v1/own-accesses/{}", asked.tx.0.to_hex()), &me)
        .await
        .unwrap();
    let release = own.release.expect("released");
    assert_eq!(release.content_hashes.len(), 6);
    assert!(release.grant_active_at_release);
    assert_eq!(
        refused_code(
            setup
                .client_second
                .get_signed_as::<api::OwnAccess>(
                    &format!("/v1/own-accesses/{}", asked.tx.0.to_hex()),
                    &setup.doctor,
                )
                .await
        ),
        "forbidden",
        "another institution's practitioner"
    );
    let history = setup
        .client_second
        .patient_history(&setup.patient, &me)
        .await
        .unwrap();
    let request = api::Hex32(asked.tx.0);
    assert!(
        history.iter().any(|e| matches!(
            &e.event,
            api::AuditEvent::OwnRecordsRequested { request: r, holder } if *r == request && holder == "city-first-hospital"
        )),
        "{history:?}"
    );
    assert!(
        history.iter().any(|e| matches!(
            &e.event,
            api::AuditEvent::Released { request: r, content_count: 6, grant_active: true, .. } if *r == request
        )),
        "{history:?}"
    );

    // The command: ask and fetch in one, through the third node.
    let key_file = net
        .dir()
        .join(format!("link-key-{}.json", setup.patient.0.to_hex()));
    let cli_out = net.dir().join("own-cli");
    let output = std::process::Command::new(BIN)
        .args(["patient", "--node", &net.nodes()[2].http, "--genesis"])
        .arg(net.dir().join("genesis.json"))
        .arg("--key")
        .arg(&key_file)
        .args([
            "--json",
            "fetch-own",
            "--holder",
            "city-first-hospital",
            "--category",
            "prescriptions",
            "--out",
        ])
        .arg(&cli_out)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        answer["items"][0]["path"], "prescriptions/rx.json",
        "{answer}"
    );
    assert_eq!(
        read(&cli_out, "prescriptions/rx.json"),
        br#"{"resourceType":"MedicationRequest"}"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_chunk_aborts_the_transfer() {
    let _turn = ONE_TESTNET_AT_A_TIME.lock().await;
    let mut net = Testnet::new(4);
    let holder = node_of(&net, "city-first-hospital");
    for i in 0..4 {
        if i == holder {
            net.start_with(i, &[("MEDLEDGER_FAULT", "tamper-chunk")]);
        } else {
            net.start(i);
        }
    }
    net.reach(0, 2, 60, "no blocks").await;
    let (setup, _) = grant_labs_and_imaging(&net).await;
    let request_id = request(&setup, vec![Category::Imaging]).await;
    let out = net.dir().join("tampered");
    let error = fetch_records(
        &setup.client_second,
        &setup.doctor,
        request_id,
        institution("city-first-hospital"),
        &out,
    )
    .await
    .unwrap_err();
    assert!(error.to_string().contains("tampered chunk"), "{error}");
    // Nothing of the aborted transfer is handed over, not even a partial file.
    let left: Vec<_> = walk(&out);
    assert!(left.is_empty(), "{left:?}");
}

/// Issue 16, item 5: a requester who stops after the first chunk has still
/// left the release on the ledger — it was committed before any content
/// left — and after the holder restarts, the same request is not served
/// again. (Before the fix the release was submitted after the last chunk,
/// and the set of served requests lived in the holder's memory.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_release_is_committed_before_any_content_and_a_restart_serves_nothing_twice() {
    let _turn = ONE_TESTNET_AT_A_TIME.lock().await;
    let mut net = Testnet::new(4);
    net.start_all();
    net.reach(0, 2, 60, "no blocks").await;
    let (setup, _) = grant_labs_and_imaging(&net).await;
    let first = institution("city-first-hospital");
    let request_id = request(&setup, vec![Category::LabReports, Category::Imaging]).await;

    let (key, manifest, mut frames) = open_fetch(
        &setup.client_second,
        &setup.doctor,
        request_id,
        first.clone(),
    )
    .await
    .unwrap();
    assert_eq!(manifest.items.len(), 3);
    let Some(GatewayResponse::Chunk(chunk)) = frames.next().await.unwrap() else {
        panic!("expected the first chunk");
    };
    // The first chunk opens (it is real content), and by now the release is
    // on the ledger with the manifest's hashes.
    let mut opener = key.opener(&manifest).unwrap();
    assert!(!opener.open(&chunk).unwrap().is_empty());
    let access = setup
        .client_second
        .get_signed(
            &format!("/v1/accesses/{}", request_id.0.to_hex()),
            &setup.doctor,
        )
        .await
        .unwrap();
    let recorded: Vec<String> = access["release"]["content_hashes"]
        .as_array()
        .unwrap_or_else(|| panic!("no release recorded before the first chunk: {access}"))
        .iter()
        .map(|h| h.as_str().unwrap().to_string())
        .collect();
    // Recorded salted (records rule 4): neither the plain hashes nor
    // anything another member can compute.
    let salt = opener.content_salt().unwrap();
    let sent: Vec<String> = manifest
        .items
        .iter()
        .map(|i| released_hash(chain_id().hash(), &salt, &i.content_hash).to_hex())
        .collect();
    assert_eq!(recorded, sent);
    for item in &manifest.items {
        assert!(!recorded.contains(&item.content_hash.to_hex()));
    }
    // The requester walks away after one chunk.
    drop(frames);

    // The holder restarts; the same request, signed anew, is refused.
    let holder = node_of(&net, "city-first-hospital");
    net.kill(holder);
    net.start(holder);
    let height = net
        .height(node_of(&net, "city-second-hospital"))
        .await
        .unwrap();
    net.reach(holder, height, 60, "holder did not come back")
        .await;
    assert_eq!(
        refused_code(
            fetch_records(
                &setup.client_second,
                &setup.doctor,
                request_id,
                first.clone(),
                &net.dir().join("again"),
            )
            .await
        ),
        "already_served"
    );
}

/// Issue 16, item 10: the holder's transfer slots are per member node. The
/// second hospital opens as many transfers as it may and leaves them
/// unread; its next is refused `busy`, while a doctor of another member
/// (West Lake, an observer here) is served in full meanwhile. (With one
/// pool of 64 shared by everyone, the second hospital's 17th opened too,
/// and enough of them shut everyone else out.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_member_holding_its_transfer_slots_does_not_stop_another_members_fetch() {
    let _turn = ONE_TESTNET_AT_A_TIME.lock().await;
    let mut net = Testnet::layout(4, 2, 0);
    let west = node_of(&net, "west-community");
    for i in [0, 1, 2, 3, west] {
        net.start(i);
    }
    net.reach(0, 2, 60, "no blocks").await;
    let (setup, files) = grant_labs_and_imaging(&net).await;
    let first = institution("city-first-hospital");
    // A study large enough that an unread transfer cannot drain into
    // socket buffers and end by itself.
    let study = net.nodes()[node_of(&net, "city-first-hospital")]
        .home
        .join("records/MRN-77/imaging/large-study.dcm");
    std::fs::write(&study, vec![7u8; 32 << 20]).unwrap();

    let mut requests = Vec::new();
    for _ in 0..=TRANSFERS_PER_PEER {
        requests.push(request(&setup, vec![Category::Imaging]).await);
    }
    let mut held = Vec::new();
    for id in &requests[..TRANSFERS_PER_PEER] {
        let opened = open_fetch(&setup.client_second, &setup.doctor, *id, first.clone())
            .await
            .unwrap();
        held.push(opened);
    }
    assert_eq!(
        refused_code(
            open_fetch(
                &setup.client_second,
                &setup.doctor,
                requests[TRANSFERS_PER_PEER],
                first.clone()
            )
            .await
            .map(|(_, manifest, _)| manifest)
        ),
        "busy"
    );

    // West Lake's doctor, under the patient's grant to West Lake.
    let as_patient = TxBuilder::new(chain_id(), Identity::patient(&setup.patient_key));
    let terms = TermsBuilder::new(
        setup.patient,
        Grantee::Institution(institution("west-community")),
    )
    .category(Category::LabReports)
    .holders([first.clone()])
    .purpose(Purpose::Referral)
    .build()
    .unwrap();
    let west_client = Client::new(&net.nodes()[west].http, chain_id()).unwrap();
    let grant = west_client
        .submit_and_wait(&as_patient.grant(terms), None)
        .await
        .unwrap();
    let doctor = Identity::practitioner(&testnet_key(&net, "practitioner:dr-community-1"));
    let receipt = west_client
        .submit_and_wait(
            &TxBuilder::new(chain_id(), doctor.clone())
                .access_request(
                    grant.tx,
                    first.clone(),
                    vec![Category::LabReports],
                    Purpose::Referral,
                )
                .unwrap(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(receipt.outcome, TxOutcome::Authorized, "{receipt:?}");
    let fetched = fetch_records(
        &west_client,
        &doctor,
        receipt.tx,
        first,
        &net.dir().join("west"),
    )
    .await
    .unwrap();
    let labs: Vec<&str> = files
        .iter()
        .map(|(path, _)| path.as_str())
        .filter(|path| path.starts_with("lab-reports/") && *path != "lab-reports/brca.json")
        .collect();
    assert_eq!(sorted_paths(&fetched), labs);
    drop(held);
}

/// Issue 16, item 8: while new keys flood every node with registrations
/// (nonce variants of each, as fast as two cores allow), a holder's release
/// and a patient's revocation still commit within seconds, and the nodes
/// keep answering reads. The pool is made small (40) so the flood keeps
/// it full.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_new_keys_does_not_stop_a_release_or_a_revocation() {
    let _turn = ONE_TESTNET_AT_A_TIME.lock().await;
    let mut net = Testnet::new(4);
    for i in 0..4 {
        net.configure(i, "mempool", "max_transactions", "40");
    }
    net.start_all();
    net.reach(0, 2, 60, "no blocks").await;
    let (setup, _) = grant_labs_and_imaging(&net).await;
    let request_id = request(&setup, vec![Category::LabReports]).await;

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let urls: Vec<String> = net
        .nodes()
        .iter()
        .map(|n| format!("{}/v1/tx", n.http))
        .collect();
    let mut flooders = Vec::new();
    for task in 0..4usize {
        let stop = stop.clone();
        let urls = urls.clone();
        flooders.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut codes = std::collections::BTreeMap::<String, usize>::new();
            let mut n = task;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let key = KeyFile::generate().unwrap();
                for nonce in 0..5 {
                    let tx = medledger_contracts::transaction::Transaction {
                        signer: medledger_contracts::transaction::Signer::Patient(key.patient_id()),
                        nonce,
                        valid_until: common::valid_until(),
                        payload: Payload::RegisterPatient,
                    }
                    .sign(&chain_id(), key.secret());
                    let body = serde_json::json!({"transaction": hex::encode(tx.to_bytes())});
                    n += 1;
                    let answer = http
                        .post(&urls[n % urls.len()])
                        .header("content-type", "application/json")
                        .body(body.to_string())
                        .send()
                        .await;
                    let code = match answer {
                        Ok(r) if r.status().is_success() => "accepted".to_string(),
                        Ok(r) => r
                            .json::<serde_json::Value>()
                            .await
                            .ok()
                            .and_then(|v| v["code"].as_str().map(str::to_string))
                            .unwrap_or_else(|| "no_code".into()),
                        Err(_) => "unreachable".into(),
                    };
                    *codes.entry(code).or_default() += 1;
                }
            }
            codes
        }));
    }
    // Let the flood build up.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;

    let started = std::time::Instant::now();
    let fetched = fetch_records(
        &setup.client_second,
        &setup.doctor,
        request_id,
        institution("city-first-hospital"),
        &net.dir().join("flooded"),
    )
    .await
    .unwrap();
    let release_took = started.elapsed();
    assert!(fetched.release_height > 0);
    let started = std::time::Instant::now();
    let as_patient = TxBuilder::new(chain_id(), Identity::patient(&setup.patient_key));
    let revoked = setup
        .client_second
        .submit_and_wait(&as_patient.revoke(setup.grant), None)
        .await
        .unwrap();
    let revoke_took = started.elapsed();
    assert_eq!(revoked.outcome, TxOutcome::Applied, "{revoked:?}");
    for i in 0..4 {
        assert!(
            net.height(i).await.is_some(),
            "node {i} stopped answering reads"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut codes = std::collections::BTreeMap::<String, usize>::new();
    for f in flooders {
        for (code, n) in f.await.unwrap() {
            *codes.entry(code).or_default() += n;
        }
    }
    println!("release {release_took:?}, revocation {revoke_took:?}, flood answers {codes:?}");
    // Nonce variants were refused, so the flood did press on the bounds.
    assert!(
        codes.get("signer_quota").copied().unwrap_or(0) > 0,
        "{codes:?}"
    );
    // Generous bounds for a shared two-core machine: liveness, not speed.
    assert!(
        release_took < std::time::Duration::from_secs(20),
        "release took {release_took:?}"
    );
    assert!(
        revoke_took < std::time::Duration::from_secs(20),
        "revocation took {revoke_took:?}"
    );
}

/// Every file under `dir` (none when it does not exist).
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .flat_map(|e| {
            let path = e.path();
            if path.is_dir() {
                walk(&path)
            } else {
                vec![path]
            }
        })
        .collect()
}

/// A FHIR resource the mock server holds.
fn fhir_resource(kind: &str, id: &str, patient: &str) -> serde_json::Value {
    serde_json::json!({
        "resourceType": kind,
        "id": id,
        "status": "final",
        "subject": {"reference": format!("Patient/{patient}")},
        "code": {"text": format!("{kind} {id}")},
    })
}

fn searchset(resources: Vec<serde_json::Value>, next: Option<String>) -> serde_json::Value {
    let mut bundle = serde_json::json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": resources.into_iter().map(|r| serde_json::json!({"resource": r})).collect::<Vec<_>>(),
    });
    if let Some(url) = next {
        bundle["link"] = serde_json::json!([{"relation": "next", "url": url}]);
    }
    bundle
}

/// A hospital's FHIR server, mocked: the patient with record number MRN-77,
/// laboratory observations over two pages (the first also carries another
/// patient's observation, as a server ignoring `patient=` would), and a
/// prescription. Answers everything else with an empty bundle and notes
/// every request it gets.
/// A mock FHIR server; while the returned flag is set it drops the
/// connection of every patient search, as a crashing server would (the
/// client's error then names the URL, record number included).
async fn mock_fhir_server() -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use warp::Filter;
    let failing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let fail = failing.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/fhir", listener.local_addr().unwrap());
    let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (log, own_base) = (requests.clone(), base.clone());
    // The requesting hospital's side: a transaction Bundle POSTed to the base.
    let posted = requests.clone();
    let transaction = warp::post()
        .and(warp::path("fhir"))
        .and(warp::path::end())
        .and(warp::body::bytes())
        .map(move |body: bytes::Bytes| {
            // FHIR's media type is application/fhir+json: parsed here, not by warp.
            let bundle: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            posted.lock().unwrap().push(format!("POST {bundle}"));
            let entries: Vec<serde_json::Value> = bundle["entry"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
                .map(|(i, _)| serde_json::json!({"response": {"status": "201 Created", "location": format!("Observation/new-{i}/_history/1")}}))
                .collect();
            warp::reply::json(&serde_json::json!({
                "resourceType": "Bundle", "type": "transaction-response", "entry": entries,
            }))
        });
    let route = warp::path("fhir")
        .and(warp::path::tail())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .map(move |tail: warp::path::Tail, raw: String| {
            log.lock().unwrap().push(format!("{}?{raw}", tail.as_str()));
            if tail.as_str() == "Patient" && fail.load(std::sync::atomic::Ordering::SeqCst) {
                // Unwinds this connection's task: hyper closes it unanswered.
                panic!("the mock FHIR server drops this connection");
            }
            let query: std::collections::HashMap<String, String> =
                reqwest::Url::parse(&format!("http://q/?{raw}"))
                    .unwrap()
                    .query_pairs()
                    .into_owned()
                    .collect();
            let q = |k: &str| query.get(k).map(String::as_str);
            let body = match (tail.as_str(), q("patient")) {
                ("Patient", _) if q("identifier") == Some("urn:oid:2.16.156.1|MRN-77") => {
                    searchset(
                        vec![serde_json::json!({
                            "resourceType": "Patient", "id": "pat-1",
                            "name": [{"text": "张三"}],
                        })],
                        None,
                    )
                }
                ("Observation", Some("pat-1")) if q("page") == Some("2") => {
                    searchset(vec![fhir_resource("Observation", "obs-2", "pat-1")], None)
                }
                ("Observation", Some("pat-1")) if q("category") == Some("laboratory") => searchset(
                    vec![
                        fhir_resource("Observation", "obs-1", "pat-1"),
                        fhir_resource("Observation", "obs-9", "pat-2"),
                    ],
                    Some(format!(
                        "{own_base}/Observation?patient=pat-1&category=laboratory&page=2"
                    )),
                ),
                ("MedicationRequest", Some("pat-1")) => searchset(
                    vec![fhir_resource("MedicationRequest", "rx-1", "pat-1")],
                    None,
                ),
                _ => searchset(Vec::new(), None),
            };
            warp::reply::json(&body)
        });
    tokio::spawn(warp::serve(transaction.or(route)).incoming(listener).run());
    (base, requests, failing)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_come_from_the_hospitals_fhir_server() {
    let _turn = ONE_TESTNET_AT_A_TIME.lock().await;
    let (base, requests, failing) = mock_fhir_server().await;
    let mut net = Testnet::new(4);
    let holder = node_of(&net, "city-first-hospital");
    net.configure(holder, "gateway", "fhir_base", &format!("{base:?}"));
    net.configure(
        holder,
        "gateway",
        "fhir_identifier_system",
        "\"urn:oid:2.16.156.1\"",
    );
    net.start_all();
    net.reach(0, 2, 60, "no blocks").await;
    // The patient is linked to MRN-77 at the first hospital (its files on
    // disk are not read: this holder's records come from the FHIR server).
    let (setup, _) = grant_labs_and_imaging(&net).await;
    let first = institution("city-first-hospital");

    let labs = request(&setup, vec![Category::LabReports]).await;
    let out = net.dir().join("fhir");
    let fetched = fetch_records(
        &setup.client_second,
        &setup.doctor,
        labs,
        first.clone(),
        &out,
    )
    .await
    .unwrap();
    let paths = sorted_paths(&fetched);
    assert_eq!(
        paths,
        [
            "lab-reports/Observation-obs-1.json",
            "lab-reports/Observation-obs-2.json"
        ],
        "both pages, and not the other patient's observation"
    );
    for id in ["obs-1", "obs-2"] {
        let expected = serde_json::to_vec(&fhir_resource("Observation", id, "pat-1")).unwrap();
        assert_eq!(
            read(&out, &format!("lab-reports/Observation-{id}.json")),
            expected
        );
    }
    // The requesting hospital hands them to its own FHIR server, as its own
    // patient's, saying where they came from.
    let own_patient = "Patient?identifier=urn:oid:2.16.156.2|B-0042";
    let handed = medledger_client_sdk::records::hand_to_fhir(&fetched, &labs, &base, own_patient)
        .await
        .unwrap();
    assert_eq!(handed, 2);
    let posted = requests
        .lock()
        .unwrap()
        .iter()
        .find_map(|r| r.strip_prefix("POST ").map(str::to_string))
        .unwrap();
    let bundle: serde_json::Value = serde_json::from_str(&posted).unwrap();
    assert_eq!(bundle["type"], "transaction");
    for entry in bundle["entry"].as_array().unwrap() {
        let resource = &entry["resource"];
        assert_eq!(entry["request"]["method"], "POST");
        assert!(resource.get("id").is_none(), "the server gives its own ids");
        assert_eq!(resource["subject"]["reference"], own_patient);
        assert_eq!(
            resource["meta"]["source"],
            format!("urn:medledger:access:{}", labs.0.to_hex())
        );
    }
    requests.lock().unwrap().retain(|r| !r.starts_with("POST "));

    // Only the granted and requested category was searched for.
    let asked = requests.lock().unwrap().clone();
    assert!(
        asked.iter().all(|r| !r.starts_with("MedicationRequest")),
        "{asked:?}"
    );
    assert!(
        asked.iter().any(|r| r.starts_with("Observation")),
        "{asked:?}"
    );

    // Imaging: the server has none; the fetch completes with nothing.
    let imaging = request(&setup, vec![Category::Imaging]).await;
    let nothing = fetch_records(
        &setup.client_second,
        &setup.doctor,
        imaging,
        first.clone(),
        &out.join("imaging"),
    )
    .await
    .unwrap();
    assert!(nothing.items.is_empty());
    let asked = requests.lock().unwrap().clone();
    assert!(
        asked.iter().any(|r| r.starts_with("ImagingStudy")),
        "{asked:?}"
    );
    assert!(
        asked.iter().all(|r| !r.starts_with("MedicationRequest")),
        "{asked:?}"
    );
    // The FHIR server fails (its client's error names the search URL, record
    // number included): the requester gets a code and a fixed message, and
    // neither it nor the holder's log holds the record number.
    failing.store(true, std::sync::atomic::Ordering::SeqCst);
    let labs_again = request(&setup, vec![Category::LabReports]).await;
    let failed = fetch_records(
        &setup.client_second,
        &setup.doctor,
        labs_again,
        first.clone(),
        &out.join("failed"),
    )
    .await
    .unwrap_err();
    let said = format!("{failed} {failed:?}");
    assert!(said.contains("source_unavailable"), "{said}");
    for secret in ["MRN-77", "urn:oid", "identifier", "/fhir"] {
        assert!(!said.contains(secret), "the requester was told {said:?}");
    }
    let log = std::fs::read_to_string(net.nodes()[holder].home.join("node.log")).unwrap();
    assert!(log.contains("records are read from a FHIR server"));
    assert!(
        log.contains("record source failed"),
        "the failure is logged"
    );
    for secret in ["MRN-77", "张三", "pat-1", "obs-1"] {
        assert!(
            !log.contains(secret),
            "the holder's log contains {secret:?}"
        );
    }
}
