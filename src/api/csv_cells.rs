//! CSV rows that a spreadsheet opens without running anything.
//!
//! A cell whose text starts with `=`, `+`, `-`, `@`, a tab or a carriage
//! return is taken by spreadsheet programs as a formula (`=HYPERLINK(…)`,
//! `+cmd|…`, `@SUM(…)`), so a client could plant one in an export that
//! someone later opens. As OWASP recommends, such a text cell is written
//! with a `'` in front: the program shows the text instead of running it.
//!
//! Only text cells are changed. Numbers (`elapsed_seconds`, `rowcount`,
//! `pid`) are written by the service from validated numbers: `-5` or
//! `-1.5` is read as the number it is, and a `'` would turn it into text
//! that no longer sums. Datetimes are text but always start with a digit.
//!
//! Rows are taken from the record's `Serialize` implementation, so they
//! follow the same fields in the same order as every other output; each
//! value is told apart as text or number by the way it serialises.

use serde::ser::{Impossible, Serialize, SerializeStruct, Serializer};
use std::borrow::Cow;
use std::fmt::Display;

/// First characters that make a spreadsheet read a cell as a formula.
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// `text`, with a `'` in front when a spreadsheet would run it.
pub fn neutralised(text: &str) -> Cow<'_, str> {
    if text.starts_with(FORMULA_STARTS) {
        Cow::Owned(format!("'{text}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// Writes `record` (a struct) as one row: its fields in order, as the
/// `csv` crate would write them, text cells neutralised when asked.
pub fn write_row<T: Serialize>(
    writer: &mut csv::Writer<Vec<u8>>,
    record: &T,
    neutralise_formulas: bool,
) -> csv::Result<()> {
    let mut row = Row::default();
    record
        .serialize(CellSerializer {
            row: &mut row,
            in_row: false,
        })
        .map_err(|error| csv::Error::from(std::io::Error::other(error.0)))?;
    let mut start = 0;
    for &(end, kind) in &row.cells {
        let cell = &row.text[start..end];
        start = end;
        match kind {
            Kind::Text if neutralise_formulas => {
                writer.write_field(neutralised(cell).as_bytes())?
            }
            Kind::Text | Kind::Verbatim => writer.write_field(cell)?,
        }
    }
    writer.write_record(None::<&[u8]>)
}

/// The cells of one row, back to back in one string.
#[derive(Default)]
struct Row {
    text: String,
    /// Where each cell ends in `text`, and what it holds.
    cells: Vec<(usize, Kind)>,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    /// Text from the record: may need neutralising.
    Text,
    /// A number, a boolean or an empty cell, written as it is.
    Verbatim,
}

impl Row {
    fn push(&mut self, kind: Kind, value: &str) {
        self.text.push_str(value);
        self.cells.push((self.text.len(), kind));
    }
}

/// A value that cannot be a CSV cell (a list, a map…).
#[derive(Debug)]
struct NotACell(String);

impl Display for NotACell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotACell {}

impl serde::ser::Error for NotACell {
    fn custom<T: Display>(message: T) -> Self {
        Self(message.to_string())
    }
}

fn not_a_cell<T>(what: &str) -> Result<T, NotACell> {
    Err(NotACell(format!("a {what} cannot be a CSV cell")))
}

/// Adds a value to the row as one cell; at the top, only a struct (the
/// row itself) is accepted.
struct CellSerializer<'a> {
    row: &'a mut Row,
    in_row: bool,
}

impl CellSerializer<'_> {
    fn cell(self, kind: Kind, value: &str) -> Result<(), NotACell> {
        if !self.in_row {
            return not_a_cell("row that is not a struct");
        }
        self.row.push(kind, value);
        Ok(())
    }
}

/// The fields of the struct that makes the row.
struct RowFields<'a>(&'a mut Row);

impl SerializeStruct for RowFields<'_> {
    type Ok = ();
    type Error = NotACell;

    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        _key: &'static str,
        value: &T,
    ) -> Result<(), NotACell> {
        value.serialize(CellSerializer {
            row: self.0,
            in_row: true,
        })
    }

    fn end(self) -> Result<(), NotACell> {
        Ok(())
    }
}

macro_rules! verbatim_integers {
    ($($method:ident: $type:ty),*) => {$(
        fn $method(self, value: $type) -> Result<(), NotACell> {
            self.cell(Kind::Verbatim, itoa::Buffer::new().format(value))
        }
    )*};
}

