//! Index-addressed storage for live requests: O(1) insert/remove, stable ids, reused slots.

/// Handle of a request inside one instance's slab.
pub type ReqId = u32;

#[derive(Debug)]
pub struct Slab<T> {
    slots: Vec<Option<T>>,
    free: Vec<ReqId>,
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Self { slots: Vec::new(), free: Vec::new(), len: 0 }
    }
}

impl<T> Slab<T> {
    pub fn insert(&mut self, value: T) -> ReqId {
        self.len += 1;
        if let Some(id) = self.free.pop() {
            self.slots[id as usize] = Some(value);
            id
        } else {
            self.slots.push(Some(value));
            (self.slots.len() - 1) as ReqId
        }
    }

    pub fn remove(&mut self, id: ReqId) -> T {
        let value = self.slots[id as usize].take().expect("slab slot already empty");
        self.free.push(id);
        self.len -= 1;
        value
    }

    /// The values held, in slot order.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().filter_map(Option::as_ref)
    }

    pub fn get(&self, id: ReqId) -> Option<&T> {
        self.slots.get(id as usize).and_then(Option::as_ref)
    }

    /// Hints the CPU to fetch every cache line of slot `id` (no effect on an invalid id).
    #[inline]
    pub fn prefetch(&self, id: ReqId) {
        if let Some(slot) = self.slots.get(id as usize) {
            let base = (slot as *const Option<T>).cast::<u8>();
            let mut off = 0;
            while off < std::mem::size_of::<Option<T>>() {
                // SAFETY: `off` stays inside the slot.
                crate::kv::prefetch(unsafe { &*base.add(off) });
                off += 64;
            }
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<T> std::ops::Index<ReqId> for Slab<T> {
    type Output = T;
    fn index(&self, id: ReqId) -> &T {
        self.slots[id as usize].as_ref().expect("dangling request id")
    }
}

impl<T> std::ops::IndexMut<ReqId> for Slab<T> {
    fn index_mut(&mut self, id: ReqId) -> &mut T {
        self.slots[id as usize].as_mut().expect("dangling request id")
    }
}
