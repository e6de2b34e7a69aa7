//! Practitioners' and institutions' licences attested by regulators
//! (R4.12–R4.14, R4.16–R4.17).

use medledger_contracts::encoding::{BoundedString, BoundedVec, Hash32};
use medledger_contracts::records::*;
use medledger_contracts::state::StateKey;
use medledger_contracts::transaction::*;
use medledger_contracts::types::*;

use crate::world::*;

/// A licence for the practitioner `label` (hash `licence_of(label)`), usable
/// at `at`, binding the registration `label`.
fn terms(w: &World, label: &str, kind: LicenceKind, at: &[&str]) -> LicenceTerms {
    bound(w, label, kind, at, &[label])
}

/// The licence `label`, usable at `at`, binding the registrations (key
/// labels) `bind`.
fn bound(w: &World, label: &str, kind: LicenceKind, at: &[&str], bind: &[&str]) -> LicenceTerms {
    let mut institutions: Vec<_> = at.iter().map(|i| inst(i)).collect();
    institutions.sort();
    let mut practitioners: Vec<_> = bind.iter().map(|l| World::practitioner(l).0).collect();
    practitioners.sort();
    LicenceTerms {
        licence_hash: licence_of(label),
        kind,
        scopes: BoundedVec::new(vec![PracticeScope::new("internal-medicine").unwrap()]).unwrap(),
        institutions: BoundedVec::new(institutions).unwrap(),
        practitioners: BoundedVec::new(practitioners).unwrap(),
        valid_from: Timestamp(w.now),
        valid_until: Timestamp(w.now + 365 * DAY_MS),
    }
}

/// `institution` registers the key `label` as a physician under the
/// licence `licence`'s hash.
fn register(w: &mut World, institution: &str, label: &str, licence: &str) -> Receipt {
    let k = key(label);
    let signer = Signer::Institution(inst(institution));
    let proof = k.sign(&key_possession_message(
        &w.chain,
        &signer,
        "register-practitioner",
        &k.public_key(),
    ));
    w.act(
        signer,
        &key(&format!("admin:{institution}")),
        Payload::RegisterPractitioner {
            key: k.public_key(),
            role: PractitionerRole::Physician,
            licence_hash: licence_of(licence),
            key_proof: proof,
        },
    )
}

fn by(w: &mut World, regulator: &str, payload: Payload) -> Receipt {
    let admin = key(&format!("admin:{regulator}"));
    w.act(Signer::Institution(inst(regulator)), &admin, payload)
}

