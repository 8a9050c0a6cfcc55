//! Graph pictures and backward traces (`tapegrad::viz`): the DOT text is well formed and shows
//! every node; the trace lists every node that took part exactly once, in reverse order.

use std::collections::HashMap;

use tapegrad::viz::Dot;
use tapegrad::{Gradients, Param, Tape, Tensor, Var, loss};

/// The structure of a DOT graph as written by `Dot`: node ids with their labels, and edges.
struct ParsedDot {
    nodes: HashMap<String, String>,
    edges: Vec<(String, String)>,
}

/// A small structural DOT parser: checks balanced braces and quotes, that every node is declared
/// once and that every edge joins declared nodes.
fn parse_dot(text: &str) -> ParsedDot {
    let mut depth = 0i32;
    let mut in_quotes = false;
    let mut escaped = false;
    for c in text.chars() {
        match (in_quotes, escaped, c) {
            (true, true, _) => escaped = false,
            (true, false, '\\') => escaped = true,
            (_, false, '"') => in_quotes = !in_quotes,
            (false, _, '{') => depth += 1,
            (false, _, '}') => {
                depth -= 1;
                assert!(depth >= 0, "closing brace without an opening one");
            }
            _ => {}
        }
    }
    assert_eq!(depth, 0, "unbalanced braces");
    assert!(!in_quotes, "unterminated string");
    let body = text
        .trim()
        .strip_prefix("digraph tapegrad {")
        .and_then(|b| b.strip_suffix('}'))
        .expect("a digraph");
    let mut nodes = HashMap::new();
    let mut edges = Vec::new();
    for statement in body.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let statement = statement.strip_suffix(';').expect("statements end with ';'");
        if statement.starts_with("rankdir") || statement.starts_with("node [") {
            continue;
        }
        if let Some((from, rest)) = statement.split_once(" -> ") {
            let to = rest.split_whitespace().next().expect("an edge target");
            edges.push((from.to_string(), to.to_string()));
            continue;
        }
        let (id, attrs) = statement.split_once(" [").expect("a node statement");
        let label = attrs
            .strip_prefix("label=\"")
            .and_then(|a| a.split_once("\", fillcolor="))
            .expect("a label")
            .0;
        assert!(
            nodes.insert(id.to_string(), label.to_string()).is_none(),
            "node {id} declared twice"
        );
    }
    for (from, to) in &edges {
        assert!(nodes.contains_key(from), "edge from undeclared node {from}");
        assert!(nodes.contains_key(to), "edge to undeclared node {to}");
    }
    ParsedDot { nodes, edges }
}

/// micrograd's classic expression, with names.
fn micrograd<'t>(tape: &'t Tape<f64>) -> Var<'t, f64> {
    let a = tape.var_named("a", -4.0);
    let b = tape.var_named("b", 2.0);
    let c = (a + b).named("c");
    let d = (a * b + b.powi(3)).named("d");
    ((c - d).relu() + d * 2.0 + 1.0 / c).named("e")
}

#[test]
fn dot_output_parses_and_shows_every_node_with_value_and_gradient() {
    let tape = Tape::<f64>::new();
    let e = micrograd(&tape);
    let grads = e.backward();
    let parsed = parse_dot(&tape.to_dot(&grads));
    assert_eq!(parsed.nodes.len(), tape.len());
    for id in 0..tape.len() {
        let label = &parsed.nodes[&format!("n{id}")];
        assert!(label.starts_with(&format!("#{id} ")), "{label}");
        assert!(label.contains("\\nvalue "), "{label}");
        assert!(label.contains("\\ngrad "), "{label}");
    }
    assert!(parsed.nodes["n0"].contains("a (input)\\nvalue -4\\ngrad 3.75"));
    assert!(parsed.nodes[&format!("n{}", e.id())].contains("e = add"));
    // One edge per input of every op.
    let inputs: usize = tape.vars().map(|v| v.input_ids().len()).sum();
    assert_eq!(parsed.edges.len(), inputs);
    for v in tape.vars() {
        for input in v.input_ids() {
            let edge = (format!("n{input}"), format!("n{}", v.id()));
            assert!(parsed.edges.contains(&edge), "missing edge {edge:?}");
        }
    }
}

