//! Building and signing transactions: one method per task of a patient, a
//! hospital or a practitioner, each returning a signed transaction ready for
//! [`Client::submit_and_wait`](crate::Client::submit_and_wait).

use medledger_contracts::crypto::PublicKey;
use medledger_contracts::encoding::{BoundedVec, Hash32, HashFunction};
use medledger_contracts::transaction::{
    GovernanceAction, KeyRole, Payload, SignedTransaction, Transaction,
    guardianship_consent_message, key_possession_message,
};
use medledger_contracts::types::*;

use crate::client::{Identity, now};
use crate::error::SdkError;

/// Signs transactions as one identity on one chain.
#[derive(Clone, Debug)]
pub struct TxBuilder {
    chain: Chain,
    who: Identity,
    lifetime_ms: u64,
}

/// How long a transaction stays valid after it is signed unless the builder
/// is told otherwise: half of a one-minute validity window (a local
/// testnet's), so it suits any chain whose genesis
/// `tx_validity_window_ms` is a minute or more. For a real consortium's
/// window of hours, [`TxBuilder::for_window`] gives transactions half of it,
/// so that the signer's clock may be that far from the proposers'.
pub const TX_LIFETIME_MS_DEFAULT: u64 = 30_000;

fn nonce() -> u64 {
    let mut bytes = [0u8; 8];
    let _ = getrandom::fill(&mut bytes);
    u64::from_le_bytes(bytes) ^ now().0
}

/// Categories as a transaction carries them: sorted, once each, bounded.
fn categories_of(mut categories: Vec<Category>) -> Result<Categories, SdkError> {
    categories.sort();
    categories.dedup();
    BoundedVec::new(categories)
        .map_err(|c| SdkError::Decode(format!("{} categories is too many", c.len())))
}

/// The hash an emergency review's record is recorded as (R7.4): of the
/// record the reviewing regulator keeps (its bytes), so the ledger proves
/// which record the finding rests on without holding it. `hash` is the
/// chain's ([`Chain::hash`]), as for every hash below.
pub fn review_record_hash(hash: HashFunction, record: &[u8]) -> Hash32 {
    hash.tagged_hash(b"medledger/review-record/v1", &[record])
}

/// The hash a public-health access's case is recorded as (R7.5): of the
/// case reference with a salt the CDC keeps beside its case report, so that
/// a reference short enough to guess cannot be confirmed from the ledger.
pub fn case_reference_hash(hash: HashFunction, salt: &[u8; 16], reference: &str) -> Hash32 {
    hash.tagged_hash(
        b"medledger/case-reference/v1",
        &[salt, reference.as_bytes()],
    )
}

/// A fresh random 16-byte salt, for a hash of something short enough to
/// guess (a licence number, a case reference, a document number).
pub fn new_salt() -> std::io::Result<[u8; 16]> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt)
        .map_err(|e| std::io::Error::other(format!("the system has no randomness to give: {e}")))?;
    Ok(salt)
}

/// The hash a guardianship's evidence is recorded as (R4.7): of a
/// document's number (e.g. a birth certificate's, 出生医学证明) with a salt
/// the hospital keeps beside its copy, so that the number, which is short
/// enough to guess, cannot be confirmed from the ledger.
pub fn guardianship_evidence_hash(
    hash: HashFunction,
    salt: &[u8; 16],
    document_number: &str,
) -> Hash32 {
    hash.tagged_hash(
        b"medledger/guardianship-evidence/v1",
        &[salt, document_number.as_bytes()],
    )
}

/// A patient's signature accepting `record_number` at `hospital` as theirs
/// (what the desk stores with the link; the hospital's gateway serves their
/// records only under a link their current key signed).
pub fn record_link_signature(
    patient_key: &crate::KeyFile,
    chain: &Chain,
    hospital: &InstitutionId,
    record_number: &str,
) -> medledger_contracts::crypto::Signature {
    patient_key
        .secret()
        .sign(&medledger_contracts::transaction::record_link_message(
            chain,
            hospital,
            &patient_key.patient_id(),
            record_number,
        ))
}

/// The hash of a consent notice's text, as the patient was shown it.
pub fn notice_hash(hash: HashFunction, notice: &str) -> Hash32 {
    hash.digest(notice.as_bytes())
}

