//! Benchmarks of the hot paths: applying transactions, proving and
//! verifying state, and verifying signatures (the chain's ZIP-215 rule,
//! single and batched, beside the alternatives it was chosen from). Run
//! with `cargo bench -p medledger-contracts`.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

use medledger_contracts::crypto::CryptoSuite;
use medledger_contracts::crypto::SecretKey;
use medledger_contracts::encoding::{BoundedString, BoundedVec, Hash32, HashFunction};
use medledger_contracts::ledger::MemoryLedger;
use medledger_contracts::records::LedgerParameters;
use medledger_contracts::state::{StateKey, verify_state_proof};
use medledger_contracts::state_machine::{BlockContext, GenesisPractitioner, execute_block};
use medledger_contracts::transaction::*;
use medledger_contracts::types::*;

fn key(label: &str) -> SecretKey {
    SecretKey::from_seed(
        HashFunction::Sha256
            .tagged_hash(b"medledger/bench-key", &[label.as_bytes()])
            .0,
    )
}

fn inst(id: &str) -> InstitutionId {
    InstitutionId::new(id).unwrap()
}

fn spec(id: &str, power: u64) -> InstitutionSpec {
    InstitutionSpec {
        id: inst(id),
        name: BoundedString::new(id).unwrap(),
        kind: InstitutionKind::Hospital,
        legal_code: BoundedString::new("12330100470116614F").unwrap(),
        region_code: BoundedString::new("330100").unwrap(),
        licence_ref: BoundedString::new("L").unwrap(),
        admin_key: key(&format!("admin:{id}")).public_key(),
        node_key: key(&format!("node:{id}")).public_key(),
        voting_power: power,
        transport_key: None,
    }
}

const T0: u64 = 1_790_000_000_000;

/// A ledger with `patients` registered patients, each with one grant to hosp-b.
fn ledger(patients: usize) -> (MemoryLedger, Vec<TxHash>) {
    let chain = Chain::new(ChainId::new("bench").unwrap(), CryptoSuite::Ed25519Sha256);
    let doc = GenesisPractitioner {
        institution: inst("hosp-b"),
        key: key("doc").public_key(),
        role: PractitionerRole::Physician,
        licence_hash: Hash32::default(),
    };
    let mut ledger = MemoryLedger::new(
        chain.clone(),
        Hash32::default(),
        Timestamp(T0),
        &LedgerParameters::default(),
        &[spec("hosp-a", 1), spec("hosp-b", 1)],
        &[doc],
        &[],
    )
    .unwrap();
    let mut grants = Vec::new();
    for chunk in (0..patients).collect::<Vec<_>>().chunks(500) {
        let mut txs = Vec::new();
        for &i in chunk {
            let k = key(&format!("patient-{i}"));
            let p = PatientId::from_key(chain.hash(), &k.public_key());
            txs.push(
                Transaction {
                    signer: Signer::Patient(p),
                    nonce: 0,
                    valid_until: Timestamp(T0 + LedgerParameters::default().tx_validity_window_ms),
                    payload: Payload::RegisterPatient,
                }
                .sign(&chain, &k),
            );
        }
        let time = Timestamp(ledger.time().0 + 1000);
        ledger.execute(time, &inst("hosp-a"), txs).unwrap();
        let mut txs = Vec::new();
        for &i in chunk {
            let k = key(&format!("patient-{i}"));
            let p = PatientId::from_key(chain.hash(), &k.public_key());
            let tx = Transaction {
                signer: Signer::Patient(p),
                nonce: 1,
                valid_until: Timestamp(T0 + LedgerParameters::default().tx_validity_window_ms),
                payload: Payload::Grant(terms(p)),
            }
            .sign(&chain, &k);
            grants.push(tx.id(&chain));
            txs.push(tx);
        }
        let time = Timestamp(ledger.time().0 + 1000);
        ledger.execute(time, &inst("hosp-a"), txs).unwrap();
    }
    (ledger, grants)
}

fn terms(patient: PatientId) -> GrantTerms {
    GrantTerms {
        patient,
        grantee: Grantee::Institution(inst("hosp-b")),
        categories: BoundedVec::new(vec![Category::LabReports, Category::Imaging]).unwrap(),
        holders: Holders::Any,
        purpose: Purpose::Treatment,
        not_before: Timestamp(T0),
        expires_at: Timestamp(T0 + 86_400_000 * 30),
        records_from: None,
        records_until: None,
        sensitive_included: BoundedVec::default(),
        notice_hash: Hash32::default(),
    }
}

