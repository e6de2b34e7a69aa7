#![no_main]
//! libFuzzer over `medledger_fuzz`'s `block` target.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(target) = medledger_fuzz::target("block") {
        (target.run)(data);
    }
});
