//! DMA-able buffers, from a pool allocated once when a namespace is opened.
//!
//! The pool is a few size classes, each one `mmap`'d region cut into equal
//! slots. Regions are hugepage-backed (MAP_HUGETLB) when the kernel has
//! hugepages reserved, and fall back to ordinary pages with a log line.
//! Every slot is aligned to 4 KiB (and so to any LBA size up to 4 KiB), which
//! O_DIRECT, io_uring fixed buffers and NVMe PRPs all need.
//!
//! A [`DmaBuf`] owns one slot exclusively. It goes back to its class's free
//! list when dropped. Nothing is allocated per I/O: taking and returning a slot
//! is a lock-free queue operation.
//!
//! Safe access (`as_slice`, `as_mut_slice`) is sound because a `DmaBuf` is the
//! only handle to its slot, and a device or the kernel writes into a slot only
//! while a queue pair holds the `DmaBuf` (moved into a [`crate::Command`]), when
//! no Rust reference to it can exist.
#![allow(unsafe_code)]

use std::fmt;
use std::ptr::NonNull;
use std::sync::Arc;

use crossbeam_queue::ArrayQueue;

/// Alignment of every slot.
pub const SLOT_ALIGN_BYTES: usize = 4096;
const HUGEPAGE_BYTES: usize = 2 << 20;
/// Most size classes a pool may have.
pub const POOL_CLASSES_MAX: usize = 8;

/// One size class: `slots` buffers of `slot_bytes` each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolClass {
    /// Bytes per buffer; a multiple of 4096.
    pub slot_bytes: usize,
    /// Number of buffers.
    pub slots: u32,
}

/// The shape of a buffer pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// Size classes, smallest first.
    pub classes: Vec<PoolClass>,
    /// Try MAP_HUGETLB first.
    pub hugepages: bool,
}

impl Default for PoolConfig {
    /// 512 × 4 KiB, 128 × 64 KiB and 16 × 1 MiB: 26 MiB of address space,
    /// touched lazily when hugepages are not in use.
    fn default() -> Self {
        PoolConfig {
            classes: vec![
                PoolClass {
                    slot_bytes: 4096,
                    slots: 512,
                },
                PoolClass {
                    slot_bytes: 64 << 10,
                    slots: 128,
                },
                PoolClass {
                    slot_bytes: 1 << 20,
                    slots: 16,
                },
            ],
            hugepages: true,
        }
    }
}

/// An anonymous memory mapping.
struct Region {
    base: NonNull<u8>,
    bytes: usize,
    hugepages: bool,
}

impl Region {
    fn map(bytes: usize, try_hugepages: bool) -> std::io::Result<Region> {
        if try_hugepages {
            let huge_bytes = bytes.div_ceil(HUGEPAGE_BYTES) * HUGEPAGE_BYTES;
            if let Some(base) = Self::mmap(huge_bytes, libc::MAP_HUGETLB) {
                return Ok(Region {
                    base,
                    bytes: huge_bytes,
                    hugepages: true,
                });
            }
        }
        match Self::mmap(bytes, 0) {
            Some(base) => Ok(Region {
                base,
                bytes,
                hugepages: false,
            }),
            None => Err(std::io::Error::last_os_error()),
        }
    }

    fn mmap(bytes: usize, extra_flags: libc::c_int) -> Option<NonNull<u8>> {
        // SAFETY: an anonymous private mapping with a null hint creates new
        // memory and touches no existing Rust object. The result is checked
        // against MAP_FAILED before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | extra_flags,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return None;
        }
        NonNull::new(ptr.cast::<u8>())
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: `base..base+bytes` is exactly the mapping made in `map`, and
        // the region is dropped only with its pool, after every DmaBuf (each
        // holds an Arc to the pool) is gone.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.bytes);
        }
    }
}

struct Class {
    slot_bytes: usize,
    slots: u32,
    region: Region,
    free: ArrayQueue<u32>,
}

/// A fixed set of DMA-able buffers. Shared by every queue pair of a namespace.
pub struct BufferPool {
    classes: Vec<Class>,
}

// SAFETY: the raw region pointers are only dereferenced through a DmaBuf,
// which holds its slot exclusively; the pool's own state is the lock-free
// free lists.
unsafe impl Send for BufferPool {}
// SAFETY: as above; shared access only touches the thread-safe free lists.
unsafe impl Sync for BufferPool {}

impl fmt::Debug for BufferPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        for class in &self.classes {
            list.entry(&(class.slot_bytes, class.slots, class.free.len()));
        }
        list.finish()
    }
}

