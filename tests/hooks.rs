//! Gradient hooks on vars and parameters (PyTorch's `register_hook`), and gradient accumulation
//! over micro-batches (`.grad +=`), issue 16.

use std::sync::{Arc, Mutex};

use tapegrad::nn::{Linear, Module};
use tapegrad::optim::{Adam, AdamConfig, Optimizer, Sgd, SgdConfig};
use tapegrad::rand::{SeedableRng, rngs::StdRng};
use tapegrad::{Gradients, Param, Tape, Tensor, Var, loss};

fn panic_message(f: impl FnOnce()) -> String {
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).expect_err("should panic");
    match err.downcast::<String>() {
        Ok(s) => *s,
        Err(e) => e
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .unwrap_or_default(),
    }
}

/// A log the hooks write to (hooks are `'static + Send + Sync`).
fn log() -> Arc<Mutex<Vec<Vec<f64>>>> {
    Arc::new(Mutex::new(Vec::new()))
}

#[test]
fn a_hook_sees_the_complete_gradient_once_and_its_replacement_flows_on() {
    for rank0 in [true, false] {
        let tape = Tape::<f64>::new();
        let value = |x: f64| {
            if rank0 {
                Tensor::scalar(x)
            } else {
                Tensor::from_vec(vec![x, 2.0 * x], &[2])
            }
        };
        let x = tape.var(value(1.5));
        let h = x * x;
        let seen = log();
        let s = seen.clone();
        h.register_hook(move |g| {
            s.lock().unwrap().push(g.value().to_vec());
            Some(g * 10.0)
        });
        // h is used twice: the hook must see the sum of both uses, 3 + 4 = 7 per element.
        let y = (h * 3.0 + h * 4.0).sum();
        let grads = y.backward();
        assert_eq!(*seen.lock().unwrap(), vec![vec![7.0; if rank0 { 1 } else { 2 }]]);
        let x0 = x.value().to_vec();
        assert_eq!(grads[h].to_vec(), vec![70.0; x0.len()], "rank0 {rank0}");
        // dh/dx = 2x, times the hooked 70.
        let expected: Vec<f64> = x0.iter().map(|&v| 140.0 * v).collect();
        assert_eq!(grads[x].to_vec(), expected, "rank0 {rank0}");
        // Another backward runs it once more.
        let _ = y.backward();
        assert_eq!(seen.lock().unwrap().len(), 2);
    }
}

#[test]
fn a_hook_returning_none_keeps_the_gradient() {
    let tape = Tape::<f64>::new();
    let x = tape.var(Tensor::from_vec(vec![1.0, -2.0], &[2]));
    let seen = log();
    let s = seen.clone();
    x.register_hook(move |g| {
        s.lock().unwrap().push(g.value().to_vec());
        None
    });
    let grads = (x * x).sum().backward();
    assert_eq!(grads[x].to_vec(), vec![2.0, -4.0]);
    assert_eq!(*seen.lock().unwrap(), vec![vec![2.0, -4.0]]);
}

#[test]
fn hooks_compose_in_registration_order() {
    let tape = Tape::<f64>::new();
    let x = tape.var(2.0);
    let h = x.exp();
    h.register_hook(|g| Some(g * 2.0));
    h.register_hook(|g| Some(g + 1.0));
    let grads = (h * 3.0).backward();
    // (3·2) + 1 = 7, not (3 + 1)·2 = 8.
    assert_eq!(grads[h].item(), 7.0);
    assert_eq!(grads[x].item(), 7.0 * 2f64.exp());
}

#[test]
fn a_removed_hook_no_longer_runs() {
    let tape = Tape::<f64>::new();
    let x = tape.var(1.0);
    let keep = x.register_hook(|g| Some(g * 2.0));
    let drop_me = x.register_hook(|g| Some(g * 5.0));
    assert!(drop_me.remove());
    assert_eq!((x * 3.0).backward()[x].item(), 6.0);
    assert!(keep.remove());
    assert_eq!((x * 3.0).backward()[x].item(), 3.0);
}

#[test]
fn a_hook_of_the_wrong_shape_names_the_var_and_both_shapes() {
    let tape = Tape::<f64>::new();
    let x = tape.var(Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3]));
    let h = (x * 2.0).named("h");
    h.register_hook(|g| Some(g.sum()));
    let msg = panic_message(|| {
        let _ = h.sum().backward();
    });
    assert!(msg.contains(&format!("var {} (\"h\")", h.id())), "{msg}");
    assert!(msg.contains("shape []") && msg.contains("shape [3]"), "{msg}");
    // The recorded pass checks too.
    let msg = panic_message(|| {
        let _ = h.sum().grad(&[x]);
    });
    assert!(msg.contains("shape []") && msg.contains("shape [3]"), "{msg}");
}

