//! Numeric tables from CSV text: [`read_csv`] (a file), [`from_reader`] (any [`Read`]) and
//! [`parse_str`] (a string) give a [`Table`]; [`Table::to_dataset`] splits off a target column.
//!
//! The format is RFC 4180 restricted to numbers, one record per line:
//!
//! - a configurable delimiter ([`CsvOptions::delimiter`], `,` by default; `;`, `\t`, `|` ...);
//! - an optional header row whose names are kept ([`CsvOptions::has_header`], on by default);
//! - blank lines, a trailing newline, CRLF line ends, a UTF-8 byte-order mark and spaces or tabs
//!   around fields are all accepted;
//! - optional comments: with [`CsvOptions::comment`] set, the rest of a line from that character on
//!   is ignored (pandas' `comment=`);
//! - fields may be quoted (`"1.5"`, `"petal ""width"""`), which matters for header names with a
//!   delimiter inside; a quoted field cannot span lines; header names keep the spaces inside
//!   their quotes, numbers are trimmed;
//! - every data field must be a number as Rust parses it (`1`, `-2.5e-3`, `.5`, `inf`, `NaN`); an
//!   empty field or text is an error, not a missing value;
//! - except in the columns listed in [`CsvOptions::categorical`], which hold text labels: their
//!   sorted distinct values become class indices ([`Table::categories`] names them).
//!
//! Malformed input returns [`Error::InvalidData`] with the source (file name, `<string>` or
//! `<reader>`), the line (counting from 1, as editors do), the column (its 0-based index, as in
//! [`Column::Index`], and its header name) and the offending text; nothing panics on bad input.
//!
//! ```
//! use tapegrad::data::csv::{self, CsvOptions};
//!
//! let text = "x1, x2, label\n0.5, 1.0, 0\r\n\n-1.5, 2.0, 1\n";
//! let table = csv::parse_str::<f32>(text, &CsvOptions::default())?;
//! assert_eq!(table.names(), Some(&["x1".to_string(), "x2".into(), "label".into()][..]));
//! let ds = table.to_dataset("label")?;
//! assert_eq!(ds.features.shape(), &[2, 2]);
//! assert_eq!(ds.labels(), vec![0, 1]);
//!
//! let err = csv::parse_str::<f32>("a,b\n1,2\n3,x\n", &CsvOptions::default()).unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "tapegrad: invalid data: <string>: line 3, column 1 (\"b\"): cannot parse \"x\" as a number (f32)"
//! );
//! # Ok::<(), tapegrad::Error>(())
//! ```

use std::any::TypeId;
use std::borrow::Cow;
use std::fmt;
use std::io::Read;
use std::path::Path;

use super::Dataset;
use crate::{Error, Float, Tensor};

/// How [`read_csv`], [`from_reader`] and [`parse_str`] read a table.
///
/// ```
/// use tapegrad::data::csv::{self, CsvOptions};
/// let opts = CsvOptions { delimiter: ';', has_header: false, comment: Some('#'), ..CsvOptions::default() };
/// let table = csv::parse_str::<f64>("# two rows\n1;2\n3;4 # last\n", &opts)?;
/// assert_eq!(table.values().to_vec(), vec![1., 2., 3., 4.]);
/// assert_eq!(table.names(), None);
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsvOptions {
    /// The field separator (default `,`). Cannot be `"`, a line break, or the comment character.
    pub delimiter: char,
    /// `true` (the default) when the first non-blank line holds column names.
    pub has_header: bool,
    /// A character that starts a comment running to the end of the line (default: none).
    pub comment: Option<char>,
    /// Columns holding text labels (iris's `"setosa"`, `"versicolor"` ...) rather than numbers.
    /// Each one's distinct values, sorted as strings, become the class indices 0, 1, 2 ...;
    /// [`Table::categories`] gives the names in that order. Default: none.
    pub categorical: Vec<Column>,
    /// The most bytes read from the file or reader (default
    /// [`DEFAULT_MAX_BYTES`](crate::data::DEFAULT_MAX_BYTES)); more is an error, not an
    /// allocation without end.
    pub max_bytes: u64,
}

