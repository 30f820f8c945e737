//! A containerized cluster: a local image of the node binary (`FROM scratch`
//! with the binary and the shared libraries it links; no registry needed)
//! started with testcontainers on a private Docker network.

use std::path::{Path, PathBuf};
use std::process::Command;

use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

use super::embedded::node_binary;
use super::{TargetOptions, config};
use crate::error::HarnessError;

/// Image name of the local node image.
pub const IMAGE: &str = "holofusion";
/// Image tag.
pub const TAG: &str = "local";
const PG_PORT: u16 = 5433;
const RPC_PORT: u16 = 26257;

fn err(reason: impl Into<String>) -> HarnessError {
    HarnessError::Target {
        target: "docker".into(),
        reason: reason.into(),
    }
}

/// The shared libraries `binary` loads, as absolute paths (from `ldd`).
fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>, HarnessError> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(|e| err(format!("cannot run ldd: {e}")))?;
    if !out.status.success() {
        return Err(err(format!("ldd {} failed", binary.display())));
    }
    let mut libs = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            libs.push(PathBuf::from(p));
        }
    }
    Ok(libs)
}

fn copy_into(root: &Path, file: &Path) -> Result<(), HarnessError> {
    let canonical =
        std::fs::canonicalize(file).map_err(|e| err(format!("{}: {e}", file.display())))?;
    let rel = file.strip_prefix("/").unwrap_or(file);
    let dest = root.join(rel);
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(|e| err(format!("{}: {e}", parent.display())))?;
    }
    std::fs::copy(&canonical, &dest).map_err(|e| err(format!("copy {}: {e}", file.display())))?;
    Ok(())
}

/// Builds `holofusion:local` from `binary`.
pub fn build_image(binary: &Path) -> Result<String, HarnessError> {
    let ctx = tempfile::tempdir().map_err(|e| err(format!("temporary directory: {e}")))?;
    let root = ctx.path().join("rootfs");
    for dir in ["data", "tmp"] {
        std::fs::create_dir_all(root.join(dir)).map_err(|e| err(e.to_string()))?;
    }
    for lib in shared_libraries(binary)? {
        copy_into(&root, &lib)?;
    }
    std::fs::copy(binary, ctx.path().join("holo-fusion"))
        .map_err(|e| err(format!("copy binary: {e}")))?;
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM scratch\nCOPY rootfs/ /\nCOPY holo-fusion /holo-fusion\nENV HOLO_LOG=warn\nEXPOSE 5433\nENTRYPOINT [\"/holo-fusion\"]\n",
    )
    .map_err(|e| err(e.to_string()))?;
    let tag = format!("{IMAGE}:{TAG}");
    let out = Command::new("docker")
        .args(["build", "-q", "-t", &tag])
        .arg(ctx.path())
        .output()
        .map_err(|e| err(format!("cannot run docker: {e}")))?;
    if !out.status.success() {
        return Err(err(format!(
            "docker build failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(tag)
}

/// Containers of a cluster; removed when dropped.
pub struct DockerCluster {
    ports: Vec<u16>,
    _containers: Vec<ContainerAsync<GenericImage>>,
}

impl DockerCluster {
    /// Builds the image and starts the nodes on a private network.
    pub async fn start(opts: &TargetOptions) -> Result<DockerCluster, HarnessError> {
        if opts.nodes == 0 {
            return Err(HarnessError::Flag {
                flag: "nodes".into(),
                reason: "at least one node is needed".into(),
            });
        }
        let binary = node_binary(opts.node_binary.as_deref())?;
        build_image(&binary)?;
        let network = format!("holo-harness-{:08x}", rand::random::<u32>());
        let mut containers = Vec::new();
        let mut ports = Vec::new();
        for i in 0..opts.nodes {
            let mut args = vec![
                "start".to_string(),
                "--data-dir".into(),
                "/data".into(),
                "--pg-listen".into(),
                format!("0.0.0.0:{PG_PORT}"),
            ];
            let name = |n: usize| format!("{network}-node{n}");
            if opts.nodes == 1 {
                args.push("--single-node".into());
            } else {
                // Nodes reach each other by container name on the network.
                let seeds: Vec<String> = (1..=opts.nodes)
                    .filter(|n| *n != i + 1)
                    .map(|n| format!("{}:{RPC_PORT}", name(n)))
                    .collect();
                args.extend([
                    "--node-id".into(),
                    (i + 1).to_string(),
                    "--listen".into(),
                    format!("0.0.0.0:{RPC_PORT}"),
                    "--advertise".into(),
                    format!("{}:{RPC_PORT}", name(i + 1)),
                    "--join".into(),
                    seeds.join(","),
                ]);
                if i == 0 {
                    args.push("--bootstrap".into());
                }
            }
            if !opts.sync_writes {
                args.push("--no-sync-writes".into());
            }
            let container = GenericImage::new(IMAGE, TAG)
                .with_exposed_port(PG_PORT.tcp())
                .with_wait_for(WaitFor::message_on_stdout("holo-fusion ready"))
                .with_network(network.clone())
                .with_container_name(name(i + 1))
                .with_cmd(args)
                .start()
                .await
                .map_err(|e| err(format!("starting node {}: {e}", i + 1)))?;
            let port = container
                .get_host_port_ipv4(PG_PORT)
                .await
                .map_err(|e| err(format!("port of node {}: {e}", i + 1)))?;
            ports.push(port);
            containers.push(container);
        }
        Ok(DockerCluster {
            ports,
            _containers: containers,
        })
    }

    /// Connection configs, one per node.
    pub fn configs(&self) -> Vec<tokio_postgres::Config> {
        self.ports
            .iter()
            .map(|p| config("127.0.0.1", *p, "holo", "holo"))
            .collect()
    }
}
