//! Mutation test of the loaders (issue 18): files the library writes (a checkpoint of a small MLP
//! and of a BatchNorm net, Adam and SGD-with-momentum states, IDX files plain and gzip, CSV texts),
//! truncated at every length, with single bits flipped and with header fields overwritten by huge
//! values (`u64::MAX`, 2^24 and 2^32 element counts, NaN, negative counts), from a fixed seed.
//!
//! For every case, the loaders must not panic (each case runs under `catch_unwind`), must fail
//! with a typed `tapegrad::Error` of the documented variant, and must leave the model or optimizer
//! unchanged when they fail; what loads must be consistent. The checks are those of the fuzz
//! targets (`fuzz/`), shared through `tests/fixtures/loaders.rs`.

#[path = "fixtures/loaders.rs"]
mod loaders;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use tapegrad::rand::rngs::StdRng;
use tapegrad::rand::{RngExt, SeedableRng};

/// What a batch of cases did.
#[derive(Default, Debug)]
struct Tally {
    loaded: usize,
    refused: usize,
    failures: Vec<String>,
}

impl Tally {
    fn total(&self) -> usize {
        self.loaded + self.refused + self.failures.len()
    }
}

/// Runs `check` on every mutant, catching panics; a panic (in a loader or in an assertion of the
/// check) is a failure that names the mutation.
fn run(mutants: Vec<(String, Vec<u8>)>, check: impl Fn(&[u8]) -> bool) -> Tally {
    let mut tally = Tally::default();
    for (what, bytes) in mutants {
        match catch_unwind(AssertUnwindSafe(|| check(&bytes))) {
            Ok(true) => tally.loaded += 1,
            Ok(false) => tally.refused += 1,
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                let head: Vec<String> = bytes.iter().take(64).map(|b| format!("{b:02x}")).collect();
                tally.failures.push(format!(
                    "{what} ({} bytes, starting {}): {message}",
                    bytes.len(),
                    head.join("")
                ));
            }
        }
    }
    tally
}

fn assert_clean(name: &str, tally: &Tally) {
    assert!(
        tally.failures.is_empty(),
        "{name}: {} of {} mutated files broke a loader:\n{}",
        tally.failures.len(),
        tally.total(),
        tally
            .failures
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The unmutated files load and mutants are refused: the cases exercise both paths.
    assert!(tally.loaded > 0, "{name}: nothing loaded: {tally:?}");
    assert!(tally.refused > 0, "{name}: nothing refused: {tally:?}");
    eprintln!(
        "{name}: {} cases, {} loaded, {} refused",
        tally.total(),
        tally.loaded,
        tally.refused
    );
}

/// The file itself; truncations at every length (every `step`-th for large files); `flips`
/// random single-bit flips; every byte set to 0x00 and 0xFF in the first `head` bytes.
fn generic_mutants(
    name: &str,
    bytes: &[u8],
    flips: usize,
    head: usize,
    rng: &mut StdRng,
) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![(format!("{name}: unmutated"), bytes.to_vec())];
    // Every length for a small file; for a larger one every length in the first and last 64
    // bytes (a header, the last tensor's data) and 100 evenly spaced between.
    let n = bytes.len();
    let lengths: Vec<usize> = if n <= 256 {
        (0..n).collect()
    } else {
        let mut l: Vec<usize> = (0..64)
            .chain((0..100).map(|k| 64 + k * (n - 128) / 100))
            .collect();
        l.extend(n - 64..n);
        l
    };
    for len in lengths {
        out.push((format!("{name}: truncated to {len}"), bytes[..len].to_vec()));
    }
    for _ in 0..flips {
        let bit = rng.random_range(0..bytes.len() * 8);
        let mut m = bytes.to_vec();
        m[bit / 8] ^= 1 << (bit % 8);
        out.push((format!("{name}: bit {bit} flipped"), m));
    }
    for i in 0..head.min(bytes.len()) {
        for value in [0x00, 0xFF] {
            let mut m = bytes.to_vec();
            m[i] = value;
            out.push((format!("{name}: byte {i} set to {value:#04x}"), m));
        }
    }
    out
}

/// Huge and impossible values for an 8-byte little-endian field.
const HUGE_U64: [(&str, u64); 5] = [
    ("u64::MAX", u64::MAX),
    ("i64::MIN", 1 << 63),
    ("-2", (-2i64) as u64),
    ("2^24", 1 << 24),
    ("NaN", 0x7ff8_0000_0000_0000),
];

