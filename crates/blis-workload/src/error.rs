//! The one error type of this crate: a single line naming where (file, line, YAML path or CSV
//! column) and what is accepted.

use std::fmt;

/// A workload could not be read, validated or built.
///
/// `Display` is one line: `file:line:col: path: message`, omitting the parts that are unknown,
/// e.g. `spec.yaml: clients[1].rate_fraction: must be > 0, got -1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadError {
    /// File the problem is in (as given by the caller), if any.
    pub file: Option<String>,
    /// 1-based line (and column) within `file`, when known.
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// YAML path (`clients[1].arrival.process`) or CSV column name, when known.
    pub path: Option<String>,
    /// What is wrong and what is accepted.
    pub message: String,
}

impl WorkloadError {
    /// An error about the value at `path`.
    pub fn at(path: impl Into<String>, message: impl Into<String>) -> Self {
        let path = path.into();
        WorkloadError {
            file: None,
            line: None,
            column: None,
            path: (!path.is_empty()).then_some(path),
            message: message.into(),
        }
    }

    /// An error with no location.
    pub fn msg(message: impl Into<String>) -> Self {
        WorkloadError { file: None, line: None, column: None, path: None, message: message.into() }
    }

    /// Attaches the file name unless one is already set.
    pub fn in_file(mut self, file: impl Into<String>) -> Self {
        if self.file.is_none() {
            self.file = Some(file.into());
        }
        self
    }

    /// Places the error's path under `prefix` (`servegen_data` + `path` → `servegen_data.path`).
    pub fn under(mut self, prefix: &str) -> Self {
        self.path = Some(match self.path.take() {
            Some(p) => format!("{prefix}.{p}"),
            None => prefix.to_string(),
        });
        self
    }

    /// Attaches a line (and optional column).
    pub fn at_line(mut self, line: usize, column: Option<usize>) -> Self {
        self.line = Some(line);
        self.column = column;
        self
    }
}

impl fmt::Display for WorkloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut wrote = false;
        if let Some(file) = &self.file {
            write!(f, "{}", escape_breaks(file))?;
            wrote = true;
        }
        if let Some(line) = self.line {
            if wrote {
                write!(f, ":")?;
            } else {
                write!(f, "line ")?;
            }
            write!(f, "{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
            wrote = true;
        }
        if let Some(path) = &self.path {
            if wrote {
                write!(f, ": ")?;
            }
            write!(f, "{}", escape_breaks(path))?;
            wrote = true;
        }
        if wrote {
            write!(f, ": ")?;
        }
        // Keep the promise of one line even if a dependency's message spans several.
        let mut first = true;
        for part in self.message.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if !first {
                write!(f, " ")?;
            }
            write!(f, "{part}")?;
            first = false;
        }
        Ok(())
    }
}

/// A name taken from the input (a YAML key, a file name) may hold line breaks; print them
/// escaped so the error stays one line.
fn escape_breaks(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains(['\n', '\r']) { s.replace('\n', "\\n").replace('\r', "\\r").into() } else { s.into() }
}

impl std::error::Error for WorkloadError {}

/// Shorthand used by validators.
pub type Result<T> = std::result::Result<T, WorkloadError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_one_line_with_all_parts() {
        let e = WorkloadError::at("clients[1].rate_fraction", "must be > 0, got -1").in_file("spec.yaml");
        assert_eq!(e.to_string(), "spec.yaml: clients[1].rate_fraction: must be > 0, got -1");
        let e = WorkloadError::msg("bad\n  thing").in_file("t.csv").at_line(3, Some(7));
        assert_eq!(e.to_string(), "t.csv:3:7: bad thing");
        let e = WorkloadError::at("params.a\n\nb", "unknown");
        assert_eq!(e.to_string(), "params.a\\n\\nb: unknown");
    }
}
