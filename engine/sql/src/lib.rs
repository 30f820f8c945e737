//! HoloFusion's SQL layer: the catalog persisted in HoloStore, the key and
//! row codecs, DataFusion integration (table provider, storage scan with
//! primary-key pushdown) and statement execution for one session.
//!
//! The wire protocol lives in `holo-pg-server`; this crate takes parsed
//! statements and returns Arrow record batches or command tags, every error
//! carrying a PostgreSQL SQLSTATE ([`error::SqlError`]).

pub mod catalog;
pub mod codec;
pub mod ddl;
pub mod engine;
pub mod error;
pub mod exec;
pub mod insert_plan;
pub mod interrupt;
mod interruptible;
pub mod jobs;
pub mod limits;
pub mod metrics;
pub mod parse;
pub mod pg_catalog;
pub mod planner;
pub mod ranges;
pub mod sequences;
pub mod session;
pub mod stats;
pub mod types;

pub use engine::{SqlEngine, SqlOptions};
pub use error::{SqlError, SqlResult, sqlstate};
pub use metrics::{TxnMetrics, TxnMetricsSnapshot};
pub use session::{Described, PreparedStatement, Session, StatementOutput, TxnStatus};
pub use types::SqlType;
