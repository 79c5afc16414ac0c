//! Reading an OpenAI-style streamed response: a server-sent-events (SSE) byte stream split into
//! events, and each event's JSON read for what the trace records (generated text, finish
//! reason, token usage, an error).
//!
//! Only the `data` field of SSE matters here (vLLM, SGLang, TGI and OpenAI send nothing
//! else that changes the timing); `event`, `id`, `retry` and comment lines are skipped.
//! Events end at a blank line; lines end at `\n`, `\r\n` or `\r`, as the SSE specification
//! says, so a server's line endings or how the bytes are split into network reads never
//! change the events.

/// Incremental SSE parser: feed it bytes as they arrive, get complete events' data back.
#[derive(Debug, Default)]
pub struct SseParser {
    /// The current, unfinished line.
    line: Vec<u8>,
    /// Data lines of the current event, joined by `\n`.
    data: Vec<u8>,
    has_data: bool,
    /// The previous byte was a `\r` (a following `\n` belongs to the same line break).
    after_cr: bool,
}

/// Longest line or event kept (bytes): a server streaming an endless line without a break
/// cannot exhaust memory; the excess is dropped and the event fails to parse as JSON.
const MAX_EVENT_BYTES: usize = 16 << 20;

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Consumes `bytes`; calls `on_event` with the data of every event they complete.
    pub fn feed(&mut self, bytes: &[u8], mut on_event: impl FnMut(&str)) {
        for &b in bytes {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    self.end_line(&mut on_event);
                }
                _ if self.line.len() < MAX_EVENT_BYTES => self.line.push(b),
                _ => {}
            }
        }
    }

    /// The end of the stream: an event the server did not terminate with a blank line still
    /// counts (some servers close the connection right after the last `data:` line).
    pub fn finish(&mut self, mut on_event: impl FnMut(&str)) {
        if !self.line.is_empty() {
            self.end_line(&mut on_event);
        }
        self.dispatch(&mut on_event);
    }

    fn end_line(&mut self, on_event: &mut impl FnMut(&str)) {
        if self.line.is_empty() {
            self.dispatch(on_event);
            return;
        }
        let line = std::mem::take(&mut self.line);
        let (field, value) = match line.iter().position(|&c| c == b':') {
            Some(0) => return, // a comment
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (&line[..], &[][..]),
        };
        if field == b"data" {
            if self.has_data {
                self.data.push(b'\n');
            }
            let room = MAX_EVENT_BYTES.saturating_sub(self.data.len());
            self.data.extend_from_slice(&value[..value.len().min(room)]);
            self.has_data = true;
        }
        self.line = line;
        self.line.clear();
    }

    fn dispatch(&mut self, on_event: &mut impl FnMut(&str)) {
        if self.has_data {
            on_event(&String::from_utf8_lossy(&self.data));
        }
        self.data.clear();
        self.has_data = false;
    }
}

/// What one response chunk (a streamed event, or a whole non-streamed body) says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Chunk {
    /// The event is the `[DONE]` sentinel.
    pub done: bool,
    /// The event carries a choice (a generated-token chunk); a usage-only event (the last one
    /// with `stream_options.include_usage`) has an empty `choices` array.
    pub has_choice: bool,
    /// Generated text in this chunk (`choices[0].text`, or `.delta.content` /
    /// `.delta.reasoning_content` / `.message.content` for chat) was non-empty.
    pub has_text: bool,
    pub finish_reason: Option<String>,
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    /// An `error` object (or string) the server sent instead of a completion.
    pub error: Option<String>,
    /// The data was not JSON (or not an object).
    pub malformed: bool,
}

