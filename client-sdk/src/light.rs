//! The light client: answers about grants that trust no node.
//!
//! It starts from the genesis file alone, follows validator-set changes
//! through certified headers (`contracts::light`, rule 2), verifies each
//! commit certificate (more than two thirds of the height's voting power, the
//! right chain and height) and each JMT proof against the certified state
//! root. A node can refuse to answer or hide a grant (so "no grant found" is
//! not proof that none exists), but it cannot make a revoked, expired, forged
//! or altered grant pass, nor pass off an old state as current beyond the
//! caller's `max_age`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use medledger_contracts::Hash32;
use medledger_contracts::encoding::from_bytes;
use medledger_contracts::light::{
    LightError, PROVED_VALUE_BYTES_MAX, ProvedValue, TrustedValidators,
};
use medledger_contracts::records::{GrantRecord, GrantStatus, ValidatorSet, ValidatorSetRecord};
use medledger_contracts::state::StateKey;
use medledger_contracts::types::{
    Category, Chain, GrantId, Grantee, InstitutionId, PatientId, Timestamp, categories_cover,
};
use medledger_genesis::Genesis;

use crate::client::{Client, Identity, now};
use crate::error::SdkError;

/// A grant the light client has verified.
#[derive(Clone, Debug)]
pub struct VerifiedGrant {
    /// The grant's id.
    pub id: GrantId,
    /// The record as of `height`.
    pub record: GrantRecord,
    /// Its status at the block time of `height`.
    pub status: GrantStatus,
    /// The height the answer is valid at.
    pub height: u64,
    /// That block's time.
    pub time: Timestamp,
}

/// The answer to "may this grantee read this category from this holder?".
#[derive(Clone, Debug)]
pub enum AccessAnswer {
    /// Yes, under this verified, active grant.
    Allowed(Box<VerifiedGrant>),
    /// No active grant covering the access was found among the candidates
    /// the node listed (each candidate that matched was verified and failed).
    NotFound {
        /// Grants listed by the node for this patient.
        listed: usize,
        /// Of them, verified and found not to cover the access now.
        verified_not_covering: usize,
    },
}

/// Headers remembered as verified, at most.
const VERIFIED_HEADERS_MAX: usize = 4096;

/// Verifies answers from one node against the genesis file.
pub struct LightClient {
    client: Client,
    chain: Chain,
    /// Verified validator-set records by height (0: genesis).
    trusted: Mutex<BTreeMap<u64, TrustedValidators>>,
    /// Header hashes already verified, by height.
    verified: Mutex<HashMap<u64, Hash32>>,
    max_age: Duration,
}

impl LightClient {
    /// A light client over `client`, trusting only `genesis`, refusing proofs
    /// whose block is older than `max_age`.
    pub fn new(client: Client, genesis: &Genesis, max_age: Duration) -> Result<Self, SdkError> {
        if client.chain() != &genesis.chain() {
            return Err(SdkError::Genesis(format!(
                "the client is for chain {} on suite {}, the genesis for chain {} on suite {}",
                client.chain().id.as_str(),
                client.chain().suite.name(),
                genesis.chain_id.as_str(),
                genesis.crypto_suite.name()
            )));
        }
        let writes = genesis
            .initial_state()
            .map_err(|e| SdkError::Genesis(e.to_string()))?;
        let bytes = writes
            .0
            .get(&StateKey::ValidatorSet.to_bytes())
            .and_then(|v| v.as_deref())
            .ok_or_else(|| SdkError::Genesis("genesis has no validator set".into()))?;
        let record: ValidatorSetRecord = from_bytes(bytes, PROVED_VALUE_BYTES_MAX)
            .map_err(|e| SdkError::Genesis(format!("genesis validator set: {e}")))?;
        let start = TrustedValidators::from_genesis(
            record,
            genesis.parameters.validator_change_delay_heights,
        );
        Ok(Self {
            chain: genesis.chain(),
            client,
            trusted: Mutex::new(BTreeMap::from([(0, start)])),
            verified: Mutex::new(HashMap::new()),
            max_age,
        })
    }

