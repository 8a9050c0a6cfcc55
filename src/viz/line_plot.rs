//! [`LinePlot`]: curves (loss against step, say) drawn in the terminal or written as SVG.

use std::fmt::Write as _;
#[cfg(feature = "plots")]
use std::path::Path;

use super::format;
#[cfg(feature = "plots")]
use crate::Error;

/// Marks and colours of the series, in order.
const MARKS: [char; 6] = ['*', '+', 'o', 'x', '#', '@'];

/// One or more curves `y[0], y[1], …` against their index, as text for a terminal
/// ([`LinePlot::to_text`]) or as an SVG picture drawn with the `plotters` crate
/// (`LinePlot::to_svg`, `LinePlot::write_svg`; feature `plots`, on by default). Points that are
/// not finite (or not positive, on a log scale) are left out.
///
/// ```
/// use tapegrad::viz::LinePlot;
///
/// let loss: Vec<f64> = (0..50).map(|i| 0.9f64.powi(i)).collect();
/// let plot = LinePlot::new("loss").log_y(true).series("gd", &loss);
/// let text = plot.to_text(40, 8);
/// assert_eq!(text.lines().count(), 8 + 3);     // title, rows, axis, legend
/// assert!(text.contains("* gd"));
/// # #[cfg(feature = "plots")]
/// assert_eq!(plot.to_svg(400, 300).matches("stroke=\"#1F77B4\"").count(), 1); // axes are black
/// ```
#[derive(Clone, Debug)]
pub struct LinePlot {
    title: String,
    log_y: bool,
    series: Vec<(String, Vec<f64>)>,
}

impl LinePlot {
    /// An empty plot with a title.
    pub fn new(title: impl Into<String>) -> Self {
        LinePlot {
            title: title.into(),
            log_y: false,
            series: Vec::new(),
        }
    }

    /// Plots y on a base-10 logarithmic scale (for losses spanning orders of magnitude).
    pub fn log_y(mut self, log_y: bool) -> Self {
        self.log_y = log_y;
        self
    }

    /// Adds a curve.
    pub fn series(mut self, name: impl Into<String>, ys: &[f64]) -> Self {
        self.series.push((name.into(), ys.to_vec()));
        self
    }

    /// The y value as plotted (its logarithm on a log scale), if it can be plotted.
    fn plotted(&self, y: f64) -> Option<f64> {
        let y = if self.log_y {
            (y > 0.0).then(|| y.log10())?
        } else {
            y
        };
        y.is_finite().then_some(y)
    }

    /// The range of the plotted y values, and the largest number of points.
    fn ranges(&self) -> (f64, f64, usize) {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for (_, ys) in &self.series {
            for y in ys.iter().filter_map(|&y| self.plotted(y)) {
                lo = lo.min(y);
                hi = hi.max(y);
            }
        }
        if lo > hi {
            (lo, hi) = (0.0, 1.0);
        } else if lo == hi {
            (lo, hi) = (lo - 0.5, hi + 0.5);
        }
        let n = self.series.iter().map(|(_, ys)| ys.len()).max().unwrap_or(0);
        (lo, hi, n)
    }

    fn label(&self, plotted: f64) -> String {
        format::number(if self.log_y { 10f64.powf(plotted) } else { plotted })
    }

    /// The plot as text: a title line, `height` rows of `width` columns with the y range on the
    /// left, an x axis line, and a legend.
    pub fn to_text(&self, width: usize, height: usize) -> String {
        let (width, height) = (width.max(2), height.max(2));
        let (lo, hi, n) = self.ranges();
        let mut grid = vec![vec![' '; width]; height];
        for (k, (_, ys)) in self.series.iter().enumerate() {
            for (i, y) in ys.iter().enumerate() {
                let Some(y) = self.plotted(*y) else { continue };
                let col = if n > 1 { i * (width - 1) / (n - 1) } else { 0 };
                let row = ((hi - y) / (hi - lo) * (height - 1) as f64).round() as usize;
                grid[row.min(height - 1)][col] = MARKS[k % MARKS.len()];
            }
        }
        let (top, bottom) = (self.label(hi), self.label(lo));
        let margin = top.len().max(bottom.len());
        let scale = if self.log_y { " (log scale)" } else { "" };
        let mut out = format!("{}{scale}\n", self.title);
        for (r, row) in grid.iter().enumerate() {
            let label = match r {
                0 => top.as_str(),
                r if r == height - 1 => bottom.as_str(),
                _ => "",
            };
            let line: String = row.iter().collect();
            let _ = writeln!(out, "{label:>margin$} |{}", line.trim_end());
        }
        let last = n.saturating_sub(1);
        let axis = format!("0{last:>w$}", w = width - 1);
        let _ = writeln!(out, "{:>margin$} +{axis}", "");
        let legend: Vec<String> = self
            .series
            .iter()
            .enumerate()
            .map(|(k, (name, _))| format!("{} {name}", MARKS[k % MARKS.len()]))
            .collect();
        let _ = writeln!(out, "{:>margin$}  {}", "", legend.join("   "));
        out
    }

    /// The plot as an SVG picture of `width` × `height` pixels, drawn with plotters: the title,
    /// ticked axes (y in the data's units, x the point index), one polyline per series and a
    /// legend.
    #[cfg(feature = "plots")]
    pub fn to_svg(&self, width: usize, height: usize) -> String {
        use plotters::prelude::*;

        use super::chart;

        let (lo, hi, n) = self.ranges();
        let last = n.saturating_sub(1).max(1) as f64;
        let title = if self.log_y {
            format!("{} (log scale)", self.title)
        } else {
            self.title.clone()
        };
        let log_y = self.log_y;
        chart::svg(width.max(100) as u32, height.max(80) as u32, |root| {
            let mut c = chart::chart(root, &title, 0.0..last, lo..hi, |v| {
                if log_y { 10f64.powf(v) } else { v }
            });
            for (k, (name, ys)) in self.series.iter().enumerate() {
                let points: Vec<(f64, f64)> = ys
                    .iter()
                    .enumerate()
                    .filter_map(|(i, &y)| Some((i as f64, self.plotted(y)?)))
                    .collect();
                let style = chart::colour(k).stroke_width(2);
                chart::drawn(c.draw_series(LineSeries::new(points, style)))
                    .label(name.as_str())
                    .legend(chart::legend_mark(k));
            }
            if !self.series.is_empty() {
                chart::legend(&mut c);
            }
        })
    }

    /// Writes [`LinePlot::to_svg`] to `path`.
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be written.
    ///
    /// ```
    /// use tapegrad::viz::LinePlot;
    /// let path = std::env::temp_dir().join("tapegrad_line_plot_doc.svg");
    /// LinePlot::new("y = i²").series("y", &[0.0, 1.0, 4.0, 9.0]).write_svg(&path, 400, 300).unwrap();
    /// assert!(std::fs::read_to_string(&path).unwrap().starts_with("<svg"));
    /// ```
    #[cfg(feature = "plots")]
    pub fn write_svg(&self, path: impl AsRef<Path>, width: usize, height: usize) -> Result<(), Error> {
        let path = path.as_ref();
        crate::io::write_atomic(path, self.to_svg(width, height).as_ref())
    }
}
