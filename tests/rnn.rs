//! Recurrent layers (`Rnn`, `Lstm`, `Gru`) and cells against PyTorch float64 reference values
//! (`tests/data/rnn_reference.json` and the `rnn_*.safetensors` state_dicts, made by
//! `make_rnn_reference.py` beside them), gradient checks in f64 over inputs, initial states and
//! every parameter (second order too), shape errors, f32 finiteness and dropout's modes.

mod common;

use common::{cases, compare, data_path, load_json, tensor, usizes};
use serde_json::Value;
use tapegrad::gradcheck::{self, Tolerance};
use tapegrad::nn::{Forward, Gru, GruCell, Lstm, LstmCell, Module, Rnn, RnnCell, RnnConfig, RnnNonlinearity};
use tapegrad::rand::{SeedableRng, rngs::StdRng};
use tapegrad::{Tape, Tensor, Var};

/// One of the three layers, run through a common interface.
enum Layer {
    Rnn(Rnn<f64>),
    Lstm(Lstm<f64>),
    Gru(Gru<f64>),
}

/// (output, h_n, c_n)
type Run<'t> = (Var<'t, f64>, Var<'t, f64>, Option<Var<'t, f64>>);

impl Layer {
    fn new(kind: &str, input: usize, hidden: usize, cfg: RnnConfig, seed: u64) -> Layer {
        let rng = &mut StdRng::seed_from_u64(seed);
        match kind {
            "lstm" => Layer::Lstm(Lstm::new(input, hidden, cfg, rng)),
            "gru" => Layer::Gru(Gru::new(input, hidden, cfg, rng)),
            "rnn_tanh" => Layer::Rnn(Rnn::new(
                input,
                hidden,
                RnnConfig {
                    nonlinearity: RnnNonlinearity::Tanh,
                    ..cfg
                },
                rng,
            )),
            "rnn_relu" => Layer::Rnn(Rnn::new(
                input,
                hidden,
                RnnConfig {
                    nonlinearity: RnnNonlinearity::Relu,
                    ..cfg
                },
                rng,
            )),
            other => panic!("unknown layer kind {other}"),
        }
    }

    fn module(&self) -> &dyn Forward<f64> {
        match self {
            Layer::Rnn(l) => l,
            Layer::Lstm(l) => l,
            Layer::Gru(l) => l,
        }
    }

    fn module_mut(&mut self) -> &mut dyn Forward<f64> {
        match self {
            Layer::Rnn(l) => l,
            Layer::Lstm(l) => l,
            Layer::Gru(l) => l,
        }
    }

    fn run<'t>(
        &self,
        tape: &'t Tape<f64>,
        x: Var<'t, f64>,
        h0: Option<Var<'t, f64>>,
        c0: Option<Var<'t, f64>>,
        lengths: Option<&[usize]>,
    ) -> Run<'t> {
        match self {
            Layer::Lstm(l) => {
                let state = h0.map(|h| (h, c0.expect("an LSTM's h0 comes with c0")));
                let (out, (h, c)) = match lengths {
                    Some(ls) => l.forward_with_lengths(tape, x, ls, state),
                    None => l.forward_with_state(tape, x, state),
                };
                (out, h, Some(c))
            }
            Layer::Gru(l) => {
                let (out, h) = match lengths {
                    Some(ls) => l.forward_with_lengths(tape, x, ls, h0),
                    None => l.forward_with_state(tape, x, h0),
                };
                (out, h, None)
            }
            Layer::Rnn(l) => {
                let (out, h) = match lengths {
                    Some(ls) => l.forward_with_lengths(tape, x, ls, h0),
                    None => l.forward_with_state(tape, x, h0),
                };
                (out, h, None)
            }
        }
    }
}

fn config(case: &Value) -> RnnConfig {
    RnnConfig {
        num_layers: case["num_layers"].as_u64().unwrap() as usize,
        bias: case["bias"].as_bool().unwrap(),
        batch_first: case["batch_first"].as_bool().unwrap(),
        bidirectional: case["bidirectional"].as_bool().unwrap(),
        ..Default::default()
    }
}

fn optional(v: &Value) -> Option<Tensor<f64>> {
    (!v.is_null()).then(|| tensor(v))
}

