//! The file loaders in `tapegrad::data`: CSV tables and IDX arrays. Round trips through files the
//! tests write into temporary directories, and every malformed-input case returns the right error
//! variant with a message that names the file, the place and the problem.

use std::path::Path;

use proptest::prelude::*;
use tapegrad::Error;
use tapegrad::data::csv::{self, Column, CsvOptions};
use tapegrad::data::idx::{self, IdxArray, IdxData, IdxType};

fn opts() -> CsvOptions {
    CsvOptions::default()
}

/// The message of an `InvalidData` error (any other variant fails the test).
#[track_caller]
fn invalid<T: std::fmt::Debug>(r: Result<T, Error>) -> String {
    match r {
        Err(e @ Error::InvalidData { .. }) => e.to_string(),
        other => panic!("expected Error::InvalidData, got {other:?}"),
    }
}

#[track_caller]
fn assert_has(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(message.contains(part), "{message:?} should contain {part:?}");
    }
}

fn write(dir: &Path, name: &str, contents: impl AsRef<[u8]>) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("writing a test file");
    path
}

// ---------------------------------------------------------------------------------------------
// CSV: reading

#[test]
fn csv_file_with_header_crlf_blank_lines_spaces_and_bom() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "iris.csv",
        "\u{feff}sepal length , petal length,\tclass\r\n\r\n 5.1, 1.4 ,0\r\n   \r\n6.3,\t6.0, 2\r\n",
    );
    let table = csv::read_csv::<f32>(&path, &opts()).unwrap();
    assert_eq!(table.names().unwrap(), ["sepal length", "petal length", "class"]);
    assert_eq!(table.values().shape(), &[2, 3]);
    assert_eq!(table.values().to_vec(), vec![5.1, 1.4, 0.0, 6.3, 6.0, 2.0]);
    assert_eq!(table.source(), path.display().to_string());
    let ds = table.to_dataset("class").unwrap();
    assert_eq!(ds.features.to_vec(), vec![5.1, 1.4, 6.3, 6.0]);
    assert_eq!(ds.targets.shape(), &[2]);
    assert_eq!(ds.labels(), vec![0, 2]);
}

#[test]
fn csv_without_trailing_newline_and_without_header() {
    let o = CsvOptions {
        has_header: false,
        ..opts()
    };
    let t = csv::parse_str::<f64>("1,2\n3,4", &o).unwrap();
    assert_eq!(t.names(), None);
    assert_eq!(t.values().to_vec(), vec![1.0, 2.0, 3.0, 4.0]);
    let ds = t.to_dataset(0).unwrap();
    assert_eq!(ds.features.to_vec(), vec![2.0, 4.0]);
    assert_eq!(ds.targets.to_vec(), vec![1.0, 3.0]);
}

#[test]
fn csv_other_delimiters() {
    for (d, text) in [
        (';', "a;b\n1,5;2\n"),
        ('\t', "a\tb\n1,5\t2\n"),
        ('|', "a | b\n1,5 | 2\n"),
    ] {
        let o = CsvOptions {
            delimiter: d,
            ..opts()
        };
        // "1,5" is not a number: a European decimal comma is reported, not misread.
        let err = invalid(csv::parse_str::<f32>(text, &o));
        assert_has(&err, &["line 2, column 0 (\"a\")", "cannot parse \"1,5\""]);
        let fixed = text.replace("1,5", "1.5");
        let t = csv::parse_str::<f32>(&fixed, &o).unwrap();
        assert_eq!(t.names().unwrap(), ["a", "b"], "delimiter {d:?}");
        assert_eq!(t.values().to_vec(), vec![1.5, 2.0]);
    }
}

#[test]
fn csv_tab_delimiter_keeps_empty_fields_apart() {
    // With a tab delimiter tabs are not trimmed as padding: "1\t\t2" has an empty middle field.
    let o = CsvOptions {
        delimiter: '\t',
        has_header: false,
        ..opts()
    };
    let err = invalid(csv::parse_str::<f32>("1\t\t2\n", &o));
    assert_has(&err, &["line 1, column 1", "the field is empty"]);
}

#[test]
fn csv_comments_whole_line_and_trailing() {
    let o = CsvOptions {
        comment: Some('#'),
        ..opts()
    };
    let text = "# measured 2024\nx,y # units: m\n1,2\n  # a note\n3,4#end\n";
    let t = csv::parse_str::<f32>(text, &o).unwrap();
    assert_eq!(t.names().unwrap(), ["x", "y"]);
    assert_eq!(t.values().to_vec(), vec![1.0, 2.0, 3.0, 4.0]);
    // Without the option '#' is just text.
    let err = invalid(csv::parse_str::<f32>(text, &opts()));
    assert_has(&err, &["line 2: expected 1 fields (as on line 1), found 2"]);
}

#[test]
fn csv_quoted_fields() {
    let text = "\"a, with comma\",\"say \"\"hi\"\"\",c\n\"1.5\", 2 ,\" 3\"\n";
    let t = csv::parse_str::<f64>(text, &opts()).unwrap();
    assert_eq!(t.names().unwrap(), ["a, with comma", "say \"hi\"", "c"]);
    assert_eq!(t.values().to_vec(), vec![1.5, 2.0, 3.0]);
    assert_eq!(t.column("say \"hi\"").unwrap().to_vec(), vec![2.0]);
}

