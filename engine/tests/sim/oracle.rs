//! The oracle: every reply, and every key after every recovery, checked
//! exactly against the model. It is lossy per key, never per run, and only
//! where a reported fault could have touched the key:
//!
//! - keys a recovery report names as damaged ([`damaged_keys`]), and keys
//!   of the blocks where the simulator knows it placed a fault (or where a
//!   latent sector error sits) when recovery reported damage in that
//!   segment;
//! - keys a recovery names in a cut log end (`RecoveryReport::torn_tails`),
//!   and keys of a fault placed in the cut, when such a fault explains it
//!   ([`Sim::absorb_torn_tails`]); a cut no fault explains is the remains of
//!   a commit in flight, and loses nothing acknowledged;
//! - keys a read answered with `Corruption` or a media error;
//! - in an epoch with misdirected writes, keys written in that epoch may
//!   show their state from before it: a misdirected write that never
//!   reached its place leaves nothing there to detect. That much, no more.
//!
//! Only when a recovery reports damage that neither the report names nor a
//! located fault explains does the rest of that run fall back to "a value
//! once written, or none" (counted as `weak_fallback_recoveries`).

use std::collections::{BTreeMap, BTreeSet};

use engine::{Condition, EngineError, RecoveryReport, Reply};

use super::faults::Located;
use super::model::{show, show_all, show_key, Value};
use super::Sim;

/// What recovery reports as damaged: the keys of records found in the
/// damaged ranges, and whether every record there was identified.
pub fn damaged_keys(report: &RecoveryReport) -> (BTreeSet<Vec<u8>>, bool) {
    (
        report.damage.iter().flat_map(|d| d.keys.clone()).collect(),
        report.damage.iter().all(|d| d.complete),
    )
}

/// The oracle's per-run state.
#[derive(Default)]
pub struct Oracle {
    /// Keys a read answered with corruption or a media error.
    pub unknown: BTreeSet<Vec<u8>>,
    /// Keys a reported fault may have lost.
    pub damaged: BTreeSet<Vec<u8>>,
    /// Set once a recovery reported damage nothing names.
    pub weak_run: bool,
    /// Reads answered while an earlier write of their key was unresolved:
    /// checked again as those writes resolve (a write acknowledged later
    /// must be visible to every read issued after it).
    pub deferred_reads: Vec<DeferredRead>,
    pub violations: Vec<String>,
}

/// A read whose check waits for earlier writes of its key to resolve.
pub struct DeferredRead {
    pub key: Vec<u8>,
    pub client: usize,
    pub exists: bool,
    pub got: Value,
    pub first_write: u64,
}

impl Oracle {
    pub fn lossy(&self, key: &[u8]) -> bool {
        self.weak_run || self.unknown.contains(key) || self.damaged.contains(key)
    }
}

/// What a reply is checked against.
pub enum Expect {
    Put {
        write: u64,
        key: Vec<u8>,
    },
    PutIf {
        write: u64,
        key: Vec<u8>,
        condition: Condition,
    },
    PutGet {
        write: u64,
        key: Vec<u8>,
    },
    /// A read-modify-write answering the old value: `GETDEL` (`deletes`)
    /// or `SET ... NX|XX GET` (`condition`). Whether it wrote follows from
    /// the old value it answers, which is checked like a `SET ... GET`'s.
    Swap {
        write: u64,
        key: Vec<u8>,
        deletes: bool,
        condition: Option<Condition>,
    },
    Delete {
        write: u64,
        key: Vec<u8>,
    },
    Batch {
        write: u64,
        keys: Vec<Vec<u8>>,
    },
    /// A get or exists: what the key could hold when it was issued, and the
    /// first write number issued after it.
    Read {
        key: Vec<u8>,
        exists: bool,
        snapshot: Vec<Value>,
        first_write: u64,
    },
    /// A scan: per key of the shard, whether it may be present and whether
    /// it may be absent, when the scan was answered (at once, on accept).
    Scan {
        shard: u16,
        keys: BTreeMap<Vec<u8>, (bool, bool)>,
    },
}

pub struct Pending {
    pub client: usize,
    pub expect: Expect,
}

impl Sim {
    pub fn violation(&mut self, what: String) {
        let line = format!("seed {} (crash {}): {what}", self.seed, self.crash_states);
        if std::env::var("VELTRIX_SIM_SEED").is_ok() {
            eprintln!("VIOLATION {line}");
        }
        self.oracle.violations.push(line);
    }

