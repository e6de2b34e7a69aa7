//! Practitioners' licences attested by regulators (R4.12–R4.14).

use medledger_contracts::encoding::BoundedVec;
use medledger_contracts::records::*;
use medledger_contracts::state::StateKey;
use medledger_contracts::transaction::*;
use medledger_contracts::types::*;

use crate::world::*;

fn terms(w: &World, label: &str, kind: LicenceKind, at: &[&str]) -> LicenceTerms {
    let mut institutions: Vec<_> = at.iter().map(|i| inst(i)).collect();
    institutions.sort();
    LicenceTerms {
        licence_hash: licence_of(label),
        kind,
        scopes: BoundedVec::new(vec![PracticeScope::new("internal-medicine").unwrap()]).unwrap(),
        institutions: BoundedVec::new(institutions).unwrap(),
        valid_from: Timestamp(w.now),
        valid_until: Timestamp(w.now + 365 * DAY_MS),
    }
}

fn regulator(w: &mut World, payload: Payload) -> Receipt {
    w.act(Signer::Institution(inst("nhc")), &key("admin:nhc"), payload)
}

fn set_status(w: &mut World, label: &str, status: LicenceStatus) -> Receipt {
    let licence = licence_of(label);
    regulator(w, Payload::SetLicenceStatus { licence, status })
}

/// A patient's grant to hosp-b of lab reports held at hosp-a.
fn granted(w: &mut World) -> (PatientId, TxHash) {
    let p = w.patient("alice");
    let listed = Holders::Listed(BoundedVec::new(vec![inst("hosp-a")]).unwrap());
    let terms = w.terms(
        p,
        Grantee::Institution(inst("hosp-b")),
        &[Category::LabReports],
        listed,
    );
    let grant = w.grant("alice", terms);
    (p, grant)
}

fn request_outcome(w: &mut World, doc: &str, grant: TxHash) -> Outcome {
    w.request(doc, grant, "hosp-a", &[Category::LabReports])
        .1
        .outcome
}

#[test]
fn r4_12_only_a_regulator_attests_and_the_terms_must_hold() {
    let mut w = World::attested();
    let good = terms(&w, "doc-b", LicenceKind::Physician, &["hosp-b"]);
    // A hospital cannot vouch for its own staff.
    let r = w.act(
        Signer::Institution(inst("hosp-b")),
        &key("admin:hosp-b"),
        Payload::AttestLicence(good.clone()),
    );
    assert!(
        matches!(r.outcome, Outcome::Rejected(Rejection::NotPermitted(_))),
        "{r:?}"
    );
    // Nor can a practitioner.
    let (doc, k) = World::practitioner("doc-b");
    let r = w.act(
        Signer::Practitioner(doc),
        &k,
        Payload::AttestLicence(good.clone()),
    );
    assert!(
        matches!(r.outcome, Outcome::Rejected(Rejection::NotPermitted(_))),
        "{r:?}"
    );
    // A validity already over, or an institution that is not a member.
    let mut past = good.clone();
    past.valid_from = Timestamp(w.now - 2 * DAY_MS);
    past.valid_until = Timestamp(w.now - DAY_MS);
    let r = regulator(&mut w, Payload::AttestLicence(past));
    assert!(
        matches!(r.outcome, Outcome::Rejected(Rejection::BadTime(_))),
        "{r:?}"
    );
    let elsewhere = terms(&w, "doc-b", LicenceKind::Physician, &["hosp-z"]);
    let r = regulator(&mut w, Payload::AttestLicence(elsewhere));
    assert!(
        matches!(r.outcome, Outcome::Rejected(Rejection::NotFound(_))),
        "{r:?}"
    );
    assert!(
        w.get::<LicenceRecord>(&StateKey::Licence(licence_of("doc-b")))
            .is_none()
    );
    // The regulator's attestation is recorded, active.
    assert_eq!(
        regulator(&mut w, Payload::AttestLicence(good.clone())).outcome,
        Outcome::Applied
    );
    let record: LicenceRecord = w.get(&StateKey::Licence(licence_of("doc-b"))).unwrap();
    assert_eq!(
        (record.status, record.terms, record.attested_by),
        (LicenceStatus::Active, good, inst("nhc"))
    );
    // Unordered lists are malformed before any rule is applied.
    let mut unordered = terms(&w, "doc-a", LicenceKind::Physician, &["hosp-a", "hosp-b"]);
    unordered.institutions = BoundedVec::new(vec![inst("hosp-b"), inst("hosp-a")]).unwrap();
    let tx = Transaction {
        signer: Signer::Institution(inst("nhc")),
        nonce: 1,
        valid_until: w.valid_until(),
        payload: Payload::AttestLicence(unordered),
    }
    .sign(&w.chain, &key("admin:nhc"));
    assert!(tx.verify(&w.chain).is_err());
}

