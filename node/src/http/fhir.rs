//! FHIR R4 views of the ledger: a grant as a `Consent`, a patient's audit
//! entries as `AuditEvent`s in a search `Bundle`. Same access rules as the
//! JSON routes. Identifiers are the ledger's pseudonymous ids under
//! `urn:medledger:*` systems; no name or record number appears.

use std::time::{Duration, UNIX_EPOCH};

use medledger_api::fhir::{
    Agent, AuditEvent as FhirAuditEvent, AuditEventType, Bundle, BundleEntry, BundleLink,
    BundleType, Coding, Consent, ConsentType, DataPeriod, Entity, Identifier, Period, Provision,
    ProvisionActor, ProvisionException, Reference, Source,
};
use medledger_contracts::Hash32;
use medledger_contracts::records::{
    AccessKindTag, AccessRecord, AuditEntry, AuditEvent, Decision, GrantRecord,
};
use medledger_contracts::state::{Overlay, StateKey};
use medledger_contracts::types::{
    Category, GrantTerms, Grantee, Holders, PatientId, Purpose, SensitiveClass, Timestamp,
};
use warp::Reply;

use super::access::Visibility;
use super::chain::parse_tx;
use super::{Answer, ApiError, Request};
use crate::clock::now;
use crate::shared::Shared;

const FHIR_JSON: &str = "application/fhir+json";
const PARTICIPATION: &str = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";
const ACT_REASON: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";
const ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";

fn fhir<T: serde::Serialize>(body: &T) -> Answer {
    Ok(
        warp::reply::with_header(warp::reply::json(body), "content-type", FHIR_JSON)
            .into_response(),
    )
}

/// An RFC 3339 instant (FHIR `instant`/`dateTime`) with milliseconds, UTC.
pub fn instant(t: Timestamp) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(t.0)).to_string()
}

fn patient_ref(patient: &PatientId) -> Reference {
    Reference::to("urn:medledger:patient", patient.0.to_hex())
}

fn institution_ref(id: &str) -> Reference {
    Reference::to("urn:medledger:institution", id)
}

fn practitioner_ref(id: &Hash32) -> Reference {
    Reference::to("urn:medledger:practitioner", id.to_hex())
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
    fhir(&consent_resource(&id.0, &grant, shared.chain.hash()))
}

/// The security labels of the sensitive classes a grant leaves out, as
/// one `deny` provision (none if it includes every class).
fn left_out_labels(terms: &GrantTerms) -> Vec<ProvisionException> {
    let labels: Vec<Coding> = SensitiveClass::ALL
        .into_iter()
        .filter(|c| !terms.sensitive_included.contains(c))
        .flat_map(|c| c.security_labels().iter())
        .map(|code| Coding::bare(ACT_CODE, code))
        .collect();
    if labels.is_empty() {
        Vec::new()
    } else {
        vec![ProvisionException {
            kind: "deny".into(),
            security_label: labels,
        }]
    }
}

