//! Identifiers, times and the vocabulary of consent: who, what and why.
//!
//! Identifiers are pseudonymous. A patient is the hash of the first public key
//! they registered; a practitioner likewise. No name, ID-card number, medical
//! record number or record content has a field anywhere on the ledger.

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::constants::*;
use crate::crypto::{CryptoSuite, PublicKey};
use crate::encoding::{BoundedString, BoundedVec, Hash32, HashFunction, tags};

/// Milliseconds since the Unix epoch, as the block proposer's clock gives them.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct Timestamp(pub u64);

/// A duration in whole milliseconds. Saturates at `u64::MAX` ms (584
/// million years): only a deliberately absurd duration gets there, and as a
/// bound, a delay or a clock reading it then means "never" — the one place
/// medledger turns a `Duration` into milliseconds.
pub fn millis(d: core::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Timestamp {
    /// A wall-clock time as a timestamp (a time before 1970 reads as 0).
    pub fn from_system_time(time: std::time::SystemTime) -> Self {
        Self(
            time.duration_since(std::time::UNIX_EPOCH)
                .map(millis)
                .unwrap_or(0),
        )
    }

    /// This time plus `days`, saturating.
    pub fn plus_days(self, days: u64) -> Self {
        Self(self.0.saturating_add(days.saturating_mul(86_400_000)))
    }
}

/// Why a chain or institution id is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Not `[a-z0-9.-]`, or empty.
    #[error("chain id {0:?} must be 1 to {CHAIN_ID_BYTES_MAX} characters of a-z, 0-9, '-' and '.'")]
    ChainId(String),
    /// Not `[a-z0-9-]`, or empty.
    #[error(
        "institution id {0:?} must be 1 to {INSTITUTION_ID_BYTES_MAX} characters of a-z, 0-9 and '-'"
    )]
    InstitutionId(String),
    /// Not `[a-z0-9-]`, empty, or too long.
    #[error(
        "practice scope {0:?} must be 1 to {PRACTICE_SCOPE_BYTES_MAX} characters of a-z, 0-9 and '-'"
    )]
    PracticeScope(String),
    /// Not `[a-z0-9-]`, or empty.
    #[error(
        "group id {0:?} must be 1 to {INSTITUTION_ID_BYTES_MAX} characters of a-z, 0-9 and '-'"
    )]
    GroupId(String),
    /// Too long.
    #[error(transparent)]
    Text(#[from] crate::encoding::TextError),
}

/// Which chain a transaction is meant for; part of every signing message.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChainId(BoundedString<CHAIN_ID_BYTES_MAX>);

impl ChainId {
    /// A chain id: 1 to 64 characters of `[a-z0-9.-]`.
    pub fn new(text: &str) -> Result<Self, IdError> {
        if text.is_empty()
            || !text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        {
            return Err(IdError::ChainId(text.to_string()));
        }
        Ok(Self(BoundedString::new(text)?))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

/// A chain as its signers and verifiers know it: its id, part of every
/// signing message, and the crypto suite its genesis chose, whose hash
/// function makes every ledger hash and whose scheme every key is of. Both
/// come from genesis; a chain's messages and ids are computed from nothing
/// less, so the other suite's data cannot be mistaken for this chain's.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Chain {
    /// The chain id.
    pub id: ChainId,
    /// The crypto suite.
    pub suite: CryptoSuite,
}

impl Chain {
    /// The chain `id` on `suite`.
    pub fn new(id: ChainId, suite: CryptoSuite) -> Self {
        Self { id, suite }
    }

