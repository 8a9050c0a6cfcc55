//! A tutorial: from the chain rule on one number to training a network with tensors and an
//! optimizer, then backpropagation through time for recurrent networks. Every code block here
//! runs as a test.
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
//! # 9. Backpropagation through time
//!
//! A recurrent network applies one cell at every step of a sequence with the same weights,
//! `h_t = tanh(x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh)`. On a tape nothing about that is
//! special: the loop records every step after the one before, so the sequence is *unrolled*
//! into one long graph, and `backward` walks it from the last step to the first. The gradient
//! reaching `h_{t-1}` is the gradient at `h_t` times the step's Jacobian, and the weights, used
//! at every step, collect one contribution per step (chapter 3: gradients add up). That is
//! backpropagation through time (BPTT): reverse mode on the unrolled graph, nothing more.
//!
//! ```
//! use tapegrad::nn::RnnCell;
//! use tapegrad::prelude::*;
//! use tapegrad::rand::{SeedableRng, rngs::StdRng};
//!
//! let mut rng = StdRng::seed_from_u64(0);
//! let cell = RnnCell::<f64>::new(2, 4, &mut rng);
//! let tape = Tape::new();
//! let xs: Vec<_> = (0..6).map(|_| tape.var(Tensor::randn(&[1, 2], &mut rng))).collect();
//! let mut h = None;
//! let mut recorded = Vec::new();
//! for &x in &xs {
//!     let before = tape.len();
//!     h = Some(cell.forward_step(&tape, x, h));
//!     recorded.push(tape.len() - before);
//! }
//! // The same nodes for every step after the first: the graph grows with the sequence.
//! assert!(recorded[1..].iter().all(|&n| n == recorded[1]));
//! let grads = h.unwrap().sum().backward();
//! // A loss on the last state reaches every input, back through the chain of states.
//! assert!(xs.iter().all(|&x| grads[x].as_slice().iter().any(|&g| g != 0.0)));
//! ```
//!
//! ## Vanishing and exploding gradients
//!
//! The gradient with respect to an early input passes through every later step's Jacobian,
//! `∂h_T/∂x_0 = (∏_t diag(1 − h_t²) W_hh) · ∂h_1/∂x_0`: a product of `T` matrices. If they shrink
//! vectors (small recurrent weights, saturated `tanh`) it vanishes exponentially in `T`, and the
//! network cannot learn what an early input meant for a late loss; if they stretch them it
//! explodes. Measured on a tanh RNN of 16 units, PyTorch's initialisation and the same weights
//! with `W_hh` four times larger:
//!
//! ```
//! use tapegrad::nn::RnnCell;
//! use tapegrad::prelude::*;
//! use tapegrad::rand::{SeedableRng, rngs::StdRng};
//!
//! /// ‖∂(Σ h_T)/∂x_0‖ over `steps` steps of random inputs.
//! fn first_input_gradient(cell: &RnnCell<f64>, steps: usize) -> f64 {
//!     let mut rng = StdRng::seed_from_u64(1);
//!     let tape = Tape::new();
//!     let x0 = tape.var(Tensor::randn(&[1, 4], &mut rng));
//!     let mut h = cell.forward_step(&tape, x0, None);
//!     for _ in 1..steps {
//!         h = cell.forward_step(&tape, tape.constant(Tensor::randn(&[1, 4], &mut rng)), Some(h));
//!     }
//!     let grads = h.sum().backward();
//!     grads[x0].as_slice().iter().map(|g| g * g).sum::<f64>().sqrt()
//! }
//!
//! let cell = RnnCell::<f64>::new(4, 16, &mut StdRng::seed_from_u64(0));
//! let norms: Vec<f64> = [1, 10, 50].iter().map(|&t| first_input_gradient(&cell, t)).collect();
//! assert!(norms[1] < 0.01 * norms[0] && norms[2] < 1e-9 * norms[0]); // vanishing
//!
//! let (_, w_hh) = cell.named_parameters().into_iter().find(|(n, _)| n == "weight_hh").unwrap();
//! w_hh.update(|w| *w = w.map(|v| 4.0 * v));
//! let norms: Vec<f64> = [1, 10, 50].iter().map(|&t| first_input_gradient(&cell, t)).collect();
//! assert!(norms[2] > 100.0 * norms[0]); // exploding
//! ```
//!
//! Gated cells ([`Lstm`](crate::nn::Lstm), [`Gru`](crate::nn::Gru)) ease the first problem: the
//! LSTM's cell state is carried by `c_t = f ⊙ c_{t-1} + i ⊙ g`, whose Jacobian is the forget gate,
//! close to the identity when `f ≈ 1`. The second is usually handled by clipping.
//!
//! ## Gradient clipping
//!
//! [`clip_grad_norm`](crate::optim::clip_grad_norm) rescales all parameter gradients together
//! so that their total L2 norm is at most a bound, keeping the direction of the step and
//! bounding its size; it returns the norm before clipping, worth logging.
//!
//! ```
//! use tapegrad::nn::RnnCell;
//! use tapegrad::prelude::*;
//! use tapegrad::rand::{SeedableRng, rngs::StdRng};
//!
//! let mut rng = StdRng::seed_from_u64(0);
//! let cell = RnnCell::<f64>::new(4, 16, &mut rng);
//! for p in cell.parameters() {
//!     p.update(|w| *w = w.map(|v| 4.0 * v)); // a network whose gradients explode
//! }
//! let tape = Tape::new();
//! let mut h = None;
//! for _ in 0..40 {
//!     h = Some(cell.forward_step(&tape, tape.constant(Tensor::randn(&[2, 4], &mut rng)), h));
//! }
//! let mut grads = h.unwrap().square().mean().backward();
//! let before = clip_grad_norm(&mut grads, 1.0);
//! let after = grads.params().map(|(_, g)| g.as_slice().iter().map(|v| v * v).sum::<f64>()).sum::<f64>().sqrt();
//! assert!(before > 10.0 && (after - 1.0).abs() < 1e-5);
//! ```
//!
//! ## Truncated BPTT
//!
//! A long sequence (a book, hours of audio) cannot be unrolled whole: the tape holds every step
//! until `backward`. Truncated BPTT cuts it into chunks of `K` steps, runs `backward` and an
//! optimizer step after each, and carries the state to the next chunk *as a value*, so that
//! the next chunk starts where the last ended but its gradients stop at the cut.
//! [`Var::detach`](crate::Var::detach) makes that cut on one tape; across
//! [`Tape::reset`](crate::Tape::reset) the carried tensor becomes a constant of the new tape,
//! which is the same cut. `forward_with_state` takes the state in and hands it out.
//!
//! ```
//! use tapegrad::nn::{Lstm, RnnConfig};
//! use tapegrad::prelude::*;
//! use tapegrad::rand::{SeedableRng, rngs::StdRng};
//!
//! let mut rng = StdRng::seed_from_u64(0);
//! let lstm = Lstm::<f64>::new(1, 8, RnnConfig::default(), &mut rng);
//!
//! // On one tape: with the state detached, the second chunk's output has the same value but
//! // its gradient no longer reaches the first chunk's inputs.
//! let tape = Tape::new();
//! let first = tape.var(Tensor::randn(&[5, 1, 1], &mut rng)); // [T, N, input]
//! let second = tape.var(Tensor::randn(&[5, 1, 1], &mut rng));
//! let (_, (h, c)) = lstm.forward_with_state(&tape, first, None);
//! let (through, _) = lstm.forward_with_state(&tape, second, Some((h, c)));
//! let (cut, _) = lstm.forward_with_state(&tape, second, Some((h.detach(), c.detach())));
//! assert_eq!(through.value(), cut.value());
//! assert!(through.sum().backward()[first].as_slice().iter().any(|&g| g != 0.0));
//! assert!(cut.sum().backward().wrt(first).is_none());
//!
//! // Training: predict the next value of a long wave, 20 steps at a time.
//! let wave: Vec<f64> = (0..121).map(|t| (0.3 * t as f64).sin()).collect();
//! let head = Linear::<f64>::new(8, 1, &mut rng);
//! let params: Vec<_> = lstm.parameters().into_iter().chain(head.parameters()).collect();
//! let mut opt = Adam::new(params, AdamConfig { lr: 0.02, ..Default::default() });
//! let mut tape = Tape::new();
//! let mut epoch_losses = Vec::new();
//! for _epoch in 0..12 {
//!     let mut state: Option<(Tensor<f64>, Tensor<f64>)> = None; // the zero state
//!     let mut total = 0.0;
//!     for chunk in 0..6 {
//!         let (from, k) = (chunk * 20, 20);
//!         tape.reset();
//!         let x = tape.constant(Tensor::from_vec(wave[from..from + k].to_vec(), &[k, 1, 1]));
//!         let y = tape.constant(Tensor::from_vec(wave[from + 1..from + k + 1].to_vec(), &[k, 1, 1]));
//!         let carried = state.take().map(|(h, c)| (tape.constant(h), tape.constant(c)));
//!         let (out, (h, c)) = lstm.forward_with_state(&tape, x, carried);
//!         state = Some((h.value(), c.value())); // carried on as values: the cut
//!         let loss = loss::mse(head.forward(&tape, out), y);
//!         total += loss.item();
//!         let grads = loss.backward();
//!         tape.reset();
//!         opt.step(&grads);
//!     }
//!     epoch_losses.push(total / 6.0);
//! }
//! assert!(epoch_losses[11] < 0.1 * epoch_losses[0]);
//! ```
//!
//! ## Batches of sequences of different lengths
//!
//! Sequences in a batch rarely have one length. Pad them to the longest and give each its
//! length: `forward_with_lengths` (PyTorch's packed sequences) leaves the state alone on padded
//! steps, gives zero outputs there (so a loss summed over the outputs ignores them and the
//! padding gets no gradient), and returns each sequence's state after its own last step.
//!
//! ```
//! use tapegrad::nn::{Gru, RnnConfig};
//! use tapegrad::prelude::*;
//! use tapegrad::rand::{SeedableRng, rngs::StdRng};
//!
//! let mut rng = StdRng::seed_from_u64(0);
//! let gru = Gru::<f64>::new(2, 3, RnnConfig { batch_first: true, ..Default::default() }, &mut rng);
//! let tape = Tape::new();
//! let x = tape.var(Tensor::randn(&[2, 5, 2], &mut rng)); // [N, T, input]; sequence 1 is 3 long
//! let (out, h_n) = gru.forward_with_lengths(&tape, x, &[5, 3], None);
//! let grads = out.sum().backward();
//! let padding = grads[x].narrow(0, 1, 1).narrow(1, 3, 2);
//! assert!(padding.as_slice().iter().all(|&g| g == 0.0));
//! // h_n [1, N, H]: sequence 1's state is its output at step 3 (index 2).
//! assert_eq!(h_n.value().narrow(1, 1, 1).to_vec(), out.value().narrow(0, 1, 1).narrow(1, 2, 1).to_vec());
//! ```
//!
//! `cargo run --release --example char_lm -- --model lstm` puts this together: an LSTM language
//! model trained on random windows of a text, generating one character at a time while it
//! carries `(h, c)` from each character to the next.
//!
//! From here: `cargo run --example backprop_by_hand` (micrograd's expression, its graph and
//! every backward step), `linear_regression`, `optimizers` and `newton` in `examples/`.
