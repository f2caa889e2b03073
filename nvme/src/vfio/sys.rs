//! Every VFIO ioctl and every mapping the driver makes: the container (type1v2
//! IOMMU), the group, the device, its regions, BAR0's mapping and the DMA
//! mappings. The rest of the backend sees safe types only.
//!
//! The structures mirror `<linux/vfio.h>`; the request numbers are
//! `_IO(';', 100 + n)`.
#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::FileExt;
use std::ptr::NonNull;

const fn vfio_io(n: libc::Ioctl) -> libc::Ioctl {
    // _IO(type, nr): no direction, no size.
    ((b';' as libc::Ioctl) << 8) | (100 + n)
}

const VFIO_GET_API_VERSION: libc::Ioctl = vfio_io(0);
const VFIO_CHECK_EXTENSION: libc::Ioctl = vfio_io(1);
const VFIO_SET_IOMMU: libc::Ioctl = vfio_io(2);
const VFIO_GROUP_GET_STATUS: libc::Ioctl = vfio_io(3);
const VFIO_GROUP_SET_CONTAINER: libc::Ioctl = vfio_io(4);
const VFIO_GROUP_GET_DEVICE_FD: libc::Ioctl = vfio_io(6);
const VFIO_DEVICE_GET_REGION_INFO: libc::Ioctl = vfio_io(8);
const VFIO_DEVICE_RESET: libc::Ioctl = vfio_io(11);
const VFIO_IOMMU_MAP_DMA: libc::Ioctl = vfio_io(13);
const VFIO_IOMMU_UNMAP_DMA: libc::Ioctl = vfio_io(14);

const VFIO_API_VERSION: libc::c_int = 0;
const VFIO_TYPE1V2_IOMMU: libc::c_ulong = 3;
const VFIO_GROUP_FLAGS_VIABLE: u32 = 1;
const VFIO_DMA_MAP_FLAG_READ: u32 = 1;
const VFIO_DMA_MAP_FLAG_WRITE: u32 = 2;
/// Region flag: the region may be mmap'd.
pub const VFIO_REGION_INFO_FLAG_MMAP: u32 = 1 << 2;
/// Region index of BAR0.
pub const BAR0_REGION: u32 = 0;
/// Region index of PCI configuration space.
pub const CONFIG_REGION: u32 = 7;

#[repr(C)]
#[derive(Default)]
struct GroupStatus {
    argsz: u32,
    flags: u32,
}

#[repr(C)]
#[derive(Default)]
struct RegionInfoRaw {
    argsz: u32,
    flags: u32,
    index: u32,
    cap_offset: u32,
    size: u64,
    offset: u64,
}

#[repr(C)]
struct DmaMap {
    argsz: u32,
    flags: u32,
    vaddr: u64,
    iova: u64,
    size: u64,
}

#[repr(C)]
struct DmaUnmap {
    argsz: u32,
    flags: u32,
    iova: u64,
    size: u64,
}

fn check(rc: libc::c_int, what: &str) -> io::Result<libc::c_int> {
    if rc < 0 {
        let os = io::Error::last_os_error();
        return Err(io::Error::new(os.kind(), format!("{what}: {os}")));
    }
    Ok(rc)
}

/// A VFIO container with the type1v2 IOMMU set.
#[derive(Debug)]
pub struct Container {
    file: File,
}

