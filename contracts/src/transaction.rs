//! Transactions: what each party can ask the ledger to record, and how it is
//! signed.
//!
//! Rules (stateless; the state machine's rules are in [`crate::state_machine`]):
//! 1. A transaction is `signer ‖ nonce ‖ valid_until ‖ payload`. Its signing
//!    message is `H("medledger/tx/v2" ‖ BCS(chain id) ‖ BCS(transaction))`,
//!    `H` the chain's suite's hash function (SHA-256 or SM3), so a
//!    transaction signed for one chain does not verify on another.
//! 2. Its id is `H("medledger/txid/v2" ‖ BCS(chain id) ‖ BCS(transaction)
//!    ‖ BCS(public key))`: it covers the key that signs but not the signature,
//!    so re-signing cannot make a second id for one transaction, and a copy
//!    of someone's pending transaction signed with another key has an id of
//!    its own (it cannot use up theirs: the state machine's R1).
//! 3. Encoded signed transactions are at most
//!    [`TRANSACTION_BYTES_MAX`](crate::constants::TRANSACTION_BYTES_MAX) bytes,
//!    decoded strictly.
//! 4. Before any state is read, [`SignedTransaction::verify`] checks the
//!    signature (ZIP-215 for Ed25519), that every key is of the chain's
//!    suite and valid, and every field's canonical form (sorted category and holder lists, ordered times, well-formed ids).

use serde::{Deserialize, Serialize};

use crate::constants::*;
use crate::crypto::{self, CryptoError, PublicKey, SecretKey, Signature};
use crate::encoding::{self, BoundedVec, DecodeError, Hash32, HashFunction, tags};
use crate::types::*;

/// Whose key signs a transaction, and in which capacity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Signer {
    /// A patient, with their current key.
    Patient(PatientId),
    /// A guardian or proxy acting under a delegation, with their own current patient key.
    Delegate(DelegationId),
    /// A practitioner, with their current key.
    Practitioner(PractitionerId),
    /// An institution, with its administrative key.
    Institution(InstitutionId),
    /// An institution's node (its gateway), with the node key.
    InstitutionNode(InstitutionId),
}

/// An institution as admitted by governance or genesis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstitutionSpec {
    /// Its short id.
    pub id: InstitutionId,
    /// Its public name (an institution's, never a person's).
    pub name: encoding::BoundedString<INSTITUTION_NAME_BYTES_MAX>,
    /// What kind of member it is.
    pub kind: InstitutionKind,
    /// Unified social credit code (统一社会信用代码), 18 characters.
    pub legal_code: encoding::BoundedString<INSTITUTION_CODE_BYTES_MAX>,
    /// GB/T 2260 administrative region code, 6 digits.
    pub region_code: encoding::BoundedString<INSTITUTION_CODE_BYTES_MAX>,
    /// Reference of its practice licence (医疗机构执业许可证).
    pub licence_ref: encoding::BoundedString<INSTITUTION_CODE_BYTES_MAX>,
    /// Key of its administrators (signs membership and release records).
    pub admin_key: PublicKey,
    /// Key of its node: signs its consensus votes and proposals, and (on an
    /// `ed25519-sha256` chain) is also its network identity.
    pub node_key: PublicKey,
    /// Voting power as a validator; 0 for an observer.
    pub voting_power: u64,
    /// Its node's network identity (the libp2p key of the consensus network
    /// and the records gateway) where that is not the node key: required on
    /// an `sm2-sm3` chain, as libp2p's Noise handshake has no SM2 and takes
    /// an Ed25519 key; absent on `ed25519-sha256`, where the node key serves.
    pub transport_key: Option<PublicKey>,
}

impl InstitutionSpec {
    /// The key its node's network identity (libp2p peer id) derives from.
    pub fn transport_identity(&self) -> &PublicKey {
        self.transport_key.as_ref().unwrap_or(&self.node_key)
    }
}

/// A change to the consortium, made by a proposal and validators' votes.
// An admission carries a whole spec; governance actions are few, so the
// other variants' wasted bytes cost nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GovernanceAction {
    /// Admit a new institution.
    Admit(InstitutionSpec),
    /// Suspend a member: it may not act until reinstated.
    Suspend(InstitutionId),
    /// Lift a suspension.
    Reinstate(InstitutionId),
    /// Remove a member for good.
    Remove(InstitutionId),
    /// Set a member's voting power (0 makes it an observer).
    SetVotingPower {
        /// The member.
        institution: InstitutionId,
        /// Its new power.
        power: u64,
    },
    /// Create a group of members or set its members anew (none dissolves
    /// it: grants to it then reach no one) [R4.15].
    SetGroup {
        /// The group.
        group: GroupId,
        /// Its members (sorted, no duplicates).
        members: BoundedVec<InstitutionId, GROUP_MEMBERS_MAX>,
    },
    /// Correct a member's unified social credit code and practice licence
    /// reference (appended) [R4.18].
    SetCodes {
        /// The member.
        institution: InstitutionId,
        /// Its unified social credit code.
        legal_code: encoding::BoundedString<INSTITUTION_CODE_BYTES_MAX>,
        /// Its practice licence's reference.
        licence_ref: encoding::BoundedString<INSTITUTION_CODE_BYTES_MAX>,
    },
}

