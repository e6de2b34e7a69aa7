//! The two crypto suites: the same story on an `ed25519-sha256` chain and
//! on an `sm2-sm3` one has the same outcomes, while every id, root and
//! signature differs; a chain refuses the other suite's keys and proofs.

use medledger_contracts::block::BlockHeader;
use medledger_contracts::certificate::{
    CommitCertificate, CommitSignature, ConsensusAddress, VoteBody, VoteKind, vote_message,
};
use medledger_contracts::crypto::{CryptoSuite, SecretKey};
use medledger_contracts::encoding::{BoundedVec, Hash32, HashFunction};
use medledger_contracts::light::ProvedValue;
use medledger_contracts::records::*;
use medledger_contracts::state::{StateKey, verify_state_proof};
use medledger_contracts::transaction::*;
use medledger_contracts::types::*;

use crate::world::*;

/// What the story leaves behind, to compare across suites.
struct Story {
    outcomes: Vec<Outcome>,
    ids: Vec<TxHash>,
    header: BlockHeader,
    audit_size: u64,
    world: World,
    grant: TxHash,
}

/// Registration, a grant, an authorised request, a key rotation proved by
/// the new key, a revocation with the new key, a denied request, and a
/// guardianship the minor's key consents to: every kind of signature and
/// ledger hash the state machine checks.
fn story(suite: CryptoSuite) -> Story {
    let mut w = World::on(suite);
    let mut outcomes = Vec::new();
    let mut ids = Vec::new();
    let alice = w.patient("alice");
    let terms = w.terms(
        alice,
        Grantee::Institution(inst("hosp-b")),
        &[Category::LabReports],
        Holders::Any,
    );
    let grant = w.grant("alice", terms);
    ids.push(grant);
    let (request, receipt) = w.request("doc-b", grant, "hosp-a", &[Category::LabReports]);
    ids.push(request);
    outcomes.push(receipt.outcome);

    let new_key = key("alice-new-device");
    let proof = new_key.sign(&key_possession_message(
        &w.chain,
        &Signer::Patient(alice),
        "rotate",
        &new_key.public_key(),
    ));
    let rotate = w.sign(
        Signer::Patient(alice),
        &key("alice"),
        Payload::RotateKey {
            role: KeyRole::Own,
            new_key: new_key.public_key(),
            new_key_proof: proof,
        },
    );
    ids.push(rotate.id(&w.chain));
    outcomes.push(w.run(rotate).outcome);
    outcomes.push(
        w.act(Signer::Patient(alice), &new_key, Payload::Revoke { grant })
            .outcome,
    );
    let (request, receipt) = w.request("doc-b", grant, "hosp-a", &[Category::LabReports]);
    ids.push(request);
    outcomes.push(receipt.outcome);

    let child = w.patient("child");
    let minor_until = Timestamp(w.now + 365 * DAY_MS);
    let evidence_hash = Hash32([42; 32]);
    let recorder = Signer::Institution(inst("hosp-a"));
    let consent = key("child").sign(&guardianship_consent_message(
        &w.chain,
        &recorder,
        &child,
        &alice,
        minor_until,
        &evidence_hash,
    ));
    let guardianship = w.sign(
        recorder,
        &key("admin:hosp-a"),
        Payload::RecordGuardianship {
            patient: child,
            guardian: alice,
            minor_until,
            evidence_hash,
            patient_consent: consent,
        },
    );
    outcomes.push(w.run(guardianship).outcome);

    let header = w.ledger.headers().last().unwrap().clone();
    let audit_size = header.audit_size;
    Story {
        outcomes,
        ids,
        header,
        audit_size,
        world: w,
        grant,
    }
}