    pub fn handle_reply(&mut self, id: u64, reply: Reply) {
        if let Some(routing) = self.routing.as_mut() {
            routing.release(id);
        }
        let Some(p) = self.pending.remove(&id) else {
            return;
        };
        self.client_answered(p.client);
        match (p.expect, reply) {
            (expect, Reply::Failed(e)) => self.failed(expect, e),
            (Expect::Put { write, key }, Reply::Done) => {
                self.ack(write, &key);
                self.counters.add("acked_puts", 1);
            }
            (
                Expect::PutIf {
                    write,
                    key,
                    condition,
                },
                reply @ (Reply::Done | Reply::NotApplied),
            ) => {
                let applied = reply == Reply::Done;
                if let Some(before) = self.determined_unexpired(write, &key) {
                    let holds = before.is_some() == (condition == Condition::Present);
                    if holds != applied {
                        self.violation(format!(
                            "SET {} of {} answered {reply:?}, but the key held {}",
                            if condition == Condition::Present {
                                "XX"
                            } else {
                                "NX"
                            },
                            show_key(&key),
                            show(&before)
                        ));
                    }
                    self.counters.add("put_if_exact", 1);
                }
                if applied {
                    self.ack(write, &key);
                    self.counters.add("put_if_applied", 1);
                } else {
                    self.drop_write(write, &key);
                    self.counters.add("put_if_not_applied", 1);
                }
            }
            (Expect::PutGet { write, key }, Reply::Value(old)) => {
                self.check_replaced(write, &key, &old, "SET GET");
                self.ack(write, &key);
                self.counters.add("put_gets", 1);
            }
            (
                Expect::Swap {
                    write,
                    key,
                    deletes,
                    condition,
                },
                Reply::Value(old),
            ) => {
                let what = if deletes { "GETDEL" } else { "SET NX|XX GET" };
                self.check_replaced(write, &key, &old, what);
                let wrote = match (deletes, condition) {
                    (true, _) | (false, Some(Condition::Present)) => old.is_some(),
                    (false, Some(Condition::Absent)) => old.is_none(),
                    (false, None) => true,
                };
                if wrote {
                    self.ack(write, &key);
                    self.counters.add("swaps_written", 1);
                } else {
                    // Nothing written: an earlier unresolved write of the
                    // key stays as possible as it was.
                    self.drop_write(write, &key);
                    self.counters.add("swaps_unwritten", 1);
                }
            }
            (Expect::Delete { write, key }, Reply::Deleted(existed)) => {
                if let Some(before) = self.determined_unexpired(write, &key) {
                    if existed != before.is_some() {
                        self.violation(format!(
                            "delete of {} answered existed={existed}, but the key held {}",
                            show_key(&key),
                            show(&before)
                        ));
                    }
                    self.counters.add("deletes_exact", 1);
                }
                self.ack(write, &key);
                self.counters.add("acked_deletes", 1);
            }
            (Expect::Batch { write, keys }, Reply::Done) => {
                for key in &keys {
                    self.ack(write, key);
                }
                self.model.batches.retain(|b| b.write != write);
                self.counters.add("acked_batches", 1);
            }
            (
                Expect::Read {
                    key,
                    exists,
                    snapshot,
                    first_write,
                },
                reply,
            ) => {
                let got = match reply {
                    Reply::Value(v) if !exists => v,
                    // An existing key's value is unknown to an exists: any
                    // present state stands for it.
                    Reply::Exists(true) if exists => Some(Vec::new()),
                    Reply::Exists(false) if exists => None,
                    other => {
                        self.violation(format!("read of {} answered {other:?}", show_key(&key)));
                        return;
                    }
                };
                self.check_read(p.client, &key, exists, got, &snapshot, first_write);
            }
            (Expect::Scan { shard, keys }, Reply::Keys(found)) => {
                self.check_scan(shard, &keys, &found)
            }
            (_, reply) => self.violation(format!("unexpected reply {reply:?}")),
        }
    }

