//! [`blocking`]: runs blocking or long CPU-bound work (RocksDB writes and
//! fsyncs, large in-memory passes) from async code without stalling the
//! runtime's other tasks (Raft heartbeats among them).

/// Runs `f`; on a multi-threaded runtime the worker hands its other tasks
/// to another thread while `f` runs.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// Runs the future `fut` to completion like [`blocking`]: for long
/// CPU-bound passes that await only rarely (e.g. a lookup in a cache). On a
/// current-thread runtime it is simply awaited.
pub async fn blocking_future<T>(fut: impl std::future::Future<Output = T>) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| h.block_on(fut))
        }
        _ => fut.await,
    }
}
