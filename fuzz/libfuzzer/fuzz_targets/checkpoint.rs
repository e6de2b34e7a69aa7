#![no_main]
//! libFuzzer over `medledger_fuzz`'s `checkpoint` target.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(target) = medledger_fuzz::target("checkpoint") {
        (target.run)(data);
    }
});