/// The most characters of a field that an error message quotes.
const FIELD_EXCERPT: usize = 60;

impl Default for CsvOptions {
    /// Comma-separated, with a header, no comments, no categorical columns, reads of at most
    /// [`DEFAULT_MAX_BYTES`](crate::data::DEFAULT_MAX_BYTES).
    fn default() -> Self {
        CsvOptions {
            delimiter: ',',
            has_header: true,
            comment: None,
            categorical: Vec::new(),
            max_bytes: super::DEFAULT_MAX_BYTES,
        }
    }
}

/// A column, by 0-based index or by header name; `usize`, `&str` and `String` convert into it.
///
/// ```
/// use tapegrad::data::csv::Column;
/// assert_eq!(Column::from(2), Column::Index(2));
/// assert_eq!(Column::from("price"), Column::Name("price".into()));
/// assert_eq!(Column::from("price").to_string(), "\"price\"");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Column {
    /// The column at this 0-based index.
    Index(usize),
    /// The column with this header name.
    Name(String),
}

impl From<usize> for Column {
    fn from(i: usize) -> Self {
        Column::Index(i)
    }
}

impl From<&str> for Column {
    fn from(name: &str) -> Self {
        Column::Name(name.to_string())
    }
}

impl From<String> for Column {
    fn from(name: String) -> Self {
        Column::Name(name)
    }
}

impl From<&String> for Column {
    fn from(name: &String) -> Self {
        Column::Name(name.clone())
    }
}

impl fmt::Display for Column {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Column::Index(i) => write!(f, "{i}"),
            Column::Name(name) => write!(f, "{name:?}"),
        }
    }
}

/// A numeric table: values `[rows, columns]`, row-major, and the header's names if there was one.
///
/// ```
/// use tapegrad::data::csv::{self, CsvOptions};
/// let table = csv::parse_str::<f32>("a,b,c\n1,2,3\n4,5,6\n", &CsvOptions::default())?;
/// assert_eq!((table.n_rows(), table.n_cols()), (2, 3));
/// assert_eq!(table.column("b")?.to_vec(), vec![2., 5.]);
/// assert_eq!(table.column(2)?.to_vec(), vec![3., 6.]);
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Table<T: Float = f32> {
    names: Option<Vec<String>>,
    values: Tensor<T>,
    /// Per column: the category names of a categorical column, in code order.
    categories: Vec<Option<Vec<String>>>,
    source: String,
}

