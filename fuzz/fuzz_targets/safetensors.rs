#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = flickertag::fuzzing::checkpoint(data, "f.safetensors");
});
