//! `#[derive(Module)]` (issue 17): PyTorch's `state_dict` names for a user-defined residual
//! network (compared with the same model in PyTorch, whose file loads with no renaming),
//! checkpoints into a fresh instance, every kind of field and attribute, modes, freezing with an
//! optimizer, and the summary. The compile errors are in `tests/derive_ui/` (trybuild).

mod common;

use common::{data_path, load_json, numbers};
use tapegrad::io::{self, LoadOptions};
use tapegrad::nn::{BatchNorm1d, Generator};
use tapegrad::prelude::*;
use tapegrad::rand::{SeedableRng, rngs::StdRng};

/// The right-hand branch: a linear layer and a LayerNorm.
#[derive(Module)]
struct RightBranch<T: Float> {
    lin: Linear<T>,
    norm: LayerNorm<T>,
}

/// `h = stem(x); h = h + left(h) + right(h); h = tanh(block(h)) for each block;
/// out = head(bn(h)) * scale`: the model of `tests/data/make_derive_reference.py`, fields in
/// PyTorch's registration order (its own parameters first).
#[derive(Module)]
struct Residual<T: Float> {
    scale: Param<T>,
    stem: Linear<T>,
    left: Sequential<T>,
    right: RightBranch<T>,
    blocks: Vec<Linear<T>>,
    bn: BatchNorm1d<T>,
    head: Linear<T>,
    #[module(skip)]
    width: usize,
    #[module(training)]
    training: bool,
}

impl<T: Float> Residual<T> {
    fn new(rng: &mut StdRng) -> Self {
        Residual {
            scale: Param::new(Tensor::scalar(T::ONE)),
            stem: Linear::new(3, 4, rng),
            left: Sequential::new()
                .with(Linear::new(4, 8, rng))
                .with(Activation::Tanh)
                .with(Linear::new(8, 4, rng)),
            right: RightBranch {
                lin: Linear::new(4, 4, rng),
                norm: LayerNorm::new(4),
            },
            blocks: vec![Linear::new(4, 4, rng), Linear::new(4, 4, rng)],
            bn: BatchNorm1d::new(4),
            head: Linear::new(4, 2, rng),
            width: 4,
            training: true,
        }
    }

    fn forward<'t>(&self, tape: &'t Tape<T>, x: Var<'t, T>) -> Var<'t, T> {
        let h = self.stem.forward(tape, x);
        assert_eq!(h.shape()[1], self.width);
        let right = self.right.norm.forward(tape, self.right.lin.forward(tape, h));
        let mut h = h + self.left.forward(tape, h) + right;
        for block in &self.blocks {
            h = block.forward(tape, h).tanh();
        }
        self.head.forward(tape, self.bn.forward(tape, h)) * tape.param(&self.scale)
    }
}

fn names<T: Float, M: Module<T>>(m: &M) -> Vec<String> {
    m.named_parameters().into_iter().map(|(n, _)| n).collect()
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .expect("a list")
        .iter()
        .map(|s| s.as_str().expect("a string").to_string())
        .collect()
}

#[test]
fn a_residual_network_gets_pytorchs_names_and_loads_its_file_with_no_renaming() {
    let reference = load_json("derive_residual_reference.json");
    let mut model = Residual::<f64>::new(&mut StdRng::seed_from_u64(0));
    // Parameters in PyTorch's order, then the buffers: the state_dict minus the BatchNorm count.
    assert_eq!(names(&model), strings(&reference["parameters"]));
    let mut state: Vec<String> = io::state_dict(&model).into_iter().map(|(n, _)| n).collect();
    let mut torch_state = strings(&reference["names"]);
    torch_state.retain(|n| n != "bn.num_batches_tracked");
    state.sort();
    torch_state.sort();
    assert_eq!(state, torch_state);

    let report = io::load_with(
        data_path("derive_residual_torch.safetensors"),
        &model,
        &LoadOptions::new(),
    )
    .unwrap();
    assert_eq!(report.ignored, ["bn.num_batches_tracked"]);
    model.eval();
    let x = Tensor::from_vec(numbers(&reference["input"]), &[5, 3]);
    let tape = Tape::new();
    let y = model.forward(&tape, tape.constant(x)).value();
    let want = numbers(&reference["output"]);
    assert_eq!(y.shape(), [5, 2]);
    for (got, want) in y.as_slice().iter().zip(&want) {
        assert!(
            (got - want).abs() <= 1e-12 * want.abs().max(1.0),
            "{got} vs {want}"
        );
    }
}

