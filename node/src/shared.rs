//! What the consensus task and the HTTP API share: the store, the mempool,
//! commit notifications and live figures.

use std::sync::{Arc, Mutex, MutexGuard};

use medledger_consensus::SharedTelemetry;
use medledger_contracts::block::BlockHeader;
use medledger_contracts::certificate::CommitCertificate;
use medledger_contracts::encoding::from_bytes;
use medledger_contracts::records::{
    AuditEntry, DelegationRecord, InstitutionRecord, Outcome, PatientRecord, PractitionerRecord,
    ValidatorSet, ValidatorSetRecord,
};
use medledger_contracts::state::{Overlay, StateKey, StateReader};
use medledger_contracts::state_machine::{BlockContext, execute_block};
use medledger_contracts::transaction::{Payload, SignedTransaction, Signer, VerifiedTransaction};
use medledger_contracts::types::{ChainId, InstitutionId, PatientId, TxHash};
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
    /// Its transactions.
    pub transactions: Vec<TxHash>,
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
    pub chain: ChainId,
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
}

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
        chain: ChainId,
        institution: InstitutionId,
        store: Store,
        mempool: Mempool,
        telemetry: SharedTelemetry,
        gossip: Option<mpsc::Sender<Vec<u8>>>,
    ) -> Self {
        let (commits, _) = broadcast::channel(1024);
        Self {
            chain,
            institution,
            store,
            mempool: Mutex::new(mempool),
            commits,
            telemetry,
            gossip,
            metrics: Metrics::new(),
            latest_certified: Mutex::new(None),
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
        // Institution records are the state keys of one enum variant: they
        // share its tag byte (a state key's encoding is never empty; were it,
        // the scan would only be longer: every key is checked below).
        let sample = StateKey::Institution(self.institution.clone()).to_bytes();
        let prefix = sample.get(..1).unwrap_or_default();
        let mut records = Vec::new();
        for (key, value) in self.store.latest_with_prefix(prefix)? {
            let Ok(StateKey::Institution(_)) = from_bytes::<StateKey>(&key, 1024) else {
                continue;
            };
            records.push(from_bytes(&value, 64 * 1024)?);
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
                PatientId::from_key(key) == *id
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
        let span = tracing::debug_span!("admit", ?origin, tx = tracing::field::Empty).entered();
        let committed = |id: &TxHash| matches!(self.store.receipt(id), Ok(Some(_)));
        let signed = self.mempool().precheck(bytes, committed)?;
        // The signature check runs outside the lock so submissions verify in parallel.
        let verified = signed.verify(&self.chain).map_err(Refusal::Invalid)?;
        span.record("tx", tracing::field::display(verified.id()));
        let party = Party::of(&verified, |p| {
            Overlay::new(&self.store)
                .get::<PractitionerRecord>(&StateKey::Practitioner(*p))
                .ok()
                .flatten()
                .map(|r| r.institution)
        });
        // The node a client submitted to has already tried the transaction
        // against state; peers only check what no one can fake (signature,
        // form). One that no longer applies is rejected in its block anyway.
        if origin == Origin::Peer {
            // Not tried against state, but the claimed signer must be bound
            // to the key: the pool's lanes and parties rest on that claim.
            if !self.signer_holds_key(&verified) {
                return Err(Refusal::WouldReject(
                    "the signer named is not bound to the signing key".into(),
                ));
            }
            return self.mempool().insert(verified, party);
        }
        let ctx = BlockContext {
            height: self.height() + 1,
            time: now(),
        };
        let trial = execute_block(&self.store, &ctx, std::slice::from_ref(&verified))
            .map_err(|e| Refusal::WouldReject(format!("state unavailable: {e}")))?;
        if let Some(receipt) = trial.receipts.first()
            && let Outcome::Rejected(rejection) = &receipt.outcome
        {
            tracing::debug!(height = ctx.height, %rejection, "trial run rejects a submission");
            return Err(Refusal::WouldReject(rejection.to_string()));
        }
        let id = self.mempool().insert(verified, party)?;
        if origin == Origin::Client
            && let Some(gossip) = &self.gossip
        {
            // A full gossip queue drops the copy, not the transaction: it is
            // in this node's pool and goes into its next proposal.
            let _ = gossip.try_send(bytes.to_vec());
        }
        Ok(id)
    }
}

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
    fn chain(&self) -> &ChainId {
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
