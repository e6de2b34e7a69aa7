//! The medledger chain spec: founding consortium, crypto suite and parameters, with strict validation, a stable hash and the initial ledger state.
//!
//! A genesis file is JSON written by people; everything in it is checked and
//! turned into the typed [`Genesis`], whose BCS bytes are hashed under
//! `medledger/genesis/v1`. Every node and every auditor starts from that hash.
//! A bad file gets an error naming the field (`institutions[2].region_code`)
//! and why.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod example;

use std::collections::BTreeSet;
use std::path::Path;

use medledger_contracts::constants::*;
use medledger_contracts::crypto::{CryptoSuite, PublicKey};
use medledger_contracts::encoding::{self, BoundedString, BoundedVec, Hash32, tags};
use medledger_contracts::ledger::MemoryLedger;
use medledger_contracts::records::{EmergencyPolicy, LedgerParameters};
use medledger_contracts::state::WriteSet;
use medledger_contracts::state_machine::{GenesisLicence, GenesisPractitioner, genesis_writes};
use medledger_contracts::transaction::{
    InstitutionSpec, check_institution_spec, check_licence_terms,
};
use medledger_contracts::types::*;
use serde::{Deserialize, Serialize};

/// Consensus timing and block limits, fixed at genesis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsensusParameters {
    /// How long validators wait for a proposal before prevoting nil, in ms.
    pub propose_timeout_ms: u64,
    /// Prevote step timeout, in ms.
    pub prevote_timeout_ms: u64,
    /// Precommit step timeout, in ms.
    pub precommit_timeout_ms: u64,
    /// Largest block body, in bytes.
    pub block_bytes_max: u64,
    /// Most transactions in one block.
    pub block_transactions_max: u32,
    /// How far a proposer's block time may run ahead of a validator's clock, in ms.
    pub block_time_tolerance_ms: u64,
}

impl Default for ConsensusParameters {
    fn default() -> Self {
        Self {
            propose_timeout_ms: 1_000,
            prevote_timeout_ms: 500,
            precommit_timeout_ms: 500,
            block_bytes_max: 4 * 1024 * 1024,
            block_transactions_max: 5_000,
            block_time_tolerance_ms: 5_000,
        }
    }
}

/// An institution as written in a genesis file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstitutionEntry {
    /// Short id, `[a-z0-9-]`.
    pub id: String,
    /// Public name.
    pub name: String,
    /// `hospital`, `internet-hospital`, `regional-platform`, `public-health` or `regulator`.
    pub kind: String,
    /// For an internet hospital: its physical parent hospital's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Unified social credit code, 18 characters.
    pub legal_code: String,
    /// GB/T 2260 region code, 6 digits.
    pub region_code: String,
    /// Practice licence reference.
    pub licence_ref: String,
    /// Administrative key, `ed25519:<hex>` (or `sm2:<hex>` on an `sm2-sm3` chain).
    pub admin_key: String,
    /// Node key, `ed25519:<hex>` (or `sm2:<hex>` on an `sm2-sm3` chain).
    pub node_key: String,
    /// Voting power; 0 for an observer.
    pub voting_power: u64,
    /// On an `sm2-sm3` chain (and only there): the node's network identity,
    /// `ed25519:<hex>` (libp2p's handshake takes no SM2 key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport_key: Option<String>,
}

impl InstitutionEntry {
    /// The institution a governance proposal admits to a chain on `suite`
    /// (`medledger gov propose admit`), every field checked as genesis
    /// checks a founding member's.
    pub fn admission_spec(&self, suite: CryptoSuite) -> Result<InstitutionSpec, GenesisError> {
        self.spec(suite, "entry", &mut |field: String, text: &str| {
            let key = PublicKey::from_text(text).map_err(|e| field_error(field.clone(), e))?;
            if suite.accepts(&key) {
                Ok(key)
            } else {
                Err(field_error(
                    field,
                    format!("not a key of suite {}", suite.name()),
                ))
            }
        })
    }