impl Container {
    /// Opens `/dev/vfio/vfio` and checks the API version and type1v2 support.
    /// The IOMMU is set once a group has joined ([`Group::attach`]).
    pub fn open() -> io::Result<Container> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/vfio/vfio")
            .map_err(|e| io::Error::new(e.kind(), format!("/dev/vfio/vfio: {e}")))?;
        let fd = file.as_raw_fd();
        // SAFETY: VFIO_GET_API_VERSION takes no argument and reads no memory.
        let rc = unsafe { libc::ioctl(fd, VFIO_GET_API_VERSION) };
        let version = check(rc, "VFIO_GET_API_VERSION")?;
        if version != VFIO_API_VERSION {
            return Err(io::Error::other(format!(
                "VFIO API version {version}, expected {VFIO_API_VERSION}"
            )));
        }
        // SAFETY: VFIO_CHECK_EXTENSION takes an integer by value.
        let rc = unsafe { libc::ioctl(fd, VFIO_CHECK_EXTENSION, VFIO_TYPE1V2_IOMMU) };
        let type1v2 = check(rc, "VFIO_CHECK_EXTENSION")?;
        if type1v2 != 1 {
            return Err(io::Error::other(
                "the kernel's VFIO has no type1v2 IOMMU (vfio_iommu_type1 not loaded, or no IOMMU)",
            ));
        }
        Ok(Container { file })
    }

    fn set_iommu(&self) -> io::Result<()> {
        // SAFETY: VFIO_SET_IOMMU takes an integer by value.
        let rc = unsafe { libc::ioctl(self.file.as_raw_fd(), VFIO_SET_IOMMU, VFIO_TYPE1V2_IOMMU) };
        check(rc, "VFIO_SET_IOMMU(type1v2)")?;
        Ok(())
    }

    /// Maps `bytes` of our memory at `vaddr` for device reads and writes at
    /// `iova`. The kernel pins the pages.
    ///
    /// # Safety
    ///
    /// `vaddr..vaddr + bytes` must be a live mapping of ours, page-aligned,
    /// that stays mapped until [`Container::unmap_dma`] of the same range
    /// returns. While it is mapped the device may write it at any time, so no
    /// Rust reference to any of it may exist except while no command using it
    /// is in flight.
    pub unsafe fn map_dma(&self, vaddr: *mut u8, bytes: usize, iova: u64) -> io::Result<()> {
        let map = DmaMap {
            argsz: std::mem::size_of::<DmaMap>() as u32,
            flags: VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
            vaddr: vaddr as u64,
            iova,
            size: bytes as u64,
        };
        // SAFETY: the kernel reads one DmaMap through the pointer, which
        // points to a live local of that layout; the caller vouches for the
        // memory it describes.
        let rc = unsafe { libc::ioctl(self.file.as_raw_fd(), VFIO_IOMMU_MAP_DMA, &map) };
        check(rc, "VFIO_IOMMU_MAP_DMA")?;
        Ok(())
    }

    /// Removes the IOMMU mapping at `iova`. Once this returns, the device can
    /// no longer reach the memory.
    pub fn unmap_dma(&self, iova: u64, bytes: usize) -> io::Result<()> {
        let mut unmap = DmaUnmap {
            argsz: std::mem::size_of::<DmaUnmap>() as u32,
            flags: 0,
            iova,
            size: bytes as u64,
        };
        // SAFETY: the kernel reads and writes back one DmaUnmap through the
        // pointer, which points to a live local of that layout.
        let rc = unsafe { libc::ioctl(self.file.as_raw_fd(), VFIO_IOMMU_UNMAP_DMA, &mut unmap) };
        check(rc, "VFIO_IOMMU_UNMAP_DMA")?;
        Ok(())
    }
}

/// A VFIO group, attached to a container.
#[derive(Debug)]
pub struct Group {
    file: File,
    number: u32,
}

impl Group {
    /// Opens `/dev/vfio/<number>`, checks it is viable (every device in it is
    /// bound to vfio-pci or to no driver), adds it to `container` and sets the
    /// container's IOMMU.
    pub fn attach(number: u32, container: &Container) -> io::Result<Group> {
        let path = format!("/dev/vfio/{number}");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))?;
        let mut status = GroupStatus {
            argsz: std::mem::size_of::<GroupStatus>() as u32,
            ..GroupStatus::default()
        };
        // SAFETY: the kernel fills one GroupStatus through the pointer, which
        // points to a live local of that layout.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), VFIO_GROUP_GET_STATUS, &mut status) };
        check(rc, "VFIO_GROUP_GET_STATUS")?;
        if status.flags & VFIO_GROUP_FLAGS_VIABLE == 0 {
            return Err(io::Error::other(format!(
                "{path}: group not viable: bind every device of IOMMU group {number} to vfio-pci"
            )));
        }
        let container_fd: libc::c_int = container.file.as_raw_fd();
        // SAFETY: the kernel reads one c_int (the container fd) through the
        // pointer, which points to a live local.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), VFIO_GROUP_SET_CONTAINER, &container_fd) };
        check(rc, "VFIO_GROUP_SET_CONTAINER")?;
        container.set_iommu()?;
        Ok(Group { file, number })
    }

    /// The group's number.
    pub fn number(&self) -> u32 {
        self.number
    }

    /// Opens the device with PCI address `bdf` (e.g. `0000:00:04.0`).
    pub fn device(&self, bdf: &str) -> io::Result<Device> {
        let name = std::ffi::CString::new(bdf)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in PCI address"))?;
        // SAFETY: the kernel reads a NUL-terminated string through the
        // pointer, which `name` keeps alive for the call.
        let rc = unsafe {
            libc::ioctl(
                self.file.as_raw_fd(),
                VFIO_GROUP_GET_DEVICE_FD,
                name.as_ptr(),
            )
        };
        let fd = check(rc, "VFIO_GROUP_GET_DEVICE_FD")?;
        // SAFETY: the ioctl returned a new file descriptor that nothing else
        // owns; the File takes ownership and closes it.
        let file = unsafe { File::from_raw_fd(fd) };
        Ok(Device { file })
    }
}