#[test]
fn layers_match_pytorch() {
    let reference = load_json("rnn_reference.json");
    let mut failures = Vec::new();
    for case in cases(&reference, "cases") {
        let name = case["name"].as_str().unwrap();
        let layer = Layer::new(
            case["kind"].as_str().unwrap(),
            case["input_size"].as_u64().unwrap() as usize,
            case["hidden_size"].as_u64().unwrap() as usize,
            config(case),
            1,
        );
        let module = layer.module();
        let names: Vec<String> = module.named_parameters().into_iter().map(|(n, _)| n).collect();
        let torch_names: Vec<String> = case["param_names"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap().to_string())
            .collect();
        assert_eq!(names, torch_names, "{name}: parameter names and order");
        tapegrad::io::load(data_path(case["weights"].as_str().unwrap()), module)
            .unwrap_or_else(|e| panic!("{name}: {e}"));

        let tape = Tape::<f64>::new();
        let x = tape.var(tensor(&case["x"]));
        let h0 = optional(&case["h0"]).map(|t| tape.var(t));
        let c0 = optional(&case["c0"]).map(|t| tape.var(t));
        let lengths = (!case["lengths"].is_null()).then(|| usizes(&case["lengths"]));
        let (out, h_n, c_n) = layer.run(&tape, x, h0, c0, lengths.as_deref());
        compare(
            &mut failures,
            &format!("{name}: output"),
            &out.value(),
            &tensor(&case["out"]),
        );
        compare(
            &mut failures,
            &format!("{name}: h_n"),
            &h_n.value(),
            &tensor(&case["h_n"]),
        );
        let mut loss = (out * tape.constant(tensor(&case["w_out"]))).sum()
            + (h_n * tape.constant(tensor(&case["w_h"]))).sum();
        match (c_n, optional(&case["c_n"])) {
            (Some(c_n), Some(want)) => {
                compare(&mut failures, &format!("{name}: c_n"), &c_n.value(), &want);
                loss = loss + (c_n * tape.constant(tensor(&case["w_c"]))).sum();
            }
            (None, None) => {}
            _ => failures.push(format!("{name}: c_n present on one side only")),
        }
        compare(
            &mut failures,
            &format!("{name}: loss"),
            &loss.value(),
            &Tensor::scalar(case["loss"].as_f64().unwrap()),
        );
        let grads = loss.backward();
        compare(
            &mut failures,
            &format!("{name}: grad x"),
            &grads[x],
            &tensor(&case["grad_x"]),
        );
        if let Some(h0) = h0 {
            compare(
                &mut failures,
                &format!("{name}: grad h0"),
                &grads[h0],
                &tensor(&case["grad_h0"]),
            );
        }
        if let Some(c0) = c0 {
            compare(
                &mut failures,
                &format!("{name}: grad c0"),
                &grads[c0],
                &tensor(&case["grad_c0"]),
            );
        }
        for (pname, p) in module.named_parameters() {
            let got = grads
                .param(&p)
                .unwrap_or_else(|| panic!("{name}: no gradient for {pname}"));
            compare(
                &mut failures,
                &format!("{name}: grad {pname}"),
                got,
                &tensor(&case["grad_params"][&pname]),
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The f32 layers load the same float64 state_dicts and agree to f32 precision.
#[test]
fn f32_layers_match_pytorch_to_f32_precision() {
    let reference = load_json("rnn_reference.json");
    let mut checked = 0;
    for case in cases(&reference, "cases") {
        let name = case["name"].as_str().unwrap();
        if case["kind"] != "lstm" || !case["h0"].is_null() {
            continue;
        }
        let cfg = config(case);
        let (input, hidden) = (
            case["input_size"].as_u64().unwrap() as usize,
            case["hidden_size"].as_u64().unwrap() as usize,
        );
        let lstm = Lstm::<f32>::new(input, hidden, cfg, &mut StdRng::seed_from_u64(0));
        tapegrad::io::load(data_path(case["weights"].as_str().unwrap()), &lstm).unwrap();
        let to32 =
            |t: Tensor<f64>| Tensor::from_vec(t.as_slice().iter().map(|&v| v as f32).collect(), t.shape());
        let tape = Tape::<f32>::new();
        let x = tape.constant(to32(tensor(&case["x"])));
        let lengths = (!case["lengths"].is_null()).then(|| usizes(&case["lengths"]));
        let (out, (h, c)) = match &lengths {
            Some(ls) => lstm.forward_with_lengths(&tape, x, ls, None),
            None => lstm.forward_with_state(&tape, x, None),
        };
        for (what, got, key) in [("out", out, "out"), ("h_n", h, "h_n"), ("c_n", c, "c_n")] {
            let want = tensor(&case[key]);
            assert_eq!(got.shape(), want.shape(), "{name}: {what}");
            for (g, w) in got.value().as_slice().iter().zip(want.as_slice()) {
                assert!(
                    (*g as f64 - w).abs() <= 1e-6 + 1e-5 * w.abs(),
                    "{name}: {what}: {g} vs {w}"
                );
            }
        }
        checked += 1;
    }
    assert!(checked >= 2, "only {checked} LSTM cases without an initial state");
}

/// Outputs, final states (and c_n) in one vector, so the checker sees all of them.
fn flat_all<'t>((out, h, c): Run<'t>) -> Var<'t, f64> {
    let mut parts = vec![
        out.reshape(&[out.value().numel()]),
        h.reshape(&[h.value().numel()]),
    ];
    if let Some(c) = c {
        parts.push(c.reshape(&[c.value().numel()]));
    }
    Var::cat(&parts, 0)
}

struct GradCase {
    kind: &'static str,
    cfg: RnnConfig,
    /// The input's shape.
    x: &'static [usize],
    state: bool,
    lengths: Option<&'static [usize]>,
}

fn gradcheck_case(c: &GradCase) {
    let (input, hidden) = (*c.x.last().unwrap(), 2);
    let layer = Layer::new(c.kind, input, hidden, c.cfg, 7);
    let rng = &mut StdRng::seed_from_u64(3);
    let dirs = if c.cfg.bidirectional { 2 } else { 1 };
    let batch = match c.x {
        [_, _] => None,
        [a, b, _] => Some(if c.cfg.batch_first { *a } else { *b }),
        _ => unreachable!(),
    };
    let state_shape: Vec<usize> = match batch {
        Some(n) => vec![dirs * c.cfg.num_layers, n, hidden],
        None => vec![dirs * c.cfg.num_layers, hidden],
    };
    let x = Tensor::randn(c.x, rng);
    let mut inputs = vec![x.clone()];
    let lstm = c.kind == "lstm";
    if c.state {
        inputs.push(Tensor::randn(&state_shape, rng));
        if lstm {
            inputs.push(Tensor::randn(&state_shape, rng));
        }
    }
    let what = format!(
        "{} {:?} x {:?} lengths {:?} state {}",
        c.kind, c.cfg, c.x, c.lengths, c.state
    );
    gradcheck::check(
        |tape: &Tape<f64>, xs: &[Var<f64>]| {
            let h0 = xs.get(1).copied();
            let c0 = xs.get(2).copied();
            flat_all(layer.run(tape, xs[0], h0, c0, c.lengths))
        },
        &inputs,
    )
    .unwrap_or_else(|e| panic!("{what}: inputs: {e}"));
    let state: Vec<Tensor<f64>> = inputs[1..].to_vec();
    gradcheck::check_params(
        |tape: &Tape<f64>| {
            let x = tape.constant(x.clone());
            let h0 = state.first().map(|t| tape.constant(t.clone()));
            let c0 = state.get(1).map(|t| tape.constant(t.clone()));
            flat_all(layer.run(tape, x, h0, c0, c.lengths))
        },
        &layer.module().named_parameters(),
        Tolerance::default(),
    )
    .unwrap_or_else(|e| panic!("{what}: parameters: {e}"));
}

fn gradcheck_kind(kind: &'static str) {
    let deep = RnnConfig {
        num_layers: 2,
        bidirectional: true,
        batch_first: true,
        ..Default::default()
    };
    let bi = RnnConfig {
        bidirectional: true,
        ..Default::default()
    };
    let cases = [
        GradCase {
            kind,
            cfg: RnnConfig::default(),
            x: &[3, 2, 2],
            state: false,
            lengths: None,
        },
        GradCase {
            kind,
            cfg: deep,
            x: &[2, 3, 2],
            state: true,
            lengths: None,
        },
        GradCase {
            kind,
            cfg: bi,
            x: &[4, 3, 2],
            state: true,
            lengths: Some(&[2, 4, 1]),
        },
        GradCase {
            kind,
            cfg: RnnConfig {
                num_layers: 2,
                bias: false,
                ..Default::default()
            },
            x: &[3, 2],
            state: true,
            lengths: None,
        },
    ];
    for c in &cases {
        gradcheck_case(c);
    }
}

#[test]
fn lstm_gradients_match_finite_differences() {
    gradcheck_kind("lstm");
}

#[test]
fn gru_gradients_match_finite_differences() {
    gradcheck_kind("gru");
}

#[test]
fn rnn_gradients_match_finite_differences() {
    gradcheck_kind("rnn_tanh");
    gradcheck_case(&GradCase {
        kind: "rnn_relu",
        cfg: RnnConfig {
            num_layers: 2,
            ..Default::default()
        },
        x: &[3, 2, 2],
        state: true,
        lengths: Some(&[3, 2]),
    });
}

/// Gives a closure the higher-ranked signature the checker needs.
fn checkable<F>(f: F) -> F
where
    F: for<'t> Fn(&'t Tape<f64>, &[Var<'t, f64>]) -> Var<'t, f64>,
{
    f
}

#[test]
fn cells_gradients_match_finite_differences() {
    let rng = &mut StdRng::seed_from_u64(11);
    let lstm = LstmCell::<f64>::new(3, 2, rng);
    let gru = GruCell::<f64>::new(3, 2, rng);
    let rnn = RnnCell::<f64>::with_options(3, 2, true, RnnNonlinearity::Tanh, rng);
    let x = Tensor::randn(&[2, 3], rng);
    let h = Tensor::randn(&[2, 2], rng);
    let c = Tensor::randn(&[2, 2], rng);
    let inputs = [x.clone(), h.clone(), c.clone()];
    let lstm_step = checkable(|tape, xs| {
        let (h, c) = lstm.forward_step(tape, xs[0], Some((xs[1], xs[2])));
        Var::cat(&[h, c], 1)
    });
    gradcheck::check(lstm_step, &inputs).unwrap();
    gradcheck::check_second_order(lstm_step, &inputs).unwrap();
    gradcheck::check_params(
        |tape: &Tape<f64>| {
            let (h, c) = lstm.forward_step(
                tape,
                tape.constant(x.clone()),
                Some((tape.constant(h.clone()), tape.constant(c.clone()))),
            );
            Var::cat(&[h, c], 1)
        },
        &lstm.named_parameters(),
        Tolerance::default(),
    )
    .unwrap();
    for cell in [&gru as &dyn Forward<f64>, &rnn] {
        gradcheck::check_module(cell, &x).unwrap();
    }
    let gru_step = checkable(|tape, xs| gru.forward_step(tape, xs[0], Some(xs[1])));
    gradcheck::check(gru_step, &inputs[..2]).unwrap();
    gradcheck::check_second_order(gru_step, &inputs[..2]).unwrap();
    let rnn_step = checkable(|tape, xs| rnn.forward_step(tape, xs[0], Some(xs[1])));
    gradcheck::check(rnn_step, &inputs[..2]).unwrap();
}

#[test]
fn layers_second_order() {
    let mut rng = StdRng::seed_from_u64(5);
    let cfg = RnnConfig {
        bidirectional: true,
        ..Default::default()
    };
    for kind in ["lstm", "gru", "rnn_tanh"] {
        let layer = Layer::new(kind, 2, 2, cfg, 9);
        let x = Tensor::randn(&[3, 2, 2], &mut rng);
        gradcheck::check_second_order(
            |tape: &Tape<f64>, xs: &[Var<f64>]| flat_all(layer.run(tape, xs[0], None, None, Some(&[3, 2]))),
            &[x],
        )
        .unwrap_or_else(|e| panic!("{kind}: {e}"));
    }
}

/// The cells and the layers share one rule: a hand loop over a cell with the layer's weights
/// gives the layer's output.
#[test]
fn cells_agree_with_layers() {
    let mut rng = StdRng::seed_from_u64(2);
    let copy = |from: &dyn Module<f64>, to: &dyn Module<f64>| {
        for ((_, a), (_, b)) in from.named_parameters().iter().zip(to.named_parameters()) {
            b.set_value(a.value());
        }
    };
    let x = Tensor::randn(&[4, 3, 2], &mut rng);
    let tape = Tape::<f64>::new();
    let xs = tape.constant(x.clone());
    let step = |t: usize| xs.narrow(0, t, 1).squeeze(0);

    let lstm = Lstm::<f64>::new(2, 3, RnnConfig::default(), &mut rng);
    let cell = LstmCell::<f64>::new(2, 3, &mut rng);
    copy(&lstm, &cell);
    let mut state = None;
    let mut outs = Vec::new();
    for t in 0..4 {
        let s = cell.forward_step(&tape, step(t), state);
        outs.push(s.0);
        state = Some(s);
    }
    assert_eq!(Var::stack(&outs, 0).value(), lstm.forward(&tape, xs).value());

    let gru = Gru::<f64>::new(2, 3, RnnConfig::default(), &mut rng);
    let cell = GruCell::<f64>::new(2, 3, &mut rng);
    copy(&gru, &cell);
    let mut h = None;
    let mut outs = Vec::new();
    for t in 0..4 {
        let next = cell.forward_step(&tape, step(t), h);
        outs.push(next);
        h = Some(next);
    }
    assert_eq!(Var::stack(&outs, 0).value(), gru.forward(&tape, xs).value());

    let cfg = RnnConfig {
        nonlinearity: RnnNonlinearity::Relu,
        ..Default::default()
    };
    let rnn = Rnn::<f64>::new(2, 3, cfg, &mut rng);
    let cell = RnnCell::<f64>::with_options(2, 3, true, RnnNonlinearity::Relu, &mut rng);
    copy(&rnn, &cell);
    let mut h = None;
    let mut outs = Vec::new();
    for t in 0..4 {
        let next = cell.forward_step(&tape, step(t), h);
        outs.push(next);
        h = Some(next);
    }
    assert_eq!(Var::stack(&outs, 0).value(), rnn.forward(&tape, xs).value());
}

#[test]
fn parameters_have_pytorch_names_shapes_and_init() {
    let mut rng = StdRng::seed_from_u64(0);
    let cfg = RnnConfig {
        num_layers: 2,
        bidirectional: true,
        ..Default::default()
    };
    let gru = Gru::<f64>::new(5, 16, cfg, &mut rng);
    let params = gru.named_parameters();
    let names: Vec<&str> = params.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "weight_ih_l0",
            "weight_hh_l0",
            "bias_ih_l0",
            "bias_hh_l0",
            "weight_ih_l0_reverse",
            "weight_hh_l0_reverse",
            "bias_ih_l0_reverse",
            "bias_hh_l0_reverse",
            "weight_ih_l1",
            "weight_hh_l1",
            "bias_ih_l1",
            "bias_hh_l1",
            "weight_ih_l1_reverse",
            "weight_hh_l1_reverse",
            "bias_ih_l1_reverse",
            "bias_hh_l1_reverse",
        ]
    );
    let shapes: Vec<Vec<usize>> = params.iter().map(|(_, p)| p.shape()).collect();
    assert_eq!(shapes[0], [48, 5]);
    assert_eq!(shapes[1], [48, 16]);
    assert_eq!(shapes[2], [48]);
    assert_eq!(shapes[8], [48, 32]);
    for (name, p) in &params {
        let v = p.value();
        let bound = 0.25; // 1/√16
        assert!(
            v.as_slice().iter().all(|w| w.abs() <= bound),
            "{name} outside U(-1/√H, 1/√H)"
        );
        let spread = v.as_slice().iter().fold(0f64, |m, w| m.max(w.abs()));
        assert!(
            spread > 0.2,
            "{name} does not fill U(-1/√H, 1/√H): max |w| {spread}"
        );
    }
    let lstm = Lstm::<f32>::new(3, 4, RnnConfig::default(), &mut rng);
    assert_eq!(lstm.named_parameters()[1].1.shape(), [16, 4]);
    let rnn = Rnn::<f32>::new(
        3,
        4,
        RnnConfig {
            bias: false,
            ..Default::default()
        },
        &mut rng,
    );
    let names: Vec<String> = rnn.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["weight_ih_l0", "weight_hh_l0"]);
    let cell = LstmCell::<f32>::new(3, 4, &mut rng);
    let names: Vec<String> = cell.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]);
    assert_eq!(cell.named_parameters()[0].1.shape(), [16, 3]);
}

