//! [`PathPlot`]: paths through a plane (an optimizer's iterates, say) as an SVG picture.

#[cfg(feature = "plots")]
use std::path::Path;

#[cfg(feature = "plots")]
use crate::Error;

#[cfg(feature = "plots")]
fn finite(p: &(f64, f64)) -> bool {
    p.0.is_finite() && p.1.is_finite()
}

/// Paths of `(x, y)` points drawn as SVG polylines with the `plotters` crate (feature `plots`, on
/// by default), each starting with a dot, plus labelled marker points (a minimum, say). Axes span
/// every finite point; the rest are left out.
///
/// ```
/// use tapegrad::viz::PathPlot;
///
/// let spiral: Vec<(f64, f64)> = (0..50).map(|i| {
///     let t = i as f64 * 0.3;
///     (t.cos() / (1.0 + t), t.sin() / (1.0 + t))
/// }).collect();
/// # #[cfg(feature = "plots")] {
/// let svg = PathPlot::new("iterates").path("gd", &spiral).mark("minimum", (0.0, 0.0)).to_svg(400, 400);
/// assert_eq!(svg.matches("stroke=\"#1F77B4\"").count(), 1);  // the path (axes are black)
/// assert!(svg.contains("minimum"));
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct PathPlot {
    #[cfg_attr(not(feature = "plots"), allow(dead_code))]
    title: String,
    paths: Vec<(String, Vec<(f64, f64)>)>,
    marks: Vec<(String, (f64, f64))>,
}

impl PathPlot {
    /// An empty plot with a title.
    pub fn new(title: impl Into<String>) -> Self {
        PathPlot {
            title: title.into(),
            paths: Vec::new(),
            marks: Vec::new(),
        }
    }

    /// Adds a path.
    pub fn path(mut self, name: impl Into<String>, points: &[(f64, f64)]) -> Self {
        self.paths.push((name.into(), points.to_vec()));
        self
    }

    /// Adds a labelled point.
    pub fn mark(mut self, name: impl Into<String>, point: (f64, f64)) -> Self {
        self.marks.push((name.into(), point));
        self
    }

    /// The axes' ranges: every finite point, a flat range widened by 0.5 each way.
    #[cfg(feature = "plots")]
    fn bounds(&self) -> (f64, f64, f64, f64) {
        let all = self
            .paths
            .iter()
            .flat_map(|(_, ps)| ps.iter())
            .chain(self.marks.iter().map(|(_, p)| p));
        let (mut x0, mut x1, mut y0, mut y1) =
            (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
        for p in all.filter(|p| finite(p)) {
            (x0, x1, y0, y1) = (x0.min(p.0), x1.max(p.0), y0.min(p.1), y1.max(p.1));
        }
        if x0 > x1 {
            (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
        }
        if x0 == x1 {
            (x0, x1) = (x0 - 0.5, x1 + 0.5);
        }
        if y0 == y1 {
            (y0, y1) = (y0 - 0.5, y1 + 0.5);
        }
        (x0, x1, y0, y1)
    }

    /// The picture, `width` × `height` pixels, drawn with plotters: the title, ticked axes, one
    /// polyline per path with a dot at its first point, a legend, and each mark as a black ring
    /// with its name.
    #[cfg(feature = "plots")]
    pub fn to_svg(&self, width: usize, height: usize) -> String {
        use plotters::prelude::*;

        use super::chart;

        let (x0, x1, y0, y1) = self.bounds();
        chart::svg(width.max(100) as u32, height.max(100) as u32, |root| {
            let mut c = chart::chart(root, &self.title, x0..x1, y0..y1, |v| v);
            for (k, (name, points)) in self.paths.iter().enumerate() {
                let colour = chart::colour(k);
                let shown: Vec<(f64, f64)> = points.iter().copied().filter(finite).collect();
                let start = shown.first().copied();
                chart::drawn(c.draw_series(LineSeries::new(shown, colour.stroke_width(2))))
                    .label(name.as_str())
                    .legend(chart::legend_mark(k));
                let dot = start.map(|p| Circle::new(p, 3, colour.filled()));
                chart::drawn(c.draw_series(dot));
            }
            if !self.paths.is_empty() {
                chart::legend(&mut c);
            }
            let marks = self.marks.iter().filter(|(_, p)| finite(p)).map(|(name, p)| {
                EmptyElement::at(*p)
                    + Circle::new((0, 0), 4, BLACK.stroke_width(1))
                    + Text::new(name.clone(), (6, -16), ("sans-serif", 12))
            });
            chart::drawn(c.draw_series(marks));
        })
    }

    /// Writes [`PathPlot::to_svg`] to `path`.
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be written.
    ///
    /// ```
    /// use tapegrad::viz::PathPlot;
    /// let path = std::env::temp_dir().join("tapegrad_path_plot_doc.svg");
    /// PathPlot::new("a line").path("p", &[(0.0, 0.0), (1.0, 2.0)]).write_svg(&path, 300, 300).unwrap();
    /// assert!(std::fs::read_to_string(&path).unwrap().contains("stroke=\"#1F77B4\""));
    /// ```
    #[cfg(feature = "plots")]
    pub fn write_svg(&self, path: impl AsRef<Path>, width: usize, height: usize) -> Result<(), Error> {
        let path = path.as_ref();
        crate::io::write_atomic(path, self.to_svg(width, height).as_ref())
    }
}
