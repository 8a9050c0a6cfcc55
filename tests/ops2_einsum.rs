//! Einstein summation (`Var::einsum`, `Tensor::einsum`): values against a naive reference einsum
//! (nested loops over every index value), gradients of first and second order against finite
//! differences, f32 against f64, the lowering's graph (no copies where none are needed), exact
//! values as PyTorch gives them, and every error message.
#![allow(clippy::type_complexity, reason = "tables of test cases read best inline")]

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use tapegrad::gradcheck;
use tapegrad::{Float, Tape, Tensor, Var};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 32,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Equations of known families: matrix products in every transposition, batched products,
/// attention scores, a bilinear form and other chains of three, transposes, traces and diagonals,
/// outer products, sums, elementwise and dot products, rank-0 operands, upper-case indices and
/// spaces.
const FAMILIES: &[&str] = &[
    "ij,jk->ik",
    "ji,jk->ik",
    "ij,kj->ik",
    "ij,jk->ki",
    "ji,kj->ki",
    "bij,bjk->bik",
    "bhqd,bhkd->bhqk",
    "bij,bkj->bki",
    "bij,jk->bik",
    "ijk,jkl->il",
    "abc,cd->dba",
    "bi,ij,bj->b",
    "ij,jk,kl->il",
    "i,ij,j->",
    "ij->ji",
    "ijk->kij",
    "ij->ij",
    "ii->",
    "ii->i",
    "iij->ij",
    "iji->ji",
    "bii->bi",
    "iii->i",
    "ii,ij->j",
    "i,j->ij",
    "i,j->ji",
    "ij,k->kji",
    "ij->",
    "ij->j",
    "ijk->ik",
    "i->",
    "ij,ij->ij",
    "i,i->",
    "bi,bi->b",
    "ij,ij->",
    ",i->i",
    "->",
    "bij,bjk->",
    "ij,jk->k",
    "iJ, Jk -> ik",
];

// ---------------------------------------------------------------------------------------------
// The reference: every index value visited, products accumulated into the output.
// ---------------------------------------------------------------------------------------------

struct Parsed {
    inputs: Vec<Vec<char>>,
    output: Vec<char>,
}

fn parse(equation: &str) -> Parsed {
    let eq: String = equation.chars().filter(|c| !c.is_whitespace()).collect();
    let (lhs, rhs) = eq.split_once("->").expect("test equations are explicit");
    Parsed {
        inputs: lhs.split(',').map(|s| s.chars().collect()).collect(),
        output: rhs.chars().collect(),
    }
}

/// `torch.einsum` by definition: out[output indices] = Σ over the other indices of the product
/// of the operands; an axis of size 1 is read at 0 whatever its index's value (broadcasting).
fn reference(equation: &str, xs: &[Tensor<f64>]) -> Tensor<f64> {
    let p = parse(equation);
    let mut labels: Vec<char> = Vec::new();
    let mut sizes: Vec<usize> = Vec::new();
    for (sub, x) in p.inputs.iter().zip(xs) {
        for (&c, &n) in sub.iter().zip(x.shape()) {
            match labels.iter().position(|&l| l == c) {
                None => {
                    labels.push(c);
                    sizes.push(n);
                }
                Some(i) if sizes[i] == 1 => sizes[i] = n,
                Some(_) => {}
            }
        }
    }
    let pos = |c: char| {
        labels
            .iter()
            .position(|&l| l == c)
            .expect("output index is an input's")
    };
    let out_shape: Vec<usize> = p.output.iter().map(|&c| sizes[pos(c)]).collect();
    let mut out = vec![0.0; out_shape.iter().product()];
    let total: usize = sizes.iter().product();
    let mut at = vec![0usize; labels.len()];
    for _ in 0..total {
        let mut product = 1.0;
        for (sub, x) in p.inputs.iter().zip(xs) {
            let index: Vec<usize> = sub
                .iter()
                .zip(x.shape())
                .map(|(&c, &n)| if n == 1 { 0 } else { at[pos(c)] })
                .collect();
            product *= x.get(&index);
        }
        let mut flat = 0;
        for (&c, &n) in p.output.iter().zip(&out_shape) {
            flat = flat * n + at[pos(c)];
        }
        out[flat] += product;
        for d in (0..at.len()).rev() {
            at[d] += 1;
            if at[d] < sizes[d] {
                break;
            }
            at[d] = 0;
        }
    }
    Tensor::from_vec(out, &out_shape)
}

