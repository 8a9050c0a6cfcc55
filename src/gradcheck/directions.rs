//! Gradient checking along random directions, as JAX's `check_grads`: one reverse pass and two
//! evaluations of `f` per direction and input, instead of two evaluations per element.

use std::fmt;

use rand::{SeedableRng, rngs::StdRng};

use super::{InputsFn, Tolerance};
use crate::{Tape, Tensor, Var};

/// The settings of [`check_directions`]: how many random directions, the random seed that
/// draws them, and the finite-difference step and tolerances (a [`Tolerance`], as for
/// [`check_with`](super::check_with)).
///
/// ```
/// use tapegrad::gradcheck::{DirectionCheck, Tolerance};
/// let config = DirectionCheck { directions: 20, seed: 7, ..DirectionCheck::default() };
/// assert_eq!(config.tol, Tolerance::default());
/// assert!(!config.jvp);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DirectionCheck {
    /// The number of random directions (default 8). Each costs one reverse pass and two
    /// evaluations of `f` per input.
    pub directions: usize,
    /// The seed of the directions (default 0): the same seed draws the same directions.
    pub seed: u64,
    /// The finite-difference step `eps` along each (unit) direction and the tolerances; a
    /// direction passes when `|analytic - numeric| <= atol + rtol * |numeric|`.
    pub tol: Tolerance,
    /// Also compare `uᵀ(J v)` from [`functional::jvp_many`](crate::functional::jvp_many) (double
    /// backward, so the recorded form of every rule is exercised too) with the finite
    /// difference; one more recording and two reverse passes per direction and input. Default
    /// `false`.
    pub jvp: bool,
}

impl Default for DirectionCheck {
    /// 8 directions, seed 0, [`Tolerance::default`], no `jvp` comparison.
    fn default() -> Self {
        DirectionCheck {
            directions: 8,
            seed: 0,
            tol: Tolerance::default(),
            jvp: false,
        }
    }
}

/// A directional derivative that disagrees with finite differences ([`check_directions`]):
/// which direction and input, which product, and both values.
///
/// ```
/// use tapegrad::gradcheck::{self, DirectionCheck};
/// use tapegrad::{Tape, Tensor, Var};
/// // x.detach() cuts half of d(x²)/dx.
/// let err = gradcheck::check_directions(
///     |_t: &Tape<f64>, xs: &[Var<f64>]| (xs[0] * xs[0].detach()).sum(),
///     &[Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3])],
///     DirectionCheck::default(),
/// )
/// .unwrap_err();
/// assert_eq!((err.input, err.via), (0, "vjp"));
/// assert!((err.numeric - 2.0 * err.analytic).abs() < 1e-6);
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct DirectionError {
    /// The number of the direction (0 for the first drawn).
    pub direction: usize,
    /// The position of the input in the `inputs` slice that was moved along the direction.
    pub input: usize,
    /// `"vjp"` when the analytic value is `⟨Jᵀu, v⟩` from one reverse pass, `"jvp"` when it is
    /// `⟨u, J v⟩` from [`functional::jvp_many`](crate::functional::jvp_many).
    pub via: &'static str,
    /// The directional derivative `uᵀ J v` tapegrad computed.
    pub analytic: f64,
    /// `uᵀ (f(x + eps v) - f(x - eps v)) / 2eps`.
    pub numeric: f64,
    /// The seed the directions were drawn with ([`DirectionCheck::seed`]).
    pub seed: u64,
}

