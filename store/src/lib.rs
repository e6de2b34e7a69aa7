//! The node's disk: committed blocks, certificates, the JMT state and query
//! indexes in RocksDB, one atomic, synced write batch per block.
//!
//! Layout (column families; integers big-endian so keys sort by number):
//!
//! | family | key | value |
//! |---|---|---|
//! | `meta` | `genesis`, `hash`, `height` | genesis hash; the chain's hash function (`sha256` or `sm3`; a store without it predates SM3 and is `sha256`); last committed height |
//! | `headers` | height | BCS `BlockHeader` |
//! | `blocks` | height | BCS `Block` (header and transactions) |
//! | `certificates` | height | BCS `CommitCertificate` |
//! | `jmt_nodes` | BCS `NodeKey` | BCS `Node` |
//! | `jmt_values` | key hash ‖ version | BCS `Option<value>` |
//! | `jmt_versions` | height | JMT version holding that height's state |
//! | `state` | state key | its latest value (a plain copy of the JMT's newest leaves, for fast reads) |
//! | `transactions` | tx id | height ‖ position in block |
//! | `receipts` | tx id | BCS `Receipt` |
//! | `audit` | audit index | BCS `AuditEntry` |
//! | `by_patient` | patient id ‖ audit index | (empty) |
//! | `by_holder` | holder institution id ‖ 0 ‖ audit index | (empty) |
//! | `by_grantee` | BCS(grantee) ‖ audit index of the grant | (empty) |
//! | `by_requester` | practitioner id ‖ audit index of the access decision | (empty) |
//!
//! The JMT needs dense versions while heights that change nothing write
//! none, so `jmt_versions` maps every height to the version in force.
//! Indexes are derived from blocks and can be rebuilt from them.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::path::Path;
use std::sync::RwLock;

use jmt::storage::{LeafNode, Node, NodeBatch, NodeKey, TreeReader};
use jmt::{KeyHash, OwnedValue, Version};
use medledger_contracts::Hash32;
use medledger_contracts::block::BlockHeader;
use medledger_contracts::encoding::{HashFunction, from_bytes, to_bytes};
use medledger_contracts::records::{AuditEntry, AuditEvent, GrantRecord, Receipt};
use medledger_contracts::state::{
    EMPTY_STATE_ROOT, SparseProof, StateError, StateKey, StateReader, WriteSet, hash_keys,
    root_of_version, value_with_proof, write_tree_version,
};
use medledger_contracts::types::{Grantee, PractitionerId, TxHash};
use rocksdb::{ColumnFamilyDescriptor, DB, Direction, IteratorMode, Options, WriteBatch};

const META: &str = "meta";
const HEADERS: &str = "headers";
const BLOCKS: &str = "blocks";
const CERTIFICATES: &str = "certificates";
const JMT_NODES: &str = "jmt_nodes";
const JMT_VALUES: &str = "jmt_values";
const JMT_VERSIONS: &str = "jmt_versions";
const STATE: &str = "state";
const TRANSACTIONS: &str = "transactions";
const RECEIPTS: &str = "receipts";
const AUDIT: &str = "audit";
const BY_PATIENT: &str = "by_patient";
const BY_HOLDER: &str = "by_holder";
const BY_GRANTEE: &str = "by_grantee";
const BY_REQUESTER: &str = "by_requester";

const FAMILIES: [&str; 15] = [
    META,
    HEADERS,
    BLOCKS,
    CERTIFICATES,
    JMT_NODES,
    JMT_VALUES,
    JMT_VERSIONS,
    STATE,
    TRANSACTIONS,
    RECEIPTS,
    AUDIT,
    BY_PATIENT,
    BY_HOLDER,
    BY_GRANTEE,
    BY_REQUESTER,
];

/// Memory for RocksDB's block cache, shared by all column families.
const BLOCK_CACHE_BYTES: usize = 256 * 1024 * 1024;

/// Largest stored record decoded (a block).
const RECORD_BYTES_MAX: usize = medledger_contracts::constants::BLOCK_BYTES_MAX;

