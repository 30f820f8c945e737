//! [`PgServer`]: the accept loop of the PostgreSQL endpoint.

use std::net::SocketAddr;
use std::sync::Arc;

use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::setup_pg_catalog;
use holo_sql::SqlEngine;
use holo_sql::catalog::keys::DATABASE_NAME;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::handler::HoloHandlers;

/// Endpoint options.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Most concurrent connections (0 = unlimited); more are refused.
    pub max_connections: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_connections: 512,
        }
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
        loop {
            let (socket, peer) = match self.listener.accept().await {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            };
            let permit = match &limit {
                Some(sem) => match sem.clone().try_acquire_owned() {
                    Ok(p) => Some(p),
                    Err(_) => {
                        tracing::warn!(%peer, "connection refused: too many connections");
                        drop(socket);
                        continue;
                    }
                },
                None => None,
            };
            let _ = socket.set_nodelay(true);
            let handlers = self.handlers.clone();
            tokio::spawn(async move {
                let _permit = permit;
                if let Err(e) = pgwire::tokio::process_socket(socket, None, handlers).await {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
            });
        }
    }
}
