//! One test (or more) per numbered rule of the state machine.

use medledger_contracts::crypto::SecretKey;
use medledger_contracts::encoding::{BoundedVec, Hash32};
use medledger_contracts::records::*;
use medledger_contracts::state::StateKey;
use medledger_contracts::transaction::*;
use medledger_contracts::types::*;

use crate::world::*;

fn all_of_a(w: &World, patient: PatientId) -> GrantTerms {
    w.terms(
        patient,
        Grantee::Institution(inst("hosp-b")),
        &[Category::LabReports, Category::Imaging],
        Holders::Any,
    )
}

#[test]
fn r1_a_transaction_commits_once() {
    let mut w = World::new();
    let p = w.patient("alice");
    let terms = all_of_a(&w, p);
    let tx = w.sign(Signer::Patient(p), &key("alice"), Payload::Grant(terms));
    assert_eq!(w.run(tx.clone()).outcome, Outcome::Applied);
    assert_eq!(w.run(tx).outcome, Outcome::Rejected(Rejection::Duplicate));
}

#[test]
fn r1_a_rejected_transaction_is_still_spent() {
    let mut w = World::new();
    let p = w.patient("alice");
    let tx = w.sign(
        Signer::Patient(p),
        &key("alice"),
        Payload::Revoke {
            grant: TxHash(Hash32([1; 32])),
        },
    );
    assert!(matches!(
        w.run(tx.clone()).outcome,
        Outcome::Rejected(Rejection::NotFound(_))
    ));
    assert_eq!(w.run(tx).outcome, Outcome::Rejected(Rejection::Duplicate));
}

/// Signs with a chosen `valid_until`.
fn sign_until(
    w: &mut World,
    signer: Signer,
    k: &SecretKey,
    valid_until: u64,
    payload: Payload,
) -> SignedTransaction {
    w.nonce += 1;
    Transaction {
        signer,
        nonce: w.nonce,
        valid_until: Timestamp(valid_until),
        payload,
    }
    .sign(&w.chain, k)
}

#[test]
fn r1_a_transaction_outside_its_window_is_refused_and_leaves_no_trace() {
    let mut w = World::new();
    let p = w.patient("alice");
    let window = LedgerParameters::default().tx_validity_window_ms;
    // The next block is a second from now: valid until a moment before it.
    let (until, terms) = (w.now + 999, all_of_a(&w, p));
    let late = sign_until(
        &mut w,
        Signer::Patient(p),
        &key("alice"),
        until,
        Payload::Grant(terms),
    );
    let r = w.run(late.clone());
    assert!(
        matches!(r.outcome, Outcome::Rejected(Rejection::Expired { .. })),
        "{r:?}"
    );
    assert!(r.outcome.leaves_no_trace());
    assert_eq!(
        w.get::<u64>(&StateKey::CommittedTransaction(late.id(&w.chain))),
        None
    );
    // Valid for a millisecond longer than the window allows: refused with
    // no trace, then taken by a later block, within whose window it is.
    let (until, terms) = (w.now + 1_000 + window + 1, all_of_a(&w, p));
    let early = sign_until(
        &mut w,
        Signer::Patient(p),
        &key("alice"),
        until,
        Payload::Grant(terms),
    );
    let r = w.run(early.clone());
    assert!(
        matches!(r.outcome, Outcome::Rejected(Rejection::ValidTooLong { .. })),
        "{r:?}"
    );
    assert_eq!(
        w.get::<u64>(&StateKey::CommittedTransaction(early.id(&w.chain))),
        None
    );
    assert_eq!(w.run(early).outcome, Outcome::Applied);
}

#[test]
fn r1_ids_leave_the_state_after_their_window_and_a_late_copy_is_refused_as_expired() {
    let mut w = World::new();
    let p = w.patient("alice");
    let registration_height = w.ledger.height();
    let grant = w.sign(
        Signer::Patient(p),
        &key("alice"),
        Payload::Grant(all_of_a(&w, p)),
    );
    let id = grant.id(&w.chain);
    let valid_until = grant.transaction.valid_until.0;
    assert_eq!(w.run(grant.clone()).outcome, Outcome::Applied);
    let marker = StateKey::CommittedTransaction(id);
    assert_eq!(w.get::<u64>(&marker), Some(registration_height + 1));
    // A block at its valid_until could still take it: it is a duplicate,
    // and its id stays.
    w.now = valid_until - 1_000;
    assert_eq!(
        w.run(grant.clone()).outcome,
        Outcome::Rejected(Rejection::Duplicate)
    );
    assert!(w.get::<u64>(&marker).is_some());
    // The first block past it deletes the ids of every block whose
    // transactions are all past their valid_until: the registration's and
    // the grant's.
    let other = w.sign(
        Signer::Patient(p),
        &key("alice"),
        Payload::Grant(all_of_a(&w, p)),
    );
    let other_id = other.id(&w.chain);
    assert_eq!(w.run(other).outcome, Outcome::Applied);
    assert_eq!(w.get::<u64>(&marker), None);
    let registration = PatientId::from_key(hash(), &key("alice").public_key());
    assert_eq!(registration, p);
    let queue: ExpiryQueue = w.get(&StateKey::ExpiryQueue).unwrap();
    assert_eq!((queue.head, queue.tail), (2, 3), "{queue:?}");
    assert_eq!(w.get::<ExpiringIds>(&StateKey::ExpiringIds(0)), None);
    assert_eq!(
        w.get::<ExpiringIds>(&StateKey::ExpiringIds(2)).unwrap().ids,
        vec![other_id]
    );
    // Its copy now is refused as expired, not as a duplicate, and the
    // grant it made is still the one in state.
    assert!(matches!(
        w.run(grant).outcome,
        Outcome::Rejected(Rejection::Expired { .. })
    ));
    assert!(w.get::<GrantRecord>(&StateKey::Grant(id)).is_some());
}

#[test]
fn r1_a_copy_signed_with_another_key_cannot_use_up_the_signers_transaction() {
    let mut w = World::new();
    let p = w.patient("alice");
    let grant = w.grant("alice", all_of_a(&w, p));
    let revoke = w.sign(Signer::Patient(p), &key("alice"), Payload::Revoke { grant });
    // A proposer that saw the pending revocation puts a copy signed with
    // its own key first: the copy is another transaction.
    let copy = revoke.transaction.clone().sign(&w.chain, &key("mallory"));
    assert_ne!(copy.id(&w.chain), revoke.id(&w.chain));
    assert_eq!(
        w.run(copy).outcome,
        Outcome::Rejected(Rejection::KeyMismatch)
    );
    assert_eq!(w.run(revoke).outcome, Outcome::Applied);
    // Likewise a patient's registration.
    let k = key("newcomer");
    let newcomer = PatientId::from_key(hash(), &k.public_key());
    let register = Transaction {
        signer: Signer::Patient(newcomer),
        nonce: 1,
        valid_until: w.valid_until(),
        payload: Payload::RegisterPatient,
    }
    .sign(&w.chain, &k);
    let copy = register.transaction.clone().sign(&w.chain, &key("mallory"));
    assert!(matches!(
        w.run(copy).outcome,
        Outcome::Rejected(Rejection::NotPermitted(_))
    ));
    assert_eq!(w.run(register).outcome, Outcome::Applied);
}

#[test]
fn r2_wrong_key_unknown_signer_and_borrowed_registration_are_refused() {
    let mut w = World::new();
    let p = w.patient("alice");
    let terms = all_of_a(&w, p);
    let r = w.act(
        Signer::Patient(p),
        &key("mallory"),
        Payload::Grant(terms.clone()),
    );
    assert_eq!(r.outcome, Outcome::Rejected(Rejection::KeyMismatch));
    let stranger = PatientId::from_key(hash(), &key("stranger").public_key());
    let r = w.act(
        Signer::Patient(stranger),
        &key("stranger"),
        Payload::Revoke {
            grant: TxHash(Hash32([0; 32])),
        },
    );
    assert_eq!(r.outcome, Outcome::Rejected(Rejection::UnknownSigner));
    // Registering someone else's id with one's own key.
    let r = w.act(
        Signer::Patient(p),
        &key("mallory"),
        Payload::RegisterPatient,
    );
    assert!(matches!(
        r.outcome,
        Outcome::Rejected(Rejection::NotPermitted(_))
    ));
    // Registering twice.
    let r = w.act(Signer::Patient(p), &key("alice"), Payload::RegisterPatient);
    assert!(matches!(
        r.outcome,
        Outcome::Rejected(Rejection::AlreadyExists(_))
    ));
}

#[test]
fn r2_a_signature_for_another_chain_does_not_verify() {
    let w = World::new();
    let k = key("alice");
    let id = PatientId::from_key(hash(), &k.public_key());
    let tx = Transaction {
        signer: Signer::Patient(id),
        nonce: 1,
        valid_until: w.valid_until(),
        payload: Payload::RegisterPatient,
    }
    .sign(&chain("another-chain"), &k);
    let err = tx.verify(&w.chain).unwrap_err();
    assert!(matches!(err, TransactionError::Signature { .. }), "{err}");
}

fn suspend(w: &mut World, target: &str) {
    let proposal = w.carry(
        GovernanceAction::Suspend(inst(target)),
        &["nhc", "platform"],
    );
    let record: ProposalRecord = w.get(&StateKey::Proposal(proposal)).unwrap();
    assert!(
        matches!(record.status, ProposalStatus::Carried(_)),
        "{record:?}"
    );
}

#[test]
fn r3_suspended_members_cannot_act_and_their_requests_are_denied_on_record() {
    let mut w = World::new();
    let p = w.patient("alice");
    let grant = w.grant("alice", all_of_a(&w, p));
    suspend(&mut w, "hosp-b");
    let (request, r) = w.request("doc-b", grant, "hosp-a", &[Category::LabReports]);
    assert_eq!(
        r.outcome,
        Outcome::Denied(DenialReason::InstitutionNotActive)
    );
    assert_eq!(r.audit_indexes.len(), 1, "a denial is audited");
    let access: AccessRecord = w.get(&StateKey::Access(request)).unwrap();
    assert_eq!(
        access.decision,
        Decision::Denied(DenialReason::InstitutionNotActive)
    );
    let r = w.act(
        Signer::Institution(inst("hosp-b")),
        &key("admin:hosp-b"),
        Payload::RetirePractitioner {
            practitioner: World::practitioner("doc-b").0,
        },
    );
    assert_eq!(r.outcome, Outcome::Rejected(Rejection::SignerNotActive));
}

