//! Governance by the validators: proposals [R4.8], votes [R4.9] and
//! validator-set changes that take effect after a delay [R4.10].

use super::*;

/// [R4.10] Makes a scheduled validator set current once its height is reached.
pub(super) fn promote_validator_set(
    block: &mut Overlay<'_>,
    height: u64,
) -> Result<ValidatorSet, StateError> {
    let mut record: ValidatorSetRecord = block.get(&StateKey::ValidatorSet)?.unwrap_or_default();
    if let Some((from, set)) = record.scheduled.take() {
        if height >= from {
            record.current = set;
            block.put(&StateKey::ValidatorSet, &record);
        } else {
            record.scheduled = Some((from, set));
        }
    }
    Ok(record.current)
}

/// [R4.10] Schedules `next` to take effect after the change delay.
pub(super) fn schedule_validator_set(
    st: &mut Overlay<'_>,
    sets: &mut ValidatorSetRecord,
    next: ValidatorSet,
    ctx: &BlockContext,
) -> Step<()> {
    if next.total_power() == 0 {
        return reject(Rejection::InvalidAction(
            "the change would leave no voting power".into(),
        ));
    }
    let params: LedgerParameters = st.get(&StateKey::Parameters)?.unwrap_or_default();
    let from = ctx
        .height
        .saturating_add(params.validator_change_delay_heights.max(1));
    // `next` was built on any change still scheduled, so replacing it folds both in.
    sets.scheduled = Some((from, next));
    st.put(&StateKey::ValidatorSet, sets);
    Ok(())
}

/// Whether `action` can be carried out now; returns the new validator set if it changes one.
pub(super) fn check_action(
    st: &Overlay<'_>,
    action: &GovernanceAction,
) -> Step<Option<ValidatorSet>> {
    let invalid = |why: &str| Err(Stop::Reject(Rejection::InvalidAction(why.to_string())));
    let sets: ValidatorSetRecord = st.get(&StateKey::ValidatorSet)?.unwrap_or_default();
    let latest = sets.at(u64::MAX).clone();
    let with_power =
        |institution: &InstitutionId, key: PublicKey, power: u64| -> Step<Option<ValidatorSet>> {
            let mut validators: Vec<Validator> = latest
                .validators
                .iter()
                .filter(|v| &v.institution != institution)
                .cloned()
                .collect();
            if power > 0 {
                validators.push(Validator {
                    institution: institution.clone(),
                    node_key: key,
                    power,
                });
                validators.sort_by(|a, b| a.institution.cmp(&b.institution));
            }
            let Ok(validators) = BoundedVec::new(validators) else {
                return invalid("too many validators");
            };
            let set = ValidatorSet { validators };
            if set.total_power() == 0 {
                return invalid("the change would leave no voting power");
            }
            Ok(if set == latest { None } else { Some(set) })
        };
    match action {
        GovernanceAction::Admit(spec) => {
            if st
                .get::<InstitutionRecord>(&StateKey::Institution(spec.id.clone()))?
                .is_some()
            {
                return invalid("an institution with this id exists");
            }
            // Ids name one thing: a grantee shown by id is never ambiguous.
            if let Ok(group) = GroupId::new(spec.id.as_str()) {
                if st.get::<GroupRecord>(&StateKey::Group(group))?.is_some() {
                    return invalid("a group with this id exists");
                }
            }
            if let InstitutionKind::InternetHospital { parent } = &spec.kind {
                let parent: Option<InstitutionRecord> =
                    st.get(&StateKey::Institution(parent.clone()))?;
                if !parent.is_some_and(|p| {
                    p.spec.kind == InstitutionKind::Hospital && p.status == MemberStatus::Active
                }) {
                    return invalid("an internet hospital's parent must be an active hospital");
                }
            }
            if spec.voting_power > crate::constants::VOTING_POWER_MAX {
                return invalid("voting power above the maximum");
            }
            if let Some(key) = spec.transport_key
                && st
                    .get::<InstitutionId>(&StateKey::TransportKey(key))?
                    .is_some()
            {
                return invalid("the transport key is one another institution names");
            }
            if spec.voting_power > 0 {
                with_power(&spec.id, spec.node_key, spec.voting_power)
            } else {
                Ok(None)
            }
        }
        GovernanceAction::Suspend(id)
        | GovernanceAction::Reinstate(id)
        | GovernanceAction::Remove(id) => {
            let record: InstitutionRecord = st
                .get(&StateKey::Institution(id.clone()))?
                .ok_or(Rejection::NotFound("institution".into()))?;
            let power = record.spec.voting_power;
            match (action, record.status) {
                (GovernanceAction::Suspend(_), MemberStatus::Active) => {
                    with_power(id, record.spec.node_key, 0)
                }
                (GovernanceAction::Reinstate(_), MemberStatus::Suspended) => {
                    with_power(id, record.spec.node_key, power)
                }
                (GovernanceAction::Remove(_), MemberStatus::Active | MemberStatus::Suspended) => {
                    with_power(id, record.spec.node_key, 0)
                }
                _ => invalid("the institution's status does not allow this"),
            }
        }
        GovernanceAction::SetVotingPower { institution, power } => {
            let record: InstitutionRecord = st
                .get(&StateKey::Institution(institution.clone()))?
                .ok_or(Rejection::NotFound("institution".into()))?;
            if record.status != MemberStatus::Active {
                return invalid("only an active member can hold voting power");
            }
            if *power > crate::constants::VOTING_POWER_MAX {
                return invalid("voting power above the maximum");
            }
            with_power(institution, record.spec.node_key, *power)
        }
        GovernanceAction::SetGroup { group, members } => {
            if let Ok(id) = InstitutionId::new(group.as_str()) {
                if st
                    .get::<InstitutionRecord>(&StateKey::Institution(id))?
                    .is_some()
                {
                    return invalid("an institution has this id: a group needs its own");
                }
            }
            // [R4.15] Members are admitted institutions still in the
            // consortium (a removed one has left it).
            for member in members.iter() {
                let record: Option<InstitutionRecord> =
                    st.get(&StateKey::Institution(member.clone()))?;
                if record.is_none_or(|r| r.status == MemberStatus::Removed) {
                    return invalid("a group's member must be an institution of the consortium");
                }
            }
            Ok(None)
        }
        GovernanceAction::SetCodes { institution, .. } => {
            // [R4.18]
            let record: InstitutionRecord = st
                .get(&StateKey::Institution(institution.clone()))?
                .ok_or(Rejection::NotFound("institution".into()))?;
            if record.status == MemberStatus::Removed {
                return invalid("a removed member's codes stay as they were");
            }
            Ok(None)
        }
    }
}

