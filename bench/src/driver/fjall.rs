//! fjall with key-value separation, every write durable.
//!
//! Each put is a one-item write batch committed with
//! `PersistMode::SyncAll`, fjall's strongest per-write durability (the
//! journal is written and fsynced before the commit returns). Separation
//! threshold 64 bytes, so every value of the benchmark lives in blob files
//! as in our value log. fjall has no O_DIRECT: its reads go through the page
//! cache, which the harness cannot keep out without dropping the whole
//! machine's caches.

use anyhow::Result;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, KvSeparationOptions, PersistMode};

use super::{Session, Store, StoreOptions};
use crate::measure::Pid;

/// Values at least this long go to blob files.
pub const SEPARATION_THRESHOLD_BYTES: u32 = 64;

pub struct FjallStore {
    db: Database,
    keyspace: Keyspace,
}

impl FjallStore {
    pub fn open(options: &StoreOptions) -> Result<FjallStore> {
        let db = Database::builder(options.dir.join("fjall"))
            .cache_size(options.cache_bytes)
            .open()?;
        let keyspace = db.keyspace("bench", || {
            KeyspaceCreateOptions::default().with_kv_separation(Some(
                KvSeparationOptions::default().separation_threshold(SEPARATION_THRESHOLD_BYTES),
            ))
        })?;
        Ok(FjallStore { db, keyspace })
    }
}

impl Store for FjallStore {
    fn session(&self) -> Result<Box<dyn Session>> {
        Ok(Box::new(FjallSession {
            db: self.db.clone(),
            keyspace: self.keyspace.clone(),
        }))
    }

    fn pid(&self) -> Pid {
        Pid::Own
    }
}

struct FjallSession {
    db: Database,
    keyspace: Keyspace,
}

impl Session for FjallSession {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncAll));
        batch.insert(&self.keyspace, key, value);
        Ok(batch.commit()?)
    }

    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.keyspace.get(key)?.map(|v| v.to_vec()))
    }

    fn put_many(&mut self, items: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncAll));
        for (key, value) in items {
            batch.insert(&self.keyspace, key.as_slice(), value.as_slice());
        }
        Ok(batch.commit()?)
    }
}
