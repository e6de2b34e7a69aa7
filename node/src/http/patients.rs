//! Signed reads about patients and the parties named in their consent:
//! grants (with proofs), consent requests, delegations, access history, and
//! what an institution or practitioner has been granted or has asked for.

use medledger_api as api;
use medledger_contracts::Hash32;
use medledger_contracts::encoding::{from_bytes, to_bytes};
use medledger_contracts::records::{
    AccessRecord, AuditEntry, AuditEvent, ConsentRequestRecord, DelegationRecord, GrantRecord,
    InstitutionLicenceRecord, InstitutionRecord, LicenceRecord, PatientRecord, PractitionerRecord,
    ProposalRecord,
};
use medledger_contracts::state::{Overlay, StateKey};
use medledger_contracts::state_machine::{institution_licence_problem_at, licence_problem_at};
use medledger_contracts::transaction::SignedTransaction;
use medledger_contracts::types::{
    Grantee, InstitutionId, MemberStatus, PatientId, PractitionerId, Timestamp,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::access::{Reader, Visibility};
use super::chain::{parse_tx, prove};
use super::{Answer, ApiError, Request, ok};
use crate::clock::now;
use crate::shared::Shared;

/// Most items on one page.
pub const PAGE_MAX: u64 = 500;
/// Items on a page when the caller does not say.
pub const PAGE_DEFAULT: u64 = 100;

fn get<T: DeserializeOwned>(shared: &Shared, key: &StateKey) -> Result<Option<T>, ApiError> {
    Ok(Overlay::new(&shared.store).get(key)?)
}

pub(crate) fn parse_patient(text: &str) -> Result<PatientId, ApiError> {
    Hash32::from_hex(text).map(PatientId).map_err(|_| {
        ApiError::bad_request(
            "bad_id",
            format!("a patient id is 64 hex characters, got {text:?}"),
        )
    })
}

pub(crate) fn parse_practitioner(text: &str) -> Result<PractitionerId, ApiError> {
    Hash32::from_hex(text).map(PractitionerId).map_err(|_| {
        ApiError::bad_request(
            "bad_id",
            format!("a practitioner id is 64 hex characters, got {text:?}"),
        )
    })
}

pub(crate) fn parse_institution(text: &str) -> Result<InstitutionId, ApiError> {
    InstitutionId::new(text).map_err(|e| ApiError::bad_request("bad_id", e.to_string()))
}

/// A page: items after an audit index, at most `limit`.
pub struct Page {
    after: Option<u64>,
    limit: u64,
}

impl Page {
    /// The page a request asks for.
    pub fn of(r: &Request) -> Result<Self, ApiError> {
        let limit = r.query_u64("limit")?.unwrap_or(PAGE_DEFAULT);
        if limit == 0 || limit > PAGE_MAX {
            return Err(ApiError::bad_request(
                "bad_query",
                format!("`limit` must be 1 to {PAGE_MAX}"),
            ));
        }
        Ok(Self {
            after: r.query_u64("after")?,
            limit,
        })
    }

    /// Walks audit indexes in order, keeping what `keep` turns into items,
    /// until the page is full: the items and the cursor of the next page.
    pub fn collect<T>(
        &self,
        shared: &Shared,
        indexes: Vec<u64>,
        mut keep: impl FnMut(&AuditEntry) -> Result<Option<T>, ApiError>,
    ) -> Result<(Vec<T>, Option<u64>), ApiError> {
        let mut items = Vec::new();
        let mut next_after = None;
        for index in indexes
            .into_iter()
            .filter(|i| self.after.is_none_or(|after| *i > after))
        {
            let Some(entry) = shared.store.audit_entry(index)? else {
                continue;
            };
            if let Some(item) = keep(&entry)? {
                if items.len() as u64 == self.limit {
                    next_after = Some(index - 1);
                    break;
                }
                items.push(item);
            }
        }
        Ok((items, next_after))
    }

    /// [`Page::collect`] answered as `{items, next_after}`.
    pub fn answer<T: Serialize>(
        &self,
        shared: &Shared,
        indexes: Vec<u64>,
        keep: impl FnMut(&AuditEntry) -> Result<Option<T>, ApiError>,
    ) -> Answer {
        let (items, next_after) = self.collect(shared, indexes, keep)?;
        ok(&api::Page { items, next_after })
    }
}

/// Which list of a patient's.
#[derive(Clone, Copy, Debug)]
pub enum List {
    /// Grants (made directly or by answering a request).
    Grants,
    /// Consent requests addressed to the patient.
    ConsentRequests,
    /// Guardians and proxies.
    Delegations,
    /// Every audit entry.
    History,
}

fn visibility<'a>(
    shared: &'a Shared,
    reader: &'a Reader,
    patient: PatientId,
) -> Result<Visibility<'a>, ApiError> {
    let visibility = Visibility::new(shared, reader, patient)?;
    // Someone with no institution and no right over the patient (another
    // patient) is refused outright; institutions see what names them.
    if !visibility.whole && reader.institution.is_none() {
        return Err(ApiError::forbidden());
    }
    Ok(visibility)
}

