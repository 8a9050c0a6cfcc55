//! Backpropagation by hand on micrograd's classic expression: the graph as a picture, every step
//! of the backward pass, and the gradients checked against finite differences.
//!
//! Run with `cargo run --example backprop_by_hand` (`--out DIR` puts the pictures in DIR;
//! `--quick` is accepted for CI and changes nothing here: the example is already instant).

mod common;

use tapegrad::viz::{Dot, render_dot_file};
use tapegrad::{Tape, Tensor, Var, gradcheck};

/// micrograd's README example (`a = -4, b = 2` gives `g = 24.7041`, `dg/da = 138.8338`,
/// `dg/db = 645.5773`), with names for the picture and the trace.
fn expression<'t>(a: Var<'t, f64>, b: Var<'t, f64>) -> Var<'t, f64> {
    let c = (a + b).named("c");
    let d = (a * b + b.powi(3)).named("d");
    let c = (c + c + 1.0).named("c2");
    let c = (c + 1.0 + c + (-a)).named("c3");
    let d = (d + d * 2.0 + (b + a).relu()).named("d2");
    let d = (d + 3.0 * d + (b - a).relu()).named("d3");
    let e = (c - d).named("e");
    let f = e.powi(2).named("f");
    let g = (f / 2.0).named("g");
    (g + 10.0 / f).named("out")
}

fn main() -> Result<(), tapegrad::Error> {
    let tape = Tape::<f64>::new();
    let a = tape.var_named("a", -4.0);
    let b = tape.var_named("b", 2.0);
    let out = expression(a, b);
    println!(
        "forward:  out = {:.4}   ({} nodes on the tape)\n",
        out.item(),
        tape.len()
    );

    let (grads, trace) = out.backward_traced();
    trace.print();
    println!(
        "\nd out/da = {:.4}, d out/db = {:.4}",
        grads[a].item(),
        grads[b].item()
    );
    println!("micrograd gets 24.7041, 138.8338 and 645.5773\n");
    let expected = [
        (out.item(), 24.7041),
        (grads[a].item(), 138.8338),
        (grads[b].item(), 645.5773),
    ];
    for (got, want) in expected {
        if (got - want).abs() > 1e-4 {
            eprintln!("backprop_by_hand: got {got}, expected {want}");
            std::process::exit(1);
        }
    }

    // The same gradients from central finite differences: (f(x + h) - f(x - h)) / 2h.
    let inputs = [Tensor::scalar(-4.0), Tensor::scalar(2.0)];
    match gradcheck::check(
        |_tape: &Tape<f64>, xs: &[Var<f64>]| expression(xs[0], xs[1]),
        &inputs,
    ) {
        Ok(()) => println!("gradcheck: backprop agrees with finite differences"),
        Err(e) => {
            eprintln!("gradcheck failed: {e}");
            std::process::exit(1);
        }
    }

    let dir = common::out_dir();
    std::fs::create_dir_all(&dir).map_err(|source| tapegrad::Error::Io {
        path: dir.clone(),
        source,
    })?;
    let dot_path = dir.join("backprop_by_hand.dot");
    Dot::new(&tape).gradients(&grads).output(out).write(&dot_path)?;
    println!("graph written to {}", dot_path.display());
    match render_dot_file(&dot_path, "svg")? {
        Some(svg) => println!("rendered with Graphviz to {}", svg.display()),
        None => println!(
            "Graphviz's `dot` is not installed; to see the picture install it (apt install graphviz, \
             brew install graphviz, or https://graphviz.org/download/) and run \
             `dot -Tsvg {} -o backprop_by_hand.svg`",
            dot_path.display()
        ),
    }
    Ok(())
}