/// Carries out a carried proposal's action.
pub(super) fn execute_action(
    st: &mut Overlay<'_>,
    action: &GovernanceAction,
    ctx: &BlockContext,
) -> Step<()> {
    let new_set = check_action(st, action)?;
    match action {
        GovernanceAction::Admit(spec) => {
            if let Some(key) = spec.transport_key {
                st.put(&StateKey::TransportKey(key), &spec.id);
            }
            st.put(
                &StateKey::Institution(spec.id.clone()),
                &InstitutionRecord {
                    spec: spec.clone(),
                    status: MemberStatus::Active,
                    admitted_at: ctx.height,
                },
            );
        }
        GovernanceAction::Suspend(id)
        | GovernanceAction::Reinstate(id)
        | GovernanceAction::Remove(id) => {
            let key = StateKey::Institution(id.clone());
            let mut record: InstitutionRecord = st
                .get(&key)?
                .ok_or(Rejection::NotFound("institution".into()))?;
            record.status = match action {
                GovernanceAction::Suspend(_) => MemberStatus::Suspended,
                GovernanceAction::Reinstate(_) => MemberStatus::Active,
                _ => MemberStatus::Removed,
            };
            st.put(&key, &record);
        }
        GovernanceAction::SetVotingPower { institution, power } => {
            let key = StateKey::Institution(institution.clone());
            let mut record: InstitutionRecord = st
                .get(&key)?
                .ok_or(Rejection::NotFound("institution".into()))?;
            record.spec.voting_power = *power;
            st.put(&key, &record);
        }
        GovernanceAction::SetCodes {
            institution,
            legal_code,
            licence_ref,
        } => {
            let key = StateKey::Institution(institution.clone());
            let mut record: InstitutionRecord = st
                .get(&key)?
                .ok_or(Rejection::NotFound("institution".into()))?;
            record.spec.legal_code = legal_code.clone();
            record.spec.licence_ref = licence_ref.clone();
            st.put(&key, &record);
        }
        GovernanceAction::SetGroup { group, members } => {
            st.put(
                &StateKey::Group(group.clone()),
                &GroupRecord {
                    members: members.clone(),
                    set_at: ctx.block_ref(),
                },
            );
        }
    }
    if let Some(set) = new_set {
        let mut sets: ValidatorSetRecord = st.get(&StateKey::ValidatorSet)?.unwrap_or_default();
        schedule_validator_set(st, &mut sets, set, ctx)?;
    }
    Ok(())
}

