//! Token sequences described by provenance instead of by token ids.
//!
//! A prompt is a concatenation of [`Segment`]s: runs of tokens drawn from a *source* (a shared
//! system prompt, one user's question, one response). Two runs with the same source and offsets
//! hold the same tokens; runs from different sources never coincide (token ids are random, so
//! a collision has probability ~0). Hashing a KV block therefore only needs the segment pieces
//! it covers, not its tokens: O(blocks) per request instead of O(tokens), and no token storage.

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// `len` tokens of `source`, starting at token `start` of that source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Segment {
    pub source: u64,
    pub start: u32,
    pub len: u32,
}

/// An ordered token sequence made of segments.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct TokenSeq {
    segments: Vec<Segment>,
    len_tokens: u32,
}

/// Seed of the root of every block-hash chain (the hash of "no previous block").
const CHAIN_ROOT: u64 = 0x6b76_2d63_6861_696e; // "kv-chain"

impl TokenSeq {
    pub fn new() -> Self {
        Self::default()
    }

    /// A sequence of `len` fresh tokens from `source`.
    pub fn from_source(source: u64, len: u32) -> Self {
        let mut seq = Self::new();
        seq.push(Segment { source, start: 0, len });
        seq
    }

    pub fn len(&self) -> u32 {
        self.len_tokens
    }

