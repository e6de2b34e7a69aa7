//! The records the state machine keeps, and what it reports back.
//!
//! Records are what [`crate::state::StateKey`] points at; receipts and audit
//! entries are what a transaction produces. None holds personal data: patients
//! and practitioners appear as pseudonymous ids only.

use serde::{Deserialize, Serialize};

use crate::constants::*;
use crate::crypto::PublicKey;
use crate::encoding::{BoundedVec, Hash32, HashFunction, tags};
use crate::merkle::Frontier;
use crate::transaction::{GovernanceAction, InstitutionSpec, Signer};
use crate::types::*;

/// Where in the ledger something happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockRef {
    /// Block height.
    pub height: u64,
    /// Block time.
    pub time: Timestamp,
}

/// A member institution.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstitutionRecord {
    /// What was admitted (keys are kept current here on rotation).
    pub spec: InstitutionSpec,
    /// Whether it may act.
    pub status: MemberStatus,
    /// Height of admission (0 for founders).
    pub admitted_at: u64,
}

/// A registered practitioner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PractitionerRecord {
    /// Their institution.
    pub institution: InstitutionId,
    /// Their current key.
    pub key: PublicKey,
    /// Their role.
    pub role: PractitionerRole,
    /// Hash of their licence number.
    pub licence_hash: Hash32,
    /// Whether they may act (`Removed` once retired).
    pub status: MemberStatus,
}

/// A group's members, as governance last set them [R4.15].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRecord {
    /// Its member institutions (sorted, no duplicates; empty once dissolved).
    pub members: BoundedVec<InstitutionId, GROUP_MEMBERS_MAX>,
    /// The block of the proposal that last set them.
    pub set_at: BlockRef,
}

/// A regulator's attestation of a practitioner's licence, by its hash [R4.12].
pub type LicenceRecord = Attestation<LicenceTerms>;

/// A regulator's attestation of a member institution's licence [R4.16].
pub type InstitutionLicenceRecord = Attestation<InstitutionLicenceTerms>;

/// A regulator's attestation of a licence's terms `T`, and the licence's
/// status since.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attestation<T> {
    /// What was attested, last.
    pub terms: T,
    /// The regulator that attested it last.
    pub attested_by: InstitutionId,
    /// When.
    pub attested_at: BlockRef,
    /// Whether a regulator suspended or revoked it.
    pub status: LicenceStatus,
    /// When its status last changed, and by which regulator.
    pub status_changed: Option<(BlockRef, InstitutionId)>,
}

/// Why a licence's status or validity stops its holder: the problem to
/// name for suspended, revoked, not yet valid and expired.
struct StopReasons([LicenceProblem; 4]);

impl<T> Attestation<T> {
    /// Whether its status and the validity `from..until` let it be used
    /// at `time`, or which of `reasons` stops it.
    fn usable(
        &self,
        (from, until): (Timestamp, Timestamp),
        time: Timestamp,
        StopReasons([suspended, revoked, not_yet, expired]): StopReasons,
    ) -> Result<(), LicenceProblem> {
        match self.status {
            LicenceStatus::Active => {}
            LicenceStatus::Suspended => return Err(suspended),
            LicenceStatus::Revoked => return Err(revoked),
        }
        if time < from {
            return Err(not_yet);
        }
        if time >= until {
            return Err(expired);
        }
        Ok(())
    }
}

impl InstitutionLicenceRecord {
    /// Whether it lets the institution's practitioners act at `time`, or
    /// why not [R4.16].
    pub fn in_force_at(&self, time: Timestamp) -> Result<(), LicenceProblem> {
        use LicenceProblem::*;
        let validity = (self.terms.valid_from, self.terms.valid_until);
        let reasons = [
            InstitutionSuspended,
            InstitutionRevoked,
            InstitutionNotYetValid,
            InstitutionExpired,
        ];
        self.usable(validity, time, StopReasons(reasons))
    }
}