    /// The underlying client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The highest height whose validator set the client has verified.
    pub fn trusted_height(&self) -> u64 {
        self.trusted
            .lock()
            .map(|t| t.keys().next_back().copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// The validator set that certifies `height`, following changes from
    /// the nearest verified point below it.
    pub async fn validator_set(&self, height: u64) -> Result<ValidatorSet, SdkError> {
        loop {
            let hop = {
                let trusted = self
                    .trusted
                    .lock()
                    .map_err(|_| SdkError::Decode("lock".into()))?;
                let (_, from) = trusted
                    .range(..height)
                    .next_back()
                    .ok_or_else(|| SdkError::Decode(format!("no trust below height {height}")))?;
                if let Some(set) = from.set_for(height) {
                    return Ok(set.clone());
                }
                (from.clone(), from.hop_toward(height))
            };
            let (mut from, hop_height) = hop;
            let proved = self
                .client
                .proved_validators_after(hop_height)
                .await?
                .ok_or_else(|| SdkError::Decode("the node sent no validator-set proof".into()))?;
            if proved.header.height != hop_height {
                return Err(LightError::Header(format!(
                    "asked for the validator set after height {hop_height}, got height {}",
                    proved.header.height
                ))
                .into());
            }
            from.advance(&self.chain, &proved)?;
            self.trusted
                .lock()
                .map_err(|_| SdkError::Decode("lock".into()))?
                .insert(hop_height, from);
        }
    }

    /// Checks a proved value: freshness, then header and certificate (once
    /// per height), then the proof, then that it is the key asked for.
    pub async fn verify(&self, proved: &ProvedValue, key: &StateKey) -> Result<(), SdkError> {
        proved.check_fresh(now(), medledger_contracts::types::millis(self.max_age))?;
        if &proved.key != key {
            return Err(LightError::Value(format!(
                "the proof is for key {:?}, not the one asked for",
                proved.key
            ))
            .into());
        }
        let height = proved.header.height;
        let hash = proved.header.hash(self.chain.hash());
        let known = self
            .verified
            .lock()
            .map(|v| v.get(&height) == Some(&hash))
            .unwrap_or(false);
        if known {
            proved.verify_proof(&self.chain)?;
            return Ok(());
        }
        let set = self.validator_set(height).await?;
        proved.verify(&self.chain, &set)?;
        if let Ok(mut verified) = self.verified.lock() {
            if verified.len() >= VERIFIED_HEADERS_MAX {
                let keep_from = height.saturating_sub(VERIFIED_HEADERS_MAX as u64 / 2);
                verified.retain(|h, _| *h >= keep_from);
            }
            verified.insert(height, hash);
        }
        Ok(())
    }

    /// Checks an answer about a grant that the caller already holds (e.g.
    /// from another node or a cache).
    pub async fn verify_grant_proof(
        &self,
        id: &GrantId,
        proved: &ProvedValue,
    ) -> Result<VerifiedGrant, SdkError> {
        self.verify(proved, &StateKey::Grant(*id)).await?;
        let bytes = proved.value.as_deref().ok_or_else(|| {
            LightError::Value(format!(
                "no grant {id} exists at height {} (proved absent)",
                proved.header.height
            ))
        })?;
        let record: GrantRecord = from_bytes(bytes, PROVED_VALUE_BYTES_MAX)
            .map_err(|e| LightError::Value(format!("grant record: {e}")))?;
        Ok(VerifiedGrant {
            id: *id,
            status: record.status_at(proved.header.time),
            record,
            height: proved.header.height,
            time: proved.header.time,
        })
    }

    /// Fetches a grant at the latest height and verifies it; `who` must be
    /// allowed to read it.
    pub async fn verify_grant(
        &self,
        id: &GrantId,
        who: &Identity,
    ) -> Result<VerifiedGrant, SdkError> {
        let proved = self.client.proved_grant(id, None, who).await?;
        self.verify_grant_proof(id, &proved).await
    }

    /// May `grantee` read `category` of `patient` from `holder` now? Lists
    /// the patient's grants the caller may see, and verifies each candidate.
    pub async fn check_access(
        &self,
        patient: &PatientId,
        grantee: &Grantee,
        category: Category,
        holder: &InstitutionId,
        who: &Identity,
    ) -> Result<AccessAnswer, SdkError> {
        let listed = self.client.patient_grants(patient, who).await?;
        let mut verified_not_covering = 0;
        for item in &listed {
            if !listing_may_cover(item, grantee, category, holder) {
                continue;
            }
            let grant = self
                .verify_grant(&medledger_contracts::types::TxHash(item.id.0), who)
                .await?;
            let terms = &grant.record.terms;
            if terms.patient == *patient
                && terms.grantee == *grantee
                && grant.status == GrantStatus::Active
                && categories_cover(terms.categories.as_slice(), &[category])
                && terms.holders.includes(holder)
            {
                return Ok(AccessAnswer::Allowed(Box::new(grant)));
            }
            verified_not_covering += 1;
        }
        Ok(AccessAnswer::NotFound {
            listed: listed.len(),
            verified_not_covering,
        })
    }
}

/// Whether a listed grant (unverified JSON) might cover the access: only
/// those are fetched with proofs. The verdict rests on the verified record.
fn listing_may_cover(
    item: &medledger_api::Grant,
    grantee: &Grantee,
    category: Category,
    holder: &InstitutionId,
) -> bool {
    use medledger_api as api;
    let grantee_matches = match (grantee, &item.terms.grantee) {
        (Grantee::Institution(i), api::Grantee::Institution(listed)) => i.as_str() == listed,
        (Grantee::Practitioner(p), api::Grantee::Practitioner(listed)) => p.0 == listed.0,
        (Grantee::Group(g), api::Grantee::Group(listed)) => g.as_str() == listed,
        _ => false,
    };
    let categories = &item.terms.categories;
    let category_matches =
        categories.contains(&(&category).into()) || categories.contains(&api::Category::FullRecord);
    let holder_matches = match &item.terms.holders {
        api::Holders::Any(_) => true,
        api::Holders::Listed(list) => list.iter().any(|h| h == holder.as_str()),
    };
    grantee_matches && category_matches && holder_matches
}