    /// The hash function of the chain's ledger hashes.
    pub fn hash(&self) -> HashFunction {
        self.suite.hash_function()
    }
}

impl fmt::Debug for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether `text` is a non-empty run of `[a-z0-9-]` (institution ids,
/// practice scopes).
fn is_kebab(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Declares an id of `[a-z0-9-]` (at most [`INSTITUTION_ID_BYTES_MAX`]
/// bytes) with its checks; `$error` is the [`IdError`] variant for a bad one.
macro_rules! kebab_id {
    ($(#[$meta:meta])* $name:ident, $error:ident, $what:literal) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub struct $name(BoundedString<INSTITUTION_ID_BYTES_MAX>);

        impl $name {
            #[doc = concat!("Validates and wraps ", $what, ".")]
            pub fn new(text: &str) -> Result<Self, IdError> {
                if !is_kebab(text) {
                    return Err(IdError::$error(text.to_string()));
                }
                Ok(Self(BoundedString::new(text)?))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                self.0.as_str()
            }

            /// Whether the decoded bytes obey the id's character rules (BCS
            /// decoding checks only the length).
            pub fn is_well_formed(&self) -> bool {
                Self::new(self.as_str()).is_ok()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

kebab_id!(
    /// An institution's short id, chosen at admission: `[a-z0-9-]`, e.g. `city-first-hospital`.
    InstitutionId,
    InstitutionId,
    "an institution id"
);

macro_rules! hash_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub struct $name(pub Hash32);

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), &self.0.to_hex()[..16])
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

hash_id!(
    /// A patient: the hash of the first key they registered. Stable across key
    /// rotation and recovery, so grants and history stay theirs.
    PatientId
);
hash_id!(
    /// A practitioner: the hash of the key their institution registered first.
    PractitionerId
);
hash_id!(
    /// A transaction's id; grants, requests and delegations are named by the id
    /// of the transaction that created them.
    TxHash
);

/// A grant is named by the transaction that created it.
pub type GrantId = TxHash;
/// An access request (ordinary, emergency or public-health) is named by its transaction.
pub type RequestId = TxHash;
/// A consent request is named by its transaction.
pub type ConsentRequestId = TxHash;
/// A delegation is named by the transaction that created it.
pub type DelegationId = TxHash;
/// A governance proposal is named by its transaction.
pub type ProposalId = TxHash;

impl PatientId {
    /// The id of a patient whose first key is `key`, on a chain hashing with `hash`.
    pub fn from_key(hash: HashFunction, key: &PublicKey) -> Self {
        Self(hash.hash_of(tags::PATIENT_ID, key))
    }
}

impl PractitionerId {
    /// The id of a practitioner whose first key is `key`, on a chain hashing with `hash`.
    pub fn from_key(hash: HashFunction, key: &PublicKey) -> Self {
        Self(hash.hash_of(tags::PRACTITIONER_ID, key))
    }
}

/// What kind of member an institution is; it decides what its people may do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InstitutionKind {
    /// A physical hospital (医院), holding and requesting records.
    Hospital,
    /// An internet hospital (互联网医院), attached to its physical parent hospital.
    InternetHospital {
        /// The physical hospital it belongs to.
        parent: InstitutionId,
    },
    /// A regional health information platform (区域全民健康信息平台).
    RegionalPlatform,
    /// A public-health institution (疾控中心, CDC): mandated reporting access.
    PublicHealth,
    /// A regulator or auditor (卫生健康委): reviews, never reads records.
    Regulator,
}

impl InstitutionKind {
    /// Its stable name on the HTTP API and in files (kebab-case).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Hospital => "hospital",
            Self::InternetHospital { .. } => "internet-hospital",
            Self::RegionalPlatform => "regional-platform",
            Self::PublicHealth => "public-health",
            Self::Regulator => "regulator",
        }
    }

    /// Whether institutions of this kind hold records others may request.
    pub fn holds_records(&self) -> bool {
        matches!(
            self,
            Self::Hospital | Self::InternetHospital { .. } | Self::RegionalPlatform
        )
    }
}

/// Whether a member may act.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberStatus {
    /// Acting normally.
    Active,
    /// Suspended by governance: may not act until reinstated.
    Suspended,
    /// Removed by governance: never acts again.
    Removed,
}

impl MemberStatus {
    /// Its stable name on the HTTP API.
    pub fn name(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Removed => "removed",
        }
    }
}

/// A data category (GB/T 39725-2020 health data, at the granularity a patient decides on).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Category {
    /// Laboratory reports (检验报告).
    LabReports,
    /// Imaging studies and reports (影像检查).
    Imaging,
    /// Prescriptions and medication records (处方).
    Prescriptions,
    /// Discharge summaries (出院小结).
    DischargeSummaries,
    /// Diagnoses and problem lists (诊断).
    Diagnoses,
    /// Procedures and operations (手术操作).
    Procedures,
    /// Allergies and intolerances (过敏史).
    Allergies,
    /// Immunisations (预防接种).
    Immunizations,
    /// Outpatient and inpatient clinical notes (病历文书).
    ClinicalNotes,
    /// Every category, present and future (全部病历).
    FullRecord,
}

impl Category {
    /// Every category, in canonical order.
    pub const ALL: [Category; 10] = [
        Self::LabReports,
        Self::Imaging,
        Self::Prescriptions,
        Self::DischargeSummaries,
        Self::Diagnoses,
        Self::Procedures,
        Self::Allergies,
        Self::Immunizations,
        Self::ClinicalNotes,
        Self::FullRecord,
    ];

