// The derive takes structs with named fields.
use tapegrad::nn::{Linear, Module};

#[derive(Module)]
enum Net {
    Small(Linear<f32>),
    Large(Linear<f32>),
}

fn main() {}
