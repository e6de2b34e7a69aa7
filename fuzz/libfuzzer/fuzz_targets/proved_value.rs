#![no_main]
//! libFuzzer over `medledger_fuzz`'s `proved_value` target.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(target) = medledger_fuzz::target("proved_value") {
        (target.run)(data);
    }
});
