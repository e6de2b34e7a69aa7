//! The RocksDB store against the in-memory reference (`JmtStore`): the same
//! writes give the same roots and proofs; commits are atomic, ordered and
//! survive reopening; a store refuses a second genesis.

use medledger_contracts::Hash32;
use medledger_contracts::block::BlockHeader;
use medledger_contracts::encoding::{BoundedVec, HashFunction};
use medledger_contracts::records::{
    AuditEntry, AuditEvent, BlockRef, GrantRecord, Outcome, Receipt, Rejection,
};
use medledger_contracts::state::{JmtStore, StateKey, StateReader, WriteSet, verify_state_proof};
use medledger_contracts::transaction::Signer;
use medledger_contracts::types::{
    Category, ChainId, GrantTerms, Grantee, Holders, InstitutionId, PatientId, Purpose, Timestamp,
    TxHash,
};
use medledger_store::{CommittedBlock, Compression, Store};

fn writes(pairs: &[(&[u8], &[u8])]) -> WriteSet {
    let mut w = WriteSet::default();
    for (k, v) in pairs {
        w.0.insert(k.to_vec(), Some(v.to_vec()));
    }
    w
}

fn second_hospital() -> Grantee {
    Grantee::Institution(InstitutionId::new("city-second-hospital").unwrap())
}

fn header(height: u64, state_root: Hash32, audit_size: u64) -> BlockHeader {
    BlockHeader {
        chain_id: ChainId::new("store-test").unwrap(),
        height,
        time: Timestamp(1_000 + height),
        previous_hash: Hash32([0; 32]),
        transaction_root: Hash32([1; 32]),
        state_root,
        audit_root: Hash32([2; 32]),
        audit_size,
        validator_set_hash: Hash32([3; 32]),
        proposer: InstitutionId::new("city-first-hospital").unwrap(),
    }
}

fn grant_record(patient: PatientId, grantee: Grantee, height: u64) -> Vec<u8> {
    let terms = GrantTerms {
        patient,
        grantee,
        categories: BoundedVec::new(vec![Category::LabReports]).unwrap(),
        holders: Holders::Any,
        purpose: Purpose::Treatment,
        not_before: Timestamp(0),
        expires_at: Timestamp(u64::MAX),
        records_from: None,
        records_until: None,
        sensitive_included: BoundedVec::default(),
        notice_hash: Hash32([5; 32]),
    };
    bcs::to_bytes(&GrantRecord {
        terms,
        granted_by: Signer::Patient(patient),
        granted_at: BlockRef {
            height,
            time: Timestamp(1_000 + height),
        },
        answers: None,
        ended: None,
    })
    .unwrap()
}

fn grant_id(height: u64) -> TxHash {
    TxHash(Hash32([u8::try_from(height).unwrap(); 32]))
}

/// The block's writes plus the grant record it makes (as the state machine
/// would write it): each block that writes anything grants the second
/// hospital access.
fn with_grant(w: &WriteSet, patient: PatientId, height: u64) -> WriteSet {
    if w.is_empty() {
        return WriteSet::default();
    }
    let mut w = w.clone();
    w.0.insert(
        StateKey::Grant(grant_id(height)).to_bytes(),
        Some(grant_record(patient, second_hospital(), height)),
    );
    w
}

fn commit(
    store: &Store,
    height: u64,
    w: &WriteSet,
    patient: PatientId,
    audit_index: u64,
) -> Hash32 {
    let tx = grant_id(height);
    let state = store
        .prepare(height, &with_grant(w, patient, height))
        .unwrap();
    let root = state.root();
    let receipt = Receipt {
        tx,
        outcome: Outcome::Applied,
        audit_indexes: vec![audit_index],
    };
    let entry = AuditEntry {
        index: audit_index,
        at: BlockRef {
            height,
            time: Timestamp(1_000 + height),
        },
        tx,
        patient,
        event: AuditEvent::Granted { grant: tx },
    };
    commit_block(
        store,
        header(height, root, audit_index + 1),
        state,
        &[receipt],
        &[entry],
    );
    root
}

fn commit_block(
    store: &Store,
    header: BlockHeader,
    state: medledger_store::PreparedState,
    receipts: &[Receipt],
    audit_entries: &[AuditEntry],
) {
    store
        .commit(CommittedBlock {
            header: &header,
            block_bytes: b"block",
            certificate_bytes: b"certificate",
            state,
            receipts,
            audit_entries,
        })
        .unwrap();
}

