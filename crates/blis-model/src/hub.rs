//! Model loading: explicit folder → bundled config → disk cache → HuggingFace hub.
//!
//! The hub is the last resort and is cached, so a model fetched once works offline after.
//! `http://` endpoints (mirrors, tests) use a minimal in-crate HTTP/1.1 GET; `https://` uses
//! `ureq` with rustls and bundled web-PKI roots (no system OpenSSL needed).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
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
const MAX_REDIRECTS: usize = 5;

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

/// GET a URL as text; errors are human-readable one-liners.
fn http_get(url: &str, token: Option<&str>) -> Result<String, String> {
    if url.starts_with("https://") {
        https_get(url, token)
    } else if url.starts_with("http://") {
        plain_http_get(url, token)
    } else {
        Err(format!("unsupported URL scheme in {url} (use http:// or https://)"))
    }
}

fn status_error(status: u16, url: &str) -> String {
    let hint = match status {
        401 | 403 => " (gated or private repository: set HF_TOKEN)",
        404 => " (no such repository or file)",
        _ => "",
    };
    format!("HTTP {status} for {url}{hint}")
}

fn https_get(url: &str, token: Option<&str>) -> Result<String, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(TIMEOUT))
        .http_status_as_error(false)
        .redirect_auth_headers(ureq::config::RedirectAuthHeaders::SameHost)
        .build()
        .into();
    let mut req = agent.get(url);
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    let mut resp = req.call().map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    if !(200..300).contains(&status) {
        return Err(status_error(status, url));
    }
    resp.body_mut().with_config().limit(MAX_BODY).read_to_string().map_err(|e| e.to_string())
}

/// `http://host[:port]/path` → (host, port, path).
fn split_http_url(url: &str) -> Result<(String, u16, String), String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| format!("not an http:// URL: {url}"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let bad_port = || format!("bad port in {url}");
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, p) = v6.split_once(']').ok_or_else(|| format!("bad host in {url}"))?;
        (h, p.strip_prefix(':').map_or(Ok(80), |p| p.parse::<u16>().map_err(|_| bad_port()))?)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad_port())?),
            None => (authority, 80),
        }
    };
    if host.is_empty() {
        return Err(format!("no host in {url}"));
    }
    Ok((host.to_string(), port, path.to_string()))
}

/// Minimal HTTP/1.1 GET: `Connection: close`, Content-Length or chunked bodies, redirects
/// (the token is only forwarded to the same host:port).
fn plain_http_get(url: &str, token: Option<&str>) -> Result<String, String> {
    let mut url = url.to_string();
    let (first_host, first_port, _) = split_http_url(&url)?;
    for _ in 0..=MAX_REDIRECTS {
        let (host, port, path) = split_http_url(&url)?;
        let same_origin = host == first_host && port == first_port;
        let (status, headers, body) = http_exchange(&host, port, &path, token.filter(|_| same_origin))?;
        if matches!(status, 301 | 302 | 303 | 307 | 308) {
            let loc =
                header(&headers, "location").ok_or_else(|| format!("HTTP {status} without Location"))?;
            url = if loc.starts_with("http://") || loc.starts_with("https://") {
                loc.to_string()
            } else if loc.starts_with('/') {
                format!("http://{host}:{port}{loc}")
            } else {
                return Err(format!("unsupported redirect Location `{loc}`"));
            };
            if url.starts_with("https://") {
                return https_get(&url, None);
            }
            continue;
        }
        if !(200..300).contains(&status) {
            return Err(status_error(status, &url));
        }
        return String::from_utf8(body).map_err(|_| "response body is not UTF-8".to_string());
    }
    Err(format!("more than {MAX_REDIRECTS} redirects"))
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

type Response = (u16, Vec<(String, String)>, Vec<u8>);

fn http_exchange(host: &str, port: u16, path: &str, token: Option<&str>) -> Result<Response, String> {
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("cannot resolve {host}"))?;
    let mut stream =
        TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .and_then(|_| stream.set_write_timeout(Some(TIMEOUT)))
        .map_err(|e| e.to_string())?;
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: blis\r\nAccept: */*\r\nConnection: close\r\n"
    );
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).map_err(|e| format!("send failed: {e}"))?;
    let mut raw = Vec::new();
    stream.take(MAX_BODY + 64 * 1024).read_to_end(&mut raw).map_err(|e| format!("receive failed: {e}"))?;
    parse_response(&raw)
}

/// Splits a complete HTTP/1.x response into status, headers and decoded body.
fn parse_response(raw: &[u8]) -> Result<Response, String> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or("truncated HTTP response header")?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| "HTTP header is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|_| status_line.starts_with("HTTP/1."))
        .ok_or_else(|| format!("malformed HTTP status line `{status_line}`"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let rest = &raw[end + 4..];
    let chunked =
        header(&headers, "transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        decode_chunked(rest)?
    } else if let Some(len) = header(&headers, "content-length") {
        let len: usize = len.parse().map_err(|_| format!("bad Content-Length `{len}`"))?;
        rest.get(..len).ok_or("HTTP body shorter than Content-Length")?.to_vec()
    } else {
        rest.to_vec()
    };
    Ok((status, headers, body))
}

fn decode_chunked(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = data.windows(2).position(|w| w == b"\r\n").ok_or("truncated chunk size")?;
        let size_text = std::str::from_utf8(&data[..eol]).map_err(|_| "bad chunk size")?;
        let size_hex = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16).map_err(|_| format!("bad chunk size `{size_hex}`"))?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        let chunk = data.get(..size).ok_or("truncated chunk")?;
        out.extend_from_slice(chunk);
        data = data.get(size + 2..).ok_or("truncated chunk terminator")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        assert!(req.contains("Authorization: Bearer secret\r\n"), "{req}");
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
        assert!(second.starts_with("GET /api/resolve-cache/x ") && !second.contains("Authorization"));
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

    #[test]
    fn response_parsing_edge_cases() {
        assert!(parse_response(b"garbage").is_err());
        assert!(parse_response(b"HTTP/1.1 abc\r\n\r\n").is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort").is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").is_err());
        let (s, _, b) = parse_response(b"HTTP/1.0 200 OK\r\n\r\nrest").unwrap();
        assert_eq!((s, b.as_slice()), (200, &b"rest"[..]));
        assert_eq!(split_http_url("http://h/p").unwrap(), ("h".into(), 80, "/p".into()));
        assert!(split_http_url("http://h:x/p").is_err());
    }
}
