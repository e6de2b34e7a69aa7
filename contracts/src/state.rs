//! Ledger state as typed records in a key-value map, and the authenticated
//! (Jellyfish Merkle Tree) store that commits to it.
//!
//! Rules:
//! 1. State is a map from [`StateKey`] (BCS bytes) to BCS-encoded records.
//!    Records are not deleted: a revocation, retirement or removal is a
//!    status change, so history stays provable. The one exception is replay
//!    protection: the ids of committed transactions are deleted once they
//!    are past their validity window (the state machine's R1); their
//!    blocks and receipts keep them.
//! 2. The state machine reads through [`StateReader`] and writes into an
//!    [`Overlay`]; a block's writes reach the store as one [`WriteSet`].
//! 3. [`JmtStore`] versions the tree by height. A block that writes nothing
//!    makes no new version, so the state root changes when and only when
//!    state changes.
//! 4. [`verify_state_proof`] needs only a root, a key, the claimed value (or
//!    none, for an exclusion proof) and the proof: it is what the SDK's light
//!    client calls, with no storage at all.
//! 5. The tree hashes with the chain's suite's function (SHA-256 or SM3),
//!    given to every function here that hashes. jmt takes its hasher as a
//!    type, so each call picks the type for the function (`with_hasher!`);
//!    a proof's bytes do not depend on it (the hasher is a zero-sized
//!    marker in jmt's proof), so [`SparseProof`] serves both suites.

use std::collections::BTreeMap;
use std::sync::RwLock;

use jmt::storage::{LeafNode, Node, NodeBatch, NodeKey, TreeReader, TreeUpdateBatch, TreeWriter};
use jmt::{JellyfishMerkleTree, KeyHash, OwnedValue, RootHash, Version};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::crypto::PublicKey;
use crate::encoding::{self, Hash32, HashFunction};
use crate::newest_tree::NewestTree;
use crate::types::*;

/// Where a record lives in state.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum StateKey {
    /// An institution's record.
    Institution(InstitutionId),
    /// A practitioner's record.
    Practitioner(PractitionerId),
    /// A patient's record.
    Patient(PatientId),
    /// A grant.
    Grant(GrantId),
    /// A consent request.
    ConsentRequest(ConsentRequestId),
    /// A delegation (guardian or proxy).
    Delegation(DelegationId),
    /// An access (ordinary, emergency or public-health) and its release.
    Access(RequestId),
    /// A governance proposal.
    Proposal(ProposalId),
    /// The height at which a transaction was committed (replay protection;
    /// deleted once its validity window has passed, R1).
    CommittedTransaction(TxHash),
    /// The validator set and any scheduled change.
    ValidatorSet,
    /// The audit log's size and compact frontier.
    AuditLog,
    /// Ledger parameters fixed at genesis.
    Parameters,
    /// A refused fetch of an access, recorded once per reason (value: the
    /// `BlockRef` it was recorded in).
    FetchRefusal(RequestId, FetchRefusal),
    /// A patient's signed consent (its message) that was used, at this
    /// height: a guardianship consent counts once (R4.7).
    UsedConsent(Hash32),
    /// The queue of emergency accesses awaiting their review deadline
    /// (value: [`crate::records::ReviewQueue`]) [R7.7].
    ReviewQueue,
    /// One place in that queue (value: [`crate::records::ReviewDue`]).
    ReviewDue(u64),
    /// The queue of blocks' committed ids awaiting deletion (value:
    /// [`crate::records::ExpiryQueue`]) [R1].
    ExpiryQueue,
    /// One place in that queue: one block's committed ids (value:
    /// [`crate::records::ExpiringIds`]).
    ExpiringIds(u64),
    /// A regulator's attestation of a practitioner's licence, by the
    /// licence's hash (value: [`crate::records::LicenceRecord`]) [R4.12].
    Licence(Hash32),
    /// A group of member institutions (value:
    /// [`crate::records::GroupRecord`]) [R4.15].
    Group(GroupId),
    /// Which institution's node a transport key names (value: its
    /// [`InstitutionId`]); kept for every key ever named, so that on an
    /// `sm2-sm3` chain one network identity never stands for two members
    /// [R4.4, R4.8].
    TransportKey(PublicKey),
    /// A patient's request for their own records and its release (value:
    /// [`crate::records::OwnAccessRecord`]) [R7.8].
    OwnAccess(RequestId),
    /// A regulator's attestation of a member institution's licence (value:
    /// [`crate::records::InstitutionLicenceRecord`]) [R4.16].
    InstitutionLicence(InstitutionId),
}