    /// Checks the old value a `SET ... GET` or another swap answered: the
    /// state before its write, exactly when that is determined, otherwise
    /// one of the states the earlier writes could have left.
    fn check_replaced(&mut self, write: u64, key: &[u8], old: &Value, what: &str) {
        if let Some(before) = self.determined(write, key) {
            let expired = old.is_none() && self.model.may_have_expired(key, &before);
            if *old != before && !expired {
                self.violation(format!(
                    "{what} of {} answered {}, but it replaced {}",
                    show_key(key),
                    show(old),
                    show(&before)
                ));
            }
            self.counters.add("put_get_exact", 1);
            return;
        }
        // An earlier write of the key is unresolved: the old value is one
        // of the states before this write.
        let k = &self.model.keys[key];
        let mut before = vec![k.acked.clone()];
        before.extend(
            k.maybe
                .iter()
                .filter(|(w, _)| *w < write)
                .map(|(_, v)| v.clone()),
        );
        let before = self.model.or_expired(key, before);
        let fine =
            before.contains(old) || self.oracle.lossy(key) && self.model.ever_written(key, old);
        if !fine {
            self.violation(format!(
                "{what} of {} answered {}, not one of {}",
                show_key(key),
                show(old),
                show_all(&before)
            ));
        }
    }

    fn ack(&mut self, write: u64, key: &[u8]) {
        if let Err(e) = self.model.ack(write, key) {
            self.violation(format!("{}: {e}", show_key(key)));
        }
        self.recheck_reads(key);
    }

    fn drop_write(&mut self, write: u64, key: &[u8]) {
        self.model.drop_write(write, key);
        self.recheck_reads(key);
    }

    /// As `determined`, but `None` also when that state may have expired
    /// meanwhile (the answer then depends on when the engine looked).
    fn determined_unexpired(&self, write: u64, key: &[u8]) -> Option<Value> {
        let before = self.determined(write, key)?;
        (!self.model.may_have_expired(key, &before)).then_some(before)
    }

    /// An expired key is never served: a value whose deadline the clock is
    /// past now (when the answer comes out) is a violation.
    fn check_unexpired(&mut self, key: &[u8], got: &Value, what: &str) {
        let now = self.clock_ms();
        if let Some(deadline) = self.model.expired_at(key, got, now) {
            self.violation(format!(
                "{what} of {} served {}, expired at {deadline} (clock {now})",
                show_key(key),
                show(got)
            ));
        }
        if self.model.expires(key, got) {
            self.counters.add("expiring_values_served", 1);
        }
    }

    /// The key's state before `write`, when it is exactly known: every
    /// earlier write resolved, and no fault could have touched the key.
    fn determined(&self, write: u64, key: &[u8]) -> Option<Value> {
        if self.oracle.lossy(key) {
            return None;
        }
        self.model.state_before(write, key)
    }

    fn failed(&mut self, expect: Expect, e: EngineError) {
        match &e {
            EngineError::Corruption { .. } => self.counters.add("corruption_reported", 1),
            EngineError::Io(_) | EngineError::Fenced(_) => self.counters.add("io_errors", 1),
            EngineError::OutOfSpace => self.counters.add("out_of_space", 1),
            other => self.violation(format!("unexpected error {other}")),
        }
        if !self.faults_enabled() && !matches!(e, EngineError::OutOfSpace) {
            self.violation(format!("error without faults: {e}"));
        }
        // Media damage under a key: its state is unknown from here on.
        let damaged = matches!(
            e,
            EngineError::Corruption { .. }
                | EngineError::Io(nvme::IoError::Media { .. } | nvme::IoError::Integrity { .. })
        );
        // These never reached the log.
        let never_written = matches!(e, EngineError::OutOfSpace | EngineError::Fenced(_));
        match expect {
            Expect::Put { write, key }
            | Expect::PutIf { write, key, .. }
            | Expect::PutGet { write, key }
            | Expect::Swap { write, key, .. }
            | Expect::Delete { write, key } => {
                if never_written {
                    self.drop_write(write, &key);
                }
                if damaged {
                    self.oracle.unknown.insert(key);
                }
            }
            Expect::Batch { write, keys } => {
                if never_written {
                    for key in &keys {
                        self.drop_write(write, key);
                    }
                    self.model.batches.retain(|b| b.write != write);
                }
            }
            Expect::Read { key, .. } => {
                if damaged {
                    self.oracle.unknown.insert(key);
                }
            }
            Expect::Scan { .. } => self.violation(format!("scan failed: {e}")),
        }
    }

