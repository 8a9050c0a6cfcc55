//! Einstein summation, lowered to permutes, reshapes and batched matrix products.
//!
//! The lowering is written once, generically over [`Operand`], and run on tensors
//! ([`Tensor::einsum`]) and on vars ([`Var::einsum`]). On vars every step is a differentiable op
//! (diagonal, reshape, sum, permute, matrix product, multiply), so the backward pass is itself a
//! sequence of such ops (an einsum again) and gradients of any order come for free.
//!
//! The steps, for each operand and then for each product of two operands:
//!
//! 1. a repeated index takes the diagonal of its two axes ([`Diagonal`], whose adjoint is
//!    [`DiagEmbed`]); an axis of size 1 whose index has another size elsewhere (PyTorch's
//!    broadcasting of einsum indices) is reshaped away;
//! 2. an index that no other operand and not the output has is summed out at once, before any
//!    product (adjacent ones in one pass);
//! 3. while more than one operand remains, the two whose product is smallest are multiplied (ties:
//!    the leftmost pair; opt_einsum's greedy order, which with two operands is the one product).
//!    Their indices fall into batch (both, still needed), contracted (both, needed nowhere else),
//!    and free ones of either side. Each side is brought to `[batch.., free.., contracted..]` or
//!    `[batch.., contracted.., free..]`, whichever needs no copy, reshaped (free of cost) to
//!    `[batch.., M, K]` / `[batch.., K, N]` (or transposed forms, read through strides) and
//!    multiplied with one batched GEMM; the product may also be computed transposed (`Cᵀ = Bᵀ Aᵀ`)
//!    when that gives the output order directly. Of all these layouts the one copying the fewest
//!    elements is taken, so `"bhqd,bhkd->bhqk"` is one `matmul_t` and nothing else. Products
//!    without a contracted index (outer and elementwise products) are a broadcast multiply instead,
//!    and batched dot products (`"bi,bi->b"`) a multiply and a sum, which avoids one tiny GEMM call
//!    per batch element;
//! 4. the last result is permuted to the output order, unless it is already in it.

use smallvec::SmallVec;

use super::shape::permute;
use super::{Args, Extra, Fwd, Op, Operand, Primitive, Vjp};
use crate::tensor::{Shape, shape};
use crate::{Element, Float, Tensor, Var};

/// An index of an equation: `a`–`z` are 0–25, `A`–`Z` are 26–51.
type Label = u8;

/// The labels of an operand's axes, in order. Inline, so that planning a product allocates
/// nothing (it is done on every call, and must cost little beside a small GEMM).
type Labels = SmallVec<[Label; 8]>;

/// A set of labels, one bit each.
type LabelSet = u64;

const LABELS: usize = 52;

fn label_of(c: char) -> Option<Label> {
    match c {
        'a'..='z' => Some(c as u8 - b'a'),
        'A'..='Z' => Some(c as u8 - b'A' + 26),
        _ => None,
    }
}

fn char_of(label: Label) -> char {
    if label < 26 {
        (b'a' + label) as char
    } else {
        (b'A' + label - 26) as char
    }
}

fn set_of(labels: &[Label]) -> LabelSet {
    labels.iter().fold(0, |s, &l| s | 1 << l)
}

fn contains(set: LabelSet, label: Label) -> bool {
    set & (1 << label) != 0
}

/// The labels of `order` that are in `set`, in `order`'s order.
fn order_of(order: &[Label], set: LabelSet) -> Labels {
    order.iter().copied().filter(|&l| contains(set, l)).collect()
}

/// The labels of one subscript, spaces left out: operand `operand`'s, or the output's for `None`
/// (`equation` and `shapes` are for the message).
#[track_caller]
fn parse_labels(equation: &str, shapes: &[&[usize]], part: &str, operand: Option<usize>) -> Labels {
    let mut labels = Labels::new();
    for c in part.chars().filter(|c| !c.is_whitespace()) {
        let Some(l) = label_of(c) else {
            let what = match operand {
                Some(i) => format!("subscript of operand {i}"),
                None => "output".to_string(),
            };
            panic!(
                "tapegrad: einsum: bad character {c:?} in the {what} of {equation:?}: indices are \
                 the letters a-z and A-Z (no ellipsis), subscripts are separated by ',' and one \
                 \"->\" leads to the output (operand shapes {shapes:?})"
            )
        };
        labels.push(l);
    }
    labels
}