/// Where a device region lives in the device file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegionInfo {
    /// Region index.
    pub index: u32,
    /// VFIO_REGION_INFO_FLAG_*.
    pub flags: u32,
    /// Bytes.
    pub size: u64,
    /// Offset in the device file.
    pub offset: u64,
}

/// An open VFIO device.
#[derive(Debug)]
pub struct Device {
    file: File,
}

impl Device {
    /// Describes region `index`.
    pub fn region(&self, index: u32) -> io::Result<RegionInfo> {
        let mut info = RegionInfoRaw {
            argsz: std::mem::size_of::<RegionInfoRaw>() as u32,
            index,
            ..RegionInfoRaw::default()
        };
        // SAFETY: the kernel reads and fills one RegionInfoRaw through the
        // pointer (argsz says how much), which points to a live local.
        let rc = unsafe {
            libc::ioctl(
                self.file.as_raw_fd(),
                VFIO_DEVICE_GET_REGION_INFO,
                &mut info,
            )
        };
        check(rc, "VFIO_DEVICE_GET_REGION_INFO")?;
        Ok(RegionInfo {
            index,
            flags: info.flags,
            size: info.size,
            offset: info.offset,
        })
    }

    /// Reads `buf.len()` bytes of a region at `at` (config space, or a BAR
    /// through the kernel).
    pub fn read_region(&self, region: &RegionInfo, at: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.read_exact_at(buf, region.offset + at)
    }

    /// Writes `buf` to a region at `at`.
    pub fn write_region(&self, region: &RegionInfo, at: u64, buf: &[u8]) -> io::Result<()> {
        self.file.write_all_at(buf, region.offset + at)
    }

    /// Function-level reset, where the device supports one.
    pub fn reset(&self) -> io::Result<()> {
        // SAFETY: VFIO_DEVICE_RESET takes no argument.
        let rc = unsafe { libc::ioctl(self.file.as_raw_fd(), VFIO_DEVICE_RESET) };
        check(rc, "VFIO_DEVICE_RESET")?;
        Ok(())
    }

    /// Maps the first `bytes` of a region (a BAR) for register access.
    pub fn map_mmio(&self, region: &RegionInfo, bytes: usize) -> io::Result<Mmio> {
        if region.flags & VFIO_REGION_INFO_FLAG_MMAP == 0 {
            return Err(io::Error::other(format!(
                "region {} cannot be mmap'd",
                region.index
            )));
        }
        if bytes as u64 > region.size || bytes == 0 {
            return Err(io::Error::other(format!(
                "region {} is {} bytes, {bytes} wanted",
                region.index, region.size
            )));
        }
        let offset = libc::off_t::try_from(region.offset).map_err(io::Error::other)?;
        // SAFETY: a shared mapping of the device file at the region's offset;
        // it creates new memory and touches no Rust object. The result is
        // checked against MAP_FAILED.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                self.file.as_raw_fd(),
                offset,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::new(
                io::Error::last_os_error().kind(),
                format!(
                    "mmap of region {}: {}",
                    region.index,
                    io::Error::last_os_error()
                ),
            ));
        }
        let base =
            NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave null"))?;
        Ok(Mmio {
            window: VolatileWindow { base, bytes },
        })
    }
}

/// A mapping of memory that something other than Rust reads and writes (a
/// device's registers, or memory the device reaches by DMA): Rust never forms
/// a reference into it, every access is volatile, bounds-checked and
/// naturally aligned, and the mapping is unmapped on drop. What
/// [`Mmio`] and [`DmaMemory`] share.
#[derive(Debug)]
struct VolatileWindow {
    base: NonNull<u8>,
    bytes: usize,
}

