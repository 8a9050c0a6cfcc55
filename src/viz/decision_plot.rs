//! [`DecisionPlot`]: a classifier's decision regions over a plane, with the labelled points, as SVG.

#[cfg(feature = "plots")]
use std::path::Path;

#[cfg(feature = "plots")]
use crate::Error;
use crate::{Float, Tensor};

/// A 2-D classification picture, drawn as SVG with the `plotters` crate (feature `plots`, on by
/// default): the plane is cut into a grid of cells, each painted in the colour of the class the
/// model predicts at its centre, and the data points are drawn on top in the colour of their
/// label. Misclassified points get a thick black ring, so the picture shows at a glance where the
/// boundary is wrong.
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
/// # #[cfg(feature = "plots")] {
/// let svg = plot.to_svg(400, 400, |xy: Tensor<f64>| {
///     xy.as_slice().chunks(2).map(|p| usize::from(p[0] > 0.0)).collect()
/// });
/// assert_eq!(svg.matches("<circle").count(), 5 + 1);   // a dot per point, a ring per mistake
/// assert_eq!(svg.matches("fill=\"none\" stroke=\"#000000\" stroke-width=\"2\"").count(), 1);
/// assert!(svg.contains("4 of 5 points (80%) classified right"));
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct DecisionPlot {
    #[cfg_attr(not(feature = "plots"), allow(dead_code))]
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
    /// # #[cfg(feature = "plots")] {
    /// let svg = plot.to_svg(300, 300, |grid: tapegrad::Tensor<f32>| vec![0; grid.shape()[0]]);
    /// assert!(svg.contains("2 of 4 points (50%) classified right")); // class 0 everywhere
    /// # }
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
    #[cfg(feature = "plots")]
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

    /// The picture, `width` × `height` pixels, drawn with plotters: the title, ticked axes, the
    /// regions as translucent rectangles in the colour of the predicted class, each point as a dot
    /// in the colour of its label (misclassified ones inside a black ring), and the caption
    /// "k of n points (p%) classified right". `classify` gets a `[M, 2]` tensor of points and
    /// returns one class per row.
    ///
    /// # Panics
    /// If `classify` returns the wrong number of classes.
    #[track_caller]
    #[cfg(feature = "plots")]
    pub fn to_svg<T: Float>(
        &self,
        width: usize,
        height: usize,
        mut classify: impl FnMut(Tensor<T>) -> Vec<usize>,
    ) -> String {
        use plotters::prelude::*;
        use plotters::style::text_anchor::{HPos, Pos, VPos};

        use super::chart;

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
        let finite = |p: &&(f64, f64)| p.0.is_finite() && p.1.is_finite();
        let total = self.points.iter().filter(finite).count();
        let right_count = self
            .points
            .iter()
            .zip(self.labels.iter().zip(&predicted))
            .filter(|(p, (label, guess))| finite(p) && label == guess)
            .count();
        chart::svg(width.max(100) as u32, height.max(100) as u32, |root| {
            let mut c = chart::chart(root, &self.title, x0..x1, y0..y1, |v| v);
            // One rectangle per run of equal cells in a row keeps the file small.
            let mut runs = Vec::new();
            for (row, classes) in regions.chunks_exact(n).enumerate() {
                let (top, bottom) = (y1 - row as f64 * ch, y1 - (row + 1) as f64 * ch);
                let mut start = 0;
                for end in 1..=n {
                    if end == n || classes[end] != classes[start] {
                        let (left, right) = (x0 + start as f64 * cw, x0 + end as f64 * cw);
                        let fill = chart::colour(classes[start]).mix(0.25).filled();
                        runs.push(Rectangle::new([(left, top), (right, bottom)], fill));
                        start = end;
                    }
                }
            }
            chart::drawn(c.draw_series(runs));
            let shown = self.points.iter().zip(self.labels.iter().zip(&predicted));
            let shown: Vec<_> = shown.filter(|(p, _)| finite(p)).collect();
            let rings = shown
                .iter()
                .filter(|(_, (label, guess))| label != guess)
                .map(|(p, _)| Circle::new(**p, 7, BLACK.stroke_width(2)));
            chart::drawn(c.draw_series(rings));
            let dots = shown
                .iter()
                .map(|(p, (label, _))| Circle::new(**p, 4, chart::colour(**label).filled().stroke_width(1)));
            chart::drawn(c.draw_series(dots));
            if total > 0 {
                let caption = format!(
                    "{right_count} of {total} points ({:.0}%) classified right",
                    100.0 * right_count as f64 / total as f64
                );
                let (w, h) = root.dim_in_pixel();
                let style = ("sans-serif", 12).into_font().into_text_style(root);
                let style = style.pos(Pos::new(HPos::Right, VPos::Bottom));
                chart::drawn(root.draw(&Text::new(caption, (w as i32 - 8, h as i32 - 4), style)));
            }
        })
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
    /// assert!(std::fs::read_to_string(&path).unwrap().contains("opacity=\"0.25\""));
    /// ```
    #[cfg(feature = "plots")]
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