#[test]
fn csv_special_numbers() {
    let t = csv::parse_str::<f64>("a,b,c,d,e\ninf,-inf,NaN,1e300,-.5e-3\n", &opts()).unwrap();
    let v = t.values().to_vec();
    assert_eq!(v[0], f64::INFINITY);
    assert_eq!(v[1], f64::NEG_INFINITY);
    assert!(v[2].is_nan());
    assert_eq!(v[3], 1e300);
    assert_eq!(v[4], -0.5e-3);
}

#[test]
fn csv_f32_is_rounded_once() {
    // Just below the midpoint between 1 + 2⁻²³ and 1 + 2⁻²²: the correctly rounded f32 is
    // 1 + 2⁻²³. Through f64 it would first land on the midpoint and then round to even, 1 + 2⁻²².
    let text = "x\n1.0000001788139343261718749\n";
    let t = csv::parse_str::<f32>(text, &opts()).unwrap();
    assert_eq!(t.values().to_vec(), vec![1.0 + f32::EPSILON]);
    let through_f64 = "1.0000001788139343261718749".parse::<f64>().unwrap() as f32;
    assert_eq!(through_f64, 1.0 + 2.0 * f32::EPSILON);
}

#[test]
fn csv_from_reader_and_column_access() {
    let t = csv::from_reader::<f32, _>(&b"a,b,c\n1,2,3\n4,5,6\n"[..], &opts()).unwrap();
    assert_eq!(t.source(), "<reader>");
    assert_eq!((t.n_rows(), t.n_cols()), (2, 3));
    assert_eq!(t.column("c").unwrap().to_vec(), vec![3.0, 6.0]);
    assert_eq!(t.column(Column::Index(0)).unwrap().to_vec(), vec![1.0, 4.0]);
    assert_eq!(t.column_index(String::from("b")).unwrap(), 1);
    assert_eq!(
        t.feature_names("b").unwrap(),
        Some(vec!["a".to_string(), "c".to_string()])
    );
    let ds = t.to_dataset(1).unwrap();
    assert_eq!(ds.features.to_vec(), vec![1.0, 3.0, 4.0, 6.0]);
    assert_eq!(ds.targets.to_vec(), vec![2.0, 5.0]);
    assert_eq!(t.into_values().shape(), &[2, 3]);
}

#[test]
fn csv_categorical_target_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "iris.csv",
        "sepal_length,species,petal_length\n5.1, setosa ,1.4\n6.3,virginica,6.0\n5.9,versicolor,4.2\n\
         4.9,\"setosa\",1.4\n",
    );
    let o = CsvOptions {
        categorical: vec!["species".into()],
        ..opts()
    };
    let table = csv::read_csv::<f32>(&path, &o).unwrap();
    assert_eq!(
        table.categories("species").unwrap().unwrap(),
        ["setosa", "versicolor", "virginica"]
    );
    assert_eq!(table.categories("petal_length").unwrap(), None);
    let ds = table.to_dataset("species").unwrap();
    assert_eq!(ds.labels(), vec![0, 2, 1, 0]);
    assert_eq!(ds.features.to_vec(), vec![5.1, 1.4, 6.3, 6.0, 5.9, 4.2, 4.9, 1.4]);
    // By index, without a header.
    let o = CsvOptions {
        has_header: false,
        categorical: vec![Column::Index(0)],
        ..opts()
    };
    let t = csv::parse_str::<f64>("b,1\na,2\nb,3\n", &o).unwrap();
    assert_eq!(t.column(0).unwrap().to_vec(), vec![1.0, 0.0, 1.0]);
    assert_eq!(t.categories(0).unwrap().unwrap(), ["a", "b"]);
}

#[test]
fn csv_categorical_errors() {
    // Without the option, the text is a bad number.
    let err = invalid(csv::parse_str::<f32>("x,species\n1,setosa\n", &opts()));
    assert_has(
        &err,
        &["line 2, column 1 (\"species\"): cannot parse \"setosa\" as a number"],
    );
    let o = CsvOptions {
        categorical: vec!["class".into()],
        ..opts()
    };
    let err = invalid(csv::parse_str::<f32>("x,species\n1,setosa\n", &o));
    assert_has(
        &err,
        &[
            "CsvOptions::categorical: <string>: no column named \"class\"; the columns are [\"x\", \"species\"]",
        ],
    );
    let o = CsvOptions {
        categorical: vec![Column::Index(5)],
        ..opts()
    };
    let err = invalid(csv::parse_str::<f32>("x,species\n1,setosa\n", &o));
    assert_has(&err, &["column index 5 is out of range for a table of 2 columns"]);
    let o = CsvOptions {
        categorical: vec!["species".into()],
        ..opts()
    };
    let err = invalid(csv::parse_str::<f32>("x,species\n1,setosa\n2,  \n", &o));
    assert_has(
        &err,
        &["line 3, column 1 (\"species\"): empty field in a categorical column"],
    );
}

#[test]
fn csv_regression_target_and_batches() {
    let t = csv::parse_str::<f32>("x,y\n0,0.5\n1,1.5\n2,2.5\n", &opts()).unwrap();
    let ds = t.to_dataset("y").unwrap();
    let sizes: Vec<usize> = ds.batches(2).map(|b| b.len()).collect();
    assert_eq!(sizes, [2, 1]);
    assert_eq!(ds.targets.to_vec(), vec![0.5, 1.5, 2.5]);
}

