//! MVCC primitives: [`reader::MvccReader`] reads versions at a timestamp,
//! [`txn::MvccTxn`] collects the writes of one command into a batch.

pub mod reader;
pub mod txn;
