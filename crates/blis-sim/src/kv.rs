//! Paged KV cache with prefix caching (vLLM V1 block manager semantics).
//!
//! Blocks of `block_size_tokens` slots. A full block carries the chained hash of its content;
//! the hash index maps hash → block and keeps pointing at a block after it is freed, so a later
//! request with the same prefix can re-claim it ("free but cached"). Free blocks sit on an LRU
//! list: released blocks join the tail, allocation pops the head, evicting any stale hash then.
//!
//! The cache owns blocks; a request owns only a [`KvAlloc`] (its block table), handed in by the
//! scheduler. That is the whole interface between the two.
//!
//! Optionally a CPU tier ([`KvCache::enable_cpu_tier`], see [`crate::kv_cpu`]) keeps copies of
//! computed blocks: every block that gets its hash is written through to it, and an allocation
//! may name leading blocks to bring back from it (`reload`), which then count as CPU hits.

use std::collections::VecDeque;
use std::hash::Hasher;

use blis_workload::TokenSeq;

use crate::kv_cpu::CpuTier;

/// Hints the CPU to fetch `r`'s cache line (the pools of many instances do not fit in cache;
/// issuing the misses of a batch of accesses together overlaps them).
#[inline(always)]
pub fn prefetch<T>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint; any address is allowed.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>((r as *const T).cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}

/// Hasher for keys that already are well-mixed 64-bit hashes (xxh3 block hashes): the key is
/// used as is, so an index lookup costs no hashing at all.
#[derive(Debug, Default, Clone, Copy)]
pub struct PremixedHasher(u64);

impl Hasher for PremixedHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is expected; fold anything else in for correctness.
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// The prefix index: block hash → block, open addressing with linear probing over
/// (hash, block) slots. Keys are xxh3 hashes, so their low bits are the home slot. Entries are
/// only inserted or overwritten, never deleted one by one (deletion is lazy, see
/// `KvCache::index`), so there are no tombstones; a bulk `retain` rebuilds the table. Unlike
/// `hashbrown` it exposes the slot a key lives in, so lookups can be prefetched.
#[derive(Debug, Clone)]
struct PrefixIndex {
    slots: Vec<(u64, u32)>,
    mask: usize,
    len: usize,
}

/// Block id of an empty slot.
const EMPTY: u32 = u32::MAX;

impl PrefixIndex {
    fn new() -> Self {
        Self::with_slots(1024)
    }

    fn with_slots(n: usize) -> Self {
        debug_assert!(n.is_power_of_two());
        Self { slots: vec![(0, EMPTY); n], mask: n - 1, len: 0 }
    }

    #[inline]
    fn home(&self, hash: u64) -> usize {
        hash as usize & self.mask
    }

    /// Hints the CPU to fetch `hash`'s home slot.
    #[inline]
    fn prefetch(&self, hash: u64) {
        prefetch(&self.slots[self.home(hash)]);
    }

    #[inline]
    fn get(&self, hash: u64) -> Option<u32> {
        let mut i = self.home(hash);
        loop {
            let (k, v) = self.slots[i];
            if v == EMPTY {
                return None;
            }
            if k == hash {
                return Some(v);
            }
            i = (i + 1) & self.mask;
        }
    }

    /// The slot holding `hash`, or the empty slot where it goes (then claimed for it, holding
    /// `EMPTY` until the caller sets it); and whether the key was present.
    #[inline]
    fn entry(&mut self, hash: u64) -> (&mut u32, bool) {
        if (self.len + 1) * 2 > self.slots.len() {
            self.rebuild(self.slots.len() * 2, |_, _| true);
        }
        let mut i = self.home(hash);
        loop {
            let (k, v) = self.slots[i];
            if v == EMPTY {
                self.len += 1;
                self.slots[i].0 = hash;
                return (&mut self.slots[i].1, false);
            }
            if k == hash {
                return (&mut self.slots[i].1, true);
            }
            i = (i + 1) & self.mask;
        }
    }

    fn iter(&self) -> impl Iterator<Item = (u64, u32)> + '_ {
        self.slots.iter().copied().filter(|&(_, v)| v != EMPTY)
    }

    fn len(&self) -> usize {
        self.len
    }

    /// Keeps the entries `keep` accepts, in a table of `n` slots.
    fn rebuild(&mut self, n: usize, mut keep: impl FnMut(u64, u32) -> bool) {
        let old = std::mem::replace(self, Self::with_slots(n));
        for (k, v) in old.iter() {
            if keep(k, v) {
                let (slot, _) = self.entry(k);
                *slot = v;
            }
        }
    }

    fn retain(&mut self, keep: impl FnMut(u64, u32) -> bool) {
        let n = self.slots.len();
        self.rebuild(n, keep);
    }
}