/// A checked equation: each operand's labels (one per axis), the output's, and each label's size.
struct Spec {
    inputs: Vec<Labels>,
    output: Labels,
    sizes: [usize; LABELS],
}

impl Spec {
    /// Parses `equation` for operands of `shapes` and checks everything the lowering relies on.
    #[track_caller]
    fn parse(equation: &str, shapes: &[&[usize]]) -> Spec {
        let Some((lhs, rhs)) = equation.split_once("->") else {
            panic!(
                "tapegrad: einsum: equation {equation:?} has no \"->\": only the explicit form \
                 (\"ij,jk->ik\") is supported (operand shapes {shapes:?})"
            )
        };
        let mut inputs: Vec<Labels> = Vec::with_capacity(shapes.len());
        for (i, part) in lhs.split(',').enumerate() {
            inputs.push(parse_labels(equation, shapes, part, Some(i)));
        }
        let output = parse_labels(equation, shapes, rhs, None);
        assert!(
            inputs.len() == shapes.len(),
            "tapegrad: einsum: equation {equation:?} has {} input subscripts but {} operands were \
             given (shapes {shapes:?})",
            inputs.len(),
            shapes.len()
        );
        let mut sizes = [usize::MAX; LABELS];
        // The operand that set each label's size (sizes of 1 broadcast and are replaced).
        let mut origin = [0; LABELS];
        for (i, (labels, shape)) in inputs.iter().zip(shapes).enumerate() {
            assert!(
                labels.len() == shape.len(),
                "tapegrad: einsum: subscript {:?} of operand {i} has {} indices but the operand has \
                 rank {} (shape {shape:?}), in {equation:?}",
                labels.iter().map(|&l| char_of(l)).collect::<String>(),
                labels.len(),
                shape.len()
            );
            for (axis, (&l, &n)) in labels.iter().zip(shape.iter()).enumerate() {
                if let Some(first) = labels[..axis].iter().position(|&m| m == l) {
                    assert!(
                        shape[first] == n,
                        "tapegrad: einsum: index '{}' is repeated in operand {i} (shape {shape:?}) \
                         with sizes {} and {n}; a repeated index takes the diagonal, which needs equal \
                         sizes, in {equation:?}",
                        char_of(l),
                        shape[first]
                    );
                    continue;
                }
                let seen = sizes[l as usize];
                if seen == usize::MAX || seen == 1 {
                    sizes[l as usize] = n;
                    origin[l as usize] = i;
                } else {
                    assert!(
                        n == seen || n == 1,
                        "tapegrad: einsum: index '{}' has size {seen} in operand {} (shape {:?}) but \
                         size {n} in operand {i} (shape {shape:?}), which do not broadcast, in \
                         {equation:?}",
                        char_of(l),
                        origin[l as usize],
                        shapes[origin[l as usize]]
                    );
                }
            }
        }
        for (j, &l) in output.iter().enumerate() {
            assert!(
                !output[..j].contains(&l),
                "tapegrad: einsum: output index '{}' appears twice in {equation:?}; each output \
                 index must be given once (operand shapes {shapes:?})",
                char_of(l)
            );
            assert!(
                sizes[l as usize] != usize::MAX,
                "tapegrad: einsum: output index '{}' appears in no input subscript of {equation:?} \
                 (operand shapes {shapes:?})",
                char_of(l)
            );
        }
        Spec {
            inputs,
            output,
            sizes,
        }
    }

    fn size(&self, label: Label) -> usize {
        self.sizes[label as usize]
    }

    fn shape_of(&self, labels: &[Label]) -> Shape {
        labels.iter().map(|&l| self.size(l)).collect()
    }

    fn numel(&self, labels: &[Label]) -> usize {
        shape::numel(&self.shape_of(labels))
    }

    fn numel_set(&self, set: LabelSet) -> usize {
        let sizes: Shape = (0..LABELS as Label)
            .filter(|&l| contains(set, l))
            .map(|l| self.size(l))
            .collect();
        shape::numel(&sizes)
    }

    /// Whether bringing labels `from` into the order `to` moves elements: not when the two agree
    /// once the axes of size 1 are left out (then a reshape does it).
    fn needs_permute(&self, from: &[Label], to: &[Label]) -> bool {
        let big = |labels: &[Label]| {
            labels
                .iter()
                .copied()
                .filter(|&l| self.size(l) != 1)
                .collect::<Labels>()
        };
        from != to && big(from) != big(to)
    }
}

