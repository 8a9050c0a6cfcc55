//! Attention, the Transformer encoder, RmsNorm and Conv1d: outputs, attention weights and the
//! gradients of every input and parameter against PyTorch float64 references
//! (`tests/data/attention_reference.json` and the state_dicts in `tests/data/attention/`, made
//! by `make_attention_reference.py`), loaded with `tapegrad::io::load`; gradient checks in f64
//! through the public checker; modes (dropout), f32, masks and error messages.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};

use common::{cases, compare, data_path, load_json, tensor, tensors, usizes};
use serde_json::Value;
use tapegrad::gradcheck::{self, Tolerance};
use tapegrad::nn::{
    Activation, AttentionOptions, Conv1d, LayerNorm, Module, MultiheadAttention, MultiheadAttentionConfig,
    RmsNorm, TransformerEncoder, TransformerEncoderLayer, TransformerEncoderLayerConfig,
    scaled_dot_product_attention,
};
use tapegrad::rand::{SeedableRng, rngs::StdRng};
use tapegrad::{Float, Gradients, Param, Tape, Tensor, Var};

fn reference() -> Value {
    load_json("attention_reference.json")
}

fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// A boolean mask `{shape, data}`, or `None` for JSON null.
fn mask(v: &Value) -> Option<Tensor<bool>> {
    if v.is_null() {
        return None;
    }
    let data = v["data"]
        .as_array()
        .unwrap_or_else(|| panic!("expected a mask, got {v}"))
        .iter()
        .map(|b| b.as_bool().unwrap_or_else(|| panic!("expected a bool in {v}")))
        .collect();
    Some(Tensor::from_vec(data, &usizes(&v["shape"])))
}

fn flag(case: &Value, key: &str) -> bool {
    case[key]
        .as_bool()
        .unwrap_or_else(|| panic!("{}: no boolean {key:?}", case["name"]))
}

