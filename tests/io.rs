//! Checkpoints (`tapegrad::io`): round trips in f32 and f64, files written by PyTorch, every kind
//! of bad file (each leaves the model unchanged), atomic writes, and resuming training bit for bit.

mod common;

use std::path::{Path, PathBuf};

use common::{data_path as data, load_json, numbers};
use serde_json::Value;
use tapegrad::io::{self, LoadOptions};
use tapegrad::nn::BatchNorm1d;
use tapegrad::optim::{Adagrad, AdagradConfig, AdamW, AdamWConfig, Lbfgs, LbfgsConfig, ParamGroup};
use tapegrad::prelude::*;
use tapegrad::rand::{SeedableRng, rngs::StdRng};
use tapegrad::{Error, Float};

fn reference() -> Value {
    load_json("torch_safetensors_reference.json")
}

fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("a list")
        .iter()
        .map(|s| s.as_str().expect("a string").to_string())
        .collect()
}

/// Every parameter and buffer value as bits, to compare exactly.
fn snapshot<T: Float, M: Module<T> + ?Sized>(m: &M) -> Vec<(String, Vec<usize>, Vec<u64>)> {
    io::state_dict(m)
        .into_iter()
        .map(|(n, t)| {
            (
                n,
                t.shape().to_vec(),
                t.as_slice().iter().map(|x| x.to_f64().to_bits()).collect(),
            )
        })
        .collect()
}

fn output<T: Float, M: Forward<T> + ?Sized>(m: &M, x: &Tensor<T>) -> Tensor<T> {
    let tape = Tape::new();
    m.forward(&tape, tape.constant(x.clone())).value()
}

fn checkpoint_detail(err: &Error) -> &str {
    match err {
        Error::Checkpoint { detail, .. } => detail,
        other => panic!("expected Error::Checkpoint, got {other:?}"),
    }
}

fn mlp<T: Float>(seed: u64) -> Mlp<T> {
    Mlp::new(&[3, 5, 4, 2], Activation::Tanh, &mut rng(seed))
}

fn bn_net<T: Float>(seed: u64) -> Sequential<T> {
    let mut r = rng(seed);
    Sequential::new()
        .with(Linear::new(3, 4, &mut r))
        .with(BatchNorm1d::new(4))
        .with(Linear::new(4, 2, &mut r))
}

// ---------------------------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------------------------

fn round_trip<T: Float>() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mlp.safetensors");
    let x = Tensor::<T>::rand_uniform(&[6, 3], T::from_f64(-2.0), T::from_f64(2.0), &mut rng(9));
    let a = mlp::<T>(1);
    io::save(&path, &a).unwrap();
    let b = mlp::<T>(2);
    assert_ne!(output(&a, &x), output(&b, &x));
    io::load(&path, &b).unwrap();
    assert_eq!(snapshot(&a), snapshot(&b));
    assert_eq!(output(&a, &x), output(&b, &x));
    // The header says what PyTorch would: F32 or F64, the names, metadata {"format": "pt"}.
    let bytes = std::fs::read(&path).unwrap();
    let parsed = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors parses our file");
    let dtype = if T::NAME == "f32" { "F32" } else { "F64" };
    let mut names = parsed.names();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "layers.0.bias",
            "layers.0.weight",
            "layers.1.bias",
            "layers.1.weight",
            "layers.2.bias",
            "layers.2.weight"
        ]
    );
    let w = parsed.tensor("layers.1.weight").unwrap();
    assert_eq!(format!("{:?}", w.dtype()), dtype);
    assert_eq!(w.shape(), [4, 5]);
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[8..8 + header_len]).unwrap();
    assert!(header.contains(&format!("\"dtype\":\"{dtype}\"")), "{header}");
    assert!(header.contains(r#""__metadata__":{"format":"pt"}"#), "{header}");
}

#[test]
fn round_trip_restores_identical_outputs_f32() {
    round_trip::<f32>();
}

#[test]
fn round_trip_restores_identical_outputs_f64() {
    round_trip::<f64>();
}

#[test]
fn batchnorm_running_statistics_are_saved_and_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bn.safetensors");
    let mut a = bn_net::<f32>(1);
    let tape = Tape::new();
    for seed in 0..3 {
        a.forward(&tape, tape.constant(Tensor::randn(&[8, 3], &mut rng(seed))));
    }
    a.eval();
    io::save(&path, &a).unwrap();
    let names: Vec<String> = io::load_tensors::<f32>(&path)
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert!(names.contains(&"1.running_mean".to_string()) && names.contains(&"1.running_var".to_string()));

    let mut b = bn_net::<f32>(2);
    b.eval();
    let x = Tensor::randn(&[5, 3], &mut rng(7));
    assert_ne!(output(&a, &x), output(&b, &x));
    io::load(&path, &b).unwrap();
    assert_eq!(snapshot(&a), snapshot(&b));
    assert_eq!(output(&a, &x), output(&b, &x)); // evaluation mode reads the running statistics
}

