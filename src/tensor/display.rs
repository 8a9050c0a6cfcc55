//! `Display` and `Debug` for tensors, laid out like NumPy: nested brackets, aligned columns,
//! trailing zeros trimmed, and `...` summaries beyond 1000 elements.

use std::fmt;

use super::Tensor;
use crate::{Element, Float};

/// NumPy's defaults: 8 significant decimals, summarise above 1000 elements keeping 3 per edge.
const PRECISION: usize = 8;
const SUMMARY_THRESHOLD: usize = 1000;
const EDGE_ITEMS: usize = 3;

/// Formats every element with one shared style so that columns line up.
struct ElementFormat {
    scientific: bool,
    /// Digits after the decimal point (fixed style) or in the mantissa (scientific).
    decimals: usize,
    /// Width of the part before the decimal point (fixed style) or of the whole (scientific).
    int_width: usize,
}

/// Digits after the point in `formatted` (the mantissa's, for scientific notation).
fn fraction_digits(formatted: &str) -> usize {
    let mantissa = formatted.split('e').next().unwrap_or("");
    mantissa
        .split('.')
        .nth(1)
        .map_or(0, |f| f.trim_end_matches('0').len())
}

impl ElementFormat {
    fn new<T: Float>(values: &[T]) -> Self {
        let finite: Vec<T> = values.iter().copied().filter(|v| v.is_finite()).collect();
        let max = finite.iter().fold(0.0f64, |m, v| m.max(v.to_f64().abs()));
        let min_nonzero = finite
            .iter()
            .map(|v| v.to_f64().abs())
            .filter(|v| *v != 0.0)
            .fold(f64::INFINITY, f64::min);
        // NumPy's rule for switching to scientific notation.
        let scientific = max >= 1e8 || min_nonzero < 1e-4 || max / min_nonzero > 1e3;
        // NumPy prints each value's shortest round-trip form, capped at PRECISION digits, in the
        // element type itself: 0.3f32 is "0.3", not the f64 expansion "0.30000001".
        let decimals = finite
            .iter()
            .map(|&v| {
                let (shortest, capped) = if scientific {
                    (format!("{v:e}"), format!("{:.*e}", PRECISION, v))
                } else {
                    (format!("{v}"), format!("{:.*}", PRECISION, v))
                };
                fraction_digits(&shortest).min(fraction_digits(&capped))
            })
            .max()
            .unwrap_or(0);
        let mut f = ElementFormat {
            scientific,
            decimals,
            int_width: 0,
        };
        f.int_width = values
            .iter()
            .map(|&v| f.split(&f.render(v)).0.len())
            .max()
            .unwrap_or(0);
        f
    }

    fn render<T: Float>(&self, v: T) -> String {
        if v.is_nan() {
            return "nan".into();
        }
        if !v.is_finite() {
            return if v > T::ZERO { "inf".into() } else { "-inf".into() };
        }
        if self.scientific {
            let s = format!("{:.*e}", self.decimals, v);
            let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
            let exp: i32 = exp.parse().unwrap_or(0);
            let point = if mantissa.contains('.') { "" } else { "." };
            format!(
                "{mantissa}{point}e{}{:02}",
                if exp < 0 { '-' } else { '+' },
                exp.abs()
            )
        } else {
            // NumPy trims trailing zeros but keeps the point: 2.0 prints as "2.".
            let s = format!("{:.*}", self.decimals, v);
            if s.contains('.') {
                s.trim_end_matches('0').to_string()
            } else {
                s + "."
            }
        }
    }