fn int(case: &Value, key: &str) -> usize {
    case[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{}: no integer {key:?}", case["name"])) as usize
}

/// Loads the case's state_dict into `module`, checks that the parameter names are PyTorch's,
/// in PyTorch's order, and switches to evaluation mode.
fn load_case<M: Module<f64>>(case: &Value, module: &mut M) {
    let name = case["name"].as_str().expect("case name");
    let path = data_path(&format!("attention/{name}.safetensors"));
    tapegrad::io::load(&path, &*module).unwrap_or_else(|e| panic!("{name}: load: {e}"));
    let ours: Vec<String> = module.named_parameters().into_iter().map(|(n, _)| n).collect();
    let theirs: Vec<String> = case["param_names"]
        .as_array()
        .expect("param_names")
        .iter()
        .map(|n| n.as_str().expect("a name").to_string())
        .collect();
    assert_eq!(ours, theirs, "{name}: parameter names");
    module.eval();
}

/// Compares the output (and weights), then the gradients of `sum(out * seed)` (+ `sum(weights *
/// weights_seed)`) with respect to the inputs and every parameter.
fn compare_case(
    failures: &mut Vec<String>,
    case: &Value,
    params: &[(String, Param<f64>)],
    inputs: &[Var<'_, f64>],
    out: Var<'_, f64>,
    weights: Option<Var<'_, f64>>,
) {
    let name = case["name"].as_str().expect("case name");
    let tape = out.tape();
    compare(
        failures,
        &format!("{name}: output"),
        &out.value(),
        &tensor(&case["out"]),
    );
    let mut loss = (out * tape.constant(tensor(&case["seed"]))).sum();
    match (weights, case["weights"].is_null()) {
        (Some(w), false) => {
            compare(
                failures,
                &format!("{name}: attention weights"),
                &w.value(),
                &tensor(&case["weights"]),
            );
            loss = loss + (w * tape.constant(tensor(&case["weights_seed"]))).sum();
        }
        (None, true) => {}
        (w, _) => failures.push(format!(
            "{name}: weights returned: {}, expected: {}",
            w.is_some(),
            !case["weights"].is_null()
        )),
    }
    let grads: Gradients<f64> = loss.backward();
    for (i, (x, want)) in inputs.iter().zip(tensors(&case["input_grads"])).enumerate() {
        compare(
            failures,
            &format!("{name}: gradient of input {i}"),
            &grads[*x],
            &want,
        );
    }
    for (pname, p) in params {
        let want = tensor(&case["param_grads"][pname.as_str()]);
        match grads.param(p) {
            Some(g) => compare(failures, &format!("{name}: gradient of {pname}"), g, &want),
            None => failures.push(format!("{name}: no gradient for {pname}")),
        }
    }
}

fn report(failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} mismatches with PyTorch:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn mha_from_case(case: &Value) -> MultiheadAttention<f64> {
    let cfg = MultiheadAttentionConfig {
        bias: flag(case, "bias"),
        batch_first: flag(case, "batch_first"),
        dropout: 0.2,
    };
    let mut m = MultiheadAttention::new(int(case, "embed_dim"), int(case, "num_heads"), cfg, &mut rng(1));
    load_case(case, &mut m);
    m
}

/// Runs the case's attention call on `tape` with the given inputs.
fn mha_call<'t>(
    m: &MultiheadAttention<f64>,
    tape: &'t Tape<f64>,
    case: &Value,
    xs: &[Var<'t, f64>],
    am: Option<&Tensor<bool>>,
    kpm: Option<&Tensor<bool>>,
) -> (Var<'t, f64>, Option<Var<'t, f64>>) {
    let opts = AttentionOptions {
        attn_mask: am,
        key_padding_mask: kpm,
        need_weights: flag(case, "need_weights"),
        average_attn_weights: flag(case, "average_attn_weights"),
        is_causal: flag(case, "is_causal"),
    };
    match xs.len() {
        1 => m.forward_attn(tape, xs[0], xs[0], xs[0], opts),
        2 => m.forward_attn(tape, xs[0], xs[1], xs[1], opts),
        _ => m.forward_attn(tape, xs[0], xs[1], xs[2], opts),
    }
}

#[test]
fn multihead_attention_matches_pytorch() {
    let r = reference();
    let mut failures = Vec::new();
    for case in cases(&r, "mha") {
        let m = mha_from_case(case);
        let (am, kpm) = (mask(&case["attn_mask"]), mask(&case["key_padding_mask"]));
        let tape = Tape::<f64>::new();
        let xs: Vec<Var<f64>> = tensors(&case["inputs"])
            .into_iter()
            .map(|t| tape.var(t))
            .collect();
        let (out, w) = mha_call(&m, &tape, case, &xs, am.as_ref(), kpm.as_ref());
        compare_case(&mut failures, case, &m.named_parameters(), &xs, out, w);
    }
    report(failures);
}

fn layer_from_case(case: &Value) -> TransformerEncoderLayer<f64> {
    let activation = match case["activation"].as_str() {
        Some("relu") => Activation::Relu,
        Some("gelu") => Activation::Gelu,
        other => panic!("unknown activation {other:?}"),
    };
    let cfg = TransformerEncoderLayerConfig {
        dim_feedforward: int(case, "dim_feedforward"),
        dropout: 0.1,
        activation,
        layer_norm_eps: case["layer_norm_eps"].as_f64().expect("eps"),
        batch_first: flag(case, "batch_first"),
        norm_first: flag(case, "norm_first"),
    };
    let mut layer = TransformerEncoderLayer::new(int(case, "d_model"), int(case, "nhead"), cfg, &mut rng(2));
    load_case(case, &mut layer);
    layer
}

#[test]
fn transformer_encoder_layer_matches_pytorch() {
    let r = reference();
    let mut failures = Vec::new();
    for case in cases(&r, "encoder_layer") {
        let layer = layer_from_case(case);
        let (sm, kpm) = (mask(&case["src_mask"]), mask(&case["src_key_padding_mask"]));
        let tape = Tape::<f64>::new();
        let x = tape.var(tensor(&case["inputs"][0]));
        let out = layer.forward_masked(&tape, x, sm.as_ref(), kpm.as_ref(), flag(case, "is_causal"));
        compare_case(&mut failures, case, &layer.named_parameters(), &[x], out, None);
    }
    report(failures);
}

#[test]
fn two_layer_transformer_encoder_with_final_norm_matches_pytorch() {
    let r = reference();
    let mut failures = Vec::new();
    for case in cases(&r, "encoder") {
        let cfg = TransformerEncoderLayerConfig {
            dim_feedforward: int(case, "dim_feedforward"),
            activation: Activation::Gelu,
            batch_first: true,
            norm_first: true,
            ..Default::default()
        };
        let d = int(case, "d_model");
        let layer = TransformerEncoderLayer::new(d, int(case, "nhead"), cfg, &mut rng(3));
        let mut enc = TransformerEncoder::new(layer, int(case, "num_layers"), Some(LayerNorm::new(d)));
        load_case(case, &mut enc);
        let kpm = mask(&case["src_key_padding_mask"]);
        let tape = Tape::<f64>::new();
        let x = tape.var(tensor(&case["inputs"][0]));
        let out = enc.forward_masked(&tape, x, None, kpm.as_ref(), false);
        compare_case(&mut failures, case, &enc.named_parameters(), &[x], out, None);
    }
    report(failures);
}

#[test]
fn rmsnorm_matches_pytorch() {
    let r = reference();
    let mut failures = Vec::new();
    for case in cases(&r, "rmsnorm") {
        let mut m = RmsNorm::<f64>::new(
            &usizes(&case["normalized_shape"]),
            case["eps"].as_f64(),
            flag(case, "elementwise_affine"),
        );
        load_case(case, &mut m);
        let tape = Tape::<f64>::new();
        let x = tape.var(tensor(&case["inputs"][0]));
        let out = m.forward(&tape, x);
        compare_case(&mut failures, case, &m.named_parameters(), &[x], out, None);
    }
    report(failures);
}

#[test]
fn conv1d_matches_pytorch() {
    let r = reference();
    let mut failures = Vec::new();
    for case in cases(&r, "conv1d") {
        let mut m = Conv1d::<f64>::with_bias(
            int(case, "in_channels"),
            int(case, "out_channels"),
            int(case, "kernel"),
            flag(case, "bias"),
            &mut rng(4),
        )
        .with_stride(int(case, "stride"))
        .with_padding(int(case, "padding"))
        .with_dilation(int(case, "dilation"));
        load_case(case, &mut m);
        let tape = Tape::<f64>::new();
        let x = tape.var(tensor(&case["inputs"][0]));
        let out = m.forward(&tape, x);
        compare_case(&mut failures, case, &m.named_parameters(), &[x], out, None);
    }
    report(failures);
}

#[test]
fn scaled_dot_product_attention_matches_pytorch() {
    let r = reference();
    let mut failures = Vec::new();
    for case in cases(&r, "sdpa") {
        let m = mask(&case["mask"]);
        let tape = Tape::<f64>::new();
        let xs: Vec<Var<f64>> = tensors(&case["inputs"])
            .into_iter()
            .map(|t| tape.var(t))
            .collect();
        let out = scaled_dot_product_attention(xs[0], xs[1], xs[2], m.as_ref(), flag(case, "is_causal"));
        compare_case(&mut failures, case, &[], &xs, out, None);
    }
    report(failures);
}

#[test]
fn f32_layers_load_the_float64_files_and_agree_with_pytorch_to_f32_precision() {
    let r = reference();
    let case = &cases(&r, "encoder_layer")[1]; // pre-norm, GELU, batch first, causal
    let cfg = TransformerEncoderLayerConfig {
        dim_feedforward: int(case, "dim_feedforward"),
        activation: Activation::Gelu,
        batch_first: true,
        norm_first: true,
        ..Default::default()
    };
    let mut layer =
        TransformerEncoderLayer::<f32>::new(int(case, "d_model"), int(case, "nhead"), cfg, &mut rng(5));
    let name = case["name"].as_str().unwrap();
    tapegrad::io::load(data_path(&format!("attention/{name}.safetensors")), &layer).unwrap();
    layer.eval();
    let tape = Tape::<f32>::new();
    let x = tape.var(tensor(&case["inputs"][0]).cast::<f32>());
    let out = layer.forward_masked(&tape, x, None, None, true);
    let want = tensor(&case["out"]);
    for (g, w) in out.value().as_slice().iter().zip(want.as_slice()) {
        assert!((f64::from(*g) - w).abs() < 1e-4 * (1.0 + w.abs()), "{g} vs {w}");
    }
    let g = (out * tape.constant(tensor(&case["seed"]).cast::<f32>()))
        .sum()
        .backward()[x]
        .clone();
    let want = tensor(&case["input_grads"][0]);
    for (g, w) in g.as_slice().iter().zip(want.as_slice()) {
        assert!((f64::from(*g) - w).abs() < 1e-3 * (1.0 + w.abs()), "{g} vs {w}");
    }
}

// ------------------------------------------------------------------ gradient checks (f64)

fn random(shape: &[usize], seed: u64) -> Tensor<f64> {
    Tensor::randn(shape, &mut rng(seed))
}

/// Checks the gradients of `f(module, inputs)` (a scalar) with respect to each input and each
/// parameter of `module`, through the public checkers with their default tolerances.
fn check_all<M: Module<f64>>(
    module: &M,
    inputs: &[Tensor<f64>],
    f: impl for<'t> Fn(&M, &'t Tape<f64>, &[Var<'t, f64>]) -> Var<'t, f64>,
) {
    gradcheck::check(|tape: &Tape<f64>, xs: &[Var<f64>]| f(module, tape, xs), inputs)
        .unwrap_or_else(|e| panic!("inputs: {e}"));
    gradcheck::check_params(
        |tape: &Tape<f64>| {
            let xs: Vec<Var<f64>> = inputs.iter().map(|t| tape.constant(t.clone())).collect();
            f(module, tape, &xs)
        },
        &module.named_parameters(),
        Tolerance::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
}

/// A fixed pseudo-random weighting, so that the loss is not a plain sum (whose gradient
/// through a softmax or a norm is degenerate).
fn weigh<'t>(tape: &'t Tape<f64>, y: Var<'t, f64>, seed: u64) -> Var<'t, f64> {
    (y * tape.constant(random(&y.shape(), seed))).sum()
}

#[test]
fn multihead_attention_gradients_with_masks_and_weights() {
    let (e, h, l, s, n) = (4, 2, 3, 4, 2);
    for batch_first in [false, true] {
        let cfg = MultiheadAttentionConfig {
            batch_first,
            ..Default::default()
        };
        let m = MultiheadAttention::<f64>::new(e, h, cfg, &mut rng(10));
        // Non-zero biases so that their gradients are exercised away from 0.
        m.in_proj_bias.as_ref().unwrap().set_value(random(&[3 * e], 11));
        m.out_proj.bias.as_ref().unwrap().set_value(random(&[e], 12));
        let am = Tensor::from_fn(&[l, s], |i| i % 5 == 1);
        let kpm = Tensor::from_vec(
            vec![false, false, false, false, true, false, false, true],
            &[n, s],
        );
        let shape = |len: usize| if batch_first { [n, len, e] } else { [len, n, e] };
        let inputs = [
            random(&shape(l), 13),
            random(&shape(s), 14),
            random(&shape(s), 15),
        ];
        check_all(&m, &inputs, |m, tape, xs| {
            let opts = AttentionOptions {
                attn_mask: Some(&am),
                key_padding_mask: Some(&kpm),
                ..Default::default()
            };
            let (out, w) = m.forward_attn(tape, xs[0], xs[1], xs[2], opts);
            weigh(tape, out, 16) + weigh(tape, w.unwrap(), 17)
        });
        // Self-attention (the packed projection), causal, per-head weights.
        check_all(&m, &inputs[..1], |m, tape, xs| {
            let opts = AttentionOptions {
                is_causal: true,
                average_attn_weights: false,
                ..Default::default()
            };
            let (out, w) = m.forward_attn(tape, xs[0], xs[0], xs[0], opts);
            weigh(tape, out, 18) + weigh(tape, w.unwrap(), 19)
        });
    }
}

#[test]
fn encoder_layer_gradients_post_and_pre_norm() {
    for (norm_first, activation, batch_first) in [
        (false, Activation::Relu, false),
        (true, Activation::Gelu, true),
        (false, Activation::Gelu, true),
    ] {
        let cfg = TransformerEncoderLayerConfig {
            dim_feedforward: 6,
            activation,
            batch_first,
            norm_first,
            ..Default::default()
        };
        let mut layer = TransformerEncoderLayer::<f64>::new(4, 2, cfg, &mut rng(20));
        layer.eval();
        for (name, p) in layer.named_parameters() {
            if name.ends_with("bias") || name.starts_with("norm") {
                p.set_value(random(&p.shape(), 21 + name.len() as u64) * 0.5);
            }
        }
        let pad = Tensor::from_vec(vec![false, false, false, false, false, true], &[2, 3]);
        let x = random(if batch_first { &[2, 3, 4] } else { &[3, 2, 4] }, 22);
        check_all(&layer, std::slice::from_ref(&x), |layer, tape, xs| {
            weigh(
                tape,
                layer.forward_masked(tape, xs[0], None, Some(&pad), norm_first),
                23,
            )
        });
    }
}

#[test]
fn encoder_stack_gradients_reach_every_layer() {
    let cfg = TransformerEncoderLayerConfig {
        dim_feedforward: 5,
        dropout: 0.0,
        norm_first: true,
        ..Default::default()
    };
    let layer = TransformerEncoderLayer::<f64>::new(4, 1, cfg, &mut rng(30));
    let enc = TransformerEncoder::new(layer, 2, Some(LayerNorm::new(4)));
    // Give the copies different values, so that a shared parameter would show.
    enc.layers[1].linear1.weight.set_value(random(&[5, 4], 31));
    check_all(&enc, &[random(&[3, 2, 4], 32)], |enc, tape, xs| {
        weigh(tape, enc.forward(tape, xs[0]), 33)
    });
}

#[test]
fn rmsnorm_and_conv1d_gradients() {
    let norm = RmsNorm::<f64>::new(&[2, 3], None, true);
    norm.weight.as_ref().unwrap().set_value(random(&[2, 3], 40));
    check_all(&norm, &[random(&[4, 2, 3], 41)], |m, tape, xs| {
        weigh(tape, m.forward(tape, xs[0]), 42)
    });
    let plain = RmsNorm::<f64>::new(&[3], Some(1e-2), false);
    check_all(&plain, &[random(&[2, 3], 43)], |m, tape, xs| {
        weigh(tape, m.forward(tape, xs[0]), 44)
    });

    let conv = Conv1d::<f64>::new(2, 3, 3, &mut rng(45))
        .with_stride(2)
        .with_padding(2)
        .with_dilation(2);
    check_all(&conv, &[random(&[2, 2, 7], 46)], |m, tape, xs| {
        weigh(tape, m.forward(tape, xs[0]), 47)
    });
    check_all(&conv, &[random(&[2, 5], 48)], |m, tape, xs| {
        weigh(tape, m.forward(tape, xs[0]), 49)
    });
}

#[test]
fn conv1d_is_differentiable_twice() {
    let w = random(&[2, 2, 3], 50);
    gradcheck::check_second_order(
        |tape: &Tape<f64>, xs: &[Var<f64>]| {
            let y = xs[0].conv1d(&tape.constant(w.clone()), None, 2, 1, 1);
            (y.square() * tape.constant(random(&y.shape(), 51))).sum()
        },
        &[random(&[1, 2, 6], 52)],
    )
    .unwrap();
}

#[test]
fn scaled_dot_product_attention_gradients_with_masks() {
    let mask = Tensor::from_vec(vec![false, true, false, false, false, true], &[3, 2]);
    let inputs = [
        random(&[2, 3, 3], 60),
        random(&[2, 2, 3], 61),
        random(&[2, 2, 4], 62),
    ];
    for causal in [false, true] {
        gradcheck::check(
            |tape: &Tape<f64>, xs: &[Var<f64>]| {
                // mask | causal leaves query 0 with no key when causal: its row is 0.
                let y = scaled_dot_product_attention(xs[0], xs[1], xs[2], Some(&mask), causal);
                weigh(tape, y, 63)
            },
            &inputs,
        )
        .unwrap_or_else(|e| panic!("causal {causal}: {e}"));
    }
    // Second order through softmax and the masks.
    gradcheck::check_second_order(
        |tape: &Tape<f64>, xs: &[Var<f64>]| {
            let y = scaled_dot_product_attention(xs[0], xs[1], xs[2], Some(&mask), true);
            weigh(tape, y, 64)
        },
        &inputs,
    )
    .unwrap();
}

// ------------------------------------------------------------------ behaviour

#[test]
fn fully_masked_queries_get_zero_weights_output_and_gradients() {
    let mut r = rng(70);
    let cfg = MultiheadAttentionConfig {
        batch_first: true,
        ..Default::default()
    };
    let m = MultiheadAttention::<f64>::new(4, 2, cfg, &mut r);
    m.out_proj.bias.as_ref().unwrap().set_value(random(&[4], 71));
    let tape = Tape::<f64>::new();
    let x = tape.var(Tensor::randn(&[1, 2, 4], &mut r));
    // Query 0 may attend to nothing; query 1 to key 1 only.
    let am = Tensor::from_vec(vec![true, true, true, false], &[2, 2]);
    let opts = AttentionOptions {
        attn_mask: Some(&am),
        ..Default::default()
    };
    let (out, w) = m.forward_attn(&tape, x, x, x, opts);
    let w = w.unwrap().value();
    assert_eq!(w.to_vec(), vec![0.0, 0.0, 0.0, 1.0]);
    // The empty query's output is the output projection's bias.
    let bias = m.out_proj.bias.as_ref().unwrap().value();
    for j in 0..4 {
        assert!((out.value().get(&[0, 0, j]) - bias.as_slice()[j]).abs() < 1e-15);
    }
    let grads = out.sum().backward();
    assert!(grads[x].all_finite());
    assert!(grads.param(&m.in_proj_weight).unwrap().all_finite());
}

#[test]
fn causal_flag_equals_an_explicit_causal_mask_and_self_attention_equals_the_general_path() {
    let mut r = rng(80);
    let m = MultiheadAttention::<f64>::new(6, 3, MultiheadAttentionConfig::default(), &mut r);
    m.in_proj_bias.as_ref().unwrap().set_value(random(&[18], 81));
    let tape = Tape::<f64>::new();
    let x = tape.var(Tensor::randn(&[4, 2, 6], &mut r)); // [L, N, E]
    let causal = Tensor::from_fn(&[4, 4], |i| i % 4 > i / 4);
    let flagged = m.forward_attn(
        &tape,
        x,
        x,
        x,
        AttentionOptions {
            is_causal: true,
            ..Default::default()
        },
    );
    let explicit = m.forward_attn(
        &tape,
        x,
        x,
        x,
        AttentionOptions {
            attn_mask: Some(&causal),
            ..Default::default()
        },
    );
    // Distinct vars with the same values take the three-product path.
    let (k, v) = (x * 1.0, x + 0.0);
    let general = m.forward_attn(
        &tape,
        x,
        k,
        v,
        AttentionOptions {
            is_causal: true,
            ..Default::default()
        },
    );
    for other in [&explicit, &general] {
        for (a, b) in flagged
            .0
            .value()
            .as_slice()
            .iter()
            .zip(other.0.value().as_slice())
        {
            assert!((a - b).abs() < 1e-13, "{a} vs {b}");
        }
        let (wa, wb) = (flagged.1.unwrap().value(), other.1.unwrap().value());
        for (a, b) in wa.as_slice().iter().zip(wb.as_slice()) {
            assert!((a - b).abs() < 1e-13, "{a} vs {b}");
        }
    }
    // Causal weights: nothing above the diagonal.
    let w = flagged.1.unwrap().value();
    assert_eq!(w.shape(), &[2, 4, 4]);
    assert_eq!(w.get(&[1, 0, 1]), 0.0);
    assert!(w.get(&[1, 1, 0]) > 0.0);
}

#[test]
fn dropout_acts_in_training_only() {
    let cfg = MultiheadAttentionConfig {
        dropout: 0.5,
        batch_first: true,
        ..Default::default()
    };
    let mut m = MultiheadAttention::<f64>::new(4, 1, cfg, &mut rng(90));
    let tape = Tape::<f64>::new();
    let x = tape.var(random(&[2, 8, 4], 91));
    let (_, w) = m.forward_attn(&tape, x, x, x, AttentionOptions::default());
    let w = w.unwrap().value();
    // One head: the weights returned are the dropped-out ones, 0 or twice a probability.
    let zeros = w.as_slice().iter().filter(|&&v| v == 0.0).count();
    assert!(zeros > 20 && zeros < 108, "{zeros} of 128 dropped");
    m.eval();
    let (a, wa) = m.forward_attn(&tape, x, x, x, AttentionOptions::default());
    let (b, _) = m.forward_attn(&tape, x, x, x, AttentionOptions::default());
    assert_eq!(a.value(), b.value());
    let wa = wa.unwrap().value();
    for row in wa.as_slice().chunks(8) {
        assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }

    let mut layer = TransformerEncoderLayer::<f32>::new(
        8,
        2,
        TransformerEncoderLayerConfig {
            dim_feedforward: 16,
            ..Default::default()
        },
        &mut rng(92),
    );
    let tape = Tape::<f32>::new();
    let x = tape.var(Tensor::randn(&[5, 3, 8], &mut rng(93)));
    let t1 = layer.forward(&tape, x).value();
    let t2 = layer.forward(&tape, x).value();
    assert_ne!(t1, t2, "dropout masks differ between calls in training");
    layer.eval();
    assert!(!layer.self_attn.is_training() && !layer.linear1.is_training());
    let e1 = layer.forward(&tape, x).value();
    assert_eq!(e1, layer.forward(&tape, x).value());
    assert_ne!(e1, t1);
    let g = layer.forward(&tape, x).square().mean().backward();
    assert!(g[x].all_finite());
    for p in layer.parameters() {
        assert!(g.param(&p).unwrap().all_finite());
    }
}

#[test]
fn encoder_copies_have_parameters_of_their_own() {
    let cfg = TransformerEncoderLayerConfig {
        dim_feedforward: 8,
        ..Default::default()
    };
    let layer = TransformerEncoderLayer::<f32>::new(4, 2, cfg, &mut rng(100));
    let enc = TransformerEncoder::new(layer, 3, None);
    assert_eq!(enc.layers.len(), 3);
    let before = enc.layers[2].self_attn.in_proj_weight.value();
    enc.layers[0]
        .self_attn
        .in_proj_weight
        .set_value(Tensor::zeros(&[12, 4]));
    assert_eq!(enc.layers[2].self_attn.in_proj_weight.value(), before);
    let names: Vec<String> = enc.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names.len(), 36);
    assert_eq!(names[35], "layers.2.norm2.bias");
}

#[test]
fn initialisation_follows_pytorch() {
    let m = MultiheadAttention::<f64>::new(8, 2, MultiheadAttentionConfig::default(), &mut rng(110));
    let bound = (6.0f64 / (24.0 + 8.0)).sqrt(); // xavier_uniform of [3E, E]
    let w = m.in_proj_weight.value();
    assert_eq!(w.shape(), &[24, 8]);
    assert!(w.as_slice().iter().all(|v| v.abs() <= bound));
    assert!(w.as_slice().iter().any(|v| v.abs() > 0.8 * bound));
    assert!(
        m.in_proj_bias
            .as_ref()
            .unwrap()
            .value()
            .as_slice()
            .iter()
            .all(|&v| v == 0.0)
    );
    assert!(
        m.out_proj
            .bias
            .as_ref()
            .unwrap()
            .value()
            .as_slice()
            .iter()
            .all(|&v| v == 0.0)
    );
    let ow = m.out_proj.weight.value();
    assert!(ow.as_slice().iter().all(|v| v.abs() <= 1.0 / 8f64.sqrt()));
    let no_bias = MultiheadAttention::<f32>::new(
        8,
        2,
        MultiheadAttentionConfig {
            bias: false,
            ..Default::default()
        },
        &mut rng(111),
    );
    assert_eq!(no_bias.parameters().len(), 2);
    let d = TransformerEncoderLayerConfig::default();
    assert_eq!(
        (
            d.dim_feedforward,
            d.dropout,
            d.activation,
            d.layer_norm_eps,
            d.batch_first,
            d.norm_first
        ),
        (2048, 0.1, Activation::Relu, 1e-5, false, false)
    );
    let layer = TransformerEncoderLayer::<f32>::new(8, 2, d, &mut rng(112));
    assert_eq!(layer.linear1.weight.shape(), vec![2048, 8]);
    assert_eq!(layer.self_attn.dropout(), 0.1);
    assert_eq!(layer.norm1.eps, 1e-5);
    assert_eq!(
        RmsNorm::<f32>::new(&[4], None, true).effective_eps(),
        f64::from(f32::EPSILON)
    );
}

// ------------------------------------------------------------------ errors

/// The panic message of `f`.
fn panic_message(f: impl FnOnce()) -> String {
    let err = catch_unwind(AssertUnwindSafe(f)).expect_err("expected a panic");
    err.downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

fn expect_panic(f: impl FnOnce(), parts: &[&str]) {
    let msg = panic_message(f);
    for p in parts {
        assert!(msg.contains(p), "message {msg:?} lacks {p:?}");
    }
}

#[test]
fn bad_shapes_and_masks_panic_with_clear_messages() {
    expect_panic(
        || {
            MultiheadAttention::<f32>::new(6, 4, MultiheadAttentionConfig::default(), &mut rng(0));
        },
        &["MultiheadAttention", "embed_dim 6", "num_heads 4"],
    );
    let m = MultiheadAttention::<f64>::new(4, 2, MultiheadAttentionConfig::default(), &mut rng(0));
    let tape = Tape::<f64>::new();
    let x = tape.var(Tensor::zeros(&[3, 2, 4])); // [L, N, E]
    expect_panic(
        || {
            m.forward(&tape, tape.var(Tensor::zeros(&[3, 2, 5])));
        },
        &["MultiheadAttention", "embed_dim 4", "[3, 2, 5]"],
    );
    expect_panic(
        || {
            m.forward(&tape, tape.var(Tensor::zeros(&[4])));
        },
        &["MultiheadAttention", "rank 3", "[4]"],
    );
    expect_panic(
        || {
            let kv = tape.var(Tensor::zeros(&[5, 3, 4]));
            m.forward_attn(&tape, x, kv, kv, AttentionOptions::default());
        },
        &["MultiheadAttention", "batch sizes", "[3, 2, 4]", "[5, 3, 4]"],
    );
    expect_panic(
        || {
            let k = tape.var(Tensor::zeros(&[5, 2, 4]));
            let v = tape.var(Tensor::zeros(&[6, 2, 4]));
            m.forward_attn(&tape, x, k, v, AttentionOptions::default());
        },
        &["key and value must have the same shape", "[5, 2, 4]", "[6, 2, 4]"],
    );
    let bad = Tensor::<bool>::from_vec(vec![false; 6], &[2, 3]);
    expect_panic(
        || {
            let opts = AttentionOptions {
                attn_mask: Some(&bad),
                ..Default::default()
            };
            m.forward_attn(&tape, x, x, x, opts);
        },
        &[
            "attn_mask must be [L, S] = [3, 3]",
            "[N·num_heads = 4, L, S]",
            "[2, 3]",
        ],
    );
    let bad = Tensor::<bool>::from_vec(vec![false; 6], &[3, 2]);
    expect_panic(
        || {
            let opts = AttentionOptions {
                key_padding_mask: Some(&bad),
                ..Default::default()
            };
            m.forward_attn(&tape, x, x, x, opts);
        },
        &["key_padding_mask must be [N, S] = [2, 3]", "[3, 2]"],
    );

    let q = tape.var(Tensor::zeros(&[2, 3, 4]));
    expect_panic(
        || {
            scaled_dot_product_attention(q, tape.var(Tensor::zeros(&[2, 5, 3])), q, None, false);
        },
        &[
            "scaled_dot_product_attention",
            "last axes differ",
            "[2, 3, 4]",
            "[2, 5, 3]",
        ],
    );
    expect_panic(
        || {
            let k = tape.var(Tensor::zeros(&[2, 5, 4]));
            scaled_dot_product_attention(q, k, q, None, false);
        },
        &[
            "scaled_dot_product_attention",
            "numbers of keys",
            "[2, 5, 4]",
            "[2, 3, 4]",
        ],
    );
    let bad = Tensor::<bool>::from_vec(vec![false; 4], &[4]);
    expect_panic(
        || {
            scaled_dot_product_attention(q, q, q, Some(&bad), false);
        },
        &["scaled_dot_product_attention", "mask of shape [4]", "[2, 3, 3]"],
    );
    expect_panic(
        || {
            scaled_dot_product_attention(tape.var(Tensor::zeros(&[4])), q, q, None, false);
        },
        &["scaled_dot_product_attention", "at least two axes", "[4]"],
    );

    let conv = Conv1d::<f64>::new(3, 2, 4, &mut rng(0));
    expect_panic(
        || {
            conv.forward(&tape, tape.var(Tensor::zeros(&[1, 2, 8])));
        },
        &["conv1d", "2 channels", "expects 3", "[1, 2, 8]"],
    );
    expect_panic(
        || {
            conv.forward(&tape, tape.var(Tensor::zeros(&[1, 3, 2])));
        },
        &["conv1d", "larger than the padded input", "[1, 3, 1, 2]"],
    );
    expect_panic(
        || {
            conv.forward(&tape, tape.var(Tensor::zeros(&[1, 1, 3, 8])));
        },
        &["conv1d", "[N, C_in, L]", "[1, 1, 3, 8]"],
    );
    expect_panic(
        || {
            Conv1d::from_params(Param::new(Tensor::<f64>::zeros(&[2, 3])), None);
        },
        &["Conv1d", "[out, in, k]", "[2, 3]"],
    );
    let norm = RmsNorm::<f64>::new(&[2, 3], None, true);
    expect_panic(
        || {
            norm.forward(&tape, tape.var(Tensor::zeros(&[3, 2])));
        },
        &["RmsNorm", "[3, 2]", "normalized_shape [2, 3]"],
    );
}

#[test]
fn layers_work_in_f32_and_f64() {
    fn run<T: Float>() {
        let cfg = TransformerEncoderLayerConfig {
            dim_feedforward: 12,
            dropout: 0.0,
            activation: Activation::Gelu,
            batch_first: true,
            norm_first: true,
            ..Default::default()
        };
        let layer = TransformerEncoderLayer::<T>::new(6, 3, cfg, &mut rng(120));
        let enc = TransformerEncoder::new(layer, 2, Some(LayerNorm::new(6)));
        let norm = RmsNorm::<T>::new(&[6], None, true);
        let conv = Conv1d::<T>::new(6, 6, 3, &mut rng(121)).with_padding(1);
        let tape = Tape::<T>::new();
        let x = tape.var(Tensor::<T>::randn(&[2, 5, 6], &mut rng(122)));
        let y = norm.forward(&tape, enc.forward_masked(&tape, x, None, None, true));
        let y = conv.forward(&tape, y.permute(&[0, 2, 1]));
        let grads = y.square().mean().backward();
        assert!(grads[x].all_finite(), "{}", T::NAME);
        assert_eq!(
            grads.param(&enc.layers[1].linear2.weight).unwrap().shape(),
            &[6, 12]
        );
    }
    run::<f32>();
    run::<f64>();
}
