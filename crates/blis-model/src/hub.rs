//! Model loading: explicit folder → bundled config → disk cache → HuggingFace hub.
//!
//! The hub is the last resort and is cached, so a model fetched once works offline after.
//! Fetches use `ureq` (rustls with bundled web-PKI roots, so no system OpenSSL is needed);
//! `http://` endpoints serve mirrors and tests.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::ModelError;
use crate::model::ModelSpec;
use crate::registry::bundled_config;

/// Default hub endpoint when `HF_ENDPOINT` is unset.
pub const DEFAULT_HF_ENDPOINT: &str = "https://huggingface.co";
/// A `config.json` larger than this is not a config.
const MAX_BODY: u64 = 16 << 20;
const TIMEOUT: Duration = Duration::from_secs(30);
const MAX_REDIRECTS: u32 = 5;

/// Where and how to fetch configs that are neither given nor bundled.
#[derive(Debug, Clone, PartialEq)]
pub struct HubOptions {
    /// Base URL, e.g. `https://huggingface.co` (no trailing slash needed).
    pub endpoint: String,
    /// Sent as `Authorization: Bearer TOKEN` (gated repositories).
    pub token: Option<String>,
    /// Disk cache of fetched configs; `None` disables caching.
    pub cache_dir: Option<PathBuf>,
}

impl Default for HubOptions {
    fn default() -> Self {
        HubOptions { endpoint: DEFAULT_HF_ENDPOINT.into(), token: None, cache_dir: None }
    }
}

impl HubOptions {
    /// Cache file of a repository (lower-cased so every spelling of an id shares it).
    fn cache_path(&self, repo: &str) -> Option<PathBuf> {
        let dir = self.cache_dir.as_ref()?;
        Some(dir.join("hf").join(repo.to_lowercase().replace('/', "--")).join("config.json"))
    }
}

/// Loads a model's architecture. `config_folder` (the CLI's `--model-config-folder`) wins; then
/// the bundled configs; then the cache; then `{endpoint}/{repo}/resolve/main/config.json`.
pub fn load_model(
    name: &str,
    config_folder: Option<&Path>,
    hub: &HubOptions,
) -> Result<ModelSpec, ModelError> {
    if let Some(dir) = config_folder {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| ModelError::Io { path: path.display().to_string(), message: e.to_string() })?;
        return ModelSpec::from_config_json(name, &text);
    }
    if let Some((_, json)) = bundled_config(name) {
        return ModelSpec::from_config_json(name, json);
    }
    let fetch_err = |message: String| ModelError::Fetch {
        model: name.to_string(),
        endpoint: hub.endpoint.clone(),
        message,
    };
    let repo = name.trim();
    if !is_repo_id(repo) {
        return Err(fetch_err(
            "not a bundled model and not a HuggingFace repo id of the form ORG/NAME".into(),
        ));
    }
    let cache = hub.cache_path(repo);
    if let Some(text) = cache.as_ref().and_then(|p| std::fs::read_to_string(p).ok())
        && let Ok(m) = ModelSpec::from_config_json(name, &text)
    {
        return Ok(m);
    }
    let url = format!("{}/{repo}/resolve/main/config.json", hub.endpoint.trim_end_matches('/'));
    let text = http_get(&url, hub.token.as_deref()).map_err(fetch_err)?;
    let model = ModelSpec::from_config_json(name, &text)?;
    if let Some(path) = cache {
        // Best effort: a read-only cache must not turn a successful fetch into a failure.
        let _ = write_atomically(&path, &text);
    }
    Ok(model)
}

/// `ORG/NAME` with HF's character set; also keeps ids from escaping the cache directory.
fn is_repo_id(s: &str) -> bool {
    let ok = |p: &str| {
        !p.is_empty()
            && !p.starts_with('.')
            && p.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    matches!(s.split_once('/'), Some((org, name)) if ok(org) && ok(name))
}

fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".config.json.{}.tmp", std::process::id()));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// GET a URL (`http://` or `https://`) as text; errors are human-readable one-liners.
/// Redirects are followed; the token is only sent again to the same host.
fn http_get(url: &str, token: Option<&str>) -> Result<String, String> {
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(format!("unsupported URL scheme in {url} (use http:// or https://)"));
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(TIMEOUT))
        .http_status_as_error(false)
        .max_redirects(MAX_REDIRECTS)
        .redirect_auth_headers(ureq::config::RedirectAuthHeaders::SameHost)
        .user_agent("blis")
        .build()
        .into();
    let mut req = agent.get(url);
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    let mut resp = req.call().map_err(|e| match e {
        ureq::Error::Io(io) => format!("cannot connect: {io}"),
        ureq::Error::ConnectionFailed => "cannot connect".to_string(),
        other => other.to_string(),
    })?;
    let status = resp.status().as_u16();
    if !(200..300).contains(&status) {
        return Err(status_error(status, url));
    }
    resp.body_mut().with_config().limit(MAX_BODY).read_to_string().map_err(|e| e.to_string())
}

