//! An auditor's replay of a live testnet's ledger: it passes as exported,
//! and fails at the right height, naming the check, for an archive with one
//! thing changed — a transaction, a certificate (too little power, a signer
//! outside the validator set), a header's state root, an audit entry.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;

use common::*;
use medledger_client_sdk::{Client, Identity, KeyFile, TermsBuilder, TxBuilder, TxOutcome};
use medledger_contracts::block::Block;
use medledger_contracts::certificate::{
    CommitCertificate, CommitSignature, ConsensusAddress, VoteBody, VoteKind, vote_message,
};
use medledger_contracts::encoding::{from_bytes, to_bytes};
use medledger_contracts::records::AuditEntry;
use medledger_contracts::types::{Category, Grantee, InstitutionId, Purpose};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The archive's block record (docs/auditing.md describes the format).
#[derive(Clone, Serialize, Deserialize)]
struct ArchivedBlock {
    height: u64,
    block: Vec<u8>,
    certificate: Vec<u8>,
    audit_entries: Vec<AuditEntry>,
}

const MAGIC: &[u8] = b"medledger-archive/v1\n";

fn read_archive(path: &Path) -> (Vec<u8>, Vec<ArchivedBlock>) {
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut bytes)
        .unwrap();
    assert!(bytes.starts_with(MAGIC));
    let mut frames = Vec::new();
    let mut at = MAGIC.len();
    while at < bytes.len() {
        let length = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        frames.push(bytes[at + 4..at + 4 + length].to_vec());
        at += 4 + length;
    }
    let header = frames.remove(0);
    let blocks = frames
        .iter()
        .map(|f| from_bytes(f, 64 << 20).unwrap())
        .collect();
    (header, blocks)
}

fn write_archive(path: &Path, header: &[u8], blocks: &[ArchivedBlock]) {
    let mut out = flate2::write::GzEncoder::new(
        std::fs::File::create(path).unwrap(),
        flate2::Compression::fast(),
    );
    out.write_all(MAGIC).unwrap();
    for frame in std::iter::once(header.to_vec()).chain(blocks.iter().map(to_bytes)) {
        out.write_all(&u32::try_from(frame.len()).unwrap().to_be_bytes())
            .unwrap();
        out.write_all(&frame).unwrap();
    }
    out.finish().unwrap();
}

