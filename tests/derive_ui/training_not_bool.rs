// The training flag must be a bool.
use tapegrad::nn::{Linear, Module};

#[derive(Module)]
struct Net {
    layer: Linear<f32>,
    #[module(training)]
    mode: u8,
}

fn main() {}