    /// The institution as the ledger holds it (what genesis founds, or a
    /// governance proposal admits), every field checked; `at` names it in
    /// errors, and `key` reads (and may check) each of its keys.
    pub fn spec(
        &self,
        suite: CryptoSuite,
        at: &str,
        key: &mut impl FnMut(String, &str) -> Result<PublicKey, GenesisError>,
    ) -> Result<InstitutionSpec, GenesisError> {
        let prefix = at;
        let at = |name: &str| format!("{prefix}.{name}");
        let spec = InstitutionSpec {
            id: InstitutionId::new(&self.id).map_err(|e| field_error(at("id"), e))?,
            name: bounded(&at("name"), &self.name)?,
            kind: parse_kind(&self.kind, self.parent.as_deref())
                .map_err(|e| field_error(at("kind"), e))?,
            legal_code: bounded(&at("legal_code"), &self.legal_code)?,
            region_code: bounded(&at("region_code"), &self.region_code)?,
            licence_ref: bounded(&at("licence_ref"), &self.licence_ref)?,
            admin_key: key(at("admin_key"), &self.admin_key)?,
            node_key: key(at("node_key"), &self.node_key)?,
            voting_power: self.voting_power,
            // Of its own scheme whatever the suite: checked below.
            transport_key: self
                .transport_key
                .as_deref()
                .map(|text| {
                    PublicKey::from_text(text).map_err(|e| field_error(at("transport_key"), e))
                })
                .transpose()?,
        };
        if spec.voting_power > VOTING_POWER_MAX {
            return Err(field_error(
                at("voting_power"),
                format!("at most {VOTING_POWER_MAX}"),
            ));
        }
        check_institution_spec(suite, &spec).map_err(|e| match e {
            medledger_contracts::transaction::TransactionError::Field { field, problem } => {
                field_error(at(field), problem)
            }
            other => field_error(prefix, other.to_string()),
        })?;
        Ok(spec)
    }
}

/// A practitioner as written in a genesis file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PractitionerEntry {
    /// Institution id.
    pub institution: String,
    /// Key, `ed25519:<hex>`.
    pub key: String,
    /// `physician`, `nurse`, `pharmacist`, `technician`, `public-health-officer` or `records-officer`.
    pub role: String,
    /// Hex SHA-256 of the licence number under `medledger/licence/v1`.
    pub licence_hash: String,
}

/// A licence a regulator attests in a genesis file [R4.12].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LicenceEntry {
    /// The attesting regulator's institution id.
    pub attested_by: String,
    /// Hex of the licence number's salted hash (as in `practitioners[].licence_hash`).
    pub licence_hash: String,
    /// `physician`, `nurse`, `pharmacist`, `technician` or `post`.
    pub kind: String,
    /// Scopes of practice, codes of `[a-z0-9-]`.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Institution ids where it may be used.
    pub institutions: Vec<String>,
    /// Practitioner ids (hex) the regulator binds to it: practitioners in
    /// this file registered under `licence_hash` by one of `institutions`.
    #[serde(default)]
    pub practitioners: Vec<String>,
    /// In force from, ms since the Unix epoch.
    pub valid_from_ms: u64,
    /// In force until (exclusive), ms since the Unix epoch.
    pub valid_until_ms: u64,
}

/// A genesis file as written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisFile {
    /// Chain id.
    pub chain_id: String,
    /// `ed25519-sha256` or `sm2-sm3` (a node runs only the first yet).
    pub crypto_suite: String,
    /// Genesis time, ms since the Unix epoch.
    pub genesis_time_ms: u64,
    /// Consensus parameters.
    pub consensus: ConsensusParameters,
    /// Ledger parameters.
    pub parameters: LedgerParametersEntry,
    /// Founding institutions.
    pub institutions: Vec<InstitutionEntry>,
    /// Initial practitioners.
    #[serde(default)]
    pub practitioners: Vec<PractitionerEntry>,
    /// Licences attested at genesis (needed by `practitioners` where
    /// `parameters.practitioner_licences` is `attested`).
    #[serde(default)]
    pub licences: Vec<LicenceEntry>,
}