/// A pool block, 16 bytes (four to a cache line; the pools of many instances do not fit in
/// cache, so their size matters).
#[derive(Debug, Clone)]
struct Block {
    ref_count: u32,
    /// Bit 0: `hashed`; bit 1: `indexed`; bits 2..: the free stamp (see the accessors).
    meta: u32,
    /// Chained content hash; meaningful only when `hashed`.
    hash: u64,
}

const HASHED: u32 = 1;
const INDEXED: u32 = 2;
const STAMP_SHIFT: u32 = 2;

impl Block {
    /// `hash` is meaningful.
    #[inline(always)]
    fn hashed(&self) -> bool {
        self.meta & HASHED != 0
    }

    /// The hash index's entry for `hash` points at this block (it is the canonical holder).
    #[inline(always)]
    fn indexed(&self) -> bool {
        self.meta & INDEXED != 0
    }

    #[inline(always)]
    fn set_flag(&mut self, flag: u32, on: bool) {
        if on {
            self.meta |= flag;
        } else {
            self.meta &= !flag;
        }
    }

    /// Bumped each time the block joins the free queue; the queue entry carrying the current
    /// stamp of an unreferenced block is its live one. 30 bits, wrapping (a block would have to
    /// be freed 2^30 times while one of its stale queue entries waits to be popped or purged).
    #[inline(always)]
    fn free_stamp(&self) -> u32 {
        self.meta >> STAMP_SHIFT
    }

    #[inline(always)]
    fn bump_free_stamp(&mut self) -> u32 {
        self.meta = self.meta.wrapping_add(1 << STAMP_SHIFT);
        self.free_stamp()
    }
}

/// A change of the prefix-hash index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexChange {
    Added(u64),
    Removed(u64),
}

/// One request's block table.
#[derive(Debug, Clone, Default)]
pub struct KvAlloc {
    blocks: Vec<u32>,
    /// Token slots written so far (the request's KV length).
    tokens: u32,
}

impl KvAlloc {
    pub fn tokens(&self) -> u32 {
        self.tokens
    }

    pub fn num_blocks(&self) -> usize {
        self.blocks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// Brings the written-slot count up to date for a request whose in-block growth was not
    /// reported token by token (lockstep decode); it never exceeds the slots held.
    pub fn sync_tokens(&mut self, tokens: u32, block_size_tokens: u32) {
        debug_assert!(tokens >= self.tokens && tokens <= self.blocks.len() as u32 * block_size_tokens);
        self.tokens = tokens;
    }
}

/// The block pool of one instance.
#[derive(Debug, Clone)]
pub struct KvCache {
    block_size_tokens: u32,
    blocks: Vec<Block>,
    /// Free blocks in LRU order (released blocks join the back, allocation pops the front) as
    /// (block, stamp). Claiming a cached free block does not search the queue: its entry just
    /// goes stale (the block is referenced again, or re-freed under a newer stamp) and is
    /// skipped when it reaches the front. Unlike a linked list, the next blocks to be popped are
    /// known ahead, so their (cache-cold) block structs are prefetched. Stale entries are
    /// purged when they outnumber the blocks.
    free_queue: VecDeque<(u32, u32)>,
    stale_free: u32,
    free_blocks: u32,
    /// hash → block. Entries are deleted lazily: an entry is live only while its block is
    /// still `indexed` under that hash (see [`KvCache::live`]); eviction just clears the block's
    /// flag, so it costs no lookup in this (large, cache-cold) table. Dead entries are purged
    /// when they outnumber the blocks, which bounds the table at twice the pool.
    index: PrefixIndex,
    /// When enabled, every change of the hash index, so a delayed copy of it (the router's
    /// stale view) can be brought up to date at a cost proportional to the changes.
    index_log: Option<Vec<IndexChange>>,
    hit_blocks: u64,
    miss_blocks: u64,
    scratch_hashes: Vec<u64>,
    /// Index entries whose block was evicted (see `index`).
    dead_entries: u32,
    /// Host-memory copies of computed blocks (off unless enabled).
    cpu: Option<Box<CpuTier>>,
    /// Blocks allocated as reloads from the CPU tier (CPU prefix hits).
    reload_blocks: u64,
    /// Only prompt blocks are written to the CPU tier.
    cpu_prompt_only: bool,
}

impl KvCache {
    pub fn new(total_blocks: u32, block_size_tokens: u32) -> Self {
        assert!(total_blocks > 0 && block_size_tokens > 0);
        let blocks = (0..total_blocks).map(|_| Block { ref_count: 0, meta: 0, hash: 0 }).collect();
        Self {
            block_size_tokens,
            blocks,
            free_queue: (0..total_blocks).map(|i| (i, 0)).collect(),
            stale_free: 0,
            free_blocks: total_blocks,
            index: PrefixIndex::new(),
            index_log: None,
            hit_blocks: 0,
            miss_blocks: 0,
            scratch_hashes: Vec::new(),
            dead_entries: 0,
            cpu: None,
            reload_blocks: 0,
            cpu_prompt_only: false,
        }
    }

