//! MVCC primitives: [`reader::MvccReader`] reads versions at a timestamp,
//! [`txn::MvccTxn`] collects the writes of one command into a batch,
//! [`join::BatchJoin`] joins the batches of several commands into one.

pub mod join;
pub mod reader;
pub mod txn;
