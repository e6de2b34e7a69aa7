//! Consent routes: grants, consent requests, delegations, accesses, audit
//! entries, recovery, and the public records of members and practitioners.

use medledger_contracts::records::{
    AccessKind as LedgerAccessDetail, AccessRecord, AuditEntry as LedgerAuditEntry,
    AuditEvent as LedgerAuditEvent, ConsentRequestRecord, ControlChange as LedgerControlChange,
    Decision as LedgerDecision, DelegationRecord, GrantEnd as LedgerGrantEnd, GrantRecord,
    GroupRecord, InstitutionLicenceRecord, InstitutionRecord, LicenceRecord, OwnAccessRecord,
    PatientRecord, PractitionerRecord, ReleaseRecord,
};
use medledger_contracts::transaction::Signer as LedgerSigner;
use medledger_contracts::types::{
    GrantTerms as LedgerTerms, Grantee as LedgerGrantee, GroupId, Holders as LedgerHolders,
    Timestamp, TxHash,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{
    AccessKind, BlockRef, Category, ControlChange, DelegateRole, DenialCode, EmergencyReason,
    GrantStatus, Hex32, InstitutionKind, LegalBasis, LicenceKind, LicenceStatus, MemberStatus,
    PractitionerRole, Purpose, ReviewFinding, SensitiveClass,
};

/// Who signed a transaction or made a record: one key, by kind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Signer {
    /// A patient, by id.
    Patient(Hex32),
    /// A patient's guardian or proxy, by their patient id.
    Delegate(Hex32),
    /// A practitioner, by id.
    Practitioner(Hex32),
    /// An institution's admin key.
    Institution(String),
    /// An institution's node key.
    InstitutionNode(String),
}

impl From<&LedgerSigner> for Signer {
    fn from(signer: &LedgerSigner) -> Self {
        match signer {
            LedgerSigner::Patient(p) => Self::Patient(p.0.into()),
            LedgerSigner::Delegate(d) => Self::Delegate(d.0.into()),
            LedgerSigner::Practitioner(p) => Self::Practitioner(p.0.into()),
            LedgerSigner::Institution(i) => Self::Institution(i.as_str().to_string()),
            LedgerSigner::InstitutionNode(i) => Self::InstitutionNode(i.as_str().to_string()),
        }
    }
}

/// To whom a grant is made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Grantee {
    /// A whole institution.
    Institution(String),
    /// One practitioner.
    Practitioner(Hex32),
    /// Every member institution of a group (a medical alliance), as it
    /// stands when a request is made.
    Group(String),
}

impl From<&LedgerGrantee> for Grantee {
    fn from(grantee: &LedgerGrantee) -> Self {
        match grantee {
            LedgerGrantee::Institution(i) => Self::Institution(i.as_str().to_string()),
            LedgerGrantee::Practitioner(p) => Self::Practitioner(p.0.into()),
            LedgerGrantee::Group(g) => Self::Group(g.as_str().to_string()),
        }
    }
}

/// Which institutions' records a grant covers: `"any"` or a list of ids.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Holders {
    /// Every holder.
    Any(AnyHolder),
    /// Only these institutions.
    Listed(Vec<String>),
}

/// The one value of [`Holders::Any`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum AnyHolder {
    /// Any holder.
    #[serde(rename = "any")]
    Any,
}

/// The terms of a grant, or those a consent request proposes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantTerms {
    /// Whose records.
    pub patient: Hex32,
    /// To whom.
    pub grantee: Grantee,
    /// Which categories.
    pub categories: Vec<Category>,
    /// Only records dated at or after this time (ms since the Unix epoch);
    /// `null`: from the first.
    pub records_from_ms: Option<u64>,
    /// Only records dated before this time; `null`: up to the grant's end.
    pub records_until_ms: Option<u64>,
    /// The sensitive classes the patient included; records of every other
    /// sensitive class are left out (R5.10).
    pub sensitive_included: Vec<SensitiveClass>,
    /// Held where.
    pub holders: Holders,
    /// What for.
    pub purpose: Purpose,
    /// In force from (ms since the Unix epoch).
    pub not_before_ms: u64,
    /// In force until.
    pub expires_at_ms: u64,
    /// Hash of the notice the patient was shown.
    pub notice_hash: Hex32,
}