impl VolatileWindow {
    fn at(&self, offset: usize, width: usize) -> *mut u8 {
        assert!(
            offset.is_multiple_of(width) && offset + width <= self.bytes,
            "volatile access at {offset:#x} (width {width}) outside the {}-byte window",
            self.bytes
        );
        // SAFETY: offset + width <= bytes, so the pointer stays inside the
        // mapping.
        unsafe { self.base.as_ptr().add(offset) }
    }

    fn read8(&self, offset: usize) -> u8 {
        let ptr = self.at(offset, 1);
        // SAFETY: in bounds (checked by `at`); single bytes are always
        // aligned; the mapping lives as long as self.
        unsafe { ptr.read_volatile() }
    }

    fn read32(&self, offset: usize) -> u32 {
        let ptr = self.at(offset, 4).cast::<u32>();
        // SAFETY: `at` checked bounds and 4-byte alignment of the offset, the
        // base is page-aligned, and the mapping lives as long as self. The
        // other side may write this word concurrently, which a volatile read
        // tolerates and a reference would not.
        unsafe { ptr.read_volatile() }
    }

    fn write32(&self, offset: usize, value: u32) {
        let ptr = self.at(offset, 4).cast::<u32>();
        // SAFETY: as for read32.
        unsafe { ptr.write_volatile(value) }
    }

    fn read64(&self, offset: usize) -> u64 {
        let ptr = self.at(offset, 8).cast::<u64>();
        // SAFETY: as for read32, with 8-byte alignment.
        unsafe { ptr.read_volatile() }
    }

    fn write64(&self, offset: usize, value: u64) {
        let ptr = self.at(offset, 8).cast::<u64>();
        // SAFETY: as for read64.
        unsafe { ptr.write_volatile(value) }
    }
}

impl Drop for VolatileWindow {
    fn drop(&mut self) {
        // SAFETY: exactly the mapping its owner made (map_mmio, or
        // DmaMemory::new); no pointer into it outlives self. DmaMemory's
        // owners unmap it from the IOMMU first (see `DmaRegion`), so the
        // device cannot reach it.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.bytes);
        }
    }
}

/// A mapped device register window. Every access is volatile, bounds-checked
/// and naturally aligned.
#[derive(Debug)]
pub struct Mmio {
    window: VolatileWindow,
}

// SAFETY: the mapping is device memory with no Rust-level aliasing; every
// access is a volatile read or write of a register, which the device
// serialises. Sharing the window between threads is what doorbells need.
unsafe impl Send for Mmio {}
// SAFETY: as above.
unsafe impl Sync for Mmio {}

impl Mmio {
    /// Reads a 32-bit register.
    pub fn read32(&self, offset: usize) -> u32 {
        self.window.read32(offset)
    }

    /// Writes a 32-bit register.
    pub fn write32(&self, offset: usize, value: u32) {
        self.window.write32(offset, value);
    }

    /// Reads a 64-bit register as two 32-bit reads, low dword first (NVMe
    /// allows 32-bit access to every register).
    pub fn read64(&self, offset: usize) -> u64 {
        u64::from(self.read32(offset)) | (u64::from(self.read32(offset + 4)) << 32)
    }

    /// Writes a 64-bit register as two 32-bit writes, low dword first.
    pub fn write64(&self, offset: usize, value: u64) {
        self.write32(offset, value as u32);
        self.write32(offset + 4, (value >> 32) as u32);
    }
}

/// Anonymous memory for queues, PRP lists and metadata, 4 KiB-aligned,
/// hugepage-backed when the kernel has hugepages to give. The device reaches
/// it through the IOMMU, so Rust never forms a reference into it: every
/// access goes through the volatile accessors.
#[derive(Debug)]
pub struct DmaMemory {
    window: VolatileWindow,
    hugepages: bool,
}

// SAFETY: only volatile accesses through the accessors touch the memory; a
// DmaMemory is owned by one queue (or the admin queue behind a mutex).
unsafe impl Send for DmaMemory {}
// SAFETY: as above: shared access is only volatile reads and writes, and the
// owners serialise them.
unsafe impl Sync for DmaMemory {}

const HUGEPAGE_BYTES: usize = 2 << 20;

