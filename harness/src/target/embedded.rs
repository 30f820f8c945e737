//! An embedded cluster: `holo-fusion` processes started from the workspace's
//! own binary on loopback ports, data in a temporary directory, killed and
//! removed when dropped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::{TargetOptions, config};
use crate::error::HarnessError;

fn target_err(reason: impl Into<String>) -> HarnessError {
    HarnessError::Target {
        target: "embedded".into(),
        reason: reason.into(),
    }
}

/// Finds the `holo-fusion` binary: the explicit path, `HOLO_FUSION_BIN`, or
/// next to the harness executable; builds it with cargo (same profile as the
/// harness) when missing.
pub fn node_binary(explicit: Option<&Path>) -> Result<PathBuf, HarnessError> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(HarnessError::Flag {
                flag: "node-binary".into(),
                reason: format!("{} is not a file", p.display()),
            })
        };
    }
    if let Ok(p) = std::env::var("HOLO_FUSION_BIN") {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        return Err(target_err(format!(
            "HOLO_FUSION_BIN={} is not a file",
            p.display()
        )));
    }
    let exe = std::env::current_exe()
        .map_err(|e| target_err(format!("cannot locate the harness: {e}")))?;
    let dir = exe
        .parent()
        .ok_or_else(|| target_err("harness has no parent directory"))?;
    let candidate = dir.join("holo-fusion");
    if candidate.is_file() {
        return Ok(candidate);
    }
    let release = dir.ends_with("release");
    eprintln!(
        "building holo-fusion ({} profile)...",
        if release { "release" } else { "dev" }
    );
    let mut cmd =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(["build", "-p", "holo-node", "--bin", "holo-fusion"]);
    if release {
        cmd.arg("--release");
    }
    let status = cmd
        .status()
        .map_err(|e| target_err(format!("cannot run cargo to build holo-fusion: {e}")))?;
    if !status.success() || !candidate.is_file() {
        return Err(target_err(format!(
            "holo-fusion not found at {} and `cargo build -p holo-node` failed; pass --node-binary",
            candidate.display()
        )));
    }
    Ok(candidate)
}

struct Node {
    _child: Child,
    port: u16,
}

/// Processes of an embedded cluster.
pub struct EmbeddedCluster {
    nodes: Vec<Node>,
    _dir: TempDir,
}

impl EmbeddedCluster {
    /// Starts the cluster and waits until every node is ready. One node runs
    /// `--single-node`; more form a replicated cluster (node 1 bootstraps,
    /// the others join it).
    pub async fn start(opts: &TargetOptions) -> Result<EmbeddedCluster, HarnessError> {
        if opts.nodes == 0 {
            return Err(HarnessError::Flag {
                flag: "nodes".into(),
                reason: "at least one node is needed".into(),
            });
        }
        let binary = node_binary(opts.node_binary.as_deref())?;
        let dir = tempfile::Builder::new()
            .prefix("holo-harness-")
            .tempdir()
            .map_err(|e| target_err(format!("temporary directory: {e}")))?;
        let rpc: Vec<String> = (0..opts.nodes)
            .map(|_| super::free_port().map(|p| format!("127.0.0.1:{p}")))
            .collect::<Result<_, _>>()
            .map_err(|e| target_err(format!("no free port: {e}")))?;
        let mut starting = Vec::with_capacity(opts.nodes);
        for i in 0..opts.nodes {
            let data = dir.path().join(format!("node{}", i + 1));
            let mut cmd = Command::new(&binary);
            cmd.args(["start", "--pg-listen", "127.0.0.1:0", "--data-dir"])
                .arg(&data)
                .env(
                    "HOLO_LOG",
                    std::env::var("HOLO_LOG").unwrap_or_else(|_| "warn".into()),
                )
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true);
            if opts.nodes == 1 {
                cmd.arg("--single-node");
            } else {
                let seeds: Vec<&str> = rpc
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, a)| a.as_str())
                    .collect();
                cmd.args(["--node-id", &(i + 1).to_string(), "--listen", &rpc[i]])
                    .args(["--join", &seeds.join(",")]);
                if i == 0 {
                    cmd.arg("--bootstrap");
                }
            }
            if !opts.sync_writes {
                cmd.arg("--no-sync-writes");
            }
            let mut child = cmd
                .spawn()
                .map_err(|e| target_err(format!("cannot start {}: {e}", binary.display())))?;
            let stdout = child.stdout.take().ok_or_else(|| target_err("no stdout"))?;
            starting.push((child, BufReader::new(stdout).lines()));
        }
        let mut nodes = Vec::with_capacity(opts.nodes);
        for (i, (child, mut lines)) in starting.into_iter().enumerate() {
            let ready = tokio::time::timeout(Duration::from_secs(90), async {
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(rest) = line.strip_prefix("holo-fusion ready pg=") {
                        return rest.split_whitespace().next().map(str::to_string);
                    }
                }
                None
            })
            .await
            .ok()
            .flatten()
            .ok_or_else(|| {
                target_err(format!("node {} did not become ready within 90 s", i + 1))
            })?;
            // Keep draining stdout so the node never blocks on a full pipe.
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            let port = ready
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse().ok())
                .ok_or_else(|| target_err(format!("bad ready line address {ready:?}")))?;
            nodes.push(Node {
                _child: child,
                port,
            });
        }
        Ok(EmbeddedCluster { nodes, _dir: dir })
    }

    /// Connection configs, one per node.
    pub fn configs(&self) -> Vec<tokio_postgres::Config> {
        self.nodes
            .iter()
            .map(|n| config("127.0.0.1", n.port, "holo", "holo"))
            .collect()
    }
}
