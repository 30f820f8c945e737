//! Starting a node: the cluster node (one voter with `--single-node`), the
//! SQL engine on its KV client, the PostgreSQL endpoint.

use std::net::SocketAddr;
use std::sync::Arc;

use holo_cluster::admin::ClusterAdminImpl;
use holo_cluster::{ClusterConfig, ClusterNode, RaftTuning};
use holo_kv::service::ClusterAdmin;
use holo_pg_server::{PgServer, ServerOptions};
use holo_sql::{SqlEngine, SqlOptions};
use holo_storage::EngineOptions;

use crate::cli::{Cli, Command, StartArgs};

/// Errors that stop the node.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// A flag combination is not supported.
    #[error("invalid arguments: {0}")]
    Args(String),
    /// The SQL layer could not start.
    #[error("starting the SQL layer: {0}")]
    Sql(#[from] holo_sql::SqlError),
    /// The cluster node could not start.
    #[error("starting the cluster node: {0}")]
    Cluster(#[from] holo_cluster::StartError),
    /// The PostgreSQL endpoint could not listen.
    #[error("listening on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// Runs the command.
pub async fn run(cli: Cli) -> Result<(), NodeError> {
    match cli.command {
        Command::Start(args) => start(args).await,
    }
}

async fn start(args: StartArgs) -> Result<(), NodeError> {
    if args.gc_interval < std::time::Duration::from_secs(1) {
        return Err(NodeError::Args("--gc-interval must be at least 1s".into()));
    }
    let engine_options = EngineOptions {
        sync_writes: !args.no_sync_writes,
        block_cache_bytes: args.block_cache_mib << 20,
        ..EngineOptions::default()
    };
    // Boxed: the node's start-up future is deep enough to exceed the
    // compiler's layout recursion limit when inlined into `run`.
    if args.single_node {
        Box::pin(start_single(args, engine_options)).await
    } else {
        Box::pin(start_cluster(args, engine_options)).await
    }
}

/// `--single-node`: a one-voter cluster, served by the same range, Raft,
/// latch, timestamp and GC code as a replicated one.
async fn start_single(args: StartArgs, engine_options: EngineOptions) -> Result<(), NodeError> {
    if args.bootstrap || !args.join.is_empty() || args.node_id.is_some_and(|id| id != 1) {
        return Err(NodeError::Args(
            "--single-node cannot be combined with --bootstrap, --join or a --node-id other than 1"
                .into(),
        ));
    }
    let mut config = cluster_config(&args, 1, engine_options)?;
    config.bootstrap = true;
    config.listen = args
        .listen
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
    serve_node(&args, config).await
}

async fn start_cluster(args: StartArgs, engine_options: EngineOptions) -> Result<(), NodeError> {
    let Some(node_id) = args.node_id else {
        return Err(NodeError::Args(
            "a cluster node needs --node-id (or use --single-node)".into(),
        ));
    };
    let config = cluster_config(&args, node_id, engine_options)?;
    serve_node(&args, config).await
}

/// The node's configuration from its flags.
fn cluster_config(
    args: &StartArgs,
    node_id: u64,
    engine: EngineOptions,
) -> Result<ClusterConfig, NodeError> {
    if args.raft_heartbeat_ms < 10 {
        return Err(NodeError::Args(
            "--raft-heartbeat-ms must be at least 10".into(),
        ));
    }
    Ok(ClusterConfig {
        node_id,
        data_dir: args.data_dir.clone(),
        engine,
        listen: args
            .listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 26257))),
        advertise: args.advertise.clone(),
        pg_addr: args
            .pg_advertise
            .clone()
            .unwrap_or_else(|| args.pg_listen.to_string()),
        join: args.join.clone(),
        bootstrap: args.bootstrap,
        replication_factor: args.replication_factor,
        split_size_bytes: args.split_size_mib << 20,
        split_load_qps: args.split_load_qps,
        dead_node_after: std::time::Duration::from_secs(args.dead_node_secs),
        gc_interval: args.gc_interval,
        gc_ttl: args.gc_ttl,
        raft: RaftTuning {
            heartbeat_ms: args.raft_heartbeat_ms,
            election_min_ms: args.raft_heartbeat_ms * 6,
            election_max_ms: args.raft_heartbeat_ms * 12,
            snapshot_every: args.raft_snapshot_every,
            logs_to_keep: (args.raft_snapshot_every / 10).max(10),
        },
    })
}

/// Starts the cluster node, then the SQL layer and the PostgreSQL endpoint
/// on it.
async fn serve_node(args: &StartArgs, config: ClusterConfig) -> Result<(), NodeError> {
    let node_id = config.node_id;
    let node = ClusterNode::start(config).await?;
    tracing::info!(node_id, rpc = %node.addr().rpc, "cluster node started");
    let admin: Arc<dyn ClusterAdmin> = Arc::new(ClusterAdminImpl::new(&node));
    let engine = SqlEngine::new(
        node.kv(),
        SqlOptions {
            admin: Some(admin),
            node_id,
            ..SqlOptions::default()
        },
    )
    .await?;
    serve_sql(args, engine, node_id).await
}

async fn serve_sql(
    args: &StartArgs,
    engine: Arc<SqlEngine>,
    node_id: u64,
) -> Result<(), NodeError> {
    let server = PgServer::bind(
        args.pg_listen,
        engine,
        ServerOptions {
            max_connections: args.max_connections,
            startup_timeout: args.startup_timeout,
            max_pending_startups: usize::try_from(args.max_pending_startups).unwrap_or(usize::MAX),
        },
    )
    .await
    .map_err(|source| NodeError::Listen {
        addr: args.pg_listen,
        source,
    })?;
    let addr = server.local_addr().map_err(|source| NodeError::Listen {
        addr: args.pg_listen,
        source,
    })?;
    tracing::info!(%addr, data_dir = %args.data_dir.display(), "node started");
    // Readiness line on stdout: scripts and the harness wait for it.
    println!("holo-fusion ready pg={addr} node_id={node_id}");
    tokio::select! {
        _ = server.run() => {}
        _ = shutdown_signal() => {
            tracing::info!("shutting down");
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
