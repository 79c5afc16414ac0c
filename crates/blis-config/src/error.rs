//! Errors of describing a run: one line, naming what the user wrote.

use std::fmt;

/// A configuration the user gave that cannot run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The spec key at fault (`max-num-seqs`), empty when the error is not about one key.
    pub key: String,
    /// How the user wrote it: `--max-num-running-reqs`, `policy.yaml: admission.policy`.
    pub origin: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, origin: impl Into<String>, message: impl Into<String>) -> Self {
        let message: String = message.into();
        // One line whatever the cause's formatting; user text (keys, paths) may hold line breaks.
        let message = escape_controls(&message.split_whitespace().collect::<Vec<_>>().join(" "));
        ConfigError { key: escape_controls(&key.into()), origin: escape_controls(&origin.into()), message }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.origin.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.origin, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Why a run failed after its configuration was accepted.
#[derive(Debug)]
pub enum RunError {
    /// The configuration (or an input file it names) is invalid: exit status 2.
    Config(ConfigError),
    /// The simulation broke an invariant (a bug): exit status 3.
    Invariant(String),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Config(e) => e.fmt(f),
            RunError::Invariant(what) => {
                write!(f, "internal error, please report: invariant violated: {what}")
            }
        }
    }
}

impl std::error::Error for RunError {}

impl From<ConfigError> for RunError {
    fn from(e: ConfigError) -> Self {
        RunError::Config(e)
    }
}

impl RunError {
    /// The process exit status for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            RunError::Config(_) => 2,
            RunError::Invariant(_) => 3,
        }
    }
}

/// `text` with control characters escaped (`\n`, `\u{7}`), so that it stays on one line.
fn escape_controls(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    text.chars()
        .map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() })
        .collect()
}
