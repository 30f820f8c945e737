//! Failpoints (the `fail` crate), compiled in only with the `failpoints`
//! feature, which the test builds turn on: a release binary carries none.
//!
//! A process configures them from the `FAILPOINTS` environment variable
//! (`name=action;...`, the fail crate's syntax) through [`setup`].

/// Configured failpoints of the process; dropping it clears them.
pub struct Failpoints {
    #[cfg(feature = "failpoints")]
    _scenario: fail::FailScenario<'static>,
}

impl std::fmt::Debug for Failpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Failpoints")
    }
}

/// Reads `FAILPOINTS` (when compiled with failpoints; otherwise nothing).
pub fn setup() -> Failpoints {
    Failpoints {
        #[cfg(feature = "failpoints")]
        _scenario: fail::FailScenario::setup(),
    }
}

/// The argument of failpoint `name` when it is set to `return(arg)`.
pub fn value(name: &str) -> Option<String> {
    #[cfg(feature = "failpoints")]
    {
        fail::eval(name, |arg| arg).flatten()
    }
    #[cfg(not(feature = "failpoints"))]
    {
        let _ = name;
        None
    }
}

/// Sleeps as long as failpoint `name` asks (`name=return(MILLISECONDS)`),
/// without blocking the runtime's worker thread.
pub async fn pause(name: &str) {
    let Some(arg) = value(name) else { return };
    match arg.trim().parse::<u64>() {
        Ok(ms) => {
            tracing::warn!(failpoint = name, ms, "failpoint: pausing");
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        }
        Err(_) => {
            tracing::warn!(failpoint = name, value = %arg, "failpoint: not a number of milliseconds")
        }
    }
}
