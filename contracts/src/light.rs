//! What a client that trusts no node checks: a value in state, proved against
//! a header that a commit certificate of the right validator set certifies,
//! and how the client follows validator-set changes from genesis.
//!
//! Rules:
//! 1. The set that certifies height `h` is `R(h-1).at(h)`, where `R(h-1)` is
//!    the [`ValidatorSetRecord`] in the state after height `h-1` (height 0 is
//!    genesis). The node builds headers with exactly this set.
//! 2. A change carried at height `c` takes effect at `c + delay` (state rule
//!    R4.10) and may postpone a change still scheduled. So from a trusted
//!    record `R(t)` the set of every height `h` with `t < h ≤ t + delay`,
//!    before any change scheduled in `R(t)`, is `R(t).current`; the height
//!    after `t` is `R(t).at(t+1)` exactly. Anything further is reached by a
//!    hop: a certified `R(t')` for a `t'` inside that range.
//! 3. A proved value is accepted only if, in order: the header is for this
//!    chain and height, its validator-set hash is the set's, the certificate
//!    has more than two thirds of that set's power for this header, and the
//!    JMT proof binds the key and value to the header's state root. The
//!    first failed check is the error, named.

use serde::{Deserialize, Serialize};

use crate::block::BlockHeader;
use crate::certificate::CommitCertificate;
use crate::encoding::from_bytes;
use crate::records::{ValidatorSet, ValidatorSetRecord};
use crate::state::{SparseProof, StateKey, verify_state_proof};
use crate::types::{Chain, Timestamp};

/// Largest encoded [`ProvedValue`] a client accepts.
pub const PROVED_VALUE_BYTES_MAX: usize = 256 * 1024;

/// A state value (or its absence) at a height, with everything needed to
/// check it from a trusted validator set.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProvedValue {
    /// The certified header of the height.
    pub header: BlockHeader,
    /// Its commit certificate.
    pub certificate: CommitCertificate,
    /// Which key.
    pub key: StateKey,
    /// The BCS value under the key at that height; `None` proves absence.
    pub value: Option<Vec<u8>>,
    /// The JMT proof against `header.state_root`.
    pub proof: SparseProof,
}

/// Which check a proved answer failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LightError {
    /// The header is for another chain or height than asked.
    #[error("header check failed: {0}")]
    Header(String),
    /// The header names a validator set other than the one that certifies its height.
    #[error("validator-set check failed: {0}")]
    ValidatorSet(String),
    /// The certificate does not certify the header with enough power.
    #[error("certificate check failed: {0}")]
    Certificate(String),
    /// The state proof does not bind key and value to the header's state root.
    #[error("state-proof check failed: {0}")]
    Proof(String),
    /// The value is not what was asked for, or does not decode.
    #[error("value check failed: {0}")]
    Value(String),
    /// The answer is older than the caller allows.
    #[error(
        "stale: the proof is at height {height}, time {time_ms} ms, older than the {max_age_ms} ms allowed (now {now_ms} ms)"
    )]
    Stale {
        /// Height of the proof.
        height: u64,
        /// Its block time.
        time_ms: u64,
        /// The allowed age.
        max_age_ms: u64,
        /// The caller's clock.
        now_ms: u64,
    },
}

/// Checks that `certificate` certifies `header` at `height` on `chain` with
/// `set`, the validator set of that height (rule 3, first three checks).
pub fn verify_certified_header(
    chain: &Chain,
    height: u64,
    header: &BlockHeader,
    certificate: &CommitCertificate,
    set: &ValidatorSet,
) -> Result<(), LightError> {
    if header.chain_id != chain.id {
        return Err(LightError::Header(format!(
            "header is for chain {}, expected {}",
            header.chain_id.as_str(),
            chain.id.as_str()
        )));
    }
    if header.height != height {
        return Err(LightError::Header(format!(
            "header is for height {}, expected {height}",
            header.height
        )));
    }
    let set_hash = set.hash(chain.hash());
    if header.validator_set_hash != set_hash {
        return Err(LightError::ValidatorSet(format!(
            "header {height} names validator set {}, but the set that certifies it is {set_hash}",
            header.validator_set_hash,
        )));
    }
    certificate
        .verify(chain, set, height, &header.hash(chain.hash()))
        .map_err(|e| LightError::Certificate(e.to_string()))?;
    Ok(())
}

impl ProvedValue {
    /// Checks the whole chain of evidence with `set`, the validator set of
    /// the header's height (rule 3).
    pub fn verify(&self, chain: &Chain, set: &ValidatorSet) -> Result<(), LightError> {
        verify_certified_header(
            chain,
            self.header.height,
            &self.header,
            &self.certificate,
            set,
        )?;
        self.verify_proof(chain)
    }

    /// Checks only the state proof against the header's root (for a header
    /// already checked).
    pub fn verify_proof(&self, chain: &Chain) -> Result<(), LightError> {
        verify_state_proof(
            chain.hash(),
            self.header.state_root,
            &self.key,
            self.value.as_deref(),
            &self.proof,
        )
        .map_err(|e| LightError::Proof(e.to_string()))
    }