    /// The FHIR R4 resource types this category covers.
    pub fn fhir_resource_types(self) -> &'static [&'static str] {
        match self {
            Self::LabReports => &["DiagnosticReport", "Observation"],
            Self::Imaging => &["ImagingStudy", "DiagnosticReport", "Media"],
            Self::Prescriptions => &[
                "MedicationRequest",
                "MedicationStatement",
                "MedicationDispense",
            ],
            Self::DischargeSummaries => &["Composition", "DocumentReference"],
            Self::Diagnoses => &["Condition"],
            Self::Procedures => &["Procedure"],
            Self::Allergies => &["AllergyIntolerance"],
            Self::Immunizations => &["Immunization"],
            Self::ClinicalNotes => &["DocumentReference", "Encounter"],
            Self::FullRecord => &["*"],
        }
    }

    /// The GB/T 39725-2020 data class the category falls in.
    pub fn gbt_39725_class(self) -> &'static str {
        match self {
            Self::FullRecord => {
                "health status and medical application data (健康状况数据、医疗应用数据)"
            }
            Self::Immunizations => "public health data (公共卫生数据)",
            _ => "health status data (健康状况数据)",
        }
    }

    /// A stable lowercase name, used in the CLI and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::LabReports => "lab-reports",
            Self::Imaging => "imaging",
            Self::Prescriptions => "prescriptions",
            Self::DischargeSummaries => "discharge-summaries",
            Self::Diagnoses => "diagnoses",
            Self::Procedures => "procedures",
            Self::Allergies => "allergies",
            Self::Immunizations => "immunizations",
            Self::ClinicalNotes => "clinical-notes",
            Self::FullRecord => "full-record",
        }
    }

    /// Parses a name given by [`Category::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// A sensitive class of records (敏感信息): a grant leaves records of
/// these classes out unless the patient includes each one by one [R5.10].
/// Hospitals mark them with HL7 v3 information-sensitivity codes in the
/// resource's `meta.security` (see [`SensitiveClass::security_labels`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SensitiveClass {
    /// HIV status and treatment (艾滋病相关).
    Hiv,
    /// Mental and behavioural health (精神心理).
    MentalHealth,
    /// Sexual and reproductive health (生殖健康).
    ReproductiveHealth,
    /// Genetic data (基因信息).
    Genetic,
}

impl SensitiveClass {
    /// Every class, in canonical order.
    pub const ALL: [SensitiveClass; 4] = [
        Self::Hiv,
        Self::MentalHealth,
        Self::ReproductiveHealth,
        Self::Genetic,
    ];

    /// Its stable name in the CLI and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Hiv => "hiv",
            Self::MentalHealth => "mental-health",
            Self::ReproductiveHealth => "reproductive-health",
            Self::Genetic => "genetic",
        }
    }

    /// Parses a name given by [`SensitiveClass::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The HL7 v3 `ActCode` information-sensitivity codes that mark a
    /// resource as of this class.
    pub fn security_labels(self) -> &'static [&'static str] {
        match self {
            Self::Hiv => &["HIV"],
            Self::MentalHealth => &["PSY", "PSYTHPN", "BH"],
            Self::ReproductiveHealth => &["SEX", "STD"],
            Self::Genetic => &["GDIS"],
        }
    }

    /// The class an HL7 v3 information-sensitivity code marks, if any.
    pub fn from_security_label(code: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|c| c.security_labels().contains(&code))
    }
}

