//! [`Error`]: what fallible operations (data input, `try_` constructors) return.

use std::fmt;

/// An error from a fallible tapegrad operation.
///
/// Shape and argument mistakes in ordinary maths panic with a message naming the operation, the
/// shapes and the caller's line; functions that take outside input (files, user data) return
/// this error instead.
///
/// ```
/// use tapegrad::{Error, Tensor};
/// let err = Tensor::<f32>::try_from_vec(vec![1.0; 5], &[2, 3]).unwrap_err();
/// assert!(matches!(err, Error::ShapeMismatch { op: "Tensor::from_vec", .. }));
/// assert!(err.to_string().contains("5 values cannot fill shape [2, 3]"));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Data does not fit the shape it was given.
    ShapeMismatch {
        /// The operation that rejected the data.
        op: &'static str,
        /// What did not fit, with the sizes involved.
        detail: String,
    },
    /// Reading or writing a file failed.
    Io {
        /// The file involved.
        path: std::path::PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A checkpoint file (`tapegrad::io`) is not what it should be: truncated or corrupted, or
    /// its tensors do not fit the model (missing or unexpected names, other shapes, a dtype that
    /// is not floating point). A missing or unreadable file is [`Error::Io`] instead.
    Checkpoint {
        /// The file involved.
        path: std::path::PathBuf,
        /// What is wrong, naming the tensors, shapes or bytes involved.
        detail: String,
    },
    /// Input data is malformed (bad number, wrong magic, truncated record, ...).
    InvalidData {
        /// Where the problem is (file, line, field) and what is wrong.
        detail: String,
    },
    /// A NaN or an infinity where the caller asked for finite numbers (PyTorch's
    /// `error_if_nonfinite`).
    NonFinite {
        /// The operation that found it.
        op: &'static str,
        /// Where it is (which parameter, which value).
        detail: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::ShapeMismatch { op, detail } => write!(f, "tapegrad: {op}: {detail}"),
            Error::Io { path, source } => write!(f, "tapegrad: {}: {source}", path.display()),
            Error::Checkpoint { path, detail } => {
                write!(f, "tapegrad: checkpoint {}: {detail}", path.display())
            }
            Error::InvalidData { detail } => write!(f, "tapegrad: invalid data: {detail}"),
            Error::NonFinite { op, detail } => write!(f, "tapegrad: {op}: {detail}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