#[test]
fn a_hook_on_a_var_without_gradient_is_refused() {
    let tape = Tape::<f64>::new();
    let c = tape.constant(1.0);
    let msg = panic_message(|| {
        c.register_hook(|_| None);
    });
    assert!(msg.contains("does not require a gradient"), "{msg}");
}

#[test]
fn the_recorded_backward_runs_hooks_differentiably() {
    // h = x², y = sin(h), and a hook squaring h's gradient: the hooked dy/dx is
    // cos(x²)²·2x, and its derivative 2cos²(x²) − 8x²·cos(x²)·sin(x²).
    let x0 = 0.7f64;
    let tape = Tape::<f64>::new();
    let x = tape.var(x0);
    let h = x * x;
    let handle = h.register_hook(|g| Some(g * g));
    let y = h.sin();
    let (c, s) = ((x0 * x0).cos(), (x0 * x0).sin());
    let first = c * c * 2.0 * x0;
    let second = 2.0 * c * c - 8.0 * x0 * x0 * c * s;
    assert!((y.backward()[x].item() - first).abs() < 1e-15);
    let dx = y.grad(&[x])[0];
    assert!((dx.item() - first).abs() < 1e-15, "{} vs {first}", dx.item());
    // The second pass reaches h too, and would square its gradient again (hooks run in every
    // pass that reaches their var, as PyTorch's): removed, it differentiates the first hook.
    assert!(handle.remove());
    let ddx = dx.grad(&[x])[0];
    assert!((ddx.item() - second).abs() < 1e-14, "{} vs {second}", ddx.item());
}

#[test]
fn a_param_hook_runs_once_per_backward_on_the_total_gradient_of_every_tape() {
    let w = Param::new(Tensor::<f64>::from_vec(vec![1.0, -1.0], &[2]));
    let seen = log();
    let s = seen.clone();
    let handle = w.register_hook(move |g| {
        s.lock().unwrap().push(g.value().to_vec());
        Some(g.clamp(-2.5, 2.5))
    });
    for step in 0..2 {
        let tape = Tape::new();
        // Bound twice (as a recurrent layer binds per step): the hook sees the sum, once.
        let loss = (tape.param(&w) * 2.0
            + tape.param(&w) * tape.constant(Tensor::from_vec(vec![1.0, 0.5], &[2])))
        .sum();
        let grads = loss.backward();
        assert_eq!(seen.lock().unwrap().len(), step + 1);
        assert_eq!(seen.lock().unwrap()[step], vec![3.0, 2.5]);
        assert_eq!(grads.param(&w).unwrap().to_vec(), vec![2.5, 2.5]);
    }
    // A clone shares the hooks; after removal they are gone from both.
    let clone = w.clone();
    assert!(handle.remove());
    let tape = Tape::new();
    let grads = (tape.param(&clone) * 3.0).sum().backward();
    assert_eq!(grads.param(&w).unwrap().to_vec(), vec![3.0, 3.0]);
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[test]
fn a_param_hook_of_the_wrong_shape_names_the_parameter() {
    let w = Param::new(Tensor::<f64>::from_vec(vec![1.0, 2.0], &[2]));
    w.register_hook(|g| Some(g.reshape(&[2, 1])));
    let tape = Tape::new();
    let loss = tape.param(&w).sum();
    let msg = panic_message(|| {
        let _ = loss.backward();
    });
    assert!(msg.contains(&format!("parameter {}", w.id())), "{msg}");
    assert!(msg.contains("[2, 1]") && msg.contains("[2]"), "{msg}");
    // The recorded pass names the parameter too.
    let x = tape.param(&w);
    let loss = (x * x).sum();
    let msg = panic_message(|| {
        let _ = loss.grad(&[x]);
    });
    assert!(msg.contains(&format!("parameter {}", w.id())), "{msg}");
}

#[test]
fn a_param_hook_handle_does_not_keep_the_parameter_alive() {
    let w = Param::new(Tensor::<f32>::scalar(1.0));
    let handle = w.register_hook(|g| Some(g * 0.0));
    drop(w);
    assert!(!handle.remove());
}

#[test]
fn a_param_hook_runs_in_the_recorded_backward_too() {
    let w = Param::new(Tensor::<f64>::scalar(3.0));
    w.register_hook(|g| Some(g * 10.0));
    let tape = Tape::new();
    let v = tape.param(&w);
    let y = v * v; // dy/dv = 2v = 6, hooked 60
    let g = y.grad(&[v])[0];
    assert_eq!(g.item(), 60.0);
    // d(20v)/dv = 20, and the second pass reaches v as well: hooked again, as in PyTorch.
    assert_eq!(g.grad(&[v])[0].item(), 200.0);
    assert_eq!(y.backward().param(&w).unwrap().item(), 60.0);
}

#[test]
fn param_hooks_clip_per_parameter_before_an_optimizer_step() {
    let mut rng = StdRng::seed_from_u64(5);
    let layer = Linear::<f64>::new(3, 2, &mut rng);
    for p in layer.parameters() {
        p.register_hook(|g| Some(g.clamp(-0.01, 0.01)));
    }
    let before: Vec<Vec<f64>> = layer.parameters().iter().map(|p| p.value().to_vec()).collect();
    let mut opt = Sgd::new(
        layer.parameters(),
        SgdConfig {
            lr: 1.0,
            ..Default::default()
        },
    );
    let tape = Tape::new();
    let x = tape.constant(Tensor::from_vec(vec![5.0, -3.0, 8.0, 1.0, 2.0, -7.0], &[2, 3]));
    let grads = (layer.forward(&tape, x).square().sum() * 100.0).backward();
    opt.step(&grads);
    for (p, b) in layer.parameters().iter().zip(before) {
        for (after, b) in p.value().to_vec().iter().zip(b) {
            assert!((after - b).abs() <= 0.01 + 1e-15, "moved by {}", after - b);
        }
    }
}

/// A two-layer network whose parameters start equal for equal seeds.
fn net(seed: u64) -> (Linear<f64>, Linear<f64>) {
    let mut rng = StdRng::seed_from_u64(seed);
    (Linear::new(3, 5, &mut rng), Linear::new(5, 1, &mut rng))
}

fn net_loss<'t>(
    net: &(Linear<f64>, Linear<f64>),
    tape: &'t Tape<f64>,
    x: &Tensor<f64>,
    y: &Tensor<f64>,
) -> Var<'t, f64> {
    let h = net.0.forward(tape, tape.constant(x.clone())).tanh();
    loss::mse(net.1.forward(tape, h), tape.constant(y.clone()))
}

