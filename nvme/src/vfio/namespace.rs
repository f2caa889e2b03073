//! A namespace of a VFIO-owned controller: its geometry from Identify
//! Namespace, the buffer pool mapped for DMA, and its queue pairs.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::controller::{Controller, PAGE_BYTES};
use super::queue::VfioQueuePair;
use super::sys::PoolMapping;
use crate::buffer::{BufferPool, PoolConfig};
use crate::error::OpenError;
use crate::geometry::{Geometry, MetadataFormat};
use crate::queue::{Namespace, QueuePair};

/// Who produces the protection information on a PI-formatted namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PiMode {
    /// PRACT: the controller generates the guard and reference tag on writes,
    /// and checks and strips them on reads. Works with separate and inline
    /// metadata.
    #[default]
    Controller,
    /// The host computes the CRC-16/T10-DIF guard and the reference tag for
    /// every block it writes and the controller checks them (PRCHK guard and
    /// reference tag); reads return the tuples, which the controller checks
    /// and the host checks again. Needs separate metadata (MSET=0): the
    /// block layer's buffers carry data only.
    Host,
}

/// Options for a vfio namespace.
#[derive(Clone, Debug)]
pub struct VfioOptions {
    /// PI handling on namespaces formatted with PI type 1.
    pub pi_mode: PiMode,
    /// The DMA buffer pool to allocate and map.
    pub pool: PoolConfig,
    /// How long one command may take before the controller is reset and the
    /// command (with every other in flight) fails.
    pub command_timeout: Duration,
}

impl Default for VfioOptions {
    fn default() -> Self {
        VfioOptions {
            pi_mode: PiMode::Controller,
            pool: PoolConfig::default(),
            command_timeout: Duration::from_secs(30),
        }
    }
}

/// Protection information as this namespace uses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PiSetup {
    pub mode: PiMode,
    pub extended: bool,
}

/// What every queue pair of a namespace shares.
#[derive(Debug)]
pub(crate) struct NsShared {
    // Drop order: the pool mapping is unmapped before the controller (and its
    // container) can go.
    pub mapping: PoolMapping,
    pub ctrl: Arc<Controller>,
    pub nsid: u32,
    pub geometry: Geometry,
    pub pi: Option<PiSetup>,
    /// Blocks per NVMe Read or Write: MDTS, capped by the largest transfer.
    pub blocks_per_piece: u32,
    pub command_timeout: Duration,
    pub path: PathBuf,
}

impl NsShared {
    pub fn pi_mode(&self) -> Option<PiMode> {
        self.pi.map(|pi| pi.mode)
    }

    /// Tuples travel through a separate metadata buffer we fill and check.
    pub fn host_metadata(&self) -> bool {
        self.pi
            == Some(PiSetup {
                mode: PiMode::Host,
                extended: false,
            })
    }

    pub fn unavailable(&self, why: String) -> OpenError {
        OpenError::BackendUnavailable {
            path: self.path.clone(),
            backend: "vfio",
            source: std::io::Error::other(why),
        }
    }
}

/// A namespace driven by the userspace NVMe driver.
#[derive(Debug)]
pub struct VfioNamespace {
    shared: Arc<NsShared>,
    pool: Arc<BufferPool>,
}