/// Padded steps change nothing: a sequence's outputs and final state in a padded batch are the
/// ones it has alone, whatever the padding holds, and the padding gets no gradient.
#[test]
fn padding_neither_changes_state_nor_gets_gradient() {
    let mut rng = StdRng::seed_from_u64(4);
    let cfg = RnnConfig {
        num_layers: 2,
        bidirectional: true,
        ..Default::default()
    };
    let lstm = Lstm::<f64>::new(2, 3, cfg, &mut rng);
    let x = Tensor::randn(&[5, 2, 2], &mut rng);
    let tape = Tape::new();
    let xv = tape.var(x.clone());
    let (out, (h, c)) = lstm.forward_with_lengths(&tape, xv, &[5, 3], None);
    let alone = tape.constant(x.narrow(0, 0, 3).narrow(1, 1, 1));
    let (out1, (h1, c1)) = lstm.forward_with_state(&tape, alone, None);
    let close = |a: &Tensor<f64>, b: &Tensor<f64>| {
        a.shape() == b.shape()
            && a.as_slice()
                .iter()
                .zip(b.as_slice())
                .all(|(x, y)| (x - y).abs() < 1e-14)
    };
    assert!(close(&out.value().narrow(0, 0, 3).narrow(1, 1, 1), &out1.value()));
    assert!(
        out.value()
            .narrow(0, 3, 2)
            .narrow(1, 1, 1)
            .as_slice()
            .iter()
            .all(|&v| v == 0.0)
    );
    assert!(close(&h.value().narrow(1, 1, 1), &h1.value()));
    assert!(close(&c.value().narrow(1, 1, 1), &c1.value()));
    let loss = out.square().sum() + h.square().sum() + c.square().sum();
    let g = loss.backward();
    assert!(
        g[xv]
            .narrow(0, 3, 2)
            .narrow(1, 1, 1)
            .as_slice()
            .iter()
            .all(|&v| v == 0.0)
    );
    assert!(
        g[xv]
            .narrow(0, 3, 2)
            .narrow(1, 0, 1)
            .as_slice()
            .iter()
            .any(|&v| v != 0.0)
    );
}