/// DESIGN §7a: a proposer that puts an already committed transaction in its
/// block again gets it rejected as a duplicate; the node must go on
/// answering with the first commit's receipt and height, not the copy's.
#[test]
fn a_duplicate_copy_in_a_later_block_does_not_replace_the_first_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), HashFunction::Sha256).unwrap();
    let patient = PatientId(Hash32([9; 32]));
    store
        .initialize(Hash32([7; 32]), &writes(&[(b"a", b"1")]))
        .unwrap();
    commit(&store, 1, &WriteSet::default(), patient, 0);
    let first = grant_id(1);
    let state = store.prepare(2, &WriteSet::default()).unwrap();
    let copy = Receipt {
        tx: first,
        outcome: Outcome::Rejected(Rejection::Duplicate),
        audit_indexes: vec![],
    };
    commit_block(&store, header(2, state.root(), 1), state, &[copy], &[]);
    let (height, receipt) = store.receipt(&first).unwrap().unwrap();
    assert_eq!(height, 1);
    assert_eq!(receipt.outcome, Outcome::Applied);
    assert_eq!(receipt.audit_indexes, vec![0]);
}

#[test]
fn roots_and_proofs_match_the_in_memory_reference_and_survive_reopening() {
    roots_and_proofs_match_and_survive_reopening(HashFunction::Sha256);
}

/// The same on a chain of the `sm2-sm3` suite: the tree hashes with SM3,
/// and the store refuses to be opened as a SHA-256 chain's (and the other
/// way round).
#[test]
fn an_sm3_store_matches_its_reference_and_refuses_to_open_as_sha256() {
    let dir = roots_and_proofs_match_and_survive_reopening(HashFunction::Sm3);
    let error = Store::open(dir.path(), HashFunction::Sha256)
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("hashing with sm3, not sha256"), "{error}");
    let sha = tempfile::tempdir().unwrap();
    Store::open(sha.path(), HashFunction::Sha256)
        .unwrap()
        .initialize(Hash32([7; 32]), &writes(&[(b"a", b"1")]))
        .unwrap();
    assert!(Store::open(sha.path(), HashFunction::Sm3).is_err());
    // `open_existing` takes the recorded function, and creates nothing.
    let existing = Store::open_existing(dir.path()).unwrap();
    assert!(existing.state_root_at(1).is_ok());
    drop(existing);
    // It opens read-only: beside a store another handle holds open (a
    // running node's), which a writer cannot, and nothing it is asked to
    // write is written.
    let blank = tempfile::tempdir().unwrap();
    drop(Store::open(blank.path(), HashFunction::Sha256).unwrap());
    let running = Store::open(blank.path(), HashFunction::Sha256).unwrap();
    assert!(Store::open(blank.path(), HashFunction::Sha256).is_err());
    let reader = Store::open_existing(blank.path()).unwrap();
    assert!(
        reader
            .initialize(Hash32([8; 32]), &writes(&[(b"b", b"2")]))
            .is_err()
    );
    drop(reader);
    running
        .initialize(Hash32([8; 32]), &writes(&[(b"b", b"2")]))
        .unwrap();
    let empty = tempfile::tempdir().unwrap();
    assert!(Store::open_existing(empty.path()).is_err());
    assert!(!empty.path().join("CURRENT").exists());
}