/// Which of the signer's keys a rotation replaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyRole {
    /// The signer's own key (patient, practitioner, or an institution's admin key).
    Own,
    /// An institution's node key (signed by the admin key).
    InstitutionNode,
    /// An institution's transport key (signed by the admin key; only on a
    /// chain whose nodes have one, `sm2-sm3`).
    InstitutionTransport,
}

impl KeyRole {
    /// The purpose a new key's possession proof names in its
    /// [`key_possession_message`].
    pub fn possession_purpose(self) -> &'static str {
        match self {
            Self::Own => "rotate",
            Self::InstitutionNode => "rotate-node",
            Self::InstitutionTransport => "rotate-transport",
        }
    }
}

/// What a transaction asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Payload {
    // --- membership ---
    /// A patient registers their first key (signer: `Patient(PatientId::from_key(key))`).
    RegisterPatient,
    /// A patient names who can recover their account if the key is lost.
    SetRecoveryPolicy {
        /// Recovery delegates (other patients), strictly increasing.
        delegates: BoundedVec<PatientId, RECOVERY_DELEGATES_MAX>,
        /// How many of them must approve the same new key.
        threshold: u8,
    },
    /// A recovery delegate approves a new key for a patient who lost theirs.
    ApproveRecovery {
        /// The patient being recovered.
        patient: PatientId,
        /// The key the patient's new device made.
        new_key: PublicKey,
        /// The new key's signature over the recovery (proof the patient holds it).
        new_key_proof: Signature,
    },
    /// Replace one of the signer's keys.
    RotateKey {
        /// Which key.
        role: KeyRole,
        /// The replacement.
        new_key: PublicKey,
        /// The new key's signature over the rotation.
        new_key_proof: Signature,
    },
    /// An institution registers one of its practitioners.
    RegisterPractitioner {
        /// The practitioner's key; their id is derived from it.
        key: PublicKey,
        /// Their role.
        role: PractitionerRole,
        /// Their licence's [`licence_hash`] (salted); the number and salt
        /// stay in the institution's records.
        licence_hash: Hash32,
        /// The key's signature over the registration.
        key_proof: Signature,
    },
    /// An institution retires one of its practitioners.
    RetirePractitioner {
        /// Who.
        practitioner: PractitionerId,
    },
    /// A hospital records a patient as a minor under a guardian (it has seen
    /// the birth and guardianship documents), with the consent of the
    /// patient's key, which the guardian holds for a child [R4.7].
    RecordGuardianship {
        /// The minor.
        patient: PatientId,
        /// The guardian (a registered patient key).
        guardian: PatientId,
        /// When the patient comes of age; guardianship ends then.
        minor_until: Timestamp,
        /// Hash of the evidence seen (e.g. of the birth certificate's
        /// number under a tag of the hospital's choosing); never the number.
        evidence_hash: Hash32,
        /// The patient's current key's signature over
        /// [`guardianship_consent_message`].
        patient_consent: Signature,
    },
    /// A validator proposes a consortium change.
    Propose {
        /// The change.
        action: GovernanceAction,
        /// The proposal lapses at this time if not carried.
        expires_at: Timestamp,
    },
    /// A validator votes on a proposal.
    Vote {
        /// Which proposal.
        proposal: ProposalId,
        /// For or against.
        approve: bool,
    },
    // --- consent ---
    /// A patient (or guardian or proxy) grants access.
    Grant(GrantTerms),
    /// A patient (or guardian or proxy) revokes a grant.
    Revoke {
        /// Which grant.
        grant: GrantId,
    },
    /// A grantee gives a grant up.
    Relinquish {
        /// Which grant.
        grant: GrantId,
    },
    /// A practitioner or institution asks a patient for consent.
    RequestConsent(GrantTerms),
    /// A patient (or guardian or proxy) answers a consent request; approval
    /// creates a grant with the requested terms, named by this transaction.
    AnswerConsentRequest {
        /// Which request.
        request: ConsentRequestId,
        /// Yes or no.
        approve: bool,
    },
    /// An adult patient appoints a guardian or proxy.
    Delegate {
        /// Who (a registered patient key).
        delegate: PatientId,
        /// In which role.
        role: DelegateRole,
        /// Until when.
        expires_at: Timestamp,
    },
    /// The patient, the delegate, or (for a recorded guardianship) the
    /// recording hospital ends a delegation.
    EndDelegation {
        /// Which delegation.
        delegation: DelegationId,
    },
    // --- audit ---
    /// A practitioner asks to read records under a grant.
    AccessRequest {
        /// The grant relied on.
        grant: GrantId,
        /// Who holds the records.
        holder: InstitutionId,
        /// Which categories.
        categories: Categories,
        /// Why.
        purpose: Purpose,
    },
    /// A holder's node records what it released for an authorised request.
    AccessServed {
        /// The request served.
        request: RequestId,
        /// Every resource released: its content hash under the transfer's salt (records rule 4).
        content_hashes: BoundedVec<Hash32, CONTENT_HASHES_PER_RELEASE_MAX>,
    },
    /// A practitioner breaks the glass.
    EmergencyAccess {
        /// Whose records.
        patient: PatientId,
        /// Who holds them.
        holder: InstitutionId,
        /// Which categories.
        categories: Categories,
        /// Why.
        reason: EmergencyReason,
    },
    /// The requester's institution or a regulator reviews an emergency access.
    EmergencyReview {
        /// The emergency access reviewed.
        access: RequestId,
        /// What the review found.
        finding: ReviewFinding,
        /// The hash (the chain's) of the review record kept by the reviewer.
        record_hash: Hash32,
    },
    /// A public-health officer reads records under a legal mandate.
    PublicHealthAccess {
        /// Whose records.
        patient: PatientId,
        /// Who holds them.
        holder: InstitutionId,
        /// Which categories.
        categories: Categories,
        /// The law relied on.
        legal_basis: LegalBasis,
        /// The salted hash (the chain's) of the case reference (the case report stays with the CDC).
        case_hash: Hash32,
    },
    /// A holder's node records that it refused to serve a committed access
    /// (appended last so earlier payloads keep their encodings).
    FetchRefused {
        /// The access the fetch cited.
        request: RequestId,
        /// The practitioner whose signed fetch was refused.
        practitioner: PractitionerId,
        /// Why.
        reason: FetchRefusal,
    },
    // --- membership, appended ---
    /// The patient's current key cancels a pending key replacement, a
    /// pending change of recovery contacts, or both [R4.11].
    CancelControlChange {
        /// Cancel the key approved by recovery contacts.
        key: bool,
        /// Cancel the new recovery contacts.
        contacts: bool,
    }, // --- licences, appended ---
    /// A regulator attests a practitioner's licence, or renews or amends
    /// its attestation [R4.12].
    AttestLicence(LicenceTerms),
    /// A regulator suspends, reinstates or revokes an attested licence [R4.13].
    SetLicenceStatus {
        /// The licence, by its hash.
        licence: Hash32,
        /// Its new status.
        status: LicenceStatus,
    },
    // --- the patient's own records, appended ---
    /// A patient asks a member that holds records for their own records,
    /// which its gateway seals to a one-time key of the patient's device
    /// [R7.8].
    OwnRecordsRequest {
        /// Who holds them.
        holder: InstitutionId,
        /// Which categories.
        categories: Categories,
    },
    // --- institutions' licences, appended ---
    /// A regulator attests a member institution's credit code and practice
    /// licence, or renews or amends its attestation [R4.16].
    AttestInstitution(InstitutionLicenceTerms),
    /// A regulator suspends, reinstates or revokes an institution's
    /// attested licence [R4.17].
    SetInstitutionLicenceStatus {
        /// The member.
        institution: InstitutionId,
        /// Its licence's new status.
        status: LicenceStatus,
    },
}