    /// Checks a read's answer. A read takes effect after every write of
    /// its key issued before it and before every later write of its own
    /// client (per-client order: one client's pipelined requests take effect
    /// in the order issued); other clients' writes issued during its
    /// lifetime are concurrent with it, and it may see them.
    fn check_read(
        &mut self,
        client: usize,
        key: &[u8],
        exists: bool,
        got: Value,
        snapshot: &[Value],
        first_write: u64,
    ) {
        // The states before the read: exactly, from the model, while no
        // later write is acknowledged; otherwise what the key could hold
        // when the read was issued.
        let mut acceptable = self
            .model
            .before_read(key, first_write)
            .unwrap_or_else(|| snapshot.to_vec());
        acceptable.extend(
            self.model
                .concurrent_writes(key, first_write, client)
                .cloned(),
        );
        let acceptable = self.model.or_expired(key, acceptable);
        if !exists {
            self.check_unexpired(key, &got, "get");
        }
        let matches = |v: &Value| {
            if exists {
                v.is_some() == got.is_some()
            } else {
                *v == got
            }
        };
        if acceptable.iter().any(matches) {
            self.counters.add(
                if exists {
                    "exists_verified"
                } else {
                    "gets_verified"
                },
                1,
            );
            if self.model.unresolved_before(key, first_write) {
                self.counters.add("reads_deferred", 1);
                self.oracle.deferred_reads.push(DeferredRead {
                    key: key.to_vec(),
                    client,
                    exists,
                    got: got.clone(),
                    first_write,
                });
            }
            if !exists {
                self.observed(key, &got);
            }
        } else if self.oracle.lossy(key) && (exists || self.model.ever_written(key, &got)) {
            self.counters.add("weak_reads", 1);
        } else {
            self.violation(format!(
                "{} {} (client {client}) returned {}, acceptable {}",
                if exists { "exists" } else { "get" },
                show_key(key),
                show(&got),
                show_all(&acceptable)
            ));
        }
    }

    /// A get answered the value of a write not yet acknowledged. The index
    /// points at a write only once its flush completed, so that write is
    /// durable: it (or a later write of the key) must survive every crash
    /// from here, as if it had been acknowledged.
    fn observed(&mut self, key: &[u8], got: &Value) {
        let Some(model) = self.model.keys.get(key) else {
            return;
        };
        // Only a value that tells one write apart: a present value (the
        // simulator's values carry their write number) that is not the
        // acknowledged one. An absent key may be the state before them all.
        if got.is_none() || *got == model.acked {
            return;
        }
        let mut writes = model.maybe.iter().filter(|(_, v)| v == got);
        let (Some(&(write, _)), None) = (writes.next(), writes.next()) else {
            return;
        };
        self.counters.add("gets_proving_durability", 1);
        if let Err(e) = self.model.observe(write, key) {
            self.violation(format!("{}: {e}", show_key(key)));
        }
    }

    /// Checks again the reads of `key` answered while earlier writes of it
    /// were unresolved, now that one has resolved: a write acknowledged
    /// after a read returned must not be one the read should have seen.
    fn recheck_reads(&mut self, key: &[u8]) {
        if self.oracle.deferred_reads.is_empty() {
            return;
        }
        let deferred = std::mem::take(&mut self.oracle.deferred_reads);
        for read in deferred {
            if read.key != key {
                self.oracle.deferred_reads.push(read);
                continue;
            }
            // A later write acknowledged: nothing more to learn.
            let Some(mut acceptable) = self.model.before_read(key, read.first_write) else {
                continue;
            };
            acceptable.extend(
                self.model
                    .concurrent_writes(key, read.first_write, read.client)
                    .cloned(),
            );
            let acceptable = self.model.or_expired(key, acceptable);
            let seen = acceptable.iter().any(|v| {
                if read.exists {
                    v.is_some() == read.got.is_some()
                } else {
                    *v == read.got
                }
            });
            if !seen && !self.oracle.lossy(key) {
                self.violation(format!(
                    "{} {} (client {}) returned {}, but a write issued before it was \
                     acknowledged since: acceptable {}",
                    if read.exists { "exists" } else { "get" },
                    show_key(key),
                    read.client,
                    show(&read.got),
                    show_all(&acceptable)
                ));
                continue;
            }
            if self.model.unresolved_before(key, read.first_write) {
                self.oracle.deferred_reads.push(read);
            } else {
                self.counters.add("deferred_reads_verified", 1);
            }
        }
    }

