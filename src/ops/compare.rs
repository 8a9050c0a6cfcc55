//! Comparisons of vars (masks of their values) and the indices of extrema along an axis.