/// Sensitive classes a grant includes (canonical: strictly increasing;
/// empty: every sensitive class left out).
pub type SensitiveClasses = BoundedVec<SensitiveClass, 4>;

/// Whether `classes` is strictly increasing.
pub fn sensitive_classes_canonical(classes: &[SensitiveClass]) -> bool {
    classes.windows(2).all(|w| w[0] < w[1])
}

/// A set of categories: strictly increasing, not empty (checked by [`Categories::is_canonical`]).
pub type Categories = BoundedVec<Category, CATEGORIES_PER_GRANT_MAX>;

/// Whether `granted` covers every category of `asked`.
pub fn categories_cover(granted: &[Category], asked: &[Category]) -> bool {
    granted.contains(&Category::FullRecord) || asked.iter().all(|c| granted.contains(c))
}

/// Whether a category list is canonical: non-empty and strictly increasing.
pub fn categories_canonical(categories: &[Category]) -> bool {
    !categories.is_empty() && categories.windows(2).all(|w| w[0] < w[1])
}

/// Why records are asked for or granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Purpose {
    /// Treatment of the patient (诊疗).
    Treatment,
    /// A referral between institutions (转诊).
    Referral,
    /// Follow-up and continuity of care (随访).
    ContinuityOfCare,
    /// A second opinion or remote consultation (远程会诊).
    Consultation,
    /// Insurance claims the patient asked for (医保结算).
    InsuranceClaim,
    /// Research the patient consented to (科研).
    Research,
}

impl Purpose {
    /// Every purpose, in declaration order.
    pub const ALL: [Purpose; 6] = [
        Self::Treatment,
        Self::Referral,
        Self::ContinuityOfCare,
        Self::Consultation,
        Self::InsuranceClaim,
        Self::Research,
    ];

    /// Its stable name on the HTTP API, the CLI and the app (kebab-case).
    pub fn name(self) -> &'static str {
        match self {
            Self::Treatment => "treatment",
            Self::Referral => "referral",
            Self::ContinuityOfCare => "continuity-of-care",
            Self::Consultation => "consultation",
            Self::InsuranceClaim => "insurance-claim",
            Self::Research => "research",
        }
    }

    /// Parses a name given by [`Purpose::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }
}

kebab_id!(
    /// A group of member institutions the ledger knows, set by governance
    /// [R4.15]: a medical alliance (医联体), or an internet hospital with its
    /// physical hospital. Its id is `[a-z0-9-]`, e.g. `city-first-alliance`.
    GroupId,
    GroupId,
    "a group id"
);

/// Who receives a grant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Grantee {
    /// Any active practitioner of this institution.
    Institution(InstitutionId),
    /// This practitioner only.
    Practitioner(PractitionerId),
    /// Any active practitioner of an institution that is a member of this
    /// group at the time of the request [R5.11].
    Group(GroupId),
}

/// Which institutions may release records under a grant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Holders {
    /// Any member institution that holds the patient's records.
    Any,
    /// Only these institutions (strictly increasing, non-empty).
    Listed(BoundedVec<InstitutionId, HOLDERS_PER_GRANT_MAX>),
}

impl Holders {
    /// Whether `holder` may release under these holders.
    pub fn includes(&self, holder: &InstitutionId) -> bool {
        match self {
            Self::Any => true,
            Self::Listed(list) => list.contains(holder),
        }
    }
}

/// Why a holder refused to serve a committed access (recorded by
/// `FetchRefused`, so the patient and auditors see the attempt).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum FetchRefusal {
    /// The practitioner who asked is not the access's requester, or the
    /// access was denied.
    NotAuthorized,
    /// The access had been served already (a replayed fetch).
    AlreadyServed,
    /// The grant the access relied on was revoked or had expired by then.
    GrantNotActive,
}

