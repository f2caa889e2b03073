//! The simulated network: envelopes in flight with a delivery time, and
//! the faults a real one has. Drops, duplicates, delays (and so reorders)
//! and partitions are all drawn from the simulation's one random source.

use std::collections::BTreeSet;

use cluster::node::Envelope;
use cluster::placement::NodeId;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// How unreliable the network is.
#[derive(Clone, Copy, Debug)]
pub struct NetFaults {
    /// Chance in a million that an envelope is lost.
    pub drop_ppm: u32,
    /// Chance in a million that an envelope arrives twice.
    pub duplicate_ppm: u32,
    /// Delivery delay, uniform in `1..=max_delay` time units.
    pub max_delay: u64,
}

impl NetFaults {
    pub const NONE: NetFaults = NetFaults {
        drop_ppm: 0,
        duplicate_ppm: 0,
        max_delay: 1,
    };
}

pub struct Net {
    in_flight: Vec<(u64, Envelope)>,
    /// Directed links that deliver nothing.
    cut: BTreeSet<(NodeId, NodeId)>,
    pub faults: NetFaults,
    /// Envelopes sent, and the Raft messages in them.
    pub sent: u64,
    pub messages: u64,
    /// Hibernation notices sent (a group's leader putting it to sleep).
    pub notices: u64,
    pub dropped: u64,
}

impl Net {
    pub fn new(faults: NetFaults) -> Self {
        Self {
            in_flight: Vec::new(),
            cut: BTreeSet::new(),
            faults,
            sent: 0,
            messages: 0,
            notices: 0,
            dropped: 0,
        }
    }

    /// Queues an envelope, subject to loss, duplication and delay.
    pub fn send(&mut self, rng: &mut ChaCha8Rng, now: u64, envelope: Envelope) {
        self.sent += 1;
        self.messages += envelope.messages.len() as u64;
        self.notices += envelope.hibernate.len() as u64;
        self.messages += envelope.messages.len() as u64;
        self.notices += envelope.hibernate.len() as u64;
        if rng.random_range(0..1_000_000) < self.faults.drop_ppm {
            self.dropped += 1;
            return;
        }
        if rng.random_range(0..1_000_000) < self.faults.duplicate_ppm {
            let at = now + rng.random_range(1..=self.faults.max_delay);
            self.in_flight.push((at, envelope.clone()));
        }
        let at = now + rng.random_range(1..=self.faults.max_delay);
        self.in_flight.push((at, envelope));
    }

    /// The envelopes due by `now` whose link is up, in send order (links
    /// that are cut lose what crosses them at delivery time).
    pub fn due(&mut self, now: u64) -> Vec<Envelope> {
        let mut out = Vec::new();
        let mut kept = Vec::with_capacity(self.in_flight.len());
        for (at, env) in self.in_flight.drain(..) {
            if at > now {
                kept.push((at, env));
            } else if self.cut.contains(&(env.from, env.to)) {
                self.dropped += 1;
            } else {
                out.push(env);
            }
        }
        self.in_flight = kept;
        out
    }

    /// Cuts every link between `side` and the other nodes, both ways.
    pub fn partition(&mut self, side: &[NodeId], all: &[NodeId]) {
        for &a in side {
            for &b in all.iter().filter(|b| !side.contains(b)) {
                self.cut.insert((a, b));
                self.cut.insert((b, a));
            }
        }
    }

    /// Cuts one direction of one link.
    pub fn cut_one_way(&mut self, from: NodeId, to: NodeId) {
        self.cut.insert((from, to));
    }

    pub fn heal(&mut self) {
        self.cut.clear();
    }

    pub fn is_partitioned(&self) -> bool {
        !self.cut.is_empty()
    }
}
