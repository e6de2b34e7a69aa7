#![no_main]
//! libFuzzer over `medledger_fuzz`'s `gateway_message` target.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(target) = medledger_fuzz::target("gateway_message") {
        (target.run)(data);
    }
});
