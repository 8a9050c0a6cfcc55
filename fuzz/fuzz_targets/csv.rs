#![no_main]
//! `tapegrad::data`'s csv reader on arbitrary bytes (see `tests/fixtures/loaders.rs`).

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tapegrad_fuzz::check_csv(data);
});