// ---------------------------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------------------------

/// One equation and its operands: each index gets a size, each axis of a non-repeated index may
/// broadcast (size 1), and the values come from `pool`.
fn operands(equation: &str, size_of: &[usize], broadcast: &[bool], pool: &[f64]) -> Vec<Tensor<f64>> {
    let p = parse(equation);
    let mut next = 0;
    let mut flags = broadcast.iter().cycle();
    p.inputs
        .iter()
        .map(|sub| {
            let shape: Vec<usize> = sub
                .iter()
                .map(|&c| {
                    let repeated = sub.iter().filter(|&&d| d == c).count() > 1;
                    let flag = *flags.next().unwrap_or(&false);
                    if flag && !repeated {
                        1
                    } else {
                        size_of[(c as u8 % 32) as usize]
                    }
                })
                .collect();
            let n: usize = shape.iter().product();
            let data: Vec<f64> = (0..n)
                .map(|_| {
                    next += 1;
                    pool[(next - 1) % pool.len()]
                })
                .collect();
            Tensor::from_vec(data, &shape)
        })
        .collect()
}

fn case() -> impl Strategy<Value = (&'static str, Vec<Tensor<f64>>)> {
    let size = prop_oneof![1 => Just(0usize), 3 => Just(1usize), 6 => 2..=3usize, 2 => Just(4usize)];
    (
        0..FAMILIES.len(),
        vec(size, 32),
        vec(prop::bool::weighted(0.12), 16),
        vec(-1.5..1.5f64, 64),
    )
        .prop_map(|(family, sizes, broadcast, pool)| {
            let equation = FAMILIES[family];
            (equation, operands(equation, &sizes, &broadcast, &pool))
        })
}

fn close(a: &Tensor<f64>, b: &Tensor<f64>, tol: f64) -> Result<(), String> {
    if a.shape() != b.shape() {
        return Err(format!("shapes {:?} and {:?}", a.shape(), b.shape()));
    }
    for (i, (x, y)) in a.as_slice().iter().zip(b.as_slice()).enumerate() {
        if (x - y).abs() > tol * (1.0 + x.abs().max(y.abs())) {
            return Err(format!("element {i}: {x} vs {y}"));
        }
    }
    Ok(())
}

/// The value and the gradients of Σ w ⊙ einsum (fixed weights) on a tape of `T`, as f64.
fn value_and_grads<T: Float>(equation: &str, xs: &[Tensor<f64>]) -> (Tensor<f64>, Vec<Tensor<f64>>) {
    let tape = Tape::<T>::new();
    let vars: Vec<Var<T>> = xs.iter().map(|x| tape.var(x.cast::<T>())).collect();
    let y = Var::einsum(equation, &vars);
    let shape = y.shape();
    let w = Tensor::<T>::from_fn(&shape, |i| T::from_f64(0.5 + (i % 7) as f64 / 7.0));
    let grads = (y * tape.constant(w)).sum().backward();
    let gs = vars
        .iter()
        .map(|&v| match grads.wrt(v) {
            Some(g) => g.cast::<f64>(),
            None => Tensor::zeros(&v.shape()),
        })
        .collect();
    (y.value().cast::<f64>(), gs)
}

fn check_values(equation: &str, xs: &[Tensor<f64>]) -> Result<(), String> {
    let expected = reference(equation, xs);
    let tape = Tape::<f64>::new();
    let vars: Vec<Var<f64>> = xs.iter().map(|x| tape.var(x.clone())).collect();
    let got = Var::einsum(equation, &vars).value();
    close(&got, &expected, 1e-12).map_err(|e| format!("{equation}, Var: {e}"))?;
    let refs: Vec<&Tensor<f64>> = xs.iter().collect();
    close(&Tensor::einsum(equation, &refs), &expected, 1e-12).map_err(|e| format!("{equation}, Tensor: {e}"))
}