fn params(net: &(Linear<f64>, Linear<f64>)) -> Vec<Param<f64>> {
    let mut p = net.0.parameters();
    p.extend(net.1.parameters());
    p
}

/// k micro-batch passes, accumulated and scaled by 1/k, then one step, equal one step on the
/// whole batch (mean losses, equal micro-batches). The tolerance, 1e-12 on parameters of order
/// 1, only allows for the order of the floating-point sums (a mean over 12 rows against means
/// over 4 and their mean), a few ulps; any missing or doubled micro-batch is off by ~1e-2.
#[test]
fn accumulated_micro_batches_step_like_the_whole_batch() {
    let n = 12;
    let x = Tensor::from_fn(&[n, 3], |i| ((i * 7 % 11) as f64 - 5.0) * 0.3);
    let y = Tensor::from_fn(&[n, 1], |i| (i as f64 * 0.9).sin());
    for use_adam in [false, true] {
        let (micro, whole) = (net(9), net(9));
        let make = |net: &(Linear<f64>, Linear<f64>)| -> Box<dyn Optimizer<f64>> {
            if use_adam {
                Box::new(Adam::new(
                    params(net),
                    AdamConfig {
                        lr: 0.05,
                        ..Default::default()
                    },
                ))
            } else {
                Box::new(Sgd::new(
                    params(net),
                    SgdConfig {
                        lr: 0.3,
                        momentum: 0.9,
                        ..Default::default()
                    },
                ))
            }
        };
        let (mut opt_micro, mut opt_whole) = (make(&micro), make(&whole));
        let k = 3;
        for _step in 0..3 {
            let mut acc = Gradients::default();
            for part in 0..k {
                let rows = n / k;
                let xs = x.narrow(0, part * rows, rows);
                let ys = y.narrow(0, part * rows, rows);
                let tape = Tape::new();
                acc += &net_loss(&micro, &tape, &xs, &ys).backward();
            }
            acc.scale(1.0 / k as f64);
            opt_micro.step(&acc);
            let tape = Tape::new();
            let grads = net_loss(&whole, &tape, &x, &y).backward();
            for (p, g) in params(&whole).iter().zip(params(&micro)) {
                let (a, b) = (grads.param(p).unwrap().to_vec(), acc.param(&g).unwrap().to_vec());
                for (a, b) in a.iter().zip(&b) {
                    assert!((a - b).abs() < 1e-12, "gradient {a} vs accumulated {b}");
                }
            }
            opt_whole.step(&grads);
        }
        for (a, b) in params(&whole).iter().zip(params(&micro)) {
            for (a, b) in a.value().to_vec().iter().zip(b.value().to_vec()) {
                assert!((a - b).abs() < 1e-12, "adam {use_adam}: {a} vs {b}");
            }
        }
        // The steps did something: the parameters moved from their start.
        let start = params(&net(9));
        let moved = params(&whole)
            .iter()
            .zip(&start)
            .any(|(p, s)| p.value().to_vec() != s.value().to_vec());
        assert!(moved);
    }
}

#[test]
fn hooks_keep_tapes_send_and_parameters_send_and_sync() {
    fn send<T: Send>() {}
    fn send_sync<T: Send + Sync>() {}
    send::<Tape<f32>>();
    send_sync::<Param<f64>>();
    send_sync::<tapegrad::ParamHookHandle<f32>>();
}
