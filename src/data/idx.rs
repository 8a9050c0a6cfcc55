//! IDX files, the format of MNIST and Fashion-MNIST: [`read_idx`], [`write_idx`] and
//! [`load_mnist`].
//!
//! An IDX file is a 4-byte magic number (`00 00`, an element type, the number of dimensions), each
//! dimension as a big-endian `u32`, then the elements in row-major order, big-endian. The element
//! types are [`IdxType`]: `0x08` unsigned byte, `0x09` signed byte, `0x0B` `i16`, `0x0C` `i32`,
//! `0x0D` `f32`, `0x0E` `f64`.
//!
//! Files are read whole; the size the header announces is checked against the file's length before
//! anything is decoded, so a corrupt header cannot make the reader allocate more than the file
//! holds. Gzip-compressed files (`.gz`, as MNIST is distributed) are recognised by their first two
//! bytes, whatever their name, and decompressed as they are read: no need to `gunzip` them first.
//!
//! ```
//! use tapegrad::data::idx::{self, IdxArray, IdxData};
//!
//! let dir = std::env::temp_dir().join(format!("tapegrad-doc-idx-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! // Two 2×2 "images" and their labels, written and read back as MNIST files.
//! let images = IdxArray::new(vec![2, 2, 2], IdxData::U8(vec![0, 255, 51, 0, 255, 255, 0, 0]))?;
//! let labels = IdxArray::new(vec![2], IdxData::U8(vec![7, 1]))?;
//! idx::write_idx(dir.join("images"), &images)?;
//! idx::write_idx(dir.join("labels"), &labels)?;
//! assert_eq!(idx::read_idx(dir.join("images"))?, images);
//!
//! let ds = idx::load_mnist::<f32>(dir.join("images"), dir.join("labels"))?;
//! assert_eq!(ds.features.shape(), &[2, 4]);                 // flattened, scaled to [0, 1]
//! assert_eq!(&ds.features.to_vec()[..4], &[0.0, 1.0, 0.2, 0.0]);
//! assert_eq!(ds.labels(), vec![7, 1]);
//! std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::path::Path;

use super::Dataset;
use crate::{Error, Float, Tensor};

/// The element type of an IDX file: the third byte of its magic number.
///
/// ```
/// use tapegrad::data::idx::IdxType;
/// assert_eq!(IdxType::from_code(0x08), Some(IdxType::U8));
/// assert_eq!(IdxType::F32.code(), 0x0D);
/// assert_eq!(IdxType::I16.size(), 2);
/// assert_eq!(IdxType::F64.to_string(), "f64 (0x0e)");
/// assert_eq!(IdxType::from_code(0x0A), None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IdxType {
    /// `0x08`: unsigned byte (MNIST's pixels and labels).
    U8,
    /// `0x09`: signed byte.
    I8,
    /// `0x0B`: big-endian `i16`.
    I16,
    /// `0x0C`: big-endian `i32`.
    I32,
    /// `0x0D`: big-endian `f32`.
    F32,
    /// `0x0E`: big-endian `f64`.
    F64,
}

impl IdxType {
    const ALL: [IdxType; 6] = [
        IdxType::U8,
        IdxType::I8,
        IdxType::I16,
        IdxType::I32,
        IdxType::F32,
        IdxType::F64,
    ];

    /// The type byte in the magic number.
    ///
    /// ```
    /// assert_eq!(tapegrad::data::idx::IdxType::I32.code(), 0x0C);
    /// ```
    pub fn code(self) -> u8 {
        match self {
            IdxType::U8 => 0x08,
            IdxType::I8 => 0x09,
            IdxType::I16 => 0x0B,
            IdxType::I32 => 0x0C,
            IdxType::F32 => 0x0D,
            IdxType::F64 => 0x0E,
        }
    }

    /// The type for a magic-number type byte, or `None` for an unknown byte.
    ///
    /// ```
    /// use tapegrad::data::idx::IdxType;
    /// assert_eq!(IdxType::from_code(0x09), Some(IdxType::I8));
    /// ```
    pub fn from_code(code: u8) -> Option<IdxType> {
        IdxType::ALL.into_iter().find(|t| t.code() == code)
    }

    /// Bytes per element.
    ///
    /// ```
    /// assert_eq!(tapegrad::data::idx::IdxType::F64.size(), 8);
    /// ```
    pub fn size(self) -> usize {
        match self {
            IdxType::U8 | IdxType::I8 => 1,
            IdxType::I16 => 2,
            IdxType::I32 | IdxType::F32 => 4,
            IdxType::F64 => 8,
        }
    }

