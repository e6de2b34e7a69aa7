//! Who may read what.
//!
//! A patient's grants, consent requests, delegations and access history are
//! readable by the patient, by an active guardian or proxy of theirs, by a
//! regulator institution, and — one item at a time — by the institutions an
//! item names (a grant's grantee and listed holders; an access's requester
//! and holder). Knowing a patient's public key gives nothing: every read is
//! signed with the reader's current key.

use medledger_contracts::crypto::PublicKey;
use medledger_contracts::records::{
    AccessRecord, AuditEntry, AuditEvent, ConsentRequestRecord, DelegationRecord, GrantRecord,
    GroupRecord, InstitutionRecord, OwnAccessRecord, PatientRecord, PractitionerRecord,
};
use medledger_contracts::request_auth::RequestAuth;
use medledger_contracts::state::{Overlay, StateKey};
use medledger_contracts::transaction::Signer;
use medledger_contracts::types::{
    GrantTerms, Grantee, Holders, InstitutionId, InstitutionKind, MemberStatus, PatientId,
    PractitionerId,
};

use super::ApiError;
use crate::clock::now;
use crate::shared::Shared;

/// A verified reader.
#[derive(Clone, Debug)]
pub struct Reader {
    /// Who signed.
    pub signer: Signer,
    /// The patient they are (a patient, or a delegate acting with their own key).
    pub patient: Option<PatientId>,
    /// The practitioner they are.
    pub practitioner: Option<PractitionerId>,
    /// Their institution (a practitioner's, an admin's, or a node's).
    pub institution: Option<InstitutionId>,
    /// Whether that institution is a regulator.
    pub regulator: bool,
    /// Set when a member node signed with its node key.
    pub node_of: Option<InstitutionId>,
    /// The key that signed.
    pub key: PublicKey,
}

/// Why a signer is not accepted as a reader.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReaderError {
    /// The committed state could not be read: this says nothing about the
    /// signer (the API answers 500; an open event stream goes on).
    #[error("state unavailable: {0}")]
    StateUnavailable(String),
    /// The signer is not accepted, and why, in words for the client (401
    /// `unknown_signer`; an open event stream ends).
    #[error("{0}")]
    Refused(String),
}

impl From<&str> for ReaderError {
    fn from(why: &str) -> Self {
        Self::Refused(why.to_string())
    }
}

impl From<String> for ReaderError {
    fn from(why: String) -> Self {
        Self::Refused(why)
    }
}

fn get<T: serde::de::DeserializeOwned>(
    shared: &Shared,
    key: &StateKey,
) -> Result<Option<T>, ReaderError> {
    Overlay::new(&shared.store)
        .get(key)
        .map_err(|e| ReaderError::StateUnavailable(e.to_string()))
}

fn active_institution(
    shared: &Shared,
    id: &InstitutionId,
) -> Result<InstitutionRecord, ReaderError> {
    let record: InstitutionRecord = get(shared, &StateKey::Institution(id.clone()))?
        .ok_or_else(|| format!("institution {id} is not a member"))?;
    if record.status != MemberStatus::Active {
        return Err(format!("institution {id} is {}", record.status.name()).into());
    }
    Ok(record)
}

fn same_key(expected: &PublicKey, given: &PublicKey, who: &str) -> Result<(), ReaderError> {
    if expected == given {
        Ok(())
    } else {
        Err(format!("the key that signed is not {who}'s current key").into())
    }
}

/// Resolves the claimed signer against state: their current key must have signed.
pub fn resolve_reader(shared: &Shared, auth: &RequestAuth) -> Result<Reader, ReaderError> {
    resolve_signer(shared, &auth.signer, &auth.public_key)
}