    fn check_scan(
        &mut self,
        shard: u16,
        expected: &BTreeMap<Vec<u8>, (bool, bool)>,
        found: &[Vec<u8>],
    ) {
        let found: BTreeSet<&Vec<u8>> = found.iter().collect();
        for (key, &(may_present, may_absent)) in expected {
            let present = found.contains(key);
            if (present && !may_present || !present && !may_absent) && !self.oracle.lossy(key) {
                self.violation(format!(
                    "scan of shard {shard}: {} {}",
                    show_key(key),
                    if present {
                        "present, but deleted"
                    } else {
                        "missing"
                    }
                ));
            }
        }
        for key in found {
            if !expected.contains_key(key) && !self.oracle.lossy(key) {
                self.violation(format!(
                    "scan of shard {shard} returned {}, never written",
                    show_key(key)
                ));
            }
        }
        self.counters.add("scans_verified", 1);
    }

    /// After a recovery: decides which keys the report and the located
    /// faults make lossy. A reported range is explained when located faults
    /// cover every block of it; their keys become lossy. A range that
    /// neither the report names nor located faults cover makes the rest of
    /// the run weak.
    pub fn absorb_report(&mut self, report: &RecoveryReport, located: &[Located]) {
        let (named, all_named) = damaged_keys(report);
        self.oracle.damaged.extend(named);
        let mut unexplained = 0;
        for damage in &report.damage {
            // The blocks of the range in log order: from its start to the
            // end of its segment, and from the end segment's first frame
            // to its end (segments between belong to other streams or were
            // collected).
            let block =
                |l: &engine::Location| self.segment_lba(l.segment) + u64::from(l.offset) / 4096;
            let (first, end) = (
                block(&damage.start),
                block(&damage.end).max(block(&damage.start) + 1),
            );
            let blocks: Vec<u64> = if damage.start.segment == damage.end.segment {
                (first..end).collect()
            } else {
                let start_end = self.segment_lba(damage.start.segment + 1);
                let end_first = self.segment_lba(damage.end.segment) + 1;
                (first..start_end)
                    .chain(end_first..block(&damage.end))
                    .collect()
            };
            let mut covered = BTreeSet::new();
            for fault in located {
                let (from, count) = fault.extent;
                if (from..from + count)
                    .any(|lba| blocks.contains(&lba) || (first..end).contains(&lba))
                {
                    covered.extend(from..from + count);
                    self.oracle.damaged.extend(fault.keys.iter().cloned());
                }
            }
            if !blocks.iter().all(|lba| covered.contains(lba)) {
                unexplained += 1;
                if std::env::var("VELTRIX_SIM_SEED").is_ok() {
                    eprintln!("unexplained damage: LBAs {first}..{end}: {damage:?}");
                }
            }
        }
        self.absorb_torn_tails(report, located);
        if unexplained > 0 && !all_named {
            if !self.oracle.weak_run {
                self.counters.add("weak_fallback_runs", 1);
                // Misdirected writes leave damage nobody can name from the
                // image: the frame never reached its place.
                if self.counters.get("misdirected_epochs") > 0 {
                    self.counters
                        .add("weak_fallback_runs_after_misdirected_writes", 1);
                }
            }
            self.counters.add("weak_fallback_recoveries", 1);
            self.oracle.weak_run = true;
        }
    }

    /// A cut log end may have been the last acknowledged frame, damaged at
    /// rest: recovery cannot tell, and reports it with the keys it can name.
    /// Those keys, and the keys of a fault located in the cut stretch (from
    /// the cut to the end of its segment), or placed there earlier and since
    /// overwritten, may be lost; nothing else. A cut
    /// that no located fault explains is the remains of a commit in flight
    /// at the crash, and every acknowledged write must still be there.
    fn absorb_torn_tails(&mut self, report: &RecoveryReport, located: &[Located]) {
        for torn in &report.torn_tails {
            let first = self.segment_lba(torn.at.segment) + u64::from(torn.at.offset) / 4096;
            let end = self.segment_lba(torn.at.segment + 1);
            let mut explained = false;
            let faults = located
                .iter()
                .map(|l| (l.extent, &l.keys))
                .chain(self.faded.iter().map(|l| (l.extent, &l.keys)));
            let mut lossy = BTreeSet::new();
            for ((from, count), keys) in faults {
                if from < end && from + count > first {
                    explained = true;
                    lossy.extend(keys.iter().cloned());
                }
            }
            self.oracle.damaged.extend(lossy);
            // A segment of frames with no header: a misdirected header write
            // explains it (the oracle cannot place those).
            if torn.stream == u16::MAX {
                self.counters.add("headerless_segments_reported", 1);
            }
            if torn.stream == u16::MAX && self.counters.get("misdirected_epochs") > 0 {
                explained = true;
            }
            if explained {
                self.counters.add("torn_tails_explained_by_faults", 1);
                self.oracle.damaged.extend(torn.keys.iter().cloned());
            } else {
                self.counters.add("torn_tails_in_flight", 1);
            }
        }
    }