#[test]
fn f64_file_loads_into_f32_model_rounded_and_f32_file_into_f64_model_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (p64, p32) = (
        dir.path().join("64.safetensors"),
        dir.path().join("32.safetensors"),
    );
    let m64 = mlp::<f64>(3);
    io::save(&p64, &m64).unwrap();
    let m32 = mlp::<f32>(4);
    io::load(&p64, &m32).unwrap();
    for (a, b) in m64.parameters().iter().zip(m32.parameters()) {
        let rounded: Vec<f32> = a.value().as_slice().iter().map(|&v| v as f32).collect();
        assert_eq!(b.value().to_vec(), rounded);
    }
    io::save(&p32, &m32).unwrap();
    io::load(&p32, &m64).unwrap();
    for (a, b) in m64.parameters().iter().zip(m32.parameters()) {
        let widened: Vec<f64> = b.value().as_slice().iter().map(|&v| v as f64).collect();
        assert_eq!(a.value().to_vec(), widened);
    }
}

#[test]
fn save_tensors_keeps_names_shapes_metadata_and_rank_zero() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.safetensors");
    let tensors = vec![
        ("z.scalar".to_string(), Tensor::<f64>::scalar(-0.0)),
        (
            "a.matrix".to_string(),
            Tensor::from_vec(vec![1.0, f64::INFINITY, 1e-310, -3.5], &[2, 2]),
        ),
        ("empty".to_string(), Tensor::zeros(&[0, 3])),
    ];
    io::save_tensors(&path, &tensors, &[("epoch", "7"), ("note", "é ü")]).unwrap();
    let mut loaded = io::load_tensors::<f64>(&path).unwrap();
    loaded.sort_by(|a, b| a.0.cmp(&b.0));
    let mut expected = tensors.clone();
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(loaded.len(), 3);
    for ((n1, t1), (n2, t2)) in loaded.iter().zip(&expected) {
        assert_eq!(n1, n2);
        assert_eq!(t1.shape(), t2.shape());
        let bits = |t: &Tensor<f64>| t.as_slice().iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(t1), bits(t2), "{n1}");
    }
    let meta = io::load_metadata(&path).unwrap();
    assert_eq!(meta["epoch"], "7");
    assert_eq!(meta["note"], "é ü");

    let dup = vec![
        ("w".to_string(), Tensor::<f32>::ones(&[1])),
        ("w".to_string(), Tensor::zeros(&[1])),
    ];
    let err = io::save_tensors(&path, &dup, &[]).unwrap_err();
    assert!(
        checkpoint_detail(&err).contains("two tensors are named `w`"),
        "{err}"
    );
    assert_eq!(io::load_tensors::<f64>(&path).unwrap().len(), 3); // the earlier file is intact
}

// ---------------------------------------------------------------------------------------------
// PyTorch's files
// ---------------------------------------------------------------------------------------------

fn torch_input() -> Tensor<f32> {
    let r = reference();
    let x: Vec<f32> = numbers(&r["input"]).into_iter().map(|v| v as f32).collect();
    Tensor::from_vec(x, &[5, 3])
}

fn assert_close(got: &Tensor<f32>, want: &[f64], tol: f64) {
    assert_eq!(got.numel(), want.len());
    for (i, (g, w)) in got.as_slice().iter().zip(want).enumerate() {
        assert!((*g as f64 - w).abs() <= tol, "element {i}: {g} vs PyTorch's {w}");
    }
}

#[test]
fn pytorch_sequential_file_loads_into_a_sequential_with_the_same_names() {
    let r = reference();
    let mut rr = rng(0);
    let net = Sequential::<f32>::new()
        .with(Linear::new(3, 4, &mut rr))
        .with(Activation::Relu)
        .with(Linear::new(4, 2, &mut rr));
    let names: Vec<String> = net.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, strings(&r["mlp_names"]));
    io::load(data("torch_mlp.safetensors"), &net).unwrap();
    assert_close(&output(&net, &torch_input()), &numbers(&r["mlp_output"]), 1e-6);
}

#[test]
fn pytorch_sequential_file_loads_into_an_mlp_with_a_rename() {
    let r = reference();
    let mlp = Mlp::<f32>::new(&[3, 4, 2], Activation::Relu, &mut rng(0));
    // Strictly, the names differ: the error lists both sides.
    let before = snapshot(&mlp);
    let err = io::load(data("torch_mlp.safetensors"), &mlp).unwrap_err();
    let detail = checkpoint_detail(&err);
    assert!(
        detail.contains("missing tensors `layers.0.weight`, `layers.0.bias`"),
        "{detail}"
    );
    assert!(
        detail.contains("unexpected tensors `0.bias`, `0.weight`, `2.bias`, `2.weight`"),
        "{detail}"
    );
    assert_eq!(snapshot(&mlp), before);

    let rename = |name: &str| match name.split_once('.') {
        Some((i, rest)) => match i.parse::<usize>() {
            Ok(i) => format!("layers.{}.{rest}", i / 2),
            Err(_) => name.to_string(),
        },
        None => name.to_string(),
    };
    let report = io::load_with(
        data("torch_mlp.safetensors"),
        &mlp,
        &LoadOptions::new().rename(rename),
    )
    .unwrap();
    assert!(report.missing.is_empty() && report.unexpected.is_empty());
    assert_close(&output(&mlp, &torch_input()), &numbers(&r["mlp_output"]), 1e-6);
}

