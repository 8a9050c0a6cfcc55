//! Masks: masked_fill, where_cond, tril, triu, and comparisons of vars giving masks.
