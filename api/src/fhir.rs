//! The FHIR R4 views the node serves (`application/fhir+json`): a grant as
//! a `Consent`, a patient's audit entries as `AuditEvent`s in a search
//! `Bundle`. Only the elements medledger fills are declared; each is the
//! FHIR R4 element of the same name, so any FHIR R4 client reads them.
//! Identifiers are the ledger's pseudonymous ids under `urn:medledger:*`
//! systems; no name or record number appears.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A code in a code system (FHIR `Coding`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "FhirCoding")]
pub struct Coding {
    /// The code system's URI.
    pub system: String,
    /// The code.
    pub code: String,
    /// Its display text, where the code system gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

impl Coding {
    /// A coding with its display text.
    pub fn new(system: &str, code: &str, display: &str) -> Self {
        Self {
            system: system.into(),
            code: code.into(),
            display: Some(display.into()),
        }
    }

    /// A coding without display text.
    pub fn bare(system: &str, code: &str) -> Self {
        Self {
            system: system.into(),
            code: code.into(),
            display: None,
        }
    }
}

/// Codings of one concept (FHIR `CodeableConcept`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "FhirCodeableConcept")]
pub struct CodeableConcept {
    /// The codings.
    pub coding: Vec<Coding>,
}

impl From<Coding> for CodeableConcept {
    fn from(coding: Coding) -> Self {
        Self {
            coding: vec![coding],
        }
    }
}

/// An identifier in a system (FHIR `Identifier`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "FhirIdentifier")]
pub struct Identifier {
    /// The system's URI (`urn:medledger:patient`, `…:institution`, …).
    pub system: String,
    /// The id.
    pub value: String,
}

/// A reference by identifier (FHIR `Reference` with `identifier` only).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "FhirReference")]
pub struct Reference {
    /// Who or what.
    pub identifier: Identifier,
}

impl Reference {
    /// A reference to `value` in `system`.
    pub fn to(system: &str, value: impl Into<String>) -> Self {
        Self {
            identifier: Identifier {
                system: system.into(),
                value: value.into(),
            },
        }
    }
}

/// A period (FHIR `Period`), RFC 3339 instants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "FhirPeriod")]
pub struct Period {
    /// In force from.
    pub start: String,
    /// In force until.
    pub end: String,
}

/// A grant as a FHIR R4 `Consent`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "FhirConsent")]
pub struct Consent {
    /// Always `Consent`.
    pub resource_type: ConsentType,
    /// The grant's id.
    pub id: String,
    /// `active`, `proposed` (not yet in force) or `inactive`.
    pub status: String,
    /// Patient privacy.
    pub scope: CodeableConcept,
    /// LOINC 59284-0, patient consent.
    pub category: Vec<CodeableConcept>,
    /// The patient.
    pub patient: Reference,
    /// When it was granted.
    pub date_time: String,
    /// The grant's id under `urn:medledger:grant`.
    pub identifier: Vec<Identifier>,
    /// Opt-in.
    pub policy_rule: CodeableConcept,
    /// The hash of the notice the patient was shown (the chain's hash function).
    pub source_reference: Reference,
    /// What is permitted.
    pub provision: Provision,
}

/// The one value of [`Consent::resource_type`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "FhirConsentType")]
pub enum ConsentType {
    /// A FHIR Consent.
    Consent,
}

/// What a `Consent` permits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "FhirProvision")]
pub struct Provision {
    /// Always `permit`.
    #[serde(rename = "type")]
    pub kind: String,
    /// When.
    pub period: Period,
    /// The recipient (`IRCP`) and each listed holder (`CST`).
    pub actor: Vec<ProvisionActor>,
    /// Access.
    pub action: Vec<CodeableConcept>,
    /// Why (HL7 v3 ActReason).
    pub purpose: Vec<Coding>,
    /// The FHIR resource types covered; absent for the whole record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<Vec<Coding>>,
    /// The dates of the records covered (R5.10); absent when not limited.
    #[serde(
        default,
        rename = "dataPeriod",
        skip_serializing_if = "Option::is_none"
    )]
    pub data_period: Option<DataPeriod>,
    /// The exception: the sensitive classes left out, as one `deny`
    /// provision with their HL7 v3 security labels; absent when every
    /// class is included.
    #[serde(default, rename = "provision", skip_serializing_if = "Vec::is_empty")]
    pub except: Vec<ProvisionException>,
}