/// Grant terms, built step by step and checked for canonical form at the end.
#[derive(Clone, Debug)]
pub struct TermsBuilder {
    patient: PatientId,
    grantee: Grantee,
    categories: Vec<Category>,
    records_from: Option<Timestamp>,
    records_until: Option<Timestamp>,
    sensitive_included: Vec<SensitiveClass>,
    holders: Option<Vec<InstitutionId>>,
    purpose: Purpose,
    not_before: Timestamp,
    expires_at: Timestamp,
    notice_hash: Hash32,
}

impl TermsBuilder {
    /// Terms for `patient`'s records to `grantee`: treatment, from now, for 30 days, every holder.
    pub fn new(patient: PatientId, grantee: Grantee) -> Self {
        let start = now();
        Self {
            patient,
            grantee,
            categories: Vec::new(),
            records_from: None,
            records_until: None,
            sensitive_included: Vec::new(),
            holders: None,
            purpose: Purpose::Treatment,
            not_before: start,
            expires_at: start.plus_days(30),
            notice_hash: Hash32::default(),
        }
    }

    /// Adds a category.
    pub fn category(mut self, category: Category) -> Self {
        self.categories.push(category);
        self
    }

    /// Only records dated at or after `from` (otherwise from the first).
    pub fn records_from(mut self, from: Timestamp) -> Self {
        self.records_from = Some(from);
        self
    }

    /// Only records dated before `until` (otherwise up to the grant's end).
    pub fn records_until(mut self, until: Timestamp) -> Self {
        self.records_until = Some(until);
        self
    }

    /// Includes records of a sensitive class (every sensitive class is
    /// left out unless included, R5.10).
    pub fn include_sensitive(mut self, class: SensitiveClass) -> Self {
        self.sensitive_included.push(class);
        self
    }

    /// Only these holders may release (otherwise any holder).
    pub fn holders(mut self, holders: impl IntoIterator<Item = InstitutionId>) -> Self {
        self.holders = Some(holders.into_iter().collect());
        self
    }

    /// Why.
    pub fn purpose(mut self, purpose: Purpose) -> Self {
        self.purpose = purpose;
        self
    }

    /// Usable for `days` from now.
    pub fn days(mut self, days: u64) -> Self {
        self.expires_at = self.not_before.plus_days(days);
        self
    }

    /// Usable until `expires_at`.
    pub fn until(mut self, expires_at: Timestamp) -> Self {
        self.expires_at = expires_at;
        self
    }

    /// The notice the patient was shown (its hash, with the chain's
    /// function `hash`, goes on the ledger).
    pub fn notice(mut self, hash: HashFunction, text: &str) -> Self {
        self.notice_hash = notice_hash(hash, text);
        self
    }

    /// The terms, sorted into canonical form.
    pub fn build(mut self) -> Result<GrantTerms, SdkError> {
        self.categories.sort();
        self.categories.dedup();
        let categories = BoundedVec::new(self.categories)
            .map_err(|c| SdkError::Decode(format!("{} categories is too many", c.len())))?;
        self.sensitive_included.sort();
        self.sensitive_included.dedup();
        let sensitive_included = BoundedVec::new(self.sensitive_included)
            .map_err(|c| SdkError::Decode(format!("{} sensitive classes is too many", c.len())))?;
        let holders =
            match self.holders {
                None => Holders::Any,
                Some(mut list) => {
                    list.sort();
                    list.dedup();
                    Holders::Listed(BoundedVec::new(list).map_err(|l| {
                        SdkError::Decode(format!("{} holders is too many", l.len()))
                    })?)
                }
            };
        let terms = GrantTerms {
            patient: self.patient,
            grantee: self.grantee,
            categories,
            records_from: self.records_from,
            records_until: self.records_until,
            sensitive_included,
            holders,
            purpose: self.purpose,
            not_before: self.not_before,
            expires_at: self.expires_at,
            notice_hash: self.notice_hash,
        };
        medledger_contracts::transaction::check_terms(&terms)
            .map_err(|e| SdkError::Decode(e.to_string()))?;
        Ok(terms)
    }
}

impl TxBuilder {
    /// Transactions signed by `who` for `chain`, each valid for
    /// [`TX_LIFETIME_MS_DEFAULT`] after it is signed.
    pub fn new(chain: Chain, who: Identity) -> Self {
        Self {
            chain,
            who,
            lifetime_ms: TX_LIFETIME_MS_DEFAULT,
        }
    }

    /// Transactions valid for half of `tx_validity_window_ms` (the chain's
    /// genesis parameter, also in `GET /v1/status`) after they are signed.
    pub fn for_window(self, tx_validity_window_ms: u64) -> Self {
        self.with_lifetime_ms(tx_validity_window_ms / 2)
    }