impl LicenceRecord {
    /// Whether it lets a practitioner in `role` at `institution` act at
    /// `time`, or why not [R4.14].
    pub fn in_force_for(
        &self,
        practitioner: &PractitionerId,
        role: PractitionerRole,
        institution: &InstitutionId,
        time: Timestamp,
    ) -> Result<(), LicenceProblem> {
        use LicenceProblem::*;
        let validity = (self.terms.valid_from, self.terms.valid_until);
        let reasons = [Suspended, Revoked, NotYetValid, Expired];
        self.usable(validity, time, StopReasons(reasons))?;
        if self.terms.kind != role.licence_kind() {
            return Err(LicenceProblem::WrongKind);
        }
        if !self.terms.institutions.iter().any(|i| i == institution) {
            return Err(LicenceProblem::NotAtThisInstitution);
        }
        if !self.terms.practitioners.iter().any(|p| p == practitioner) {
            return Err(LicenceProblem::NotThisRegistration);
        }
        Ok(())
    }
}

/// Why a practitioner's licence does not let them act [R4.14].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum LicenceProblem {
    /// No regulator attested a licence with the registration's hash.
    #[error("no regulator attested this practitioner's licence")]
    NotAttested,
    /// A regulator suspended it.
    #[error("the practitioner's licence is suspended")]
    Suspended,
    /// A regulator revoked it.
    #[error("the practitioner's licence is revoked")]
    Revoked,
    /// Its validity has not begun.
    #[error("the practitioner's licence is not valid yet")]
    NotYetValid,
    /// Its validity is over.
    #[error("the practitioner's licence has expired")]
    Expired,
    /// It licenses another kind of practice than the practitioner's role.
    #[error("the practitioner's licence is not of the kind their role needs")]
    WrongKind,
    /// It does not name the practitioner's institution.
    #[error("the practitioner's licence does not name their institution")]
    NotAtThisInstitution,
    /// The regulator did not bind this registration to the licence.
    #[error("the regulator has not bound this registration to the practitioner's licence")]
    NotThisRegistration,
    /// The regulator that attested it is no longer an active member.
    #[error("the regulator that attested the practitioner's licence is not an active member")]
    AttesterNotActive,
    // --- their institution's licence [R4.16], appended ---
    /// A regulator suspended the licence of the practitioner's institution.
    #[error("the licence of the practitioner's institution is suspended")]
    InstitutionSuspended,
    /// A regulator revoked it.
    #[error("the licence of the practitioner's institution is revoked")]
    InstitutionRevoked,
    /// Its attested validity has not begun.
    #[error("the licence of the practitioner's institution is not valid yet")]
    InstitutionNotYetValid,
    /// Its attested validity is over.
    #[error("the licence of the practitioner's institution has expired")]
    InstitutionExpired,
    /// The consortium set the institution's codes anew since a regulator
    /// attested them [R4.18].
    #[error("the codes of the practitioner's institution changed since a regulator attested them")]
    InstitutionCodesChanged,
}

/// Who may recover a patient's account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryPolicy {
    /// The recovery delegates.
    pub delegates: BoundedVec<PatientId, RECOVERY_DELEGATES_MAX>,
    /// Approvals needed.
    pub threshold: u8,
}

/// A registered patient.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatientRecord {
    /// Their current key.
    pub key: PublicKey,
    /// When registered.
    pub registered_at: BlockRef,
    /// A minor until this time (recorded by a hospital with a guardian).
    pub minor_until: Option<Timestamp>,
    /// Who can recover the account.
    pub recovery: Option<RecoveryPolicy>,
    /// Recovery approvals so far: delegate and the key they approved.
    pub recovery_approvals: BoundedVec<(PatientId, PublicKey), RECOVERY_APPROVALS_MAX>,
    /// A new recovery policy waiting out the control-change delay [R4.2].
    pub pending_recovery: Option<Pending<RecoveryPolicy>>,
    /// A key approved by recovery contacts, waiting out the delay [R4.3].
    pub pending_key: Option<Pending<PublicKey>>,
}

/// A change of who controls a patient's account that takes effect only at
/// `effective_at`, so the current key can cancel it first [R4.11].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending<T> {
    /// What will take effect.
    pub value: T,
    /// From when (block time).
    pub effective_at: Timestamp,
}

