//! [`Dot`]: the tape as a Graphviz DOT graph, one box per node with its op, value and gradient.

use std::path::{Path, PathBuf};

use super::format;
use crate::{Error, Float, Gradients, LeafKind, Tape, Var};

/// Builds a Graphviz DOT picture of a tape: one box per node showing its id, name, op and
/// arguments, value (shape and a few numbers for tensors) and gradient, with an arrow from each
/// input to the op that used it. Arrows into two-input ops are labelled `x` and `y`, the names
/// the ops' derivative rules use.
///
/// Leaves are coloured by kind: inputs ([`Tape::var`]) blue, parameters ([`Tape::param`]) green,
/// constants grey. Render the text with Graphviz (`dot -Tsvg graph.dot -o graph.svg`, or
/// [`render_dot_file`]).
///
/// ```
/// use tapegrad::{Tape, viz::Dot};
///
/// let tape = Tape::<f64>::new();
/// let a = tape.var_named("a", 2.0);
/// let b = tape.var_named("b", -3.0);
/// let unused = a.exp();                              // not part of the loss below
/// let loss = (a * b).named("loss");
/// let grads = loss.backward();
/// let dot = Dot::new(&tape).gradients(&grads).output(loss).render();
/// assert!(dot.starts_with("digraph tapegrad {"));
/// assert!(dot.contains("loss = mul") && dot.contains("grad -3"));
/// assert!(!dot.contains(&format!("n{} [", unused.id())));  // only the loss's subgraph
/// ```
pub struct Dot<'a, T: Float = f32> {
    tape: &'a Tape<T>,
    grads: Option<&'a Gradients<T>>,
    output: Option<usize>,
    max_elements: usize,
}

impl<'a, T: Float> Dot<'a, T> {
    /// A picture of every node on `tape`, values only.
    pub fn new(tape: &'a Tape<T>) -> Self {
        Dot {
            tape,
            grads: None,
            output: None,
            max_elements: 4,
        }
    }

    /// Shows each node's gradient from `grads` (which must come from a backward pass on this
    /// tape); nodes without one say `grad none`.
    pub fn gradients(mut self, grads: &'a Gradients<T>) -> Self {
        self.grads = Some(grads);
        self
    }

    /// Shows only `output` and the nodes it depends on.
    ///
    /// # Panics
    /// If `output` lives on another tape.
    #[track_caller]
    pub fn output(mut self, output: Var<'_, T>) -> Self {
        assert!(
            std::ptr::eq(output.tape, self.tape),
            "tapegrad: Dot::output: var {} belongs to another tape than the picture",
            output.id
        );
        self.output = Some(output.id());
        self
    }

    /// How many elements of a tensor value or gradient to print (default 4).
    pub fn max_elements(mut self, max_elements: usize) -> Self {
        self.max_elements = max_elements;
        self
    }

    /// The ids of the nodes shown, in tape order.
    fn shown(&self) -> Vec<usize> {
        let nodes = self.tape.nodes.borrow();
        let Some(output) = self.output else {
            return (0..nodes.len()).collect();
        };
        // The tape is topologically ordered: one reverse sweep marks every ancestor.
        let mut keep = vec![false; output + 1];
        keep[output] = true;
        for i in (0..=output).rev() {
            if keep[i] {
                for &input in nodes.inputs_of(&nodes[i]) {
                    keep[input as usize] = true;
                }
            }
        }
        (0..=output).filter(|&i| keep[i]).collect()
    }

    /// The DOT text.
    pub fn render(&self) -> String {
        let mut out = String::from("digraph tapegrad {\n");
        out.push_str(
            "  rankdir=LR;\n  node [shape=box, style=\"rounded,filled\", fontname=\"monospace\"];\n",
        );
        let shown = self.shown();
        for &id in &shown {
            let var = Var {
                tape: self.tape,
                id: id as u32,
            };
            let (node, op, _) = self.tape.node_with_op(id);
            let label = self.label(var);
            let fill = match (op, node.leaf) {
                (Some(_), _) => "white",
                (None, LeafKind::Input) => "lightblue",
                (None, LeafKind::Param) => "palegreen",
                (None, LeafKind::Constant) => "lightgrey",
            };
            out.push_str(&format!(
                "  n{id} [label=\"{}\", fillcolor={fill}];\n",
                escape(&label)
            ));
        }
        let nodes = self.tape.nodes.borrow();
        for &id in &shown {
            let inputs = nodes.inputs_of(&nodes[id]);
            for (k, input) in inputs.iter().enumerate() {
                let label = match (inputs.len(), k) {
                    (1, _) => String::new(),
                    (2, 0) => " [label=\"x\"]".to_string(),
                    (2, _) => " [label=\"y\"]".to_string(),
                    (_, k) => format!(" [label=\"{k}\"]"),
                };
                out.push_str(&format!("  n{input} -> n{id}{label};\n"));
            }
        }
        out.push_str("}\n");
        out
    }