#[test]
fn r3_retired_practitioners_are_denied() {
    let mut w = World::new();
    let p = w.patient("alice");
    let grant = w.grant("alice", all_of_a(&w, p));
    let doc = World::practitioner("doc-b").0;
    let r = w.act(
        Signer::Institution(inst("hosp-a")),
        &key("admin:hosp-a"),
        Payload::RetirePractitioner { practitioner: doc },
    );
    assert!(
        matches!(r.outcome, Outcome::Rejected(Rejection::NotPermitted(_))),
        "only their own institution"
    );
    let r = w.act(
        Signer::Institution(inst("hosp-b")),
        &key("admin:hosp-b"),
        Payload::RetirePractitioner { practitioner: doc },
    );
    assert_eq!(r.outcome, Outcome::Applied);
    let (_, r) = w.request("doc-b", grant, "hosp-a", &[Category::LabReports]);
    assert_eq!(r.outcome, Outcome::Denied(DenialReason::RequesterNotActive));
}

pub(crate) fn rotation(
    w: &mut World,
    signer: Signer,
    old: &SecretKey,
    new: &SecretKey,
    role: KeyRole,
) -> Receipt {
    let purpose = role.possession_purpose();
    let proof = new.sign(&key_possession_message(
        &w.chain,
        &signer,
        purpose,
        &new.public_key(),
    ));
    w.act(
        signer,
        old,
        Payload::RotateKey {
            role,
            new_key: new.public_key(),
            new_key_proof: proof,
        },
    )
}

#[test]
fn r4_4_every_kind_of_key_rotates_and_the_old_key_stops_working() {
    let mut w = World::new();
    let p = w.patient("alice");
    let r = rotation(
        &mut w,
        Signer::Patient(p),
        &key("alice"),
        &key("alice-2"),
        KeyRole::Own,
    );
    assert_eq!(r.outcome, Outcome::Applied);
    let terms = all_of_a(&w, p);
    assert_eq!(
        w.act(
            Signer::Patient(p),
            &key("alice"),
            Payload::Grant(terms.clone())
        )
        .outcome,
        Outcome::Rejected(Rejection::KeyMismatch)
    );
    assert_eq!(
        w.act(Signer::Patient(p), &key("alice-2"), Payload::Grant(terms))
            .outcome,
        Outcome::Applied
    );

    let (doc, doc_key) = World::practitioner("doc-a");
    assert_eq!(
        rotation(
            &mut w,
            Signer::Practitioner(doc),
            &doc_key,
            &key("doc-a-2"),
            KeyRole::Own
        )
        .outcome,
        Outcome::Applied
    );
    let admin = Signer::Institution(inst("hosp-a"));
    assert_eq!(
        rotation(
            &mut w,
            admin.clone(),
            &key("admin:hosp-a"),
            &key("admin2"),
            KeyRole::Own
        )
        .outcome,
        Outcome::Applied
    );
    assert_eq!(
        rotation(
            &mut w,
            admin,
            &key("admin2"),
            &key("node2"),
            KeyRole::InstitutionNode
        )
        .outcome,
        Outcome::Applied
    );
    let height = w.ledger.height();
    let sets: ValidatorSetRecord = w.get(&StateKey::ValidatorSet).unwrap();
    let (from, next) = sets.scheduled.clone().unwrap();
    assert_eq!(from, height + 2, "[R4.10] takes effect after the delay");
    assert_eq!(
        next.get(&inst("hosp-a")).unwrap().node_key,
        key("node2").public_key()
    );
    assert_ne!(
        sets.at(height).get(&inst("hosp-a")).unwrap().node_key,
        key("node2").public_key()
    );
}

#[test]
fn r4_4_a_rotation_without_the_new_keys_consent_is_malformed() {
    let w = World::new();
    let p = PatientId::from_key(hash(), &key("alice").public_key());
    let signer = Signer::Patient(p);
    let wrong = key("other").sign(&key_possession_message(
        &w.chain,
        &signer,
        "rotate",
        &key("new").public_key(),
    ));
    let tx = Transaction {
        signer,
        nonce: 1,
        valid_until: w.valid_until(),
        payload: Payload::RotateKey {
            role: KeyRole::Own,
            new_key: key("new").public_key(),
            new_key_proof: wrong,
        },
    }
    .sign(&w.chain, &key("alice"));
    assert!(matches!(
        tx.verify(&w.chain),
        Err(TransactionError::Field {
            field: "new_key_proof",
            ..
        })
    ));
}

#[test]
fn r4_3_recovery_needs_threshold_approvals_of_the_same_key_and_keeps_grants() {
    let mut w = World::new();
    let p = w.patient("alice");
    let friends: Vec<PatientId> = ["f1", "f2", "f3"].iter().map(|f| w.patient(f)).collect();
    let mut sorted = friends.clone();
    sorted.sort();
    let grant = w.grant("alice", all_of_a(&w, p));
    let r = w.act(
        Signer::Patient(p),
        &key("alice"),
        Payload::SetRecoveryPolicy {
            delegates: BoundedVec::new(sorted).unwrap(),
            threshold: 2,
        },
    );
    assert_eq!(r.outcome, Outcome::Applied);
    // [R4.2] The contacts can act once the delay has passed.
    w.now += LedgerParameters::default().control_change_delay_ms;
    let new_key = key("alice-new");
    let proof = new_key.sign(&key_possession_message(
        &w.chain,
        &Signer::Patient(p),
        "recover",
        &new_key.public_key(),
    ));
    let approve = |w: &mut World, friend: &str, k: &SecretKey, proof| {
        let id = PatientId::from_key(hash(), &key(friend).public_key());
        w.act(
            Signer::Patient(id),
            &key(friend),
            Payload::ApproveRecovery {
                patient: p,
                new_key: k.public_key(),
                new_key_proof: proof,
            },
        )
    };
    // A stranger's approval does not count.
    w.patient("stranger");
    assert!(matches!(
        approve(&mut w, "stranger", &new_key, proof).outcome,
        Outcome::Rejected(Rejection::NotPermitted(_))
    ));
    assert_eq!(
        approve(&mut w, "f1", &new_key, proof).outcome,
        Outcome::Applied
    );
    let record: PatientRecord = w.get(&StateKey::Patient(p)).unwrap();
    assert_eq!(
        record.key,
        key("alice").public_key(),
        "one approval is not enough"
    );
    // A second delegate approving a different key does not complete either.
    let other = key("evil");
    let other_proof = other.sign(&key_possession_message(
        &w.chain,
        &Signer::Patient(p),
        "recover",
        &other.public_key(),
    ));
    assert_eq!(
        approve(&mut w, "f2", &other, other_proof).outcome,
        Outcome::Applied
    );
    assert_eq!(
        w.get::<PatientRecord>(&StateKey::Patient(p)).unwrap().key,
        key("alice").public_key()
    );
    assert_eq!(
        approve(&mut w, "f3", &new_key, proof).outcome,
        Outcome::Applied
    );
    // [R4.3] The replacement waits out the control-change delay.
    let record = w.get::<PatientRecord>(&StateKey::Patient(p)).unwrap();
    assert_eq!(record.key_at(Timestamp(w.now)), &key("alice").public_key());
    w.now += LedgerParameters::default().control_change_delay_ms;
    assert_eq!(
        w.get::<PatientRecord>(&StateKey::Patient(p))
            .unwrap()
            .key_at(Timestamp(w.now + 1_000)),
        &new_key.public_key()
    );
    // The grant is still the patient's: the new key can revoke it.
    assert_eq!(
        w.act(Signer::Patient(p), &new_key, Payload::Revoke { grant })
            .outcome,
        Outcome::Applied
    );
}

#[test]
fn r4_5_institutions_register_practitioners_once() {
    let mut w = World::new();
    let k = key("new-doc");
    let signer = Signer::Institution(inst("hosp-a"));
    let proof = k.sign(&key_possession_message(
        &w.chain,
        &signer,
        "register-practitioner",
        &k.public_key(),
    ));
    let payload = Payload::RegisterPractitioner {
        key: k.public_key(),
        role: PractitionerRole::Nurse,
        licence_hash: licence_of("N-1"),
        key_proof: proof,
    };
    assert_eq!(
        w.act(signer.clone(), &key("admin:hosp-a"), payload.clone())
            .outcome,
        Outcome::Applied
    );
    assert!(matches!(
        w.act(signer, &key("admin:hosp-a"), payload).outcome,
        Outcome::Rejected(Rejection::AlreadyExists(_))
    ));
}

#[test]
fn r4_9_governance_needs_two_thirds_and_admits_members() {
    let mut w = World::new();
    let mut newcomer = spec("hosp-c", InstitutionKind::Hospital, 1);
    newcomer.name = medledger_contracts::encoding::BoundedString::new("Third Hospital").unwrap();
    let action = GovernanceAction::Admit(newcomer);
    // A non-validator cannot propose.
    let r = w.act(
        Signer::Institution(inst("cdc")),
        &key("admin:cdc"),
        Payload::Propose {
            action: action.clone(),
            expires_at: Timestamp(w.now + DAY_MS),
        },
    );
    assert!(matches!(
        r.outcome,
        Outcome::Rejected(Rejection::NotPermitted(_))
    ));
    let tx = w.sign(
        Signer::Institution(inst("hosp-a")),
        &key("admin:hosp-a"),
        Payload::Propose {
            action,
            expires_at: Timestamp(w.now + DAY_MS),
        },
    );
    let proposal = tx.id(&w.chain);
    w.run(tx);
    let vote = |w: &mut World, who: &str, approve| {
        w.act(
            Signer::Institution(inst(who)),
            &key(&format!("admin:{who}")),
            Payload::Vote { proposal, approve },
        )
    };
    assert_eq!(vote(&mut w, "hosp-b", true).outcome, Outcome::Applied);
    // 2 of 4: not carried; the institution does not exist yet.
    assert!(
        w.get::<InstitutionRecord>(&StateKey::Institution(inst("hosp-c")))
            .is_none()
    );
    assert!(matches!(
        vote(&mut w, "hosp-b", true).outcome,
        Outcome::Rejected(Rejection::AlreadyDone(_))
    ));
    assert_eq!(vote(&mut w, "nhc", true).outcome, Outcome::Applied);
    let record: InstitutionRecord = w.get(&StateKey::Institution(inst("hosp-c"))).unwrap();
    assert_eq!(record.status, MemberStatus::Active);
    let sets: ValidatorSetRecord = w.get(&StateKey::ValidatorSet).unwrap();
    assert_eq!(sets.at(u64::MAX).validators.len(), 5);
    assert_eq!(sets.current.validators.len(), 4, "[R4.10] not in force yet");
    // Two empty blocks later the new set is current.
    for _ in 0..2 {
        w.now += 1000;
        let proposer = inst("hosp-a");
        w.ledger
            .execute(Timestamp(w.now), &proposer, vec![])
            .unwrap();
    }
    // Promotion happens at the start of the next executed block.
    let p = w.patient("alice");
    let _ = p;
    let sets: ValidatorSetRecord = w.get(&StateKey::ValidatorSet).unwrap();
    assert_eq!(sets.current.validators.len(), 5);
}