/// `GET /v1/patients/{patient}/recovery`: who may approve a new key for
/// the patient, how many must agree, and the approvals so far. Only for
/// those who may read everything of the patient (the patient, an active
/// guardian or proxy, a regulator): the contacts are people the patient
/// trusts, which no one else needs to know.
pub fn recovery(shared: &Shared, r: &Request) -> Answer {
    let patient = parse_patient(r.param(0))?;
    let reader = r.reader()?;
    if !Visibility::new(shared, reader, patient)?.whole {
        return Err(ApiError::forbidden());
    }
    let Some(record) = get::<PatientRecord>(shared, &StateKey::Patient(patient))? else {
        return Err(ApiError::not_found(
            "no_such_patient",
            "no patient is registered with this id",
        ));
    };
    // As in force now: what has waited out its delay is in place (its
    // approvals dropped), and only what has not is shown as pending.
    let mut record = record;
    record.settle(now());
    // Changes still waiting out the delay (R4.2, R4.3) are shown as
    // pending: the patient's current key can cancel them until `effective_at`.
    ok(&api::Recovery::new(&patient, &record))
}

/// `GET /v1/patients/{patient}/…`.
pub fn patient_list(shared: &Shared, r: &Request, list: List) -> Answer {
    let patient = parse_patient(r.param(0))?;
    let reader = r.reader()?;
    let page = Page::of(r)?;
    let vis = visibility(shared, reader, patient)?;
    let indexes = shared.store.audit_indexes_for_patient(&patient.0)?;
    let now = now();
    match list {
        List::History => page.answer(shared, indexes, |entry| {
            Ok(vis.entry(entry)?.then(|| api::AuditEntry::from(entry)))
        }),
        List::Grants => page.answer(shared, indexes, |entry| match &entry.event {
            AuditEvent::Granted { grant } => {
                Ok(get::<GrantRecord>(shared, &StateKey::Grant(*grant))?
                    .filter(|g| vis.terms(&g.terms).unwrap_or(false))
                    .map(|g| api::Grant::new(grant, &g, now)))
            }
            _ => Ok(None),
        }),
        List::ConsentRequests => page.answer(shared, indexes, |entry| match &entry.event {
            AuditEvent::ConsentRequested { request } => Ok(get::<ConsentRequestRecord>(
                shared,
                &StateKey::ConsentRequest(*request),
            )?
            .filter(|c| vis.terms(&c.terms).unwrap_or(false))
            .map(|c| api::ConsentRequest::new(request, &c))),
            _ => Ok(None),
        }),
        List::Delegations => page.answer(shared, indexes, |entry| match &entry.event {
            AuditEvent::DelegationStarted { delegation, .. } => {
                if !vis.entry(entry)? {
                    return Ok(None);
                }
                Ok(
                    get::<DelegationRecord>(shared, &StateKey::Delegation(*delegation))?
                        .map(|d| api::Delegation::new(delegation, &d, now)),
                )
            }
            _ => Ok(None),
        }),
    }
}

