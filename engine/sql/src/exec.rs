//! Execution pieces HoloFusion adds to DataFusion: primary-key span
//! derivation ([`pushdown`]), the storage scan ([`scan`]) and DML
//! ([`dml`]).

pub mod dml;
pub mod fast;
pub mod pushdown;
pub mod scan;