#[test]
fn r4_9_votes_against_defeat_a_proposal() {
    let mut w = World::new();
    let tx = w.sign(
        Signer::Institution(inst("hosp-a")),
        &key("admin:hosp-a"),
        Payload::Propose {
            action: GovernanceAction::Remove(inst("hosp-b")),
            expires_at: Timestamp(w.now + DAY_MS),
        },
    );
    let proposal = tx.id(&w.chain);
    w.run(tx);
    for who in ["hosp-b", "nhc"] {
        w.act(
            Signer::Institution(inst(who)),
            &key(&format!("admin:{who}")),
            Payload::Vote {
                proposal,
                approve: false,
            },
        );
    }
    let record: ProposalRecord = w.get(&StateKey::Proposal(proposal)).unwrap();
    assert_eq!(record.status, ProposalStatus::Defeated);
}

#[test]
fn r5_1_only_the_patient_or_a_delegate_grants() {
    let mut w = World::new();
    let p = w.patient("alice");
    w.patient("bob");
    let terms = all_of_a(&w, p);
    let bob = PatientId::from_key(hash(), &key("bob").public_key());
    let r = w.act(
        Signer::Patient(bob),
        &key("bob"),
        Payload::Grant(terms.clone()),
    );
    assert!(matches!(
        r.outcome,
        Outcome::Rejected(Rejection::NotPermitted(_))
    ));
    let (doc, k) = World::practitioner("doc-b");
    let r = w.act(Signer::Practitioner(doc), &k, Payload::Grant(terms));
    assert!(matches!(
        r.outcome,
        Outcome::Rejected(Rejection::NotPermitted(_))
    ));
}

#[test]
fn r5_1_a_grant_to_an_unknown_grantee_or_for_too_long_is_refused() {
    let mut w = World::new();
    let p = w.patient("alice");
    let mut terms = w.terms(
        p,
        Grantee::Institution(inst("nowhere")),
        &[Category::Imaging],
        Holders::Any,
    );
    assert!(matches!(
        w.act(
            Signer::Patient(p),
            &key("alice"),
            Payload::Grant(terms.clone())
        )
        .outcome,
        Outcome::Rejected(Rejection::NotFound(_))
    ));
    terms.grantee = Grantee::Institution(inst("hosp-b"));
    terms.expires_at = Timestamp(w.now + 4_000 * DAY_MS);
    assert!(matches!(
        w.act(
            Signer::Patient(p),
            &key("alice"),
            Payload::Grant(terms).clone()
        )
        .outcome,
        Outcome::Rejected(Rejection::BadTime(_))
    ));
}

#[test]
fn r5_10_a_grants_record_scope_is_checked_for_form_and_reaches_only_what_it_names() {
    let mut w = World::new();
    let p = w.patient("alice");
    let mut terms = w.terms(
        p,
        Grantee::Institution(inst("hosp-b")),
        &[Category::LabReports],
        Holders::Any,
    );
    let signed = |w: &World, terms: &GrantTerms| {
        Transaction {
            signer: Signer::Patient(p),
            nonce: 99,
            valid_until: w.valid_until(),
            payload: Payload::Grant(terms.clone()),
        }
        .sign(&w.chain, &key("alice"))
        .verify(&w.chain)
    };
    let from = Timestamp(w.now - 365 * DAY_MS);
    terms.records_from = Some(from);
    terms.records_until = Some(from);
    assert!(matches!(
        signed(&w, &terms),
        Err(TransactionError::Field {
            field: "records_until",
            ..
        })
    ));
    terms.records_until = None;
    terms.sensitive_included =
        BoundedVec::new(vec![SensitiveClass::Genetic, SensitiveClass::Hiv]).unwrap();
    assert!(matches!(
        signed(&w, &terms),
        Err(TransactionError::Field {
            field: "sensitive_included",
            ..
        })
    ));
    terms.sensitive_included = BoundedVec::new(vec![SensitiveClass::Hiv]).unwrap();
    assert!(signed(&w, &terms).is_ok());
    let grant = w.grant("alice", terms.clone());
    let record: GrantRecord = w.get(&StateKey::Grant(grant)).unwrap();
    assert_eq!(record.terms, terms);
    // What the holder's gateway asks of each resource (records rule 6).
    let t = &record.terms;
    assert!(t.covers_record(Some(from), &[]));
    assert!(t.covers_record(Some(Timestamp(w.now)), &[SensitiveClass::Hiv]));
    assert!(!t.covers_record(Some(Timestamp(from.0 - 1)), &[]));
    assert!(!t.covers_record(None, &[]), "undated, under a date range");
    assert!(!t.covers_record(
        Some(Timestamp(w.now)),
        &[SensitiveClass::Hiv, SensitiveClass::MentalHealth]
    ));
    // By default every sensitive class is left out.
    let plain = w.terms(
        p,
        Grantee::Institution(inst("hosp-b")),
        &[Category::FullRecord],
        Holders::Any,
    );
    assert!(plain.covers_record(None, &[]));
    for class in SensitiveClass::ALL {
        assert!(!plain.covers_record(None, &[class]), "{class:?}");
    }
}

#[test]
fn r4_15_r5_11_a_grant_to_a_group_reaches_its_members_as_they_stand() {
    let mut w = World::new();
    let p = w.patient("alice");
    let online = GroupId::new("hosp-a-online").unwrap();
    let members = |ids: &[&str]| BoundedVec::new(ids.iter().map(|i| inst(i)).collect()).unwrap();
    let terms = w.terms(
        p,
        Grantee::Group(online.clone()),
        &[Category::LabReports],
        Holders::Any,
    );
    // No such group yet: refused.
    assert!(matches!(
        w.act(
            Signer::Patient(p),
            &key("alice"),
            Payload::Grant(terms.clone())
        )
        .outcome,
        Outcome::Rejected(Rejection::NotFound(_))
    ));
    // A group takes no institution's id, and only institutions of the consortium.
    for (group, who) in [("hosp-b", vec!["hosp-a"]), ("x", vec!["nowhere"])] {
        let r = w.act(
            Signer::Institution(inst("hosp-a")),
            &key("admin:hosp-a"),
            Payload::Propose {
                action: GovernanceAction::SetGroup {
                    group: GroupId::new(group).unwrap(),
                    members: members(&who),
                },
                expires_at: Timestamp(w.now + DAY_MS),
            },
        );
        assert!(
            matches!(r.outcome, Outcome::Rejected(Rejection::InvalidAction(_))),
            "{group}: {:?}",
            r.outcome
        );
    }
    // The internet hospital with its physical hospital, by vote.
    w.carry(
        GovernanceAction::SetGroup {
            group: online.clone(),
            members: members(&["hosp-a", "net-a"]),
        },
        &["hosp-b", "nhc"],
    );
    let record: GroupRecord = w.get(&StateKey::Group(online.clone())).unwrap();
    assert_eq!(record.members.as_slice(), [inst("hosp-a"), inst("net-a")]);
    let grant = w.grant("alice", terms);
    for doc in ["doc-a", "net-doc"] {
        let (_, r) = w.request(doc, grant, "hosp-b", &[Category::LabReports]);
        assert_eq!(r.outcome, Outcome::Authorized, "{doc}");
    }
    let (_, r) = w.request("doc-b", grant, "hosp-a", &[Category::LabReports]);
    assert_eq!(r.outcome, Outcome::Denied(DenialReason::NotGrantee));
    // The internet hospital leaves the group: from that block its doctors
    // are no longer grantees.
    w.carry(
        GovernanceAction::SetGroup {
            group: online.clone(),
            members: members(&["hosp-a"]),
        },
        &["hosp-b", "nhc"],
    );
    let (_, r) = w.request("net-doc", grant, "hosp-b", &[Category::LabReports]);
    assert_eq!(r.outcome, Outcome::Denied(DenialReason::NotGrantee));
    // A non-member cannot give the grant up; a member can, for the group.
    assert!(matches!(
        w.act(
            Signer::Institution(inst("net-a")),
            &key("admin:net-a"),
            Payload::Relinquish { grant }
        )
        .outcome,
        Outcome::Rejected(Rejection::NotPermitted(_))
    ));
    assert_eq!(
        w.act(
            Signer::Institution(inst("hosp-a")),
            &key("admin:hosp-a"),
            Payload::Relinquish { grant }
        )
        .outcome,
        Outcome::Applied
    );
}

#[test]
fn r5_2_revocation_stops_requests_from_its_block() {
    let mut w = World::new();
    let p = w.patient("alice");
    let grant = w.grant("alice", all_of_a(&w, p));
    let (_, r) = w.request("doc-b", grant, "hosp-a", &[Category::LabReports]);
    assert_eq!(r.outcome, Outcome::Authorized);
    // Revoke and request in the same block, revoke first.
    let revoke = w.sign(Signer::Patient(p), &key("alice"), Payload::Revoke { grant });
    let (doc, k) = World::practitioner("doc-b");
    let request = w.sign(
        Signer::Practitioner(doc),
        &k,
        Payload::AccessRequest {
            grant,
            holder: inst("hosp-a"),
            categories: cats(&[Category::LabReports]),
            purpose: Purpose::Treatment,
        },
    );
    w.now += 1000;
    let (_, exec) = w
        .ledger
        .execute(Timestamp(w.now), &inst("hosp-a"), vec![revoke, request])
        .unwrap();
    assert_eq!(exec.receipts[0].outcome, Outcome::Applied);
    assert_eq!(
        exec.receipts[1].outcome,
        Outcome::Denied(DenialReason::GrantRevoked)
    );
    let record: GrantRecord = w.get(&StateKey::Grant(grant)).unwrap();
    assert_eq!(record.status_at(Timestamp(w.now)), GrantStatus::Revoked);
    let again = w.act(Signer::Patient(p), &key("alice"), Payload::Revoke { grant });
    assert!(matches!(
        again.outcome,
        Outcome::Rejected(Rejection::AlreadyDone(_))
    ));

    // A proposer orders a request before the revocation in one block: it is
    // decided before the revocation, as the rule says, and the holder may
    // then record only that the grant is no longer active.
    let grant = w.grant("alice", all_of_a(&w, p));
    let request = w.sign(
        Signer::Practitioner(doc),
        &k,
        Payload::AccessRequest {
            grant,
            holder: inst("hosp-a"),
            categories: cats(&[Category::LabReports]),
            purpose: Purpose::Treatment,
        },
    );
    let request_id = request.id(&w.chain);
    let revoke = w.sign(Signer::Patient(p), &key("alice"), Payload::Revoke { grant });
    w.now += 1000;
    let (_, exec) = w
        .ledger
        .execute(Timestamp(w.now), &inst("hosp-a"), vec![request, revoke])
        .unwrap();
    assert_eq!(exec.receipts[0].outcome, Outcome::Authorized);
    assert_eq!(exec.receipts[1].outcome, Outcome::Applied);
    let refused = w.act(
        Signer::InstitutionNode(inst("hosp-a")),
        &key("node:hosp-a"),
        Payload::FetchRefused {
            request: request_id,
            practitioner: doc,
            reason: FetchRefusal::GrantNotActive,
        },
    );
    assert_eq!(
        refused.outcome,
        Outcome::Applied,
        "the ledger agrees the grant is not active"
    );
}