impl Payload {
    /// The kind of transaction, by its stable name on the HTTP API (kebab-case).
    pub fn name(&self) -> &'static str {
        match self {
            Self::RegisterPatient { .. } => "register-patient",
            Self::SetRecoveryPolicy { .. } => "set-recovery-policy",
            Self::ApproveRecovery { .. } => "approve-recovery",
            Self::RotateKey { .. } => "rotate-key",
            Self::RegisterPractitioner { .. } => "register-practitioner",
            Self::AttestLicence(_) => "attest-licence",
            Self::SetLicenceStatus { .. } => "set-licence-status",
            Self::AttestInstitution(_) => "attest-institution",
            Self::SetInstitutionLicenceStatus { .. } => "set-institution-licence-status",
            Self::RetirePractitioner { .. } => "retire-practitioner",
            Self::RecordGuardianship { .. } => "record-guardianship",
            Self::Propose { .. } => "propose",
            Self::Vote { .. } => "vote",
            Self::Grant { .. } => "grant",
            Self::Revoke { .. } => "revoke",
            Self::Relinquish { .. } => "relinquish",
            Self::RequestConsent { .. } => "request-consent",
            Self::AnswerConsentRequest { .. } => "answer-consent-request",
            Self::Delegate { .. } => "delegate",
            Self::EndDelegation { .. } => "end-delegation",
            Self::AccessRequest { .. } => "access-request",
            Self::AccessServed { .. } => "access-served",
            Self::EmergencyAccess { .. } => "emergency-access",
            Self::EmergencyReview { .. } => "emergency-review",
            Self::PublicHealthAccess { .. } => "public-health-access",
            Self::FetchRefused { .. } => "fetch-refused",
            Self::CancelControlChange { .. } => "cancel-control-change",
            Self::OwnRecordsRequest { .. } => "own-records-request",
        }
    }
}

/// A transaction before signing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    /// Who signs.
    pub signer: Signer,
    /// Any number the signer picks to make otherwise identical transactions distinct.
    pub nonce: u64,
    /// The last block time at which it may be committed; a block may take
    /// it only if this is at most its time plus the genesis
    /// `tx_validity_window_ms` (R1).
    pub valid_until: Timestamp,
    /// What it asks for.
    pub payload: Payload,
}

/// A transaction with its signature, as it travels and is stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedTransaction {
    /// The transaction.
    pub transaction: Transaction,
    /// The key that signed (must be the signer's current key in state).
    pub public_key: PublicKey,
    /// The signature over the signing message.
    pub signature: Signature,
}

