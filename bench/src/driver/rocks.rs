//! RocksDB through the `rocksdb` crate (0.20, linked against the system's
//! librocksdb 7.8 from Debian).
//!
//! Durable writes: `WriteOptions::set_sync(true)` on every write (RocksDB
//! group-commits concurrent sync writers itself). Direct I/O for reads and
//! for flush and compaction, so the page cache is kept out; the WAL is
//! written buffered and synced per write, as RocksDB does. The block cache
//! is the configured cache budget. With `blob`, BlobDB's integrated blob
//! files hold every value (`min_blob_size` 0: we keep every value in our
//! log, so every value is separated here too).

use std::sync::Arc;

use anyhow::Result;
use rocksdb::{BlockBasedOptions, Cache, Options, WriteBatch, WriteOptions, DB};

use super::{Session, Store, StoreOptions};
use crate::measure::Pid;

/// BlobDB's `min_blob_size`: every value goes to a blob file.
pub const MIN_BLOB_BYTES: u64 = 0;

pub struct RocksStore {
    db: Arc<DB>,
}

impl RocksStore {
    pub fn open(options: &StoreOptions, blob: bool) -> Result<RocksStore> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.set_use_direct_reads(true);
        opts.set_use_direct_io_for_flush_and_compaction(true);
        opts.increase_parallelism(2);
        let cache = Cache::new_lru_cache(usize::try_from(options.cache_bytes)?)?;
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&cache);
        table.set_bloom_filter(10.0, false);
        opts.set_block_based_table_factory(&table);
        if blob {
            opts.set_enable_blob_files(true);
            opts.set_min_blob_size(MIN_BLOB_BYTES);
            opts.set_enable_blob_gc(true);
        }
        let db = DB::open(&opts, options.dir.join("rocksdb"))?;
        Ok(RocksStore { db: Arc::new(db) })
    }
}

fn sync_writes() -> WriteOptions {
    let mut w = WriteOptions::default();
    w.set_sync(true);
    w
}

impl Store for RocksStore {
    fn session(&self) -> Result<Box<dyn Session>> {
        Ok(Box::new(RocksSession {
            db: Arc::clone(&self.db),
            write: sync_writes(),
        }))
    }

    fn pid(&self) -> Pid {
        Pid::Own
    }

    /// Memory of the table readers (index and filter blocks held outside
    /// the block cache) per key: RocksDB's nearest figure to an index's
    /// bytes.
    fn finish(self: Box<Self>, keys: u64) -> Result<Option<f64>> {
        let property =
            |name: &str| -> Result<u64> { Ok(self.db.property_int_value(name)?.unwrap_or(0)) };
        let bytes = property("rocksdb.estimate-table-readers-mem")?;
        Ok(Some(bytes as f64 / keys.max(1) as f64))
    }
}

struct RocksSession {
    db: Arc<DB>,
    write: WriteOptions,
}

impl Session for RocksSession {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        Ok(self.db.put_opt(key, value, &self.write)?)
    }

    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get(key)?)
    }

    fn put_many(&mut self, items: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
        let mut batch = WriteBatch::default();
        for (key, value) in items {
            batch.put(key, value);
        }
        Ok(self.db.write_opt(batch, &self.write)?)
    }
}