impl PatientRecord {
    /// Whether the patient is a minor at `time`.
    pub fn is_minor_at(&self, time: Timestamp) -> bool {
        self.minor_until.is_some_and(|until| time < until)
    }

    /// The key that signs for the patient at `time`: a key approved by
    /// recovery contacts once its delay has passed, else the current one.
    pub fn key_at(&self, time: Timestamp) -> &PublicKey {
        match &self.pending_key {
            Some(pending) if pending.effective_at <= time => &pending.value,
            _ => &self.key,
        }
    }

    /// Whether a replacement of the key is scheduled but not yet in force
    /// at `time` (R4.3: the current key may still cancel it).
    pub fn key_change_pending_at(&self, time: Timestamp) -> bool {
        self.pending_key
            .as_ref()
            .is_some_and(|pending| pending.effective_at > time)
    }

    /// Moves every pending change whose delay has passed into place, so the
    /// record can be written back with what is in force at `time`.
    pub fn settle(&mut self, time: Timestamp) {
        if self
            .pending_key
            .as_ref()
            .is_some_and(|p| p.effective_at <= time)
        {
            self.key = self.pending_key.take().map(|p| p.value).unwrap_or(self.key);
        }
        if self
            .pending_recovery
            .as_ref()
            .is_some_and(|p| p.effective_at <= time)
        {
            self.recovery = self.pending_recovery.take().map(|p| p.value);
            // Approvals were for the contacts of the policy replaced.
            self.recovery_approvals = BoundedVec::default();
        }
    }
}

/// How a grant stopped being usable before it expired.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GrantEnd {
    /// Revoked by the patient or a delegate.
    Revoked {
        /// When.
        at: BlockRef,
        /// By whom.
        by: Signer,
    },
    /// Given up by the grantee.
    Relinquished {
        /// When.
        at: BlockRef,
    },
}

/// A grant as recorded; its terms never change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantRecord {
    /// The terms.
    pub terms: GrantTerms,
    /// Who signed it (the patient or a delegate).
    pub granted_by: Signer,
    /// When it was committed.
    pub granted_at: BlockRef,
    /// The consent request it answers, if any.
    pub answers: Option<ConsentRequestId>,
    /// How it ended early, if it did.
    pub ended: Option<GrantEnd>,
}

/// A grant's status, derived from the ledger and the block time (state-machine rule 6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GrantStatus {
    /// Not yet usable.
    Pending,
    /// Usable.
    Active,
    /// Past its expiry.
    Expired,
    /// Revoked by the patient or a delegate.
    Revoked,
    /// Given up by the grantee.
    Relinquished,
}

impl GrantStatus {
    /// Its stable name on the HTTP API.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
            Self::Relinquished => "relinquished",
        }
    }
}

impl GrantRecord {
    /// The status at `time`.
    pub fn status_at(&self, time: Timestamp) -> GrantStatus {
        match &self.ended {
            Some(GrantEnd::Revoked { .. }) => GrantStatus::Revoked,
            Some(GrantEnd::Relinquished { .. }) => GrantStatus::Relinquished,
            None if time < self.terms.not_before => GrantStatus::Pending,
            None if time >= self.terms.expires_at => GrantStatus::Expired,
            None => GrantStatus::Active,
        }
    }
}

/// A consent request and its answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentRequestRecord {
    /// The proposed terms.
    pub terms: GrantTerms,
    /// Who asked.
    pub requested_by: Signer,
    /// When.
    pub requested_at: BlockRef,
    /// The answer: approved or not, when, and the answering transaction
    /// (which is also the grant's id when approved).
    pub answer: Option<(bool, BlockRef, TxHash)>,
}

/// A guardian or proxy appointment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelegationRecord {
    /// For whom.
    pub patient: PatientId,
    /// Who acts.
    pub delegate: PatientId,
    /// In which role.
    pub role: DelegateRole,
    /// When it began.
    pub created_at: BlockRef,
    /// When it lapses.
    pub expires_at: Timestamp,
    /// The hospital that recorded a minor's guardianship, if that is how it began.
    pub recorded_by: Option<InstitutionId>,
    /// For a recorded guardianship, the hash of the evidence the hospital
    /// saw (e.g. of a birth certificate's number) [R4.7].
    pub evidence_hash: Option<Hash32>,
    /// When it was ended early.
    pub ended_at: Option<BlockRef>,
}

