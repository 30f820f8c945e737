use std::path::Path;

use crate::{harness, node_binary, report_dir};

/// `harness run <workload> <args> --quiet --out <out> --node-binary <built>`.
fn run(workload: &str, args: &[&str], out: &Path) -> std::process::Output {
    let node = node_binary();
    let mut all = vec!["run", workload];
    all.extend_from_slice(args);
    all.extend_from_slice(&[
        "--quiet",
        "--out",
        out.to_str().unwrap(),
        "--node-binary",
        node.to_str().unwrap(),
    ]);
    harness(&all)
}

fn read_json(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("report.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn embedded_smoke_run_passes_its_gates_and_writes_reports() {
    let out_dir = tempfile::tempdir().unwrap();
    let out = run(
        "workloads/read_heavy.yaml",
        &[
            "--duration",
            "4s",
            "--scale",
            "0.1",
            "--slo",
            "slo/smoke.yaml",
            "--vs-postgres",
        ],
        out_dir.path(),
    );
    assert_eq!(out.status.code(), Some(0));
    let dir = report_dir(&out);
    for f in [
        "report.json",
        "report.md",
        "report.html",
        "samples.csv",
        "workload.resolved.yaml",
        "slo-smoke.yaml",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    let report = read_json(&dir);
    assert_eq!(report["schema_version"], 2);
    assert_eq!(report["baseline"]["target"]["flavor"], "postgres");
    assert_eq!(report["verdict"], "pass");
    assert_eq!(report["target"]["flavor"], "holofusion");
    let phase = &report["phases"][0];
    let reads = phase["ops"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "point_read")
        .unwrap();
    assert!(reads["ok"].as_u64().unwrap() > 0);
    assert!(reads["latency_ms"]["p99"].as_f64().unwrap() > 0.0);
    assert!(!phase["timeline"].as_array().unwrap().is_empty());
    assert!(
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["passed"] == true)
    );
    // The per-second samples: a row per second of every operation.
    let csv = std::fs::read_to_string(dir.join("samples.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("phase,op,second,ok,errors,p50_ms,p99_ms")
    );
    let read_rows: Vec<Vec<&str>> = lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|f| f[1] == "point_read")
        .collect();
    assert!(read_rows.len() >= 3, "{csv}");
    let csv_ok: u64 = read_rows.iter().map(|f| f[3].parse::<u64>().unwrap()).sum();
    assert_eq!(
        csv_ok,
        reads["ok"].as_u64().unwrap(),
        "samples add up to the total"
    );
    // The resolved workload runs as it is (scale applied, durations typed).
    let resolved = dir.join("workload.resolved.yaml");
    let text = std::fs::read_to_string(&resolved).unwrap();
    // --scale 0.1 of 10000 rows: numbers resolved, the check keeps its
    // reference for after the run.
    assert!(
        text.contains("max: 1000") && text.contains("rows: 1000"),
        "{text}"
    );
    assert!(
        text.contains("duration: 4s") && text.contains("warmup: 3s"),
        "{text}"
    );
    assert!(
        harness(&["validate", resolved.to_str().unwrap()])
            .status
            .success()
    );
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(
        html.contains("<svg") && html.contains("latency by percentile"),
        "charts missing"
    );
    crate::browser::check_report(&dir);
    // compare of a report with itself shows no regression.
    let cmp = harness(&["compare", dir.to_str().unwrap(), dir.to_str().unwrap()]);
    assert!(cmp.status.success());
    let text = String::from_utf8_lossy(&cmp.stdout);
    assert!(
        text.contains("main.point_read") && !text.contains("REGRESSION"),
        "{text}"
    );
}

#[test]
fn failed_gate_exits_2_and_names_gate_threshold_and_value() {
    let out_dir = tempfile::tempdir().unwrap();
    let slo = out_dir.path().join("impossible.yaml");
    std::fs::write(
        &slo,
        "name: impossible\ngates:\n  - op: main.point_read\n    min_throughput: 1000000000\n",
    )
    .unwrap();
    let out = run(
        "workloads/read_heavy.yaml",
        &[
            "--duration",
            "2s",
            "--scale",
            "0.05",
            "--slo",
            slo.to_str().unwrap(),
        ],
        out_dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("GATE FAILED main.point_read throughput")
            && stderr.contains(">= 1000000000"),
        "{stderr}"
    );
}

#[test]
fn malformed_workload_fails_before_starting_anything() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "name: bad\nphases:\n  - name: p\n    duration: 1s\n    ops:\n      - { name: x, sql: 'SELECT 1', wieght: 3 }\n",
    )
    .unwrap();
    let out = harness(&[
        "run",
        bad.to_str().unwrap(),
        "--node-binary",
        "/nonexistent/holo-fusion",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.yaml")
            && stderr.contains("phases[0].ops[0]")
            && stderr.contains("wieght"),
        "{stderr}"
    );
    // Bad flags name the flag.
    let out = harness(&["run", "workloads/read_heavy.yaml", "--target", "ftp://x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--target"));
    // Every shipped workload validates.
    let list: Vec<String> = std::fs::read_dir(crate::root().join("workloads"))
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    let mut args = vec!["validate"];
    args.extend(list.iter().map(String::as_str));
    assert!(harness(&args).status.success());
}

#[test]
fn private_postgres_runs_the_same_workload() {
    let out_dir = tempfile::tempdir().unwrap();
    let out = run(
        "workloads/bank.yaml",
        &[
            "--target",
            "postgres",
            "--duration",
            "3s",
            "--slo",
            "slo/correctness.yaml",
        ],
        out_dir.path(),
    );
    assert_eq!(out.status.code(), Some(0));
    let report = read_json(&report_dir(&out));
    assert_eq!(report["target"]["flavor"], "postgres");
    let transfers = &report["phases"][0]["ops"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "transfer")
        .unwrap()["ok"];
    assert!(transfers.as_u64().unwrap() > 0);
}

#[test]
fn containerized_cluster_runs_a_workload() {
    let out_dir = tempfile::tempdir().unwrap();
    let out = run(
        "workloads/bank.yaml",
        &[
            "--target",
            "docker",
            "--duration",
            "3s",
            "--slo",
            "slo/correctness.yaml",
        ],
        out_dir.path(),
    );
    assert_eq!(out.status.code(), Some(0));
    let report = read_json(&report_dir(&out));
    assert_eq!(report["target"]["kind"], "docker");
}
