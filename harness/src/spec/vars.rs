//! Run variables (`${name}` substitution, scaled counts) and durations.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::Num;

/// Resolved variables of one run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Vars(pub BTreeMap<String, String>);

impl Vars {
    /// Replaces every `${name}` in `text`; `extra` is consulted first.
    pub fn substitute(
        &self,
        text: &str,
        extra: &BTreeMap<String, String>,
    ) -> Result<String, String> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| format!("unterminated `${{` in {text:?}"))?;
            let name = &after[..end];
            let value = extra
                .get(name)
                .or_else(|| self.0.get(name))
                .ok_or_else(|| format!("unknown variable `{name}`"))?;
            out.push_str(value);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// An integer from a [`Num`].
    pub fn int(&self, n: &Num) -> Result<i64, String> {
        match n {
            Num::Int(i) => Ok(*i),
            Num::Float(f) => Ok(*f as i64),
            Num::Text(t) => {
                let s = self.substitute(t, &BTreeMap::new())?;
                s.trim()
                    .parse::<i64>()
                    .or_else(|_| s.trim().parse::<f64>().map(|f| f as i64))
                    .map_err(|_| format!("`{t}` is not an integer (got {s:?})"))
            }
        }
    }
}

/// Parses a duration like `30s`, `2m`, `500ms`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| format!("invalid duration {s:?}: {e}"))
}
