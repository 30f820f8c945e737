//! [`HarnessError`]: why a harness command failed (exit code 1).

/// A harness failure that is not a failed SLO gate.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// A workload or SLO file is malformed.
    #[error("{file}: {field}{sep}{reason}", sep = if field.is_empty() { "" } else { ": " })]
    Spec {
        /// The file.
        file: String,
        /// The offending field (path), empty for the whole file.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A command-line flag is invalid.
    #[error("--{flag}: {reason}")]
    Flag {
        /// The flag.
        flag: String,
        /// What is wrong.
        reason: String,
    },
    /// The target could not be started or reached.
    #[error("target {target}: {reason}")]
    Target {
        /// The target kind.
        target: String,
        /// What went wrong.
        reason: String,
    },
    /// Setup or load SQL failed.
    #[error("{stage}: {sql}: {reason}")]
    Sql {
        /// Setup or load.
        stage: String,
        /// The statement.
        sql: String,
        /// The database's error.
        reason: String,
    },
    /// A report could not be read or written.
    #[error("report {path}: {reason}")]
    Report {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The run was interrupted (Ctrl-C).
    #[error("interrupted")]
    Interrupted,
}
