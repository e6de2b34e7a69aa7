//! Who controls a patient's key: registration [R4.1], recovery contacts
//! [R4.2], recovery by contacts [R4.3], key rotation [R4.4], and cancelling
//! a pending control change [R4.11].

use super::*;

pub(super) fn register_patient(
    st: &mut Overlay<'_>,
    actor: Actor,
    ctx: &BlockContext,
) -> Step<Effect> {
    let Actor::NewPatient(id, key) = actor else {
        return not_permitted("RegisterPatient is signed by the new key");
    };
    // [R4.1]
    if st.get::<PatientRecord>(&StateKey::Patient(id))?.is_some() {
        return reject(Rejection::AlreadyExists("patient".into()));
    }
    st.put(
        &StateKey::Patient(id),
        &PatientRecord {
            key,
            registered_at: ctx.block_ref(),
            minor_until: None,
            recovery: None,
            recovery_approvals: BoundedVec::default(),
            pending_recovery: None,
            pending_key: None,
        },
    );
    Ok(Effect::applied())
}

pub(super) fn set_recovery(
    st: &mut Overlay<'_>,
    actor: Actor,
    delegates: &BoundedVec<PatientId, { crate::constants::RECOVERY_DELEGATES_MAX }>,
    threshold: u8,
    ctx: &BlockContext,
) -> Step<Effect> {
    // [R4.2]
    let Actor::Patient(id, mut record) = actor else {
        return not_permitted("only the patient sets their recovery policy");
    };
    for delegate in delegates.iter() {
        if *delegate == id {
            return not_permitted("a patient cannot be their own recovery delegate");
        }
        if st
            .get::<PatientRecord>(&StateKey::Patient(*delegate))?
            .is_none()
        {
            return not_found("recovery delegate");
        }
    }
    // A thief holding an unlocked phone could name contacts of their own:
    // the new contacts wait out the delay, which the patient sees.
    let effective_at = control_change_time(st, ctx)?;
    record.pending_recovery = Some(Pending {
        value: RecoveryPolicy {
            delegates: delegates.clone(),
            threshold,
        },
        effective_at,
    });
    record.recovery_approvals = BoundedVec::default();
    st.put(&StateKey::Patient(id), &record);
    Ok(control_changed(
        id,
        ControlChange::RecoveryContactsChanged,
        effective_at,
    ))
}

/// When a control change made now takes effect: after the genesis delay.
pub(super) fn control_change_time(st: &Overlay<'_>, ctx: &BlockContext) -> Step<Timestamp> {
    let params: LedgerParameters = st.get(&StateKey::Parameters)?.unwrap_or_default();
    Ok(Timestamp(
        ctx.time.0.saturating_add(params.control_change_delay_ms),
    ))
}

/// The audit entry for a change of who controls `patient`'s account.
pub(super) fn control_changed(
    patient: PatientId,
    change: ControlChange,
    effective_at: Timestamp,
) -> Effect {
    Effect::with(
        Outcome::Applied,
        patient,
        AuditEvent::ControlChanged {
            change,
            effective_at,
        },
    )
}

pub(super) fn approve_recovery(
    st: &mut Overlay<'_>,
    actor: Actor,
    patient: PatientId,
    new_key: PublicKey,
    ctx: &BlockContext,
) -> Step<Effect> {
    // [R4.3]
    let Actor::Patient(delegate, _) = actor else {
        return not_permitted("recovery is approved by a delegate in person");
    };
    let mut record: PatientRecord = st
        .get(&StateKey::Patient(patient))?
        .ok_or(Rejection::NotFound("patient".into()))?;
    record.settle(ctx.time);
    let Some(policy) = record.recovery.clone() else {
        return not_permitted("the patient has no recovery policy in force");
    };
    if !policy.delegates.contains(&delegate) {
        return not_permitted("the signer is not one of the patient's recovery delegates");
    }
    // Only approvals by contacts of the policy in force count (a removed
    // contact's approval must not help, nor take a slot).
    record
        .recovery_approvals
        .retain(|(who, _)| *who != delegate && policy.delegates.contains(who));
    // Cannot overflow: one approval per contact of the policy, at most
    // RECOVERY_DELEGATES_MAX of them.
    let _ = record.recovery_approvals.push((delegate, new_key));
    let agreeing = record
        .recovery_approvals
        .iter()
        .filter(|(_, key)| *key == new_key)
        .count();
    let effect = if agreeing >= usize::from(policy.threshold) {
        // Colluding contacts must not replace the key unnoticed: the
        // replacement waits out the delay, and the current key can cancel it.
        let effective_at = control_change_time(st, ctx)?;
        record.pending_key = Some(Pending {
            value: new_key,
            effective_at,
        });
        record.recovery_approvals = BoundedVec::default();
        control_changed(
            patient,
            ControlChange::KeyReplacementScheduled,
            effective_at,
        )
    } else {
        control_changed(
            patient,
            ControlChange::RecoveryApproved { contact: delegate },
            ctx.time,
        )
    };
    st.put(&StateKey::Patient(patient), &record);
    Ok(effect)
}