impl From<&LedgerTerms> for GrantTerms {
    fn from(terms: &LedgerTerms) -> Self {
        Self {
            patient: terms.patient.0.into(),
            grantee: (&terms.grantee).into(),
            categories: terms.categories.iter().map(Category::from).collect(),
            records_from_ms: terms.records_from.map(|t| t.0),
            records_until_ms: terms.records_until.map(|t| t.0),
            sensitive_included: terms
                .sensitive_included
                .iter()
                .map(SensitiveClass::from)
                .collect(),
            holders: match &terms.holders {
                LedgerHolders::Any => Holders::Any(AnyHolder::Any),
                LedgerHolders::Listed(list) => {
                    Holders::Listed(list.iter().map(|h| h.as_str().to_string()).collect())
                }
            },
            purpose: (&terms.purpose).into(),
            not_before_ms: terms.not_before.0,
            expires_at_ms: terms.expires_at.0,
            notice_hash: terms.notice_hash.into(),
        }
    }
}

/// A grant, with its status at the time of the answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// Its id (the id of the transaction that made it).
    pub id: Hex32,
    /// Its status now.
    pub status: GrantStatus,
    /// Its terms.
    pub terms: GrantTerms,
    /// Who made it.
    pub granted_by: Signer,
    /// When.
    pub granted_at: BlockRef,
    /// The consent request it answers, if any.
    pub answers: Option<Hex32>,
    /// How it ended, if it did.
    pub ended: Option<GrantEnd>,
}

impl Grant {
    /// A grant as it stands at `now`.
    pub fn new(id: &TxHash, grant: &GrantRecord, now: Timestamp) -> Self {
        Self {
            id: id.0.into(),
            status: (&grant.status_at(now)).into(),
            terms: (&grant.terms).into(),
            granted_by: (&grant.granted_by).into(),
            granted_at: (&grant.granted_at).into(),
            answers: grant.answers.map(|r| r.0.into()),
            ended: grant.ended.as_ref().map(|end| match end {
                LedgerGrantEnd::Revoked { at, by } => GrantEnd::Revoked(Revoked {
                    revoked: at.into(),
                    by: by.into(),
                }),
                LedgerGrantEnd::Relinquished { at } => GrantEnd::Relinquished(Relinquished {
                    relinquished: at.into(),
                }),
            }),
        }
    }
}

/// How a grant ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum GrantEnd {
    /// Revoked.
    Revoked(Revoked),
    /// Given up by the grantee.
    Relinquished(Relinquished),
}

/// A revocation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Revoked {
    /// When.
    pub revoked: BlockRef,
    /// By whom (the patient or a delegate).
    pub by: Signer,
}

/// A grant given up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Relinquished {
    /// When.
    pub relinquished: BlockRef,
}

/// `GET /v1/grants/{grant}`: the grant at a height and its proof.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProvedGrant {
    /// The height of the proof.
    pub height: u64,
    /// The grant as it was at that height (`null`: not yet made).
    pub grant: Option<Grant>,
    /// Its status at that height's block time.
    pub status_at_height: Option<GrantStatus>,
    /// Hex of BCS `ProvedValue` (header, certificate, key, value, JMT
    /// proof), which the SDK's light client verifies.
    pub proved: String,
}

/// A consent request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentRequest {
    /// Its id.
    pub id: Hex32,
    /// The terms it proposes.
    pub terms: GrantTerms,
    /// Who asks.
    pub requested_by: Signer,
    /// When.
    pub requested_at: BlockRef,
    /// The patient's answer, once given.
    pub answer: Option<ConsentAnswer>,
}

impl ConsentRequest {
    /// A consent request as recorded.
    pub fn new(id: &TxHash, request: &ConsentRequestRecord) -> Self {
        Self {
            id: id.0.into(),
            terms: (&request.terms).into(),
            requested_by: (&request.requested_by).into(),
            requested_at: (&request.requested_at).into(),
            answer: request
                .answer
                .as_ref()
                .map(|(approved, at, tx)| ConsentAnswer {
                    approved: *approved,
                    height: at.height,
                    time_ms: at.time.0,
                    tx: tx.0.into(),
                }),
        }
    }
}

/// The answer to a consent request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentAnswer {
    /// Approved (a grant was made by the answering transaction) or refused.
    pub approved: bool,
    /// The answer's height.
    pub height: u64,
    /// Its time.
    pub time_ms: u64,
    /// The answering transaction (the grant's id when approved).
    pub tx: Hex32,
}

