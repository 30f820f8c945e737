//! `holoctl`: inspect and operate a HoloFusion cluster over its internal RPC.
//!
//! ```text
//! holoctl --host 127.0.0.1:26257 nodes
//! holoctl --host 127.0.0.1:26257 ranges
//! holoctl --host 127.0.0.1:26257 split 10000000000000000a
//! holoctl --host 127.0.0.1:26257 merge 10000000000000000a
//! holoctl --host 127.0.0.1:26257 transfer-lease 7 2
//! ```

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use holo_cluster::rpc::{AdminRequest, Request, Response, RpcClient};
use holo_cluster::status::NodeStatus;
use holo_storage::{RangeDescriptor, RangeId};

/// Inspect and operate a HoloFusion cluster.
#[derive(Debug, Parser)]
#[command(name = "holoctl", version, about)]
struct Cli {
    /// Internal RPC address of any node.
    #[arg(long, env = "HOLO_HOST", default_value = "127.0.0.1:26257")]
    host: String,
    /// How long to wait for each node's answer (split, merge and
    /// transfer-lease wait at least 30 s: they answer once done).
    #[arg(long, default_value = "5")]
    timeout_secs: u64,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Every node: addresses, reachability, replicas and leases held.
    Nodes,
    /// Every range: span, replicas, leaseholder, size, epoch.
    Ranges,
    /// Split the range holding KEY (hex) so that a range starts at KEY.
    Split {
        /// The split key, hex-encoded.
        key: String,
    },
    /// Merge the range holding KEY (hex) with its right-hand neighbour
    /// (both must be on the same nodes).
    Merge {
        /// A key of the left range, hex-encoded.
        key: String,
    },
    /// Every node's GC safe point and the versions its sweeps removed.
    Gc,
    /// Make NODE the leaseholder of RANGE.
    TransferLease {
        /// The range id.
        range: u64,
        /// The node to take the lease.
        node: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The least time given to an operation that waits for the cluster (see
/// [`Ctl::call_operation`]).
const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);

struct Ctl {
    rpc: Arc<RpcClient>,
    host: String,
    timeout: Duration,
}

impl Ctl {
    async fn call(&self, addr: &str, req: Request) -> Result<Response, String> {
        self.call_within(addr, req, self.timeout).await
    }

    /// For operations that run until the cluster has done them (a lease
    /// transfer campaigns for up to three election timeouts plus 2 s, a
    /// merge freezes and waits for both ranges): `--timeout-secs` or
    /// [`OPERATION_TIMEOUT`], whichever is longer.
    async fn call_operation(&self, addr: &str, req: Request) -> Result<Response, String> {
        self.call_within(addr, req, self.timeout.max(OPERATION_TIMEOUT))
            .await
    }

    async fn call_within(
        &self,
        addr: &str,
        req: Request,
        timeout: Duration,
    ) -> Result<Response, String> {
        self.rpc
            .call(0, addr, &req, timeout)
            .await
            .map_err(|e| format!("{addr}: {e}"))
    }

    async fn status(&self, addr: &str) -> Result<NodeStatus, String> {
        match self.call(addr, Request::from(AdminRequest::Status)).await? {
            Response::Status(s) => Ok(s),
            other => Err(format!("{addr}: unexpected answer {other:?}")),
        }
    }

    /// The status of every node the host knows (unreachable ones as errors).
    async fn all(&self) -> Result<BTreeMap<u64, Result<NodeStatus, String>>, String> {
        let first = self.status(&self.host).await?;
        let mut out = BTreeMap::new();
        for (id, addr) in &first.cluster.nodes {
            let s = if *id == first.node_id {
                Ok(first.clone())
            } else {
                self.status(&addr.rpc).await
            };
            out.insert(*id, s);
        }
        out.entry(first.node_id).or_insert(Ok(first));
        Ok(out)
    }
}

fn hex(key: &[u8]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

fn span(d: &RangeDescriptor) -> String {
    let start = if d.start_key.is_empty() {
        "-inf".to_string()
    } else {
        hex(&d.start_key)
    };
    let end = if d.end_key.is_empty() {
        "+inf".to_string()
    } else {
        hex(&d.end_key)
    };
    format!("[{start}, {end})")
}

async fn run(cli: Cli) -> Result<(), String> {
    let ctl = Ctl {
        rpc: Arc::new(RpcClient::new()),
        host: cli.host.clone(),
        timeout: Duration::from_secs(cli.timeout_secs),
    };
    match cli.command {
        Cmd::Nodes => {
            println!(
                "{:>4}  {:<22} {:<22} {:>8} {:>6}  status",
                "node", "rpc", "pg", "replicas", "leases"
            );
            let first = ctl.status(&ctl.host).await?;
            for (id, s) in ctl.all().await? {
                let addr = first.cluster.nodes.get(&id).cloned().unwrap_or_default();
                match s {
                    Ok(s) => {
                        let leases = s.replicas.iter().filter(|r| r.leader == Some(id)).count();
                        println!(
                            "{id:>4}  {:<22} {:<22} {:>8} {:>6}  up",
                            addr.rpc,
                            addr.pg,
                            s.replicas.len(),
                            leases
                        );
                    }
                    Err(e) => println!(
                        "{id:>4}  {:<22} {:<22} {:>8} {:>6}  DOWN ({e})",
                        addr.rpc, addr.pg, "-", "-"
                    ),
                }
            }
        }
        Cmd::Ranges => {
            // Each range as its leaseholder reports it (falling back to any
            // replica when the leaseholder does not answer).
            let mut ranges: BTreeMap<RangeId, (holo_cluster::status::ReplicaStatus, bool)> =
                BTreeMap::new();
            for (id, s) in ctl.all().await? {
                let Ok(s) = s else { continue };
                for r in s.replicas {
                    if !r.initialized {
                        continue;
                    }
                    let authoritative = r.leader == Some(id);
                    match ranges.get(&r.desc.id) {
                        Some((_, true)) => {}
                        Some((_, false)) if !authoritative => {}
                        _ => {
                            ranges.insert(r.desc.id, (r, authoritative));
                        }
                    }
                }
            }
            let mut rows: Vec<_> = ranges.into_values().collect();
            rows.sort_by(|a, b| a.0.desc.start_key.cmp(&b.0.desc.start_key));
            println!(
                "{:>6}  {:<44} {:<10} {:>11} {:>12} {:>7} {:>7}",
                "range", "span", "replicas", "leaseholder", "bytes", "version", "confver"
            );
            for (r, _) in rows {
                let replicas: Vec<String> = r
                    .desc
                    .replicas
                    .iter()
                    .map(|x| x.node_id.to_string())
                    .collect();
                println!(
                    "{:>6}  {:<44} {:<10} {:>11} {:>12} {:>7} {:>7}",
                    r.desc.id.0,
                    span(&r.desc),
                    replicas.join(","),
                    r.leader.map_or("-".to_string(), |l| l.to_string()),
                    r.approximate_bytes,
                    r.desc.epoch.version,
                    r.desc.epoch.conf_ver
                );
            }
        }
        Cmd::Split { key } => {
            let bytes = parse_hex(&key)?;
            ctl.call_operation(
                &ctl.host,
                Request::from(AdminRequest::AdminSplit { key: bytes }),
            )
            .await?;
            println!("split at {key}");
        }
        Cmd::Gc => {
            println!("{:>4}  {:>16} {:>12}", "node", "safe_point_ms", "removed");
            for (id, s) in ctl.all().await? {
                match s {
                    Ok(s) => println!(
                        "{id:>4}  {:>16} {:>12}",
                        s.gc_safe_point.physical_ms(),
                        s.gc_versions_removed
                    ),
                    Err(e) => println!("{id:>4}  DOWN ({e})"),
                }
            }
        }
        Cmd::Merge { key } => {
            let bytes = parse_hex(&key)?;
            ctl.call_operation(
                &ctl.host,
                Request::from(AdminRequest::AdminMerge { key: bytes }),
            )
            .await?;
            println!("merged the range holding {key} with its right-hand neighbour");
        }
        Cmd::TransferLease { range, node } => {
            ctl.call_operation(
                &ctl.host,
                Request::from(AdminRequest::TransferLease {
                    range: RangeId(range),
                    to: node,
                }),
            )
            .await?;
            println!("node {node} is campaigning for the lease of range {range}");
        }
    }
    Ok(())
}

fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    let s = s.trim_start_matches("0x");
    if s.is_empty() || !s.len().is_multiple_of(2) {
        return Err(format!("key {s:?}: expected an even number of hex digits"));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|e| format!("key {s:?}: {e}")))
        .collect()
}
