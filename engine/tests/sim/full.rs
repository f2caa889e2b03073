//! The namespace-full class: a small namespace filled until writes fail
//! with `OutOfSpace`, then emptied by deletes (which the GC reserve lets
//! through) and GC, and written again; every recovery checked strictly.

use engine::format::record::{record_bytes, FRAME_HEADER_BYTES};
use engine::Op;
use rand::Rng;

use super::oracle::{Expect, Pending};
use super::{workload, Class, Sim};

/// Writes after deletes and GC, each of which must succeed.
const WRITES_AFTER_GC: usize = 3;

impl Sim {
    /// The namespace-full class: fill a small namespace with fresh keys
    /// until writes fail with `OutOfSpace`, crash, delete the oldest keys
    /// (deletes must succeed: the GC reserve), collect, write again, crash.
    /// The strict oracle checks every recovery: no acknowledged write lost,
    /// no failed one applied.
    pub fn run_full(&mut self) {
        let Class::Full(full) = self.class.clone() else {
            panic!("run_full runs the Full class");
        };
        self.full_workers = Some(self.rng.random_range(1..=2));
        self.recover();
        let mut fill = 0u64;
        let out_before = self.counters.get("out_of_space");
        for _ in 0..40_000 {
            if self.counters.get("out_of_space") > out_before + 4
                || !self.oracle.violations.is_empty()
            {
                break;
            }
            if !full.concurrent_writers {
                self.issue_fill(&mut fill);
                self.drain();
            } else if self.clients_busy.len() < workload::CLIENTS
                && self.rng.random_range(0..3) == 0
            {
                self.issue_fill(&mut fill);
            } else if self.rng.random_range(0..2) == 0 {
                let w = self.rng.random_range(0..self.cores.len());
                self.step_worker(w);
            } else {
                let us = self.rng.random_range(1..60);
                self.advance(us);
            }
        }
        self.drain();
        if self.counters.get("out_of_space") == out_before {
            self.violation("the namespace never ran full".into());
        }
        if !self.oracle.violations.is_empty() {
            return;
        }
        self.counters.add("full_namespaces", 1);
        let reserve_filled = self.cores[0].space().reserve;
        if full.reopen_with_more_workers {
            self.full_workers = Some(self.full_workers.unwrap_or(1) + 1);
        }
        self.crash();
        self.recover();
        if self.cores.is_empty() {
            return;
        }
        // Reopened with more workers, the store has a larger reserve than
        // it was filled under (two segments per added worker, by design:
        // `engine::store::segments::reserve`, docs/gc.md), so the room
        // the first round of deletes frees may all go to the reserve.
        // Writes then fail with `OutOfSpace` (answered, never left
        // waiting), and each further round of deletes (24 keys, more than
        // three segments' worth) must bring them closer: at most one round
        // per segment the reserve grew. (Storms until there is room, then:
        // a single storm could not cover the growth, and the writes after
        // one storm are the base reserve's check.)
        let grown = self.cores[0].space().reserve.saturating_sub(reserve_filled);
        let one_storm = full.one_storm && grown == 0;
        self.full_deletes();
        let mut rounds = 0;
        while !self.full_collect(one_storm) {
            if !self.oracle.violations.is_empty() {
                return;
            }
            if rounds >= grown {
                let space = self.cores[0].space();
                self.violation(format!(
                    "GC freed too little after deletes on a full namespace ({rounds} more \
                     rounds of deletes for a reserve grown by {grown}): {space:?}"
                ));
                return;
            }
            // While short of the reserve, a write is answered at once.
            self.issue_fill(&mut fill);
            self.drain();
            self.full_deletes();
            rounds += 1;
            self.counters
                .add("full_delete_rounds_for_a_grown_reserve", 1);
        }
        if !self.oracle.violations.is_empty() {
            return;
        }
        // Writes succeed again, as many as the freed room takes (after one
        // storm: more than that, so writes wait for GC).
        let writes = if one_storm {
            2 * workload::CLIENTS as u64
        } else {
            WRITES_AFTER_GC as u64
        };
        let puts_before = self.counters.get("acked_puts");
        for _ in 0..writes {
            self.issue_fill(&mut fill);
            self.drain();
            if !self.oracle.violations.is_empty() {
                return;
            }
        }
        let refilled = self.counters.get("acked_puts") - puts_before;
        if refilled == 0 || !one_storm && refilled != writes {
            self.violation(format!(
                "after deletes and GC, {refilled} of {writes} writes succeeded"
            ));
        }
        self.counters.add("full_writes_after_gc", refilled);
        self.crash();
        self.recover();
    }