#[test]
fn r5_3_only_the_grantee_relinquishes() {
    let mut w = World::new();
    let p = w.patient("alice");
    let grant = w.grant("alice", all_of_a(&w, p));
    let r = w.act(
        Signer::Institution(inst("hosp-a")),
        &key("admin:hosp-a"),
        Payload::Relinquish { grant },
    );
    assert!(matches!(
        r.outcome,
        Outcome::Rejected(Rejection::NotPermitted(_))
    ));
    let r = w.act(
        Signer::Institution(inst("hosp-b")),
        &key("admin:hosp-b"),
        Payload::Relinquish { grant },
    );
    assert_eq!(r.outcome, Outcome::Applied);
    let (_, r) = w.request("doc-b", grant, "hosp-a", &[Category::LabReports]);
    assert_eq!(r.outcome, Outcome::Denied(DenialReason::GrantRelinquished));
}

#[test]
fn r5_4_and_r5_5_consent_requests_become_grants_when_approved() {
    let mut w = World::new();
    let p = w.patient("alice");
    let (doc, k) = World::practitioner("doc-b");
    let terms = w.terms(
        p,
        Grantee::Practitioner(doc),
        &[Category::Imaging],
        Holders::Listed(BoundedVec::new(vec![inst("hosp-a")]).unwrap()),
    );
    // Asking on behalf of another practitioner is refused.
    let (other, _) = World::practitioner("doc-b2");
    let mut foreign = terms.clone();
    foreign.grantee = Grantee::Practitioner(other);
    assert!(matches!(
        w.act(
            Signer::Practitioner(doc),
            &k,
            Payload::RequestConsent(foreign)
        )
        .outcome,
        Outcome::Rejected(Rejection::NotPermitted(_))
    ));
    let tx = w.sign(
        Signer::Practitioner(doc),
        &k,
        Payload::RequestConsent(terms),
    );
    let request = tx.id(&w.chain);
    assert_eq!(w.run(tx).outcome, Outcome::Applied);
    let answer = w.sign(
        Signer::Patient(p),
        &key("alice"),
        Payload::AnswerConsentRequest {
            request,
            approve: true,
        },
    );
    let grant = answer.id(&w.chain);
    let r = w.run(answer);
    assert_eq!(r.outcome, Outcome::Applied);
    assert_eq!(
        r.audit_indexes.len(),
        2,
        "answer and grant are both audited"
    );
    let (_, r) = w.request("doc-b", grant, "hosp-a", &[Category::Imaging]);
    assert_eq!(r.outcome, Outcome::Authorized);
    let (_, r) = w.request("doc-b2", grant, "hosp-a", &[Category::Imaging]);
    assert_eq!(
        r.outcome,
        Outcome::Denied(DenialReason::NotGrantee),
        "a colleague is not the grantee"
    );
    let again = w.act(
        Signer::Patient(p),
        &key("alice"),
        Payload::AnswerConsentRequest {
            request,
            approve: false,
        },
    );
    assert!(matches!(
        again.outcome,
        Outcome::Rejected(Rejection::AlreadyDone(_))
    ));
}

/// A hospital's `RecordGuardianship` with `consenting` (the patient's key,
/// or the wrong key in an attack) signing the terms.
fn guardianship(
    w: &World,
    hospital: &str,
    minor: PatientId,
    guardian: PatientId,
    minor_until: Timestamp,
    consenting: &SecretKey,
) -> Payload {
    let evidence_hash = Hash32([42; 32]);
    let recorder = &Signer::Institution(inst(hospital));
    Payload::RecordGuardianship {
        patient: minor,
        guardian,
        minor_until,
        evidence_hash,
        patient_consent: consenting.sign(&guardianship_consent_message(
            &w.chain,
            recorder,
            &minor,
            &guardian,
            minor_until,
            &evidence_hash,
        )),
    }
}

/// Records `minor` (whose key has the label `minor_key`) as a minor for a
/// year under `guardian`, by the first hospital.
fn record_minor(
    w: &mut World,
    minor: PatientId,
    minor_key: &str,
    guardian: PatientId,
) -> DelegationId {
    let payload = guardianship(
        w,
        "hosp-a",
        minor,
        guardian,
        Timestamp(w.now + 365 * DAY_MS),
        &key(minor_key),
    );
    let tx = w.sign(
        Signer::Institution(inst("hosp-a")),
        &key("admin:hosp-a"),
        payload,
    );
    let id = tx.id(&w.chain);
    assert_eq!(w.run(tx).outcome, Outcome::Applied);
    id
}

#[test]
fn r5_6_a_minor_needs_a_guardian_to_grant_but_may_revoke() {
    let mut w = World::new();
    let child = w.patient("child");
    let parent = w.patient("parent");
    // A regulator cannot record guardianship.
    let payload = guardianship(
        &w,
        "nhc",
        child,
        parent,
        Timestamp(w.now + DAY_MS),
        &key("child"),
    );
    let r = w.act(Signer::Institution(inst("nhc")), &key("admin:nhc"), payload);
    assert!(matches!(
        r.outcome,
        Outcome::Rejected(Rejection::NotPermitted(_))
    ));
    let guardianship = record_minor(&mut w, child, "child", parent);
    let terms = all_of_a(&w, child);
    let r = w.act(
        Signer::Patient(child),
        &key("child"),
        Payload::Grant(terms.clone()),
    );
    assert_eq!(
        r.outcome,
        Outcome::Rejected(Rejection::GuardianConsentRequired)
    );
    let tx = w.sign(
        Signer::Delegate(guardianship),
        &key("parent"),
        Payload::Grant(terms),
    );
    let grant = tx.id(&w.chain);
    assert_eq!(w.run(tx).outcome, Outcome::Applied);
    // The minor cannot end the guardianship, but can revoke.
    let r = w.act(
        Signer::Patient(child),
        &key("child"),
        Payload::EndDelegation {
            delegation: guardianship,
        },
    );
    assert!(matches!(
        r.outcome,
        Outcome::Rejected(Rejection::NotPermitted(_))
    ));
    assert_eq!(
        w.act(
            Signer::Patient(child),
            &key("child"),
            Payload::Revoke { grant }
        )
        .outcome,
        Outcome::Applied
    );
}

/// The attack: a hostile hospital records an adult who holds their own key
/// as a minor under a guardian of its choosing. On 4238e91 this was applied
/// (the payload carried no consent of the patient's key), with no end bound
/// and no way for anyone but that hospital to undo it.
#[test]
fn r4_7_no_single_member_makes_a_key_holding_patient_a_minor() {
    let mut w = World::new();
    let adult = w.patient("adult");
    let accomplice = w.patient("accomplice");
    let hospital = |w: &mut World, payload| {
        w.act(
            Signer::Institution(inst("hosp-b")),
            &key("admin:hosp-b"),
            payload,
        )
    };
    let year = Timestamp(w.now + 365 * DAY_MS);
    // The hospital signs the patient's part with a key it holds: refused.
    let forged = guardianship(&w, "hosp-b", adult, accomplice, year, &key("accomplice"));
    assert!(matches!(
        hospital(&mut w, forged).outcome,
        Outcome::Rejected(Rejection::NotPermitted(_))
    ));
    // A consent to other terms does not carry over to these.
    let Payload::RecordGuardianship {
        patient_consent, ..
    } = guardianship(&w, "hosp-b", adult, accomplice, year, &key("adult"))
    else {
        unreachable!()
    };
    let swapped = Payload::RecordGuardianship {
        patient: adult,
        guardian: accomplice,
        minor_until: Timestamp(year.0 + DAY_MS),
        evidence_hash: Hash32([42; 32]),
        patient_consent,
    };
    assert!(matches!(
        hospital(&mut w, swapped).outcome,
        Outcome::Rejected(Rejection::NotPermitted(_))
    ));
    let record: PatientRecord = w.get(&StateKey::Patient(adult)).unwrap();
    assert_eq!(record.minor_until, None, "the adult is still an adult");
    // A consent given for one hospital does not serve another.
    let elsewhere = guardianship(&w, "hosp-a", adult, accomplice, year, &key("adult"));
    assert!(matches!(
        hospital(&mut w, elsewhere).outcome,
        Outcome::Rejected(Rejection::NotPermitted(_))
    ));
    // The adult still grants alone.
    let terms = all_of_a(&w, adult);
    assert_eq!(
        w.act(Signer::Patient(adult), &key("adult"), Payload::Grant(terms))
            .outcome,
        Outcome::Applied
    );
}

#[test]
fn r4_7_a_minority_is_bounded_fixed_when_first_recorded_and_audited() {
    let mut w = World::new();
    let child = w.patient("child");
    let mother = w.patient("mother");
    let father = w.patient("father");
    // Beyond 14 years from now: refused, even with the child's key.
    let too_long = Timestamp(w.now + 2_000 + medledger_contracts::constants::MINORITY_MS_MAX);
    let payload = guardianship(&w, "hosp-a", child, mother, too_long, &key("child"));
    assert!(matches!(
        w.act(
            Signer::Institution(inst("hosp-a")),
            &key("admin:hosp-a"),
            payload
        )
        .outcome,
        Outcome::Rejected(Rejection::BadTime(_))
    ));
    // Recorded with its evidence: one entry in the child's trail.
    let until = Timestamp(w.now + 365 * DAY_MS);
    let payload = guardianship(&w, "hosp-a", child, mother, until, &key("child"));
    let tx = w.sign(
        Signer::Institution(inst("hosp-a")),
        &key("admin:hosp-a"),
        payload,
    );
    let delegation = tx.id(&w.chain);
    let (receipt, entries) = w.run_audited(tx);
    assert_eq!(receipt.outcome, Outcome::Applied);
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].patient, child);
    assert!(matches!(
        entries[0].event,
        AuditEvent::DelegationStarted {
            role: DelegateRole::Guardian,
            ..
        }
    ));
    let record: DelegationRecord = w.get(&StateKey::Delegation(delegation)).unwrap();
    assert_eq!(record.evidence_hash, Some(Hash32([42; 32])));
    // Another hospital cannot extend the minority, even with the child's key...
    let later = guardianship(
        &w,
        "hosp-b",
        child,
        father,
        Timestamp(until.0 + DAY_MS),
        &key("child"),
    );
    assert!(matches!(
        w.act(
            Signer::Institution(inst("hosp-b")),
            &key("admin:hosp-b"),
            later
        )
        .outcome,
        Outcome::Rejected(Rejection::NotPermitted(_))
    ));
    // ...but may record a second guardian within it.
    let within = guardianship(&w, "hosp-b", child, father, until, &key("child"));
    assert_eq!(
        w.act(
            Signer::Institution(inst("hosp-b")),
            &key("admin:hosp-b"),
            within
        )
        .outcome,
        Outcome::Applied
    );
    // A consent is used once: the same one cannot bring the guardian back.
    let again = guardianship(&w, "hosp-b", child, father, until, &key("child"));
    assert!(matches!(
        w.act(
            Signer::Institution(inst("hosp-b")),
            &key("admin:hosp-b"),
            again
        )
        .outcome,
        Outcome::Rejected(Rejection::AlreadyDone(_))
    ));
    // From the minority's end the patient decides alone.
    w.now = until.0;
    let terms = all_of_a(&w, child);
    assert_eq!(
        w.act(Signer::Patient(child), &key("child"), Payload::Grant(terms))
            .outcome,
        Outcome::Applied
    );
    // Once over, no minority can be recorded again.
    let again = guardianship(
        &w,
        "hosp-a",
        child,
        mother,
        Timestamp(w.now + DAY_MS),
        &key("child"),
    );
    assert!(matches!(
        w.act(
            Signer::Institution(inst("hosp-a")),
            &key("admin:hosp-a"),
            again
        )
        .outcome,
        Outcome::Rejected(Rejection::NotPermitted(_))
    ));
}

