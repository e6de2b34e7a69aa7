//! The state machine: `apply(state, transaction, block context) -> receipt`.
//!
//! Every rule below is cited in the code as `[Rn]`. Tests name the rule they
//! check.
//!
//! **R1 Replay.** A transaction whose id is already committed is rejected as
//! `Duplicate` and writes nothing. Any other transaction, whatever its
//! outcome, records its id with its height, so it can never be committed again.
//!
//! **R2 Signer.** The signer must exist and the signing key must be its
//! current key: a patient's, a practitioner's, an institution's admin key, or
//! its node key. A `Delegate` signer signs with the delegate's own current
//! patient key under a delegation active at block time. Exception:
//! `RegisterPatient`, whose signer id must be the hash of the signing key.
//!
//! **R3 Status.** Institutions must be active to sign anything. Practitioners
//! must be active, and their institution too; for access transactions a
//! practitioner or institution that is not active gets a recorded *denial*
//! rather than a rejection, so the attempt is audited.
//!
//! **R4 Membership.**
//! R4.1 `RegisterPatient` creates the patient (once).
//! R4.2 `SetRecoveryPolicy`: the patient only; delegates are other registered
//! patients; pending approvals are cleared. The new policy takes effect
//! `control_change_delay_ms` (genesis) after the block, until when the policy
//! before it stays in force; an audit entry (`ControlChanged`) says when.
//! R4.3 `ApproveRecovery`: a delegate of the policy in force approves a key
//! (replacing their earlier approval), with an audit entry; when `threshold`
//! delegates approve the same key it is scheduled to become the patient's key
//! `control_change_delay_ms` after the block (audited), and approvals clear;
//! until then the current key signs (and may cancel, R4.11). Grants and
//! history stay with the patient id.
//! R4.4 `RotateKey`: replaces the signer's own key, or (role
//! `InstitutionNode`, signed by the admin key) the node key; a validator's new
//! node key takes effect in the validator set after the change delay. A
//! patient's rotation is audited in the patient's trail.
//! R4.5 `RegisterPractitioner`: an active institution registers a new key.
//! R4.6 `RetirePractitioner`: only their own institution.
//! R4.7 `RecordGuardianship`: an active hospital or internet hospital records
//! a registered patient as a minor until a future time at most 14 years
//! ahead (PIPL art. 31: under 14 a guardian consents), under a registered
//! guardian (not the patient), naming the hash of its evidence, with the
//! patient's current key's signature over the terms and the recording
//! hospital (for a child the guardian holds that key; a patient who holds
//! their own key is never made a minor without it); a consent is used once. A minority's end is fixed when first recorded: a
//! later guardianship may name another guardian but not extend it, and none
//! may be recorded once it has ended. This creates a guardian delegation
//! that lapses when the minor comes of age, audited in the minor's trail
//! (seen by the patient, the guardian and regulators).
//! R4.8 `Propose`: a validator of the current set proposes; the action must be
//! valid now; the proposer's vote counts for it.
//! R4.9 `Vote`: validators of the current set vote once on an open, unexpired
//! proposal. It carries when the votes for it reach at least two thirds of
//! the current voting power, and is then executed at once (if no longer
//! valid, it is marked `Failed`); it is defeated when the votes against
//! exceed one third.
//! R4.10 A validator-set change takes effect `validator_change_delay_heights`
//! after the height that carried it. A change that leaves no voting power or
//! more than the maximum number of validators is invalid.
//! R4.11 `CancelControlChange`: the patient's current key cancels a pending
//! key replacement (clearing approvals), a pending recovery policy, or both,
//! as it says, audited; with nothing of that pending it is refused. When a
//! new policy takes effect, approvals made under the old one are dropped,
//! and only approvals by contacts of the policy in force count (R4.3).
//!
//! **R5 Consent.**
//! R5.1 `Grant`: by the patient or an active delegate for that patient; the
//! grantee (institution, or practitioner) is active; listed holders are
//! members that hold records; it expires in the future and lasts at most
//! `grant_duration_days_max`.
//! R5.2 `Revoke`: by the patient (a minor too) or an active delegate; a grant
//! already revoked or relinquished cannot be revoked. It takes effect from
//! its place in the block: no request after it, in this block or a later
//! one, is authorised by the grant. A request ordered before it in the same
//! block was decided before it (as one in the block before would have
//! been); its records still do not travel, since the holder serves only
//! while the grant is active at its own check (R7.6 `GrantNotActive`).
//! R5.3 `Relinquish`: by the grantee practitioner, or the admin of the grantee
//! institution or of the grantee practitioner's institution.
//! R5.4 `RequestConsent`: by an active practitioner (for themselves or their
//! institution) or an active institution (for itself), to a registered patient.
//! R5.5 `AnswerConsentRequest`: by the patient or an active delegate, once;
//! approval creates a grant with the requested terms, checked as in R5.1,
//! named by the answering transaction.
//! R5.6 A patient recorded as a minor at block time cannot grant, approve a
//! request or appoint delegates: a guardian must sign (revoking is allowed).
//! R5.7 `Delegate`: an adult patient, in person, appoints another registered
//! patient until a future time.
//! R5.8 `EndDelegation`: the patient (except a minor ending their guardian),
//! the delegate, the hospital that recorded the guardianship, or (for a
//! recorded guardianship only) a regulator, whose ruling also ends the
//! minority at that block, even when the guardianship had already ended:
//! from then the patient decides alone.
//! R5.9 A delegate signs only `Grant`, `Revoke` and `AnswerConsentRequest`,
//! only for the delegation's patient, only while the delegation is active.
//!
//! **R6 Grant status** at time `t`: revoked or relinquished if ended;
//! otherwise pending before `not_before`, expired from `expires_at`, active
//! in between (see [`GrantRecord::status_at`]).
//!
//! **R7 Audit.**
//! R7.1 `AccessRequest` by a registered practitioner citing an existing grant
//! is authorised only if, at block time: the practitioner and institution are
//! active; the grant is active (R6); the requester is the grantee or belongs to the grantee
//! institution; every category is granted; the holder is named by the grant
//! and is an active member holding records; the purpose is the grant's. The
//! first failed check is the recorded denial reason. A request citing no
//! existing grant names no patient whose trail could hold it: it is rejected
//! (its id is still spent, R1).
//! R7.2 `AccessServed`: the holder (node or admin key) of an authorised
//! access, once; records the content hashes (salted per transfer by the
//! gateway, records rule 4; none when the holder has no
//! records of the patient in those categories) and whether the access's
//! basis still held (`grant_active`): a grant-based access's grant was
//! active, an emergency access was fetchable (R7.3); a release without it
//! is recorded all the same, flagged. The holder's gateway submits it with
//! the manifest and sends no content until it is committed, and none at all
//! if it is flagged: a release is on the ledger before any record leaves.
//! R7.3 `EmergencyAccess` is authorised for active practitioners whose role
//! genesis allows (`emergency.roles`: physicians in the example) at active
//! hospitals, and at internet hospitals only if genesis says so
//! (`emergency.internet_hospitals`: not in the example), for a registered
//! patient and an eligible holder; it stays flagged until reviewed. Its
//! records may be fetched only within `emergency.fetch_window_ms` of the
//! access (1 h in the example) and never once a review found it unjustified.
//! R7.4 `EmergencyReview`: a regulator other than the requester's
//! institution, once.
//! R7.5 `PublicHealthAccess` is authorised only for active public-health
//! officers of active public-health institutions, for a registered patient
//! and an eligible holder.
//! R7.6 `FetchRefused`: the holder (node or admin key) named in an access
//! records that it refused a registered practitioner's fetch citing it, at
//! most once per access and reason. The claim must fit the ledger:
//! `NotAuthorized` only if that practitioner is not the requester or the
//! access was denied; `GrantNotActive` only if the access's basis does not
//! hold at block time (a grant-based access's grant is not active, an
//! emergency access is past its fetch window or found unjustified, R7.2);
//! `AlreadyServed` is the holder's word (a replay may arrive while the
//! first transfer is still running).
//! R7.7 An authorised emergency access joins the review queue with its
//! deadline (its block time plus `emergency_review_days`). Before its
//! transactions, each block takes from the queue's head every access whose
//! deadline has passed (at most 1,000 a block) and, for each still
//! unreviewed, appends `EmergencyReviewOverdue` to the patient's trail (the
//! entry's transaction is the access's id): the patient, their delegates
//! and regulators see it when it happens, not only in a later replay.
//!
//! **R8 Audit log.** Every access decision (authorised or denied), release,
//! review, and every consent change appends exactly one entry per patient
//! concerned to the append-only audit log; its root and size go in the
//! block header.

