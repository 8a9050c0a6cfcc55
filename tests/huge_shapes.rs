//! Shapes whose element count overflows `usize` or exceeds what memory can address (issue 18).
//!
//! A wrapped product once let `Tensor::zeros(&[2^63 + 3, 2])` pose as 6 elements, and a `matmul`
//! of such a tensor crashed the process in release builds. Every public constructor and shape op
//! now checks the count first and panics with a message naming the op, the shape and the caller.
//! CI runs this file in a release profile too (overflow checks off), where a wrap would go
//! unnoticed by the arithmetic itself.

use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};

use tapegrad::{Tape, Tensor, Var};

/// Past `usize::MAX` when multiplied by 2: `2^63 + 3`.
const HUGE: usize = (1 << 63) + 3;

thread_local! {
    static LAST_PANIC: RefCell<Option<(String, u32)>> = const { RefCell::new(None) };
}

/// Runs `f`, which must panic, and returns its message and the file and line it reported.
fn panic_of(f: impl FnOnce()) -> (String, String, u32) {
    // One hook for the whole process, installed once and never swapped back: the tests run on
    // several threads, and a hook restored by one test while another panics lost that panic's
    // location. It records into a thread-local, so each test reads its own.
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let at = info.location().map(|l| (l.file().to_string(), l.line()));
            LAST_PANIC.with(|p| *p.borrow_mut() = at);
        }))
    });
    let result = catch_unwind(AssertUnwindSafe(f));
    let err = result.expect_err("expected a panic");
    let msg = err
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    let (file, line) = LAST_PANIC.with(|p| p.borrow_mut().take()).unwrap_or_default();
    (msg, file, line)
}

/// `f` panics at its own line in this file, with a message naming `op` and `shape`.
#[track_caller]
fn assert_refused(op: &str, shape: &str, line: u32, f: impl FnOnce()) {
    let (msg, file, at) = panic_of(f);
    assert!(
        msg.contains(op) && msg.contains(shape) && msg.contains("memory can address"),
        "{op}: unexpected message {msg:?}"
    );
    assert!(
        file.ends_with("huge_shapes.rs") && at == line,
        "{op}: the panic points at {file}:{at}, not at the caller's line {line}"
    );
}

#[test]
fn constructors_refuse_shapes_beyond_memory() {
    let shape = format!("[{HUGE}, 2]");
    assert_refused("Tensor::zeros", &shape, line!() + 1, || {
        let _ = Tensor::<f32>::zeros(&[HUGE, 2]);
    });
    assert_refused("Tensor::ones", &shape, line!() + 1, || {
        let _ = Tensor::<f64>::ones(&[HUGE, 2]);
    });
    assert_refused("Tensor::full", &shape, line!() + 1, || {
        let _ = Tensor::<bool>::full(&[HUGE, 2], true);
    });
    assert_refused("Tensor::from_fn", &shape, line!() + 1, || {
        let _ = Tensor::<usize>::from_fn(&[HUGE, 2], |i| i);
    });
    let mut rng = <tapegrad::rand::rngs::StdRng as tapegrad::rand::SeedableRng>::seed_from_u64(0);
    assert_refused("Tensor::randn", &shape, line!() + 1, || {
        let _ = Tensor::<f32>::randn(&[HUGE, 2], &mut rng);
    });
    assert_refused("Tensor::rand_uniform", &shape, line!() + 1, || {
        let _ = Tensor::<f32>::rand_uniform(&[HUGE, 2], 0.0, 1.0, &mut rng);
    });
    // Below usize::MAX but above the bytes one allocation may hold (isize::MAX).
    let count = format!("[{}]", usize::MAX / 4);
    assert_refused("Tensor::linspace", &count, line!() + 1, || {
        let _ = Tensor::<f32>::linspace(0.0, 1.0, usize::MAX / 4);
    });
    let max = format!("[{}]", usize::MAX);
    assert_refused("Tensor::arange", &max, line!() + 1, || {
        let _ = Tensor::<usize>::arange(usize::MAX);
    });
    // from_vec is fallible in its `try_` form: an error, not a panic.
    let err = Tensor::<f32>::try_from_vec(vec![0.0; 6], &[HUGE, 2]).unwrap_err();
    assert!(
        err.to_string().contains("more elements than memory can address"),
        "{err}"
    );
    // A zero anywhere makes the count 0, however large the other dimensions.
    assert_eq!(Tensor::<f32>::zeros(&[HUGE, 0, HUGE]).numel(), 0);
}