#[test]
fn pytorch_batchnorm_file_loads_with_its_running_statistics() {
    let r = reference();
    let mut net = bn_net::<f32>(0);
    let names: Vec<String> = io::state_dict(&net).into_iter().map(|(n, _)| n).collect();
    let mut torch_names = strings(&r["bn_names"]);
    torch_names.retain(|n| n != "1.num_batches_tracked");
    let mut sorted = names.clone();
    sorted.sort();
    torch_names.sort();
    assert_eq!(sorted, torch_names);

    // PyTorch's `num_batches_tracked` has no counterpart: skipped even by a strict load.
    let report = io::load_with(data("torch_bn.safetensors"), &net, &LoadOptions::new()).unwrap();
    assert_eq!(report.ignored, ["1.num_batches_tracked"]);
    assert!(report.missing.is_empty() && report.unexpected.is_empty());
    let bn_state = io::state_dict(&net);
    let find = |name: &str| bn_state.iter().find(|(n, _)| n == name).unwrap().1.clone();
    assert_close(&find("1.running_mean"), &numbers(&r["bn_running_mean"]), 0.0);
    assert_close(&find("1.running_var"), &numbers(&r["bn_running_var"]), 0.0);
    net.eval();
    assert_close(&output(&net, &torch_input()), &numbers(&r["bn_output"]), 1e-6);

    // Only beside a BatchNorm's running mean: elsewhere such a name is unexpected.
    let plain = Sequential::<f32>::new().with(Linear::new(3, 4, &mut rng(0)));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("count.safetensors");
    let mut tensors = io::state_dict(&plain);
    tensors.push(("0.num_batches_tracked".to_string(), Tensor::scalar(3.0)));
    io::save_tensors(&path, &tensors, &[]).unwrap();
    let err = io::load(&path, &plain).unwrap_err();
    assert!(
        checkpoint_detail(&err).contains("unexpected tensors `0.num_batches_tracked`"),
        "{err}"
    );
}

/// A module that is just named tensors, to load any file into.
struct Bag<T: Float>(Vec<(String, Param<T>)>);

impl<T: Float> Module<T> for Bag<T> {
    fn named_parameters(&self) -> Vec<(String, Param<T>)> {
        self.0.clone()
    }
    fn train(&mut self, _: bool) {}
    fn is_training(&self) -> bool {
        false
    }
}

fn bag<T: Float>(shapes: &[(&str, &[usize])]) -> Bag<T> {
    Bag(shapes
        .iter()
        .map(|(n, s)| (n.to_string(), Param::new(Tensor::full(s, T::from_f64(42.0)))))
        .collect())
}

