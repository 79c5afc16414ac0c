//! Helpers shared by the end-to-end tests: run the built `blis` binary and read its JSON.
// Each test crate uses a subset of these.
#![allow(dead_code)]

use std::process::{Command, Output};

use serde_json::Value;

pub const MODEL: &str = "meta-llama/llama-3.1-8b-instruct";

pub fn blis(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_blis")).args(args).output().expect("binary runs")
}

/// Runs `blis` and parses its stdout, failing the test with its stderr when it exits non-zero.
pub fn run_ok(args: &[&str]) -> Value {
    let out = blis(args);
    assert!(out.status.success(), "blis {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON document")
}

/// `run --model MODEL --hardware H100 --tp 1` followed by `extra`.
pub fn with_model<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["run", "--model", MODEL, "--hardware", "H100", "--tp", "1"];
    v.extend_from_slice(extra);
    v
}

/// A metrics document without its recorded configuration (which names the inputs, so runs that
/// reach the same metrics from different inputs differ there).
pub fn metrics(mut doc: Value) -> Value {
    doc.as_object_mut().expect("a document").remove("config");
    doc
}

/// An integer field of a document (panics naming the field when absent).
pub fn u(doc: &Value, field: &str) -> u64 {
    doc[field].as_u64().unwrap_or_else(|| panic!("{field} is not an integer in {doc}"))
}

/// A number field of a document (panics naming the field when absent).
pub fn f(doc: &Value, field: &str) -> f64 {
    doc[field].as_f64().unwrap_or_else(|| panic!("{field} is not a number in {doc}"))
}

/// Writes `text` to `dir/name` and returns the path as a string (for argument lists).
pub fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// Every injected request is accounted for exactly once: by the document's own buckets, plus
/// `extra` counters (e.g. the gateway's).
pub fn assert_conserved_with(doc: &Value, extra: &[&str]) {
    let accounted: u64 = [
        "completed_requests",
        "still_queued",
        "still_running",
        "rejected_requests",
        "dropped_unservable",
        "timed_out_requests",
        "in_transit_requests",
    ]
    .iter()
    .chain(extra)
    .map(|k| u(doc, k))
    .sum();
    assert_eq!(u(doc, "injected_requests"), accounted, "conservation broken: {doc}");
}

pub fn assert_conserved(doc: &Value) {
    assert_conserved_with(doc, &[]);
}