fn roots_and_proofs_match_and_survive_reopening(hash: HashFunction) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let patient = PatientId(Hash32([9; 32]));
    let genesis = writes(&[(b"a", b"1"), (b"b", b"2")]);
    let blocks = [
        writes(&[(b"a", b"10"), (b"c", b"3")]),
        WriteSet::default(), // a height that writes nothing
        writes(&[(b"d", b"4")]),
    ];
    let mut reference = JmtStore::new(hash);
    let reference_genesis = reference.commit(&genesis, 0).unwrap();
    let mut roots = Vec::new();
    {
        let store = Store::open(dir.path(), hash).unwrap();
        assert_eq!(store.height().unwrap(), None);
        assert_eq!(
            store.initialize(Hash32([7; 32]), &genesis).unwrap(),
            reference_genesis
        );
        assert!(
            store.initialize(Hash32([7; 32]), &genesis).is_err(),
            "second genesis"
        );
        for (i, w) in blocks.iter().enumerate() {
            let height = i as u64 + 1;
            let root = commit(&store, height, w, patient, i as u64);
            assert_eq!(
                root,
                reference
                    .commit(&with_grant(w, patient, height), height)
                    .unwrap(),
                "height {height}"
            );
            roots.push(root);
        }
        // Out of order is refused and changes nothing.
        let state = store.prepare(9, &writes(&[(b"z", b"9")])).unwrap();
        let h = header(9, state.root(), 0);
        assert!(
            store
                .commit(CommittedBlock {
                    header: &h,
                    block_bytes: b"",
                    certificate_bytes: b"",
                    state,
                    receipts: &[],
                    audit_entries: &[],
                })
                .is_err()
        );
    }
    // Reopen: everything committed is there, nothing else.
    let store = Store::open(dir.path(), hash).unwrap();
    assert_eq!(store.height().unwrap(), Some(3));
    assert_eq!(store.genesis_hash().unwrap(), Some(Hash32([7; 32])));
    assert_eq!(store.read(b"a").unwrap(), Some(b"10".to_vec()));
    assert_eq!(store.read(b"z").unwrap(), None);
    for (i, root) in roots.iter().enumerate() {
        let height = i as u64 + 1;
        assert_eq!(&store.state_root_at(height).unwrap(), root);
        assert_eq!(store.header(height).unwrap().unwrap().state_root, *root);
        assert_eq!(
            store.certificate_bytes(height).unwrap().unwrap(),
            b"certificate"
        );
    }
    // Proofs at an old height verify against that height's root.
    let key = StateKey::Patient(patient);
    let (value, proof) = store.get_with_proof(&key, 1).unwrap();
    verify_state_proof(hash, roots[0], &key, value.as_deref(), &proof).unwrap();
    // Receipts, audit entries and the patient index.
    let (height, receipt) = store.receipt(&TxHash(Hash32([2; 32]))).unwrap().unwrap();
    assert_eq!((height, receipt.audit_indexes), (2, vec![1]));
    assert_eq!(
        store.audit_indexes_for_patient(&patient.0).unwrap(),
        vec![0, 1, 2]
    );
    assert_eq!(store.audit_entry(2).unwrap().unwrap().at.height, 3);
    assert!(
        store
            .audit_indexes_for_patient(&Hash32([1; 32]))
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.audit_indexes_for_grantee(&second_hospital()).unwrap(),
        vec![0, 2],
        "the empty block wrote no grant record"
    );
    let other = Grantee::Institution(InstitutionId::new("city-first-hospital").unwrap());
    assert!(store.audit_indexes_for_grantee(&other).unwrap().is_empty());
    dir
}

/// A node's `storage_compression` is its own: a store written with one
/// codec reopens under each of the others, its blocks, state and proofs
/// intact, and a full compaction keeps the same state root. (RocksDB does
/// not rewrite its last level to change codec: each file keeps the one it
/// was written with.)
#[test]
fn a_store_written_with_one_codec_reads_under_every_other() {
    let dir = tempfile::tempdir().unwrap();
    let patient = PatientId(Hash32([9; 32]));
    let mut root = Hash32([0; 32]);
    for (round, compression) in Compression::ALL.into_iter().enumerate() {
        let store = Store::open_compressed(dir.path(), HashFunction::Sha256, compression).unwrap();
        let height = round as u64 + 1;
        if round == 0 {
            store
                .initialize(Hash32([7; 32]), &writes(&[(b"a", b"1")]))
                .unwrap();
        } else {
            // What the earlier codec wrote is still there.
            assert_eq!(store.height().unwrap(), Some(height - 1));
            assert_eq!(store.state_root_at(height - 1).unwrap(), root);
            assert!(store.block_bytes(height - 1).unwrap().is_some());
        }
        // (A block that writes something also writes its grant: `with_grant`.)
        let block = writes(&[(b"round", &u8::try_from(round).unwrap().to_le_bytes())]);
        root = commit(&store, height, &block, patient, round as u64);
        store.compact().unwrap();
        assert_eq!(store.state_root_at(height).unwrap(), root);
        let (value, _proof) = store
            .get_with_proof(&StateKey::Grant(grant_id(height)), height)
            .unwrap();
        assert!(value.is_some(), "{}", compression.name());
    }
    assert_eq!(Compression::from_name("zstd"), Some(Compression::Zstd));
    assert_eq!(Compression::from_name("snappy"), None);
}