#[test]
fn pytorch_half_bfloat_f32_and_f64_tensors_convert_and_integers_are_refused() {
    let r = reference();
    let path = data("torch_dtypes.safetensors");
    let shapes: &[(&str, &[usize])] = &[("f16", &[6]), ("bf16", &[5]), ("f64", &[2, 2]), ("f32", &[])];
    let m = bag::<f64>(shapes);
    let report = io::load_with(&path, &m, &LoadOptions::new().strict(false)).unwrap();
    assert_eq!(report.unexpected, ["i64"]); // skipped, not decoded
    for (name, p) in m.named_parameters() {
        assert_eq!(p.value().to_vec(), numbers(&r["dtypes"][name.as_str()]), "{name}");
    }
    // The same into f32: exact except F64, rounded to nearest (1e300 overflows to inf, as in PyTorch).
    let m = bag::<f32>(shapes);
    io::load_with(&path, &m, &LoadOptions::new().strict(false)).unwrap();
    let f64_values: Vec<f32> = numbers(&r["dtypes"]["f64"]).iter().map(|&v| v as f32).collect();
    assert_eq!(m.0[2].1.value().to_vec(), f64_values);
    assert_eq!(f64_values[3], f32::INFINITY);
    assert_eq!(m.0[0].1.value().to_vec()[4], 5.960_464_5e-8); // the smallest f16 subnormal

    // Asked for, an integer tensor is an error naming it and its dtype; nothing is changed.
    let m = bag::<f64>(&[("f16", &[6]), ("i64", &[3])]);
    let before = snapshot(&m);
    let err = io::load_with(&path, &m, &LoadOptions::new().strict(false)).unwrap_err();
    assert!(
        checkpoint_detail(&err).contains("tensor `i64` has dtype I64"),
        "{err}"
    );
    assert_eq!(snapshot(&m), before);
    let err = io::load_tensors::<f32>(&path).unwrap_err();
    assert!(
        checkpoint_detail(&err).contains("tensor `i64` has dtype I64"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// Bad files: each is an error naming the problem, and the model is unchanged
// ---------------------------------------------------------------------------------------------

/// Writes `bytes` to a file and checks that loading it into a fresh MLP fails with a checkpoint
/// error containing `want`, leaving the MLP unchanged.
fn assert_rejected(dir: &Path, name: &str, bytes: &[u8], want: &str) {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    let m = mlp::<f32>(5);
    let before = snapshot(&m);
    let err = io::load(&path, &m).unwrap_err();
    let detail = checkpoint_detail(&err);
    assert!(detail.contains(want), "{name}: {detail:?} lacks {want:?}");
    assert!(err.to_string().contains(name), "{err} names the file");
    assert_eq!(snapshot(&m), before, "{name}: the model changed");
}

fn good_file(dir: &Path) -> Vec<u8> {
    let path = dir.join("good.safetensors");
    io::save(&path, &mlp::<f32>(6)).unwrap();
    std::fs::read(&path).unwrap()
}

#[test]
fn missing_file_is_an_io_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.safetensors");
    let m = mlp::<f32>(1);
    let before = snapshot(&m);
    let err = io::load(&path, &m).unwrap_err();
    match &err {
        Error::Io { path: p, source } => {
            assert_eq!(p, &path);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected Error::Io, got {other:?}"),
    }
    assert!(err.to_string().contains("absent.safetensors"));
    assert_eq!(snapshot(&m), before);
}

#[test]
fn truncated_files_are_rejected_at_every_kind_of_offset() {
    let dir = tempfile::tempdir().unwrap();
    let good = good_file(dir.path());
    let header_end = 8 + u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    let cases: &[(usize, &str)] = &[
        (0, "the file is empty"),
        (5, "the file is 5 bytes, too short for the 8-byte header length"),
        (8, "points past the end of the file (8 bytes)"),
        (40, "points past the end of the file (40 bytes)"),
        (header_end - 1, "points past the end of the file"),
        (header_end, "the data after the header is 0 bytes"),
        (header_end + 7, "the data after the header is 7 bytes"),
        (good.len() - 1, "truncated"),
    ];
    for &(len, want) in cases {
        assert_rejected(dir.path(), &format!("cut{len}.safetensors"), &good[..len], want);
    }
    // Trailing bytes are caught too.
    let mut longer = good.clone();
    longer.extend_from_slice(&[0; 4]);
    assert_rejected(dir.path(), "longer.safetensors", &longer, "trailing bytes");
}

#[test]
fn corrupted_headers_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let good = good_file(dir.path());
    let n = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;

    let mut json = good.clone();
    json[8] = b'['; // the header's opening brace
    assert_rejected(
        dir.path(),
        "json.safetensors",
        &json,
        "the header is not valid safetensors JSON",
    );

    let mut utf8 = good.clone();
    utf8[8 + n / 2] = 0xff;
    assert_rejected(
        dir.path(),
        "utf8.safetensors",
        &utf8,
        "the header is not UTF-8 text",
    );

    let mut past = good.clone();
    past[..8].copy_from_slice(&(good.len() as u64 + 100).to_le_bytes());
    assert_rejected(
        dir.path(),
        "past.safetensors",
        &past,
        &format!(
            "the header length {} points past the end of the file",
            good.len() + 100
        ),
    );

    let mut huge = good.clone();
    huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert_rejected(dir.path(), "huge.safetensors", &huge, "over the 100 MB limit");

    // A shape that does not fit its data offsets.
    let header = std::str::from_utf8(&good[8..8 + n]).unwrap();
    let bad = header.replacen("\"shape\":[2,4]", "\"shape\":[2,5]", 1);
    assert_ne!(bad, header);
    let mut shape = good[..8].to_vec();
    shape.extend_from_slice(bad.as_bytes());
    shape.extend_from_slice(&good[8 + n..]);
    assert_rejected(
        dir.path(),
        "info.safetensors",
        &shape,
        "does not match its shape and dtype",
    );

    // Overlapping data offsets.
    let bad = header.replacen("\"data_offsets\":[0,", "\"data_offsets\":[4,", 1);
    assert_ne!(bad, header);
    let mut offsets = good[..8].to_vec();
    offsets.extend_from_slice(bad.as_bytes());
    offsets.extend_from_slice(&good[8 + n..]);
    assert_rejected(
        dir.path(),
        "offsets.safetensors",
        &offsets,
        "data offsets of tensor",
    );
}

#[test]
fn shape_mismatch_names_the_tensor_and_both_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small.safetensors");
    io::save(
        &path,
        &Mlp::<f32>::new(&[3, 5, 4, 1], Activation::Tanh, &mut rng(1)),
    )
    .unwrap();
    let m = mlp::<f32>(2);
    let before = snapshot(&m);
    let err = io::load(&path, &m).unwrap_err();
    let detail = checkpoint_detail(&err);
    assert!(
        detail.contains("tensor `layers.2.weight` has shape [1, 4] in the file, [2, 4] in the model"),
        "{detail}"
    );
    assert!(
        detail.contains("tensor `layers.2.bias` has shape [1] in the file, [2] in the model"),
        "{detail}"
    );
    // All or nothing: layers 0 and 1 fit, and were not loaded either.
    assert_eq!(snapshot(&m), before);
    // Not strict does not relax shapes.
    assert!(io::load_with(&path, &m, &LoadOptions::new().strict(false)).is_err());
    assert_eq!(snapshot(&m), before);
}

#[test]
fn missing_and_unexpected_names_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    let no_bias = Linear::<f64>::with_bias(3, 2, false, &mut rng(1));
    io::save(&path, &no_bias).unwrap();
    let with_bias = Linear::<f64>::new(3, 2, &mut rng(2));
    let before = snapshot(&with_bias);
    let err = io::load(&path, &with_bias).unwrap_err();
    assert_eq!(checkpoint_detail(&err), "missing tensors `bias`");
    assert_eq!(snapshot(&with_bias), before);

    io::save(&path, &with_bias).unwrap();
    let before = snapshot(&no_bias);
    let err = io::load(&path, &no_bias).unwrap_err();
    assert!(
        checkpoint_detail(&err).starts_with("unexpected tensors `bias`"),
        "{err}"
    );
    assert_eq!(snapshot(&no_bias), before);
    // Not strict: the weight loads, the bias is reported.
    let report = io::load_with(&path, &no_bias, &LoadOptions::new().strict(false)).unwrap();
    assert_eq!(report.unexpected, ["bias"]);
    assert_eq!(no_bias.weight.value(), with_bias.weight.value());
}

