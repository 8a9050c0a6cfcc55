//! [`OptimizerState`]: an optimizer's moments, accumulators and step counts as plain data, exact
//! to the bit (every `f32` and `f64` value is held as an `f64`), with a small binary encoding.

use crate::{Error, Float};

/// Everything an optimizer remembers between steps, for stopping and resuming a run.
///
/// The parameter values are not part of it (save them with the model). Parameters are listed in
/// group order, so the state can be loaded into an optimizer built over other [`Param`](crate::Param)
/// handles of the same shapes, for example in another process.
///
/// ```
/// use tapegrad::prelude::*;
/// use tapegrad::optim::OptimizerState;
///
/// let w = Param::new(Tensor::<f32>::from_vec(vec![1.0, -2.0], &[2]));
/// let mut opt = Adam::new(vec![w.clone()], AdamConfig::default());
/// let tape = Tape::new();
/// opt.step(&(tape.param(&w) * tape.param(&w)).sum().backward());
///
/// let bytes = opt.state().to_bytes();                 // e.g. written to a file
/// let restored = OptimizerState::from_bytes(&bytes).unwrap();
/// let mut resumed = Adam::new(vec![Param::new(w.value())], AdamConfig::default());
/// resumed.load_state(&restored).unwrap();
/// assert_eq!(resumed.state(), opt.state());
/// assert_eq!(restored.params[0].as_ref().unwrap().step, 1);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct OptimizerState {
    /// The optimizer's type name (`"Adam"`, ...); loading into another kind fails.
    pub optimizer: String,
    /// Each group's learning rate, weight decay and number of parameters.
    pub groups: Vec<GroupState>,
    /// One entry per parameter, group after group: `None` before its first step.
    pub params: Vec<Option<ParamState>>,
    /// Optimizer-wide named buffers (L-BFGS keeps its history here).
    pub extra: Vec<(String, Vec<f64>)>,
}

/// One parameter group's values in an [`OptimizerState`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GroupState {
    /// The learning rate.
    pub lr: f64,
    /// The weight decay.
    pub weight_decay: f64,
    /// How many parameters the group has.
    pub num_params: usize,
}

/// One parameter's state: its step count, its parameter's shape and named buffers (PyTorch's
/// names, e.g. `exp_avg`).
#[derive(Clone, Debug, PartialEq)]
pub struct ParamState {
    /// Steps taken with this parameter.
    pub step: u64,
    /// The shape of the parameter the state belongs to: a load refuses a state whose parameter
    /// has another shape, even with as many elements (a `[3, 2]` state for a `[2, 3]` weight).
    pub shape: Vec<usize>,
    /// Named buffers, each with one value per element of the parameter (row-major).
    pub buffers: Vec<(String, Vec<f64>)>,
}

impl ParamState {
    /// A state from a step count and slices of any float type; the shape is filled in by the
    /// optimizer's export, which knows the parameter.
    pub(crate) fn from_slices<T: Float>(step: u64, buffers: &[(&str, &[T])]) -> Self {
        ParamState {
            step,
            shape: Vec::new(),
            buffers: buffers
                .iter()
                .map(|(name, v)| (name.to_string(), v.iter().map(|x| x.to_f64()).collect()))
                .collect(),
        }
    }

    /// Checks that the buffers are exactly `names`, in any order.
    pub(crate) fn expect_names(&self, names: &[&str]) -> Result<(), String> {
        let mut have: Vec<&str> = self.buffers.iter().map(|(n, _)| n.as_str()).collect();
        let mut want = names.to_vec();
        have.sort_unstable();
        want.sort_unstable();
        if have == want {
            Ok(())
        } else {
            Err(format!("has buffers {have:?}, expected {want:?}"))
        }
    }

    /// The buffer `name` with `numel` values, converted to `T`.
    pub(crate) fn take<T: Float>(&self, name: &str, numel: usize) -> Result<Vec<T>, String> {
        self.take_checked(name, numel, false)
    }

    /// [`take`](Self::take) for a buffer that cannot be negative (a running mean of squares):
    /// a negative entry would make the next step's square root NaN.
    pub(crate) fn take_non_negative<T: Float>(&self, name: &str, numel: usize) -> Result<Vec<T>, String> {
        self.take_checked(name, numel, true)
    }

    fn take_checked<T: Float>(&self, name: &str, numel: usize, non_negative: bool) -> Result<Vec<T>, String> {
        let Some((_, values)) = self.buffers.iter().find(|(n, _)| n == name) else {
            return Err(format!("has no buffer {name:?}"));
        };
        if values.len() != numel {
            return Err(format!(
                "buffer {name:?} has {} values, the parameter {numel}",
                values.len()
            ));
        }
        // A NaN or an infinity in a saved buffer would spread to every parameter it touches on
        // the first step; a negative second moment would make its square root NaN.
        if let Some((k, v)) = values
            .iter()
            .enumerate()
            .find(|&(_, &v)| !v.is_finite() || (non_negative && v < 0.0))
        {
            let what = if v.is_finite() { "negative" } else { "not finite" };
            return Err(format!("buffer {name:?} holds {v:?} at element {k} ({what})"));
        }
        let out: Vec<T> = values.iter().map(|&x| T::from_f64(x)).collect();
        if out
            .iter()
            .zip(values)
            .any(|(a, &b)| a.to_f64().to_bits() != b.to_bits() && !b.is_nan())
        {
            return Err(format!(
                "buffer {name:?} holds values that {} cannot represent",
                T::NAME
            ));
        }
        Ok(out)
    }
}