    /// Transactions valid for `lifetime_ms` after they are signed (a block
    /// takes one only within the chain's validity window of its
    /// `valid_until`, rule R1).
    pub fn with_lifetime_ms(mut self, lifetime_ms: u64) -> Self {
        self.lifetime_ms = lifetime_ms;
        self
    }

    /// Signs any payload (every transaction the ledger knows is a [`Payload`]).
    pub fn sign(&self, payload: Payload) -> SignedTransaction {
        Transaction {
            signer: self.who.signer.clone(),
            nonce: nonce(),
            valid_until: Timestamp(now().0.saturating_add(self.lifetime_ms)),
            payload,
        }
        .sign(&self.chain, self.who.key())
    }

    /// A patient registers their key.
    pub fn register_patient(&self) -> SignedTransaction {
        self.sign(Payload::RegisterPatient)
    }

    /// A patient (or delegate) grants access.
    pub fn grant(&self, terms: GrantTerms) -> SignedTransaction {
        self.sign(Payload::Grant(terms))
    }

    /// A patient (or delegate) revokes a grant.
    pub fn revoke(&self, grant: GrantId) -> SignedTransaction {
        self.sign(Payload::Revoke { grant })
    }

    /// A grantee gives a grant up.
    pub fn relinquish(&self, grant: GrantId) -> SignedTransaction {
        self.sign(Payload::Relinquish { grant })
    }

    /// A practitioner or institution asks a patient for consent.
    pub fn request_consent(&self, terms: GrantTerms) -> SignedTransaction {
        self.sign(Payload::RequestConsent(terms))
    }

    /// A patient answers a consent request.
    pub fn answer_consent(&self, request: ConsentRequestId, approve: bool) -> SignedTransaction {
        self.sign(Payload::AnswerConsentRequest { request, approve })
    }

    /// A patient appoints a guardian or proxy.
    pub fn delegate(
        &self,
        delegate: PatientId,
        role: DelegateRole,
        expires_at: Timestamp,
    ) -> SignedTransaction {
        self.sign(Payload::Delegate {
            delegate,
            role,
            expires_at,
        })
    }

    /// A hospital records `patient_key`'s holder as a minor under `guardian`
    /// until `minor_until` (R4.7); the patient's key (held by the guardian
    /// for a child) signs its consent to exactly these terms.
    pub fn record_guardianship(
        &self,
        patient_key: &crate::KeyFile,
        guardian: PatientId,
        minor_until: Timestamp,
        evidence_hash: Hash32,
    ) -> SignedTransaction {
        let patient = patient_key.patient_id();
        let patient_consent = patient_key.secret().sign(&guardianship_consent_message(
            &self.chain,
            &self.who.signer,
            &patient,
            &guardian,
            minor_until,
            &evidence_hash,
        ));
        self.sign(Payload::RecordGuardianship {
            patient,
            guardian,
            minor_until,
            evidence_hash,
            patient_consent,
        })
    }

    /// The patient's current key cancels a pending key replacement
    /// (`key`), pending new recovery contacts (`contacts`), or both (R4.11).
    pub fn cancel_control_change(&self, key: bool, contacts: bool) -> SignedTransaction {
        self.sign(Payload::CancelControlChange { key, contacts })
    }

    /// Ends a delegation.
    pub fn end_delegation(&self, delegation: DelegationId) -> SignedTransaction {
        self.sign(Payload::EndDelegation { delegation })
    }

    /// A practitioner asks to read records under a grant.
    pub fn access_request(
        &self,
        grant: GrantId,
        holder: InstitutionId,
        categories: Vec<Category>,
        purpose: Purpose,
    ) -> Result<SignedTransaction, SdkError> {
        Ok(self.sign(Payload::AccessRequest {
            grant,
            holder,
            categories: categories_of(categories)?,
            purpose,
        }))
    }

    /// A regulator institution (admin key) reviews an emergency access
    /// [R7.4]; `record_hash` is [`review_record_hash`] of the review record
    /// it keeps.
    pub fn emergency_review(
        &self,
        access: RequestId,
        finding: ReviewFinding,
        record_hash: Hash32,
    ) -> SignedTransaction {
        self.sign(Payload::EmergencyReview {
            access,
            finding,
            record_hash,
        })
    }

