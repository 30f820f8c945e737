//! A private PostgreSQL for baselines: Debian's `postgresql` package (installed
//! when missing), a fresh cluster in a temporary directory on a free port,
//! stopped and removed when dropped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tempfile::TempDir;

use super::{config, free_port};
use crate::error::HarnessError;

fn err(reason: impl Into<String>) -> HarnessError {
    HarnessError::Target {
        target: "postgres".into(),
        reason: reason.into(),
    }
}

fn find_bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("postgres").is_file() && p.join("initdb").is_file())
        .collect();
    dirs.sort();
    dirs.pop()
}

fn install_postgres() -> Result<(), HarnessError> {
    eprintln!("installing PostgreSQL (apt-get install postgresql)...");
    let sudo: &[&str] = if is_root() { &[] } else { &["sudo"] };
    let run = |args: &[&str]| -> Result<(), HarnessError> {
        let mut all: Vec<&str> = sudo.to_vec();
        all.extend_from_slice(args);
        let status = std::process::Command::new(all[0])
            .args(&all[1..])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .map_err(|e| err(format!("cannot run {}: {e}", all.join(" "))))?;
        if status.success() {
            Ok(())
        } else {
            Err(err(format!("`{}` failed", all.join(" "))))
        }
    };
    run(&["apt-get", "update"])?;
    run(&[
        "apt-get",
        "install",
        "-y",
        "--no-install-recommends",
        "postgresql",
    ])
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs a PostgreSQL tool, as the `postgres` user when the harness is root
/// (PostgreSQL refuses to run as root).
fn pg_command(bin: &Path, args: &[&str]) -> std::process::Command {
    if is_root() {
        let mut c = std::process::Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin).args(args);
        c
    } else {
        let mut c = std::process::Command::new(bin);
        c.args(args);
        c
    }
}

/// A PostgreSQL server owned by the harness.
pub struct PrivatePostgres {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    _dir: TempDir,
}

impl PrivatePostgres {
    /// Installs (if needed), initializes and starts PostgreSQL.
    pub async fn start() -> Result<PrivatePostgres, HarnessError> {
        let bin = match find_bin_dir() {
            Some(b) => b,
            None => {
                install_postgres()?;
                find_bin_dir()
                    .ok_or_else(|| err("postgresql installed but no server binaries found"))?
            }
        };
        let dir = tempfile::Builder::new()
            .prefix("holo-harness-pg-")
            .tempdir()
            .map_err(|e| err(format!("temporary directory: {e}")))?;
        let data = dir.path().join("data");
        if is_root() {
            let status = std::process::Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .map_err(|e| err(format!("chown: {e}")))?;
            if !status.success() {
                return Err(err(
                    "cannot hand the temporary directory to the postgres user",
                ));
            }
        }
        let data_s = data.display().to_string();
        let out = pg_command(
            &bin.join("initdb"),
            &[
                "-D",
                &data_s,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )
        .stdout(Stdio::null())
        .output()
        .map_err(|e| err(format!("initdb: {e}")))?;
        if !out.status.success() {
            return Err(err(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        let port = free_port().map_err(|e| err(format!("no free port: {e}")))?;
        let opts = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c shared_buffers=256MB -c max_connections=300 -c fsync=on -c synchronous_commit=on",
            dir.path().display()
        );
        let log = dir.path().join("postgres.log").display().to_string();
        let out = pg_command(
            &bin.join("pg_ctl"),
            &[
                "-D", &data_s, "-l", &log, "-o", &opts, "-w", "-t", "60", "start",
            ],
        )
        .output()
        .map_err(|e| err(format!("pg_ctl start: {e}")))?;
        if !out.status.success() {
            let log_text = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(err(format!(
                "pg_ctl start failed: {}{}",
                String::from_utf8_lossy(&out.stderr),
                log_text
            )));
        }
        let pg = PrivatePostgres {
            bin,
            data,
            port,
            _dir: dir,
        };
        // Wait until it accepts connections.
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(pg);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(err("PostgreSQL did not accept connections"))
    }

    /// The connection config.
    pub fn config(&self) -> tokio_postgres::Config {
        config("127.0.0.1", self.port, "postgres", "postgres")
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.data.display().to_string();
        let _ = pg_command(
            &self.bin.join("pg_ctl"),
            &["-D", &data, "-m", "immediate", "-w", "stop"],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    }
}
