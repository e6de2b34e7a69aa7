//! The state machine: `apply(state, transaction, block context) -> receipt`.
//!
//! Every rule below is cited in the code as `[Rn]`. Tests name the rule they
//! check.
//!
//! **R1 Replay.** A block at time `t` takes a transaction only if
//! `t ≤ valid_until ≤ t + tx_validity_window_ms` (genesis); one outside that
//! is rejected as `Expired` or `ValidTooLong` and writes nothing. A
//! transaction whose id is in state is rejected as `Duplicate` and writes
//! nothing. Any other transaction, whatever its outcome, records its id with
//! its height. A block's ids are deleted from state, in block order, no earlier than the first block whose
//! time is past the latest `valid_until` among them (a block's ids wait for those of earlier blocks; at
//! most 40,000 ids per block and then the rest of one block's): none of them
//! can be taken again by then, as every later block is past its
//! `valid_until`. The id covers the signing key (a copy signed with another
//! key is another transaction, which cannot use up the first one's id).
//!
//! **R2 Signer.** The signer must exist and the signing key must be its
//! current key: a patient's, a practitioner's, an institution's admin key, or
//! its node key. A `Delegate` signer signs with the delegate's own current
//! patient key under a delegation active at block time. Exception:
//! `RegisterPatient`, whose signer id must be the hash of the signing key.
//!
//! **R3 Status.** Institutions must be active to sign anything. Practitioners
//! must be active, and their institution too, and, where genesis asks for
//! attested licences, to ask for consent or access their licence must be
//! in force (R4.14); for access
//! transactions a practitioner or institution that is not active gets a
//! recorded *denial* rather than a rejection, so the attempt is audited.
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
//! node key takes effect in the validator set after the change delay. Role
//! `InstitutionTransport` (admin key; only on a chain whose nodes have
//! transport keys, `sm2-sm3`) replaces the node's network identity at once:
//! it signs nothing consensus counts. A patient's rotation is audited in the patient's trail.
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
//! valid now; the proposer's vote counts for it. An admission may not name a
//! transport key any institution has named (nor may a rotation, R4.4): on
//! `sm2-sm3` one network identity never stands for two members. (On
//! `ed25519-sha256` the node key is the identity and is not indexed: an
//! admission naming another member's node key is the voters' to refuse.)
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
//! R4.12 `AttestLicence`: an active regulator's admin key attests a
//! practitioner's licence, named by the salted hash of its number: its kind,
//! scopes of practice, the member institutions (not removed, one to eight)
//! where it may be used, the registrations it binds (practitioners
//! registered under that hash by one of those institutions), and its
//! validity, which must end in the future. Attesting a licence again
//! replaces its terms (a renewal, a new place of practice, a new
//! registration bound) and keeps its status; only the regulator that
//! attested it may (any regulator, once that one is no longer an active
//! member), and a revoked licence cannot be attested again.
//! R4.13 `SetLicenceStatus`: any active regulator suspends an active
//! licence or revokes a licence, which is final; only the regulator that
//! suspended it lifts a suspension (any regulator, once that one is no
//! longer an active member).
//! R4.14 Where genesis sets `practitioner_licences` to `attested`, a
//! practitioner acts (requests consent or access, breaks the glass, uses
//! public-health access) only while the licence their registration names
//! is attested by a regulator that is still an active member, active,
//! within its validity, of the kind their role needs (a public-health or
//! records post for those officers), names their institution and binds
//! their registration: from the first block where that stops holding they
//! are refused (`LicenceNotInForce`) or, for accesses, denied with the
//! reason, and what they were authorised to fetch before no longer holds
//! (R7.2, R7.6). Under `declared`, their institution's word is enough.
//! R4.16 `AttestInstitution`: an active regulator's admin key attests a
//! member institution (not removed): the unified social credit code and the
//! practice licence reference it checked, which must be those the member was
//! admitted with (admission requires a reference of letters, digits and
//! '-'; the consortium corrects them by vote, R4.18), its licensed
//! services, and a validity that has begun by the block's time and ends in
//! the future. Attesting again (a renewal, an amendment) follows R4.12:
//! only the regulator that attested it while it is an active member, never
//! after a revocation. From the first attestation on, the institution's
//! practitioners act (R4.14's acts) and its admin key asks patients for
//! consent (R5.4) only while that licence is active and within its
//! validity, whatever `practitioner_licences` says; an internet hospital's
//! need its physical hospital's attested licence in force too, as they
//! practise under it. From the first block where that stops holding they
//! are refused or denied (`LicenceNotInForce`, naming the institution's
//! licence), and what was authorised before no longer holds (R7.2). An
//! institution no regulator attested acts on its admission alone.
//! R4.17 `SetInstitutionLicenceStatus`: as R4.13, for an institution's
//! attested licence: any active regulator suspends or revokes it (final);
//! only the regulator that suspended it lifts the suspension while it is an
//! active member.
//! R4.18 A carried `SetCodes { institution, legal_code, licence_ref }`
//! proposal (R4.9) sets a member's (not removed) unified social credit code
//! and practice licence reference anew, well formed as at admission. An
//! attestation vouches for the codes it names: from the block that sets
//! others, the member's practitioners stop as under R4.16
//! (`InstitutionCodesChanged`) until a regulator attests the new codes.
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
//! basis still held (`grant_active`): its requester could still act
//! (active, at an active institution and, under attested licences, on a
//! licence in force, R3, R4.14), and
//! a grant-based access's grant was active, an emergency access was
//! fetchable (R7.3); a release without it is recorded all the same, flagged. The holder's gateway submits it with
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
//! hold at block time (its requester can no longer act, a grant-based
//! access's grant is not active, an emergency access is past its fetch
//! window or found unjustified, R7.2);
//! `AlreadyServed` is the holder's word (a replay may arrive while the
//! first transfer is still running).
//! R7.7 An authorised emergency access joins the review queue with its
//! deadline (its block time plus `emergency_review_days`). Before its
//! transactions, each block takes from the queue's head every access whose
//! deadline has passed (at most 1,000 a block) and, for each still
//! unreviewed, appends `EmergencyReviewOverdue` to the patient's trail (the
//! entry's transaction is the access's id): the patient, their delegates
//! and regulators see it when it happens, not only in a later replay.
//! R7.8 `OwnRecordsRequest`: a patient, with their own current key (not a
//! delegate: a guardian holds a child's key) and no replacement of it
//! pending (R4.3), asks an active member that
//! holds records for their own records in some categories; it is recorded
//! with an audit entry in their trail (`OwnRecordsRequested`). Its release
//! is recorded by `AccessServed` as in R7.2, once, by the holder it names,
//! with `grant_active` always true (it rests on nothing that can lapse);
//! the holder's gateway serves it only to a fetch signed by the patient's
//! current key while no replacement of it is pending. No `FetchRefused`
//! cites it (it names no practitioner).
//!
//! **R8 Audit log.** Every access decision (authorised or denied), release,
//! review, and every consent change appends exactly one entry per patient
//! concerned to the append-only audit log; its root and size go in the
//! block header.

