//! Guardianship of a minor [R4.7]. (Registering and retiring practitioners,
//! [R4.5] and [R4.6], are the dispatch's own arms in `mod.rs`.)

use super::*;

/// The terms of a `RecordGuardianship`.
pub(super) struct Guardianship {
    pub(super) patient: PatientId,
    pub(super) guardian: PatientId,
    pub(super) minor_until: Timestamp,
    pub(super) evidence_hash: crate::encoding::Hash32,
    pub(super) patient_consent: crate::crypto::Signature,
}

pub(super) fn record_guardianship(
    st: &mut Overlay<'_>,
    actor: Actor,
    id: TxHash,
    g: &Guardianship,
    chain: &crate::types::Chain,
    recorder: &Signer,
    ctx: &BlockContext,
) -> Step<Effect> {
    // [R4.7]
    let Actor::Institution(institution, record) = actor else {
        return not_permitted("a hospital's admin key records guardianship");
    };
    if !matches!(
        record.spec.kind,
        InstitutionKind::Hospital | InstitutionKind::InternetHospital { .. }
    ) {
        return not_permitted("only hospitals record guardianship");
    }
    if g.patient == g.guardian {
        return not_permitted("a patient cannot be their own guardian");
    }
    if g.minor_until <= ctx.time {
        return reject(Rejection::BadTime(
            "minor_until is not in the future".into(),
        ));
    }
    if g.minor_until.0 > ctx.time.0.saturating_add(crate::constants::MINORITY_MS_MAX) {
        return reject(Rejection::BadTime(
            "a minority recorded now ends within 14 years".into(),
        ));
    }
    let mut minor: PatientRecord = st
        .get(&StateKey::Patient(g.patient))?
        .ok_or(Rejection::NotFound("patient".into()))?;
    if st
        .get::<PatientRecord>(&StateKey::Patient(g.guardian))?
        .is_none()
    {
        return not_found("guardian");
    }
    // A minority's end is fixed when first recorded: a later guardianship
    // (a new guardian) may not extend it, nor start again once it is over.
    if let Some(until) = minor.minor_until {
        if until <= ctx.time {
            return not_permitted("this patient's recorded minority has ended");
        }
        if g.minor_until > until {
            return not_permitted("a recorded minority cannot be extended");
        }
    }
    // The patient's own key must agree (for a child, the guardian holds it):
    // a hospital alone cannot make a patient who holds their key a minor.
    let message = guardianship_consent_message(
        chain,
        recorder,
        &g.patient,
        &g.guardian,
        g.minor_until,
        &g.evidence_hash,
    );
    let consents = minor.key_at(ctx.time).verify(&message, &g.patient_consent);
    if consents.is_err() {
        return not_permitted("the patient's current key did not sign this guardianship");
    }
    // Once only: an old consent cannot bring back a guardian it named.
    let used = StateKey::UsedConsent(message);
    if st.get::<u64>(&used)?.is_some() {
        return reject(Rejection::AlreadyDone(
            "this consent to a guardianship was used".into(),
        ));
    }
    st.put(&used, &ctx.height);
    minor.minor_until = Some(g.minor_until);
    st.put(&StateKey::Patient(g.patient), &minor);
    let role = DelegateRole::Guardian;
    st.put(
        &StateKey::Delegation(id),
        &DelegationRecord {
            patient: g.patient,
            delegate: g.guardian,
            role,
            created_at: ctx.block_ref(),
            expires_at: g.minor_until,
            recorded_by: Some(institution),
            evidence_hash: Some(g.evidence_hash),
            ended_at: None,
        },
    );
    Ok(Effect::with(
        Outcome::Applied,
        g.patient,
        AuditEvent::DelegationStarted {
            delegation: id,
            role,
        },
    ))
}
