//! HoloFusion's PostgreSQL wire endpoint: pgwire handlers that parse SQL,
//! run it in a per-connection [`holo_sql::Session`] and encode Arrow results
//! (via arrow-pg), with every error sent as an `ErrorResponse` carrying its
//! SQLSTATE. psql's and drivers' catalog queries are served by
//! datafusion-pg-catalog's `pg_catalog` schema.

mod connection;
mod encode;
pub mod frame;
mod handler;
mod server;
pub mod text_format;

pub use handler::{HoloHandlers, SessionHandle};
pub use server::{PgServer, ServerOptions};
