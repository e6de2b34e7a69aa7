//! State proofs: valid proofs verify; a flipped bit in proof, value, key or root fails.

use medledger_contracts::encoding::{BoundedVec, Hash32};
use medledger_contracts::records::GrantRecord;
use medledger_contracts::state::{SparseProof, StateKey, verify_state_proof};
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
    verify_state_proof(root, &key, Some(&value), &proof).unwrap();
    let decoded: GrantRecord = bcs::from_bytes(&value).unwrap();
    assert_eq!(decoded.granted_at.height, height);

    // Value.
    for bit in (0..value.len() * 8).step_by(7) {
        let mut bad = value.clone();
        flip(&mut bad, bit);
        assert!(
            verify_state_proof(root, &key, Some(&bad), &proof).is_err(),
            "value bit {bit}"
        );
    }
    // Root.
    for bit in 0..256 {
        let mut bad = root;
        flip(&mut bad.0, bit);
        assert!(
            verify_state_proof(bad, &key, Some(&value), &proof).is_err(),
            "root bit {bit}"
        );
    }
    // Key.
    for bit in (0..256).step_by(5) {
        let mut other = grant;
        flip(&mut other.0.0, bit);
        assert!(
            verify_state_proof(root, &StateKey::Grant(other), Some(&value), &proof).is_err(),
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
                verify_state_proof(root, &key, Some(&value), &bad_proof).is_err(),
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
    verify_state_proof(root, &absent, None, &proof).unwrap();
    // The same proof cannot claim a value.
    assert!(verify_state_proof(root, &absent, Some(b"x"), &proof).is_err());
    // A present key's proof cannot be used to claim absence.
    let present = StateKey::Grant(grant);
    let (_, proof) = w.ledger.prove(&present, height).unwrap();
    assert!(verify_state_proof(root, &present, None, &proof).is_err());
}

#[test]
fn proofs_at_an_older_height_verify_against_that_heights_root() {
    let (mut w, grant, height) = setup();
    let old_root = w.ledger.headers().last().unwrap().state_root;
    w.act(
        medledger_contracts::transaction::Signer::Patient(PatientId::from_key(
            &key("alice").public_key(),
        )),
        &key("alice"),
        medledger_contracts::transaction::Payload::Revoke { grant },
    );
    let key = StateKey::Grant(grant);
    let (old_value, old_proof) = w.ledger.prove(&key, height).unwrap();
    verify_state_proof(old_root, &key, old_value.as_deref(), &old_proof).unwrap();
    let new_root = w.ledger.headers().last().unwrap().state_root;
    assert!(
        verify_state_proof(new_root, &key, old_value.as_deref(), &old_proof).is_err(),
        "the revoked grant's old value is not current"
    );
    let (new_value, new_proof) = w.ledger.prove(&key, w.ledger.height()).unwrap();
    verify_state_proof(new_root, &key, new_value.as_deref(), &new_proof).unwrap();
    let record: GrantRecord = bcs::from_bytes(&new_value.unwrap()).unwrap();
    assert!(record.ended.is_some());
}
