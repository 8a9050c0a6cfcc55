//! Writes the seed corpora, files made by the library's own writers, into `fuzz/corpus/<target>/`
//! as `seed-<name>`: `cargo run --manifest-path fuzz/Cargo.toml --bin write_seeds`.

use std::path::Path;

fn main() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let scratch = std::env::temp_dir().join(format!("tapegrad-seeds-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    // Files PyTorch wrote (tests/data): F16 and BF16 tensors, BatchNorm's `num_batches_tracked`.
    let mut checkpoints = tapegrad_fuzz::checkpoint_seeds(&scratch);
    for name in ["torch_mlp", "torch_dtypes", "torch_bn"] {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../tests/data/{name}.safetensors"));
        checkpoints.push((name.to_string(), std::fs::read(file).unwrap()));
    }
    let targets = [
        ("checkpoint", checkpoints),
        ("optimizer", tapegrad_fuzz::optimizer_seeds(&scratch)),
        ("idx", tapegrad_fuzz::idx_seeds(&scratch)),
        ("idx_gzip", {
            let mut seeds = tapegrad_fuzz::idx_gzip_seeds(&scratch);
            seeds.extend(tapegrad_fuzz::idx_seeds(&scratch));
            seeds
        }),
        ("csv", tapegrad_fuzz::csv_seeds()),
    ];
    for (target, seeds) in targets {
        let dir = corpus.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in seeds {
            std::fs::write(dir.join(format!("seed-{name}")), &bytes).unwrap();
            println!("{target}/seed-{name}: {} bytes", bytes.len());
        }
    }
    std::fs::remove_dir_all(&scratch).unwrap();
}