/// One committed block as a node stored it: the unit of an export archive,
/// of a replay from a data directory and of the API's archive route.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ArchivedBlock {
    /// Its height.
    pub height: u64,
    /// BCS of the block (header and transactions).
    pub block: Vec<u8>,
    /// BCS of its commit certificate.
    pub certificate: Vec<u8>,
    /// The audit entries the node derived from it.
    pub audit_entries: Vec<AuditEntry>,
}

/// What went wrong on disk.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// RocksDB failed.
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    /// Stored bytes do not decode: the disk is corrupt.
    #[error("corrupt {what} in the store: {why}")]
    Corrupt {
        /// Which record.
        what: &'static str,
        /// Why.
        why: String,
    },
    /// The caller broke an invariant (e.g. committed a height out of order).
    #[error("{0}")]
    Invalid(String),
    /// The state tree failed.
    #[error("state: {0}")]
    State(String),
}

impl From<StoreError> for StateError {
    fn from(e: StoreError) -> Self {
        StateError::Storage(e.to_string())
    }
}

/// A state key and its value, as stored.
pub type StateEntry = (Vec<u8>, Vec<u8>);

/// The state after executing a block, computed but not yet written.
pub struct PreparedState {
    height: u64,
    version: Option<Version>,
    root: Hash32,
    nodes: NodeBatch,
    writes: WriteSet,
}

impl PreparedState {
    /// The state root after the block.
    pub fn root(&self) -> Hash32 {
        self.root
    }
}

/// Everything one committed block writes.
pub struct CommittedBlock<'a> {
    /// The header.
    pub header: &'a BlockHeader,
    /// The block's canonical bytes.
    pub block_bytes: &'a [u8],
    /// The commit certificate's canonical bytes.
    pub certificate_bytes: &'a [u8],
    /// The state after the block.
    pub state: PreparedState,
    /// Receipts, in transaction order.
    pub receipts: &'a [Receipt],
    /// Audit entries appended.
    pub audit_entries: &'a [AuditEntry],
}

/// The node's RocksDB store.
pub struct Store {
    db: DB,
    /// The chain's hash function: the JMT's hasher.
    hash: HashFunction,
    /// (last committed height, latest JMT version), `None` before genesis.
    tip: RwLock<Option<(u64, Option<Version>)>>,
}

fn be(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

fn corrupt(what: &'static str) -> impl Fn(String) -> StoreError {
    move |why| StoreError::Corrupt { what, why }
}

fn decode_u64(bytes: &[u8], what: &'static str) -> Result<u64, StoreError> {
    let arr: [u8; 8] = bytes
        .try_into()
        .map_err(|_| corrupt(what)("expected 8 bytes".into()))?;
    Ok(u64::from_be_bytes(arr))
}

/// Each memtable's key filter, as a share of the memtable's size (RocksDB's
/// default 64 MiB: a 1.3 MiB filter each).
const MEMTABLE_FILTER_RATIO: f64 = 0.02;

/// How the store compresses the table files it writes (the write-ahead log
/// stays uncompressed). Each node's own choice, not the chain's: RocksDB
/// reads files of every codec, so it may change between restarts, and new
/// files take the new one as compaction rewrites them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compression {
    /// Uncompressed.
    None,
    /// LZ4 at every level: a node's default (a quarter smaller on disk for
    /// no measurable replay cost; docs/scale.md, "Compression").
    #[default]
    Lz4,
    /// Zstandard (level 3) at every level.
    Zstd,
}

impl Compression {
    /// Every codec, in the order the config and the benchmark name them.
    pub const ALL: [Compression; 3] = [Self::None, Self::Lz4, Self::Zstd];

    /// The name in a node's config: `none`, `lz4` or `zstd`.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Lz4 => "lz4",
            Self::Zstd => "zstd",
        }
    }

    /// Parses [`Self::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    fn rocksdb(self) -> rocksdb::DBCompressionType {
        match self {
            Self::None => rocksdb::DBCompressionType::None,
            Self::Lz4 => rocksdb::DBCompressionType::Lz4,
            Self::Zstd => rocksdb::DBCompressionType::Zstd,
        }
    }
}

