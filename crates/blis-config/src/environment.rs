//! What the environment gives every run. Entry points (the CLI, the Python binding) call
//! [`Catalog::from_env`] once, so both resolve a run against the same hub, cache and memory limit;
//! the rest of the library never reads the environment.

use std::path::{Path, PathBuf};

use crate::resolve::Catalog;

impl Catalog {
    /// The HuggingFace hub settings and this machine's memory: `HF_ENDPOINT`, `HF_TOKEN`, and
    /// the config cache in `$BLIS_CACHE_DIR`, else `$XDG_CACHE_HOME/blis`, else
    /// `~/.cache/blis`. Blank variables count as unset.
    pub fn from_env() -> Catalog {
        Catalog::from_vars(|k| std::env::var(k).ok())
    }

    /// [`Catalog::from_env`] over any variable lookup (tests pass a table).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Catalog {
        let var = |k: &str| var(k).filter(|v| !v.trim().is_empty());
        let cache_dir = var("BLIS_CACHE_DIR")
            .map(PathBuf::from)
            .or_else(|| var("XDG_CACHE_HOME").map(|x| Path::new(&x).join("blis")))
            .or_else(|| var("HOME").map(|h| Path::new(&h).join(".cache").join("blis")));
        let hub = blis_model::HubOptions {
            endpoint: var("HF_ENDPOINT").unwrap_or_else(|| blis_model::DEFAULT_HF_ENDPOINT.into()),
            token: var("HF_TOKEN"),
            cache_dir,
        };
        Catalog { hub, memory_limit_bytes: physical_memory_bytes() }
    }
}

/// Total physical memory (Linux); `None` elsewhere, which skips the memory check.
fn physical_memory_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog(vars: &[(&str, &str)]) -> Catalog {
        Catalog::from_vars(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string()))
    }

    #[test]
    fn cache_dir_falls_back_in_order() {
        let c = catalog(&[("BLIS_CACHE_DIR", "/b"), ("XDG_CACHE_HOME", "/x"), ("HOME", "/h")]);
        assert_eq!(c.hub.cache_dir, Some(PathBuf::from("/b")));
        let c = catalog(&[("BLIS_CACHE_DIR", " "), ("XDG_CACHE_HOME", "/x"), ("HOME", "/h")]);
        assert_eq!(c.hub.cache_dir, Some(PathBuf::from("/x/blis")));
        let c = catalog(&[("HOME", "/h")]);
        assert_eq!(c.hub.cache_dir, Some(PathBuf::from("/h/.cache/blis")));
        assert_eq!(catalog(&[]).hub.cache_dir, None);
    }

    #[test]
    fn hub_endpoint_and_token() {
        let c = catalog(&[]);
        assert_eq!(c.hub.endpoint, blis_model::DEFAULT_HF_ENDPOINT);
        assert_eq!(c.hub.token, None);
        let c = catalog(&[("HF_ENDPOINT", "http://127.0.0.1:9"), ("HF_TOKEN", "t")]);
        assert_eq!(c.hub.endpoint, "http://127.0.0.1:9");
        assert_eq!(c.hub.token.as_deref(), Some("t"));
    }
}