/// A two-layer network on a batch, with a param, a constant and a reduction.
fn tensor_graph<'t>(tape: &'t Tape<f32>, w: &Param<f32>) -> Var<'t, f32> {
    let x = tape
        .constant(Tensor::from_vec(vec![1.0, -2.0, 0.5, 3.0, 0.0, 1.0], &[3, 2]))
        .named("x");
    let h = x.matmul(&tape.param(w)).tanh().named("h");
    let logits = h.matmul(&tape.var_named("v", Tensor::from_vec(vec![0.3, -0.1, 0.2, 0.4], &[2, 2])));
    loss::cross_entropy(logits, &[0, 1, 1]).named("loss")
}

#[test]
fn dot_of_a_tensor_graph_parses_and_shows_shapes() {
    let w = Param::new(Tensor::from_vec(vec![0.5, -0.5, 0.25, 1.0], &[2, 2]));
    let tape = Tape::new();
    let l = tensor_graph(&tape, &w);
    let grads = l.backward();
    let parsed = parse_dot(&Dot::new(&tape).gradients(&grads).max_elements(2).render());
    assert_eq!(parsed.nodes.len(), tape.len());
    assert!(parsed.nodes["n0"].contains("x (constant)\\nvalue [3, 2] [1, -2, …]\\ngrad none"));
    assert!(parsed.nodes["n1"].contains("#1 param\\nvalue [2, 2] [0.5, -0.5, …]\\ngrad [2, 2] ["));
}

#[test]
fn dot_of_one_output_shows_exactly_its_ancestors() {
    let tape = Tape::<f64>::new();
    let e = micrograd(&tape);
    let unrelated = tape.var_named("u", 1.0).exp();
    let part = tape.vars().find(|v| v.name().as_deref() == Some("c")).unwrap();
    let grads = e.backward();
    let whole = parse_dot(&Dot::new(&tape).gradients(&grads).output(e).render());
    assert_eq!(whole.nodes.len(), e.id() + 1, "every node before e feeds it");
    assert!(!whole.nodes.contains_key(&format!("n{}", unrelated.id())));
    let sub = parse_dot(&Dot::new(&tape).output(part).render());
    // c = a + b: three nodes, two edges, no gradients asked for.
    let mut ids: Vec<_> = sub.nodes.keys().cloned().collect();
    ids.sort();
    assert_eq!(ids, ["n0", "n1", "n2"]);
    assert_eq!(sub.edges.len(), 2);
    assert!(sub.nodes.values().all(|l| !l.contains("grad")));
}

#[test]
fn dot_escapes_quotes_and_backslashes_in_names() {
    let tape = Tape::<f64>::new();
    let x = tape.var_named("say \"hi\" \\ bye", 1.0);
    let y = x.sin();
    let parsed = parse_dot(&tape.to_dot(&y.backward()));
    assert!(parsed.nodes["n0"].contains("say \\\"hi\\\" \\\\ bye"));
}

#[test]
fn dot_write_reports_io_errors_with_the_path() {
    let tape = Tape::<f32>::new();
    let _y = tape.var(1.0).exp();
    let path = std::env::temp_dir()
        .join("tapegrad_no_such_dir")
        .join("deeper")
        .join("g.dot");
    match Dot::new(&tape).write(&path) {
        Err(tapegrad::Error::Io { path: p, .. }) => assert_eq!(p, path),
        other => panic!("expected an I/O error, got {other:?}"),
    }
}

/// The ids of every node with a gradient, which are the nodes that take part in backward.
fn participants<T: tapegrad::Float>(tape: &Tape<T>, grads: &Gradients<T>) -> Vec<usize> {
    tape.vars()
        .map(|v| v.id())
        .filter(|&id| grads.by_id(id).is_some())
        .collect()
}

