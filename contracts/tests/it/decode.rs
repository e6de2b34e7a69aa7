//! Decoding outside bytes never panics, and everything that decodes re-encodes to the same bytes.

use proptest::prelude::*;

use medledger_contracts::transaction::*;
use medledger_contracts::types::*;

use crate::world::*;

fn sample_transactions() -> Vec<Vec<u8>> {
    let mut w = World::new();
    let p = w.patient("alice");
    let terms = w.terms(
        p,
        Grantee::Institution(inst("hosp-b")),
        &[Category::Imaging, Category::LabReports],
        Holders::Any,
    );
    vec![
        w.sign(
            Signer::Patient(p),
            &key("alice"),
            Payload::Grant(terms.clone()),
        )
        .to_bytes(),
        w.sign(
            Signer::Patient(p),
            &key("alice"),
            Payload::RequestConsent(terms),
        )
        .to_bytes(),
        w.sign(Signer::Patient(p), &key("alice"), Payload::RegisterPatient)
            .to_bytes(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let chain = crate::world::chain("medledger-test");
        if let Ok(tx) = SignedTransaction::from_bytes(&bytes) {
            prop_assert_eq!(tx.to_bytes(), bytes, "decoding is canonical");
            let _ = tx.verify(&chain);
        }
    }

    #[test]
    fn mutated_transactions_never_panic_and_never_verify_unchanged(
        which in 0usize..3,
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        truncate in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let chain = crate::world::chain("medledger-test");
        let mut bytes = sample_transactions()[which].clone();
        let original = bytes.clone();
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        if let Some(cut) = truncate {
            bytes.truncate(cut.index(bytes.len()));
        }
        if bytes != original
            && let Ok(tx) = SignedTransaction::decode_and_verify(&bytes, &chain)
        {
            // Only possible if the edit hit nothing signed or canonical — which does not exist.
            prop_assert!(false, "a modified transaction verified: {:?}", tx);
        }
    }
}

#[test]
fn oversized_and_trailing_input_is_refused_with_a_clear_error() {
    let mut bytes = sample_transactions()[0].clone();
    bytes.push(0);
    let err = SignedTransaction::from_bytes(&bytes).unwrap_err();
    assert!(err.to_string().contains("does not decode"), "{err}");
    let huge = vec![0u8; medledger_contracts::constants::TRANSACTION_BYTES_MAX + 1];
    let err = SignedTransaction::from_bytes(&huge).unwrap_err();
    assert!(err.to_string().contains("more than"), "{err}");
}
