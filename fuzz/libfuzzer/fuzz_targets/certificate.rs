#![no_main]
//! libFuzzer over `medledger_fuzz`'s `certificate` target.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(target) = medledger_fuzz::target("certificate") {
        (target.run)(data);
    }
});