impl Store {
    /// Opens (or creates) the store in `dir` for a chain hashing with
    /// `hash`; refuses a store initialised for a chain hashing otherwise.
    /// Writes uncompressed files ([`Self::open_compressed`] chooses).
    pub fn open(dir: &Path, hash: HashFunction) -> Result<Self, StoreError> {
        Self::open_with(dir, Some(hash), Compression::None, false)
    }

    /// As [`Self::open`], writing table files with `compression`.
    pub fn open_compressed(
        dir: &Path,
        hash: HashFunction,
        compression: Compression,
    ) -> Result<Self, StoreError> {
        Self::open_with(dir, Some(hash), compression, false)
    }

    fn open_with(
        dir: &Path,
        expected: Option<HashFunction>,
        compression: Compression,
        read_only: bool,
    ) -> Result<Self, StoreError> {
        let mut options = Options::default();
        options.create_if_missing(!read_only);
        options.create_missing_column_families(!read_only);
        // One block cache for every family: the state tree's upper nodes and
        // the latest state are read for every transaction.
        let cache = rocksdb::Cache::new_lru_cache(BLOCK_CACHE_BYTES);
        let family_options = || {
            let mut table = rocksdb::BlockBasedOptions::default();
            table.set_block_cache(&cache);
            // Point lookups of keys that are absent (new grants, first-seen
            // transactions) stop at the filter instead of reading blocks.
            table.set_bloom_filter(10.0, false);
            let mut family = Options::default();
            family.set_block_based_table_factory(&table);
            // The same in the memtables, where the newest blocks' keys are:
            // without a filter an absent key costs a skiplist search in each
            // (a few percent of a node's CPU under load: issue 21's profile).
            family.set_memtable_prefix_bloom_ratio(MEMTABLE_FILTER_RATIO);
            family.set_memtable_whole_key_filtering(true);
            family.set_compression_type(compression.rocksdb());
            family
        };
        let families = FAMILIES
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(*name, family_options()));
        let db = if read_only {
            // Replays the log into memory and writes nothing; takes no lock.
            DB::open_cf_descriptors_read_only(&options, dir, families, false)?
        } else {
            DB::open_cf_descriptors(&options, dir, families)?
        };
        let mut store = Self {
            db,
            hash: expected.unwrap_or(HashFunction::Sha256),
            tip: RwLock::new(None),
        };
        // A store initialised before the hash was recorded is SHA-256's.
        let stored = match store.get(META, b"hash")? {
            Some(name) => Some(
                std::str::from_utf8(&name)
                    .ok()
                    .and_then(HashFunction::from_name)
                    .ok_or_else(|| corrupt("meta hash")("not a hash function's name".into()))?,
            ),
            None => store.get(META, b"genesis")?.map(|_| HashFunction::Sha256),
        };
        match (stored, expected) {
            (Some(stored), Some(expected)) if stored != expected => {
                return Err(StoreError::Invalid(format!(
                    "this store holds a chain hashing with {}, not {}: its genesis names another crypto suite",
                    stored.name(),
                    expected.name()
                )));
            }
            (Some(stored), None) => store.hash = stored,
            _ => {}
        }
        let tip = match store.get(META, b"height")? {
            None => None,
            Some(bytes) => {
                let height = decode_u64(&bytes, "meta height")?;
                Some((height, store.version_at(height)?))
            }
        };
        *store.tip.write().map_err(|_| poisoned())? = tip;
        Ok(store)
    }

    /// Opens the store in `dir` read-only, with the hash function it was
    /// initialised with (for tools that read blocks and need no genesis:
    /// `export`, `audit --data`). It writes nothing to the store (no flush,
    /// no new files) and takes no lock (a running node's store opens too,
    /// but its compactions may then remove files not yet read: tools read
    /// stopped nodes). Every write through it fails.
    pub fn open_existing(dir: &Path) -> Result<Self, StoreError> {
        // Never create one here: a mistyped path is an error, not an empty store.
        if !dir.join("CURRENT").is_file() {
            return Err(StoreError::Invalid(format!(
                "{} holds no store",
                dir.display()
            )));
        }
        Self::open_with(dir, None, Compression::default(), true)
    }

    fn cf(&self, name: &str) -> Result<&rocksdb::ColumnFamily, StoreError> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| StoreError::Invalid(format!("column family {name} missing")))
    }

    fn get(&self, family: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get_cf(self.cf(family)?, key)?)
    }

    fn tip(&self) -> Result<Option<(u64, Option<Version>)>, StoreError> {
        Ok(*self.tip.read().map_err(|_| poisoned())?)
    }

    /// The last committed height (0 = genesis only); `None` before genesis.
    pub fn height(&self) -> Result<Option<u64>, StoreError> {
        Ok(self.tip()?.map(|(h, _)| h))
    }

    /// Flushes the memtables and compacts every family down to its last
    /// level: the settled size of what is stored (benchmarks measure disk
    /// use after it), without the write-ahead log's and stale files' share.
    /// For a store no node has open (it blocks until done and needs free
    /// space for the files it rewrites). Files already in the last level
    /// keep the codec they were written with.
    pub fn compact(&self) -> Result<(), StoreError> {
        for name in FAMILIES {
            let family = self.cf(name)?;
            self.db.flush_cf(family)?;
            self.db
                .compact_range_cf(family, None::<&[u8]>, None::<&[u8]>);
        }
        Ok(())
    }

    /// The genesis hash this store was initialised with.
    pub fn genesis_hash(&self) -> Result<Option<Hash32>, StoreError> {
        self.get(META, b"genesis")?
            .map(|b| {
                <[u8; 32]>::try_from(b.as_slice())
                    .map(Hash32)
                    .map_err(|_| corrupt("genesis hash")("expected 32 bytes".into()))
            })
            .transpose()
    }

    fn version_at(&self, height: u64) -> Result<Option<Version>, StoreError> {
        let cf = self.cf(JMT_VERSIONS)?;
        let mut iter = self
            .db
            .iterator_cf(cf, IteratorMode::From(&be(height), Direction::Reverse));
        match iter.next() {
            None => Ok(None),
            Some(item) => {
                let (_, value) = item?;
                Ok(Some(decode_u64(&value, "jmt version")?))
            }
        }
    }

    /// Writes the genesis state as height 0. Refuses a store that already has one.
    pub fn initialize(
        &self,
        genesis_hash: Hash32,
        writes: &WriteSet,
    ) -> Result<Hash32, StoreError> {
        if self.tip()?.is_some() {
            return Err(StoreError::Invalid(
                "the store already holds a genesis".into(),
            ));
        }
        let state = self.prepare(0, writes)?;
        let root = state.root;
        let mut batch = WriteBatch::default();
        self.put_state(&mut batch, &state)?;
        batch.put_cf(self.cf(META)?, b"genesis", genesis_hash.0);
        batch.put_cf(self.cf(META)?, b"hash", self.hash.name());
        batch.put_cf(self.cf(META)?, b"height", be(0));
        self.write(batch)?;
        *self.tip.write().map_err(|_| poisoned())? = Some((0, state.version));
        Ok(root)
    }

    /// Computes the state root after applying `writes` on top of the last
    /// committed state, as the state of `height`, without writing anything.
    pub fn prepare(&self, height: u64, writes: &WriteSet) -> Result<PreparedState, StoreError> {
        let latest = self.tip()?.and_then(|(_, v)| v);
        if writes.is_empty() {
            let root = match latest {
                None => EMPTY_STATE_ROOT,
                Some(v) => self.root_of_version(v)?,
            };
            return Ok(PreparedState {
                height,
                version: latest,
                root,
                nodes: NodeBatch::default(),
                writes: WriteSet::default(),
            });
        }
        let version = latest.map_or(0, |v| v + 1);
        let (root, update) =
            write_tree_version(self.hash, self, hash_keys(self.hash, writes), version)
                .map_err(|e| StoreError::State(e.to_string()))?;
        Ok(PreparedState {
            height,
            version: Some(version),
            root: Hash32(root.0),
            nodes: update.node_batch,
            writes: writes.clone(),
        })
    }

    fn root_of_version(&self, version: Version) -> Result<Hash32, StoreError> {
        root_of_version(self.hash, self, version).map_err(|e| StoreError::State(e.to_string()))
    }

    fn put_state(&self, batch: &mut WriteBatch, state: &PreparedState) -> Result<(), StoreError> {
        let nodes = self.cf(JMT_NODES)?;
        for (key, node) in state.nodes.nodes() {
            batch.put_cf(nodes, to_bytes(key), to_bytes(node));
        }
        let values = self.cf(JMT_VALUES)?;
        for ((version, key_hash), value) in state.nodes.values() {
            let mut key = key_hash.0.to_vec();
            key.extend_from_slice(&be(*version));
            batch.put_cf(values, key, to_bytes(value));
        }
        if let Some(version) = state.version {
            batch.put_cf(self.cf(JMT_VERSIONS)?, be(state.height), be(version));
        }
        let latest = self.cf(STATE)?;
        for (key, value) in &state.writes.0 {
            match value {
                Some(value) => batch.put_cf(latest, key, value),
                None => batch.delete_cf(latest, key),
            }
        }
        Ok(())
    }

    /// Writes a committed block and everything derived from it in one synced
    /// batch: after this returns, a crash cannot lose the block.
    pub fn commit(&self, block: CommittedBlock<'_>) -> Result<(), StoreError> {
        let height = block.header.height;
        let expected = self.tip()?.map(|(h, _)| h + 1);
        if expected != Some(height) {
            return Err(StoreError::Invalid(format!(
                "block {height} committed out of order (expected {expected:?})"
            )));
        }
        if block.state.height != height {
            return Err(StoreError::Invalid(format!(
                "state prepared for height {} committed at {height}",
                block.state.height
            )));
        }
        let mut batch = WriteBatch::default();
        self.put_state(&mut batch, &block.state)?;
        let h = be(height);
        batch.put_cf(self.cf(HEADERS)?, h, to_bytes(block.header));
        batch.put_cf(self.cf(BLOCKS)?, h, block.block_bytes);
        batch.put_cf(self.cf(CERTIFICATES)?, h, block.certificate_bytes);
        let txs = self.cf(TRANSACTIONS)?;
        let receipts = self.cf(RECEIPTS)?;
        for (position, receipt) in block.receipts.iter().enumerate() {
            // A copy of a transaction already committed is rejected as a
            // duplicate and changes nothing; indexing it would replace the
            // first commit's receipt and location, so a proposer that puts
            // an old release in its block again could make the node answer
            // that the release was refused. Likewise a copy outside its
            // validity window (expired: its id may have been committed
            // before; not yet within it: it may be committed later). Such
            // a copy stays in its block.
            if receipt.outcome.leaves_no_trace() {
                continue;
            }
            let mut location = h.to_vec();
            location.extend_from_slice(&be(position as u64));
            batch.put_cf(txs, receipt.tx.0.0, location);
            batch.put_cf(receipts, receipt.tx.0.0, to_bytes(receipt));
        }
        let audit = self.cf(AUDIT)?;
        let by_patient = self.cf(BY_PATIENT)?;
        let by_holder = self.cf(BY_HOLDER)?;
        let by_grantee = self.cf(BY_GRANTEE)?;
        let by_requester = self.cf(BY_REQUESTER)?;
        for entry in block.audit_entries {
            let index = be(entry.index);
            batch.put_cf(audit, index, to_bytes(entry));
            let mut key = entry.patient.0.0.to_vec();
            key.extend_from_slice(&index);
            batch.put_cf(by_patient, key, []);
            if let AuditEvent::AccessDecided { holder, .. } | AuditEvent::Released { holder, .. } =
                &entry.event
            {
                let mut key = holder.as_str().as_bytes().to_vec();
                key.push(0);
                key.extend_from_slice(&index);
                batch.put_cf(by_holder, key, []);
            }
            if let AuditEvent::AccessDecided { requester, .. } = &entry.event {
                let mut key = requester.0.0.to_vec();
                key.extend_from_slice(&index);
                batch.put_cf(by_requester, key, []);
            }
            if let AuditEvent::Granted { grant } = &entry.event {
                // The grantee is in the grant record this block wrote.
                let record = block
                    .state
                    .writes
                    .0
                    .get(&StateKey::Grant(*grant).to_bytes())
                    .and_then(|v| v.as_deref())
                    .map(|v| from_bytes::<GrantRecord>(v, RECORD_BYTES_MAX))
                    .transpose()
                    .map_err(|e| corrupt("grant record")(e.to_string()))?;
                if let Some(record) = record {
                    let mut key = to_bytes(&record.terms.grantee);
                    key.extend_from_slice(&index);
                    batch.put_cf(by_grantee, key, []);
                }
            }
        }
        batch.put_cf(self.cf(META)?, b"height", h);
        self.write(batch)?;
        *self.tip.write().map_err(|_| poisoned())? = Some((height, block.state.version));
        Ok(())
    }

    fn write(&self, batch: WriteBatch) -> Result<(), StoreError> {
        let mut options = rocksdb::WriteOptions::default();
        options.set_sync(true);
        Ok(self.db.write_opt(batch, &options)?)
    }

    /// A committed header.
    pub fn header(&self, height: u64) -> Result<Option<BlockHeader>, StoreError> {
        self.get(HEADERS, &be(height))?
            .map(|b| from_bytes(&b, RECORD_BYTES_MAX).map_err(|e| corrupt("header")(e.to_string())))
            .transpose()
    }

    /// A committed block's canonical bytes.
    pub fn block_bytes(&self, height: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(BLOCKS, &be(height))
    }

    /// A committed block's certificate bytes.
    pub fn certificate_bytes(&self, height: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(CERTIFICATES, &be(height))
    }

    /// A committed transaction's receipt and the height that committed it.
    pub fn receipt(&self, tx: &TxHash) -> Result<Option<(u64, Receipt)>, StoreError> {
        let Some(location) = self.get(TRANSACTIONS, &tx.0.0)? else {
            return Ok(None);
        };
        let height = decode_u64(
            location.get(..8).unwrap_or_default(),
            "transaction location",
        )?;
        let receipt = self
            .get(RECEIPTS, &tx.0.0)?
            .ok_or_else(|| corrupt("receipt")("missing for an indexed transaction".into()))?;
        let receipt = from_bytes(&receipt, RECORD_BYTES_MAX)
            .map_err(|e| corrupt("receipt")(e.to_string()))?;
        Ok(Some((height, receipt)))
    }

    /// Height `height` as an archive record: its block's and certificate's
    /// bytes exactly as stored, and the audit entries it made. A committed
    /// height with any part missing is a corrupt store.
    pub fn archived_block(&self, height: u64) -> Result<ArchivedBlock, StoreError> {
        let missing = |what| StoreError::Corrupt {
            what,
            why: format!("missing at height {height}"),
        };
        let block = self.block_bytes(height)?.ok_or_else(|| missing("block"))?;
        let certificate = self
            .certificate_bytes(height)?
            .ok_or_else(|| missing("certificate"))?;
        let header = self.header(height)?.ok_or_else(|| missing("header"))?;
        let before = match height {
            1 => 0,
            h => self.header(h - 1)?.map_or(0, |p| p.audit_size),
        };
        let audit_entries = (before..header.audit_size)
            .map(|i| self.audit_entry(i)?.ok_or_else(|| missing("audit entry")))
            .collect::<Result<_, _>>()?;
        Ok(ArchivedBlock {
            height,
            block,
            certificate,
            audit_entries,
        })
    }

    /// An audit entry by index.
    pub fn audit_entry(&self, index: u64) -> Result<Option<AuditEntry>, StoreError> {
        self.get(AUDIT, &be(index))?
            .map(|b| {
                from_bytes(&b, RECORD_BYTES_MAX).map_err(|e| corrupt("audit entry")(e.to_string()))
            })
            .transpose()
    }

    /// Audit indexes of one patient, oldest first.
    pub fn audit_indexes_for_patient(&self, patient: &Hash32) -> Result<Vec<u64>, StoreError> {
        self.indexes_with_prefix(BY_PATIENT, &patient.0)
    }

    /// Audit indexes of accesses at one holder institution, oldest first.
    pub fn audit_indexes_for_holder(&self, holder: &str) -> Result<Vec<u64>, StoreError> {
        let mut prefix = holder.as_bytes().to_vec();
        prefix.push(0);
        self.indexes_with_prefix(BY_HOLDER, &prefix)
    }

    /// Audit indexes of grants made to a grantee (an institution or a
    /// practitioner), oldest first.
    pub fn audit_indexes_for_grantee(&self, grantee: &Grantee) -> Result<Vec<u64>, StoreError> {
        self.indexes_with_prefix(BY_GRANTEE, &to_bytes(grantee))
    }

    /// Audit indexes of access decisions on a practitioner's requests, oldest first.
    pub fn audit_indexes_for_requester(
        &self,
        practitioner: &PractitionerId,
    ) -> Result<Vec<u64>, StoreError> {
        self.indexes_with_prefix(BY_REQUESTER, &practitioner.0.0)
    }

    fn indexes_with_prefix(&self, family: &str, prefix: &[u8]) -> Result<Vec<u64>, StoreError> {
        let cf = self.cf(family)?;
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(cf, IteratorMode::From(prefix, Direction::Forward))
        {
            let (key, _) = item?;
            let Some(rest) = key.strip_prefix(prefix) else {
                break;
            };
            out.push(decode_u64(rest, "index key")?);
        }
        Ok(out)
    }

    /// Latest state entries whose key starts with `prefix` (e.g. every
    /// institution record), in key order.
    pub fn latest_with_prefix(&self, prefix: &[u8]) -> Result<Vec<StateEntry>, StoreError> {
        let cf = self.cf(STATE)?;
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(cf, IteratorMode::From(prefix, Direction::Forward))
        {
            let (key, value) = item?;
            if !key.starts_with(prefix) {
                break;
            }
            out.push((key.to_vec(), value.to_vec()));
        }
        Ok(out)
    }

    /// The state root as of `height`.
    pub fn state_root_at(&self, height: u64) -> Result<Hash32, StoreError> {
        match self.version_at(height)? {
            None => Ok(EMPTY_STATE_ROOT),
            Some(v) => self.root_of_version(v),
        }
    }

    /// A value as of `height` with its proof against that height's root.
    pub fn get_with_proof(
        &self,
        key: &StateKey,
        height: u64,
    ) -> Result<(Option<Vec<u8>>, SparseProof), StoreError> {
        let version = self
            .version_at(height)?
            .ok_or_else(|| StoreError::Invalid(format!("no state at height {height}")))?;
        value_with_proof(self.hash, self, key, version)
            .map_err(|e| StoreError::State(e.to_string()))
    }
}

