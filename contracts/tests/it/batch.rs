//! Batch signature verification against verification one by one: one rule
//! (ZIP-215) for both.

use curve25519_dalek::edwards::CompressedEdwardsY;
use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::SigningKey;
use medledger_contracts::crypto::{KeyCache, PublicKey, Signature, verify_batch};
use medledger_contracts::encoding::{BoundedVec, Hash32, HashFunction};
use medledger_contracts::records::{Outcome, Rejection};
use medledger_contracts::state_machine::{BlockContext, execute_block, try_each};
use medledger_contracts::transaction::{
    Payload, SignedTransaction, Signer, verify_each, verify_many,
};
use medledger_contracts::types::*;
use sha2::{Digest, Sha512};

use crate::world::*;

fn registrations(world: &mut World, n: usize) -> Vec<SignedTransaction> {
    (0..n)
        .map(|i| {
            let k = key(&format!("batch-patient-{i}"));
            let id = PatientId::from_key(hash(), &k.public_key());
            world.sign(Signer::Patient(id), &k, Payload::RegisterPatient)
        })
        .collect()
}

#[test]
fn a_valid_block_verifies_in_one_batch_with_the_ids_and_lengths_of_single_verification() {
    let mut world = World::new();
    let mut txs = registrations(&mut world, 40);
    // One key signing several transactions (prepared once).
    let again = txs[3].clone();
    txs.push(again);
    let batched = verify_many(&world.chain, txs.clone(), &KeyCache::new(64)).unwrap();
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
fn a_bad_signature_is_named_with_its_index_and_the_error_single_verification_gives() {
    let mut world = World::new();
    let mut txs = registrations(&mut world, 30);
    let Signature::Ed25519 { s, .. } = &mut txs[17].signature else {
        unreachable!("an Ed25519 signature")
    };
    s[0] ^= 1;
    let strict = txs[17].clone().verify(&world.chain).unwrap_err();
    let (index, id, error) =
        verify_many(&world.chain, txs.clone(), &KeyCache::new(64)).unwrap_err();
    assert_eq!(index, 17);
    assert_eq!(id, txs[17].id(&world.chain));
    assert_eq!(error.to_string(), strict.to_string());
    // Another chain: every signature fails, the first is named.
    let other = chain("medledger-other");
    assert_eq!(
        verify_many(&other, txs, &KeyCache::new(64)).unwrap_err().0,
        0
    );
}

#[test]
fn each_transaction_of_a_batch_gets_the_verdict_it_would_get_alone() {
    let mut world = World::new();
    let mut txs = registrations(&mut world, 24);
    // A bad signature, a key that did not sign, a message changed after
    // signing, a good transaction repeated and a malformed one: each judged
    // on its own.
    let Signature::Ed25519 { s, .. } = &mut txs[5].signature else {
        unreachable!("an Ed25519 signature")
    };
    s[7] ^= 0x40;
    txs[11].public_key = txs[12].public_key;
    txs[19].transaction.nonce ^= 1;
    let again = txs[2].clone();
    txs.push(again);
    // Well signed but malformed (a threshold of 0): refused for its form
    // while the others' batch passes.
    let k = key("batch-patient-0");
    let malformed = world.sign(
        Signer::Patient(PatientId::from_key(hash(), &k.public_key())),
        &k,
        Payload::SetRecoveryPolicy {
            delegates: BoundedVec::new(Vec::new()).unwrap(),
            threshold: 0,
        },
    );
    txs.push(malformed);
    // One cache for every batch below, small enough to start afresh within
    // a batch: prepared keys kept or dropped change no verdict.
    let keys = KeyCache::new(4);
    let each = verify_each(&world.chain, txs.clone(), &keys);
    assert_eq!(each.len(), txs.len());
    let mut refused = Vec::new();
    for (i, (result, t)) in each.iter().zip(&txs).enumerate() {
        match (result, t.clone().verify(&world.chain)) {
            (Ok(b), Ok(one)) => {
                assert_eq!(b.id(), one.id());
                assert_eq!(b.encoded_len(), one.encoded_len());
            }
            (Err(b), Err(one)) => {
                assert_eq!(b.to_string(), one.to_string());
                refused.push(i);
            }
            (b, one) => panic!("transaction {i}: batch {b:?}, alone {one:?}"),
        }
    }
    assert_eq!(refused, [5, 11, 19, 25]);
    // All good (keys met in the batch above, some still prepared): every
    // one verified, in order.
    let good: Vec<_> = registrations(&mut world, 8);
    let each = verify_each(&world.chain, good.clone(), &keys);
    for (result, t) in each.into_iter().zip(good) {
        assert_eq!(result.unwrap().signed(), &t);
    }
    assert!(verify_each(&world.chain, Vec::new(), &keys).is_empty());
}

#[test]
fn trying_a_batch_gives_each_transaction_the_outcome_it_has_alone() {
    let mut world = World::new();
    let alice = world.patient("alice");
    let grant = world.grant(
        "alice",
        world.terms(
            alice,
            Grantee::Institution(inst("hosp-b")),
            &[Category::LabReports],
            Holders::Any,
        ),
    );
    let (doctor, doctor_key) = World::practitioner("doc-b");
    let bob = key("bob");
    let bob_id = PatientId::from_key(hash(), &bob.public_key());
    let register_bob = world.sign(Signer::Patient(bob_id), &bob, Payload::RegisterPatient);
    let committed = world.sign(
        Signer::Patient(alice),
        &key("alice"),
        Payload::Grant(world.terms(
            alice,
            Grantee::Institution(inst("hosp-a")),
            &[Category::Imaging],
            Holders::Any,
        )),
    );
    assert_eq!(world.run(committed.clone()).outcome, Outcome::Applied);
    let txs = [
        // Applies alone.
        world.sign(
            Signer::Patient(alice),
            &key("alice"),
            Payload::Revoke { grant },
        ),
        // Would apply only after bob's registration, which comes later in
        // the batch: refused, as it is alone.
        world.sign(
            Signer::Patient(bob_id),
            &bob,
            Payload::Grant(world.terms(
                bob_id,
                Grantee::Institution(inst("hosp-b")),
                &[Category::Imaging],
                Holders::Any,
            )),
        ),
        register_bob,
        // Under the grant the first transaction revokes: authorized alone.
        world.sign(
            Signer::Practitioner(doctor),
            &doctor_key,
            Payload::AccessRequest {
                grant,
                holder: inst("hosp-a"),
                categories: cats(&[Category::LabReports]),
                purpose: Purpose::Treatment,
            },
        ),
        // A repeat of one already committed: a duplicate.
        committed.clone(),
    ];
    let verified: Vec<_> = txs
        .iter()
        .map(|t| t.clone().verify(&world.chain).unwrap())
        .collect();
    let ctx = BlockContext {
        height: world.ledger.height() + 1,
        time: Timestamp(world.now + 1_000),
        hash: hash(),
    };
    let tried = try_each(world.ledger.store(), &ctx, &verified).unwrap();
    let alone: Vec<Outcome> = verified
        .iter()
        .map(|v| {
            execute_block(world.ledger.store(), &ctx, std::slice::from_ref(v))
                .unwrap()
                .receipts[0]
                .outcome
                .clone()
        })
        .collect();
    assert_eq!(tried, alone);
    assert_eq!(tried[0], Outcome::Applied);
    assert!(matches!(tried[1], Outcome::Rejected(_)), "{:?}", tried[1]);
    assert_eq!(tried[2], Outcome::Applied);
    assert_eq!(tried[4], Outcome::Rejected(Rejection::Duplicate));
    assert_eq!(tried[3], Outcome::Authorized);
}

/// Keys, commitments and scalars to craft signatures from: prime-order and
/// mixed-order keys (a torsion point added), honest, torsion-shifted and
/// small-order commitments in every encoding (non-canonical ones too).
struct Crafted {
    /// (secret scalar a, the key's encoding) with A = aB + torsion.
    keys: Vec<(Scalar, [u8; 32])>,
    /// (secret scalar r, R's encoding) with R = rB + torsion (r = 0: small order).
    commitments: Vec<(Scalar, [u8; 32])>,
}

fn crafted() -> Crafted {
    use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT as B, EIGHT_TORSION};
    let scalar = |label: &str| {
        Scalar::from_bytes_mod_order(
            HashFunction::Sha256
                .tagged_hash(b"medledger/test-scalar", &[label.as_bytes()])
                .0,
        )
    };
    let a = scalar("key");
    let mut keys = vec![(a, (B * a).compress().to_bytes())];
    for (i, t) in EIGHT_TORSION.iter().enumerate().skip(1) {
        let a = scalar(&format!("mixed-key-{i}"));
        keys.push((a, (B * a + t).compress().to_bytes()));
    }
    let r = scalar("commitment");
    let mut commitments = vec![(r, (B * r).compress().to_bytes())];
    for t in EIGHT_TORSION.iter() {
        commitments.push((r, (B * r + t).compress().to_bytes()));
        let bytes = t.compress().to_bytes();
        commitments.push((Scalar::ZERO, bytes));
        // The same small-order point with its sign bit set (a second
        // encoding where x = 0), if that decodes.
        let mut signed = bytes;
        signed[31] |= 0x80;
        if CompressedEdwardsY(signed).decompress().is_some() {
            commitments.push((Scalar::ZERO, signed));
        }
    }
    // y + p for the y below 19 that decode: non-canonical encodings.
    for y in 0u8..19 {
        for sign in [0x7f, 0xff] {
            let mut bytes = [0xffu8; 32];
            bytes[0] = 0xed + y;
            bytes[31] = sign;
            if let Some(point) = CompressedEdwardsY(bytes).decompress() {
                if point.is_small_order() {
                    commitments.push((Scalar::ZERO, bytes));
                }
            }
        }
    }
    Crafted { keys, commitments }
}