// ---------------------------------------------------------------------------------------------
// CSV: errors

#[test]
fn csv_bad_number_names_file_line_column_and_text() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "bad.csv", "a,b,c\n1,2,3\n\n4,5x,6\n");
    let err = invalid(csv::read_csv::<f32>(&path, &opts()));
    assert_eq!(
        err,
        format!(
            "tapegrad: invalid data: {}: line 4, column 1 (\"b\"): cannot parse \"5x\" as a number (f32)",
            path.display()
        )
    );
}

#[test]
fn csv_bad_number_without_header_suggests_one() {
    let o = CsvOptions {
        has_header: false,
        ..opts()
    };
    let err = invalid(csv::parse_str::<f64>("x,y\n1,2\n", &o));
    assert_has(
        &err,
        &[
            "<string>: line 1, column 0: cannot parse \"x\" as a number (f64)",
            "if line 1 is a header, set has_header: true",
        ],
    );
}

#[test]
fn csv_empty_field_and_out_of_range() {
    let err = invalid(csv::parse_str::<f32>("a,b\n1,\n", &opts()));
    assert_has(
        &err,
        &[
            "line 2, column 1 (\"b\")",
            "cannot parse \"\"",
            "the field is empty",
        ],
    );
    let err = invalid(csv::parse_str::<f32>("a\n1e40\n", &opts()));
    assert_has(&err, &["line 2, column 0", "\"1e40\"", "(f32): out of range"]);
    // The same text fits an f64.
    assert_eq!(
        csv::parse_str::<f64>("a\n1e40\n", &opts())
            .unwrap()
            .values()
            .to_vec(),
        vec![1e40]
    );
}

#[test]
fn csv_ragged_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "ragged.csv", "a,b,c\n1,2,3\n4,5\n");
    let err = invalid(csv::read_csv::<f32>(&path, &opts()));
    assert_has(
        &err,
        &[
            &path.display().to_string(),
            "line 3: expected 3 fields (as on line 1), found 2",
        ],
    );
    let err = invalid(csv::parse_str::<f32>(
        "\n\n1,2\n3,4,5\n",
        &CsvOptions {
            has_header: false,
            ..opts()
        },
    ));
    assert_has(&err, &["line 4: expected 2 fields (as on line 3), found 3"]);
}

#[test]
fn csv_empty_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "empty.csv", "");
    let err = invalid(csv::read_csv::<f32>(&path, &opts()));
    assert_has(
        &err,
        &[
            &path.display().to_string(),
            "empty file: no header and no data rows",
        ],
    );
    for text in ["\n\n", "  \r\n\t\n"] {
        let err = invalid(csv::parse_str::<f32>(text, &opts()));
        assert_has(&err, &["<string>: empty file"]);
    }
    let commented = CsvOptions {
        comment: Some('#'),
        ..opts()
    };
    let err = invalid(csv::parse_str::<f32>("# nothing here\n", &commented));
    assert_has(&err, &["empty file"]);
    let err = invalid(csv::parse_str::<f32>("\na,b\n\n", &opts()));
    assert_has(&err, &["no data rows (only the header on line 2)"]);
}

#[test]
fn csv_missing_or_unusable_target_column() {
    let t = csv::parse_str::<f32>("a,b\n1,2\n", &opts()).unwrap();
    let err = invalid(t.to_dataset("label"));
    assert_has(
        &err,
        &["<string>: no column named \"label\"; the columns are [\"a\", \"b\"]"],
    );
    let err = invalid(t.to_dataset(2));
    assert_has(&err, &["column index 2 is out of range for a table of 2 columns"]);
    let err = invalid(t.column("B"));
    assert_has(&err, &["no column named \"B\""]);

    let dup = csv::parse_str::<f32>("a,a,b\n1,2,3\n", &opts()).unwrap();
    let err = invalid(dup.to_dataset("a"));
    assert_has(
        &err,
        &["the column name \"a\" is ambiguous: it names columns [0, 1]"],
    );
    assert_eq!(dup.to_dataset(1).unwrap().targets.to_vec(), vec![2.0]);

    let no_header = csv::parse_str::<f32>(
        "1,2\n",
        &CsvOptions {
            has_header: false,
            ..opts()
        },
    )
    .unwrap();
    let err = invalid(no_header.to_dataset("y"));
    assert_has(&err, &["no column named \"y\"", "without a header"]);

    let single = csv::parse_str::<f32>("y\n1\n", &opts()).unwrap();
    let err = invalid(single.to_dataset("y"));
    assert_has(&err, &["the target is the only column"]);
}

#[test]
fn csv_not_utf8() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "latin1.csv", b"a,b\n1,2\n\xe9,3\n");
    let err = invalid(csv::read_csv::<f32>(&path, &opts()));
    assert_has(
        &err,
        &[
            &path.display().to_string(),
            "line 3: the text is not UTF-8 (bad byte 0xe9 at byte offset 8)",
        ],
    );
}