    /// The Rust name of the element type (`"u8"`, `"i16"`, `"f32"` ...).
    ///
    /// ```
    /// assert_eq!(tapegrad::data::idx::IdxType::U8.name(), "u8");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            IdxType::U8 => "u8",
            IdxType::I8 => "i8",
            IdxType::I16 => "i16",
            IdxType::I32 => "i32",
            IdxType::F32 => "f32",
            IdxType::F64 => "f64",
        }
    }
}

impl fmt::Display for IdxType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (0x{:02x})", self.name(), self.code())
    }
}

/// The elements of an IDX array, in their file type.
///
/// ```
/// use tapegrad::data::idx::{IdxData, IdxType};
/// let d = IdxData::I16(vec![-1, 300]);
/// assert_eq!((d.dtype(), d.len()), (IdxType::I16, 2));
/// assert_eq!(d.to_f64_vec(), vec![-1.0, 300.0]);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum IdxData {
    /// Unsigned bytes (`0x08`).
    U8(Vec<u8>),
    /// Signed bytes (`0x09`).
    I8(Vec<i8>),
    /// `i16` (`0x0B`).
    I16(Vec<i16>),
    /// `i32` (`0x0C`).
    I32(Vec<i32>),
    /// `f32` (`0x0D`).
    F32(Vec<f32>),
    /// `f64` (`0x0E`).
    F64(Vec<f64>),
}

impl IdxData {
    /// The element type.
    ///
    /// ```
    /// use tapegrad::data::idx::{IdxData, IdxType};
    /// assert_eq!(IdxData::F32(vec![]).dtype(), IdxType::F32);
    /// ```
    pub fn dtype(&self) -> IdxType {
        match self {
            IdxData::U8(_) => IdxType::U8,
            IdxData::I8(_) => IdxType::I8,
            IdxData::I16(_) => IdxType::I16,
            IdxData::I32(_) => IdxType::I32,
            IdxData::F32(_) => IdxType::F32,
            IdxData::F64(_) => IdxType::F64,
        }
    }

    /// The number of elements.
    ///
    /// ```
    /// assert_eq!(tapegrad::data::idx::IdxData::U8(vec![1, 2, 3]).len(), 3);
    /// ```
    pub fn len(&self) -> usize {
        match self {
            IdxData::U8(v) => v.len(),
            IdxData::I8(v) => v.len(),
            IdxData::I16(v) => v.len(),
            IdxData::I32(v) => v.len(),
            IdxData::F32(v) => v.len(),
            IdxData::F64(v) => v.len(),
        }
    }

    /// `true` when there are no elements.
    ///
    /// ```
    /// assert!(tapegrad::data::idx::IdxData::I8(vec![]).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every element as an `f64` (exact for every type).
    ///
    /// ```
    /// assert_eq!(tapegrad::data::idx::IdxData::I8(vec![-128, 5]).to_f64_vec(), vec![-128.0, 5.0]);
    /// ```
    pub fn to_f64_vec(&self) -> Vec<f64> {
        match self {
            IdxData::U8(v) => v.iter().map(|&x| f64::from(x)).collect(),
            IdxData::I8(v) => v.iter().map(|&x| f64::from(x)).collect(),
            IdxData::I16(v) => v.iter().map(|&x| f64::from(x)).collect(),
            IdxData::I32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            IdxData::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            IdxData::F64(v) => v.clone(),
        }
    }

    fn write_be(&self, out: &mut Vec<u8>) {
        match self {
            IdxData::U8(v) => out.extend_from_slice(v),
            IdxData::I8(v) => out.extend(v.iter().map(|x| x.to_be_bytes()[0])),
            IdxData::I16(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_be_bytes())),
            IdxData::I32(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_be_bytes())),
            IdxData::F32(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_be_bytes())),
            IdxData::F64(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_be_bytes())),
        }
    }

    /// Decodes `bytes`, whose length is a multiple of the type's size.
    fn read_be(dtype: IdxType, bytes: &[u8]) -> IdxData {
        fn be<const N: usize, V>(bytes: &[u8], f: impl Fn([u8; N]) -> V) -> Vec<V> {
            bytes
                .chunks_exact(N)
                .map(|c| {
                    let mut a = [0u8; N];
                    a.copy_from_slice(c);
                    f(a)
                })
                .collect()
        }
        match dtype {
            IdxType::U8 => IdxData::U8(bytes.to_vec()),
            IdxType::I8 => IdxData::I8(be(bytes, i8::from_be_bytes)),
            IdxType::I16 => IdxData::I16(be(bytes, i16::from_be_bytes)),
            IdxType::I32 => IdxData::I32(be(bytes, i32::from_be_bytes)),
            IdxType::F32 => IdxData::F32(be(bytes, f32::from_be_bytes)),
            IdxType::F64 => IdxData::F64(be(bytes, f64::from_be_bytes)),
        }
    }
}

