//! One interface for every system under test.
//!
//! A [`Store`] is one open system: in-process (the engine, RocksDB, fjall)
//! or a server the harness started (veltrixd, Redis). Each load thread
//! takes its own [`Session`]: a handle for in-process systems, a TCP
//! connection for servers. Every put is durable by the system's own
//! strongest per-write setting before it returns, except Redis with
//! `appendfsync everysec`, which is there to show what that costs.

use std::path::PathBuf;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::measure::Pid;

pub mod fjall;
pub mod resp;
#[cfg(feature = "rocksdb")]
pub mod rocks;
pub mod veltrix;

/// Every system the harness knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
pub enum System {
    /// The VeltrixDB engine in process (io_uring, O_DIRECT).
    Veltrix,
    /// RocksDB, values in the LSM tree; sync=true, direct I/O.
    Rocksdb,
    /// RocksDB with BlobDB (every value in blob files); sync=true, direct I/O.
    RocksdbBlob,
    /// fjall with key-value separation; every write persisted with SyncAll.
    Fjall,
    /// veltrixd over RESP, driven by the harness's RESP client.
    VeltrixdResp,
    /// redis-server, appendfsync always.
    RedisAlways,
    /// redis-server, appendfsync everysec (not durable per write).
    RedisEverysec,
}

impl System {
    pub const ALL: [System; 7] = [
        System::Veltrix,
        System::Rocksdb,
        System::RocksdbBlob,
        System::Fjall,
        System::VeltrixdResp,
        System::RedisAlways,
        System::RedisEverysec,
    ];

    /// The name in tables.
    pub fn label(self) -> &'static str {
        match self {
            System::Veltrix => "veltrix (in-process)",
            System::Rocksdb => "RocksDB",
            System::RocksdbBlob => "RocksDB BlobDB",
            System::Fjall => "fjall (KV-sep.)",
            System::VeltrixdResp => "veltrixd (RESP)",
            System::RedisAlways => "Redis always",
            System::RedisEverysec => "Redis everysec",
        }
    }

    /// Whether this build can run it.
    pub fn available(self) -> bool {
        cfg!(feature = "rocksdb") || !matches!(self, System::Rocksdb | System::RocksdbBlob)
    }

    /// Whether it is a server reached over loopback.
    pub fn networked(self) -> bool {
        matches!(
            self,
            System::VeltrixdResp | System::RedisAlways | System::RedisEverysec
        )
    }
}

/// What every system is opened with.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// A fresh directory for the system's files.
    pub dir: PathBuf,
    /// The read cache budget: the engine's value cache, RocksDB's block
    /// cache, fjall's cache. Redis has none (it holds everything in memory).
    pub cache_bytes: u64,
    /// Engine workers (and veltrixd workers).
    pub workers: usize,
    /// Size of the engine's namespace file.
    pub namespace_bytes: u64,
    /// The veltrixd binary, for [`System::VeltrixdResp`].
    pub veltrixd: PathBuf,
    /// The redis-server binary.
    pub redis_server: PathBuf,
}

/// One open system.
pub trait Store: Send + Sync {
    /// A new handle (or connection) for one load thread.
    fn session(&self) -> Result<Box<dyn Session>>;
    /// The process whose CPU, I/O and memory the system costs.
    fn pid(&self) -> Pid;
    /// Bytes the system's own counters say it submitted to the device, where
    /// it has such counters (the engine's nvme-layer count).
    fn device_bytes_written(&self) -> Option<u64> {
        None
    }
    /// Closes the system (every session must be gone) and returns the
    /// index's bytes per key for `keys` keys, where the system can say.
    fn finish(self: Box<Self>, _keys: u64) -> Result<Option<f64>> {
        Ok(None)
    }
    /// The file the system's data lives on, for fio, where there is one.
    fn data_file(&self) -> Option<PathBuf> {
        None
    }
}

/// One thread's handle.
pub trait Session: Send {
    /// Sets `key`; returns once the write is durable (per the system's
    /// setting).
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()>;
    /// Reads `key`.
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Sets many keys, durable on return; the bulk load's path. The default
    /// puts them one at a time.
    fn put_many(&mut self, items: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
        for (key, value) in items {
            self.put(key, value)?;
        }
        Ok(())
    }
}

/// Opens `system` on a fresh directory.
pub fn open(system: System, options: &StoreOptions) -> Result<Box<dyn Store>> {
    std::fs::create_dir_all(&options.dir)?;
    match system {
        System::Veltrix => Ok(Box::new(veltrix::VeltrixStore::open(options)?)),
        System::Fjall => Ok(Box::new(fjall::FjallStore::open(options)?)),
        #[cfg(feature = "rocksdb")]
        System::Rocksdb => Ok(Box::new(rocks::RocksStore::open(options, false)?)),
        #[cfg(feature = "rocksdb")]
        System::RocksdbBlob => Ok(Box::new(rocks::RocksStore::open(options, true)?)),
        #[cfg(not(feature = "rocksdb"))]
        System::Rocksdb | System::RocksdbBlob => {
            anyhow::bail!("RocksDB needs the bench crate's `rocksdb` feature")
        }
        System::VeltrixdResp => Ok(Box::new(resp::ServerStore::veltrixd(options)?)),
        System::RedisAlways => Ok(Box::new(resp::ServerStore::redis(options, "always")?)),
        System::RedisEverysec => Ok(Box::new(resp::ServerStore::redis(options, "everysec")?)),
    }
}
