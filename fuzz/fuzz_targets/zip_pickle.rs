#![no_main]
use libfuzzer_sys::fuzz_target;

include!("../entry.rs");

fuzz_target!(|data: &[u8]| fuzz_zip_pickle(data));