#[test]
fn r5_8_a_regulator_ends_a_contested_guardianship_and_the_minority_with_it() {
    let mut w = World::new();
    let patient = w.patient("teen");
    let guardian = w.patient("guardian");
    let delegation = record_minor(&mut w, patient, "teen", guardian);
    let terms = all_of_a(&w, patient);
    assert_eq!(
        w.act(
            Signer::Patient(patient),
            &key("teen"),
            Payload::Grant(terms.clone())
        )
        .outcome,
        Outcome::Rejected(Rejection::GuardianConsentRequired)
    );
    // Another hospital cannot end it; a regulator can.
    let end = Payload::EndDelegation { delegation };
    assert!(matches!(
        w.act(
            Signer::Institution(inst("hosp-b")),
            &key("admin:hosp-b"),
            end.clone()
        )
        .outcome,
        Outcome::Rejected(Rejection::NotPermitted(_))
    ));
    let (receipt, entries) = {
        let tx = w.sign(Signer::Institution(inst("nhc")), &key("admin:nhc"), end);
        w.run_audited(tx)
    };
    assert_eq!(receipt.outcome, Outcome::Applied);
    assert!(matches!(
        entries[0].event,
        AuditEvent::DelegationEnded { .. }
    ));
    assert_eq!(entries[0].patient, patient);
    // From that block the patient decides alone, and the guardian no longer can.
    assert_eq!(
        w.act(
            Signer::Patient(patient),
            &key("teen"),
            Payload::Grant(terms.clone())
        )
        .outcome,
        Outcome::Applied
    );
    assert_eq!(
        w.act(
            Signer::Delegate(delegation),
            &key("guardian"),
            Payload::Grant(terms)
        )
        .outcome,
        Outcome::Rejected(Rejection::DelegationNotActive)
    );
    // A regulator cannot end a proxy the patient appointed.
    let proxy = w.sign(
        Signer::Patient(patient),
        &key("teen"),
        Payload::Delegate {
            delegate: guardian,
            role: DelegateRole::Proxy,
            expires_at: Timestamp(w.now + DAY_MS),
        },
    );
    let proxy_id = proxy.id(&w.chain);
    assert_eq!(w.run(proxy).outcome, Outcome::Applied);
    assert!(matches!(
        w.act(
            Signer::Institution(inst("nhc")),
            &key("admin:nhc"),
            Payload::EndDelegation {
                delegation: proxy_id
            }
        )
        .outcome,
        Outcome::Rejected(Rejection::NotPermitted(_))
    ));
}

/// Cancels both kinds of pending change.
fn cancel_all() -> Payload {
    Payload::CancelControlChange {
        key: true,
        contacts: true,
    }
}

/// The patient's current key (label `label`) cancels what is pending, audited.
fn cancel_pending(w: &mut World, p: PatientId, label: &str) {
    let tx = w.sign(Signer::Patient(p), &key(label), cancel_all());
    let (receipt, entries) = w.run_audited(tx);
    assert_eq!(receipt.outcome, Outcome::Applied);
    assert_eq!(
        control_change(&entries).0,
        ControlChange::PendingChangesCancelled
    );
}

fn control_change(entries: &[AuditEntry]) -> (ControlChange, Timestamp) {
    assert_eq!(entries.len(), 1, "one audit entry");
    match entries[0].event {
        AuditEvent::ControlChanged {
            change,
            effective_at,
        } => (change, effective_at),
        ref other => panic!("expected ControlChanged, got {other:?}"),
    }
}

/// The attacks: a thief with an unlocked phone names contacts of their own;
/// colluding contacts replace the key. On 4238e91 both took effect in their
/// block and wrote no audit entry.
#[test]
fn r4_2_r4_3_r4_11_control_changes_are_audited_wait_and_the_current_key_cancels() {
    let mut w = World::new();
    let delay = LedgerParameters::default().control_change_delay_ms;
    let p = w.patient("owner");
    let thieves: Vec<PatientId> = ["t1", "t2"].iter().map(|t| w.patient(t)).collect();
    let mut sorted = thieves.clone();
    sorted.sort();
    // The thief, holding the phone, names their own contacts.
    let tx = w.sign(
        Signer::Patient(p),
        &key("owner"),
        Payload::SetRecoveryPolicy {
            delegates: BoundedVec::new(sorted).unwrap(),
            threshold: 2,
        },
    );
    let (receipt, entries) = w.run_audited(tx);
    assert_eq!(receipt.outcome, Outcome::Applied);
    let (change, effective_at) = control_change(&entries);
    assert_eq!(change, ControlChange::RecoveryContactsChanged);
    assert_eq!(effective_at, Timestamp(w.now + delay));
    assert_eq!(entries[0].patient, p);
    // Before the delay the new contacts have no power.
    let thief_key = key("thief-new");
    let proof = thief_key.sign(&key_possession_message(
        &w.chain,
        &Signer::Patient(p),
        "recover",
        &thief_key.public_key(),
    ));
    let approve = |w: &mut World, contact: &str| {
        let tx = w.sign(
            Signer::Patient(PatientId::from_key(hash(), &key(contact).public_key())),
            &key(contact),
            Payload::ApproveRecovery {
                patient: p,
                new_key: thief_key.public_key(),
                new_key_proof: proof,
            },
        );
        w.run_audited(tx)
    };
    assert!(matches!(
        approve(&mut w, "t1").0.outcome,
        Outcome::Rejected(Rejection::NotPermitted(_))
    ));
    // The patient sees the warning and cancels with the current key.
    cancel_pending(&mut w, p, "owner");
    w.now += delay;
    assert!(
        matches!(
            approve(&mut w, "t1").0.outcome,
            Outcome::Rejected(Rejection::NotPermitted(_))
        ),
        "cancelled contacts never gain power"
    );
    // Nothing pending: a cancel is refused.
    assert!(matches!(
        w.act(Signer::Patient(p), &key("owner"), cancel_all())
            .outcome,
        Outcome::Rejected(Rejection::NotFound(_))
    ));

    // Now contacts in force (set long ago) collude to replace the key.
    let mut sorted = thieves.clone();
    sorted.sort();
    assert_eq!(
        w.act(
            Signer::Patient(p),
            &key("owner"),
            Payload::SetRecoveryPolicy {
                delegates: BoundedVec::new(sorted).unwrap(),
                threshold: 2,
            },
        )
        .outcome,
        Outcome::Applied
    );
    w.now += delay;
    let (receipt, entries) = approve(&mut w, "t1");
    assert_eq!(receipt.outcome, Outcome::Applied);
    assert!(matches!(
        control_change(&entries).0,
        ControlChange::RecoveryApproved { .. }
    ));
    let (receipt, entries) = approve(&mut w, "t2");
    assert_eq!(receipt.outcome, Outcome::Applied);
    let (change, effective_at) = control_change(&entries);
    assert_eq!(change, ControlChange::KeyReplacementScheduled);
    assert_eq!(effective_at, Timestamp(w.now + delay));
    // Until then the thieves' key signs nothing and the owner's key works.
    assert_eq!(
        w.act(Signer::Patient(p), &thief_key, cancel_all()).outcome,
        Outcome::Rejected(Rejection::KeyMismatch)
    );
    cancel_pending(&mut w, p, "owner");
    w.now += delay;
    let record: PatientRecord = w.get(&StateKey::Patient(p)).unwrap();
    assert_eq!(record.key_at(Timestamp(w.now)), &key("owner").public_key());
    assert_eq!(
        w.act(Signer::Patient(p), &thief_key, cancel_all()).outcome,
        Outcome::Rejected(Rejection::KeyMismatch)
    );

    // [R4.4] A rotation by the current key is audited too.
    let new_key = key("owner-rotated");
    let proof = new_key.sign(&key_possession_message(
        &w.chain,
        &Signer::Patient(p),
        "rotate",
        &new_key.public_key(),
    ));
    let tx = w.sign(
        Signer::Patient(p),
        &key("owner"),
        Payload::RotateKey {
            role: KeyRole::Own,
            new_key: new_key.public_key(),
            new_key_proof: proof,
        },
    );
    let (receipt, entries) = w.run_audited(tx);
    assert_eq!(receipt.outcome, Outcome::Applied);
    assert_eq!(control_change(&entries).0, ControlChange::KeyRotated);
}

