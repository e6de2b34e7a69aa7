#![no_main]
//! libFuzzer over `medledger_fuzz`'s `consensus_message` target.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(target) = medledger_fuzz::target("consensus_message") {
        (target.run)(data);
    }
});