    /// A public-health officer reads a patient's records under a legal
    /// mandate [R7.5]; `case_hash` is [`case_reference_hash`] of the case.
    pub fn public_health_access(
        &self,
        patient: PatientId,
        holder: InstitutionId,
        categories: Vec<Category>,
        legal_basis: LegalBasis,
        case_hash: Hash32,
    ) -> Result<SignedTransaction, SdkError> {
        Ok(self.sign(Payload::PublicHealthAccess {
            patient,
            holder,
            categories: categories_of(categories)?,
            legal_basis,
            case_hash,
        }))
    }

    /// A patient asks `holder` for their own records in `categories`
    /// [R7.8]; [`crate::records::fetch_own_records`] then fetches them.
    pub fn own_records_request(
        &self,
        holder: InstitutionId,
        categories: Vec<Category>,
    ) -> Result<SignedTransaction, SdkError> {
        Ok(self.sign(Payload::OwnRecordsRequest {
            holder,
            categories: categories_of(categories)?,
        }))
    }

    /// A practitioner breaks the glass.
    pub fn emergency_access(
        &self,
        patient: PatientId,
        holder: InstitutionId,
        categories: Categories,
        reason: EmergencyReason,
    ) -> SignedTransaction {
        self.sign(Payload::EmergencyAccess {
            patient,
            holder,
            categories,
            reason,
        })
    }

    /// An institution registers a practitioner: `practitioner_key` signs its
    /// consent to the registration (proof of possession); `licence` is
    /// [`licence_hash`] of the number and salt on their licence.
    pub fn register_practitioner(
        &self,
        practitioner_key: &crate::KeyFile,
        role: PractitionerRole,
        licence: Hash32,
    ) -> SignedTransaction {
        let key: PublicKey = practitioner_key.public_key();
        let proof = practitioner_key.secret().sign(&key_possession_message(
            &self.chain,
            &self.who.signer,
            "register-practitioner",
            &key,
        ));
        self.sign(Payload::RegisterPractitioner {
            key,
            role,
            licence_hash: licence,
            key_proof: proof,
        })
    }

    /// Replaces one of the signer's keys with `new_key`, which signs its
    /// consent (proof of possession) [R4.4]: `KeyRole::Own` for a patient's,
    /// a practitioner's or (signed as the institution) the admin key;
    /// `KeyRole::InstitutionNode` for the institution's node key, which a
    /// validator's set takes up after the change delay;
    /// `KeyRole::InstitutionTransport` for its node's transport key (an
    /// Ed25519 key, on an `sm2-sm3` chain).
    pub fn rotate_key(&self, role: KeyRole, new_key: &crate::KeyFile) -> SignedTransaction {
        let purpose = role.possession_purpose();
        let key = new_key.public_key();
        let proof = new_key.secret().sign(&key_possession_message(
            &self.chain,
            &self.who.signer,
            purpose,
            &key,
        ));
        self.sign(Payload::RotateKey {
            role,
            new_key: key,
            new_key_proof: proof,
        })
    }

    /// A validator's institution (admin key) proposes a change to the
    /// consortium, open for votes until `expires_at` (R4.8); its own vote
    /// counts for it. The proposal's id is this transaction's id.
    pub fn propose(&self, action: GovernanceAction, expires_at: Timestamp) -> SignedTransaction {
        self.sign(Payload::Propose { action, expires_at })
    }

    /// A validator's institution (admin key) votes on an open proposal (R4.9).
    pub fn vote(&self, proposal: ProposalId, approve: bool) -> SignedTransaction {
        self.sign(Payload::Vote { proposal, approve })
    }

    /// A regulator (admin key) attests a practitioner's licence, or renews
    /// or amends its attestation [R4.12].
    pub fn attest_licence(&self, terms: LicenceTerms) -> SignedTransaction {
        self.sign(Payload::AttestLicence(terms))
    }

    /// A regulator (admin key) suspends, reinstates or revokes an attested
    /// licence [R4.13].
    pub fn set_licence_status(&self, licence: Hash32, status: LicenceStatus) -> SignedTransaction {
        self.sign(Payload::SetLicenceStatus { licence, status })
    }

    /// A regulator (admin key) attests a member institution's credit code
    /// and practice licence, or renews or amends its attestation [R4.16].
    pub fn attest_institution(&self, terms: InstitutionLicenceTerms) -> SignedTransaction {
        self.sign(Payload::AttestInstitution(terms))
    }

    /// A regulator (admin key) suspends, reinstates or revokes a member
    /// institution's attested licence [R4.17].
    pub fn set_institution_licence_status(
        &self,
        institution: InstitutionId,
        status: LicenceStatus,
    ) -> SignedTransaction {
        self.sign(Payload::SetInstitutionLicenceStatus {
            institution,
            status,
        })
    }
}