/// An n-dimensional array as stored in an IDX file: its dimensions and its elements, row-major.
///
/// ```
/// use tapegrad::data::idx::{IdxArray, IdxData, IdxType};
/// let a = IdxArray::new(vec![2, 3], IdxData::I32(vec![1, 2, 3, 4, 5, 6]))?;
/// assert_eq!((a.dims(), a.dtype(), a.len()), (&[2, 3][..], IdxType::I32, 6));
/// assert_eq!(a.to_tensor::<f32>().shape(), &[2, 3]);
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct IdxArray {
    dims: Vec<usize>,
    data: IdxData,
}

impl IdxArray {
    /// An array of shape `dims` holding `data`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if the number of elements is not the product of `dims`, or the array
    /// cannot be stored as IDX (more than 255 dimensions, or a dimension above `u32::MAX`).
    ///
    /// ```
    /// use tapegrad::data::idx::{IdxArray, IdxData};
    /// let err = IdxArray::new(vec![2, 2], IdxData::U8(vec![0; 3])).unwrap_err();
    /// assert!(err.to_string().contains("3 elements cannot fill dimensions [2, 2]"));
    /// ```
    pub fn new(dims: Vec<usize>, data: IdxData) -> Result<IdxArray, Error> {
        let mismatch = |detail: String| Error::ShapeMismatch {
            op: "IdxArray::new",
            detail,
        };
        if dims.len() > 255 {
            return Err(mismatch(format!(
                "{} dimensions; IDX stores at most 255",
                dims.len()
            )));
        }
        if let Some(d) = dims.iter().find(|&&d| u32::try_from(d).is_err()) {
            return Err(mismatch(format!(
                "dimension {d} in {dims:?} does not fit the u32 that IDX stores"
            )));
        }
        let numel = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        if numel != Some(data.len()) {
            return Err(mismatch(format!(
                "{} elements cannot fill dimensions {dims:?}",
                data.len()
            )));
        }
        Ok(IdxArray { dims, data })
    }

    /// The dimensions (MNIST's training images: `[60000, 28, 28]`).
    ///
    /// ```
    /// use tapegrad::data::idx::{IdxArray, IdxData};
    /// assert_eq!(IdxArray::new(vec![3], IdxData::U8(vec![0; 3]))?.dims(), &[3]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// The elements.
    ///
    /// ```
    /// use tapegrad::data::idx::{IdxArray, IdxData};
    /// let a = IdxArray::new(vec![2], IdxData::I8(vec![-1, 1]))?;
    /// assert_eq!(a.data(), &IdxData::I8(vec![-1, 1]));
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn data(&self) -> &IdxData {
        &self.data
    }

    /// The elements, consuming the array.
    ///
    /// ```
    /// use tapegrad::data::idx::{IdxArray, IdxData};
    /// let a = IdxArray::new(vec![1], IdxData::F64(vec![0.5]))?;
    /// assert!(matches!(a.into_data(), IdxData::F64(v) if v == [0.5]));
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn into_data(self) -> IdxData {
        self.data
    }