#[test]
fn r4_14_under_attested_licences_a_practitioner_acts_only_on_one_in_force() {
    let mut w = World::attested();
    let (p, grant) = granted(&mut w);
    let denied = |problem| Outcome::Denied(DenialReason::LicenceNotInForce(problem));
    // Registered by their hospital, but no regulator has attested them.
    assert_eq!(
        request_outcome(&mut w, "doc-b", grant),
        denied(LicenceProblem::NotAttested)
    );
    // A licence for another place of practice, or another kind, does not do.
    let elsewhere = terms(&w, "doc-b", LicenceKind::Physician, &["hosp-a"]);
    let r = regulator(&mut w, Payload::AttestLicence(elsewhere));
    assert_eq!(r.outcome, Outcome::Applied);
    assert_eq!(
        request_outcome(&mut w, "doc-b", grant),
        denied(LicenceProblem::NotAtThisInstitution)
    );
    let nurse = terms(&w, "doc-b", LicenceKind::Nurse, &["hosp-b"]);
    let r = regulator(&mut w, Payload::AttestLicence(nurse));
    assert_eq!(r.outcome, Outcome::Applied);
    assert_eq!(
        request_outcome(&mut w, "doc-b", grant),
        denied(LicenceProblem::WrongKind)
    );
    // The right licence, amended in place: now the request is authorised.
    let right = terms(&w, "doc-b", LicenceKind::Physician, &["hosp-a", "hosp-b"]);
    assert_eq!(
        regulator(&mut w, Payload::AttestLicence(right.clone())).outcome,
        Outcome::Applied
    );
    assert_eq!(request_outcome(&mut w, "doc-b", grant), Outcome::Authorized);
    // Suspended: the next block denies access and refuses consent requests,
    // and the glass cannot be broken either.
    assert_eq!(
        set_status(&mut w, "doc-b", LicenceStatus::Suspended).outcome,
        Outcome::Applied
    );
    assert_eq!(
        request_outcome(&mut w, "doc-b", grant),
        denied(LicenceProblem::Suspended)
    );
    let (doc, k) = World::practitioner("doc-b");
    let ask = w.terms(
        p,
        Grantee::Practitioner(doc),
        &[Category::LabReports],
        Holders::Any,
    );
    let r = w.act(
        Signer::Practitioner(doc),
        &k,
        Payload::RequestConsent(ask.clone()),
    );
    assert_eq!(
        r.outcome,
        Outcome::Rejected(Rejection::LicenceNotInForce(LicenceProblem::Suspended))
    );
    let emergency = Payload::EmergencyAccess {
        patient: p,
        holder: inst("hosp-a"),
        categories: cats(&[Category::LabReports]),
        reason: EmergencyReason::PatientUnconscious,
    };
    let r = w.act(Signer::Practitioner(doc), &k, emergency.clone());
    assert_eq!(r.outcome, denied(LicenceProblem::Suspended));
    // A renewal does not lift a suspension; the regulator lifts it.
    assert_eq!(
        regulator(&mut w, Payload::AttestLicence(right.clone())).outcome,
        Outcome::Applied
    );
    assert_eq!(
        request_outcome(&mut w, "doc-b", grant),
        denied(LicenceProblem::Suspended)
    );
    let r = set_status(&mut w, "doc-b", LicenceStatus::Suspended);
    assert!(
        matches!(r.outcome, Outcome::Rejected(Rejection::AlreadyDone(_))),
        "{r:?}"
    );
    assert_eq!(
        set_status(&mut w, "doc-b", LicenceStatus::Active).outcome,
        Outcome::Applied
    );
    assert_eq!(request_outcome(&mut w, "doc-b", grant), Outcome::Authorized);
    assert_eq!(
        w.act(Signer::Practitioner(doc), &k, Payload::RequestConsent(ask))
            .outcome,
        Outcome::Applied
    );
    assert_eq!(
        w.act(Signer::Practitioner(doc), &k, emergency).outcome,
        Outcome::Authorized
    );
    // Revoked is final: neither reinstated nor attested again.
    assert_eq!(
        set_status(&mut w, "doc-b", LicenceStatus::Revoked).outcome,
        Outcome::Applied
    );
    assert_eq!(
        request_outcome(&mut w, "doc-b", grant),
        denied(LicenceProblem::Revoked)
    );
    for payload in [
        Payload::SetLicenceStatus {
            licence: licence_of("doc-b"),
            status: LicenceStatus::Active,
        },
        Payload::AttestLicence(right),
    ] {
        let r = regulator(&mut w, payload);
        assert!(
            matches!(r.outcome, Outcome::Rejected(Rejection::AlreadyDone(_))),
            "{r:?}"
        );
    }
    // Only a regulator changes a status.
    let r = w.act(
        Signer::Institution(inst("hosp-b")),
        &key("admin:hosp-b"),
        Payload::SetLicenceStatus {
            licence: licence_of("doc-b2"),
            status: LicenceStatus::Suspended,
        },
    );
    assert!(
        matches!(r.outcome, Outcome::Rejected(Rejection::NotPermitted(_))),
        "{r:?}"
    );
}

