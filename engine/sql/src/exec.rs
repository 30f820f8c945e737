//! Execution pieces HoloFusion adds to DataFusion: primary-key span
//! derivation ([`pushdown`]), the storage scan ([`scan`]), DML ([`dml`],
//! with the fast paths in [`fast`]) and the row and index writes both
//! produce (`row_writes`).

pub mod access;
pub mod dml;
pub mod fast;
pub(crate) mod fk_actions;
pub(crate) mod foreign_keys;
mod join_filter;
pub mod pushdown;
pub(crate) mod row_writes;
pub mod scan;
mod scan_read;