/// The shortest validity window a genesis may choose (a local test
/// consortium's; clients give a transaction half the window, so clocks may
/// differ by about that much).
pub const TX_VALIDITY_WINDOW_MS_MIN: u64 = 5_000;
/// The longest: committed ids are kept in state this long.
pub const TX_VALIDITY_WINDOW_MS_MAX: u64 = 7 * 86_400_000;

/// Ledger parameters as written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerParametersEntry {
    /// Heights between a validator-set change and its effect.
    pub validator_change_delay_heights: u64,
    /// Days within which emergency accesses should be reviewed.
    pub emergency_review_days: u32,
    /// Longest grant, in days.
    pub grant_duration_days_max: u32,
    /// How long a change of a patient's recovery contacts or a key replaced
    /// by them waits before it takes effect (R4.2, R4.3), in milliseconds.
    pub control_change_delay_ms: u64,
    /// Practitioner roles that may break the glass (R7.3), as in
    /// `practitioners[].role`.
    pub emergency_roles: Vec<String>,
    /// Whether internet hospitals' practitioners may break the glass.
    pub emergency_internet_hospitals: bool,
    /// How long after an emergency access its records may be fetched (ms).
    pub emergency_fetch_window_ms: u64,
    /// How far ahead of a block's time a transaction's `valid_until` may
    /// be (ms); committed ids are kept in state this long (R1).
    pub tx_validity_window_ms: u64,
    /// `declared` (a practitioner acts on their institution's word) or
    /// `attested` (only on a regulator's attestation of their licence too,
    /// R4.14); `declared` when absent.
    #[serde(default = "declared")]
    pub practitioner_licences: String,
}

fn declared() -> String {
    LicencePolicy::Declared.name().to_string()
}

impl Default for LedgerParametersEntry {
    fn default() -> Self {
        let p = LedgerParameters::default();
        Self {
            validator_change_delay_heights: p.validator_change_delay_heights,
            emergency_review_days: p.emergency_review_days,
            grant_duration_days_max: p.grant_duration_days_max,
            control_change_delay_ms: p.control_change_delay_ms,
            emergency_roles: p
                .emergency
                .roles
                .iter()
                .map(|r| role_name(*r).to_string())
                .collect(),
            emergency_internet_hospitals: p.emergency.internet_hospitals,
            emergency_fetch_window_ms: p.emergency.fetch_window_ms,
            tx_validity_window_ms: p.tx_validity_window_ms,
            practitioner_licences: p.practitioner_licences.name().to_string(),
        }
    }
}

/// The validated, typed genesis; its BCS bytes are what is hashed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Genesis {
    /// Chain id.
    pub chain_id: ChainId,
    /// Crypto suite.
    pub crypto_suite: CryptoSuite,
    /// Genesis time.
    pub genesis_time: Timestamp,
    /// Consensus parameters.
    pub consensus: ConsensusParameters,
    /// Ledger parameters.
    pub parameters: LedgerParameters,
    /// Founding institutions.
    pub institutions: Vec<InstitutionSpec>,
    /// Initial practitioners: institution, key, role, licence hash.
    pub practitioners: Vec<(InstitutionId, PublicKey, PractitionerRole, Hash32)>,
    /// Licences attested at genesis: the regulator and the terms.
    pub licences: Vec<(InstitutionId, LicenceTerms)>,
}

/// A genesis problem, naming the field and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenesisError {
    /// The file could not be read.
    #[error("{path}: {error}")]
    Io {
        /// Path.
        path: String,
        /// Error.
        error: String,
    },
    /// The file is larger than allowed.
    #[error("genesis file is {0} bytes, more than the {GENESIS_FILE_BYTES_MAX} allowed")]
    TooLarge(usize),
    /// The JSON does not parse into the expected shape.
    #[error("genesis JSON: {0}")]
    Json(String),
    /// A field is invalid.
    #[error("{field}: {problem}")]
    Field {
        /// Path to the field.
        field: String,
        /// What is wrong.
        problem: String,
    },
}