fn status_error(status: u16, url: &str) -> String {
    let hint = match status {
        401 | 403 => " (gated or private repository: set HF_TOKEN)",
        404 => " (no such repository or file)",
        _ => "",
    };
    format!("HTTP {status} for {url}{hint}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::mpsc;

    const CONFIG: &str = r#"{"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4,
        "vocab_size": 100, "intermediate_size": 128, "max_position_embeddings": 512}"#;

    /// Serves `responses` in order, one per connection, and reports each request's head.
    fn serve(responses: Vec<String>) -> (String, mpsc::Receiver<String>, std::thread::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = mpsc::channel();
        let handle = std::thread::spawn(move || {
            for resp in responses {
                let (mut s, _) = listener.accept().unwrap();
                let mut buf = Vec::new();
                let mut byte = [0u8; 1];
                while !buf.ends_with(b"\r\n\r\n") && s.read(&mut byte).unwrap() == 1 {
                    buf.push(byte[0]);
                }
                tx.send(String::from_utf8_lossy(&buf).into_owned()).unwrap();
                s.write_all(resp.as_bytes()).unwrap();
            }
        });
        (endpoint, rx, handle)
    }

    fn ok(body: &str) -> String {
        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len())
    }

    #[test]
    fn fetches_with_token_caches_and_reuses_offline() {
        let (endpoint, rx, handle) = serve(vec![ok(CONFIG)]);
        let cache = tempfile::tempdir().unwrap();
        let hub = HubOptions {
            endpoint: endpoint.clone(),
            token: Some("secret".into()),
            cache_dir: Some(cache.path().to_path_buf()),
        };
        let m = load_model("Org/Tiny-Model", None, &hub).unwrap();
        assert_eq!((m.name.as_str(), m.num_layers), ("org/tiny-model", 2));
        let req = rx.recv().unwrap();
        assert!(req.starts_with("GET /Org/Tiny-Model/resolve/main/config.json HTTP/1.1\r\n"), "{req}");
        assert!(req.to_ascii_lowercase().contains("authorization: bearer secret\r\n"), "{req}");
        handle.join().unwrap(); // server gone
        assert!(cache.path().join("hf/org--tiny-model/config.json").exists());
        let again = load_model("org/tiny-model", None, &hub).unwrap();
        assert_eq!(again.num_layers, 2);
    }

    #[test]
    fn chunked_and_redirect() {
        let chunked = format!(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{}\r\n{:x};ext=1\r\n{}\r\n0\r\n\r\n",
            10,
            &CONFIG[..10],
            CONFIG.len() - 10,
            &CONFIG[10..]
        );
        let redirect =
            "HTTP/1.1 307 Temporary Redirect\r\nLocation: /api/resolve-cache/x\r\nContent-Length: 0\r\n\r\n";
        let (endpoint, rx, handle) = serve(vec![redirect.to_string(), chunked]);
        let hub = HubOptions { endpoint, token: None, cache_dir: None };
        assert_eq!(load_model("a/b", None, &hub).unwrap().hidden_size, 64);
        assert!(rx.recv().unwrap().starts_with("GET /a/b/"));
        let second = rx.recv().unwrap();
        assert!(
            second.starts_with("GET /api/resolve-cache/x ")
                && !second.to_ascii_lowercase().contains("authorization")
        );
        handle.join().unwrap();
    }

    #[test]
    fn http_errors_are_clear() {
        let (endpoint, _rx, handle) =
            serve(vec!["HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".into()]);
        let hub = HubOptions { endpoint: endpoint.clone(), token: None, cache_dir: None };
        let err = load_model("org/missing", None, &hub).unwrap_err().to_string();
        assert!(err.contains("cannot fetch config.json for model org/missing from http://"), "{err}");
        assert!(err.contains("HTTP 404") && err.contains("--model-config-folder DIR"), "{err}");
        handle.join().unwrap();
        // Nothing listens any more: connection refused.
        let err = load_model("org/missing", None, &hub).unwrap_err().to_string();
        assert!(err.contains("cannot connect"), "{err}");
        let err = load_model("no-such-bundled-model", None, &hub).unwrap_err().to_string();
        assert!(err.contains("ORG/NAME"), "{err}");
        assert!(load_model("../../etc", None, &hub).is_err());
    }

    #[test]
    fn folder_and_bundled_take_precedence() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), CONFIG).unwrap();
        let hub = HubOptions { endpoint: "http://127.0.0.1:1".into(), token: None, cache_dir: None };
        let m = load_model("meta-llama/Llama-3.1-8B-Instruct", Some(dir.path()), &hub).unwrap();
        assert_eq!(m.num_layers, 2);
        let m = load_model("meta-llama/Llama-3.1-8B-Instruct", None, &hub).unwrap();
        assert_eq!((m.num_layers, m.name.as_str()), (32, "meta-llama/llama-3.1-8b-instruct"));
        let err = load_model("x/y", Some(&dir.path().join("nope")), &hub).unwrap_err().to_string();
        assert!(err.contains("cannot read") && err.contains("config.json"), "{err}");
    }
}
