#![no_main]
//! libFuzzer over `medledger_fuzz`'s `http_input` target.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(target) = medledger_fuzz::target("http_input") {
        (target.run)(data);
    }
});
