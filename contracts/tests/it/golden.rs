//! Golden vectors: the byte formats pinned by a fixture file that the patient
//! app's JavaScript is tested against too. A format change fails here until
//! the fixture is regenerated on purpose with `MEDLEDGER_UPDATE_GOLDEN=1`.

use serde_json::{Value, json};

use medledger_contracts::block::BlockHeader;
use medledger_contracts::crypto::CryptoSuite;
use medledger_contracts::encoding::{self, BoundedString, BoundedVec, Hash32};
use medledger_contracts::records::{AuditEntry, AuditEvent, BlockRef, ControlChange};
use medledger_contracts::state_machine::transaction_root;
use medledger_contracts::transaction::*;
use medledger_contracts::types::*;

use crate::world::*;

/// The pinned fixture of this thread's suite. Resolved when the test runs
/// (cargo runs it from the package's directory), not baked in at build
/// time: one target directory serves several checkouts of the repository
/// (CI's clean clone among them).
fn fixture() -> std::path::PathBuf {
    let name = match suite() {
        CryptoSuite::Ed25519Sha256 => "golden-vectors.json",
        CryptoSuite::Sm2Sm3 => "golden-vectors-sm2-sm3.json",
    };
    std::path::Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into()))
        .join("tests/fixtures")
        .join(name)
}

const SUITES: [CryptoSuite; 2] = [CryptoSuite::Ed25519Sha256, CryptoSuite::Sm2Sm3];

/// Every vector's `valid_until`: an hour after the grant's `not_before`.
const VALID_UNTIL: Timestamp = Timestamp(1_790_003_600_000);

fn vector(name: &str, chain: &Chain, label: &str, tx: Transaction) -> Value {
    let k = key(label);
    let signed = tx.clone().sign(chain, &k);
    if let Err(e) = signed.clone().verify(chain) {
        panic!("golden vector {name} must be a valid transaction: {e}");
    }
    json!({
        "name": name,
        "secret_seed": hex::encode(k.seed()),
        "public_key": k.public_key().to_text(),
        "public_key_bcs": hex::encode(encoding::to_bytes(&k.public_key())),
        "transaction_bcs": hex::encode(encoding::to_bytes(&tx)),
        "signing_message": tx.signing_message(chain).to_hex(),
        "transaction_id": tx.id(chain, &k.public_key()).0.to_hex(),
        "signature": signed.signature.to_hex(),
        "signed_transaction_bcs": hex::encode(signed.to_bytes()),
    })
}