#[test]
fn shape_ops_refuse_results_beyond_memory() {
    let six = Tensor::<f32>::zeros(&[6]);
    assert_refused("reshape", &format!("[{HUGE}, 2]"), line!() + 1, || {
        let _ = six.reshape(&[HUGE, 2]);
    });
    let tape = Tape::<f32>::new();
    let x = tape.var(six.clone());
    assert_refused("reshape", &format!("[{HUGE}, 2]"), line!() + 1, || {
        let _ = x.reshape(&[HUGE, 2]);
    });
    let row = Tensor::<f32>::zeros(&[1, 2]);
    assert_refused("broadcast_to", &format!("[{HUGE}, 2]"), line!() + 1, || {
        let _ = row.broadcast_to(&[HUGE, 2]);
    });
    let r = tape.var(row.clone());
    assert_refused("broadcast_to", &format!("[{HUGE}, 2]"), line!() + 1, || {
        let _ = r.broadcast_to(&[HUGE, 2]);
    });
    assert_refused("repeat", "repetitions", line!() + 1, || {
        let _ = r.repeat(&[HUGE, 1]);
    });
    assert_refused("pad", "[1, 2]", line!() + 1, || {
        let _ = row.pad(&[(0, 0), (HUGE, HUGE)], 0.0);
    });
    assert_refused("pad", "[1, 2]", line!() + 1, || {
        let _ = r.pad(&[(usize::MAX, 0), (0, 0)], 0.0);
    });
    // Joining and stacking tensors of no elements with huge other dimensions.
    let empty = Tensor::<f32>::zeros(&[0, HUGE]);
    assert_refused("cat", &format!("[0, {HUGE}]"), line!() + 1, || {
        let _ = Tensor::cat(&[&empty, &empty], 1);
    });
    let e = tape.var(Tensor::<f32>::zeros(&[0, HUGE]));
    assert_refused("cat", &format!("[0, {HUGE}]"), line!() + 1, || {
        let _ = Var::cat(&[e, e], 1);
    });
    // Stacking empty tensors stays empty, whatever their other sides.
    assert_eq!(Var::stack(&[e, e], 0).shape(), &[2, 0, HUGE]);
    let wide = tape.var(Tensor::<f32>::zeros(&[0, HUGE, 4]));
    assert_refused("flatten", &format!("[{HUGE}, 4]"), line!() + 1, || {
        let _ = wide.flatten(1, 2);
    });
}

#[test]
fn products_of_empty_operands_with_huge_results_are_refused() {
    // [2^62, 0] @ [0, 8]: no element to read, 2^65 to write.
    let a = Tensor::<f32>::zeros(&[1 << 62, 0]);
    let b = Tensor::<f32>::zeros(&[0, 8]);
    assert_refused("matmul", &format!("[{}, 8]", 1u64 << 62), line!() + 1, || {
        let _ = a.matmul(&b);
    });
    let tape = Tape::<f32>::new();
    let (va, vb) = (tape.var(a.clone()), tape.var(b.clone()));
    assert_refused("matmul", &format!("[{}, 8]", 1u64 << 62), line!() + 1, || {
        let _ = va.matmul(&vb);
    });
    assert_refused("einsum", &format!("[{}, 8]", 1u64 << 62), line!() + 1, || {
        let _ = Tensor::einsum("ij,jk->ik", &[&a, &b]);
    });
}

#[test]
fn shapes_that_fit_still_work_at_their_limits() {
    // The checks cost nothing for ordinary shapes and let empty ones with large sides through.
    let t = Tensor::<f64>::zeros(&[3, 0, 1 << 40]);
    assert_eq!(t.reshape(&[0, 7]).shape(), &[0, 7]);
    let empty = Tensor::<f32>::zeros(&[1 << 40, 0]).matmul(&Tensor::zeros(&[0, 0]));
    assert_eq!(empty.shape(), &[1 << 40, 0]);
    let x = Tensor::<f32>::from_vec((0..6).map(|i| i as f32).collect(), &[2, 3]);
    assert_eq!(x.reshape(&[3, 2]).to_vec(), x.to_vec());
}