impl<T: Float> Table<T> {
    /// The number of data rows (the header is not counted).
    ///
    /// ```
    /// # use tapegrad::data::csv::{self, CsvOptions};
    /// assert_eq!(csv::parse_str::<f32>("a\n1\n2\n", &CsvOptions::default())?.n_rows(), 2);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn n_rows(&self) -> usize {
        self.values.shape()[0]
    }

    /// The number of columns.
    ///
    /// ```
    /// # use tapegrad::data::csv::{self, CsvOptions};
    /// assert_eq!(csv::parse_str::<f32>("a,b\n1,2\n", &CsvOptions::default())?.n_cols(), 2);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn n_cols(&self) -> usize {
        self.values.shape()[1]
    }

    /// The header's column names, or `None` when the table was read without a header.
    ///
    /// ```
    /// # use tapegrad::data::csv::{self, CsvOptions};
    /// let t = csv::parse_str::<f32>("\"a, quoted\",b\n1,2\n", &CsvOptions::default())?;
    /// assert_eq!(t.names().unwrap()[0], "a, quoted");
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn names(&self) -> Option<&[String]> {
        self.names.as_deref()
    }

    /// Where the table came from (the file's path, `<string>` or `<reader>`), as error messages
    /// name it.
    ///
    /// ```
    /// # use tapegrad::data::csv::{self, CsvOptions};
    /// assert_eq!(csv::parse_str::<f32>("a\n1\n", &CsvOptions::default())?.source(), "<string>");
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Every value, `[rows, columns]`.
    ///
    /// ```
    /// # use tapegrad::data::csv::{self, CsvOptions};
    /// let t = csv::parse_str::<f64>("a,b\n1,2\n3,4\n", &CsvOptions::default())?;
    /// assert_eq!(t.values().shape(), &[2, 2]);
    /// assert_eq!(t.values().to_vec(), vec![1., 2., 3., 4.]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn values(&self) -> &Tensor<T> {
        &self.values
    }

    /// The values, consuming the table.
    ///
    /// ```
    /// # use tapegrad::data::csv::{self, CsvOptions};
    /// let x = csv::parse_str::<f32>("a\n1\n", &CsvOptions::default())?.into_values();
    /// assert_eq!(x.shape(), &[1, 1]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn into_values(self) -> Tensor<T> {
        self.values
    }

    /// The 0-based index of a column given by index or name.
    ///
    /// # Errors
    /// [`Error::InvalidData`] if the index is out of range, the name is not in the header (or
    /// appears more than once), or a name is given for a table without a header.
    ///
    /// ```
    /// # use tapegrad::data::csv::{self, CsvOptions};
    /// let t = csv::parse_str::<f32>("a,b\n1,2\n", &CsvOptions::default())?;
    /// assert_eq!(t.column_index("b")?, 1);
    /// let err = t.column_index("c").unwrap_err().to_string();
    /// assert!(err.contains("no column named \"c\"; the columns are [\"a\", \"b\"]"), "{err}");
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn column_index(&self, column: impl Into<Column>) -> Result<usize, Error> {
        resolve(self.names.as_deref(), self.n_cols(), &column.into(), &self.source)
    }

    /// The category names of a column listed in [`CsvOptions::categorical`], in code order (the
    /// name of class `k` is `categories[k]`); `None` for a numeric column.
    ///
    /// # Errors
    /// As [`column_index`](Table::column_index).
    ///
    /// ```
    /// use tapegrad::data::csv::{self, CsvOptions};
    /// let text = "petal_length,species\n1.4,setosa\n6.0,virginica\n4.5,versicolor\n1.3,setosa\n";
    /// let opts = CsvOptions { categorical: vec!["species".into()], ..CsvOptions::default() };
    /// let table = csv::parse_str::<f32>(text, &opts)?;
    /// assert_eq!(table.categories("species")?.unwrap(), ["setosa", "versicolor", "virginica"]);
    /// assert_eq!(table.categories(0)?, None);
    /// assert_eq!(table.to_dataset("species")?.labels(), vec![0, 2, 1, 0]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn categories(&self, column: impl Into<Column>) -> Result<Option<&[String]>, Error> {
        let c = self.column_index(column)?;
        Ok(self.categories[c].as_deref())
    }

    /// One column's values, `[rows]`.
    ///
    /// # Errors
    /// As [`column_index`](Table::column_index).
    ///
    /// ```
    /// # use tapegrad::data::csv::{self, CsvOptions};
    /// let t = csv::parse_str::<f32>("a,b\n1,2\n3,4\n", &CsvOptions::default())?;
    /// assert_eq!(t.column("a")?.to_vec(), vec![1., 3.]);
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn column(&self, column: impl Into<Column>) -> Result<Tensor<T>, Error> {
        let c = self.column_index(column)?;
        let n = self.n_cols();
        let col: Vec<T> = self
            .values
            .as_slice()
            .iter()
            .skip(c)
            .step_by(n)
            .copied()
            .collect();
        Tensor::try_from_vec(col, &[self.n_rows()])
    }

    /// The names of every column except `target`, in order: the names of
    /// [`to_dataset`](Table::to_dataset)'s feature columns (`None` without a header).
    ///
    /// # Errors
    /// As [`column_index`](Table::column_index).
    ///
    /// ```
    /// # use tapegrad::data::csv::{self, CsvOptions};
    /// let t = csv::parse_str::<f32>("a,y,b\n1,0,2\n", &CsvOptions::default())?;
    /// assert_eq!(t.feature_names("y")?, Some(vec!["a".to_string(), "b".to_string()]));
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn feature_names(&self, target: impl Into<Column>) -> Result<Option<Vec<String>>, Error> {
        let t = self.column_index(target)?;
        Ok(self.names.as_ref().map(|names| {
            let mut names = names.clone();
            names.remove(t);
            names
        }))
    }

    /// A [`Dataset`]: the `target` column as targets `[rows]` (class indices for classification,
    /// see [`Dataset::labels`], or values for regression) and every other column, in order, as
    /// features `[rows, columns - 1]`.
    ///
    /// # Errors
    /// As [`column_index`](Table::column_index); also if the target is the only column.
    ///
    /// ```
    /// # use tapegrad::data::csv::{self, CsvOptions};
    /// let t = csv::parse_str::<f32>("a,y,b\n1,0,2\n3,1,4\n", &CsvOptions::default())?;
    /// let ds = t.to_dataset("y")?;               // or t.to_dataset(1)
    /// assert_eq!(ds.features.to_vec(), vec![1., 2., 3., 4.]);
    /// assert_eq!(ds.labels(), vec![0, 1]);
    /// let err = t.to_dataset("label").unwrap_err().to_string();
    /// assert!(err.contains("no column named \"label\""), "{err}");
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    pub fn to_dataset(&self, target: impl Into<Column>) -> Result<Dataset<T>, Error> {
        let t = self.column_index(target)?;
        let (rows, cols) = (self.n_rows(), self.n_cols());
        if cols < 2 {
            return Err(invalid(format!(
                "{}: the target is the only column, which leaves no features",
                self.source
            )));
        }
        let mut features = Vec::with_capacity(rows * (cols - 1));
        let mut targets = Vec::with_capacity(rows);
        for row in self.values.as_slice().chunks_exact(cols) {
            features.extend_from_slice(&row[..t]);
            features.extend_from_slice(&row[t + 1..]);
            targets.push(row[t]);
        }
        Ok(Dataset::new(
            Tensor::try_from_vec(features, &[rows, cols - 1])?,
            Tensor::try_from_vec(targets, &[rows])?,
        ))
    }
}