/// Found in review: hostile contacts in force schedule their key so that
/// the patient, cancelling it, would also throw away the new contacts that
/// replace them; and approvals of contacts no longer in force kept counting.
#[test]
fn r4_11_a_key_is_cancelled_alone_and_removed_contacts_approvals_do_not_count() {
    let mut w = World::new();
    let delay = LedgerParameters::default().control_change_delay_ms;
    let p = w.patient("owner2");
    let ids = |w: &mut World, labels: &[&str]| {
        let mut v: Vec<PatientId> = labels.iter().map(|l| w.patient(l)).collect();
        v.sort();
        BoundedVec::new(v).unwrap()
    };
    let hostile = ids(&mut w, &["h1", "h2"]);
    let friends = ids(&mut w, &["g1", "g2"]);
    let set = |w: &mut World, delegates| {
        w.act(
            Signer::Patient(p),
            &key("owner2"),
            Payload::SetRecoveryPolicy {
                delegates,
                threshold: 2,
            },
        )
        .outcome
    };
    assert_eq!(set(&mut w, hostile), Outcome::Applied);
    w.now += delay;
    // The patient replaces the contacts; the old ones are still in force.
    assert_eq!(set(&mut w, friends), Outcome::Applied);
    let evil = key("evil-key");
    let proof = evil.sign(&key_possession_message(
        &w.chain,
        &Signer::Patient(p),
        "recover",
        &evil.public_key(),
    ));
    let approve = |w: &mut World, contact: &str| {
        w.act(
            Signer::Patient(PatientId::from_key(hash(), &key(contact).public_key())),
            &key(contact),
            Payload::ApproveRecovery {
                patient: p,
                new_key: evil.public_key(),
                new_key_proof: proof,
            },
        )
        .outcome
    };
    assert_eq!(approve(&mut w, "h1"), Outcome::Applied);
    assert_eq!(approve(&mut w, "h2"), Outcome::Applied);
    let record: PatientRecord = w.get(&StateKey::Patient(p)).unwrap();
    assert!(record.pending_key.is_some() && record.pending_recovery.is_some());
    // Cancelling the key alone keeps the new contacts coming.
    assert_eq!(
        w.act(
            Signer::Patient(p),
            &key("owner2"),
            Payload::CancelControlChange {
                key: true,
                contacts: false
            }
        )
        .outcome,
        Outcome::Applied
    );
    let record: PatientRecord = w.get(&StateKey::Patient(p)).unwrap();
    assert!(record.pending_key.is_none() && record.pending_recovery.is_some());
    // One hostile approval again; then the new contacts take effect.
    assert_eq!(approve(&mut w, "h1"), Outcome::Applied);
    w.now += delay;
    // The removed contacts can no longer approve, and the earlier approval
    // does not count towards the new contacts' threshold.
    assert!(matches!(
        approve(&mut w, "h2"),
        Outcome::Rejected(Rejection::NotPermitted(_))
    ));
    assert_eq!(approve(&mut w, "g1"), Outcome::Applied);
    let record: PatientRecord = w.get(&StateKey::Patient(p)).unwrap();
    assert!(record.pending_key.is_none(), "one friend is not two");
    assert_eq!(record.recovery_approvals.len(), 1);
}

/// Found in review: a guardian (or the recording hospital) ending the
/// guardianship left the patient a minor with no one to consent, and a
/// regulator could no longer rule on it.
#[test]
fn r5_8_a_regulator_ends_a_minority_whose_guardianship_had_ended() {
    let mut w = World::new();
    let patient = w.patient("left");
    let guardian = w.patient("gone");
    let delegation = record_minor(&mut w, patient, "left", guardian);
    let end = Payload::EndDelegation { delegation };
    assert_eq!(
        w.act(Signer::Patient(guardian), &key("gone"), end.clone())
            .outcome,
        Outcome::Applied
    );
    let terms = all_of_a(&w, patient);
    assert_eq!(
        w.act(
            Signer::Patient(patient),
            &key("left"),
            Payload::Grant(terms.clone())
        )
        .outcome,
        Outcome::Rejected(Rejection::GuardianConsentRequired)
    );
    assert_eq!(
        w.act(
            Signer::Institution(inst("nhc")),
            &key("admin:nhc"),
            end.clone()
        )
        .outcome,
        Outcome::Applied
    );
    assert_eq!(
        w.act(
            Signer::Patient(patient),
            &key("left"),
            Payload::Grant(terms)
        )
        .outcome,
        Outcome::Applied
    );
    // Nothing left to end.
    assert!(matches!(
        w.act(Signer::Institution(inst("nhc")), &key("admin:nhc"), end)
            .outcome,
        Outcome::Rejected(Rejection::AlreadyDone(_))
    ));
}

#[test]
fn r5_7_to_r5_9_a_proxy_acts_only_within_its_delegation_and_period() {
    let mut w = World::new();
    let p = w.patient("grandma");
    let proxy = w.patient("grandson");
    let tx = w.sign(
        Signer::Patient(p),
        &key("grandma"),
        Payload::Delegate {
            delegate: proxy,
            role: DelegateRole::Proxy,
            expires_at: Timestamp(w.now + 10_000),
        },
    );
    let delegation = tx.id(&w.chain);
    assert_eq!(w.run(tx).outcome, Outcome::Applied);
    let terms = all_of_a(&w, p);
    let grant_tx = w.sign(
        Signer::Delegate(delegation),
        &key("grandson"),
        Payload::Grant(terms.clone()),
    );
    let grant = grant_tx.id(&w.chain);
    assert_eq!(w.run(grant_tx).outcome, Outcome::Applied);
    // Outside its scope: a proxy cannot appoint others or act for someone else.
    let other = w.patient("other");
    let r = w.act(
        Signer::Delegate(delegation),
        &key("grandson"),
        Payload::Delegate {
            delegate: other,
            role: DelegateRole::Proxy,
            expires_at: Timestamp(w.now + 10_000),
        },
    );
    assert!(matches!(
        r.outcome,
        Outcome::Rejected(Rejection::NotPermitted(_))
    ));
    let foreign = all_of_a(&w, other);
    let r = w.act(
        Signer::Delegate(delegation),
        &key("grandson"),
        Payload::Grant(foreign),
    );
    assert!(matches!(
        r.outcome,
        Outcome::Rejected(Rejection::NotPermitted(_))
    ));
    // After the period, nothing.
    w.now += 20_000;
    let r = w.act(
        Signer::Delegate(delegation),
        &key("grandson"),
        Payload::Revoke { grant },
    );
    assert_eq!(r.outcome, Outcome::Rejected(Rejection::DelegationNotActive));
    // A wrong key for the delegation.
    let r = w.act(
        Signer::Delegate(delegation),
        &key("other"),
        Payload::Revoke { grant },
    );
    assert_eq!(r.outcome, Outcome::Rejected(Rejection::KeyMismatch));
}

#[test]
fn r5_8_a_patient_ends_a_delegation_and_the_delegate_loses_power() {
    let mut w = World::new();
    let p = w.patient("alice");
    let proxy = w.patient("bob");
    let tx = w.sign(
        Signer::Patient(p),
        &key("alice"),
        Payload::Delegate {
            delegate: proxy,
            role: DelegateRole::Proxy,
            expires_at: Timestamp(w.now + DAY_MS),
        },
    );
    let delegation = tx.id(&w.chain);
    w.run(tx);
    assert_eq!(
        w.act(
            Signer::Patient(p),
            &key("alice"),
            Payload::EndDelegation { delegation }
        )
        .outcome,
        Outcome::Applied
    );
    let terms = all_of_a(&w, p);
    let r = w.act(
        Signer::Delegate(delegation),
        &key("bob"),
        Payload::Grant(terms),
    );
    assert_eq!(r.outcome, Outcome::Rejected(Rejection::DelegationNotActive));
}

#[test]
fn r7_1_each_denial_reason() {
    let mut w = World::new();
    let p = w.patient("alice");
    let listed = Holders::Listed(BoundedVec::new(vec![inst("hosp-a")]).unwrap());
    let grant = w.grant(
        "alice",
        w.terms(
            p,
            Grantee::Institution(inst("hosp-b")),
            &[Category::LabReports],
            listed,
        ),
    );
    let (_, r) = w.request("doc-b", grant, "hosp-a", &[Category::Imaging]);
    assert_eq!(r.outcome, Outcome::Denied(DenialReason::CategoryNotGranted));
    let (_, r) = w.request("doc-b", grant, "platform", &[Category::LabReports]);
    assert_eq!(r.outcome, Outcome::Denied(DenialReason::HolderNotGranted));
    let (_, r) = w.request("doc-a", grant, "hosp-a", &[Category::LabReports]);
    assert_eq!(r.outcome, Outcome::Denied(DenialReason::NotGrantee));
    let (doc, k) = World::practitioner("doc-b");
    let r = w.act(
        Signer::Practitioner(doc),
        &k,
        Payload::AccessRequest {
            grant,
            holder: inst("hosp-a"),
            categories: cats(&[Category::LabReports]),
            purpose: Purpose::Research,
        },
    );
    assert_eq!(r.outcome, Outcome::Denied(DenialReason::PurposeMismatch));
    let any = w.grant(
        "alice",
        w.terms(
            p,
            Grantee::Institution(inst("hosp-b")),
            &[Category::FullRecord],
            Holders::Any,
        ),
    );
    let (_, r) = w.request("doc-b", any, "cdc", &[Category::LabReports]);
    assert_eq!(
        r.outcome,
        Outcome::Denied(DenialReason::HolderNotEligible),
        "the CDC holds no records"
    );
    let (_, r) = w.request(
        "doc-b",
        any,
        "hosp-a",
        &[Category::Imaging, Category::Prescriptions],
    );
    assert_eq!(
        r.outcome,
        Outcome::Authorized,
        "full record covers every category"
    );
    let mut future = w.terms(
        p,
        Grantee::Institution(inst("hosp-b")),
        &[Category::LabReports],
        Holders::Any,
    );
    future.not_before = Timestamp(w.now + DAY_MS);
    future.expires_at = Timestamp(w.now + 2 * DAY_MS);
    let pending = w.grant("alice", future);
    let (_, r) = w.request("doc-b", pending, "hosp-a", &[Category::LabReports]);
    assert_eq!(r.outcome, Outcome::Denied(DenialReason::GrantNotYetValid));
    w.now += 3 * DAY_MS;
    let (_, r) = w.request("doc-b", pending, "hosp-a", &[Category::LabReports]);
    assert_eq!(r.outcome, Outcome::Denied(DenialReason::GrantExpired));
    let (doc, k) = World::practitioner("doc-b");
    let r = w.act(
        Signer::Practitioner(doc),
        &k,
        Payload::AccessRequest {
            grant: TxHash(Hash32([9; 32])),
            holder: inst("hosp-a"),
            categories: cats(&[Category::LabReports]),
            purpose: Purpose::Treatment,
        },
    );
    assert!(matches!(
        r.outcome,
        Outcome::Rejected(Rejection::NotFound(_))
    ));
}

#[test]
fn r7_2_only_the_holder_records_a_release_once_and_only_if_authorised() {
    let mut w = World::new();
    let p = w.patient("alice");
    let grant = w.grant("alice", all_of_a(&w, p));
    let (request, _) = w.request("doc-b", grant, "hosp-a", &[Category::LabReports]);
    let (denied, _) = w.request("doc-b", grant, "hosp-a", &[Category::Prescriptions]);
    let hashes = BoundedVec::new(vec![Hash32([5; 32])]).unwrap();
    let serve = |w: &mut World, who: &str, request| {
        w.act(
            Signer::InstitutionNode(inst(who)),
            &key(&format!("node:{who}")),
            Payload::AccessServed {
                request,
                content_hashes: hashes.clone(),
            },
        )
    };
    assert!(matches!(
        serve(&mut w, "hosp-b", request).outcome,
        Outcome::Rejected(Rejection::NotPermitted(_))
    ));
    assert_eq!(
        serve(&mut w, "hosp-a", denied).outcome,
        Outcome::Rejected(Rejection::NotAuthorized)
    );
    let r = serve(&mut w, "hosp-a", request);
    assert_eq!(r.outcome, Outcome::Applied);
    assert_eq!(r.audit_indexes.len(), 1);
    assert!(matches!(
        serve(&mut w, "hosp-a", request).outcome,
        Outcome::Rejected(Rejection::AlreadyDone(_))
    ));
    let access: AccessRecord = w.get(&StateKey::Access(request)).unwrap();
    assert!(access.release.unwrap().grant_active_at_release);
}