/// `GET /v1/grants/{grant}?height=`: the grant, and a proof a light client
/// checks (`proved`: hex of BCS `ProvedValue`) at the latest height or the one asked.
pub fn grant(shared: &Shared, r: &Request) -> Answer {
    let id = parse_tx(r.param(0))?;
    let reader = r.reader()?;
    let latest = shared.height();
    let height = r.query_u64("height")?.unwrap_or(latest);
    if height == 0 || height > latest {
        return Err(ApiError::not_found(
            "no_such_block",
            format!("proofs are served for heights 1 to {latest}"),
        ));
    }
    // Rights are judged on the latest record: a grant's terms never change.
    let Some(current) = get::<GrantRecord>(shared, &StateKey::Grant(id))? else {
        return Err(ApiError::forbidden());
    };
    if !Visibility::new(shared, reader, current.terms.patient)?.terms(&current.terms)? {
        return Err(ApiError::forbidden());
    }
    let proved = prove(shared, StateKey::Grant(id), height)?;
    let at_height = match proved.value.as_deref() {
        Some(bytes) => Some(
            from_bytes::<GrantRecord>(bytes, medledger_contracts::light::PROVED_VALUE_BYTES_MAX)
                .map_err(ApiError::internal)?,
        ),
        None => None,
    };
    ok(&api::ProvedGrant {
        height,
        grant: at_height.as_ref().map(|g| api::Grant::new(&id, g, now())),
        status_at_height: at_height
            .as_ref()
            .map(|g| (&g.status_at(proved.header.time)).into()),
        proved: hex::encode(to_bytes(&proved)),
    })
}

/// `GET /v1/transactions/{tx}`: the signed transaction, for its signer, a
/// regulator, or whoever may read every audit entry it made.
pub fn transaction(shared: &Shared, r: &Request) -> Answer {
    let id = parse_tx(r.param(0))?;
    let reader = r.reader()?;
    let Some((height, receipt)) = shared.store.receipt(&id)? else {
        return Err(ApiError::forbidden());
    };
    let block = shared
        .store
        .block_bytes(height)?
        .ok_or_else(|| ApiError::internal("block of a receipt is missing"))?;
    let block =
        medledger_contracts::block::Block::from_bytes(&block).map_err(ApiError::internal)?;
    let Some(tx) = block
        .transactions
        .iter()
        .find(|t| t.id(&shared.chain) == id)
    else {
        return Err(ApiError::internal("transaction of a receipt is missing"));
    };
    let mut allowed = reader.regulator || reader.signer == tx.transaction.signer;
    if !allowed && !receipt.audit_indexes.is_empty() {
        allowed = true;
        for index in &receipt.audit_indexes {
            let Some(entry) = shared.store.audit_entry(*index)? else {
                allowed = false;
                break;
            };
            if !Visibility::new(shared, reader, entry.patient)?.entry(&entry)? {
                allowed = false;
                break;
            }
        }
    }
    if !allowed {
        return Err(ApiError::forbidden());
    }
    ok(&transaction_answer(shared, height, tx, &receipt.outcome))
}

fn transaction_answer(
    shared: &Shared,
    height: u64,
    tx: &SignedTransaction,
    outcome: &medledger_contracts::records::Outcome,
) -> api::TransactionAnswer {
    api::TransactionAnswer {
        id: tx.id(&shared.chain).0.into(),
        height,
        signer: (&tx.transaction.signer).into(),
        nonce: tx.transaction.nonce,
        valid_until_ms: tx.transaction.valid_until.0,
        kind: (&tx.transaction.payload).into(),
        outcome: outcome.into(),
        bcs: hex::encode(tx.to_bytes()),
    }
}

/// `GET /v1/institutions`: every member's public id, name, kind and status.
pub fn institutions(shared: &Shared) -> Answer {
    let time = now();
    let mut items = Vec::new();
    for record in shared.institution_records().map_err(ApiError::internal)? {
        let (_, problem, standing) = institution_licence(shared, &record.spec.id, time)?;
        let standing = match problem {
            Some(_) => api::LicenceStanding::NotInForce,
            None => standing,
        };
        items.push(api::InstitutionSummary::new(&record, standing));
    }
    ok(&api::InstitutionList { items })
}

/// `GET /v1/institutions/{institution}`: a member's public record.
pub fn institution(shared: &Shared, r: &Request) -> Answer {
    let id = parse_institution(r.param(0))?;
    let record: InstitutionRecord =
        get(shared, &StateKey::Institution(id.clone()))?.ok_or_else(|| {
            ApiError::not_found("unknown_institution", format!("{id} is not a member"))
        })?;
    // What a block made now would find (R4.16), as for practitioners.
    let (licence, problem, _) = institution_licence(shared, &id, now())?;
    ok(&api::Institution::new(&record, licence.as_ref(), problem))
}