    /// The element type.
    ///
    /// ```
    /// use tapegrad::data::idx::{IdxArray, IdxData, IdxType};
    /// assert_eq!(IdxArray::new(vec![0], IdxData::I16(vec![]))?.dtype(), IdxType::I16);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn dtype(&self) -> IdxType {
        self.data.dtype()
    }

    /// The number of elements.
    ///
    /// ```
    /// use tapegrad::data::idx::{IdxArray, IdxData};
    /// assert_eq!(IdxArray::new(vec![2, 2], IdxData::U8(vec![0; 4]))?.len(), 4);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// `true` when there are no elements.
    ///
    /// ```
    /// use tapegrad::data::idx::{IdxArray, IdxData};
    /// assert!(IdxArray::new(vec![0, 28, 28], IdxData::U8(vec![]))?.is_empty());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements as a tensor of shape [`dims`](IdxArray::dims), values unchanged (rounded to
    /// `T` where they must be).
    ///
    /// ```
    /// use tapegrad::data::idx::{IdxArray, IdxData};
    /// let a = IdxArray::new(vec![2, 1], IdxData::I16(vec![-3, 7]))?;
    /// assert_eq!(a.to_tensor::<f64>().to_vec(), vec![-3.0, 7.0]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn to_tensor<T: Float>(&self) -> Tensor<T> {
        let values = self.data.to_f64_vec().into_iter().map(T::from_f64).collect();
        Tensor::from_vec(values, &self.dims)
    }

    /// The IDX encoding: magic number, dimensions, big-endian elements.
    ///
    /// ```
    /// use tapegrad::data::idx::{IdxArray, IdxData};
    /// let a = IdxArray::new(vec![2], IdxData::I16(vec![1, -2]))?;
    /// assert_eq!(a.to_bytes(), [0, 0, 0x0B, 1, 0, 0, 0, 2, 0, 1, 0xFF, 0xFE]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + 4 * self.dims.len() + self.len() * self.dtype().size());
        // `new` checked that the rank fits a byte and each dimension a u32.
        out.extend_from_slice(&[0, 0, self.dtype().code(), self.dims.len() as u8]);
        for &d in &self.dims {
            out.extend_from_slice(&(d as u32).to_be_bytes());
        }
        self.data.write_be(&mut out);
        out
    }
}

/// Reads an IDX file, plain or gzip-compressed (recognised by its first bytes, whatever its name).
///
/// # Errors
/// [`Error::Io`] naming the path if it cannot be read; [`Error::InvalidData`] naming the file for
/// a wrong magic number (the bytes found are shown), a corrupt gzip stream, an unknown element
/// type, a file shorter or longer than its header announces (both byte counts are
/// given), or dimensions whose product overflows.
///
/// ```
/// use tapegrad::data::idx::{self, IdxArray, IdxData};
/// let path = std::env::temp_dir().join(format!("tapegrad-doc-read-idx-{}", std::process::id()));
/// let a = IdxArray::new(vec![2, 2], IdxData::F32(vec![0.5, -1.0, 2.0, 1e-3]))?;
/// idx::write_idx(&path, &a)?;
/// assert_eq!(idx::read_idx(&path)?, a);
///
/// std::fs::write(&path, [0u8, 0, 0x08, 1, 0, 0, 0, 5, 1, 2])?; // announces 5 bytes, holds 2
/// let err = idx::read_idx(&path).unwrap_err().to_string();
/// assert!(err.contains("truncated") && err.contains("needs 13 bytes") && err.contains("has 10"), "{err}");
/// std::fs::remove_file(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn read_idx(path: impl AsRef<Path>) -> Result<IdxArray, Error> {
    read_idx_limited(path, super::DEFAULT_MAX_BYTES)
}

/// [`read_idx`] reading at most `max_bytes` from the file and, for a gzip file, at most
/// `max_bytes` after decompression: a file beyond the limit (or `/dev/zero`, or a small archive
/// announcing gigabytes) is an [`Error::InvalidData`] without reading on.
///
/// # Errors
/// As [`read_idx`], and the limit.
///
/// ```
/// use tapegrad::data::idx;
/// let err = idx::read_idx_limited("/dev/zero", 1 << 20).unwrap_err().to_string();
/// assert!(err.contains("more than 1048576 bytes"), "{err}");
/// ```
pub fn read_idx_limited(path: impl AsRef<Path>, max_bytes: u64) -> Result<IdxArray, Error> {
    let path = path.as_ref();
    let bytes = super::read_file(path, max_bytes)?;
    decode(&bytes, &path.display().to_string(), max_bytes)
}