/// An operand during the lowering: its value, whose shape is its labels' sizes, and its labels.
struct Term<G> {
    value: G,
    labels: Labels,
}

#[track_caller]
fn reshape_to<T: Float, G: Operand<T>>(x: G, shape: &[usize]) -> G {
    if x.shape().as_slice() == shape {
        x
    } else {
        x.reshape(shape)
    }
}

/// `x`, whose elements are in the row-major order of `from` (any shape with those elements),
/// brought to the order `to` and given `shape`: a permute only if elements move.
#[track_caller]
fn relayout<T: Float, G: Operand<T>>(spec: &Spec, x: G, from: &[Label], to: &[Label], shape: &[usize]) -> G {
    if !spec.needs_permute(from, to) {
        return reshape_to(x, shape);
    }
    let x = reshape_to(x, &spec.shape_of(from));
    let axes: Vec<usize> = to
        .iter()
        .map(|l| {
            from.iter()
                .position(|m| m == l)
                .unwrap_or_else(|| unreachable!("einsum relayout to a label the value lacks"))
        })
        .collect();
    reshape_to(permute(&x, &axes), shape)
}

/// Takes the diagonal of every repeated label and reshapes away broadcast axes of size 1.
fn prepare<T: Float, G: Operand<T>>(spec: &Spec, term: &mut Term<G>) {
    while let Some((a, b)) = (1..term.labels.len())
        .find_map(|b| (0..b).find(|&a| term.labels[a] == term.labels[b]).map(|a| (a, b)))
    {
        term.value = diagonal(&term.value, a, b);
        term.labels.remove(b);
    }
    let shape = term.value.shape();
    if term
        .labels
        .iter()
        .zip(shape.iter())
        .any(|(&l, &n)| n != spec.size(l))
    {
        // A size that differs from the label's is 1 (checked when parsing): a broadcast axis.
        term.labels = term
            .labels
            .iter()
            .zip(shape.iter())
            .filter(|&(&l, &n)| n == spec.size(l))
            .map(|(&l, _)| l)
            .collect();
        term.value = reshape_to(term.value.clone(), &spec.shape_of(&term.labels));
    }
}

/// Sums out the labels of `term` that are not in `keep`, each run of adjacent ones in one pass.
fn sum_out<T: Float, G: Operand<T>>(spec: &Spec, term: &mut Term<G>, keep: LabelSet) {
    if term.labels.iter().all(|&l| contains(keep, l)) {
        return;
    }
    // Merge each run of summed axes into one axis, then sum those axes, last first.
    let mut merged: Shape = Shape::new();
    let mut summed: Vec<usize> = Vec::new();
    let mut previous_summed = false;
    for &l in &term.labels {
        let sum = !contains(keep, l);
        if sum && previous_summed {
            let last = merged.len() - 1;
            merged[last] *= spec.size(l);
        } else {
            if sum {
                summed.push(merged.len());
            }
            merged.push(spec.size(l));
        }
        previous_summed = sum;
    }
    let mut value = reshape_to(term.value.clone(), &merged);
    for &axis in summed.iter().rev() {
        value = value.sum_axis(axis, false);
    }
    term.value = value;
    term.labels.retain(|l| contains(keep, *l));
}

/// `op(a) @ op(b)` over the last two axes, `op` transposing (read through strides) when the flag
/// is set: the existing `matmul` and `matmul_t` where they fit, [`TransposedMatMul`] otherwise.
#[track_caller]
fn gemm<T: Float, G: Operand<T>>(a: &G, ta: bool, b: &G, tb: bool) -> G {
    match (ta, tb) {
        (false, false) => a.matmul(b),
        (false, true) => a.matmul_nt(b),
        _ => G::apply(
            &TransposedMatMul,
            Args::None,
            Some(Extra::ints(&[ta as usize, tb as usize])),
            &[a, b],
        ),
    }
}

/// How two terms are laid out for their product.
struct Layout {
    x_order: Labels,
    y_order: Labels,
    /// The result's labels in the order the product gives them.
    out_order: Labels,
    /// `x` is `[batch.., K, M]` rather than `[batch.., M, K]`.
    ta: bool,
    /// `y` is `[batch.., N, K]` rather than `[batch.., K, N]`.
    tb: bool,
    /// The product is computed transposed, `[batch.., N, M]`.
    swap: bool,
}