#[test]
fn wrong_dtype_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("int.safetensors");
    let weight: Vec<u8> = (0..6i32).flat_map(|v| v.to_le_bytes()).collect();
    let bias = vec![0u8; 2];
    let views = [
        (
            "weight",
            safetensors::tensor::TensorView::new(safetensors::Dtype::I32, vec![2, 3], &weight).unwrap(),
        ),
        (
            "bias",
            safetensors::tensor::TensorView::new(safetensors::Dtype::U8, vec![2], &bias).unwrap(),
        ),
    ];
    std::fs::write(
        &path,
        safetensors::serialize(views.iter().map(|(n, v)| (*n, v)), None).unwrap(),
    )
    .unwrap();
    let m = Linear::<f32>::new(3, 2, &mut rng(1));
    let before = snapshot(&m);
    let err = io::load(&path, &m).unwrap_err();
    let detail = checkpoint_detail(&err);
    assert!(detail.contains("tensor `weight` has dtype I32"), "{detail}");
    assert!(detail.contains("tensor `bias` has dtype U8"), "{detail}");
    assert_eq!(snapshot(&m), before);
}

#[test]
fn two_file_names_mapping_to_one_module_name_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("two.safetensors");
    let t = Tensor::<f32>::ones(&[2]);
    io::save_tensors(&path, &[("a".to_string(), t.clone()), ("b".to_string(), t)], &[]).unwrap();
    let m = bag::<f32>(&[("x", &[2])]);
    let err = io::load_with(&path, &m, &LoadOptions::new().rename(|_| "x".to_string())).unwrap_err();
    assert!(
        checkpoint_detail(&err).contains("tensors `a` and `b` both map to the module's `x`"),
        "{err}"
    );
    assert_eq!(m.0[0].1.value().to_vec(), [42.0, 42.0]);
}

// ---------------------------------------------------------------------------------------------
// Atomic writes
// ---------------------------------------------------------------------------------------------

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn writes_replace_the_file_whole_and_leave_no_temporary_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let a = mlp::<f32>(1);
    let b = mlp::<f32>(2);
    io::save(&path, &a).unwrap();
    io::save_optimizer(
        dir.path().join("opt.safetensors"),
        &Adam::new(a.parameters(), AdamConfig::default()),
    )
    .unwrap();
    io::save(&path, &b).unwrap(); // overwrite
    assert_eq!(listing(dir.path()), ["model.safetensors", "opt.safetensors"]);
    let c = mlp::<f32>(3);
    io::load(&path, &c).unwrap();
    assert_eq!(snapshot(&c), snapshot(&b));

    // A failed write (the target is a directory) leaves the directory and no temporary file.
    let target = dir.path().join("taken");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("inside"), b"keep").unwrap();
    let err = io::save(&target, &a).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert_eq!(
        listing(dir.path()),
        ["model.safetensors", "opt.safetensors", "taken"]
    );
    assert_eq!(std::fs::read(target.join("inside")).unwrap(), b"keep");

    // A missing directory is an error naming the path.
    let err = io::save(dir.path().join("no/such/dir/m.safetensors"), &a).unwrap_err();
    assert!(
        matches!(err, Error::Io { .. }) && err.to_string().contains("no/such/dir"),
        "{err}"
    );
}

