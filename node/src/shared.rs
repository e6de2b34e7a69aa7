//! What the consensus task and the HTTP API share: the store, the mempool,
//! commit notifications and live figures.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use medledger_consensus::SharedTelemetry;
use medledger_contracts::block::BlockHeader;
use medledger_contracts::certificate::CommitCertificate;
use medledger_contracts::crypto::KeyCache;
use medledger_contracts::encoding::from_bytes;
use medledger_contracts::records::{
    AuditEntry, DelegationRecord, GroupRecord, InstitutionRecord, LedgerParameters, Outcome,
    PatientRecord, PractitionerRecord, ProposalRecord, ValidatorSet, ValidatorSetRecord,
};
use medledger_contracts::state::{Overlay, StateKey, StateReader};
use medledger_contracts::state_machine::{BlockContext, outside_window, try_each};
use medledger_contracts::transaction::{
    Payload, SignedTransaction, Signer, VerifiedTransaction, verify_each,
};
use medledger_contracts::types::{Chain, InstitutionId, PatientId, TxHash};
use medledger_store::Store;
use tokio::sync::{broadcast, mpsc};

use super::mempool::{Mempool, Party, Refusal};
use super::metrics::Metrics;
use crate::clock::now;

/// A block was committed.
#[derive(Debug)]
pub struct CommitEvent {
    /// Its header.
    pub header: BlockHeader,
    /// The transactions it committed (each with its receipt in the store).
    pub transactions: Vec<TxHash>,
    /// The copies it took but rejected leaving no trace for good (R1: a
    /// duplicate, or expired), and why: a client waiting on one is told.
    pub untraced: Vec<(TxHash, medledger_contracts::records::Rejection)>,
    /// The audit entries it appended.
    pub audit: Vec<AuditEntry>,
}

/// Where a transaction came from: a client (pass it on to peers) or a peer
/// (they passed it to everyone already).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Submitted to this node's API.
    Client,
    /// Passed on by another node.
    Peer,
}

/// State shared by the node's tasks.
pub struct Shared {
    /// The chain.
    pub chain: Chain,
    /// This node's institution.
    pub institution: InstitutionId,
    /// The disk.
    pub store: Store,
    mempool: Mutex<Mempool>,
    /// Commit notifications.
    pub commits: broadcast::Sender<Arc<CommitEvent>>,
    /// Consensus figures.
    pub telemetry: SharedTelemetry,
    gossip: Option<mpsc::Sender<Vec<u8>>>,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// The latest header and its certificate, decoded (the API's proofs).
    latest_certified: Mutex<Option<CertifiedHeader>>,
    /// Signers' keys, prepared for verification (decompressed), kept
    /// across batches of arrivals and proposals.
    pub signing_keys: KeyCache,
}

/// Most signers' keys kept prepared (about 0.4 KB each); past this the
/// cache starts afresh.
const SIGNING_KEYS_MAX: usize = 1 << 16;

/// A height, its header and its commit certificate.
pub type CertifiedHeader = (u64, BlockHeader, CommitCertificate);

/// Why the validator set could not be read from the committed state.
#[derive(Debug, thiserror::Error)]
pub enum ValidatorsError {
    /// The state could not be read.
    #[error("reading the validator set: {0}")]
    State(#[from] medledger_contracts::state::StateError),
    /// Genesis always writes one: its absence means a damaged store.
    #[error("no validator set in the committed state (a damaged store?)")]
    Missing,
}

impl Shared {
    /// Shared state over an opened store.
    pub fn new(
        chain: Chain,
        institution: InstitutionId,
        store: Store,
        mempool: Mempool,
        telemetry: SharedTelemetry,
        gossip: Option<mpsc::Sender<Vec<u8>>>,
    ) -> Self {
        let (commits, _) = broadcast::channel(1024);
        Self {
            institution,
            store,
            mempool: Mutex::new(mempool),
            commits,
            telemetry,
            gossip,
            metrics: Metrics::new(),
            latest_certified: Mutex::new(None),
            signing_keys: KeyCache::new(SIGNING_KEYS_MAX),
            chain,
        }
    }

    /// The mempool, locked.
    pub fn mempool(&self) -> MutexGuard<'_, Mempool> {
        // A panic while holding the lock leaves the pool consistent (every
        // method updates it only after its checks), so poisoning is ignored.
        self.mempool.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every member institution's record in the committed state (active,
    /// suspended and removed alike), in id order.
    pub fn institution_records(
        &self,
    ) -> Result<Vec<InstitutionRecord>, crate::gateway::RecordsError> {
        let sample = StateKey::Institution(self.institution.clone());
        let records = self.records_of(sample, 64 * 1024, |key| match key {
            StateKey::Institution(_) => Some(()),
            _ => None,
        })?;
        Ok(records.into_iter().map(|((), record)| record).collect())
    }

