//! Reading YAML files into typed values with one-line errors: `FILE line N: key.path: cause`.

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::error::ConfigError;

/// Parses `text` (from `file`, named in errors) as a `T`; `what` names the file's role, e.g.
/// `--config`, for errors that have no location.
pub fn parse<T: DeserializeOwned>(text: &str, file: &Path) -> Result<T, ConfigError> {
    serde_saphyr::from_str(text).map_err(|e| error(text, file, &e))
}

/// Reads and parses a file; `flag` is how the user named it.
pub fn load<T: DeserializeOwned>(path: &Path, flag: &str) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(flag, format!("--{flag}"), format!("cannot read {}: {e}", path.display()))
    })?;
    parse(&text, path)
}

/// A one-line message for a YAML/serde error: file, line, the key path at that line, the cause.
fn error(text: &str, file: &Path, err: &serde_saphyr::Error) -> ConfigError {
    let bare = err.without_snippet();
    let full = bare.to_string();
    let first = full.lines().next().unwrap_or_default();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    let line = bare.location().or_else(|| err.location()).map(|l| l.line() as usize).unwrap_or(0);
    let path = if line > 0 { key_path_at(text, line) } else { String::new() };
    let mut message = shorten_expected(first);
    if let Some(hint) = unknown_key_hint(&message) {
        message.push_str(&hint);
    }
    let origin = match (line, path.is_empty()) {
        (0, _) => file.display().to_string(),
        (l, true) => format!("{} line {l}", file.display()),
        (l, false) => format!("{} line {l}: {path}", file.display()),
    };
    ConfigError::new(path, origin, message)
}

/// serde lists every accepted field after "expected one of"; seventy names are not a message.
fn shorten_expected(message: &str) -> String {
    let message: String = message.split_whitespace().collect::<Vec<_>>().join(" ");
    match message.find(", expected one of") {
        Some(i) if message[i..].matches('`').count() > 16 => {
            format!("{} (see `blis run --help` for the accepted keys)", &message[..i])
        }
        _ => message,
    }
}

/// "did you mean" for a snake_case spelling of a kebab-case key.
fn unknown_key_hint(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let key = &rest[..rest.find('`')?];
    let kebab = key.replace('_', "-");
    (kebab != key && crate::spec::RunSpec::keys().contains(&kebab))
        .then(|| format!("; did you mean `{kebab}`?"))
}

/// The dotted key path (`admission.token_bucket_capacity`) of the block-style YAML key on
/// 1-based `line`: that line's key, preceded by the keys of the less-indented lines above it.
pub fn key_path_at(text: &str, line: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let Some(&here) = lines.get(line.wrapping_sub(1)) else { return String::new() };
    let key_of = |l: &str| -> Option<(usize, String)> {
        let trimmed = l.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            return None;
        }
        let indent = l.len() - trimmed.len();
        let body = trimmed.trim_start_matches("- ");
        let indent = indent + (trimmed.len() - body.len());
        let key = body.split_once(':')?.0.trim();
        (!key.is_empty() && !key.contains(['{', '[', ' '])).then(|| (indent, key.to_string()))
    };
    let Some((mut indent, key)) = key_of(here) else { return String::new() };
    let mut parts = vec![key];
    for l in lines[..line - 1].iter().rev() {
        if let Some((i, k)) = key_of(l)
            && i < indent
        {
            parts.push(k);
            indent = i;
        }
    }
    parts.reverse();
    parts.join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_paths() {
        let t = "admission:\n  policy: x\nrouting:\n  scorers:\n    - name: a\n      weight: b\n";
        assert_eq!(key_path_at(t, 2), "admission.policy");
        assert_eq!(key_path_at(t, 6), "routing.scorers.weight");
        assert_eq!(key_path_at(t, 5), "routing.scorers.name");
        assert_eq!(key_path_at(t, 99), "");
    }
}