/// Reads a numeric table from the CSV file at `path` (see the [module docs](self) for the format).
///
/// # Errors
/// [`Error::Io`] naming the path if the file cannot be read; [`Error::InvalidData`] naming the file,
/// line and column for text that is not UTF-8, a field that is not a number, a row with the wrong
/// number of fields, or a file with no data rows.
///
/// # Panics
/// If `options` are contradictory (a delimiter of `"` or a line break, or equal to the comment
/// character): that is a programming mistake, not bad input.
///
/// ```
/// use tapegrad::data::csv::{self, CsvOptions};
/// let path = std::env::temp_dir().join(format!("tapegrad-doc-read-csv-{}.csv", std::process::id()));
/// std::fs::write(&path, "sepal,petal,class\n5.1,1.4,0\n6.3,6.0,2\n")?;
/// let table = csv::read_csv::<f32>(&path, &CsvOptions::default())?;
/// let ds = table.to_dataset("class")?;
/// assert_eq!(ds.labels(), vec![0, 2]);
/// std::fs::remove_file(&path)?;
///
/// let missing = csv::read_csv::<f32>("no/such/file.csv", &CsvOptions::default()).unwrap_err();
/// assert!(matches!(missing, tapegrad::Error::Io { .. }));
/// assert!(missing.to_string().contains("no/such/file.csv"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[track_caller]
pub fn read_csv<T: Float>(path: impl AsRef<Path>, options: &CsvOptions) -> Result<Table<T>, Error> {
    let path = path.as_ref();
    let bytes = super::read_file(path, options.max_bytes)?;
    parse_bytes(&bytes, options, &path.display().to_string())
}

