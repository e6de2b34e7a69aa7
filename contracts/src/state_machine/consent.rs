//! Consent: grants and revocations [R5.1]-[R5.3], consent requests and
//! answers [R5.4] [R5.5], minors [R5.6] and delegations [R5.7]-[R5.9].

use super::*;

/// Checks that `actor` may make consent decisions for `patient` [R5.1, R5.2,
/// R5.5, R5.6, R5.9]; `needs_adult` is true for decisions a minor cannot make.
pub(super) fn consent_patient(
    st: &Overlay<'_>,
    actor: &Actor,
    patient: &PatientId,
    ctx: &BlockContext,
    needs_adult: bool,
) -> Step<PatientRecord> {
    let record: PatientRecord = st
        .get(&StateKey::Patient(*patient))?
        .ok_or(Rejection::NotFound("patient".into()))?;
    match actor {
        Actor::Patient(id, _) if id == patient => {
            if needs_adult && record.is_minor_at(ctx.time) {
                return reject(Rejection::GuardianConsentRequired);
            }
        }
        Actor::Delegate(delegation) if delegation.patient == *patient => {
            if needs_adult
                && record.is_minor_at(ctx.time)
                && delegation.role != DelegateRole::Guardian
            {
                return reject(Rejection::GuardianConsentRequired);
            }
        }
        _ => return not_permitted("only the patient or their delegate decides on consent"),
    }
    Ok(record)
}

/// Whether `institution` is a member of `group` in this state [R4.15].
pub fn in_group(
    st: &Overlay<'_>,
    group: &GroupId,
    institution: &InstitutionId,
) -> Result<bool, crate::state::StateError> {
    Ok(st
        .get::<GroupRecord>(&StateKey::Group(group.clone()))?
        .is_some_and(|g| g.members.contains(institution)))
}

/// Whether `grant` still carries an access requested by a practitioner of
/// `institution`, at `time`: it is active (R6) and, made to a group, the
/// institution is still a member (R5.11) — what a block decides for the
/// release's basis (R7.2, R7.6) and what a holder asks before it serves.
pub fn grant_carries_at(
    st: &Overlay<'_>,
    grant: &GrantRecord,
    institution: &InstitutionId,
    time: Timestamp,
) -> Result<bool, crate::state::StateError> {
    if grant.status_at(time) != GrantStatus::Active {
        return Ok(false);
    }
    match &grant.terms.grantee {
        Grantee::Group(group) => in_group(st, group, institution),
        Grantee::Institution(_) | Grantee::Practitioner(_) => Ok(true),
    }
}

/// [R5.1] The grantee and holders exist and the period is acceptable.
pub(super) fn check_grantable(
    st: &Overlay<'_>,
    terms: &GrantTerms,
    ctx: &BlockContext,
) -> Step<()> {
    match &terms.grantee {
        Grantee::Institution(id) => {
            let record: InstitutionRecord = st
                .get(&StateKey::Institution(id.clone()))?
                .ok_or(Rejection::NotFound("grantee institution".into()))?;
            if record.status != MemberStatus::Active {
                return not_permitted("the grantee institution is not active");
            }
        }
        Grantee::Practitioner(id) => {
            let record: PractitionerRecord = st
                .get(&StateKey::Practitioner(*id))?
                .ok_or(Rejection::NotFound("grantee practitioner".into()))?;
            if record.status != MemberStatus::Active {
                return not_permitted("the grantee practitioner is not active");
            }
        }
        Grantee::Group(id) => {
            // [R5.11] A group with an active member.
            let group: GroupRecord = st
                .get(&StateKey::Group(id.clone()))?
                .ok_or(Rejection::NotFound("grantee group".into()))?;
            let mut active = false;
            for member in group.members.iter() {
                let record: Option<InstitutionRecord> =
                    st.get(&StateKey::Institution(member.clone()))?;
                active |= record.is_some_and(|r| r.status == MemberStatus::Active);
            }
            if !active {
                return not_permitted("the grantee group has no active member");
            }
        }
    }
    if let Holders::Listed(list) = &terms.holders {
        for holder in list.iter() {
            let record: InstitutionRecord = st
                .get(&StateKey::Institution(holder.clone()))?
                .ok_or(Rejection::NotFound("holder".into()))?;
            if !record.spec.kind.holds_records() {
                return not_permitted("a listed holder does not hold records");
            }
        }
    }
    if terms.expires_at <= ctx.time {
        return reject(Rejection::BadTime(
            "the grant would already be expired".into(),
        ));
    }
    let params: LedgerParameters = st.get(&StateKey::Parameters)?.unwrap_or_default();
    let latest_end = terms
        .not_before
        .max(ctx.time)
        .plus_days(u64::from(params.grant_duration_days_max));
    if terms.expires_at > latest_end {
        return reject(Rejection::BadTime(format!(
            "a grant lasts at most {} days",
            params.grant_duration_days_max
        )));
    }
    Ok(())
}

