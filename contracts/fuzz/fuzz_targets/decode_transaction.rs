//! Fuzzes what a node does with transaction bytes from outside: strict decode,
//! then verification. Neither may panic; anything that decodes must re-encode
//! to the same bytes (canonical form).
#![no_main]

use libfuzzer_sys::fuzz_target;
use medledger_contracts::transaction::SignedTransaction;
use medledger_contracts::types::ChainId;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(tx) = SignedTransaction::from_bytes(bytes) {
        assert_eq!(tx.to_bytes(), bytes, "decoding accepted non-canonical bytes");
        if let Ok(chain) = ChainId::new("medledger-fuzz") {
            let _ = tx.verify(&chain);
        }
    }
});