impl FetchRefusal {
    /// The stable code the gateway answers with (and the API shows).
    pub fn code(self) -> &'static str {
        match self {
            Self::NotAuthorized => "not_authorized",
            Self::AlreadyServed => "already_served",
            Self::GrantNotActive => "grant_not_active",
        }
    }
}

/// Why the glass was broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EmergencyReason {
    /// The patient is unconscious or cannot communicate (意识障碍).
    PatientUnconscious,
    /// Life-threatening condition needing history now (危及生命).
    LifeThreatening,
    /// Mass-casualty incident (群体伤).
    MassCasualty,
}

impl EmergencyReason {
    /// Its stable name on the HTTP API.
    pub fn name(self) -> &'static str {
        match self {
            Self::PatientUnconscious => "patient-unconscious",
            Self::LifeThreatening => "life-threatening",
            Self::MassCasualty => "mass-casualty",
        }
    }
}

/// The law under which a public-health institution reads records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LegalBasis {
    /// Infectious disease reporting (《传染病防治法》).
    InfectiousDiseaseReporting,
    /// Public-health emergency response (《突发公共卫生事件应急条例》).
    PublicHealthEmergency,
    /// Adverse events following immunisation (《疫苗管理法》).
    VaccineAdverseEvent,
    /// Occupational disease reporting (《职业病防治法》).
    OccupationalDiseaseReporting,
}

impl LegalBasis {
    /// Its stable name on the HTTP API.
    pub fn name(self) -> &'static str {
        match self {
            Self::InfectiousDiseaseReporting => "infectious-disease-reporting",
            Self::PublicHealthEmergency => "public-health-emergency",
            Self::VaccineAdverseEvent => "vaccine-adverse-event",
            Self::OccupationalDiseaseReporting => "occupational-disease-reporting",
        }
    }
}

/// A practitioner's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PractitionerRole {
    /// A licensed physician (执业医师).
    Physician,
    /// A licensed nurse (护士).
    Nurse,
    /// A pharmacist (药师).
    Pharmacist,
    /// A medical technician (医技).
    Technician,
    /// A public-health officer (疾控人员).
    PublicHealthOfficer,
    /// Records or medical-affairs staff (病案、医务管理).
    RecordsOfficer,
}

impl PractitionerRole {
    /// Every role, in declaration order.
    pub const ALL: [PractitionerRole; 6] = [
        Self::Physician,
        Self::Nurse,
        Self::Pharmacist,
        Self::Technician,
        Self::PublicHealthOfficer,
        Self::RecordsOfficer,
    ];

    /// Its stable name on the HTTP API and in files (kebab-case).
    pub fn name(self) -> &'static str {
        match self {
            Self::Physician => "physician",
            Self::Nurse => "nurse",
            Self::Pharmacist => "pharmacist",
            Self::Technician => "technician",
            Self::PublicHealthOfficer => "public-health-officer",
            Self::RecordsOfficer => "records-officer",
        }
    }

    /// Parses a name given by [`PractitionerRole::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.name() == name)
    }

    /// The licence a practitioner in this role must hold where genesis asks
    /// for attested licences [R4.14].
    pub fn licence_kind(self) -> LicenceKind {
        match self {
            Self::Physician => LicenceKind::Physician,
            Self::Nurse => LicenceKind::Nurse,
            Self::Pharmacist => LicenceKind::Pharmacist,
            Self::Technician => LicenceKind::Technician,
            Self::PublicHealthOfficer => LicenceKind::PublicHealthPost,
            Self::RecordsOfficer => LicenceKind::RecordsPost,
        }
    }
}

/// What a practitioner's electronic licence (电子证照) licenses them as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum LicenceKind {
    /// A physician's practice certificate (医师执业证书).
    Physician,
    /// A nurse's practice certificate (护士执业证书).
    Nurse,
    /// A licensed pharmacist's registration (执业药师注册证).
    Pharmacist,
    /// A medical technician's qualification (卫生专业技术资格).
    Technician,
    /// A public-health officer's appointment (疾控人员): no clinical
    /// licence, but a post a regulator attests like one.
    PublicHealthPost,
    /// A records or medical-affairs officer's appointment, attested likewise.
    RecordsPost,
}

