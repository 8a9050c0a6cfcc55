//! A tutorial: from the chain rule on one number to training a network with tensors and an
//! optimizer. Every code block here runs as a test.
//!
//! # 1. One number, one chain of functions
//!
//! Take `y = sin(x²)` at `x = 1.5`. The chain rule says `dy/dx = cos(x²) · 2x`: the derivative
//! of the outer function at the inner value, times the derivative of the inner function.
//! Reverse-mode differentiation computes exactly this product, starting from the output:
//! `dy/dy = 1`, then `dy/du = cos(u)` for `u = x²`, then `dy/dx = dy/du · 2x`.
//!
//! ```
//! use tapegrad::Tape;
//!
//! let tape = Tape::<f64>::new();
//! let x = tape.var(1.5);         // a leaf that wants a gradient
//! let u = x * x;                 // every operation is recorded on the tape
//! let y = u.sin();
//! let grads = y.backward();      // one pass over the tape, from y back to x
//! let by_hand = (1.5f64 * 1.5).cos() * 2.0 * 1.5;
//! assert!((grads[x].item() - by_hand).abs() < 1e-12);
//! assert!((grads[u].item() - (1.5f64 * 1.5).cos()).abs() < 1e-12); // intermediate gradients too
//! ```
//!
//! # 2. Watching backward work
//!
//! [`Var::backward_traced`](crate::Var::backward_traced) runs the same pass and returns an
//! account of every step: which node, the gradient flowing into it (`grad_out`), the op's local
//! rule, and what it added to each input. Names make it readable.
//!
//! ```
//! use tapegrad::Tape;
//!
//! let tape = Tape::<f64>::new();
//! let x = tape.var_named("x", 1.5);
//! let u = (x * x).named("u");
//! let y = u.sin().named("y");
//! let (_grads, trace) = y.backward_traced();
//! let text = trace.to_string();
//! assert!(text.contains("#2 y = sin(#1 u)"));
//! assert!(text.contains("#1 u = mul(#0 x, #0 x)"));
//! // trace.print() writes it all out; steps() gives the same as data:
//! assert_eq!(trace.steps().iter().map(|s| s.id).collect::<Vec<_>>(), [2, 1, 0]);
//! ```
//!
//! # 3. Many paths: gradients add up
//!
//! When a value is used twice, its gradient is the sum over the paths (the multivariable chain
//! rule). In `f = a·b + a`, `a` reaches `f` through the product and directly: `df/da = b + 1`.
//!
//! ```
//! use tapegrad::Tape;
//!
//! let tape = Tape::<f64>::new();
//! let a = tape.var(2.0);
//! let b = tape.var(-3.0);
//! let f = a * b + a;
//! let grads = f.backward();
//! assert_eq!(grads[a].item(), -3.0 + 1.0);
//! assert_eq!(grads[b].item(), 2.0);
//! ```
//!
//! A picture helps: [`Tape::to_dot`](crate::Tape::to_dot) writes the graph in Graphviz's DOT
//! language, one box per node with its value and gradient.
//!
//! ```
//! use tapegrad::Tape;
//!
//! let tape = Tape::<f64>::new();
//! let a = tape.var_named("a", 2.0);
//! let b = tape.var_named("b", -3.0);
//! let f = (a * b + a).named("f");
//! let dot = tape.to_dot(&f.backward());
//! assert!(dot.contains("#0 a (input)\\nvalue 2\\ngrad -2"));
//! // std::fs::write("f.dot", dot) and then `dot -Tsvg f.dot -o f.svg` draws it.
//! ```
//!
//! # 4. Checking a gradient numerically
//!
//! A derivative is a limit of differences, so finite differences check any gradient:
//! `(f(x + h) − f(x − h)) / 2h`. [`gradcheck`](crate::gradcheck) does this for every input.
//!
//! ```
//! use tapegrad::{gradcheck, Tape, Tensor, Var};
//!
//! gradcheck::check(|_tape: &Tape<f64>, xs: &[Var<f64>]| (xs[0] * xs[0]).sin(), &[Tensor::scalar(1.5)])
//!     .expect("backward agrees with finite differences");
//! ```
//!
//! # 5. Tensors
//!
//! The same rules hold elementwise. For `loss = Σ (W·x)²`, the gradient of a matrix product
//! is another product: `dloss/dW = (2·W·x)·xᵀ`. Broadcasting (adding a bias of shape `[2]` to
//! rows of shape `[3, 2]`) is undone in backward by summing over the broadcast axis.
//!
//! ```
//! use tapegrad::{Tape, Tensor};
//!
//! let tape = Tape::<f64>::new();
//! let w = tape.var(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]));
//! let x = tape.constant(Tensor::from_vec(vec![1.0, -1.0], &[2, 1]));
//! let loss = w.matmul(&x).powi(2).sum();
//! let grads = loss.backward();
//! // W·x = [-1, -1]; (2·W·x)·xᵀ = [[-2, 2], [-2, 2]]
//! assert_eq!(grads[w].to_vec(), vec![-2.0, 2.0, -2.0, 2.0]);
//!
//! let bias = tape.var(Tensor::from_vec(vec![0.5, -0.5], &[2]));
//! let rows = tape.constant(Tensor::zeros(&[3, 2]));
//! let grads = (rows + bias).sum().backward();
//! assert_eq!(grads[bias].to_vec(), vec![3.0, 3.0]); // one per row
//! ```
//!
//! # 6. Gradient descent by hand
//!
//! To minimise a loss, step against its gradient: `x ← x − lr · dloss/dx`. Trainable values
//! are [`Param`](crate::Param)s: they live outside the tape, which is reset each step.
//!
//! ```
//! use tapegrad::{Param, Tape, Tensor};
//!
//! let x = Param::new(Tensor::<f64>::scalar(5.0));
//! let mut tape = Tape::new();
//! for _ in 0..100 {
//!     tape.reset();
//!     let xv = tape.param(&x);
//!     let loss = xv * xv;                        // minimum at 0
//!     let g = loss.backward().param(&x).unwrap().item();
//!     x.update(|v| *v = Tensor::scalar(v.item() - 0.1 * g));
//! }
//! assert!(x.value().item().abs() < 1e-8);        // 5 · 0.8^100
//! ```
//!
//! (`cargo run --example descent_x2` shows what too large and too small rates do.)
//!
//! # 7. An optimizer
//!
//! [`optim`](crate::optim) has the update rules (SGD with momentum, Adam, ...) behind one
//! [`Optimizer::step`](crate::optim::Optimizer::step). Fitting `y = 2x + 3`:
//!
//! ```
//! use tapegrad::prelude::*;
//!
//! let x = Tensor::<f32>::linspace(-1.0, 1.0, 20).reshape(&[20, 1]);
//! let y = x.map(|v| 2.0 * v + 3.0);
//! let (w, b) = (Param::new(Tensor::zeros(&[1, 1])), Param::new(Tensor::zeros(&[1])));
//! let mut opt = Sgd::new(vec![w.clone(), b.clone()], SgdConfig { lr: 0.1, momentum: 0.9, ..Default::default() });
//! let mut tape = Tape::new();
//! for _ in 0..200 {
//!     tape.reset();
//!     let pred = tape.constant(x.clone()).matmul(&tape.param(&w)) + tape.param(&b);
//!     let grads = loss::mse(pred, tape.constant(y.clone())).backward();
//!     opt.step(&grads);
//! }
//! assert!((w.value().item() - 2.0).abs() < 1e-3 && (b.value().item() - 3.0).abs() < 1e-3);
//! ```
//!
//! # 8. A neural network
//!
//! A multilayer perceptron is linear layers with a nonlinearity between them; backward is the
//! same reverse pass, now through matrix products and `tanh`. XOR needs the hidden layer: no
//! straight line separates its classes.
//!
//! ```
//! use tapegrad::prelude::*;
//! use tapegrad::rand::{SeedableRng, rngs::StdRng};
//!
//! let mut rng = StdRng::seed_from_u64(1);
//! let mlp = Mlp::<f32>::new(&[2, 8, 2], Activation::Tanh, &mut rng);
//! let mut opt = Adam::new(mlp.parameters(), AdamConfig { lr: 0.05, ..Default::default() });
//! let inputs = Tensor::from_vec(vec![0., 0., 0., 1., 1., 0., 1., 1.], &[4, 2]);
//! let targets = [0, 1, 1, 0];
//! let mut tape = Tape::new();
//! for _ in 0..300 {
//!     tape.reset();
//!     let logits = mlp.forward(&tape, tape.constant(inputs.clone()));
//!     let grads = loss::cross_entropy(logits, &targets).backward();
//!     tape.reset();
//!     opt.step(&grads);
//! }
//! let tape = Tape::new();
//! let logits = mlp.forward(&tape, tape.constant(inputs)).value();
//! for (row, &target) in targets.iter().enumerate() {
//!     let predicted = if logits.get(&[row, 1]) > logits.get(&[row, 0]) { 1 } else { 0 };
//!     assert_eq!(predicted, target);
//! }
//! ```
//!
//! From here: `cargo run --example backprop_by_hand` (micrograd's expression, its graph and
//! every backward step), `linear_regression`, `optimizers` and `newton` in `examples/`.