impl SignedTransaction {
    /// The hash of the transaction exactly as signed, given its id on the
    /// chain: the id, the public key and the signature. Unlike the id, it
    /// changes with the signature: a block's transaction root is over these,
    /// so a certified header fixes the signatures its block carries.
    pub fn signed_hash(&self, hash: HashFunction, id: &TxHash) -> Hash32 {
        hash.tagged_hash(
            tags::SIGNED_TRANSACTION,
            &[
                &id.0.0,
                &encoding::to_bytes(&self.public_key),
                &encoding::to_bytes(&self.signature),
            ],
        )
    }
}

/// Why a transaction is malformed, before any state is consulted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransactionError {
    /// The bytes do not decode.
    #[error("transaction does not decode: {0}")]
    Decode(#[from] DecodeError),
    /// The signing key is unusable or the signature does not verify (for this chain).
    #[error(
        "signature check failed on chain {chain}: {error} (wrong key, tampered, or signed for another chain)"
    )]
    Signature {
        /// The chain we verified for.
        chain: String,
        /// The underlying failure.
        error: CryptoError,
    },
    /// A field is not in canonical form.
    #[error("field {field}: {problem}")]
    Field {
        /// Which field.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
}

fn field(field: &'static str, problem: impl Into<String>) -> TransactionError {
    TransactionError::Field {
        field,
        problem: problem.into(),
    }
}

/// What a key signs to prove it agrees to become a key on the ledger.
#[derive(Serialize)]
struct KeyPossession<'a> {
    chain: &'a ChainId,
    signer: &'a Signer,
    purpose: &'a str,
    new_key: &'a PublicKey,
}

/// The digest a new key signs to prove possession.
///
/// `purpose` names what the key is being bound to (`rotate`, `recover`,
/// `register-practitioner`), and `signer` who binds it, so a proof made for
/// one use cannot be replayed for another.
pub fn key_possession_message(
    chain: &Chain,
    signer: &Signer,
    purpose: &str,
    new_key: &PublicKey,
) -> Hash32 {
    chain.hash().hash_of(
        tags::KEY_POSSESSION,
        &KeyPossession {
            chain: &chain.id,
            signer,
            purpose,
            new_key,
        },
    )
}

#[derive(Serialize)]
struct GuardianshipConsent<'a> {
    chain: &'a ChainId,
    recorder: &'a Signer,
    patient: &'a PatientId,
    guardian: &'a PatientId,
    minor_until: Timestamp,
    evidence_hash: &'a Hash32,
}

/// The digest a patient's key signs to accept `record_number` at
/// `hospital` as their record there: a hospital's gateway serves a
/// patient's records only under a link the patient's current key signed, so
/// a patient id or record number mistyped at the desk is not served, and the
/// acceptance is not reused at another hospital, for another number or on
/// another chain. It says nothing of what the hospital files under the
/// number. The link and its signature never reach the ledger.
pub fn record_link_message(
    chain: &Chain,
    hospital: &InstitutionId,
    patient: &PatientId,
    record_number: &str,
) -> Hash32 {
    chain.hash().hash_of(
        tags::RECORD_LINK,
        &(&chain.id, hospital, patient, record_number),
    )
}

/// What a patient's key signs to accept being recorded as a minor under a
/// guardian until `minor_until` by the hospital signing as `recorder`
/// [R4.7]: a hospital alone cannot make a patient who holds their own key a
/// minor, nor use a consent given to another hospital; each is used once.
pub fn guardianship_consent_message(
    chain: &Chain,
    recorder: &Signer,
    patient: &PatientId,
    guardian: &PatientId,
    minor_until: Timestamp,
    evidence_hash: &Hash32,
) -> Hash32 {
    chain.hash().hash_of(
        tags::GUARDIANSHIP_CONSENT,
        &GuardianshipConsent {
            chain: &chain.id,
            recorder,
            patient,
            guardian,
            minor_until,
            evidence_hash,
        },
    )
}

impl Transaction {
    /// The digest the signer signs.
    pub fn signing_message(&self, chain: &Chain) -> Hash32 {
        chain.hash().tagged_hash(
            tags::TRANSACTION_SIGNING,
            &[&encoding::to_bytes(&chain.id), &encoding::to_bytes(self)],
        )
    }

    /// [`Self::signing_message`] and [`Self::id`] from one encoding.
    pub fn signing_message_and_id(&self, chain: &Chain, key: &PublicKey) -> (Hash32, TxHash) {
        let hash = chain.hash();
        let chain = encoding::to_bytes(&chain.id);
        let bytes = encoding::to_bytes(self);
        (
            hash.tagged_hash(tags::TRANSACTION_SIGNING, &[&chain, &bytes]),
            TxHash(hash.tagged_hash(
                tags::TRANSACTION_ID,
                &[&chain, &bytes, &encoding::to_bytes(key)],
            )),
        )
    }

    /// The transaction's id on `chain` when `key` signs it (rule 2).
    pub fn id(&self, chain: &Chain, key: &PublicKey) -> TxHash {
        TxHash(chain.hash().tagged_hash(
            tags::TRANSACTION_ID,
            &[
                &encoding::to_bytes(&chain.id),
                &encoding::to_bytes(self),
                &encoding::to_bytes(key),
            ],
        ))
    }