/// The product of two terms, keeping the labels in `keep` (the output's and the other terms');
/// `want` is the output order when this is the last product.
#[track_caller]
fn contract<T: Float, G: Operand<T>>(
    spec: &Spec,
    x: Term<G>,
    y: Term<G>,
    keep: LabelSet,
    want: Option<&[Label]>,
) -> Term<G> {
    let (sx, sy) = (set_of(&x.labels), set_of(&y.labels));
    let batch = sx & sy & keep;
    let contracted = sx & sy & !keep;
    // Labels of one side only were summed out unless kept.
    let (m_set, n_set) = (sx & !sy, sy & !sx);
    debug_assert!(m_set & !keep == 0 && n_set & !keep == 0);

    let layout = best_layout(
        spec,
        &x.labels,
        &y.labels,
        [batch, contracted, m_set, n_set],
        want,
    );
    let bo = order_of(&layout.out_order, batch);
    let batch_dims: Shape = spec.shape_of(&bo);
    let (mp, np, kp) = (
        spec.numel_set(m_set),
        spec.numel_set(n_set),
        spec.numel_set(contracted),
    );
    let with = |tail: &[usize]| -> Shape { batch_dims.iter().chain(tail).copied().collect() };
    let (xv, yv) = (x.value, y.value);
    let product = if kp == 1 {
        // No contraction: a broadcast multiply, [batch.., M, 1] * [batch.., 1, N].
        let (xs, ys) = if layout.swap {
            (with(&[1, mp]), with(&[np, 1]))
        } else {
            (with(&[mp, 1]), with(&[1, np]))
        };
        let xv = relayout(spec, xv, &x.labels, &layout.x_order, &xs);
        let yv = relayout(spec, yv, &y.labels, &layout.y_order, &ys);
        xv.mul(&yv)
    } else if mp * np == 1 && shape::numel(&batch_dims) > 1 {
        // Batched dot products: one multiply and one sum rather than a 1×K×1 GEMM per element.
        let xv = relayout(spec, xv, &x.labels, &layout.x_order, &with(&[kp]));
        let yv = relayout(spec, yv, &y.labels, &layout.y_order, &with(&[kp]));
        xv.mul(&yv).sum_axis(batch_dims.len(), false)
    } else {
        let xs = if layout.ta {
            with(&[kp, mp])
        } else {
            with(&[mp, kp])
        };
        let ys = if layout.tb {
            with(&[np, kp])
        } else {
            with(&[kp, np])
        };
        let xv = relayout(spec, xv, &x.labels, &layout.x_order, &xs);
        let yv = relayout(spec, yv, &y.labels, &layout.y_order, &ys);
        if layout.swap {
            // Cᵀ = op(y)ᵀ op(x)ᵀ: y's flag flips, and so does x's.
            gemm(&yv, !layout.tb, &xv, !layout.ta)
        } else {
            gemm(&xv, layout.ta, &yv, layout.tb)
        }
    };
    let target = want.map_or(layout.out_order.as_slice(), |w| w);
    let value = relayout(spec, product, &layout.out_order, target, &spec.shape_of(target));
    Term {
        value,
        labels: Labels::from_slice(target),
    }
}