impl<'a> Serializer for CellSerializer<'a> {
    type Ok = ();
    type Error = NotACell;
    type SerializeSeq = Impossible<(), NotACell>;
    type SerializeTuple = Impossible<(), NotACell>;
    type SerializeTupleStruct = Impossible<(), NotACell>;
    type SerializeTupleVariant = Impossible<(), NotACell>;
    type SerializeMap = Impossible<(), NotACell>;
    type SerializeStruct = RowFields<'a>;
    type SerializeStructVariant = Impossible<(), NotACell>;

    verbatim_integers!(
        serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64,
        serialize_u8: u8, serialize_u16: u16, serialize_u32: u32, serialize_u64: u64
    );

    fn serialize_bool(self, value: bool) -> Result<(), NotACell> {
        self.cell(Kind::Verbatim, if value { "true" } else { "false" })
    }
    fn serialize_f32(self, value: f32) -> Result<(), NotACell> {
        self.cell(Kind::Verbatim, ryu::Buffer::new().format(value))
    }
    fn serialize_f64(self, value: f64) -> Result<(), NotACell> {
        self.cell(Kind::Verbatim, ryu::Buffer::new().format(value))
    }
    fn serialize_char(self, value: char) -> Result<(), NotACell> {
        self.cell(Kind::Text, value.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(self, value: &str) -> Result<(), NotACell> {
        self.cell(Kind::Text, value)
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<(), NotACell> {
        not_a_cell("byte string")
    }
    fn serialize_none(self) -> Result<(), NotACell> {
        self.cell(Kind::Verbatim, "")
    }
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<(), NotACell> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), NotACell> {
        self.cell(Kind::Verbatim, "")
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), NotACell> {
        self.cell(Kind::Verbatim, "")
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), NotACell> {
        self.cell(Kind::Text, variant)
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), NotACell> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), NotACell> {
        not_a_cell("enum value")
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, NotACell> {
        not_a_cell("list")
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, NotACell> {
        not_a_cell("tuple")
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, NotACell> {
        not_a_cell("tuple")
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, NotACell> {
        not_a_cell("enum value")
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, NotACell> {
        not_a_cell("map")
    }
    fn serialize_struct(
        self,
        _: &'static str,
        fields: usize,
    ) -> Result<Self::SerializeStruct, NotACell> {
        if self.in_row {
            return not_a_cell("nested struct");
        }
        self.row.text.reserve(fields * 32);
        self.row.cells.reserve(fields);
        Ok(RowFields(self.row))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, NotACell> {
        not_a_cell("enum value")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize)]
    struct Sample {
        text: &'static str,
        count: i64,
        seconds: f64,
        missing: Option<String>,
        present: Option<&'static str>,
        flag: bool,
    }

    fn row(sample: &Sample, neutralise: bool) -> String {
        let mut writer = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(Vec::new());
        write_row(&mut writer, sample, neutralise).unwrap();
        String::from_utf8(writer.into_inner().unwrap()).unwrap()
    }

    fn as_csv_writes_it(sample: &Sample) -> String {
        let mut writer = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(Vec::new());
        writer.serialize(sample).unwrap();
        String::from_utf8(writer.into_inner().unwrap()).unwrap()
    }

    #[test]
    fn cells_starting_a_formula_get_a_quote_and_others_do_not() {
        for (text, expected) in [
            ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
            ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("plain", "plain"),
            ("a=b", "a=b"),
            ("", ""),
            ("'quoted", "'quoted"),
        ] {
            assert_eq!(neutralised(text), expected, "{text:?}");
        }
    }

    #[test]
    fn rows_neutralise_text_but_never_numbers() {
        let sample = Sample {
            text: "=1+1",
            count: -5,
            seconds: -1.5,
            missing: None,
            present: Some("@home"),
            flag: true,
        };
        assert_eq!(row(&sample, true), "'=1+1,-5,-1.5,,'@home,true\n");
        assert_eq!(row(&sample, false), as_csv_writes_it(&sample));
        let quoted = Sample {
            text: "-\"a\",b",
            seconds: 1e21,
            ..sample
        };
        assert_eq!(
            row(&quoted, true),
            "\"'-\"\"a\"\",b\",-5,1e21,,'@home,true\n"
        );
        assert_eq!(row(&quoted, false), as_csv_writes_it(&quoted));
    }

    #[test]
    fn only_structs_are_rows() {
        let mut writer = csv::Writer::from_writer(Vec::new());
        assert!(write_row(&mut writer, &vec![1, 2], true).is_err());
        assert!(write_row(&mut writer, &"text", true).is_err());
    }
}
