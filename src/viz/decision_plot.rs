//! [`DecisionPlot`]: a classifier's decision regions over a plane, with the labelled points, as SVG.

use std::fmt::Write as _;
use std::path::Path;

use super::format;
use super::line_plot::COLOURS;
use crate::{Error, Float, Tensor};

/// A 2-D classification picture: the plane is cut into a grid of cells, each painted in the
/// colour of the class the model predicts at its centre, and the data points are drawn on top in
/// the colour of their label. Misclassified points get a thick black ring, so the picture shows at
/// a glance where the boundary is wrong.
///
/// The model is asked once for the whole grid (a `[cells², 2]` tensor of points, row by row from
/// the top) and once for the data points, through a closure that returns one class per row; see
/// [`train::predicted_classes`](crate::train::predicted_classes) for turning outputs into classes.
///
/// ```
/// use tapegrad::{Tensor, viz::DecisionPlot};
///
/// let points = [(-1.0, 0.5), (-0.5, -1.0), (0.5, 1.0), (1.0, -0.5), (0.2, 0.0)];
/// let labels = [0, 0, 1, 1, 0];                 // the last point is on the wrong side
/// let plot = DecisionPlot::new("x > 0 means class 1").points(&points, &labels).resolution(20);
/// // The "model": class 1 where the first coordinate is positive.
/// let svg = plot.to_svg(400, 400, |xy: Tensor<f64>| {
///     xy.as_slice().chunks(2).map(|p| usize::from(p[0] > 0.0)).collect()
/// });
/// assert_eq!(svg.matches("class=\"point\"").count(), 5);
/// assert_eq!(svg.matches("class=\"wrong\"").count(), 1);
/// assert!(svg.contains("4 of 5 points (80%) classified right"));
/// ```
#[derive(Clone, Debug)]
pub struct DecisionPlot {
    title: String,
    points: Vec<(f64, f64)>,
    labels: Vec<usize>,
    resolution: usize,
}

impl DecisionPlot {
    /// An empty plot with a title; the grid is 80 × 80 cells.
    pub fn new(title: impl Into<String>) -> Self {
        DecisionPlot {
            title: title.into(),
            points: Vec::new(),
            labels: Vec::new(),
            resolution: 80,
        }
    }

    /// Adds labelled points.
    ///
    /// # Panics
    /// If `points` and `labels` differ in length.
    #[track_caller]
    pub fn points(mut self, points: &[(f64, f64)], labels: &[usize]) -> Self {
        assert_eq!(
            points.len(),
            labels.len(),
            "tapegrad: DecisionPlot::points: {} points but {} labels",
            points.len(),
            labels.len()
        );
        self.points.extend_from_slice(points);
        self.labels.extend_from_slice(labels);
        self
    }

    /// Adds labelled points from a `[N, 2]` features tensor (a [`Dataset`](crate::data::Dataset)'s
    /// `features` and `labels()`).
    ///
    /// # Panics
    /// If `features` is not `[N, 2]` or `labels` does not have `N` entries.
    ///
    /// ```
    /// use tapegrad::{data, viz::DecisionPlot};
    /// let ds = data::xor::<f32>();
    /// let plot = DecisionPlot::new("xor").points_from(&ds.features, &ds.labels());
    /// let svg = plot.to_svg(300, 300, |grid: tapegrad::Tensor<f32>| vec![0; grid.shape()[0]]);
    /// assert_eq!(svg.matches("class=\"wrong\"").count(), 2); // class 0 everywhere
    /// ```
    #[track_caller]
    pub fn points_from<T: Float>(self, features: &Tensor<T>, labels: &[usize]) -> Self {
        let shape = features.shape();
        assert!(
            shape.len() == 2 && shape[1] == 2,
            "tapegrad: DecisionPlot::points_from: features must be [N, 2], got {shape:?}"
        );
        let points: Vec<(f64, f64)> = features
            .as_slice()
            .chunks_exact(2)
            .map(|p| (p[0].to_f64(), p[1].to_f64()))
            .collect();
        self.points(&points, labels)
    }

    /// Cells per side of the grid (at least 2; default 80).
    pub fn resolution(mut self, cells: usize) -> Self {
        self.resolution = cells.max(2);
        self
    }

