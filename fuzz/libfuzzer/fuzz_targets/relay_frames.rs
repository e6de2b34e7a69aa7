#![no_main]
//! libFuzzer over `medledger_fuzz`'s `relay_frames` target.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(target) = medledger_fuzz::target("relay_frames") {
        (target.run)(data);
    }
});
