//! Statement text for logs and messages: a bounded prefix of a
//! statement's SQL and a short name of its kind.

use datafusion::sql::sqlparser::ast::Statement;

/// Collects at most `limit` bytes of formatted text, then fails the
/// formatting so a long statement is never printed in full.
struct Prefix {
    text: String,
    limit: usize,
}

impl std::fmt::Write for Prefix {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let room = self.limit.saturating_sub(self.text.len());
        if s.len() <= room {
            self.text.push_str(s);
            return Ok(());
        }
        let mut end = room;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.text.push_str(&s[..end]);
        Err(std::fmt::Error)
    }
}

/// The first `limit` bytes of `stmt` as SQL text.
pub fn statement_prefix(stmt: &Statement, limit: usize) -> String {
    use std::fmt::Write;
    let mut out = Prefix {
        text: String::new(),
        limit,
    };
    let _ = write!(out, "{stmt}");
    out.text
}

/// A short name of the statement's kind, for messages.
pub fn statement_kind(stmt: &Statement) -> String {
    let text = statement_prefix(stmt, 64);
    let words: Vec<&str> = text.split_whitespace().take(2).collect();
    match words.as_slice() {
        [a, b] if matches!(a.to_ascii_uppercase().as_str(), "CREATE" | "DROP" | "ALTER") => {
            format!("{} {}", a.to_ascii_uppercase(), b.to_ascii_uppercase())
        }
        [a, ..] => a.to_ascii_uppercase(),
        [] => "statement".into(),
    }
}
