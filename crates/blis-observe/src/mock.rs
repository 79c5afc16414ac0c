//! A scripted OpenAI-compatible streaming server on 127.0.0.1, for tests (feature
//! `mock-server`): a hand-rolled HTTP/1.1 responder for `POST /v1/completions` that streams
//! `max_tokens` chunks, one every `chunk_delay`, then a usage event (`prompt_tokens` = words
//! in the prompt) and `[DONE]`, and closes the connection. Every `fail_every`-th request is
//! answered `500` instead.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How the mock answers.
#[derive(Debug, Clone, Default)]
pub struct MockConfig {
    /// Pause before each token chunk.
    pub chunk_delay: Duration,
    /// Answer every n-th request (n, 2n, …; counted from 1) with HTTP 500.
    pub fail_every: Option<u64>,
}

/// A running mock server (it runs until the process ends).
#[derive(Debug)]
pub struct MockServer {
    pub addr: SocketAddr,
    requests: Arc<AtomicU64>,
    prompts: Arc<Mutex<Vec<String>>>,
}

impl MockServer {
    /// Binds 127.0.0.1 on a free port and serves on a background thread.
    pub fn start(config: MockConfig) -> std::io::Result<MockServer> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let requests = Arc::new(AtomicU64::new(0));
        let prompts = Arc::new(Mutex::new(Vec::new()));
        let (count, seen) = (requests.clone(), prompts.clone());
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        std::thread::spawn(move || {
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
                while let Ok((stream, _)) = listener.accept().await {
                    let (config, count, seen) = (config.clone(), count.clone(), seen.clone());
                    tokio::spawn(async move {
                        let _ = serve(stream, &config, &count, &seen).await;
                    });
                }
            });
        });
        Ok(MockServer { addr, requests, prompts })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests received so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    /// The prompts received so far, in arrival order.
    pub fn prompts(&self) -> Vec<String> {
        self.prompts.lock().expect("not poisoned").clone()
    }
}

async fn serve(
    mut stream: TcpStream,
    config: &MockConfig,
    count: &AtomicU64,
    seen: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    // Headers, then Content-Length bytes of body.
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut tmp).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let length: usize = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = stream.read(&mut tmp).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&tmp[..n]);
    }
    let body: serde_json::Value = serde_json::from_slice(&buf[head_end..]).unwrap_or_default();
    let prompt = body.get("prompt").and_then(|p| p.as_str()).unwrap_or_default().to_string();
    seen.lock().expect("not poisoned").push(prompt);
    let n = count.fetch_add(1, Ordering::SeqCst) + 1;
    if config.fail_every.is_some_and(|k| k > 0 && n.is_multiple_of(k)) {
        let msg = r#"{"error":{"message":"mock failure","code":500}}"#;
        let resp = format!(
            "HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{msg}",
            msg.len()
        );
        stream.write_all(resp.as_bytes()).await?;
        return stream.shutdown().await;
    }
    let tokens = body.get("max_tokens").and_then(|v| v.as_u64()).unwrap_or(16);
    let prompt_tokens =
        body.get("prompt").and_then(|p| p.as_str()).map_or(0, |p| p.split_whitespace().count());
    stream
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n")
        .await?;
    for i in 0..tokens {
        tokio::time::sleep(config.chunk_delay).await;
        let finish = if i + 1 == tokens { r#""length""# } else { "null" };
        let event = format!(
            "data: {{\"id\":\"cmpl-{n}\",\"choices\":[{{\"index\":0,\"text\":\" t{i}\",\"finish_reason\":{finish}}}]}}\n\n"
        );
        stream.write_all(event.as_bytes()).await?;
    }
    let usage = format!(
        "data: {{\"id\":\"cmpl-{n}\",\"choices\":[],\"usage\":{{\"prompt_tokens\":{prompt_tokens},\"completion_tokens\":{tokens},\"total_tokens\":{}}}}}\n\ndata: [DONE]\n\n",
        prompt_tokens as u64 + tokens
    );
    stream.write_all(usage.as_bytes()).await?;
    stream.shutdown().await
}
