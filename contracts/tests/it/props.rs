//! Property tests: the contract against small reference models, on random inputs.

use proptest::prelude::*;

use medledger_contracts::crypto::SecretKey;
use medledger_contracts::encoding::{BoundedVec, Hash32};
use medledger_contracts::records::*;
use medledger_contracts::state::{JmtStore, MemoryStore, StateReader, WriteSet};
use medledger_contracts::state_machine::{BlockContext, execute_block};
use medledger_contracts::transaction::*;
use medledger_contracts::types::*;

use crate::world::*;

const CATEGORY_POOL: [Category; 4] = [
    Category::LabReports,
    Category::Imaging,
    Category::Prescriptions,
    Category::FullRecord,
];
const HOLDER_POOL: [&str; 4] = ["hosp-a", "platform", "hosp-b", "cdc"];
const REQUESTERS: [&str; 3] = ["doc-a", "doc-b", "doc-b2"];

fn subset<T: Clone>(pool: &[T], mask: u8) -> Vec<T> {
    pool.iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, t)| t.clone())
        .collect()
}

#[derive(Debug, Clone)]
struct Case {
    grantee: u8,
    grant_categories: u8,
    holders: Option<u8>,
    not_before_h: u64,
    duration_h: u64,
    requester: usize,
    request_categories: u8,
    holder: usize,
    at_h: u64,
    revoked: bool,
    same_purpose: bool,
}

fn case() -> impl Strategy<Value = Case> {
    (
        (
            0u8..3,
            1u8..16,
            prop::option::of(1u8..8),
            0u64..48,
            1u64..96,
        ),
        (
            0usize..3,
            1u8..8,
            0usize..4,
            0u64..160,
            any::<bool>(),
            prop::bool::weighted(0.9),
        ),
    )
        .prop_map(
            |(
                (grantee, grant_categories, holders, not_before_h, duration_h),
                (requester, request_categories, holder, at_h, revoked, same_purpose),
            )| Case {
                grantee,
                grant_categories,
                holders,
                not_before_h,
                duration_h,
                requester,
                request_categories,
                holder,
                at_h,
                revoked,
                same_purpose,
            },
        )
}

/// The reference model: the rules of R6 and R7.1 written as plainly as possible.
fn model(c: &Case, start: u64) -> Decision {
    const HOUR: u64 = 3_600_000;
    let not_before = start + c.not_before_h * HOUR;
    let expires = not_before + c.duration_h * HOUR;
    let at = start + c.at_h * HOUR;
    let requester = REQUESTERS[c.requester];
    let requester_institution = PRACTITIONERS.iter().find(|p| p.0 == requester).unwrap().1;
    let grant_categories = subset(&CATEGORY_POOL, c.grant_categories);
    let asked = subset(&CATEGORY_POOL[..3], c.request_categories);
    let holder = HOLDER_POOL[c.holder];
    let deny = Decision::Denied;
    if c.revoked {
        return deny(DenialReason::GrantRevoked);
    }
    if at < not_before {
        return deny(DenialReason::GrantNotYetValid);
    }
    if at >= expires {
        return deny(DenialReason::GrantExpired);
    }
    let is_grantee = match c.grantee {
        0 => requester_institution == "hosp-b",
        1 => requester == "doc-b",
        _ => requester_institution == "hosp-a",
    };
    if !is_grantee {
        return deny(DenialReason::NotGrantee);
    }
    if !grant_categories.contains(&Category::FullRecord)
        && !asked.iter().all(|a| grant_categories.contains(a))
    {
        return deny(DenialReason::CategoryNotGranted);
    }
    if let Some(mask) = c.holders
        && !subset(&HOLDER_POOL[..3], mask).contains(&holder)
    {
        return deny(DenialReason::HolderNotGranted);
    }
    if holder == "cdc" {
        return deny(DenialReason::HolderNotEligible);
    }
    if !c.same_purpose {
        return deny(DenialReason::PurposeMismatch);
    }
    Decision::Authorized
}