/// A safetensors file's header (JSON) with each number in it replaced by huge ones, and its
/// 8-byte length prefix set to huge values; every aligned 8-byte word of the data overwritten.
fn safetensors_mutants(name: &str, bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (label, v) in HUGE_U64 {
        let mut m = bytes.to_vec();
        m[..8].copy_from_slice(&v.to_le_bytes());
        out.push((format!("{name}: header length {label}"), m));
    }
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[8..8 + header_len]).unwrap();
    let data = &bytes[8 + header_len..];
    // Every run of digits in the header: shapes, offsets, and numbers inside the metadata.
    let mut runs = Vec::new();
    let mut start = None;
    for (i, c) in header.char_indices().chain([(header.len(), ' ')]) {
        match (c.is_ascii_digit(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                runs.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    for (s, e) in runs {
        for huge in ["18446744073709551615", "18446744073709551616", "16777216", "0"] {
            let text = format!("{}{huge}{}", &header[..s], &header[e..]);
            let mut m = (text.len() as u64).to_le_bytes().to_vec();
            m.extend_from_slice(text.as_bytes());
            m.extend_from_slice(data);
            out.push((format!("{name}: header number at {s} set to {huge}"), m));
        }
    }
    for word in (0..data.len() / 8).map(|w| 8 + header_len + 8 * w) {
        for (label, v) in HUGE_U64 {
            let mut m = bytes.to_vec();
            m[word..word + 8].copy_from_slice(&v.to_le_bytes());
            out.push((format!("{name}: data word at {word} set to {label}"), m));
        }
    }
    out
}

/// An IDX file with each dimension, its rank and its type byte overwritten.
fn idx_mutants(name: &str, bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let rank = usize::from(bytes[3]);
    for d in 0..rank {
        for huge in [u32::MAX, 1 << 24, 1 << 31, 0, 65536] {
            let mut m = bytes.to_vec();
            m[4 + 4 * d..8 + 4 * d].copy_from_slice(&huge.to_be_bytes());
            out.push((format!("{name}: dimension {d} set to {huge}"), m));
            // The same, with every other dimension huge as well (products that overflow).
            let mut all = bytes.to_vec();
            for e in 0..rank {
                all[4 + 4 * e..8 + 4 * e].copy_from_slice(&huge.to_be_bytes());
            }
            out.push((format!("{name}: every dimension set to {huge}"), all));
        }
    }
    // No elements, and the other dimensions huge: the product of the image dimensions overflows
    // (issue 18's fuzzing find in the MNIST conversion).
    for huge in [u32::MAX, 1 << 24] {
        let mut m = bytes.to_vec();
        for e in 0..rank {
            let d = if e == 0 { 0 } else { huge };
            m[4 + 4 * e..8 + 4 * e].copy_from_slice(&d.to_be_bytes());
        }
        out.push((format!("{name}: dimension 0 set to 0, the others to {huge}"), m));
    }
    for r in [0u8, 1, 2, 3, 4, 255] {
        let mut m = bytes.to_vec();
        m[3] = r;
        out.push((format!("{name}: rank set to {r}"), m));
    }
    for t in [0x08u8, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f] {
        let mut m = bytes.to_vec();
        m[2] = t;
        out.push((format!("{name}: type set to {t:#04x}"), m));
    }
    out
}

fn scratch(dir: &Path, name: &str) -> std::path::PathBuf {
    dir.join(name)
}

/// The inputs that once broke a loader, kept in `fuzz/regressions/<target>/`.
fn regressions(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
    files.sort();
    files
        .into_iter()
        .map(|p| (format!("regression {}", p.display()), std::fs::read(&p).unwrap()))
        .collect()
}

#[test]
fn inputs_that_once_broke_a_loader_are_refused_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let path = scratch(dir.path(), "case.safetensors");
    let idx = regressions("idx");
    assert!(
        !idx.is_empty(),
        "fuzz/regressions/idx holds the MNIST overflow input"
    );
    let cases: [(&str, Tally); 5] = [
        (
            "checkpoint",
            run(regressions("checkpoint"), |b| loaders::check_checkpoint(b, &path)),
        ),
        (
            "optimizer",
            run(regressions("optimizer"), |b| loaders::check_optimizer(b, &path)),
        ),
        ("idx", run(idx, loaders::check_idx)),
        ("idx_gzip", run(regressions("idx_gzip"), loaders::check_idx_gzip)),
        ("csv", run(regressions("csv"), loaders::check_csv)),
    ];
    for (target, tally) in cases {
        assert!(tally.failures.is_empty(), "{target}: {:?}", tally.failures);
    }
}

#[test]
fn mutated_checkpoints_never_panic_and_leave_the_model_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(18);
    let mut mutants = Vec::new();
    for (name, bytes) in loaders::checkpoint_seeds(dir.path()) {
        mutants.extend(generic_mutants(&name, &bytes, 60, 16, &mut rng));
        mutants.extend(safetensors_mutants(&name, &bytes));
    }
    let path = scratch(dir.path(), "case.safetensors");
    let tally = run(mutants, |b| loaders::check_checkpoint(b, &path));
    assert_clean("checkpoints", &tally);
}

