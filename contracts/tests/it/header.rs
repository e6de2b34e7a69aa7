//! Block rule 3: one function builds a block's header from its parent and
//! its execution, and one check compares a stated header with it.

use medledger_contracts::block::{BlockHeader, Parent};
use medledger_contracts::encoding::Hash32;
use medledger_contracts::transaction::{Payload, Signer};
use medledger_contracts::types::{PatientId, Timestamp};

use crate::world::{World, hash, inst, key};

#[test]
fn a_header_follows_from_its_parent_and_execution_and_every_changed_field_is_named() {
    let mut w = World::new();
    let patient = key("wang");
    let id = PatientId::from_key(hash(), &patient.public_key());
    let tx = w.sign(Signer::Patient(id), &patient, Payload::RegisterPatient);
    let parent = Parent {
        hash: w
            .ledger
            .headers()
            .last()
            .map_or(Hash32([0; 32]), |h| h.hash(hash())),
        height: w.ledger.height(),
    };
    let time = Timestamp(w.ledger.time().0 + 1_000);
    let proposer = inst("hosp-a");
    let (header, execution) = w.ledger.execute(time, &proposer, vec![tx]).unwrap();

    // The in-memory ledger's header is the one `following` builds.
    let built = BlockHeader::following(
        &w.chain,
        parent,
        time,
        &proposer,
        &execution,
        header.state_root,
    );
    assert_eq!(built, header);
    assert_eq!(built.height, parent.height + 1);
    assert_eq!(built.previous_hash, parent.hash);
    assert_eq!(header.check_against(hash(), &built), Ok(()));

    fn flip(h: &mut Hash32) {
        h.0[0] ^= 1;
    }
    type Change = Box<dyn Fn(&mut BlockHeader)>;
    let cases: Vec<(&str, Change)> = vec![
        (
            "transaction root",
            Box::new(|h| flip(&mut h.transaction_root)),
        ),
        ("state root", Box::new(|h| flip(&mut h.state_root))),
        ("audit-log root", Box::new(|h| flip(&mut h.audit_root))),
        ("audit-log root", Box::new(|h| h.audit_size += 1)),
        (
            "validator set",
            Box::new(|h| flip(&mut h.validator_set_hash)),
        ),
        ("header", Box::new(|h| h.time = Timestamp(h.time.0 + 1))),
        ("header", Box::new(|h| flip(&mut h.previous_hash))),
        ("header", Box::new(|h| h.proposer = inst("hosp-b"))),
        ("header", Box::new(|h| h.height += 1)),
    ];
    for (field, change) in cases {
        let mut stated = header.clone();
        change(&mut stated);
        let mismatch = stated.check_against(hash(), &built).unwrap_err();
        assert_eq!(mismatch.field, field, "{mismatch}");
        assert_ne!(mismatch.stated, mismatch.computed);
    }
}

/// Issue 21: the transaction root covers each transaction as signed, so
/// the same transactions with one signature altered have another root
/// (and a certified header fixes the signatures its block stores).
#[test]
fn the_transaction_root_covers_the_signatures() {
    use medledger_contracts::crypto::Signature;
    use medledger_contracts::state_machine::transaction_root;

    let mut w = World::new();
    let patient = key("li");
    let id = PatientId::from_key(hash(), &patient.public_key());
    let tx = w.sign(Signer::Patient(id), &patient, Payload::RegisterPatient);
    let tx_id = tx.id(&w.chain);
    let mut altered = tx.clone();
    let Signature::Ed25519 { r, .. } = &mut altered.signature else {
        unreachable!("an Ed25519 signature")
    };
    r[0] ^= 1;
    assert_eq!(
        altered.id(&w.chain),
        tx_id,
        "the id leaves out the signature"
    );
    assert_ne!(
        altered.signed_hash(hash(), &tx_id),
        tx.signed_hash(hash(), &tx_id)
    );
    assert_ne!(
        transaction_root(hash(), &[altered.signed_hash(hash(), &tx_id)]),
        transaction_root(hash(), &[tx.signed_hash(hash(), &tx_id)])
    );
    // The root the ledger computes is over the signed hashes.
    let verified = tx.clone().verify(&w.chain).unwrap();
    assert_eq!(verified.signed_hash(), tx.signed_hash(hash(), &tx_id));
}
