//! Recording rank-0 nodes must not touch the heap (values live inline, the tape's vector is
//! preallocated), and a first-order backward over a scalar graph allocates O(1) times.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use tapegrad::Tape;

/// Counts allocations made by the current thread while counting is switched on; other test
/// threads of this binary are not counted.
struct Counting;

thread_local! {
    // `const` thread-locals without destructors: reading them never allocates.
    static ON: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<usize> = const { Cell::new(0) };
}

fn note_allocation() {
    // `try_with`: thread-locals may be gone while a thread shuts down.
    let _ = ON.try_with(|on| {
        if on.get() {
            let _ = COUNT.try_with(|c| c.set(c.get() + 1));
        }
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The number of allocations `f` makes on this thread, and its result.
fn allocations<R>(f: impl FnOnce() -> R) -> (usize, R) {
    COUNT.with(|c| c.set(0));
    ON.with(|on| on.set(true));
    let r = std::hint::black_box(f());
    ON.with(|on| on.set(false));
    (COUNT.with(Cell::get), r)
}

#[test]
fn the_counter_sees_allocations() {
    let (n, v) = allocations(|| vec![1u8; 100]);
    assert_eq!((n, v.len()), (1, 100));
    let (n, _) = allocations(|| ());
    assert_eq!(n, 0);
    // A tensor op with many elements does allocate: the counter sees the library's allocations.
    let tape = Tape::<f32>::with_capacity(16);
    let x = tape.var(vec![0.5f32; 100]);
    let (n, _) = allocations(|| x.exp().id());
    assert!(n >= 1);
}

/// Records about 1000 scalar ops of every elementwise kind (about 1500 nodes with the scalar
/// constants of `x * 2.0` and friends).
fn record_scalar_ops(tape: &Tape<f32>) -> tapegrad::Var<'_, f32> {
    let x = tape.var(0.5f32);
    let w = tape.var(-1.25f32);
    let b = tape.constant(0.125f32);
    let mut y = x;
    for i in 0..100 {
        // 10 ops (some with a scalar constant operand) per iteration.
        y = y * w + b; // mul, add
        y = (y - x) / (w * w + 1.0); // sub, mul, add(+const), div
        y = -y.tanh(); // tanh, neg
        y = y.sigmoid() * 2.0 - y.relu() + (y * 0.5).exp().powi(2 + i % 2) - 3.0;
    }
    y
}

#[test]
fn recording_scalar_nodes_does_not_allocate() {
    let tape = Tape::<f32>::with_capacity(10_000);
    let (n, y) = allocations(|| {
        let y = record_scalar_ops(&tape);
        y.item()
    });
    assert!(tape.len() > 1000, "recorded only {} nodes", tape.len());
    assert!(y.is_finite());
    assert_eq!(n, 0, "recording {} rank-0 nodes allocated {n} times", tape.len());
}

#[test]
fn recording_each_scalar_op_alone_does_not_allocate() {
    // One op kind at a time, so a failure names the op that allocates.
    let tape = Tape::<f32>::with_capacity(10_000);
    let x = tape.var(0.75f32);
    let z = tape.var(-0.5f32);
    type Case = (
        &'static str,
        fn(tapegrad::Var<'_, f32>, tapegrad::Var<'_, f32>) -> f32,
    );
    let cases: [Case; 18] = [
        ("mul", |x, z| (x * z).item()),
        ("add", |x, z| (x + z).item()),
        ("sub", |x, z| (x - z).item()),
        ("div", |x, z| (x / z).item()),
        ("neg", |x, _| (-x).item()),
        ("exp", |x, _| x.exp().item()),
        ("ln", |x, _| x.ln().item()),
        ("sqrt", |x, _| x.sqrt().item()),
        ("abs", |x, _| x.abs().item()),
        ("tanh", |x, _| x.tanh().item()),
        ("sigmoid", |x, _| x.sigmoid().item()),
        ("relu", |x, _| x.relu().item()),
        ("sin", |x, _| x.sin().item()),
        ("powf", |x, _| x.powf(1.5).item()),
        ("powi", |x, _| x.powi(3).item()),
        ("x * 2.0", |x, _| (x * 2.0).item()),
        ("2.0 - x", |x, _| (2.0 - x).item()),
        ("x / 4.0", |x, _| (x / 4.0).item()),
    ];
    let mut allocating = Vec::new();
    for (name, f) in cases {
        let (n, _) = allocations(|| {
            for _ in 0..10 {
                std::hint::black_box(f(x, z));
            }
        });
        if n > 0 {
            allocating.push(format!("{name}: {n} allocations for 10 nodes"));
        }
    }
    assert!(
        allocating.is_empty(),
        "recording rank-0 nodes allocated:\n{}",
        allocating.join("\n")
    );
}

#[test]
fn scalar_backward_allocates_a_constant_number_of_times() {
    let tape = Tape::<f32>::with_capacity(10_000);
    let y = record_scalar_ops(&tape);
    let nodes = tape.len();
    assert!(nodes > 1000);
    let (n, grads) = allocations(|| y.backward());
    assert!(grads.by_id(0).is_some_and(|g| g.item().is_finite()));
    // The gradient vector (plus perhaps a handful of bookkeeping buffers), not one per node.
    assert!(n < 10, "backward over {nodes} rank-0 nodes allocated {n} times");
    drop(grads);
}