impl StateKey {
    /// The key's bytes in the map.
    pub fn to_bytes(&self) -> Vec<u8> {
        encoding::to_bytes(self)
    }

    /// The JMT key hash of this key on a chain hashing with `hash`.
    pub fn key_hash(&self, hash: HashFunction) -> KeyHash {
        key_hash(hash, &self.to_bytes())
    }
}

/// Runs `$body` with `$H` the jmt hasher type of `$hash` (rule 5).
macro_rules! with_hasher {
    ($hash:expr, |$H:ident| $body:expr) => {
        match $hash {
            HashFunction::Sha256 => {
                type $H = sha2::Sha256;
                $body
            }
            HashFunction::Sm3 => {
                type $H = sm3::Sm3;
                $body
            }
        }
    };
}

/// The JMT key hash of a state key's bytes.
fn key_hash(hash: HashFunction, key: &[u8]) -> KeyHash {
    with_hasher!(hash, |H| KeyHash::with::<H>(key))
}

/// A proof made with one hasher type as another's: the same bytes (rule 5).
fn retype<A: Serialize, B: DeserializeOwned>(proof: &A) -> Result<B, StateError> {
    bcs::from_bytes(&encoding::to_bytes(proof))
        .map_err(|e| StateError::Storage(format!("state proof: {e}")))
}

/// A storage failure. Not a property of any transaction: a node that sees one
/// must stop rather than vote on a state it could not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// The backend failed.
    #[error("state storage failed: {0}")]
    Storage(String),
    /// A stored record does not decode: the store is corrupt.
    #[error("stored record under {key} does not decode: {error}")]
    Corrupt {
        /// Hex of the key bytes.
        key: String,
        /// The decoding error.
        error: String,
    },
}

/// Reads raw state.
pub trait StateReader {
    /// The current value under `key`, if any.
    fn read(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError>;
}

/// A set of writes: key bytes to new value bytes (`None` deletes; only
/// replay protection is ever deleted, see rule 1).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteSet(pub BTreeMap<Vec<u8>, Option<Vec<u8>>>);

impl WriteSet {
    /// Whether nothing is written.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of keys written.
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

/// Buffered writes on top of a reader; reads see the buffered writes first.
pub struct Overlay<'a> {
    base: &'a dyn StateReader,
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl<'a> Overlay<'a> {
    /// An empty overlay over `base`.
    pub fn new(base: &'a dyn StateReader) -> Self {
        Self {
            base,
            writes: BTreeMap::new(),
        }
    }

    /// Reads and decodes a record.
    pub fn get<T: DeserializeOwned>(&self, key: &StateKey) -> Result<Option<T>, StateError> {
        let bytes = key.to_bytes();
        match self.read(&bytes)? {
            None => Ok(None),
            Some(value) => bcs::from_bytes(&value)
                .map(Some)
                .map_err(|e| StateError::Corrupt {
                    key: hex::encode(&bytes),
                    error: e.to_string(),
                }),
        }
    }

    /// Encodes and buffers a record.
    pub fn put<T: Serialize>(&mut self, key: &StateKey, value: &T) {
        self.writes
            .insert(key.to_bytes(), Some(encoding::to_bytes(value)));
    }

    /// Buffers the deletion of a record.
    pub fn delete(&mut self, key: &StateKey) {
        self.writes.insert(key.to_bytes(), None);
    }

    /// Adds another overlay's writes (a transaction's, into its block's).
    pub fn absorb(&mut self, writes: WriteSet) {
        self.writes.extend(writes.0);
    }

    /// The buffered writes.
    pub fn into_writes(self) -> WriteSet {
        WriteSet(self.writes)
    }
}

impl StateReader for Overlay<'_> {
    fn read(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        match self.writes.get(key) {
            Some(value) => Ok(value.clone()),
            None => self.base.read(key),
        }
    }
}

/// Plain in-memory state with no authentication: the reference the JMT store
/// is tested against, and a quick store for tools.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    map: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl MemoryStore {
    /// Applies writes.
    pub fn apply(&mut self, writes: WriteSet) {
        for (key, value) in writes.0 {
            match value {
                Some(value) => {
                    self.map.insert(key, value);
                }
                None => {
                    self.map.remove(&key);
                }
            }
        }
    }