#[test]
fn r7_2_a_release_of_nothing_is_recorded_with_no_hashes() {
    let mut w = World::new();
    let p = w.patient("alice");
    let grant = w.grant("alice", all_of_a(&w, p));
    let (request, _) = w.request("doc-b", grant, "hosp-a", &[Category::LabReports]);
    let r = w.act(
        Signer::InstitutionNode(inst("hosp-a")),
        &key("node:hosp-a"),
        Payload::AccessServed {
            request,
            content_hashes: BoundedVec::default(),
        },
    );
    assert_eq!(r.outcome, Outcome::Applied);
    let access: AccessRecord = w.get(&StateKey::Access(request)).unwrap();
    assert!(access.release.unwrap().content_hashes.is_empty());
}

#[test]
fn r7_6_a_refused_fetch_is_recorded_once_per_reason_and_only_if_the_ledger_agrees() {
    let mut w = World::new();
    let p = w.patient("alice");
    let grant = w.grant("alice", all_of_a(&w, p));
    let (request, _) = w.request("doc-b", grant, "hosp-a", &[Category::LabReports]);
    let (doc_b, _) = World::practitioner("doc-b");
    let (other, _) = World::practitioner("platform-doc");
    let refuse = |w: &mut World, who: &str, practitioner, reason| {
        w.act(
            Signer::InstitutionNode(inst(who)),
            &key(&format!("node:{who}")),
            Payload::FetchRefused {
                request,
                practitioner,
                reason,
            },
        )
        .outcome
    };
    assert!(
        matches!(
            refuse(&mut w, "hosp-b", other, FetchRefusal::NotAuthorized),
            Outcome::Rejected(Rejection::NotPermitted(_))
        ),
        "only the holder named in the access"
    );
    assert!(
        matches!(
            refuse(&mut w, "hosp-a", doc_b, FetchRefusal::NotAuthorized),
            Outcome::Rejected(Rejection::NotPermitted(_))
        ),
        "the requester of an authorised access is authorised"
    );
    assert!(
        matches!(
            refuse(&mut w, "hosp-a", doc_b, FetchRefusal::GrantNotActive),
            Outcome::Rejected(Rejection::NotPermitted(_))
        ),
        "the grant is still active"
    );
    let stranger = PractitionerId::from_key(hash(), &key("nobody").public_key());
    assert!(matches!(
        refuse(&mut w, "hosp-a", stranger, FetchRefusal::AlreadyServed),
        Outcome::Rejected(Rejection::NotFound(_))
    ));
    let r = w.act(
        Signer::InstitutionNode(inst("hosp-a")),
        &key("node:hosp-a"),
        Payload::FetchRefused {
            request,
            practitioner: other,
            reason: FetchRefusal::NotAuthorized,
        },
    );
    assert_eq!(r.outcome, Outcome::Applied);
    assert_eq!(r.audit_indexes.len(), 1, "the patient's trail shows it");
    let (colleague, _) = World::practitioner("doc-b2");
    assert!(
        matches!(
            refuse(&mut w, "hosp-a", colleague, FetchRefusal::NotAuthorized),
            Outcome::Rejected(Rejection::AlreadyDone(_))
        ),
        "once per access and reason, whoever tries next"
    );
    let r = w.act(Signer::Patient(p), &key("alice"), Payload::Revoke { grant });
    assert_eq!(r.outcome, Outcome::Applied);
    assert_eq!(
        refuse(&mut w, "hosp-a", doc_b, FetchRefusal::GrantNotActive),
        Outcome::Applied
    );
    assert_eq!(
        refuse(&mut w, "hosp-a", doc_b, FetchRefusal::AlreadyServed),
        Outcome::Applied
    );
    assert!(matches!(
        refuse(&mut w, "hosp-a", doc_b, FetchRefusal::AlreadyServed),
        Outcome::Rejected(Rejection::AlreadyDone(_))
    ));
    let marker: Option<BlockRef> = w.get(&StateKey::FetchRefusal(
        request,
        FetchRefusal::GrantNotActive,
    ));
    assert!(marker.is_some());
}

#[test]
fn r7_3_r7_4_emergency_access_is_recorded_flagged_and_reviewed_once() {
    let mut w = World::new();
    let p = w.patient("alice");
    let emergency = |w: &mut World, doc: &str| {
        let (id, k) = World::practitioner(doc);
        let tx = w.sign(
            Signer::Practitioner(id),
            &k,
            Payload::EmergencyAccess {
                patient: p,
                holder: inst("hosp-a"),
                categories: cats(&[Category::Allergies]),
                reason: EmergencyReason::PatientUnconscious,
            },
        );
        let request = tx.id(&w.chain);
        (request, w.run(tx))
    };
    let (request, r) = emergency(&mut w, "doc-b");
    assert_eq!(r.outcome, Outcome::Authorized);
    assert_eq!(r.audit_indexes.len(), 1);
    // The attacks of a member beyond break-glass's purpose, each denied on
    // record (on 4238e91 the nurse and the internet hospital's doctor were
    // authorised): a platform, an internet hospital (no emergency care in
    // the example genesis), a role genesis does not allow.
    for who in ["platform-doc", "net-doc", "nurse-b"] {
        let (_, r) = emergency(&mut w, who);
        assert_eq!(
            r.outcome,
            Outcome::Denied(DenialReason::EmergencyNotAllowed),
            "{who}"
        );
        assert_eq!(r.audit_indexes.len(), 1, "{who}: the attempt is audited");
    }
    let review = |w: &mut World, who: &str| {
        w.act(
            Signer::Institution(inst(who)),
            &key(&format!("admin:{who}")),
            Payload::EmergencyReview {
                access: request,
                finding: ReviewFinding::Justified,
                record_hash: Hash32([3; 32]),
            },
        )
    };
    // The requester's institution may not judge itself (it could on
    // 4238e91), nor may another hospital: a regulator reviews.
    for who in ["hosp-b", "hosp-a"] {
        assert!(
            matches!(
                review(&mut w, who).outcome,
                Outcome::Rejected(Rejection::NotPermitted(_))
            ),
            "{who}"
        );
    }
    assert_eq!(review(&mut w, "nhc").outcome, Outcome::Applied);
    assert!(matches!(
        review(&mut w, "nhc").outcome,
        Outcome::Rejected(Rejection::AlreadyDone(_))
    ));
}

/// The attack: a member breaks the glass and nobody ever reviews it; on
/// fdb9626 the ledger said nothing until an auditor's later replay listed
/// it. Now the first block at or after the deadline writes it into the
/// patient's trail, once, and a reviewed access is never reported.
#[test]
fn r7_7_an_emergency_access_unreviewed_at_its_deadline_is_audited_in_that_block() {
    let mut w = World::new();
    let p = w.patient("alice");
    let (doc, doc_key) = World::practitioner("doc-b");
    let emergency = |w: &mut World| {
        let r = w.act(
            Signer::Practitioner(doc),
            &doc_key,
            Payload::EmergencyAccess {
                patient: p,
                holder: inst("hosp-a"),
                categories: cats(&[Category::Allergies]),
                reason: EmergencyReason::PatientUnconscious,
            },
        );
        assert_eq!(r.outcome, Outcome::Authorized);
        r.tx
    };
    let reviewed = emergency(&mut w);
    let unreviewed = emergency(&mut w);
    let deadline =
        w.now + u64::from(LedgerParameters::default().emergency_review_days) * 86_400_000;
    assert_eq!(
        w.act(
            Signer::Institution(inst("nhc")),
            &key("admin:nhc"),
            Payload::EmergencyReview {
                access: reviewed,
                finding: ReviewFinding::Justified,
                record_hash: Hash32([3; 32]),
            },
        )
        .outcome,
        Outcome::Applied
    );
    let overdue = |entries: &[AuditEntry]| -> Vec<TxHash> {
        entries
            .iter()
            .filter_map(|e| match &e.event {
                AuditEvent::EmergencyReviewOverdue {
                    request,
                    requester_institution,
                    ..
                } => {
                    assert_eq!(e.patient, p);
                    assert_eq!(e.tx, *request);
                    assert_eq!(requester_institution, &inst("hosp-b"));
                    Some(*request)
                }
                _ => None,
            })
            .collect()
    };
    // A block before the deadline: nothing.
    w.now = deadline - 10_000;
    let tx = w.sign(
        Signer::Patient(PatientId::from_key(hash(), &key("bob").public_key())),
        &key("bob"),
        Payload::RegisterPatient,
    );
    let (_, entries) = w.run_audited(tx);
    assert!(overdue(&entries).is_empty());
    // The first block past it: the unreviewed access only, before the
    // block's own transactions; the next block does not repeat it.
    w.now = deadline;
    let tx = w.sign(
        Signer::Patient(PatientId::from_key(hash(), &key("carol").public_key())),
        &key("carol"),
        Payload::RegisterPatient,
    );
    let (_, entries) = w.run_audited(tx);
    assert_eq!(overdue(&entries), [unreviewed]);
    assert!(matches!(
        entries[0].event,
        AuditEvent::EmergencyReviewOverdue { .. }
    ));
    let tx = w.sign(
        Signer::Patient(PatientId::from_key(hash(), &key("dave").public_key())),
        &key("dave"),
        Payload::RegisterPatient,
    );
    let (_, entries) = w.run_audited(tx);
    assert!(overdue(&entries).is_empty());
}