/// The node ids at the head of each step in the printed trace, in printed order.
fn printed_steps(text: &str) -> Vec<usize> {
    text.lines()
        .filter_map(|l| l.strip_prefix('#'))
        .map(|l| {
            l.split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect()
}

fn check_trace<T: tapegrad::Float>(tape: &Tape<T>, output: Var<'_, T>) {
    let (grads, trace) = output.backward_traced();
    let mut expected = participants(tape, &grads);
    expected.reverse();
    let ids: Vec<usize> = trace.steps().iter().map(|s| s.id).collect();
    assert_eq!(
        ids, expected,
        "every participating node once, in reverse tape order"
    );
    assert_eq!(printed_steps(&trace.to_string()), expected);
    // Each step's incoming gradient is the node's gradient, and the running totals end at the
    // gradients backward returned.
    let mut last_total = std::collections::HashMap::new();
    for step in trace.steps() {
        assert_eq!(&step.grad_out, grads.by_id(step.id).unwrap());
        for c in &step.contributions {
            last_total.insert(c.input, c.total.clone());
        }
    }
    for (id, total) in last_total {
        assert_eq!(&total, grads.by_id(id).unwrap(), "node {id}");
    }
}

#[test]
fn trace_of_a_scalar_graph_lists_every_node_once_in_reverse_order() {
    let tape = Tape::<f64>::new();
    let e = micrograd(&tape);
    let _unused = tape.var(5.0) * 2.0; // after e: not visited
    check_trace(&tape, e);
}

#[test]
fn trace_of_a_tensor_graph_lists_every_node_once_in_reverse_order() {
    let w = Param::new(Tensor::from_vec(vec![0.5, -0.5, 0.25, 1.0], &[2, 2]));
    let tape = Tape::new();
    let l = tensor_graph(&tape, &w);
    check_trace(&tape, l);
    let (_, trace) = l.backward_traced();
    let text = trace.to_string();
    assert!(text.contains("matmul"), "{text}");
    assert!(text.contains("C = A B: grad_A = grad_out Bᵀ"), "{text}");
    // The constant input x gets nothing, so the first matmul sends to one input only.
    let first_matmul = trace
        .steps()
        .iter()
        .rev()
        .find(|s| s.op == Some("matmul"))
        .unwrap();
    assert_eq!(first_matmul.contributions.len(), 1);
    assert_eq!(first_matmul.contributions[0].role, "y");
}

#[test]
fn trace_shows_a_reused_node_receiving_from_each_use() {
    // y = x·x + x: x is used three times; its gradient 2x + 1 = 7 is built in three additions.
    let tape = Tape::<f64>::new();
    let x = tape.var_named("x", 3.0);
    let y = x * x + x;
    let (grads, trace) = y.backward_traced();
    let to_x: Vec<(f64, f64)> = trace
        .steps()
        .iter()
        .flat_map(|s| &s.contributions)
        .filter(|c| c.input == x.id())
        .map(|c| (c.added.item(), c.total.item()))
        .collect();
    assert_eq!(to_x, [(1.0, 1.0), (3.0, 4.0), (3.0, 7.0)]);
    assert_eq!(grads[x].item(), 7.0);
    let text = trace.to_string();
    assert!(
        text.contains("to y = #0 x: + 3   (its gradient is now 7)"),
        "{text}"
    );
    assert!(
        text.contains("#0 x (input leaf)   value 3\n    gradient  7"),
        "{text}"
    );
}

#[test]
fn text_plot_puts_first_and_last_points_in_the_corners() {
    use tapegrad::viz::LinePlot;
    let falling: Vec<f64> = (0..10).map(|i| 100.0 * 0.1f64.powi(i)).collect();
    let text = LinePlot::new("loss")
        .log_y(true)
        .series("a", &falling)
        .to_text(10, 10);
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows[0], "loss (log scale)");
    // A straight line on the log scale: one mark per row, from the top left to the bottom right.
    assert_eq!(rows[1], " 100 |*");
    assert_eq!(rows[10], "1e-7 |         *");
    for (r, row) in rows[1..=10].iter().enumerate() {
        assert_eq!(row.find('*'), Some(6 + r), "row {r}: {row}");
    }
    assert_eq!(rows[11], "     +0        9");
    assert_eq!(rows[12], "      * a");
}

// The SVG pictures come from plotters (feature `plots`). Its output is checked through its
// structure: the elements of a kind, their attributes, and the text of the `<text>` elements.
// plotters draws the axes and ticks as black polylines and the legend marks as squares, so a
// series is a polyline stroked in a series colour.

/// The series colours, as plotters writes them.
#[cfg(feature = "plots")]
const COLOURS: [&str; 3] = ["#1F77B4", "#D62728", "#2CA02C"];

/// Every `<name .../>` tag in `svg`, in order.
#[cfg(feature = "plots")]
fn tags<'s>(svg: &'s str, name: &str) -> Vec<&'s str> {
    let open = format!("<{name} ");
    svg.match_indices(&open)
        .map(|(i, _)| &svg[i..i + svg[i..].find('>').expect("unterminated tag") + 1])
        .collect()
}

