#![no_main]
//! libFuzzer over `medledger_fuzz`'s `genesis` target.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(target) = medledger_fuzz::target("genesis") {
        (target.run)(data);
    }
});