impl DmaMemory {
    /// Maps `bytes` (rounded up to 4 KiB, or to 2 MiB with hugepages) of
    /// zeroed memory.
    pub fn new(bytes: usize) -> io::Result<DmaMemory> {
        let small = bytes.div_ceil(4096) * 4096;
        if small >= HUGEPAGE_BYTES / 2 {
            let huge = bytes.div_ceil(HUGEPAGE_BYTES) * HUGEPAGE_BYTES;
            if let Some(base) = Self::mmap(huge, libc::MAP_HUGETLB) {
                return Ok(DmaMemory {
                    window: VolatileWindow { base, bytes: huge },
                    hugepages: true,
                });
            }
        }
        let base = Self::mmap(small, 0).ok_or_else(io::Error::last_os_error)?;
        Ok(DmaMemory {
            window: VolatileWindow { base, bytes: small },
            hugepages: false,
        })
    }

    fn mmap(bytes: usize, extra: libc::c_int) -> Option<NonNull<u8>> {
        // SAFETY: an anonymous private mapping with a null hint creates new
        // memory and touches no existing object; MAP_FAILED is checked.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE | extra,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return None;
        }
        NonNull::new(ptr.cast::<u8>())
    }

    /// Bytes mapped.
    pub fn len(&self) -> usize {
        self.window.bytes
    }

    /// Whether nothing is mapped (never, in practice).
    pub fn is_empty(&self) -> bool {
        self.window.bytes == 0
    }

    /// Whether the memory is hugepage-backed.
    pub fn hugepage_backed(&self) -> bool {
        self.hugepages
    }

    /// The base address, for [`Container::map_dma`].
    pub fn base_ptr(&self) -> *mut u8 {
        self.window.base.as_ptr()
    }

    /// Volatile 32-bit read.
    pub fn read32(&self, offset: usize) -> u32 {
        self.window.read32(offset)
    }

    /// Volatile 32-bit write.
    pub fn write32(&self, offset: usize, value: u32) {
        self.window.write32(offset, value);
    }

    /// Volatile 64-bit read.
    pub fn read64(&self, offset: usize) -> u64 {
        self.window.read64(offset)
    }

    /// Volatile 64-bit write.
    pub fn write64(&self, offset: usize, value: u64) {
        self.window.write64(offset, value);
    }

    /// Copies `bytes` bytes out, a byte at a time, volatile.
    pub fn read_bytes(&self, offset: usize, out: &mut [u8]) {
        for (i, b) in out.iter_mut().enumerate() {
            *b = self.window.read8(offset + i);
        }
    }

    /// Zeroes `bytes` bytes at `offset`, volatile.
    pub fn zero(&self, offset: usize, bytes: usize) {
        assert!(offset.is_multiple_of(8) && bytes.is_multiple_of(8));
        for word in (offset..offset + bytes).step_by(8) {
            self.write64(word, 0);
        }
    }
}

/// Hands out I/O virtual addresses: a bump allocator from 4 GiB, above the
/// x86 MSI window (0xFEE0_0000) and well inside the 39-bit address width of
/// the smallest IOMMU we run on. Addresses are never reused; a process maps a
/// bounded number of regions (one per queue pair and one per pool class).
#[derive(Debug)]
pub struct IovaSpace {
    next: std::sync::atomic::AtomicU64,
}

const IOVA_BASE: u64 = 4 << 30;
const IOVA_ALIGN: u64 = 2 << 20;
/// 2^39: the address width QEMU's intel-iommu emulates by default.
const IOVA_END: u64 = 1 << 39;

impl IovaSpace {
    /// A fresh space.
    pub fn new() -> IovaSpace {
        IovaSpace {
            next: std::sync::atomic::AtomicU64::new(IOVA_BASE),
        }
    }

    /// Reserves `bytes` of IOVA space, 2 MiB-aligned.
    pub fn reserve(&self, bytes: usize) -> io::Result<u64> {
        let bytes = (bytes as u64).div_ceil(IOVA_ALIGN) * IOVA_ALIGN;
        let iova = self
            .next
            .fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
        if iova + bytes > IOVA_END {
            return Err(io::Error::other("IOVA space exhausted"));
        }
        Ok(iova)
    }
}

impl Default for IovaSpace {
    fn default() -> Self {
        IovaSpace::new()
    }
}

/// [`DmaMemory`] mapped into the IOMMU. Dropping it unmaps the IOVA range
/// first, and frees the memory only if that succeeded.
#[derive(Debug)]
pub struct DmaRegion {
    memory: Option<DmaMemory>,
    iova: u64,
    container: std::sync::Arc<Container>,
}