impl LicenceKind {
    /// Every kind, in declaration order.
    pub const ALL: [LicenceKind; 6] = [
        Self::Physician,
        Self::Nurse,
        Self::Pharmacist,
        Self::Technician,
        Self::PublicHealthPost,
        Self::RecordsPost,
    ];

    /// Its stable name on the HTTP API and in files (kebab-case).
    pub fn name(self) -> &'static str {
        match self {
            Self::Physician => "physician",
            Self::Nurse => "nurse",
            Self::Pharmacist => "pharmacist",
            Self::Technician => "technician",
            Self::PublicHealthPost => "public-health-post",
            Self::RecordsPost => "records-post",
        }
    }

    /// Parses a name given by [`LicenceKind::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// Whether an attested licence may be relied on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LicenceStatus {
    /// In force (within its validity).
    Active,
    /// Suspended by a regulator (暂停执业); a regulator may lift it.
    Suspended,
    /// Revoked by a regulator (吊销); final.
    Revoked,
}

impl LicenceStatus {
    /// Its stable name on the HTTP API (kebab-case).
    pub fn name(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Revoked => "revoked",
        }
    }
}

/// Whose word makes a practitioner fit to act, fixed at genesis [R4.14].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum LicencePolicy {
    /// The registering institution's: a practitioner acts while they and
    /// their institution are active.
    #[default]
    Declared,
    /// A regulator's too: a practitioner acts only while a regulator's
    /// attestation of their licence is in force for their role and
    /// institution.
    Attested,
}

impl LicencePolicy {
    /// Its stable name in genesis files and on the HTTP API.
    pub fn name(self) -> &'static str {
        match self {
            Self::Declared => "declared",
            Self::Attested => "attested",
        }
    }

    /// Parses a name given by [`LicencePolicy::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Declared, Self::Attested]
            .into_iter()
            .find(|p| p.name() == name)
    }
}

/// A scope of practice (执业范围) on a licence, as a short code
/// (`[a-z0-9-]`, e.g. `internal-medicine`): what the regulator registered,
/// shown with the licence (no rule reads it yet).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PracticeScope(BoundedString<PRACTICE_SCOPE_BYTES_MAX>);

impl PracticeScope {
    /// Parses a code, or says why it is not one.
    pub fn new(code: &str) -> Result<Self, IdError> {
        match BoundedString::new(code) {
            Ok(text) if is_kebab(code) => Ok(Self(text)),
            _ => Err(IdError::PracticeScope(code.to_string())),
        }
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// Whether it is still a well-formed code (decoding checks only its length).
    pub fn is_well_formed(&self) -> bool {
        Self::new(self.as_str()).is_ok()
    }
}

impl fmt::Debug for PracticeScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a delegate may do for a patient.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DelegateRole {
    /// A guardian (监护人): decides for a minor or an adult lacking capacity;
    /// may grant, revoke and answer requests.
    Guardian,
    /// A proxy (代理人) chosen by an adult patient: may grant, revoke and answer
    /// requests while the delegation lasts.
    Proxy,
}

impl DelegateRole {
    /// Its stable name on the HTTP API.
    pub fn name(self) -> &'static str {
        match self {
            Self::Guardian => "guardian",
            Self::Proxy => "proxy",
        }
    }
}

/// The finding of an emergency-access review.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReviewFinding {
    /// The emergency access was justified.
    Justified,
    /// The emergency access was not justified: a matter for the regulator.
    Unjustified,
}

impl ReviewFinding {
    /// Its stable name on the HTTP API.
    pub fn name(self) -> &'static str {
        match self {
            Self::Justified => "justified",
            Self::Unjustified => "unjustified",
        }
    }
}