/// Runs `medledger audit replay` on an archive: (success, stdout + stderr).
fn replay(genesis: &Path, archive: &Path, extra: &[&str]) -> (bool, String) {
    let output = Command::new(BIN)
        .args(["audit", "replay", "--genesis"])
        .arg(genesis)
        .arg("--archive")
        .arg(archive)
        .args(extra)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn assert_fails(genesis: &Path, archive: &Path, height: u64, check: &str) {
    assert_fails_with(genesis, archive, &[], height, check);
}

/// [`assert_fails`] with more `audit replay` arguments.
fn assert_fails_with(genesis: &Path, archive: &Path, extra: &[&str], height: u64, check: &str) {
    let (ok, text) = replay(genesis, archive, extra);
    assert!(!ok, "a tampered archive replayed:\n{text}");
    assert!(
        text.contains(&format!("replay failed at height {height}"))
            && text.contains(&format!("{check} check failed")),
        "expected a {check} failure at height {height}:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_passes_and_each_tampered_part_fails_at_its_height() {
    let _turn = ONE_TESTNET_AT_A_TIME.lock().await;
    let mut net = Testnet::new(4);
    net.start_all();
    net.reach(0, 2, 60, "no blocks").await;
    let chain = common::chain();
    let client = Client::new(&net.nodes()[0].http, chain.clone()).unwrap();
    let patient_key = KeyFile::generate().unwrap();
    let patient = patient_key.patient_id();
    let as_patient = TxBuilder::new(chain.clone(), Identity::patient(&patient_key));
    client
        .submit_and_wait(&as_patient.register_patient(), None)
        .await
        .unwrap();
    let second = InstitutionId::new("city-second-hospital").unwrap();
    let first = InstitutionId::new("city-first-hospital").unwrap();
    let terms = TermsBuilder::new(patient, Grantee::Institution(second))
        .category(Category::LabReports)
        .holders([first.clone()])
        .build()
        .unwrap();
    let grant = client
        .submit_and_wait(&as_patient.grant(terms), None)
        .await
        .unwrap();
    let doctor = TxBuilder::new(
        chain.clone(),
        Identity::practitioner(&testnet_key(&net, "practitioner:dr-second-1")),
    );
    let ask = || {
        doctor
            .access_request(
                grant.tx,
                first.clone(),
                vec![Category::LabReports],
                Purpose::Treatment,
            )
            .unwrap()
    };
    let authorised = client.submit_and_wait(&ask(), None).await.unwrap();
    assert_eq!(authorised.outcome, TxOutcome::Authorized);
    let revoked = client
        .submit_and_wait(&as_patient.revoke(grant.tx), None)
        .await
        .unwrap();
    let denied = client.submit_and_wait(&ask(), None).await.unwrap();
    assert!(
        matches!(denied.outcome, TxOutcome::Denied { .. }),
        "{denied:?}"
    );
    // The patient fetches their own records (R7.8); the hospital holds
    // none of theirs: a release of nothing, recorded all the same.
    let own = client
        .submit_and_wait(
            &as_patient
                .own_records_request(first.clone(), vec![Category::LabReports])
                .unwrap(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(own.outcome, TxOutcome::Authorized);
    let genesis = medledger_genesis::GenesisFile::read(&net.dir().join("genesis.json"))
        .unwrap()
        .validate()
        .unwrap();
    let light = medledger_client_sdk::LightClient::new(
        client.clone(),
        &genesis,
        std::time::Duration::from_secs(60),
    )
    .unwrap();
    let fetched = medledger_client_sdk::records::fetch_own_records(
        &light,
        &Identity::patient(&patient_key),
        own.tx,
        first.clone(),
        &net.dir().join("own"),
    )
    .await
    .unwrap();
    assert!(fetched.items.is_empty());
    net.reach(0, fetched.release_height + 1, 30, "no progress")
        .await;

    // A regulator's auditor replays a running node over its API.
    assert_replay_over_api_passes(&net, 1);
    // A practitioner may not read the archive.
    let doctor_reads = Client::new(&net.nodes()[1].http, chain.clone())
        .unwrap()
        .get_signed(
            "/v1/archive/1",
            &Identity::practitioner(&testnet_key(&net, "practitioner:dr-second-1")),
        )
        .await
        .unwrap_err();
    assert_eq!(doctor_reads.code(), Some("forbidden"));
    // Issue 16, item 12: nor may another institution's admin (on 8925727 any
    // member's admin key downloaded whole blocks): only member nodes and
    // regulators' auditors.
    let hospital_admin_reads = Client::new(&net.nodes()[1].http, chain.clone())
        .unwrap()
        .get_signed(
            "/v1/archive/1",
            &Identity::institution(
                InstitutionId::new("city-second-hospital").unwrap(),
                &testnet_key(&net, "admin:city-second-hospital"),
            ),
        )
        .await
        .unwrap_err();
    assert_eq!(hospital_admin_reads.code(), Some("forbidden"));
    net.kill(0);

    // Export the stopped node and replay it: it passes, with reports.
    let genesis = net.dir().join("genesis.json");
    let archive = net.dir().join("ledger.archive");
    let status = Command::new(BIN)
        .args(["export", "--data"])
        .arg(net.nodes()[0].home.join("data"))
        .arg("--genesis")
        .arg(&genesis)
        .arg("--to")
        .arg(&archive)
        .status()
        .unwrap();
    assert!(status.success());
    let reports = net.dir().join("reports");
    let patient_hex = patient.0.to_hex();
    let (ok, text) = replay(
        &genesis,
        &archive,
        &[
            "--report",
            reports.to_str().unwrap(),
            "--patient",
            &patient_hex,
        ],
    );
    assert!(ok, "{text}");
    assert!(text.contains("replay passed"), "{text}");
    // The patient's report lists exactly what happened to them, in order.
    let rows: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(reports.join(format!("patient-{patient_hex}.json"))).unwrap(),
    )
    .unwrap();
    let events: Vec<(&str, Option<&str>)> = rows
        .iter()
        .map(|r| (r["event"].as_str().unwrap(), r["decision"].as_str()))
        .collect();
    assert_eq!(events.len(), 6, "{rows:?}");
    assert_eq!(events[0].0, "granted");
    assert_eq!(events[1], ("access decided", Some("authorised")));
    assert_eq!(events[2].0, "revoked");
    assert_eq!(events[3].0, "access decided");
    assert!(events[3].1.unwrap().starts_with("denied"), "{rows:?}");
    // Their own request and its release, as theirs: no requester, no decision.
    assert_eq!(events[4], ("own records requested", None));
    assert_eq!(events[5], ("released", None));
    for row in &rows[4..] {
        assert_eq!(row["basis"], "own records", "{row}");
        assert_eq!(row["holder"], "city-first-hospital", "{row}");
    }
    // The regulator's page: the denial as a sentence in Chinese and English,
    // naming the practitioner and institution, with the transaction.
    let html = std::fs::read_to_string(reports.join("report.html")).unwrap();
    assert!(html.contains("<svg"));
    let doctor = testnet_key(&net, "practitioner:dr-second-1")
        .practitioner_id()
        .0
        .to_hex();
    let who = format!("{}…", &doctor[..12]);
    assert!(
        html.contains(&format!(
            "city-second-hospital 的医务人员 {who} 有 1 次调取请求被拒绝"
        )),
        "{html}"
    );
    assert!(
        html.contains(&format!(
            "Practitioner {who} of city-second-hospital had 1 access requests denied"
        )),
        "{html}"
    );
    assert!(html.contains(&denied.tx.0.to_hex()), "{html}");
    // Trends: one line per requesting institution.
    let trends = html
        .split("Requests per day by requesting institution</h2>")
        .nth(1)
        .unwrap_or_default();
    assert!(
        trends.starts_with("<svg")
            && trends[..trends.find("</svg>").unwrap()].contains("city-second-hospital"),
        "{html}"
    );
    let anomalies: Value =
        serde_json::from_str(&std::fs::read_to_string(reports.join("anomalies.json")).unwrap())
            .unwrap();
    assert_eq!(
        anomalies["releases_without_an_authorised_request"],
        serde_json::json!([])
    );
    assert_eq!(
        anomalies["denied_requests_by_requester"]
            .as_object()
            .unwrap()
            .len(),
        1
    );

    let (header, blocks) = read_archive(&archive);
    let at = |h: u64| blocks.iter().position(|b| b.height == h).unwrap();
    let tampered = net.dir().join("tampered.archive");
    let with = |height: u64, change: &dyn Fn(&mut ArchivedBlock)| {
        let mut copy = blocks.clone();
        change(&mut copy[at(height)]);
        write_archive(&tampered, &header, &copy);
    };

    // A transaction: one byte of its signature.
    with(grant.height, &|b| {
        let mut block = Block::from_bytes(&b.block).unwrap();
        let mut txs = block.transactions.clone().into_inner();
        let mut bytes = to_bytes(&txs[0]);
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        txs[0] = from_bytes(&bytes, 1 << 20).unwrap();
        block.transactions = medledger_contracts::encoding::BoundedVec::new(txs).unwrap();
        b.block = block.to_bytes();
    });
    assert_fails(&genesis, &tampered, grant.height, "transaction signature");

    // A header's state root: the certificate no longer certifies it.
    with(authorised.height, &|b| {
        let mut block = Block::from_bytes(&b.block).unwrap();
        block.header.state_root.0[0] ^= 1;
        b.block = block.to_bytes();
    });
    assert_fails(&genesis, &tampered, authorised.height, "commit certificate");

    // A certificate with too little voting power.
    with(revoked.height, &|b| {
        let mut certificate: CommitCertificate = from_bytes(&b.certificate, 1 << 16).unwrap();
        certificate.signatures.retain(|_| false);
        b.certificate = to_bytes(&certificate);
    });
    assert_fails(&genesis, &tampered, revoked.height, "commit certificate");

    // A certificate signed by a member that is not a validator at that
    // height (an observer's node key, or a removed validator's).
    let outsider = testnet_key(&net, "node:first-online");
    with(revoked.height, &|b| {
        let mut certificate: CommitCertificate = from_bytes(&b.certificate, 1 << 16).unwrap();
        let address = ConsensusAddress::of_key(common::chain().hash(), &outsider.public_key());
        let body = VoteBody {
            kind: VoteKind::Precommit,
            height: certificate.height,
            round: certificate.round,
            block: Some(certificate.block),
            validator: address,
        };
        let signature = outsider
            .secret()
            .sign(&vote_message(&common::chain(), &body));
        let mut signatures = certificate.signatures.clone().into_inner();
        signatures[0] = CommitSignature {
            validator: address,
            signature,
        };
        certificate.signatures =
            medledger_contracts::encoding::BoundedVec::new(signatures).unwrap();
        b.certificate = to_bytes(&certificate);
    });
    let (ok, text) = replay(&genesis, &tampered, &[]);
    assert!(
        !ok && text.contains("not a validator at this height"),
        "{text}"
    );
    assert_fails(&genesis, &tampered, revoked.height, "commit certificate");

    // A state root that re-execution does not reproduce, in a header the
    // validators did certify (here re-signed with their keys: what a
    // colluding two thirds could do). The next block no longer links to it
    // either, yet the state root is the failure reported, at its height.
    let validators: Vec<KeyFile> = [
        "city-first-hospital",
        "city-second-hospital",
        "regional-platform",
        "health-commission",
    ]
    .iter()
    .map(|name| testnet_key(&net, &format!("node:{name}")))
    .collect();
    with(authorised.height, &|b| {
        let mut block = Block::from_bytes(&b.block).unwrap();
        block.header.state_root.0[0] ^= 1;
        let mut certificate: CommitCertificate = from_bytes(&b.certificate, 1 << 16).unwrap();
        certificate.block = block.header.hash(common::chain().hash());
        let signatures = certificate
            .signatures
            .iter()
            .map(|signed| {
                let key = validators
                    .iter()
                    .find(|k| {
                        ConsensusAddress::of_key(common::chain().hash(), &k.public_key())
                            == signed.validator
                    })
                    .expect("a validator's key");
                let body = VoteBody {
                    kind: VoteKind::Precommit,
                    height: certificate.height,
                    round: certificate.round,
                    block: Some(certificate.block),
                    validator: signed.validator,
                };
                CommitSignature {
                    validator: signed.validator,
                    signature: key.secret().sign(&vote_message(&common::chain(), &body)),
                }
            })
            .collect();
        certificate.signatures =
            medledger_contracts::encoding::BoundedVec::new(signatures).unwrap();
        b.certificate = to_bytes(&certificate);
        b.block = block.to_bytes();
    });
    assert_fails(&genesis, &tampered, authorised.height, "state root");

    // An audit entry the node stored.
    with(authorised.height, &|b| {
        b.audit_entries[0].at.time.0 += 1;
    });
    assert_fails(&genesis, &tampered, authorised.height, "audit entry");

    // A checkpoint: written by one replay, resumed by the next, which only
    // skims the blocks before it and still reports the same.
    let checkpoint = net.dir().join("replay.checkpoint");
    let checkpointed = net.dir().join("checkpointed");
    let (ok, text) = replay(
        &genesis,
        &archive,
        &["--checkpoint", checkpoint.to_str().unwrap()],
    );
    assert!(ok && checkpoint.exists(), "{text}");
    let (ok, text) = replay(
        &genesis,
        &archive,
        &[
            "--checkpoint",
            checkpoint.to_str().unwrap(),
            "--report",
            checkpointed.to_str().unwrap(),
        ],
    );
    assert!(
        ok && text.contains("resuming from the checkpoint"),
        "{text}"
    );
    for name in ["summary.json", "anomalies.json"] {
        let read = |dir: &Path| std::fs::read_to_string(dir.join(name)).unwrap();
        assert_eq!(read(&reports), read(&checkpointed), "{name}");
    }
    // The state kept on disk instead (a RocksDB store): the same verdict and
    // reports; run again, it resumes from the store.
    let state_dir = net.dir().join("replay-state");
    let on_disk = net.dir().join("on-disk");
    let (ok, text) = replay(
        &genesis,
        &archive,
        &["--state-dir", state_dir.to_str().unwrap()],
    );
    assert!(ok && text.contains("replay passed"), "{text}");
    let (ok, text) = replay(
        &genesis,
        &archive,
        &[
            "--state-dir",
            state_dir.to_str().unwrap(),
            "--report",
            on_disk.to_str().unwrap(),
        ],
    );
    assert!(ok && text.contains("resuming the replay kept in"), "{text}");
    for name in ["summary.json", "anomalies.json"] {
        let read = |dir: &Path| std::fs::read_to_string(dir.join(name)).unwrap();
        assert_eq!(read(&reports), read(&on_disk), "{name}");
    }
    // A fresh on-disk replay fails a tampered archive at the same check as in memory.
    let fresh = net.dir().join("replay-state-2");
    with(revoked.height, &|b| {
        let mut certificate: CommitCertificate = from_bytes(&b.certificate, 1 << 16).unwrap();
        certificate.signatures.retain(|_| false);
        b.certificate = to_bytes(&certificate);
    });
    assert_fails_with(
        &genesis,
        &tampered,
        &["--state-dir", fresh.to_str().unwrap()],
        revoked.height,
        "commit certificate",
    );

    // A skimmed block still has to carry the audit entries its header commits to.
    with(authorised.height, &|b| {
        b.audit_entries[0].at.time.0 += 1;
    });
    assert_fails_with(
        &genesis,
        &tampered,
        &["--checkpoint", checkpoint.to_str().unwrap()],
        authorised.height,
        "audit entry",
    );
    // A checkpoint whose state was altered is refused.
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&checkpoint).unwrap())
        .read_to_end(&mut bytes)
        .unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let mut out = flate2::write::GzEncoder::new(
        std::fs::File::create(&checkpoint).unwrap(),
        flate2::Compression::fast(),
    );
    out.write_all(&bytes).unwrap();
    out.finish().unwrap();
    let (ok, text) = replay(
        &genesis,
        &archive,
        &["--checkpoint", checkpoint.to_str().unwrap()],
    );
    assert!(!ok && text.contains("state root"), "{text}");
}
