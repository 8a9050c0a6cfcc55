//! Trains a 2-8-1 tanh network on XOR with plain gradient descent, end to end on the tape.
//!
//! Run with `cargo run --release --example xor` (add `--quick` for a short run).

use tapegrad::prelude::*;
use tapegrad::rand::{SeedableRng, rngs::StdRng};

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let steps = if quick { 300 } else { 2000 };
    let mut rng = StdRng::seed_from_u64(7);

    // Parameters live in the model, outside the tape; each step binds them to a fresh recording.
    let model = Mlp::<f32>::new(&[2, 8, 1], Activation::Tanh, &mut rng);
    let mut opt = Sgd::new(
        model.parameters(),
        SgdConfig {
            lr: 0.5,
            ..Default::default()
        },
    );

    let data = tapegrad::data::xor::<f32>();
    let targets = data.targets.reshape(&[4, 1]);

    let mut tape = Tape::<f32>::new();
    for step in 0..=steps {
        tape.reset(); // keeps the tape's allocations from the last step
        let out = model
            .forward(&tape, tape.constant(data.features.clone()))
            .sigmoid();
        let loss = loss::mse(out, tape.constant(targets.clone()));
        let predictions = out.value();
        let grads = loss.backward();
        if step % (steps / 5) == 0 {
            println!("step {step:5}  loss {:.6}", loss.item());
        }
        tape.reset(); // free the tape's hold on the parameters so the update is in place
        opt.step(&grads);
        if step == steps {
            println!(
                "predictions for (0,0) (0,1) (1,0) (1,1): {:?}",
                predictions.to_vec()
            );
            let correct = predictions
                .as_slice()
                .iter()
                .zip(targets.as_slice())
                .filter(|(p, t)| (**p > 0.5) == (**t > 0.5))
                .count();
            println!("accuracy: {correct}/4");
            if !quick && correct != 4 {
                eprintln!("xor: the network did not learn XOR");
                std::process::exit(1);
            }
        }
    }
}