/// Of the layouts that take each group's order from one of its operands (or from the output),
/// the one that copies the fewest elements; the first such in the order below on ties.
fn best_layout(
    spec: &Spec,
    lx: &[Label],
    ly: &[Label],
    [batch, contracted, m_set, n_set]: [LabelSet; 4],
    want: Option<&[Label]>,
) -> Layout {
    // Each group's candidate orders, without repeats (usually there is one).
    fn options(orders: impl IntoIterator<Item = Labels>) -> SmallVec<[Labels; 3]> {
        let mut out: SmallVec<[Labels; 3]> = SmallVec::new();
        for o in orders {
            if !out.contains(&o) {
                out.push(o);
            }
        }
        out
    }
    let from_want = |set| want.map(|w| order_of(w, set));
    let batch_orders = options(
        [
            Some(order_of(lx, batch)),
            Some(order_of(ly, batch)),
            from_want(batch),
        ]
        .into_iter()
        .flatten(),
    );
    let k_orders = options([order_of(lx, contracted), order_of(ly, contracted)]);
    let m_orders = options(
        [Some(order_of(lx, m_set)), from_want(m_set)]
            .into_iter()
            .flatten(),
    );
    let n_orders = options(
        [Some(order_of(ly, n_set)), from_want(n_set)]
            .into_iter()
            .flatten(),
    );
    let cat = |parts: [&[Label]; 3]| -> Labels { parts.iter().flat_map(|p| p.iter().copied()).collect() };
    let (x_size, y_size) = (spec.numel(lx), spec.numel(ly));
    let mut best: Option<(usize, Layout)> = None;
    for bo in &batch_orders {
        for ko in &k_orders {
            for mo in &m_orders {
                for no in &n_orders {
                    for flags in 0..8 {
                        let (ta, tb, swap) = (flags & 1 != 0, flags & 2 != 0, flags & 4 != 0);
                        // A flag that reorders an empty group changes nothing: skip the copy.
                        if (ta && (ko.is_empty() || mo.is_empty()))
                            || (tb && (ko.is_empty() || no.is_empty()))
                            || (swap && (mo.is_empty() || no.is_empty()))
                        {
                            continue;
                        }
                        let x_order = if ta { cat([bo, ko, mo]) } else { cat([bo, mo, ko]) };
                        let y_order = if tb { cat([bo, no, ko]) } else { cat([bo, ko, no]) };
                        let out_order = if swap {
                            cat([bo, no, mo])
                        } else {
                            cat([bo, mo, no])
                        };
                        let mut cost = 0;
                        if spec.needs_permute(lx, &x_order) {
                            cost += x_size;
                        }
                        if spec.needs_permute(ly, &y_order) {
                            cost += y_size;
                        }
                        if let Some(w) = want
                            && spec.needs_permute(&out_order, w)
                        {
                            cost += spec.numel(w);
                        }
                        if best.as_ref().is_none_or(|(c, _)| cost < *c) {
                            let layout = Layout {
                                x_order,
                                y_order,
                                out_order,
                                ta,
                                tb,
                                swap,
                            };
                            if cost == 0 {
                                return layout;
                            }
                            best = Some((cost, layout));
                        }
                    }
                }
            }
        }
    }
    best.map(|(_, l)| l)
        .unwrap_or_else(|| unreachable!("einsum: there is always a layout"))
}

/// The labels needed outside the terms `skip`: the output's and every other term's.
fn kept<G>(terms: &[Term<G>], output: LabelSet, skip: &[usize]) -> LabelSet {
    terms
        .iter()
        .enumerate()
        .filter(|(i, _)| !skip.contains(i))
        .fold(output, |s, (_, t)| s | set_of(&t.labels))
}

/// Evaluates a checked equation on `operands` (see the module docs for the steps).
#[track_caller]
fn lower<T: Float, G: Operand<T>>(spec: &Spec, operands: Vec<G>) -> G {
    let output = set_of(&spec.output);
    let mut terms: Vec<Term<G>> = operands
        .into_iter()
        .zip(&spec.inputs)
        .map(|(value, labels)| Term {
            value,
            labels: labels.clone(),
        })
        .collect();
    for term in &mut terms {
        prepare(spec, term);
    }
    for i in 0..terms.len() {
        let keep = kept(&terms, output, &[i]);
        sum_out(spec, &mut terms[i], keep);
    }
    while terms.len() > 1 {
        let mut best = (usize::MAX, 0, 1);
        for i in 0..terms.len() {
            for j in i + 1..terms.len() {
                let keep = kept(&terms, output, &[i, j]);
                let size = spec.numel_set((set_of(&terms[i].labels) | set_of(&terms[j].labels)) & keep);
                if size < best.0 {
                    best = (size, i, j);
                }
            }
        }
        let (_, i, j) = best;
        let keep = kept(&terms, output, &[i, j]);
        let y = terms.remove(j);
        let x = terms.remove(i);
        let want = terms.is_empty().then_some(spec.output.as_slice());
        terms.insert(i, contract(spec, x, y, keep, want));
    }
    let Some(last) = terms.pop() else {
        unreachable!("einsum of no operands is rejected when called")
    };
    // Every label but the output's has been summed out or contracted.
    relayout(
        spec,
        last.value,
        &last.labels,
        &spec.output,
        &spec.shape_of(&spec.output),
    )
}

/// `op(A) @ op(B)` with either operand read transposed through strides (`Extra::ints` = `[ta,
/// tb]`, each 0 or 1): the products of einsum that `matmul` and `matmul_t` do not cover, and
/// every product of this op's own backward, so that no transposed copy is made at any order.
pub(crate) struct TransposedMatMul;