/// `S = r + k·a` for `k = H(R ‖ A ‖ message)`: the cofactored equation holds
/// whatever torsion `R` and `A` carry; `tweak` then spoils it or its encoding.
fn crafted_signature(
    (a, a_bytes): (Scalar, [u8; 32]),
    (r, r_bytes): (Scalar, [u8; 32]),
    message: &Hash32,
    tweak: u8,
) -> Signature {
    let mut h = Sha512::new();
    h.update(r_bytes);
    h.update(a_bytes);
    h.update(message.0);
    let k = Scalar::from_bytes_mod_order_wide(&h.finalize().into());
    let mut s = (r + k * a).to_bytes();
    match tweak % 3 {
        0 => {}
        // S + ℓ: the same scalar, not canonically encoded.
        1 => {
            // ℓ = 2^252 + 27742317777372353535851937790883648493, little-endian.
            let ell: [u8; 32] = [
                0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
                0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
            ];
            let mut carry = 0u16;
            for (x, l) in s.iter_mut().zip(ell) {
                let v = u16::from(*x) + u16::from(l) + carry;
                *x = v.to_le_bytes()[0];
                carry = v >> 8;
            }
        }
        _ => s[0] ^= 1,
    }
    Signature::Ed25519 { r: r_bytes, s }
}