    /// Splits a rendered value into the part up to the decimal point and the rest.
    fn split<'s>(&self, s: &'s str) -> (&'s str, &'s str) {
        if self.scientific {
            return (s, "");
        }
        match s.find('.') {
            Some(i) => s.split_at(i + 1),
            None => (s, ""),
        }
    }

    /// Writes a value right-aligned on its decimal point, padding the fraction with spaces.
    fn write<T: Float>(&self, out: &mut String, v: T) {
        let s = self.render(v);
        let (int, frac) = self.split(&s);
        for _ in int.chars().count()..self.int_width {
            out.push(' ');
        }
        out.push_str(int);
        out.push_str(frac);
        if !self.scientific {
            for _ in frac.len()..self.decimals {
                out.push(' ');
            }
        }
    }
}

fn write_block<T: Element>(
    out: &mut String,
    data: &[T],
    shape: &[usize],
    depth: usize,
    summarise: bool,
    fmt: &dyn Fn(&mut String, T),
) {
    if shape.is_empty() {
        fmt(out, data[0]);
        return;
    }
    let n = shape[0];
    let block = data.len().checked_div(n).unwrap_or(0);
    let indices: Vec<Option<usize>> = if summarise && n > 2 * EDGE_ITEMS {
        (0..EDGE_ITEMS)
            .map(Some)
            .chain(std::iter::once(None))
            .chain((n - EDGE_ITEMS..n).map(Some))
            .collect()
    } else {
        (0..n).map(Some).collect()
    };
    out.push('[');
    for (pos, idx) in indices.iter().enumerate() {
        if pos > 0 {
            if shape.len() == 1 {
                out.push(' ');
            } else {
                // One newline per remaining axis, then indent past the open brackets.
                for _ in 0..shape.len() - 1 {
                    out.push('\n');
                }
                for _ in 0..=depth {
                    out.push(' ');
                }
            }
        }
        match idx {
            Some(i) => write_block(
                out,
                &data[i * block..(i + 1) * block],
                &shape[1..],
                depth + 1,
                summarise,
                fmt,
            ),
            None => out.push_str("..."),
        }
    }
    out.push(']');
}

/// How one element type prints: a writer of aligned elements for a whole tensor, and the text of
/// a rank-0 value.
/// Writes one element, aligned for the whole tensor.
pub type ElementWriter<'a, T> = Box<dyn Fn(&mut String, T) + 'a>;

#[doc(hidden)]
pub trait ElementDisplay: Sized {
    fn writer(values: &[Self]) -> ElementWriter<'_, Self>;
    fn scalar_text(self) -> String;
}

/// Floats: NumPy's layout, aligned on the decimal point.
pub(crate) fn float_writer<T: Float>(values: &[T]) -> ElementWriter<'_, T> {
    let fmt = ElementFormat::new(values);
    Box::new(move |out, v| fmt.write(out, v))
}

/// NumPy's str of a 0-d float array: the value's own shortest form, "2.0" or "0.3".
pub(crate) fn float_scalar_text<T: Float>(v: T) -> String {
    format!("{v:?}")
}

/// Right-aligns `text` in `width` columns.
fn push_right_aligned(out: &mut String, text: &str, width: usize) {
    for _ in text.chars().count()..width {
        out.push(' ');
    }
    out.push_str(text);
}

impl ElementDisplay for bool {
    /// PyTorch's words, `True` and `False`, aligned as NumPy aligns them: `[ True False]`.
    fn writer(values: &[bool]) -> ElementWriter<'_, bool> {
        let width = if values.iter().any(|&b| !b) { 5 } else { 4 };
        Box::new(move |out, v| push_right_aligned(out, &v.scalar_text(), width))
    }
    fn scalar_text(self) -> String {
        if self { "True" } else { "False" }.to_string()
    }
}

impl ElementDisplay for usize {
    /// Integers right-aligned to the widest: `[ 3 10  7]`.
    fn writer(values: &[usize]) -> ElementWriter<'_, usize> {
        let width = values.iter().map(|v| v.to_string().len()).max().unwrap_or(1);
        Box::new(move |out, v| push_right_aligned(out, &v.to_string(), width))
    }
    fn scalar_text(self) -> String {
        self.to_string()
    }
}