impl<T: Float> Op<T> for TransposedMatMul {
    fn name(&self) -> &'static str {
        "matmul_transposed"
    }
    fn rule(&self) -> &'static str {
        "C = op(A) op(B): grad_op(A) = grad_out op(B)ᵀ, grad_op(B) = op(A)ᵀ grad_out"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        let flags = &cx.extra().ints;
        let (ta, tb) = (flags[0] != 0, flags[1] != 0);
        let (a, b, g) = (cx.x(), cx.y(), cx.grad_out);
        [
            // op(A) = A: dA = G op(B)ᵀ;  op(A) = Aᵀ: dA = (G op(B)ᵀ)ᵀ = op(B) Gᵀ.
            cx.need(0, || {
                let d = if ta {
                    gemm(b, tb, g, true)
                } else {
                    gemm(g, false, b, !tb)
                };
                d.sum_to_like(a)
            }),
            // op(B) = B: dB = op(A)ᵀ G;  op(B) = Bᵀ: dB = Gᵀ op(A).
            cx.need(1, || {
                let d = if tb {
                    gemm(g, true, a, ta)
                } else {
                    gemm(a, !ta, g, false)
                };
                d.sum_to_like(b)
            }),
        ]
    }
}

impl<T: Float> Primitive<T> for TransposedMatMul {
    fn forward(&self, cx: &Fwd<'_, T>) -> Tensor<T> {
        let flags = &cx.extra().ints;
        crate::tensor::matmul_transposed("einsum", cx.inputs[0], flags[0] != 0, cx.inputs[1], flags[1] != 0)
    }
}

/// The sizes around two axes `a < b` of `shape`: (before `a`, at `a`, between, after `b`).
fn around(shape: &[usize], a: usize, b: usize) -> (usize, usize, usize, usize) {
    (
        shape::numel(&shape[..a]),
        shape[a],
        shape::numel(&shape[a + 1..b]),
        shape::numel(&shape[b + 1..]),
    )
}

/// The diagonal of axes `a < b` (of equal size), at axis `a`; axis `b` is removed
/// (`torch.diagonal(x, 0, a, b)` with the result axis moved to `a`).
fn diagonal_kernel<T: Element>(x: &Tensor<T>, a: usize, b: usize) -> Tensor<T> {
    let (outer, n, mid, inner) = around(x.shape(), a, b);
    let mut out_shape = Shape::from_slice(x.shape());
    out_shape.remove(b);
    let src = x.as_slice();
    Tensor::build(out_shape, |out| {
        let mut dst = 0;
        for o in 0..outer {
            for i in 0..n {
                for m in 0..mid {
                    let start = (((o * n + i) * mid + m) * n + i) * inner;
                    if inner == 1 {
                        out[dst] = src[start];
                    } else {
                        out[dst..dst + inner].copy_from_slice(&src[start..start + inner]);
                    }
                    dst += inner;
                }
            }
        }
    })
}

/// The adjoint of [`diagonal_kernel`]: `x`'s axis `a` placed on the diagonal of axes `a` and `b`
/// of zeros, a new axis `b` of the same size inserted (`torch.diag_embed`-like).
fn diag_embed_kernel<T: Element>(x: &Tensor<T>, a: usize, b: usize) -> Tensor<T> {
    let mut out_shape = Shape::from_slice(x.shape());
    out_shape.insert(b, x.shape()[a]);
    let (outer, n, mid, inner) = around(&out_shape, a, b);
    let src = x.as_slice();
    Tensor::build(out_shape, |out| {
        let mut from = 0;
        for o in 0..outer {
            for i in 0..n {
                for m in 0..mid {
                    let start = (((o * n + i) * mid + m) * n + i) * inner;
                    if inner == 1 {
                        out[start] = src[from];
                    } else {
                        out[start..start + inner].copy_from_slice(&src[from..from + inner]);
                    }
                    from += inner;
                }
            }
        }
    })
}

/// The diagonal of two axes of equal size (`Extra::ints` = `[a, b]`, `a < b`), kept at axis `a`.
/// Linear; its adjoint is [`DiagEmbed`].
pub(crate) struct Diagonal;

impl<T: Float> Op<T> for Diagonal {
    fn name(&self) -> &'static str {
        "diagonal"
    }
    fn rule(&self) -> &'static str {
        "y_i = x_ii: grad_x = grad_out on the diagonal of zeros"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        let axes = &cx.extra().ints;
        [cx.need(0, || diag_embed(cx.grad_out, axes[0], axes[1])), None]
    }
}

