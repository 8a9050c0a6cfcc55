//! Character-level language models: a small causal Transformer and an LSTM, built here from the
//! public layers, learn a small text well below the uniform ln(vocabulary); and the `char_lm`
//! example's checkpoints resume a run exactly.

use tapegrad::nn::{
    Embedding, LayerNorm, Lstm, RnnConfig, TransformerEncoderLayer, TransformerEncoderLayerConfig,
};
use tapegrad::prelude::*;
use tapegrad::rand::{RngExt, SeedableRng, rngs::StdRng};

#[path = "../examples/char_lm.rs"]
#[allow(dead_code)] // the example's command line and some helpers are not used here
mod example;

/// Sentences from a small grammar, chosen at random: repetitive words, unpredictable order.
fn grammar_text(sentences: usize, seed: u64) -> String {
    const SUBJECTS: [&str; 4] = ["the cat", "a dog", "my bird", "the fox"];
    const VERBS: [&str; 4] = ["sees", "eats", "chases", "likes"];
    const OBJECTS: [&str; 4] = ["the mouse", "a fish", "the ball", "some seeds"];
    let mut rng = StdRng::seed_from_u64(seed);
    let mut text = String::new();
    for _ in 0..sentences {
        let mut pick = |words: [&'static str; 4]| words[rng.random_range(0..4)];
        let (s, v, o) = (pick(SUBJECTS), pick(VERBS), pick(OBJECTS));
        text.push_str(&format!("{s} {v} {o}. "));
    }
    text
}

/// The text's characters as ids, and the vocabulary size.
fn encode(text: &str) -> (Vec<usize>, usize) {
    let mut chars: Vec<char> = text.chars().collect();
    chars.sort_unstable();
    chars.dedup();
    let ids = text.chars().map(|c| chars.binary_search(&c).unwrap()).collect();
    (ids, chars.len())
}

/// Ids `[starts, context]` as floats and each position's next character.
fn windows(data: &[usize], starts: &[usize], context: usize) -> (Tensor<f32>, Vec<usize>) {
    let mut ids = Vec::new();
    let mut targets = Vec::new();
    for &s in starts {
        ids.extend(data[s..s + context].iter().map(|&i| i as f32));
        targets.extend_from_slice(&data[s + 1..s + context + 1]);
    }
    (Tensor::from_vec(ids, &[starts.len(), context]), targets)
}

/// Trains `logits` (ids `[N, T]` to logits `[N, T, vocab]`) with Adam on random windows of the
/// first 90% of `data`; returns the validation loss (nats per character) before and after, on
/// every window of the last 10%.
fn train_lm<F>(params: Vec<Param<f32>>, logits: F, data: &[usize], context: usize, steps: usize) -> (f64, f64)
where
    F: for<'t> Fn(&'t Tape<f32>, Var<'t, f32>) -> Var<'t, f32>,
{
    let split = data.len() * 9 / 10;
    let (train, val) = (&data[..split], &data[split..]);
    let val_starts: Vec<usize> = (0..val.len() - context - 1).step_by(context / 2).collect();
    let validation = |logits: &F| {
        let (ids, targets) = windows(val, &val_starts, context);
        let tape = Tape::new();
        tape.no_grad(|| {
            let out = logits(&tape, tape.constant(ids));
            let vocab = out.shape()[2];
            f64::from(loss::cross_entropy(out.reshape(&[targets.len(), vocab]), &targets[..]).item())
        })
    };
    let before = validation(&logits);
    let mut opt = Adam::new(
        params,
        AdamConfig {
            lr: 1e-2,
            ..Default::default()
        },
    );
    let mut rng = StdRng::seed_from_u64(7);
    let mut tape = Tape::new();
    for _ in 0..steps {
        let starts: Vec<usize> = (0..8)
            .map(|_| rng.random_range(0..train.len() - context))
            .collect();
        let (ids, targets) = windows(train, &starts, context);
        tape.reset();
        let out = logits(&tape, tape.constant(ids));
        let vocab = out.shape()[2];
        let mut grads = loss::cross_entropy(out.reshape(&[targets.len(), vocab]), &targets[..]).backward();
        tape.reset();
        clip_grad_norm(&mut grads, 1.0);
        opt.step(&grads);
    }
    (before, validation(&logits))
}

/// Gives a closure the signature `train_lm` wants (each var on the tape it is given).
fn lm<F: for<'t> Fn(&'t Tape<f32>, Var<'t, f32>) -> Var<'t, f32>>(f: F) -> F {
    f
}

const CONTEXT: usize = 16;
const WIDTH: usize = 32;

#[test]
fn a_causal_transformer_learns_the_grammar_text() {
    let (data, vocab) = encode(&grammar_text(400, 1));
    let mut rng = StdRng::seed_from_u64(0);
    let tokens = Embedding::<f32>::new(vocab, WIDTH, &mut rng);
    let positions = Embedding::<f32>::new(CONTEXT, WIDTH, &mut rng);
    let cfg = TransformerEncoderLayerConfig {
        dim_feedforward: 4 * WIDTH,
        dropout: 0.0,
        activation: Activation::Gelu,
        batch_first: true,
        norm_first: true,
        ..Default::default()
    };
    let block = TransformerEncoderLayer::new(WIDTH, 2, cfg, &mut rng);
    let norm = LayerNorm::<f32>::new(WIDTH);
    let head = Linear::<f32>::new(WIDTH, vocab, &mut rng);
    let mut params = tokens.parameters();
    params.extend(positions.parameters());
    params.extend(block.parameters());
    params.extend(norm.parameters());
    params.extend(head.parameters());
    let logits = lm(|tape, ids| {
        let steps = ids.shape()[1];
        let x = tokens.forward(tape, ids) + positions.lookup(tape, &(0..steps).collect::<Vec<_>>());
        let h = block.forward_masked(tape, x, None, None, true);
        head.forward(tape, norm.forward(tape, h))
    });
    let uniform = (vocab as f64).ln();
    let (before, after) = train_lm(params, logits, &data, CONTEXT, 150);
    assert!(
        (before - uniform).abs() < 1.5,
        "untrained: {before} nats, uniform {uniform}"
    );
    assert!(
        after < 0.5 * uniform,
        "after training: {after} nats per character, uniform ln({vocab}) = {uniform}"
    );
}

#[test]
fn an_lstm_learns_the_grammar_text() {
    let (data, vocab) = encode(&grammar_text(400, 2));
    let mut rng = StdRng::seed_from_u64(0);
    let embed = Embedding::<f32>::new(vocab, WIDTH, &mut rng);
    let cfg = RnnConfig {
        batch_first: true,
        ..Default::default()
    };
    let lstm = Lstm::<f32>::new(WIDTH, WIDTH, cfg, &mut rng);
    let head = Linear::<f32>::new(WIDTH, vocab, &mut rng);
    let mut params = embed.parameters();
    params.extend(lstm.parameters());
    params.extend(head.parameters());
    let logits = lm(|tape, ids| head.forward(tape, lstm.forward(tape, embed.forward(tape, ids))));
    let uniform = (vocab as f64).ln();
    let (before, after) = train_lm(params, logits, &data, CONTEXT, 150);
    assert!(
        (before - uniform).abs() < 1.5,
        "untrained: {before} nats, uniform {uniform}"
    );
    assert!(
        after < 0.5 * uniform,
        "after training: {after} nats per character, uniform ln({vocab}) = {uniform}"
    );
}

/// A run stopped at step 8 and resumed from its checkpoint to step 16 ends with the parameters,
/// optimizer state and loss history of a run that never stopped.
fn resumed_run_matches_an_uninterrupted_one(kind: example::Kind) {
    let text = grammar_text(300, 3);
    let cfg = example::Config {
        steps: 16,
        interval: 4,
        eval_windows: 4,
        context: 16,
        width: 16,
        verbose: false,
        ..example::Config::quick(kind)
    };
    let straight_dir = tempfile::tempdir().unwrap();
    let mut straight = example::start(&cfg, &text, straight_dir.path(), false).unwrap();
    let val = example::train(&cfg, &mut straight, &text, straight_dir.path()).unwrap();

    let stopped_dir = tempfile::tempdir().unwrap();
    let half = example::Config {
        steps: 8,
        ..cfg.clone()
    };
    let mut first = example::start(&half, &text, stopped_dir.path(), false).unwrap();
    example::train(&half, &mut first, &text, stopped_dir.path()).unwrap();
    let first_state = tapegrad::io::state_dict(&first.model);
    let first_opt = first.opt.state();
    drop(first);

    // The checkpoint round trip: the same parameters, optimizer state, step and vocabulary.
    let mut resumed = example::start(&cfg, &text, stopped_dir.path(), true).unwrap();
    assert_eq!(tapegrad::io::state_dict(&resumed.model), first_state);
    assert_eq!(resumed.opt.state(), first_opt);
    assert_eq!((resumed.step, resumed.kind), (8, kind));
    assert_eq!(resumed.vocab, straight.vocab);

    let resumed_val = example::train(&cfg, &mut resumed, &text, stopped_dir.path()).unwrap();
    assert_eq!(resumed.step, 16);
    assert_eq!(
        tapegrad::io::state_dict(&resumed.model),
        tapegrad::io::state_dict(&straight.model)
    );
    assert_eq!(resumed.opt.state(), straight.opt.state());
    assert_eq!(resumed_val, val);
    let steps = |h: &[example::Point]| h.iter().map(|p| p.step).collect::<Vec<_>>();
    assert_eq!(steps(&resumed.history), [0, 4, 8, 12, 16]);
    // NaN (no training loss at step 0) is not equal to itself: compare the bits.
    let bits = |h: &[example::Point]| {
        h.iter()
            .map(|p| (p.train.to_bits(), p.val.to_bits()))
            .collect::<Vec<_>>()
    };
    assert_eq!(bits(&resumed.history), bits(&straight.history));
    // Training moved the parameters.
    assert_ne!(tapegrad::io::state_dict(&resumed.model), first_state);
}

#[test]
fn the_example_gpt_resumes_exactly() {
    resumed_run_matches_an_uninterrupted_one(example::Kind::Gpt);
}

#[test]
fn the_example_lstm_resumes_exactly() {
    resumed_run_matches_an_uninterrupted_one(example::Kind::Lstm);
}

#[test]
fn resuming_with_a_text_outside_the_vocabulary_is_an_error() {
    let text = grammar_text(100, 4);
    let cfg = example::Config {
        steps: 2,
        interval: 2,
        eval_windows: 2,
        context: 8,
        width: 8,
        verbose: false,
        ..example::Config::quick(example::Kind::Lstm)
    };
    let dir = tempfile::tempdir().unwrap();
    let mut run = example::start(&cfg, &text, dir.path(), false).unwrap();
    example::train(&cfg, &mut run, &text, dir.path()).unwrap();
    let mut resumed = example::start(&cfg, &text, dir.path(), true).unwrap();
    let other = text.replace('c', "Q");
    let err = example::train(&cfg, &mut resumed, &other, dir.path()).unwrap_err();
    assert!(err.to_string().contains("'Q'"), "{err}");
}

#[test]
fn sampling_respects_temperature_zero_and_top_k() {
    let mut rng = StdRng::seed_from_u64(0);
    let logits = [0.5f32, 3.0, -1.0, 2.5];
    assert_eq!(example::sample_id(&logits, 0.0, 0, &mut rng), 1);
    let mut seen = [0usize; 4];
    for _ in 0..400 {
        seen[example::sample_id(&logits, 1.0, 2, &mut rng)] += 1;
    }
    assert_eq!(
        (seen[0], seen[2]),
        (0, 0),
        "top-2 drew outside the top two: {seen:?}"
    );
    // e^3 : e^2.5 ≈ 0.62 : 0.38.
    assert!((180..320).contains(&seen[1]), "{seen:?}");
    let vocab = example::Vocab::from_text("hello");
    assert_eq!(vocab.len(), 4);
    assert_eq!(vocab.decode(&vocab.encode("hole").unwrap()), "hole");
    assert_eq!(vocab.encode("help"), Err('p'));
}