#[test]
fn mutated_optimizer_states_never_panic_and_leave_the_optimizer_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(19);
    let mut mutants = Vec::new();
    for (name, bytes) in loaders::optimizer_seeds(dir.path()) {
        mutants.extend(generic_mutants(&name, &bytes, 60, 16, &mut rng));
        mutants.extend(safetensors_mutants(&name, &bytes));
    }
    let path = scratch(dir.path(), "case.safetensors");
    let tally = run(mutants, |b| loaders::check_optimizer(b, &path));
    assert_clean("optimizer states", &tally);
}

#[test]
fn mutated_idx_files_plain_and_gzip_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(20);
    let mut plain = Vec::new();
    let mut gzipped = Vec::new();
    for (name, bytes) in loaders::idx_seeds(dir.path()) {
        let mut these = generic_mutants(&name, &bytes, 60, 8, &mut rng);
        these.extend(idx_mutants(&name, &bytes));
        // The header mutations again, compressed: the gzip path must refuse them as well, and
        // its bit flips and truncations are of the compressed stream.
        let gz = loaders::gzip(&bytes);
        gzipped.extend(
            idx_mutants(&name, &bytes)
                .into_iter()
                .map(|(what, m)| (format!("{what}, gzip"), loaders::gzip(&m))),
        );
        gzipped.extend(generic_mutants(&format!("{name}.gz"), &gz, 60, 12, &mut rng));
        plain.extend(these);
    }
    let tally = run(plain, loaders::check_idx);
    assert_clean("IDX", &tally);
    let tally = run(gzipped, loaders::check_idx_gzip);
    assert_clean("IDX gzip", &tally);
}

#[test]
fn mutated_idx_files_read_from_disk_match_parse_idx() {
    // `read_idx` is `parse_idx` on the file's bytes: a few mutants through the file path.
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(21);
    let path = dir.path().join("case.idx");
    for (name, bytes) in loaders::idx_seeds(dir.path()) {
        for (what, m) in generic_mutants(&name, &bytes, 10, 0, &mut rng) {
            std::fs::write(&path, &m).unwrap();
            let from_file = tapegrad::data::idx::read_idx(&path);
            let in_memory = tapegrad::data::idx::parse_idx(&m);
            match (from_file, in_memory) {
                (Ok(a), Ok(b)) => assert_eq!(a.to_bytes(), b.to_bytes(), "{what}"),
                (Err(tapegrad::Error::InvalidData { .. }), Err(tapegrad::Error::InvalidData { .. })) => {}
                (a, b) => panic!("{what}: read_idx {a:?} but parse_idx {b:?}"),
            }
        }
    }
}

#[test]
fn mutated_csv_never_panics() {
    let mut rng = StdRng::seed_from_u64(22);
    let mut mutants = Vec::new();
    for (name, bytes) in loaders::csv_seeds() {
        mutants.extend(generic_mutants(&name, &bytes, 80, 0, &mut rng));
        // Characters that matter to the parser, put at every position.
        for i in 0..bytes.len() {
            for c in [b'"', b',', b';', b'\n', b'\r', b'#', 0xFF, b'e'] {
                let mut m = bytes.clone();
                m.insert(i, c);
                mutants.push((format!("{name}: {c:#04x} inserted at {i}"), m));
            }
        }
        let huge = format!("{}\n{}\n", String::from_utf8_lossy(&bytes), "9".repeat(400));
        mutants.push((format!("{name}: a 400-digit row appended"), huge.into_bytes()));
    }
    let tally = run(mutants, loaders::check_csv);
    assert_clean("CSV", &tally);
}