pub(super) fn current_validator(
    st: &Overlay<'_>,
    actor: &Actor,
    ctx: &BlockContext,
) -> Step<(InstitutionId, ValidatorSet)> {
    let Actor::Institution(id, _) = actor else {
        return not_permitted("governance is signed with an institution's admin key");
    };
    let sets: ValidatorSetRecord = st.get(&StateKey::ValidatorSet)?.unwrap_or_default();
    let set = sets.at(ctx.height).clone();
    if set.get(id).is_none_or(|v| v.power == 0) {
        return not_permitted("only validators propose and vote");
    }
    Ok((id.clone(), set))
}

/// Tallies votes and, when decided, executes or closes the proposal [R4.9].
pub(super) fn tally(
    st: &mut Overlay<'_>,
    id: ProposalId,
    mut proposal: ProposalRecord,
    set: &ValidatorSet,
    ctx: &BlockContext,
) -> Step<()> {
    let power_of = |approve: bool| -> u64 {
        proposal
            .votes
            .iter()
            .filter(|(_, a)| *a == approve)
            .filter_map(|(who, _)| set.get(who).map(|v| v.power))
            .sum()
    };
    let (yes, no) = (power_of(true), power_of(false));
    if set.is_two_thirds(yes) {
        let mut attempt = Overlay::new(&*st);
        match execute_action(&mut attempt, &proposal.action, ctx) {
            Ok(()) => {
                let writes = attempt.into_writes();
                st.absorb(writes);
                proposal.status = ProposalStatus::Carried(ctx.height);
            }
            Err(Stop::Storage(error)) => return Err(Stop::Storage(error)),
            Err(Stop::Reject(_)) => proposal.status = ProposalStatus::Failed,
        }
    } else if u128::from(no) * 3 > u128::from(set.total_power()) {
        proposal.status = ProposalStatus::Defeated;
    }
    st.put(&StateKey::Proposal(id), &proposal);
    Ok(())
}

pub(super) fn propose(
    st: &mut Overlay<'_>,
    actor: Actor,
    id: TxHash,
    action: &GovernanceAction,
    expires_at: Timestamp,
    ctx: &BlockContext,
) -> Step<Effect> {
    // [R4.8]
    let (proposer, set) = current_validator(st, &actor, ctx)?;
    if expires_at <= ctx.time {
        return reject(Rejection::BadTime(
            "the proposal would expire at once".into(),
        ));
    }
    check_action(st, action)?;
    let votes = BoundedVec::new(vec![(proposer.clone(), true)])
        .map_err(|_| Rejection::InvalidAction("votes".into()))?;
    let proposal = ProposalRecord {
        action: action.clone(),
        proposer,
        expires_at,
        votes,
        status: ProposalStatus::Open,
    };
    tally(st, id, proposal, &set, ctx)?;
    Ok(Effect::applied())
}

pub(super) fn vote(
    st: &mut Overlay<'_>,
    actor: Actor,
    proposal_id: ProposalId,
    approve: bool,
    ctx: &BlockContext,
) -> Step<Effect> {
    // [R4.9]
    let (voter, set) = current_validator(st, &actor, ctx)?;
    let mut proposal: ProposalRecord = st
        .get(&StateKey::Proposal(proposal_id))?
        .ok_or(Rejection::NotFound("proposal".into()))?;
    if proposal.status != ProposalStatus::Open {
        return reject(Rejection::AlreadyDone("the proposal is closed".into()));
    }
    if ctx.time >= proposal.expires_at {
        return reject(Rejection::BadTime("the proposal has lapsed".into()));
    }
    if proposal.votes.iter().any(|(who, _)| *who == voter) {
        return reject(Rejection::AlreadyDone("this validator has voted".into()));
    }
    proposal
        .votes
        .push((voter, approve))
        .map_err(|_| Rejection::InvalidAction("too many votes".into()))?;
    tally(st, proposal_id, proposal, &set, ctx)?;
    Ok(Effect::applied())
}
