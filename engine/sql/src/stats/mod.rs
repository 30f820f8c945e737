//! Table statistics for the planner: what `ANALYZE` collects per table
//! ([`collect`]), how it is stored (`0x02 "table_stats/" <table id>`, JSON,
//! read by every node at each catalog load), and the selectivity of a
//! predicate that the planner estimates from it ([`estimate`]).
//!
//! Column values are kept in their key encoding (`codec::key`, without the
//! tag byte): byte order is value order, so histogram bounds and most
//! common values compare with a predicate's literal encoded the same way.
//! Statistics are refreshed by [`auto`] after enough of a table changed.

pub mod auto;
pub mod collect;
pub mod estimate;

use serde::{Deserialize, Serialize};

/// Buckets of a column's histogram.
pub const HISTOGRAM_BUCKETS: usize = 100;
/// Most common values kept per column.
pub const MAX_MCV: usize = 100;
/// Rows sampled per table (PostgreSQL's default, 300 x 100).
pub const SAMPLE_ROWS: usize = 30_000;

/// The statistics of one table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableStats {
    /// The table.
    pub table_id: u32,
    /// Rows counted.
    pub row_count: u64,
    /// When they were collected (ms since the epoch).
    pub analyzed_at_ms: u64,
    /// Rows sampled for the value distributions.
    pub sampled: u64,
    /// Per column (visible columns at collection time).
    pub columns: Vec<ColumnStats>,
}

/// The statistics of one column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnStats {
    /// The column's id.
    pub column_id: u32,
    /// Fraction of rows that are NULL.
    pub null_frac: f64,
    /// Estimated number of distinct non-NULL values.
    pub distinct: f64,
    /// Average size of a non-NULL value in bytes (key encoding).
    pub avg_width: f64,
    /// Most common values (key-encoded) with the fraction of all rows
    /// holding each, most common first.
    #[serde(default)]
    pub mcv: Vec<(Vec<u8>, f64)>,
    /// Bounds of equal-count buckets of the values that are not among the
    /// most common ones (key-encoded, ascending, buckets + 1 of them).
    #[serde(default)]
    pub histogram: Vec<Vec<u8>>,
}

impl TableStats {
    /// The statistics of column `id`.
    pub fn column(&self, id: u32) -> Option<&ColumnStats> {
        self.columns.iter().find(|c| c.column_id == id)
    }
}