impl DelegationRecord {
    /// Whether it can be acted on at `time`.
    pub fn is_active_at(&self, time: Timestamp) -> bool {
        self.ended_at.is_none() && time < self.expires_at
    }
}

/// What kind of access, with its kind-specific facts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccessKind {
    /// An ordinary request under a grant.
    Grant {
        /// The grant cited.
        grant: GrantId,
        /// The stated purpose.
        purpose: Purpose,
    },
    /// Break-glass access.
    Emergency {
        /// Why.
        reason: EmergencyReason,
        /// The review, once made.
        review: Option<EmergencyReviewRecord>,
    },
    /// Mandated public-health access.
    PublicHealth {
        /// The law relied on.
        legal_basis: LegalBasis,
        /// Hash of the case reference.
        case_hash: Hash32,
    },
}

/// The review of an emergency access.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmergencyReviewRecord {
    /// Who reviewed.
    pub reviewer: InstitutionId,
    /// What they found.
    pub finding: ReviewFinding,
    /// Hash of their review record.
    pub record_hash: Hash32,
    /// When.
    pub at: BlockRef,
}

/// The contract's decision on an access.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Decision {
    /// Records may be released.
    Authorized,
    /// Nothing may be released, for this reason.
    Denied(DenialReason),
}

/// What a holder released for a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseRecord {
    /// When the release was recorded.
    pub at: BlockRef,
    /// The content hashes listed.
    pub content_hashes: BoundedVec<Hash32, CONTENT_HASHES_PER_RELEASE_MAX>,
    /// For a grant-based request: whether the grant was still active when the
    /// release was recorded (false means the patient revoked in between, and
    /// the audit shows it).
    pub grant_active_at_release: bool,
}

/// An access attempt and, once made, its release.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRecord {
    /// Whose records.
    pub patient: PatientId,
    /// Who asked.
    pub requester: PractitionerId,
    /// The requester's institution.
    pub requester_institution: InstitutionId,
    /// Who holds the records.
    pub holder: InstitutionId,
    /// Which categories.
    pub categories: Categories,
    /// What kind of access.
    pub kind: AccessKind,
    /// When asked.
    pub at: BlockRef,
    /// The decision.
    pub decision: Decision,
    /// The release, once recorded.
    pub release: Option<ReleaseRecord>,
}

/// A patient's request for their own records [R7.8] and, once made, its
/// release: no requester, decision or basis beyond the patient's own key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnAccessRecord {
    /// Whose records (and who asked).
    pub patient: PatientId,
    /// Who holds them.
    pub holder: InstitutionId,
    /// Which categories.
    pub categories: Categories,
    /// When asked.
    pub at: BlockRef,
    /// The release, once recorded.
    pub release: Option<ReleaseRecord>,
}

impl AccessRecord {
    /// Whether an emergency access's records may still be fetched at `time`
    /// [R7.3]: within the genesis fetch window from the access, and never
    /// once a review has found it unjustified. `None` for other kinds.
    pub fn emergency_fetchable_at(
        &self,
        time: Timestamp,
        policy: &EmergencyPolicy,
    ) -> Option<bool> {
        let AccessKind::Emergency { review, .. } = &self.kind else {
            return None;
        };
        let unjustified = review
            .as_ref()
            .is_some_and(|r| r.finding == ReviewFinding::Unjustified);
        let within = time.0 < self.at.time.0.saturating_add(policy.fetch_window_ms);
        Some(within && !unjustified)
    }
}

/// Where a proposal stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProposalStatus {
    /// Collecting votes.
    Open,
    /// Carried and executed at this height.
    Carried(u64),
    /// Defeated: the votes against make two thirds impossible.
    Defeated,
    /// Carried, but the action was no longer valid when it came to execute.
    Failed,
}