/// The dates of the records a `Consent` covers; an open end is absent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "FhirDataPeriod")]
pub struct DataPeriod {
    /// Records dated from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// Records dated before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
}

/// A nested provision denying records by their security labels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "FhirProvisionException")]
pub struct ProvisionException {
    /// Always `deny`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The labels of the records left out.
    pub security_label: Vec<Coding>,
}

/// One party of a provision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "FhirProvisionActor")]
pub struct ProvisionActor {
    /// Recipient or custodian.
    pub role: CodeableConcept,
    /// Who.
    pub reference: Reference,
}

/// One audit entry as a FHIR R4 `AuditEvent`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "FhirAuditEvent")]
pub struct AuditEvent {
    /// Always `AuditEvent`.
    pub resource_type: AuditEventType,
    /// `audit-<index>`.
    pub id: String,
    /// DICOM 110106 (export: a release) or 110110 (patient record).
    #[serde(rename = "type")]
    pub kind: Coding,
    /// The audit event's type under `urn:medledger:audit-event`.
    pub subtype: Vec<Coding>,
    /// C, R, U or E.
    pub action: String,
    /// The block's time.
    pub recorded: String,
    /// `0` (success) or `4` (a denial or refusal).
    pub outcome: String,
    /// Why it failed, for a denial or refusal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome_desc: Option<String>,
    /// Emergency treatment or public health, for those accesses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose_of_event: Option<Vec<CodeableConcept>>,
    /// Who acted, and who was asked.
    pub agent: Vec<Agent>,
    /// The chain and the height.
    pub source: Source,
    /// The patient and the transaction.
    pub entity: Vec<Entity>,
}

/// The one value of [`AuditEvent::resource_type`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "FhirAuditEventType")]
pub enum AuditEventType {
    /// A FHIR AuditEvent.
    AuditEvent,
}

/// An actor of an `AuditEvent`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "FhirAgent")]
pub struct Agent {
    /// Who.
    pub who: Reference,
    /// Whether they initiated it.
    pub requestor: bool,
}

/// Where an `AuditEvent` was recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "FhirSource")]
pub struct Source {
    /// `height <n>`.
    pub site: String,
    /// The chain, under `urn:medledger:chain`.
    pub observer: Reference,
}

/// What an `AuditEvent` is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "FhirEntity")]
pub struct Entity {
    /// The patient or the transaction.
    pub what: Reference,
    /// `1` (person) for the patient.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<Coding>,
}

/// A search result (FHIR R4 `Bundle` of type `searchset`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "FhirAuditEventBundle")]
pub struct Bundle {
    /// Always `Bundle`.
    pub resource_type: BundleType,
    /// Always `searchset`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Entries on this page.
    pub total: u64,
    /// The entries.
    pub entry: Vec<BundleEntry>,
    /// The next page, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<Vec<BundleLink>>,
}

/// The one value of [`Bundle::resource_type`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "FhirBundleType")]
pub enum BundleType {
    /// A FHIR Bundle.
    Bundle,
}

/// One entry of a `Bundle`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "FhirBundleEntry")]
pub struct BundleEntry {
    /// `urn:medledger:audit:<index>`.
    pub full_url: String,
    /// The resource.
    pub resource: AuditEvent,
}

/// A link of a `Bundle`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "FhirBundleLink")]
pub struct BundleLink {
    /// `next`.
    pub relation: String,
    /// The next page's path and query.
    pub url: String,
}