/// A member's attested licence (R4.16); why it stops the member's
/// practitioners at `time`, if it does (for an internet hospital, its
/// physical hospital's too), in words about the member; and its own
/// attestation's standing.
fn institution_licence(
    shared: &Shared,
    id: &InstitutionId,
    time: Timestamp,
) -> Result<
    (
        Option<InstitutionLicenceRecord>,
        Option<String>,
        api::LicenceStanding,
    ),
    ApiError,
> {
    use medledger_contracts::records::LicenceProblem as P;
    let licence: Option<InstitutionLicenceRecord> =
        get(shared, &StateKey::InstitutionLicence(id.clone()))?;
    let problem =
        institution_licence_problem_at(&Overlay::new(&shared.store), id, time)?.map(|p| {
            match p {
                P::InstitutionSuspended => "its licence, or its physical hospital's, is suspended",
                P::InstitutionRevoked => "its licence, or its physical hospital's, is revoked",
                P::InstitutionNotYetValid => {
                    "its licence, or its physical hospital's, is not valid yet"
                }
                P::InstitutionExpired => "its licence, or its physical hospital's, has expired",
                P::InstitutionCodesChanged => {
                    "its codes, or its physical hospital's, changed since a regulator attested them"
                }
                _ => "its licence is not in force",
            }
            .to_string()
        });
    let standing = match &licence {
        None => api::LicenceStanding::NotAttested,
        Some(l) => {
            let attester: Option<InstitutionRecord> =
                get(shared, &StateKey::Institution(l.attested_by.clone()))?;
            if attester.is_some_and(|a| a.status == MemberStatus::Active) {
                api::LicenceStanding::InForce
            } else {
                api::LicenceStanding::AttesterNotActive
            }
        }
    };
    Ok((licence, problem, standing))
}

/// `GET /v1/groups`: every group of members, by id.
pub fn groups(shared: &Shared) -> Answer {
    let mut groups = shared.group_records().map_err(ApiError::internal)?;
    groups.sort_by(|a, b| a.0.cmp(&b.0));
    let items = groups
        .iter()
        .map(|(id, record)| api::Group::new(id, record))
        .collect();
    ok(&api::GroupList { items })
}

/// `GET /v1/proposals`: the governance proposals, open ones first, then by
/// when they lapse, newest first; at most `PROPOSALS_LISTED_MAX`.
pub fn proposals(shared: &Shared) -> Answer {
    let time = shared
        .store
        .header(shared.height())?
        .map_or(Default::default(), |h| h.time);
    let mut items: Vec<api::Proposal> = shared
        .proposal_records()
        .map_err(ApiError::internal)?
        .iter()
        .map(|(id, record)| api::Proposal::new(id, record, time))
        .collect();
    items.sort_by(|a, b| {
        let open = |p: &api::Proposal| p.status != api::ProposalStatus::Open;
        (open(a), std::cmp::Reverse(a.expires_at_ms), a.id.0).cmp(&(
            open(b),
            std::cmp::Reverse(b.expires_at_ms),
            b.id.0,
        ))
    });
    let truncated = items.len() > api::PROPOSALS_LISTED_MAX;
    items.truncate(api::PROPOSALS_LISTED_MAX);
    ok(&api::ProposalList { items, truncated })
}

/// `GET /v1/proposals/{proposal}`: a governance proposal and its votes.
pub fn proposal(shared: &Shared, r: &Request) -> Answer {
    let id = super::chain::parse_tx(r.param(0))?;
    let record: ProposalRecord = get(shared, &StateKey::Proposal(id))?
        .ok_or_else(|| ApiError::not_found("unknown_proposal", "no proposal has this id"))?;
    let time = shared
        .store
        .header(shared.height())?
        .map_or(Default::default(), |h| h.time);
    ok(&api::Proposal::new(&id, &record, time))
}