#[test]
fn a_sequence_of_length_zero_keeps_its_initial_state() {
    let mut rng = StdRng::seed_from_u64(14);
    let cfg = RnnConfig {
        bidirectional: true,
        ..Default::default()
    };
    let gru = Gru::<f64>::new(2, 3, cfg, &mut rng);
    let tape = Tape::new();
    let x = tape.constant(Tensor::randn(&[3, 2, 2], &mut rng));
    let h0 = tape.constant(Tensor::randn(&[2, 2, 3], &mut rng));
    let (out, h_n) = gru.forward_with_lengths(&tape, x, &[3, 0], Some(h0));
    assert!(out.value().narrow(1, 1, 1).as_slice().iter().all(|&v| v == 0.0));
    assert_eq!(h_n.value().narrow(1, 1, 1), h0.value().narrow(1, 1, 1));
    assert_ne!(h_n.value().narrow(1, 0, 1), h0.value().narrow(1, 0, 1));
}

#[test]
fn truncated_bptt_carries_detached_state() {
    let mut rng = StdRng::seed_from_u64(8);
    let gru = Gru::<f64>::new(2, 3, RnnConfig::default(), &mut rng);
    let x = Tensor::randn(&[6, 2, 2], &mut rng);
    let tape = Tape::new();
    let whole = gru.forward(&tape, tape.constant(x.clone())).value();
    let first = tape.var(x.narrow(0, 0, 3));
    let (_, h) = gru.forward_with_state(&tape, first, None);
    let (second, _) = gru.forward_with_state(&tape, tape.constant(x.narrow(0, 3, 3)), Some(h.detach()));
    let want = whole.narrow(0, 3, 3);
    assert!(
        second
            .value()
            .as_slice()
            .iter()
            .zip(want.as_slice())
            .all(|(a, b)| (a - b).abs() < 1e-14)
    );
    let g = second.sum().backward();
    assert!(g.wrt(first).is_none(), "the detached state must cut the graph");
}