fn regulator(w: &mut World, payload: Payload) -> Receipt {
    by(w, "nhc", payload)
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

fn not_permitted(r: &Receipt) -> bool {
    matches!(r.outcome, Outcome::Rejected(Rejection::NotPermitted(_)))
}

fn denied(problem: LicenceProblem) -> Outcome {
    Outcome::Denied(DenialReason::LicenceNotInForce(problem))
}

#[test]
fn r4_12_only_a_regulator_attests_and_the_terms_must_hold() {
    let mut w = World::attested();
    let good = terms(&w, "doc-b", LicenceKind::Physician, &["hosp-b"]);
    // A hospital cannot vouch for its own staff, nor a practitioner for themselves.
    let r = w.act(
        Signer::Institution(inst("hosp-b")),
        &key("admin:hosp-b"),
        Payload::AttestLicence(good.clone()),
    );
    assert!(not_permitted(&r), "{r:?}");
    let (doc, k) = World::practitioner("doc-b");
    let r = w.act(
        Signer::Practitioner(doc),
        &k,
        Payload::AttestLicence(good.clone()),
    );
    assert!(not_permitted(&r), "{r:?}");
    // A validity already over, or an institution that is not a member.
    let mut past = good.clone();
    past.valid_from = Timestamp(w.now - 2 * DAY_MS);
    past.valid_until = Timestamp(w.now - DAY_MS);
    let r = regulator(&mut w, Payload::AttestLicence(past));
    assert!(
        matches!(r.outcome, Outcome::Rejected(Rejection::BadTime(_))),
        "{r:?}"
    );
    let elsewhere = bound(&w, "doc-b", LicenceKind::Physician, &["hosp-z"], &[]);
    let r = regulator(&mut w, Payload::AttestLicence(elsewhere));
    assert!(
        matches!(r.outcome, Outcome::Rejected(Rejection::NotFound(_))),
        "{r:?}"
    );
    // Binding a registration made under another licence, or by an
    // institution the licence does not name, is refused.
    let others = bound(
        &w,
        "doc-b",
        LicenceKind::Physician,
        &["hosp-b"],
        &["doc-b2"],
    );
    assert!(not_permitted(&regulator(
        &mut w,
        Payload::AttestLicence(others)
    )));
    let not_there = bound(&w, "doc-b", LicenceKind::Physician, &["hosp-a"], &["doc-b"]);
    assert!(not_permitted(&regulator(
        &mut w,
        Payload::AttestLicence(not_there)
    )));
    assert!(
        w.get::<LicenceRecord>(&StateKey::Licence(licence_of("doc-b")))
            .is_none()
    );
    // The regulator's attestation is recorded, active.
    let r = regulator(&mut w, Payload::AttestLicence(good.clone()));
    assert_eq!(r.outcome, Outcome::Applied);
    let record: LicenceRecord = w.get(&StateKey::Licence(licence_of("doc-b"))).unwrap();
    assert_eq!(
        (record.status, record.terms, record.attested_by),
        (LicenceStatus::Active, good.clone(), inst("nhc"))
    );
    // Another regulator may not amend it.
    let r = by(&mut w, "nhc2", Payload::AttestLicence(good));
    assert!(not_permitted(&r), "{r:?}");
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
    // Registered by their hospital, but no regulator has attested them.
    assert_eq!(
        request_outcome(&mut w, "doc-b", grant),
        denied(LicenceProblem::NotAttested)
    );
    // A licence for another place of practice, or another kind, or one
    // that does not bind this registration, does not do.
    let elsewhere = bound(&w, "doc-b", LicenceKind::Physician, &["hosp-a"], &[]);
    let r = regulator(&mut w, Payload::AttestLicence(elsewhere));
    assert_eq!(r.outcome, Outcome::Applied);
    assert_eq!(
        request_outcome(&mut w, "doc-b", grant),
        denied(LicenceProblem::NotAtThisInstitution)
    );
    let nurse = terms(&w, "doc-b", LicenceKind::Nurse, &["hosp-b"]);
    assert_eq!(
        regulator(&mut w, Payload::AttestLicence(nurse)).outcome,
        Outcome::Applied
    );
    assert_eq!(
        request_outcome(&mut w, "doc-b", grant),
        denied(LicenceProblem::WrongKind)
    );
    let unbound = bound(&w, "doc-b", LicenceKind::Physician, &["hosp-b"], &[]);
    assert_eq!(
        regulator(&mut w, Payload::AttestLicence(unbound)).outcome,
        Outcome::Applied
    );
    assert_eq!(
        request_outcome(&mut w, "doc-b", grant),
        denied(LicenceProblem::NotThisRegistration)
    );
    // The right licence, amended in place: now the request is authorised.
    let right = terms(&w, "doc-b", LicenceKind::Physician, &["hosp-a", "hosp-b"]);
    let r = regulator(&mut w, Payload::AttestLicence(right.clone()));
    assert_eq!(r.outcome, Outcome::Applied);
    assert_eq!(request_outcome(&mut w, "doc-b", grant), Outcome::Authorized);
    // A hospital that has seen the licence registers another key under it:
    // that key cannot act, since the regulator bound only the first.
    assert_eq!(
        register(&mut w, "hosp-b", "ghost-b", "doc-b").outcome,
        Outcome::Applied
    );
    assert_eq!(
        request_outcome(&mut w, "ghost-b", grant),
        denied(LicenceProblem::NotThisRegistration)
    );
    // Suspended: the next block denies access and refuses consent requests,
    // and the glass cannot be broken either.
    let r = set_status(&mut w, "doc-b", LicenceStatus::Suspended);
    assert_eq!(r.outcome, Outcome::Applied);
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
    // A renewal does not lift a suspension; only the regulator that
    // suspended it lifts it.
    let r = regulator(&mut w, Payload::AttestLicence(right.clone()));
    assert_eq!(r.outcome, Outcome::Applied);
    assert_eq!(
        request_outcome(&mut w, "doc-b", grant),
        denied(LicenceProblem::Suspended)
    );
    let r = set_status(&mut w, "doc-b", LicenceStatus::Suspended);
    assert!(
        matches!(r.outcome, Outcome::Rejected(Rejection::AlreadyDone(_))),
        "{r:?}"
    );
    let lift = Payload::SetLicenceStatus {
        licence: licence_of("doc-b"),
        status: LicenceStatus::Active,
    };
    assert!(not_permitted(&by(&mut w, "nhc2", lift.clone())));
    assert_eq!(regulator(&mut w, lift).outcome, Outcome::Applied);
    assert_eq!(request_outcome(&mut w, "doc-b", grant), Outcome::Authorized);
    let r = w.act(Signer::Practitioner(doc), &k, Payload::RequestConsent(ask));
    assert_eq!(r.outcome, Outcome::Applied);
    let r = w.act(Signer::Practitioner(doc), &k, emergency);
    assert_eq!(r.outcome, Outcome::Authorized);
    // Any regulator may stop it; revoked is final: neither reinstated nor
    // attested again.
    let revoke = Payload::SetLicenceStatus {
        licence: licence_of("doc-b"),
        status: LicenceStatus::Revoked,
    };
    assert_eq!(by(&mut w, "nhc2", revoke).outcome, Outcome::Applied);
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
    assert!(not_permitted(&r), "{r:?}");
}

#[test]
fn r4_14_a_licence_stops_at_its_end_and_serves_every_place_it_names() {
    let mut w = World::attested();
    let (_, grant) = granted(&mut w);
    // doc-b2's licence names hosp-b for ten days.
    let mut short = terms(&w, "doc-b2", LicenceKind::Physician, &["hosp-b"]);
    short.valid_until = Timestamp(w.now + 10 * DAY_MS);
    let r = regulator(&mut w, Payload::AttestLicence(short));
    assert_eq!(r.outcome, Outcome::Applied);
    assert_eq!(
        request_outcome(&mut w, "doc-b2", grant),
        Outcome::Authorized
    );
    w.now += 10 * DAY_MS;
    assert_eq!(
        request_outcome(&mut w, "doc-b2", grant),
        denied(LicenceProblem::Expired)
    );
    // 多点执业: the holder registers at hosp-a too, and the regulator binds
    // both registrations.
    let r = register(&mut w, "hosp-a", "doc-b2-at-hosp-a", "doc-b2");
    assert_eq!(r.outcome, Outcome::Applied);
    let both = bound(
        &w,
        "doc-b2",
        LicenceKind::Physician,
        &["hosp-a", "hosp-b"],
        &["doc-b2", "doc-b2-at-hosp-a"],
    );
    assert_eq!(
        regulator(&mut w, Payload::AttestLicence(both)).outcome,
        Outcome::Applied
    );
    assert_eq!(
        request_outcome(&mut w, "doc-b2", grant),
        Outcome::Authorized
    );
    let p = PatientId::from_key(hash(), &key("alice").public_key());
    let at_a = Payload::RequestConsent(w.terms(
        p,
        Grantee::Institution(inst("hosp-a")),
        &[Category::LabReports],
        Holders::Any,
    ));
    let (id, second) = World::practitioner("doc-b2-at-hosp-a");
    let r = w.act(Signer::Practitioner(id), &second, at_a.clone());
    assert_eq!(r.outcome, Outcome::Applied);
    // One suspension stops the person at both places.
    let r = set_status(&mut w, "doc-b2", LicenceStatus::Suspended);
    assert_eq!(r.outcome, Outcome::Applied);
    assert_eq!(
        w.act(Signer::Practitioner(id), &second, at_a).outcome,
        Outcome::Rejected(Rejection::LicenceNotInForce(LicenceProblem::Suspended))
    );
}

#[test]
fn r4_14_r7_2_a_release_after_a_suspension_is_flagged_and_a_refusal_fits() {
    let mut w = World::attested();
    let (p, grant) = granted(&mut w);
    let right = terms(&w, "doc-b", LicenceKind::Physician, &["hosp-b"]);
    assert_eq!(
        regulator(&mut w, Payload::AttestLicence(right)).outcome,
        Outcome::Applied
    );
    let (first, r) = w.request("doc-b", grant, "hosp-a", &[Category::LabReports]);
    assert_eq!(r.outcome, Outcome::Authorized);
    let (second, r) = w.request("doc-b", grant, "hosp-a", &[Category::LabReports]);
    assert_eq!(r.outcome, Outcome::Authorized);
    let r = set_status(&mut w, "doc-b", LicenceStatus::Suspended);
    assert_eq!(r.outcome, Outcome::Applied);
    // Authorised before the suspension, released after it: recorded, and
    // flagged as a release whose basis no longer held.
    let node = Signer::InstitutionNode(inst("hosp-a"));
    let r = w.act(
        node.clone(),
        &key("node:hosp-a"),
        Payload::AccessServed {
            request: first,
            content_hashes: BoundedVec::new(vec![Hash32([5; 32])]).unwrap(),
        },
    );
    assert_eq!(r.outcome, Outcome::Applied);
    let access: AccessRecord = w.get(&StateKey::Access(first)).unwrap();
    assert!(!access.release.unwrap().grant_active_at_release);
    // An honest holder refuses instead; the ledger agrees the basis is gone.
    let (doc, _) = World::practitioner("doc-b");
    let r = w.act(
        node,
        &key("node:hosp-a"),
        Payload::FetchRefused {
            request: second,
            practitioner: doc,
            reason: FetchRefusal::GrantNotActive,
        },
    );
    assert_eq!(r.outcome, Outcome::Applied);
    let _ = p;
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

#[test]
fn r4_12_r4_13_r4_14_a_removed_regulators_licences_stop_and_another_takes_them_over() {
    let mut w = World::attested();
    let (_, grant) = granted(&mut w);
    // nhc2 attests doc-b's licence and suspends it.
    let right = terms(&w, "doc-b", LicenceKind::Physician, &["hosp-b"]);
    let r = by(&mut w, "nhc2", Payload::AttestLicence(right.clone()));
    assert_eq!(r.outcome, Outcome::Applied);
    assert_eq!(request_outcome(&mut w, "doc-b", grant), Outcome::Authorized);
    let suspend = Payload::SetLicenceStatus {
        licence: licence_of("doc-b"),
        status: LicenceStatus::Suspended,
    };
    assert_eq!(by(&mut w, "nhc2", suspend).outcome, Outcome::Applied);
    // While nhc2 is a member, nhc can neither amend nor lift.
    let lift = Payload::SetLicenceStatus {
        licence: licence_of("doc-b"),
        status: LicenceStatus::Active,
    };
    assert!(not_permitted(&regulator(&mut w, lift.clone())));
    assert!(not_permitted(&regulator(
        &mut w,
        Payload::AttestLicence(right.clone())
    )));
    // The consortium removes nhc2: its licences stop; nhc takes them over.
    w.carry(
        GovernanceAction::Remove(inst("nhc2")),
        &["hosp-b", "platform"],
    );
    assert_eq!(regulator(&mut w, lift).outcome, Outcome::Applied);
    assert_eq!(
        request_outcome(&mut w, "doc-b", grant),
        denied(LicenceProblem::AttesterNotActive)
    );
    assert_eq!(
        regulator(&mut w, Payload::AttestLicence(right)).outcome,
        Outcome::Applied
    );
    assert_eq!(request_outcome(&mut w, "doc-b", grant), Outcome::Authorized);
    let record: LicenceRecord = w.get(&StateKey::Licence(licence_of("doc-b"))).unwrap();
    assert_eq!(record.attested_by, inst("nhc"));
}

#[test]
fn r7_2_a_release_to_a_retired_practitioner_is_flagged_under_declared_licences_too() {
    let mut w = World::new();
    let (_, grant) = granted(&mut w);
    let (request, r) = w.request("doc-b", grant, "hosp-a", &[Category::LabReports]);
    assert_eq!(r.outcome, Outcome::Authorized);
    let (doc, _) = World::practitioner("doc-b");
    let r = w.act(
        Signer::Institution(inst("hosp-b")),
        &key("admin:hosp-b"),
        Payload::RetirePractitioner { practitioner: doc },
    );
    assert_eq!(r.outcome, Outcome::Applied);
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
    assert!(!access.release.unwrap().grant_active_at_release);
}

/// A regulator's attestation of `institution`'s codes as it was admitted
/// (`World`'s specs), valid for a year from now.
fn institution_terms(w: &World, institution: &str) -> InstitutionLicenceTerms {
    let admitted = spec(institution, InstitutionKind::Hospital, 0);
    InstitutionLicenceTerms {
        institution: inst(institution),
        legal_code: admitted.legal_code,
        licence_ref: admitted.licence_ref,
        scopes: BoundedVec::new(vec![PracticeScope::new("internal-medicine").unwrap()]).unwrap(),
        valid_from: Timestamp(w.now),
        valid_until: Timestamp(w.now + 365 * DAY_MS),
    }
}

fn set_institution_status(
    w: &mut World,
    regulator: &str,
    institution: &str,
    status: LicenceStatus,
) -> Receipt {
    by(
        w,
        regulator,
        Payload::SetInstitutionLicenceStatus {
            institution: inst(institution),
            status,
        },
    )
}

#[test]
fn r4_16_only_a_regulator_attests_an_institution_with_the_codes_it_was_admitted_with() {
    let mut w = World::new();
    let good = institution_terms(&w, "hosp-b");
    // A hospital cannot attest itself, nor another.
    assert!(not_permitted(&by(
        &mut w,
        "hosp-b",
        Payload::AttestInstitution(good.clone())
    )));
    assert!(not_permitted(&by(
        &mut w,
        "hosp-a",
        Payload::AttestInstitution(good.clone())
    )));
    // Codes other than those admitted are refused: the admission is what
    // governance corrects.
    let mut other_code = good.clone();
    other_code.legal_code = BoundedString::new("91330100MA27XXXX0X").unwrap();
    assert!(not_permitted(&regulator(
        &mut w,
        Payload::AttestInstitution(other_code)
    )));
    let mut other_licence = good.clone();
    other_licence.licence_ref = BoundedString::new("PDY99999").unwrap();
    assert!(not_permitted(&regulator(
        &mut w,
        Payload::AttestInstitution(other_licence)
    )));
    // Already over, or an unknown member.
    let mut past = good.clone();
    past.valid_from = Timestamp(w.now - 20 * DAY_MS);
    past.valid_until = Timestamp(w.now - DAY_MS);
    assert!(matches!(
        regulator(&mut w, Payload::AttestInstitution(past)).outcome,
        Outcome::Rejected(Rejection::BadTime(_))
    ));
    let mut stranger = good.clone();
    stranger.institution = inst("hosp-z");
    assert!(matches!(
        regulator(&mut w, Payload::AttestInstitution(stranger)).outcome,
        Outcome::Rejected(Rejection::NotFound(_))
    ));
    // Unordered scopes are malformed, refused before any rule.
    let mut unordered = good.clone();
    unordered.scopes = BoundedVec::new(vec![
        PracticeScope::new("surgery").unwrap(),
        PracticeScope::new("internal-medicine").unwrap(),
    ])
    .unwrap();
    let tx = Transaction {
        signer: Signer::Institution(inst("nhc")),
        nonce: 1,
        valid_until: w.valid_until(),
        payload: Payload::AttestInstitution(unordered),
    }
    .sign(&w.chain, &key("admin:nhc"));
    assert!(tx.verify(&w.chain).is_err());
    // The regulator attests; the record says who and when.
    assert_eq!(
        regulator(&mut w, Payload::AttestInstitution(good.clone())).outcome,
        Outcome::Applied
    );
    let record: InstitutionLicenceRecord = w
        .get(&StateKey::InstitutionLicence(inst("hosp-b")))
        .unwrap();
    assert_eq!(record.terms, good);
    assert_eq!(record.attested_by, inst("nhc"));
    assert_eq!(record.status, LicenceStatus::Active);
    // Another regulator may not amend it while the first is active.
    assert!(not_permitted(&by(
        &mut w,
        "nhc2",
        Payload::AttestInstitution(good)
    )));
}

#[test]
fn r4_16_r4_17_an_attested_institution_acts_only_while_its_licence_is_in_force() {
    // Under declared practitioner licences too: the institution's
    // attestation, once there, binds whatever genesis says of practitioners.
    let mut w = World::new();
    let (_, grant) = granted(&mut w);
    // Never attested: the consortium's admission is enough.
    assert_eq!(request_outcome(&mut w, "doc-b", grant), Outcome::Authorized);
    let mut short = institution_terms(&w, "hosp-b");
    short.valid_until = Timestamp(w.now + 10 * DAY_MS);
    assert_eq!(
        regulator(&mut w, Payload::AttestInstitution(short.clone())).outcome,
        Outcome::Applied
    );
    assert_eq!(request_outcome(&mut w, "doc-b", grant), Outcome::Authorized);
    // Suspended by any regulator: the next block denies access and refuses
    // consent requests.
    let r = set_institution_status(&mut w, "nhc2", "hosp-b", LicenceStatus::Suspended);
    assert_eq!(r.outcome, Outcome::Applied);
    assert_eq!(
        request_outcome(&mut w, "doc-b", grant),
        denied(LicenceProblem::InstitutionSuspended)
    );
    let p = PatientId::from_key(hash(), &key("alice").public_key());
    let ask = Payload::RequestConsent(w.terms(
        p,
        Grantee::Institution(inst("hosp-b")),
        &[Category::LabReports],
        Holders::Any,
    ));
    let (doc, k) = World::practitioner("doc-b");
    assert_eq!(
        w.act(Signer::Practitioner(doc), &k, ask).outcome,
        Outcome::Rejected(Rejection::LicenceNotInForce(
            LicenceProblem::InstitutionSuspended
        ))
    );
    // Another hospital's practitioners are not touched.
    let (_, grant_to_a) = {
        let listed = Holders::Listed(BoundedVec::new(vec![inst("hosp-b")]).unwrap());
        let terms = w.terms(
            p,
            Grantee::Institution(inst("hosp-a")),
            &[Category::LabReports],
            listed,
        );
        (p, w.grant("alice", terms))
    };
    assert_eq!(
        w.request("doc-a", grant_to_a, "hosp-b", &[Category::LabReports])
            .1
            .outcome,
        Outcome::Authorized
    );
    // Only the regulator that suspended lifts it while it is active.
    assert!(not_permitted(&set_institution_status(
        &mut w,
        "nhc",
        "hosp-b",
        LicenceStatus::Active
    )));
    let r = set_institution_status(&mut w, "nhc2", "hosp-b", LicenceStatus::Active);
    assert_eq!(r.outcome, Outcome::Applied);
    assert_eq!(request_outcome(&mut w, "doc-b", grant), Outcome::Authorized);
    // Its attested validity ends: the practitioners stop.
    w.now += 10 * DAY_MS;
    assert_eq!(
        request_outcome(&mut w, "doc-b", grant),
        denied(LicenceProblem::InstitutionExpired)
    );
    // Renewed by the regulator that attested it, then revoked for good.
    let renewed = institution_terms(&w, "hosp-b");
    assert_eq!(
        regulator(&mut w, Payload::AttestInstitution(renewed.clone())).outcome,
        Outcome::Applied
    );
    assert_eq!(request_outcome(&mut w, "doc-b", grant), Outcome::Authorized);
    let r = set_institution_status(&mut w, "nhc", "hosp-b", LicenceStatus::Revoked);
    assert_eq!(r.outcome, Outcome::Applied);
    assert_eq!(
        request_outcome(&mut w, "doc-b", grant),
        denied(LicenceProblem::InstitutionRevoked)
    );
    assert!(matches!(
        regulator(&mut w, Payload::AttestInstitution(renewed)).outcome,
        Outcome::Rejected(Rejection::AlreadyDone(_))
    ));
    assert!(matches!(
        set_institution_status(&mut w, "nhc", "hosp-b", LicenceStatus::Active).outcome,
        Outcome::Rejected(Rejection::AlreadyDone(_))
    ));
}

#[test]
fn r4_16_a_suspended_hospital_stops_its_emergency_access_its_own_consent_requests_and_its_internet_hospital()
 {
    // Attested practitioner licences too: both checks apply, the
    // institution's first.
    let mut w = World::attested();
    let p = w.patient("alice");
    // A regulator may not start an attestation later than now: that would
    // stop the hospital's practitioners until then.
    let mut later = institution_terms(&w, "hosp-a");
    later.valid_from = Timestamp(w.now + 30 * DAY_MS);
    assert!(matches!(
        regulator(&mut w, Payload::AttestInstitution(later)).outcome,
        Outcome::Rejected(Rejection::BadTime(_))
    ));
    let attested = institution_terms(&w, "hosp-a");
    assert_eq!(
        regulator(&mut w, Payload::AttestInstitution(attested)).outcome,
        Outcome::Applied
    );
    let r = set_institution_status(&mut w, "nhc", "hosp-a", LicenceStatus::Suspended);
    assert_eq!(r.outcome, Outcome::Applied);
    // Break-glass by a doctor of the suspended hospital: denied on record.
    let (doc, k) = World::practitioner("doc-a");
    let emergency = Payload::EmergencyAccess {
        patient: p,
        holder: inst("hosp-b"),
        categories: cats(&[Category::LabReports]),
        reason: EmergencyReason::PatientUnconscious,
    };
    assert_eq!(
        w.act(Signer::Practitioner(doc), &k, emergency).outcome,
        denied(LicenceProblem::InstitutionSuspended)
    );
    // The hospital's own admin key asks a patient for consent: refused.
    let ask = Payload::RequestConsent(w.terms(
        p,
        Grantee::Institution(inst("hosp-a")),
        &[Category::LabReports],
        Holders::Any,
    ));
    assert_eq!(
        by(&mut w, "hosp-a", ask.clone()).outcome,
        Outcome::Rejected(Rejection::LicenceNotInForce(
            LicenceProblem::InstitutionSuspended
        ))
    );
    // Its internet hospital practises under its licence: its doctor stops
    // too, though net-a itself was never attested.
    let net_ask = Payload::RequestConsent(w.terms(
        p,
        Grantee::Institution(inst("net-a")),
        &[Category::LabReports],
        Holders::Any,
    ));
    let (net_doc, net_key) = World::practitioner("net-doc");
    assert_eq!(
        w.act(Signer::Practitioner(net_doc), &net_key, net_ask)
            .outcome,
        Outcome::Rejected(Rejection::LicenceNotInForce(
            LicenceProblem::InstitutionSuspended
        ))
    );
    // Lifted: the hospital asks again, and is applied.
    let r = set_institution_status(&mut w, "nhc", "hosp-a", LicenceStatus::Active);
    assert_eq!(r.outcome, Outcome::Applied);
    assert_eq!(by(&mut w, "hosp-a", ask).outcome, Outcome::Applied);
    // A member removed by the consortium cannot be attested.
    w.carry(
        GovernanceAction::Remove(inst("hosp-b")),
        &["platform", "nhc"],
    );
    let removed = institution_terms(&w, "hosp-b");
    assert!(not_permitted(&regulator(
        &mut w,
        Payload::AttestInstitution(removed)
    )));
}

#[test]
fn r4_18_codes_set_by_the_consortium_need_a_new_attestation() {
    let mut w = World::new();
    let (_, grant) = granted(&mut w);
    let before = institution_terms(&w, "hosp-b");
    assert_eq!(
        regulator(&mut w, Payload::AttestInstitution(before.clone())).outcome,
        Outcome::Applied
    );
    assert_eq!(request_outcome(&mut w, "doc-b", grant), Outcome::Authorized);
    // Malformed codes are refused before any vote.
    let malformed = Transaction {
        signer: Signer::Institution(inst("hosp-a")),
        nonce: 1,
        valid_until: w.valid_until(),
        payload: Payload::Propose {
            action: GovernanceAction::SetCodes {
                institution: inst("hosp-b"),
                legal_code: BoundedString::new("not a code").unwrap(),
                licence_ref: BoundedString::new("PDY-1").unwrap(),
            },
            expires_at: Timestamp(w.now + DAY_MS),
        },
    }
    .sign(&w.chain, &key("admin:hosp-a"));
    assert!(malformed.verify(&w.chain).is_err());
    // The consortium corrects the licence reference by vote.
    let corrected = BoundedString::new("PDY-330100-0002B").unwrap();
    w.carry(
        GovernanceAction::SetCodes {
            institution: inst("hosp-b"),
            legal_code: before.legal_code.clone(),
            licence_ref: corrected.clone(),
        },
        &["platform", "nhc"],
    );
    let record: InstitutionRecord = w.get(&StateKey::Institution(inst("hosp-b"))).unwrap();
    assert_eq!(record.spec.licence_ref, corrected);
    // The attestation vouched for the old codes: the practitioners stop.
    assert_eq!(
        request_outcome(&mut w, "doc-b", grant),
        denied(LicenceProblem::InstitutionCodesChanged)
    );
    // The old codes can no longer be attested; the new ones can.
    assert!(not_permitted(&regulator(
        &mut w,
        Payload::AttestInstitution(before.clone())
    )));
    let mut after = before;
    after.licence_ref = corrected;
    assert_eq!(
        regulator(&mut w, Payload::AttestInstitution(after)).outcome,
        Outcome::Applied
    );
    assert_eq!(request_outcome(&mut w, "doc-b", grant), Outcome::Authorized);
}