/// The value of `name="..."` in an SVG tag, as written.
#[cfg(feature = "plots")]
fn attr_str<'t>(tag: &'t str, name: &str) -> &'t str {
    let key = format!(" {name}=\"");
    let start = tag.find(&key).unwrap_or_else(|| panic!("no {name} in {tag}")) + key.len();
    tag[start..].split('"').next().unwrap()
}

/// The value of `name="..."` in an SVG tag, as a number.
#[cfg(feature = "plots")]
fn attr(tag: &str, name: &str) -> f64 {
    attr_str(tag, name).parse().unwrap()
}

/// The polylines stroked in a series colour, as their lists of points.
#[cfg(feature = "plots")]
fn series_lines(svg: &str) -> Vec<(String, Vec<(f64, f64)>)> {
    tags(svg, "polyline")
        .into_iter()
        .filter(|t| attr_str(t, "stroke") != "#000000")
        .map(|t| {
            let points = attr_str(t, "points")
                .split_whitespace()
                .map(|p| {
                    let (x, y) = p.split_once(',').unwrap();
                    (x.parse().unwrap(), y.parse().unwrap())
                })
                .collect();
            (attr_str(t, "stroke").to_string(), points)
        })
        .collect()
}

/// The text of every `<text>` element, trimmed.
#[cfg(feature = "plots")]
fn texts(svg: &str) -> Vec<String> {
    svg.split("<text ")
        .skip(1)
        .map(|t| {
            let body = &t[t.find('>').unwrap() + 1..];
            body[..body.find("</text>").expect("unclosed text")]
                .trim()
                .to_string()
        })
        .collect()
}

#[cfg(feature = "plots")]
fn close(a: f64, b: f64, tolerance: f64) -> bool {
    (a - b).abs() <= tolerance
}

#[test]
#[cfg(feature = "plots")]
fn svg_plot_is_well_formed_with_one_polyline_per_series() {
    use tapegrad::viz::LinePlot;
    let svg = LinePlot::new("a < b & c")
        .series("one", &[1.0, 2.0, f64::NAN, 3.0])
        .series("two", &[3.0, 1.0])
        .to_svg(400, 300);
    assert_well_formed(&svg);
    assert!(svg.starts_with("<svg"), "{svg}");
    let lines = series_lines(&svg);
    assert_eq!(lines.len(), 2, "{svg}");
    assert_eq!(lines[0].0, COLOURS[0]);
    assert_eq!(lines[1].0, COLOURS[1]);
    let text = texts(&svg);
    assert!(text.contains(&"a &lt; b &amp; c".to_string()), "{text:?}");
    assert!(text.contains(&"one".to_string()) && text.contains(&"two".to_string()));
    // The NaN is left out: three points in the first line, at x = 0, 1 and 3 of 0..3, rising
    // evenly from 1 to 3 (y grows upwards, pixels downwards).
    let one = &lines[0].1;
    assert_eq!(one.len(), 3, "{one:?}");
    let (left, right) = (one[0].0, one[2].0);
    assert!(right - left > 200.0, "{one:?}");
    assert!(close(one[1].0, left + (right - left) / 3.0, 1.0), "{one:?}");
    let (bottom, top) = (one[0].1, one[2].1);
    assert!(bottom - top > 150.0, "{one:?}");
    assert!(close(one[1].1, (bottom + top) / 2.0, 1.0), "{one:?}");
    // The second series spans x 0..1 and falls from the top to the bottom.
    assert_eq!(lines[1].1, [(left, top), (one[1].0, bottom)]);
}