#[test]
fn f32_layers_stay_finite_over_long_sequences() {
    let mut rng = StdRng::seed_from_u64(6);
    let cfg = RnnConfig {
        num_layers: 2,
        bidirectional: true,
        batch_first: true,
        ..Default::default()
    };
    let x = Tensor::<f32>::randn(&[4, 200, 8], &mut rng).map(|v| v * 5.0);
    let layers: Vec<Box<dyn Forward<f32>>> = vec![
        Box::new(Lstm::<f32>::new(8, 16, cfg, &mut rng)),
        Box::new(Gru::<f32>::new(8, 16, cfg, &mut rng)),
        Box::new(Rnn::<f32>::new(8, 16, cfg, &mut rng)),
    ];
    for layer in &layers {
        let tape = Tape::new();
        let xv = tape.var(x.clone());
        let out = layer.forward(&tape, xv);
        assert_eq!(out.shape(), [4, 200, 32]);
        assert!(
            out.value()
                .as_slice()
                .iter()
                .all(|v| v.is_finite() && v.abs() <= 1.0)
        );
        let g = out.sum().backward();
        assert!(g[xv].as_slice().iter().all(|v| v.is_finite()));
        for p in layer.parameters() {
            assert!(g.param(&p).unwrap().as_slice().iter().all(|v| v.is_finite()));
        }
    }
}

