//! Where a workload runs: an embedded cluster of `holo-fusion` processes, a
//! containerized cluster, a private PostgreSQL, or any server by URL.

pub mod docker;
pub mod embedded;
pub mod postgres;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio_postgres::{Client, NoTls};

use crate::error::HarnessError;
use crate::spec::Flavor;

/// Which target to run on, from `--target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSpec {
    /// `holo-fusion` processes on loopback ports (default).
    Embedded,
    /// `holo-fusion` containers on a private Docker network.
    Docker,
    /// A private PostgreSQL from the `postgresql` package.
    Postgres,
    /// Any PostgreSQL-wire server.
    Url(String),
}

impl TargetSpec {
    /// Parses `--target`.
    pub fn parse(s: &str) -> Result<TargetSpec, HarnessError> {
        match s {
            "embedded" => Ok(TargetSpec::Embedded),
            "docker" => Ok(TargetSpec::Docker),
            "postgres" => Ok(TargetSpec::Postgres),
            url if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                url.parse::<tokio_postgres::Config>()
                    .map_err(|e| HarnessError::Flag {
                        flag: "target".into(),
                        reason: format!("invalid URL: {e}"),
                    })?;
                Ok(TargetSpec::Url(url.to_string()))
            }
            other => Err(HarnessError::Flag {
                flag: "target".into(),
                reason: format!(
                    "expected embedded, docker, postgres or a postgres:// URL, got {other:?}"
                ),
            }),
        }
    }

    /// The kind name used in reports.
    pub fn kind(&self) -> &'static str {
        match self {
            TargetSpec::Embedded => "embedded",
            TargetSpec::Docker => "docker",
            TargetSpec::Postgres => "postgres",
            TargetSpec::Url(_) => "url",
        }
    }
}

/// Options shared by target starters.
#[derive(Debug, Clone)]
pub struct TargetOptions {
    /// Nodes of a HoloFusion cluster.
    pub nodes: usize,
    /// The `holo-fusion` binary (found or built when absent).
    pub node_binary: Option<PathBuf>,
    /// Sync the WAL on every commit (default true: durable like PostgreSQL).
    pub sync_writes: bool,
}

/// Describes the target in reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetInfo {
    /// embedded, docker, postgres or url.
    pub kind: String,
    /// holofusion or postgres.
    pub flavor: Flavor,
    /// Number of nodes.
    pub nodes: usize,
    /// `SHOW server_version` (or `version()`).
    pub server_version: String,
    /// Where clients connect (passwords removed).
    pub endpoints: Vec<String>,
}

/// One connection attempt with `config`; the connection runs in the
/// background until the client is dropped.
pub async fn connect_once(
    config: &tokio_postgres::Config,
) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "connection closed");
        }
    });
    Ok(client)
}

/// A running target; dropping it stops what the harness started.
pub struct Target {
    /// Report description.
    pub info: TargetInfo,
    configs: Vec<tokio_postgres::Config>,
    _guard: Box<dyn Send + Sync>,
}

impl Target {
    /// Starts (or reaches) the target.
    pub async fn start(spec: &TargetSpec, opts: &TargetOptions) -> Result<Target, HarnessError> {
        let (configs, flavor, guard): (Vec<tokio_postgres::Config>, Flavor, Box<dyn Send + Sync>) =
            match spec {
                TargetSpec::Embedded => {
                    let cluster = embedded::EmbeddedCluster::start(opts).await?;
                    (cluster.configs(), Flavor::Holofusion, Box::new(cluster))
                }
                TargetSpec::Docker => {
                    let cluster = docker::DockerCluster::start(opts).await?;
                    (cluster.configs(), Flavor::Holofusion, Box::new(cluster))
                }
                TargetSpec::Postgres => {
                    let pg = postgres::PrivatePostgres::start().await?;
                    (vec![pg.config()], Flavor::Postgres, Box::new(pg))
                }
                TargetSpec::Url(url) => {
                    let config =
                        url.parse::<tokio_postgres::Config>()
                            .map_err(|e| HarnessError::Flag {
                                flag: "target".into(),
                                reason: e.to_string(),
                            })?;
                    (vec![config], Flavor::Postgres, Box::new(()))
                }
            };
        let mut target = Target {
            info: TargetInfo {
                kind: spec.kind().to_string(),
                flavor,
                nodes: configs.len(),
                server_version: String::new(),
                endpoints: configs.iter().map(describe).collect(),
            },
            configs,
            _guard: guard,
        };
        let client = target.connect(0).await?;
        let version = client
            .simple_query("SHOW server_version")
            .await
            .ok()
            .and_then(|msgs| {
                msgs.into_iter().find_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
                    _ => None,
                })
            })
            .unwrap_or_default();
        target.info.server_version = version;
        Ok(target)
    }

    /// Overrides the flavor (for URLs of HoloFusion servers).
    pub fn set_flavor(&mut self, flavor: Flavor) {
        self.info.flavor = flavor;
    }

    /// The connection config of node `i % nodes`.
    pub fn config(&self, i: usize) -> tokio_postgres::Config {
        self.configs[i % self.configs.len()].clone()
    }

    /// The `host:port` of node `i % nodes`, for raw TCP clients.
    pub fn address(&self, i: usize) -> Option<String> {
        let c = &self.configs[i % self.configs.len()];
        let host = match c.get_hosts().first()? {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(_) => return None,
        };
        let port = c.get_ports().first().copied().unwrap_or(5432);
        Some(format!("{host}:{port}"))
    }

    /// Connects to node `i % nodes`, retrying for up to 30 s.
    pub async fn connect(&self, i: usize) -> Result<Client, HarnessError> {
        let config = &self.configs[i % self.configs.len()];
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match connect_once(config).await {
                Ok(client) => return Ok(client),
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!(error = %e, "connect retry");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => {
                    return Err(HarnessError::Target {
                        target: self.info.kind.clone(),
                        reason: format!("cannot connect to {}: {e}", describe(config)),
                    });
                }
            }
        }
    }
}

fn describe(c: &tokio_postgres::Config) -> String {
    let host = c
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(s) => s.clone(),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_default();
    let port = c.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{}@{host}:{port}/{}",
        c.get_user().unwrap_or(""),
        c.get_dbname().unwrap_or("")
    )
}

/// A connection config for `host:port` as user `user`, database `db`.
pub fn config(host: &str, port: u16, user: &str, db: &str) -> tokio_postgres::Config {
    let mut c = tokio_postgres::Config::new();
    c.host(host)
        .port(port)
        .user(user)
        .dbname(db)
        .connect_timeout(Duration::from_secs(10));
    c
}

/// A free loopback TCP port.
pub fn free_port() -> std::io::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}