#[test]
fn a_relative_path_without_directory_is_written_in_place() {
    // `Path::parent` of "m.safetensors" is "": the temporary file then goes in ".".
    let name = format!("io-test-{}.safetensors", std::process::id());
    let cwd_file = PathBuf::from(&name);
    io::save_tensors(&cwd_file, &[("x".to_string(), Tensor::<f32>::ones(&[1]))], &[]).unwrap();
    let loaded = io::load_tensors::<f32>(&cwd_file);
    std::fs::remove_file(&cwd_file).unwrap();
    assert_eq!(loaded.unwrap()[0].1.to_vec(), [1.0]);
    let leftovers: Vec<String> = listing(Path::new("."))
        .into_iter()
        .filter(|n| n.contains(&name))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

// ---------------------------------------------------------------------------------------------
// Optimizer state
// ---------------------------------------------------------------------------------------------

fn batch() -> (Tensor<f32>, Vec<usize>) {
    let x = Tensor::randn(&[16, 3], &mut rng(11));
    let labels = (0..16).map(|i| i % 2).collect();
    (x, labels)
}

fn train_steps<O: Optimizer<f32>>(model: &Mlp<f32>, opt: &mut O, steps: usize) {
    let (x, labels) = batch();
    let mut tape = Tape::new();
    for _ in 0..steps {
        tape.reset();
        let logits = model.forward(&tape, tape.constant(x.clone()));
        let grads = loss::cross_entropy(logits, &labels).backward();
        tape.reset();
        opt.step(&grads);
    }
}

/// Train k steps, save model and optimizer, train n more; load both into freshly built ones
/// (other initial weights) and train n more: the parameters must agree to the bit. Without the
/// optimizer's state they must not (so the test can fail).
fn resume_bit_for_bit<O: Optimizer<f32>>(make: impl Fn(Vec<Param<f32>>) -> O) {
    let dir = tempfile::tempdir().unwrap();
    let (mp, op) = (
        dir.path().join("model.safetensors"),
        dir.path().join("opt.safetensors"),
    );
    let model = mlp::<f32>(1);
    let mut opt = make(model.parameters());
    train_steps(&model, &mut opt, 4);
    io::save(&mp, &model).unwrap();
    io::save_optimizer(&op, &opt).unwrap();
    let saved = opt.state();
    train_steps(&model, &mut opt, 5);

    let resumed = mlp::<f32>(2);
    let mut opt2 = make(resumed.parameters());
    io::load(&mp, &resumed).unwrap();
    io::load_optimizer(&op, &mut opt2).unwrap();
    assert_eq!(io::load_optimizer_state(&op).unwrap(), saved);
    assert_eq!(opt2.state(), saved);
    train_steps(&resumed, &mut opt2, 5);
    assert_eq!(snapshot(&resumed), snapshot(&model));
    assert_eq!(opt2.state(), opt.state());

    let fresh = mlp::<f32>(3);
    let mut opt3 = make(fresh.parameters());
    io::load(&mp, &fresh).unwrap();
    train_steps(&fresh, &mut opt3, 5);
    assert_ne!(snapshot(&fresh), snapshot(&model));
}

#[test]
fn adam_resumes_bit_for_bit() {
    resume_bit_for_bit(|p| {
        Adam::new(
            p,
            AdamConfig {
                lr: 0.01,
                amsgrad: true,
                ..Default::default()
            },
        )
    });
}

#[test]
fn sgd_adagrad_rmsprop_adamw_resume_bit_for_bit() {
    resume_bit_for_bit(|p| {
        Sgd::new(
            p,
            SgdConfig {
                lr: 0.05,
                momentum: 0.9,
                nesterov: true,
                ..Default::default()
            },
        )
    });
    resume_bit_for_bit(|p| {
        Adagrad::new(
            p,
            AdagradConfig {
                lr: 0.05,
                ..Default::default()
            },
        )
    });
    resume_bit_for_bit(|p| {
        RmsProp::new(
            p,
            RmsPropConfig {
                lr: 0.01,
                centered: true,
                momentum: 0.5,
                ..Default::default()
            },
        )
    });
    resume_bit_for_bit(|p| {
        AdamW::new(
            p,
            AdamWConfig {
                lr: 0.01,
                ..Default::default()
            },
        )
    });
}

#[test]
fn optimizer_state_round_trips_exactly_with_groups_unstepped_params_and_extra_buffers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("opt.safetensors");
    let model = mlp::<f32>(1);
    let params = model.parameters();
    let mut opt = Adam::new(params[..4].to_vec(), AdamConfig::default());
    opt.add_param_group(ParamGroup::new(params[4..].to_vec()).lr(0.5).weight_decay(0.1));
    // A gradient for only some parameters: the others have no state yet.
    let tape = Tape::new();
    let grads = (tape.param(&params[1]).sum() + tape.param(&params[5]).sum()).backward();
    opt.step(&grads);
    let state = opt.state();
    assert!(state.params[0].is_none() && state.params[1].is_some());
    io::save_optimizer(&path, &opt).unwrap();
    assert_eq!(io::load_optimizer_state(&path).unwrap(), state);
    let meta = io::load_metadata(&path).unwrap();
    assert_eq!(meta["format"], "tapegrad-optimizer");
    assert_eq!(meta["optimizer"], "Adam");
    // Step counts are I64, so the file is not a plain list of float tensors.
    let err = io::load_tensors::<f64>(&path).unwrap_err();
    assert!(checkpoint_detail(&err).contains("has dtype I64"), "{err}");
    let bytes = std::fs::read(&path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names = file.names();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "param_groups.0.lr",
            "param_groups.0.num_params",
            "param_groups.0.weight_decay",
            "param_groups.1.lr",
            "param_groups.1.num_params",
            "param_groups.1.weight_decay",
            "state.1.exp_avg",
            "state.1.exp_avg_sq",
            "state.1.shape",
            "state.1.step",
            "state.5.exp_avg",
            "state.5.exp_avg_sq",
            "state.5.shape",
            "state.5.step",
        ]
    );

    // L-BFGS keeps its history in optimizer-wide buffers.
    let w = Param::new(Tensor::<f64>::from_vec(vec![-1.2, 1.0], &[2]));
    let mut lbfgs = Lbfgs::new(
        vec![w.clone()],
        LbfgsConfig {
            max_iter: 3,
            ..Default::default()
        },
    );
    lbfgs.step_with(|tape| {
        let v = tape.param(&w);
        let (x, y) = (v.narrow(0, 0, 1), v.narrow(0, 1, 1));
        ((1.0 - x).powi(2) + 100.0 * (y - x * x).powi(2)).sum()
    });
    let state = lbfgs.state();
    assert!(!state.extra.is_empty());
    io::save_optimizer(&path, &lbfgs).unwrap();
    assert_eq!(io::load_optimizer_state(&path).unwrap(), state);
    let mut other = Lbfgs::new(
        vec![Param::new(w.value())],
        LbfgsConfig {
            max_iter: 3,
            ..Default::default()
        },
    );
    io::load_optimizer(&path, &mut other).unwrap();
    assert_eq!(other.state(), state);
}

