//! Trains a 2-8-1 tanh network on XOR with plain gradient descent, end to end on the tape.
//!
//! Run with `cargo run --release --example xor` (add `--quick` for a short run).

use tapegrad::prelude::*;
use tapegrad::rand::{SeedableRng, rngs::StdRng};

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let steps = if quick { 300 } else { 2000 };
    let lr = 0.5f32;
    let mut rng = StdRng::seed_from_u64(7);

    // Parameters live outside the tape; each step binds them to a fresh recording.
    let w1 = Param::new(Tensor::<f32>::randn(&[2, 8], &mut rng) * 0.7);
    let b1 = Param::new(Tensor::zeros(&[8]));
    let w2 = Param::new(Tensor::<f32>::randn(&[8, 1], &mut rng) * 0.7);
    let b2 = Param::new(Tensor::zeros(&[1]));
    let params = [&w1, &b1, &w2, &b2];

    let inputs = Tensor::from_vec(vec![0., 0., 0., 1., 1., 0., 1., 1.], &[4, 2]);
    let targets = Tensor::from_vec(vec![0., 1., 1., 0.], &[4, 1]);

    let mut tape = Tape::<f32>::new();
    for step in 0..=steps {
        tape.reset(); // keeps the tape's allocations from the last step
        let x = tape.constant(inputs.clone());
        let hidden = (x.matmul(&tape.param(&w1)) + tape.param(&b1)).tanh();
        let out = (hidden.matmul(&tape.param(&w2)) + tape.param(&b2)).sigmoid();
        let loss = loss::mse(out, tape.constant(targets.clone()));
        let grads = loss.backward();
        for p in params {
            let g = grads.param(p).expect("every parameter is used");
            p.update(|v| *v = &*v - &(g * lr));
        }
        if step % (steps / 5) == 0 {
            println!("step {step:5}  loss {:.6}", loss.item());
        }
        if step == steps {
            let predictions = out.value();
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