// One file per rule family; this one holds what every transaction goes
// through (R1-R3, the block's frame and the dispatch by payload).
mod access;
mod consent;
mod genesis;
mod governance;
mod licence;
mod membership;
mod recovery;
mod replay;

pub use genesis::{GenesisLicence, GenesisPractitioner, GenesisStateError, genesis_writes};

use self::access::*;
use self::consent::*;
pub use self::consent::{grant_carries_at, practitioner_may_act_at};
use self::governance::*;
use self::licence::*;
pub use self::licence::{institution_licence_problem_at, licence_problem_at};
use self::membership::*;
use self::recovery::*;
pub use self::replay::outside_window;
use self::replay::*;
use crate::crypto::PublicKey;
use crate::encoding::BoundedVec;
use crate::encoding::HashFunction;
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
    /// The chain's hash function (its suite's).
    pub hash: HashFunction,
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
    /// The RFC 6962 root over the block's signed transactions (rule 3).
    pub transaction_root: crate::encoding::Hash32,
    /// The validator set in force at this block's height.
    pub validator_set: ValidatorSet,
}

/// The RFC 6962 root over a block's transactions as signed (leaf data: the
/// 32 bytes of each one's [`SignedTransaction::signed_hash`]): it fixes
/// their signatures as well as their contents, so a block whose stored
/// signatures differ from those its validators checked has another root.
///
/// [`SignedTransaction::signed_hash`]: crate::transaction::SignedTransaction::signed_hash
pub fn transaction_root(
    hash: HashFunction,
    signed_hashes: &[crate::encoding::Hash32],
) -> crate::encoding::Hash32 {
    let leaves: Vec<_> = signed_hashes
        .iter()
        .map(|h| merkle::leaf_hash(hash, &h.0))
        .collect();
    merkle::root(hash, &leaves)
}

