//! Automatic ANALYZE: each node counts the rows its statements write per
//! table ([`crate::catalog::Catalog::note_writes`]) and, every
//! [`CHECK_EVERY`], collects the statistics of the tables whose count
//! passed a fifth of their analyzed rows (at least [`MIN_CHANGED_ROWS`]),
//! as CockroachDB refreshes them after about a fifth of a table changed.

use std::sync::Arc;
use std::time::Duration;

use crate::catalog::{Catalog, TableEntry};
use crate::interrupt::Interrupt;

/// How often a node looks for tables to analyze.
pub const CHECK_EVERY: Duration = Duration::from_secs(10);
/// Rows a table must have had written before it is analyzed again.
pub const MIN_CHANGED_ROWS: u64 = 1000;
/// The fraction of a table's analyzed rows that must have changed.
pub const CHANGED_FRACTION: f64 = 0.2;

/// Rows written after which `entry` is analyzed again.
pub fn due(entry: &TableEntry) -> u64 {
    let analyzed = entry.stats.as_ref().map_or(0, |s| s.row_count);
    MIN_CHANGED_ROWS.max((analyzed as f64 * CHANGED_FRACTION) as u64)
}

/// Starts the loop for `catalog` (it ends with the catalog).
pub fn spawn(catalog: &Arc<Catalog>) {
    let weak = Arc::downgrade(catalog);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(CHECK_EVERY).await;
            let Some(catalog) = weak.upgrade() else {
                return;
            };
            for entry in catalog.take_modified(due) {
                let name = entry.desc.name.clone();
                match super::collect::run(&catalog, Some(&name), &Interrupt::none()).await {
                    Ok(()) => tracing::info!(table = %name, "statistics refreshed"),
                    // A table dropped or a range unavailable meanwhile: the
                    // next writes bring it back.
                    Err(e) => {
                        tracing::debug!(table = %name, error = %e, "automatic ANALYZE failed")
                    }
                }
            }
        }
    });
}
