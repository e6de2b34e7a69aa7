//! The auditor's replay on each crypto suite: a short ledger of the example
//! consortium, certified by its validators' node keys, replays from its own
//! genesis, and is refused from the other suite's genesis of the same
//! consortium or with a vote altered.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use medledger_audit::archive::{ArchiveHeader, ArchiveSource, write_archive};
use medledger_audit::replay::Replay;
use medledger_contracts::block::Block;
use medledger_contracts::certificate::{
    CommitCertificate, CommitSignature, ConsensusAddress, VoteBody, VoteKind, vote_message,
};
use medledger_contracts::crypto::CryptoSuite;
use medledger_contracts::encoding::{BoundedVec, to_bytes};
use medledger_contracts::transaction::{Payload, SignedTransaction, Signer, Transaction};
use medledger_contracts::types::*;
use medledger_genesis::Genesis;
use medledger_genesis::example::{EXAMPLE_CHAIN_ID, city_consortium_on, published_example_key_on};
use medledger_store::ArchivedBlock;

fn genesis(suite: CryptoSuite) -> Genesis {
    city_consortium_on(suite, EXAMPLE_CHAIN_ID, |label| {
        published_example_key_on(suite, label).public_key()
    })
    .validate()
    .unwrap()
}

/// Registration, a grant and an access request, a block each, every block
/// certified by all validators.
fn ledger(genesis: &Genesis) -> Vec<ArchivedBlock> {
    let suite = genesis.crypto_suite;
    let chain = genesis.chain();
    let patient_key = published_example_key_on(suite, "audit-test-patient");
    let patient = PatientId::from_key(chain.hash(), &patient_key.public_key());
    let doctor_key = published_example_key_on(suite, "practitioner:dr-second-1");
    let doctor = PractitionerId::from_key(chain.hash(), &doctor_key.public_key());
    let start = genesis.genesis_time;
    let sign = |signer, key: &medledger_contracts::crypto::SecretKey, nonce, payload| {
        Transaction {
            signer,
            nonce,
            valid_until: Timestamp(start.0 + 60_000),
            payload,
        }
        .sign(&chain, key)
    };
    let first = InstitutionId::new("city-first-hospital").unwrap();
    let register = sign(
        Signer::Patient(patient),
        &patient_key,
        1,
        Payload::RegisterPatient,
    );
    let grant = sign(
        Signer::Patient(patient),
        &patient_key,
        2,
        Payload::Grant(GrantTerms {
            patient,
            grantee: Grantee::Institution(InstitutionId::new("city-second-hospital").unwrap()),
            categories: BoundedVec::new(vec![Category::LabReports]).unwrap(),
            holders: Holders::Listed(BoundedVec::new(vec![first.clone()]).unwrap()),
            purpose: Purpose::Treatment,
            not_before: start,
            expires_at: start.plus_days(30),
            records_from: None,
            records_until: None,
            sensitive_included: BoundedVec::default(),
            notice_hash: chain.hash().tagged_hash(b"notice", &[]),
        }),
    );
    let request = sign(
        Signer::Practitioner(doctor),
        &doctor_key,
        3,
        Payload::AccessRequest {
            grant: grant.id(&chain),
            holder: first,
            categories: BoundedVec::new(vec![Category::LabReports]).unwrap(),
            purpose: Purpose::Treatment,
        },
    );
    let mut ledger = genesis.memory_ledger().unwrap();
    let proposer = genesis.validators().next().unwrap().id.clone();
    let mut blocks = Vec::new();
    for tx in [register, grant, request] {
        let height = ledger.height() + 1;
        let time = Timestamp(start.0 + height * 1_000);
        let (header, execution) = ledger.execute(time, &proposer, vec![tx.clone()]).unwrap();
        let block_hash = header.hash(chain.hash());
        let signatures = genesis
            .validators()
            .map(|validator| {
                let key = published_example_key_on(suite, &format!("node:{}", validator.id));
                let address = ConsensusAddress::of_key(chain.hash(), &key.public_key());
                let body = VoteBody {
                    kind: VoteKind::Precommit,
                    height,
                    round: 0,
                    block: Some(block_hash),
                    validator: address,
                };
                CommitSignature {
                    validator: address,
                    signature: key.sign(&vote_message(&chain, &body)),
                }
            })
            .collect();
        let certificate = CommitCertificate {
            height,
            round: 0,
            block: block_hash,
            signatures: BoundedVec::new(signatures).unwrap(),
        };
        let block = Block {
            header,
            transactions: BoundedVec::new(vec![tx]).unwrap(),
        };
        blocks.push(ArchivedBlock {
            height,
            block: block.to_bytes(),
            certificate: to_bytes(&certificate),
            audit_entries: execution.audit_entries,
        });
    }
    blocks
}

/// Replays `blocks` (archived under `from`) from `genesis`.
fn replay(from: &Genesis, genesis: &Genesis, blocks: &[ArchivedBlock]) -> anyhow::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("archive.gz");
    write_archive(
        &path,
        &ArchiveHeader {
            chain_id: from.chain_id.as_str().to_string(),
            genesis_hash: from.hash(),
            height: blocks.len() as u64,
        },
        blocks.iter().cloned().map(Ok),
    )
    .unwrap();
    Replay::new(genesis)?.run(ArchiveSource::open(&path)?, |_, _, _, _| {})
}

#[test]
fn a_ledger_replays_from_its_own_suites_genesis_only() {
    let ed = genesis(CryptoSuite::Ed25519Sha256);
    let sm = genesis(CryptoSuite::Sm2Sm3);
    assert_ne!(ed.hash(), sm.hash());
    for (own, other) in [(&ed, &sm), (&sm, &ed)] {
        let blocks = ledger(own);
        let transactions: Vec<SignedTransaction> = blocks
            .iter()
            .flat_map(|b| {
                Block::from_bytes(&b.block)
                    .unwrap()
                    .transactions
                    .into_inner()
            })
            .collect();
        assert!(
            transactions
                .iter()
                .all(|t| own.crypto_suite.accepts(&t.public_key))
        );
        replay(own, own, &blocks).unwrap();
        let error = replay(own, other, &blocks).unwrap_err().to_string();
        assert!(!error.is_empty());
        // One validator's vote on the second block altered: refused, named.
        let mut altered = blocks.clone();
        let mut certificate: CommitCertificate =
            medledger_contracts::encoding::from_bytes(&altered[1].certificate, 1 << 20).unwrap();
        let mut signatures = certificate.signatures.into_inner();
        signatures[0].signature = signatures[1].signature;
        certificate.signatures = BoundedVec::new(signatures).unwrap();
        altered[1].certificate = to_bytes(&certificate);
        let error = format!("{:#}", replay(own, own, &altered).unwrap_err());
        assert!(error.contains("commit certificate"), "{error}");
    }
}
