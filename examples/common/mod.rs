//! Command-line options shared by the examples (not an example itself: cargo only builds
//! `examples/*.rs` and `examples/*/main.rs`).

use std::path::PathBuf;

/// The directory given with `--out DIR`, or the current directory: where pictures are written.
pub fn out_dir() -> PathBuf {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--out")
        .and_then(|i| args.get(i + 1))
        .map_or_else(|| PathBuf::from("."), PathBuf::from)
}

/// Draws a trained 2-D classifier's decision regions with its data (`viz::DecisionPlot`), asking
/// the model for the class of every grid cell without recording, and writes the SVG to `path`.
#[allow(dead_code)] // used by the classification examples only
pub fn write_decision_regions(
    title: &str,
    data: &tapegrad::data::Dataset<f32>,
    model: &impl tapegrad::nn::Forward<f32>,
    path: &std::path::Path,
) -> Result<(), tapegrad::Error> {
    use tapegrad::{Tape, Tensor, train::predicted_classes};
    tapegrad::viz::DecisionPlot::new(title)
        .points_from(&data.features, &data.labels())
        .write_svg(path, 500, 500, |grid: Tensor<f32>| {
            let tape = Tape::new();
            tape.no_grad(|| predicted_classes(&model.forward(&tape, tape.constant(grid)).value()))
        })?;
    println!("decision regions: {}", path.display());
    Ok(())
}
