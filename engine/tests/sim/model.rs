//! The model: what every key may hold, from the writes issued and the
//! replies received. It knows nothing of faults; the oracle decides which
//! keys a fault may have touched.

use std::collections::{BTreeMap, BTreeSet};

/// A key's state: `None` is deleted or never written.
pub type Value = Option<Vec<u8>>;

/// What the model knows about one key.
#[derive(Default, Clone, Debug)]
pub struct KeyModel {
    /// The state after the last acknowledged write.
    pub acked: Value,
    /// That write's number (0: the state a recovery showed, older than
    /// every request since).
    pub acked_write: u64,
    /// Writes issued after the last acknowledged one and not yet resolved:
    /// in flight, failed in a way that may still have written them, or cut
    /// off by a crash. Any one of them may be what recovery shows.
    pub maybe: Vec<(u64, Value)>,
    /// The last write a get proved durable ([`Model::observe`]): its reply,
    /// and those of writes before it, may still arrive.
    pub observed_through: u64,
}

/// An atomic batch: one write number for all its keys.
#[derive(Clone, Debug)]
pub struct BatchModel {
    pub write: u64,
    pub ops: Vec<(Vec<u8>, Value)>,
}

#[derive(Default)]
pub struct Model {
    pub keys: BTreeMap<Vec<u8>, KeyModel>,
    /// Every value ever written to each key (weak checks only).
    pub history: BTreeMap<Vec<u8>, BTreeSet<Vec<u8>>>,
    /// Every write to each key, by write number.
    pub log: BTreeMap<Vec<u8>, Vec<(u64, Value)>>,
    /// Batches issued since the last recovery and not acknowledged.
    pub batches: Vec<BatchModel>,
    /// Which client issued each write.
    pub writers: BTreeMap<u64, usize>,
    /// The deadline of each write that set one (milliseconds on the
    /// simulated wall clock).
    pub deadlines: BTreeMap<u64, u64>,
    /// Every value the simulated wall clock took, in order.
    pub clock_log: Vec<u64>,
    /// For each write with a deadline: where `clock_log` stood when it was
    /// issued.
    pub issued_at: BTreeMap<u64, usize>,
}

fn trace(key: &[u8], what: std::fmt::Arguments<'_>) {
    if std::env::var("VELTRIX_SIM_TRACE").is_ok_and(|k| k.as_bytes() == key) {
        eprintln!("{}: {what}", String::from_utf8_lossy(key));
    }
}

impl Model {
    pub fn issue(&mut self, write: u64, client: usize, key: &[u8], value: Value) {
        trace(
            key,
            format_args!(
                "issue write {write} (client {client}): {:?}",
                value.as_ref().map(Vec::len)
            ),
        );
        self.writers.insert(write, client);
        if let Some(v) = &value {
            self.history
                .entry(key.to_vec())
                .or_default()
                .insert(v.clone());
        }
        self.log
            .entry(key.to_vec())
            .or_default()
            .push((write, value.clone()));
        self.keys
            .entry(key.to_vec())
            .or_default()
            .maybe
            .push((write, value));
    }

    /// A put with a deadline: as `issue`, and the deadline remembered.
    pub fn issue_expiring(
        &mut self,
        write: u64,
        client: usize,
        key: &[u8],
        value: Value,
        deadline: u64,
    ) {
        self.issue(write, client, key, value);
        self.deadlines.insert(write, deadline);
        self.issued_at
            .insert(write, self.clock_log.len().saturating_sub(1));
    }

    /// The clock moved (forward or back).
    pub fn clock(&mut self, now_ms: u64) {
        self.clock_log.push(now_ms);
    }

    /// The write that left `value` in `key`, and its deadline, if it set
    /// one (values carry their write number, so one write at most).
    fn deadline_of(&self, key: &[u8], value: &Value) -> Option<(u64, u64)> {
        // Empty values never expire in the workload (and are not unique).
        value.as_ref().filter(|v| !v.is_empty())?;
        let log = self.log.get(key)?;
        let (write, _) = log.iter().find(|(_, v)| v == value)?;
        Some((*write, *self.deadlines.get(write)?))
    }

    /// Whether `value` of `key` has a deadline.
    pub fn expires(&self, key: &[u8], value: &Value) -> bool {
        self.deadline_of(key, value).is_some()
    }

    /// Whether the clock has passed the deadline of `value` since its
    /// write was issued: only then may the engine have reclaimed it (or
    /// answered it absent).
    pub fn may_have_expired(&self, key: &[u8], value: &Value) -> bool {
        let Some((write, deadline)) = self.deadline_of(key, value) else {
            return false;
        };
        let from = self.issued_at.get(&write).copied().unwrap_or(0);
        self.clock_log[from.min(self.clock_log.len())..]
            .iter()
            .any(|&clock| clock > deadline)
    }

    /// The deadline of `value` when the clock at `now_ms` is past it: a
    /// read answering it now serves an expired key.
    pub fn expired_at(&self, key: &[u8], value: &Value, now_ms: u64) -> Option<u64> {
        let (_, deadline) = self.deadline_of(key, value)?;
        (now_ms > deadline).then_some(deadline)
    }

    /// `states`, and absent when one of them may have expired.
    pub fn or_expired(&self, key: &[u8], mut states: Vec<Value>) -> Vec<Value> {
        if !states.contains(&None) && states.iter().any(|v| self.may_have_expired(key, v)) {
            states.push(None);
        }
        states
    }