/// A guardian or proxy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Delegation {
    /// Its id.
    pub id: Hex32,
    /// The patient.
    pub patient: Hex32,
    /// The delegate's patient id.
    pub delegate: Hex32,
    /// Guardian or proxy.
    pub role: DelegateRole,
    /// Whether it is in force now.
    pub active: bool,
    /// When it was made.
    pub created_at: BlockRef,
    /// When it lapses.
    pub expires_at_ms: u64,
    /// The institution that recorded it (a guardianship), if any.
    pub recorded_by: Option<String>,
    /// The salted hash of the evidence that hospital saw (a guardianship),
    /// if any; the hospital keeps the document and the salt.
    pub evidence_hash: Option<Hex32>,
    /// When it was ended, if it was.
    pub ended_at: Option<BlockRef>,
}

impl Delegation {
    /// A delegation as it stands at `now`.
    pub fn new(id: &TxHash, d: &DelegationRecord, now: Timestamp) -> Self {
        Self {
            id: id.0.into(),
            patient: d.patient.0.into(),
            delegate: d.delegate.0.into(),
            role: (&d.role).into(),
            active: d.is_active_at(now),
            created_at: (&d.created_at).into(),
            expires_at_ms: d.expires_at.0,
            recorded_by: d.recorded_by.as_ref().map(|i| i.as_str().to_string()),
            evidence_hash: d.evidence_hash.map(Hex32::from),
            ended_at: d.ended_at.as_ref().map(BlockRef::from),
        }
    }
}

/// A decision on an access: `"authorized"` or `{"denied": reason}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Records may be released.
    Authorized,
    /// Nothing may be released, for this reason.
    Denied(String),
}

impl From<&LedgerDecision> for Decision {
    fn from(decision: &LedgerDecision) -> Self {
        match decision {
            LedgerDecision::Authorized => Self::Authorized,
            LedgerDecision::Denied(reason) => Self::Denied(reason.to_string()),
        }
    }
}

/// On what an access rests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum AccessDetail {
    /// A grant.
    Grant {
        /// The grant's id.
        grant: Hex32,
        /// The purpose stated.
        purpose: Purpose,
    },
    /// Break-glass.
    Emergency {
        /// Why.
        reason: EmergencyReason,
        /// The requester institution's review, once made.
        review: Option<EmergencyReview>,
    },
    /// Public health, under a law.
    PublicHealth {
        /// Which law.
        legal_basis: LegalBasis,
    },
}

/// The review of an emergency access.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmergencyReview {
    /// The reviewing institution (the requester's, which owes the review).
    pub reviewer: String,
    /// The finding.
    pub finding: ReviewFinding,
    /// The review's height.
    pub height: u64,
}

/// A release a holder recorded for an access.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Release {
    /// Its height.
    pub height: u64,
    /// Its time.
    pub time_ms: u64,
    /// Each file released, as the ledger records it: its SHA-256 hashed with the transfer's salt (the chain's hash function).
    pub content_hashes: Vec<Hex32>,
    /// For a grant: whether it was still in force at the release.
    pub grant_active_at_release: bool,
}

impl From<&ReleaseRecord> for Release {
    fn from(r: &ReleaseRecord) -> Self {
        Self {
            height: r.at.height,
            time_ms: r.at.time.0,
            content_hashes: r.content_hashes.iter().map(|h| Hex32(*h)).collect(),
            grant_active_at_release: r.grant_active_at_release,
        }
    }
}

/// `GET /v1/own-accesses/{request}`: a patient's request for their own
/// records and, once recorded, its release.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OwnAccess {
    /// Its id (the request's transaction id).
    pub id: Hex32,
    /// Whose records (the patient who asked).
    pub patient: Hex32,
    /// The institution asked to release.
    pub holder: String,
    /// The categories asked for.
    pub categories: Vec<Category>,
    /// When it was asked.
    pub at: BlockRef,
    /// The holder's release, once recorded.
    pub release: Option<Release>,
    /// Hex of BCS `ProvedValue` of this record at the node's latest height
    /// (header, certificate, JMT proof): what the SDK's light client checks
    /// before it believes the release, since the node that relays a
    /// patient's fetch is the one answering (absent before the first block).
    #[serde(default)]
    pub proved: Option<String>,
}