/// Decodes an IDX file held in memory; errors call it `<bytes>`.
///
/// # Errors
/// As [`read_idx`], without the I/O case.
///
/// ```
/// use tapegrad::data::idx::{self, IdxData};
/// let a = idx::parse_idx(&[0, 0, 0x09, 2, 0, 0, 0, 1, 0, 0, 0, 2, 0xFF, 3])?;
/// assert_eq!((a.dims(), a.data()), (&[1, 2][..], &IdxData::I8(vec![-1, 3])));
///
/// // The same file gzip-compressed, as MNIST is distributed:
/// use std::io::Write;
/// let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
/// gz.write_all(&[0, 0, 0x09, 2, 0, 0, 0, 1, 0, 0, 0, 2, 0xFF, 3])?;
/// assert_eq!(idx::parse_idx(&gz.finish()?)?, a);
///
/// let err = idx::parse_idx(&[0x1f, 0x8b, 8, 0]).unwrap_err().to_string();
/// assert!(err.contains("the gzip stream is corrupt"), "{err}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn parse_idx(bytes: &[u8]) -> Result<IdxArray, Error> {
    parse_idx_limited(bytes, super::DEFAULT_MAX_BYTES)
}

/// [`parse_idx`] inflating a gzip stream to at most `max_bytes`.
///
/// # Errors
/// As [`parse_idx`], and the limit.
///
/// ```
/// use std::io::Write;
/// use tapegrad::data::idx;
/// // 64 KiB of zeros after a header announcing as many bytes: compresses to a few hundred.
/// let mut plain = vec![0, 0, 0x08, 1, 0, 1, 0, 0];
/// plain.resize(8 + 65536, 0);
/// let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
/// gz.write_all(&plain)?;
/// let gz = gz.finish()?;
/// assert!(idx::parse_idx_limited(&gz, 1 << 20).is_ok());
/// let err = idx::parse_idx_limited(&gz, 1000).unwrap_err().to_string();
/// assert!(err.contains("more than the 1000"), "{err}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn parse_idx_limited(bytes: &[u8], max_bytes: u64) -> Result<IdxArray, Error> {
    decode(bytes, "<bytes>", max_bytes)
}

/// Writes `array` as an IDX file (see [`IdxArray::to_bytes`]), replacing any file at `path`.
///
/// # Errors
/// [`Error::Io`] naming the path if the file cannot be written.
///
/// ```
/// use tapegrad::data::idx::{self, IdxArray, IdxData};
/// let path = std::env::temp_dir().join(format!("tapegrad-doc-write-idx-{}", std::process::id()));
/// idx::write_idx(&path, &IdxArray::new(vec![3], IdxData::U8(vec![1, 2, 3]))?)?;
/// assert_eq!(std::fs::read(&path)?, [0, 0, 8, 1, 0, 0, 0, 3, 1, 2, 3]);
/// std::fs::remove_file(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write_idx(path: impl AsRef<Path>, array: &IdxArray) -> Result<(), Error> {
    let path = path.as_ref();
    crate::io::write_atomic(path, array.to_bytes().as_ref())
}