fn run_case(c: &Case) -> Decision {
    const HOUR: u64 = 3_600_000;
    let mut w = World::new();
    let p = w.patient("alice");
    let start = w.now + 1000;
    let grantee = match c.grantee {
        0 => Grantee::Institution(inst("hosp-b")),
        1 => Grantee::Practitioner(World::practitioner("doc-b").0),
        _ => Grantee::Institution(inst("hosp-a")),
    };
    let holders = match c.holders {
        None => Holders::Any,
        Some(mask) => {
            let mut list: Vec<InstitutionId> = subset(&HOLDER_POOL[..3], mask)
                .iter()
                .map(|h| inst(h))
                .collect();
            list.sort();
            Holders::Listed(BoundedVec::new(list).unwrap())
        }
    };
    let mut terms = w.terms(
        p,
        grantee,
        &subset(&CATEGORY_POOL, c.grant_categories),
        holders,
    );
    terms.not_before = Timestamp(start + c.not_before_h * HOUR);
    terms.expires_at = Timestamp(terms.not_before.0 + c.duration_h * HOUR);
    let grant = w.grant("alice", terms);
    if c.revoked {
        assert_eq!(
            w.act(Signer::Patient(p), &key("alice"), Payload::Revoke { grant })
                .outcome,
            Outcome::Applied
        );
    }
    w.now = (start + c.at_h * HOUR).max(w.now) - 1000;
    let (id, k) = World::practitioner(REQUESTERS[c.requester]);
    let purpose = if c.same_purpose {
        Purpose::Treatment
    } else {
        Purpose::InsuranceClaim
    };
    let receipt = w.act(
        Signer::Practitioner(id),
        &k,
        Payload::AccessRequest {
            grant,
            holder: inst(HOLDER_POOL[c.holder]),
            categories: cats(&subset(&CATEGORY_POOL[..3], c.request_categories)),
            purpose,
        },
    );
    assert_eq!(receipt.audit_indexes.len(), 1, "every decision is audited");
    match receipt.outcome {
        Outcome::Authorized => Decision::Authorized,
        Outcome::Denied(reason) => Decision::Denied(reason),
        other => panic!("unexpected outcome {other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// A grant is usable only by its grantee, for its categories and holders,
    /// between not-before and expiry, and never after revocation (R6, R7.1).
    #[test]
    fn access_decisions_match_the_reference_model(c in case()) {
        // The model's clock starts at the block after registration (T0 + 2 s).
        let start = T0 + 2_000;
        let expected = model(&c, start);
        prop_assert_eq!(run_case(&c), expected);
    }

    /// A delegate acts only within its delegation and period (R5.9).
    #[test]
    fn delegates_act_only_within_their_period(
        length_s in 2u64..60,
        act_at_s in 1u64..80,
        ended_early in any::<bool>(),
        for_other in any::<bool>(),
    ) {
        let mut w = World::new();
        let p = w.patient("alice");
        let d = w.patient("delegate");
        let other = w.patient("other");
        let created = w.now + 1000;
        let tx = w.sign(Signer::Patient(p), &key("alice"), Payload::Delegate {
            delegate: d,
            role: DelegateRole::Proxy,
            expires_at: Timestamp(created + length_s * 1000),
        });
        let delegation = tx.id(&w.chain);
        prop_assert_eq!(w.run(tx).outcome, Outcome::Applied);
        if ended_early {
            prop_assert_eq!(w.act(Signer::Patient(p), &key("alice"), Payload::EndDelegation { delegation }).outcome, Outcome::Applied);
        }
        w.now = (created + act_at_s * 1000).max(w.now) - 1000;
        let acting_at = w.now + 1000;
        let subject = if for_other { other } else { p };
        let terms = w.terms(subject, Grantee::Institution(inst("hosp-b")), &[Category::Imaging], Holders::Any);
        let outcome = w.act(Signer::Delegate(delegation), &key("delegate"), Payload::Grant(terms)).outcome;
        let active = !ended_early && acting_at < created + length_s * 1000;
        let expected_ok = active && !for_other;
        prop_assert_eq!(outcome == Outcome::Applied, expected_ok, "outcome {:?}", outcome);
    }

    /// An emergency access is always recorded and stays flagged until reviewed (R7.3, R7.4).
    #[test]
    fn emergency_access_stays_flagged_until_reviewed(reviews in prop::collection::vec(0usize..4, 0..4)) {
        let mut w = World::new();
        let p = w.patient("alice");
        let (doc, k) = World::practitioner("doc-b");
        let tx = w.sign(Signer::Practitioner(doc), &k, Payload::EmergencyAccess {
            patient: p,
            holder: inst("hosp-a"),
            categories: cats(&[Category::FullRecord]),
            reason: EmergencyReason::LifeThreatening,
        });
        let access = tx.id(&w.chain);
        let r = w.run(tx);
        prop_assert_eq!(r.outcome, Outcome::Authorized);
        prop_assert_eq!(r.audit_indexes.len(), 1);
        let reviewers = ["hosp-a", "hosp-b", "nhc", "cdc"];
        let mut reviewed_by_eligible = false;
        for who in reviews {
            let outcome = w.act(Signer::Institution(inst(reviewers[who])), &key(&format!("admin:{}", reviewers[who])), Payload::EmergencyReview {
                access,
                finding: ReviewFinding::Justified,
                record_hash: Hash32([1; 32]),
            }).outcome;
            // A regulator, never the requester's own institution (R7.4).
            let eligible = reviewers[who] == "nhc";
            prop_assert_eq!(outcome == Outcome::Applied, eligible && !reviewed_by_eligible);
            reviewed_by_eligible |= eligible;
        }
        let record: AccessRecord = w.get(&medledger_contracts::state::StateKey::Access(access)).unwrap();
        let AccessKind::Emergency { review, .. } = record.kind else { panic!("not emergency") };
        prop_assert_eq!(review.is_some(), reviewed_by_eligible);
    }

    /// Signatures for any other chain id are refused before state is read.
    #[test]
    fn wrong_chain_signatures_are_refused(chain in "[a-z0-9-]{1,20}") {
        prop_assume!(chain != "medledger-test");
        let k = key("alice");
        let tx = Transaction { signer: Signer::Patient(PatientId::from_key(hash(), &k.public_key())), nonce: 0, valid_until: Timestamp(T0), payload: Payload::RegisterPatient }
            .sign(&self::chain(&chain), &k);
        prop_assert!(tx.verify(&self::chain("medledger-test")).is_err());
    }
}

/// A random workload over a small universe of actors.
fn workload_tx(
    w: &mut World,
    choice: (u8, u8, u8, u8),
    grants: &mut Vec<TxHash>,
    requests: &mut Vec<TxHash>,
) -> SignedTransaction {
    let patients = ["p0", "p1", "p2"];
    let (kind, a, b, c) = choice;
    let label = patients[usize::from(a) % 3];
    let pk = key(label);
    let pid = PatientId::from_key(hash(), &pk.public_key());
    match kind % 7 {
        0 => w.sign(Signer::Patient(pid), &pk, Payload::RegisterPatient),
        1 | 2 => {
            let grantee = if b % 2 == 0 {
                Grantee::Institution(inst("hosp-b"))
            } else {
                Grantee::Practitioner(World::practitioner("doc-a").0)
            };
            let terms = w.terms(
                pid,
                grantee,
                &subset(&CATEGORY_POOL, 1 + c % 15),
                Holders::Any,
            );
            let tx = w.sign(Signer::Patient(pid), &pk, Payload::Grant(terms));
            grants.push(tx.id(&w.chain));
            tx
        }
        3 => {
            let grant = grants
                .get(usize::from(b) % grants.len().max(1))
                .copied()
                .unwrap_or(TxHash(Hash32([0; 32])));
            w.sign(Signer::Patient(pid), &pk, Payload::Revoke { grant })
        }
        4 | 5 => {
            let grant = grants
                .get(usize::from(b) % grants.len().max(1))
                .copied()
                .unwrap_or(TxHash(Hash32([0; 32])));
            let doc = REQUESTERS[usize::from(c) % 3];
            let (id, k): (PractitionerId, SecretKey) = World::practitioner(doc);
            let tx = w.sign(
                Signer::Practitioner(id),
                &k,
                Payload::AccessRequest {
                    grant,
                    holder: inst(HOLDER_POOL[usize::from(c) % 3]),
                    categories: cats(&subset(&CATEGORY_POOL[..3], 1 + b % 7)),
                    purpose: Purpose::Treatment,
                },
            );
            requests.push(tx.id(&w.chain));
            tx
        }
        _ => {
            let request = requests
                .get(usize::from(b) % requests.len().max(1))
                .copied()
                .unwrap_or(TxHash(Hash32([0; 32])));
            let holder = HOLDER_POOL[usize::from(c) % 3];
            w.sign(
                Signer::InstitutionNode(inst(holder)),
                &key(&format!("node:{holder}")),
                Payload::AccessServed {
                    request,
                    content_hashes: BoundedVec::new(vec![Hash32([c; 32])]).unwrap(),
                },
            )
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// The JMT-backed ledger and a plain map give the same receipts; the JMT
    /// root depends only on the final contents, not on the order or batching
    /// of inserts; replays are always refused.
    #[test]
    fn jmt_state_matches_a_plain_map_and_roots_ignore_insert_order(
        blocks in prop::collection::vec(prop::collection::vec((any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>()), 0..6), 1..8),
        replay_every in 2usize..5,
        chunk in 1usize..40,
        seed in any::<u64>(),
    ) {
        let mut w = World::new();
        let mut plain = MemoryStore::default();
        // The plain map starts from the same genesis contents.
        let genesis: WriteSet = {
            let store = w.ledger.store();
            let _ = store;
            medledger_contracts::state_machine::genesis_writes(
                hash(),
                &LedgerParameters::default(),
                &institutions(),
                &PRACTITIONERS.iter().map(|(l, i, r)| medledger_contracts::state_machine::GenesisPractitioner {
                    institution: inst(i), key: key(l).public_key(), role: *r, licence_hash: licence_of(l),
                }).collect::<Vec<_>>(),
                &[],
            ).unwrap()
        };
        plain.apply(genesis);
        let (mut grants, mut requests) = (Vec::new(), Vec::new());
        let mut sent: Vec<SignedTransaction> = Vec::new();
        for (b, choices) in blocks.iter().enumerate() {
            let mut txs: Vec<SignedTransaction> = choices.iter().map(|c| workload_tx(&mut w, *c, &mut grants, &mut requests)).collect();
            if b % replay_every == 1 && !sent.is_empty() {
                txs.push(sent[b % sent.len()].clone());
            }
            sent.extend(txs.iter().cloned());
            w.now += 1000;
            let verified: Vec<_> = txs.iter().cloned().map(|t| t.verify(&w.chain).unwrap()).collect();
            let ctx = BlockContext { height: w.ledger.height() + 1, time: Timestamp(w.now), hash: hash() };
            let reference = execute_block(&plain, &ctx, &verified).unwrap();
            let (_, exec) = w.ledger.execute(Timestamp(w.now), &inst("hosp-a"), txs.clone()).unwrap();
            prop_assert_eq!(&exec.receipts, &reference.receipts);
            prop_assert_eq!(exec.audit_root, reference.audit_root);
            for (i, tx) in txs.iter().enumerate() {
                if sent[..sent.len() - txs.len() + i].contains(tx) {
                    prop_assert_eq!(&exec.receipts[i].outcome, &Outcome::Rejected(Rejection::Duplicate));
                }
            }
            plain.apply(reference.writes);
        }
        // Same contents.
        for (k, v) in plain.entries() {
            let stored = w.ledger.store().read(k).unwrap();
            prop_assert_eq!(stored.as_ref(), Some(v));
        }
        // Rebuild the tree from the plain map in a shuffled order, in chunks.
        let mut entries: Vec<(Vec<u8>, Vec<u8>)> = plain.entries().map(|(k, v)| (k.clone(), v.clone())).collect();
        let mut state = seed | 1;
        for i in (1..entries.len()).rev() {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17;
            entries.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let mut fresh = JmtStore::new(hash());
        let mut root = Hash32::default();
        for (version, part) in entries.chunks(chunk).enumerate() {
            let mut writes = WriteSet::default();
            for (k, v) in part { writes.0.insert(k.clone(), Some(v.clone())); }
            root = fresh.commit(&writes, version as u64).unwrap();
        }
        prop_assert_eq!(root, w.ledger.headers().last().unwrap().state_root);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The state store writes a block's keys with jmt's batch insertion; the
    /// tree (every root, and every proof against it) must be the one jmt's
    /// key-at-a-time insertion builds, for new keys, overwritten keys and
    /// leaves that split, and deleted keys (whose subtrees collapse), in
    /// full-history and newest-only stores.
    #[test]
    fn batch_tree_writes_build_the_key_at_a_time_tree(
        blocks in proptest::collection::vec(
            proptest::collection::vec(
                (0u16..300, proptest::option::weighted(0.7, proptest::collection::vec(any::<u8>(), 0..6))),
                1..60,
            ),
            1..10,
        )
    ) {
        use jmt::storage::TreeWriter;
        use medledger_contracts::state::{StateKey, hash_keys, verify_state_proof};
        let mut batched = JmtStore::new(hash());
        let mut newest_only = JmtStore::new(hash());
        newest_only.keep_latest_only();
        let reference = JmtStore::new(hash());
        let mut written = std::collections::BTreeMap::new();
        for (version, block) in blocks.iter().enumerate() {
            let mut writes = WriteSet::default();
            for (key, value) in block {
                let mut bytes = [0u8; 32];
                bytes[..2].copy_from_slice(&key.to_be_bytes());
                let key = StateKey::CommittedTransaction(TxHash(Hash32(bytes)));
                writes.0.insert(key.to_bytes(), value.clone());
                written.insert(key, value.clone());
            }
            let height = version as u64 + 1;
            let root = batched.commit(&writes, height).unwrap();
            prop_assert_eq!(newest_only.commit(&writes, height).unwrap(), root);
            let tree = jmt::JellyfishMerkleTree::<_, sha2::Sha256>::new(&reference);
            let (expected, update) = tree
                .put_value_set(hash_keys(hash(), &writes), version as u64)
                .unwrap();
            reference.write_node_batch(&update.node_batch).unwrap();
            prop_assert_eq!(root, Hash32(expected.0));
        }
        // Every key's proof from the batch-written tree checks against its
        // root: inclusion for a value, exclusion for a deleted key.
        let height = blocks.len() as u64;
        let root = batched.root_at(height).unwrap();
        for (key, value) in &written {
            let (found, proof) = batched.get_with_proof(key, height).unwrap();
            prop_assert_eq!(&found, value);
            prop_assert!(verify_state_proof(hash(), root, key, value.as_deref(), &proof).is_ok());
        }
    }
}

/// Blocks large enough that the newest-only tree updates the root's
/// subtrees on two threads: same roots as jmt's, block after block, with
/// either suite's hash function.
#[test]
fn newest_only_tree_matches_jmt_on_large_blocks() {
    for suite in [
        medledger_contracts::crypto::CryptoSuite::Ed25519Sha256,
        medledger_contracts::crypto::CryptoSuite::Sm2Sm3,
    ] {
        set_suite(suite);
        newest_only_tree_matches_jmt(3_000);
    }
}

fn newest_only_tree_matches_jmt(per_block: u64) {
    use medledger_contracts::state::StateKey;
    let mut full = JmtStore::new(hash());
    let mut newest_only = JmtStore::new(hash());
    newest_only.keep_latest_only();
    let mut seed = 7u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for height in 1..=4u64 {
        let mut writes = WriteSet::default();
        for _ in 0..per_block {
            // Keys from a pool of twice a block: later blocks overwrite earlier ones.
            let mut bytes = [0u8; 32];
            bytes[..8].copy_from_slice(&(next() % (2 * per_block)).to_be_bytes());
            let key = StateKey::CommittedTransaction(TxHash(Hash32(bytes)));
            writes
                .0
                .insert(key.to_bytes(), Some(next().to_le_bytes().to_vec()));
        }
        let root = full.commit(&writes, height).unwrap();
        assert_eq!(
            newest_only.commit(&writes, height).unwrap(),
            root,
            "height {height}"
        );
        assert_eq!(newest_only.root_at(height).unwrap(), root);
    }
    // A store rebuilt from the newest values has the same root.
    let values = newest_only.latest_values().unwrap();
    let (rebuilt, root) = JmtStore::from_latest_values(hash(), values, 4).unwrap();
    assert_eq!(root, full.root_at(4).unwrap());
    assert_eq!(rebuilt.root_at(4).unwrap(), root);
    // A full store switched to newest-only keeps its root.
    full.keep_latest_only();
    assert_eq!(full.root_at(4).unwrap(), root);
    assert!(full.root_at(3).is_err());
}