#[test]
fn dropout_between_layers_in_training_only() {
    let mut rng = StdRng::seed_from_u64(10);
    let x = Tensor::<f64>::randn(&[5, 3, 4], &mut rng);
    let run = |m: &dyn Forward<f64>| {
        let tape = Tape::new();
        m.forward(&tape, tape.constant(x.clone())).value()
    };
    let cfg = RnnConfig {
        num_layers: 2,
        dropout: 0.5,
        ..Default::default()
    };
    let mut layers = [
        Layer::new("lstm", 4, 6, cfg, 1),
        Layer::new("gru", 4, 6, cfg, 1),
        Layer::new("rnn_tanh", 4, 6, cfg, 1),
    ];
    for layer in &mut layers {
        let kind = match layer {
            Layer::Lstm(_) => "lstm",
            Layer::Gru(_) => "gru",
            Layer::Rnn(_) => "rnn_tanh",
        };
        let plain = Layer::new(kind, 4, 6, RnnConfig { dropout: 0.0, ..cfg }, 1);
        for ((_, a), (_, b)) in layer
            .module()
            .named_parameters()
            .iter()
            .zip(plain.module().named_parameters())
        {
            b.set_value(a.value());
        }
        let m = layer.module_mut();
        assert!(m.is_training());
        let (a, b) = (run(m), run(m));
        assert_ne!(a, b, "{kind}: training mode draws new masks each forward");
        assert_ne!(a, run(plain.module()), "{kind}: dropout acts in training mode");
        m.eval();
        assert_eq!(run(m), run(m), "{kind}: evaluation is deterministic");
        assert_eq!(
            run(m),
            run(plain.module()),
            "{kind}: no dropout in evaluation mode"
        );
        m.train(true);
        assert_ne!(run(m), run(plain.module()));
    }
    // Not after the last layer: one layer with dropout is the same in both modes.
    let mut single = Layer::new(
        "lstm",
        4,
        6,
        RnnConfig {
            dropout: 0.5,
            ..Default::default()
        },
        1,
    );
    let train = run(single.module());
    single.module_mut().eval();
    assert_eq!(train, run(single.module()));
}

#[test]
fn unbatched_input_is_a_batch_of_one() {
    let mut rng = StdRng::seed_from_u64(12);
    let cfg = RnnConfig {
        batch_first: true,
        bidirectional: true,
        ..Default::default()
    };
    let lstm = Lstm::<f64>::new(3, 2, cfg, &mut rng);
    let x = Tensor::randn(&[4, 3], &mut rng);
    let tape = Tape::new();
    let (out, (h, c)) = lstm.forward_with_state(&tape, tape.constant(x.clone()), None);
    assert_eq!(
        (out.shape(), h.shape(), c.shape()),
        (vec![4, 4], vec![2, 2], vec![2, 2])
    );
    let (out1, (h1, _)) = lstm.forward_with_state(&tape, tape.constant(x.reshape(&[1, 4, 3])), None);
    assert_eq!(out.value().to_vec(), out1.value().to_vec());
    assert_eq!(h.value().to_vec(), h1.value().to_vec());
}

