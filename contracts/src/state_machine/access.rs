//! Access and its audit: ordinary requests [R7.1], releases [R7.2],
//! emergency access and its review [R7.3] [R7.4] [R7.7], public-health
//! access [R7.5], refused fetches [R7.6] and a patient's request for their
//! own records [R7.8].

use super::*;

/// Most overdue emergency reviews one block reports (the rest follow in
/// the next blocks), so that a backlog cannot make one block's work unbounded.
pub(super) const OVERDUE_REVIEWS_PER_BLOCK: u64 = 1_000;

/// [R7.7] At the start of a block, every authorised emergency access whose
/// review deadline has passed with no review becomes an audit entry in the
/// patient's trail. The queue is in authorisation order; its head is taken
/// while its deadline has passed (a later shortening of
/// `emergency_review_days` may delay a place until those before it are due).
pub(super) fn overdue_reviews(
    block: &mut Overlay<'_>,
    ctx: &BlockContext,
    frontier: &mut Frontier,
    audit_entries: &mut Vec<AuditEntry>,
) -> Result<(), StateError> {
    let Some(mut queue) = block.get::<ReviewQueue>(&StateKey::ReviewQueue)? else {
        return Ok(());
    };
    let start = queue.head;
    while queue.head < queue.tail && queue.head - start < OVERDUE_REVIEWS_PER_BLOCK {
        let place = StateKey::ReviewDue(queue.head);
        let Some(due) = block.get::<ReviewDue>(&place)? else {
            queue.head += 1;
            continue;
        };
        if due.deadline > ctx.time {
            break;
        }
        // The place stays in state (records are not deleted, rule 1); the head
        // moving past it is what takes it off the queue.
        queue.head += 1;
        let Some(access) = block.get::<AccessRecord>(&StateKey::Access(due.request))? else {
            continue;
        };
        if let AccessKind::Emergency { review: None, .. } = access.kind {
            let entry = AuditEntry {
                index: frontier.size(),
                at: ctx.block_ref(),
                tx: due.request,
                patient: access.patient,
                event: AuditEvent::EmergencyReviewOverdue {
                    request: due.request,
                    requester_institution: access.requester_institution,
                    deadline: due.deadline,
                },
            };
            frontier.push(ctx.hash, entry.leaf_hash(ctx.hash));
            audit_entries.push(entry);
        }
    }
    if queue.head != start {
        block.put(&StateKey::ReviewQueue, &queue);
    }
    Ok(())
}

/// [R7.7] Puts an authorised emergency access in the review queue.
pub(super) fn queue_review(
    st: &mut Overlay<'_>,
    request: RequestId,
    ctx: &BlockContext,
) -> Step<()> {
    let params: LedgerParameters = st.get(&StateKey::Parameters)?.unwrap_or_default();
    let mut queue: ReviewQueue = st.get(&StateKey::ReviewQueue)?.unwrap_or_default();
    let deadline = Timestamp(
        ctx.time
            .0
            .saturating_add(u64::from(params.emergency_review_days) * 86_400_000),
    );
    st.put(
        &StateKey::ReviewDue(queue.tail),
        &ReviewDue { request, deadline },
    );
    queue.tail += 1;
    st.put(&StateKey::ReviewQueue, &queue);
    Ok(())
}

/// Whether `holder` is an active member that holds records.
pub(super) fn holder_eligible(st: &Overlay<'_>, holder: &InstitutionId) -> Step<bool> {
    let record: Option<InstitutionRecord> = st.get(&StateKey::Institution(holder.clone()))?;
    Ok(record.is_some_and(|r| r.status == MemberStatus::Active && r.spec.kind.holds_records()))
}