    /// Refuses a proof whose block is older than `max_age_ms` at `now`.
    pub fn check_fresh(&self, now: Timestamp, max_age_ms: u64) -> Result<(), LightError> {
        if now.0.saturating_sub(self.header.time.0) > max_age_ms {
            return Err(LightError::Stale {
                height: self.header.height,
                time_ms: self.header.time.0,
                max_age_ms,
                now_ms: now.0,
            });
        }
        Ok(())
    }
}

/// A height whose validator-set record the client has verified, from which it
/// knows the sets of the next heights (rule 2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedValidators {
    /// The verified height (0: genesis).
    pub height: u64,
    /// The validator-set record in the state after that height.
    pub record: ValidatorSetRecord,
    /// The ledger's `validator_change_delay_heights`.
    pub delay: u64,
}

impl TrustedValidators {
    /// Trust rooted in the genesis file's validator-set record.
    pub fn from_genesis(record: ValidatorSetRecord, delay: u64) -> Self {
        Self {
            height: 0,
            record,
            delay: delay.max(1),
        }
    }

    /// The set that certifies `height`, if this trust determines it (rule 2).
    pub fn set_for(&self, height: u64) -> Option<&ValidatorSet> {
        if height <= self.height {
            return None;
        }
        if height == self.height + 1 {
            return Some(self.record.at(height));
        }
        let before_scheduled = match &self.record.scheduled {
            Some((from, _)) => height < *from,
            None => true,
        };
        (height <= self.height.saturating_add(self.delay) && before_scheduled)
            .then_some(&self.record.current)
    }

    /// The furthest height toward `target` whose set this trust determines:
    /// where to hop next.
    pub fn hop_toward(&self, target: u64) -> u64 {
        let mut reach = self.height.saturating_add(self.delay).min(target);
        if let Some((from, _)) = &self.record.scheduled {
            reach = reach.min(from.saturating_sub(1));
        }
        reach.max(self.height + 1)
    }

    /// Moves trust to the height of `hop`, a proved validator-set record.
    pub fn advance(&mut self, chain: &Chain, hop: &ProvedValue) -> Result<(), LightError> {
        if hop.key != StateKey::ValidatorSet {
            return Err(LightError::Value(
                "a hop must prove the validator-set record".into(),
            ));
        }
        let height = hop.header.height;
        let set = self.set_for(height).ok_or_else(|| {
            LightError::ValidatorSet(format!(
                "trusted at height {} cannot determine the set of height {height}",
                self.height
            ))
        })?;
        hop.verify(chain, set)?;
        let bytes = hop
            .value
            .as_deref()
            .ok_or_else(|| LightError::Value("the state holds no validator-set record".into()))?;
        let record: ValidatorSetRecord = from_bytes(bytes, PROVED_VALUE_BYTES_MAX)
            .map_err(|e| LightError::Value(format!("validator-set record: {e}")))?;
        self.height = height;
        self.record = record;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SecretKey;
    use crate::encoding::BoundedVec;
    use crate::records::Validator;
    use crate::types::InstitutionId;

    fn set(n: u8) -> ValidatorSet {
        ValidatorSet {
            validators: BoundedVec::new(
                (0..n)
                    .map(|i| Validator {
                        institution: InstitutionId::new(&format!("v{i}")).unwrap(),
                        node_key: SecretKey::from_seed([i + 1; 32]).public_key(),
                        power: 1,
                    })
                    .collect(),
            )
            .unwrap(),
        }
    }

    #[test]
    fn without_a_scheduled_change_the_current_set_holds_for_the_delay() {
        let trust = TrustedValidators {
            height: 10,
            record: ValidatorSetRecord {
                current: set(4),
                scheduled: None,
            },
            delay: 5,
        };
        assert_eq!(trust.set_for(10), None, "not for the trusted height itself");
        for h in 11..=15 {
            assert_eq!(trust.set_for(h), Some(&set(4)), "height {h}");
        }
        // A change carried at height 11 could take effect at 16.
        assert_eq!(trust.set_for(16), None);
        assert_eq!(trust.hop_toward(100), 15);
        assert_eq!(trust.hop_toward(13), 13);
    }

    #[test]
    fn a_scheduled_change_is_exact_only_for_the_next_height() {
        // Scheduled from 13: heights 11 and 12 are the current set; 13 could
        // still be postponed by a change carried at 11 or 12, so the client
        // must hop to 12 and read the record there.
        let trust = TrustedValidators {
            height: 10,
            record: ValidatorSetRecord {
                current: set(4),
                scheduled: Some((13, set(5))),
            },
            delay: 5,
        };
        assert_eq!(trust.set_for(11), Some(&set(4)));
        assert_eq!(trust.set_for(12), Some(&set(4)));
        assert_eq!(trust.set_for(13), None);
        assert_eq!(trust.hop_toward(20), 12);
        // From 12, the next height's set is the record's own answer.
        let at_12 = TrustedValidators {
            height: 12,
            ..trust.clone()
        };
        assert_eq!(at_12.set_for(13), Some(&set(5)));
        assert_eq!(at_12.set_for(14), None);
        assert_eq!(at_12.hop_toward(20), 13);
        // A change taking effect at the very next height: hop by one.
        let next = TrustedValidators {
            height: 12,
            record: ValidatorSetRecord {
                current: set(4),
                scheduled: Some((13, set(5))),
            },
            delay: 1,
        };
        assert_eq!(next.hop_toward(20), 13);
    }
}
