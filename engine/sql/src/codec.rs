//! Byte codecs of table data: order-preserving key tuples ([`key`]), the
//! versioned row value format ([`row`]) and secondary index entries
//! ([`index`], read back by [`index_decode`]), all working directly on
//! Arrow arrays ([`column`]).

pub mod column;
pub mod index;
pub mod index_decode;
pub mod key;
pub mod row;