/// [R7.1] The decision on an ordinary request.
#[allow(clippy::too_many_arguments)]
pub(super) fn decide_request(
    st: &Overlay<'_>,
    requester: PractitionerId,
    practitioner: &PractitionerRecord,
    grant: &GrantRecord,
    holder: &InstitutionId,
    categories: &[Category],
    purpose: Purpose,
    ctx: &BlockContext,
) -> Step<Decision> {
    if let Err(reason) = active_practitioner(st, &requester, practitioner, ctx)? {
        return Ok(Decision::Denied(reason));
    }
    let denial = match grant.status_at(ctx.time) {
        GrantStatus::Active => None,
        GrantStatus::Revoked => Some(DenialReason::GrantRevoked),
        GrantStatus::Relinquished => Some(DenialReason::GrantRelinquished),
        GrantStatus::Pending => Some(DenialReason::GrantNotYetValid),
        GrantStatus::Expired => Some(DenialReason::GrantExpired),
    };
    if let Some(reason) = denial {
        return Ok(Decision::Denied(reason));
    }
    let is_grantee = match &grant.terms.grantee {
        Grantee::Practitioner(id) => *id == requester,
        Grantee::Institution(id) => *id == practitioner.institution,
        // [R5.11] Membership at block time: a member that left no longer reaches it.
        Grantee::Group(group) => super::consent::in_group(st, group, &practitioner.institution)?,
    };
    let reason = if !is_grantee {
        Some(DenialReason::NotGrantee)
    } else if !categories_cover(&grant.terms.categories, categories) {
        Some(DenialReason::CategoryNotGranted)
    } else if !grant.terms.holders.includes(holder) {
        Some(DenialReason::HolderNotGranted)
    } else if !holder_eligible(st, holder)? {
        Some(DenialReason::HolderNotEligible)
    } else if purpose != grant.terms.purpose {
        Some(DenialReason::PurposeMismatch)
    } else {
        None
    };
    Ok(reason.map_or(Decision::Authorized, Decision::Denied))
}

#[allow(clippy::too_many_arguments)]
pub(super) fn access_request(
    st: &mut Overlay<'_>,
    actor: Actor,
    id: TxHash,
    grant_id: GrantId,
    holder: &InstitutionId,
    categories: &Categories,
    purpose: Purpose,
    ctx: &BlockContext,
) -> Step<Effect> {
    let Actor::Practitioner(requester, practitioner) = actor else {
        return not_permitted("access is requested by a practitioner");
    };
    let grant: Option<GrantRecord> = st.get(&StateKey::Grant(grant_id))?;
    // A request citing no grant concerns no known patient: reject rather than
    // write an audit entry that no patient could ever see.
    let Some(grant) = grant else {
        return not_found("grant");
    };
    let decision = decide_request(
        st,
        requester,
        &practitioner,
        &grant,
        holder,
        categories,
        purpose,
        ctx,
    )?;
    record_access(
        st,
        id,
        AccessRecord {
            patient: grant.terms.patient,
            requester,
            requester_institution: practitioner.institution,
            holder: holder.clone(),
            categories: categories.clone(),
            kind: AccessKind::Grant {
                grant: grant_id,
                purpose,
            },
            at: ctx.block_ref(),
            decision,
            release: None,
        },
    )
}

/// Writes an access record and its audit event [R8].
pub(super) fn record_access(
    st: &mut Overlay<'_>,
    id: TxHash,
    record: AccessRecord,
) -> Step<Effect> {
    let outcome = match &record.decision {
        Decision::Authorized => Outcome::Authorized,
        Decision::Denied(reason) => Outcome::Denied(*reason),
    };
    let kind = match &record.kind {
        AccessKind::Grant { .. } => AccessKindTag::Grant,
        AccessKind::Emergency { .. } => AccessKindTag::Emergency,
        AccessKind::PublicHealth { .. } => AccessKindTag::PublicHealth,
    };
    let event = AuditEvent::AccessDecided {
        request: id,
        requester: record.requester,
        holder: record.holder.clone(),
        kind,
        decision: record.decision.clone(),
    };
    let patient = record.patient;
    st.put(&StateKey::Access(id), &record);
    Ok(Effect::with(outcome, patient, event))
}

