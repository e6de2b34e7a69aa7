//! Batch signature verification (the auditor's replay) against strict
//! verification one by one (every node).

use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::SigningKey;
use medledger_contracts::crypto::{Signature, verify_batch};
use medledger_contracts::encoding::tagged_hash;
use medledger_contracts::transaction::{
    Payload, SignedTransaction, Signer, Transaction, verify_many,
};
use medledger_contracts::types::*;
use sha2::{Digest, Sha512};

use crate::world::*;

fn registrations(world: &mut World, n: usize) -> Vec<SignedTransaction> {
    (0..n)
        .map(|i| {
            let k = key(&format!("batch-patient-{i}"));
            let id = PatientId::from_key(&k.public_key());
            world.sign(Signer::Patient(id), &k, Payload::RegisterPatient)
        })
        .collect()
}

#[test]
fn a_valid_block_verifies_in_one_batch_with_the_ids_and_lengths_of_strict_verification() {
    let mut world = World::new();
    let mut txs = registrations(&mut world, 40);
    // One key signing several transactions (prepared once).
    let again = txs[3].clone();
    txs.push(again);
    let batched = verify_many(&world.chain, txs.clone()).unwrap();
    assert_eq!(batched.len(), txs.len());
    for (b, t) in batched.iter().zip(txs) {
        let one = t.verify(&world.chain).unwrap();
        assert_eq!(b.id(), one.id());
        assert_eq!(b.encoded_len(), one.encoded_len());
        assert_eq!(b.encoded_len(), one.signed().to_bytes().len());
        assert_eq!(b.signed(), one.signed());
    }
}

#[test]
fn a_bad_signature_is_named_with_its_index_and_the_error_strict_verification_gives() {
    let mut world = World::new();
    let mut txs = registrations(&mut world, 30);
    let Signature::Ed25519 { s, .. } = &mut txs[17].signature;
    s[0] ^= 1;
    let strict = txs[17].clone().verify(&world.chain).unwrap_err();
    let (index, id, error) = verify_many(&world.chain, txs.clone()).unwrap_err();
    assert_eq!(index, 17);
    assert_eq!(id, txs[17].transaction.id(&world.chain));
    assert_eq!(error.to_string(), strict.to_string());
    // Another chain: every signature fails, the first is named.
    let other = ChainId::new("medledger-other").unwrap();
    assert_eq!(verify_many(&other, txs).unwrap_err().0, 0);
}

/// A "signature" by `seed`'s key over `message` with the commitment bytes
/// `r` and `S = k·a`, where `k = H(r ‖ A ‖ message)`: when `r` encodes the
/// identity point the batch equation `[S]B = R + [k]A` holds exactly, yet
/// strict verification refuses it (`R` has small order).
fn identity_r_signature(seed: [u8; 32], r: [u8; 32], message: &[u8; 32]) -> Signature {
    let signing = SigningKey::from_bytes(&seed);
    let a = signing.to_scalar();
    let mut h = Sha512::new();
    h.update(r);
    h.update(signing.verifying_key().as_bytes());
    h.update(message);
    let k = Scalar::from_bytes_mod_order_wide(&h.finalize().into());
    Signature::Ed25519 {
        r,
        s: (k * a).to_bytes(),
    }
}

#[test]
fn a_small_order_or_non_canonical_r_is_refused_although_its_batch_equation_holds() {
    let world = World::new();
    let seed = tagged_hash(b"medledger/test-key", &[b"crafted"]).0;
    let signing = SigningKey::from_bytes(&seed);
    let public =
        medledger_contracts::crypto::PublicKey::Ed25519(signing.verifying_key().to_bytes());
    let id = PatientId::from_key(&public);
    let transaction = Transaction {
        signer: Signer::Patient(id),
        nonce: 1,
        payload: Payload::RegisterPatient,
    };
    let message = transaction.signing_message(&world.chain);
    let mut identity = [0u8; 32];
    identity[0] = 1;
    // y = p + 1 = 2^255 - 18: the identity again, encoded non-canonically.
    let mut identity_again = [0xffu8; 32];
    identity_again[0] = 0xee;
    identity_again[31] = 0x7f;
    // The identity with the sign bit set: x = 0 has no negative.
    let mut identity_signed = identity;
    identity_signed[31] |= 0x80;
    for r in [identity, identity_again, identity_signed] {
        let signature = identity_r_signature(seed, r, &message.0);
        let signed = SignedTransaction {
            transaction: transaction.clone(),
            public_key: public,
            signature,
        };
        assert!(
            signed.clone().verify(&world.chain).is_err(),
            "strict refuses"
        );
        let key = public.prepare().unwrap();
        assert!(!verify_batch(&[(key, message, signature)]), "batch refuses");
        assert_eq!(verify_many(&world.chain, vec![signed]).unwrap_err().0, 0);
        // Without the checks on R the batch equation alone would accept it.
        let mut bytes = [0u8; 64];
        bytes[..32].copy_from_slice(&r);
        let Signature::Ed25519 { s, .. } = signature;
        bytes[32..].copy_from_slice(&s);
        assert!(
            ed25519_dalek::verify_batch(
                &[&message.0[..]],
                &[ed25519_dalek::Signature::from_bytes(&bytes)],
                &[signing.verifying_key()]
            )
            .is_ok()
        );
    }
}
