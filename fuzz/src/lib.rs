//! The checks shared by the fuzz targets and the mutation test (`tests/mutation.rs`): they live in
//! `tests/fixtures/loaders.rs` so that both run exactly the same assertions.

#[path = "../../tests/fixtures/loaders.rs"]
mod loaders;

pub use loaders::*;

use std::path::PathBuf;

/// A scratch file for the path-based loaders, one per fuzzing process, in memory (`/dev/shm`)
/// where there is one.
pub fn scratch(name: &str) -> PathBuf {
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    dir.join(format!("tapegrad-fuzz-{name}-{}", std::process::id()))
}