    /// Every governance proposal in the committed state, with its id.
    pub fn proposal_records(
        &self,
    ) -> Result<
        Vec<(medledger_contracts::types::TxHash, ProposalRecord)>,
        crate::gateway::RecordsError,
    > {
        let sample = StateKey::Proposal(medledger_contracts::types::TxHash(Default::default()));
        self.records_of(sample, 256 * 1024, |key| match key {
            StateKey::Proposal(id) => Some(id),
            _ => None,
        })
    }

    /// Every group of members in the committed state, with its id.
    pub fn group_records(
        &self,
    ) -> Result<Vec<(medledger_contracts::types::GroupId, GroupRecord)>, crate::gateway::RecordsError>
    {
        // Any group id gives the variant's tag byte.
        let Ok(any) = medledger_contracts::types::GroupId::new("a") else {
            return Ok(Vec::new());
        };
        self.records_of(StateKey::Group(any), 64 * 1024, |key| match key {
            StateKey::Group(id) => Some(id),
            _ => None,
        })
    }

    /// The records under one state-key variant, with what `pick` takes of
    /// each key. The keys of one variant share its tag byte (a state key's
    /// encoding is never empty; were it, the scan would only be longer:
    /// `pick` checks every key).
    fn records_of<K, T: serde::de::DeserializeOwned>(
        &self,
        sample: StateKey,
        value_bytes_max: usize,
        pick: impl Fn(StateKey) -> Option<K>,
    ) -> Result<Vec<(K, T)>, crate::gateway::RecordsError> {
        let sample = sample.to_bytes();
        let prefix = sample.get(..1).unwrap_or_default();
        let mut records = Vec::new();
        for (key, value) in self.store.latest_with_prefix(prefix)? {
            let Some(id) = from_bytes::<StateKey>(&key, 1024).ok().and_then(&pick) else {
                continue;
            };
            records.push((id, from_bytes(&value, value_bytes_max)?));
        }
        Ok(records)
    }

    /// The cache of the latest certified header (a newer height replaces it).
    pub fn latest_certified(&self) -> MutexGuard<'_, Option<CertifiedHeader>> {
        self.latest_certified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The last committed height (0 before the first block). A failed read
    /// of the store is logged (not silent) and answered as 0, as before
    /// the first block; the store's next read or write reports it again.
    pub fn height(&self) -> u64 {
        // Logged when reads start failing, not at every failed read (a
        // waiting request polls every 10 ms).
        static FAILING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        match self.store.height() {
            Ok(height) => {
                FAILING.store(false, std::sync::atomic::Ordering::Relaxed);
                height.unwrap_or(0)
            }
            Err(error) => {
                if !FAILING.swap(true, std::sync::atomic::Ordering::Relaxed) {
                    tracing::error!(%error, "reading the committed height failed");
                }
                0
            }
        }
    }

    /// The validator set that certifies `height`, as the committed state knows it.
    pub fn validators(&self, height: u64) -> Result<ValidatorSet, ValidatorsError> {
        let record: ValidatorSetRecord = Overlay::new(&self.store)
            .get(&StateKey::ValidatorSet)?
            .ok_or(ValidatorsError::Missing)?;
        Ok(record.at(height).clone())
    }

    /// Whether the committed state binds the transaction's claimed signer
    /// to the key that signed it (a new patient: the id derived from it).
    fn signer_holds_key(&self, tx: &VerifiedTransaction) -> bool {
        let state = Overlay::new(&self.store);
        let key = tx.public_key();
        let patient_key = |id: &PatientId| {
            state
                .get::<PatientRecord>(&StateKey::Patient(*id))
                .ok()
                .flatten()
                .is_some_and(|p| p.key_at(now()) == key || p.key == *key)
        };
        match &tx.transaction().signer {
            Signer::Patient(id) if matches!(tx.transaction().payload, Payload::RegisterPatient) => {
                PatientId::from_key(self.chain.hash(), key) == *id
            }
            Signer::Patient(id) => patient_key(id),
            Signer::Delegate(d) => state
                .get::<DelegationRecord>(&StateKey::Delegation(*d))
                .ok()
                .flatten()
                .is_some_and(|d| patient_key(&d.delegate)),
            Signer::Practitioner(p) => state
                .get::<PractitionerRecord>(&StateKey::Practitioner(*p))
                .ok()
                .flatten()
                .is_some_and(|r| r.key == *key),
            Signer::Institution(i) | Signer::InstitutionNode(i) => state
                .get::<InstitutionRecord>(&StateKey::Institution(i.clone()))
                .ok()
                .flatten()
                .is_some_and(|r| {
                    if matches!(tx.transaction().signer, Signer::Institution(_)) {
                        r.spec.admin_key == *key
                    } else {
                        r.spec.node_key == *key
                    }
                }),
        }
    }

