// A misspelt field attribute.
use tapegrad::nn::{Linear, Module};

#[derive(Module)]
struct Net {
    layer: Linear<f32>,
    #[module(skipp)]
    hidden_size: usize,
}

fn main() {}