fn build() -> Value {
    let chain = chain("medledger-golden");
    let alice = key("alice").public_key();
    let patient = PatientId::from_key(hash(), &alice);
    let doc = PractitionerId::from_key(hash(), &key("doc-b").public_key());
    let terms = GrantTerms {
        patient,
        grantee: Grantee::Institution(inst("city-second-hospital")),
        categories: cats(&[Category::LabReports, Category::Imaging]),
        holders: Holders::Listed(BoundedVec::new(vec![inst("city-first-hospital")]).unwrap()),
        purpose: Purpose::Referral,
        not_before: Timestamp(1_790_000_000_000),
        expires_at: Timestamp(1_792_592_000_000),
        records_from: Some(Timestamp(1_700_000_000_000)),
        records_until: None,
        sensitive_included: BoundedVec::new(vec![SensitiveClass::Hiv, SensitiveClass::Genetic])
            .unwrap(),
        notice_hash: hash().tagged_hash(b"notice", &[b"v1"]),
    };
    let grant_tx = Transaction {
        signer: Signer::Patient(patient),
        nonce: 2,
        valid_until: VALID_UNTIL,
        payload: Payload::Grant(terms.clone()),
    };
    let grant_id = grant_tx.id(&chain, &alice);
    let grant_signed_hash = grant_tx
        .sign(&chain, &key("alice"))
        .signed_hash(hash(), &grant_id);
    // Recovery: bob and carol may approve a new key for alice; the new
    // device's key proves possession over the "recover" message.
    let bob = PatientId::from_key(hash(), &key("bob").public_key());
    let carol = PatientId::from_key(hash(), &key("carol").public_key());
    let new_key = key("alice-new-device");
    let possession = key_possession_message(
        &chain,
        &Signer::Patient(patient),
        "recover",
        &new_key.public_key(),
    );
    let new_key_proof = new_key.sign(&possession);
    let mut contacts = vec![bob, carol];
    contacts.sort();
    let txs = vec![
        vector(
            "register-patient",
            &chain,
            "alice",
            Transaction {
                signer: Signer::Patient(patient),
                nonce: 1,
                valid_until: VALID_UNTIL,
                payload: Payload::RegisterPatient,
            },
        ),
        vector(
            "grant",
            &chain,
            "alice",
            Transaction {
                signer: Signer::Patient(patient),
                nonce: 2,
                valid_until: VALID_UNTIL,
                payload: Payload::Grant(terms.clone()),
            },
        ),
        vector(
            "grant-to-group",
            &chain,
            "alice",
            Transaction {
                signer: Signer::Patient(patient),
                nonce: 20,
                valid_until: VALID_UNTIL,
                payload: Payload::Grant(GrantTerms {
                    grantee: Grantee::Group(GroupId::new("first-alliance").unwrap()),
                    holders: Holders::Any,
                    records_from: None,
                    records_until: Some(Timestamp(1_800_000_000_000)),
                    sensitive_included: BoundedVec::default(),
                    ..terms.clone()
                }),
            },
        ),
        vector(
            "revoke",
            &chain,
            "alice",
            Transaction {
                signer: Signer::Patient(patient),
                nonce: 3,
                valid_until: VALID_UNTIL,
                payload: Payload::Revoke { grant: grant_id },
            },
        ),
        vector(
            "answer-consent-request",
            &chain,
            "alice",
            Transaction {
                signer: Signer::Patient(patient),
                nonce: 4,
                valid_until: VALID_UNTIL,
                payload: Payload::AnswerConsentRequest {
                    request: TxHash(Hash32([0x11; 32])),
                    approve: true,
                },
            },
        ),
        vector(
            "delegate",
            &chain,
            "alice",
            Transaction {
                signer: Signer::Patient(patient),
                nonce: 5,
                valid_until: VALID_UNTIL,
                payload: Payload::Delegate {
                    delegate: PatientId::from_key(hash(), &key("bob").public_key()),
                    role: DelegateRole::Proxy,
                    expires_at: Timestamp(1_800_000_000_000),
                },
            },
        ),
        vector(
            "end-delegation",
            &chain,
            "alice",
            Transaction {
                signer: Signer::Patient(patient),
                nonce: 6,
                valid_until: VALID_UNTIL,
                payload: Payload::EndDelegation {
                    delegation: TxHash(Hash32([0x22; 32])),
                },
            },
        ),
        vector(
            "set-recovery-policy",
            &chain,
            "alice",
            Transaction {
                signer: Signer::Patient(patient),
                nonce: 9,
                valid_until: VALID_UNTIL,
                payload: Payload::SetRecoveryPolicy {
                    delegates: BoundedVec::new(contacts).unwrap(),
                    threshold: 2,
                },
            },
        ),
        vector(
            "approve-recovery",
            &chain,
            "bob",
            Transaction {
                signer: Signer::Patient(bob),
                nonce: 10,
                valid_until: VALID_UNTIL,
                payload: Payload::ApproveRecovery {
                    patient,
                    new_key: new_key.public_key(),
                    new_key_proof,
                },
            },
        ),
        vector(
            "access-request",
            &chain,
            "doc-b",
            Transaction {
                signer: Signer::Practitioner(doc),
                nonce: 7,
                valid_until: VALID_UNTIL,
                payload: Payload::AccessRequest {
                    grant: grant_id,
                    holder: inst("city-first-hospital"),
                    categories: cats(&[Category::LabReports]),
                    purpose: Purpose::Referral,
                },
            },
        ),
        vector(
            "emergency-access",
            &chain,
            "doc-b",
            Transaction {
                signer: Signer::Practitioner(doc),
                nonce: 8,
                valid_until: VALID_UNTIL,
                payload: Payload::EmergencyAccess {
                    patient,
                    holder: inst("city-first-hospital"),
                    categories: cats(&[Category::Allergies]),
                    reason: EmergencyReason::PatientUnconscious,
                },
            },
        ),
        vector(
            "record-guardianship",
            &chain,
            "admin:city-first-hospital",
            Transaction {
                signer: Signer::Institution(inst("city-first-hospital")),
                nonce: 12,
                valid_until: VALID_UNTIL,
                payload: Payload::RecordGuardianship {
                    patient,
                    guardian: bob,
                    minor_until: Timestamp(1_800_000_000_000),
                    evidence_hash: Hash32([0x33; 32]),
                    patient_consent: key("alice").sign(&guardianship_consent_message(
                        &chain,
                        &Signer::Institution(inst("city-first-hospital")),
                        &patient,
                        &bob,
                        Timestamp(1_800_000_000_000),
                        &Hash32([0x33; 32]),
                    )),
                },
            },
        ),
        vector(
            "request-consent",
            &chain,
            "doc-b",
            Transaction {
                signer: Signer::Practitioner(doc),
                nonce: 13,
                valid_until: VALID_UNTIL,
                payload: Payload::RequestConsent(terms.clone()),
            },
        ),
        vector(
            "cancel-control-change",
            &chain,
            "alice",
            Transaction {
                signer: Signer::Patient(patient),
                nonce: 11,
                valid_until: VALID_UNTIL,
                payload: Payload::CancelControlChange {
                    key: true,
                    contacts: true,
                },
            },
        ),
        vector(
            "fetch-refused",
            &chain,
            "node:city-first-hospital",
            Transaction {
                signer: Signer::InstitutionNode(inst("city-first-hospital")),
                nonce: 9,
                valid_until: VALID_UNTIL,
                payload: Payload::FetchRefused {
                    request: TxHash(Hash32([5; 32])),
                    practitioner: doc,
                    reason: FetchRefusal::GrantNotActive,
                },
            },
        ),
        vector(
            "attest-licence",
            &chain,
            "admin:health-commission",
            Transaction {
                signer: Signer::Institution(inst("health-commission")),
                nonce: 10,
                valid_until: VALID_UNTIL,
                payload: Payload::AttestLicence(LicenceTerms {
                    licence_hash: licence_hash(hash(), &[7; 16], "110330100000002"),
                    kind: LicenceKind::Physician,
                    scopes: BoundedVec::new(vec![PracticeScope::new("internal-medicine").unwrap()])
                        .unwrap(),
                    institutions: BoundedVec::new(vec![inst("city-second-hospital")]).unwrap(),
                    practitioners: BoundedVec::new(vec![doc]).unwrap(),
                    valid_from: Timestamp(1_790_000_000_000),
                    valid_until: Timestamp(1_947_680_000_000),
                }),
            },
        ),
        vector(
            "set-licence-status",
            &chain,
            "admin:health-commission",
            Transaction {
                signer: Signer::Institution(inst("health-commission")),
                nonce: 11,
                valid_until: VALID_UNTIL,
                payload: Payload::SetLicenceStatus {
                    licence: licence_hash(hash(), &[7; 16], "110330100000002"),
                    status: LicenceStatus::Suspended,
                },
            },
        ),
        vector(
            "own-records-request",
            &chain,
            "alice",
            Transaction {
                signer: Signer::Patient(patient),
                nonce: 12,
                valid_until: VALID_UNTIL,
                payload: Payload::OwnRecordsRequest {
                    holder: inst("city-first-hospital"),
                    categories: cats(&[Category::LabReports, Category::Imaging]),
                },
            },
        ),
        vector(
            "attest-institution",
            &chain,
            "admin:health-commission",
            Transaction {
                signer: Signer::Institution(inst("health-commission")),
                nonce: 13,
                valid_until: VALID_UNTIL,
                payload: Payload::AttestInstitution(InstitutionLicenceTerms {
                    institution: inst("city-second-hospital"),
                    legal_code: BoundedString::new("12330100470116614F").unwrap(),
                    licence_ref: BoundedString::new("PDY00001X33010015A1001").unwrap(),
                    scopes: BoundedVec::new(vec![PracticeScope::new("internal-medicine").unwrap()])
                        .unwrap(),
                    valid_from: Timestamp(1_790_000_000_000),
                    valid_until: Timestamp(1_947_680_000_000),
                }),
            },
        ),
        vector(
            "set-institution-licence-status",
            &chain,
            "admin:health-commission",
            Transaction {
                signer: Signer::Institution(inst("health-commission")),
                nonce: 14,
                valid_until: VALID_UNTIL,
                payload: Payload::SetInstitutionLicenceStatus {
                    institution: inst("city-second-hospital"),
                    status: LicenceStatus::Suspended,
                },
            },
        ),
    ];
    let header = BlockHeader {
        chain_id: chain.id.clone(),
        height: 7,
        time: Timestamp(1_790_000_007_000),
        previous_hash: Hash32([1; 32]),
        transaction_root: transaction_root(hash(), &[grant_signed_hash]),
        state_root: Hash32([2; 32]),
        audit_root: Hash32([3; 32]),
        audit_size: 9,
        validator_set_hash: Hash32([4; 32]),
        proposer: inst("city-first-hospital"),
    };
    let entry = AuditEntry {
        index: 0,
        at: BlockRef {
            height: 7,
            time: Timestamp(1_790_000_007_000),
        },
        tx: grant_id,
        patient,
        event: AuditEvent::Granted { grant: grant_id },
    };
    let control = AuditEntry {
        index: 1,
        at: entry.at,
        tx: TxHash(Hash32([0x44; 32])),
        patient,
        event: AuditEvent::ControlChanged {
            change: ControlChange::KeyReplacementScheduled,
            effective_at: Timestamp(1_790_259_207_000),
        },
    };
    let overdue = AuditEntry {
        index: 2,
        at: entry.at,
        tx: TxHash(Hash32([0x55; 32])),
        patient,
        event: AuditEvent::EmergencyReviewOverdue {
            request: TxHash(Hash32([0x55; 32])),
            requester_institution: InstitutionId::new("city-second-hospital").unwrap(),
            deadline: Timestamp(1_790_604_807_000),
        },
    };
    // A signed read (request_auth.rs), as the app signs one.
    let reader = key("alice");
    let read_node = inst("city-first-hospital");
    let read_path = format!("/v1/patients/{}/history", patient.0.to_hex());
    let read_time = Timestamp(1_790_000_000_123);
    let read = medledger_contracts::request_auth::RequestAuth::sign(
        &chain,
        &read_node,
        "GET",
        &read_path,
        b"",
        read_time,
        77,
        Signer::Patient(patient),
        &reader,
    );
    let read_digest = read.digest_for(&chain, "GET", &read_path, b"");
    let record_link =
        record_link_message(&chain, &inst("city-first-hospital"), &patient, "MRN-0001");
    // SM2 (not yet a chain's suite): a key from a fixed secret signing a
    // ledger digest, for the app's GM/T library to check.
    let sm2_secret = encoding::HashFunction::Sha256
        .tagged_hash(b"medledger/golden-sm2/v1", &[])
        .0;
    let sm2 = medledger_contracts::crypto::SecretKey::sm2_from_bytes(sm2_secret).unwrap();
    let sm2_signature = sm2.sign(&record_link);
    json!({
        "about": match suite() {
            CryptoSuite::Ed25519Sha256 => "medledger golden vectors: canonical BCS bytes, domain-separated hashes and Ed25519 signatures. Test keys only.",
            CryptoSuite::Sm2Sm3 => "medledger golden vectors on the sm2-sm3 suite: canonical BCS bytes, domain-separated SM3 hashes and SM2 signatures (secret_seed is the SM2 secret scalar). Test keys only.",
        },
        "chain_id": chain.id.as_str(),
        "chain_id_bcs": hex::encode(encoding::to_bytes(&chain.id)),
        "patient_id": { "public_key": alice.to_text(), "id": patient.0.to_hex() },
        "transactions": txs,
        "key_possession": {
            "signer_patient": patient.0.to_hex(),
            "purpose": "recover",
            "secret_seed": hex::encode(new_key.seed()),
            "new_key": new_key.public_key().to_text(),
            "message": possession.to_hex(),
            "proof": new_key_proof.to_hex(),
            "bob": bob.0.to_hex(),
            "carol": carol.0.to_hex(),
        },
        "header": { "bcs": hex::encode(encoding::to_bytes(&header)), "hash": header.hash(hash()).to_hex() },
        "audit_entry": { "bcs": hex::encode(encoding::to_bytes(&entry)), "leaf_hash": entry.leaf_hash(hash()).to_hex() },
        "audit_entry_control_changed": { "bcs": hex::encode(encoding::to_bytes(&control)), "leaf_hash": control.leaf_hash(hash()).to_hex() },
        "audit_entry_emergency_review_overdue": { "bcs": hex::encode(encoding::to_bytes(&overdue)), "leaf_hash": overdue.leaf_hash(hash()).to_hex() },
        "record_link": {
            "hospital": "city-first-hospital",
            "record_number": "MRN-0001",
            "secret_seed": hex::encode(key("alice").seed()),
            "message": record_link.to_hex(),
            "signature": key("alice").sign(&record_link).to_hex(),
        },
        "sm2_signature": {
            "secret": hex::encode(sm2_secret),
            "public_key": sm2.public_key().to_text(),
            "public_key_bcs": hex::encode(encoding::to_bytes(&sm2.public_key())),
            "message": record_link.to_hex(),
            "signature": sm2_signature.to_hex(),
            "signature_bcs": hex::encode(encoding::to_bytes(&sm2_signature)),
        },
        "signed_hash_of_grant": grant_signed_hash.to_hex(),
        "transaction_root_of_grant": transaction_root(hash(), &[grant_signed_hash]).to_hex(),
        "signed_read": {
            "secret_seed": hex::encode(reader.seed()),
            "node": read_node.as_str(),
            "method": "GET",
            "path_and_query": read_path,
            "time": read_time.0,
            "nonce": 77,
            "digest": read_digest.to_hex(),
            "request_auth_bcs": hex::encode(encoding::to_bytes(&read)),
        },
        "category_names": Category::ALL.iter().map(|c| c.name()).collect::<Vec<_>>(),
    })
}