fn field_error(field: impl Into<String>, problem: impl std::fmt::Display) -> GenesisError {
    GenesisError::Field {
        field: field.into(),
        problem: problem.to_string(),
    }
}

/// Why an institution kind or a practitioner role, as written in a file, is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// An internet hospital without its parent.
    #[error("an internet hospital names its parent hospital in `parent`")]
    MissingParent,
    /// A parent given for a kind that has none.
    #[error("only an internet hospital has a parent, not a {0}")]
    UnexpectedParent(String),
    /// Not a kind.
    #[error(
        "unknown kind {0:?} (hospital, internet-hospital, regional-platform, public-health, regulator)"
    )]
    UnknownKind(String),
    /// Not a role.
    #[error("unknown role {0:?}")]
    UnknownRole(String),
    /// The parent's id is malformed.
    #[error(transparent)]
    Id(#[from] medledger_contracts::types::IdError),
}

/// Parses an institution kind.
pub fn parse_kind(kind: &str, parent: Option<&str>) -> Result<InstitutionKind, NameError> {
    match (kind, parent) {
        ("hospital", None) => Ok(InstitutionKind::Hospital),
        ("internet-hospital", Some(parent)) => Ok(InstitutionKind::InternetHospital {
            parent: InstitutionId::new(parent)?,
        }),
        ("internet-hospital", None) => Err(NameError::MissingParent),
        ("regional-platform", None) => Ok(InstitutionKind::RegionalPlatform),
        ("public-health", None) => Ok(InstitutionKind::PublicHealth),
        ("regulator", None) => Ok(InstitutionKind::Regulator),
        (_, Some(_))
            if matches!(
                kind,
                "hospital" | "regional-platform" | "public-health" | "regulator"
            ) =>
        {
            Err(NameError::UnexpectedParent(kind.to_string()))
        }
        (other, _) => Err(NameError::UnknownKind(other.to_string())),
    }
}

/// The name of an institution kind as written in files.
pub fn kind_name(kind: &InstitutionKind) -> &'static str {
    kind.name()
}

/// Parses a practitioner role.
pub fn parse_role(role: &str) -> Result<PractitionerRole, NameError> {
    PractitionerRole::from_name(role).ok_or_else(|| NameError::UnknownRole(role.to_string()))
}

/// The name of a practitioner role as written in files.
pub fn role_name(role: PractitionerRole) -> &'static str {
    role.name()
}

/// `items` sorted, or the error naming `field` if one appears twice.
fn canonical<T: Ord>(mut items: Vec<T>, field: &str) -> Result<Vec<T>, GenesisError> {
    items.sort();
    if items.windows(2).any(|w| w[0] == w[1]) {
        return Err(field_error(field, "lists one item twice"));
    }
    Ok(items)
}

fn bounded<const N: usize>(field: &str, text: &str) -> Result<BoundedString<N>, GenesisError> {
    BoundedString::new(text).map_err(|e| field_error(field, e))
}

impl GenesisFile {
    /// Reads and parses a genesis file (size-bounded, unknown fields refused).
    pub fn read(path: &Path) -> Result<Self, GenesisError> {
        let io = |e: std::io::Error| GenesisError::Io {
            path: path.display().to_string(),
            error: e.to_string(),
        };
        let size = std::fs::metadata(path).map_err(io)?.len();
        if size > GENESIS_FILE_BYTES_MAX as u64 {
            return Err(GenesisError::TooLarge(
                medledger_contracts::constants::usize_from(size),
            ));
        }
        let bytes = std::fs::read(path).map_err(io)?;
        Self::parse(&bytes)
    }

