//! Activation and elementwise functions of real models: log1p, expm1, square, rsqrt, silu, gelu,
//! gelu_tanh, softplus, leaky_relu, elu.
