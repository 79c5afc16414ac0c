//! Synthetic prompt text: one word per workload token, so a server's tokenizer sees about as
//! many tokens as the simulated request has (`server_input_tokens` in the trace records how
//! many it really saw).
//!
//! A workload token is a position in a token source (see `blis_workload::tokens`); its word
//! is a hash of (source, position) into a fixed vocabulary of short, common English words
//! (one BPE token each in the usual tokenizers, with their leading space). Requests that share
//! a prefix in the workload (a prefix group, a session's history) therefore share the same
//! leading text, and the server's prefix cache sees the sharing the simulator models.

use blis_workload::tokens::TokenSeq;

/// Short words that common tokenizers keep whole.
const WORDS: [&str; 64] = [
    "time", "year", "people", "way", "day", "man", "thing", "woman", "life", "child", "world", "school",
    "state", "family", "group", "country", "problem", "hand", "part", "place", "case", "week", "company",
    "system", "program", "question", "work", "number", "night", "point", "home", "water", "room", "mother",
    "area", "money", "story", "fact", "month", "lot", "right", "study", "book", "eye", "job", "word",
    "business", "issue", "side", "kind", "head", "house", "service", "friend", "father", "power", "hour",
    "game", "line", "end", "member", "law", "car", "city",
];

fn mix(mut x: u64) -> u64 {
    // splitmix64's finalizer.
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The prompt of a request whose input is `input`: `input.len()` words separated by spaces.
pub fn prompt_text(input: &TokenSeq) -> String {
    let mut out = String::with_capacity(input.len() as usize * 6);
    for seg in input.segments() {
        let base = mix(seg.source);
        for i in 0..seg.len {
            let pos = u64::from(seg.start) + u64::from(i);
            let word = WORDS[(mix(base ^ pos) % WORDS.len() as u64) as usize];
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(word);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use blis_workload::tokens::Segment;

    #[test]
    fn one_word_per_token_and_shared_prefixes_share_text() {
        let mut a = TokenSeq::from_source(7, 10);
        a.push(Segment { source: 8, start: 0, len: 5 });
        let mut b = TokenSeq::from_source(7, 10);
        b.push(Segment { source: 9, start: 0, len: 3 });
        let (ta, tb) = (prompt_text(&a), prompt_text(&b));
        assert_eq!(ta.split(' ').count(), 15);
        assert_eq!(tb.split(' ').count(), 13);
        let prefix = prompt_text(&TokenSeq::from_source(7, 10));
        assert!(ta.starts_with(&prefix) && tb.starts_with(&prefix));
        assert_ne!(ta[prefix.len()..], tb[prefix.len()..]);
        assert_eq!(prompt_text(&TokenSeq::new()), "");
        // Text is a pure function of the token positions.
        assert_eq!(prompt_text(&a), ta);
    }
}