pub(super) fn relinquish(
    st: &mut Overlay<'_>,
    actor: Actor,
    grant: GrantId,
    ctx: &BlockContext,
) -> Step<Effect> {
    // [R5.3]
    let mut record: GrantRecord = st
        .get(&StateKey::Grant(grant))?
        .ok_or(Rejection::NotFound("grant".into()))?;
    let allowed = match (&actor, &record.terms.grantee) {
        (Actor::Practitioner(id, _), Grantee::Practitioner(grantee)) => id == grantee,
        (Actor::Institution(id, _), Grantee::Institution(grantee)) => id == grantee,
        (Actor::Institution(id, _), Grantee::Practitioner(grantee)) => st
            .get::<PractitionerRecord>(&StateKey::Practitioner(*grantee))?
            .is_some_and(|p| &p.institution == id),
        // A member gives the grant up for the whole group.
        (Actor::Institution(id, _), Grantee::Group(group)) => in_group(st, group, id)?,
        _ => false,
    };
    if !allowed {
        return not_permitted("only the grantee relinquishes a grant");
    }
    if record.ended.is_some() {
        return reject(Rejection::AlreadyDone("grant already ended".into()));
    }
    record.ended = Some(GrantEnd::Relinquished {
        at: ctx.block_ref(),
    });
    st.put(&StateKey::Grant(grant), &record);
    Ok(Effect::with(
        Outcome::Applied,
        record.terms.patient,
        AuditEvent::Relinquished { grant },
    ))
}

/// The practitioner's institution if they may act at this block [R3]
/// [R4.14], or why not.
pub(super) fn active_practitioner(
    st: &Overlay<'_>,
    id: &PractitionerId,
    record: &PractitionerRecord,
    ctx: &BlockContext,
) -> Step<Result<InstitutionRecord, DenialReason>> {
    Ok(practitioner_may_act_at(st, id, record, ctx.time)?)
}

/// The institution of practitioner `id` (whose record is `record`) if they
/// may act at `time` — active, at an active institution, and on a licence
/// in force where genesis asks for one [R3] [R4.14] — or why not: what a
/// block at that time decides, and what a holder asks before it serves.
pub fn practitioner_may_act_at(
    st: &Overlay<'_>,
    id: &PractitionerId,
    record: &PractitionerRecord,
    time: Timestamp,
) -> Result<Result<InstitutionRecord, DenialReason>, crate::state::StateError> {
    if record.status != MemberStatus::Active {
        return Ok(Err(DenialReason::RequesterNotActive));
    }
    // Institutions are never deleted (removal is a status), so a
    // registered practitioner's is always there.
    let institution: Option<InstitutionRecord> =
        st.get(&StateKey::Institution(record.institution.clone()))?;
    let Some(institution) = institution.filter(|i| i.status == MemberStatus::Active) else {
        return Ok(Err(DenialReason::InstitutionNotActive));
    };
    if let Some(problem) = licence_problem_at(st, id, record, time)? {
        return Ok(Err(DenialReason::LicenceNotInForce(problem)));
    }
    Ok(Ok(institution))
}

pub(super) fn request_consent(
    st: &mut Overlay<'_>,
    actor: Actor,
    id: TxHash,
    terms: &GrantTerms,
    tx: &VerifiedTransaction,
    ctx: &BlockContext,
) -> Step<Effect> {
    // [R5.4]
    match (&actor, &terms.grantee) {
        (Actor::Practitioner(pid, record), grantee) => {
            match active_practitioner(st, pid, record, ctx)? {
                Ok(_) => {}
                Err(DenialReason::LicenceNotInForce(problem)) => {
                    return reject(Rejection::LicenceNotInForce(problem));
                }
                Err(_) => return reject(Rejection::SignerNotActive),
            }
            let ok = match grantee {
                Grantee::Practitioner(g) => g == pid,
                Grantee::Institution(g) => *g == record.institution,
                Grantee::Group(_) => false,
            };
            if !ok {
                return not_permitted("a practitioner asks for themselves or their institution");
            }
        }
        (Actor::Institution(iid, _), Grantee::Institution(g)) if g == iid => {
            // [R4.16] Its licence must be in force for it to ask, as for
            // its practitioners.
            if let Some(problem) = institution_licence_problem_at(st, iid, ctx.time)? {
                return reject(Rejection::LicenceNotInForce(problem));
            }
        }
        _ => return not_permitted("consent is asked by a practitioner or institution for itself"),
    }
    if st
        .get::<PatientRecord>(&StateKey::Patient(terms.patient))?
        .is_none()
    {
        return not_found("patient");
    }
    check_grantable(st, terms, ctx)?;
    st.put(
        &StateKey::ConsentRequest(id),
        &ConsentRequestRecord {
            terms: terms.clone(),
            requested_by: tx.transaction().signer.clone(),
            requested_at: ctx.block_ref(),
            answer: None,
        },
    );
    Ok(Effect::with(
        Outcome::Applied,
        terms.patient,
        AuditEvent::ConsentRequested { request: id },
    ))
}