    /// Signs for `chain`.
    pub fn sign(self, chain: &Chain, key: &SecretKey) -> SignedTransaction {
        let signature = key.sign(&self.signing_message(chain));
        SignedTransaction {
            transaction: self,
            public_key: key.public_key(),
            signature,
        }
    }
}

/// A transaction whose signature and form have been checked; only these reach the state machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedTransaction {
    signed: SignedTransaction,
    id: TxHash,
    encoded_len: usize,
    chain: Chain,
}

impl VerifiedTransaction {
    /// The transaction.
    pub fn transaction(&self) -> &Transaction {
        &self.signed.transaction
    }

    /// [`SignedTransaction::signed_hash`] of the verified copy.
    pub fn signed_hash(&self) -> Hash32 {
        self.signed.signed_hash(self.chain.hash(), &self.id)
    }

    /// The signed form.
    pub fn signed(&self) -> &SignedTransaction {
        &self.signed
    }

    /// The key that signed.
    pub fn public_key(&self) -> &PublicKey {
        &self.signed.public_key
    }

    /// Its id.
    pub fn id(&self) -> TxHash {
        self.id
    }

    /// Its encoded length in bytes.
    pub fn encoded_len(&self) -> usize {
        self.encoded_len
    }

    /// The chain it was verified for (proofs inside it bind to it).
    pub fn chain(&self) -> &Chain {
        &self.chain
    }
}

impl SignedTransaction {
    /// Its id on `chain` (rule 2: the transaction with the key it carries).
    pub fn id(&self, chain: &Chain) -> TxHash {
        self.transaction.id(chain, &self.public_key)
    }

    /// Canonical bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        encoding::to_bytes(self)
    }

    /// The length of [`Self::to_bytes`], without encoding.
    pub fn encoded_len(&self) -> usize {
        // Only a value BCS cannot encode fails (nesting past BCS's depth
        // limit); none of a transaction's types nests. Were one to, it would
        // count as larger than any bound, so every size check refuses it.
        bcs::serialized_size(self).unwrap_or(usize::MAX)
    }

    /// Strictly decodes a signed transaction.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TransactionError> {
        Ok(encoding::from_bytes(bytes, TRANSACTION_BYTES_MAX)?)
    }

    /// Decodes and verifies in one step: what a node does with bytes from outside.
    pub fn decode_and_verify(
        bytes: &[u8],
        chain: &Chain,
    ) -> Result<VerifiedTransaction, TransactionError> {
        Self::from_bytes(bytes)?.verify(chain)
    }

    /// Checks the signature (rule 1) and every field's form (rule 4).
    pub fn verify(self, chain: &Chain) -> Result<VerifiedTransaction, TransactionError> {
        let encoded_len = self.encoded_len();
        if encoded_len > TRANSACTION_BYTES_MAX {
            return Err(DecodeError::TooLarge {
                actual: encoded_len,
                max: TRANSACTION_BYTES_MAX,
            }
            .into());
        }
        let signature_error = |error| TransactionError::Signature {
            chain: chain.id.as_str().to_string(),
            error,
        };
        chain
            .suite
            .check_key(&self.public_key)
            .map_err(signature_error)?;
        let (message, id) = self
            .transaction
            .signing_message_and_id(chain, &self.public_key);
        self.public_key
            .verify(&message, &self.signature)
            .map_err(signature_error)?;
        check_form(chain, &self.transaction)?;
        Ok(VerifiedTransaction {
            signed: self,
            id,
            encoded_len,
            chain: chain.clone(),
        })
    }
}

/// Verifies many transactions as [`SignedTransaction::verify`] does one by
/// one, with their signatures checked in one batch ([`crypto::verify_batch`],
/// which accepts exactly what verification one by one accepts: ZIP-215).
/// On any failure the error, and the index and id of the first failing
/// transaction, are exactly those of [`SignedTransaction::verify`]. Keys
/// are prepared through `keys`, kept by the caller across batches.
pub fn verify_many(
    chain: &Chain,
    transactions: Vec<SignedTransaction>,
    keys: &crypto::KeyCache,
) -> Result<Vec<VerifiedTransaction>, (usize, TxHash, TransactionError)> {
    let checked = check_all_but_signatures(chain, &transactions, keys);
    if checked.iter().all(Option::is_some) {
        let items: Vec<_> = checked
            .iter()
            .flatten()
            .zip(&transactions)
            .map(|(c, t)| (c.key.clone(), c.message, t.signature))
            .collect();
        if crypto::verify_batch(&items) {
            return Ok(transactions
                .into_iter()
                .zip(checked.into_iter().flatten())
                .map(|(signed, c)| c.verified(signed, chain))
                .collect());
        }
    }
    // One by one, stopping at the first that fails (a hostile proposer's
    // bad first signature costs a batch and one single check).
    transactions
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let id = t.id(chain);
            t.verify(chain).map_err(|e| (i, id, e))
        })
        .collect()
}