/// A commit certificate for `header` signed by every validator's node key.
fn certify(w: &World, header: &BlockHeader) -> (CommitCertificate, ValidatorSet) {
    let record: ValidatorSetRecord = w.get(&StateKey::ValidatorSet).unwrap();
    let set = record.current.clone();
    assert_eq!(set.hash(hash()), header.validator_set_hash);
    let block = header.hash(hash());
    let signatures = set
        .validators
        .iter()
        .map(|v| {
            let node = key(&format!("node:{}", v.institution));
            assert_eq!(node.public_key(), v.node_key);
            let validator = ConsensusAddress::of_key(hash(), &v.node_key);
            let body = VoteBody {
                kind: VoteKind::Precommit,
                height: header.height,
                round: 0,
                block: Some(block),
                validator,
            };
            CommitSignature {
                validator,
                signature: node.sign(&vote_message(&w.chain, &body)),
            }
        })
        .collect();
    let certificate = CommitCertificate {
        height: header.height,
        round: 0,
        block,
        signatures: BoundedVec::new(signatures).unwrap(),
    };
    (certificate, set)
}

#[test]
fn the_same_story_has_the_same_outcomes_and_other_hashes_on_each_suite() {
    let ed = story(CryptoSuite::Ed25519Sha256);
    let sm = story(CryptoSuite::Sm2Sm3);
    assert_eq!(
        ed.outcomes,
        [
            Outcome::Authorized,
            Outcome::Applied,
            Outcome::Applied,
            Outcome::Denied(DenialReason::GrantRevoked),
            Outcome::Applied,
        ]
    );
    assert_eq!(sm.outcomes, ed.outcomes);
    assert_eq!(sm.audit_size, ed.audit_size);
    assert_eq!(sm.header.height, ed.header.height);
    for (a, b) in ed.ids.iter().zip(&sm.ids) {
        assert_ne!(a, b, "transaction ids differ by suite");
    }
    assert_ne!(sm.header.state_root, ed.header.state_root);
    assert_ne!(sm.header.audit_root, ed.header.audit_root);
    assert_ne!(sm.header.transaction_root, ed.header.transaction_root);
    assert_ne!(sm.header.validator_set_hash, ed.header.validator_set_hash);
    assert_ne!(
        sm.header.hash(HashFunction::Sm3),
        ed.header.hash(HashFunction::Sha256)
    );
    assert!(matches!(
        sm.world
            .ledger
            .get::<PatientRecord>(&StateKey::Patient(PatientId::from_key(
                HashFunction::Sm3,
                &SecretKey::sm2_from_bytes(
                    HashFunction::Sha256
                        .tagged_hash(b"medledger/test-key", &[b"alice"])
                        .0
                )
                .unwrap()
                .public_key()
            ))),
        Ok(Some(_))
    ));
}

/// A value proved on an SM chain: the JMT proof checks with SM3 (not with
/// SHA-256), the certificate's SM2 votes with the SM3 consensus addresses,
/// and a client that takes the chain for an Ed25519 one refuses it.
#[test]
fn an_sm_chains_proved_value_verifies_only_as_an_sm_chain() {
    let Story {
        world: w,
        header,
        grant,
        ..
    } = story(CryptoSuite::Sm2Sm3);
    let (value, proof) = w
        .ledger
        .prove(&StateKey::Grant(grant), header.height)
        .unwrap();
    let key = StateKey::Grant(grant);
    verify_state_proof(
        HashFunction::Sm3,
        header.state_root,
        &key,
        value.as_deref(),
        &proof,
    )
    .unwrap();
    assert!(
        verify_state_proof(
            HashFunction::Sha256,
            header.state_root,
            &key,
            value.as_deref(),
            &proof
        )
        .is_err()
    );
    let (certificate, set) = certify(&w, &header);
    let proved = ProvedValue {
        header,
        certificate,
        key,
        value,
        proof,
    };
    proved.verify(&w.chain, &set).unwrap();
    let as_ed25519 = Chain::new(w.chain.id.clone(), CryptoSuite::Ed25519Sha256);
    assert!(proved.verify(&as_ed25519, &set).is_err());
}

