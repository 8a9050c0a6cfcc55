#![no_main]
//! `tapegrad::io`'s optimizer loaders on arbitrary bytes (see `tests/fixtures/loaders.rs`).

use std::path::PathBuf;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;

static PATH: LazyLock<PathBuf> = LazyLock::new(|| tapegrad_fuzz::scratch("optimizer.safetensors"));

fuzz_target!(|data: &[u8]| {
    tapegrad_fuzz::check_optimizer(data, &PATH);
});
