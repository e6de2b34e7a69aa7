//! FHIR R4 views of the ledger: a grant as a `Consent`, a patient's audit
//! entries as `AuditEvent`s in a search `Bundle`. Same access rules as the
//! JSON routes. Identifiers are the ledger's pseudonymous ids under
//! `urn:medledger:*` systems; no name or record number appears.

use std::time::{Duration, UNIX_EPOCH};

use medledger_contracts::Hash32;
use medledger_contracts::records::{
    AccessKindTag, AccessRecord, AuditEntry, AuditEvent, Decision, GrantRecord,
};
use medledger_contracts::state::{Overlay, StateKey};
use medledger_contracts::types::{Category, Grantee, Holders, PatientId, Purpose, Timestamp};
use serde_json::{Value, json};
use warp::Reply;

use super::access::Visibility;
use super::chain::parse_tx;
use super::{Answer, ApiError, Request};
use crate::clock::now;
use crate::shared::Shared;

const FHIR_JSON: &str = "application/fhir+json";

fn fhir(body: Value) -> Answer {
    Ok(
        warp::reply::with_header(warp::reply::json(&body), "content-type", FHIR_JSON)
            .into_response(),
    )
}

/// An RFC 3339 instant (FHIR `instant`/`dateTime`) with milliseconds, UTC.
pub fn instant(t: Timestamp) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(t.0)).to_string()
}

fn identifier(system: &str, value: impl Into<String>) -> Value {
    json!({"identifier": {"system": system, "value": value.into()}})
}

fn patient_ref(patient: &PatientId) -> Value {
    identifier("urn:medledger:patient", patient.0.to_hex())
}

fn institution_ref(id: &str) -> Value {
    identifier("urn:medledger:institution", id)
}

fn purpose_code(purpose: Purpose) -> (&'static str, &'static str) {
    // HL7 v3 ActReason codes.
    match purpose {
        Purpose::Treatment | Purpose::Referral | Purpose::Consultation => ("TREAT", "treatment"),
        Purpose::ContinuityOfCare => ("COC", "coordination of care"),
        Purpose::InsuranceClaim => ("HPAYMT", "healthcare payment"),
        Purpose::Research => ("HRESCH", "healthcare research"),
    }
}

/// A grant as a FHIR R4 `Consent`.
pub fn consent(shared: &Shared, r: &Request) -> Answer {
    let id = parse_tx(r.param(0))?;
    let reader = r.reader()?;
    let grant: GrantRecord = Overlay::new(&shared.store)
        .get(&StateKey::Grant(id))?
        .ok_or_else(ApiError::forbidden)?;
    if !Visibility::new(shared, reader, grant.terms.patient)?.terms(&grant.terms)? {
        return Err(ApiError::forbidden());
    }
    fhir(consent_resource(&id.0, &grant))
}

