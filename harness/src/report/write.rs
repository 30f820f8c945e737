//! Writes a report directory: `report.json`, `report.md`, `report.html`,
//! `samples.csv`, and copies of the resolved workload and of the SLO file
//! the gates came from.

use std::path::{Path, PathBuf};

use super::{Report, csv, html};
use crate::error::HarnessError;

/// Files that travel with a report so it can be understood (and the run
/// repeated) without the source tree.
#[derive(Debug, Clone, Default)]
pub struct Attachments {
    /// The workload as it ran, variables and scale resolved (YAML).
    pub workload_yaml: String,
    /// The SLO file's name and text, when gates were evaluated.
    pub slo: Option<(String, String)>,
}

impl Report {
    /// Writes the report into a new directory under `out`, named by time,
    /// workload and `suffix`; returns the directory.
    pub fn write(
        &self,
        out: &Path,
        suffix: &str,
        attachments: &Attachments,
    ) -> Result<PathBuf, HarnessError> {
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
        let dir = out.join(format!("{stamp}-{}{suffix}", self.workload));
        let io = |p: &Path, e: std::io::Error| HarnessError::Report {
            path: p.display().to_string(),
            reason: e.to_string(),
        };
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        let json = serde_json::to_string_pretty(self).map_err(|e| HarnessError::Report {
            path: dir.display().to_string(),
            reason: e.to_string(),
        })?;
        let mut files = vec![
            ("report.json".to_string(), json),
            ("report.md".to_string(), self.markdown()),
            ("report.html".to_string(), html::render(self)),
            ("samples.csv".to_string(), csv::samples(self)),
            (
                "workload.resolved.yaml".to_string(),
                attachments.workload_yaml.clone(),
            ),
        ];
        if let Some((name, text)) = &attachments.slo {
            files.push((format!("slo-{name}"), text.clone()));
        }
        for (name, body) in files {
            let p = dir.join(name);
            std::fs::write(&p, body).map_err(|e| io(&p, e))?;
        }
        Ok(dir)
    }
}