fn invalid(detail: String) -> Error {
    Error::InvalidData { detail }
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn decode(bytes: &[u8], source: &str, max_bytes: u64) -> Result<IdxArray, Error> {
    if bytes.starts_with(&GZIP_MAGIC) {
        return decode_gzip(bytes, source, max_bytes);
    }
    let header = read_header(bytes, source)?;
    if bytes.len() != header.total {
        return Err(size_mismatch(source, &header, bytes.len()));
    }
    let data = IdxData::read_be(header.dtype, &bytes[header.len..]);
    IdxArray::new(header.dims, data)
}

/// The first two bytes of every gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// What an IDX header announces.
struct Header {
    dtype: IdxType,
    dims: Vec<usize>,
    /// Bytes of the header itself.
    len: usize,
    /// Bytes of the whole file: header and data.
    total: usize,
}

/// Checks the magic number and reads the dimensions from the start of `bytes`, which must hold
/// the whole header (if it does not, the file is too short, and the error says so).
fn read_header(bytes: &[u8], source: &str) -> Result<Header, Error> {
    let len = bytes.len();
    if len < 4 {
        return Err(invalid(format!(
            "{source}: truncated: an IDX file starts with a 4-byte magic number, the file has {len} bytes"
        )));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(invalid(format!(
            "{source}: wrong magic number {}: an IDX file starts with 00 00, a type byte and the \
             number of dimensions (MNIST images: 00 00 08 03)",
            hex(&bytes[..4])
        )));
    }
    let Some(dtype) = IdxType::from_code(bytes[2]) else {
        let known: Vec<String> = IdxType::ALL.iter().map(|t| t.to_string()).collect();
        return Err(invalid(format!(
            "{source}: unknown element type 0x{:02x} in the magic number {}; known types: {}",
            bytes[2],
            hex(&bytes[..4]),
            known.join(", ")
        )));
    };
    let rank = usize::from(bytes[3]);
    let header = 4 + 4 * rank;
    if len < header {
        return Err(invalid(format!(
            "{source}: truncated header: {rank} dimensions need {header} header bytes, the file has {len}"
        )));
    }
    let dims: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let total = dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .and_then(|n| n.checked_mul(dtype.size()))
        .and_then(|n| n.checked_add(header));
    let Some(total) = total else {
        return Err(invalid(format!(
            "{source}: dimensions {dims:?} of {dtype} overflow: their size in bytes does not fit in usize"
        )));
    };
    Ok(Header {
        dtype,
        dims,
        len: header,
        total,
    })
}

/// The error for a file of `len` bytes whose header announces another size.
fn size_mismatch(source: &str, header: &Header, len: usize) -> Error {
    let Header {
        dtype,
        dims,
        len: header_len,
        total,
    } = header;
    let what = if len < *total {
        "truncated".to_string()
    } else {
        format!("{} unexpected bytes after the data", len - total)
    };
    invalid(format!(
        "{source}: {what}: dimensions {dims:?} of {dtype} make a file that needs {total} bytes \
         ({header_len}-byte header + {} data bytes), the file has {len}",
        total - header_len
    ))
}

/// Decodes a gzip-compressed IDX file (MNIST is distributed as `.gz`). The stream is inflated
/// only as far as the header announces, and not at all when that is beyond `max_bytes`, so a
/// corrupt header cannot make the reader hold more than the stream really contains, nor a
/// small archive inflate to gigabytes; bytes beyond are counted, not kept. Errors call the source
/// `… (after gunzip)`: their byte counts are of the decompressed data.
fn decode_gzip(compressed: &[u8], source: &str, max_bytes: u64) -> Result<IdxArray, Error> {
    use std::io::Read;
    let source = format!("{source} (after gunzip)");
    let mut stream = flate2::read::MultiGzDecoder::new(compressed);
    let corrupt = |e: std::io::Error| invalid(format!("{source}: the gzip stream is corrupt: {e}"));
    let mut plain = Vec::new();
    let mut inflate_to = |plain: &mut Vec<u8>, len: usize| -> Result<(), Error> {
        let missing = len.saturating_sub(plain.len()) as u64;
        (&mut stream)
            .take(missing)
            .read_to_end(plain)
            .map(drop)
            .map_err(corrupt)
    };
    inflate_to(&mut plain, 4)?;
    if plain.len() == 4 {
        let header_len = 4 + 4 * usize::from(plain[3]);
        inflate_to(&mut plain, header_len)?;
    }
    let header = read_header(&plain, &source)?;
    if header.total as u64 > max_bytes {
        return Err(invalid(format!(
            "{source}: the header announces {} bytes ({:?} of {}), more than the {max_bytes} this \
             read allows; nothing was inflated beyond the header (set a larger limit with \
             read_idx_limited if the file really is that large)",
            header.total, header.dims, header.dtype
        )));
    }
    inflate_to(&mut plain, header.total)?;
    if plain.len() < header.total {
        return Err(size_mismatch(&source, &header, plain.len()));
    }
    let extra = std::io::copy(&mut stream, &mut std::io::sink()).map_err(corrupt)?;
    if extra > 0 {
        return Err(size_mismatch(&source, &header, header.total + extra as usize));
    }
    let data = IdxData::read_be(header.dtype, &plain[header.len..]);
    IdxArray::new(header.dims, data)
}

/// Reads MNIST-format images and labels (MNIST, Fashion-MNIST, KMNIST, EMNIST) into a [`Dataset`]:
/// features `[N, rows · cols]` scaled from bytes to `[0, 1]`, targets `[N]` holding each label
/// as a class index (read them with [`Dataset::labels`]).
///
/// # Errors
/// Those of [`read_idx`] for either file, and [`Error::InvalidData`] (naming the files) unless the
/// images are unsigned bytes with at least two dimensions (`[N, rows, cols]`), the labels are
/// unsigned bytes with one dimension, and their counts agree.
///
/// ```
/// use tapegrad::data::idx::{self, IdxArray, IdxData};
/// let dir = std::env::temp_dir().join(format!("tapegrad-doc-mnist-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let (img, lab) = (dir.join("train-images-idx3-ubyte"), dir.join("train-labels-idx1-ubyte"));
/// idx::write_idx(&img, &IdxArray::new(vec![3, 2, 2], IdxData::U8(vec![255; 12]))?)?;
/// idx::write_idx(&lab, &IdxArray::new(vec![2], IdxData::U8(vec![4, 2]))?)?;
/// let err = idx::load_mnist::<f32>(&img, &lab).unwrap_err().to_string();
/// assert!(err.contains("3 images") && err.contains("2 labels"), "{err}");
/// std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn load_mnist<T: Float>(
    images_path: impl AsRef<Path>,
    labels_path: impl AsRef<Path>,
) -> Result<Dataset<T>, Error> {
    let (images_path, labels_path) = (images_path.as_ref(), labels_path.as_ref());
    let images = read_idx(images_path)?;
    let labels = read_idx(labels_path)?;
    mnist_dataset(
        &images,
        &labels,
        &images_path.display().to_string(),
        &labels_path.display().to_string(),
    )
}