    /// Every entry, in key order.
    pub fn entries(&self) -> impl Iterator<Item = (&Vec<u8>, &Vec<u8>)> {
        self.map.iter()
    }
}

impl StateReader for MemoryStore {
    fn read(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self.map.get(key).cloned())
    }
}

/// The root of a state with nothing in it (the JMT's placeholder hash).
pub const EMPTY_STATE_ROOT: Hash32 = Hash32(*b"SPARSE_MERKLE_PLACEHOLDER_HASH__");

/// A JMT sparse Merkle proof, as served with a state value. jmt names a
/// hasher in the type, but it is only a marker (rule 5): this type carries
/// an SM3 tree's proof too, and [`verify_state_proof`] checks it with the
/// chain's function.
pub type SparseProof = jmt::proof::SparseMerkleProof<Sha256>;

/// Why a state proof was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("state proof does not verify: {0}")]
pub struct ProofError(pub String);

/// Verifies that `key` maps to `value` (or, for `None`, to nothing) in the
/// state whose root is `root` (rule 4).
pub fn verify_state_proof(
    hash: HashFunction,
    root: Hash32,
    key: &StateKey,
    value: Option<&[u8]>,
    proof: &SparseProof,
) -> Result<(), ProofError> {
    let key_hash = key.key_hash(hash);
    match hash {
        HashFunction::Sha256 => proof.verify(RootHash(root.0), key_hash, value),
        HashFunction::Sm3 => retype::<_, jmt::proof::SparseMerkleProof<sm3::Sm3>>(proof)
            .map_err(|e| ProofError(e.to_string()))?
            .verify(RootHash(root.0), key_hash, value),
    }
    .map_err(|e| ProofError(e.to_string()))
}

/// The root of `reader`'s tree at `version`.
pub fn root_of_version<R: TreeReader>(
    hash: HashFunction,
    reader: &R,
    version: Version,
) -> Result<Hash32, StateError> {
    with_hasher!(hash, |H| JellyfishMerkleTree::<_, H>::new(reader)
        .get_root_hash(version))
    .map(|root| Hash32(root.0))
    .map_err(|e| StateError::Storage(e.to_string()))
}

/// The value under `key` in `reader`'s tree at `version`, with its proof.
pub fn value_with_proof<R: TreeReader>(
    hash: HashFunction,
    reader: &R,
    key: &StateKey,
    version: Version,
) -> Result<(Option<Vec<u8>>, SparseProof), StateError> {
    let key_hash = key.key_hash(hash);
    let storage = |e: anyhow::Error| StateError::Storage(e.to_string());
    match hash {
        HashFunction::Sha256 => JellyfishMerkleTree::<_, Sha256>::new(reader)
            .get_with_proof(key_hash, version)
            .map_err(storage),
        HashFunction::Sm3 => {
            let (value, proof) = JellyfishMerkleTree::<_, sm3::Sm3>::new(reader)
                .get_with_proof(key_hash, version)
                .map_err(storage)?;
            Ok((value, retype(&proof)?))
        }
    }
}

/// A state value under its JMT key hash (keys themselves are not kept by the tree).
pub type HashedValue = ([u8; 32], Vec<u8>);

