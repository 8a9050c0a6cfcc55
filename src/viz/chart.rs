//! The SVG side of the plots, drawn with the `plotters` crate: one chart layout shared by
//! [`LinePlot`](super::LinePlot), [`PathPlot`](super::PathPlot) and
//! [`DecisionPlot`](super::DecisionPlot).

use std::ops::Range;

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::format;

/// The colours of series (and classes), in order.
pub(crate) const COLOURS: [RGBColor; 6] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
];

/// The `k`-th colour, cycling.
pub(crate) fn colour(k: usize) -> RGBColor {
    COLOURS[k % COLOURS.len()]
}

pub(crate) type Root<'a> = DrawingArea<SVGBackend<'a>, Shift>;
pub(crate) type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Drawing into a `String` cannot fail; plotters' errors only come from real files.
pub(crate) fn drawn<T, E: std::fmt::Debug>(result: Result<T, E>) -> T {
    result.unwrap_or_else(|e| panic!("tapegrad: drawing an SVG into memory failed: {e:?}"))
}

/// An SVG picture of `width` × `height` pixels on a white background; `draw` fills it in.
pub(crate) fn svg(width: u32, height: u32, draw: impl FnOnce(&Root<'_>)) -> String {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (width, height)).into_drawing_area();
        drawn(root.fill(&WHITE));
        draw(&root);
        drawn(root.present());
    }
    out
}

/// A titled chart over `x` × `y` with ticked axes (labelled with [`format::number`] of
/// `y_label(value)` on the y axis) and no grid lines.
pub(crate) fn chart<'a, 'b>(
    root: &'a Root<'b>,
    title: &str,
    x: Range<f64>,
    y: Range<f64>,
    y_label: impl Fn(f64) -> f64,
) -> Chart<'a, 'b> {
    let mut chart = drawn(
        ChartBuilder::on(root)
            .caption(title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(x, y),
    );
    drawn(
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(6)
            .y_labels(6)
            .x_label_formatter(&|v| format::number(*v))
            .y_label_formatter(&|v| format::number(y_label(*v)))
            .draw(),
    );
    chart
}

/// A legend in the upper right corner, for series drawn with a `label`.
pub(crate) fn legend<'a, 'b: 'a>(chart: &mut Chart<'a, 'b>) {
    drawn(
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw(),
    );
}

/// The legend mark of the `k`-th series: a filled square (not a line, so that every polyline in
/// the picture is a series).
pub(crate) fn legend_mark(k: usize) -> impl Fn((i32, i32)) -> Rectangle<(i32, i32)> {
    move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], colour(k).filled())
}