#[allow(clippy::too_many_arguments)]
pub(super) fn special_access(
    st: &mut Overlay<'_>,
    actor: Actor,
    id: TxHash,
    patient: PatientId,
    holder: &InstitutionId,
    categories: &Categories,
    kind: AccessKind,
    ctx: &BlockContext,
) -> Step<Effect> {
    // [R7.3] [R7.5]
    let Actor::Practitioner(requester, practitioner) = actor else {
        return not_permitted("emergency and public-health access is requested by a practitioner");
    };
    if st
        .get::<PatientRecord>(&StateKey::Patient(patient))?
        .is_none()
    {
        return not_found("patient");
    }
    let decision = match active_practitioner(st, &requester, &practitioner, ctx)? {
        Err(reason) => Decision::Denied(reason),
        Ok(institution) => {
            let allowed = match &kind {
                AccessKind::Emergency { .. } => {
                    let params: LedgerParameters =
                        st.get(&StateKey::Parameters)?.unwrap_or_default();
                    let policy = &params.emergency;
                    let kind_may = match institution.spec.kind {
                        InstitutionKind::Hospital => true,
                        InstitutionKind::InternetHospital { .. } => policy.internet_hospitals,
                        _ => false,
                    };
                    kind_may && policy.roles.contains(&practitioner.role)
                }
                AccessKind::PublicHealth { .. } => {
                    institution.spec.kind == InstitutionKind::PublicHealth
                        && practitioner.role == PractitionerRole::PublicHealthOfficer
                }
                AccessKind::Grant { .. } => false,
            };
            if !allowed {
                Decision::Denied(match kind {
                    AccessKind::PublicHealth { .. } => DenialReason::NotPublicHealth,
                    _ => DenialReason::EmergencyNotAllowed,
                })
            } else if !holder_eligible(st, holder)? {
                Decision::Denied(DenialReason::HolderNotEligible)
            } else {
                Decision::Authorized
            }
        }
    };
    if decision == Decision::Authorized && matches!(kind, AccessKind::Emergency { .. }) {
        queue_review(st, id, ctx)?;
    }
    record_access(
        st,
        id,
        AccessRecord {
            patient,
            requester,
            requester_institution: practitioner.institution,
            holder: holder.clone(),
            categories: categories.clone(),
            kind,
            at: ctx.block_ref(),
            decision,
            release: None,
        },
    )
}

pub(super) fn access_served(
    st: &mut Overlay<'_>,
    actor: Actor,
    request: RequestId,
    content_hashes: &BoundedVec<
        crate::encoding::Hash32,
        { crate::constants::CONTENT_HASHES_PER_RELEASE_MAX },
    >,
    ctx: &BlockContext,
) -> Step<Effect> {
    // [R7.2]
    let signer_institution = match &actor {
        Actor::InstitutionNode(id) | Actor::Institution(id, _) => id.clone(),
        _ => return not_permitted("a release is recorded by the holder institution"),
    };
    let Some(mut record) = st.get::<AccessRecord>(&StateKey::Access(request))? else {
        return own_access_served(st, &signer_institution, request, content_hashes, ctx);
    };
    if record.holder != signer_institution {
        return not_permitted("only the holder named in the request records its release");
    }
    if record.decision != Decision::Authorized {
        return reject(Rejection::NotAuthorized);
    }
    if record.release.is_some() {
        return reject(Rejection::AlreadyDone("the request was served".into()));
    }
    let grant_active = basis_holds(st, &record, ctx)?;
    record.release = Some(ReleaseRecord {
        at: ctx.block_ref(),
        content_hashes: content_hashes.clone(),
        grant_active_at_release: grant_active,
    });
    st.put(&StateKey::Access(request), &record);
    // Invariant: at most CONTENT_HASHES_PER_RELEASE_MAX (256) hashes, which
    // a u32 holds (asserted at compile time in `constants`).
    #[allow(clippy::cast_possible_truncation)]
    let content_count = content_hashes.len() as u32;
    Ok(Effect::with(
        Outcome::Applied,
        record.patient,
        AuditEvent::Released {
            request,
            holder: record.holder,
            content_count,
            grant_active,
        },
    ))
}