impl OwnAccess {
    /// A patient's own request as recorded, with its proof.
    pub fn new(id: &TxHash, a: &OwnAccessRecord, proved: Option<String>) -> Self {
        Self {
            id: id.0.into(),
            patient: a.patient.0.into(),
            holder: a.holder.as_str().to_string(),
            categories: a.categories.iter().map(Category::from).collect(),
            at: (&a.at).into(),
            release: a.release.as_ref().map(Release::from),
            proved,
        }
    }
}

/// An access: a request for records, its decision, and any release.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Access {
    /// Its id (the request's transaction id).
    pub id: Hex32,
    /// Whose records.
    pub patient: Hex32,
    /// The requesting practitioner.
    pub requester: Hex32,
    /// The requester's institution.
    pub requester_institution: String,
    /// The institution asked to release.
    pub holder: String,
    /// The categories asked for.
    pub categories: Vec<Category>,
    /// On what it rests.
    pub kind: AccessDetail,
    /// When it was decided.
    pub at: BlockRef,
    /// The decision.
    pub decision: Decision,
    /// The holder's release, once recorded.
    pub release: Option<Release>,
}

impl Access {
    /// An access as recorded.
    pub fn new(id: &TxHash, a: &AccessRecord) -> Self {
        Self {
            id: id.0.into(),
            patient: a.patient.0.into(),
            requester: a.requester.0.into(),
            requester_institution: a.requester_institution.as_str().to_string(),
            holder: a.holder.as_str().to_string(),
            categories: a.categories.iter().map(Category::from).collect(),
            kind: match &a.kind {
                LedgerAccessDetail::Grant { grant, purpose } => AccessDetail::Grant {
                    grant: grant.0.into(),
                    purpose: purpose.into(),
                },
                LedgerAccessDetail::Emergency { reason, review } => AccessDetail::Emergency {
                    reason: reason.into(),
                    review: review.as_ref().map(|r| EmergencyReview {
                        reviewer: r.reviewer.as_str().to_string(),
                        finding: (&r.finding).into(),
                        height: r.at.height,
                    }),
                },
                LedgerAccessDetail::PublicHealth { legal_basis, .. } => {
                    AccessDetail::PublicHealth {
                        legal_basis: legal_basis.into(),
                    }
                }
            },
            at: (&a.at).into(),
            decision: (&a.decision).into(),
            release: a.release.as_ref().map(Release::from),
        }
    }
}

/// One entry of the audit log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditEntry {
    /// Its position in the log.
    pub index: u64,
    /// Its block's height.
    pub height: u64,
    /// Its block's time.
    pub time_ms: u64,
    /// The transaction that made it.
    pub tx: Hex32,
    /// Whose records or consent it concerns.
    pub patient: Hex32,
    /// What happened.
    pub event: AuditEvent,
}

/// What an audit entry records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuditEvent {
    /// A grant was made.
    Granted {
        /// The grant.
        grant: Hex32,
    },
    /// A grant was revoked.
    Revoked {
        /// The grant.
        grant: Hex32,
    },
    /// A grant was given up by its grantee.
    Relinquished {
        /// The grant.
        grant: Hex32,
    },
    /// Consent was asked for.
    ConsentRequested {
        /// The request.
        request: Hex32,
    },
    /// A consent request was answered.
    ConsentAnswered {
        /// The request.
        request: Hex32,
        /// Approved or refused.
        approved: bool,
    },
    /// A delegation began.
    DelegationStarted {
        /// The delegation.
        delegation: Hex32,
        /// Guardian or proxy.
        role: DelegateRole,
    },
    /// A delegation ended.
    DelegationEnded {
        /// The delegation.
        delegation: Hex32,
    },
    /// Who controls the patient's key changed, or will.
    ControlChanged {
        /// What changed.
        change: ControlChange,
        /// When it takes (or took) effect, ms since the Unix epoch.
        effective_at: u64,
        /// For `recovery_approved`: the approving contact.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        contact: Option<Hex32>,
    },
    /// An access was decided.
    AccessDecided {
        /// The request.
        request: Hex32,
        /// The requesting practitioner.
        requester: Hex32,
        /// The holder asked.
        holder: String,
        /// On what it rests.
        kind: AccessKind,
        /// The decision.
        decision: Decision,
        /// For a denial: why, as a code (the app words it in the patient's
        /// language; `decision` carries the English sentence).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        denial_code: Option<DenialCode>,
    },
    /// A holder released records.
    Released {
        /// The request.
        request: Hex32,
        /// The holder.
        holder: String,
        /// How many files.
        content_count: u32,
        /// Whether the grant was still in force.
        grant_active: bool,
    },
    /// An emergency access was not reviewed in time.
    EmergencyReviewOverdue {
        /// The request.
        request: Hex32,
        /// The institution that owes the review.
        requester_institution: String,
        /// The deadline, ms since the Unix epoch.
        deadline: u64,
    },
    /// An emergency access was reviewed.
    EmergencyReviewed {
        /// The request.
        request: Hex32,
        /// The finding.
        finding: ReviewFinding,
    },
    /// A holder refused to serve a fetch.
    FetchRefused {
        /// The request.
        request: Hex32,
        /// The holder.
        holder: String,
        /// The practitioner who fetched.
        practitioner: Hex32,
        /// The refusal's code.
        reason: String,
    },
    /// The patient asked a holder for their own records.
    OwnRecordsRequested {
        /// The request.
        request: Hex32,
        /// The holder asked.
        holder: String,
    },
}