#[test]
fn bad_optimizer_files_are_errors_and_leave_the_optimizer_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("opt.safetensors");
    let model = mlp::<f32>(1);
    let mut opt = Adam::new(model.parameters(), AdamConfig::default());
    train_steps(&model, &mut opt, 2);
    io::save_optimizer(&path, &opt).unwrap();
    let good = std::fs::read(&path).unwrap();

    let mut target = Adam::new(mlp::<f32>(2).parameters(), AdamConfig::default());
    train_steps(&mlp::<f32>(2), &mut target, 1);
    let before = target.state();
    let check = |bytes: &[u8], want: &str, target: &mut Adam<f32>| {
        let p = dir.path().join("bad.safetensors");
        std::fs::write(&p, bytes).unwrap();
        let err = io::load_optimizer(&p, target).unwrap_err();
        assert!(checkpoint_detail(&err).contains(want), "{err} lacks {want:?}");
        assert_eq!(target.state(), before);
    };
    check(&good[..good.len() - 3], "truncated", &mut target);
    check(&good[..20], "points past the end", &mut target);

    // A model file is not an optimizer file.
    let model_file = dir.path().join("model.safetensors");
    io::save(&model_file, &model).unwrap();
    check(
        &std::fs::read(&model_file).unwrap(),
        "not an optimizer file",
        &mut target,
    );

    // An optimizer of another shape or kind.
    let mut small = Adam::new(
        Mlp::<f32>::new(&[3, 2], Activation::Tanh, &mut rng(1)).parameters(),
        AdamConfig::default(),
    );
    let err = io::load_optimizer(&path, &mut small).unwrap_err();
    assert!(
        checkpoint_detail(&err).contains("the optimizer state does not fit"),
        "{err}"
    );
    let mut sgd = Sgd::new(model.parameters(), SgdConfig::default());
    let err = io::load_optimizer(&path, &mut sgd).unwrap_err();
    assert!(checkpoint_detail(&err).contains("exported by Adam"), "{err}");

    // A tensor of the wrong dtype inside an optimizer file.
    let header_len = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&good[8..8 + header_len]).unwrap();
    let step = header
        .find("\"state.0.step\":{\"dtype\":\"I64\"")
        .expect("a step count");
    let mut bad = good.clone();
    let at = 8 + step + "\"state.0.step\":{\"dtype\":\"".len();
    bad[at..at + 3].copy_from_slice(b"F64");
    check(
        &bad,
        "tensor `state.0.step` is F64 [], expected I64 []",
        &mut target,
    );

    let missing = dir.path().join("absent.safetensors");
    assert!(matches!(
        io::load_optimizer(&missing, &mut target),
        Err(Error::Io { .. })
    ));
    assert_eq!(target.state(), before);
}

#[test]
fn an_optimizer_file_for_other_shapes_with_as_many_elements_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("opt.safetensors");
    let step = |w: &Param<f32>, opt: &mut Adam<f32>| {
        let tape = Tape::new();
        opt.step(&(tape.param(w) * tape.param(w)).sum().backward());
    };
    let wide = Param::new(Tensor::<f32>::ones(&[2, 3]));
    let mut saved = Adam::new(vec![wide.clone()], AdamConfig::default());
    step(&wide, &mut saved);
    io::save_optimizer(&path, &saved).unwrap();
    assert_eq!(
        io::load_optimizer_state(&path).unwrap().params[0]
            .as_ref()
            .unwrap()
            .shape,
        [2, 3]
    );

    let tall = Param::new(Tensor::<f32>::ones(&[3, 2]));
    let mut target = Adam::new(vec![tall.clone()], AdamConfig::default());
    step(&tall, &mut target);
    let before = target.state();
    let err = io::load_optimizer(&path, &mut target).unwrap_err();
    assert!(
        checkpoint_detail(&err).contains("shape [2, 3], this one has shape [3, 2]"),
        "{err}"
    );
    assert_eq!(target.state(), before);
}

// ---------------------------------------------------------------------------------------------
// Generators (dropout masks)
// ---------------------------------------------------------------------------------------------

/// A classifier with dropout after each hidden layer, its masks seeded with `seed`.
fn dropout_net(weights_seed: u64, dropout_seed: u64) -> Sequential<f32> {
    let mut r = rng(weights_seed);
    Sequential::new()
        .with(Linear::new(3, 8, &mut r))
        .with(Activation::Tanh)
        .with(Dropout::new(0.3, dropout_seed))
        .with(Linear::new(8, 8, &mut r))
        .with(Activation::Tanh)
        .with(Dropout::new(0.3, dropout_seed + 1))
        .with(Linear::new(8, 2, &mut r))
}

fn train_dropout_steps(model: &Sequential<f32>, opt: &mut Adam<f32>, steps: usize) {
    let (x, labels) = batch();
    let mut tape = Tape::new();
    for _ in 0..steps {
        tape.reset();
        let logits = model.forward(&tape, tape.constant(x.clone()));
        let grads = loss::cross_entropy(logits, &labels).backward();
        tape.reset();
        opt.step(&grads);
    }
}