#[test]
fn r4_14_a_licence_stops_at_its_end_and_serves_every_place_it_names() {
    let mut w = World::attested();
    let (_, grant) = granted(&mut w);
    // doc-b2's licence names hosp-b for ten days.
    let mut short = terms(&w, "doc-b2", LicenceKind::Physician, &["hosp-b"]);
    short.valid_until = Timestamp(w.now + 10 * DAY_MS);
    assert_eq!(
        regulator(&mut w, Payload::AttestLicence(short)).outcome,
        Outcome::Applied
    );
    assert_eq!(
        request_outcome(&mut w, "doc-b2", grant),
        Outcome::Authorized
    );
    w.now += 10 * DAY_MS;
    assert_eq!(
        request_outcome(&mut w, "doc-b2", grant),
        Outcome::Denied(DenialReason::LicenceNotInForce(LicenceProblem::Expired))
    );
    // 多点执业: one licence, registered by two hospitals under two keys.
    let second = key("doc-b2-at-hosp-a");
    let signer = Signer::Institution(inst("hosp-a"));
    let proof = second.sign(&key_possession_message(
        &w.chain,
        &signer,
        "register-practitioner",
        &second.public_key(),
    ));
    let r = w.act(
        signer,
        &key("admin:hosp-a"),
        Payload::RegisterPractitioner {
            key: second.public_key(),
            role: PractitionerRole::Physician,
            licence_hash: licence_of("doc-b2"),
            key_proof: proof,
        },
    );
    assert_eq!(r.outcome, Outcome::Applied);
    let renewed = terms(&w, "doc-b2", LicenceKind::Physician, &["hosp-a", "hosp-b"]);
    assert_eq!(
        regulator(&mut w, Payload::AttestLicence(renewed)).outcome,
        Outcome::Applied
    );
    assert_eq!(
        request_outcome(&mut w, "doc-b2", grant),
        Outcome::Authorized
    );
    let p = PatientId::from_key(&key("alice").public_key());
    let at_a = Payload::RequestConsent(w.terms(
        p,
        Grantee::Institution(inst("hosp-a")),
        &[Category::LabReports],
        Holders::Any,
    ));
    let id = PractitionerId::from_key(&second.public_key());
    assert_eq!(
        w.act(Signer::Practitioner(id), &second, at_a.clone())
            .outcome,
        Outcome::Applied
    );
    // One suspension stops the person at both places.
    assert_eq!(
        set_status(&mut w, "doc-b2", LicenceStatus::Suspended).outcome,
        Outcome::Applied
    );
    assert_eq!(
        w.act(Signer::Practitioner(id), &second, at_a).outcome,
        Outcome::Rejected(Rejection::LicenceNotInForce(LicenceProblem::Suspended))
    );
}

#[test]
fn r4_14_declared_licences_need_no_regulator() {
    let mut w = World::new();
    let (_, grant) = granted(&mut w);
    assert!(
        w.get::<LicenceRecord>(&StateKey::Licence(licence_of("doc-b")))
            .is_none()
    );
    assert_eq!(request_outcome(&mut w, "doc-b", grant), Outcome::Authorized);
}