impl From<&LedgerAuditEntry> for AuditEntry {
    fn from(entry: &LedgerAuditEntry) -> Self {
        Self {
            index: entry.index,
            height: entry.at.height,
            time_ms: entry.at.time.0,
            tx: entry.tx.0.into(),
            patient: entry.patient.0.into(),
            event: (&entry.event).into(),
        }
    }
}

impl From<&LedgerAuditEvent> for AuditEvent {
    fn from(event: &LedgerAuditEvent) -> Self {
        use LedgerAuditEvent as E;
        match event {
            E::Granted { grant } => Self::Granted {
                grant: grant.0.into(),
            },
            E::Revoked { grant } => Self::Revoked {
                grant: grant.0.into(),
            },
            E::Relinquished { grant } => Self::Relinquished {
                grant: grant.0.into(),
            },
            E::ConsentRequested { request } => Self::ConsentRequested {
                request: request.0.into(),
            },
            E::ConsentAnswered { request, approved } => Self::ConsentAnswered {
                request: request.0.into(),
                approved: *approved,
            },
            E::DelegationStarted { delegation, role } => Self::DelegationStarted {
                delegation: delegation.0.into(),
                role: role.into(),
            },
            E::DelegationEnded { delegation } => Self::DelegationEnded {
                delegation: delegation.0.into(),
            },
            E::ControlChanged {
                change,
                effective_at,
            } => Self::ControlChanged {
                change: change.into(),
                effective_at: effective_at.0,
                contact: match change {
                    LedgerControlChange::RecoveryApproved { contact } => Some(contact.0.into()),
                    _ => None,
                },
            },
            E::AccessDecided {
                request,
                requester,
                holder,
                kind,
                decision,
            } => Self::AccessDecided {
                request: request.0.into(),
                requester: requester.0.into(),
                holder: holder.as_str().to_string(),
                kind: kind.into(),
                decision: decision.into(),
                denial_code: match decision {
                    LedgerDecision::Denied(reason) => Some(reason.into()),
                    LedgerDecision::Authorized => None,
                },
            },
            E::Released {
                request,
                holder,
                content_count,
                grant_active,
            } => Self::Released {
                request: request.0.into(),
                holder: holder.as_str().to_string(),
                content_count: *content_count,
                grant_active: *grant_active,
            },
            E::EmergencyReviewOverdue {
                request,
                requester_institution,
                deadline,
            } => Self::EmergencyReviewOverdue {
                request: request.0.into(),
                requester_institution: requester_institution.as_str().to_string(),
                deadline: deadline.0,
            },
            E::EmergencyReviewed { request, finding } => Self::EmergencyReviewed {
                request: request.0.into(),
                finding: finding.into(),
            },
            E::FetchRefused {
                request,
                holder,
                practitioner,
                reason,
            } => Self::FetchRefused {
                request: request.0.into(),
                holder: holder.as_str().to_string(),
                practitioner: practitioner.0.into(),
                reason: reason.code().to_string(),
            },
            E::OwnRecordsRequested { request, holder } => Self::OwnRecordsRequested {
                request: request.0.into(),
                holder: holder.as_str().to_string(),
            },
        }
    }
}