/// A governance proposal and its votes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposalRecord {
    /// The change.
    pub action: GovernanceAction,
    /// Who proposed.
    pub proposer: InstitutionId,
    /// When it lapses.
    pub expires_at: Timestamp,
    /// Votes: validator and for/against.
    pub votes: BoundedVec<(InstitutionId, bool), PROPOSAL_VOTES_MAX>,
    /// Where it stands.
    pub status: ProposalStatus,
}

/// One validator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validator {
    /// The institution running it.
    pub institution: InstitutionId,
    /// Its node key (signs votes and certificates).
    pub node_key: PublicKey,
    /// Its voting power.
    pub power: u64,
}

/// The validators at one height, sorted by institution id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidatorSet {
    /// The validators.
    pub validators: BoundedVec<Validator, VALIDATORS_MAX>,
}

impl ValidatorSet {
    /// Total voting power.
    pub fn total_power(&self) -> u64 {
        self.validators.iter().map(|v| v.power).sum()
    }

    /// A validator by institution.
    pub fn get(&self, institution: &InstitutionId) -> Option<&Validator> {
        self.validators
            .iter()
            .find(|v| &v.institution == institution)
    }

    /// The set's hash, as put in block headers, on a chain hashing with `hash`.
    pub fn hash(&self, hash: HashFunction) -> Hash32 {
        hash.hash_of(tags::VALIDATOR_SET, self)
    }

    /// Whether `power` is at least two thirds of the total.
    pub fn is_two_thirds(&self, power: u64) -> bool {
        u128::from(power) * 3 >= u128::from(self.total_power()) * 2
    }
}

/// The validator set in force and any change scheduled.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidatorSetRecord {
    /// In force now.
    pub current: ValidatorSet,
    /// Takes effect at the given height.
    pub scheduled: Option<(u64, ValidatorSet)>,
}

impl ValidatorSetRecord {
    /// The set in force at `height`, as far as this record knows.
    pub fn at(&self, height: u64) -> &ValidatorSet {
        match &self.scheduled {
            Some((from, set)) if height >= *from => set,
            _ => &self.current,
        }
    }
}

/// Parameters fixed at genesis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerParameters {
    /// Heights between a validator-set change being carried and taking effect.
    pub validator_change_delay_heights: u64,
    /// Days within which an emergency access should be reviewed (reports flag later ones).
    pub emergency_review_days: u32,
    /// Longest a grant may last, in days.
    pub grant_duration_days_max: u32,
    /// How long a change of a patient's recovery contacts, or a key replaced
    /// by those contacts, waits before it takes effect, in milliseconds
    /// (the patient's current key can cancel it meanwhile) [R4.2] [R4.3].
    pub control_change_delay_ms: u64,
    /// Who may break the glass, and for how long its records may be fetched [R7.3].
    pub emergency: EmergencyPolicy,
    /// How far ahead of a block's time a transaction's `valid_until` may
    /// be, in milliseconds: the ids of committed transactions are kept in
    /// state only this long after their block [R1].
    pub tx_validity_window_ms: u64,
    /// Whether practitioners act on their institution's word alone or on a
    /// regulator's attestation of their licence too [R4.14].
    pub practitioner_licences: LicencePolicy,
}

/// Who may make an emergency (break-glass) access, and how long after it
/// its records may be fetched [R7.3].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmergencyPolicy {
    /// The practitioner roles that may break the glass.
    pub roles: BoundedVec<PractitionerRole, EMERGENCY_ROLES_MAX>,
    /// Whether internet hospitals' practitioners may (most have no
    /// emergency care: a hospital's practitioners always may).
    pub internet_hospitals: bool,
    /// How long after the access its records may be fetched, in ms.
    pub fetch_window_ms: u64,
}

impl Default for EmergencyPolicy {
    fn default() -> Self {
        Self {
            roles: BoundedVec::new(vec![PractitionerRole::Physician]).unwrap_or_default(),
            internet_hospitals: false,
            fetch_window_ms: 3_600_000,
        }
    }
}

