//! A ten-million-node scalar chain (workload W5): backward is a loop over the tape, so it needs
//! no stack however deep the graph is. Run on a thread with a deliberately small stack.

use tapegrad::Tape;

/// Multiply-add steps: two nodes each (mul, add), so 2 × 5M = 10M recorded ops.
const STEPS: usize = 5_000_000;

/// Runs `f` on a thread with a 256 KiB stack: any recursion over the graph would overflow it.
fn on_small_stack<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    std::thread::Builder::new()
        .name("small-stack".into())
        .stack_size(256 * 1024)
        .spawn(f)
        .expect("spawn")
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

fn assert_rel(got: f64, want: f64, rel: f64, what: &str) {
    assert!(
        (got - want).abs() <= rel * want.abs(),
        "{what}: got {got:e}, expected {want:e} (relative error {:e})",
        ((got - want) / want).abs()
    );
}

#[test]
fn ten_million_node_chain() {
    on_small_stack(|| {
        // y_0 = x, y_{k+1} = y_k·a + b, y = y_K with K = STEPS. Then
        //   dy/dx = a^K
        //   dy/db = Σ_{j<K} a^j = (1 - a^K) / (1 - a)
        //   dy/da = Σ_{k<K} y_k a^(K-1-k)  (checked against a forward-mode recurrence)
        // a = 1 - 2^-20 (exact in binary, so 1 - a is exact) keeps a^K ≈ e^-4.77 well scaled.
        let (x0, a0, b0) = (0.75f64, 1.0 - 2f64.powi(-20), 0.125f64);
        let tape = Tape::<f64>::with_capacity(2 * STEPS + 3);
        let (x, a, b) = (tape.var(x0), tape.var(a0), tape.var(b0));
        let mut y = x;
        for _ in 0..STEPS {
            y = y * a + b;
        }
        assert_eq!(tape.len(), 2 * STEPS + 3);

        // Forward mode in plain f64, tracking (y, dy/dx, dy/da, dy/db) step by step.
        let (mut fy, mut dx, mut da, mut db) = (x0, 1.0, 0.0, 0.0);
        for _ in 0..STEPS {
            da = da * a0 + fy;
            db = db * a0 + 1.0;
            dx *= a0;
            fy = fy * a0 + b0;
        }
        // Same operations in the same order: the recorded value is bit-identical.
        assert_eq!(y.item(), fy);

        let grads = y.backward();
        let k = i32::try_from(STEPS).unwrap();
        // Rounding: K multiplications give a relative error up to about K·ε ≈ 1e-9.
        assert_rel(grads[x].item(), a0.powi(k), 1e-8, "dy/dx vs a^K");
        assert_rel(grads[x].item(), dx, 1e-12, "dy/dx vs forward mode");
        assert_rel(
            grads[b].item(),
            (1.0 - a0.powi(k)) / (1.0 - a0),
            1e-8,
            "dy/db vs closed form",
        );
        assert_rel(grads[b].item(), db, 1e-8, "dy/db vs forward mode");
        assert_rel(grads[a].item(), da, 1e-8, "dy/da vs forward mode");
    });
}

#[test]
fn ten_million_node_chain_with_a_equal_to_one_is_exact() {
    on_small_stack(|| {
        // With a = 1: y_k = x + k·b, dy/dx = 1, dy/db = K, dy/da = Σ_{k<K} y_k = K·x + b·K(K-1)/2.
        // x and b are multiples of 1/4, every partial sum stays below 2^51: all exact in f64.
        let (x0, b0) = (0.5f64, 0.25f64);
        let tape = Tape::<f64>::with_capacity(2 * STEPS + 3);
        let (x, a, b) = (tape.var(x0), tape.var(1.0), tape.var(b0));
        let mut y = x;
        for _ in 0..STEPS {
            y = y * a + b;
        }
        let kf = STEPS as f64;
        assert_eq!(y.item(), x0 + kf * b0);
        let g = y.backward();
        assert_eq!(g[x].item(), 1.0);
        assert_eq!(g[b].item(), kf);
        assert_eq!(g[a].item(), kf * x0 + b0 * kf * (kf - 1.0) / 2.0);
    });
}

#[test]
fn recorded_gradient_of_a_deep_chain() {
    on_small_stack(|| {
        // The differentiable (recorded) backward is a loop too. One million steps with `a` a
        // constant: dy/dx = a^K, dy/db = (1 - a^K) / (1 - a).
        const K: usize = 1_000_000;
        let (a0, b0) = (1.0 - 2f64.powi(-18), 0.5f64);
        let tape = Tape::<f64>::with_capacity(5 * K);
        let (x, b) = (tape.var(2.0), tape.var(b0));
        let mut y = x;
        for _ in 0..K {
            y = y * a0 + b;
        }
        let [dx, db] = y.grad(&[x, b])[..] else {
            unreachable!()
        };
        let k = i32::try_from(K).unwrap();
        assert_rel(dx.item(), a0.powi(k), 1e-9, "recorded dy/dx");
        assert_rel(db.item(), (1.0 - a0.powi(k)) / (1.0 - a0), 1e-9, "recorded dy/db");
        // dy/db = Σ a^j is built from constants and b's gradient seeds only: its own
        // derivative with respect to x is 0.
        assert_eq!(db.grad(&[x])[0].item(), 0.0);
    });
}