#[test]
fn csv_quote_errors() {
    let err = invalid(csv::parse_str::<f32>("a,b\n1,\"2\n", &opts()));
    assert_has(
        &err,
        &["line 2: unterminated quoted field starting at character 3"],
    );
    let err = invalid(csv::parse_str::<f32>("a,b\n1,2\"3\"\n", &opts()));
    assert_has(&err, &["line 2: a quote inside an unquoted field \"2\\\"3\\\"\""]);
    let err = invalid(csv::parse_str::<f32>("a,b\n\"1\"x,2\n", &opts()));
    assert_has(&err, &["line 2: unexpected 'x' after the closing quote"]);
}

#[test]
fn csv_missing_file_is_an_io_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.csv");
    match csv::read_csv::<f32>(&path, &opts()) {
        Err(e @ Error::Io { .. }) => {
            let Error::Io { path: p, .. } = &e else {
                unreachable!()
            };
            assert_eq!(p, &path);
            assert_has(&e.to_string(), &[&path.display().to_string()]);
        }
        other => panic!("expected Error::Io, got {other:?}"),
    }
}

#[test]
#[should_panic(expected = "tapegrad: csv: the delimiter cannot be '\"'")]
fn csv_quote_delimiter_is_a_programming_error() {
    let _ = csv::parse_str::<f32>(
        "1\n",
        &CsvOptions {
            delimiter: '"',
            ..opts()
        },
    );
}

#[test]
#[should_panic(expected = "tapegrad: csv: the comment character cannot be ','")]
fn csv_comment_equal_to_delimiter_is_a_programming_error() {
    let _ = csv::parse_str::<f32>(
        "1\n",
        &CsvOptions {
            comment: Some(','),
            ..opts()
        },
    );
}

// ---------------------------------------------------------------------------------------------
// CSV: property test

/// A random table written as CSV in a random dialect.
#[derive(Debug, Clone)]
struct Dialect {
    delimiter: char,
    header: bool,
    crlf: bool,
    pad: bool,
    trailing_newline: bool,
    blank_lines: bool,
}

fn dialect() -> impl Strategy<Value = Dialect> {
    (
        prop::sample::select(vec![',', ';', '\t', '|']),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(delimiter, header, crlf, pad, trailing_newline, blank_lines)| Dialect {
                delimiter,
                header,
                crlf,
                pad,
                trailing_newline,
                blank_lines,
            },
        )
}

fn to_csv<V: std::fmt::Display>(rows: &[Vec<V>], names: &[String], d: &Dialect) -> String {
    let eol = if d.crlf { "\r\n" } else { "\n" };
    let sep = if d.pad && d.delimiter != '\t' {
        format!(" {} ", d.delimiter)
    } else {
        d.delimiter.to_string()
    };
    let mut lines = Vec::new();
    if d.header {
        lines.push(names.join(&sep));
    }
    for row in rows {
        lines.push(row.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(&sep));
        if d.blank_lines {
            lines.push(String::new());
        }
    }
    let mut text = lines.join(eol);
    if d.trailing_newline {
        text.push_str(eol);
    }
    text
}

fn table<V: std::fmt::Debug + Clone>(
    value: impl Strategy<Value = V> + Clone,
) -> impl Strategy<Value = Vec<Vec<V>>> {
    (1usize..6, 1usize..12).prop_flat_map(move |(cols, rows)| {
        prop::collection::vec(prop::collection::vec(value.clone(), cols), rows)
    })
}

proptest! {
    #[test]
    fn csv_round_trip_f64(rows in table(prop::num::f64::NORMAL | prop::num::f64::SUBNORMAL | prop::num::f64::ZERO), d in dialect()) {
        let cols = rows[0].len();
        let names: Vec<String> = (0..cols).map(|c| format!("col {c}")).collect();
        let text = to_csv(&rows, &names, &d);
        let o = CsvOptions { delimiter: d.delimiter, has_header: d.header, ..CsvOptions::default() };
        let t = csv::parse_str::<f64>(&text, &o).unwrap();
        prop_assert_eq!(t.values().shape(), &[rows.len(), cols][..]);
        let expected: Vec<u64> = rows.iter().flatten().map(|v| v.to_bits()).collect();
        let got: Vec<u64> = t.values().to_vec().iter().map(|v| v.to_bits()).collect();
        prop_assert_eq!(got, expected);
        prop_assert_eq!(t.names().map(|n| n.to_vec()), d.header.then_some(names));
    }

    #[test]
    fn csv_round_trip_f32(rows in table(prop::num::f32::NORMAL | prop::num::f32::SUBNORMAL), d in dialect()) {
        let cols = rows[0].len();
        let names: Vec<String> = (0..cols).map(|c| format!("x{c}")).collect();
        let text = to_csv(&rows, &names, &d);
        let o = CsvOptions { delimiter: d.delimiter, has_header: d.header, ..CsvOptions::default() };
        let t = csv::parse_str::<f32>(&text, &o).unwrap();
        let expected: Vec<u32> = rows.iter().flatten().map(|v| v.to_bits()).collect();
        let got: Vec<u32> = t.values().to_vec().iter().map(|v| v.to_bits()).collect();
        prop_assert_eq!(got, expected);
    }
}

// ---------------------------------------------------------------------------------------------
// IDX: reading and writing

