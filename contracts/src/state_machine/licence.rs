//! Practitioners' licences attested by regulators [R4.12] [R4.13], and the
//! check that, where genesis asks for it, lets a practitioner act only on
//! a licence in force [R4.14]; institutions' licences attested the same
//! way, which once attested must be in force for their practitioners to
//! act [R4.16] [R4.17].

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
    // Each registration bound to the licence is one an institution the
    // licence names made under this very licence.
    for practitioner in terms.practitioners.iter() {
        let record: PractitionerRecord =
            st.get(&StateKey::Practitioner(*practitioner))?
                .ok_or(Rejection::NotFound(
                    "practitioner bound to the licence".into(),
                ))?;
        if record.licence_hash != terms.licence_hash {
            return not_permitted("a practitioner bound to a licence must be registered under it");
        }
        if !terms.institutions.iter().any(|i| *i == record.institution) {
            return not_permitted(
                "a practitioner bound to a licence must be registered by an institution it names",
            );
        }
    }
    attest(st, StateKey::Licence(terms.licence_hash), terms, by, ctx)
}

/// Records `by`'s attestation of `terms` under `key`. A renewal or
/// amendment replaces the terms; only the regulator that attested the
/// licence makes one, or any regulator once that one is no longer an
/// active member. A suspension stays until lifted, and a revocation is
/// final [R4.12] [R4.16].
fn attest<T>(
    st: &mut Overlay<'_>,
    key: StateKey,
    terms: &T,
    by: InstitutionId,
    ctx: &BlockContext,
) -> Step<Effect>
where
    T: Clone + serde::Serialize + serde::de::DeserializeOwned,
{
    let earlier: Option<Attestation<T>> = st.get(&key)?;
    let (status, status_changed) = match earlier {
        Some(record) if record.status == LicenceStatus::Revoked => {
            return reject(Rejection::AlreadyDone(
                "this licence was revoked; a revoked licence stays revoked".into(),
            ));
        }
        Some(record) if record.attested_by != by && is_active(st, &record.attested_by)? => {
            return not_permitted(
                "only the regulator that attested a licence amends or renews it while it is an active member",
            );
        }
        Some(record) => (record.status, record.status_changed),
        None => (LicenceStatus::Active, None),
    };
    st.put(
        &key,
        &Attestation {
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
    change_status::<LicenceTerms>(st, StateKey::Licence(licence), status, by, ctx)
}

pub(super) fn attest_institution(
    st: &mut Overlay<'_>,
    actor: Actor,
    terms: &InstitutionLicenceTerms,
    ctx: &BlockContext,
) -> Step<Effect> {
    // [R4.16]
    let by = regulator(actor, "attests institutions' licences")?;
    if terms.valid_until <= ctx.time {
        return reject(Rejection::BadTime(
            "valid_until is not in the future".into(),
        ));
    }
    // An attestation starting later would stop the member's practitioners
    // until then: a regulator may not shut a member down that way.
    if terms.valid_from > ctx.time {
        return reject(Rejection::BadTime(
            "valid_from is later than the block's time".into(),
        ));
    }
    let member: InstitutionRecord = st
        .get(&StateKey::Institution(terms.institution.clone()))?
        .ok_or(Rejection::NotFound("institution".into()))?;
    if member.status == MemberStatus::Removed {
        return not_permitted("a removed member's licence cannot be attested");
    }
    // The regulator attests the documents the consortium admitted the
    // member with: a code it saw that differs means the admission's is
    // wrong, and the attestation does not paper over it.
    if terms.legal_code != member.spec.legal_code || terms.licence_ref != member.spec.licence_ref {
        return not_permitted(
            "the credit code and licence reference attested must be those the member was admitted with, or the consortium last set",
        );
    }
    attest(
        st,
        StateKey::InstitutionLicence(terms.institution.clone()),
        terms,
        by,
        ctx,
    )
}

pub(super) fn set_institution_licence_status(
    st: &mut Overlay<'_>,
    actor: Actor,
    institution: &InstitutionId,
    status: LicenceStatus,
    ctx: &BlockContext,
) -> Step<Effect> {
    // [R4.17]
    let by = regulator(
        actor,
        "suspends, reinstates or revokes institutions' licences",
    )?;
    change_status::<InstitutionLicenceTerms>(
        st,
        StateKey::InstitutionLicence(institution.clone()),
        status,
        by,
        ctx,
    )
}

/// Sets the status of the licence attested under `key` on `by`'s word
/// [R4.13] [R4.17].
fn change_status<T>(
    st: &mut Overlay<'_>,
    key: StateKey,
    status: LicenceStatus,
    by: InstitutionId,
    ctx: &BlockContext,
) -> Step<Effect>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let mut record: Attestation<T> = st.get(&key)?.ok_or(Rejection::NotFound("licence".into()))?;
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
    // Any regulator may stop a licence; only the one that suspended it
    // lifts the suspension, unless it is no longer an active member (a
    // regulator removed by governance must not leave licences stuck).
    if status == LicenceStatus::Active
        && let Some((_, suspended_by)) = &record.status_changed
        && *suspended_by != by
        && is_active(st, suspended_by)?
    {
        return not_permitted(
            "only the regulator that suspended a licence lifts the suspension while it is an active member",
        );
    }
    record.status = status;
    record.status_changed = Some((ctx.block_ref(), by));
    st.put(&key, &record);
    Ok(Effect::applied())
}

/// Why `institution` may not act through its practitioners or its admin
/// key at `time` on account of its licence, if it may not [R4.16]: a
/// regulator attested its licence (or, for an internet hospital, its
/// physical hospital's, under which it practises) and that licence is not
/// in force. Whatever the genesis policy for practitioners' own licences.
pub fn institution_licence_problem_at(
    st: &Overlay<'_>,
    institution: &InstitutionId,
    time: Timestamp,
) -> Result<Option<LicenceProblem>, crate::state::StateError> {
    let mut places = vec![institution.clone()];
    if let Some(record) =
        st.get::<InstitutionRecord>(&StateKey::Institution(institution.clone()))?
        && let InstitutionKind::InternetHospital { parent } = record.spec.kind
    {
        places.push(parent);
    }
    for place in places {
        let Some(licence) =
            st.get::<InstitutionLicenceRecord>(&StateKey::InstitutionLicence(place.clone()))?
        else {
            continue;
        };
        if let Err(problem) = licence.in_force_at(time) {
            return Ok(Some(problem));
        }
        // [R4.18] The attestation vouches for the codes it names: once the
        // consortium sets others, it no longer does, until a regulator
        // attests them.
        let member: Option<InstitutionRecord> = st.get(&StateKey::Institution(place))?;
        if member.is_some_and(|m| {
            m.spec.legal_code != licence.terms.legal_code
                || m.spec.licence_ref != licence.terms.licence_ref
        }) {
            return Ok(Some(LicenceProblem::InstitutionCodesChanged));
        }
    }
    Ok(None)
}

/// Whether `institution` is an active member.
fn is_active(st: &Overlay<'_>, institution: &InstitutionId) -> Step<bool> {
    Ok(st
        .get::<InstitutionRecord>(&StateKey::Institution(institution.clone()))?
        .is_some_and(|r| r.status == MemberStatus::Active))
}

/// Why the practitioner `id` (whose record is `practitioner`) may not act
/// at `time` under the genesis licence policy, if they may not [R4.14]:
/// what a block at that time would find (the API says it beside a
/// practitioner's record, and a holder asks it before it serves).
pub fn licence_problem_at(
    st: &Overlay<'_>,
    id: &PractitionerId,
    practitioner: &PractitionerRecord,
    time: Timestamp,
) -> Result<Option<LicenceProblem>, crate::state::StateError> {
    if let Some(problem) = institution_licence_problem_at(st, &practitioner.institution, time)? {
        return Ok(Some(problem));
    }
    let params: LedgerParameters = st.get(&StateKey::Parameters)?.unwrap_or_default();
    if params.practitioner_licences == LicencePolicy::Declared {
        return Ok(None);
    }
    let Some(licence) = st.get::<LicenceRecord>(&StateKey::Licence(practitioner.licence_hash))?
    else {
        return Ok(Some(LicenceProblem::NotAttested));
    };
    if let Err(problem) =
        licence.in_force_for(id, practitioner.role, &practitioner.institution, time)
    {
        return Ok(Some(problem));
    }
    let attester: Option<InstitutionRecord> =
        st.get(&StateKey::Institution(licence.attested_by.clone()))?;
    if attester.is_none_or(|a| a.status != MemberStatus::Active) {
        return Ok(Some(LicenceProblem::AttesterNotActive));
    }
    Ok(None)
}