#[test]
#[cfg(feature = "plots")]
fn svg_plot_on_a_log_scale_leaves_out_points_it_cannot_take_the_log_of() {
    use tapegrad::viz::LinePlot;
    let svg = LinePlot::new("loss")
        .log_y(true)
        .series("l", &[100.0, 10.0, 0.0, -1.0, 1.0])
        .to_svg(300, 200);
    assert_well_formed(&svg);
    let lines = series_lines(&svg);
    assert_eq!(lines.len(), 1);
    let l = &lines[0].1;
    assert_eq!(l.len(), 3, "{l:?}");
    // Equal steps on the log scale.
    assert!(close(l[1].1, (l[0].1 + l[2].1) / 2.0, 1.0), "{l:?}");
    assert!(texts(&svg).contains(&"loss (log scale)".to_string()));
}

/// Every element is self-closed or closed in order.
#[cfg(feature = "plots")]
fn assert_well_formed(svg: &str) {
    let mut open = Vec::new();
    let mut rest = svg;
    while let Some(start) = rest.find('<') {
        let end = rest[start..].find('>').expect("unterminated tag") + start;
        let tag = &rest[start + 1..end];
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(open.pop().as_deref(), Some(name), "mismatched </{name}>");
        } else if !tag.ends_with('/') {
            open.push(tag.split_whitespace().next().unwrap().to_string());
        }
        rest = &rest[end + 1..];
    }
    assert!(open.is_empty(), "unclosed {open:?}");
}

#[test]
#[cfg(feature = "plots")]
fn path_plot_is_well_formed_and_spans_every_point() {
    use tapegrad::viz::PathPlot;
    let svg = PathPlot::new("paths")
        .path("a", &[(-2.0, 1.0), (0.0, 0.0), (f64::INFINITY, 0.0), (1.0, 3.0)])
        .path("b", &[(0.5, 0.5)])
        .mark("min", (1.0, 1.0))
        .to_svg(300, 200);
    assert_well_formed(&svg);
    let lines = series_lines(&svg);
    assert_eq!(lines.len(), 2, "{svg}");
    // x spans -2..1 and y 0..3: (-2, 1) is at the left, (0, 0) at the bottom, (1, 3) at the top
    // right; the infinite point is left out.
    let a = &lines[0].1;
    assert_eq!(a.len(), 3, "{a:?}");
    let (left, right, bottom, top) = (a[0].0, a[2].0, a[1].1, a[2].1);
    assert!(right - left > 150.0 && bottom - top > 80.0, "{a:?}");
    let px = |x: f64| left + (x + 2.0) / 3.0 * (right - left);
    let py = |y: f64| bottom - y / 3.0 * (bottom - top);
    assert!(
        close(a[1].0, px(0.0), 1.0) && close(a[0].1, py(1.0), 1.0),
        "{a:?}"
    );
    let b = &lines[1].1;
    assert!(
        b.len() == 1 && close(b[0].0, px(0.5), 1.0) && close(b[0].1, py(0.5), 1.0),
        "{b:?}"
    );
    // A dot at the start of each path, in its colour; a black ring at the mark.
    let circles = tags(&svg, "circle");
    assert_eq!(circles.len(), 3, "{circles:?}");
    for (circle, (colour, points)) in circles.iter().zip(&lines) {
        assert_eq!(attr_str(circle, "fill"), colour);
        assert_eq!((attr(circle, "cx"), attr(circle, "cy")), points[0]);
    }
    let ring = circles[2];
    assert_eq!(
        (attr_str(ring, "fill"), attr_str(ring, "stroke")),
        ("none", "#000000")
    );
    assert!(close(attr(ring, "cx"), px(1.0), 1.0) && close(attr(ring, "cy"), py(1.0), 1.0));
    assert!(texts(&svg).contains(&"min".to_string()));
}

