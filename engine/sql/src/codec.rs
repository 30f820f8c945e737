//! Byte codecs of table data: order-preserving key tuples ([`key`]) and the
//! versioned row value format ([`row`]), both working directly on Arrow
//! arrays ([`column`]).

pub mod column;
pub mod key;
pub mod row;