impl<T: Float> Primitive<T> for Diagonal {
    fn forward(&self, cx: &Fwd<'_, T>) -> Tensor<T> {
        let axes = &cx.extra().ints;
        diagonal_kernel(cx.x(), axes[0], axes[1])
    }
}

/// Axis `a` placed on the diagonal of axes `a` and `b` (`Extra::ints` = `[a, b]`, `a < b`, both
/// of the result) of zeros. Linear; its adjoint is [`Diagonal`].
pub(crate) struct DiagEmbed;

impl<T: Float> Op<T> for DiagEmbed {
    fn name(&self) -> &'static str {
        "diag_embed"
    }
    fn rule(&self) -> &'static str {
        "y_ij = x_i if i = j else 0: grad_x = the diagonal of grad_out"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        let axes = &cx.extra().ints;
        [cx.need(0, || diagonal(cx.grad_out, axes[0], axes[1])), None]
    }
}

impl<T: Float> Primitive<T> for DiagEmbed {
    fn forward(&self, cx: &Fwd<'_, T>) -> Tensor<T> {
        let axes = &cx.extra().ints;
        diag_embed_kernel(cx.x(), axes[0], axes[1])
    }
}

/// The diagonal of axes `a < b` of `x`, at axis `a`, for any operand.
#[track_caller]
pub(crate) fn diagonal<T: Float, G: Operand<T>>(x: &G, a: usize, b: usize) -> G {
    G::apply(&Diagonal, Args::None, Some(Extra::ints(&[a, b])), &[x])
}

/// Axis `a` of `x` on the diagonal of axes `a < b` of zeros, for any operand.
#[track_caller]
pub(crate) fn diag_embed<T: Float, G: Operand<T>>(x: &G, a: usize, b: usize) -> G {
    G::apply(&DiagEmbed, Args::None, Some(Extra::ints(&[a, b])), &[x])
}

impl<T: Float> Tensor<T> {
    /// Einstein summation (`torch.einsum`, explicit form): see [`Var::einsum`], which this
    /// computes on plain tensors, with the same lowering to batched matrix products.
    ///
    /// # Panics
    /// As [`Var::einsum`].
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let a = Tensor::<f64>::from_vec(vec![1., 2., 3., 4.], &[2, 2]);
    /// let b = Tensor::<f64>::from_vec(vec![5., 6., 7., 8.], &[2, 2]);
    /// assert_eq!(Tensor::einsum("ij,jk->ik", &[&a, &b]), a.matmul(&b));
    /// assert_eq!(Tensor::einsum("ii->", &[&a]).item(), 5.0); // the trace
    /// assert_eq!(Tensor::einsum("ij->ji", &[&a]).to_vec(), vec![1., 3., 2., 4.]);
    /// ```
    #[track_caller]
    pub fn einsum(equation: &str, operands: &[&Tensor<T>]) -> Tensor<T> {
        assert!(
            !operands.is_empty(),
            "tapegrad: einsum: needs at least one operand, got none for {equation:?}"
        );
        let shapes: Vec<&[usize]> = operands.iter().map(|t| t.shape()).collect();
        let spec = Spec::parse(equation, &shapes);
        shape::checked_numel::<T>("einsum", &spec.shape_of(&spec.output));
        lower(&spec, operands.iter().map(|&t| t.clone()).collect())
    }
}