impl<T: Element> Tensor<T> {
    fn numpy_string(&self) -> String {
        if self.rank() == 0 {
            return T::scalar_text(self.as_slice()[0]);
        }
        if self.numel() == 0 {
            return "[]".to_string();
        }
        let summarise = self.numel() > SUMMARY_THRESHOLD;
        let writer = T::writer(self.as_slice());
        let mut out = String::new();
        write_block(&mut out, self.as_slice(), self.shape(), 0, summarise, &*writer);
        out
    }
}

impl<T: Element> fmt::Display for Tensor<T> {
    /// NumPy's `str()` layout: `[[1. 2.]\n [3. 4.]]`; a scalar prints as its value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.numpy_string())
    }
}

impl<T: Element> fmt::Debug for Tensor<T> {
    /// Like `Display`, followed by shape and element type: `tensor([1. 2.], shape=[2], dtype=f32)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let body = self.numpy_string().replace('\n', "\n       ");
        write!(f, "tensor({body}, shape={:?}, dtype={})", self.shape(), T::DTYPE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_like_numpy() {
        let t = Tensor::<f64>::from_vec(vec![1., 2., 3., 4., 5., 6.], &[2, 3]);
        assert_eq!(t.to_string(), "[[1. 2. 3.]\n [4. 5. 6.]]");
        let t = Tensor::<f32>::from_vec(vec![1.5, -2.0, 10.25], &[3]);
        assert_eq!(t.to_string(), "[ 1.5  -2.   10.25]");
        // f32 values print in their own shortest form, as NumPy prints float32 arrays.
        let t = Tensor::<f32>::from_vec(vec![0.3, 1.1, 2.0], &[3]);
        assert_eq!(t.to_string(), "[0.3 1.1 2. ]");
        let t = Tensor::<f64>::from_vec(vec![1e-5, 1.0], &[2]);
        assert_eq!(t.to_string(), "[1.e-05 1.e+00]");
        assert_eq!(Tensor::<f64>::scalar(2.5).to_string(), "2.5");
        assert_eq!(Tensor::<f32>::scalar(2.0).to_string(), "2.0");
        assert_eq!(Tensor::<f32>::zeros(&[2, 0]).to_string(), "[]");
        let t = Tensor::<f64>::from_fn(&[2, 2, 2], |i| i as f64);
        assert_eq!(t.to_string(), "[[[0. 1.]\n  [2. 3.]]\n\n [[4. 5.]\n  [6. 7.]]]");
    }

    #[test]
    fn large_tensors_are_summarised() {
        let t = Tensor::<f32>::from_fn(&[2000], |i| i as f32);
        assert_eq!(
            t.to_string(),
            "[0.000e+00 1.000e+00 2.000e+00 ... 1.997e+03 1.998e+03 1.999e+03]"
        );
    }

    #[test]
    fn masks_and_indices_print_like_pytorch_words_in_numpy_layout() {
        let m = Tensor::<bool>::from_vec(vec![true, false, true, true], &[2, 2]);
        assert_eq!(m.to_string(), "[[ True False]\n [ True  True]]");
        assert_eq!(
            Tensor::<bool>::from_vec(vec![true, true], &[2]).to_string(),
            "[True True]"
        );
        assert_eq!(Tensor::<bool>::scalar(false).to_string(), "False");
        let i = Tensor::<usize>::from_vec(vec![3, 10, 7], &[3]);
        assert_eq!(i.to_string(), "[ 3 10  7]");
        assert_eq!(format!("{i:?}"), "tensor([ 3 10  7], shape=[3], dtype=usize)");
        assert_eq!(Tensor::<usize>::scalar(4).to_string(), "4");
    }

    #[test]
    fn debug_names_shape_and_type() {
        let t = Tensor::<f32>::from_vec(vec![1., 2.], &[2]);
        assert_eq!(format!("{t:?}"), "tensor([1. 2.], shape=[2], dtype=f32)");
    }
}
