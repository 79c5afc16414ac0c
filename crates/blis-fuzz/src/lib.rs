//! Shared machinery of the parsers' structured fuzz tests (a dev-dependency only).
//!
//! Every parser of user input (workload spec, trace CSV and header, calibration measurements,
//! coefficient files, `config.json`, hardware configs) has a property test that starts from a
//! small corpus of valid files, mutates them with [`mutated`] (byte edits, line edits, numbers
//! swapped for [`EXTREMES`]) or builds values from scratch, and asserts that parsing never
//! panics, that every error is one line ([`assert_one_line`]) and that accepted inputs satisfy
//! the parser's invariants.
//!
//! `cargo test` runs a few dozen cases per target; `BLIS_FUZZ_CASES=N` (see `tools/fuzz.sh`)
//! runs N.

use proptest::prelude::*;
use proptest::test_runner::Config;

/// Environment variable giving the number of cases per fuzz target.
pub const CASES_VAR: &str = "BLIS_FUZZ_CASES";

/// The proptest configuration of a fuzz target: `default_cases` cases (kept small so the
/// default `cargo test` stays fast) unless [`CASES_VAR`] says otherwise. Failures are not
/// persisted to files (the seed corpus lives in the repository instead).
pub fn config(default_cases: u32) -> Config {
    let cases = std::env::var(CASES_VAR).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(default_cases);
    Config { cases, failure_persistence: None, max_shrink_iters: 2_000, ..Config::default() }
}

/// Numbers that have broken parsers: zero, negatives, the edges of u32/i64/u64, the request
/// and time limits and one past them, huge and tiny floats, and non-numbers that YAML/JSON
/// readers may still accept.
pub const EXTREMES: &[&str] = &[
    "0",
    "-1",
    "1",
    "2",
    "-0.0",
    "0.5",
    "1e-300",
    "1e300",
    "-1e300",
    "1e19",
    "4294967295",
    "4294967296",
    "2147483648",
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "16777215",
    "16777216",
    "16777217",
    "3155760000000000",
    "3155760000000001",
    "1000000000",
    ".nan",
    ".inf",
    "-.inf",
    "NaN",
    "null",
    "\"7\"",
    "[]",
    "{}",
];

/// One edit of a text. Positions are taken modulo the text's length, so any value applies.
#[derive(Debug, Clone)]
pub enum Edit {
    /// Replace the `n`-th number in the text by `value`.
    Number { n: usize, value: String },
    /// Insert `text` at char position `at`.
    Insert { at: usize, text: String },
    /// Remove `len` chars at `at`.
    Delete { at: usize, len: usize },
    /// Remove line `line`.
    DeleteLine { line: usize },
    /// Repeat line `line`.
    DuplicateLine { line: usize },
    /// Keep only the first `at` chars.
    Truncate { at: usize },
}

/// A random edit; inserted text is drawn from characters that matter to YAML, JSON and CSV.
pub fn edit() -> impl Strategy<Value = Edit> {
    let number = prop_oneof![
        4 => proptest::sample::select(EXTREMES).prop_map(str::to_string),
        1 => any::<i64>().prop_map(|v| v.to_string()),
        1 => any::<f64>().prop_map(|v| format!("{v:e}")),
        1 => (0u64..100_000).prop_map(|v| v.to_string()),
    ];
    prop_oneof![
        6 => (any::<usize>(), number).prop_map(|(n, value)| Edit::Number { n, value }),
        3 => (any::<usize>(), "[a-z_0-9:,;\\[\\]{}\"' \\n.-]{1,8}").prop_map(|(at, text)| Edit::Insert { at, text }),
        2 => (any::<usize>(), 1usize..12).prop_map(|(at, len)| Edit::Delete { at, len }),
        1 => any::<usize>().prop_map(|line| Edit::DeleteLine { line }),
        1 => any::<usize>().prop_map(|line| Edit::DuplicateLine { line }),
        1 => any::<usize>().prop_map(|at| Edit::Truncate { at }),
    ]
}

/// Char-boundary byte offset of char position `at mod (chars + 1)`.
fn char_offset(text: &str, at: usize) -> usize {
    let n = text.chars().count() + 1;
    text.char_indices().map(|(i, _)| i).chain([text.len()]).nth(at % n).unwrap_or(text.len())
}