/// Verifies each transaction as [`SignedTransaction::verify`] does, giving
/// each its own result (what a node does with a batch arriving from a
/// client or a peer: every good one is kept, every bad one refused with its
/// own error). The signatures of those whose form passes are checked in one
/// batch; if that batch fails, they are checked one by one, so the results
/// are exactly those of verifying each alone (ZIP-215 makes batch and single
/// agree). A batch with one bad signature costs the batch and then the
/// single checks: with a batch at about 0.6 of the single checks' time
/// (`cargo bench -p medledger-contracts --bench contracts -- 'signatures (64'`),
/// about 1.6 times what checking one by one would have. Keys are prepared
/// through `keys`, which a node keeps across batches: a patient's or a
/// hospital's key signs again and again, and preparing it (a square root
/// on the curve) is about a third of what its batch verification costs.
pub fn verify_each(
    chain: &Chain,
    transactions: Vec<SignedTransaction>,
    keys: &crypto::KeyCache,
) -> Vec<Result<VerifiedTransaction, TransactionError>> {
    let checked = check_all_but_signatures(chain, &transactions, keys);
    let items: Vec<_> = checked
        .iter()
        .zip(&transactions)
        .filter_map(|(c, t)| c.as_ref().map(|c| (c.key.clone(), c.message, t.signature)))
        .collect();
    let batch_passed = items.is_empty() || crypto::verify_batch(&items);
    transactions
        .into_iter()
        .zip(checked)
        .map(|(signed, checked)| match checked {
            Some(c) if batch_passed => Ok(c.verified(signed, chain)),
            // Its own check gives the exact error (or, after a failed
            // batch, the verdict on this one alone).
            _ => signed.verify(chain),
        })
        .collect()
}

/// What [`verify_many`] knows of a transaction before its signature is checked.
struct CheckedForm {
    key: crypto::PreparedKey,
    message: Hash32,
    id: TxHash,
    encoded_len: usize,
}

impl CheckedForm {
    /// `signed`, whose signature a batch has now checked.
    fn verified(self, signed: SignedTransaction, chain: &Chain) -> VerifiedTransaction {
        VerifiedTransaction {
            signed,
            id: self.id,
            encoded_len: self.encoded_len,
            chain: chain.clone(),
        }
    }
}

/// Every check of [`SignedTransaction::verify`] but the signature equation,
/// for each transaction (`None` where one fails), keys prepared through
/// `keys` (so a key signing several transactions is prepared once).
fn check_all_but_signatures(
    chain: &Chain,
    transactions: &[SignedTransaction],
    keys: &crypto::KeyCache,
) -> Vec<Option<CheckedForm>> {
    transactions
        .iter()
        .map(|t| {
            let encoded_len = t.encoded_len();
            if encoded_len > TRANSACTION_BYTES_MAX {
                return None;
            }
            // The cache refuses a key of another suite before any work.
            let key = keys.prepare(chain.suite, &t.public_key).ok()?;
            check_form(chain, &t.transaction).ok()?;
            let (message, id) = t.transaction.signing_message_and_id(chain, &t.public_key);
            Some(CheckedForm {
                key,
                message,
                id,
                encoded_len,
            })
        })
        .collect()
}

fn check_institution_id(name: &'static str, id: &InstitutionId) -> Result<(), TransactionError> {
    if id.is_well_formed() {
        Ok(())
    } else {
        Err(field(
            name,
            format!("{:?} is not a well-formed institution id", id.as_str()),
        ))
    }
}

fn check_categories(categories: &[Category]) -> Result<(), TransactionError> {
    if categories_canonical(categories) {
        Ok(())
    } else {
        Err(field(
            "categories",
            "must be non-empty, sorted and without duplicates",
        ))
    }
}

fn check_key(
    suite: crypto::CryptoSuite,
    name: &'static str,
    key: &PublicKey,
) -> Result<(), TransactionError> {
    suite
        .check_key(key)
        .and_then(|()| key.validate())
        .map_err(|e| field(name, e.to_string()))
}

fn check_possession(
    chain: &Chain,
    signer: &Signer,
    purpose: &str,
    key: &PublicKey,
    proof: &Signature,
) -> Result<(), TransactionError> {
    check_key(chain.suite, "new_key", key)?;
    check_proof(chain, signer, purpose, key, proof)
}

/// The new key's signature over its possession message.
fn check_proof(
    chain: &Chain,
    signer: &Signer,
    purpose: &str,
    key: &PublicKey,
    proof: &Signature,
) -> Result<(), TransactionError> {
    key.verify(&key_possession_message(chain, signer, purpose, key), proof)
        .map_err(|e| {
            field(
                "new_key_proof",
                format!("the new key did not sign the {purpose} message: {e}"),
            )
        })
}

/// Checks the form of grant terms: canonical lists, ordered times.
pub fn check_terms(terms: &GrantTerms) -> Result<(), TransactionError> {
    check_categories(&terms.categories)?;
    match &terms.grantee {
        Grantee::Institution(id) => check_institution_id("grantee", id)?,
        Grantee::Group(id) if !id.is_well_formed() => {
            return Err(field(
                "grantee",
                "a group id is 1 to 64 of a-z, 0-9 and '-'",
            ));
        }
        Grantee::Group(_) | Grantee::Practitioner(_) => {}
    }
    if let Holders::Listed(list) = &terms.holders {
        if list.is_empty() || !list.windows(2).all(|w| w[0] < w[1]) {
            return Err(field(
                "holders",
                "a listed holder set must be non-empty, sorted and without duplicates",
            ));
        }
        for holder in list.iter() {
            check_institution_id("holders", holder)?;
        }
    }
    if terms.expires_at <= terms.not_before {
        return Err(field("expires_at", "must be later than not_before"));
    }
    if let (Some(from), Some(until)) = (terms.records_from, terms.records_until) {
        if until <= from {
            return Err(field("records_until", "must be later than records_from"));
        }
    }
    if !sensitive_classes_canonical(&terms.sensitive_included) {
        return Err(field(
            "sensitive_included",
            "must be sorted and without duplicates",
        ));
    }
    Ok(())
}