/// The terms of a grant (also the terms a consent request proposes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantTerms {
    /// Whose records.
    pub patient: PatientId,
    /// Who may read them.
    pub grantee: Grantee,
    /// Which categories (canonical: sorted, no duplicates).
    pub categories: Categories,
    /// Only records dated at or after this time (`None`: from the first).
    pub records_from: Option<Timestamp>,
    /// Only records dated before this time (`None`: up to the grant's end).
    pub records_until: Option<Timestamp>,
    /// The sensitive classes the patient included one by one; records of
    /// every other sensitive class are left out [R5.10].
    pub sensitive_included: SensitiveClasses,
    /// From which holders.
    pub holders: Holders,
    /// Why.
    pub purpose: Purpose,
    /// Not usable before this time.
    pub not_before: Timestamp,
    /// Not usable from this time on.
    pub expires_at: Timestamp,
    /// The hash (the chain's) of the notice the patient was shown (PIPL informed consent).
    pub notice_hash: Hash32,
}

impl GrantTerms {
    /// Whether a record dated `dated` (its clinical date, if the holder
    /// knows one) and marked with `classes` is within the grant's record
    /// scope [R5.10]: a grant limited by date covers only dated records in
    /// its range, and a record of a sensitive class only if the patient
    /// included that class.
    pub fn covers_record(&self, dated: Option<Timestamp>, classes: &[SensitiveClass]) -> bool {
        let in_range = match dated {
            _ if self.records_from.is_none() && self.records_until.is_none() => true,
            None => false,
            Some(t) => {
                self.records_from.is_none_or(|from| t >= from)
                    && self.records_until.is_none_or(|until| t < until)
            }
        };
        in_range && classes.iter().all(|c| self.sensitive_included.contains(c))
    }
}

/// What a regulator attests about a member institution [R4.16]: that it
/// saw the institution's unified social credit code (统一社会信用代码) and
/// its practice licence (医疗机构执业许可证) as the member was admitted
/// with them, the practice it licenses, and for how long.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstitutionLicenceTerms {
    /// The member.
    pub institution: InstitutionId,
    /// Its unified social credit code, as the regulator checked it (must be
    /// the member's on the ledger: as admitted, or as last set, R4.18).
    pub legal_code: BoundedString<INSTITUTION_CODE_BYTES_MAX>,
    /// Its practice licence's reference, as the regulator checked it (must
    /// be the member's on the ledger).
    pub licence_ref: BoundedString<INSTITUTION_CODE_BYTES_MAX>,
    /// Its licensed departments or services (诊疗科目; canonical: sorted,
    /// no duplicates), shown with the attestation (no rule reads them yet).
    pub scopes: BoundedVec<PracticeScope, PRACTICE_SCOPES_MAX>,
    /// In force from this time.
    pub valid_from: Timestamp,
    /// Not in force from this time on.
    pub valid_until: Timestamp,
}

/// What a regulator attests about one practitioner's licence [R4.12].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LicenceTerms {
    /// The licence, by the salted hash of its number (the number and salt
    /// stay on the licence the practitioner shows; institutions register
    /// the practitioner under the same hash).
    pub licence_hash: Hash32,
    /// What it licenses.
    pub kind: LicenceKind,
    /// Its scopes of practice (canonical: sorted, no duplicates).
    pub scopes: BoundedVec<PracticeScope, PRACTICE_SCOPES_MAX>,
    /// The member institutions where it may be used (多点执业; canonical:
    /// sorted, no duplicates, at least one).
    pub institutions: BoundedVec<InstitutionId, LICENCE_INSTITUTIONS_MAX>,
    /// The registrations the regulator binds to the licence's holder: each
    /// a practitioner an institution named above registered under this
    /// licence's hash (canonical: sorted, no duplicates; empty until the
    /// holder is registered somewhere). Only these may act on it, so an
    /// institution that has seen the licence cannot register another key
    /// under it and act.
    pub practitioners: BoundedVec<PractitionerId, LICENCE_INSTITUTIONS_MAX>,
    /// In force from this time.
    pub valid_from: Timestamp,
    /// Not in force from this time on.
    pub valid_until: Timestamp,
}