    /// The plotted area: the points' bounding box widened by 10% on each side.
    fn bounds(&self) -> (f64, f64, f64, f64) {
        let finite = self.points.iter().filter(|p| p.0.is_finite() && p.1.is_finite());
        let (mut x0, mut x1, mut y0, mut y1) =
            (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
        for p in finite {
            (x0, x1, y0, y1) = (x0.min(p.0), x1.max(p.0), y0.min(p.1), y1.max(p.1));
        }
        if x0 > x1 {
            return (-1.0, 1.0, -1.0, 1.0);
        }
        let pad = |lo: f64, hi: f64| {
            let m = if hi > lo { 0.1 * (hi - lo) } else { 0.5 };
            (lo - m, hi + m)
        };
        let ((x0, x1), (y0, y1)) = (pad(x0, x1), pad(y0, y1));
        (x0, x1, y0, y1)
    }

    /// The picture, `width` × `height` pixels. `classify` gets a `[M, 2]` tensor of points and
    /// returns one class per row.
    ///
    /// # Panics
    /// If `classify` returns the wrong number of classes.
    #[track_caller]
    pub fn to_svg<T: Float>(
        &self,
        width: usize,
        height: usize,
        mut classify: impl FnMut(Tensor<T>) -> Vec<usize>,
    ) -> String {
        let (w, h) = (width.max(100) as f64, height.max(100) as f64);
        let (left, right, top, bottom) = (60.0, 20.0, 30.0, 40.0);
        let (pw, ph) = (w - left - right, h - top - bottom);
        let (x0, x1, y0, y1) = self.bounds();
        let n = self.resolution;
        let (cw, ch) = ((x1 - x0) / n as f64, (y1 - y0) / n as f64);
        let grid: Vec<T> = (0..n)
            .flat_map(|row| (0..n).map(move |col| (col, row)))
            .flat_map(|(col, row)| {
                let x = x0 + (col as f64 + 0.5) * cw;
                let y = y1 - (row as f64 + 0.5) * ch;
                [T::from_f64(x), T::from_f64(y)]
            })
            .collect();
        let regions = classify(Tensor::from_vec(grid, &[n * n, 2]));
        assert_eq!(
            regions.len(),
            n * n,
            "tapegrad: DecisionPlot::to_svg: the classifier returned {} classes for {} grid points",
            regions.len(),
            n * n
        );
        let predicted = if self.points.is_empty() {
            Vec::new()
        } else {
            let xy = self
                .points
                .iter()
                .flat_map(|&(x, y)| [T::from_f64(x), T::from_f64(y)])
                .collect();
            classify(Tensor::from_vec(xy, &[self.points.len(), 2]))
        };
        assert_eq!(
            predicted.len(),
            self.points.len(),
            "tapegrad: DecisionPlot::to_svg: the classifier returned {} classes for {} points",
            predicted.len(),
            self.points.len()
        );
        let colour = |class: usize| COLOURS[class % COLOURS.len()];
        let sx = |x: f64| left + (x - x0) / (x1 - x0) * pw;
        let sy = |y: f64| top + (y1 - y) / (y1 - y0) * ph;

        let mut out = format::svg_start(w, h, &self.title);
        // One rectangle per run of equal cells in a row keeps the file small.
        let (cell_w, cell_h) = (pw / n as f64, ph / n as f64);
        for (row, classes) in regions.chunks_exact(n).enumerate() {
            let mut start = 0;
            for end in 1..=n {
                if end == n || classes[end] != classes[start] {
                    let _ = writeln!(
                        out,
                        "<rect class=\"region\" data-class=\"{}\" x=\"{:.2}\" y=\"{:.2}\" width=\"{:.2}\" \
                         height=\"{:.2}\" fill=\"{}\" fill-opacity=\"0.25\"/>",
                        classes[start],
                        left + start as f64 * cell_w,
                        top + row as f64 * cell_h,
                        (end - start) as f64 * cell_w,
                        cell_h,
                        colour(classes[start])
                    );
                    start = end;
                }
            }
        }
        format::svg_frame(&mut out, (left, top, pw, ph), (x0, x1), (y0, y1));
        let mut right_count = 0;
        for ((&(x, y), &label), &guess) in self.points.iter().zip(&self.labels).zip(&predicted) {
            if !(x.is_finite() && y.is_finite()) {
                continue;
            }
            let (cx, cy) = (sx(x), sy(y));
            if guess == label {
                right_count += 1;
            } else {
                let _ = writeln!(
                    out,
                    "<circle class=\"wrong\" cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"6\" fill=\"none\" \
                     stroke=\"black\" stroke-width=\"2\"/>"
                );
            }
            let _ = writeln!(
                out,
                "<circle class=\"point\" data-class=\"{label}\" cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"3.5\" \
                 fill=\"{}\" stroke=\"white\" stroke-width=\"0.8\"/>",
                colour(label)
            );
        }
        let total = self
            .points
            .iter()
            .filter(|p| p.0.is_finite() && p.1.is_finite())
            .count();
        if total > 0 {
            let _ = writeln!(
                out,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{right_count} of {total} points ({:.0}%) \
                 classified right</text>",
                left + pw,
                h - 6.0,
                100.0 * right_count as f64 / total as f64
            );
        }
        out.push_str("</svg>\n");
        out
    }

    /// Writes [`DecisionPlot::to_svg`] to `path`.
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be written.
    ///
    /// ```
    /// use tapegrad::{Tensor, viz::DecisionPlot};
    /// let path = std::env::temp_dir().join("tapegrad_decision_plot_doc.svg");
    /// DecisionPlot::new("halves")
    ///     .points(&[(0.0, 0.0), (1.0, 1.0)], &[0, 1])
    ///     .write_svg(&path, 300, 300, |xy: Tensor<f64>| {
    ///         xy.as_slice().chunks(2).map(|p| usize::from(p[0] + p[1] > 1.0)).collect()
    ///     })
    ///     .unwrap();
    /// assert!(std::fs::read_to_string(&path).unwrap().contains("class=\"region\""));
    /// ```
    pub fn write_svg<T: Float>(
        &self,
        path: impl AsRef<Path>,
        width: usize,
        height: usize,
        classify: impl FnMut(Tensor<T>) -> Vec<usize>,
    ) -> Result<(), Error> {
        let path = path.as_ref();
        crate::io::write_atomic(path, self.to_svg(width, height, classify).as_ref())
    }
}