/// [R7.8] A patient asks a holder for their own records.
pub(super) fn own_records_request(
    st: &mut Overlay<'_>,
    actor: Actor,
    id: TxHash,
    holder: &InstitutionId,
    categories: &Categories,
    ctx: &BlockContext,
) -> Step<Effect> {
    let Actor::Patient(patient, record) = actor else {
        return not_permitted("a patient asks for their own records with their own key");
    };
    // A key being replaced by recovery contacts may be a lost phone's.
    if record.key_change_pending_at(ctx.time) {
        return not_permitted(
            "a replacement of your key is pending: your own records wait until it takes effect or is cancelled",
        );
    }
    if !holder_eligible(st, holder)? {
        return not_permitted("the holder is not an active member that holds records");
    }
    st.put(
        &StateKey::OwnAccess(id),
        &OwnAccessRecord {
            patient,
            holder: holder.clone(),
            categories: categories.clone(),
            at: ctx.block_ref(),
            release: None,
        },
    );
    Ok(Effect::with(
        Outcome::Authorized,
        patient,
        AuditEvent::OwnRecordsRequested {
            request: id,
            holder: holder.clone(),
        },
    ))
}

/// [R7.8] [R7.2] The release of a patient's own records.
fn own_access_served(
    st: &mut Overlay<'_>,
    signer_institution: &InstitutionId,
    request: RequestId,
    content_hashes: &BoundedVec<
        crate::encoding::Hash32,
        { crate::constants::CONTENT_HASHES_PER_RELEASE_MAX },
    >,
    ctx: &BlockContext,
) -> Step<Effect> {
    let mut record: OwnAccessRecord = st
        .get(&StateKey::OwnAccess(request))?
        .ok_or(Rejection::NotFound("access".into()))?;
    if record.holder != *signer_institution {
        return not_permitted("only the holder named in the request records its release");
    }
    if record.release.is_some() {
        return reject(Rejection::AlreadyDone("the request was served".into()));
    }
    record.release = Some(ReleaseRecord {
        at: ctx.block_ref(),
        content_hashes: content_hashes.clone(),
        grant_active_at_release: true,
    });
    st.put(&StateKey::OwnAccess(request), &record);
    // At most CONTENT_HASHES_PER_RELEASE_MAX (256) hashes: fits a u32.
    #[allow(clippy::cast_possible_truncation)]
    let content_count = content_hashes.len() as u32;
    Ok(Effect::with(
        Outcome::Applied,
        record.patient,
        AuditEvent::Released {
            request,
            holder: record.holder,
            content_count,
            grant_active: true,
        },
    ))
}

/// Whether what an authorised access rests on still holds at block time
/// [R7.2] [R7.6]: its requester may still act (active, at an active
/// institution, on a licence in force where genesis asks for it, at an
/// institution whose attested licence is in force [R3] [R4.14] [R4.16]);
/// and a grant-based
/// access's grant is active; an emergency access is within its fetch
/// window and not found unjustified [R7.3]; a public-health access rests
/// on the law.
pub(super) fn basis_holds(
    st: &Overlay<'_>,
    record: &AccessRecord,
    ctx: &BlockContext,
) -> Step<bool> {
    let requester: Option<PractitionerRecord> =
        st.get(&StateKey::Practitioner(record.requester))?;
    let may_act = match &requester {
        Some(p) => active_practitioner(st, &record.requester, p, ctx)?.is_ok(),
        None => false,
    };
    let Some(requester) = requester.filter(|_| may_act) else {
        return Ok(false);
    };
    Ok(match &record.kind {
        AccessKind::Grant { grant, .. } => match st.get::<GrantRecord>(&StateKey::Grant(*grant))? {
            Some(g) => super::consent::grant_carries_at(st, &g, &requester.institution, ctx.time)?,
            None => false,
        },
        AccessKind::Emergency { .. } => {
            let params: LedgerParameters = st.get(&StateKey::Parameters)?.unwrap_or_default();
            record
                .emergency_fetchable_at(ctx.time, &params.emergency)
                .unwrap_or(false)
        }
        AccessKind::PublicHealth { .. } => true,
    })
}

