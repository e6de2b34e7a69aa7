//! `medledger demo`: the consent story on an in-process ledger.
//!
//! This runs the real state machine, signatures, JMT state and audit log, in
//! one process. It is not a consortium: consensus between nodes, RocksDB and
//! the network are not built yet, and the output says so.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use medledger_client_sdk::KeyFile;
use medledger_contracts::encoding::{BoundedVec, Hash32, tagged_hash};
use medledger_contracts::ledger::MemoryLedger;
use medledger_contracts::merkle;
use medledger_contracts::records::{AuditEntry, DenialReason, GrantRecord, Outcome};
use medledger_contracts::state::{StateKey, verify_state_proof};
use medledger_contracts::transaction::{Payload, SignedTransaction, Signer, Transaction};
use medledger_contracts::types::*;
use medledger_genesis::example::EXAMPLE_CHAIN_ID;

struct Demo {
    ledger: MemoryLedger,
    keys: BTreeMap<String, KeyFile>,
    nonce: u64,
    audit: Vec<AuditEntry>,
}

impl Demo {
    fn key(&self, label: &str) -> anyhow::Result<&KeyFile> {
        self.keys
            .get(label)
            .with_context(|| format!("no key {label}"))
    }

    fn submit(
        &mut self,
        what: &str,
        signer: Signer,
        key: &KeyFile,
        payload: Payload,
    ) -> anyhow::Result<(TxHash, Outcome)> {
        self.nonce += 1;
        let tx: SignedTransaction = Transaction {
            signer,
            nonce: self.nonce,
            payload,
        }
        .sign(self.ledger.chain(), key.secret());
        let id = tx.transaction.id(self.ledger.chain());
        let time = Timestamp(self.ledger.time().0 + 2_000);
        let proposer = InstitutionId::new("city-first-hospital").map_err(anyhow::Error::msg)?;
        let (header, execution) = self.ledger.execute(time, &proposer, vec![tx])?;
        let receipt = execution
            .receipts
            .into_iter()
            .next()
            .context("no receipt")?;
        self.audit.extend(execution.audit_entries);
        println!(
            "  block {:>2}  {:<44} → {:?}",
            header.height, what, receipt.outcome
        );
        Ok((id, receipt.outcome))
    }
}

pub fn run() -> anyhow::Result<()> {
    println!(
        "medledger demo — in-process ledger: the real contracts, signatures, JMT state and audit log"
    );
    println!("(not yet a consortium: BFT consensus, RocksDB and the network come with the node)\n");
    let (file, mut keys) = super::genesis::example_consortium(EXAMPLE_CHAIN_ID, false)?;
    let genesis = file.validate()?;
    println!(
        "consortium {}: {} institutions, {} validators, genesis {}",
        genesis.chain_id.as_str(),
        genesis.institutions.len(),
        genesis.validators().count(),
        &genesis.hash().to_hex()[..16]
    );
    keys.insert("patient".into(), KeyFile::generate()?);
    let mut demo = Demo {
        ledger: genesis.memory_ledger()?,
        keys,
        nonce: 0,
        audit: Vec::new(),
    };

    let patient_key = demo.key("patient")?.clone();
    let patient = patient_key.patient_id();
    let doctor_key = demo.key("practitioner:dr-second-1")?.clone();
    let doctor = doctor_key.practitioner_id();
    let first = InstitutionId::new("city-first-hospital").map_err(anyhow::Error::msg)?;
    let second = InstitutionId::new("city-second-hospital").map_err(anyhow::Error::msg)?;
    println!(
        "patient {} (a key, no name); doctor at {second}; records at {first}\n",
        &patient.0.to_hex()[..16]
    );

    demo.submit(
        "patient registers",
        Signer::Patient(patient),
        &patient_key,
        Payload::RegisterPatient,
    )?;
    let now = demo.ledger.time();
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
        notice_hash: tagged_hash(
            b"medledger/notice",
            &[b"referral notice shown to the patient"],
        ),
    };
    let (grant, _) = demo.submit(
        "grant: second hospital may read labs+imaging",
        Signer::Patient(patient),
        &patient_key,
        Payload::Grant(terms),
    )?;
    let request_payload = || Payload::AccessRequest {
        grant,
        holder: first.clone(),
        categories: BoundedVec::new(vec![Category::LabReports]).unwrap_or_default(),
        purpose: Purpose::Referral,
    };
    let (request, outcome) = demo.submit(
        "doctor requests lab reports",
        Signer::Practitioner(doctor),
        &doctor_key,
        request_payload(),
    )?;
    if outcome != Outcome::Authorized {
        bail!("the request should have been authorised");
    }
    // The holder releases: here two stand-in documents, of which only hashes go on the ledger.
    let hashes = ["Observation/1", "DiagnosticReport/1"]
        .iter()
        .map(|r| tagged_hash(b"medledger/demo-content", &[r.as_bytes()]))
        .collect::<Vec<Hash32>>();
    let node_key = demo.key("node:city-first-hospital")?.clone();
    demo.submit(
        "first hospital records the release",
        Signer::InstitutionNode(first.clone()),
        &node_key,
        Payload::AccessServed {
            request,
            content_hashes: BoundedVec::new(hashes).map_err(|_| anyhow::anyhow!("hashes"))?,
        },
    )?;
    demo.submit(
        "patient revokes the grant",
        Signer::Patient(patient),
        &patient_key,
        Payload::Revoke { grant },
    )?;
    let (_, outcome) = demo.submit(
        "doctor requests again",
        Signer::Practitioner(doctor),
        &doctor_key,
        request_payload(),
    )?;
    if outcome != Outcome::Denied(DenialReason::GrantRevoked) {
        bail!("the request after revocation should have been refused, got {outcome:?}");
    }

    println!("\naudit: what happened to this patient, verified against block headers");
    let header = demo.ledger.headers().last().context("no blocks")?.clone();
    let leaves: Vec<Hash32> = demo.audit.iter().map(AuditEntry::leaf_hash).collect();
    for entry in demo.audit.iter().filter(|e| e.patient == patient) {
        let index = usize::try_from(entry.index)?;
        let proof = merkle::inclusion_proof(&leaves, index).context("proof")?;
        merkle::verify_inclusion(
            &header.audit_root,
            header.audit_size,
            entry.index,
            &leaves[index],
            &proof,
        )?;
        println!(
            "  #{:<2} block {:>2}  {}  (inclusion proof ✓)",
            entry.index,
            entry.at.height,
            entry.event_summary()
        );
    }
    let key = StateKey::Grant(grant);
    let (value, proof) = demo.ledger.prove(&key, header.height)?;
    verify_state_proof(header.state_root, &key, value.as_deref(), &proof)?;
    let record: GrantRecord = bcs::from_bytes(&value.context("grant missing")?)?;
    println!(
        "\ngrant {} at height {}: {:?} (JMT proof against the state root ✓)",
        &grant.0.to_hex()[..16],
        header.height,
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
        }
    }
}
