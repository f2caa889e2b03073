//! The VeltrixDB engine in process, on a file namespace with io_uring and
//! O_DIRECT (the page cache is out of the way).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::{anyhow, Result};
use engine::{format, BatchOp, Engine, EngineConfig, FormatOptions};
use nvme::uring::UringOptions;
use nvme::{Backend, Namespace, OpenOptions};

use super::{Session, Store, StoreOptions};
use crate::measure::Pid;

pub struct VeltrixStore {
    engine: Arc<Engine>,
    namespace: Arc<dyn Namespace>,
    config: EngineConfig,
    path: PathBuf,
}

impl VeltrixStore {
    pub fn open(options: &StoreOptions) -> Result<VeltrixStore> {
        let path = options.dir.join("namespace.img");
        let _ = std::fs::remove_file(&path);
        let namespace = nvme::open(
            &path,
            &OpenOptions {
                backend: Backend::Uring(UringOptions::default()),
                create_bytes: Some(options.namespace_bytes),
                ..OpenOptions::default()
            },
        )?;
        let mut format_options = FormatOptions::new(*b"veltrix-bench-02");
        format_options.segment_bytes = 8 << 20;
        format(namespace.as_ref(), &format_options)?;
        let config = EngineConfig {
            workers: options.workers,
            cache_bytes: usize::try_from(options.cache_bytes)?,
            ..EngineConfig::default()
        };
        let engine = Arc::new(Engine::open(Arc::clone(&namespace), &config)?);
        Ok(VeltrixStore {
            engine,
            namespace,
            config,
            path,
        })
    }
}

impl Store for VeltrixStore {
    fn session(&self) -> Result<Box<dyn Session>> {
        Ok(Box::new(VeltrixSession {
            engine: Arc::clone(&self.engine),
        }))
    }

    fn pid(&self) -> Pid {
        Pid::Own
    }

    fn device_bytes_written(&self) -> Option<u64> {
        Some(self.engine.stats().bytes_written.load(Ordering::Relaxed))
    }

    /// The engine reports its index's exact heap bytes after recovery, so
    /// this shuts the engine down and opens it again.
    fn finish(self: Box<Self>, _keys: u64) -> Result<Option<f64>> {
        let engine = Arc::try_unwrap(self.engine)
            .map_err(|_| anyhow!("a session outlived the benchmark"))?;
        engine.shutdown();
        let engine = Engine::open(Arc::clone(&self.namespace), &self.config)?;
        let report = engine.recovery_report();
        let per_key = report.index_bytes as f64 / report.keys.max(1) as f64;
        engine.shutdown();
        Ok(Some(per_key))
    }

    fn data_file(&self) -> Option<PathBuf> {
        Some(self.path.clone())
    }
}

struct VeltrixSession {
    engine: Arc<Engine>,
}

impl Session for VeltrixSession {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        Ok(self.engine.put(key, value)?)
    }

    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.engine.get(key)?)
    }

    /// One atomic batch per owning worker: a batch whose keys span workers
    /// would move shards to gather them.
    fn put_many(&mut self, items: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
        let mut by_worker: BTreeMap<u16, Vec<BatchOp>> = BTreeMap::new();
        for (key, value) in items {
            let owner = self.engine.shard_owner(engine::shard::shard(key));
            by_worker
                .entry(owner)
                .or_default()
                .push(BatchOp::Put(key.clone(), value.clone()));
        }
        for ops in by_worker.into_values() {
            self.engine
                .write_batch(ops)
                .map_err(|e| anyhow!("write_batch: {e}"))?;
        }
        Ok(())
    }
}