pub(super) fn answer_consent(
    st: &mut Overlay<'_>,
    actor: Actor,
    id: TxHash,
    request: ConsentRequestId,
    approve: bool,
    tx: &VerifiedTransaction,
    ctx: &BlockContext,
) -> Step<Effect> {
    // [R5.5]
    let mut record: ConsentRequestRecord = st
        .get(&StateKey::ConsentRequest(request))?
        .ok_or(Rejection::NotFound("consent request".into()))?;
    consent_patient(st, &actor, &record.terms.patient, ctx, approve)?;
    if record.answer.is_some() {
        return reject(Rejection::AlreadyDone("the request was answered".into()));
    }
    let patient = record.terms.patient;
    let mut effect = Effect::with(
        Outcome::Applied,
        patient,
        AuditEvent::ConsentAnswered {
            request,
            approved: approve,
        },
    );
    if approve {
        check_grantable(st, &record.terms, ctx)?;
        st.put(
            &StateKey::Grant(id),
            &GrantRecord {
                terms: record.terms.clone(),
                granted_by: tx.transaction().signer.clone(),
                granted_at: ctx.block_ref(),
                answers: Some(request),
                ended: None,
            },
        );
        effect
            .events
            .push((patient, AuditEvent::Granted { grant: id }));
    }
    record.answer = Some((approve, ctx.block_ref(), id));
    st.put(&StateKey::ConsentRequest(request), &record);
    Ok(effect)
}

pub(super) fn delegate_to(
    st: &mut Overlay<'_>,
    actor: Actor,
    id: TxHash,
    delegate: PatientId,
    role: DelegateRole,
    expires_at: Timestamp,
    ctx: &BlockContext,
) -> Step<Effect> {
    // [R5.7]
    let Actor::Patient(patient, record) = actor else {
        return not_permitted("a patient appoints delegates in person");
    };
    if record.is_minor_at(ctx.time) {
        return reject(Rejection::GuardianConsentRequired);
    }
    if delegate == patient {
        return not_permitted("a patient cannot delegate to themselves");
    }
    if st
        .get::<PatientRecord>(&StateKey::Patient(delegate))?
        .is_none()
    {
        return not_found("delegate");
    }
    if expires_at <= ctx.time {
        return reject(Rejection::BadTime(
            "the delegation would already be expired".into(),
        ));
    }
    st.put(
        &StateKey::Delegation(id),
        &DelegationRecord {
            patient,
            delegate,
            role,
            created_at: ctx.block_ref(),
            expires_at,
            recorded_by: None,
            evidence_hash: None,
            ended_at: None,
        },
    );
    Ok(Effect::with(
        Outcome::Applied,
        patient,
        AuditEvent::DelegationStarted {
            delegation: id,
            role,
        },
    ))
}

pub(super) fn end_delegation(
    st: &mut Overlay<'_>,
    actor: Actor,
    delegation: DelegationId,
    ctx: &BlockContext,
) -> Step<Effect> {
    // [R5.8]
    let mut record: DelegationRecord = st
        .get(&StateKey::Delegation(delegation))?
        .ok_or(Rejection::NotFound("delegation".into()))?;
    let recorded = record.recorded_by.is_some();
    let by_regulator = matches!(&actor, Actor::Institution(_, i)
        if i.spec.kind == InstitutionKind::Regulator);
    let allowed = match &actor {
        Actor::Patient(id, patient) if *id == record.patient => {
            !(recorded && patient.is_minor_at(ctx.time))
        }
        Actor::Patient(id, _) => *id == record.delegate,
        // A regulator rules on a contested guardianship.
        Actor::Institution(_, _) if by_regulator => recorded,
        Actor::Institution(id, _) => record.recorded_by.as_ref() == Some(id),
        _ => false,
    };
    if !allowed {
        return not_permitted("this signer cannot end this delegation");
    }
    let mut changed = false;
    if record.ended_at.is_none() {
        record.ended_at = Some(ctx.block_ref());
        st.put(&StateKey::Delegation(delegation), &record);
        changed = true;
    }
    if recorded && by_regulator {
        // [R5.8] A regulator ruling on a recorded guardianship ends the
        // minority with it, even if the guardianship itself was ended
        // before (a guardian stepping down must not leave the patient a
        // minor with no one to consent): from this block the patient
        // decides alone.
        let mut patient: PatientRecord = st
            .get(&StateKey::Patient(record.patient))?
            .ok_or(Rejection::NotFound("patient".into()))?;
        if patient.is_minor_at(ctx.time) {
            patient.minor_until = Some(ctx.time);
            st.put(&StateKey::Patient(record.patient), &patient);
            changed = true;
        }
    }
    if !changed {
        return reject(Rejection::AlreadyDone("the delegation has ended".into()));
    }
    Ok(Effect::with(
        Outcome::Applied,
        record.patient,
        AuditEvent::DelegationEnded { delegation },
    ))
}