    /// Adds a CPU tier of `cpu_blocks` blocks (before any allocation); `prompt_only`: only blocks
    /// of a request's prompt (its known hashes) are written to it.
    pub fn enable_cpu_tier(&mut self, cpu_blocks: u32, prompt_only: bool) {
        debug_assert_eq!(self.hit_blocks + self.miss_blocks, 0, "CPU tier enabled on a used cache");
        self.cpu = Some(Box::new(CpuTier::new(cpu_blocks)));
        self.cpu_prompt_only = prompt_only;
    }

    /// The CPU tier, if enabled.
    pub fn cpu_tier(&self) -> Option<&CpuTier> {
        self.cpu.as_deref()
    }

    /// Blocks brought back from the CPU tier by allocations.
    pub fn reload_blocks(&self) -> u64 {
        self.reload_blocks
    }

    /// How many of `hashes[from..]`, leading, the CPU tier holds (0 without a tier). A pure
    /// query.
    pub fn cpu_prefix_blocks(&self, hashes: &[u64], from: u32) -> u32 {
        let Some(cpu) = &self.cpu else { return 0 };
        hashes
            .get(from as usize..)
            .map_or(0, |rest| rest.iter().take_while(|&&h| cpu.contains(h)).count() as u32)
    }

    pub fn block_size_tokens(&self) -> u32 {
        self.block_size_tokens
    }

    pub fn total_blocks(&self) -> u32 {
        self.blocks.len() as u32
    }

    pub fn free_blocks(&self) -> u32 {
        self.free_blocks
    }

    pub fn used_blocks(&self) -> u32 {
        self.total_blocks() - self.free_blocks
    }

    pub fn utilization(&self) -> f64 {
        f64::from(self.used_blocks()) / f64::from(self.total_blocks())
    }

    pub fn hit_blocks(&self) -> u64 {
        self.hit_blocks
    }

    pub fn miss_blocks(&self) -> u64 {
        self.miss_blocks
    }

    /// Starts recording index changes (see [`KvCache::drain_index_changes`]).
    pub fn enable_index_log(&mut self) {
        self.index_log.get_or_insert_with(Vec::new);
    }