    /// Parses genesis JSON.
    pub fn parse(bytes: &[u8]) -> Result<Self, GenesisError> {
        if bytes.len() > GENESIS_FILE_BYTES_MAX {
            return Err(GenesisError::TooLarge(bytes.len()));
        }
        serde_json::from_slice(bytes).map_err(|e| GenesisError::Json(e.to_string()))
    }

    /// Pretty JSON, as written by `medledger genesis new`.
    pub fn to_json(&self) -> String {
        match serde_json::to_string_pretty(self) {
            Ok(text) => text + "\n",
            Err(error) => panic!("genesis JSON encoding cannot fail: {error}"),
        }
    }

    /// Validates every field and returns the typed genesis.
    pub fn validate(&self) -> Result<Genesis, GenesisError> {
        let chain_id = ChainId::new(&self.chain_id).map_err(|e| field_error("chain_id", e))?;
        let crypto_suite = CryptoSuite::from_name(&self.crypto_suite)
            .map_err(|e| field_error("crypto_suite", e))?;
        let hash = crypto_suite.hash_function();
        if self.genesis_time_ms == 0 {
            return Err(field_error("genesis_time_ms", "must be a time after 1970"));
        }
        let c = &self.consensus;
        for (name, value, low, high) in [
            (
                "consensus.propose_timeout_ms",
                c.propose_timeout_ms,
                50,
                60_000,
            ),
            (
                "consensus.prevote_timeout_ms",
                c.prevote_timeout_ms,
                50,
                60_000,
            ),
            (
                "consensus.precommit_timeout_ms",
                c.precommit_timeout_ms,
                50,
                60_000,
            ),
            (
                "consensus.block_bytes_max",
                c.block_bytes_max,
                TRANSACTION_BYTES_MAX as u64,
                64 * 1024 * 1024,
            ),
            (
                "consensus.block_transactions_max",
                u64::from(c.block_transactions_max),
                1,
                100_000,
            ),
            (
                "consensus.block_time_tolerance_ms",
                c.block_time_tolerance_ms,
                100,
                600_000,
            ),
        ] {
            if !(low..=high).contains(&value) {
                return Err(field_error(
                    name,
                    format!("{value} is outside {low}..={high}"),
                ));
            }
        }
        let p = &self.parameters;
        if !(1..=1_000).contains(&p.validator_change_delay_heights) {
            return Err(field_error(
                "parameters.validator_change_delay_heights",
                "must be 1..=1000",
            ));
        }
        if !(1..=365).contains(&p.emergency_review_days) {
            return Err(field_error(
                "parameters.emergency_review_days",
                "must be 1..=365",
            ));
        }
        if !(1..=36_500).contains(&p.grant_duration_days_max) {
            return Err(field_error(
                "parameters.grant_duration_days_max",
                "must be 1..=36500",
            ));
        }
        // Long enough for a patient to notice a change, not so long that a
        // real recovery is useless; local testnets use seconds.
        let mut emergency_roles = Vec::new();
        for (i, role) in p.emergency_roles.iter().enumerate() {
            let role = parse_role(role)
                .map_err(|e| field_error(format!("parameters.emergency_roles[{i}]"), &e))?;
            if !emergency_roles.contains(&role) {
                emergency_roles.push(role);
            }
        }
        let emergency_roles = BoundedVec::new(emergency_roles)
            .map_err(|_| field_error("parameters.emergency_roles", "too many roles"))?;
        if !(60_000..=7 * 86_400_000).contains(&p.emergency_fetch_window_ms) {
            return Err(field_error(
                "parameters.emergency_fetch_window_ms",
                "must be 60000..=604800000 (1 min to 7 days)",
            ));
        }
        if !(TX_VALIDITY_WINDOW_MS_MIN..=TX_VALIDITY_WINDOW_MS_MAX)
            .contains(&p.tx_validity_window_ms)
        {
            return Err(field_error(
                "parameters.tx_validity_window_ms",
                "must be 5000..=604800000 (5 s to 7 days; hours suit a real consortium)",
            ));
        }
        let practitioner_licences =
            LicencePolicy::from_name(&p.practitioner_licences).ok_or_else(|| {
                field_error(
                    "parameters.practitioner_licences",
                    "must be \"declared\" or \"attested\"",
                )
            })?;
        if !(1_000..=30 * 86_400_000).contains(&p.control_change_delay_ms) {
            return Err(field_error(
                "parameters.control_change_delay_ms",
                "must be 1000..=2592000000 (1 s to 30 days)",
            ));
        }
        if self.institutions.is_empty() {
            return Err(field_error(
                "institutions",
                "a consortium needs at least one institution",
            ));
        }
        if self.institutions.len() > GENESIS_INSTITUTIONS_MAX {
            return Err(field_error(
                "institutions",
                format!("more than {GENESIS_INSTITUTIONS_MAX}"),
            ));
        }
        if self.practitioners.len() > GENESIS_PRACTITIONERS_MAX {
            return Err(field_error(
                "practitioners",
                format!("more than {GENESIS_PRACTITIONERS_MAX}"),
            ));
        }
        let mut keys_seen: BTreeSet<PublicKey> = BTreeSet::new();
        let mut key = |field: String, text: &str| -> Result<PublicKey, GenesisError> {
            let key = PublicKey::from_text(text).map_err(|e| field_error(field.clone(), e))?;
            if !crypto_suite.accepts(&key) {
                return Err(field_error(
                    field,
                    format!("not a key of suite {}", crypto_suite.name()),
                ));
            }
            if !keys_seen.insert(key) {
                return Err(field_error(
                    field,
                    "this key is already used elsewhere in the genesis file",
                ));
            }
            Ok(key)
        };
        let mut institutions = Vec::with_capacity(self.institutions.len());
        let mut ids = BTreeSet::new();
        for (i, entry) in self.institutions.iter().enumerate() {
            let at = |name: &str| format!("institutions[{i}].{name}");
            let id = InstitutionId::new(&entry.id).map_err(|e| field_error(at("id"), e))?;
            if !ids.insert(id) {
                return Err(field_error(
                    at("id"),
                    format!("{:?} appears twice", entry.id),
                ));
            }
            institutions.push(entry.spec(crypto_suite, &format!("institutions[{i}]"), &mut key)?);
        }
        // A transport key (Ed25519 on an SM chain, so never one of the
        // keys above) names one node.
        let mut transports = BTreeSet::new();
        for (i, spec) in institutions.iter().enumerate() {
            if let Some(transport) = spec.transport_key
                && !transports.insert(transport)
            {
                return Err(field_error(
                    format!("institutions[{i}].transport_key"),
                    "this key is already used elsewhere in the genesis file",
                ));
            }
        }
        for (i, spec) in institutions.iter().enumerate() {
            if let InstitutionKind::InternetHospital { parent } = &spec.kind
                && !institutions
                    .iter()
                    .any(|p| &p.id == parent && p.kind == InstitutionKind::Hospital)
            {
                return Err(field_error(
                    format!("institutions[{i}].parent"),
                    format!("{parent} is not a hospital in this file"),
                ));
            }
        }
        if !institutions.iter().any(|s| s.voting_power > 0) {
            return Err(field_error(
                "institutions",
                "no institution has voting_power > 0: the chain needs validators",
            ));
        }
        if institutions.iter().filter(|s| s.voting_power > 0).count() > VALIDATORS_MAX {
            return Err(field_error(
                "institutions",
                format!("more than {VALIDATORS_MAX} validators"),
            ));
        }
        let mut practitioners = Vec::with_capacity(self.practitioners.len());
        for (i, entry) in self.practitioners.iter().enumerate() {
            let at = |name: &str| format!("practitioners[{i}].{name}");
            let institution = InstitutionId::new(&entry.institution)
                .map_err(|e| field_error(at("institution"), e))?;
            if !ids.contains(&institution) {
                return Err(field_error(
                    at("institution"),
                    format!("{institution} is not an institution in this file"),
                ));
            }
            let role = parse_role(&entry.role).map_err(|e| field_error(at("role"), e))?;
            let licence_hash = Hash32::from_hex(&entry.licence_hash)
                .map_err(|e| field_error(at("licence_hash"), e.to_string()))?;
            practitioners.push((institution, key(at("key"), &entry.key)?, role, licence_hash));
        }
        if self.licences.len() > GENESIS_LICENCES_MAX {
            return Err(field_error(
                "licences",
                format!("more than {GENESIS_LICENCES_MAX}"),
            ));
        }
        let mut licences = Vec::with_capacity(self.licences.len());
        let mut hashes = BTreeSet::new();
        for (i, entry) in self.licences.iter().enumerate() {
            let at = |name: &str| format!("licences[{i}].{name}");
            let by = InstitutionId::new(&entry.attested_by)
                .map_err(|e| field_error(at("attested_by"), e))?;
            if !institutions
                .iter()
                .any(|s| s.id == by && s.kind == InstitutionKind::Regulator)
            {
                return Err(field_error(
                    at("attested_by"),
                    format!("{by} is not a regulator in this file"),
                ));
            }
            let licence_hash = Hash32::from_hex(&entry.licence_hash)
                .map_err(|e| field_error(at("licence_hash"), e.to_string()))?;
            if !hashes.insert(licence_hash) {
                return Err(field_error(at("licence_hash"), "appears twice"));
            }
            let kind = LicenceKind::from_name(&entry.kind).ok_or_else(|| {
                field_error(
                    at("kind"),
                    "must be physician, nurse, pharmacist, technician or post",
                )
            })?;
            let mut scopes = Vec::with_capacity(entry.scopes.len());
            for code in &entry.scopes {
                scopes.push(PracticeScope::new(code).map_err(|e| field_error(at("scopes"), e))?);
            }
            let scopes = canonical(scopes, &at("scopes"))?;
            let mut named = Vec::with_capacity(entry.institutions.len());
            for id in &entry.institutions {
                let id = InstitutionId::new(id).map_err(|e| field_error(at("institutions"), e))?;
                if !ids.contains(&id) {
                    return Err(field_error(
                        at("institutions"),
                        format!("{id} is not an institution in this file"),
                    ));
                }
                named.push(id);
            }
            let named = canonical(named, &at("institutions"))?;
            let mut bound = Vec::with_capacity(entry.practitioners.len());
            for id in &entry.practitioners {
                let id = Hash32::from_hex(id)
                    .map(PractitionerId)
                    .map_err(|e| field_error(at("practitioners"), e.to_string()))?;
                let registered = practitioners.iter().any(|(institution, key, _, held)| {
                    PractitionerId::from_key(hash, key) == id
                        && *held == licence_hash
                        && named.contains(institution)
                });
                if !registered {
                    return Err(field_error(
                        at("practitioners"),
                        format!(
                            "{id} is not a practitioner of this file registered under this licence by an institution it names"
                        ),
                    ));
                }
                bound.push(id);
            }
            let bound = canonical(bound, &at("practitioners"))?;
            if entry.valid_until_ms <= self.genesis_time_ms {
                return Err(field_error(
                    at("valid_until_ms"),
                    "must be after genesis_time_ms",
                ));
            }
            let terms = LicenceTerms {
                licence_hash,
                kind,
                scopes: BoundedVec::new(scopes)
                    .map_err(|_| field_error(at("scopes"), "too many scopes"))?,
                institutions: BoundedVec::new(named)
                    .map_err(|_| field_error(at("institutions"), "too many institutions"))?,
                practitioners: BoundedVec::new(bound)
                    .map_err(|_| field_error(at("practitioners"), "too many practitioners"))?,
                valid_from: Timestamp(entry.valid_from_ms),
                valid_until: Timestamp(entry.valid_until_ms),
            };
            check_licence_terms(&terms).map_err(|e| field_error(format!("licences[{i}]"), e))?;
            licences.push((by, terms));
        }
        if practitioner_licences == LicencePolicy::Attested {
            for (i, (_, key, ..)) in practitioners.iter().enumerate() {
                let id = PractitionerId::from_key(hash, key);
                if !licences
                    .iter()
                    .any(|(_, terms)| terms.practitioners.iter().any(|b| *b == id))
                {
                    return Err(field_error(
                        format!("practitioners[{i}]"),
                        "no entry of `licences` binds this practitioner, and parameters.practitioner_licences is attested",
                    ));
                }
            }
        }
        Ok(Genesis {
            chain_id,
            crypto_suite,
            genesis_time: Timestamp(self.genesis_time_ms),
            consensus: self.consensus.clone(),
            parameters: LedgerParameters {
                validator_change_delay_heights: p.validator_change_delay_heights,
                emergency_review_days: p.emergency_review_days,
                grant_duration_days_max: p.grant_duration_days_max,
                control_change_delay_ms: p.control_change_delay_ms,
                emergency: EmergencyPolicy {
                    roles: emergency_roles,
                    internet_hospitals: p.emergency_internet_hospitals,
                    fetch_window_ms: p.emergency_fetch_window_ms,
                },
                tx_validity_window_ms: p.tx_validity_window_ms,
                practitioner_licences,
            },
            institutions,
            practitioners,
            licences,
        })
    }
}