/// `GET /v1/patients/{patient}/recovery`: who may approve a new key, and
/// what is pending.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Recovery {
    /// The patient.
    pub patient: Hex32,
    /// The recovery contacts in force, if any.
    pub policy: Option<RecoveryPolicy>,
    /// Contacts' approvals of a new key so far.
    pub approvals: Vec<RecoveryApproval>,
    /// New contacts waiting out the delay; the patient's key can cancel them.
    pub pending_policy: Option<PendingPolicy>,
    /// A key approved by contacts, waiting out the delay.
    pub pending_key: Option<PendingKey>,
}

impl Recovery {
    /// The recovery of a patient's record, settled to `now` by the caller.
    pub fn new(patient: &medledger_contracts::types::PatientId, record: &PatientRecord) -> Self {
        let contacts = |policy: &medledger_contracts::records::RecoveryPolicy| {
            policy.delegates.iter().map(|d| Hex32(d.0)).collect()
        };
        Self {
            patient: patient.0.into(),
            policy: record.recovery.as_ref().map(|policy| RecoveryPolicy {
                contacts: contacts(policy),
                threshold: policy.threshold,
            }),
            approvals: record
                .recovery_approvals
                .iter()
                .map(|(contact, key)| RecoveryApproval {
                    contact: contact.0.into(),
                    new_key: key.to_text(),
                })
                .collect(),
            pending_policy: record.pending_recovery.as_ref().map(|p| PendingPolicy {
                contacts: contacts(&p.value),
                threshold: p.value.threshold,
                effective_at: p.effective_at.0,
            }),
            pending_key: record.pending_key.as_ref().map(|p| PendingKey {
                new_key: p.value.to_text(),
                effective_at: p.effective_at.0,
            }),
        }
    }
}

/// Recovery contacts and how many must agree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoveryPolicy {
    /// The contacts' patient ids.
    pub contacts: Vec<Hex32>,
    /// Approvals needed.
    pub threshold: u8,
}

/// One contact's approval of a new key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoveryApproval {
    /// The contact.
    pub contact: Hex32,
    /// The key approved, `scheme:hex`.
    pub new_key: String,
}

/// New recovery contacts waiting out the delay.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PendingPolicy {
    /// The new contacts.
    pub contacts: Vec<Hex32>,
    /// Approvals needed.
    pub threshold: u8,
    /// When they take effect, ms since the Unix epoch.
    pub effective_at: u64,
}

/// A replacement key waiting out the delay.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PendingKey {
    /// The new key, `scheme:hex`.
    pub new_key: String,
    /// When it takes effect.
    pub effective_at: u64,
}

/// `GET /v1/institutions`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InstitutionList {
    /// Every member.
    pub items: Vec<InstitutionSummary>,
}

/// A member, briefly.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InstitutionSummary {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: InstitutionKind,
    /// Whether it may act.
    pub status: MemberStatus,
    /// Where its licence stands with the regulators (R4.16).
    #[serde(default)]
    pub licence: LicenceStanding,
}

impl InstitutionSummary {
    /// A member, briefly, with its licence's standing.
    pub fn new(record: &InstitutionRecord, licence: LicenceStanding) -> Self {
        Self {
            id: record.spec.id.as_str().to_string(),
            name: record.spec.name.as_str().to_string(),
            kind: (&record.spec.kind).into(),
            status: (&record.status).into(),
            licence,
        }
    }
}

/// Where a member's licence stands with the regulators (R4.16).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LicenceStanding {
    /// No regulator attested it: the member acts on its admission alone.
    #[default]
    NotAttested,
    /// Attested by a regulator that is still an active member, active and
    /// within its validity.
    InForce,
    /// In force, but attested by a regulator that is no longer an active
    /// member: nobody vouches for it now (it still binds, R4.16).
    AttesterNotActive,
    /// Attested, but suspended, revoked, expired or not valid yet (for an
    /// internet hospital: or its physical hospital's): its practitioners
    /// may not act.
    NotInForce,
}

/// `GET /v1/groups`: every group of members the ledger knows (rule R4.15).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupList {
    /// Every group, by id.
    pub items: Vec<Group>,
}