/// Who `signer` is with `key`, as the committed state knows it now: also
/// how an open event stream re-checks its reader at every block.
pub fn resolve_signer(
    shared: &Shared,
    signer: &Signer,
    key: &PublicKey,
) -> Result<Reader, ReaderError> {
    let mut reader = Reader {
        signer: signer.clone(),
        patient: None,
        practitioner: None,
        institution: None,
        regulator: false,
        node_of: None,
        key: *key,
    };
    let institution_of = |reader: &mut Reader, record: &InstitutionRecord| {
        reader.institution = Some(record.spec.id.clone());
        reader.regulator = record.spec.kind == InstitutionKind::Regulator;
    };
    match signer {
        Signer::Patient(id) => {
            let record: PatientRecord = get(shared, &StateKey::Patient(*id))?
                .ok_or("the signing patient is not registered")?;
            // A key replaced by recovery contacts signs from the end of its
            // delay (R4.3), by this node's clock as by the next block's.
            same_key(record.key_at(now()), key, "the patient")?;
            reader.patient = Some(*id);
        }
        Signer::Delegate(_) => {
            return Err(
                "read as `Patient` with your own key; delegations are checked per patient".into(),
            );
        }
        Signer::Practitioner(id) => {
            let record: PractitionerRecord = get(shared, &StateKey::Practitioner(*id))?
                .ok_or("the signing practitioner is not registered")?;
            same_key(&record.key, key, "the practitioner")?;
            if record.status != MemberStatus::Active {
                return Err("the signing practitioner is retired".into());
            }
            let institution = active_institution(shared, &record.institution)?;
            institution_of(&mut reader, &institution);
            reader.practitioner = Some(*id);
        }
        Signer::Institution(id) => {
            let record = active_institution(shared, id)?;
            same_key(&record.spec.admin_key, key, "the institution admin")?;
            institution_of(&mut reader, &record);
        }
        Signer::InstitutionNode(id) => {
            let record = active_institution(shared, id)?;
            same_key(&record.spec.node_key, key, "the institution's node")?;
            institution_of(&mut reader, &record);
            reader.node_of = Some(id.clone());
        }
    }
    Ok(reader)
}

/// What decides who may read one item.
pub struct Visibility<'a> {
    shared: &'a Shared,
    reader: &'a Reader,
    patient: PatientId,
    /// Whether the reader may read everything of this patient.
    pub whole: bool,
}

impl<'a> Visibility<'a> {
    /// The reader's rights over `patient`'s items.
    pub fn new(
        shared: &'a Shared,
        reader: &'a Reader,
        patient: PatientId,
    ) -> Result<Self, ApiError> {
        let whole = reader.regulator
            || reader.patient == Some(patient)
            || match reader.patient {
                Some(me) => is_active_delegate(shared, patient, me)?,
                None => false,
            };
        Ok(Self {
            shared,
            reader,
            patient,
            whole,
        })
    }

    fn names_me(&self, institution: &InstitutionId) -> bool {
        self.reader.institution.as_ref() == Some(institution)
    }

    /// May the reader see a grant (or consent request) with these terms?
    pub fn terms(&self, terms: &GrantTerms) -> Result<bool, ApiError> {
        if terms.patient != self.patient {
            return Ok(false);
        }
        if self.whole {
            return Ok(true);
        }
        let grantee_institution = match &terms.grantee {
            Grantee::Institution(i) => Some(i.clone()),
            Grantee::Group(g) => {
                // Each member of the group now sees a grant made to it.
                let group = get::<GroupRecord>(self.shared, &StateKey::Group(g.clone()))
                    .map_err(ApiError::internal)?;
                self.reader
                    .institution
                    .clone()
                    .filter(|me| group.is_some_and(|g| g.members.contains(me)))
            }
            Grantee::Practitioner(p) => {
                if self.reader.practitioner == Some(*p) {
                    return Ok(true);
                }
                get::<PractitionerRecord>(self.shared, &StateKey::Practitioner(*p))
                    .map_err(ApiError::internal)?
                    .map(|r| r.institution)
            }
        };
        if grantee_institution.is_some_and(|i| self.names_me(&i)) {
            return Ok(true);
        }
        Ok(match &terms.holders {
            Holders::Any => false,
            Holders::Listed(list) => list.iter().any(|h| self.names_me(h)),
        })
    }

