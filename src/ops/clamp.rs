//! Clamping and elementwise extrema: clamp, maximum, minimum.