/// [R4.11] The patient's current key cancels pending control changes.
pub(super) fn cancel_control_change(
    st: &mut Overlay<'_>,
    actor: Actor,
    key: bool,
    contacts: bool,
    ctx: &BlockContext,
) -> Step<Effect> {
    let Actor::Patient(id, mut record) = actor else {
        return not_permitted("only the patient's current key cancels a pending change");
    };
    // Separately, so that contacts who schedule a key cannot make the
    // patient throw away the new contacts that would replace them.
    let cancels_key = key && record.pending_key.is_some();
    let cancels_contacts = contacts && record.pending_recovery.is_some();
    if !cancels_key && !cancels_contacts {
        return not_found("pending change");
    }
    if cancels_key {
        record.pending_key = None;
        record.recovery_approvals = BoundedVec::default();
    }
    if cancels_contacts {
        record.pending_recovery = None;
    }
    st.put(&StateKey::Patient(id), &record);
    Ok(control_changed(
        id,
        ControlChange::PendingChangesCancelled,
        ctx.time,
    ))
}

pub(super) fn rotate_key(
    st: &mut Overlay<'_>,
    actor: Actor,
    role: KeyRole,
    new_key: PublicKey,
    ctx: &BlockContext,
) -> Step<Effect> {
    // [R4.4]
    match (actor, role) {
        (Actor::Patient(id, mut record), KeyRole::Own) => {
            record.key = new_key;
            st.put(&StateKey::Patient(id), &record);
            return Ok(control_changed(id, ControlChange::KeyRotated, ctx.time));
        }
        (Actor::Practitioner(id, mut record), KeyRole::Own) => {
            if record.status != MemberStatus::Active {
                return reject(Rejection::SignerNotActive);
            }
            record.key = new_key;
            st.put(&StateKey::Practitioner(id), &record);
        }
        (Actor::Institution(id, mut record), KeyRole::Own) => {
            record.spec.admin_key = new_key;
            st.put(&StateKey::Institution(id), &record);
        }
        (Actor::Institution(id, mut record), KeyRole::InstitutionNode) => {
            record.spec.node_key = new_key;
            st.put(&StateKey::Institution(id.clone()), &record);
            if record.spec.voting_power > 0 {
                let mut sets: ValidatorSetRecord =
                    st.get(&StateKey::ValidatorSet)?.unwrap_or_default();
                let mut next = sets.at(u64::MAX).clone();
                let validators: Vec<Validator> = next
                    .validators
                    .iter()
                    .cloned()
                    .map(|v| {
                        if v.institution == id {
                            Validator {
                                node_key: new_key,
                                ..v
                            }
                        } else {
                            v
                        }
                    })
                    .collect();
                next.validators = BoundedVec::new(validators)
                    .map_err(|_| Rejection::InvalidAction("too many validators".into()))?;
                schedule_validator_set(st, &mut sets, next, ctx)?;
            }
        }
        (Actor::Institution(id, mut record), KeyRole::InstitutionTransport) => {
            // The form check admitted the role only on a chain with
            // transport keys. A key once named stays its institution's, so
            // one network identity never stands for two members.
            if st
                .get::<InstitutionId>(&StateKey::TransportKey(new_key))?
                .is_some()
            {
                return reject(Rejection::InvalidAction(
                    "the transport key is one an institution has named before".into(),
                ));
            }
            st.put(&StateKey::TransportKey(new_key), &id);
            record.spec.transport_key = Some(new_key);
            st.put(&StateKey::Institution(id), &record);
        }
        _ => return not_permitted("this signer cannot rotate this key"),
    }
    Ok(Effect::applied())
}