/// Byte ranges of the numbers (`-`? digits, `.`, exponent) in `text`.
pub fn number_spans(text: &str) -> Vec<(usize, usize)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let starts_number =
            b[i].is_ascii_digit() || (b[i] == b'-' && b.get(i + 1).is_some_and(u8::is_ascii_digit));
        // Only whole tokens: not the digits inside a word or a hex string.
        if starts_number && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')) {
            let mut j = i + 1;
            while j < b.len() && (b[j].is_ascii_digit() || matches!(b[j], b'.' | b'e' | b'E' | b'+' | b'-')) {
                j += 1;
            }
            if j == b.len() || !(b[j].is_ascii_alphabetic() || b[j] == b'_') {
                out.push((i, j));
            }
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

/// Applies one edit.
pub fn apply(text: &str, edit: &Edit) -> String {
    match edit {
        Edit::Number { n, value } => {
            let spans = number_spans(text);
            if spans.is_empty() {
                return text.to_string();
            }
            let (a, b) = spans[n % spans.len()];
            format!("{}{value}{}", &text[..a], &text[b..])
        }
        Edit::Insert { at, text: ins } => {
            let at = char_offset(text, *at);
            format!("{}{ins}{}", &text[..at], &text[at..])
        }
        Edit::Delete { at, len } => {
            let a = char_offset(text, *at);
            let b = text[a..]
                .char_indices()
                .map(|(i, _)| a + i)
                .chain([text.len()])
                .nth(*len)
                .unwrap_or(text.len());
            format!("{}{}", &text[..a], &text[b..])
        }
        Edit::DeleteLine { line } | Edit::DuplicateLine { line } => {
            let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
            if lines.is_empty() {
                return text.to_string();
            }
            let i = line % lines.len();
            if matches!(edit, Edit::DeleteLine { .. }) {
                lines.remove(i);
            } else {
                lines.insert(i, lines[i]);
            }
            lines.concat()
        }
        Edit::Truncate { at } => text[..char_offset(text, *at)].to_string(),
    }
}

/// One of `corpus`, changed by one to four edits.
pub fn mutated(corpus: &'static [&'static str]) -> impl Strategy<Value = String> {
    (proptest::sample::select(corpus), proptest::collection::vec(edit(), 1..5))
        .prop_map(|(base, edits)| edits.iter().fold(base.to_string(), |t, e| apply(&t, e)))
}

/// Fails unless `message` is a single non-empty line.
pub fn assert_one_line(message: &str) {
    assert!(!message.trim().is_empty(), "empty error message");
    assert!(!message.contains('\n') && !message.contains('\r'), "multi-line error message: {message:?}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_whole_tokens() {
        let t = "a: 12\nb: [-3, 4.5e6]\nc: x9 0xff h100: 7\n";
        let got: Vec<&str> = number_spans(t).iter().map(|&(a, b)| &t[a..b]).collect();
        assert_eq!(got, ["12", "-3", "4.5e6", "7"]);
    }

    #[test]
    fn edits_apply_anywhere_without_panicking() {
        let t = "héllo: 1\nworld: 2\n";
        assert_eq!(apply(t, &Edit::Number { n: 1, value: "1e300".into() }), "héllo: 1\nworld: 1e300\n");
        assert_eq!(apply(t, &Edit::DeleteLine { line: 3 }), "héllo: 1\n");
        assert_eq!(apply(t, &Edit::Truncate { at: 2 }), "hé");
        assert_eq!(apply(t, &Edit::Delete { at: 1, len: 2 }), "hlo: 1\nworld: 2\n");
        for at in 0..40 {
            let _ = apply(t, &Edit::Insert { at, text: "[".into() });
            let _ = apply(t, &Edit::Delete { at, len: 5 });
            let _ = apply("", &Edit::DuplicateLine { line: at });
        }
    }

    #[test]
    fn case_count_comes_from_the_environment_only_when_set() {
        if std::env::var(CASES_VAR).is_err() {
            assert_eq!(config(7).cases, 7);
        }
    }
}
