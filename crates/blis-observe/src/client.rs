//! One request: build the body, stream the response, fill the trace row.

use std::time::{Duration, Instant};

use blis_workload::request::RequestSpec;
use blis_workload::trace::TraceRecord;

use crate::ObserveOptions;
use crate::prompt::prompt_text;
use crate::sse::{SseParser, parse_chunk};

/// Longest error text kept in a row (a server's HTML error page is cut).
const MAX_ERROR_CHARS: usize = 300;

/// Sends requests to one server.
#[derive(Debug)]
pub struct Sender {
    client: reqwest::Client,
    url: reqwest::Url,
    model: String,
    api_key: Option<String>,
    default_timeout: Duration,
    record_chunk_times: bool,
}

impl Sender {
    pub fn new(client: reqwest::Client, url: reqwest::Url, opts: &ObserveOptions) -> Self {
        Sender {
            client,
            url,
            model: opts.model.clone(),
            api_key: opts.api_key.clone(),
            default_timeout: opts.default_timeout,
            record_chunk_times: opts.record_chunk_times,
        }
    }

    /// The JSON body of `request`.
    pub fn body(&self, request: &RequestSpec) -> serde_json::Value {
        let tokens = request.output_tokens.max(1);
        serde_json::json!({
            "model": self.model,
            "prompt": prompt_text(&request.input),
            "max_tokens": tokens,
            "min_tokens": tokens,
            "stream": true,
            "stream_options": {"include_usage": true},
        })
    }

    /// Sends `request` now and waits for the end of its response; times are µs after `t0`.
    /// The second value is the arrival time of every chunk, when the options ask for them
    /// (empty otherwise).
    pub async fn send(&self, request: &RequestSpec, t0: Instant) -> (TraceRecord, Vec<u64>) {
        let mut rec = TraceRecord::from_request(request);
        rec.model = self.model.clone();
        rec.status = "ok".into();
        let us = || t0.elapsed().as_micros() as u64;
        let timeout = request
            .deadline_us
            .map(|d| Duration::from_micros(d.saturating_sub(request.arrival_us).max(1)))
            .unwrap_or(self.default_timeout);
        let mut builder = self.client.post(self.url.clone()).timeout(timeout).json_body(&self.body(request));
        if let Some(key) = &self.api_key {
            builder = builder.bearer_auth(key);
        }
        rec.send_time_us = us();
        let fail = |rec: &mut TraceRecord, e: &reqwest::Error, what: &str| {
            rec.status = if e.is_timeout() { "timeout" } else { "error" }.into();
            rec.error_message = one_line(&format!("{what}: {}", error_chain(e)));
        };
        let mut response = match builder.send().await {
            Ok(r) => r,
            Err(e) => {
                fail(&mut rec, &e, "HTTP error");
                return (rec, Vec::new());
            }
        };
        let status = response.status();
        if !status.is_success() {
            rec.status = "error".into();
            let body = match response.text().await {
                Ok(text) => text,
                Err(e) => format!("(body read failed: {})", error_chain(&e)),
            };
            rec.error_message = one_line(&format!("HTTP {}: {}", status.as_u16(), body.trim()));
            return (rec, Vec::new());
        }
        let mut parser = SseParser::new();
        let mut state = StreamState { record_chunk_times: self.record_chunk_times, ..StreamState::default() };
        loop {
            match response.chunk().await {
                Ok(Some(bytes)) => {
                    let now = us();
                    parser.feed(&bytes, |data| state.event(data, now));
                }
                Ok(None) => break,
                Err(e) => {
                    fail(&mut rec, &e, "streaming error");
                    break;
                }
            }
        }
        let now = us();
        parser.finish(|data| state.event(data, now));
        rec.num_chunks = state.chunks;
        rec.first_chunk_time_us = state.first_us.unwrap_or(0);
        rec.last_chunk_time_us = state.last_us;
        rec.finish_reason = state.finish_reason.unwrap_or_default();
        if let Some(p) = state.prompt_tokens {
            rec.server_input_tokens = u32::try_from(p).unwrap_or(u32::MAX);
        }
        if let Some(c) = state.completion_tokens {
            rec.output_tokens = u32::try_from(c).unwrap_or(u32::MAX);
        }
        if rec.status == "ok" {
            if let Some(e) = state.error {
                rec.status = "error".into();
                rec.error_message = one_line(&e);
            } else if state.chunks == 0 {
                rec.status = "error".into();
                rec.error_message = "the stream ended without a completion chunk".into();
            }
        }
        (rec, state.chunk_times)
    }
}

/// What a response stream said so far.
#[derive(Debug, Default)]
struct StreamState {
    chunks: u32,
    first_us: Option<u64>,
    last_us: u64,
    finish_reason: Option<String>,
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    error: Option<String>,
    record_chunk_times: bool,
    chunk_times: Vec<u64>,
}

impl StreamState {
    /// One event's data, received at `now_us`. A chunk is an event with a choice; the
    /// usage-only event and `[DONE]` are not chunks.
    fn event(&mut self, data: &str, now_us: u64) {
        let c = parse_chunk(data);
        if c.done {
            return;
        }
        if c.has_choice {
            self.chunks += 1;
            self.first_us.get_or_insert(now_us);
            self.last_us = now_us;
            if self.record_chunk_times {
                self.chunk_times.push(now_us);
            }
        }
        if c.finish_reason.is_some() {
            self.finish_reason = c.finish_reason;
        }
        self.prompt_tokens = c.prompt_tokens.or(self.prompt_tokens);
        self.completion_tokens = c.completion_tokens.or(self.completion_tokens);
        if let Some(e) = c.error {
            self.error.get_or_insert(e);
        }
    }
}

/// `e` and its causes (reqwest's own message is often just "error sending request").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// `text` on one line, at most [`MAX_ERROR_CHARS`] characters.
fn one_line(text: &str) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(MAX_ERROR_CHARS) {
        Some((i, _)) => format!("{}…", &flat[..i]),
        None => flat,
    }
}

/// `RequestBuilder::json` needs reqwest's `json` feature; the body is serialized here instead.
trait JsonBody {
    fn json_body(self, body: &serde_json::Value) -> Self;
}

impl JsonBody for reqwest::RequestBuilder {
    fn json_body(self, body: &serde_json::Value) -> Self {
        self.header(reqwest::header::CONTENT_TYPE, "application/json").body(body.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_state_counts_choice_events_only() {
        let mut s = StreamState::default();
        s.event(r#"{"choices":[{"text":" a","finish_reason":null}]}"#, 10);
        s.event(r#"{"choices":[{"text":" b","finish_reason":"length"}]}"#, 20);
        s.event(r#"{"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2}}"#, 30);
        s.event("[DONE]", 40);
        assert_eq!((s.chunks, s.first_us, s.last_us), (2, Some(10), 20));
        assert_eq!(s.finish_reason.as_deref(), Some("length"));
        assert_eq!((s.prompt_tokens, s.completion_tokens), (Some(9), Some(2)));
        s.event(r#"{"error":{"message":"overloaded"}}"#, 50);
        assert_eq!(s.error.as_deref(), Some("overloaded"));
    }

    #[test]
    fn errors_are_one_short_line() {
        assert_eq!(one_line("a\n  b\r\nc"), "a b c");
        let long = "x".repeat(1000);
        assert_eq!(one_line(&long).chars().count(), MAX_ERROR_CHARS + 1);
    }
}
