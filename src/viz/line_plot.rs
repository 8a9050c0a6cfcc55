//! [`LinePlot`]: curves (loss against step, say) drawn in the terminal or written as SVG.

use std::fmt::Write as _;
use std::path::Path;

use super::format;
use crate::Error;

/// Marks and colours of the series, in order.
const MARKS: [char; 6] = ['*', '+', 'o', 'x', '#', '@'];
pub(crate) const COLOURS: [&str; 6] = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"];

/// One or more curves `y[0], y[1], …` against their index, as text for a terminal
/// ([`LinePlot::to_text`]) or as an SVG picture ([`LinePlot::to_svg`], [`LinePlot::write_svg`]).
/// Points that are not finite (or not positive, on a log scale) are left out.
///
/// ```
/// use tapegrad::viz::LinePlot;
///
/// let loss: Vec<f64> = (0..50).map(|i| 0.9f64.powi(i)).collect();
/// let plot = LinePlot::new("loss").log_y(true).series("gd", &loss);
/// let text = plot.to_text(40, 8);
/// assert_eq!(text.lines().count(), 8 + 3);     // title, rows, axis, legend
/// assert!(text.contains("* gd"));
/// assert!(plot.to_svg(400, 300).contains("<polyline"));
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

    /// The plot as an SVG picture of `width` × `height` pixels: axes with the y range and the
    /// number of points, one polyline per series, a legend.
    pub fn to_svg(&self, width: usize, height: usize) -> String {
        let (w, h) = (width.max(100) as f64, height.max(80) as f64);
        let (left, right, top, bottom) = (70.0, 20.0, 30.0, 40.0);
        let (pw, ph) = (w - left - right, h - top - bottom);
        let (lo, hi, n) = self.ranges();
        let mut out = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
             viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"12\">\n"
        );
        let _ = writeln!(out, "<rect width=\"{w}\" height=\"{h}\" fill=\"white\"/>");
        let scale = if self.log_y { " (log scale)" } else { "" };
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"18\" text-anchor=\"middle\">{}{scale}</text>",
            w / 2.0,
            xml_escape(&self.title)
        );
        let _ = writeln!(
            out,
            "<path d=\"M{left} {top} V{} H{}\" fill=\"none\" stroke=\"black\"/>",
            top + ph,
            left + pw
        );
        for (y, value) in [(top, hi), (top + ph, lo)] {
            let _ = writeln!(
                out,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
                left - 6.0,
                y + 4.0,
                self.label(value)
            );
        }
        let _ = writeln!(
            out,
            "<text x=\"{left}\" y=\"{}\">0</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            top + ph + 16.0,
            left + pw,
            top + ph + 16.0,
            n.saturating_sub(1)
        );
        for (k, (name, ys)) in self.series.iter().enumerate() {
            let colour = COLOURS[k % COLOURS.len()];
            let points: Vec<String> = ys
                .iter()
                .enumerate()
                .filter_map(|(i, &y)| {
                    let y = self.plotted(y)?;
                    let x = left
                        + if n > 1 {
                            i as f64 / (n - 1) as f64 * pw
                        } else {
                            0.0
                        };
                    Some(format!("{x:.1},{:.1}", top + (hi - y) / (hi - lo) * ph))
                })
                .collect();
            let _ = writeln!(
                out,
                "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\"/>",
                points.join(" ")
            );
            let ly = top + 14.0 + 16.0 * k as f64;
            let _ = writeln!(
                out,
                "<text x=\"{}\" y=\"{ly}\" fill=\"{colour}\" text-anchor=\"end\">{}</text>",
                left + pw - 4.0,
                xml_escape(name)
            );
        }
        out.push_str("</svg>\n");
        out
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
    pub fn write_svg(&self, path: impl AsRef<Path>, width: usize, height: usize) -> Result<(), Error> {
        let path = path.as_ref();
        crate::io::write_atomic(path, self.to_svg(width, height).as_ref())
    }
}

pub(crate) fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