fn every_dtype() -> Vec<IdxArray> {
    let a = |dims: Vec<usize>, data| IdxArray::new(dims, data).unwrap();
    vec![
        a(vec![2, 3], IdxData::U8(vec![0, 1, 127, 128, 254, 255])),
        a(vec![4], IdxData::I8(vec![i8::MIN, -1, 0, i8::MAX])),
        a(vec![2, 2], IdxData::I16(vec![i16::MIN, -2, 300, i16::MAX])),
        a(vec![1, 3], IdxData::I32(vec![i32::MIN, 70000, i32::MAX])),
        a(vec![3], IdxData::F32(vec![-1.5, f32::MIN_POSITIVE, f32::MAX])),
        a(vec![2, 1, 1], IdxData::F64(vec![std::f64::consts::PI, -1e-300])),
    ]
}

#[test]
fn idx_round_trip_every_dtype_through_files() {
    let dir = tempfile::tempdir().unwrap();
    for (i, array) in every_dtype().into_iter().enumerate() {
        let path = dir.path().join(format!("array{i}.idx"));
        idx::write_idx(&path, &array).unwrap();
        let back = idx::read_idx(&path).unwrap();
        assert_eq!(back, array, "{}", array.dtype());
        assert_eq!(
            std::fs::read(&path).unwrap().len(),
            4 + 4 * array.dims().len() + array.len() * array.dtype().size()
        );
    }
}

#[test]
fn idx_is_big_endian() {
    let a = IdxArray::new(vec![1], IdxData::I32(vec![0x0102_0304])).unwrap();
    assert_eq!(a.to_bytes(), [0, 0, 0x0C, 1, 0, 0, 0, 1, 1, 2, 3, 4]);
    let f = IdxArray::new(vec![1], IdxData::F64(vec![1.0])).unwrap();
    assert_eq!(&f.to_bytes()[8..], &[0x3F, 0xF0, 0, 0, 0, 0, 0, 0]);
    let parsed = idx::parse_idx(&[0, 0, 0x0D, 1, 0, 0, 0, 1, 0x40, 0x49, 0x0F, 0xDB]).unwrap();
    assert_eq!(parsed.data(), &IdxData::F32(vec![std::f32::consts::PI]));
}

#[test]
fn idx_to_tensor_keeps_the_values_and_shape() {
    let a = IdxArray::new(vec![2, 2], IdxData::I16(vec![-300, 0, 7, 32767])).unwrap();
    let t = a.to_tensor::<f32>();
    assert_eq!(t.shape(), &[2, 2]);
    assert_eq!(t.to_vec(), vec![-300.0, 0.0, 7.0, 32767.0]);
    let scalar = IdxArray::new(vec![], IdxData::F64(vec![2.5])).unwrap();
    assert_eq!(idx::parse_idx(&scalar.to_bytes()).unwrap(), scalar);
    assert_eq!(scalar.to_tensor::<f64>().item(), 2.5);
}

#[test]
fn idx_array_new_checks_its_sizes() {
    let err = IdxArray::new(vec![2, 3], IdxData::U8(vec![0; 5])).unwrap_err();
    assert!(matches!(
        err,
        Error::ShapeMismatch {
            op: "IdxArray::new",
            ..
        }
    ));
    assert_has(&err.to_string(), &["5 elements cannot fill dimensions [2, 3]"]);
    let err = IdxArray::new(vec![1 << 33, 0], IdxData::U8(vec![])).unwrap_err();
    assert_has(&err.to_string(), &["does not fit the u32 that IDX stores"]);
    let err = IdxArray::new(vec![1; 256], IdxData::U8(vec![0])).unwrap_err();
    assert_has(&err.to_string(), &["256 dimensions; IDX stores at most 255"]);
}

proptest! {
    #[test]
    fn idx_round_trip_random(
        dims in prop::collection::vec(0usize..5, 0..4),
        code in prop::sample::select(vec![0x08u8, 0x09, 0x0B, 0x0C, 0x0D, 0x0E]),
        seed in any::<u64>(),
    ) {
        let n: usize = dims.iter().product();
        // Deterministic bytes from the seed, reinterpreted in the element type (so NaNs and every
        // bit pattern appear).
        let mut state = seed | 1;
        let mut next = || { state ^= state << 13; state ^= state >> 7; state ^= state << 17; state };
        let dtype = IdxType::from_code(code).unwrap();
        let mut bytes = vec![0, 0, code, dims.len() as u8];
        for &d in &dims {
            bytes.extend_from_slice(&(d as u32).to_be_bytes());
        }
        bytes.extend((0..n * dtype.size()).map(|_| next() as u8));
        let array = idx::parse_idx(&bytes).unwrap();
        prop_assert_eq!(array.dims(), &dims[..]);
        prop_assert_eq!(array.dtype(), dtype);
        prop_assert_eq!(array.len(), n);
        prop_assert_eq!(array.to_bytes(), bytes);
    }
}

// ---------------------------------------------------------------------------------------------
// IDX: errors