/// A per-parameter state that can be exported.
pub(crate) trait StateIo<T: Float> {
    fn export(&self) -> ParamState;
}

/// The error for a state that does not fit.
pub(crate) fn invalid(optimizer: &str, detail: &str) -> Error {
    Error::InvalidData {
        detail: format!("{optimizer}: cannot load optimizer state: {detail}"),
    }
}

/// Format 2 added each parameter's shape.
const MAGIC: &[u8; 16] = b"tapegrad-optim\x00\x02";
const MAGIC_V1: &[u8; 16] = b"tapegrad-optim\x00\x01";

impl OptimizerState {
    /// Encodes the state as bytes (little-endian, exact): to write to a file and read back with
    /// [`OptimizerState::from_bytes`].
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        put_str(&mut out, &self.optimizer);
        put_u64(&mut out, self.groups.len() as u64);
        for g in &self.groups {
            put_f64(&mut out, g.lr);
            put_f64(&mut out, g.weight_decay);
            put_u64(&mut out, g.num_params as u64);
        }
        put_u64(&mut out, self.params.len() as u64);
        for p in &self.params {
            match p {
                None => out.push(0),
                Some(p) => {
                    out.push(1);
                    put_u64(&mut out, p.step);
                    put_u64(&mut out, p.shape.len() as u64);
                    for &d in &p.shape {
                        put_u64(&mut out, d as u64);
                    }
                    put_buffers(&mut out, &p.buffers);
                }
            }
        }
        put_buffers(&mut out, &self.extra);
        out
    }

    /// Decodes bytes from [`OptimizerState::to_bytes`].
    ///
    /// # Errors
    /// [`Error::InvalidData`] if the bytes are not such an encoding (wrong header, truncated,
    /// trailing data).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = Reader { bytes, pos: 0 };
        let magic = r.take(MAGIC.len())?;
        if magic == MAGIC_V1 {
            return Err(r.error(
                "an optimizer state of format 1, written before tapegrad kept parameter shapes; \
                 save it again with this version",
            ));
        }
        if magic != MAGIC {
            return Err(r.error("not an optimizer state (wrong header)"));
        }
        let optimizer = r.string()?;
        let groups = (0..r.count()?)
            .map(|_| {
                Ok(GroupState {
                    lr: r.f64()?,
                    weight_decay: r.f64()?,
                    num_params: r.u64()? as usize,
                })
            })
            .collect::<Result<_, Error>>()?;
        let params = (0..r.count()?)
            .map(|_| match r.take(1)?[0] {
                0 => Ok(None),
                1 => Ok(Some(ParamState {
                    step: r.u64()?,
                    shape: r.shape()?,
                    buffers: r.buffers()?,
                })),
                other => Err(r.error(&format!("bad parameter tag {other}"))),
            })
            .collect::<Result<_, Error>>()?;
        let extra = r.buffers()?;
        if r.pos != bytes.len() {
            return Err(r.error("trailing bytes"));
        }
        Ok(OptimizerState {
            optimizer,
            groups,
            params,
            extra,
        })
    }
}

fn put_u64(out: &mut Vec<u8>, x: u64) {
    out.extend_from_slice(&x.to_le_bytes());
}

fn put_f64(out: &mut Vec<u8>, x: f64) {
    out.extend_from_slice(&x.to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u64(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn put_buffers(out: &mut Vec<u8>, buffers: &[(String, Vec<f64>)]) {
    put_u64(out, buffers.len() as u64);
    for (name, values) in buffers {
        put_str(out, name);
        put_u64(out, values.len() as u64);
        for &v in values {
            put_f64(out, v);
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn error(&self, what: &str) -> Error {
        Error::InvalidData {
            detail: format!("optimizer state, byte {}: {what}", self.pos),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        match self.pos.checked_add(n).filter(|&end| end <= self.bytes.len()) {
            Some(end) => {
                let out = &self.bytes[self.pos..end];
                self.pos = end;
                Ok(out)
            }
            None => Err(self.error("truncated")),
        }
    }

    fn u64(&mut self) -> Result<u64, Error> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    fn f64(&mut self) -> Result<f64, Error> {
        Ok(f64::from_bits(self.u64()?))
    }

    /// A length that must fit in the remaining bytes (each item takes at least one byte), so a
    /// corrupt count cannot make us allocate without bound.
    fn count(&mut self) -> Result<usize, Error> {
        let n = self.u64()?;
        if n > (self.bytes.len() - self.pos) as u64 {
            return Err(self.error(&format!("count {n} exceeds the remaining bytes")));
        }
        Ok(n as usize)
    }

    fn shape(&mut self) -> Result<Vec<usize>, Error> {
        (0..self.count()?)
            .map(|_| {
                let d = self.u64()?;
                usize::try_from(d).map_err(|_| self.error(&format!("dimension {d} does not fit in usize")))
            })
            .collect()
    }

    fn string(&mut self) -> Result<String, Error> {
        let n = self.count()?;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| self.error("a name is not UTF-8"))
    }

    fn buffers(&mut self) -> Result<Vec<(String, Vec<f64>)>, Error> {
        (0..self.count()?)
            .map(|_| {
                let name = self.string()?;
                let values = (0..self.count()?).map(|_| self.f64()).collect::<Result<_, _>>()?;
                Ok((name, values))
            })
            .collect()
    }
}