impl DmaRegion {
    /// Allocates `bytes` of zeroed memory and maps it at a fresh IOVA.
    pub fn new(
        container: &std::sync::Arc<Container>,
        space: &IovaSpace,
        bytes: usize,
    ) -> io::Result<DmaRegion> {
        let memory = DmaMemory::new(bytes)?;
        let iova = space.reserve(memory.len())?;
        // SAFETY: the memory is our own fresh mapping, page-aligned, and it
        // stays mapped until Drop, which unmaps the IOVA range before freeing
        // it (and leaks it if the unmap fails). Nothing forms a reference into
        // it: DmaMemory only offers volatile accessors.
        unsafe { container.map_dma(memory.base_ptr(), memory.len(), iova)? };
        Ok(DmaRegion {
            memory: Some(memory),
            iova,
            container: std::sync::Arc::clone(container),
        })
    }

    /// The memory.
    pub fn memory(&self) -> &DmaMemory {
        match &self.memory {
            Some(memory) => memory,
            // Only Drop takes the memory out.
            None => unreachable!("DmaRegion used after drop"),
        }
    }

    /// The IOVA of byte `offset`.
    pub fn iova(&self, offset: usize) -> u64 {
        assert!(offset < self.memory().len());
        self.iova + offset as u64
    }
}

impl Drop for DmaRegion {
    fn drop(&mut self) {
        let Some(memory) = self.memory.take() else {
            return;
        };
        if let Err(error) = self.container.unmap_dma(self.iova, memory.len()) {
            // The device might still reach this memory: never give it back.
            tracing::error!(%error, iova = self.iova, "DMA unmap failed; leaking the region");
            std::mem::forget(memory);
        }
    }
}

/// A buffer pool's regions mapped into the IOMMU, so that any
/// [`crate::DmaBuf`] from it has an IOVA.
#[derive(Debug)]
pub struct PoolMapping {
    /// (region base address, bytes, IOVA), in [`crate::BufferPool`] region order.
    regions: Vec<(usize, usize, u64)>,
    pool: std::sync::Arc<crate::BufferPool>,
    container: std::sync::Arc<Container>,
}

impl PoolMapping {
    /// Maps every region of `pool`.
    pub fn new(
        container: &std::sync::Arc<Container>,
        space: &IovaSpace,
        pool: &std::sync::Arc<crate::BufferPool>,
    ) -> io::Result<PoolMapping> {
        let mut mapping = PoolMapping {
            regions: Vec::new(),
            pool: std::sync::Arc::clone(pool),
            container: std::sync::Arc::clone(container),
        };
        for (base, bytes) in pool.regions() {
            let bytes = bytes.div_ceil(4096) * 4096;
            let iova = space.reserve(bytes)?;
            // SAFETY: the region is the pool's own page-aligned mapping, which
            // lives as long as the Arc<BufferPool> this mapping holds; Drop
            // unmaps before releasing that Arc (and leaks it if unmapping
            // fails). The pool's module doc states the aliasing rule: a
            // device writes a slot only while a queue owns its DmaBuf.
            unsafe { container.map_dma(base, bytes, iova)? };
            mapping.regions.push((base as usize, bytes, iova));
        }
        Ok(mapping)
    }

    /// The IOVA of `buf`'s first byte.
    pub fn iova(&self, buf: &crate::DmaBuf) -> u64 {
        let (base, bytes, iova) = self.regions[usize::from(buf.region_index())];
        let address = buf.as_ptr() as usize;
        assert!(address >= base && address + buf.capacity() <= base + bytes);
        iova + (address - base) as u64
    }

    /// Whether `buf` belongs to the mapped pool.
    pub fn owns(&self, buf: &crate::DmaBuf) -> bool {
        std::sync::Arc::ptr_eq(buf.pool(), &self.pool)
    }
}

impl Drop for PoolMapping {
    fn drop(&mut self) {
        let mut failed = false;
        for &(_, bytes, iova) in &self.regions {
            if let Err(error) = self.container.unmap_dma(iova, bytes) {
                tracing::error!(%error, iova, "DMA unmap of a pool region failed");
                failed = true;
            }
        }
        if failed {
            // Keep the pool's memory alive forever: the device may reach it.
            std::mem::forget(std::sync::Arc::clone(&self.pool));
        }
    }
}