#[test]
fn idx_wrong_magic_shows_the_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "text.idx", b"P5\n28 28\n");
    let err = invalid(idx::read_idx(&path));
    assert_has(
        &err,
        &[&path.display().to_string(), "wrong magic number 50 35 0a 32"],
    );
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn idx_gzip_files_are_decompressed_whatever_their_name() {
    let dir = tempfile::tempdir().unwrap();
    for array in every_dtype() {
        let gz = gzip(&array.to_bytes());
        assert_eq!(idx::read_idx(write(dir.path(), "a.gz", &gz)).unwrap(), array);
        assert_eq!(
            idx::read_idx(write(dir.path(), "no-extension", &gz)).unwrap(),
            array
        );
        assert_eq!(idx::parse_idx(&gz).unwrap(), array);
    }
    // Several gzip members in one file (what `cat a.gz b.gz` makes) are one stream.
    let bytes = IdxArray::new(vec![4], IdxData::U8(vec![1, 2, 3, 4]))
        .unwrap()
        .to_bytes();
    let (head, tail) = bytes.split_at(6);
    let joined = [gzip(head), gzip(tail)].concat();
    assert_eq!(
        idx::parse_idx(&joined).unwrap().data(),
        &IdxData::U8(vec![1, 2, 3, 4])
    );
}

#[test]
fn idx_gzip_errors_count_decompressed_bytes() {
    let dir = tempfile::tempdir().unwrap();
    // The header announces 5 bytes of data; the stream holds 2, then 8.
    let short = write(dir.path(), "short.gz", gzip(&[0, 0, 0x08, 1, 0, 0, 0, 5, 1, 2]));
    assert_has(
        &invalid(idx::read_idx(&short)),
        &["short.gz (after gunzip)", "truncated", "needs 13 bytes", "has 10"],
    );
    let long = gzip(&[0, 0, 0x08, 1, 0, 0, 0, 5, 1, 2, 3, 4, 5, 6, 7, 8]);
    assert_has(
        &invalid(idx::parse_idx(&long)),
        &[
            "<bytes> (after gunzip)",
            "3 unexpected bytes",
            "needs 13 bytes",
            "has 16",
        ],
    );
    // A header announcing 2^64 - 2^33 + 1 bytes in a 12-byte stream: an error, no allocation.
    assert_has(
        &invalid(idx::parse_idx(&gzip(&[
            0, 0, 0x08, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ]))),
        &["announces 18446744065119617037 bytes", "more than the 4294967296"],
    );
    // A header cut inside the dimensions, and a wrong magic number inside the stream.
    assert_has(
        &invalid(idx::parse_idx(&gzip(&[0, 0, 0x08, 3, 0, 0]))),
        &["truncated header", "need 16 header bytes", "has 6"],
    );
    assert_has(
        &invalid(idx::parse_idx(&gzip(b"P5\n28 28\n255\n"))),
        &["(after gunzip)", "wrong magic number 50 35 0a 32"],
    );
}

#[test]
fn idx_corrupt_gzip_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let cut = write(
        dir.path(),
        "train-images-idx3-ubyte.gz",
        [0x1f, 0x8b, 0x08, 0x08, 0, 0],
    );
    assert_has(
        &invalid(idx::read_idx(&cut)),
        &[
            "train-images-idx3-ubyte.gz (after gunzip)",
            "the gzip stream is corrupt",
        ],
    );
    // A valid stream whose compressed data was damaged: the checksum or the inflater objects.
    let mut damaged = gzip(
        &IdxArray::new(vec![64], IdxData::U8((0..64).collect()))
            .unwrap()
            .to_bytes(),
    );
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0xff;
    assert_has(
        &invalid(idx::parse_idx(&damaged)),
        &["the gzip stream is corrupt"],
    );
}

#[test]
fn idx_unknown_dtype() {
    let err = invalid(idx::parse_idx(&[0, 0, 0x0A, 1, 0, 0, 0, 0]));
    assert_has(
        &err,
        &[
            "<bytes>: unknown element type 0x0a in the magic number 00 00 0a 01",
            "u8 (0x08)",
            "f64 (0x0e)",
        ],
    );
}

#[test]
fn idx_truncated_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "empty.idx", b"");
    let err = invalid(idx::read_idx(&path));
    assert_has(
        &err,
        &[&path.display().to_string(), "truncated", "the file has 0 bytes"],
    );

    let err = invalid(idx::parse_idx(&[0, 0, 8, 3, 0, 0, 0, 2, 0, 0]));
    assert_has(
        &err,
        &["truncated header: 3 dimensions need 16 header bytes, the file has 10"],
    );

    // 2 images of 2×2 need 8 + 4·3 = 20 bytes; cut the last pixel.
    let images = IdxArray::new(vec![2, 2, 2], IdxData::U8(vec![9; 8])).unwrap();
    let bytes = images.to_bytes();
    let path = write(dir.path(), "cut.idx", &bytes[..bytes.len() - 1]);
    let err = invalid(idx::read_idx(&path));
    assert_has(
        &err,
        &[
            &path.display().to_string(),
            "truncated: dimensions [2, 2, 2] of u8 (0x08) make a file that needs 24 bytes (16-byte header + 8 data bytes), the file has 23",
        ],
    );

    // i16 elements: an odd number of data bytes.
    let err = invalid(idx::parse_idx(&[0, 0, 0x0B, 1, 0, 0, 0, 2, 0, 1, 0]));
    assert_has(
        &err,
        &["needs 12 bytes (8-byte header + 4 data bytes), the file has 11"],
    );
}

#[test]
fn idx_extra_bytes_after_the_data() {
    let err = invalid(idx::parse_idx(&[0, 0, 8, 1, 0, 0, 0, 1, 5, 6, 7]));
    assert_has(
        &err,
        &[
            "2 unexpected bytes after the data",
            "needs 9 bytes",
            "the file has 11",
        ],
    );
}