/// `GET /v1/practitioners/{practitioner}`: a practitioner's public record
/// (role and institution; the licence number stays with the institution).
pub fn practitioner(shared: &Shared, r: &Request) -> Answer {
    let id = parse_practitioner(r.param(0))?;
    let record: PractitionerRecord =
        get(shared, &StateKey::Practitioner(id))?.ok_or_else(|| {
            ApiError::not_found("unknown_practitioner", "no practitioner has this id")
        })?;
    let licence: Option<LicenceRecord> = get(shared, &StateKey::Licence(record.licence_hash))?;
    // What a block made now would find (the node's clock: the next
    // block's time is about now, and at genesis there is no block yet).
    let problem = licence_problem_at(&Overlay::new(&shared.store), &id, &record, now())?;
    ok(&api::Practitioner::new(
        &id,
        &record,
        licence.as_ref(),
        problem.map(|p| p.to_string()),
    ))
}

/// `GET /v1/licences/{licence}`: a regulator's attestation of a licence,
/// by the licence's salted hash.
pub fn licence(shared: &Shared, r: &Request) -> Answer {
    let hash = Hash32::from_hex(r.param(0)).map_err(|_| {
        ApiError::bad_request(
            "bad_id",
            format!("a licence hash is 64 hex characters, got {:?}", r.param(0)),
        )
    })?;
    let record: LicenceRecord = get(shared, &StateKey::Licence(hash))?.ok_or_else(|| {
        ApiError::not_found(
            "unknown_licence",
            "no regulator attested a licence with this hash",
        )
    })?;
    ok(&api::Licence::from(&record))
}

/// Whether the reader speaks for the institution or practitioner in the path.
fn speaks_for(
    shared: &Shared,
    reader: &Reader,
    r: &Request,
    practitioner: bool,
) -> Result<(Grantee, bool), ApiError> {
    if practitioner {
        let id = parse_practitioner(r.param(0))?;
        let record: Option<PractitionerRecord> = get(shared, &StateKey::Practitioner(id))?;
        let own_institution = record.as_ref().is_some_and(|p| {
            reader.institution.as_ref() == Some(&p.institution) && reader.practitioner.is_none()
        });
        Ok((
            Grantee::Practitioner(id),
            reader.regulator || reader.practitioner == Some(id) || own_institution,
        ))
    } else {
        let id = parse_institution(r.param(0))?;
        let allowed = reader.regulator || reader.institution.as_ref() == Some(&id);
        Ok((Grantee::Institution(id), allowed))
    }
}

/// `GET /v1/institutions/{id}/grants`, `GET /v1/practitioners/{id}/grants`:
/// grants made to that grantee, for the grantee itself and regulators.
pub fn party_grants(shared: &Shared, r: &Request, practitioner: bool) -> Answer {
    let reader = r.reader()?;
    let page = Page::of(r)?;
    let (grantee, allowed) = speaks_for(shared, reader, r, practitioner)?;
    if !allowed {
        return Err(ApiError::forbidden());
    }
    let indexes = shared.store.audit_indexes_for_grantee(&grantee)?;
    page.answer(shared, indexes, |entry| match &entry.event {
        AuditEvent::Granted { grant } => Ok(get::<GrantRecord>(shared, &StateKey::Grant(*grant))?
            .map(|g| api::Grant::new(grant, &g, now()))),
        _ => Ok(None),
    })
}

/// `GET /v1/institutions/{id}/accesses` (as holder) and
/// `GET /v1/practitioners/{id}/accesses` (as requester): access decisions,
/// for that party and regulators.
pub fn party_accesses(shared: &Shared, r: &Request, practitioner: bool) -> Answer {
    let reader = r.reader()?;
    let page = Page::of(r)?;
    let (party, allowed) = speaks_for(shared, reader, r, practitioner)?;
    if !allowed {
        return Err(ApiError::forbidden());
    }
    let indexes = match &party {
        Grantee::Practitioner(p) => shared.store.audit_indexes_for_requester(p)?,
        Grantee::Institution(i) => shared.store.audit_indexes_for_holder(i.as_str())?,
        // `speaks_for` names an institution or a practitioner only.
        Grantee::Group(_) => Vec::new(),
    };
    page.answer(shared, indexes, |entry| match &entry.event {
        AuditEvent::AccessDecided { request, .. } => {
            Ok(get::<AccessRecord>(shared, &StateKey::Access(*request))?
                .map(|a| api::Access::new(request, &a)))
        }
        _ => Ok(None),
    })
}