    /// Deletes the oldest keys, two rounds of concurrent deletes: each must
    /// succeed on the full namespace.
    fn full_deletes(&mut self) {
        let mut present: Vec<(u64, Vec<u8>)> = self
            .model
            .keys
            .iter()
            .filter(|(k, m)| k.starts_with(b"f") && m.acked.is_some())
            .filter_map(|(k, _)| {
                Some((std::str::from_utf8(&k[1..]).ok()?.parse().ok()?, k.clone()))
            })
            .collect();
        present.sort();
        let (deletes_before, out_before) = (
            self.counters.get("acked_deletes"),
            self.counters.get("out_of_space"),
        );
        let mut issued = 0;
        for (_, key) in present.iter().take(2 * workload::CLIENTS) {
            self.issue_op(Expect::Delete {
                write: 0,
                key: key.clone(),
            });
            issued += 1;
            if self.clients_busy.len() >= workload::CLIENTS {
                self.drain();
            }
        }
        self.drain();
        let acked = self.counters.get("acked_deletes") - deletes_before;
        let out = self.counters.get("out_of_space") - out_before;
        if acked != issued {
            self.violation(format!(
                "on a full namespace only {acked} of {issued} deletes succeeded ({out} OutOfSpace)"
            ));
        }
        self.counters.add("full_deletes_acked", acked);
    }

    /// GC storms, one at a time, until free segments are above the reserve
    /// by as many as the writes after GC may take (or a single storm);
    /// returns whether they are.
    ///
    /// Each of those writes may need a segment of its own: on a worker
    /// whose log segment is full, a put opens a fresh one. So the room is
    /// one segment above the reserve per write, up to one per worker (two,
    /// `free > reserve + 1`, with the one or two workers the class fills
    /// with; three with a third worker added at the reopen).
    fn full_collect(&mut self, one_storm: bool) -> bool {
        let room = WRITES_AFTER_GC.min(self.cores.len()).max(2) as u32;
        for round in 0..12 {
            if one_storm && round == 1 {
                return true;
            }
            let space = self.cores[0].space();
            if space.free >= space.reserve + room {
                self.counters.add("full_collected", 1);
                return true;
            }
            self.cores[0].request_gc_storm();
            self.counters.add("gc_storms", 1);
            for _ in 0..2_000 {
                for w in 0..self.cores.len() {
                    self.step_worker(w);
                }
                self.advance(5);
            }
        }
        false
    }

    fn issue_fill(&mut self, fill: &mut u64) {
        let key = format!("f{fill}").into_bytes();
        *fill += 1;
        self.issue_op(Expect::Put { write: 0, key });
    }

    /// Issues a put (large value) or a delete from an idle client; the
    /// write number in `expect` is assigned here.
    fn issue_op(&mut self, expect: Expect) {
        let Some(client) = (0..workload::CLIENTS).find(|c| !self.clients_busy.contains(c)) else {
            return;
        };
        let write = self.next_write;
        self.next_write += 1;
        let (key, op, expect) = match expect {
            Expect::Put { key, .. } => {
                let mut value = self.value_for(&key, write);
                let exact = matches!(&self.class, Class::Full(f) if !f.concurrent_writers);
                let len = if exact {
                    // A frame of exactly two blocks.
                    2 * 4096 - FRAME_HEADER_BYTES - record_bytes(key.len(), 0)
                } else {
                    self.rng.random_range(6000..12 << 10)
                };
                value.resize(len, 0x5A);
                self.model.issue(write, client, &key, Some(value.clone()));
                (
                    key.clone(),
                    Op::Put(key.clone(), value),
                    Expect::Put { write, key },
                )
            }
            Expect::Delete { key, .. } => {
                self.model.issue(write, client, &key, None);
                (
                    key.clone(),
                    Op::Delete(key.clone()),
                    Expect::Delete { write, key },
                )
            }
            _ => unreachable!("fill issues puts and deletes"),
        };
        let id = self.next_request;
        self.next_request += 1;
        let owner = self.owner(&key);
        self.client_sent(client);
        self.pending.insert(id, Pending { client, expect });
        self.cores[owner].accept(id, op, self.now_us);
    }
}
