//! Exponentials without branches or library calls, for f32 kernels that the compiler vectorises
//! (gelu's density, the sigmoid family, logsumexp): a call to the C library's `expf` per
//! element keeps a loop scalar, 1.4 ns per element on the Xeon of BENCHMARKS.md.

use crate::Float;

/// `e^x`, vectorisable in f32 ([`exp_f32`]) and the library's `exp` in f64 (whose kernels stay
/// as accurate as the gradient checks need).
#[inline(always)]
pub(crate) fn exp_vec<T: Float>(x: T) -> T {
    if std::mem::size_of::<T>() == 4 {
        T::from_f64(f64::from(exp_f32(x.to_f64() as f32)))
    } else {
        x.exp()
    }
}

/// `e^x` in f32 for every `x`, within about 1 ulp of the exact value: 0 below -104 (where the
/// exact value rounds to 0), +inf above ln(f32::MAX), NaN for NaN. The clamps are selects that
/// keep a NaN (a `min` would turn it into the bound).
#[inline(always)]
pub(crate) fn exp_f32(x: f32) -> f32 {
    // e^89 overflows to +inf in the last product, as it should; the clamp keeps the reduction
    // below finite for +inf.
    let x = if x > 89.0 { 89.0 } else { x };
    exp_split_f32(x, 0.0)
}

/// `e^(hi + lo)` in f32 for `hi ≤ 0` and `|lo|` small, without branches or library calls, and
/// without rounding `hi + lo` first (the caller splits `-x²/2` exactly): Cody–Waite reduction
/// `hi + lo = n ln2 + r` with `|r| ≤ ln2/2`, the degree-7 Taylor polynomial of `e^r` (truncation
/// below 0.1 ulp) and `2^n` built from exponent bits in two normal factors, so that subnormal
/// results round once. Below `hi = -104` the result is 0 anyway.
#[inline(always)]
pub(crate) fn exp_split_f32(hi: f32, lo: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    // ln 2 in two parts: `n * LN2_HI` is exact for the |n| ≤ 150 that occur.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5·2²³ rounds to an integer; the integer is then in the low bits.
    const ROUND: f32 = 12_582_912.0;
    // A select rather than `max`, which would turn a NaN into the bound.
    let hi = if hi < -104.0 { -104.0 } else { hi };
    let shifted = (hi + lo) * LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = ((hi - n * LN2_HI) - n * LN2_LO) + lo;
    let p = 1.0 / 5040.0;
    let p = p * r + 1.0 / 720.0;
    let p = p * r + 1.0 / 120.0;
    let p = p * r + 1.0 / 24.0;
    let p = p * r + 1.0 / 6.0;
    let p = p * r + 0.5;
    let p = p * r + 1.0;
    let p = p * r + 1.0;
    let n_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits()) as i32;
    let half = n_bits >> 1;
    let power = |k: i32| f32::from_bits(((k + 127) as u32) << 23);
    p * power(half) * power(n_bits - half)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in units in the last place between an f32 and the exact (f64) value.
    fn ulps(got: f32, exact: f64) -> f64 {
        let ulp = f64::from(f32::EPSILON) * exact.abs().max(f64::from(f32::MIN_POSITIVE));
        (f64::from(got) - exact).abs() / ulp
    }

    #[test]
    fn exp_f32_is_within_an_ulp_and_right_at_the_edges() {
        let mut worst: f64 = 0.0;
        let mut x = -103.0f32;
        while x < 88.7 {
            let exact = f64::from(x).exp();
            if exact >= f64::from(f32::MIN_POSITIVE) {
                worst = worst.max(ulps(exp_f32(x), exact));
            }
            x += 0.0137;
        }
        assert!(worst <= 1.0, "worst error {worst} ulp");
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(-200.0), 0.0);
        assert_eq!(exp_f32(89.0), f32::INFINITY);
        assert_eq!(exp_f32(f32::INFINITY), f32::INFINITY);
        assert!(exp_f32(f32::NAN).is_nan());
        // The subnormal range rounds once.
        for x in [-88.0f32, -95.5, -100.0, -103.2] {
            let exact = f64::from(x).exp();
            assert!((f64::from(exp_f32(x)) - exact).abs() <= 1.5e-45, "{x}");
        }
    }
}