// Shape errors name the layer and the shapes.

fn lstm() -> Lstm<f64> {
    Lstm::new(3, 4, RnnConfig::default(), &mut StdRng::seed_from_u64(0))
}

#[test]
#[should_panic(
    expected = "Lstm: input shape [5, 2, 7] must be [T, N, input_size] or unbatched [T, input_size] with input_size 3"
)]
fn wrong_input_size_panics() {
    let tape = Tape::new();
    lstm().forward(&tape, tape.constant(Tensor::zeros(&[5, 2, 7])));
}

#[test]
#[should_panic(expected = "Gru: input shape [2, 3, 4, 3] must be [N, T, input_size] (batch_first)")]
fn wrong_input_rank_panics() {
    let cfg = RnnConfig {
        batch_first: true,
        ..Default::default()
    };
    let gru = Gru::<f64>::new(3, 4, cfg, &mut StdRng::seed_from_u64(0));
    let tape = Tape::new();
    gru.forward(&tape, tape.constant(Tensor::zeros(&[2, 3, 4, 3])));
}

#[test]
#[should_panic(expected = "Rnn: initial state h_0 has shape [1, 3, 4], expected [2, 2, 4]")]
fn wrong_h0_shape_panics() {
    let cfg = RnnConfig {
        num_layers: 2,
        ..Default::default()
    };
    let rnn = Rnn::<f64>::new(3, 4, cfg, &mut StdRng::seed_from_u64(0));
    let tape = Tape::new();
    let h0 = tape.constant(Tensor::zeros(&[1, 3, 4]));
    rnn.forward_with_state(&tape, tape.constant(Tensor::zeros(&[5, 2, 3])), Some(h0));
}

#[test]
#[should_panic(expected = "Lstm: initial state c_0 has shape [1, 2, 3], expected [1, 2, 4]")]
fn wrong_c0_shape_panics() {
    let tape = Tape::new();
    let h0 = tape.constant(Tensor::zeros(&[1, 2, 4]));
    let c0 = tape.constant(Tensor::zeros(&[1, 2, 3]));
    lstm().forward_with_state(&tape, tape.constant(Tensor::zeros(&[5, 2, 3])), Some((h0, c0)));
}

#[test]
#[should_panic(expected = "Lstm: 3 lengths [5, 2, 1] for a batch of 2 sequences")]
fn wrong_length_count_panics() {
    let tape = Tape::new();
    lstm().forward_with_lengths(&tape, tape.constant(Tensor::zeros(&[5, 2, 3])), &[5, 2, 1], None);
}

#[test]
#[should_panic(expected = "Lstm: length 6 in [6, 2] is longer than the 5 time steps")]
fn too_long_length_panics() {
    let tape = Tape::new();
    lstm().forward_with_lengths(&tape, tape.constant(Tensor::zeros(&[5, 2, 3])), &[6, 2], None);
}

#[test]
#[should_panic(expected = "Lstm: input shape [0, 2, 3] has no time steps")]
fn empty_sequence_panics() {
    let tape = Tape::new();
    lstm().forward(&tape, tape.constant(Tensor::zeros(&[0, 2, 3])));
}

#[test]
#[should_panic(
    expected = "LstmCell: input shape [2, 5] must be [batch, input_size] or [input_size] with input_size 3"
)]
fn cell_wrong_input_panics() {
    let cell = LstmCell::<f64>::new(3, 4, &mut StdRng::seed_from_u64(0));
    let tape = Tape::new();
    cell.forward_step(&tape, tape.constant(Tensor::zeros(&[2, 5])), None);
}

#[test]
#[should_panic(expected = "GruCell: hidden state h has shape [3, 4], expected [2, 4]")]
fn cell_wrong_state_panics() {
    let cell = GruCell::<f64>::new(3, 4, &mut StdRng::seed_from_u64(0));
    let tape = Tape::new();
    let h = tape.constant(Tensor::zeros(&[3, 4]));
    cell.forward_step(&tape, tape.constant(Tensor::zeros(&[2, 3])), Some(h));
}

#[test]
#[should_panic(expected = "Lstm: num_layers must be at least 1")]
fn zero_layers_panics() {
    let cfg = RnnConfig {
        num_layers: 0,
        ..Default::default()
    };
    Lstm::<f32>::new(3, 4, cfg, &mut StdRng::seed_from_u64(0));
}

