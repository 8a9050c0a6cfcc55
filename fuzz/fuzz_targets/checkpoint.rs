#![no_main]
//! `tapegrad::io`'s checkpoint loaders on arbitrary bytes (see `tests/fixtures/loaders.rs`).

use std::path::PathBuf;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;

static PATH: LazyLock<PathBuf> = LazyLock::new(|| tapegrad_fuzz::scratch("checkpoint.safetensors"));

fuzz_target!(|data: &[u8]| {
    tapegrad_fuzz::check_checkpoint(data, &PATH);
});