    /// Takes a transaction from outside: checks it once (size, decoding,
    /// repeats, room, chain, signature, form, and that the ledger would
    /// apply it now) and keeps it for a block.
    pub fn admit(&self, bytes: &[u8], origin: Origin) -> Result<TxHash, Refusal> {
        self.admit_many(&[bytes], origin)
            .pop()
            .unwrap_or(Err(NOT_JUDGED))
    }

    /// Takes many transactions from outside, each checked as [`Self::admit`]
    /// checks one and given the verdict it would get alone, in order — but
    /// with the costs a batch can share paid once: their signatures are
    /// verified in one batch ([`verify_each`]), and a client's are tried
    /// against committed state with the next block's set-up done once
    /// ([`try_each`]; none sees another's effects, as blocks order by lane,
    /// not arrival). A transaction whose id an earlier one in the batch
    /// took (the same bytes, or another signature on the same content once
    /// one verified) is refused as a duplicate.
    pub fn admit_many(&self, batch: &[&[u8]], origin: Origin) -> Vec<Result<TxHash, Refusal>> {
        let _span = tracing::debug_span!("admit", ?origin, count = batch.len()).entered();
        let mut results: Vec<Result<TxHash, Refusal>> = vec![Err(NOT_JUDGED); batch.len()];
        // Decoding, exact repeats, and what waits in the pool already; the
        // pool's lock is taken for a bounded chunk at a time, so blocks are
        // never kept waiting on a long batch.
        let mut seen_bytes = std::collections::HashSet::new();
        let mut decoded = Vec::with_capacity(batch.len());
        // [R1] One outside its validity window is refused before anything
        // else is looked up: a copy of a transaction committed long ago is
        // expired, whatever this node's indexes remember of it.
        let window = self.validity_window();
        let time = now();
        for (index, bytes) in batch.iter().enumerate() {
            if !seen_bytes.insert(*bytes) {
                results[index] = crate::mempool::decode(&self.chain, bytes)
                    .and_then(|(_, id)| Err(Refusal::Duplicate(id)));
                continue;
            }
            match crate::mempool::decode(&self.chain, bytes) {
                Ok((signed, id)) => match outside_window(&signed.transaction, time, window) {
                    Some(rejection) => results[index] = Err(Refusal::OutsideValidity(rejection)),
                    None => decoded.push((index, signed, id)),
                },
                Err(refusal) => results[index] = Err(refusal),
            }
        }
        let mut unverified = Vec::with_capacity(decoded.len());
        for chunk in decoded.chunks(POOL_CHECK_CHUNK) {
            let pool = self.mempool();
            for (index, signed, id) in chunk {
                match pool.check_waiting(signed, id) {
                    Ok(()) => unverified.push((*index, *id)),
                    Err(refusal) => results[*index] = Err(refusal),
                }
            }
        }
        let mut signed_of: HashMap<usize, SignedTransaction> = decoded
            .into_iter()
            .map(|(index, signed, _)| (index, signed))
            .collect();
        let mut to_verify = Vec::with_capacity(unverified.len());
        for (index, id) in unverified {
            if matches!(self.store.receipt(&id), Ok(Some(_))) {
                results[index] = Err(Refusal::AlreadyCommitted(id));
            } else if let Some(signed) = signed_of.remove(&index) {
                to_verify.push((index, signed));
            }
        }
        // The signatures, outside the lock so submissions verify in
        // parallel; of several verified copies of one id, the first is kept.
        let (indexes, signed): (Vec<usize>, Vec<SignedTransaction>) = to_verify.into_iter().unzip();
        let mut verified = Vec::with_capacity(indexes.len());
        let mut ids = std::collections::HashSet::new();
        for (index, result) in
            indexes
                .into_iter()
                .zip(verify_each(&self.chain, signed, &self.signing_keys))
        {
            match result {
                Ok(v) if !ids.insert(v.id()) => results[index] = Err(Refusal::Duplicate(v.id())),
                Ok(v) => verified.push((index, v)),
                Err(e) => results[index] = Err(Refusal::Invalid(e)),
            }
        }
        let state = Overlay::new(&self.store);
        let mut institutions = HashMap::new();
        let mut party_of = |v: &VerifiedTransaction| {
            Party::of(v, |p| {
                institutions
                    .entry(*p)
                    .or_insert_with(|| {
                        state
                            .get::<PractitionerRecord>(&StateKey::Practitioner(*p))
                            .ok()
                            .flatten()
                            .map(|r| r.institution)
                    })
                    .clone()
            })
        };
        if origin == Origin::Peer {
            // The node a client submitted to has already tried these against
            // state; peers only check what no one can fake (signature, form),
            // and that the claimed signer is bound to the key: the pool's
            // lanes and parties rest on that claim. One that no longer
            // applies is rejected in its block anyway.
            for (index, v) in verified {
                results[index] = if self.signer_holds_key(&v) {
                    let party = party_of(&v);
                    self.keep(v, party)
                } else {
                    Err(Refusal::WouldReject(
                        "the signer named is not bound to the signing key".into(),
                    ))
                };
            }
        } else {
            self.try_and_keep(verified, &mut party_of, batch, &mut results);
        }
        results
    }