/// Reads one event's data (or a non-streamed body).
pub fn parse_chunk(data: &str) -> Chunk {
    let data = data.trim();
    if data == "[DONE]" {
        return Chunk { done: true, ..Chunk::default() };
    }
    let value: serde_json::Value = match serde_json::from_str(data) {
        Ok(v @ serde_json::Value::Object(_)) => v,
        _ => return Chunk { malformed: true, ..Chunk::default() },
    };
    let mut chunk = Chunk::default();
    if let Some(e) = value.get("error").filter(|e| !e.is_null()) {
        let message = e.get("message").and_then(|m| m.as_str()).or(e.as_str());
        chunk.error = Some(message.map_or_else(|| e.to_string(), str::to_string));
    }
    if let Some(choice) = value.get("choices").and_then(|c| c.get(0)) {
        chunk.has_choice = true;
        let text = |v: Option<&serde_json::Value>| v.and_then(|t| t.as_str()).is_some_and(|t| !t.is_empty());
        chunk.has_text = text(choice.get("text"))
            || ["delta", "message"].iter().any(|k| {
                let m = choice.get(*k);
                text(m.and_then(|m| m.get("content"))) || text(m.and_then(|m| m.get("reasoning_content")))
            });
        chunk.finish_reason = choice
            .get("finish_reason")
            .and_then(|f| f.as_str())
            .filter(|f| !f.is_empty())
            .map(str::to_string);
    }
    if let Some(usage) = value.get("usage") {
        let count = |k: &str| usage.get(k).and_then(|v| v.as_u64());
        chunk.prompt_tokens = count("prompt_tokens");
        chunk.completion_tokens = count("completion_tokens");
    }
    chunk
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(parts: &[&[u8]]) -> Vec<String> {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        for part in parts {
            p.feed(part, |e| out.push(e.to_string()));
        }
        p.finish(|e| out.push(e.to_string()));
        out
    }

    #[test]
    fn events_do_not_depend_on_line_endings_or_read_boundaries() {
        let text = b"data: {\"a\":1}\n\n: keep-alive\n\nevent: x\ndata: two\ndata: lines\n\ndata:[DONE]\n\n";
        let want = vec!["{\"a\":1}".to_string(), "two\nlines".into(), "[DONE]".into()];
        assert_eq!(events(&[text]), want);
        let crlf: Vec<u8> = String::from_utf8_lossy(text).replace('\n', "\r\n").into_bytes();
        assert_eq!(events(&[&crlf]), want);
        let cr: Vec<u8> = String::from_utf8_lossy(text).replace('\n', "\r").into_bytes();
        assert_eq!(events(&[&cr]), want);
        // Byte by byte, and split inside a \r\n.
        let bytes: Vec<&[u8]> = crlf.chunks(1).collect();
        assert_eq!(events(&bytes), want);
        // A last event without its blank line still counts.
        assert_eq!(events(&[b"data: x\n\ndata: y"]), vec!["x", "y"]);
        assert!(events(&[b"", b"\n\n\n", b"id: 4\nretry: 9\n\n"]).is_empty());
    }

    #[test]
    fn chunks_of_completions_and_chat() {
        let c = parse_chunk(r#"{"choices":[{"index":0,"text":" hello","finish_reason":null}]}"#);
        assert!(c.has_text && c.has_choice && c.finish_reason.is_none() && !c.malformed);
        let c = parse_chunk(r#"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#);
        assert!(!c.has_text, "a role-only chat chunk carries no token");
        let c = parse_chunk(r#"{"choices":[{"delta":{"reasoning_content":"hm"},"finish_reason":"length"}]}"#);
        assert!(c.has_text);
        assert_eq!(c.finish_reason.as_deref(), Some("length"));
        let c = parse_chunk(
            r#"{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":7,"total_tokens":19}}"#,
        );
        assert_eq!(
            (c.prompt_tokens, c.completion_tokens, c.has_text, c.has_choice),
            (Some(12), Some(7), false, false)
        );
        let c = parse_chunk(
            r#"{"choices":[{"message":{"content":"full"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3}}"#,
        );
        assert!(c.has_text);
        assert_eq!((c.finish_reason.as_deref(), c.prompt_tokens), (Some("stop"), Some(3)));
        let c = parse_chunk(r#"{"error":{"message":"boom","code":500}}"#);
        assert_eq!(c.error.as_deref(), Some("boom"));
        assert!(parse_chunk(" [DONE] ").done);
        assert!(parse_chunk("not json").malformed);
        assert!(parse_chunk("[1,2]").malformed);
        let c = parse_chunk(r#"{"usage":{"prompt_tokens":-3,"completion_tokens":1.5}}"#);
        assert_eq!((c.prompt_tokens, c.completion_tokens), (None, None));
    }
}