#[test]
fn idx_huge_header_is_rejected_before_allocating() {
    // [u32::MAX, u32::MAX] bytes (about 1.8e19) fits usize but not memory: the size check
    // against the 12-byte file must come before any allocation.
    let mut bytes = vec![0, 0, 8, 2];
    bytes.extend_from_slice(&u32::MAX.to_be_bytes());
    bytes.extend_from_slice(&u32::MAX.to_be_bytes());
    bytes.extend_from_slice(&[1, 2, 3, 4]);
    let err = invalid(idx::parse_idx(&bytes));
    assert_has(&err, &["truncated", "the file has 16"]);
}

#[test]
fn idx_dimension_product_overflow() {
    let mut bytes = vec![0, 0, 0x0E, 4];
    for _ in 0..4 {
        bytes.extend_from_slice(&u32::MAX.to_be_bytes());
    }
    let err = invalid(idx::parse_idx(&bytes));
    assert_has(
        &err,
        &["dimensions [4294967295, 4294967295, 4294967295, 4294967295] of f64 (0x0e) overflow"],
    );
}

#[test]
fn idx_missing_file_is_an_io_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t10k-images-idx3-ubyte");
    let err = idx::read_idx(&path).unwrap_err();
    assert!(matches!(&err, Error::Io { path: p, .. } if p == &path), "{err:?}");
    assert_has(&err.to_string(), &["t10k-images-idx3-ubyte"]);
}

// ---------------------------------------------------------------------------------------------
// MNIST

fn mnist_files(dir: &Path, images: &IdxArray, labels: &IdxArray) -> (std::path::PathBuf, std::path::PathBuf) {
    let (i, l) = (dir.join("images-idx3-ubyte"), dir.join("labels-idx1-ubyte"));
    idx::write_idx(&i, images).unwrap();
    idx::write_idx(&l, labels).unwrap();
    (i, l)
}

#[test]
fn mnist_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    // Three 2×3 images with pixel p = 10·image + position, labels 9, 0, 4.
    let pixels: Vec<u8> = (0..3)
        .flat_map(|i| (0..6).map(move |p| (10 * i + p) as u8))
        .collect();
    let images = IdxArray::new(vec![3, 2, 3], IdxData::U8(pixels.clone())).unwrap();
    let labels = IdxArray::new(vec![3], IdxData::U8(vec![9, 0, 4])).unwrap();
    let (i, l) = mnist_files(dir.path(), &images, &labels);
    let ds = idx::load_mnist::<f32>(&i, &l).unwrap();
    assert_eq!(ds.features.shape(), &[3, 6]);
    let expected: Vec<f32> = pixels.iter().map(|&p| (f64::from(p) / 255.0) as f32).collect();
    assert_eq!(ds.features.to_vec(), expected);
    assert_eq!(ds.labels(), vec![9, 0, 4]);
    let full = IdxArray::new(vec![1, 1, 2], IdxData::U8(vec![0, 255])).unwrap();
    let one = IdxArray::new(vec![1], IdxData::U8(vec![1])).unwrap();
    assert_eq!(
        idx::mnist_from_arrays::<f64>(&full, &one)
            .unwrap()
            .features
            .to_vec(),
        vec![0.0, 1.0]
    );
}

#[test]
fn mnist_loads_from_gzip_files_as_distributed() {
    let dir = tempfile::tempdir().unwrap();
    let images = IdxArray::new(vec![2, 1, 2], IdxData::U8(vec![0, 255, 51, 0])).unwrap();
    let labels = IdxArray::new(vec![2], IdxData::U8(vec![7, 1])).unwrap();
    let i = write(dir.path(), "train-images-idx3-ubyte.gz", gzip(&images.to_bytes()));
    let l = write(dir.path(), "train-labels-idx1-ubyte.gz", gzip(&labels.to_bytes()));
    let ds = idx::load_mnist::<f64>(&i, &l).unwrap();
    assert_eq!(ds.features.to_vec(), vec![0.0, 1.0, 0.2, 0.0]);
    assert_eq!(ds.labels(), vec![7, 1]);
}

#[test]
fn mnist_count_mismatch_names_both_files() {
    let dir = tempfile::tempdir().unwrap();
    let images = IdxArray::new(vec![3, 2, 2], IdxData::U8(vec![0; 12])).unwrap();
    let labels = IdxArray::new(vec![2], IdxData::U8(vec![1, 2])).unwrap();
    let (i, l) = mnist_files(dir.path(), &images, &labels);
    let err = invalid(idx::load_mnist::<f32>(&i, &l));
    assert_eq!(
        err,
        format!(
            "tapegrad: invalid data: {} holds 3 images but {} holds 2 labels",
            i.display(),
            l.display()
        )
    );
}

