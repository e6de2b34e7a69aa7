//! The ledger's enums by their stable names on the wire. Each is a copy of
//! a ledger enum's names only; `From` maps the ledger's value (an exhaustive
//! match, so a new ledger variant does not compile until it has a name
//! here), and the tests hold every name equal to the ledger's `name()` where
//! the ledger has one. The denial and rejection codes are named here first
//! (the ledger gives those reasons as text only).

use medledger_contracts::records::{
    AccessKindTag as LedgerAccessKind, ControlChange as LedgerControlChange,
    DenialReason as LedgerDenialReason, GrantStatus as LedgerGrantStatus,
    Rejection as LedgerRejection,
};
use medledger_contracts::transaction::Payload as LedgerPayload;
use medledger_contracts::types::{
    Category as LedgerCategory, DelegateRole as LedgerDelegateRole,
    EmergencyReason as LedgerEmergencyReason, InstitutionKind as LedgerInstitutionKind,
    LegalBasis as LedgerLegalBasis, LicenceKind as LedgerLicenceKind,
    LicenceStatus as LedgerLicenceStatus, MemberStatus as LedgerMemberStatus,
    PractitionerRole as LedgerPractitionerRole, Purpose as LedgerPurpose,
    ReviewFinding as LedgerReviewFinding, SensitiveClass as LedgerSensitiveClass,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Declares a wire enum mirroring a ledger enum's variants, each with its
/// name on the wire.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $name:ident from $ledger:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $wire:literal ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $wire)] $variant ),*
        }

        impl From<&$ledger> for $name {
            fn from(value: &$ledger) -> Self {
                match value {
                    $( $ledger::$variant { .. } => Self::$variant ),*
                }
            }
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$( Self::$variant ),*];

            /// The name on the wire.
            pub fn name(self) -> &'static str {
                match self {
                    $( Self::$variant => $wire ),*
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

wire_enum! {
    /// A data category a grant covers.
    Category from LedgerCategory {
        /// Laboratory reports.
        LabReports = "lab-reports",
        /// Imaging studies and reports.
        Imaging = "imaging",
        /// Prescriptions and medication records.
        Prescriptions = "prescriptions",
        /// Discharge summaries.
        DischargeSummaries = "discharge-summaries",
        /// Diagnoses.
        Diagnoses = "diagnoses",
        /// Procedures.
        Procedures = "procedures",
        /// Allergies.
        Allergies = "allergies",
        /// Immunizations.
        Immunizations = "immunizations",
        /// Clinical notes.
        ClinicalNotes = "clinical-notes",
        /// The whole record.
        FullRecord = "full-record",
    }
}

wire_enum! {
    /// A sensitive class of records, left out of a grant unless included.
    SensitiveClass from LedgerSensitiveClass {
        /// HIV status and treatment.
        Hiv = "hiv",
        /// Mental and behavioural health.
        MentalHealth = "mental-health",
        /// Sexual and reproductive health.
        ReproductiveHealth = "reproductive-health",
        /// Genetic data.
        Genetic = "genetic",
    }
}

wire_enum! {
    /// Why records are asked for.
    Purpose from LedgerPurpose {
        /// Treatment.
        Treatment = "treatment",
        /// Referral.
        Referral = "referral",
        /// Continuity of care.
        ContinuityOfCare = "continuity-of-care",
        /// Consultation.
        Consultation = "consultation",
        /// An insurance claim.
        InsuranceClaim = "insurance-claim",
        /// Research.
        Research = "research",
    }
}

wire_enum! {
    /// A member's kind.
    InstitutionKind from LedgerInstitutionKind {
        /// A hospital.
        Hospital = "hospital",
        /// An internet hospital (its physical hospital is in its record).
        InternetHospital = "internet-hospital",
        /// A regional health information platform.
        RegionalPlatform = "regional-platform",
        /// A public-health institution.
        PublicHealth = "public-health",
        /// A regulator or auditor.
        Regulator = "regulator",
    }
}

wire_enum! {
    /// Whether a member or practitioner may act.
    MemberStatus from LedgerMemberStatus {
        /// Acting normally.
        Active = "active",
        /// Suspended until reinstated.
        Suspended = "suspended",
        /// Removed for good.
        Removed = "removed",
    }
}

wire_enum! {
    /// What a delegate may do for a patient.
    DelegateRole from LedgerDelegateRole {
        /// A guardian.
        Guardian = "guardian",
        /// A proxy the patient chose.
        Proxy = "proxy",
    }
}

wire_enum! {
    /// The finding of an emergency-access review.
    ReviewFinding from LedgerReviewFinding {
        /// Justified.
        Justified = "justified",
        /// Not justified.
        Unjustified = "unjustified",
    }
}

wire_enum! {
    /// Why the glass was broken.
    EmergencyReason from LedgerEmergencyReason {
        /// The patient cannot communicate.
        PatientUnconscious = "patient-unconscious",
        /// Life-threatening condition.
        LifeThreatening = "life-threatening",
        /// Mass-casualty incident.
        MassCasualty = "mass-casualty",
    }
}

wire_enum! {
    /// The law under which public health reads records.
    LegalBasis from LedgerLegalBasis {
        /// Infectious disease reporting.
        InfectiousDiseaseReporting = "infectious-disease-reporting",
        /// Public-health emergency response.
        PublicHealthEmergency = "public-health-emergency",
        /// Adverse events following immunisation.
        VaccineAdverseEvent = "vaccine-adverse-event",
        /// Occupational disease reporting.
        OccupationalDiseaseReporting = "occupational-disease-reporting",
    }
}

wire_enum! {
    /// A practitioner's role.
    PractitionerRole from LedgerPractitionerRole {
        /// Physician.
        Physician = "physician",
        /// Nurse.
        Nurse = "nurse",
        /// Pharmacist.
        Pharmacist = "pharmacist",
        /// Medical technician.
        Technician = "technician",
        /// Public-health officer.
        PublicHealthOfficer = "public-health-officer",
        /// Records or medical-affairs staff.
        RecordsOfficer = "records-officer",
    }
}

wire_enum! {
    /// What a practitioner's licence licenses them as.
    LicenceKind from LedgerLicenceKind {
        /// Physician (医师执业证书).
        Physician = "physician",
        /// Nurse (护士执业证书).
        Nurse = "nurse",
        /// Pharmacist (执业药师注册证).
        Pharmacist = "pharmacist",
        /// Medical technician.
        Technician = "technician",
        /// A public-health officer's post.
        PublicHealthPost = "public-health-post",
        /// A records or medical-affairs officer's post.
        RecordsPost = "records-post",
    }
}

wire_enum! {
    /// Whether an attested licence may be relied on.
    LicenceStatus from LedgerLicenceStatus {
        /// In force within its validity.
        Active = "active",
        /// Suspended by a regulator.
        Suspended = "suspended",
        /// Revoked by a regulator (final).
        Revoked = "revoked",
    }
}

wire_enum! {
    /// A grant's status at a time.
    GrantStatus from LedgerGrantStatus {
        /// Not yet in force.
        Pending = "pending",
        /// In force.
        Active = "active",
        /// Past its expiry.
        Expired = "expired",
        /// Revoked by the patient or a delegate.
        Revoked = "revoked",
        /// Given up by the grantee.
        Relinquished = "relinquished",
    }
}

wire_enum! {
    /// The kind of an access, without its details.
    AccessKind from LedgerAccessKind {
        /// Under a grant.
        Grant = "grant",
        /// Emergency (break-glass).
        Emergency = "emergency",
        /// Public health, under a law.
        PublicHealth = "public-health",
    }
}

wire_enum! {
    /// A change to who controls a patient's key.
    ControlChange from LedgerControlChange {
        /// New recovery contacts (take effect after the delay).
        RecoveryContactsChanged = "recovery_contacts_changed",
        /// One contact approved a new key.
        RecoveryApproved = "recovery_approved",
        /// Enough contacts approved: the key is replaced after the delay.
        KeyReplacementScheduled = "key_replacement_scheduled",
        /// The patient's key replaced itself.
        KeyRotated = "key_rotated",
        /// The current key cancelled pending changes.
        PendingChangesCancelled = "pending_changes_cancelled",
    }
}

wire_enum! {
    /// A transaction's kind.
    TransactionKind from LedgerPayload {
        /// Register a patient.
        RegisterPatient = "register-patient",
        /// Set recovery contacts.
        SetRecoveryPolicy = "set-recovery-policy",
        /// A contact approves a new key.
        ApproveRecovery = "approve-recovery",
        /// A patient rotates their key.
        RotateKey = "rotate-key",
        /// Register a practitioner.
        RegisterPractitioner = "register-practitioner",
        /// Retire a practitioner.
        RetirePractitioner = "retire-practitioner",
        /// Record a guardianship.
        RecordGuardianship = "record-guardianship",
        /// A governance proposal.
        Propose = "propose",
        /// A governance vote.
        Vote = "vote",
        /// A grant.
        Grant = "grant",
        /// A revocation.
        Revoke = "revoke",
        /// A grantee gives a grant up.
        Relinquish = "relinquish",
        /// A consent request.
        RequestConsent = "request-consent",
        /// An answer to a consent request.
        AnswerConsentRequest = "answer-consent-request",
        /// A delegation.
        Delegate = "delegate",
        /// The end of a delegation.
        EndDelegation = "end-delegation",
        /// An access request.
        AccessRequest = "access-request",
        /// A holder's release.
        AccessServed = "access-served",
        /// Break-glass access.
        EmergencyAccess = "emergency-access",
        /// An emergency-access review.
        EmergencyReview = "emergency-review",
        /// Public-health access.
        PublicHealthAccess = "public-health-access",
        /// A holder's refusal to serve a fetch.
        FetchRefused = "fetch-refused",
        /// The current key cancels a pending control change.
        CancelControlChange = "cancel-control-change",
        /// A regulator attests a practitioner's licence.
        AttestLicence = "attest-licence",
        /// A regulator suspends, reinstates or revokes a licence.
        SetLicenceStatus = "set-licence-status",
        /// A patient asks a holder for their own records.
        OwnRecordsRequest = "own-records-request",
        /// A regulator attests a member institution's licence.
        AttestInstitution = "attest-institution",
        /// A regulator suspends, reinstates or revokes an institution's licence.
        SetInstitutionLicenceStatus = "set-institution-licence-status",
    }
}

wire_enum! {
    /// Why an access was denied, as a code a program can branch on (the
    /// `reason` beside it is the same for people).
    DenialCode from LedgerDenialReason {
        /// The practitioner is retired or suspended.
        RequesterNotActive = "requester_not_active",
        /// The practitioner's institution is suspended or removed.
        InstitutionNotActive = "institution_not_active",
        /// The grant was revoked.
        GrantRevoked = "grant_revoked",
        /// The grantee gave the grant up.
        GrantRelinquished = "grant_relinquished",
        /// The grant's period has not begun.
        GrantNotYetValid = "grant_not_yet_valid",
        /// The grant has expired.
        GrantExpired = "grant_expired",
        /// The requester is not the grantee.
        NotGrantee = "not_grantee",
        /// A category asked for is not granted.
        CategoryNotGranted = "category_not_granted",
        /// The holder is not among the grant's holders.
        HolderNotGranted = "holder_not_granted",
        /// The holder is not an active member that holds records.
        HolderNotEligible = "holder_not_eligible",
        /// The stated purpose differs from the grant's.
        PurposeMismatch = "purpose_mismatch",
        /// The requester's institution may not break the glass.
        EmergencyNotAllowed = "emergency_not_allowed",
        /// Not a public-health officer of a public-health institution.
        NotPublicHealth = "not_public_health",
        /// No patient has this id.
        UnknownPatient = "unknown_patient",
        /// The requester's licence is not in force (the `reason` says why).
        LicenceNotInForce = "licence_not_in_force",
    }
}

wire_enum! {
    /// Why the ledger's rules rejected a transaction, as a code.
    RejectionCode from LedgerRejection {
        /// Committed before.
        Duplicate = "duplicate",
        /// The signer is not registered.
        UnknownSigner = "unknown_signer",
        /// Not the signer's current key.
        KeyMismatch = "key_mismatch",
        /// The signer (or its institution) is not active.
        SignerNotActive = "signer_not_active",
        /// The delegation is ended or expired.
        DelegationNotActive = "delegation_not_active",
        /// The signer may not do this.
        NotPermitted = "not_permitted",
        /// A guardian must sign for a minor.
        GuardianConsentRequired = "guardian_consent_required",
        /// Something referred to does not exist.
        NotFound = "not_found",
        /// Something to be created exists already.
        AlreadyExists = "already_exists",
        /// Already finished (revoked, answered, served, reviewed, voted).
        AlreadyDone = "already_done",
        /// A time given is past, or too far ahead.
        BadTime = "bad_time",
        /// A request not authorised cannot be served.
        NotAuthorized = "not_authorized",
        /// A governance action that cannot be carried out.
        InvalidAction = "invalid_action",
        /// The block's time is past the transaction's `valid_until`.
        Expired = "expired",
        /// The transaction's `valid_until` is beyond the block's validity window.
        ValidTooLong = "valid_too_long",
        /// The signer's licence is not in force (the message says why).
        LicenceNotInForce = "licence_not_in_force",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire<T: Serialize>(value: T) -> String {
        serde_json::to_value(value)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// Asserts that each ledger value's wire name is the ledger's `name()`.
    macro_rules! named_as_the_ledger_names {
        ($wire:ident: $($value:expr),+ $(,)?) => {
            $(
                let value = $value;
                assert_eq!(wire($wire::from(&value)), value.name(), "{}", stringify!($value));
            )+
        };
    }

    #[test]
    fn every_name_is_the_ledgers_name() {
        for c in LedgerCategory::ALL {
            named_as_the_ledger_names!(Category: c);
        }
        for p in LedgerPurpose::ALL {
            named_as_the_ledger_names!(Purpose: p);
        }
        for c in LedgerSensitiveClass::ALL {
            named_as_the_ledger_names!(SensitiveClass: c);
        }
        for r in LedgerPractitionerRole::ALL {
            named_as_the_ledger_names!(PractitionerRole: r);
        }
        for k in LedgerLicenceKind::ALL {
            named_as_the_ledger_names!(LicenceKind: k);
        }
        named_as_the_ledger_names!(LicenceStatus:
            LedgerLicenceStatus::Active, LedgerLicenceStatus::Suspended, LedgerLicenceStatus::Revoked);
        let parent = medledger_contracts::types::InstitutionId::new("h1").unwrap();
        named_as_the_ledger_names!(InstitutionKind:
            LedgerInstitutionKind::Hospital,
            LedgerInstitutionKind::InternetHospital { parent },
            LedgerInstitutionKind::RegionalPlatform,
            LedgerInstitutionKind::PublicHealth,
            LedgerInstitutionKind::Regulator,
        );
        named_as_the_ledger_names!(MemberStatus:
            LedgerMemberStatus::Active, LedgerMemberStatus::Suspended, LedgerMemberStatus::Removed);
        named_as_the_ledger_names!(DelegateRole: LedgerDelegateRole::Guardian, LedgerDelegateRole::Proxy);
        named_as_the_ledger_names!(ReviewFinding:
            LedgerReviewFinding::Justified, LedgerReviewFinding::Unjustified);
        named_as_the_ledger_names!(EmergencyReason:
            LedgerEmergencyReason::PatientUnconscious,
            LedgerEmergencyReason::LifeThreatening,
            LedgerEmergencyReason::MassCasualty,
        );
        named_as_the_ledger_names!(LegalBasis:
            LedgerLegalBasis::InfectiousDiseaseReporting,
            LedgerLegalBasis::PublicHealthEmergency,
            LedgerLegalBasis::VaccineAdverseEvent,
            LedgerLegalBasis::OccupationalDiseaseReporting,
        );
        named_as_the_ledger_names!(GrantStatus:
            LedgerGrantStatus::Pending,
            LedgerGrantStatus::Active,
            LedgerGrantStatus::Expired,
            LedgerGrantStatus::Revoked,
            LedgerGrantStatus::Relinquished,
        );
        named_as_the_ledger_names!(AccessKind:
            LedgerAccessKind::Grant, LedgerAccessKind::Emergency, LedgerAccessKind::PublicHealth);
        let contact = medledger_contracts::types::PatientId(medledger_contracts::Hash32([1; 32]));
        named_as_the_ledger_names!(ControlChange:
            LedgerControlChange::RecoveryContactsChanged,
            LedgerControlChange::RecoveryApproved { contact },
            LedgerControlChange::KeyReplacementScheduled,
            LedgerControlChange::KeyRotated,
            LedgerControlChange::PendingChangesCancelled,
        );
    }

    /// The golden vectors hold a signed transaction of every kind: each
    /// kind's wire name is the ledger's.
    #[test]
    fn every_transaction_kind_is_named_as_the_ledger_names_it() {
        let vectors: serde_json::Value = serde_json::from_str(include_str!(
            "../../contracts/tests/fixtures/golden-vectors.json"
        ))
        .unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for v in vectors["transactions"].as_array().unwrap() {
            let bytes = hex::decode(v["signed_transaction_bcs"].as_str().unwrap()).unwrap();
            let tx =
                medledger_contracts::transaction::SignedTransaction::from_bytes(&bytes).unwrap();
            let payload = &tx.transaction.payload;
            assert_eq!(TransactionKind::from(payload).name(), payload.name());
            seen.insert(payload.name());
        }
        assert!(
            seen.len() >= 14,
            "the golden vectors hold fewer kinds than before"
        );
    }

    /// Each wire name is the Rust variant's name in kebab-case (snake_case
    /// for control changes), and the `From` matches pair variants of the same
    /// name: so a kind with no golden vector is named as the ledger names it.
    #[test]
    fn names_follow_the_variant_names() {
        fn cased(ident: &str, separator: char) -> String {
            let mut out = String::new();
            for (i, c) in ident.chars().enumerate() {
                if c.is_ascii_uppercase() {
                    if i > 0 {
                        out.push(separator);
                    }
                    out.push(c.to_ascii_lowercase());
                } else {
                    out.push(c);
                }
            }
            out
        }
        fn check<T: std::fmt::Debug + std::fmt::Display + Copy + Serialize>(
            all: &[T],
            separator: char,
        ) {
            for v in all {
                assert_eq!(wire(*v), cased(&format!("{v:?}"), separator));
                // `name()`, through Display, is the serde name.
                assert_eq!(wire(*v), v.to_string());
            }
        }
        check(TransactionKind::ALL, '-');
        check(Category::ALL, '-');
        check(SensitiveClass::ALL, '-');
        check(Purpose::ALL, '-');
        check(InstitutionKind::ALL, '-');
        check(MemberStatus::ALL, '-');
        check(DelegateRole::ALL, '-');
        check(ReviewFinding::ALL, '-');
        check(EmergencyReason::ALL, '-');
        check(LegalBasis::ALL, '-');
        check(PractitionerRole::ALL, '-');
        check(GrantStatus::ALL, '-');
        check(AccessKind::ALL, '-');
        check(ControlChange::ALL, '_');
        check(DenialCode::ALL, '_');
        check(RejectionCode::ALL, '_');
    }

    #[test]
    fn unknown_names_are_refused() {
        assert!(serde_json::from_str::<Purpose>("\"ContinuityOfCare\"").is_err());
        assert_eq!(
            serde_json::from_str::<Purpose>("\"continuity-of-care\"").unwrap(),
            Purpose::ContinuityOfCare
        );
    }
}