/// Every transaction verified for a chain hashing as the block does: a
/// caller mixing suites is a programming error, and a node that meets one
/// stops rather than compute ids and roots of two hash functions.
fn same_hash(ctx: &BlockContext, transactions: &[VerifiedTransaction]) -> Result<(), StateError> {
    match transactions.iter().find(|t| t.chain().hash() != ctx.hash) {
        None => Ok(()),
        Some(t) => Err(StateError::Storage(format!(
            "transaction {} was verified for a chain hashing with {}, the block hashes with {}",
            t.id().0,
            t.chain().hash().name(),
            ctx.hash.name()
        ))),
    }
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
    same_hash(ctx, transactions)?;
    let mut block = Overlay::new(base);
    let validator_set = promote_validator_set(&mut block, ctx.height)?;
    let mut frontier: Frontier = block.get(&StateKey::AuditLog)?.unwrap_or_default();
    let start_size = frontier.size();
    let mut receipts = Vec::with_capacity(transactions.len());
    let mut audit_entries = Vec::new();
    overdue_reviews(&mut block, ctx, &mut frontier, &mut audit_entries)?;
    forget_expired_ids(&mut block, ctx)?;
    let window = validity_window(&block)?;
    let mut committed = Vec::new();
    let mut expires_after = Timestamp(0);
    for tx in transactions {
        let receipt = apply_one(
            &mut block,
            tx,
            ctx,
            window,
            &mut frontier,
            &mut audit_entries,
        )?;
        if !receipt.outcome.leaves_no_trace() {
            committed.push(receipt.tx);
            expires_after = expires_after.max(tx.transaction().valid_until);
        }
        receipts.push(receipt);
    }
    queue_committed_ids(&mut block, committed, expires_after)?;
    if frontier.size() != start_size {
        block.put(&StateKey::AuditLog, &frontier);
    }
    let signed: Vec<_> = transactions
        .iter()
        .map(VerifiedTransaction::signed_hash)
        .collect();
    Ok(BlockExecution {
        receipts,
        writes: block.into_writes(),
        audit_root: frontier.root(ctx.hash),
        audit_size: frontier.size(),
        audit_entries,
        transaction_root: transaction_root(ctx.hash, &signed),
        validator_set,
    })
}

/// The outcome each transaction would have alone, first in the next block
/// on top of `base` — for each, exactly the outcome of `execute_block(base,
/// ctx, &[tx])` — with the block's set-up (validator-set promotion, overdue
/// reviews) done once: what a node asks before it takes a batch of clients'
/// transactions into its pool. No transaction sees another's effects (a
/// block orders its transactions by the pool's lanes, not by arrival, so
/// judging one on an earlier one's effects could admit what its block then
/// rejects). Nothing is kept.
pub fn try_each(
    base: &dyn StateReader,
    ctx: &BlockContext,
    transactions: &[VerifiedTransaction],
) -> Result<Vec<Outcome>, StateError> {
    same_hash(ctx, transactions)?;
    let mut block = Overlay::new(base);
    promote_validator_set(&mut block, ctx.height)?;
    let mut frontier: Frontier = block.get(&StateKey::AuditLog)?.unwrap_or_default();
    overdue_reviews(&mut block, ctx, &mut frontier, &mut Vec::new())?;
    // The ids the block would delete are left in place: they change no
    // outcome, as each of their transactions is past its `valid_until`.
    let window = validity_window(&block)?;
    transactions
        .iter()
        .map(|tx| {
            // [R1]
            if let Some(rejection) = outside_window(tx.transaction(), ctx.time, window) {
                return Ok(Outcome::Rejected(rejection));
            }
            if block
                .get::<u64>(&StateKey::CommittedTransaction(tx.id()))?
                .is_some()
            {
                return Ok(Outcome::Rejected(Rejection::Duplicate));
            }
            let mut scratch = Overlay::new(&block);
            match apply_transaction(&mut scratch, tx, ctx) {
                Ok(effect) => Ok(effect.outcome),
                Err(Stop::Reject(rejection)) => Ok(Outcome::Rejected(rejection)),
                Err(Stop::Storage(error)) => Err(error),
            }
        })
        .collect()
}

/// Applies one transaction inside a block overlay.
fn apply_one(
    block: &mut Overlay<'_>,
    tx: &VerifiedTransaction,
    ctx: &BlockContext,
    window: u64,
    frontier: &mut Frontier,
    audit_entries: &mut Vec<AuditEntry>,
) -> Result<Receipt, StateError> {
    let id = tx.id();
    // [R1]
    if let Some(rejection) = outside_window(tx.transaction(), ctx.time, window) {
        return Ok(Receipt {
            tx: id,
            outcome: Outcome::Rejected(rejection),
            audit_indexes: Vec::new(),
        });
    }
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
                frontier.push(ctx.hash, entry.leaf_hash(ctx.hash));
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
                if PatientId::from_key(ctx.hash, key) != *id {
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
            let practitioner = PractitionerId::from_key(ctx.hash, key);
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
        Payload::AttestLicence(terms) => attest_licence(st, actor, terms, ctx),
        Payload::SetLicenceStatus { licence, status } => {
            set_licence_status(st, actor, *licence, *status, ctx)
        }
        Payload::AttestInstitution(terms) => attest_institution(st, actor, terms, ctx),
        Payload::SetInstitutionLicenceStatus {
            institution,
            status,
        } => set_institution_licence_status(st, actor, institution, *status, ctx),
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
        Payload::OwnRecordsRequest { holder, categories } => {
            own_records_request(st, actor, id, holder, categories, ctx)
        }
    }
}