    /// Writes the DOT text to `path`.
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be written.
    ///
    /// ```
    /// use tapegrad::{Tape, viz::Dot};
    /// let tape = Tape::<f32>::new();
    /// let y = tape.var(2.0).tanh();
    /// let path = std::env::temp_dir().join("tapegrad_dot_write_doc.dot");
    /// Dot::new(&tape).gradients(&y.backward()).write(&path).unwrap();
    /// assert!(std::fs::read_to_string(&path).unwrap().contains("tanh"));
    /// ```
    pub fn write(&self, path: impl AsRef<Path>) -> Result<(), Error> {
        let path = path.as_ref();
        crate::io::write_atomic(path, self.render().as_ref())
    }

    fn label(&self, var: Var<'_, T>) -> String {
        let (node, op, args) = self.tape.node_with_op(var.id());
        let name = var.name();
        let mut lines = Vec::new();
        let head = match (op.and(var.op()), &name) {
            (Some(op), Some(name)) => format!("#{} {name} = {op}", var.id()),
            (Some(op), None) => format!("#{} {op}", var.id()),
            (None, name) => {
                let kind = match node.leaf {
                    LeafKind::Input => "input",
                    LeafKind::Param => "param",
                    LeafKind::Constant => "constant",
                };
                match name {
                    Some(name) => format!("#{} {name} ({kind})", var.id()),
                    None => format!("#{} {kind}", var.id()),
                }
            }
        };
        lines.push(head);
        let args = match args {
            crate::ops::Args::Extra(_) => self.tape.args_text(var.id()),
            args => args.to_string(),
        };
        if !args.is_empty() {
            lines.push(args);
        }
        let value = self.tape.value_of(node.value());
        lines.push(format!("value {}", format::tensor(&value, self.max_elements)));
        drop(value);
        if let Some(grads) = self.grads {
            match grads.by_id(var.id()) {
                Some(g) => lines.push(format!("grad {}", format::tensor(g, self.max_elements))),
                None => lines.push("grad none".to_string()),
            }
        }
        lines.join("\n")
    }
}

impl<T: Float> std::fmt::Display for Dot<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render())
    }
}

/// Quotes a label for DOT: backslashes and quotes escaped, line breaks as `\n`.
fn escape(label: &str) -> String {
    let mut out = String::with_capacity(label.len());
    for c in label.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

impl<T: Float> Tape<T> {
    /// A Graphviz DOT picture of every node on this tape with its value and its gradient from
    /// `grads`; see [`Dot`] for options (only one output's subgraph, how many elements to show).
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var_named("x", 3.0);
    /// let y = x * x;
    /// let dot = tape.to_dot(&y.backward());
    /// assert!(dot.contains("#0 x (input)\\nvalue 3\\ngrad 6"));
    /// assert!(dot.contains("n0 -> n1 [label=\"x\"]") && dot.contains("n0 -> n1 [label=\"y\"]"));
    /// ```
    pub fn to_dot(&self, grads: &Gradients<T>) -> String {
        Dot::new(self).gradients(grads).render()
    }
}

/// Renders a DOT file with Graphviz's `dot` program into `format` (`"svg"`, `"png"`, ...) beside
/// it (`graph.dot` → `graph.svg`). Returns `Ok(None)` when `dot` is not installed, so a program
/// can say how to install it instead (<https://graphviz.org/download/>, or
/// `apt install graphviz`, `brew install graphviz`).
///
/// # Errors
/// [`Error::Io`] if `dot` exists but fails (its message is the error's source).
///
/// ```
/// use tapegrad::{Tape, viz::{Dot, render_dot_file}};
/// let tape = Tape::<f32>::new();
/// let _y = tape.var(1.0).exp();
/// let path = std::env::temp_dir().join("tapegrad_render_doc.dot");
/// Dot::new(&tape).write(&path).unwrap();
/// match render_dot_file(&path, "svg").unwrap() {
///     Some(svg) => assert!(svg.ends_with("tapegrad_render_doc.svg")),
///     None => println!("Graphviz is not installed"),
/// }
/// ```
pub fn render_dot_file(path: impl AsRef<Path>, format: &str) -> Result<Option<PathBuf>, Error> {
    let path = path.as_ref();
    let target = path.with_extension(format);
    let output = std::process::Command::new("dot")
        .arg(format!("-T{format}"))
        .arg(path)
        .arg("-o")
        .arg(&target)
        .output();
    match output {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Io {
            path: path.to_path_buf(),
            source,
        }),
        Ok(out) if out.status.success() => Ok(Some(target)),
        Ok(out) => Err(Error::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(format!(
                "dot failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )),
        }),
    }
}
