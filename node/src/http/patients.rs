//! Signed reads about patients and the parties named in their consent:
//! grants (with proofs), consent requests, delegations, access history, and
//! what an institution or practitioner has been granted or has asked for.

use medledger_contracts::Hash32;
use medledger_contracts::encoding::{from_bytes, to_bytes};
use medledger_contracts::records::{
    AccessKind, AccessRecord, AuditEntry, AuditEvent, ConsentRequestRecord, ControlChange,
    Decision, DelegationRecord, GrantEnd, GrantRecord, InstitutionRecord, PatientRecord,
    PractitionerRecord,
};
use medledger_contracts::state::{Overlay, StateKey};
use medledger_contracts::transaction::{SignedTransaction, Signer};
use medledger_contracts::types::{
    GrantTerms, Grantee, Holders, InstitutionId, PatientId, PractitionerId, TxHash,
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::access::{Reader, Visibility};
use super::chain::{outcome_json, parse_tx, prove};
use super::{Answer, ApiError, Request, ok};
use crate::clock::now;
use crate::shared::Shared;

/// Most items on one page.
pub const PAGE_MAX: u64 = 500;
/// Items on a page when the caller does not say.
const PAGE_DEFAULT: u64 = 100;

fn get<T: DeserializeOwned>(shared: &Shared, key: &StateKey) -> Result<Option<T>, ApiError> {
    Ok(Overlay::new(&shared.store).get(key)?)
}

/// A signer as JSON.
pub fn signer_json(signer: &Signer) -> Value {
    match signer {
        Signer::Patient(p) => json!({"patient": p.0.to_hex()}),
        Signer::Delegate(d) => json!({"delegate": d.0.to_hex()}),
        Signer::Practitioner(p) => json!({"practitioner": p.0.to_hex()}),
        Signer::Institution(i) => json!({"institution": i.as_str()}),
        Signer::InstitutionNode(i) => json!({"institution_node": i.as_str()}),
    }
}

/// A grantee as JSON.
pub fn grantee_json(grantee: &Grantee) -> Value {
    match grantee {
        Grantee::Institution(i) => json!({"institution": i.as_str()}),
        Grantee::Practitioner(p) => json!({"practitioner": p.0.to_hex()}),
    }
}

/// Grant terms as JSON.
pub fn terms_json(terms: &GrantTerms) -> Value {
    json!({
        "patient": terms.patient.0.to_hex(),
        "grantee": grantee_json(&terms.grantee),
        "categories": terms.categories.iter().map(|c| c.name()).collect::<Vec<_>>(),
        "holders": match &terms.holders {
            Holders::Any => json!("any"),
            Holders::Listed(list) => json!(list.iter().map(|h| h.as_str()).collect::<Vec<_>>()),
        },
        "purpose": terms.purpose.name(),
        "not_before_ms": terms.not_before.0,
        "expires_at_ms": terms.expires_at.0,
        "notice_hash": terms.notice_hash.to_hex(),
    })
}

/// A grant as JSON, with its status now.
pub fn grant_json(id: &TxHash, grant: &GrantRecord) -> Value {
    json!({
        "id": id.0.to_hex(),
        "status": grant.status_at(now()).name(),
        "terms": terms_json(&grant.terms),
        "granted_by": signer_json(&grant.granted_by),
        "granted_at": {"height": grant.granted_at.height, "time_ms": grant.granted_at.time.0},
        "answers": grant.answers.map(|r| r.0.to_hex()),
        "ended": grant.ended.as_ref().map(|e| match e {
            GrantEnd::Revoked { at, by } => json!({
                "revoked": {"height": at.height, "time_ms": at.time.0}, "by": signer_json(by)
            }),
            GrantEnd::Relinquished { at } => json!({
                "relinquished": {"height": at.height, "time_ms": at.time.0}
            }),
        }),
    })
}

fn consent_request_json(id: &TxHash, r: &ConsentRequestRecord) -> Value {
    json!({
        "id": id.0.to_hex(),
        "terms": terms_json(&r.terms),
        "requested_by": signer_json(&r.requested_by),
        "requested_at": {"height": r.requested_at.height, "time_ms": r.requested_at.time.0},
        "answer": r.answer.as_ref().map(|(approved, at, tx)| json!({
            "approved": approved, "height": at.height, "time_ms": at.time.0, "tx": tx.0.to_hex(),
        })),
    })
}

fn delegation_json(id: &TxHash, d: &DelegationRecord) -> Value {
    json!({
        "id": id.0.to_hex(),
        "patient": d.patient.0.to_hex(),
        "delegate": d.delegate.0.to_hex(),
        "role": d.role.name(),
        "active": d.is_active_at(now()),
        "created_at": {"height": d.created_at.height, "time_ms": d.created_at.time.0},
        "expires_at_ms": d.expires_at.0,
        "recorded_by": d.recorded_by.as_ref().map(|i| i.as_str()),
        "ended_at": d.ended_at.as_ref().map(|at| json!({"height": at.height, "time_ms": at.time.0})),
    })
}

/// An access as JSON.
pub fn access_json(id: &TxHash, a: &AccessRecord) -> Value {
    json!({
        "id": id.0.to_hex(),
        "patient": a.patient.0.to_hex(),
        "requester": a.requester.0.to_hex(),
        "requester_institution": a.requester_institution.as_str(),
        "holder": a.holder.as_str(),
        "categories": a.categories.iter().map(|c| c.name()).collect::<Vec<_>>(),
        "kind": match &a.kind {
            AccessKind::Grant { grant, purpose } => json!({
                "grant": {"grant": grant.0.to_hex(), "purpose": purpose.name()}
            }),
            AccessKind::Emergency { reason, review } => json!({
                "emergency": {
                    "reason": reason.name(),
                    "review": review.as_ref().map(|r| json!({
                        "reviewer": r.reviewer.as_str(),
                        "finding": r.finding.name(),
                        "height": r.at.height,
                    })),
                }
            }),
            AccessKind::PublicHealth { legal_basis, .. } => json!({
                "public_health": {"legal_basis": legal_basis.name()}
            }),
        },
        "at": {"height": a.at.height, "time_ms": a.at.time.0},
        "decision": match &a.decision {
            Decision::Authorized => json!("authorized"),
            Decision::Denied(reason) => json!({"denied": reason.to_string()}),
        },
        "release": a.release.as_ref().map(|r| json!({
            "height": r.at.height,
            "time_ms": r.at.time.0,
            "content_hashes": r.content_hashes.iter().map(Hash32::to_hex).collect::<Vec<_>>(),
            "grant_active_at_release": r.grant_active_at_release,
        })),
    })
}

/// An audit entry as JSON.
pub fn entry_json(entry: &AuditEntry) -> Value {
    let event = match &entry.event {
        AuditEvent::Granted { grant } => json!({"type": "granted", "grant": grant.0.to_hex()}),
        AuditEvent::Revoked { grant } => json!({"type": "revoked", "grant": grant.0.to_hex()}),
        AuditEvent::Relinquished { grant } => {
            json!({"type": "relinquished", "grant": grant.0.to_hex()})
        }
        AuditEvent::ConsentRequested { request } => {
            json!({"type": "consent_requested", "request": request.0.to_hex()})
        }
        AuditEvent::ConsentAnswered { request, approved } => json!({
            "type": "consent_answered", "request": request.0.to_hex(), "approved": approved
        }),
        AuditEvent::DelegationStarted { delegation, role } => json!({
            "type": "delegation_started", "delegation": delegation.0.to_hex(),
            "role": role.name()
        }),
        AuditEvent::DelegationEnded { delegation } => {
            json!({"type": "delegation_ended", "delegation": delegation.0.to_hex()})
        }
        AuditEvent::ControlChanged {
            change,
            effective_at,
        } => {
            let mut event = json!({
                "type": "control_changed",
                "change": change.name(),
                "effective_at": effective_at.0,
            });
            if let ControlChange::RecoveryApproved { contact } = change {
                event["contact"] = json!(contact.0.to_hex());
            }
            event
        }
        AuditEvent::AccessDecided {
            request,
            requester,
            holder,
            kind,
            decision,
        } => json!({
            "type": "access_decided",
            "request": request.0.to_hex(),
            "requester": requester.0.to_hex(),
            "holder": holder.as_str(),
            "kind": kind.name(),
            "decision": match decision {
                Decision::Authorized => json!("authorized"),
                Decision::Denied(reason) => json!({"denied": reason.to_string()}),
            },
        }),
        AuditEvent::Released {
            request,
            holder,
            content_count,
            grant_active,
        } => json!({
            "type": "released",
            "request": request.0.to_hex(),
            "holder": holder.as_str(),
            "content_count": content_count,
            "grant_active": grant_active,
        }),
        AuditEvent::EmergencyReviewOverdue {
            request,
            requester_institution,
            deadline,
        } => json!({
            "type": "emergency_review_overdue",
            "request": request.0.to_hex(),
            "requester_institution": requester_institution.as_str(),
            "deadline": deadline.0,
        }),
        AuditEvent::EmergencyReviewed { request, finding } => json!({
            "type": "emergency_reviewed",
            "request": request.0.to_hex(),
            "finding": finding.name(),
        }),
        AuditEvent::FetchRefused {
            request,
            holder,
            practitioner,
            reason,
        } => json!({
            "type": "fetch_refused",
            "request": request.0.to_hex(),
            "holder": holder.as_str(),
            "practitioner": practitioner.0.to_hex(),
            "reason": reason.code(),
        }),
    };
    json!({
        "index": entry.index,
        "height": entry.at.height,
        "time_ms": entry.at.time.0,
        "tx": entry.tx.0.to_hex(),
        "patient": entry.patient.0.to_hex(),
        "event": event,
    })
}

fn parse_patient(text: &str) -> Result<PatientId, ApiError> {
    Hash32::from_hex(text).map(PatientId).map_err(|_| {
        ApiError::bad_request(
            "bad_id",
            format!("a patient id is 64 hex characters, got {text:?}"),
        )
    })
}

fn parse_practitioner(text: &str) -> Result<PractitionerId, ApiError> {
    Hash32::from_hex(text).map(PractitionerId).map_err(|_| {
        ApiError::bad_request(
            "bad_id",
            format!("a practitioner id is 64 hex characters, got {text:?}"),
        )
    })
}

fn parse_institution(text: &str) -> Result<InstitutionId, ApiError> {
    InstitutionId::new(text).map_err(|e| ApiError::bad_request("bad_id", e))
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
    pub fn collect(
        &self,
        shared: &Shared,
        indexes: Vec<u64>,
        mut keep: impl FnMut(&AuditEntry) -> Result<Option<Value>, ApiError>,
    ) -> Result<(Vec<Value>, Option<u64>), ApiError> {
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
    pub fn answer(
        &self,
        shared: &Shared,
        indexes: Vec<u64>,
        keep: impl FnMut(&AuditEntry) -> Result<Option<Value>, ApiError>,
    ) -> Answer {
        let (items, next_after) = self.collect(shared, indexes, keep)?;
        ok(json!({"items": items, "next_after": next_after}))
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
    ok(json!({
        "patient": patient.0.to_hex(),
        "policy": record.recovery.as_ref().map(|policy| json!({
            "contacts": policy.delegates.iter().map(|d| d.0.to_hex()).collect::<Vec<_>>(),
            "threshold": policy.threshold,
        })),
        "approvals": record.recovery_approvals.iter().map(|(contact, key)| json!({
            "contact": contact.0.to_hex(),
            "new_key": key.to_text(),
        })).collect::<Vec<_>>(),
        // Changes waiting out the delay (R4.2, R4.3): the patient's current
        // key can cancel them until `effective_at`.
        "pending_policy": record.pending_recovery.as_ref().map(|p| json!({
            "contacts": p.value.delegates.iter().map(|d| d.0.to_hex()).collect::<Vec<_>>(),
            "threshold": p.value.threshold,
            "effective_at": p.effective_at.0,
        })),
        "pending_key": record.pending_key.as_ref().map(|p| json!({
            "new_key": p.value.to_text(),
            "effective_at": p.effective_at.0,
        })),
    }))
}

/// `GET /v1/patients/{patient}/…`.
pub fn patient_list(shared: &Shared, r: &Request, list: List) -> Answer {
    let patient = parse_patient(r.param(0))?;
    let reader = r.reader()?;
    let page = Page::of(r)?;
    let vis = visibility(shared, reader, patient)?;
    let indexes = shared.store.audit_indexes_for_patient(&patient.0)?;
    page.answer(shared, indexes, |entry| match (list, &entry.event) {
        (List::History, _) => Ok(vis.entry(entry)?.then(|| entry_json(entry))),
        (List::Grants, AuditEvent::Granted { grant }) => {
            Ok(get::<GrantRecord>(shared, &StateKey::Grant(*grant))?
                .filter(|g| vis.terms(&g.terms).unwrap_or(false))
                .map(|g| grant_json(grant, &g)))
        }
        (List::ConsentRequests, AuditEvent::ConsentRequested { request }) => {
            Ok(
                get::<ConsentRequestRecord>(shared, &StateKey::ConsentRequest(*request))?
                    .filter(|c| vis.terms(&c.terms).unwrap_or(false))
                    .map(|c| consent_request_json(request, &c)),
            )
        }
        (List::Delegations, AuditEvent::DelegationStarted { delegation, .. }) => {
            if !vis.entry(entry)? {
                return Ok(None);
            }
            Ok(
                get::<DelegationRecord>(shared, &StateKey::Delegation(*delegation))?
                    .map(|d| delegation_json(delegation, &d)),
            )
        }
        _ => Ok(None),
    })
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
    ok(json!({
        "height": height,
        "grant": at_height.as_ref().map(|g| grant_json(&id, g)),
        "status_at_height": at_height.as_ref().map(|g| g.status_at(proved.header.time).name()),
        "proved": hex::encode(to_bytes(&proved)),
    }))
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
        .find(|t| t.transaction.id(&shared.chain) == id)
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
    ok(transaction_json(shared, height, tx, &receipt.outcome))
}

fn transaction_json(
    shared: &Shared,
    height: u64,
    tx: &SignedTransaction,
    outcome: &medledger_contracts::records::Outcome,
) -> Value {
    json!({
        "id": tx.transaction.id(&shared.chain).0.to_hex(),
        "height": height,
        "signer": signer_json(&tx.transaction.signer),
        "nonce": tx.transaction.nonce,
        "kind": tx.transaction.payload.name(),
        "outcome": outcome_json(outcome),
        "bcs": hex::encode(tx.to_bytes()),
    })
}

/// `GET /v1/institutions`: every member's public id, name, kind and status.
pub fn institutions(shared: &Shared) -> Answer {
    let items: Vec<Value> = shared
        .institution_records()
        .map_err(ApiError::internal)?
        .iter()
        .map(|record| {
            json!({
                "id": record.spec.id.as_str(),
                "name": record.spec.name.as_str(),
                "kind": record.spec.kind.name(),
                "status": record.status.name(),
            })
        })
        .collect();
    ok(json!({"items": items}))
}

/// `GET /v1/institutions/{institution}`: a member's public record.
pub fn institution(shared: &Shared, r: &Request) -> Answer {
    let id = parse_institution(r.param(0))?;
    let record: InstitutionRecord =
        get(shared, &StateKey::Institution(id.clone()))?.ok_or_else(|| {
            ApiError::not_found("unknown_institution", format!("{id} is not a member"))
        })?;
    ok(json!({
        "id": record.spec.id.as_str(),
        "name": record.spec.name.as_str(),
        "kind": record.spec.kind.name(),
        "region_code": record.spec.region_code.as_str(),
        "status": record.status.name(),
        "admitted_at": record.admitted_at,
        "voting_power": record.spec.voting_power,
        "admin_key": record.spec.admin_key.to_text(),
        "node_key": record.spec.node_key.to_text(),
    }))
}

/// `GET /v1/practitioners/{practitioner}`: a practitioner's public record
/// (role and institution; the licence number stays with the institution).
pub fn practitioner(shared: &Shared, r: &Request) -> Answer {
    let id = parse_practitioner(r.param(0))?;
    let record: PractitionerRecord =
        get(shared, &StateKey::Practitioner(id))?.ok_or_else(|| {
            ApiError::not_found("unknown_practitioner", "no practitioner has this id")
        })?;
    ok(json!({
        "id": id.0.to_hex(),
        "institution": record.institution.as_str(),
        "role": record.role.name(),
        "status": record.status.name(),
        "key": record.key.to_text(),
    }))
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
        AuditEvent::Granted { grant } => Ok(
            get::<GrantRecord>(shared, &StateKey::Grant(*grant))?.map(|g| grant_json(grant, &g))
        ),
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
    };
    page.answer(shared, indexes, |entry| match &entry.event {
        AuditEvent::AccessDecided { request, .. } => {
            Ok(get::<AccessRecord>(shared, &StateKey::Access(*request))?
                .map(|a| access_json(request, &a)))
        }
        _ => Ok(None),
    })
}
