// A plain-data field without #[module(skip)].
use tapegrad::nn::{Linear, Module};

#[derive(Module)]
struct Net {
    layer: Linear<f32>,
    hidden_size: usize,
}

fn main() {}