#[test]
fn mnist_wrong_types_and_ranks() {
    let dir = tempfile::tempdir().unwrap();
    let labels = IdxArray::new(vec![2], IdxData::U8(vec![1, 2])).unwrap();
    let floats = IdxArray::new(vec![2, 1, 1], IdxData::F32(vec![0.0, 1.0])).unwrap();
    let (i, l) = mnist_files(dir.path(), &floats, &labels);
    let err = invalid(idx::load_mnist::<f32>(&i, &l));
    assert_has(
        &err,
        &[
            &i.display().to_string(),
            "MNIST images must be u8 (0x08), found f32 (0x0d)",
        ],
    );

    let flat = IdxArray::new(vec![2], IdxData::U8(vec![1, 2])).unwrap();
    let err = invalid(idx::mnist_from_arrays::<f32>(&flat, &labels));
    assert_has(
        &err,
        &["images: MNIST images need dimensions [count, rows, cols], found [2]"],
    );

    let images = IdxArray::new(vec![2, 1, 1], IdxData::U8(vec![0, 1])).unwrap();
    let labels_2d = IdxArray::new(vec![2, 1], IdxData::U8(vec![1, 2])).unwrap();
    let err = invalid(idx::mnist_from_arrays::<f32>(&images, &labels_2d));
    assert_has(
        &err,
        &["labels: MNIST labels need one dimension [count], found [2, 1]"],
    );

    let labels_i32 = IdxArray::new(vec![2], IdxData::I32(vec![1, 2])).unwrap();
    let err = invalid(idx::mnist_from_arrays::<f32>(&images, &labels_i32));
    assert_has(
        &err,
        &["labels: MNIST labels must be u8 (0x08), found i32 (0x0c)"],
    );
}

#[test]
fn mnist_missing_labels_file() {
    let dir = tempfile::tempdir().unwrap();
    let images = IdxArray::new(vec![1, 1, 1], IdxData::U8(vec![0])).unwrap();
    let i = dir.path().join("images");
    idx::write_idx(&i, &images).unwrap();
    let l = dir.path().join("train-labels-idx1-ubyte");
    let err = idx::load_mnist::<f32>(&i, &l).unwrap_err();
    assert!(matches!(&err, Error::Io { path, .. } if path == &l), "{err:?}");
}

fn three_rows() -> tapegrad::data::Dataset<f64> {
    tapegrad::data::Dataset::new(
        tapegrad::Tensor::from_vec(vec![1., 2., 3.], &[3, 1]),
        tapegrad::Tensor::from_vec(vec![0., 1., 0.], &[3]),
    )
}

#[test]
#[should_panic(expected = "tapegrad: Dataset::select: index 3 out of range for 3 examples")]
fn select_out_of_range_names_select() {
    three_rows().select(&[0, 3]);
}

#[test]
#[should_panic(expected = "tapegrad: Dataset::subset: index 7 out of range for 3 examples")]
fn subset_out_of_range_names_subset() {
    three_rows().subset(&[7]);
}

/// A fuzzing find (issue 18): an images file of no images whose header announces
/// 4294967295³ pixels each. The product of the image dimensions overflowed in the MNIST
/// conversion (a panic in checked builds, a wrong size in release ones).
#[test]
fn mnist_images_with_overflowing_dimensions_are_an_error() {
    let mut images = vec![0, 0, 0x08, 4];
    for d in [0u32, u32::MAX, u32::MAX, u32::MAX] {
        images.extend_from_slice(&d.to_be_bytes());
    }
    let labels = vec![0, 0, 0x08, 1, 0, 0, 0, 0];
    let images = idx::parse_idx(&images).expect("the header itself is valid: 0 bytes of data");
    let labels = idx::parse_idx(&labels).expect("an empty label file");
    let err = invalid(idx::mnist_from_arrays::<f32>(&images, &labels));
    assert_has(
        &err,
        &[
            "images",
            "[4294967295, 4294967295, 4294967295]",
            "more pixels than memory",
        ],
    );
}

#[test]
fn reads_stop_at_their_limit_and_errors_quote_a_bounded_excerpt() {
    // A reader without end (a pipe gone wrong) stops at the options' limit.
    let opts = CsvOptions {
        max_bytes: 1 << 16,
        ..opts()
    };
    let err = invalid(csv::from_reader::<f32, _>(std::io::repeat(b'1'), &opts));
    assert_has(&err, &["<reader>", "more than 65536 bytes"]);
    // So does a file, checked against its size before reading.
    let dir = tempfile::tempdir().unwrap();
    let big = write(dir.path(), "big.csv", vec![b'1'; 100_000]);
    let err = invalid(csv::read_csv::<f32>(&big, &opts));
    assert_has(&err, &["big.csv", "more than 65536 bytes"]);
    assert!(idx::read_idx_limited("/dev/zero", 4096).is_err());
    // A malformed field of 10 MB is quoted in a few dozen characters.
    let field = "x".repeat(10 << 20);
    let text = format!("a,b\n1,{field}\n");
    let err = invalid(csv::from_reader::<f32, _>(text.as_bytes(), &opts_unbounded()));
    assert!(err.len() < 400, "the message is {} bytes long", err.len());
    assert_has(&err, &["line 2", "column 1", "10485760 bytes in all"]);
    let quoted = format!("a\n1{}\"\n", "y".repeat(1 << 20));
    let err = invalid(csv::from_reader::<f32, _>(quoted.as_bytes(), &opts_unbounded()));
    assert!(
        err.len() < 400 && err.contains("bytes in all"),
        "{}",
        &err[..err.len().min(400)]
    );
}

fn opts_unbounded() -> CsvOptions {
    CsvOptions {
        max_bytes: u64::MAX,
        ..opts()
    }
}
