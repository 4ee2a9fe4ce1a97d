//! CSV tables as flickertag writes them (`filters.csv`, `control.csv`, ...): through the
//! `csv` crate, so that a field holding a comma, a quote or a newline (an ONNX tensor or
//! module name can) is quoted, and with every number at round-trip precision (Rust's
//! shortest representation that reads back to the same `f64`/`f32`), so that a table
//! read back with pandas or numpy holds the values flickertag computed, not rounded text.
//! NaN is written `NaN` (pandas reads it as NaN); `None` as an empty field.

/// A CSV table being written into memory.
pub struct Table {
    w: csv::Writer<Vec<u8>>,
}

impl Table {
    /// A table with this header row.
    pub fn new<S: AsRef<str>>(header: &[S]) -> Table {
        let mut w = csv::WriterBuilder::new().terminator(csv::Terminator::Any(b'\n')).from_writer(Vec::new());
        w.write_record(header.iter().map(|h| h.as_ref())).expect("writing to memory");
        Table { w }
    }

    /// Appends one row (as many fields as the header).
    pub fn row<I, S>(&mut self, fields: I)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        self.w.write_record(fields).expect("writing to memory");
    }

    /// The table's bytes.
    pub fn finish(self) -> Vec<u8> {
        self.w.into_inner().expect("writing to memory")
    }

    /// The table as text (CSV of UTF-8 fields is UTF-8).
    pub fn into_string(self) -> String {
        String::from_utf8(self.finish()).expect("UTF-8 fields")
    }
}

/// A value as written in a table: numbers at round-trip precision (the shortest text
/// that reads back to the same value; `1e-7` rather than `0.0000001` below 1e-4 and
/// from 1e15 on; `NaN`, `inf`, `-inf` as Rust writes them), anything else by `Display`.
pub fn num(x: impl Into<Num>) -> String {
    match x.into() {
        Num::F(v) if v != 0.0 && v.is_finite() && !(1e-4..1e15).contains(&v.abs()) => format!("{v:e}"),
        Num::F32(v) if v != 0.0 && v.is_finite() && !(1e-4..1e15).contains(&v.abs()) => format!("{v:e}"),
        Num::F(v) => v.to_string(),
        Num::F32(v) => v.to_string(),
        Num::Other(s) => s,
    }
}

/// What [`num`] takes: a float (written at round-trip precision) or another value.
pub enum Num {
    /// An `f64`.
    F(f64),
    /// An `f32` (round trip to `f32`).
    F32(f32),
    /// Anything else, already as text.
    Other(String),
}

impl From<f64> for Num {
    fn from(v: f64) -> Num {
        Num::F(v)
    }
}

impl From<f32> for Num {
    fn from(v: f32) -> Num {
        Num::F32(v)
    }
}

macro_rules! as_text {
    ($($t:ty),*) => {$(impl From<$t> for Num {
        fn from(v: $t) -> Num {
            Num::Other(v.to_string())
        }
    })*};
}
as_text!(usize, u64, u32, i64, i32, bool);

/// An optional value: empty when `None`.
pub fn opt<T: std::fmt::Display>(x: Option<T>) -> String {
    x.map(|v| v.to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_commas_and_quotes_are_quoted_and_numbers_round_trip() {
        let mut t = Table::new(&["tap", "value"]);
        let x = 0.1f64 + 0.2;
        t.row([r#"blocks.0/Add,"1""#.to_string(), num(x)]);
        t.row(["plain".to_string(), num(f64::NAN)]);
        let s = t.into_string();
        assert_eq!(s, "tap,value\n\"blocks.0/Add,\"\"1\"\"\",0.30000000000000004\nplain,NaN\n");
        assert_eq!(num(8.706420424365363e-7), "8.706420424365363e-7");
        assert_eq!(num(8.706420424365363e-7).parse::<f64>().unwrap(), 8.706420424365363e-7);
        assert_eq!(
            (num(0.0), num(1.5f32), num(3usize), num(true)),
            ("0".into(), "1.5".into(), "3".into(), "true".into())
        );
        let mut r = csv::Reader::from_reader(s.as_bytes());
        let rows: Vec<csv::StringRecord> = r.records().map(|r| r.unwrap()).collect();
        assert_eq!(&rows[0][0], r#"blocks.0/Add,"1""#);
        assert_eq!(rows[0][1].parse::<f64>().unwrap(), x);
    }
}