#[test]
#[cfg(feature = "plots")]
fn decision_plot_paints_each_cell_with_the_predicted_class_and_rings_the_mistakes() {
    use tapegrad::viz::DecisionPlot;
    let points = [(-1.0, -1.0), (1.0, 1.0), (-0.5, 0.5), (0.5, -0.5)];
    let labels = [0, 1, 1, 2];
    let mut calls = 0;
    // Class 1 right of x = 0.25, class 0 left of it.
    let svg = DecisionPlot::new("boundary at x = 0.25")
        .points(&points, &labels)
        .resolution(10)
        .to_svg(300, 200, |xy: Tensor<f32>| {
            calls += 1;
            assert_eq!(xy.shape()[1], 2);
            xy.as_slice()
                .chunks(2)
                .map(|p| usize::from(p[0] > 0.25))
                .collect()
        });
    assert_eq!(calls, 2, "one call for the grid, one for the points");
    assert_well_formed(&svg);
    // The regions are the translucent rectangles.
    let regions: Vec<&str> = tags(&svg, "rect")
        .into_iter()
        .filter(|t| attr_str(t, "opacity") == "0.25")
        .collect();
    assert_eq!(
        regions.len(),
        20,
        "each of 10 rows is one run of class 0 then one of class 1"
    );
    // They tile the plot area, which spans the points' range [-1, 1] plus 10%: [-1.2, 1.2].
    let left = regions.iter().map(|t| attr(t, "x")).fold(f64::INFINITY, f64::min);
    let right = regions
        .iter()
        .map(|t| attr(t, "x") + attr(t, "width"))
        .fold(f64::NEG_INFINITY, f64::max);
    let top = regions.iter().map(|t| attr(t, "y")).fold(f64::INFINITY, f64::min);
    let bottom = regions
        .iter()
        .map(|t| attr(t, "y") + attr(t, "height"))
        .fold(f64::NEG_INFINITY, f64::max);
    assert!(right - left > 150.0 && bottom - top > 80.0, "{regions:?}");
    let px = |x: f64| left + (x + 1.2) / 2.4 * (right - left);
    let py = |y: f64| top + (1.2 - y) / 2.4 * (bottom - top);
    for (row, pair) in regions.chunks(2).enumerate() {
        // Cells are 0.24 wide; the first centre right of 0.25 is 0.36, in the cell from 0.24.
        let (zero, one) = (pair[0], pair[1]);
        assert_eq!(attr_str(zero, "fill"), COLOURS[0], "{zero}");
        assert_eq!(attr_str(one, "fill"), COLOURS[1], "{one}");
        assert!(close(attr(zero, "x"), left, 0.5), "{zero}");
        assert!(
            close(attr(zero, "x") + attr(zero, "width"), px(0.24), 1.0),
            "{zero}"
        );
        assert!(close(attr(one, "x"), px(0.24), 1.0), "{one}");
        assert!(close(attr(one, "x") + attr(one, "width"), right, 0.5), "{one}");
        let row_top = py(1.2 - 0.24 * row as f64);
        for tag in pair {
            assert!(close(attr(tag, "y"), row_top, 1.0), "row {row}: {tag}");
        }
    }
    // One dot per point, in its label's colour, at its place.
    let circles = tags(&svg, "circle");
    let dots: Vec<&str> = circles
        .iter()
        .copied()
        .filter(|t| attr_str(t, "fill") != "none")
        .collect();
    assert_eq!(dots.len(), 4, "{circles:?}");
    for ((dot, p), &label) in dots.iter().zip(&points).zip(&labels) {
        assert_eq!(attr_str(dot, "fill"), COLOURS[label], "{dot}");
        assert!(
            close(attr(dot, "cx"), px(p.0), 1.0) && close(attr(dot, "cy"), py(p.1), 1.0),
            "{dot}"
        );
    }
    // (-0.5, 0.5) is labelled 1 but left of the boundary; (0.5, -0.5) is labelled 2: black rings.
    let rings: Vec<(f64, f64)> = circles
        .iter()
        .filter(|t| attr_str(t, "fill") == "none")
        .inspect(|t| assert_eq!(attr_str(t, "stroke"), "#000000"))
        .map(|t| (attr(t, "cx"), attr(t, "cy")))
        .collect();
    let wrong = [points[2], points[3]];
    assert_eq!(rings.len(), 2, "{circles:?}");
    for (ring, p) in rings.iter().zip(wrong) {
        assert!(
            close(ring.0, px(p.0), 1.0) && close(ring.1, py(p.1), 1.0),
            "{ring:?}"
        );
    }
    assert!(texts(&svg).contains(&"2 of 4 points (50%) classified right".to_string()));
}

#[test]
#[cfg(feature = "plots")]
#[should_panic(expected = "DecisionPlot::to_svg: the classifier returned 3 classes for 16 grid points")]
fn decision_plot_names_a_classifier_returning_the_wrong_count() {
    tapegrad::viz::DecisionPlot::new("bad")
        .resolution(4)
        .to_svg(200, 200, |_: Tensor<f64>| vec![0, 1, 2]);
}