fn bench_apply(c: &mut Criterion) {
    let (ledger, grants) = ledger(2_000);
    let chain = ledger.chain().clone();
    let doc = key("doc");
    let doc_id = PractitionerId::from_key(chain.hash(), &doc.public_key());
    let block: Vec<VerifiedTransaction> = grants
        .iter()
        .take(1_000)
        .enumerate()
        .map(|(n, grant)| {
            Transaction {
                signer: Signer::Practitioner(doc_id),
                nonce: n as u64,
                valid_until: Timestamp(T0 + LedgerParameters::default().tx_validity_window_ms),
                payload: Payload::AccessRequest {
                    grant: *grant,
                    holder: inst("hosp-a"),
                    categories: BoundedVec::new(vec![Category::LabReports]).unwrap(),
                    purpose: Purpose::Treatment,
                },
            }
            .sign(&chain, &doc)
            .verify(&chain)
            .unwrap()
        })
        .collect();
    let ctx = BlockContext {
        height: ledger.height() + 1,
        time: Timestamp(ledger.time().0 + 1000),
        hash: chain.hash(),
    };
    let mut group = c.benchmark_group("apply");
    group.throughput(Throughput::Elements(block.len() as u64));
    group.bench_function(
        "execute_block: 1000 access requests (state reads, decisions, audit log)",
        |b| b.iter(|| execute_block(ledger.store(), &ctx, &block).unwrap()),
    );
    let signed: Vec<SignedTransaction> = block.iter().map(|t| t.signed().clone()).collect();
    group.bench_function(
        "verify: 1000 signatures and forms (once per node per transaction)",
        |b| {
            b.iter_batched(
                || signed.clone(),
                |txs| {
                    txs.into_iter()
                        .map(|t| t.verify(&chain).unwrap())
                        .collect::<Vec<_>>()
                },
                BatchSize::LargeInput,
            )
        },
    );
    group.finish();
}

fn bench_proofs(c: &mut Criterion) {
    let (ledger, grants) = ledger(10_000);
    let height = ledger.height();
    let root = ledger.headers().last().unwrap().state_root;
    let key = StateKey::Grant(grants[4_321]);
    let (value, proof) = ledger.prove(&key, height).unwrap();
    let mut group = c.benchmark_group("state proofs (10,000 grants)");
    group.bench_function("generate", |b| {
        b.iter(|| ledger.prove(&key, height).unwrap())
    });
    group.bench_function("verify", |b| {
        b.iter(|| {
            verify_state_proof(HashFunction::Sha256, root, &key, value.as_deref(), &proof).unwrap()
        })
    });
    group.finish();
}

/// One signature by each of 64 keys over its own message: what a block of
/// transactions from different signers costs to verify.
fn bench_signatures(c: &mut Criterion) {
    use medledger_contracts::crypto::{PublicKey, Signature, verify_batch};
    let items: Vec<(SecretKey, Hash32, Signature)> = (0..64u32)
        .map(|i| {
            let secret = key(&format!("signer-{i}"));
            let message = HashFunction::Sha256.tagged_hash(b"bench-message", &[&i.to_be_bytes()]);
            let signature = secret.sign(&message);
            (secret, message, signature)
        })
        .collect();
    let prepared: Vec<_> = items
        .iter()
        .map(|(k, m, s)| (k.public_key().prepare().unwrap(), *m, *s))
        .collect();
    let raw = |(k, m, s): &(SecretKey, Hash32, Signature)| {
        let PublicKey::Ed25519(key) = k.public_key() else {
            unreachable!("Ed25519 keys")
        };
        (key, m.0, s.to_bytes())
    };
    let mut group = c.benchmark_group("signatures (64 signers)");
    group.throughput(Throughput::Elements(items.len() as u64));
    group.bench_function("ZIP-215 one by one (ed25519-zebra, the rule)", |b| {
        b.iter(|| {
            for (key, message, signature) in &prepared {
                key.verify(message, signature).unwrap();
            }
        })
    });
    group.bench_function("ZIP-215 in one batch (ed25519-zebra, the rule)", |b| {
        b.iter(|| assert!(verify_batch(&prepared)))
    });
    let consensus: Vec<_> = items
        .iter()
        .map(|item| {
            let (key, message, bytes) = raw(item);
            (
                ed25519_consensus::VerificationKey::try_from(key).unwrap(),
                message,
                ed25519_consensus::Signature::from(bytes),
            )
        })
        .collect();
    group.bench_function("ZIP-215 one by one (ed25519-consensus)", |b| {
        b.iter(|| {
            for (key, message, signature) in &consensus {
                key.verify(signature, message).unwrap();
            }
        })
    });
    let strict: Vec<_> = items
        .iter()
        .map(|item| {
            let (key, message, bytes) = raw(item);
            (
                ed25519_dalek::VerifyingKey::from_bytes(&key).unwrap(),
                message,
                ed25519_dalek::Signature::from_bytes(&bytes),
            )
        })
        .collect();
    group.bench_function("RFC 8032 strict one by one (ed25519-dalek, before)", |b| {
        b.iter(|| {
            for (key, message, signature) in &strict {
                key.verify_strict(message, signature).unwrap();
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench_apply, bench_proofs, bench_signatures);
criterion_main!(benches);