/// Issue 21: one signature rule (ZIP-215) for single and batch
/// verification. On every crafted key, commitment and scalar (small-order
/// and mixed-order points, non-canonical encodings, the equation spoilt),
/// alone and in batches with honest signatures, the batch accepts exactly
/// when every signature passes one by one.
#[test]
fn single_and_batch_verification_agree_on_every_crafted_signature() {
    let crafted = crafted();
    let message = HashFunction::Sha256.tagged_hash(b"medledger/test-message", &[]);
    let honest = SigningKey::from_bytes(&[3; 32]);
    let honest_key = PublicKey::Ed25519(honest.verifying_key().to_bytes())
        .prepare()
        .unwrap();
    let honest_signature =
        medledger_contracts::crypto::SecretKey::from_seed([3; 32]).sign(&message);
    let (mut accepted, mut refused) = (0, 0);
    for key in &crafted.keys {
        let prepared = PublicKey::Ed25519(key.1).prepare().unwrap();
        for commitment in &crafted.commitments {
            for tweak in 0..3 {
                let signature = crafted_signature(*key, *commitment, &message, tweak);
                let single = prepared.verify(&message, &signature).is_ok();
                assert_eq!(
                    verify_batch(&[(prepared.clone(), message, signature)]),
                    single,
                    "A = {}, R = {}, tweak {tweak}",
                    hex::encode(key.1),
                    hex::encode(commitment.1)
                );
                let with_honest = [
                    (honest_key.clone(), message, honest_signature),
                    (prepared.clone(), message, signature),
                    (honest_key.clone(), message, honest_signature),
                ];
                assert_eq!(verify_batch(&with_honest), single);
                // ZIP-215: the cofactored equation holds and S is canonical.
                assert_eq!(single, tweak == 0);
                if single {
                    accepted += 1;
                } else {
                    refused += 1;
                }
            }
        }
    }
    assert!(
        accepted > 100 && refused > 200,
        "{accepted} accepted, {refused} refused"
    );
    // Second encodings (y + p) of points not of small order, whose discrete
    // logarithm nobody knows: as R they decode under ZIP-215, but no S fits;
    // single and batch refuse them alike.
    let mut second_encodings = 0;
    for y in 0u8..19 {
        for sign in [0x7f, 0xff] {
            let mut r = [0xffu8; 32];
            r[0] = 0xed + y;
            r[31] = sign;
            if CompressedEdwardsY(r)
                .decompress()
                .is_none_or(|p| p.is_small_order())
            {
                continue;
            }
            second_encodings += 1;
            let key = crafted.keys[0];
            let prepared = PublicKey::Ed25519(key.1).prepare().unwrap();
            for tweak in 0..3 {
                let signature = crafted_signature(key, (Scalar::ZERO, r), &message, tweak);
                assert!(prepared.verify(&message, &signature).is_err());
                assert!(!verify_batch(&[(prepared.clone(), message, signature)]));
            }
        }
    }
    assert!(second_encodings >= 10, "{second_encodings}");
}