    /// Checks every key against the model after a recovery, then takes what
    /// recovery shows as the acknowledged state.
    pub fn check_recovery(&mut self) {
        let keys: Vec<Vec<u8>> = self.model.keys.keys().cloned().collect();
        let mut recovered: BTreeMap<Vec<u8>, Value> = BTreeMap::new();
        for key in keys {
            match self.get_now(&key) {
                Ok(value) => {
                    self.check_recovered(&key, &value);
                    recovered.insert(key, value);
                }
                Err(e) => {
                    if !self.faults_enabled() {
                        self.violation(format!(
                            "after recovery: get {} failed: {e}",
                            show_key(&key)
                        ));
                    }
                    self.counters.add("recovery_read_errors", 1);
                    self.oracle.unknown.insert(key.clone());
                    self.model.settle(&key, None);
                }
            }
        }
        self.check_batches(&recovered);
        for (key, value) in recovered {
            self.model.settle(&key, value);
        }
        self.counters
            .add("recovery_keys_checked", self.model.keys.len() as u64);
    }

    fn check_recovered(&mut self, key: &[u8], value: &Value) {
        self.check_unexpired(key, value, "after recovery, get");
        let acceptable = self.model.or_expired(key, self.model.acceptable(key));
        if value.is_none() && !self.model.acceptable(key).contains(value) {
            self.counters.add("expired_keys_gone_after_recovery", 1);
        }
        if acceptable.contains(value) {
            return;
        }
        if self.epoch.misdirected
            && self
                .model
                .writes_since(key, self.epoch.first_write)
                .next()
                .is_some()
        {
            let before = self.epoch.start_acked.get(key).cloned().unwrap_or(None);
            if *value == before
                || self
                    .model
                    .writes_since(key, self.epoch.first_write)
                    .any(|v| v == value)
            {
                self.counters.add("misdirect_lenient_keys", 1);
                return;
            }
        }
        if self.oracle.lossy(key) && self.model.ever_written(key, value) {
            self.counters.add("weak_keys", 1);
            return;
        }
        let why = if self.oracle.lossy(key) {
            "never written"
        } else {
            "not acceptable"
        };
        self.violation(format!(
            "after recovery: {} = {} ({why}), acceptable {}",
            show_key(key),
            show(value),
            show_all(&acceptable)
        ));
    }

    /// An unacknowledged batch is all or nothing: among its keys whose
    /// batch state no other write could have produced, it shows on all or
    /// on none.
    fn check_batches(&mut self, recovered: &BTreeMap<Vec<u8>, Value>) {
        let batches = std::mem::take(&mut self.model.batches);
        for batch in &batches {
            let clean = batch.ops.iter().all(|(k, _)| {
                !self.oracle.lossy(k)
                    && recovered.contains_key(k)
                    && self.model.last_write(k) == Some(batch.write)
            });
            if !clean {
                continue;
            }
            let mut shown = Vec::new();
            for (key, value) in &batch.ops {
                let m = &self.model.keys[key];
                let others: Vec<Value> = std::iter::once(&m.acked)
                    .chain(
                        m.maybe
                            .iter()
                            .filter(|(w, _)| *w != batch.write)
                            .map(|(_, v)| v),
                    )
                    .cloned()
                    .collect();
                // A state that may have expired may show as absent.
                let others = self.model.or_expired(key, others);
                let distinct = others.iter().all(|v| v != value);
                if distinct {
                    shown.push(recovered[key] == *value);
                }
            }
            let applied = shown.iter().filter(|s| **s).count();
            if applied != 0 && applied != shown.len() {
                self.violation(format!(
                    "batch (write {}) torn: {applied} of {} distinguishable keys applied ({})",
                    batch.write,
                    shown.len(),
                    batch
                        .ops
                        .iter()
                        .map(|(k, _)| show_key(k))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            self.counters.add("batches_checked_at_recovery", 1);
        }
    }
}
