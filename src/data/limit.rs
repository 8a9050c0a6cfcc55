//! Bounded reads: every loader stops reading a file (or a reader, or a gzip stream) at a size
//! limit, so that `/dev/zero`, a runaway pipe or a small archive that inflates to gigabytes
//! cannot exhaust memory. The default, [`DEFAULT_MAX_BYTES`], is generous; loaders take a
//! smaller or larger one through their options.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::Error;

/// The default most bytes a loader reads from one file, reader or decompressed stream: 4 GiB,
/// about 85 times MNIST's largest file.
pub const DEFAULT_MAX_BYTES: u64 = 4 << 30;

/// Reads all of `path`, or fails with [`Error::InvalidData`] once more than `max_bytes` come.
pub(crate) fn read_file(path: &Path, max_bytes: u64) -> Result<Vec<u8>, Error> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    // The file's size, when it has one, sizes the buffer once (std::fs::read does the same).
    let hint = file.metadata().map(|m| m.len()).unwrap_or(0);
    if hint > max_bytes {
        return Err(too_long(&path.display().to_string(), max_bytes));
    }
    read_bounded(file, max_bytes, hint).map_err(|e| match e {
        Bounded::Io(source) => io(source),
        Bounded::TooLong => too_long(&path.display().to_string(), max_bytes),
    })
}

/// Reads `reader` to its end, or fails with [`Error::InvalidData`] naming `source` once more
/// than `max_bytes` come; I/O errors are reported with the path `source`.
pub(crate) fn read_reader(reader: impl Read, max_bytes: u64, source: &str) -> Result<Vec<u8>, Error> {
    read_bounded(reader, max_bytes, 0).map_err(|e| match e {
        Bounded::Io(e) => Error::Io {
            path: PathBuf::from(source),
            source: e,
        },
        Bounded::TooLong => too_long(source, max_bytes),
    })
}

/// The error for input beyond `max_bytes`.
pub(crate) fn too_long(source: &str, max_bytes: u64) -> Error {
    Error::InvalidData {
        detail: format!(
            "{source}: more than {max_bytes} bytes, the limit of this read (set a larger one in \
             the loader's options if the input really is that large)"
        ),
    }
}

enum Bounded {
    Io(std::io::Error),
    TooLong,
}

fn read_bounded(reader: impl Read, max_bytes: u64, hint: u64) -> Result<Vec<u8>, Bounded> {
    let mut bytes = Vec::with_capacity(usize::try_from(hint).unwrap_or(0));
    reader
        .take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(Bounded::Io)?;
    if bytes.len() as u64 > max_bytes {
        return Err(Bounded::TooLong);
    }
    Ok(bytes)
}

/// At most `max_chars` characters of `text` for an error message, with its length when cut: a
/// malformed 10 MB field must not become a 10 MB message.
pub(crate) fn excerpt(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        None => format!("{text:?}"),
        Some((end, _)) => format!("{:?}… ({} bytes in all)", &text[..end], text.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stop_at_the_limit_and_short_inputs_pass() {
        assert_eq!(read_reader(&b"abc"[..], 3, "<r>").unwrap(), b"abc");
        let err = read_reader(std::io::repeat(0), 1000, "<zeros>")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("<zeros>") && err.contains("more than 1000 bytes"),
            "{err}"
        );
        assert_eq!(excerpt("short", 10), "\"short\"");
        let long = "x".repeat(1000);
        let cut = excerpt(&long, 20);
        assert!(cut.len() < 60 && cut.contains("1000 bytes in all"), "{cut}");
    }
}