/// Reads a numeric table from any reader (a socket, a decompressor, `&[u8]`); errors call the
/// source `<reader>`.
///
/// # Errors
/// As [`read_csv`] (an I/O error is reported with the path `<reader>`).
///
/// # Panics
/// As [`read_csv`].
///
/// ```
/// use tapegrad::data::csv::{self, CsvOptions};
/// let bytes: &[u8] = b"a\tb\n1\t2\n";
/// let opts = CsvOptions { delimiter: '\t', ..CsvOptions::default() };
/// assert_eq!(csv::from_reader::<f32, _>(bytes, &opts)?.values().to_vec(), vec![1., 2.]);
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[track_caller]
pub fn from_reader<T: Float, R: Read>(reader: R, options: &CsvOptions) -> Result<Table<T>, Error> {
    let bytes = super::read_reader(reader, options.max_bytes, "<reader>")?;
    parse_bytes(&bytes, options, "<reader>")
}

/// Parses a numeric table from a string; errors call the source `<string>`.
///
/// # Errors
/// As [`read_csv`], without the I/O cases.
///
/// # Panics
/// As [`read_csv`].
///
/// ```
/// use tapegrad::data::csv::{self, CsvOptions};
/// let t = csv::parse_str::<f64>("a,b\n1,2\n", &CsvOptions::default())?;
/// assert_eq!(t.values().to_vec(), vec![1.0, 2.0]);
/// let ragged = csv::parse_str::<f64>("a,b\n1,2\n3\n", &CsvOptions::default()).unwrap_err();
/// assert!(ragged.to_string().contains("line 3: expected 2 fields (as on line 1), found 1"));
/// # Ok::<(), tapegrad::Error>(())
/// ```
#[track_caller]
pub fn parse_str<T: Float>(text: &str, options: &CsvOptions) -> Result<Table<T>, Error> {
    parse_text(text, options, "<string>")
}

fn invalid(detail: String) -> Error {
    Error::InvalidData { detail }
}

/// The index of `column` among `cols` columns named `names` (if there is a header).
fn resolve(names: Option<&[String]>, cols: usize, column: &Column, source: &str) -> Result<usize, Error> {
    match column {
        &Column::Index(i) if i < cols => Ok(i),
        Column::Index(i) => Err(invalid(format!(
            "{source}: column index {i} is out of range for a table of {cols} columns"
        ))),
        Column::Name(name) => {
            let Some(names) = names else {
                return Err(invalid(format!(
                    "{source}: no column named {name:?}: the table was read without a header \
                     (has_header: false), so columns can only be chosen by index"
                )));
            };
            let found: Vec<usize> = (0..names.len()).filter(|&i| &names[i] == name).collect();
            match found[..] {
                [i] => Ok(i),
                [] => Err(invalid(format!(
                    "{source}: no column named {name:?}; the columns are {names:?}"
                ))),
                _ => Err(invalid(format!(
                    "{source}: the column name {name:?} is ambiguous: it names columns {found:?}; \
                     choose one by index"
                ))),
            }
        }
    }
}

#[track_caller]
fn parse_bytes<T: Float>(bytes: &[u8], options: &CsvOptions, source: &str) -> Result<Table<T>, Error> {
    match std::str::from_utf8(bytes) {
        Ok(text) => parse_text(text, options, source),
        Err(e) => {
            let at = e.valid_up_to();
            let line = 1 + bytes[..at].iter().filter(|&&b| b == b'\n').count();
            Err(invalid(format!(
                "{source}: line {line}: the text is not UTF-8 (bad byte 0x{:02x} at byte offset {at})",
                bytes[at]
            )))
        }
    }
}

#[track_caller]
fn check_options(o: &CsvOptions) {
    let bad = |c: char| c == '"' || c == '\n' || c == '\r';
    assert!(
        !bad(o.delimiter),
        "tapegrad: csv: the delimiter cannot be {:?}",
        o.delimiter
    );
    if let Some(c) = o.comment {
        assert!(
            !bad(c) && c != o.delimiter,
            "tapegrad: csv: the comment character cannot be {c:?} with delimiter {:?}",
            o.delimiter
        );
    }
}

