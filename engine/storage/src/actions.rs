//! Percolator primitives, one file per action. Each action reads through an
//! [`crate::MvccReader`] and records its writes in an [`crate::mvcc::txn::MvccTxn`];
//! none of them writes to the engine directly.

pub mod check_txn_status;
pub mod commit;
pub mod gc;
pub mod one_pc;
pub mod prewrite;
pub mod resolve_lock;
pub mod rollback;