/// An SM chain refuses an Ed25519 signer, alone and in a batch, and Ed25519
/// keys in a new member's spec and as a new key; its messages are not an
/// Ed25519 chain's.
#[test]
fn an_sm_chain_refuses_ed25519_keys() {
    let mut w = World::on(CryptoSuite::Sm2Sm3);
    let ed = SecretKey::from_seed([3; 32]);
    let patient = PatientId::from_key(hash(), &ed.public_key());
    let signed = w.sign(Signer::Patient(patient), &ed, Payload::RegisterPatient);
    let error = signed.clone().verify(&w.chain).unwrap_err();
    assert!(
        matches!(&error, TransactionError::Signature { .. })
            && error.to_string().contains(
                "ed25519 keys and signatures are not accepted on a chain of suite sm2-sm3"
            ),
        "{error}"
    );
    let keys = medledger_contracts::crypto::KeyCache::new(4);
    let (i, _, batched) = verify_many(&w.chain, vec![signed.clone()], &keys).unwrap_err();
    assert_eq!((i, batched), (0, error.clone()));
    assert!(keys.prepare(suite(), &ed.public_key()).is_err());

    let mut admitted = spec("hosp-new", InstitutionKind::Hospital, 1);
    admitted.node_key = ed.public_key();
    let propose = w.sign(
        Signer::Institution(inst("hosp-a")),
        &key("admin:hosp-a"),
        Payload::Propose {
            action: GovernanceAction::Admit(admitted),
            expires_at: Timestamp(w.now + DAY_MS),
        },
    );
    let error = propose.verify(&w.chain).unwrap_err().to_string();
    assert!(
        error.contains("node_key") && error.contains("not accepted"),
        "{error}"
    );

    // The same transaction and key have another signing message and id on
    // an Ed25519 chain of the same name.
    let tx = Transaction {
        signer: Signer::Patient(patient),
        nonce: 1,
        valid_until: Timestamp(T0),
        payload: Payload::RegisterPatient,
    };
    let other = Chain::new(w.chain.id.clone(), CryptoSuite::Ed25519Sha256);
    assert_ne!(tx.signing_message(&w.chain), tx.signing_message(&other));
    assert_ne!(
        tx.id(&w.chain, &ed.public_key()),
        tx.id(&other, &ed.public_key())
    );
    assert_ne!(
        PatientId::from_key(HashFunction::Sm3, &ed.public_key()),
        PatientId::from_key(HashFunction::Sha256, &ed.public_key())
    );
}

