#![no_main]
//! libFuzzer over `medledger_fuzz`'s `sdk_answer` target.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(target) = medledger_fuzz::target("sdk_answer") {
        (target.run)(data);
    }
});
