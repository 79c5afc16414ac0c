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