/// Both suites' fixtures: `golden-vectors.json` (Ed25519, SHA-256) and
/// `golden-vectors-sm2-sm3.json` (SM2, SM3), the same transactions.
#[test]
fn formats_match_the_golden_fixtures() {
    for suite in SUITES {
        set_suite(suite);
        formats_match_the_golden_fixture();
    }
}

fn formats_match_the_golden_fixture() {
    let generated = serde_json::to_string_pretty(&build()).unwrap() + "\n";
    if std::env::var_os("MEDLEDGER_UPDATE_GOLDEN").is_some() {
        std::fs::write(fixture(), &generated).unwrap();
        return;
    }
    let pinned = std::fs::read_to_string(fixture()).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; generate it with MEDLEDGER_UPDATE_GOLDEN=1",
            fixture().display()
        )
    });
    assert!(
        pinned == generated,
        "a byte format changed; if on purpose, regenerate {} with MEDLEDGER_UPDATE_GOLDEN=1 and say so in the commit",
        fixture().display()
    );
}

#[test]
fn golden_transactions_decode_and_verify() {
    for suite in SUITES {
        set_suite(suite);
        golden_transactions_decode_and_verify_on_this_suite();
    }
}

fn golden_transactions_decode_and_verify_on_this_suite() {
    let fixture = build();
    let chain = Chain::new(
        ChainId::new(fixture["chain_id"].as_str().unwrap()).unwrap(),
        suite(),
    );
    for tx in fixture["transactions"].as_array().unwrap() {
        let bytes = hex::decode(tx["signed_transaction_bcs"].as_str().unwrap()).unwrap();
        let verified = SignedTransaction::decode_and_verify(&bytes, &chain).unwrap();
        assert_eq!(
            verified.id().0.to_hex(),
            tx["transaction_id"].as_str().unwrap()
        );
    }
}