/// Small-order keys (every encoding of the eight points the ZIP-215 test
/// vectors are made of) never get as far as a signature check: they are
/// refused as keys, so nobody can forge for one.
#[test]
fn small_order_keys_are_refused_in_every_encoding() {
    let crafted = crafted();
    let small: Vec<_> = crafted
        .commitments
        .iter()
        .filter(|(r, _)| *r == Scalar::ZERO)
        .collect();
    assert!(small.len() >= 10, "{} encodings", small.len());
    for (_, bytes) in small {
        assert!(
            PublicKey::Ed25519(*bytes).prepare().is_err(),
            "{}",
            hex::encode(bytes)
        );
    }
}

proptest::proptest! {
    /// Random batches of crafted and honest signatures: the batch's verdict
    /// is the conjunction of the single verdicts.
    #[test]
    fn a_batch_passes_exactly_when_each_of_its_signatures_does(
        picks in proptest::collection::vec((0usize..64, 0usize..64, 0u8..3), 1..8)
    ) {
        let crafted = crafted();
        let message = HashFunction::Sha256.tagged_hash(b"medledger/test-message", &[b"prop"]);
        let mut items = Vec::new();
        for (k, c, tweak) in picks {
            let key = crafted.keys[k % crafted.keys.len()];
            let commitment = crafted.commitments[c % crafted.commitments.len()];
            let signature = crafted_signature(key, commitment, &message, tweak);
            items.push((PublicKey::Ed25519(key.1).prepare().unwrap(), message, signature));
        }
        let singles = items.iter().all(|(key, m, s)| key.verify(m, s).is_ok());
        proptest::prop_assert_eq!(verify_batch(&items), singles);
    }

    /// Batches mixing Ed25519 and SM2 items, some signed over another
    /// message, some with the other scheme's signature under a key: the
    /// verdict is still the conjunction of the single verdicts.
    #[test]
    fn a_mixed_batch_passes_exactly_when_each_of_its_signatures_does(
        picks in proptest::collection::vec((0u8..4, 0u8..2, 0u8..4), 1..8)
    ) {
        use medledger_contracts::crypto::SecretKey;
        let message = HashFunction::Sha256.tagged_hash(b"medledger/test-message", &[b"mixed"]);
        let other = HashFunction::Sha256.tagged_hash(b"medledger/test-message", &[b"other"]);
        let mut items = Vec::new();
        for (signer, sm2, fault) in picks {
            let make = |sm2: bool| {
                if sm2 {
                    SecretKey::sm2_from_bytes([signer + 1; 32]).unwrap()
                } else {
                    SecretKey::from_seed([signer; 32])
                }
            };
            let key = make(sm2 == 1);
            let signature = match fault {
                // Over another message.
                1 => key.sign(&other),
                // The other scheme's signature by the same signer number.
                2 => make(sm2 == 0).sign(&message),
                _ => key.sign(&message),
            };
            items.push((key.public_key().prepare().unwrap(), message, signature));
        }
        let singles = items.iter().all(|(key, m, s)| key.verify(m, s).is_ok());
        proptest::prop_assert_eq!(verify_batch(&items), singles);
    }
}