use crate::crypto::PublicKey;
use crate::encoding::BoundedVec;
use crate::merkle::{self, Frontier};
use crate::records::*;
use crate::state::{Overlay, StateError, StateKey, StateReader, WriteSet};
use crate::transaction::*;
use crate::types::*;

/// The block a transaction is applied in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockContext {
    /// Height.
    pub height: u64,
    /// The proposer's time, checked by consensus.
    pub time: Timestamp,
}

impl BlockContext {
    fn block_ref(&self) -> BlockRef {
        BlockRef {
            height: self.height,
            time: self.time,
        }
    }
}

/// Why applying stopped: a rejection of the transaction, or a storage failure.
enum Stop {
    Reject(Rejection),
    Storage(StateError),
}

impl From<StateError> for Stop {
    fn from(error: StateError) -> Self {
        Self::Storage(error)
    }
}

impl From<Rejection> for Stop {
    fn from(rejection: Rejection) -> Self {
        Self::Reject(rejection)
    }
}

type Step<T> = Result<T, Stop>;

fn reject<T>(rejection: Rejection) -> Step<T> {
    Err(Stop::Reject(rejection))
}

fn not_permitted<T>(why: &str) -> Step<T> {
    reject(Rejection::NotPermitted(why.to_string()))
}

fn not_found<T>(what: &str) -> Step<T> {
    reject(Rejection::NotFound(what.to_string()))
}

