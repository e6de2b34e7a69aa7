//! Practitioners' licences attested by regulators [R4.12] [R4.13], and the
//! check that, where genesis asks for it, lets a practitioner act only on
//! a licence in force [R4.14].

use super::*;
use crate::encoding::Hash32;

/// The regulator behind an `Actor`, or the rejection for anyone else.
fn regulator(actor: Actor, what: &str) -> Step<InstitutionId> {
    match actor {
        Actor::Institution(id, record) if record.spec.kind == InstitutionKind::Regulator => Ok(id),
        _ => not_permitted(&format!("only a regulator's admin key {what}")),
    }
}

pub(super) fn attest_licence(
    st: &mut Overlay<'_>,
    actor: Actor,
    terms: &LicenceTerms,
    ctx: &BlockContext,
) -> Step<Effect> {
    // [R4.12]
    let by = regulator(actor, "attests licences")?;
    if terms.valid_until <= ctx.time {
        return reject(Rejection::BadTime(
            "valid_until is not in the future".into(),
        ));
    }
    for institution in terms.institutions.iter() {
        match st.get::<InstitutionRecord>(&StateKey::Institution(institution.clone()))? {
            Some(record) if record.status != MemberStatus::Removed => {}
            Some(_) => return not_permitted("a licence cannot name a removed member"),
            None => return not_found("institution named by the licence"),
        }
    }
    let key = StateKey::Licence(terms.licence_hash);
    let earlier: Option<LicenceRecord> = st.get(&key)?;
    // A renewal or amendment replaces the terms; a suspension stays until
    // lifted, and a revocation is final.
    let (status, status_changed) = match earlier {
        Some(record) if record.status == LicenceStatus::Revoked => {
            return reject(Rejection::AlreadyDone(
                "this licence was revoked; a revoked licence stays revoked".into(),
            ));
        }
        Some(record) => (record.status, record.status_changed),
        None => (LicenceStatus::Active, None),
    };
    st.put(
        &key,
        &LicenceRecord {
            terms: terms.clone(),
            attested_by: by,
            attested_at: ctx.block_ref(),
            status,
            status_changed,
        },
    );
    Ok(Effect::applied())
}

pub(super) fn set_licence_status(
    st: &mut Overlay<'_>,
    actor: Actor,
    licence: Hash32,
    status: LicenceStatus,
    ctx: &BlockContext,
) -> Step<Effect> {
    // [R4.13]
    let by = regulator(actor, "suspends, reinstates or revokes licences")?;
    let key = StateKey::Licence(licence);
    let mut record: LicenceRecord = st.get(&key)?.ok_or(Rejection::NotFound("licence".into()))?;
    if record.status == LicenceStatus::Revoked {
        return reject(Rejection::AlreadyDone(
            "this licence was revoked; a revoked licence stays revoked".into(),
        ));
    }
    if record.status == status {
        return reject(Rejection::AlreadyDone(format!(
            "the licence is already {}",
            status.name()
        )));
    }
    record.status = status;
    record.status_changed = Some((ctx.block_ref(), by));
    st.put(&key, &record);
    Ok(Effect::applied())
}

/// Why `practitioner` may not act at this block under the genesis licence
/// policy, if they may not [R4.14].
pub(super) fn licence_problem(
    st: &Overlay<'_>,
    practitioner: &PractitionerRecord,
    ctx: &BlockContext,
) -> Step<Option<LicenceProblem>> {
    Ok(licence_problem_at(st, practitioner, ctx.time)?)
}

/// Why `practitioner` may not act at `time` under the genesis licence
/// policy, if they may not [R4.14]: what a block at that time would find
/// (the API says it beside a practitioner's record).
pub fn licence_problem_at(
    st: &Overlay<'_>,
    practitioner: &PractitionerRecord,
    time: Timestamp,
) -> Result<Option<LicenceProblem>, crate::state::StateError> {
    let params: LedgerParameters = st.get(&StateKey::Parameters)?.unwrap_or_default();
    if params.practitioner_licences == LicencePolicy::Declared {
        return Ok(None);
    }
    let Some(licence) = st.get::<LicenceRecord>(&StateKey::Licence(practitioner.licence_hash))?
    else {
        return Ok(Some(LicenceProblem::NotAttested));
    };
    Ok(licence
        .in_force_for(practitioner.role, &practitioner.institution, time)
        .err())
}