impl VfioNamespace {
    /// Opens namespace `nsid` of `ctrl`: identifies it, checks that its
    /// format is one the driver supports (no metadata, or PI type 1 with
    /// 8 bytes of metadata), allocates the buffer pool and maps it for DMA.
    pub fn open(
        ctrl: &Arc<Controller>,
        nsid: u32,
        options: &VfioOptions,
    ) -> Result<VfioNamespace, OpenError> {
        let info = ctrl.info();
        let path = PathBuf::from(format!("vfio:{}/ns{nsid}", info.bdf));
        let unavailable = |why: String| OpenError::BackendUnavailable {
            path: path.clone(),
            backend: "vfio",
            source: std::io::Error::other(why),
        };
        let id = ctrl
            .identify_namespace(nsid)
            .map_err(|e| unavailable(e.to_string()))?;
        let (metadata, pi) = match (id.metadata_bytes, id.protection) {
            (0, None) => (MetadataFormat::None, None),
            (8, Some(protection)) if protection.pi_type == 1 => {
                if options.pi_mode == PiMode::Host && id.extended {
                    return Err(OpenError::InvalidOptions(format!(
                        "{}: host-generated PI needs separate metadata (MSET=0); this namespace interleaves it with the data, use PiMode::Controller",
                        path.display()
                    )));
                }
                (
                    MetadataFormat::Protected {
                        metadata_bytes: 8,
                        pi_type: 1,
                        extended: id.extended,
                    },
                    Some(PiSetup {
                        mode: options.pi_mode,
                        extended: id.extended,
                    }),
                )
            }
            (bytes, protection) => {
                return Err(unavailable(format!(
                    "unsupported format: {bytes} metadata bytes per block with {protection:?}; the driver supports no metadata, or PI type 1 in 8 bytes"
                )))
            }
        };
        if u64::from(id.lba_bytes) > PAGE_BYTES {
            return Err(unavailable(format!(
                "{}-byte blocks are larger than the 4 KiB pool alignment",
                id.lba_bytes
            )));
        }
        let pool = BufferPool::new(&options.pool).map_err(|e| {
            OpenError::InvalidOptions(format!("{}: buffer pool: {e}", path.display()))
        })?;
        let mapping = PoolMapping::new(&ctrl.container, &ctrl.space, &pool)
            .map_err(|e| unavailable(format!("mapping the buffer pool for DMA: {e}")))?;
        let transfer_bytes_max =
            u32::try_from(pool.slot_bytes_max()).unwrap_or(u32::MAX) / id.lba_bytes * id.lba_bytes;
        let mdts = info.transfer_bytes_max.unwrap_or(u64::MAX);
        let piece_bytes = mdts.min(u64::from(transfer_bytes_max));
        let blocks_per_piece = (piece_bytes / u64::from(id.lba_bytes)).clamp(1, 65536) as u32;
        let geometry = Geometry {
            lba_bytes: id.lba_bytes,
            lba_count: id.blocks,
            transfer_bytes_max,
            metadata,
            supports_flush: info.volatile_write_cache,
            supports_fua: true,
            supports_deallocate: info.dataset_management,
            deallocate_reads_zeroes: id.deallocate_reads_zeroes,
        };
        if !info.write_zeroes {
            return Err(unavailable("the controller lacks Write Zeroes".into()));
        }
        Ok(VfioNamespace {
            shared: Arc::new(NsShared {
                mapping,
                ctrl: Arc::clone(ctrl),
                nsid,
                geometry,
                pi,
                blocks_per_piece,
                command_timeout: options.command_timeout,
                path,
            }),
            pool,
        })
    }

    /// Opens a queue pair, typed: for the vfio-only fault-injection hooks.
    pub fn open_queue_pair(&self, depth: u32) -> Result<VfioQueuePair, OpenError> {
        VfioQueuePair::new(Arc::clone(&self.shared), depth)
    }

    /// The controller.
    pub fn controller(&self) -> &Arc<Controller> {
        &self.shared.ctrl
    }

    /// The namespace ID.
    pub fn nsid(&self) -> u32 {
        self.shared.nsid
    }

    /// Blocks per NVMe read or write command (the MDTS split size).
    pub fn blocks_per_command(&self) -> u32 {
        self.shared.blocks_per_piece
    }
}

impl Namespace for VfioNamespace {
    fn geometry(&self) -> Geometry {
        self.shared.geometry
    }

    fn buffers(&self) -> &Arc<BufferPool> {
        &self.pool
    }

    fn queue_pair(&self, depth: u32) -> Result<Box<dyn QueuePair>, OpenError> {
        Ok(Box::new(self.open_queue_pair(depth)?))
    }

    fn describe(&self) -> String {
        let info = self.shared.ctrl.info();
        let pi = match self.shared.pi {
            None => "no PI".to_string(),
            Some(pi) => format!(
                "PI type 1, {} metadata, {}",
                if pi.extended { "inline" } else { "separate" },
                match pi.mode {
                    PiMode::Controller => "controller-generated (PRACT)",
                    PiMode::Host => "host-generated, controller-checked (PRCHK)",
                }
            ),
        };
        format!(
            "vfio (userspace NVMe, polled) on {} nsid {} [{} {}], {}",
            info.bdf, self.shared.nsid, info.model, info.serial, pi
        )
    }
}