impl Genesis {
    /// The genesis hash every node and auditor starts from (with the hash
    /// function of the suite it names).
    pub fn hash(&self) -> Hash32 {
        self.crypto_suite
            .hash_function()
            .hash_of(tags::GENESIS, self)
    }

    /// The chain this genesis starts: its id and crypto suite.
    pub fn chain(&self) -> Chain {
        Chain::new(self.chain_id.clone(), self.crypto_suite)
    }

    /// The canonical bytes that are hashed.
    pub fn to_bytes(&self) -> Vec<u8> {
        encoding::to_bytes(self)
    }

    fn genesis_practitioners(&self) -> Vec<GenesisPractitioner> {
        self.practitioners
            .iter()
            .map(
                |(institution, key, role, licence_hash)| GenesisPractitioner {
                    institution: institution.clone(),
                    key: *key,
                    role: *role,
                    licence_hash: *licence_hash,
                },
            )
            .collect()
    }

    fn genesis_licences(&self) -> Vec<GenesisLicence> {
        self.licences
            .iter()
            .map(|(by, terms)| GenesisLicence {
                attested_by: by.clone(),
                terms: terms.clone(),
                attested_at: self.genesis_time,
            })
            .collect()
    }

    /// The state at height 0.
    pub fn initial_state(&self) -> Result<WriteSet, GenesisError> {
        genesis_writes(
            self.crypto_suite.hash_function(),
            &self.parameters,
            &self.institutions,
            &self.genesis_practitioners(),
            &self.genesis_licences(),
        )
        .map_err(|e| field_error("institutions", e.to_string()))
    }

    /// An in-memory ledger starting from this genesis.
    pub fn memory_ledger(&self) -> Result<MemoryLedger, GenesisError> {
        MemoryLedger::new(
            self.chain(),
            self.hash(),
            self.genesis_time,
            &self.parameters,
            &self.institutions,
            &self.genesis_practitioners(),
            &self.genesis_licences(),
        )
        .map_err(|e| field_error("institutions", e.to_string()))
    }

    /// Validators and their total power.
    pub fn validators(&self) -> impl Iterator<Item = &InstitutionSpec> {
        self.institutions.iter().filter(|s| s.voting_power > 0)
    }

    /// How many validators may fail (crash or lie) while the chain stays safe and live: `f` in `n ≥ 3f + 1`.
    pub fn fault_tolerance(&self) -> usize {
        self.validators().count().saturating_sub(1) / 3
    }
}
