//! Rows written by column name: an INSERT's column list and its binds come from one list of
//! (column, value) pairs, so a value can only go to the column it names (a 27-value row once
//! had to match a column list in another file by position).

use sqlx::{Database, Encode, QueryBuilder, Type};

/// One value of a named row. The store keeps times as microseconds and ids as text, so two
/// shapes are all it writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cell {
    Int(Option<i64>),
    Text(Option<String>),
}

impl From<i64> for Cell {
    fn from(v: i64) -> Self {
        Self::Int(Some(v))
    }
}

impl From<Option<i64>> for Cell {
    fn from(v: Option<i64>) -> Self {
        Self::Int(v)
    }
}

impl From<String> for Cell {
    fn from(v: String) -> Self {
        Self::Text(Some(v))
    }
}

impl From<Option<String>> for Cell {
    fn from(v: Option<String>) -> Self {
        Self::Text(v)
    }
}

impl From<Option<&str>> for Cell {
    fn from(v: Option<&str>) -> Self {
        Self::Text(v.map(str::to_owned))
    }
}

/// A row as (column, value) pairs, in the order they are written.
pub(crate) type NamedRow = Vec<(&'static str, Cell)>;

/// The column names of a row, as an INSERT lists them.
pub(crate) fn column_list(row: &NamedRow) -> String {
    row.iter().map(|(c, _)| *c).collect::<Vec<_>>().join(", ")
}

/// `INSERT INTO {table} ({columns}) VALUES (…), (…)` for rows that all name the same columns
/// in the same order (rows are built by one function each; checked in debug builds). The
/// caller appends what follows (an upsert clause) and executes it.
pub(crate) fn insert<'a, DB>(table: &str, rows: &'a [NamedRow]) -> QueryBuilder<'a, DB>
where
    DB: Database,
    DB::Arguments<'a>: Default,
    Option<i64>: Encode<'a, DB> + Type<DB>,
    Option<&'a str>: Encode<'a, DB> + Type<DB>,
{
    let columns = rows.first().map(column_list).unwrap_or_default();
    let mut qb = QueryBuilder::new(format!("INSERT INTO {table} ({columns}) "));
    qb.push_values(rows, |mut values, row| {
        debug_assert_eq!(column_list(row), columns, "rows of one INSERT differ");
        for (_, cell) in row {
            match cell {
                Cell::Int(v) => values.push_bind(*v),
                Cell::Text(v) => values.push_bind(v.as_deref()),
            };
        }
    });
    qb
}
