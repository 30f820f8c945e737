//! [`PgServer`]: the accept loop of the PostgreSQL endpoint.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_pg_catalog::pg_catalog::setup_pg_catalog;
use holo_sql::SqlEngine;
use holo_sql::catalog::keys::DATABASE_NAME;
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};

use crate::connection::{self, Admission};
use crate::handler::HoloHandlers;

/// Endpoint options.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Most concurrent sessions (0 = unlimited); more are refused with
    /// FATAL 53300.
    pub max_connections: usize,
    /// Time a client has from connecting to finishing startup.
    pub startup_timeout: Duration,
    /// Most connections still in their startup phase; a new one evicts the
    /// oldest, so silent sockets cannot lock clients out.
    pub max_pending_startups: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_connections: 512,
            startup_timeout: Duration::from_secs(10),
            max_pending_startups: 256,
        }
    }
}

/// Connections in their startup phase, oldest first.
#[derive(Default)]
struct Pending {
    queue: Mutex<VecDeque<(u64, Arc<Notify>)>>,
    next: AtomicU64,
}

impl Pending {
    /// Registers a new handshake, evicting the oldest beyond `cap`.
    fn admit(self: &Arc<Self>, cap: usize) -> (u64, Arc<Notify>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let notify = Arc::new(Notify::new());
        let mut queue = self.queue.lock();
        while queue.len() >= cap.max(1) {
            if let Some((_, oldest)) = queue.pop_front() {
                oldest.notify_one();
            }
        }
        queue.push_back((id, notify.clone()));
        (id, notify)
    }

    fn done(&self, id: u64) {
        self.queue.lock().retain(|(i, _)| *i != id);
    }
}

/// The PostgreSQL endpoint of a node.
pub struct PgServer {
    listener: TcpListener,
    handlers: Arc<HoloHandlers>,
    options: ServerOptions,
}

impl std::fmt::Debug for PgServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgServer")
            .field("addr", &self.listener.local_addr().ok())
            .finish()
    }
}

impl PgServer {
    /// Binds `addr` and prepares the handlers (registers `pg_catalog`).
    pub async fn bind(
        addr: SocketAddr,
        engine: Arc<SqlEngine>,
        options: ServerOptions,
    ) -> std::io::Result<PgServer> {
        setup_pg_catalog(engine.base_context(), DATABASE_NAME, EmptyContextProvider)
            .map_err(|e| std::io::Error::other(format!("pg_catalog setup: {e}")))?;
        holo_sql::pg_catalog::install(engine.base_context(), engine.catalog().clone())
            .map_err(|e| std::io::Error::other(format!("pg_catalog setup: {}", e.message)))?;
        let listener = TcpListener::bind(addr).await?;
        Ok(PgServer {
            listener,
            handlers: Arc::new(HoloHandlers::new(engine)),
            options,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts connections until the task is dropped.
    pub async fn run(self) {
        let limit = (self.options.max_connections > 0)
            .then(|| Arc::new(Semaphore::new(self.options.max_connections)));
        let pending = Arc::new(Pending::default());
        loop {
            let (socket, peer) = match self.listener.accept().await {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            };
            let (id, notify) = pending.admit(self.options.max_pending_startups);
            let limit = limit.clone();
            let acquire = Box::new(move || -> Option<Box<dyn Send>> {
                match limit {
                    Some(sem) => match sem.try_acquire_owned() {
                        Ok(permit) => Some(Box::new(permit)),
                        Err(_) => {
                            tracing::warn!(%peer, "connection refused: too many connections");
                            None
                        }
                    },
                    None => Some(Box::new(())),
                }
            });
            let done = pending.clone();
            let admission = Admission {
                acquire,
                startup_timeout: self.options.startup_timeout,
                evicted: Box::pin(async move { notify.notified().await }),
                started: Box::new(move || done.done(id)),
            };
            tokio::spawn(connection::serve(socket, self.handlers.clone(), admission));
        }
    }
}