/// On an SM chain a node's network identity is an Ed25519 transport key of
/// its own, named in its institution's spec (libp2p's handshake has no
/// SM2): required there and of Ed25519 only, rotated by the admin key;
/// refused on an Ed25519 chain, where the node key is that identity.
#[test]
fn an_sm_chains_nodes_have_ed25519_transport_keys_and_an_ed25519_chains_do_not() {
    let admin = || Signer::Institution(inst("hosp-a"));
    let admission_error = |w: &mut World, admitted: InstitutionSpec| {
        w.sign(
            admin(),
            &key("admin:hosp-a"),
            Payload::Propose {
                action: GovernanceAction::Admit(admitted),
                expires_at: Timestamp(w.now + DAY_MS),
            },
        )
        .verify(&w.chain)
        .unwrap_err()
        .to_string()
    };
    let record =
        |w: &World| -> InstitutionRecord { w.get(&StateKey::Institution(inst("hosp-a"))).unwrap() };

    let mut w = World::on(CryptoSuite::Sm2Sm3);
    let founding = record(&w).spec;
    assert_eq!(
        founding.transport_identity(),
        &transport_key("hosp-a").public_key()
    );
    assert_ne!(founding.transport_identity(), &founding.node_key);
    let mut missing = spec("hosp-new", InstitutionKind::Hospital, 1);
    missing.transport_key = None;
    let error = admission_error(&mut w, missing);
    assert!(
        error.contains("transport_key") && error.contains("is required"),
        "{error}"
    );
    let mut sm2 = spec("hosp-new", InstitutionKind::Hospital, 1);
    sm2.transport_key = Some(key("transport-sm2").public_key());
    let error = admission_error(&mut w, sm2);
    assert!(error.contains("must be an Ed25519 key"), "{error}");

    let new = SecretKey::from_seed([7; 32]);
    let rotated = crate::rules::rotation(
        &mut w,
        admin(),
        &key("admin:hosp-a"),
        &new,
        KeyRole::InstitutionTransport,
    );
    assert_eq!(rotated.outcome, Outcome::Applied);
    let after = record(&w).spec;
    assert_eq!(after.transport_key, Some(new.public_key()));
    assert_eq!(after.node_key, founding.node_key, "the node key stays");
    // An SM2 key is no transport key, and the node key is not rotated as one.
    let error = transport_rotation_error(&mut w, &key("transport-sm2"));
    assert!(error.contains("must be an Ed25519 key, not sm2"), "{error}");
    // One network identity never stands for two members: another
    // institution's transport key (or one named before) is refused as a new
    // member's or as a rotation's.
    let mut copycat = spec("hosp-new", InstitutionKind::Hospital, 0);
    copycat.transport_key = Some(transport_key("hosp-b").public_key());
    let proposal = w.act(
        admin(),
        &key("admin:hosp-a"),
        Payload::Propose {
            action: GovernanceAction::Admit(copycat),
            expires_at: Timestamp(w.now + DAY_MS),
        },
    );
    assert!(
        matches!(&proposal.outcome, Outcome::Rejected(Rejection::InvalidAction(why)) if why.contains("transport key")),
        "{:?}",
        proposal.outcome
    );
    for taken in [transport_key("hosp-b"), transport_key("hosp-a")] {
        let reused = crate::rules::rotation(
            &mut w,
            admin(),
            &key("admin:hosp-a"),
            &taken,
            KeyRole::InstitutionTransport,
        );
        assert!(
            matches!(&reused.outcome, Outcome::Rejected(Rejection::InvalidAction(why)) if why.contains("transport key")),
            "{:?}",
            reused.outcome
        );
    }
    assert_eq!(record(&w).spec.transport_key, Some(new.public_key()));

    let mut e = World::on(CryptoSuite::Ed25519Sha256);
    assert_eq!(record(&e).spec.transport_key, None);
    let mut with = spec("hosp-new", InstitutionKind::Hospital, 1);
    with.transport_key = Some(SecretKey::from_seed([7; 32]).public_key());
    let error = admission_error(&mut e, with);
    assert!(
        error.contains("transport_key") && error.contains("must be left out"),
        "{error}"
    );
    let error = transport_rotation_error(&mut e, &SecretKey::from_seed([8; 32]));
    assert!(error.contains("must be left out"), "{error}");
    assert_eq!(record(&e).spec.transport_key, None);
}

/// Why hosp-a's rotation of its transport key to `new` is malformed.
fn transport_rotation_error(w: &mut World, new: &SecretKey) -> String {
    let signer = Signer::Institution(inst("hosp-a"));
    let role = KeyRole::InstitutionTransport;
    let proof = new.sign(&key_possession_message(
        &w.chain,
        &signer,
        role.possession_purpose(),
        &new.public_key(),
    ));
    w.sign(
        signer,
        &key("admin:hosp-a"),
        Payload::RotateKey {
            role,
            new_key: new.public_key(),
            new_key_proof: proof,
        },
    )
    .verify(&w.chain)
    .unwrap_err()
    .to_string()
}

/// A block executed with another hash function than its transactions were
/// verified for stops with an error (a programming error, never an outcome).
#[test]
fn a_block_of_one_suite_does_not_execute_transactions_verified_for_the_other() {
    use medledger_contracts::state_machine::{BlockContext, execute_block, try_each};
    let mut w = World::on(CryptoSuite::Ed25519Sha256);
    let alice = key("alice");
    let patient = PatientId::from_key(hash(), &alice.public_key());
    let tx = w.sign(Signer::Patient(patient), &alice, Payload::RegisterPatient);
    let verified = vec![tx.verify(&w.chain).unwrap()];
    let ctx = BlockContext {
        height: w.ledger.height() + 1,
        time: Timestamp(w.now + 1_000),
        hash: HashFunction::Sm3,
    };
    let error = execute_block(w.ledger.store(), &ctx, &verified)
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains("hashing with sha256, the block hashes with sm3"),
        "{error}"
    );
    assert!(try_each(w.ledger.store(), &ctx, &verified).is_err());
    let ctx = BlockContext {
        hash: HashFunction::Sha256,
        ..ctx
    };
    assert!(execute_block(w.ledger.store(), &ctx, &verified).is_ok());
}