impl BufferPool {
    /// Maps every class's region. Fails when a class is not a positive
    /// multiple of 4 KiB, or the memory cannot be mapped.
    pub fn new(config: &PoolConfig) -> std::io::Result<Arc<BufferPool>> {
        let invalid = |why: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, why);
        if config.classes.is_empty() || config.classes.len() > POOL_CLASSES_MAX {
            return Err(invalid(format!(
                "a buffer pool needs 1..={POOL_CLASSES_MAX} size classes"
            )));
        }
        let mut classes = Vec::with_capacity(config.classes.len());
        let mut fell_back = false;
        for class in &config.classes {
            if class.slot_bytes == 0 || class.slot_bytes % SLOT_ALIGN_BYTES != 0 || class.slots == 0
            {
                return Err(invalid(format!(
                    "buffer class {class:?}: slot_bytes must be a positive multiple of 4096 and slots positive"
                )));
            }
            let bytes = class
                .slot_bytes
                .checked_mul(class.slots as usize)
                .ok_or_else(|| invalid(format!("buffer class {class:?} overflows")))?;
            let region = Region::map(bytes, config.hugepages)?;
            fell_back |= config.hugepages && !region.hugepages;
            let free = ArrayQueue::new(class.slots as usize);
            for slot in 0..class.slots {
                // Cannot fail: the queue holds exactly `slots` entries.
                let _ = free.push(slot);
            }
            classes.push(Class {
                slot_bytes: class.slot_bytes,
                slots: class.slots,
                region,
                free,
            });
        }
        if fell_back {
            tracing::info!(
                "hugepages unavailable (vm.nr_hugepages is 0 or exhausted); buffer pool uses ordinary 4 KiB pages"
            );
        }
        let mut sizes: Vec<usize> = classes.iter().map(|c| c.slot_bytes).collect();
        sizes.dedup();
        if sizes.windows(2).any(|w| w[0] > w[1]) {
            return Err(invalid(
                "buffer classes must be listed smallest first".into(),
            ));
        }
        Ok(Arc::new(BufferPool { classes }))
    }

    /// Takes a buffer of at least `len` bytes from the smallest class that
    /// fits and has a free slot. Its length is set to `len`; its contents are
    /// whatever the slot last held. `None` when no slot is free: backpressure.
    pub fn alloc(self: &Arc<Self>, len: usize) -> Option<DmaBuf> {
        for (index, class) in self.classes.iter().enumerate() {
            if class.slot_bytes < len {
                continue;
            }
            if let Some(slot) = class.free.pop() {
                return Some(DmaBuf {
                    pool: Arc::clone(self),
                    class: index as u16,
                    slot,
                    len,
                });
            }
        }
        None
    }

    /// Like [`BufferPool::alloc`], with the buffer zeroed.
    pub fn alloc_zeroed(self: &Arc<Self>, len: usize) -> Option<DmaBuf> {
        let mut buf = self.alloc(len)?;
        buf.as_mut_slice().fill(0);
        Some(buf)
    }

    /// The largest buffer this pool can hand out.
    pub fn slot_bytes_max(&self) -> usize {
        self.classes.iter().map(|c| c.slot_bytes).max().unwrap_or(0)
    }

    /// Free buffers across every class.
    pub fn free_slots(&self) -> usize {
        self.classes.iter().map(|c| c.free.len()).sum()
    }

    /// Whether every region is hugepage-backed.
    pub fn hugepage_backed(&self) -> bool {
        self.classes.iter().all(|c| c.region.hugepages)
    }

    /// The regions as (base address, bytes), one per class, in class order:
    /// what io_uring registers as fixed buffers and vfio maps for DMA.
    pub(crate) fn regions(&self) -> impl Iterator<Item = (*mut u8, usize)> + '_ {
        self.classes
            .iter()
            .map(|c| (c.region.base.as_ptr(), c.slot_bytes * c.slots as usize))
    }
}

/// One buffer from a [`BufferPool`]: a 4 KiB-aligned slot and a length.
pub struct DmaBuf {
    pool: Arc<BufferPool>,
    class: u16,
    slot: u32,
    len: usize,
}

impl fmt::Debug for DmaBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DmaBuf")
            .field("class", &self.class)
            .field("slot", &self.slot)
            .field("len", &self.len)
            .finish()
    }
}

impl DmaBuf {
    fn class(&self) -> &Class {
        &self.pool.classes[self.class as usize]
    }

    /// Bytes this buffer transfers.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the length is zero.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes the slot holds.
    pub fn capacity(&self) -> usize {
        self.class().slot_bytes
    }