fn check_spec(suite: crypto::CryptoSuite, spec: &InstitutionSpec) -> Result<(), TransactionError> {
    check_institution_id("id", &spec.id)?;
    if let InstitutionKind::InternetHospital { parent } = &spec.kind {
        check_institution_id("parent", parent)?;
    }
    check_key(suite, "admin_key", &spec.admin_key)?;
    check_key(suite, "node_key", &spec.node_key)?;
    check_transport_key(suite, spec.transport_key.as_ref())?;
    let region = spec.region_code.as_str();
    if region.len() != 6 || !region.bytes().all(|b| b.is_ascii_digit()) {
        return Err(field("region_code", "must be a 6-digit GB/T 2260 code"));
    }
    check_codes(spec.legal_code.as_str(), spec.licence_ref.as_str())?;
    if spec.name.as_str().is_empty() {
        return Err(field("name", "must not be empty"));
    }
    Ok(())
}

/// A member's codes are well formed: an 18-character unified social
/// credit code, and a practice licence reference a regulator could have
/// read off the licence (it attests it as it stands, R4.16).
fn check_codes(legal: &str, licence: &str) -> Result<(), TransactionError> {
    if legal.len() != 18
        || !legal
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
    {
        return Err(field(
            "legal_code",
            "must be an 18-character unified social credit code (digits and capitals)",
        ));
    }
    if licence.is_empty()
        || !licence
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(field(
            "licence_ref",
            "must be the practice licence's reference: letters, digits and '-'",
        ));
    }
    Ok(())
}

/// A transport key is present exactly where the suite's nodes need one
/// ([`InstitutionSpec::transport_key`]), and is then an Ed25519 key.
fn check_transport_key(
    suite: crypto::CryptoSuite,
    key: Option<&PublicKey>,
) -> Result<(), TransactionError> {
    const NAME: &str = "transport_key";
    match (suite.has_transport_keys(), key) {
        (false, None) => Ok(()),
        (false, Some(_)) => Err(field(
            NAME,
            format!(
                "must be left out on a chain of suite {}: the node key is the node's network identity",
                suite.name()
            ),
        )),
        (true, None) => Err(field(
            NAME,
            format!(
                "is required on a chain of suite {}: libp2p's handshake has no SM2, so a node's network identity is an Ed25519 key of its own",
                suite.name()
            ),
        )),
        (true, Some(PublicKey::Ed25519(_))) => key
            .map_or(Ok(()), PublicKey::validate)
            .map_err(|e| field(NAME, e.to_string())),
        (true, Some(other)) => Err(field(
            NAME,
            format!("must be an Ed25519 key, not {}", other.scheme()),
        )),
    }
}

/// The same error about another field.
fn retitle(error: TransactionError, name: &'static str) -> TransactionError {
    match error {
        TransactionError::Field { problem, .. } => field(name, problem),
        other => other,
    }
}

/// Checks the stateless form of an institution spec on a chain of `suite`
/// (used by genesis too).
pub fn check_institution_spec(
    suite: crypto::CryptoSuite,
    spec: &InstitutionSpec,
) -> Result<(), TransactionError> {
    check_spec(suite, spec)
}