fn check_gradients(equation: &str, xs: &[Tensor<f64>]) -> Result<(), String> {
    gradcheck::check(|_t: &Tape<f64>, v: &[Var<f64>]| Var::einsum(equation, v), xs)
        .map_err(|e| format!("{equation}, first order: {e}"))?;
    // Squared, so that single-operand (linear) equations have a second derivative too.
    gradcheck::check_second_order(
        |_t: &Tape<f64>, v: &[Var<f64>]| Var::einsum(equation, v).powi(2),
        xs,
    )
    .map_err(|e| format!("{equation}, second order: {e}"))
}

fn check_f32(equation: &str, xs: &[Tensor<f64>]) -> Result<(), String> {
    let (y64, g64) = value_and_grads::<f64>(equation, xs);
    let (y32, g32) = value_and_grads::<f32>(equation, xs);
    let finite = |t: &Tensor<f64>| t.as_slice().iter().all(|v| v.is_finite());
    if !finite(&y32) || !g32.iter().all(finite) {
        return Err(format!("{equation}: non-finite f32 value or gradient"));
    }
    close(&y32, &y64, 1e-4).map_err(|e| format!("{equation}, f32 value: {e}"))?;
    for (i, (a, b)) in g32.iter().zip(&g64).enumerate() {
        close(a, b, 1e-4).map_err(|e| format!("{equation}, f32 gradient {i}: {e}"))?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn values_match_the_naive_reference((equation, xs) in case()) {
        check_values(equation, &xs).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn gradients_match_finite_differences((equation, xs) in case()) {
        check_gradients(equation, &xs).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn f32_is_finite_and_close_to_f64((equation, xs) in case()) {
        check_f32(equation, &xs).map_err(TestCaseError::fail)?;
    }
}

/// Every family once, with distinct sizes (so that a mixed-up axis shows), and once with every
/// index of size 1 broadcast in the second operand where it can be.
#[test]
fn every_family_matches_the_reference_and_finite_differences() {
    let sizes: Vec<usize> = (0..32).map(|i| 2 + i % 3).collect();
    let pool: Vec<f64> = (0..97).map(|i| ((i * 31) % 29) as f64 / 10.0 - 1.4).collect();
    for equation in FAMILIES {
        let xs = operands(equation, &sizes, &[false], &pool);
        check_values(equation, &xs).unwrap();
        check_gradients(equation, &xs).unwrap();
        check_f32(equation, &xs).unwrap();
        let mut broadcast = vec![false; 16];
        broadcast[1] = true;
        broadcast[3] = true;
        let xs = operands(equation, &sizes, &broadcast, &pool);
        check_values(equation, &xs).unwrap();
        check_gradients(equation, &xs).unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// Exact values (as torch.einsum gives them)
// ---------------------------------------------------------------------------------------------

#[test]
fn exact_values() {
    let m = Tensor::<f64>::from_vec(vec![1., 2., 3., 4.], &[2, 2]);
    let n = Tensor::<f64>::from_vec(vec![5., 6., 7., 8.], &[2, 2]);
    // torch.einsum("ij,jk->ik", m, n) = [[19, 22], [43, 50]]
    assert_eq!(
        Tensor::einsum("ij,jk->ik", &[&m, &n]).to_vec(),
        vec![19., 22., 43., 50.]
    );
    // "ij,jk->ki" = the transposed product
    assert_eq!(
        Tensor::einsum("ij,jk->ki", &[&m, &n]).to_vec(),
        vec![19., 43., 22., 50.]
    );
    // "ji,jk->ik" = mᵀ n = [[26, 30], [38, 44]]
    assert_eq!(
        Tensor::einsum("ji,jk->ik", &[&m, &n]).to_vec(),
        vec![26., 30., 38., 44.]
    );
    assert_eq!(Tensor::einsum("ii->", &[&m]).item(), 5.0);
    assert_eq!(Tensor::einsum("ii->i", &[&m]).to_vec(), vec![1., 4.]);
    assert_eq!(Tensor::einsum("ij->", &[&m]).item(), 10.0);
    assert_eq!(Tensor::einsum("ij->j", &[&m]).to_vec(), vec![4., 6.]);
    assert_eq!(Tensor::einsum("ij->ji", &[&m]).to_vec(), vec![1., 3., 2., 4.]);
    assert_eq!(Tensor::einsum("ij,ij->", &[&m, &n]).item(), 70.0);
    let a = Tensor::<f64>::from_vec(vec![1., 2., 3.], &[3]);
    let b = Tensor::<f64>::from_vec(vec![10., 20.], &[2]);
    let outer = Tensor::einsum("i,j->ij", &[&a, &b]);
    assert_eq!(outer.shape(), &[3, 2]);
    assert_eq!(outer.to_vec(), vec![10., 20., 20., 40., 30., 60.]);
    // "bi,ij,bj->b": x_b · M · y_b
    let x = Tensor::<f64>::from_vec(vec![1., 0., 0., 1.], &[2, 2]);
    let y = Tensor::<f64>::from_vec(vec![1., 1., 2., 0.], &[2, 2]);
    assert_eq!(
        Tensor::einsum("bi,ij,bj->b", &[&x, &m, &y]).to_vec(),
        vec![3., 6.]
    );
    // A size-1 axis broadcasts: "ij,j->ij" with a [1] vector scales every element.
    let s = Tensor::<f64>::from_vec(vec![2.], &[1]);
    assert_eq!(
        Tensor::einsum("ij,j->ij", &[&m, &s]).to_vec(),
        vec![2., 4., 6., 8.]
    );
    // Empty axes: a contraction over 0 elements gives zeros.
    let e0 = Tensor::<f64>::zeros(&[2, 0]);
    let e1 = Tensor::<f64>::zeros(&[0, 3]);
    assert_eq!(Tensor::einsum("ij,jk->ik", &[&e0, &e1]), Tensor::zeros(&[2, 3]));
    // Rank 0.
    let c = Tensor::<f64>::scalar(3.0);
    assert_eq!(Tensor::einsum(",i->i", &[&c, &a]).to_vec(), vec![3., 6., 9.]);
    assert_eq!(Tensor::einsum("->", &[&c]).item(), 3.0);
}

#[test]
fn gradients_of_trace_and_diagonal() {
    let tape = Tape::<f64>::new();
    let m = tape.var(Tensor::from_vec(
        vec![1., 2., 3., 4., 5., 6., 7., 8., 9.],
        &[3, 3],
    ));
    // d tr(M)² / dM = 2 tr(M) I = 30 I
    let trace = Var::einsum("ii->", &[m]);
    let g = (trace * trace).backward();
    assert_eq!(g[m].to_vec(), vec![30., 0., 0., 0., 30., 0., 0., 0., 30.]);
    // d Σ diag(M)³ / dM = 3 diag(M)² on the diagonal
    let g = Var::einsum("ii->i", &[m]).powi(3).sum().backward();
    assert_eq!(g[m].to_vec(), vec![3., 0., 0., 0., 75., 0., 0., 0., 243.]);
}

#[test]
fn pytorch_reference_cases() {
    // torch.einsum("bij,bkj->bik", a, b) with a = arange(12).reshape(2, 2, 3),
    // b = arange(24).reshape(2, 4, 3) / 4: batched a bᵀ.
    let a = Tensor::<f64>::from_fn(&[2, 2, 3], |i| i as f64);
    let b = Tensor::<f64>::from_fn(&[2, 4, 3], |i| i as f64 / 4.0);
    let got = Tensor::einsum("bij,bkj->bik", &[&a, &b]);
    assert_eq!(got.shape(), &[2, 2, 4]);
    assert_eq!(got.get(&[0, 0, 0]), (0. * 0. + 1. * 1. + 2. * 2.) / 4.0);
    assert_eq!(got.get(&[1, 1, 3]), (9. * 21. + 10. * 22. + 11. * 23.) / 4.0);
    assert_eq!(got, a.matmul(&b.permute(&[0, 2, 1])));
}

// ---------------------------------------------------------------------------------------------
// The lowering: one GEMM, no copies where none are needed
// ---------------------------------------------------------------------------------------------

/// The ops recorded after the leaves, in order.
fn recorded<T: Float>(tape: &Tape<T>, leaves: usize) -> Vec<&'static str> {
    tape.vars().skip(leaves).filter_map(|v| v.op()).collect()
}

#[test]
fn attention_scores_are_exactly_one_matmul_t() {
    let tape = Tape::<f32>::new();
    let q = tape.var(Tensor::from_fn(&[2, 3, 4, 5], |i| i as f32 / 50.0));
    let k = tape.var(Tensor::from_fn(&[2, 3, 6, 5], |i| 1.0 - i as f32 / 90.0));
    let s = Var::einsum("bhqd,bhkd->bhqk", &[q, k]);
    assert_eq!(recorded(&tape, 2), vec!["matmul_t"]);
    assert_eq!(s.input_ids(), vec![q.id(), k.id()]);
    assert_eq!(s.value(), q.matmul_t(&k).value());
    // Flattened batch axes and spaces change nothing.
    let tape = Tape::<f32>::new();
    let q3 = tape.var(Tensor::from_fn(&[6, 4, 5], |i| i as f32));
    let k3 = tape.var(Tensor::from_fn(&[6, 7, 5], |i| i as f32));
    Var::einsum(" bqd , bkd -> bqk ", &[q3, k3]);
    assert_eq!(recorded(&tape, 2), vec!["matmul_t"]);
}

#[test]
fn products_read_transposed_operands_without_copies() {
    let cases: [(&str, Vec<Vec<usize>>, Option<&str>); 5] = [
        ("ij,jk->ik", vec![vec![2, 3], vec![3, 4]], Some("matmul")),
        ("ij,kj->ik", vec![vec![2, 3], vec![4, 3]], Some("matmul_t")),
        (
            "ji,jk->ik",
            vec![vec![3, 2], vec![3, 4]],
            Some("matmul_transposed"),
        ),
        (
            "ij,jk->ki",
            vec![vec![2, 3], vec![3, 4]],
            Some("matmul_transposed"),
        ),
        // An outer product is a broadcast multiply of two free reshapes.
        ("i,j->ij", vec![vec![2], vec![3]], None),
    ];
    for (equation, shapes, expected) in cases {
        let tape = Tape::<f64>::new();
        let xs: Vec<Var<f64>> = shapes
            .iter()
            .map(|s| tape.var(Tensor::from_fn(s, |i| i as f64 - 1.5)))
            .collect();
        let y = Var::einsum(equation, &xs);
        let ops = recorded(&tape, xs.len());
        assert!(!ops.contains(&"permute"), "{equation}: {ops:?}");
        match expected {
            None => assert!(ops.contains(&"mul"), "{equation}: {ops:?}"),
            Some(op) => {
                assert_eq!(
                    ops.iter().filter(|o| o.starts_with("matmul")).count(),
                    1,
                    "{ops:?}"
                );
                assert!(ops.contains(&op), "{equation}: {ops:?}");
            }
        }
        let values: Vec<Tensor<f64>> = xs.iter().map(|x| x.value()).collect();
        close(&y.value(), &reference(equation, &values), 1e-12).unwrap();
        // The transposed product's backward (and its backward) hold up.
        check_gradients(equation, &values).unwrap();
    }
}

#[test]
fn a_chain_contracts_the_smallest_pair_first() {
    // "i,j,ij->" with a long i and j: i·M first (a vector of j) rather than the outer product.
    let tape = Tape::<f64>::new();
    let a = tape.var(Tensor::from_fn(&[20], |i| i as f64));
    let b = tape.var(Tensor::from_fn(&[30], |i| i as f64));
    let m = tape.var(Tensor::from_fn(&[20, 30], |i| (i % 5) as f64));
    let y = Var::einsum("i,j,ij->", &[a, b, m]);
    for v in tape.vars().skip(3) {
        assert!(v.value().shape().iter().product::<usize>() <= 600, "{:?}", v.op());
        assert_ne!(
            v.value().shape(),
            &[20, 30][..],
            "an outer product was built: {:?}",
            v.op()
        );
    }
    let values = [a.value(), b.value(), m.value()];
    close(&y.value(), &reference("i,j,ij->", &values), 1e-12).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

fn einsum_panic(equation: &str, shapes: &[&[usize]]) -> String {
    let equation = equation.to_string();
    let shapes: Vec<Vec<usize>> = shapes.iter().map(|s| s.to_vec()).collect();
    let result = std::panic::catch_unwind(move || {
        let tape = Tape::<f64>::new();
        let xs: Vec<Var<f64>> = shapes.iter().map(|s| tape.var(Tensor::zeros(s))).collect();
        Var::einsum(&equation, &xs);
    });
    match result {
        Ok(()) => panic!("no panic"),
        Err(e) => e
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default(),
    }
}

#[test]
fn error_messages_name_einsum_the_equation_and_the_shapes() {
    let cases: &[(&str, &[&[usize]], &[&str])] = &[
        (
            "ij,jk",
            &[&[2, 3], &[3, 4]],
            &[
                "tapegrad: einsum:",
                "\"ij,jk\"",
                "no \"->\"",
                "only the explicit form",
                "[2, 3]",
            ],
        ),
        (
            "ij,jk->ik",
            &[&[2, 3]],
            &[
                "tapegrad: einsum:",
                "2 input subscripts but 1 operands",
                "[[2, 3]]",
            ],
        ),
        (
            "ij->i",
            &[&[2, 3], &[3]],
            &["1 input subscripts but 2 operands", "\"ij->i\""],
        ),
        (
            "ij,jkl->il",
            &[&[2, 3], &[3, 4]],
            &[
                "subscript \"jkl\" of operand 1 has 3 indices",
                "rank 2 (shape [3, 4])",
                "\"ij,jkl->il\"",
            ],
        ),
        (
            "ij->k",
            &[&[2, 3]],
            &["output index 'k' appears in no input", "\"ij->k\"", "[[2, 3]]"],
        ),
        (
            "ij->ii",
            &[&[2, 2]],
            &["output index 'i' appears twice", "\"ij->ii\""],
        ),
        (
            "ij,jk->ik",
            &[&[2, 3], &[4, 5]],
            &[
                "index 'j' has size 3 in operand 0 (shape [2, 3])",
                "size 4 in operand 1 (shape [4, 5])",
                "\"ij,jk->ik\"",
            ],
        ),
        (
            "ii->i",
            &[&[2, 3]],
            &[
                "index 'i' is repeated in operand 0 (shape [2, 3])",
                "sizes 2 and 3",
                "\"ii->i\"",
            ],
        ),
        (
            "i...->i",
            &[&[2]],
            &["bad character '.'", "subscript of operand 0", "\"i...->i\""],
        ),
        ("i1,i->i", &[&[2], &[2]], &["bad character '1'"]),
        ("ij->i->j", &[&[2, 3]], &["bad character '-' in the output"]),
    ];
    for (equation, shapes, fragments) in cases {
        let message = einsum_panic(equation, shapes);
        for fragment in *fragments {
            assert!(
                message.contains(fragment),
                "{equation}: message {message:?} lacks {fragment:?}"
            );
        }
    }
}

#[test]
#[should_panic(expected = "tapegrad: einsum: needs at least one operand")]
fn no_operands() {
    Var::<f64>::einsum("->", &[]);
}

#[test]
#[should_panic(expected = "tapegrad: einsum: needs at least one operand")]
fn no_tensor_operands() {
    Tensor::<f64>::einsum("->", &[]);
}

#[test]
#[should_panic(expected = "tapegrad: einsum: index 'j' has size 3 in operand 0")]
fn tensor_einsum_checks_sizes() {
    let a = Tensor::<f64>::zeros(&[2, 3]);
    let b = Tensor::<f64>::zeros(&[2, 2]);
    Tensor::einsum("ij,jk->ik", &[&a, &b]);
}

#[test]
#[should_panic(expected = "tapegrad: einsum: cannot combine vars from two different tapes")]
fn operands_on_two_tapes() {
    let t1 = Tape::<f64>::new();
    let t2 = Tape::<f64>::new();
    let a = t1.var(Tensor::zeros(&[2]));
    let b = t2.var(Tensor::zeros(&[2]));
    Var::einsum("i,i->", &[a, b]);
}

#[test]
fn errors_point_at_the_caller() {
    let hook = std::panic::take_hook();
    let location = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let seen = location.clone();
    let this_test = std::thread::current().id();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().id() != this_test {
            return;
        }
        if let Some(l) = info.location() {
            *seen.lock().unwrap() = l.file().to_string();
        }
    }));
    let result = std::panic::catch_unwind(|| {
        let tape = Tape::<f64>::new();
        let a = tape.var(Tensor::zeros(&[2]));
        Var::einsum("i.->i", &[a]);
    });
    std::panic::set_hook(hook);
    assert!(result.is_err());
    assert!(
        location.lock().unwrap().ends_with("ops2_einsum.rs"),
        "{location:?}"
    );
}