fn consent_resource(id: &Hash32, grant: &GrantRecord) -> Value {
    use medledger_contracts::records::GrantStatus;
    let terms = &grant.terms;
    let status = match grant.status_at(now()) {
        GrantStatus::Active => "active",
        GrantStatus::Pending => "proposed",
        GrantStatus::Expired | GrantStatus::Revoked | GrantStatus::Relinquished => "inactive",
    };
    let grantee = match &terms.grantee {
        Grantee::Institution(i) => institution_ref(i.as_str()),
        Grantee::Practitioner(p) => identifier("urn:medledger:practitioner", p.0.to_hex()),
    };
    let mut actors = vec![json!({
        "role": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
            "code": "IRCP", "display": "information recipient"
        }]},
        "reference": grantee,
    })];
    if let Holders::Listed(list) = &terms.holders {
        for holder in list.iter() {
            actors.push(json!({
                "role": {"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                    "code": "CST", "display": "custodian"
                }]},
                "reference": institution_ref(holder.as_str()),
            }));
        }
    }
    let (purpose, purpose_display) = purpose_code(terms.purpose);
    let mut provision = json!({
        "type": "permit",
        "period": {"start": instant(terms.not_before), "end": instant(terms.expires_at)},
        "actor": actors,
        "action": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/consentaction",
            "code": "access", "display": "Access"
        }]}],
        "purpose": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
            "code": purpose, "display": purpose_display
        }],
    });
    if !terms.categories.contains(&Category::FullRecord) {
        let mut classes: Vec<&str> = terms
            .categories
            .iter()
            .flat_map(|c| c.fhir_resource_types().iter().copied())
            .collect();
        classes.sort_unstable();
        classes.dedup();
        provision["class"] = json!(
            classes
                .iter()
                .map(|c| json!({"system": "http://hl7.org/fhir/resource-types", "code": c}))
                .collect::<Vec<_>>()
        );
    }
    json!({
        "resourceType": "Consent",
        "id": id.to_hex(),
        "status": status,
        "scope": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/consentscope",
            "code": "patient-privacy", "display": "Privacy Consent"
        }]},
        "category": [{"coding": [{
            "system": "http://loinc.org", "code": "59284-0", "display": "Patient Consent"
        }]}],
        "patient": patient_ref(&terms.patient),
        "dateTime": instant(grant.granted_at.time),
        "identifier": [{"system": "urn:medledger:grant", "value": id.to_hex()}],
        "policyRule": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
            "code": "OPTIN", "display": "opt-in"
        }]},
        "sourceReference": {"identifier": {"system": "urn:medledger:notice-sha256", "value": terms.notice_hash.to_hex()}},
        "provision": provision,
    })
}

/// `GET /fhir/AuditEvent?patient=…`: the patient's audit entries the reader
/// may see, as a FHIR R4 search `Bundle` of `AuditEvent`s.
pub fn audit_events(shared: &Shared, r: &Request) -> Answer {
    let reader = r.reader()?;
    let patient = r.query_param("patient").ok_or_else(|| {
        ApiError::bad_request("missing_query_parameter", "give `patient=<patient id>`")
    })?;
    let patient = Hash32::from_hex(patient)
        .map(PatientId)
        .map_err(|_| ApiError::bad_request("bad_id", "a patient id is 64 hex characters"))?;
    let vis = Visibility::new(shared, reader, patient)?;
    if !vis.whole && reader.institution.is_none() {
        return Err(ApiError::forbidden());
    }
    let page = super::patients::Page::of(r)?;
    let indexes = shared.store.audit_indexes_for_patient(&patient.0)?;
    let (items, next_after) = page.collect(shared, indexes, |entry| {
        if !vis.entry(entry)? {
            return Ok(None);
        }
        let access: Option<AccessRecord> = match &entry.event {
            AuditEvent::AccessDecided { request, .. }
            | AuditEvent::Released { request, .. }
            | AuditEvent::FetchRefused { request, .. }
            | AuditEvent::EmergencyReviewed { request, .. } => {
                Overlay::new(&shared.store).get(&StateKey::Access(*request))?
            }
            _ => None,
        };
        Ok(Some(json!({
            "fullUrl": format!("urn:medledger:audit:{}", entry.index),
            "resource": audit_event_resource(shared, entry, access.as_ref()),
        })))
    })?;
    let mut bundle = json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": items.len(),
        "entry": items,
    });
    if let Some(next) = next_after {
        bundle["link"] = json!([{
            "relation": "next",
            "url": format!("/fhir/AuditEvent?patient={}&after={next}", patient.0.to_hex()),
        }]);
    }
    fhir(bundle)
}