    /// Every index change since the last call, oldest first.
    pub fn drain_index_changes(&mut self) -> Vec<IndexChange> {
        self.index_log.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Whether index entry `hash → id` is live.
    #[inline]
    fn live(&self, hash: u64, id: u32) -> bool {
        let b = &self.blocks[id as usize];
        b.indexed() && b.hash == hash
    }

    /// The block holding `hash`, if resident.
    #[inline]
    fn lookup(&self, hash: u64) -> Option<u32> {
        self.index.get(hash).filter(|&id| self.live(hash, id))
    }

    /// The block holding `hash`, which must be resident.
    fn resident(&self, hash: u64) -> u32 {
        self.lookup(hash).expect("claimed hash is not resident")
    }

    /// Drops dead index entries once they outnumber the blocks (amortized O(1) per eviction).
    fn purge_dead_entries(&mut self) {
        if self.dead_entries <= self.total_blocks() {
            return;
        }
        let blocks = &self.blocks;
        self.index.retain(|h, id| {
            let b = &blocks[id as usize];
            b.indexed() && b.hash == h
        });
        self.dead_entries = 0;
    }

    /// Hints the CPU to fetch the index slots of `hashes` (a prompt about to be admitted: its
    /// lookups and the seals of its blocks probe them), so their cache misses overlap.
    pub fn prefetch_index(&self, hashes: &[u64]) {
        for &h in hashes {
            self.index.prefetch(h);
        }
    }

    /// Second prefetch stage after [`KvCache::prefetch_index`]: once the index slots have had
    /// time to arrive, hints the CPU to fetch the block structs they point at (a prefix
    /// lookup checks each hit block's liveness).
    pub fn prefetch_index_blocks(&self, hashes: &[u64]) {
        for &h in hashes {
            if let Some(id) = self.index.get(h) {
                prefetch(&self.blocks[id as usize]);
            }
        }
    }

    /// Number of leading blocks of `hashes` resident in the cache. A pure query.
    pub fn cached_prefix_blocks(&self, hashes: &[u64]) -> u32 {
        hashes.iter().take_while(|&&h| self.lookup(h).is_some()).count() as u32
    }

    /// New blocks needed to grow `alloc` (no claim) to `end_tokens`.
    #[inline]
    pub fn new_blocks_needed(&self, alloc: &KvAlloc, end_tokens: u32) -> u32 {
        let have_slots = alloc.blocks.len() as u32 * self.block_size_tokens;
        end_tokens.saturating_sub(have_slots).div_ceil(self.block_size_tokens)
    }

    /// Blocks needed to grow `alloc` to `end_tokens`, plus cached blocks that would leave the
    /// free list when claimed.
    fn blocks_needed(&self, alloc: &KvAlloc, end_tokens: u32, claim: &[u64]) -> u32 {
        let have_slots = alloc.blocks.len() as u32 * self.block_size_tokens;
        let base_slots = have_slots.max(claim.len() as u32 * self.block_size_tokens);
        let new_blocks = end_tokens.saturating_sub(base_slots).div_ceil(self.block_size_tokens);
        let claimed_from_free =
            claim.iter().filter(|&&h| self.blocks[self.resident(h) as usize].ref_count == 0).count() as u32;
        new_blocks + claimed_from_free
    }

    /// Grows `alloc` to hold `end_tokens` tokens of `seq`, all-or-nothing.
    ///
    /// `claim` lists the hashes of cached leading blocks to take over first; it must be non-empty
    /// only for a request's first allocation. `known_hashes` are precomputed block hashes of the
    /// sequence (the prompt's), used before computing new ones. Without `seq`, blocks beyond
    /// `known_hashes` are not hashed or indexed when they fill (nothing can ever look them up).
    /// Returns false, changing nothing, when the free blocks do not suffice.
    #[inline]
    pub fn allocate(
        &mut self,
        alloc: &mut KvAlloc,
        seq: Option<&TokenSeq>,
        known_hashes: &[u64],
        claim: &[u64],
        end_tokens: u32,
    ) -> bool {
        // Fast path (a decode token, a chunk inside the last block): growing within the last
        // block without filling it needs no new block and seals nothing.
        if claim.is_empty() && end_tokens < alloc.blocks.len() as u32 * self.block_size_tokens {
            alloc.tokens = alloc.tokens.max(end_tokens);
            return true;
        }
        self.allocate_slow(alloc, seq, known_hashes, claim, 0, end_tokens)
    }

    /// [`KvCache::allocate`] for a request's first allocation that also brings `reload` blocks
    /// back from the CPU tier: the blocks of `known_hashes[claim.len()..claim.len() + reload]`
    /// get fresh GPU blocks holding that content (sealed at once, counted as CPU hits rather
    /// than misses). `end_tokens` must cover them.
    pub fn allocate_with_reload(
        &mut self,
        alloc: &mut KvAlloc,
        seq: Option<&TokenSeq>,
        known_hashes: &[u64],
        claim: &[u64],
        reload: u32,
        end_tokens: u32,
    ) -> bool {
        debug_assert!(alloc.blocks.is_empty() && self.cpu.is_some() || reload == 0);
        debug_assert!((claim.len() as u32 + reload) as usize <= known_hashes.len());
        debug_assert!(end_tokens >= (claim.len() as u32 + reload) * self.block_size_tokens);
        self.allocate_slow(alloc, seq, known_hashes, claim, reload, end_tokens)
    }

    #[inline(never)]
    fn allocate_slow(
        &mut self,
        alloc: &mut KvAlloc,
        seq: Option<&TokenSeq>,
        known_hashes: &[u64],
        claim: &[u64],
        reload: u32,
        end_tokens: u32,
    ) -> bool {
        debug_assert!(claim.is_empty() || alloc.blocks.is_empty());
        if self.blocks_needed(alloc, end_tokens, claim) > self.free_blocks {
            return false;
        }
        // The blocks the loop below pops first (the queue prefetches further ones as it goes).
        for &(id, _) in self.free_queue.iter().take(self.new_blocks_needed(alloc, end_tokens).min(4) as usize)
        {
            prefetch(&self.blocks[id as usize]);
        }
        for hash in claim {
            let id = self.resident(*hash);
            if self.blocks[id as usize].ref_count == 0 {
                self.unlink_free(id);
            }
            self.blocks[id as usize].ref_count += 1;
            alloc.blocks.push(id);
            self.hit_blocks += 1;
            if let Some(cpu) = &mut self.cpu {
                cpu.touch(*hash);
            }
        }
        alloc.tokens = alloc.tokens.max(claim.len() as u32 * self.block_size_tokens);
        let bs = self.block_size_tokens;
        let reload_end = claim.len() as u32 + reload;
        while alloc.tokens < end_tokens {
            if alloc.tokens.is_multiple_of(bs) && alloc.tokens / bs == alloc.blocks.len() as u32 {
                let id = self.pop_free();
                if (alloc.blocks.len() as u32) < reload_end {
                    self.reload_blocks += 1;
                } else {
                    self.miss_blocks += 1;
                }
                alloc.blocks.push(id);
            }
            let block_end = (alloc.tokens / bs + 1) * bs;
            alloc.tokens = block_end.min(end_tokens);
            if alloc.tokens == block_end {
                self.seal_block(alloc, seq, known_hashes, block_end / bs - 1);
            }
        }
        true
    }

    /// Records the content hash of a block that just became full.
    fn seal_block(&mut self, alloc: &KvAlloc, seq: Option<&TokenSeq>, known: &[u64], block_idx: u32) {
        let id = alloc.blocks[block_idx as usize];
        if self.blocks[id as usize].hashed() {
            return; // a claimed cached block
        }
        let hash = if let Some(&h) = known.get(block_idx as usize) {
            h
        } else {
            let Some(seq) = seq else {
                return; // past the known hashes of a sequence nobody can look up
            };
            let prev = if block_idx == 0 {
                None
            } else {
                let prev_id = alloc.blocks[block_idx as usize - 1];
                Some(self.blocks[prev_id as usize].hash)
            };
            self.scratch_hashes.clear();
            let bs = self.block_size_tokens;
            let n =
                seq.block_hashes_from(bs, block_idx, prev, (block_idx + 1) * bs, &mut self.scratch_hashes);
            if n == 0 {
                return; // the sequence is shorter than the block: nothing to identify it by
            }
            self.scratch_hashes[0]
        };
        // One table access: a live entry means another block already holds this content.
        let added = match self.index.entry(hash) {
            (slot, false) => {
                *slot = id;
                true
            }
            (slot, true) => {
                let holder = &self.blocks[*slot as usize];
                if holder.indexed() && holder.hash == hash {
                    false
                } else {
                    *slot = id; // replaces a dead entry
                    self.dead_entries -= 1;
                    true
                }
            }
        };
        if let Some(cpu) = &mut self.cpu
            && (!self.cpu_prompt_only || (block_idx as usize) < known.len())
        {
            cpu.store(hash); // written through (a resident copy is refreshed)
        }
        let block = &mut self.blocks[id as usize];
        block.hash = hash;
        block.set_flag(HASHED, true);
        if added {
            block.set_flag(INDEXED, true);
            if let Some(log) = &mut self.index_log {
                log.push(IndexChange::Added(hash));
            }
            self.purge_dead_entries();
        }
    }

    /// Returns every block of `alloc` to the pool, last block first, so that a request's later
    /// (less shareable) blocks are evicted before its earlier ones.
    pub fn release(&mut self, alloc: &mut KvAlloc) {
        for &id in &alloc.blocks {
            prefetch(&self.blocks[id as usize]);
        }
        while let Some(id) = alloc.blocks.pop() {
            let block = &mut self.blocks[id as usize];
            debug_assert!(block.ref_count > 0, "double free of block {id}");
            block.ref_count -= 1;
            if block.ref_count == 0 {
                self.push_free_tail(id);
            }
        }
        alloc.tokens = 0;
    }

    /// Whether free-queue entry `(id, stamp)` is live.
    #[inline]
    fn live_free(&self, id: u32, stamp: u32) -> bool {
        let b = &self.blocks[id as usize];
        b.ref_count == 0 && b.free_stamp() == stamp
    }

    fn pop_free(&mut self) -> u32 {
        /// Queue entries ahead whose blocks are prefetched.
        const AHEAD: usize = 4;
        let id = loop {
            let (id, stamp) =
                self.free_queue.pop_front().expect("pop from an empty free list (capacity check skipped)");
            if let Some(&(next, _)) = self.free_queue.get(AHEAD) {
                prefetch(&self.blocks[next as usize]);
            }
            if self.live_free(id, stamp) {
                break id;
            }
            self.stale_free -= 1;
        };
        self.free_blocks -= 1;
        let block = &mut self.blocks[id as usize];
        if block.hashed() {
            block.set_flag(HASHED, false);
            let hash = block.hash;
            if block.indexed() {
                // The index entry dies with the flag; no table access.
                block.set_flag(INDEXED, false);
                self.dead_entries += 1;
                if let Some(log) = &mut self.index_log {
                    log.push(IndexChange::Removed(hash));
                }
            }
        }
        self.blocks[id as usize].ref_count = 1;
        id
    }

    /// Takes free block `id` (a cached block being claimed) off the free list: its queue entry
    /// goes stale once the caller references the block.
    fn unlink_free(&mut self, id: u32) {
        debug_assert_eq!(self.blocks[id as usize].ref_count, 0);
        self.free_blocks -= 1;
        self.stale_free += 1;
    }

    fn push_free_tail(&mut self, id: u32) {
        let b = &mut self.blocks[id as usize];
        let stamp = b.bump_free_stamp();
        self.free_queue.push_back((id, stamp));
        self.free_blocks += 1;
        if self.stale_free > self.total_blocks() {
            let blocks = &self.blocks;
            self.free_queue.retain(|&(id, stamp)| {
                let b = &blocks[id as usize];
                b.ref_count == 0 && b.free_stamp() == stamp
            });
            self.stale_free = 0;
        }
    }

    /// Checks the pool's internal invariants (used + free = total, free list consistent with
    /// reference counts, index entries point at hashed blocks). For tests and debug builds.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut on_list = 0u32;
        let mut seen = vec![false; self.blocks.len()];
        for &(id, stamp) in &self.free_queue {
            if !self.live_free(id, stamp) {
                continue;
            }
            if std::mem::replace(&mut seen[id as usize], true) {
                return Err(format!("block {id} is on the free list twice"));
            }
            on_list += 1;
        }
        if on_list != self.free_blocks {
            return Err(format!("free count {} but {on_list} on list", self.free_blocks));
        }
        let stale = self.free_queue.len() as u32 - on_list;
        if stale != self.stale_free {
            return Err(format!("{stale} stale free-list entries but {} counted", self.stale_free));
        }
        let zero_ref = self.blocks.iter().filter(|b| b.ref_count == 0).count() as u32;
        if zero_ref != self.free_blocks {
            return Err(format!("{zero_ref} unreferenced blocks but {} free", self.free_blocks));
        }
        let mut live = 0u32;
        for (hash, id) in self.index.iter() {
            if !self.live(hash, id) {
                continue;
            }
            live += 1;
            if !self.blocks[id as usize].hashed() {
                return Err(format!("index entry for block {id} is stale"));
            }
        }
        let indexed = self.blocks.iter().filter(|b| b.indexed()).count() as u32;
        if indexed != live {
            return Err(format!("{indexed} blocks flagged indexed but {live} live index entries"));
        }
        let dead = self.index.len() as u32 - live;
        if dead != self.dead_entries {
            return Err(format!("{dead} dead index entries but {} counted", self.dead_entries));
        }
        if let Some(cpu) = &self.cpu {
            cpu.check_invariants()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use blis_workload::Segment;
    use proptest::prelude::*;

    fn prompt(prefix_source: u64, prefix: u32, own: u64, len: u32) -> TokenSeq {
        let mut s = TokenSeq::from_source(prefix_source, prefix);
        s.push(Segment { source: own, start: 0, len });
        s
    }

    #[test]
    fn allocate_and_release_return_every_block() {
        let mut kv = KvCache::new(10, 16);
        let seq = TokenSeq::from_source(1, 40);
        let mut a = KvAlloc::default();
        assert!(kv.allocate(&mut a, Some(&seq), &[], &[], 40));
        assert_eq!(a.num_blocks(), 3);
        assert_eq!(kv.free_blocks(), 7);
        // Growing within the partial block needs no new block.
        assert!(kv.allocate(&mut a, Some(&seq), &[], &[], 48));
        assert_eq!(kv.free_blocks(), 7);
        kv.release(&mut a);
        assert_eq!(kv.free_blocks(), 10);
        kv.check_invariants().unwrap();
    }

    #[test]
    fn allocation_is_all_or_nothing() {
        let mut kv = KvCache::new(2, 16);
        let seq = TokenSeq::from_source(1, 100);
        let mut a = KvAlloc::default();
        assert!(!kv.allocate(&mut a, Some(&seq), &[], &[], 33));
        assert_eq!(kv.free_blocks(), 2);
        assert!(a.is_empty());
    }

    #[test]
    fn freed_prefix_is_reclaimed_by_the_next_request() {
        let mut kv = KvCache::new(20, 16);
        let a_seq = prompt(7, 64, 100, 30);
        let b_seq = prompt(7, 64, 200, 30);
        let a_hashes = a_seq.block_hashes(16);
        let b_hashes = b_seq.block_hashes(16);
        let mut a = KvAlloc::default();
        assert!(kv.allocate(&mut a, Some(&a_seq), &a_hashes, &[], a_seq.len()));
        kv.release(&mut a);
        let cached = kv.cached_prefix_blocks(&b_hashes);
        assert_eq!(cached, 4); // 64 shared tokens
        let mut b = KvAlloc::default();
        let claim = &b_hashes[..cached as usize];
        assert!(kv.allocate(&mut b, Some(&b_seq), &b_hashes, claim, b_seq.len()));
        assert_eq!(kv.hit_blocks(), 4);
        assert_eq!(b.num_blocks(), 6);
        kv.check_invariants().unwrap();
    }

    #[test]
    fn lru_evicts_least_recently_freed_first() {
        let mut kv = KvCache::new(4, 16);
        let s1 = TokenSeq::from_source(1, 32);
        let s2 = TokenSeq::from_source(2, 32);
        let (h1, h2) = (s1.block_hashes(16), s2.block_hashes(16));
        let mut a = KvAlloc::default();
        let mut b = KvAlloc::default();
        assert!(kv.allocate(&mut a, Some(&s1), &h1, &[], 32));
        assert!(kv.allocate(&mut b, Some(&s2), &h2, &[], 32));
        kv.release(&mut a);
        kv.release(&mut b);
        // A new 2-block request evicts s1's blocks (freed first), keeping s2 cached.
        let s3 = TokenSeq::from_source(3, 32);
        let mut c = KvAlloc::default();
        assert!(kv.allocate(&mut c, Some(&s3), &[], &[], 32));
        assert_eq!(kv.cached_prefix_blocks(&h1), 0);
        assert_eq!(kv.cached_prefix_blocks(&h2), 2);
        kv.check_invariants().unwrap();
    }

    #[test]
    fn shared_blocks_are_reference_counted() {
        let mut kv = KvCache::new(8, 16);
        let s = TokenSeq::from_source(5, 32);
        let h = s.block_hashes(16);
        let mut a = KvAlloc::default();
        let mut b = KvAlloc::default();
        assert!(kv.allocate(&mut a, Some(&s), &h, &[], 32));
        assert!(kv.allocate(&mut b, Some(&s), &h, &h[..2], 32));
        assert_eq!(kv.used_blocks(), 2);
        kv.release(&mut a);
        assert_eq!(kv.used_blocks(), 2, "still referenced by b");
        kv.release(&mut b);
        assert_eq!(kv.used_blocks(), 0);
        kv.check_invariants().unwrap();
    }

    #[test]
    fn cpu_tier_keeps_blocks_the_gpu_evicted() {
        let mut kv = KvCache::new(4, 16);
        kv.enable_cpu_tier(8, false);
        let s1 = TokenSeq::from_source(1, 48);
        let h1 = s1.block_hashes(16);
        let mut a = KvAlloc::default();
        assert!(kv.allocate(&mut a, Some(&s1), &h1, &[], 48));
        kv.release(&mut a);
        // Written through as they were sealed.
        assert_eq!(kv.cpu_tier().unwrap().stored(), 3);
        // Another request takes the whole GPU pool: s1's blocks leave the GPU, not the CPU.
        let s2 = TokenSeq::from_source(2, 64);
        let mut b = KvAlloc::default();
        assert!(kv.allocate(&mut b, Some(&s2), &[], &[], 64));
        assert_eq!(kv.cached_prefix_blocks(&h1), 0);
        assert_eq!(kv.cpu_prefix_blocks(&h1, 0), 3);
        kv.release(&mut b);
        // Brought back: counted as CPU hits, sealed and indexed on the GPU again.
        let mut c = KvAlloc::default();
        assert!(kv.allocate_with_reload(&mut c, Some(&s1), &h1, &[], 2, 40));
        assert_eq!((kv.reload_blocks(), kv.hit_blocks()), (2, 0));
        assert_eq!(kv.cached_prefix_blocks(&h1), 2);
        assert_eq!(c.num_blocks(), 3);
        kv.check_invariants().unwrap();
        kv.release(&mut c);
        assert_eq!(kv.free_blocks(), 4);
        kv.check_invariants().unwrap();
    }

    #[test]
    fn prompt_only_tier_skips_blocks_filled_during_decode() {
        for (prompt_only, stored) in [(false, 3), (true, 2)] {
            let mut kv = KvCache::new(8, 16);
            kv.enable_cpu_tier(8, prompt_only);
            // A 32-token prompt (2 known block hashes) whose output fills a third block.
            let seq = TokenSeq::from_source(4, 48);
            let prompt = TokenSeq::from_source(4, 32).block_hashes(16);
            let mut a = KvAlloc::default();
            assert!(kv.allocate(&mut a, Some(&seq), &prompt, &[], 32));
            assert!(kv.allocate(&mut a, Some(&seq), &prompt, &[], 48));
            assert_eq!(kv.cpu_tier().unwrap().stored(), stored, "prompt only: {prompt_only}");
            kv.check_invariants().unwrap();
        }
    }

    #[test]
    fn cpu_prefix_starts_after_the_gpu_prefix_and_stops_at_a_gap() {
        let mut kv = KvCache::new(8, 16);
        assert_eq!(kv.cpu_prefix_blocks(&[1, 2], 0), 0, "no tier");
        kv.enable_cpu_tier(2, false);
        let s = TokenSeq::from_source(3, 48);
        let h = s.block_hashes(16);
        let mut a = KvAlloc::default();
        assert!(kv.allocate(&mut a, Some(&s), &h, &[], 48));
        // Capacity 2: the first block was evicted from the CPU tier by the third.
        assert_eq!(kv.cpu_prefix_blocks(&h, 0), 0);
        assert_eq!(kv.cpu_prefix_blocks(&h, 1), 2);
        assert_eq!(kv.cpu_tier().unwrap().evicted(), 1);
        kv.check_invariants().unwrap();
    }

    proptest! {
        /// With a CPU tier: random allocations (reloading whatever the CPU tier offers past the
        /// GPU prefix) and releases keep both tiers consistent — the CPU pool within capacity,
        /// stored − evicted = resident — and every GPU block comes back.
        #[test]
        fn tiers_never_leak(
            ops in proptest::collection::vec((0usize..6, 1u32..80, any::<bool>()), 1..150),
            cpu_blocks in 1u32..40,
        ) {
            let mut kv = KvCache::new(20, 16);
            kv.enable_cpu_tier(cpu_blocks, false);
            let mut allocs: Vec<(KvAlloc, TokenSeq, Vec<u64>)> = (0..6)
                .map(|i| {
                    let s = prompt(9 + i as u64 % 2, 48, 1000 + i as u64 % 3, 100);
                    let h = s.block_hashes(16);
                    (KvAlloc::default(), s, h)
                })
                .collect();
            let mut reloaded = 0;
            for (slot, grow, release) in ops {
                let (alloc, seq, hashes) = &mut allocs[slot];
                if release {
                    kv.release(alloc);
                } else if alloc.is_empty() {
                    let claim_n = kv.cached_prefix_blocks(hashes);
                    let reload = kv.cpu_prefix_blocks(hashes, claim_n);
                    let claim = hashes[..claim_n as usize].to_vec();
                    let end = ((claim_n + reload) * 16 + grow).min(seq.len()).max((claim_n + reload) * 16);
                    let before = (kv.free_blocks(), kv.reload_blocks());
                    if kv.allocate_with_reload(alloc, Some(seq), hashes, &claim, reload, end) {
                        reloaded += reload;
                        prop_assert_eq!(kv.reload_blocks(), before.1 + u64::from(reload));
                    } else {
                        prop_assert_eq!(before, (kv.free_blocks(), kv.reload_blocks()));
                    }
                } else {
                    let end = (alloc.tokens() + grow).min(seq.len());
                    let before = kv.free_blocks();
                    if !kv.allocate(alloc, Some(seq), hashes, &[], end) {
                        prop_assert_eq!(before, kv.free_blocks());
                    }
                }
                prop_assert!(kv.check_invariants().is_ok(), "{:?}", kv.check_invariants());
                let cpu = kv.cpu_tier().unwrap();
                prop_assert!(cpu.len() <= cpu_blocks);
                prop_assert_eq!(cpu.stored() - cpu.evicted(), u64::from(cpu.len()));
            }
            for (alloc, _, _) in &mut allocs {
                kv.release(alloc);
            }
            prop_assert_eq!(kv.free_blocks(), kv.total_blocks());
            prop_assert_eq!(kv.reload_blocks(), u64::from(reloaded));
        }

        /// Random interleavings of allocations and releases keep the pool consistent and
        /// return every block once all requests are released.
        #[test]
        fn pool_never_leaks(ops in proptest::collection::vec((0usize..6, 1u32..80, any::<bool>()), 1..120)) {
            let mut kv = KvCache::new(24, 16);
            let mut allocs: Vec<(KvAlloc, TokenSeq, Vec<u64>)> = (0..6)
                .map(|i| {
                    let s = prompt(9, 32, 1000 + i as u64, 200);
                    let h = s.block_hashes(16);
                    (KvAlloc::default(), s, h)
                })
                .collect();
            for (slot, grow, release) in ops {
                let (alloc, seq, hashes) = &mut allocs[slot];
                if release {
                    kv.release(alloc);
                } else {
                    let claim_n = if alloc.is_empty() { kv.cached_prefix_blocks(hashes) } else { 0 };
                    let claim = hashes[..claim_n as usize].to_vec();
                    let end = (alloc.tokens().max(claim_n * 16) + grow).min(seq.len());
                    let before = kv.free_blocks();
                    if !kv.allocate(alloc, Some(seq), hashes, &claim, end) {
                        prop_assert_eq!(before, kv.free_blocks());
                    }
                }
                prop_assert!(kv.check_invariants().is_ok(), "{:?}", kv.check_invariants());
            }
            for (alloc, _, _) in &mut allocs {
                kv.release(alloc);
            }
            prop_assert_eq!(kv.free_blocks(), kv.total_blocks());
        }
    }
}
