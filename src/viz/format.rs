//! Short, readable text for numbers and tensors in pictures and traces.

use crate::{Float, Tensor};

/// A number with four significant digits, trailing zeros trimmed: `0.7071`, `-4`, `1.5e-7`.
pub(crate) fn number(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let magnitude = x.abs();
    if (1e-3..1e5).contains(&magnitude) {
        let decimals = (3 - magnitude.log10().floor() as i32).max(0) as usize;
        trim_zeros(format!("{x:.decimals$}"))
    } else {
        let s = format!("{x:.3e}");
        match s.split_once('e') {
            Some((mantissa, exponent)) => format!("{}e{exponent}", trim_zeros(mantissa.to_string())),
            None => s,
        }
    }
}

fn trim_zeros(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A rank-0 tensor as its number; otherwise its shape and its first `max` elements:
/// `[2, 3] [0.1, 0.2, 0.3, …]`.
pub(crate) fn tensor<T: Float>(t: &Tensor<T>, max: usize) -> String {
    if t.rank() == 0 {
        return number(t.item().to_f64());
    }
    let values = t.as_slice();
    let shown: Vec<String> = values.iter().take(max).map(|v| number(v.to_f64())).collect();
    let more = if values.len() > max { ", …" } else { "" };
    format!("{:?} [{}{more}]", t.shape(), shown.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_have_four_significant_digits() {
        assert_eq!(number(0.123456), "0.1235");
        assert_eq!(number(-4.0), "-4");
        assert_eq!(number(1234.5678), "1235");
        assert_eq!(number(0.0), "0");
        assert_eq!(number(1.5e-7), "1.5e-7");
        assert_eq!(number(2.0e9), "2e9");
    }

    #[test]
    fn tensors_show_shape_and_first_elements() {
        let t = Tensor::<f32>::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
        assert_eq!(tensor(&t, 4), "[2, 3] [1, 2, 3, 4, …]");
        assert_eq!(tensor(&t, 6), "[2, 3] [1, 2, 3, 4, 5, 6]");
        assert_eq!(tensor(&Tensor::<f64>::scalar(0.25), 4), "0.25");
    }
}