/// In-memory node storage for the JMT (the node keeps the same in RocksDB).
/// Hash maps: the tree looks nodes up by key only, and a replay touches
/// millions of them (ordered maps cost a chain of key comparisons each).
/// foldhash, seeded per process, instead of SipHash: SipHash was 8 % of a
/// replay's execution.
#[derive(Default)]
struct NodeStore {
    nodes: foldhash::HashMap<NodeKey, Node>,
    /// Every version of every value (the node's and tests' full history).
    values: foldhash::HashMap<KeyHash, BTreeMap<Version, Option<OwnedValue>>>,
    /// The newest value of each key only, when the store keeps only the
    /// newest state (no ordered map per key).
    newest: foldhash::HashMap<KeyHash, (Version, OwnedValue)>,
}

/// The authenticated state store: a JMT versioned by height (rules 3 and 4).
///
/// The JMT needs dense versions (each builds on the one before), while
/// heights that change nothing write no version; so the store keeps the
/// height at which each version was written.
pub struct JmtStore {
    /// The chain's hash function (rule 5).
    hash: HashFunction,
    inner: RwLock<NodeStore>,
    /// Height → JMT version written at that height.
    versions: BTreeMap<u64, Version>,
    /// Keep only the newest state (a replay never reads an older one): the
    /// values in `NodeStore::newest` and the tree in `newest_tree`; jmt's
    /// versioned nodes are not kept at all.
    latest_only: bool,
    /// The newest state's tree when `latest_only` (same roots as jmt's).
    newest_tree: NewestTree,
}

fn lock_error<T>(_: T) -> anyhow::Error {
    anyhow::anyhow!("JMT store lock poisoned")
}

impl TreeReader for JmtStore {
    fn get_node_option(&self, node_key: &NodeKey) -> anyhow::Result<Option<Node>> {
        Ok(self
            .inner
            .read()
            .map_err(lock_error)?
            .nodes
            .get(node_key)
            .cloned())
    }

    fn get_value_option(
        &self,
        max_version: Version,
        key_hash: KeyHash,
    ) -> anyhow::Result<Option<OwnedValue>> {
        let inner = self.inner.read().map_err(lock_error)?;
        if self.latest_only {
            return Ok(inner
                .newest
                .get(&key_hash)
                .filter(|(version, _)| *version <= max_version)
                .map(|(_, value)| value.clone()));
        }
        Ok(inner
            .values
            .get(&key_hash)
            .and_then(|versions| versions.range(..=max_version).next_back())
            .and_then(|(_, value)| value.clone()))
    }

    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
        let inner = self.inner.read().map_err(lock_error)?;
        let mut best: Option<(NodeKey, LeafNode)> = None;
        for (key, node) in &inner.nodes {
            if let Node::Leaf(leaf) = node
                && best
                    .as_ref()
                    .is_none_or(|(_, b)| leaf.key_hash() > b.key_hash())
            {
                best = Some((key.clone(), leaf.clone()));
            }
        }
        Ok(best)
    }
}

impl TreeWriter for JmtStore {
    fn write_node_batch(&self, batch: &NodeBatch) -> anyhow::Result<()> {
        let mut inner = self.inner.write().map_err(lock_error)?;
        for (key, node) in batch.nodes() {
            inner.nodes.insert(key.clone(), node.clone());
        }
        for ((version, key_hash), value) in batch.values() {
            if self.latest_only {
                match value {
                    Some(value) => {
                        inner.newest.insert(*key_hash, (*version, value.clone()));
                    }
                    None => {
                        inner.newest.remove(key_hash);
                    }
                }
            } else {
                inner
                    .values
                    .entry(*key_hash)
                    .or_default()
                    .insert(*version, value.clone());
            }
        }
        Ok(())
    }
}

impl JmtStore {
    /// An empty store for a chain hashing with `hash`.
    pub fn new(hash: HashFunction) -> Self {
        Self {
            hash,
            inner: RwLock::default(),
            versions: BTreeMap::new(),
            latest_only: false,
            newest_tree: NewestTree::new(hash),
        }
    }