impl Default for LedgerParameters {
    fn default() -> Self {
        Self {
            validator_change_delay_heights: 2,
            emergency_review_days: 7,
            grant_duration_days_max: 3_650,
            control_change_delay_ms: 72 * 3_600_000,
            emergency: EmergencyPolicy::default(),
            tx_validity_window_ms: 2 * 3_600_000,
            practitioner_licences: LicencePolicy::Declared,
        }
    }
}

/// The audit log's state: how many entries and the frontier that gives the root.
pub type AuditLogState = Frontier;

/// Why an access was denied; the denial is recorded like an authorisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum DenialReason {
    /// The practitioner is retired or suspended.
    #[error("the requesting practitioner is not active")]
    RequesterNotActive,
    /// The practitioner's institution is suspended or removed.
    #[error("the requesting institution is not an active member")]
    InstitutionNotActive,
    /// The grant was revoked.
    #[error("the grant was revoked")]
    GrantRevoked,
    /// The grantee gave the grant up.
    #[error("the grant was relinquished")]
    GrantRelinquished,
    /// The grant's period has not begun.
    #[error("the grant is not valid yet")]
    GrantNotYetValid,
    /// The grant has expired.
    #[error("the grant has expired")]
    GrantExpired,
    /// The requester is not the grantee.
    #[error("the requester is not the grantee")]
    NotGrantee,
    /// A category asked for is not granted.
    #[error("a requested category is not covered by the grant")]
    CategoryNotGranted,
    /// The holder is not among the grant's holders.
    #[error("the holder is not named in the grant")]
    HolderNotGranted,
    /// The holder is not an active member that holds records.
    #[error("the holder is not an active member holding records")]
    HolderNotEligible,
    /// The stated purpose differs from the grant's.
    #[error("the stated purpose differs from the grant's")]
    PurposeMismatch,
    /// The requester's institution may not break the glass.
    #[error("this institution may not use emergency access")]
    EmergencyNotAllowed,
    /// The requester is not a public-health officer of a public-health institution.
    #[error(
        "only public-health officers of public-health institutions may use public-health access"
    )]
    NotPublicHealth,
    /// No patient has this id.
    #[error("no patient has this id")]
    UnknownPatient,
    /// Genesis asks for attested licences and the requester's is not in
    /// force (appended: earlier reasons keep their encodings) [R4.14].
    #[error("{0}")]
    LicenceNotInForce(LicenceProblem),
}

/// Why a transaction changed nothing but its own committed id (or, for
/// `Duplicate`, `Expired` and `ValidTooLong`, nothing at all: R1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Rejection {
    /// The same transaction was committed before.
    #[error("this transaction was already committed")]
    Duplicate,
    /// The signer does not exist.
    #[error("the signer is not registered")]
    UnknownSigner,
    /// The signing key is not the signer's current key.
    #[error("the signing key is not the signer's current key")]
    KeyMismatch,
    /// The signer (or its institution) is suspended, removed or retired.
    #[error("the signer is not active")]
    SignerNotActive,
    /// The delegation is ended or expired.
    #[error("the delegation is not active")]
    DelegationNotActive,
    /// The signer may not do this.
    #[error("the signer may not do this: {0}")]
    NotPermitted(String),
    /// The patient is a minor: a guardian must sign.
    #[error("the patient is a minor: a guardian must sign")]
    GuardianConsentRequired,
    /// Something referred to does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// Something to be created exists already.
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// The thing acted on is already finished (revoked, answered, served, reviewed, voted).
    #[error("already done: {0}")]
    AlreadyDone(String),
    /// A time given is already past, or too far ahead.
    #[error("bad time: {0}")]
    BadTime(String),
    /// A request not authorised cannot be served.
    #[error("the request was not authorised")]
    NotAuthorized,
    /// A governance action that cannot be carried out.
    #[error("invalid governance action: {0}")]
    InvalidAction(String),
    /// The block's time is past the transaction's `valid_until` (R1).
    #[error(
        "the transaction expired: it was valid until {} ms, and the time is {} ms",
        valid_until.0,
        block_time.0
    )]
    Expired {
        /// The transaction's `valid_until`.
        valid_until: Timestamp,
        /// The block's time.
        block_time: Timestamp,
    },
    /// The transaction's `valid_until` is further ahead of the block's time
    /// than the genesis `tx_validity_window_ms` allows (R1).
    #[error(
        "the transaction is valid for too long: until {} ms, where at most {} ms is allowed at this time",
        valid_until.0,
        latest.0
    )]
    ValidTooLong {
        /// The transaction's `valid_until`.
        valid_until: Timestamp,
        /// The latest `valid_until` this block accepts.
        latest: Timestamp,
    },
    /// Genesis asks for attested licences and the signer's is not in force
    /// [R4.14].
    #[error("{0}")]
    LicenceNotInForce(LicenceProblem),
}

