//! The public API contract of DESIGN.md section 2 (core engine part), spelled out so that a
//! renamed item or a changed signature fails to compile here before it breaks outside checks.

use tapegrad::prelude::*;
use tapegrad::rand::{SeedableRng, rngs::StdRng, seq::SliceRandom};
use tapegrad::{Error, gradcheck};

#[test]
fn tensor_constructors_and_accessors() {
    let mut rng = StdRng::seed_from_u64(0);
    let t = Tensor::<f64>::from_vec(vec![1., 2., 3., 4., 5., 6.], &[2, 3]);
    let s = Tensor::<f64>::scalar(3.0);
    let s2: Tensor<f64> = Tensor::from(3.0);
    let z = Tensor::<f32>::zeros(&[2, 3]);
    let o = Tensor::<f32>::ones(&[2, 3]);
    let r = Tensor::<f32>::randn(&[2, 3], &mut rng);
    let u = Tensor::<f32>::rand_uniform(&[2, 3], -1.0, 1.0, &mut rng);
    let rank0 = Tensor::<f64>::from_vec(vec![7.0], &[]);
    let shape: &[usize] = t.shape();
    let slice: &[f64] = t.as_slice();
    let v: Vec<f64> = t.to_vec();
    let item: f64 = s.item();
    assert_eq!((shape, slice.len(), v.len(), item), (&[2usize, 3][..], 6, 6, 3.0));
    assert_eq!((s2.item(), rank0.shape().len(), rank0.item()), (3.0, 0, 7.0));
    assert_eq!(
        (z.shape(), o.shape(), r.shape(), u.shape()),
        (&[2, 3][..], &[2, 3][..], &[2, 3][..], &[2, 3][..])
    );
    let default_type: Tensor = Tensor::zeros(&[1]); // f32 by default
    let _: f32 = default_type.item();
    let mut order = [1, 2, 3];
    order.shuffle(&mut rng);
}

#[test]
fn tape_var_and_every_listed_method() {
    let tape = Tape::<f64>::new();
    let t = Tensor::<f64>::from_vec(vec![0.5, 1., 1.5, 2., 2.5, 3.], &[2, 3]);
    let x: Var<f64> = tape.var(t.clone());
    let c = tape.constant(t.clone());
    let k = tape.var(2.0);
    let _: Tensor<f64> = x.value();
    let _: Vec<usize> = x.shape();
    let _: f64 = k.item();
    let y = (x + 1.0) * (2.0 * x) - x / 3.0 + (1.0 - x) + (4.0 / x) + (-x) + c;
    let y = y
        .exp()
        .ln()
        .sqrt()
        .abs()
        .tanh()
        .sigmoid()
        .relu()
        .powf(2.0)
        .powi(2)
        .sin()
        .cos();
    let _ = (
        y.sum(),
        y.mean(),
        y.sum_axis(0, true),
        y.mean_axis(1, false),
        y.max_axis(1, true),
    );
    let w = tape.var(Tensor::from_vec(vec![1.0; 6], &[3, 2]));
    let m = x.matmul(&w);
    let batched = tape.var(Tensor::<f64>::ones(&[4, 2, 3])).matmul(&w);
    let _ = (
        m.reshape(&[4]),
        m.transpose(0, 1),
        m.broadcast_to(&[3, 2, 2]),
        x.narrow(1, 0, 2),
    );
    let _ = (x.softmax(1), x.log_softmax(0), batched.shape());
    let loss: Var<f64> = y.sum();
    let grads: Gradients<f64> = loss.backward();
    let _: Option<&Tensor<f64>> = grads.wrt(x);
    let _: &Tensor<f64> = &grads[x];
    let gs: Vec<Var<f64>> = loss.grad(&[x]);
    assert_eq!(gs.len(), 1);
    let _: Gradients<f64> = y.backward_with_seed(Tensor::ones(&[2, 3]));
    let quiet = tape.no_grad(|| x * 2.0);
    assert!(!quiet.requires_grad());
    let f32_tape = Tape::<f32>::new();
    let a = f32_tape.var(1.0f32);
    let _ = (a + 1.0f32, 2.0f32 * a, 2.0f32 - a, 2.0f32 / a);
}

#[test]
fn losses_params_and_gradcheck() {
    let tape = Tape::<f64>::new();
    let logits = tape.var(Tensor::from_vec(vec![0.1, 0.2, 0.3, 0.4, 0.5, 0.6], &[2, 3]));
    let targets: Vec<usize> = vec![0, 2];
    let ce: Var<f64> = tapegrad::loss::cross_entropy(logits, &targets);
    let mse: Var<f64> = tapegrad::loss::mse(logits, tape.constant(Tensor::zeros(&[2, 3])));
    let _ = (ce + mse).backward();

    let mut rng = StdRng::seed_from_u64(1);
    let w = Param::new(Tensor::<f32>::randn(&[3, 2], &mut rng));
    let tape = Tape::<f32>::new();
    let wv = tape.param(&w);
    let wv2 = tape.param(&w);
    let _: Tensor<f32> = w.value();
    let grads = (wv * wv2).sum().backward();
    let g: Option<&Tensor<f32>> = grads.param(&w);
    assert_eq!(g.map(|g| g.shape().to_vec()), Some(vec![3, 2]));
    let _cloned: Param<f32> = w.clone();

    let t1 = Tensor::<f64>::from_vec(vec![0.3, 0.7], &[2]);
    let r: Result<(), gradcheck::GradcheckError> = gradcheck::check(
        |_tape: &Tape<f64>, xs: &[Var<f64>]| xs[0].exp().sum(),
        std::slice::from_ref(&t1),
    );
    r.unwrap();
    let tol = gradcheck::Tolerance {
        eps: 1e-6,
        atol: 1e-5,
        rtol: 1e-3,
    };
    gradcheck::check_with(|_tape: &Tape<f64>, xs: &[Var<f64>]| xs[0].sin().sum(), &[t1], tol).unwrap();
}

#[test]
fn error_types_are_std_errors() {
    fn is_error<E: std::error::Error + std::fmt::Debug + std::fmt::Display>() {}
    is_error::<Error>();
    is_error::<gradcheck::GradcheckError>();
}

/// gradcheck's bound, exactly as the contract states it.
fn _bound_is_exact<F>(f: F) -> Result<(), gradcheck::GradcheckError>
where
    F: for<'t> Fn(&'t Tape<f64>, &[Var<'t, f64>]) -> Var<'t, f64>,
{
    gradcheck::check(f, &[])
}
