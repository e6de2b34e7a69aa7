#![no_main]
//! libFuzzer over `medledger_fuzz`'s `proposal_stream` target.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(target) = medledger_fuzz::target("proposal_stream") {
        (target.run)(data);
    }
});