/// SM2 signatures the app's GM/T library made (`client-sdk/web/test/sm2.test.mjs`
/// writes the fixture) verify under the ledger's SM2 rule, and fail when the
/// digest changes: the two implementations agree on keys, on `Z` and on
/// what is signed.
#[test]
fn sm2_signatures_made_by_the_apps_library_verify() {
    use medledger_contracts::crypto::{PublicKey, SecretKey, Signature};
    let path = fixture().with_file_name("sm2-signatures-from-js.json");
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let key = PublicKey::from_text(fixture["public_key"].as_str().unwrap()).unwrap();
    let secret: [u8; 32] = hex::decode(fixture["secret"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    assert_eq!(SecretKey::sm2_from_bytes(secret).unwrap().public_key(), key);
    let signatures = fixture["signatures"].as_array().unwrap();
    assert_eq!(signatures.len(), 3);
    for item in signatures {
        let digest = Hash32::from_hex(item["digest"].as_str().unwrap()).unwrap();
        let bytes = hex::decode(item["signature"].as_str().unwrap()).unwrap();
        let mut r = [0u8; 32];
        let mut s = [0u8; 32];
        r.copy_from_slice(&bytes[..32]);
        s.copy_from_slice(&bytes[32..]);
        let signature = Signature::Sm2 { r, s };
        key.verify(&digest, &signature).unwrap();
        let mut other = digest;
        other.0[0] ^= 1;
        assert!(key.verify(&other, &signature).is_err());
    }
}