    /// From now on keeps only the newest state: older roots, values and
    /// proofs are gone, memory holds one tree. For replays, which only ever
    /// read the state they are building.
    pub fn keep_latest_only(&mut self) {
        if self.latest_only {
            return;
        }
        self.latest_only = true;
        if let Ok(inner) = self.inner.get_mut() {
            let history = std::mem::take(&mut inner.values);
            inner.nodes = Default::default();
            inner.newest = history
                .into_iter()
                .filter_map(|(key, versions)| {
                    let (version, value) = versions.into_iter().next_back()?;
                    Some((key, (version, value?)))
                })
                .collect();
            self.newest_tree.put(
                inner
                    .newest
                    .iter()
                    .map(|(key, (_, value))| (key.0, value.as_slice())),
            );
        }
        if let Some(latest) = self.latest_height() {
            self.versions.retain(|height, _| *height == latest);
        }
    }

    /// Every (key hash, value) of the newest state, in key-hash order.
    pub fn latest_values(&self) -> Result<Vec<HashedValue>, StateError> {
        let inner = self
            .inner
            .read()
            .map_err(|_| StateError::Storage("JMT store lock poisoned".into()))?;
        let mut values: Vec<HashedValue> = if self.latest_only {
            inner
                .newest
                .iter()
                .map(|(key, (_, value))| (key.0, value.clone()))
                .collect()
        } else {
            inner
                .values
                .iter()
                .filter_map(|(key, versions)| {
                    let (_, value) = versions.iter().next_back()?;
                    value.as_ref().map(|v| (key.0, v.clone()))
                })
                .collect()
        };
        // In key-hash order, so a checkpoint's bytes do not depend on the map.
        values.sort_unstable_by_key(|(key, _)| *key);
        Ok(values)
    }

    /// A store holding exactly `values` as the state of `height` (keeping
    /// only the newest state from then on), and its root.
    pub fn from_latest_values(
        hash: HashFunction,
        values: Vec<HashedValue>,
        height: u64,
    ) -> Result<(Self, Hash32), StateError> {
        let mut store = Self {
            latest_only: true,
            ..Self::new(hash)
        };
        let root = store
            .newest_tree
            .put(values.iter().map(|(k, v)| (*k, v.as_slice())));
        store
            .inner
            .get_mut()
            .map_err(|_| StateError::Storage("JMT store lock poisoned".into()))?
            .newest = values
            .into_iter()
            .map(|(k, v)| (KeyHash(k), (0, v)))
            .collect();
        store.versions.insert(height, 0);
        Ok((store, Hash32(root)))
    }

    /// The height of the newest version written, if any.
    pub fn latest_height(&self) -> Option<u64> {
        self.versions.keys().next_back().copied()
    }

    fn latest_version(&self) -> Option<Version> {
        self.versions.values().next_back().copied()
    }

    /// The JMT version that holds the state as of `height`: the newest written at or below it.
    fn version_at(&self, height: u64) -> Option<Version> {
        self.versions.range(..=height).next_back().map(|(_, v)| *v)
    }

    /// Commits `writes` as the state of `height` and returns the new root
    /// (rule 3: an empty write set leaves the root and versions unchanged).
    pub fn commit(&mut self, writes: &WriteSet, height: u64) -> Result<Hash32, StateError> {
        if let Some(latest) = self.latest_height()
            && height <= latest
        {
            return Err(StateError::Storage(format!(
                "height {height} is not after the latest written height {latest}"
            )));
        }
        if writes.is_empty() {
            return self.root_at(height);
        }
        let version = self.latest_version().map_or(0, |v| v + 1);
        if self.latest_only {
            return self.commit_newest(writes, height, version);
        }
        let (root, batch) =
            write_tree_version(self.hash, self, hash_keys(self.hash, writes), version)?;
        self.write_node_batch(&batch.node_batch)
            .map_err(|e| StateError::Storage(e.to_string()))?;
        self.versions.insert(height, version);
        Ok(Hash32(root.0))
    }