/// A group of members (a medical alliance, or an internet hospital with its
/// physical hospital): a grant to it reaches each member's practitioners.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// Its id.
    pub id: String,
    /// Its member institutions' ids (none once dissolved).
    pub members: Vec<String>,
    /// The block whose carried proposal last set them.
    pub set_at: BlockRef,
}

impl Group {
    /// A group's record under its id.
    pub fn new(id: &GroupId, record: &GroupRecord) -> Self {
        Self {
            id: id.as_str().to_string(),
            members: record
                .members
                .iter()
                .map(|m| m.as_str().to_string())
                .collect(),
            set_at: (&record.set_at).into(),
        }
    }
}

/// `GET /v1/institutions/{institution}`: a member's public record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Institution {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: InstitutionKind,
    /// Its administrative region (GB/T 2260).
    pub region_code: String,
    /// Whether it may act.
    pub status: MemberStatus,
    /// The height it was admitted at (0: in genesis).
    pub admitted_at: u64,
    /// Its voting power.
    pub voting_power: u64,
    /// Its admin key, `scheme:hex`.
    pub admin_key: String,
    /// Its node key, `scheme:hex`.
    pub node_key: String,
    /// Its node's transport key (network identity), `ed25519:hex`, on a
    /// chain whose nodes have one (`sm2-sm3`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport_key: Option<String>,
    /// Its unified social credit code (统一社会信用代码), as admitted.
    #[serde(default)]
    pub legal_code: String,
    /// Its practice licence's reference (医疗机构执业许可证), as admitted.
    #[serde(default)]
    pub licence_ref: String,
    /// A regulator's attestation of its licence (R4.16), if any.
    #[serde(default)]
    pub licence: Option<InstitutionLicence>,
    /// Why its practitioners may not act now on account of its attested
    /// licence, or for an internet hospital its physical hospital's
    /// (R4.16); absent when nothing stops them.
    #[serde(default)]
    pub licence_problem: Option<String>,
}

impl Institution {
    /// A member's public record, with its licence's attestation and what a
    /// block now would find of it.
    pub fn new(
        record: &InstitutionRecord,
        licence: Option<&InstitutionLicenceRecord>,
        licence_problem: Option<String>,
    ) -> Self {
        Self {
            id: record.spec.id.as_str().to_string(),
            name: record.spec.name.as_str().to_string(),
            kind: (&record.spec.kind).into(),
            region_code: record.spec.region_code.as_str().to_string(),
            status: (&record.status).into(),
            admitted_at: record.admitted_at,
            voting_power: record.spec.voting_power,
            admin_key: record.spec.admin_key.to_text(),
            node_key: record.spec.node_key.to_text(),
            transport_key: record
                .spec
                .transport_key
                .as_ref()
                .map(medledger_contracts::crypto::PublicKey::to_text),
            legal_code: record.spec.legal_code.as_str().to_string(),
            licence_ref: record.spec.licence_ref.as_str().to_string(),
            licence: licence.map(InstitutionLicence::from),
            licence_problem,
        }
    }
}

/// A regulator's attestation of a member institution's licence (R4.16,
/// R4.17).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InstitutionLicence {
    /// The credit code the regulator checked.
    pub legal_code: String,
    /// The practice licence reference it checked.
    pub licence_ref: String,
    /// Licensed departments or services (诊疗科目).
    pub scopes: Vec<String>,
    /// In force from (ms since the Unix epoch).
    pub valid_from_ms: u64,
    /// In force until, exclusive (ms since the Unix epoch).
    pub valid_until_ms: u64,
    /// Active, suspended or revoked.
    pub status: LicenceStatus,
    /// The regulator that attested it last.
    pub attested_by: String,
    /// The block that attested it last.
    pub attested_at_height: u64,
    /// The block that last changed its status, if any.
    pub status_changed_at_height: Option<u64>,
    /// The regulator that last changed its status, if any.
    pub status_changed_by: Option<String>,
}