    /// A client's verified transactions: each tried against committed state
    /// as the first of the next block, the ones it would apply kept and
    /// passed on to peers.
    fn try_and_keep(
        &self,
        verified: Vec<(usize, VerifiedTransaction)>,
        party_of: &mut impl FnMut(&VerifiedTransaction) -> Party,
        batch: &[&[u8]],
        results: &mut [Result<TxHash, Refusal>],
    ) {
        if verified.is_empty() {
            return;
        }
        let ctx = BlockContext {
            height: self.height() + 1,
            time: now(),
            hash: self.chain.hash(),
        };
        let (indexes, transactions): (Vec<usize>, Vec<VerifiedTransaction>) =
            verified.into_iter().unzip();
        let outcomes = match try_each(&self.store, &ctx, &transactions) {
            Ok(outcomes) => outcomes,
            Err(e) => {
                for index in indexes {
                    results[index] = Err(Refusal::WouldReject(format!("state unavailable: {e}")));
                }
                return;
            }
        };
        for ((index, v), outcome) in indexes.into_iter().zip(transactions).zip(outcomes) {
            if let Outcome::Rejected(rejection) = &outcome {
                tracing::debug!(height = ctx.height, tx = %v.id(), %rejection, "trial run rejects a submission");
                results[index] = Err(Refusal::WouldReject(rejection.to_string()));
                continue;
            }
            let party = party_of(&v);
            let kept = self.keep(v, party);
            if kept.is_ok()
                && let Some(gossip) = &self.gossip
            {
                // A full gossip queue drops the copy, not the transaction: it
                // is in this node's pool and goes into its next proposal.
                let _ = gossip.try_send(batch[index].to_vec());
            }
            results[index] = kept;
        }
    }
}

impl Shared {
    /// The chain's transaction validity window (genesis, R1).
    pub(crate) fn validity_window(&self) -> u64 {
        Overlay::new(&self.store)
            .get::<LedgerParameters>(&StateKey::Parameters)
            .ok()
            .flatten()
            .unwrap_or_default()
            .tx_validity_window_ms
    }

    /// Puts an admitted transaction in the pool, unless a block committed
    /// it while its admission ran: admission looked it up in the store
    /// before checking its signature, and a commit writes the store before
    /// it clears the pool, so a look after inserting cannot miss one.
    fn keep(&self, verified: VerifiedTransaction, party: Party) -> Result<TxHash, Refusal> {
        let id = self.mempool().insert(verified, party)?;
        if matches!(self.store.receipt(&id), Ok(Some(_))) {
            self.mempool().remove([id]);
            return Err(Refusal::AlreadyCommitted(id));
        }
        Ok(id)
    }
}

/// Transactions checked against the pool per taking of its lock.
const POOL_CHECK_CHUNK: usize = 256;

/// A verdict slot not yet filled; every path of [`Shared::admit_many`]
/// fills each slot, so no answer carries it.
const NOT_JUDGED: Refusal = Refusal::Full("not judged (an internal error: please report it)");

impl Shared {
    /// What `/metrics` shows live: height, round, mempool size, peers.
    pub fn live_figures(&self) -> crate::metrics::Live {
        crate::metrics::Live {
            height: self.height(),
            round: self
                .telemetry
                .round
                .load(std::sync::atomic::Ordering::Relaxed) as u64,
            mempool: self.mempool().len() as u64,
            peers: self
                .telemetry
                .peers
                .load(std::sync::atomic::Ordering::Relaxed) as u64,
        }
    }
}

impl crate::gateway::Ledger for Shared {
    fn chain(&self) -> &Chain {
        &self.chain
    }

    fn institution(&self) -> &InstitutionId {
        &self.institution
    }

    fn height(&self) -> u64 {
        Shared::height(self)
    }

    fn committed_state(&self) -> &dyn StateReader {
        &self.store
    }

    fn tx_validity_window_ms(&self) -> u64 {
        self.validity_window()
    }

    fn institution_records(&self) -> Result<Vec<InstitutionRecord>, crate::gateway::RecordsError> {
        Shared::institution_records(self)
    }

    fn submit(&self, tx: &SignedTransaction) -> Result<TxHash, Refusal> {
        self.admit(&tx.to_bytes(), Origin::Client)
    }

    fn count_refusal(&self, code: &str) {
        self.metrics.observe_gateway_refusal(code);
    }
}