impl Outcome {
    /// Whether the transaction left nothing in state, not even its id
    /// (R1): a copy of a committed transaction, or one outside its
    /// validity window. Such a receipt says what this block did with
    /// this copy; the id's receipt, if any, is another block's.
    pub fn leaves_no_trace(&self) -> bool {
        matches!(
            self,
            Self::Rejected(
                Rejection::Duplicate | Rejection::Expired { .. } | Rejection::ValidTooLong { .. }
            )
        )
    }
}

/// What happened to a committed transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Applied.
    Applied,
    /// An access request (or emergency / public-health access) was authorised.
    Authorized,
    /// An access request was denied; the denial is recorded.
    Denied(DenialReason),
    /// Nothing changed but the transaction's committed id.
    Rejected(Rejection),
}

/// The result of one transaction in a block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The transaction.
    pub tx: TxHash,
    /// What happened.
    pub outcome: Outcome,
    /// Indexes of the audit entries it appended.
    pub audit_indexes: Vec<u64>,
}

/// What an audit entry records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuditEvent {
    /// A grant was made.
    Granted {
        /// The grant.
        grant: GrantId,
    },
    /// A grant was revoked.
    Revoked {
        /// The grant.
        grant: GrantId,
    },
    /// A grant was given up.
    Relinquished {
        /// The grant.
        grant: GrantId,
    },
    /// Consent was asked for.
    ConsentRequested {
        /// The request.
        request: ConsentRequestId,
    },
    /// A consent request was answered.
    ConsentAnswered {
        /// The request.
        request: ConsentRequestId,
        /// Yes or no.
        approved: bool,
    },
    /// A guardian or proxy was appointed.
    DelegationStarted {
        /// The delegation.
        delegation: DelegationId,
        /// Role.
        role: DelegateRole,
    },
    /// A delegation was ended.
    DelegationEnded {
        /// The delegation.
        delegation: DelegationId,
    },
    /// An access was decided.
    AccessDecided {
        /// The access.
        request: RequestId,
        /// Requesting practitioner.
        requester: PractitionerId,
        /// Holder.
        holder: InstitutionId,
        /// Which kind: 0 grant, 1 emergency, 2 public health.
        kind: AccessKindTag,
        /// The decision.
        decision: Decision,
    },
    /// Records were released.
    Released {
        /// The access served.
        request: RequestId,
        /// Holder.
        holder: InstitutionId,
        /// How many resources.
        content_count: u32,
        /// Whether the grant was still active.
        grant_active: bool,
    },
    /// An emergency access was reviewed.
    EmergencyReviewed {
        /// The access.
        request: RequestId,
        /// The finding.
        finding: ReviewFinding,
    },
    /// A holder refused a fetch citing this access.
    FetchRefused {
        /// The access cited.
        request: RequestId,
        /// Holder.
        holder: InstitutionId,
        /// Whose signed fetch was refused.
        practitioner: PractitionerId,
        /// Why.
        reason: FetchRefusal,
    },
    /// Who controls the patient's account changed, or will at `effective_at`
    /// unless the current key cancels it [R4.2] [R4.3] [R4.4] [R4.11]. The
    /// patient's app shows these as warnings.
    ControlChanged {
        /// What changed.
        change: ControlChange,
        /// When it takes (or took) effect.
        effective_at: Timestamp,
    },
    /// An authorised emergency access reached its review deadline with no
    /// review [R7.7]: written by the first block at or after the deadline,
    /// whoever proposes it (the entry's `tx` is the access's id).
    EmergencyReviewOverdue {
        /// The access.
        request: RequestId,
        /// The institution whose practitioner broke the glass.
        requester_institution: InstitutionId,
        /// The deadline that passed.
        deadline: Timestamp,
    },
    /// The patient asked a holder for their own records [R7.8] (appended
    /// last so earlier events keep their encodings).
    OwnRecordsRequested {
        /// The request.
        request: RequestId,
        /// Who holds them.
        holder: InstitutionId,
    },
}