impl From<&InstitutionLicenceRecord> for InstitutionLicence {
    fn from(record: &InstitutionLicenceRecord) -> Self {
        let terms = &record.terms;
        Self {
            legal_code: terms.legal_code.as_str().to_string(),
            licence_ref: terms.licence_ref.as_str().to_string(),
            scopes: terms
                .scopes
                .iter()
                .map(|s| s.as_str().to_string())
                .collect(),
            valid_from_ms: terms.valid_from.0,
            valid_until_ms: terms.valid_until.0,
            status: (&record.status).into(),
            attested_by: record.attested_by.as_str().to_string(),
            attested_at_height: record.attested_at.height,
            status_changed_at_height: record.status_changed.as_ref().map(|(at, _)| at.height),
            status_changed_by: record
                .status_changed
                .as_ref()
                .map(|(_, by)| by.as_str().to_string()),
        }
    }
}

/// `GET /v1/practitioners/{practitioner}`: a practitioner's public record
/// (the licence number and its salt stay with the institution).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Practitioner {
    /// Their id.
    pub id: Hex32,
    /// Their institution.
    pub institution: String,
    /// Their role.
    pub role: PractitionerRole,
    /// Whether their institution keeps them registered.
    pub status: MemberStatus,
    /// Their key, `scheme:hex`.
    pub key: String,
    /// The salted hash of their licence, as their institution registered it.
    pub licence_hash: Hex32,
    /// A regulator's attestation of that licence, if any (R4.12).
    pub licence: Option<Licence>,
    /// Why their licence (where genesis asks for attested licences,
    /// R4.14) or their institution's attested licence (R4.16) does not let
    /// them act now, or none if nothing stops them.
    pub licence_problem: Option<String>,
}

impl Practitioner {
    /// A practitioner's public record, with the attestation of their
    /// licence and, where one is needed, why it does not let them act.
    pub fn new(
        id: &medledger_contracts::types::PractitionerId,
        record: &PractitionerRecord,
        licence: Option<&LicenceRecord>,
        licence_problem: Option<String>,
    ) -> Self {
        Self {
            id: id.0.into(),
            institution: record.institution.as_str().to_string(),
            role: (&record.role).into(),
            status: (&record.status).into(),
            key: record.key.to_text(),
            licence_hash: record.licence_hash.into(),
            licence: licence.map(Licence::from),
            licence_problem,
        }
    }
}

/// `GET /v1/licences/{licence}`: a regulator's attestation of a
/// practitioner's licence, by the licence's salted hash (R4.12, R4.13).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Licence {
    /// The licence's salted hash.
    pub licence_hash: Hex32,
    /// What it licenses.
    pub kind: LicenceKind,
    /// Scopes of practice.
    pub scopes: Vec<String>,
    /// Member institutions where it may be used.
    pub institutions: Vec<String>,
    /// The registrations (practitioner ids) the regulator bound to it.
    pub practitioners: Vec<Hex32>,
    /// In force from (ms since the Unix epoch).
    pub valid_from_ms: u64,
    /// In force until, exclusive (ms since the Unix epoch).
    pub valid_until_ms: u64,
    /// Active, suspended or revoked.
    pub status: LicenceStatus,
    /// The regulator that attested it last.
    pub attested_by: String,
    /// The block that attested it last.
    pub attested_at_height: u64,
    /// The block that last changed its status, if any.
    pub status_changed_at_height: Option<u64>,
    /// The regulator that last changed its status, if any.
    pub status_changed_by: Option<String>,
}

impl From<&LicenceRecord> for Licence {
    fn from(record: &LicenceRecord) -> Self {
        let terms = &record.terms;
        Self {
            licence_hash: terms.licence_hash.into(),
            kind: (&terms.kind).into(),
            scopes: terms
                .scopes
                .iter()
                .map(|s| s.as_str().to_string())
                .collect(),
            institutions: terms
                .institutions
                .iter()
                .map(|i| i.as_str().to_string())
                .collect(),
            practitioners: terms.practitioners.iter().map(|p| p.0.into()).collect(),
            valid_from_ms: terms.valid_from.0,
            valid_until_ms: terms.valid_until.0,
            status: (&record.status).into(),
            attested_by: record.attested_by.as_str().to_string(),
            attested_at_height: record.attested_at.height,
            status_changed_at_height: record.status_changed.as_ref().map(|(at, _)| at.height),
            status_changed_by: record
                .status_changed
                .as_ref()
                .map(|(_, by)| by.as_str().to_string()),
        }
    }
}

/// `POST /v1/records/fetch`'s body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FetchBody {
    /// Hex of BCS `SignedFetch`.
    pub fetch: String,
}