#[track_caller]
fn parse_text<T: Float>(text: &str, options: &CsvOptions, source: &str) -> Result<Table<T>, Error> {
    check_options(options);
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut names: Option<Vec<String>> = None;
    // The field count and the line that set it.
    let mut width: Option<(usize, usize)> = None;
    let mut values: Vec<T> = Vec::new();
    let mut rows = 0usize;
    let mut fields: Vec<Cow<'_, str>> = Vec::new();
    // Per column, for categorical columns: the text of each row so far (resolved at the first
    // data row, once the header's names and the width are known).
    let mut texts: Option<Vec<Option<Vec<String>>>> = None;
    for (i, raw) in text.split('\n').enumerate() {
        let line_no = i + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        split_line(line, options, &mut fields)
            .map_err(|problem| invalid(format!("{source}: line {line_no}: {problem}")))?;
        if fields.is_empty() {
            continue; // blank or comment-only
        }
        match width {
            None => width = Some((fields.len(), line_no)),
            Some((n, first)) if n != fields.len() => {
                return Err(invalid(format!(
                    "{source}: line {line_no}: expected {n} fields (as on line {first}), found {}",
                    fields.len()
                )));
            }
            Some(_) => {}
        }
        if options.has_header && names.is_none() {
            names = Some(fields.iter().map(|f| f.to_string()).collect());
            continue;
        }
        let texts = match &mut texts {
            Some(texts) => texts,
            None => {
                let mut t = vec![None; fields.len()];
                for column in &options.categorical {
                    let c = resolve(names.as_deref(), fields.len(), column, source).map_err(|e| match e {
                        Error::InvalidData { detail } => {
                            invalid(format!("CsvOptions::categorical: {detail}"))
                        }
                        other => other,
                    })?;
                    t[c] = Some(Vec::new());
                }
                texts.insert(t)
            }
        };
        for (c, field) in fields.iter().enumerate() {
            if let Some(col_texts) = &mut texts[c] {
                if field.trim_matches([' ', '\t']).is_empty() {
                    let name = names.as_ref().map_or(String::new(), |n| format!(" ({:?})", n[c]));
                    return Err(invalid(format!(
                        "{source}: line {line_no}, column {c}{name}: empty field in a categorical column"
                    )));
                }
                col_texts.push(field.to_string());
                values.push(T::ZERO); // the code is filled in once every category is known
                continue;
            }
            match parse_number::<T>(field) {
                Ok(v) => values.push(v),
                Err(why) => {
                    let name = match &names {
                        Some(names) => format!(" ({:?})", names[c]),
                        None => String::new(),
                    };
                    let hint = if rows == 0 && !options.has_header && why == Why::NotANumber {
                        format!(" (if line {line_no} is a header, set has_header: true)")
                    } else {
                        String::new()
                    };
                    return Err(invalid(format!(
                        "{source}: line {line_no}, column {c}{name}: cannot parse {} as a number ({}){}{hint}",
                        super::excerpt(field.as_ref(), FIELD_EXCERPT),
                        T::NAME,
                        why.note()
                    )));
                }
            }
        }
        rows += 1;
    }
    let Some((cols, first)) = width else {
        return Err(invalid(format!(
            "{source}: empty file: no header and no data rows"
        )));
    };
    if rows == 0 {
        return Err(invalid(format!(
            "{source}: no data rows (only the header on line {first})"
        )));
    }
    let categories: Vec<Option<Vec<String>>> = texts
        .unwrap_or_else(|| vec![None; cols])
        .into_iter()
        .enumerate()
        .map(|(c, col_texts)| {
            col_texts.map(|col_texts| {
                let mut cats = col_texts.clone();
                cats.sort_unstable();
                cats.dedup();
                for (r, text) in col_texts.iter().enumerate() {
                    let code = cats.binary_search(text).unwrap_or_default();
                    values[r * cols + c] = T::from_usize(code);
                }
                cats
            })
        })
        .collect();
    Ok(Table {
        names,
        values: Tensor::try_from_vec(values, &[rows, cols])?,
        categories,
        source: source.to_string(),
    })
}

