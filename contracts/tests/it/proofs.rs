//! State proofs: valid proofs verify; a flipped bit in proof, value, key or root fails.

use medledger_contracts::encoding::{BoundedVec, Hash32};
use medledger_contracts::records::GrantRecord;
use medledger_contracts::state::{SparseProof, StateKey, verify_state_proof};
use medledger_contracts::transaction::{Payload, Signer};
use medledger_contracts::types::*;

use crate::world::*;

fn setup() -> (World, TxHash, u64) {
    let mut w = World::new();
    let p = w.patient("alice");
    let mut grant = None;
    for i in 0..20 {
        let holders = Holders::Listed(BoundedVec::new(vec![inst("hosp-a")]).unwrap());
        let mut terms = w.terms(
            p,
            Grantee::Institution(inst("hosp-b")),
            &[Category::LabReports],
            holders,
        );
        terms.notice_hash = Hash32([i; 32]);
        grant = Some(w.grant("alice", terms));
    }
    let height = w.ledger.height();
    (w, grant.unwrap(), height)
}

fn flip(bytes: &mut [u8], bit: usize) {
    bytes[bit / 8] ^= 1 << (bit % 8);
}

#[test]
fn inclusion_proof_verifies_and_every_flipped_bit_fails() {
    let (w, grant, height) = setup();
    let key = StateKey::Grant(grant);
    let (value, proof) = w.ledger.prove(&key, height).unwrap();
    let value = value.expect("grant present");
    let root = w.ledger.headers().last().unwrap().state_root;
    verify_state_proof(hash(), root, &key, Some(&value), &proof).unwrap();
    let decoded: GrantRecord = bcs::from_bytes(&value).unwrap();
    assert_eq!(decoded.granted_at.height, height);

    // Value.
    for bit in (0..value.len() * 8).step_by(7) {
        let mut bad = value.clone();
        flip(&mut bad, bit);
        assert!(
            verify_state_proof(hash(), root, &key, Some(&bad), &proof).is_err(),
            "value bit {bit}"
        );
    }
    // Root.
    for bit in 0..256 {
        let mut bad = root;
        flip(&mut bad.0, bit);
        assert!(
            verify_state_proof(hash(), bad, &key, Some(&value), &proof).is_err(),
            "root bit {bit}"
        );
    }
    // Key.
    for bit in (0..256).step_by(5) {
        let mut other = grant;
        flip(&mut other.0.0, bit);
        assert!(
            verify_state_proof(hash(), root, &StateKey::Grant(other), Some(&value), &proof)
                .is_err(),
            "key bit {bit}"
        );
    }
    // Proof bytes: a flipped bit either fails to decode or fails to verify.
    let proof_bytes = bcs::to_bytes(&proof).unwrap();
    let mut checked = 0;
    for bit in 0..proof_bytes.len() * 8 {
        let mut bad = proof_bytes.clone();
        flip(&mut bad, bit);
        if let Ok(bad_proof) = bcs::from_bytes::<SparseProof>(&bad) {
            assert!(
                verify_state_proof(hash(), root, &key, Some(&value), &bad_proof).is_err(),
                "proof bit {bit}"
            );
            checked += 1;
        }
    }
    assert!(
        checked > 100,
        "most flips still decode and must fail verification ({checked})"
    );
}

#[test]
fn exclusion_proof_shows_an_absent_grant_and_cannot_hide_a_present_one() {
    let (w, grant, height) = setup();
    let root = w.ledger.headers().last().unwrap().state_root;
    let absent = StateKey::Grant(TxHash(Hash32([0xab; 32])));
    let (value, proof) = w.ledger.prove(&absent, height).unwrap();
    assert!(value.is_none());
    verify_state_proof(hash(), root, &absent, None, &proof).unwrap();
    // The same proof cannot claim a value.
    assert!(verify_state_proof(hash(), root, &absent, Some(b"x"), &proof).is_err());
    // A present key's proof cannot be used to claim absence.
    let present = StateKey::Grant(grant);
    let (_, proof) = w.ledger.prove(&present, height).unwrap();
    assert!(verify_state_proof(hash(), root, &present, None, &proof).is_err());
}

#[test]
fn proofs_at_an_older_height_verify_against_that_heights_root() {
    let (mut w, grant, height) = setup();
    let old_root = w.ledger.headers().last().unwrap().state_root;
    w.act(
        medledger_contracts::transaction::Signer::Patient(PatientId::from_key(
            hash(),
            &key("alice").public_key(),
        )),
        &key("alice"),
        medledger_contracts::transaction::Payload::Revoke { grant },
    );
    let key = StateKey::Grant(grant);
    let (old_value, old_proof) = w.ledger.prove(&key, height).unwrap();
    verify_state_proof(hash(), old_root, &key, old_value.as_deref(), &old_proof).unwrap();
    let new_root = w.ledger.headers().last().unwrap().state_root;
    assert!(
        verify_state_proof(hash(), new_root, &key, old_value.as_deref(), &old_proof).is_err(),
        "the revoked grant's old value is not current"
    );
    let (new_value, new_proof) = w.ledger.prove(&key, w.ledger.height()).unwrap();
    verify_state_proof(hash(), new_root, &key, new_value.as_deref(), &new_proof).unwrap();
    let record: GrantRecord = bcs::from_bytes(&new_value.unwrap()).unwrap();
    assert!(record.ended.is_some());
}

/// A ledger keeping only its newest state computes the same roots as one
/// keeping every version, and a checkpoint of it, restored into a fresh
/// ledger, goes on to compute the same next blocks; a checkpoint whose state
/// was altered is refused.
#[test]
fn latest_only_state_and_checkpoints_reproduce_every_root() {
    let mut full = World::new();
    let mut lean = World::new();
    lean.ledger.keep_latest_only();
    let mut restored = World::new();
    let steps = |w: &mut World, round: u64| {
        let label = format!("patient-{round}");
        let patient = w.patient(&label);
        let terms = w.terms(
            patient,
            Grantee::Institution(inst("hosp-b")),
            &[Category::LabReports],
            Holders::Listed(BoundedVec::new(vec![inst("hosp-a")]).unwrap()),
        );
        let grant = w.grant(&label, terms);
        w.request("doc-b", grant, "hosp-a", &[Category::LabReports]);
        let k = key(&label);
        w.act(Signer::Patient(patient), &k, Payload::Revoke { grant });
    };
    for round in 0..6 {
        steps(&mut full, round);
        steps(&mut lean, round);
        assert_eq!(full.ledger.headers().last(), lean.ledger.headers().last());
        assert_eq!(lean.ledger.headers().len(), 1);
        if round == 2 {
            let checkpoint = lean.ledger.checkpoint().unwrap().unwrap();
            let mut altered = checkpoint.clone();
            altered.values[0].1.push(0);
            assert!(restored.ledger.restore(altered).is_err());
            restored.ledger.restore(checkpoint).unwrap();
            restored.now = lean.now;
            restored.nonce = lean.nonce;
        }
        if round > 2 {
            steps(&mut restored, round);
            assert_eq!(
                restored.ledger.headers().last(),
                full.ledger.headers().last()
            );
        }
    }
}