    /// [`Self::commit`] when only the newest state is kept: values replaced
    /// in place, the root from [`NewestTree`].
    fn commit_newest(
        &mut self,
        writes: &WriteSet,
        height: u64,
        version: Version,
    ) -> Result<Hash32, StateError> {
        let inner = self
            .inner
            .get_mut()
            .map_err(|_| StateError::Storage("JMT store lock poisoned".into()))?;
        let mut entries = Vec::with_capacity(writes.len());
        let mut deleted = Vec::new();
        for (key, value) in &writes.0 {
            let key_hash = key_hash(self.hash, key);
            match value {
                Some(value) => {
                    entries.push((key_hash.0, value.as_slice()));
                    inner.newest.insert(key_hash, (version, value.clone()));
                }
                None => {
                    if inner.newest.remove(&key_hash).is_some() {
                        deleted.push(key_hash.0);
                    }
                }
            }
        }
        self.newest_tree.delete(&deleted);
        let root = self.newest_tree.put(entries);
        self.versions.clear();
        self.versions.insert(height, version);
        Ok(Hash32(root))
    }

    /// The state root as of `height` (the empty-tree root before anything was written).
    pub fn root_at(&self, height: u64) -> Result<Hash32, StateError> {
        if self.latest_only {
            return match self.latest_height() {
                None => Ok(EMPTY_STATE_ROOT),
                Some(latest) if height >= latest => Ok(Hash32(self.newest_tree.root())),
                Some(latest) => Err(StateError::Storage(format!(
                    "only the newest state (height {latest}) is kept, not height {height}'s"
                ))),
            };
        }
        match self.version_at(height) {
            None => Ok(EMPTY_STATE_ROOT),
            Some(version) => root_of_version(self.hash, self, version),
        }
    }

    /// The value under `key` as of `height`, with a proof against that height's root.
    pub fn get_with_proof(
        &self,
        key: &StateKey,
        height: u64,
    ) -> Result<(Option<Vec<u8>>, SparseProof), StateError> {
        if self.latest_only {
            return Err(StateError::Storage(
                "a store keeping only the newest state gives no proofs".into(),
            ));
        }
        let version = self
            .version_at(height)
            .ok_or_else(|| StateError::Storage(format!("no state at or below height {height}")))?;
        value_with_proof(self.hash, self, key, version)
    }
}

/// A block's writes with their keys hashed as the tree stores them.
pub fn hash_keys(hash: HashFunction, writes: &WriteSet) -> Vec<(KeyHash, Option<OwnedValue>)> {
    writes
        .0
        .iter()
        .map(|(key, value)| (key_hash(hash, key), value.clone()))
        .collect()
}

/// Writes one version of the tree over `reader`'s latest one and returns its
/// root and the nodes to store.
///
/// Puts go through jmt's batch insertion, which hashes every node a block
/// touches once; its key-at-a-time path rehashes the whole path from the
/// root for every key (three quarters of a replay's execution, before the
/// replay got its own tree, `newest_tree`).
/// Both build the same tree (the tests compare them). The batch path cannot
/// delete, so a write set with a deletion (replay protection leaving the
/// state, rule 1: every block once the chain is older than its validity
/// window) takes the key-at-a-time path. Deleting key at a time and then
/// putting in a batch (two versions per block) was measured no faster
/// (`bench-replay --on-disk`: 11,062 and 11,138 tx/s against 10,725) and
/// wrote 14 % more to disk: a deleted key costs about as much tree work as
/// a written one, whichever path.
pub fn write_tree_version<R: TreeReader>(
    hash: HashFunction,
    reader: &R,
    writes: Vec<(KeyHash, Option<OwnedValue>)>,
    version: Version,
) -> Result<(RootHash, TreeUpdateBatch), StateError> {
    let all_puts = writes.iter().all(|(_, value)| value.is_some());
    let result = with_hasher!(hash, |H| {
        let tree = JellyfishMerkleTree::<_, H>::new(reader);
        if all_puts {
            let puts = writes
                .into_iter()
                .filter_map(|(key, value)| value.map(|v| (key, v)))
                .collect();
            tree.batch_put_value_sets(vec![puts], None, version)
                .map(|(roots, batch)| (roots[0], batch))
        } else {
            tree.put_value_set(writes, version)
        }
    });
    result.map_err(|e| StateError::Storage(e.to_string()))
}

impl StateReader for JmtStore {
    fn read(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        let Some(version) = self.latest_version() else {
            return Ok(None);
        };
        self.get_value_option(version, key_hash(self.hash, key))
            .map_err(|e| StateError::Storage(e.to_string()))
    }
}