fn audit_event_resource(
    shared: &Shared,
    entry: &AuditEntry,
    access: Option<&AccessRecord>,
) -> Value {
    let (subtype, action) = match &entry.event {
        AuditEvent::Granted { .. } => ("granted", "C"),
        AuditEvent::Revoked { .. } => ("revoked", "U"),
        AuditEvent::Relinquished { .. } => ("relinquished", "U"),
        AuditEvent::ConsentRequested { .. } => ("consent-requested", "C"),
        AuditEvent::ConsentAnswered { .. } => ("consent-answered", "U"),
        AuditEvent::DelegationStarted { .. } => ("delegation-started", "C"),
        AuditEvent::DelegationEnded { .. } => ("delegation-ended", "U"),
        AuditEvent::AccessDecided { .. } => ("access-decided", "E"),
        AuditEvent::Released { .. } => ("released", "R"),
        AuditEvent::EmergencyReviewed { .. } => ("emergency-reviewed", "U"),
        AuditEvent::FetchRefused { .. } => ("fetch-refused", "R"),
        AuditEvent::ControlChanged { .. } => ("control-changed", "U"),
        AuditEvent::EmergencyReviewOverdue { .. } => ("emergency-review-overdue", "E"),
    };
    // DICOM: 110106 Export for a release, 110110 Patient Record otherwise.
    let (type_code, type_display) = match &entry.event {
        AuditEvent::Released { .. } => ("110106", "Export"),
        _ => ("110110", "Patient Record"),
    };
    let (outcome, outcome_desc) = match &entry.event {
        AuditEvent::AccessDecided {
            decision: Decision::Denied(reason),
            ..
        } => ("4", Some(reason.to_string())),
        AuditEvent::FetchRefused { reason, .. } => (
            "4",
            Some(format!("the holder refused the fetch: {}", reason.code())),
        ),
        _ => ("0", None),
    };
    let mut agents = Vec::new();
    match &entry.event {
        AuditEvent::AccessDecided {
            requester, holder, ..
        } => {
            agents.push(json!({
                "who": identifier("urn:medledger:practitioner", requester.0.to_hex()),
                "requestor": true,
            }));
            agents.push(json!({"who": institution_ref(holder.as_str()), "requestor": false}));
        }
        AuditEvent::FetchRefused {
            holder,
            practitioner,
            ..
        } => {
            agents.push(json!({
                "who": identifier("urn:medledger:practitioner", practitioner.0.to_hex()),
                "requestor": true,
            }));
            agents.push(json!({"who": institution_ref(holder.as_str()), "requestor": false}));
        }
        AuditEvent::Released { holder, .. } => {
            agents.push(json!({"who": institution_ref(holder.as_str()), "requestor": false}));
            if let Some(a) = access {
                agents.push(json!({
                    "who": identifier("urn:medledger:practitioner", a.requester.0.to_hex()),
                    "requestor": true,
                }));
            }
        }
        _ => agents.push(json!({"who": patient_ref(&entry.patient), "requestor": true})),
    }
    let mut resource = json!({
        "resourceType": "AuditEvent",
        "id": format!("audit-{}", entry.index),
        "type": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": type_code, "display": type_display},
        "subtype": [{"system": "urn:medledger:audit-event", "code": subtype}],
        "action": action,
        "recorded": instant(entry.at.time),
        "outcome": outcome,
        "agent": agents,
        "source": {
            "site": format!("height {}", entry.at.height),
            "observer": identifier("urn:medledger:chain", shared.chain.as_str()),
        },
        "entity": [
            {"what": patient_ref(&entry.patient), "type": {
                "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1", "display": "Person"
            }},
            {"what": identifier("urn:medledger:transaction", entry.tx.0.to_hex())},
        ],
    });
    if let Some(desc) = outcome_desc {
        resource["outcomeDesc"] = json!(desc);
    }
    let purpose = match &entry.event {
        AuditEvent::AccessDecided {
            kind: AccessKindTag::Emergency,
            ..
        } => Some(("ETREAT", "emergency treatment")),
        AuditEvent::AccessDecided {
            kind: AccessKindTag::PublicHealth,
            ..
        } => Some(("PUBHLTH", "public health")),
        _ => None,
    };
    if let Some((code, display)) = purpose {
        resource["purposeOfEvent"] = json!([{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": code, "display": display
        }]}]);
    }
    resource
}
