//! The RocksDB store against the in-memory reference (`JmtStore`): the same
//! writes give the same roots and proofs; commits are atomic, ordered and
//! survive reopening; a store refuses a second genesis.

use medledger_contracts::Hash32;
use medledger_contracts::block::BlockHeader;
use medledger_contracts::records::{AuditEntry, AuditEvent, BlockRef, Outcome, Receipt};
use medledger_contracts::state::{JmtStore, StateKey, StateReader, WriteSet, verify_state_proof};
use medledger_contracts::types::{ChainId, InstitutionId, PatientId, Timestamp, TxHash};
use medledger_store::{CommittedBlock, Store};

fn writes(pairs: &[(&[u8], &[u8])]) -> WriteSet {
    let mut w = WriteSet::default();
    for (k, v) in pairs {
        w.0.insert(k.to_vec(), Some(v.to_vec()));
    }
    w
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

fn commit(
    store: &Store,
    height: u64,
    w: &WriteSet,
    patient: PatientId,
    audit_index: u64,
) -> Hash32 {
    let state = store.prepare(height, w).unwrap();
    let root = state.root();
    let tx = TxHash(Hash32([u8::try_from(height).unwrap(); 32]));
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
    let h = header(height, root, audit_index + 1);
    store
        .commit(CommittedBlock {
            header: &h,
            block_bytes: b"block",
            certificate_bytes: b"certificate",
            state,
            receipts: &[receipt],
            audit_entries: &[entry],
        })
        .unwrap();
    root
}

#[test]
fn roots_and_proofs_match_the_in_memory_reference_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let patient = PatientId(Hash32([9; 32]));
    let genesis = writes(&[(b"a", b"1"), (b"b", b"2")]);
    let blocks = [
        writes(&[(b"a", b"10"), (b"c", b"3")]),
        WriteSet::default(), // a height that writes nothing
        writes(&[(b"d", b"4")]),
    ];
    let mut reference = JmtStore::new();
    let reference_genesis = reference.commit(&genesis, 0).unwrap();
    let mut roots = Vec::new();
    {
        let store = Store::open(dir.path()).unwrap();
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
                reference.commit(w, height).unwrap(),
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
    let store = Store::open(dir.path()).unwrap();
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
    verify_state_proof(roots[0], &key, value.as_deref(), &proof).unwrap();
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
}