    /// Sets the transfer length. Panics past the capacity: a caller bug.
    pub fn set_len(&mut self, len: usize) {
        assert!(
            len <= self.capacity(),
            "DmaBuf::set_len({len}) past capacity {}",
            self.capacity()
        );
        self.len = len;
    }

    /// The pool this buffer came from.
    pub fn pool(&self) -> &Arc<BufferPool> {
        &self.pool
    }

    /// Index of the buffer's region in [`BufferPool::regions`] order (the
    /// io_uring fixed-buffer index).
    pub(crate) fn region_index(&self) -> u16 {
        self.class
    }

    /// Start of the slot.
    pub(crate) fn as_mut_ptr(&mut self) -> *mut u8 {
        let class = self.class();
        // SAFETY: slot < slots, so the offset stays inside the region mapping.
        unsafe {
            class
                .region
                .base
                .as_ptr()
                .add(self.slot as usize * class.slot_bytes)
        }
    }

    /// Start of the slot, for reading.
    pub(crate) fn as_ptr(&self) -> *const u8 {
        let class = self.class();
        // SAFETY: slot < slots, so the offset stays inside the region mapping.
        unsafe {
            class
                .region
                .base
                .as_ptr()
                .add(self.slot as usize * class.slot_bytes)
        }
    }

    /// The first `len` bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: the slot is `capacity` bytes of live mapped memory owned
        // exclusively by this DmaBuf (see the module doc), len <= capacity, and
        // no device writes to it while we hold it.
        unsafe { std::slice::from_raw_parts(self.as_ptr(), self.len) }
    }

    /// The first `len` bytes, writable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        let len = self.len;
        // SAFETY: as for `as_slice`; `&mut self` makes the borrow unique.
        unsafe { std::slice::from_raw_parts_mut(self.as_mut_ptr(), len) }
    }
}

// SAFETY: a DmaBuf is the unique owner of its slot; moving it to another
// thread moves that ownership. The pool it points into is Send + Sync.
unsafe impl Send for DmaBuf {}
// SAFETY: shared references only give out `&[u8]`.
unsafe impl Sync for DmaBuf {}

impl Drop for DmaBuf {
    fn drop(&mut self) {
        let slot = self.slot;
        // Cannot fail: each slot is pushed back at most once, and the queue
        // has room for all of them.
        let _ = self.class().free.push(slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> PoolConfig {
        PoolConfig {
            classes: vec![
                PoolClass {
                    slot_bytes: 4096,
                    slots: 4,
                },
                PoolClass {
                    slot_bytes: 16384,
                    slots: 2,
                },
            ],
            hugepages: false,
        }
    }

    #[test]
    fn slots_are_aligned_exclusive_and_returned() {
        let pool = BufferPool::new(&small()).unwrap();
        let mut bufs: Vec<DmaBuf> = (0..4).map(|_| pool.alloc(4096).unwrap()).collect();
        for (i, b) in bufs.iter_mut().enumerate() {
            assert_eq!(b.as_ptr() as usize % SLOT_ALIGN_BYTES, 0);
            b.as_mut_slice().fill(i as u8);
        }
        for (i, b) in bufs.iter().enumerate() {
            assert!(b.as_slice().iter().all(|&x| x == i as u8));
        }
        // The 4 KiB class is empty, so a small request spills to the next class.
        let spill = pool.alloc(100).unwrap();
        assert_eq!(spill.capacity(), 16384);
        let _second = pool.alloc(100).unwrap();
        assert!(pool.alloc(1).is_none(), "exhausted pool must refuse");
        assert!(pool.alloc(1 << 20).is_none(), "larger than any class");
        drop(bufs);
        assert_eq!(pool.free_slots(), 4);
    }

    #[test]
    fn bad_configs_are_refused() {
        let mut cfg = small();
        cfg.classes[0].slot_bytes = 1000;
        assert!(BufferPool::new(&cfg).is_err());
        cfg.classes.clear();
        assert!(BufferPool::new(&cfg).is_err());
        let mut cfg = small();
        cfg.classes.reverse();
        assert!(BufferPool::new(&cfg).is_err());
    }

    #[test]
    fn hugepage_request_falls_back() {
        let mut cfg = small();
        cfg.hugepages = true;
        let pool = BufferPool::new(&cfg).unwrap();
        let mut b = pool.alloc_zeroed(8192).unwrap();
        assert!(b.as_slice().iter().all(|&x| x == 0));
        b.as_mut_slice()[8191] = 7;
        assert_eq!(b.as_slice()[8191], 7);
    }
}