/// The attack: a holder's colleague fetches break-glass records months
/// later, or after a regulator found the access unjustified. On 4238e91 the
/// ledger saw nothing wrong with either release and refused the holder's
/// record of refusing it.
#[test]
fn r7_3_emergency_records_are_fetchable_only_in_the_window_and_never_after_an_unjustified_review() {
    let mut w = World::new();
    let p = w.patient("alice");
    let window = LedgerParameters::default().emergency.fetch_window_ms;
    let (doc, k) = World::practitioner("doc-b");
    let emergency = |w: &mut World| {
        let tx = w.sign(
            Signer::Practitioner(doc),
            &k,
            Payload::EmergencyAccess {
                patient: p,
                holder: inst("hosp-a"),
                categories: cats(&[Category::Allergies]),
                reason: EmergencyReason::PatientUnconscious,
            },
        );
        let id = tx.id(&w.chain);
        assert_eq!(w.run(tx).outcome, Outcome::Authorized);
        id
    };
    let holder = |w: &mut World, payload| {
        let tx = w.sign(
            Signer::InstitutionNode(inst("hosp-a")),
            &key("node:hosp-a"),
            payload,
        );
        w.run_audited(tx)
    };
    let served = |request| Payload::AccessServed {
        request,
        content_hashes: BoundedVec::new(vec![Hash32([8; 32])]).unwrap(),
    };
    let refused = |request| Payload::FetchRefused {
        request,
        practitioner: doc,
        reason: FetchRefusal::GrantNotActive,
    };
    let released_in_basis = |entries: &[AuditEntry]| match entries[0].event {
        AuditEvent::Released { grant_active, .. } => grant_active,
        ref other => panic!("expected a release, got {other:?}"),
    };
    // Within the window: served, and its basis held.
    let first = emergency(&mut w);
    let (r, entries) = holder(&mut w, refused(first));
    assert!(
        matches!(r.outcome, Outcome::Rejected(Rejection::NotPermitted(_))),
        "it is fetchable"
    );
    let (r, entries2) = holder(&mut w, served(first));
    assert_eq!(r.outcome, Outcome::Applied);
    assert!(entries.is_empty());
    assert!(released_in_basis(&entries2));
    // Past the window: the holder's refusal fits the ledger, and a release
    // made anyway is recorded flagged.
    let late = emergency(&mut w);
    w.now += window;
    let (r, _) = holder(&mut w, refused(late));
    assert_eq!(r.outcome, Outcome::Applied);
    let (r, entries) = holder(&mut w, served(late));
    assert_eq!(r.outcome, Outcome::Applied);
    assert!(!released_in_basis(&entries), "flagged: outside the window");
    // Found unjustified: no longer fetchable, even within the window.
    let judged = emergency(&mut w);
    assert_eq!(
        w.act(
            Signer::Institution(inst("nhc")),
            &key("admin:nhc"),
            Payload::EmergencyReview {
                access: judged,
                finding: ReviewFinding::Unjustified,
                record_hash: Hash32([3; 32]),
            },
        )
        .outcome,
        Outcome::Applied
    );
    let (r, _) = holder(&mut w, refused(judged));
    assert_eq!(r.outcome, Outcome::Applied);
}

#[test]
fn r7_5_public_health_access_needs_a_cdc_officer() {
    let mut w = World::new();
    let p = w.patient("alice");
    let access = |w: &mut World, doc: &str| {
        let (id, k) = World::practitioner(doc);
        w.act(
            Signer::Practitioner(id),
            &k,
            Payload::PublicHealthAccess {
                patient: p,
                holder: inst("hosp-b"),
                categories: cats(&[Category::LabReports]),
                legal_basis: LegalBasis::InfectiousDiseaseReporting,
                case_hash: Hash32([4; 32]),
            },
        )
    };
    assert_eq!(access(&mut w, "cdc-officer").outcome, Outcome::Authorized);
    assert_eq!(
        access(&mut w, "cdc-clerk").outcome,
        Outcome::Denied(DenialReason::NotPublicHealth)
    );
    assert_eq!(
        access(&mut w, "doc-a").outcome,
        Outcome::Denied(DenialReason::NotPublicHealth)
    );
}

#[test]
fn r7_8_a_patient_asks_for_their_own_records_and_only_the_holder_records_the_release_once() {
    let mut w = World::new();
    let p = w.patient("alice");
    let ask = |w: &mut World, holder: &str| {
        let tx = w.sign(
            Signer::Patient(p),
            &key("alice"),
            Payload::OwnRecordsRequest {
                holder: inst(holder),
                categories: cats(&[Category::LabReports]),
            },
        );
        w.run_audited(tx)
    };
    // A member that holds no records is not asked.
    assert!(matches!(
        ask(&mut w, "nhc").0.outcome,
        Outcome::Rejected(Rejection::NotPermitted(_))
    ));
    let (r, entries) = ask(&mut w, "hosp-a");
    assert_eq!(r.outcome, Outcome::Authorized);
    let request = r.tx;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].patient, p);
    assert_eq!(
        entries[0].event,
        AuditEvent::OwnRecordsRequested {
            request,
            holder: inst("hosp-a")
        }
    );
    let own: OwnAccessRecord = w.get(&StateKey::OwnAccess(request)).unwrap();
    assert_eq!((own.patient, own.holder.clone()), (p, inst("hosp-a")));
    assert!(own.release.is_none());
    assert!(
        w.get::<AccessRecord>(&StateKey::Access(request)).is_none(),
        "no practitioner's access is made of it"
    );

    // Only the patient's own key asks: not a practitioner, not a delegate.
    let (doc, k) = World::practitioner("doc-a");
    assert!(matches!(
        w.act(
            Signer::Practitioner(doc),
            &k,
            Payload::OwnRecordsRequest {
                holder: inst("hosp-a"),
                categories: cats(&[Category::LabReports]),
            },
        )
        .outcome,
        Outcome::Rejected(Rejection::NotPermitted(_))
    ));

    // The release: by the holder it names, once, flagged as resting on
    // nothing that lapsed; a refused fetch cannot cite it.
    let hashes = BoundedVec::new(vec![Hash32([5; 32]), Hash32([6; 32])]).unwrap();
    let serve = |w: &mut World, who: &str| {
        let tx = w.sign(
            Signer::InstitutionNode(inst(who)),
            &key(&format!("node:{who}")),
            Payload::AccessServed {
                request,
                content_hashes: hashes.clone(),
            },
        );
        w.run_audited(tx)
    };
    assert!(matches!(
        serve(&mut w, "hosp-b").0.outcome,
        Outcome::Rejected(Rejection::NotPermitted(_))
    ));
    let (r, entries) = serve(&mut w, "hosp-a");
    assert_eq!(r.outcome, Outcome::Applied);
    assert_eq!(
        entries[0].event,
        AuditEvent::Released {
            request,
            holder: inst("hosp-a"),
            content_count: 2,
            grant_active: true,
        }
    );
    assert!(matches!(
        serve(&mut w, "hosp-a").0.outcome,
        Outcome::Rejected(Rejection::AlreadyDone(_))
    ));
    let own: OwnAccessRecord = w.get(&StateKey::OwnAccess(request)).unwrap();
    assert_eq!(own.release.unwrap().content_hashes, hashes);
    let (doc_a, _) = World::practitioner("doc-a");
    assert!(matches!(
        w.act(
            Signer::InstitutionNode(inst("hosp-a")),
            &key("node:hosp-a"),
            Payload::FetchRefused {
                request,
                practitioner: doc_a,
                reason: FetchRefusal::AlreadyServed,
            },
        )
        .outcome,
        Outcome::Rejected(Rejection::NotFound(_))
    ));
}

/// A lost phone's key, while recovery contacts are replacing it, does not
/// pull the patient's records: asked before the new key takes effect, the
/// ledger refuses; after, the new key asks.
#[test]
fn r7_8_no_own_records_while_a_key_replacement_is_pending() {
    let mut w = World::new();
    let p = w.patient("alice");
    let friends: Vec<PatientId> = ["f1", "f2"].iter().map(|f| w.patient(f)).collect();
    let mut sorted = friends.clone();
    sorted.sort();
    w.act(
        Signer::Patient(p),
        &key("alice"),
        Payload::SetRecoveryPolicy {
            delegates: BoundedVec::new(sorted).unwrap(),
            threshold: 2,
        },
    );
    let delay = LedgerParameters::default().control_change_delay_ms;
    w.now += delay;
    let new_key = key("alice-new");
    let proof = new_key.sign(&key_possession_message(
        &w.chain,
        &Signer::Patient(p),
        "recover",
        &new_key.public_key(),
    ));
    for friend in ["f1", "f2"] {
        let id = PatientId::from_key(hash(), &key(friend).public_key());
        let r = w.act(
            Signer::Patient(id),
            &key(friend),
            Payload::ApproveRecovery {
                patient: p,
                new_key: new_key.public_key(),
                new_key_proof: proof,
            },
        );
        assert_eq!(r.outcome, Outcome::Applied);
    }
    let ask = |w: &mut World, k: &SecretKey| {
        w.act(
            Signer::Patient(p),
            k,
            Payload::OwnRecordsRequest {
                holder: inst("hosp-a"),
                categories: cats(&[Category::LabReports]),
            },
        )
        .outcome
    };
    assert!(matches!(
        ask(&mut w, &key("alice")),
        Outcome::Rejected(Rejection::NotPermitted(_))
    ));
    w.now += delay;
    assert_eq!(ask(&mut w, &new_key), Outcome::Authorized);
}

#[test]
fn r8_the_audit_log_root_in_the_header_matches_the_entries() {
    use medledger_contracts::merkle;
    let mut w = World::new();
    let p = w.patient("alice");
    let mut leaves = Vec::new();
    let terms = all_of_a(&w, p);
    let grant_tx = w.sign(Signer::Patient(p), &key("alice"), Payload::Grant(terms));
    let grant = grant_tx.id(&w.chain);
    let (doc, k) = World::practitioner("doc-b");
    let req = w.sign(
        Signer::Practitioner(doc),
        &k,
        Payload::AccessRequest {
            grant,
            holder: inst("hosp-a"),
            categories: cats(&[Category::LabReports]),
            purpose: Purpose::Treatment,
        },
    );
    w.now += 1000;
    let (header, exec) = w
        .ledger
        .execute(Timestamp(w.now), &inst("hosp-a"), vec![grant_tx, req])
        .unwrap();
    leaves.extend(exec.audit_entries.iter().map(|e| e.leaf_hash(hash())));
    assert_eq!(header.audit_size, 2);
    assert_eq!(header.audit_root, merkle::root(hash(), &leaves));
    assert!(exec.audit_entries.iter().all(|e| e.patient == p));
    let old = (header.audit_size, header.audit_root);
    let revoke = w.sign(Signer::Patient(p), &key("alice"), Payload::Revoke { grant });
    w.now += 1000;
    let (header, exec) = w
        .ledger
        .execute(Timestamp(w.now), &inst("hosp-a"), vec![revoke])
        .unwrap();
    leaves.extend(exec.audit_entries.iter().map(|e| e.leaf_hash(hash())));
    assert_eq!(header.audit_root, merkle::root(hash(), &leaves));
    let proof = merkle::consistency_proof(hash(), &leaves, old.0 as usize).unwrap();
    merkle::verify_consistency(
        hash(),
        old.0,
        header.audit_size,
        &old.1,
        &header.audit_root,
        &proof,
    )
    .unwrap();
}

#[test]
fn state_root_changes_when_and_only_when_state_changes() {
    let mut w = World::new();
    w.patient("alice");
    let before = w.ledger.headers().last().unwrap().state_root;
    w.now += 1000;
    let (empty, _) = w
        .ledger
        .execute(Timestamp(w.now), &inst("hosp-a"), vec![])
        .unwrap();
    assert_eq!(empty.state_root, before, "an empty block changes nothing");
    w.patient("bob");
    assert_ne!(w.ledger.headers().last().unwrap().state_root, before);
}