/// The emergency accesses awaiting their review deadline, in the order
/// they were authorised: places `head..tail` are `StateKey::ReviewDue`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewQueue {
    /// The first place still waiting.
    pub head: u64,
    /// The next place to fill.
    pub tail: u64,
}

/// The committed transactions' ids kept against replay, in the order their
/// blocks were committed: places `head..tail` are
/// `StateKey::ExpiringIds` [R1].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpiryQueue {
    /// The oldest place still kept.
    pub head: u64,
    /// The next place to fill.
    pub tail: u64,
}

/// The ids one block committed, deleted from state (with their
/// `StateKey::CommittedTransaction` markers) once a block's time is past
/// `expires_after` [R1].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpiringIds {
    /// The latest `valid_until` among them: no block after this time can
    /// commit any of them again.
    pub expires_after: Timestamp,
    /// The ids.
    pub ids: Vec<TxHash>,
}

/// One emergency access awaiting its review deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewDue {
    /// The access.
    pub request: RequestId,
    /// Its review deadline (the access's block time plus the
    /// `emergency_review_days` in force then).
    pub deadline: Timestamp,
}

/// A change of who controls a patient's account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControlChange {
    /// New recovery contacts were named; they apply from `effective_at`.
    RecoveryContactsChanged,
    /// A recovery contact approved a new key for the patient.
    RecoveryApproved {
        /// Which contact.
        contact: PatientId,
    },
    /// Enough contacts approved the same new key: it replaces the patient's
    /// key at `effective_at` unless the current key cancels it.
    KeyReplacementScheduled,
    /// The patient's own key replaced itself.
    KeyRotated,
    /// The current key cancelled the pending contacts and key change.
    PendingChangesCancelled,
}

impl ControlChange {
    /// Its stable name on the HTTP API and in reports.
    pub fn name(&self) -> &'static str {
        match self {
            Self::RecoveryContactsChanged => "recovery_contacts_changed",
            Self::RecoveryApproved { .. } => "recovery_approved",
            Self::KeyReplacementScheduled => "key_replacement_scheduled",
            Self::KeyRotated => "key_rotated",
            Self::PendingChangesCancelled => "pending_changes_cancelled",
        }
    }
}

/// The kind of an access without its details.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccessKindTag {
    /// Under a grant.
    Grant,
    /// Emergency.
    Emergency,
    /// Public health.
    PublicHealth,
}

impl AccessKindTag {
    /// Its stable name on the HTTP API.
    pub fn name(self) -> &'static str {
        match self {
            Self::Grant => "grant",
            Self::Emergency => "emergency",
            Self::PublicHealth => "public-health",
        }
    }
}

/// One entry of the audit log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the log.
    pub index: u64,
    /// Block.
    pub at: BlockRef,
    /// The transaction that made it.
    pub tx: TxHash,
    /// Whose records or consent it concerns.
    pub patient: PatientId,
    /// What happened.
    pub event: AuditEvent,
}

impl AuditEntry {
    /// The leaf data of this entry in the audit Merkle tree.
    pub fn leaf_data(&self) -> Vec<u8> {
        let mut data = tags::AUDIT_ENTRY.to_vec();
        data.extend(crate::encoding::to_bytes(self));
        data
    }

    /// The leaf hash on a chain hashing with `hash`.
    pub fn leaf_hash(&self, hash: HashFunction) -> Hash32 {
        crate::merkle::leaf_hash(hash, &self.leaf_data())
    }
}