impl fmt::Display for DirectionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "gradcheck: along random direction {} (seed {}) of input {}: uᵀJv from {} is {:e} but \
             finite differences give {:e} (difference {:e})",
            self.direction,
            self.seed,
            self.input,
            self.via,
            self.analytic,
            self.numeric,
            (self.analytic - self.numeric).abs()
        )?;
        if !self.numeric.is_finite() || !self.analytic.is_finite() {
            write!(
                f,
                "; a non-finite value means the function is undefined or overflows near this point"
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for DirectionError {}

/// Checks the gradients of `f` along random directions, as JAX's `check_grads` does: for each
/// of `config.directions` directions and each input `x_i`, a random unit cotangent `u` (of the
/// output's shape) and a random unit tangent `v` (of `x_i`'s shape) are drawn, and
/// `⟨Jᵢᵀ u, v⟩`, from one reverse pass of the one recording of `f`, is compared with
/// `⟨u, (f(x_i + eps v) - f(x_i - eps v)) / 2eps⟩`.
///
/// This costs one reverse pass and two evaluations of `f` per direction and input, whatever the
/// inputs' sizes, where [`check`](super::check) evaluates `f` twice per element: use it for
/// large inputs. A wrong gradient fails for almost every direction, so a few directions
/// suffice; [`check`](super::check) still names the element that is wrong. With `config.jvp`, `⟨u, J v⟩` from
/// [`functional::jvp_many`](crate::functional::jvp_many) is compared too.
///
/// # Errors
/// The first direction and input that disagree.
///
/// ```
/// use tapegrad::gradcheck::{self, DirectionCheck};
/// use tapegrad::{Tape, Tensor, Var};
/// use tapegrad::rand::{SeedableRng, rngs::StdRng};
/// let mut rng = StdRng::seed_from_u64(1);
/// let w = Tensor::randn(&[64, 32], &mut rng);
/// let x = Tensor::randn(&[16, 64], &mut rng);
/// // 3072 elements: `check` would evaluate f 6144 times, this 2 × 2 × 8 times.
/// gradcheck::check_directions(
///     |_t: &Tape<f64>, xs: &[Var<f64>]| xs[0].matmul(&xs[1]).tanh().square().mean(),
///     &[x, w],
///     DirectionCheck { jvp: true, ..DirectionCheck::default() },
/// )
/// .unwrap();
/// ```
pub fn check_directions<F>(f: F, inputs: &[Tensor<f64>], config: DirectionCheck) -> Result<(), DirectionError>
where
    F: for<'t> Fn(&'t Tape<f64>, &[Var<'t, f64>]) -> Var<'t, f64>,
{
    check_along_directions(&f, inputs, config)
}

fn check_along_directions(
    f: &InputsFn<'_>,
    inputs: &[Tensor<f64>],
    config: DirectionCheck,
) -> Result<(), DirectionError> {
    let tape = Tape::new();
    let xs: Vec<Var<f64>> = inputs.iter().map(|t| tape.var(t.clone())).collect();
    let y = f(&tape, &xs);
    let out_shape = y.shape();
    let evaluate = |point: &[Tensor<f64>]| -> Tensor<f64> {
        let tape = Tape::new();
        let xs: Vec<Var<f64>> = point.iter().map(|t| tape.var(t.clone())).collect();
        let y = f(&tape, &xs).value();
        assert_eq!(
            y.shape(),
            &out_shape[..],
            "gradcheck: the function's output shape changed between evaluations"
        );
        y
    };
    let tol = config.tol;
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut point = inputs.to_vec();
    for direction in 0..config.directions {
        let u = unit(Tensor::randn(&out_shape, &mut rng));
        let vs: Vec<Tensor<f64>> = inputs
            .iter()
            .map(|t| unit(Tensor::randn(t.shape(), &mut rng)))
            .collect();
        // One reverse pass gives every input's Jᵢᵀu.
        let grads = y.backprop(u.clone());
        let jtu: Vec<Tensor<f64>> = xs
            .iter()
            .zip(inputs)
            .map(|(x, t)| grads.wrt(*x).cloned().unwrap_or_else(|| Tensor::zeros(t.shape())))
            .collect();
        drop(grads);
        for (i, v) in vs.iter().enumerate() {
            let along = |s: f64| {
                Tensor::from_fn(inputs[i].shape(), |k| {
                    inputs[i].as_slice()[k] + s * tol.eps * v.as_slice()[k]
                })
            };
            point[i] = along(1.0);
            let plus = evaluate(&point);
            point[i] = along(-1.0);
            let minus = evaluate(&point);
            point[i] = inputs[i].clone();
            let numeric = (dot(&u, &plus) - dot(&u, &minus)) / (2.0 * tol.eps);
            let error = |via, analytic| DirectionError {
                direction,
                input: i,
                via,
                analytic,
                numeric,
                seed: config.seed,
            };
            let analytic = dot(&jtu[i], v);
            if !tol.accepts(analytic, numeric) {
                return Err(error("vjp", analytic));
            }
            if config.jvp {
                let tangents: Vec<Tensor<f64>> = inputs
                    .iter()
                    .enumerate()
                    .map(|(k, t)| {
                        if k == i {
                            v.clone()
                        } else {
                            Tensor::zeros(t.shape())
                        }
                    })
                    .collect();
                let (_, jv) = crate::functional::jvp_many(f, inputs, &tangents);
                let analytic = dot(&u, &jv);
                if !tol.accepts(analytic, numeric) {
                    return Err(error("jvp", analytic));
                }
            }
        }
    }
    Ok(())
}

/// `t / |t|` (unchanged when `t` is zero or empty), so that `eps` is a step of that length.
fn unit(t: Tensor<f64>) -> Tensor<f64> {
    let norm = t.as_slice().iter().map(|a| a * a).sum::<f64>().sqrt();
    if norm > 0.0 { t.map(|a| a / norm) } else { t }
}

fn dot(a: &Tensor<f64>, b: &Tensor<f64>) -> f64 {
    a.as_slice().iter().zip(b.as_slice()).map(|(x, y)| x * y).sum()
}