/// A chain holds keys of its suite only: on an Ed25519 chain an SM2 key is
/// refused as a transaction's signer (alone and in a batch, with the same
/// error) and in a key field, even with a valid SM2 signature and
/// possession proof (the other way round: `suites.rs`).
#[test]
fn sm2_keys_are_refused_as_signers_and_in_key_fields_of_an_ed25519_chain() {
    use medledger_contracts::crypto::SecretKey;
    use medledger_contracts::transaction::{KeyRole, TransactionError, key_possession_message};
    let mut world = World::new();
    let sm2 = SecretKey::sm2_from_bytes([11; 32]).unwrap();
    let id = PatientId::from_key(hash(), &sm2.public_key());
    let signed = world.sign(Signer::Patient(id), &sm2, Payload::RegisterPatient);
    let error = signed.clone().verify(&world.chain).unwrap_err();
    assert!(
        matches!(&error, TransactionError::Signature { .. }),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("sm2 keys and signatures are not accepted"),
        "{error}"
    );
    let (i, _, batched) =
        verify_many(&world.chain, vec![signed.clone()], &KeyCache::new(4)).unwrap_err();
    assert_eq!((i, batched), (0, error.clone()));
    assert_eq!(
        verify_each(&world.chain, vec![signed], &KeyCache::new(4))
            .pop()
            .unwrap()
            .unwrap_err(),
        error
    );

    // An Ed25519 patient rotating to an SM2 key, with the SM2 key's proof.
    let old = key("sm2-rotation-patient");
    let patient = Signer::Patient(PatientId::from_key(hash(), &old.public_key()));
    let proof = sm2.sign(&key_possession_message(
        &world.chain,
        &patient,
        "rotate",
        &sm2.public_key(),
    ));
    let rotation = world.sign(
        patient,
        &old,
        Payload::RotateKey {
            role: KeyRole::Own,
            new_key: sm2.public_key(),
            new_key_proof: proof,
        },
    );
    let error = rotation.verify(&world.chain).unwrap_err().to_string();
    assert!(
        error.contains("new_key") && error.contains("sm2 keys and signatures are not accepted"),
        "{error}"
    );

    // An SM2 signature as a payload's patient consent does not reach a block.
    let hospital = key("admin:hosp-a");
    let guardianship = world.sign(
        Signer::Institution(inst("hosp-a")),
        &hospital,
        Payload::RecordGuardianship {
            patient: PatientId::from_key(hash(), &key("minor").public_key()),
            guardian: PatientId::from_key(hash(), &key("parent").public_key()),
            minor_until: Timestamp(1_900_000_000_000),
            evidence_hash: Hash32([5; 32]),
            patient_consent: sm2.sign(&Hash32([6; 32])),
        },
    );
    let error = guardianship.verify(&world.chain).unwrap_err().to_string();
    assert!(
        error.contains("patient_consent") && error.contains("not accepted"),
        "{error}"
    );
    // A signed read or any other key from outside costs no verification:
    // the key cache refuses it first.
    assert!(
        KeyCache::new(4)
            .prepare(suite(), &sm2.public_key())
            .is_err()
    );
}
