#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mllp_testkit::fuzzing::proxy_header(data));
