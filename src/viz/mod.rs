//! Seeing backpropagation: pictures of the graph and step-by-step accounts of a backward pass.
//!
//! | item | file | one job |
//! |---|---|---|
//! | [`Dot`], [`Tape::to_dot`](crate::Tape::to_dot) | `dot.rs` | the tape as a Graphviz DOT graph: one box per node with its op, value and gradient |
//! | [`BackwardTrace`], [`Var::backward_traced`](crate::Var::backward_traced) | `trace.rs` | every step of a backward pass, in the order it runs |
//! | [`render_dot_file`] | `dot.rs` | runs Graphviz's `dot` program on a DOT file, when it is installed |
//! | [`LinePlot`] | `line_plot.rs` | curves such as loss against step, in the terminal or as SVG |
//! | [`PathPlot`] | `path_plot.rs` | paths through a plane, such as an optimizer's iterates, as SVG |
//! | [`DecisionPlot`] | `decision_plot.rs` | a classifier's decision regions over a plane, with the data points, as SVG |
//!
//! The SVG pictures of the three plots are drawn with the [`plotters`](https://docs.rs/plotters)
//! crate's SVG backend (feature `plots`, on by default; without it the plots have no `to_svg` or
//! `write_svg` and `LinePlot` keeps its terminal text). No font feature of plotters is used: text
//! goes into the SVG as `<text>` elements for the viewer to lay out, so nothing reads system fonts.
//!
//! Names given with [`Tape::var_named`](crate::Tape::var_named) or [`Var::named`](crate::Var::named)
//! appear in both.
//!
//! ```
//! use tapegrad::Tape;
//!
//! let tape = Tape::<f64>::new();
//! let x = tape.var_named("x", 3.0);
//! let y = (x * x).named("y");
//! let (grads, trace) = y.backward_traced();
//! assert!(tape.to_dot(&grads).contains("y = mul"));
//! assert!(trace.to_string().contains("grad_x = grad_out * y"));
//! ```

#[cfg(feature = "plots")]
mod chart;
mod decision_plot;
mod dot;
mod format;
mod line_plot;
mod path_plot;
mod trace;

pub use decision_plot::DecisionPlot;
pub use dot::{Dot, render_dot_file};
pub use line_plot::LinePlot;
pub use path_plot::PathPlot;
pub use trace::{BackwardTrace, Contribution, TraceStep};
