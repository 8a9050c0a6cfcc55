//! [`PathPlot`]: paths through a plane (an optimizer's iterates, say) as an SVG picture.

use std::fmt::Write as _;
use std::path::Path;

use super::format;
use super::line_plot::{COLOURS, xml_escape};
use crate::Error;

/// Paths of `(x, y)` points drawn as SVG polylines, each starting with a dot, plus labelled
/// marker points (a minimum, say). Axes span every finite point; the rest are left out.
///
/// ```
/// use tapegrad::viz::PathPlot;
///
/// let spiral: Vec<(f64, f64)> = (0..50).map(|i| {
///     let t = i as f64 * 0.3;
///     (t.cos() / (1.0 + t), t.sin() / (1.0 + t))
/// }).collect();
/// let svg = PathPlot::new("iterates").path("gd", &spiral).mark("minimum", (0.0, 0.0)).to_svg(400, 400);
/// assert_eq!(svg.matches("<polyline").count(), 1);
/// assert!(svg.contains(">minimum</text>"));
/// ```
#[derive(Clone, Debug)]
pub struct PathPlot {
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

    /// The picture, `width` × `height` pixels.
    pub fn to_svg(&self, width: usize, height: usize) -> String {
        let (w, h) = (width.max(100) as f64, height.max(100) as f64);
        let (left, right, top, bottom) = (60.0, 20.0, 30.0, 40.0);
        let (pw, ph) = (w - left - right, h - top - bottom);
        let finite = |p: &(f64, f64)| p.0.is_finite() && p.1.is_finite();
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
        let sx = |x: f64| left + (x - x0) / (x1 - x0) * pw;
        let sy = |y: f64| top + (y1 - y) / (y1 - y0) * ph;
        let mut out = format::svg_start(w, h, &self.title);
        format::svg_frame(&mut out, (left, top, pw, ph), (x0, x1), (y0, y1));
        for (k, (name, points)) in self.paths.iter().enumerate() {
            let colour = COLOURS[k % COLOURS.len()];
            let shown: Vec<String> = points
                .iter()
                .filter(|p| finite(p))
                .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
                .collect();
            let _ = writeln!(
                out,
                "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.2\"/>",
                shown.join(" ")
            );
            if let Some(&(x, y)) = points.iter().find(|p| finite(p)) {
                let _ = writeln!(
                    out,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{colour}\"/>",
                    sx(x),
                    sy(y)
                );
            }
            let _ = writeln!(
                out,
                "<text x=\"{}\" y=\"{}\" fill=\"{colour}\" text-anchor=\"end\">{}</text>",
                left + pw - 4.0,
                top + 14.0 + 16.0 * k as f64,
                xml_escape(name)
            );
        }
        for (name, p) in self.marks.iter().filter(|(_, p)| finite(p)) {
            let (x, y) = (sx(p.0), sy(p.1));
            let _ = writeln!(
                out,
                "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"4\" fill=\"none\" stroke=\"black\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                x + 6.0,
                y - 6.0,
                xml_escape(name)
            );
        }
        out.push_str("</svg>\n");
        out
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
    /// assert!(std::fs::read_to_string(&path).unwrap().contains("<polyline"));
    /// ```
    pub fn write_svg(&self, path: impl AsRef<Path>, width: usize, height: usize) -> Result<(), Error> {
        let path = path.as_ref();
        crate::io::write_atomic(path, self.to_svg(width, height).as_ref())
    }
}