fn poisoned() -> StoreError {
    StoreError::Invalid("store lock poisoned".into())
}

impl TreeReader for Store {
    fn get_node_option(&self, node_key: &NodeKey) -> anyhow::Result<Option<Node>> {
        match self.get(JMT_NODES, &to_bytes(node_key))? {
            None => Ok(None),
            Some(bytes) => Ok(Some(
                from_bytes(&bytes, RECORD_BYTES_MAX)
                    .map_err(|e| anyhow::anyhow!("JMT node: {e}"))?,
            )),
        }
    }

    fn get_value_option(
        &self,
        max_version: Version,
        key_hash: KeyHash,
    ) -> anyhow::Result<Option<OwnedValue>> {
        let mut seek = key_hash.0.to_vec();
        seek.extend_from_slice(&be(max_version));
        let cf = self.cf(JMT_VALUES)?;
        let mut iter = self
            .db
            .iterator_cf(cf, IteratorMode::From(&seek, Direction::Reverse));
        match iter.next() {
            None => Ok(None),
            Some(item) => {
                let (key, value) = item?;
                if key.get(..32) != Some(&key_hash.0[..]) {
                    return Ok(None);
                }
                Ok(from_bytes::<Option<Vec<u8>>>(&value, RECORD_BYTES_MAX)
                    .map_err(|e| anyhow::anyhow!("JMT value: {e}"))?)
            }
        }
    }

    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
        // Only JMT's restore and migration paths ask for this; the node uses neither.
        anyhow::bail!("get_rightmost_leaf is not supported by the RocksDB store")
    }
}

impl StateReader for Store {
    /// The latest committed value: one point lookup, not a JMT walk.
    fn read(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self.get(STATE, key)?)
    }
}