impl<'t, T: Float> Var<'t, T> {
    /// Einstein summation, as `torch.einsum` with an explicit output (`"ij,jk->ik"`): the
    /// product of the operands summed over every index that is not in the output, the output's
    /// axes in the order given after `"->"`.
    ///
    /// - Indices are the letters `a`–`z` and `A`–`Z`; spaces are ignored. There is no ellipsis
    ///   (`...`) and no implicit form (without `"->"`).
    /// - A repeated index within one operand takes the diagonal: `"ii->i"` (the diagonal),
    ///   `"ii->"` (the trace), `"iij->ij"`.
    /// - An index of size 1 in one operand broadcasts against a larger size of the same index
    ///   elsewhere, as in PyTorch.
    /// - Any number of operands: they are multiplied two at a time, the pair with the smallest
    ///   product first (leftmost on ties), and each index is summed out as soon as no remaining
    ///   operand needs it.
    ///
    /// Each product of two operands is one batched matrix product (the GEMM), the operands
    /// reshaped (free) and permuted only where their axes are not already in a usable order:
    /// `Var::einsum("bhqd,bhkd->bhqk", &[q, k])` records exactly `q.matmul_t(&k)`. The result is
    /// built from differentiable ops (diagonal, reshape, sum, permute, matrix product), so its
    /// backward pass is an einsum again and gradients of every order are available.
    ///
    /// # Panics
    /// If `operands` is empty or on different tapes, or the equation has no `"->"`, a character
    /// other than letters, spaces, `,` and one `"->"`, as many subscripts as operands, a subscript
    /// as long as its operand's rank, an output index given twice or absent from the inputs, or
    /// an index whose sizes differ (and are not 1) between two operands or within one.
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor, Var};
    /// let tape = Tape::<f64>::new();
    /// let q = tape.var(Tensor::from_fn(&[2, 3, 4], |i| i as f64 / 10.0));
    /// let k = tape.var(Tensor::from_fn(&[2, 5, 4], |i| 1.0 - i as f64 / 20.0));
    /// let scores = Var::einsum("bqd,bkd->bqk", &[q, k]);
    /// assert_eq!(scores.value(), q.matmul_t(&k).value());
    ///
    /// let m = tape.var(Tensor::from_vec(vec![1., 2., 3., 4.], &[2, 2]));
    /// let trace = Var::einsum("ii->", &[m]);
    /// assert_eq!(trace.item(), 5.0);
    /// assert_eq!(trace.backward()[m].to_vec(), vec![1., 0., 0., 1.]);
    /// ```
    #[track_caller]
    pub fn einsum(equation: &str, operands: &[Var<'t, T>]) -> Var<'t, T> {
        assert!(
            !operands.is_empty(),
            "tapegrad: einsum: needs at least one operand, got none for {equation:?}"
        );
        for &x in &operands[1..] {
            operands[0].check_same_tape(x, "einsum");
        }
        let spec = {
            let values: Vec<_> = operands.iter().map(|v| v.value_ref()).collect();
            let shapes: Vec<&[usize]> = values.iter().map(|v| v.shape()).collect();
            Spec::parse(equation, &shapes)
        };
        shape::checked_numel::<T>("einsum", &spec.shape_of(&spec.output));
        lower(&spec, operands.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagonal_and_diag_embed_are_adjoint() {
        // <diag(x), y> = <x, embed(y)> for random x [2, 3, 4, 3, 2] (axes 1 and 3).
        let x = Tensor::<f64>::from_fn(&[2, 3, 4, 3, 2], |i| ((i * 37) % 11) as f64 - 5.0);
        let d = diagonal_kernel(&x, 1, 3);
        assert_eq!(d.shape(), &[2, 3, 4, 2]);
        assert_eq!(d.get(&[1, 2, 3, 0]), x.get(&[1, 2, 3, 2, 0]));
        let y = Tensor::<f64>::from_fn(&[2, 3, 4, 2], |i| ((i * 13) % 7) as f64 - 3.0);
        let e = diag_embed_kernel(&y, 1, 3);
        assert_eq!(e.shape(), x.shape());
        assert_eq!(e.get(&[1, 2, 3, 2, 1]), y.get(&[1, 2, 3, 1]));
        assert_eq!(e.get(&[1, 2, 3, 1, 1]), 0.0);
        let lhs: f64 = d.as_slice().iter().zip(y.as_slice()).map(|(a, b)| a * b).sum();
        let rhs: f64 = x.as_slice().iter().zip(e.as_slice()).map(|(a, b)| a * b).sum();
        assert_eq!(lhs, rhs);
    }

    #[test]
    fn layouts_avoid_copies() {
        let shapes: [&[usize]; 2] = [&[2, 3, 4, 5], &[2, 3, 6, 5]];
        let spec = Spec::parse("bhqd,bhkd->bhqk", &shapes);
        let (lx, ly) = (&spec.inputs[0], &spec.inputs[1]);
        let (sx, sy, keep) = (set_of(lx), set_of(ly), set_of(&spec.output));
        let l = best_layout(
            &spec,
            lx,
            ly,
            [sx & sy & keep, sx & sy & !keep, sx & !sy, sy & !sx],
            Some(&spec.output),
        );
        assert!(!l.ta && l.tb && !l.swap);
        assert_eq!(&l.x_order, lx);
        assert_eq!(&l.y_order, ly);
    }
}