fn check_form(chain: &Chain, tx: &Transaction) -> Result<(), TransactionError> {
    match &tx.signer {
        Signer::Institution(id) | Signer::InstitutionNode(id) => {
            check_institution_id("signer", id)?
        }
        Signer::Patient(_) | Signer::Delegate(_) | Signer::Practitioner(_) => {}
    }
    match &tx.payload {
        Payload::SetRecoveryPolicy {
            delegates,
            threshold,
        } => {
            if !delegates.windows(2).all(|w| w[0] < w[1]) {
                return Err(field("delegates", "must be sorted and without duplicates"));
            }
            if *threshold == 0 || usize::from(*threshold) > delegates.len() {
                return Err(field(
                    "threshold",
                    "must be between 1 and the number of delegates",
                ));
            }
        }
        Payload::ApproveRecovery {
            patient,
            new_key,
            new_key_proof,
        } => {
            let subject = Signer::Patient(*patient);
            check_possession(chain, &subject, "recover", new_key, new_key_proof)?;
        }
        Payload::RotateKey {
            role,
            new_key,
            new_key_proof,
        } => {
            let purpose = role.possession_purpose();
            if *role == KeyRole::InstitutionTransport {
                check_transport_key(chain.suite, Some(new_key))
                    .map_err(|e| retitle(e, "new_key"))?;
                check_proof(chain, &tx.signer, purpose, new_key, new_key_proof)?;
            } else {
                check_possession(chain, &tx.signer, purpose, new_key, new_key_proof)?;
            }
        }
        Payload::RegisterPractitioner { key, key_proof, .. } => {
            check_possession(chain, &tx.signer, "register-practitioner", key, key_proof)?;
        }
        Payload::Propose { action, .. } => match action {
            GovernanceAction::Admit(spec) => check_spec(chain.suite, spec)?,
            GovernanceAction::Suspend(id)
            | GovernanceAction::Reinstate(id)
            | GovernanceAction::Remove(id) => check_institution_id("institution", id)?,
            GovernanceAction::SetVotingPower { institution, .. } => {
                check_institution_id("institution", institution)?
            }
            GovernanceAction::SetGroup { group, members } => {
                if !group.is_well_formed() {
                    return Err(field("group", "must be 1 to 64 of a-z, 0-9 and '-'"));
                }
                if !members.windows(2).all(|w| w[0] < w[1]) {
                    return Err(field("members", "must be sorted and without duplicates"));
                }
                for member in members.iter() {
                    check_institution_id("members", member)?;
                }
            }
            GovernanceAction::SetCodes {
                institution,
                legal_code,
                licence_ref,
            } => {
                check_institution_id("institution", institution)?;
                check_codes(legal_code.as_str(), licence_ref.as_str())?;
            }
        },
        Payload::Grant(terms) | Payload::RequestConsent(terms) => check_terms(terms)?,
        Payload::AttestLicence(terms) => check_licence_terms(terms)?,
        Payload::AttestInstitution(terms) => check_institution_licence_terms(terms)?,
        Payload::SetInstitutionLicenceStatus { institution, .. } => {
            check_institution_id("institution", institution)?
        }
        Payload::AccessRequest {
            holder, categories, ..
        }
        | Payload::EmergencyAccess {
            holder, categories, ..
        }
        | Payload::PublicHealthAccess {
            holder, categories, ..
        }
        | Payload::OwnRecordsRequest { holder, categories } => {
            check_institution_id("holder", holder)?;
            check_categories(categories)?;
        }
        Payload::RecordGuardianship {
            patient_consent, ..
        } => {
            // Checked against the patient's key at execution; a signature
            // of another suite's scheme does not reach a block.
            chain
                .suite
                .check_signature(patient_consent)
                .map_err(|e| field("patient_consent", e.to_string()))?;
        }
        Payload::RegisterPatient
        | Payload::RetirePractitioner { .. }
        | Payload::Vote { .. }
        | Payload::Revoke { .. }
        | Payload::Relinquish { .. }
        | Payload::AnswerConsentRequest { .. }
        | Payload::Delegate { .. }
        | Payload::EndDelegation { .. }
        | Payload::AccessServed { .. }
        | Payload::FetchRefused { .. }
        | Payload::EmergencyReview { .. }
        | Payload::CancelControlChange { .. }
        | Payload::SetLicenceStatus { .. } => {}
    }
    Ok(())
}

/// Checks the form of licence terms: canonical lists of well-formed codes
/// and ids, at least one institution, ordered times.
pub fn check_licence_terms(terms: &LicenceTerms) -> Result<(), TransactionError> {
    check_scopes(&terms.scopes)?;
    if terms.institutions.is_empty() || !terms.institutions.windows(2).all(|w| w[0] < w[1]) {
        return Err(field(
            "institutions",
            "must be non-empty, sorted and without duplicates",
        ));
    }
    for institution in terms.institutions.iter() {
        check_institution_id("institutions", institution)?;
    }
    if !terms.practitioners.windows(2).all(|w| w[0] < w[1]) {
        return Err(field(
            "practitioners",
            "must be sorted and without duplicates",
        ));
    }
    if terms.valid_until <= terms.valid_from {
        return Err(field("valid_until", "must be later than valid_from"));
    }
    Ok(())
}

/// Checks the form of an institution's licence terms: a well-formed id,
/// canonical scopes, codes present, ordered times (that the codes are the
/// member's is the rules' to check, R4.16).
pub fn check_institution_licence_terms(
    terms: &InstitutionLicenceTerms,
) -> Result<(), TransactionError> {
    check_institution_id("institution", &terms.institution)?;
    check_scopes(&terms.scopes)?;
    if terms.legal_code.as_str().is_empty() || terms.licence_ref.as_str().is_empty() {
        return Err(field("legal_code", "the codes checked must not be empty"));
    }
    if terms.valid_until <= terms.valid_from {
        return Err(field("valid_until", "must be later than valid_from"));
    }
    Ok(())
}

/// Scopes of practice are canonical (sorted, no duplicates) and well formed.
fn check_scopes(scopes: &[PracticeScope]) -> Result<(), TransactionError> {
    if !scopes.windows(2).all(|w| w[0] < w[1]) {
        return Err(field("scopes", "must be sorted and without duplicates"));
    }
    if !scopes.iter().all(PracticeScope::is_well_formed) {
        return Err(field(
            "scopes",
            "each must be 1 to 32 characters of a-z, 0-9 and '-'",
        ));
    }
    Ok(())
}

/// The hash a practitioner's licence is recorded as: of its number with a
/// salt issued with the licence (a regulator's attestation and every
/// institution's registration use the same pair), so that the number,
/// which is short and structured enough to guess, cannot be confirmed
/// from the ledger.
pub fn licence_hash(hash: HashFunction, salt: &[u8; 16], licence_number: &str) -> Hash32 {
    hash.tagged_hash(tags::LICENCE, &[salt, licence_number.as_bytes()])
}