/// Splits one line (without its line break) into trimmed, unquoted fields; leaves `fields` empty
/// for a blank or comment-only line.
fn split_line<'a>(line: &'a str, o: &CsvOptions, fields: &mut Vec<Cow<'a, str>>) -> Result<(), String> {
    fields.clear();
    let is_space = |c: char| c == ' ' || c == '\t';
    let mut rest = line;
    let mut quoted_fields = false;
    loop {
        let trimmed = rest.trim_start_matches(|c: char| is_space(c) && c != o.delimiter);
        let offset = line.len() - trimmed.len();
        if let Some(quoted) = trimmed.strip_prefix('"') {
            // A quoted field: up to the closing quote, with "" standing for one quote.
            let mut text = String::new();
            let mut chars = quoted.char_indices();
            let after = loop {
                match chars.next() {
                    None => {
                        return Err(format!(
                            "unterminated quoted field starting at character {} (a quoted field cannot span lines)",
                            offset + 1
                        ));
                    }
                    Some((i, '"')) => {
                        if quoted[i + 1..].starts_with('"') {
                            text.push('"');
                            chars.next();
                        } else {
                            break &quoted[i + 1..];
                        }
                    }
                    Some((_, c)) => text.push(c),
                }
            };
            fields.push(Cow::Owned(text));
            quoted_fields = true;
            let after = after.trim_start_matches(|c: char| is_space(c) && c != o.delimiter);
            match after.chars().next() {
                None => break,
                Some(c) if c == o.delimiter => rest = &after[c.len_utf8()..],
                Some(c) if Some(c) == o.comment => break,
                Some(c) => {
                    return Err(format!(
                        "unexpected {c:?} after the closing quote of a field (character {})",
                        line.len() - after.len() + 1
                    ));
                }
            }
        } else {
            let end = trimmed
                .find(|c: char| c == o.delimiter || Some(c) == o.comment)
                .unwrap_or(trimmed.len());
            let field = trimmed[..end].trim_end_matches(is_space);
            if let Some(q) = field.find('"') {
                return Err(format!(
                    "a quote inside an unquoted field {} (character {}); quote the whole field",
                    super::excerpt(field, FIELD_EXCERPT),
                    offset + q + 1
                ));
            }
            fields.push(Cow::Borrowed(field));
            match trimmed[end..].chars().next() {
                None => break,
                Some(c) if c == o.delimiter => rest = &trimmed[end + c.len_utf8()..],
                Some(_) => break, // a comment
            }
        }
    }
    // A line that holds nothing but spaces (and perhaps a comment) is blank.
    if fields.len() == 1 && fields[0].is_empty() && !quoted_fields {
        fields.clear();
    }
    Ok(())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Why {
    NotANumber,
    Empty,
    OutOfRange,
}

impl Why {
    fn note(self) -> &'static str {
        match self {
            Why::NotANumber => "",
            Why::Empty => ": the field is empty",
            Why::OutOfRange => ": out of range",
        }
    }
}

/// Parses straight into `T`, so an `f32` is rounded once (not through `f64`).
/// Spaces inside quotes are trimmed too (`" 3"` is 3), as pandas does.
fn parse_number<T: Float>(s: &str) -> Result<T, Why> {
    let s = s.trim_matches([' ', '\t']);
    if s.is_empty() {
        return Err(Why::Empty);
    }
    let v = if TypeId::of::<T>() == TypeId::of::<f32>() {
        s.parse::<f32>().map(|v| T::from_f64(f64::from(v)))
    } else {
        s.parse::<f64>().map(T::from_f64)
    }
    .map_err(|_| Why::NotANumber)?;
    if !v.is_finite() && !v.is_nan() && !s.to_ascii_lowercase().contains("inf") {
        return Err(Why::OutOfRange);
    }
    Ok(v)
}