/// What a successful application produced.
struct Effect {
    outcome: Outcome,
    events: Vec<(PatientId, AuditEvent)>,
}

impl Effect {
    fn applied() -> Self {
        Self {
            outcome: Outcome::Applied,
            events: Vec::new(),
        }
    }

    fn with(outcome: Outcome, patient: PatientId, event: AuditEvent) -> Self {
        Self {
            outcome,
            events: vec![(patient, event)],
        }
    }
}

/// The result of executing a block.
#[derive(Debug)]
pub struct BlockExecution {
    /// One receipt per transaction, in order.
    pub receipts: Vec<Receipt>,
    /// Every state write of the block.
    pub writes: WriteSet,
    /// The audit entries appended, in order.
    pub audit_entries: Vec<AuditEntry>,
    /// The audit log's root after the block.
    pub audit_root: crate::encoding::Hash32,
    /// The audit log's size after the block.
    pub audit_size: u64,
    /// The RFC 6962 root over the block's transaction ids.
    pub transaction_root: crate::encoding::Hash32,
    /// The validator set in force at this block's height.
    pub validator_set: ValidatorSet,
}

/// The RFC 6962 root over transaction ids (leaf data: the 32 id bytes).
pub fn transaction_root(ids: &[TxHash]) -> crate::encoding::Hash32 {
    let leaves: Vec<_> = ids.iter().map(|id| merkle::leaf_hash(&id.0.0)).collect();
    merkle::root(&leaves)
}

/// Executes a block's transactions on top of `base`.
///
/// Storage errors abort the whole block; no transaction's outcome can make
/// this fail.
pub fn execute_block(
    base: &dyn StateReader,
    ctx: &BlockContext,
    transactions: &[VerifiedTransaction],
) -> Result<BlockExecution, StateError> {
    let mut block = Overlay::new(base);
    let validator_set = promote_validator_set(&mut block, ctx.height)?;
    let mut frontier: Frontier = block.get(&StateKey::AuditLog)?.unwrap_or_default();
    let start_size = frontier.size();
    let mut receipts = Vec::with_capacity(transactions.len());
    let mut audit_entries = Vec::new();
    overdue_reviews(&mut block, ctx, &mut frontier, &mut audit_entries)?;
    for tx in transactions {
        receipts.push(apply_one(
            &mut block,
            tx,
            ctx,
            &mut frontier,
            &mut audit_entries,
        )?);
    }
    if frontier.size() != start_size {
        block.put(&StateKey::AuditLog, &frontier);
    }
    let ids: Vec<TxHash> = transactions.iter().map(VerifiedTransaction::id).collect();
    Ok(BlockExecution {
        receipts,
        writes: block.into_writes(),
        audit_root: frontier.root(),
        audit_size: frontier.size(),
        audit_entries,
        transaction_root: transaction_root(&ids),
        validator_set,
    })
}

