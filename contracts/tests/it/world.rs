//! A small consortium on an in-memory ledger, with deterministic keys.

use std::cell::Cell;

use medledger_contracts::crypto::{CryptoSuite, SecretKey};
use medledger_contracts::encoding::{BoundedString, BoundedVec, Hash32, HashFunction};
use medledger_contracts::ledger::MemoryLedger;
use medledger_contracts::records::*;
use medledger_contracts::state::StateKey;
use medledger_contracts::state_machine::GenesisPractitioner;
use medledger_contracts::transaction::*;
use medledger_contracts::types::*;

pub const DAY_MS: u64 = 86_400_000;
pub const T0: u64 = 1_790_000_000_000;

thread_local! {
    /// The suite of the worlds this test thread builds, and of its keys.
    static SUITE: Cell<CryptoSuite> = const { Cell::new(CryptoSuite::Ed25519Sha256) };
}

/// From now on this thread's keys, ids and worlds are of `suite`.
pub fn set_suite(suite: CryptoSuite) {
    SUITE.with(|s| s.set(suite));
}

/// The suite of this thread's worlds ([`World::on`] sets it).
pub fn suite() -> CryptoSuite {
    SUITE.with(Cell::get)
}

/// The hash function of this thread's worlds.
pub fn hash() -> HashFunction {
    suite().hash_function()
}

/// The chain `id` on this thread's suite.
pub fn chain(id: &str) -> Chain {
    Chain::new(ChainId::new(id).unwrap(), suite())
}

/// A deterministic key of this thread's suite.
pub fn key(label: &str) -> SecretKey {
    let seed = HashFunction::Sha256.tagged_hash(b"medledger/test-key", &[label.as_bytes()]);
    match suite() {
        CryptoSuite::Ed25519Sha256 => SecretKey::from_seed(seed.0),
        // A seed is not a usable SM2 scalar with probability about 2^-224.
        CryptoSuite::Sm2Sm3 => SecretKey::sm2_from_bytes(seed.0).unwrap(),
    }
}

pub fn inst(id: &str) -> InstitutionId {
    InstitutionId::new(id).unwrap()
}

pub fn spec(id: &str, kind: InstitutionKind, power: u64) -> InstitutionSpec {
    InstitutionSpec {
        id: inst(id),
        name: BoundedString::new(format!("{id} (test)")).unwrap(),
        kind,
        legal_code: BoundedString::new("12330100470116614F").unwrap(),
        region_code: BoundedString::new("330100").unwrap(),
        licence_ref: BoundedString::new("PDY00001X33010015A1001").unwrap(),
        admin_key: key(&format!("admin:{id}")).public_key(),
        node_key: key(&format!("node:{id}")).public_key(),
        voting_power: power,
        transport_key: suite()
            .has_transport_keys()
            .then(|| transport_key(id).public_key()),
    }
}

/// An institution's transport key (Ed25519 whatever the suite), for a
/// suite whose nodes have one.
pub fn transport_key(id: &str) -> SecretKey {
    let label = format!("transport:{id}");
    SecretKey::from_seed(
        HashFunction::Sha256
            .tagged_hash(b"medledger/test-key", &[label.as_bytes()])
            .0,
    )
}

/// The salted hash of a test practitioner's licence (its number is the label).
pub fn licence_of(label: &str) -> Hash32 {
    licence_hash(hash(), &[9; 16], label)
}

pub fn cats(list: &[Category]) -> Categories {
    let mut v = list.to_vec();
    v.sort();
    v.dedup();
    BoundedVec::new(v).unwrap()
}

/// Practitioners: (label, institution, role).
pub const PRACTITIONERS: &[(&str, &str, PractitionerRole)] = &[
    ("doc-a", "hosp-a", PractitionerRole::Physician),
    ("doc-b", "hosp-b", PractitionerRole::Physician),
    ("doc-b2", "hosp-b", PractitionerRole::Physician),
    ("nurse-b", "hosp-b", PractitionerRole::Nurse),
    ("net-doc", "net-a", PractitionerRole::Physician),
    ("cdc-officer", "cdc", PractitionerRole::PublicHealthOfficer),
    ("cdc-clerk", "cdc", PractitionerRole::RecordsOfficer),
    ("platform-doc", "platform", PractitionerRole::Physician),
];

pub struct World {
    pub ledger: MemoryLedger,
    pub chain: Chain,
    pub now: u64,
    pub nonce: u64,
}

pub fn institutions() -> Vec<InstitutionSpec> {
    vec![
        spec("hosp-a", InstitutionKind::Hospital, 1),
        spec("hosp-b", InstitutionKind::Hospital, 1),
        spec(
            "net-a",
            InstitutionKind::InternetHospital {
                parent: inst("hosp-a"),
            },
            0,
        ),
        spec("platform", InstitutionKind::RegionalPlatform, 1),
        spec("cdc", InstitutionKind::PublicHealth, 0),
        spec("nhc", InstitutionKind::Regulator, 1),
        spec("nhc2", InstitutionKind::Regulator, 0),
    ]
}

impl World {
    pub fn new() -> Self {
        Self::with_chain("medledger-test")
    }

    /// A world on `suite`: from now on this thread's keys, ids and worlds
    /// are of that suite.
    pub fn on(suite: CryptoSuite) -> Self {
        set_suite(suite);
        Self::new()
    }

    pub fn with_chain(chain: &str) -> Self {
        Self::with_parameters(chain, &LedgerParameters::default())
    }

