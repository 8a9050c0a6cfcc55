//! Masks and indices: comparisons of float tensors giving `Tensor<bool>`, logical operations,
//! counts, conversions, `arange` and the indices of extrema.