#[test]
#[should_panic(expected = "Gru: dropout must be in [0, 1), got 1.5")]
fn bad_dropout_panics() {
    let cfg = RnnConfig {
        dropout: 1.5,
        ..Default::default()
    };
    Gru::<f32>::new(3, 4, cfg, &mut StdRng::seed_from_u64(0));
}

/// A named call that must panic.
type PanicCase<'a> = Box<dyn FnOnce() + 'a>;

thread_local! {
    /// The file of the last panic on this thread (set by the hook below).
    static LAST_PANIC: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

#[test]
fn errors_point_at_the_caller() {
    // The hook is process-wide; it records into a thread-local, so panics of tests running on
    // other threads only touch their own slot.
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|info| {
        let file = info.location().map(|l| l.file().to_string());
        LAST_PANIC.with(|p| *p.borrow_mut() = file);
    }));
    let tape = Tape::<f64>::new();
    let layer = lstm();
    let cell = GruCell::<f64>::new(3, 4, &mut StdRng::seed_from_u64(0));
    let x = tape.constant(Tensor::zeros(&[5, 2, 3]));
    let cases: Vec<(&str, PanicCase<'_>)> = vec![
        (
            "forward",
            Box::new(|| _ = layer.forward(&tape, tape.constant(Tensor::zeros(&[5, 7])))),
        ),
        (
            "forward_with_state",
            Box::new(|| _ = layer.forward_with_state(&tape, x, Some((x, x)))),
        ),
        (
            "forward_with_lengths",
            Box::new(|| _ = layer.forward_with_lengths(&tape, x, &[9, 1], None)),
        ),
        (
            "cell forward_step",
            Box::new(|| _ = cell.forward_step(&tape, x, None)),
        ),
        ("cell forward", Box::new(|| _ = cell.forward(&tape, x))),
        (
            "new",
            Box::new(|| _ = Rnn::<f64>::new(2, 0, RnnConfig::default(), &mut StdRng::seed_from_u64(0))),
        ),
    ];
    let mut wrong = Vec::new();
    for (name, f) in cases {
        LAST_PANIC.with(|p| p.borrow_mut().take());
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let file = LAST_PANIC.with(|p| p.borrow_mut().take()).unwrap_or_default();
        if result.is_ok() || !file.ends_with("tests/rnn.rs") {
            wrong.push(format!("{name}: panicked {} at {file}", result.is_err()));
        }
    }
    std::panic::set_hook(previous);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The backward pass adds a narrow's gradient into its input's in place (the recurrent layers
/// cut every step from one projection): overlapping slices, slices along inner axes and an input
/// with other uses must get the same gradient as the padded rule that the recorded pass keeps.
#[test]
fn narrow_gradients_accumulate_like_the_padded_rule() {
    let mut rng = StdRng::seed_from_u64(13);
    let x0 = Tensor::<f64>::randn(&[6, 4], &mut rng);
    let tape = Tape::new();
    let x = tape.var(x0.clone());
    let pieces = [
        (x.narrow(0, 0, 2), (0, 0)),
        (x.narrow(0, 1, 3), (0, 1)),
        (x.narrow(1, 1, 2), (1, 1)),
        (x.narrow(0, 5, 1), (0, 5)),
    ];
    let mut loss = (x * x).sum();
    let mut weights = Vec::new();
    for (piece, _) in &pieces {
        let w = Tensor::randn(piece.value().shape(), &mut rng);
        loss = loss + (*piece * tape.constant(w.clone())).sum();
        weights.push(w);
    }
    let eager = loss.backward();
    let recorded = loss.grad(&[x])[0].value();
    let mut want = x0.map(|v| 2.0 * v);
    for (w, (_, (axis, start))) in weights.iter().zip(&pieces) {
        let ws = w.shape().to_vec();
        for i in 0..ws[0] {
            for j in 0..ws[1] {
                let (r, c) = if *axis == 0 {
                    (i + start, j)
                } else {
                    (i, j + start)
                };
                let at = r * 4 + c;
                want.as_mut_slice()[at] += w.as_slice()[i * ws[1] + j];
            }
        }
    }
    let close = |a: &Tensor<f64>, b: &Tensor<f64>| {
        a.as_slice()
            .iter()
            .zip(b.as_slice())
            .all(|(p, q)| (p - q).abs() < 1e-12)
    };
    assert!(
        close(&eager[x], &want),
        "eager {:?} vs {:?}",
        eager[x].to_vec(),
        want.to_vec()
    );
    assert!(
        close(&recorded, &want),
        "recorded {:?} vs {:?}",
        recorded.to_vec(),
        want.to_vec()
    );
    // A narrow whose input has no other use: the first slice starts the gradient.
    let y = tape.var(x0.clone());
    let g = (y.narrow(0, 2, 2).sum() + y.narrow(0, 3, 3).sum() * 2.0).backward();
    assert_eq!(
        g[y].to_vec(),
        [0., 0., 1., 3., 2., 2.]
            .iter()
            .flat_map(|&v| [v; 4])
            .collect::<Vec<f64>>()
    );
}
