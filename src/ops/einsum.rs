//! Einstein summation, lowered to permutes, reshapes and batched matrix products.