    /// The write is durable. Writes to one key commit in issue order, so the
    /// ones before it are superseded. Fails for a write no longer possible.
    pub fn ack(&mut self, write: u64, key: &[u8]) -> Result<(), String> {
        trace(key, format_args!("ack write {write}"));
        let model = self.keys.entry(key.to_vec()).or_default();
        let Some(at) = model.maybe.iter().position(|(w, _)| *w == write) else {
            if write <= model.observed_through {
                return Ok(());
            }
            return Err(format!(
                "write {write} acknowledged, but it was resolved before"
            ));
        };
        model.acked = model.maybe[at].1.clone();
        model.acked_write = write;
        model.maybe.drain(..=at);
        Ok(())
    }

    /// A get returned what `write` wrote: it is durable (the index points
    /// at a write only once it is), as if acknowledged. Its own reply may
    /// still come.
    pub fn observe(&mut self, write: u64, key: &[u8]) -> Result<(), String> {
        self.ack(write, key)?;
        let model = self.keys.entry(key.to_vec()).or_default();
        model.observed_through = model.observed_through.max(write);
        Ok(())
    }

    /// The write certainly did not happen (`NotApplied`, `OutOfSpace`,
    /// `Fenced`): it leaves the key's possible states.
    pub fn drop_write(&mut self, write: u64, key: &[u8]) {
        trace(key, format_args!("drop write {write}"));
        if let Some(model) = self.keys.get_mut(key) {
            model.maybe.retain(|(w, _)| *w != write);
        }
    }

    /// The key's state just before `write` took effect, when every earlier
    /// write of the key is resolved (so the reply of `write` is exactly
    /// determined): `None` when an earlier write is still unresolved, or
    /// when a later one is already acknowledged (a `NotApplied`, which
    /// writes nothing, may be answered after a later write of its client
    /// that took effect after it on another worker).
    pub fn state_before(&self, write: u64, key: &[u8]) -> Option<Value> {
        match self.keys.get(key) {
            None => Some(None),
            Some(m) if m.acked_write < write && m.maybe.iter().all(|(w, _)| *w >= write) => {
                Some(m.acked.clone())
            }
            Some(_) => None,
        }
    }

    /// The states a read issued just before write `first_write` may see
    /// from the writes issued before it: the acknowledged state and every
    /// unresolved earlier write. `None` once a write issued after the read
    /// is acknowledged (it superseded what the model knew of the earlier
    /// ones).
    ///
    /// This is per-client order: a read waits for every earlier write of its
    /// key (the workload keeps a key's requests in flight to one client when
    /// routing is on, and submits straight to the owner otherwise).
    pub fn before_read(&self, key: &[u8], first_write: u64) -> Option<Vec<Value>> {
        match self.keys.get(key) {
            None => Some(vec![None]),
            Some(m) if m.acked_write < first_write => {
                let mut out = vec![m.acked.clone()];
                out.extend(
                    m.maybe
                        .iter()
                        .filter(|(w, _)| *w < first_write)
                        .map(|(_, v)| v.clone()),
                );
                Some(out)
            }
            Some(_) => None,
        }
    }

    /// Whether a write of `key` issued before `first_write` is unresolved.
    pub fn unresolved_before(&self, key: &[u8], first_write: u64) -> bool {
        self.keys
            .get(key)
            .is_some_and(|m| m.maybe.iter().any(|(w, _)| *w < first_write))
    }

    /// Writes of `key` numbered `first` or later by clients other than
    /// `client`: concurrent with a read of `client` issued before `first`,
    /// so it may see them. Its own later writes it must not see.
    pub fn concurrent_writes(
        &self,
        key: &[u8],
        first: u64,
        client: usize,
    ) -> impl Iterator<Item = &Value> {
        self.log
            .get(key)
            .into_iter()
            .flatten()
            .filter(move |(w, _)| *w >= first && self.writers.get(w) != Some(&client))
            .map(|(_, v)| v)
    }

    /// Every state the key may be in now.
    pub fn acceptable(&self, key: &[u8]) -> Vec<Value> {
        match self.keys.get(key) {
            None => vec![None],
            Some(m) => {
                let mut out = vec![m.acked.clone()];
                out.extend(m.maybe.iter().map(|(_, v)| v.clone()));
                out
            }
        }
    }

    /// Writes of `key` numbered `first` or later.
    pub fn writes_since(&self, key: &[u8], first: u64) -> impl Iterator<Item = &Value> {
        self.log
            .get(key)
            .into_iter()
            .flatten()
            .filter(move |(w, _)| *w >= first)
            .map(|(_, v)| v)
    }

    /// The last write number issued for `key`.
    pub fn last_write(&self, key: &[u8]) -> Option<u64> {
        self.log.get(key).and_then(|l| l.last()).map(|(w, _)| *w)
    }

    /// Whether `value` is one the key could ever have shown.
    pub fn ever_written(&self, key: &[u8], value: &Value) -> bool {
        match value {
            None => true,
            Some(v) => self.history.get(key).is_some_and(|h| h.contains(v)),
        }
    }

    /// After a recovery: what it shows is the acknowledged state.
    pub fn settle(&mut self, key: &[u8], value: Value) {
        if let Some(m) = self.keys.get_mut(key) {
            m.acked = value;
            m.acked_write = 0;
            m.maybe.clear();
        }
    }
}

/// A short description of a value for violation reports.
pub fn show(value: &Value) -> String {
    match value {
        None => "none".into(),
        Some(v) => format!(
            "{:?}.. ({} bytes)",
            String::from_utf8_lossy(&v[..v.len().min(24)]),
            v.len()
        ),
    }
}

pub fn show_all(values: &[Value]) -> String {
    let shown: Vec<String> = values.iter().map(show).collect();
    format!("[{}]", shown.join(", "))
}

pub fn show_key(key: &[u8]) -> String {
    let text = String::from_utf8_lossy(&key[..key.len().min(24)]).into_owned();
    if key.len() > 24 {
        format!("{text}..({} bytes)", key.len())
    } else {
        text
    }
}