#[test]
fn a_run_with_dropout_resumes_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let (mp, op) = (
        dir.path().join("model.safetensors"),
        dir.path().join("opt.safetensors"),
    );
    let config = AdamConfig {
        lr: 0.01,
        ..Default::default()
    };
    let model = dropout_net(1, 10);
    let mut opt = Adam::new(model.parameters(), config);
    // 5 steps of 16 × 8 masks leave each generator in the middle of a buffered block.
    train_dropout_steps(&model, &mut opt, 5);
    io::save(&mp, &model).unwrap();
    io::save_optimizer(&op, &opt).unwrap();
    train_dropout_steps(&model, &mut opt, 6);

    // Other weights and other dropout seeds: the checkpoint must restore all of them.
    let resumed = dropout_net(2, 20);
    let mut opt2 = Adam::new(resumed.parameters(), config);
    let report = io::load_with(&mp, &resumed, &LoadOptions::new()).unwrap();
    assert_eq!(report, io::LoadReport::default());
    io::load_optimizer(&op, &mut opt2).unwrap();
    train_dropout_steps(&resumed, &mut opt2, 6);
    assert_eq!(snapshot(&resumed), snapshot(&model));

    // The same without the generators' states (the file stripped of them): masks differ, so the
    // parameters do, which shows the states are what made the run identical.
    let stripped = dir.path().join("stripped.safetensors");
    io::save_tensors(
        &stripped,
        &io::load_tensors::<f32>(&mp).unwrap(),
        &[("format", "pt")],
    )
    .unwrap();
    let fresh = dropout_net(2, 20);
    let mut opt3 = Adam::new(fresh.parameters(), config);
    let report = io::load_with(&stripped, &fresh, &LoadOptions::new()).unwrap();
    assert_eq!(report.missing_generators, ["2.generator", "5.generator"]);
    io::load_optimizer(&op, &mut opt3).unwrap();
    train_dropout_steps(&fresh, &mut opt3, 6);
    assert_ne!(snapshot(&fresh), snapshot(&model));
}

#[test]
fn generator_states_are_named_like_parameters_in_every_layer_that_draws() {
    let mut r = rng(0);
    let cfg = TransformerEncoderLayerConfig {
        dropout: 0.1,
        batch_first: true,
        ..Default::default()
    };
    let layer = TransformerEncoderLayer::<f32>::new(8, 2, cfg, &mut r);
    let encoder = TransformerEncoder::new(layer, 2, None);
    let names: Vec<String> = encoder.named_generators().into_iter().map(|(n, _)| n).collect();
    let per_layer = [
        "self_attn.dropout.generator",
        "dropout.generator",
        "dropout1.generator",
        "dropout2.generator",
    ];
    let expected: Vec<String> = (0..2)
        .flat_map(|i| per_layer.iter().map(move |n| format!("layers.{i}.{n}")))
        .collect();
    assert_eq!(names, expected);

    let lstm = Lstm::<f32>::new(
        3,
        4,
        RnnConfig {
            num_layers: 2,
            dropout: 0.5,
            ..Default::default()
        },
        &mut r,
    );
    let names: Vec<String> = lstm.named_generators().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["generator"]);

    // Saved and loaded into a fresh encoder, every generator continues where the first one is.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("encoder.safetensors");
    io::save(&path, &encoder).unwrap();
    let other = TransformerEncoder::new(
        TransformerEncoderLayer::<f32>::new(8, 2, cfg, &mut rng(5)),
        2,
        None,
    );
    io::load(&path, &other).unwrap();
    for ((name, a), (_, b)) in encoder
        .named_generators()
        .into_iter()
        .zip(other.named_generators())
    {
        assert_eq!(a.state(), b.state(), "{name}");
    }
    let x = Tensor::randn(&[2, 5, 8], &mut rng(6));
    assert_eq!(output(&encoder, &x), output(&other, &x));
}

#[test]
fn malformed_or_unknown_generator_states_are_reported_and_leave_the_model_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let model = dropout_net(1, 10);
    let tensors = io::state_dict(&model);
    let good = model.named_generators()[0].1.state().to_string();

    let bad = dir.path().join("bad.safetensors");
    io::save_tensors(
        &bad,
        &tensors,
        &[("tapegrad.generator.2.generator", "chacha12:00:1:2")],
    )
    .unwrap();
    let target = dropout_net(3, 30);
    let before = snapshot(&target);
    let states: Vec<_> = target.named_generators().iter().map(|(_, g)| g.state()).collect();
    let err = io::load(&bad, &target).unwrap_err();
    let detail = checkpoint_detail(&err);
    assert!(
        detail.contains("generator `2.generator`") && detail.contains("64 hex"),
        "{detail}"
    );
    assert_eq!(snapshot(&target), before);
    let after: Vec<_> = target.named_generators().iter().map(|(_, g)| g.state()).collect();
    assert_eq!(after, states);

    let unknown = dir.path().join("unknown.safetensors");
    io::save_tensors(
        &unknown,
        &tensors,
        &[("tapegrad.generator.9.generator", good.as_str())],
    )
    .unwrap();
    let report = io::load_with(&unknown, &target, &LoadOptions::new()).unwrap();
    assert_eq!(report.unexpected_generators, ["9.generator"]);
    assert_eq!(report.missing_generators, ["2.generator", "5.generator"]);
}