    pub fn is_empty(&self) -> bool {
        self.len_tokens == 0
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Appends a segment, merging it into the last one when it continues the same source.
    ///
    /// Panics if the sequence would exceed `u32::MAX` tokens: workload sources bound every
    /// length by [`crate::MAX_REQUEST_TOKENS`] first, and [`try_push`](Self::try_push) is the
    /// checked form for lengths that come straight from a file.
    pub fn push(&mut self, segment: Segment) {
        self.try_push(segment).expect("token sequence longer than u32::MAX tokens");
    }

    /// [`push`](Self::push) that returns `None` (leaving the sequence unchanged) instead of
    /// overflowing: when the total would exceed `u32::MAX` tokens, or the segment would run
    /// past token `u32::MAX` of its source.
    pub fn try_push(&mut self, segment: Segment) -> Option<()> {
        segment.start.checked_add(segment.len)?;
        if segment.len == 0 {
            return Some(());
        }
        self.len_tokens = self.len_tokens.checked_add(segment.len)?;
        if let Some(last) = self.segments.last_mut()
            && last.source == segment.source
            && u64::from(last.start) + u64::from(last.len) == u64::from(segment.start)
        {
            last.len += segment.len;
            return Some(());
        }
        self.segments.push(segment);
        Some(())
    }

    /// Appends all of `other`.
    pub fn extend(&mut self, other: &TokenSeq) {
        for &s in &other.segments {
            self.push(s);
        }
    }

    /// Chained hashes of the full blocks among the first `upto_tokens` tokens, appended to `out`
    /// starting at block index `first_block` (whose predecessor hash is `prev`, or the chain
    /// root for block 0). Returns the number of hashes appended.
    pub fn block_hashes_from(
        &self,
        block_size_tokens: u32,
        first_block: u32,
        prev: Option<u64>,
        upto_tokens: u32,
        out: &mut Vec<u64>,
    ) -> u32 {
        assert!(block_size_tokens > 0, "block size must be positive");
        let upto = upto_tokens.min(self.len_tokens);
        let last_block = upto / block_size_tokens; // exclusive
        if first_block >= last_block {
            return 0;
        }
        let mut prev_hash = prev.unwrap_or(CHAIN_ROOT);
        // Locate the segment holding the first token of `first_block`.
        let mut pos = first_block * block_size_tokens;
        let mut seg_idx = 0;
        let mut seg_begin = 0u32; // sequence offset of segments[seg_idx]
        while seg_begin + self.segments[seg_idx].len <= pos {
            seg_begin += self.segments[seg_idx].len;
            seg_idx += 1;
        }
        let mut buf = [0u8; 16 * 8];
        for _ in first_block..last_block {
            let block_end = pos + block_size_tokens;
            let mut used = 0usize;
            let mut overflow_hash: Option<u64> = None;
            while pos < block_end {
                let seg = self.segments[seg_idx];
                let off = pos - seg_begin;
                let take = (seg.len - off).min(block_end - pos);
                let piece = Piece { source: seg.source, start: seg.start + off, len: take };
                if used + 16 > buf.len() {
                    // A block spread over more than 8 segments: fold what we have so far.
                    let h = xxh3_64_with_seed(&buf[..used], overflow_hash.unwrap_or(prev_hash));
                    overflow_hash = Some(h);
                    used = 0;
                }
                piece.write(&mut buf[used..used + 16]);
                used += 16;
                pos += take;
                if off + take == seg.len {
                    seg_begin += seg.len;
                    seg_idx += 1;
                }
            }
            prev_hash = xxh3_64_with_seed(&buf[..used], overflow_hash.unwrap_or(prev_hash));
            out.push(prev_hash);
        }
        last_block - first_block
    }

    /// Chained hashes of every full block of the sequence.
    pub fn block_hashes(&self, block_size_tokens: u32) -> Vec<u64> {
        let mut out = Vec::with_capacity((self.len_tokens / block_size_tokens) as usize);
        self.block_hashes_from(block_size_tokens, 0, None, self.len_tokens, &mut out);
        out
    }
}

struct Piece {
    source: u64,
    start: u32,
    len: u32,
}

impl Piece {
    fn write(&self, dst: &mut [u8]) {
        dst[0..8].copy_from_slice(&self.source.to_le_bytes());
        dst[8..12].copy_from_slice(&self.start.to_le_bytes());
        dst[12..16].copy_from_slice(&self.len.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn seq(parts: &[(u64, u32)]) -> TokenSeq {
        let mut s = TokenSeq::new();
        for &(source, len) in parts {
            s.push(Segment { source, start: 0, len });
        }
        s
    }

    #[test]
    fn shared_prefix_shares_exactly_its_full_blocks() {
        let a = seq(&[(1, 100), (2, 447)]);
        let b = seq(&[(1, 100), (3, 447)]);
        let (ha, hb) = (a.block_hashes(16), b.block_hashes(16));
        assert_eq!(ha.len(), 547 / 16);
        // 100 shared tokens = 6 full blocks; block 6 mixes prefix and question.
        assert_eq!(ha[..6], hb[..6]);
        assert_ne!(ha[6], hb[6]);
    }

    #[test]
    fn hashes_are_chained() {
        // Same block content at the same position after different histories must differ.
        let a = seq(&[(1, 16), (9, 16)]);
        let b = seq(&[(2, 16), (9, 16)]);
        assert_ne!(a.block_hashes(16)[1], b.block_hashes(16)[1]);
    }

    #[test]
    fn push_merges_contiguous_runs() {
        let mut s = TokenSeq::new();
        s.push(Segment { source: 7, start: 0, len: 10 });
        s.push(Segment { source: 7, start: 10, len: 5 });
        assert_eq!(s.segments().len(), 1);
        assert_eq!(s.len(), 15);
    }

    #[test]
    fn many_segments_in_one_block() {
        let parts: Vec<(u64, u32)> = (0..40).map(|i| (i, 1)).collect();
        let s = seq(&parts);
        assert_eq!(s.block_hashes(16).len(), 2);
    }

    #[test]
    fn try_push_refuses_overflow_and_leaves_the_sequence_unchanged() {
        let mut s = TokenSeq::from_source(1, u32::MAX - 1);
        assert!(s.try_push(Segment { source: 2, start: 0, len: 2 }).is_none());
        assert_eq!((s.len(), s.segments().len()), (u32::MAX - 1, 1));
        assert!(s.try_push(Segment { source: 2, start: u32::MAX, len: 1 }).is_none());
        assert!(s.try_push(Segment { source: 2, start: 5, len: 1 }).is_some());
        assert_eq!(s.len(), u32::MAX);
        // A run ending at the last token of its source still merges without overflow.
        let mut t = TokenSeq::new();
        t.push(Segment { source: 3, start: u32::MAX - 2, len: 2 });
        assert!(t.try_push(Segment { source: 3, start: u32::MAX, len: 0 }).is_some());
        assert_eq!(t.segments().len(), 1);
    }

    proptest! {
        /// Splitting a sequence's segments differently (same tokens) gives the same hashes,
        /// and hashing incrementally equals hashing at once.
        #[test]
        fn hashing_depends_on_content_not_on_segmentation(
            lens in proptest::collection::vec(1u32..60, 1..8),
            split in 1u32..50,
            bs in 1u32..33,
        ) {
            let mut whole = TokenSeq::new();
            let mut pieces = TokenSeq::new();
            for (i, &len) in lens.iter().enumerate() {
                let source = i as u64 + 100;
                whole.push(Segment { source, start: 0, len });
                let cut = split.min(len);
                pieces.push(Segment { source, start: 0, len: cut });
                pieces.push(Segment { source, start: cut, len: len - cut });
            }
            let full = whole.block_hashes(bs);
            prop_assert_eq!(&full, &pieces.block_hashes(bs));
            let n = full.len() as u32;
            if n >= 2 {
                let mut inc = Vec::new();
                let k = n / 2;
                whole.block_hashes_from(bs, 0, None, k * bs, &mut inc);
                let prev = inc.last().copied();
                whole.block_hashes_from(bs, k, prev, whole.len(), &mut inc);
                prop_assert_eq!(full, inc);
            }
        }
    }
}
