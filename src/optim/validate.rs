//! Checks of hyper-parameters. A bad value panics at construction with a message naming the
//! optimizer (or schedule), the field and the value, at the caller's line.

/// Panics with `tapegrad: {owner}: invalid {field} = {value}: {rule}` unless `ok`.
#[track_caller]
pub(crate) fn check(owner: &str, field: &str, value: impl std::fmt::Display, ok: bool, rule: &str) {
    if !ok {
        panic!("tapegrad: {owner}: invalid {field} = {value}: {rule}");
    }
}

/// A finite number `>= 0` (learning rates, weight decays, momenta).
#[track_caller]
pub(crate) fn non_negative(owner: &str, field: &str, value: f64) {
    check(
        owner,
        field,
        value,
        value.is_finite() && value >= 0.0,
        "must be a finite number >= 0",
    );
}

/// A finite number `> 0` (eps, factors).
#[track_caller]
pub(crate) fn positive(owner: &str, field: &str, value: f64) {
    check(
        owner,
        field,
        value,
        value.is_finite() && value > 0.0,
        "must be a finite number > 0",
    );
}

/// A number in `[0, 1)` (betas, averaging constants).
#[track_caller]
pub(crate) fn unit_interval_open(owner: &str, field: &str, value: f64) {
    check(
        owner,
        field,
        value,
        (0.0..1.0).contains(&value),
        "must be in [0, 1)",
    );
}

/// A number in `[0, 1]`.
#[track_caller]
pub(crate) fn unit_interval(owner: &str, field: &str, value: f64) {
    check(
        owner,
        field,
        value,
        (0.0..=1.0).contains(&value),
        "must be in [0, 1]",
    );
}