    /// A world whose practitioners act only on a regulator's attestation of
    /// their licence (R4.14); genesis attests none.
    pub fn attested() -> Self {
        Self::with_parameters(
            "medledger-test",
            &LedgerParameters {
                practitioner_licences: LicencePolicy::Attested,
                ..LedgerParameters::default()
            },
        )
    }

    pub fn with_parameters(chain: &str, parameters: &LedgerParameters) -> Self {
        let chain = Chain::new(ChainId::new(chain).unwrap(), suite());
        let practitioners: Vec<GenesisPractitioner> = PRACTITIONERS
            .iter()
            .map(|(label, institution, role)| GenesisPractitioner {
                institution: inst(institution),
                key: key(label).public_key(),
                role: *role,
                licence_hash: licence_of(label),
            })
            .collect();
        let ledger = MemoryLedger::new(
            chain.clone(),
            Hash32([0; 32]),
            Timestamp(T0),
            parameters,
            &institutions(),
            &practitioners,
            &[],
        )
        .unwrap();
        Self {
            ledger,
            chain,
            now: T0,
            nonce: 0,
        }
    }

    /// The latest `valid_until` the next block (a second from now) takes
    /// but one millisecond: the most a test's transaction can be given.
    pub fn valid_until(&self) -> Timestamp {
        Timestamp(self.now + LedgerParameters::default().tx_validity_window_ms)
    }

    pub fn sign(&mut self, signer: Signer, key: &SecretKey, payload: Payload) -> SignedTransaction {
        self.nonce += 1;
        Transaction {
            signer,
            nonce: self.nonce,
            valid_until: self.valid_until(),
            payload,
        }
        .sign(&self.chain, key)
    }

    /// Runs one transaction in its own block one second later.
    pub fn run(&mut self, tx: SignedTransaction) -> Receipt {
        self.now += 1_000;
        self.ledger.execute_one(Timestamp(self.now), tx).unwrap()
    }

    pub fn act(&mut self, signer: Signer, key: &SecretKey, payload: Payload) -> Receipt {
        let tx = self.sign(signer, key, payload);
        self.run(tx)
    }

    pub fn patient(&mut self, label: &str) -> PatientId {
        let k = key(label);
        let id = PatientId::from_key(hash(), &k.public_key());
        let r = self.act(Signer::Patient(id), &k, Payload::RegisterPatient);
        assert_eq!(r.outcome, Outcome::Applied, "register {label}");
        id
    }

    pub fn practitioner(label: &str) -> (PractitionerId, SecretKey) {
        let k = key(label);
        (PractitionerId::from_key(hash(), &k.public_key()), k)
    }

    pub fn terms(
        &self,
        patient: PatientId,
        grantee: Grantee,
        categories: &[Category],
        holders: Holders,
    ) -> GrantTerms {
        GrantTerms {
            patient,
            grantee,
            categories: cats(categories),
            holders,
            purpose: Purpose::Treatment,
            not_before: Timestamp(self.now),
            expires_at: Timestamp(self.now + 30 * DAY_MS),
            records_from: None,
            records_until: None,
            sensitive_included: BoundedVec::default(),
            notice_hash: Hash32([7; 32]),
        }
    }

    /// The patient grants; returns the grant id.
    pub fn grant(&mut self, label: &str, terms: GrantTerms) -> TxHash {
        let k = key(label);
        let tx = self.sign(Signer::Patient(terms.patient), &k, Payload::Grant(terms));
        let id = tx.id(&self.chain);
        let r = self.run(tx);
        assert_eq!(r.outcome, Outcome::Applied, "grant by {label}");
        id
    }

    pub fn request(
        &mut self,
        doc: &str,
        grant: TxHash,
        holder: &str,
        categories: &[Category],
    ) -> (TxHash, Receipt) {
        let (id, k) = Self::practitioner(doc);
        let tx = self.sign(
            Signer::Practitioner(id),
            &k,
            Payload::AccessRequest {
                grant,
                holder: inst(holder),
                categories: cats(categories),
                purpose: Purpose::Treatment,
            },
        );
        let request = tx.id(&self.chain);
        (request, self.run(tx))
    }

    /// Runs one signed transaction in its own block one second later and
    /// returns its receipt with the audit entries it appended.
    pub fn run_audited(&mut self, tx: SignedTransaction) -> (Receipt, Vec<AuditEntry>) {
        self.now += 1_000;
        let (_, exec) = self
            .ledger
            .execute(Timestamp(self.now), &inst("hosp-a"), vec![tx])
            .unwrap();
        (exec.receipts[0].clone(), exec.audit_entries)
    }

    /// hosp-a proposes `action` and `voters` vote for it; the proposal's id.
    pub fn carry(&mut self, action: GovernanceAction, voters: &[&str]) -> TxHash {
        let tx = self.sign(
            Signer::Institution(inst("hosp-a")),
            &key("admin:hosp-a"),
            Payload::Propose {
                action,
                expires_at: Timestamp(self.now + DAY_MS),
            },
        );
        let proposal = tx.id(&self.chain);
        assert_eq!(self.run(tx).outcome, Outcome::Applied);
        for voter in voters {
            let r = self.act(
                Signer::Institution(inst(voter)),
                &key(&format!("admin:{voter}")),
                Payload::Vote {
                    proposal,
                    approve: true,
                },
            );
            assert_eq!(r.outcome, Outcome::Applied);
        }
        proposal
    }

    pub fn get<T: serde::de::DeserializeOwned>(&self, key: &StateKey) -> Option<T> {
        self.ledger.get(key).unwrap()
    }
}