fn consent_resource(
    id: &Hash32,
    grant: &GrantRecord,
    hash: medledger_contracts::encoding::HashFunction,
) -> Consent {
    use medledger_contracts::records::GrantStatus;
    let terms = &grant.terms;
    let status = match grant.status_at(now()) {
        GrantStatus::Active => "active",
        GrantStatus::Pending => "proposed",
        GrantStatus::Expired | GrantStatus::Revoked | GrantStatus::Relinquished => "inactive",
    };
    let grantee = match &terms.grantee {
        Grantee::Institution(i) => institution_ref(i.as_str()),
        Grantee::Practitioner(p) => practitioner_ref(&p.0),
        Grantee::Group(g) => Reference::to("urn:medledger:group", g.as_str()),
    };
    let mut actor = vec![ProvisionActor {
        role: Coding::new(PARTICIPATION, "IRCP", "information recipient").into(),
        reference: grantee,
    }];
    if let Holders::Listed(list) = &terms.holders {
        for holder in list.iter() {
            actor.push(ProvisionActor {
                role: Coding::new(PARTICIPATION, "CST", "custodian").into(),
                reference: institution_ref(holder.as_str()),
            });
        }
    }
    let (purpose, purpose_display) = purpose_code(terms.purpose);
    let class = (!terms.categories.contains(&Category::FullRecord)).then(|| {
        let mut classes: Vec<&str> = terms
            .categories
            .iter()
            .flat_map(|c| c.fhir_resource_types().iter().copied())
            .collect();
        classes.sort_unstable();
        classes.dedup();
        classes
            .iter()
            .map(|c| Coding::bare("http://hl7.org/fhir/resource-types", c))
            .collect()
    });
    Consent {
        resource_type: ConsentType::Consent,
        id: id.to_hex(),
        status: status.into(),
        scope: Coding::new(
            "http://terminology.hl7.org/CodeSystem/consentscope",
            "patient-privacy",
            "Privacy Consent",
        )
        .into(),
        category: vec![Coding::new("http://loinc.org", "59284-0", "Patient Consent").into()],
        patient: patient_ref(&terms.patient),
        date_time: instant(grant.granted_at.time),
        identifier: vec![Identifier {
            system: "urn:medledger:grant".into(),
            value: id.to_hex(),
        }],
        policy_rule: Coding::new(ACT_CODE, "OPTIN", "opt-in").into(),
        // The system names the chain's hash function, which made the
        // notice's hash: `urn:medledger:notice-sha256` or `…-sm3`.
        source_reference: Reference::to(
            &format!("urn:medledger:notice-{}", hash.name()),
            terms.notice_hash.to_hex(),
        ),
        provision: Provision {
            kind: "permit".into(),
            period: Period {
                start: instant(terms.not_before),
                end: instant(terms.expires_at),
            },
            actor,
            action: vec![
                Coding::new(
                    "http://terminology.hl7.org/CodeSystem/consentaction",
                    "access",
                    "Access",
                )
                .into(),
            ],
            purpose: vec![Coding::new(ACT_REASON, purpose, purpose_display)],
            class,
            data_period: (terms.records_from.is_some() || terms.records_until.is_some()).then(
                || DataPeriod {
                    start: terms.records_from.map(instant),
                    end: terms.records_until.map(instant),
                },
            ),
            except: left_out_labels(terms),
        },
    }
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
    let (entry, next_after) = page.collect(shared, indexes, |entry| {
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
        Ok(Some(BundleEntry {
            full_url: format!("urn:medledger:audit:{}", entry.index),
            resource: audit_event_resource(shared, entry, access.as_ref()),
        }))
    })?;
    fhir(&Bundle {
        resource_type: BundleType::Bundle,
        kind: "searchset".into(),
        total: entry.len() as u64,
        entry,
        link: next_after.map(|next| {
            vec![BundleLink {
                relation: "next".into(),
                url: format!(
                    "/fhir/AuditEvent?patient={}&after={next}",
                    patient.0.to_hex()
                ),
            }]
        }),
    })
}

fn audit_event_resource(
    shared: &Shared,
    entry: &AuditEntry,
    access: Option<&AccessRecord>,
) -> FhirAuditEvent {
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
        AuditEvent::OwnRecordsRequested { .. } => ("own-records-requested", "E"),
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
    let acted = |who: Reference| Agent {
        who,
        requestor: true,
    };
    let asked = |who: Reference| Agent {
        who,
        requestor: false,
    };
    let agent = match &entry.event {
        AuditEvent::AccessDecided {
            requester, holder, ..
        } => vec![
            acted(practitioner_ref(&requester.0)),
            asked(institution_ref(holder.as_str())),
        ],
        AuditEvent::FetchRefused {
            holder,
            practitioner,
            ..
        } => vec![
            acted(practitioner_ref(&practitioner.0)),
            asked(institution_ref(holder.as_str())),
        ],
        AuditEvent::Released { holder, .. } => {
            let mut agents = vec![asked(institution_ref(holder.as_str()))];
            match access {
                Some(a) => agents.push(acted(practitioner_ref(&a.requester.0))),
                // A release of the patient's own records (R7.8).
                None => agents.push(acted(patient_ref(&entry.patient))),
            }
            agents
        }
        AuditEvent::OwnRecordsRequested { holder, .. } => vec![
            acted(patient_ref(&entry.patient)),
            asked(institution_ref(holder.as_str())),
        ],
        _ => vec![acted(patient_ref(&entry.patient))],
    };
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
    FhirAuditEvent {
        resource_type: AuditEventType::AuditEvent,
        id: format!("audit-{}", entry.index),
        kind: Coding::new(
            "http://dicom.nema.org/resources/ontology/DCM",
            type_code,
            type_display,
        ),
        subtype: vec![Coding::bare("urn:medledger:audit-event", subtype)],
        action: action.into(),
        recorded: instant(entry.at.time),
        outcome: outcome.into(),
        outcome_desc,
        purpose_of_event: purpose
            .map(|(code, display)| vec![Coding::new(ACT_REASON, code, display).into()]),
        agent,
        source: Source {
            site: format!("height {}", entry.at.height),
            observer: Reference::to("urn:medledger:chain", shared.chain.id.as_str()),
        },
        entity: vec![
            Entity {
                what: patient_ref(&entry.patient),
                kind: Some(Coding::new(
                    "http://terminology.hl7.org/CodeSystem/audit-entity-type",
                    "1",
                    "Person",
                )),
            },
            Entity {
                what: Reference::to("urn:medledger:transaction", entry.tx.0.to_hex()),
                kind: None,
            },
        ],
    }
}