/// [R4.10] Makes a scheduled validator set current once its height is reached.
fn promote_validator_set(block: &mut Overlay<'_>, height: u64) -> Result<ValidatorSet, StateError> {
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

/// Most overdue emergency reviews one block reports (the rest follow in
/// the next blocks), so that a backlog cannot make one block's work unbounded.
const OVERDUE_REVIEWS_PER_BLOCK: u64 = 1_000;

/// [R7.7] At the start of a block, every authorised emergency access whose
/// review deadline has passed with no review becomes an audit entry in the
/// patient's trail. The queue is in authorisation order; its head is taken
/// while its deadline has passed (a later shortening of
/// `emergency_review_days` may delay a place until those before it are due).
fn overdue_reviews(
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
        // The place stays in state (state never deletes, rule 1); the head
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
            frontier.push(entry.leaf_hash());
            audit_entries.push(entry);
        }
    }
    if queue.head != start {
        block.put(&StateKey::ReviewQueue, &queue);
    }
    Ok(())
}

/// [R7.7] Puts an authorised emergency access in the review queue.
fn queue_review(st: &mut Overlay<'_>, request: RequestId, ctx: &BlockContext) -> Step<()> {
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

/// Applies one transaction inside a block overlay.
fn apply_one(
    block: &mut Overlay<'_>,
    tx: &VerifiedTransaction,
    ctx: &BlockContext,
    frontier: &mut Frontier,
    audit_entries: &mut Vec<AuditEntry>,
) -> Result<Receipt, StateError> {
    let id = tx.id();
    // [R1]
    if block
        .get::<u64>(&StateKey::CommittedTransaction(id))?
        .is_some()
    {
        return Ok(Receipt {
            tx: id,
            outcome: Outcome::Rejected(Rejection::Duplicate),
            audit_indexes: Vec::new(),
        });
    }
    let mut scratch = Overlay::new(&*block);
    let result = apply_transaction(&mut scratch, tx, ctx);
    let writes = scratch.into_writes();
    let receipt = match result {
        Ok(effect) => {
            block.absorb(writes);
            let mut audit_indexes = Vec::new();
            for (patient, event) in effect.events {
                // [R8]
                let entry = AuditEntry {
                    index: frontier.size(),
                    at: ctx.block_ref(),
                    tx: id,
                    patient,
                    event,
                };
                frontier.push(entry.leaf_hash());
                audit_indexes.push(entry.index);
                audit_entries.push(entry);
            }
            Receipt {
                tx: id,
                outcome: effect.outcome,
                audit_indexes,
            }
        }
        Err(Stop::Reject(rejection)) => Receipt {
            tx: id,
            outcome: Outcome::Rejected(rejection),
            audit_indexes: Vec::new(),
        },
        Err(Stop::Storage(error)) => return Err(error),
    };
    block.put(&StateKey::CommittedTransaction(id), &ctx.height);
    Ok(receipt)
}

/// Who signed, once [R2] has been checked.
enum Actor {
    Patient(PatientId, PatientRecord),
    Delegate(DelegationRecord),
    Practitioner(PractitionerId, PractitionerRecord),
    Institution(InstitutionId, InstitutionRecord),
    InstitutionNode(InstitutionId),
    /// The signer of `RegisterPatient`, not yet in state.
    NewPatient(PatientId, PublicKey),
}

fn resolve_signer(st: &Overlay<'_>, tx: &VerifiedTransaction, ctx: &BlockContext) -> Step<Actor> {
    let key = tx.public_key();
    let check_key = |current: &PublicKey| {
        if current == key {
            Ok(())
        } else {
            reject(Rejection::KeyMismatch)
        }
    };
    match &tx.transaction().signer {
        Signer::Patient(id) => {
            if matches!(tx.transaction().payload, Payload::RegisterPatient) {
                if PatientId::from_key(key) != *id {
                    return not_permitted("a patient registers with the id derived from their key");
                }
                return Ok(Actor::NewPatient(*id, *key));
            }
            let mut record: PatientRecord = st
                .get(&StateKey::Patient(*id))?
                .ok_or(Rejection::UnknownSigner)?;
            check_key(record.key_at(ctx.time))?;
            // What is written back is what is in force now [R4.2] [R4.3].
            record.settle(ctx.time);
            Ok(Actor::Patient(*id, record))
        }
        Signer::Delegate(delegation) => {
            let record: DelegationRecord = st
                .get(&StateKey::Delegation(*delegation))?
                .ok_or(Rejection::UnknownSigner)?;
            let delegate: PatientRecord = st
                .get(&StateKey::Patient(record.delegate))?
                .ok_or(Rejection::UnknownSigner)?;
            check_key(delegate.key_at(ctx.time))?;
            if !record.is_active_at(ctx.time) {
                return reject(Rejection::DelegationNotActive);
            }
            Ok(Actor::Delegate(record))
        }
        Signer::Practitioner(id) => {
            let record: PractitionerRecord = st
                .get(&StateKey::Practitioner(*id))?
                .ok_or(Rejection::UnknownSigner)?;
            check_key(&record.key)?;
            Ok(Actor::Practitioner(*id, record))
        }
        Signer::Institution(id) | Signer::InstitutionNode(id) => {
            let record: InstitutionRecord = st
                .get(&StateKey::Institution(id.clone()))?
                .ok_or(Rejection::UnknownSigner)?;
            let node = matches!(tx.transaction().signer, Signer::InstitutionNode(_));
            check_key(if node {
                &record.spec.node_key
            } else {
                &record.spec.admin_key
            })?;
            // [R3]
            if record.status != MemberStatus::Active {
                return reject(Rejection::SignerNotActive);
            }
            Ok(if node {
                Actor::InstitutionNode(id.clone())
            } else {
                Actor::Institution(id.clone(), record)
            })
        }
    }
}

/// Applies a verified transaction to `st` (a scratch overlay the caller
/// discards on rejection).
fn apply_transaction(
    st: &mut Overlay<'_>,
    tx: &VerifiedTransaction,
    ctx: &BlockContext,
) -> Step<Effect> {
    let actor = resolve_signer(st, tx, ctx)?;
    let id = tx.id();
    // [R5.9] Delegates sign only patient consent decisions.
    if let Actor::Delegate(_) = actor
        && !matches!(
            tx.transaction().payload,
            Payload::Grant(_) | Payload::Revoke { .. } | Payload::AnswerConsentRequest { .. }
        )
    {
        return not_permitted("a delegate may only grant, revoke and answer consent requests");
    }
    match &tx.transaction().payload {
        Payload::RegisterPatient => register_patient(st, actor, ctx),
        Payload::SetRecoveryPolicy {
            delegates,
            threshold,
        } => set_recovery(st, actor, delegates, *threshold, ctx),
        Payload::ApproveRecovery {
            patient, new_key, ..
        } => approve_recovery(st, actor, *patient, *new_key, ctx),
        Payload::CancelControlChange { key, contacts } => {
            cancel_control_change(st, actor, *key, *contacts, ctx)
        }
        Payload::RotateKey { role, new_key, .. } => rotate_key(st, actor, *role, *new_key, ctx),
        Payload::RegisterPractitioner {
            key,
            role,
            licence_hash,
            ..
        } => {
            let Actor::Institution(institution, _) = actor else {
                return not_permitted("only an institution's admin key registers practitioners");
            };
            let practitioner = PractitionerId::from_key(key);
            if st
                .get::<PractitionerRecord>(&StateKey::Practitioner(practitioner))?
                .is_some()
            {
                return reject(Rejection::AlreadyExists("practitioner".into()));
            }
            // [R4.5]
            st.put(
                &StateKey::Practitioner(practitioner),
                &PractitionerRecord {
                    institution,
                    key: *key,
                    role: *role,
                    licence_hash: *licence_hash,
                    status: MemberStatus::Active,
                },
            );
            Ok(Effect::applied())
        }
        Payload::RetirePractitioner { practitioner } => {
            let Actor::Institution(institution, _) = actor else {
                return not_permitted("only an institution's admin key retires practitioners");
            };
            let mut record: PractitionerRecord = st
                .get(&StateKey::Practitioner(*practitioner))?
                .ok_or(Rejection::NotFound("practitioner".into()))?;
            // [R4.6]
            if record.institution != institution {
                return not_permitted("a practitioner is retired by their own institution");
            }
            if record.status == MemberStatus::Removed {
                return reject(Rejection::AlreadyDone(
                    "practitioner already retired".into(),
                ));
            }
            record.status = MemberStatus::Removed;
            st.put(&StateKey::Practitioner(*practitioner), &record);
            Ok(Effect::applied())
        }
        Payload::RecordGuardianship {
            patient,
            guardian,
            minor_until,
            evidence_hash,
            patient_consent,
        } => {
            let guardianship = Guardianship {
                patient: *patient,
                guardian: *guardian,
                minor_until: *minor_until,
                evidence_hash: *evidence_hash,
                patient_consent: *patient_consent,
            };
            let recorder = &tx.transaction().signer;
            record_guardianship(st, actor, id, &guardianship, tx.chain(), recorder, ctx)
        }
        Payload::Propose { action, expires_at } => propose(st, actor, id, action, *expires_at, ctx),
        Payload::Vote { proposal, approve } => vote(st, actor, *proposal, *approve, ctx),
        Payload::Grant(terms) => {
            consent_patient(st, &actor, &terms.patient, ctx, true)?;
            check_grantable(st, terms, ctx)?;
            let by = tx.transaction().signer.clone();
            st.put(
                &StateKey::Grant(id),
                &GrantRecord {
                    terms: terms.clone(),
                    granted_by: by,
                    granted_at: ctx.block_ref(),
                    answers: None,
                    ended: None,
                },
            );
            Ok(Effect::with(
                Outcome::Applied,
                terms.patient,
                AuditEvent::Granted { grant: id },
            ))
        }
        Payload::Revoke { grant } => {
            let mut record: GrantRecord = st
                .get(&StateKey::Grant(*grant))?
                .ok_or(Rejection::NotFound("grant".into()))?;
            // [R5.2] A minor may withdraw consent in person.
            consent_patient(st, &actor, &record.terms.patient, ctx, false)?;
            if record.ended.is_some() {
                return reject(Rejection::AlreadyDone("grant already ended".into()));
            }
            record.ended = Some(GrantEnd::Revoked {
                at: ctx.block_ref(),
                by: tx.transaction().signer.clone(),
            });
            st.put(&StateKey::Grant(*grant), &record);
            Ok(Effect::with(
                Outcome::Applied,
                record.terms.patient,
                AuditEvent::Revoked { grant: *grant },
            ))
        }
        Payload::Relinquish { grant } => relinquish(st, actor, *grant, ctx),
        Payload::RequestConsent(terms) => request_consent(st, actor, id, terms, tx, ctx),
        Payload::AnswerConsentRequest { request, approve } => {
            answer_consent(st, actor, id, *request, *approve, tx, ctx)
        }
        Payload::Delegate {
            delegate,
            role,
            expires_at,
        } => delegate_to(st, actor, id, *delegate, *role, *expires_at, ctx),
        Payload::EndDelegation { delegation } => end_delegation(st, actor, *delegation, ctx),
        Payload::AccessRequest {
            grant,
            holder,
            categories,
            purpose,
        } => access_request(st, actor, id, *grant, holder, categories, *purpose, ctx),
        Payload::AccessServed {
            request,
            content_hashes,
        } => access_served(st, actor, *request, content_hashes, ctx),
        Payload::FetchRefused {
            request,
            practitioner,
            reason,
        } => fetch_refused(st, actor, *request, *practitioner, *reason, ctx),
        Payload::EmergencyAccess {
            patient,
            holder,
            categories,
            reason,
        } => {
            let kind = AccessKind::Emergency {
                reason: *reason,
                review: None,
            };
            special_access(st, actor, id, *patient, holder, categories, kind, ctx)
        }
        Payload::EmergencyReview {
            access,
            finding,
            record_hash,
        } => emergency_review(st, actor, *access, *finding, *record_hash, ctx),
        Payload::PublicHealthAccess {
            patient,
            holder,
            categories,
            legal_basis,
            case_hash,
        } => {
            let kind = AccessKind::PublicHealth {
                legal_basis: *legal_basis,
                case_hash: *case_hash,
            };
            special_access(st, actor, id, *patient, holder, categories, kind, ctx)
        }
    }
}

fn register_patient(st: &mut Overlay<'_>, actor: Actor, ctx: &BlockContext) -> Step<Effect> {
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

fn set_recovery(
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
fn control_change_time(st: &Overlay<'_>, ctx: &BlockContext) -> Step<Timestamp> {
    let params: LedgerParameters = st.get(&StateKey::Parameters)?.unwrap_or_default();
    Ok(Timestamp(
        ctx.time.0.saturating_add(params.control_change_delay_ms),
    ))
}

/// The audit entry for a change of who controls `patient`'s account.
fn control_changed(patient: PatientId, change: ControlChange, effective_at: Timestamp) -> Effect {
    Effect::with(
        Outcome::Applied,
        patient,
        AuditEvent::ControlChanged {
            change,
            effective_at,
        },
    )
}

fn approve_recovery(
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
fn cancel_control_change(
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

fn rotate_key(
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
        _ => return not_permitted("this signer cannot rotate this key"),
    }
    Ok(Effect::applied())
}

/// [R4.10] Schedules `next` to take effect after the change delay.
fn schedule_validator_set(
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

/// The terms of a `RecordGuardianship`.
struct Guardianship {
    patient: PatientId,
    guardian: PatientId,
    minor_until: Timestamp,
    evidence_hash: crate::encoding::Hash32,
    patient_consent: crate::crypto::Signature,
}

fn record_guardianship(
    st: &mut Overlay<'_>,
    actor: Actor,
    id: TxHash,
    g: &Guardianship,
    chain: &crate::types::ChainId,
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
    let consents = minor
        .key_at(ctx.time)
        .prepare()
        .and_then(|key| key.verify(&message, &g.patient_consent));
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

/// Whether `action` can be carried out now; returns the new validator set if it changes one.
fn check_action(st: &Overlay<'_>, action: &GovernanceAction) -> Step<Option<ValidatorSet>> {
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
    }
}

/// Carries out a carried proposal's action.
fn execute_action(st: &mut Overlay<'_>, action: &GovernanceAction, ctx: &BlockContext) -> Step<()> {
    let new_set = check_action(st, action)?;
    match action {
        GovernanceAction::Admit(spec) => {
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
    }
    if let Some(set) = new_set {
        let mut sets: ValidatorSetRecord = st.get(&StateKey::ValidatorSet)?.unwrap_or_default();
        schedule_validator_set(st, &mut sets, set, ctx)?;
    }
    Ok(())
}

fn current_validator(
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
fn tally(
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

fn propose(
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

fn vote(
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

/// Checks that `actor` may make consent decisions for `patient` [R5.1, R5.2,
/// R5.5, R5.6, R5.9]; `needs_adult` is true for decisions a minor cannot make.
fn consent_patient(
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

/// [R5.1] The grantee and holders exist and the period is acceptable.
fn check_grantable(st: &Overlay<'_>, terms: &GrantTerms, ctx: &BlockContext) -> Step<()> {
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

fn relinquish(
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

/// The active practitioner and their active institution, or why not [R3].
fn active_practitioner(
    st: &Overlay<'_>,
    record: &PractitionerRecord,
) -> Step<Result<InstitutionRecord, DenialReason>> {
    let institution: InstitutionRecord = st
        .get(&StateKey::Institution(record.institution.clone()))?
        .ok_or(Rejection::NotFound("practitioner's institution".into()))?;
    if record.status != MemberStatus::Active {
        return Ok(Err(DenialReason::RequesterNotActive));
    }
    if institution.status != MemberStatus::Active {
        return Ok(Err(DenialReason::InstitutionNotActive));
    }
    Ok(Ok(institution))
}

fn request_consent(
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
            if active_practitioner(st, record)?.is_err() {
                return reject(Rejection::SignerNotActive);
            }
            let ok = match grantee {
                Grantee::Practitioner(g) => g == pid,
                Grantee::Institution(g) => *g == record.institution,
            };
            if !ok {
                return not_permitted("a practitioner asks for themselves or their institution");
            }
        }
        (Actor::Institution(iid, _), Grantee::Institution(g)) if g == iid => {}
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

fn answer_consent(
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

fn delegate_to(
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

fn end_delegation(
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

/// Whether `holder` is an active member that holds records.
fn holder_eligible(st: &Overlay<'_>, holder: &InstitutionId) -> Step<bool> {
    let record: Option<InstitutionRecord> = st.get(&StateKey::Institution(holder.clone()))?;
    Ok(record.is_some_and(|r| r.status == MemberStatus::Active && r.spec.kind.holds_records()))
}

/// [R7.1] The decision on an ordinary request.
#[allow(clippy::too_many_arguments)]
fn decide_request(
    st: &Overlay<'_>,
    requester: PractitionerId,
    practitioner: &PractitionerRecord,
    grant: &GrantRecord,
    holder: &InstitutionId,
    categories: &[Category],
    purpose: Purpose,
    ctx: &BlockContext,
) -> Step<Decision> {
    if let Err(reason) = active_practitioner(st, practitioner)? {
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
fn access_request(
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
fn record_access(st: &mut Overlay<'_>, id: TxHash, record: AccessRecord) -> Step<Effect> {
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
fn special_access(
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
    let decision = match active_practitioner(st, &practitioner)? {
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

fn access_served(
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
    let mut record: AccessRecord = st
        .get(&StateKey::Access(request))?
        .ok_or(Rejection::NotFound("access".into()))?;
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
    let content_count = u32::try_from(content_hashes.len()).unwrap_or(u32::MAX);
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

/// Whether what an authorised access rests on still holds at block time
/// [R7.2] [R7.6]: a grant-based access's grant is active; an emergency
/// access is within its fetch window and not found unjustified [R7.3];
/// a public-health access rests on the law and always holds.
fn basis_holds(st: &Overlay<'_>, record: &AccessRecord, ctx: &BlockContext) -> Step<bool> {
    Ok(match &record.kind {
        AccessKind::Grant { grant, .. } => st
            .get::<GrantRecord>(&StateKey::Grant(*grant))?
            .is_some_and(|g| g.status_at(ctx.time) == GrantStatus::Active),
        AccessKind::Emergency { .. } => {
            let params: LedgerParameters = st.get(&StateKey::Parameters)?.unwrap_or_default();
            record
                .emergency_fetchable_at(ctx.time, &params.emergency)
                .unwrap_or(false)
        }
        AccessKind::PublicHealth { .. } => true,
    })
}

fn fetch_refused(
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

fn emergency_review(
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

/// A practitioner present at genesis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenesisPractitioner {
    /// Their institution.
    pub institution: InstitutionId,
    /// Their key.
    pub key: PublicKey,
    /// Their role.
    pub role: PractitionerRole,
    /// Hash of their licence number.
    pub licence_hash: crate::encoding::Hash32,
}

/// Why a genesis state could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenesisStateError {
    /// Two entries share an id.
    #[error("duplicate {0}")]
    Duplicate(String),
    /// An entry refers to something missing or unsuitable.
    #[error("{0}")]
    Invalid(String),
}

/// The state at height 0: parameters, founding institutions, validator set
/// and initial practitioners.
pub fn genesis_writes(
    parameters: &LedgerParameters,
    institutions: &[InstitutionSpec],
    practitioners: &[GenesisPractitioner],
) -> Result<WriteSet, GenesisStateError> {
    let empty = crate::state::MemoryStore::default();
    let mut st = Overlay::new(&empty);
    let invalid = |why: String| GenesisStateError::Invalid(why);
    let mut seen = std::collections::BTreeSet::new();
    for spec in institutions {
        if !seen.insert(spec.id.clone()) {
            return Err(GenesisStateError::Duplicate(format!(
                "institution id {}",
                spec.id
            )));
        }
    }
    for spec in institutions {
        if let InstitutionKind::InternetHospital { parent } = &spec.kind
            && !institutions
                .iter()
                .any(|p| &p.id == parent && p.kind == InstitutionKind::Hospital)
        {
            return Err(invalid(format!(
                "internet hospital {} names parent {parent}, which is not a hospital here",
                spec.id
            )));
        }
        if spec.voting_power > crate::constants::VOTING_POWER_MAX {
            return Err(invalid(format!(
                "institution {} has voting power above {}",
                spec.id,
                crate::constants::VOTING_POWER_MAX
            )));
        }
        st.put(
            &StateKey::Institution(spec.id.clone()),
            &InstitutionRecord {
                spec: spec.clone(),
                status: MemberStatus::Active,
                admitted_at: 0,
            },
        );
    }
    let mut validators: Vec<Validator> = institutions
        .iter()
        .filter(|s| s.voting_power > 0)
        .map(|s| Validator {
            institution: s.id.clone(),
            node_key: s.node_key,
            power: s.voting_power,
        })
        .collect();
    validators.sort_by(|a, b| a.institution.cmp(&b.institution));
    let validators = BoundedVec::new(validators).map_err(|v| {
        invalid(format!(
            "{} validators, more than {}",
            v.len(),
            crate::constants::VALIDATORS_MAX
        ))
    })?;
    let set = ValidatorSet { validators };
    if set.total_power() == 0 {
        return Err(invalid(
            "no institution has voting power: a chain needs validators".into(),
        ));
    }
    st.put(
        &StateKey::ValidatorSet,
        &ValidatorSetRecord {
            current: set,
            scheduled: None,
        },
    );
    let mut seen_practitioners = std::collections::BTreeSet::new();
    for p in practitioners {
        let id = PractitionerId::from_key(&p.key);
        if !seen_practitioners.insert(id) {
            return Err(GenesisStateError::Duplicate(format!(
                "practitioner key {:?}",
                p.key
            )));
        }
        if !institutions.iter().any(|i| i.id == p.institution) {
            return Err(invalid(format!(
                "practitioner {id} names unknown institution {}",
                p.institution
            )));
        }
        st.put(
            &StateKey::Practitioner(id),
            &PractitionerRecord {
                institution: p.institution.clone(),
                key: p.key,
                role: p.role,
                licence_hash: p.licence_hash,
                status: MemberStatus::Active,
            },
        );
    }
    st.put(&StateKey::Parameters, parameters);
    Ok(st.into_writes())
}