pub(super) fn fetch_refused(
    st: &mut Overlay<'_>,
    actor: Actor,
    request: RequestId,
    practitioner: PractitionerId,
    reason: FetchRefusal,
    ctx: &BlockContext,
) -> Step<Effect> {
    // [R7.6]
    let signer_institution = match &actor {
        Actor::InstitutionNode(id) | Actor::Institution(id, _) => id.clone(),
        _ => return not_permitted("a refused fetch is recorded by the holder institution"),
    };
    let record: AccessRecord = st
        .get(&StateKey::Access(request))?
        .ok_or(Rejection::NotFound("access".into()))?;
    if record.holder != signer_institution {
        return not_permitted("only the holder named in the request records a refused fetch");
    }
    if st
        .get::<PractitionerRecord>(&StateKey::Practitioner(practitioner))?
        .is_none()
    {
        return reject(Rejection::NotFound("practitioner".into()));
    }
    let fits = match reason {
        FetchRefusal::NotAuthorized => {
            record.requester != practitioner || record.decision != Decision::Authorized
        }
        FetchRefusal::GrantNotActive => !basis_holds(st, &record, ctx)?,
        FetchRefusal::AlreadyServed => true,
    };
    if !fits {
        return not_permitted("the ledger contradicts the refusal's reason");
    }
    let marker = StateKey::FetchRefusal(request, reason);
    if st.get::<BlockRef>(&marker)?.is_some() {
        return reject(Rejection::AlreadyDone(
            "this refusal was recorded already".into(),
        ));
    }
    st.put(&marker, &ctx.block_ref());
    Ok(Effect::with(
        Outcome::Applied,
        record.patient,
        AuditEvent::FetchRefused {
            request,
            holder: record.holder,
            practitioner,
            reason,
        },
    ))
}

pub(super) fn emergency_review(
    st: &mut Overlay<'_>,
    actor: Actor,
    access: RequestId,
    finding: ReviewFinding,
    record_hash: crate::encoding::Hash32,
    ctx: &BlockContext,
) -> Step<Effect> {
    // [R7.4]
    let Actor::Institution(reviewer, institution) = actor else {
        return not_permitted("reviews are signed with an institution's admin key");
    };
    let mut record: AccessRecord = st
        .get(&StateKey::Access(access))?
        .ok_or(Rejection::NotFound("access".into()))?;
    // Not the requester's own institution: it would be judging itself.
    if institution.spec.kind != InstitutionKind::Regulator
        || record.requester_institution == reviewer
    {
        return not_permitted(
            "a regulator, not the requester's institution, reviews an emergency access",
        );
    }
    let AccessKind::Emergency { review, .. } = &mut record.kind else {
        return not_permitted("only emergency accesses are reviewed");
    };
    if review.is_some() {
        return reject(Rejection::AlreadyDone("already reviewed".into()));
    }
    *review = Some(EmergencyReviewRecord {
        reviewer,
        finding,
        record_hash,
        at: ctx.block_ref(),
    });
    st.put(&StateKey::Access(access), &record);
    Ok(Effect::with(
        Outcome::Applied,
        record.patient,
        AuditEvent::EmergencyReviewed {
            request: access,
            finding,
        },
    ))
}