    /// May the reader see an access (request, emergency, public health)?
    pub fn access(&self, access: &AccessRecord) -> bool {
        access.patient == self.patient
            && (self.whole
                || self.names_me(&access.requester_institution)
                || self.names_me(&access.holder))
    }

    /// May the reader see a patient's request for their own records?
    pub fn own_access(&self, own: &OwnAccessRecord) -> bool {
        own.patient == self.patient && (self.whole || self.names_me(&own.holder))
    }

    /// May the reader see an audit entry? (Looks up what it refers to.)
    pub fn entry(&self, entry: &AuditEntry) -> Result<bool, ApiError> {
        if entry.patient != self.patient {
            return Ok(false);
        }
        if self.whole {
            return Ok(true);
        }
        let shared = self.shared;
        let grant = |id| -> Result<bool, ApiError> {
            match get::<GrantRecord>(shared, &StateKey::Grant(id)).map_err(ApiError::internal)? {
                Some(g) => self.terms(&g.terms),
                None => Ok(false),
            }
        };
        match &entry.event {
            AuditEvent::Granted { grant: id }
            | AuditEvent::Revoked { grant: id }
            | AuditEvent::Relinquished { grant: id } => grant(*id),
            AuditEvent::ConsentRequested { request }
            | AuditEvent::ConsentAnswered { request, .. } => {
                match get::<ConsentRequestRecord>(shared, &StateKey::ConsentRequest(*request))
                    .map_err(ApiError::internal)?
                {
                    Some(r) => self.terms(&r.terms),
                    None => Ok(false),
                }
            }
            AuditEvent::DelegationStarted { delegation, .. }
            | AuditEvent::DelegationEnded { delegation } => {
                // Delegations are the patient's own affair, and the
                // recording hospital's for a guardianship it recorded.
                let record: Option<DelegationRecord> =
                    get(shared, &StateKey::Delegation(*delegation)).map_err(ApiError::internal)?;
                Ok(record
                    .and_then(|d| d.recorded_by)
                    .is_some_and(|i| self.names_me(&i)))
            }
            // Who controls the account is the patient's own affair (seen
            // by the patient, a guardian or proxy, and regulators).
            AuditEvent::ControlChanged { .. } => Ok(false),
            AuditEvent::AccessDecided { request, .. }
            | AuditEvent::Released { request, .. }
            | AuditEvent::FetchRefused { request, .. }
            | AuditEvent::EmergencyReviewed { request, .. }
            | AuditEvent::EmergencyReviewOverdue { request, .. } => {
                let record: Option<AccessRecord> =
                    get(shared, &StateKey::Access(*request)).map_err(ApiError::internal)?;
                if let Some(access) = record {
                    return Ok(self.access(&access));
                }
                // A release of the patient's own records (R7.8).
                let own: Option<OwnAccessRecord> =
                    get(shared, &StateKey::OwnAccess(*request)).map_err(ApiError::internal)?;
                Ok(own.is_some_and(|o| self.own_access(&o)))
            }
            AuditEvent::OwnRecordsRequested { holder, .. } => Ok(self.names_me(holder)),
        }
    }
}

/// Whether `delegate` currently acts for `patient` (guardian or proxy).
fn is_active_delegate(
    shared: &Shared,
    patient: PatientId,
    delegate: PatientId,
) -> Result<bool, ApiError> {
    let time = now();
    for index in shared.store.audit_indexes_for_patient(&patient.0)? {
        let Some(entry) = shared.store.audit_entry(index)? else {
            continue;
        };
        if let AuditEvent::DelegationStarted { delegation, .. } = entry.event {
            let record: Option<DelegationRecord> =
                get(shared, &StateKey::Delegation(delegation)).map_err(ApiError::internal)?;
            if record.is_some_and(|d| d.delegate == delegate && d.is_active_at(time)) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}