#[test]
fn a_derived_model_saves_and_loads_into_a_fresh_instance() {
    let model = Residual::<f32>::new(&mut StdRng::seed_from_u64(1));
    // Training steps move the BatchNorm's running statistics away from their defaults.
    let mut opt = Adam::new(model.parameters(), AdamConfig::default());
    let x = Tensor::<f32>::randn(&[8, 3], &mut StdRng::seed_from_u64(2));
    for _ in 0..3 {
        let tape = Tape::new();
        let grads = model
            .forward(&tape, tape.constant(x.clone()))
            .square()
            .mean()
            .backward();
        opt.step(&grads);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("residual.safetensors");
    io::save(&path, &model).unwrap();

    let mut fresh = Residual::<f32>::new(&mut StdRng::seed_from_u64(99));
    io::load(&path, &fresh).unwrap();
    assert_eq!(io::state_dict(&fresh), io::state_dict(&model));
    let mut model = model;
    model.eval();
    fresh.eval();
    let tape = Tape::new();
    assert_eq!(
        fresh.forward(&tape, tape.constant(x.clone())).value(),
        model.forward(&tape, tape.constant(x)).value()
    );
}

/// Every kind of field: arrays, options, tuples, boxes, generators, buffers, renames, skips,
/// nesting, and a struct generic over another module type.
#[derive(Module)]
struct Everything<T: Float, M> {
    #[module(rename = "embedding")]
    embed: Embedding<T>,
    pair: [Linear<T>; 2],
    maybe: Option<Linear<T>>,
    absent: Option<Linear<T>>,
    tuple: (LayerNorm<T>, Param<T>),
    boxed: Box<Linear<T>>,
    #[module(buffer)]
    counts: Param<T>,
    noise: Generator,
    dropout: Dropout<T>,
    inner: M,
    #[module(skip)]
    note: String,
}

fn everything() -> Everything<f64, RightBranch<f64>> {
    let mut rng = StdRng::seed_from_u64(3);
    Everything {
        embed: Embedding::new(5, 2, &mut rng),
        pair: [Linear::new(2, 2, &mut rng), Linear::new(2, 2, &mut rng)],
        maybe: Some(Linear::new(2, 1, &mut rng)),
        absent: None,
        tuple: (LayerNorm::new(2), Param::new(Tensor::ones(&[3]))),
        boxed: Box::new(Linear::with_bias(2, 2, false, &mut rng)),
        counts: Param::new(Tensor::zeros(&[4])),
        noise: Generator::new(7),
        dropout: Dropout::new(0.5, 8),
        inner: RightBranch {
            lin: Linear::new(2, 2, &mut rng),
            norm: LayerNorm::new(2),
        },
        note: "not visited".to_string(),
    }
}

#[test]
fn every_kind_of_field_is_visited_under_pytorchs_names() {
    let m = everything();
    assert_eq!(
        names(&m),
        [
            "embedding.weight",
            "pair.0.weight",
            "pair.0.bias",
            "pair.1.weight",
            "pair.1.bias",
            "maybe.weight",
            "maybe.bias",
            "tuple.0.weight",
            "tuple.0.bias",
            "tuple.1",
            "boxed.weight",
            "inner.lin.weight",
            "inner.lin.bias",
            "inner.norm.weight",
            "inner.norm.bias",
        ]
    );
    let buffers: Vec<String> = m.named_buffers().into_iter().map(|(n, _)| n).collect();
    assert_eq!(buffers, ["counts"]);
    let generators: Vec<String> = m.named_generators().into_iter().map(|(n, _)| n).collect();
    assert_eq!(generators, ["noise", "dropout.generator"]);
    assert_eq!(m.note, "not visited");
    // The buffer is saved but never trained.
    assert!(!m.parameters().iter().any(|p| p.same_as(&m.counts)));
    let state: Vec<String> = io::state_dict(&m).into_iter().map(|(n, _)| n).collect();
    assert!(state.contains(&"counts".to_string()));
}

#[test]
fn train_and_eval_reach_every_child_and_the_flag_is_optional() {
    let mut m = everything();
    assert!(m.is_training());
    m.eval();
    // Without a #[module(training)] flag the mode is the children's.
    assert!(!m.is_training());
    assert!(!m.dropout.is_training() && !m.pair[1].is_training() && !m.inner.norm.is_training());
    assert!(!m.maybe.as_ref().unwrap().is_training() && !m.boxed.is_training());
    m.train(true);
    assert!(m.is_training() && m.dropout.is_training());

    let mut r = Residual::<f32>::new(&mut StdRng::seed_from_u64(4));
    r.eval();
    assert!(!r.training && !r.bn.is_training() && !r.left.is_training());
}

#[test]
fn a_frozen_submodule_gets_no_gradient_and_the_optimizer_leaves_it() {
    let model = Residual::<f64>::new(&mut StdRng::seed_from_u64(5));
    let total = model.num_parameters();
    model.stem.requires_grad(false);
    assert_eq!(model.num_trainable_parameters(), total - (3 * 4 + 4));
    let frozen = model.stem.weight.value();
    let trained = model.head.weight.value();

    let mut opt = Adam::new(model.parameters(), AdamConfig::default());
    let x = Tensor::<f64>::randn(&[6, 3], &mut StdRng::seed_from_u64(6));
    for _ in 0..3 {
        let tape = Tape::new();
        let grads = model
            .forward(&tape, tape.constant(x.clone()))
            .square()
            .mean()
            .backward();
        assert!(grads.param(&model.stem.weight).is_none());
        assert!(grads.param(&model.head.weight).is_some());
        opt.step(&grads);
    }
    assert_eq!(model.stem.weight.value(), frozen);
    assert_ne!(model.head.weight.value(), trained);

    // Unfrozen, it trains again.
    model.stem.requires_grad(true);
    let tape = Tape::new();
    let grads = model.forward(&tape, tape.constant(x)).square().mean().backward();
    opt.step(&grads);
    assert_ne!(model.stem.weight.value(), frozen);
}

#[test]
fn apply_to_parameters_initialises_a_whole_model_and_the_summary_counts_it() {
    let model = Residual::<f32>::new(&mut StdRng::seed_from_u64(7));
    let mut seen = Vec::new();
    model.apply_to_parameters(|name, p| {
        seen.push(name.to_string());
        if name.ends_with("bias") {
            p.set_value(Tensor::zeros(&p.shape()));
        }
    });
    assert_eq!(seen, names(&model));
    assert!(
        model
            .head
            .bias
            .as_ref()
            .unwrap()
            .value()
            .as_slice()
            .iter()
            .all(|&b| b == 0.0)
    );

    model.right.requires_grad(false);
    let summary = model.summary();
    assert_eq!(summary.total_parameters(), model.num_parameters());
    assert_eq!(
        summary.trainable_parameters(),
        model.num_parameters() - (16 + 4 + 4 + 4)
    );
    assert_eq!(summary.buffer_elements(), 8);
    let by_module = summary.by_submodule();
    assert_eq!(by_module[0], (String::new(), 1)); // `scale`
    assert!(by_module.contains(&("right.lin".to_string(), 20)));
    let text = summary.to_string();
    assert!(
        text.contains("right.norm.weight") && text.contains("frozen"),
        "{text}"
    );
    assert!(
        text.contains("bn.running_var") && text.contains("buffer"),
        "{text}"
    );
}

#[test]
fn compile_errors_point_at_the_field_and_say_what_to_do() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/derive_ui/*.rs");
}

#[test]
fn a_summary_with_an_input_leaves_running_statistics_and_generators_as_they_were() {
    let mut rng = StdRng::seed_from_u64(8);
    let net = Sequential::<f32>::new()
        .with(Linear::new(3, 4, &mut rng))
        .with(BatchNorm1d::new(4))
        .with(Dropout::new(0.5, 9));
    assert!(net.is_training());
    let state = io::state_dict(&net);
    let generators: Vec<_> = net.named_generators().iter().map(|(_, g)| g.state()).collect();
    let x = Tensor::<f32>::randn(&[6, 3], &mut rng);
    let summary = net.summary_with_input(&x);
    assert_eq!(summary.output_shape(), Some(&[6, 4][..]));
    assert_eq!(summary.layer_outputs().len(), 3);
    let whole = tapegrad::nn::Summary::with_input(&net, &x);
    assert_eq!(whole.output_shape(), Some(&[6, 4][..]));
    assert_eq!(io::state_dict(&net), state);
    let after: Vec<_> = net.named_generators().iter().map(|(_, g)| g.state()).collect();
    assert_eq!(after, generators);
}
