//! The one error type of this crate. Every message is a single line naming the offending input,
//! so the CLI can print it verbatim.

use std::fmt;
use std::path::PathBuf;

/// Why a latency model could not be built.
#[derive(Debug, Clone, PartialEq)]
pub enum LatencyError {
    /// `--latency-model` named no known backend.
    UnknownModel { name: String, accepted: &'static [&'static str] },
    /// The model / GPU / TP combination cannot be simulated (e.g. heads not divisible by TP).
    Config(String),
    /// A coefficient vector or file is malformed (wrong length, negative, non-finite, bad YAML).
    Coefficients(String),
    /// A coefficients file could not be read.
    Io { path: PathBuf, message: String },
}

impl fmt::Display for LatencyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownModel { name, accepted } => {
                write!(f, "unknown --latency-model '{name}' (accepted: {})", accepted.join(", "))
            }
            // Set names and values come from the input: keep the promise of one line.
            Self::Config(msg) | Self::Coefficients(msg) => {
                f.write_str(&msg.replace('\n', "\\n").replace('\r', "\\r"))
            }
            Self::Io { path, message } => {
                write!(f, "cannot read coefficients file {}: {message}", path.display())
            }
        }
    }
}

impl std::error::Error for LatencyError {}

/// Collapses a possibly multi-line message (YAML errors carry source snippets) onto one line.
pub(crate) fn one_line(msg: &str) -> String {
    msg.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_single_line() {
        let e = LatencyError::UnknownModel { name: "x".into(), accepted: &["a", "b"] };
        assert_eq!(e.to_string(), "unknown --latency-model 'x' (accepted: a, b)");
        assert_eq!(one_line("a\n  b\tc"), "a b c");
    }
}