/// [`load_mnist`] for arrays already in memory; errors call them `images` and `labels`.
///
/// # Errors
/// As [`load_mnist`], without the I/O and decoding cases.
///
/// ```
/// use tapegrad::data::idx::{self, IdxArray, IdxData};
/// let images = IdxArray::new(vec![1, 1, 2], IdxData::U8(vec![0, 255]))?;
/// let labels = IdxArray::new(vec![1], IdxData::U8(vec![3]))?;
/// let ds = idx::mnist_from_arrays::<f64>(&images, &labels)?;
/// assert_eq!((ds.features.to_vec(), ds.labels()), (vec![0.0, 1.0], vec![3]));
///
/// let floats = IdxArray::new(vec![1, 1, 2], IdxData::F32(vec![0.0, 1.0]))?;
/// let err = idx::mnist_from_arrays::<f64>(&floats, &labels).unwrap_err().to_string();
/// assert!(err.contains("images: MNIST images must be u8 (0x08), found f32 (0x0d)"), "{err}");
/// # Ok::<(), tapegrad::Error>(())
/// ```
pub fn mnist_from_arrays<T: Float>(images: &IdxArray, labels: &IdxArray) -> Result<Dataset<T>, Error> {
    mnist_dataset(images, labels, "images", "labels")
}

fn mnist_dataset<T: Float>(
    images: &IdxArray,
    labels: &IdxArray,
    images_name: &str,
    labels_name: &str,
) -> Result<Dataset<T>, Error> {
    let IdxData::U8(pixels) = images.data() else {
        return Err(invalid(format!(
            "{images_name}: MNIST images must be {}, found {}",
            IdxType::U8,
            images.dtype()
        )));
    };
    let IdxData::U8(label_bytes) = labels.data() else {
        return Err(invalid(format!(
            "{labels_name}: MNIST labels must be {}, found {}",
            IdxType::U8,
            labels.dtype()
        )));
    };
    if images.dims().len() < 2 {
        return Err(invalid(format!(
            "{images_name}: MNIST images need dimensions [count, rows, cols], found {:?}",
            images.dims()
        )));
    }
    if labels.dims().len() != 1 {
        return Err(invalid(format!(
            "{labels_name}: MNIST labels need one dimension [count], found {:?}",
            labels.dims()
        )));
    }
    let (n, n_labels) = (images.dims()[0], labels.dims()[0]);
    if n != n_labels {
        return Err(invalid(format!(
            "{images_name} holds {n} images but {labels_name} holds {n_labels} labels"
        )));
    }
    // A file of no images may still announce huge image dimensions: their product is checked.
    let Some(pixels_per_image) = images.dims()[1..]
        .iter()
        .try_fold(1usize, |p, &d| p.checked_mul(d))
        .filter(|&p| crate::tensor::shape::try_numel::<T>(&[n, p]).is_some())
    else {
        return Err(invalid(format!(
            "{images_name}: image dimensions {:?} hold more pixels than memory can address",
            &images.dims()[1..]
        )));
    };
    let scale: Vec<T> = (0..=255u8).map(|b| T::from_f64(f64::from(b) / 255.0)).collect();
    let features: Vec<T> = pixels.iter().map(|&b| scale[usize::from(b)]).collect();
    let targets: Vec<T> = label_bytes
        .iter()
        .map(|&b| T::from_usize(usize::from(b)))
        .collect();
    Ok(Dataset::new(
        Tensor::try_from_vec(features, &[n, pixels_per_image])?,
        Tensor::try_from_vec(targets, &[n])?,
    ))
}
