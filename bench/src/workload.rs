//! Keys, key distributions and operation mixes (YCSB's shapes).

use rand::rngs::SmallRng;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// Every key is this long: 8 bytes of prefix, 8 of big-endian index.
pub const KEY_BYTES: usize = 16;

/// The key of record `i`.
pub fn key(i: u64) -> [u8; KEY_BYTES] {
    let mut k = [0u8; KEY_BYTES];
    k[..8].copy_from_slice(b"user0000");
    k[8..].copy_from_slice(&i.to_be_bytes());
    k
}

/// A value of `bytes`, varied by `seed` so nothing compresses to nothing.
pub fn value(bytes: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..bytes)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// How the keys of reads and updates are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Distribution {
    /// Every key alike.
    Uniform,
    /// YCSB's scrambled Zipfian with constant 0.99: popularity follows
    /// Zipf, and the popular keys are spread over the key space by a hash.
    Zipf99,
}

impl Distribution {
    pub fn name(self) -> &'static str {
        match self {
            Distribution::Uniform => "uniform",
            Distribution::Zipf99 => "zipf 0.99",
        }
    }
}

/// Gray et al.'s Zipfian generator, as YCSB's `ZipfianGenerator` has it.
#[derive(Clone, Debug)]
pub struct Zipf {
    items: u64,
    theta: f64,
    alpha: f64,
    zetan: f64,
    eta: f64,
}

impl Zipf {
    pub fn new(items: u64, theta: f64) -> Zipf {
        let items = items.max(2);
        let zeta = |n: u64| (1..=n).map(|i| 1.0 / (i as f64).powf(theta)).sum::<f64>();
        let zetan = zeta(items);
        let zeta2 = zeta(2);
        let eta = (1.0 - (2.0 / items as f64).powf(1.0 - theta)) / (1.0 - zeta2 / zetan);
        Zipf {
            items,
            theta,
            alpha: 1.0 / (1.0 - theta),
            zetan,
            eta,
        }
    }

    /// A rank in 0..items, 0 the most popular.
    pub fn next_rank(&self, rng: &mut SmallRng) -> u64 {
        let u: f64 = rng.random();
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + 0.5f64.powf(self.theta) {
            return 1;
        }
        let rank = (self.items as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        rank.min(self.items - 1)
    }
}

/// Picks record indexes in 0..records.
#[derive(Clone, Debug)]
pub struct KeyChooser {
    records: u64,
    zipf: Option<Zipf>,
}

impl KeyChooser {
    pub fn new(distribution: Distribution, records: u64) -> KeyChooser {
        let records = records.max(1);
        KeyChooser {
            records,
            zipf: match distribution {
                Distribution::Uniform => None,
                Distribution::Zipf99 => Some(Zipf::new(records, 0.99)),
            },
        }
    }

    pub fn next(&self, rng: &mut SmallRng) -> u64 {
        match &self.zipf {
            None => rng.random_range(0..self.records),
            Some(zipf) => fnv1a(zipf.next_rank(rng)) % self.records,
        }
    }
}

fn fnv1a(x: u64) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for byte in x.to_le_bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// A phase's operation mix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mix {
    /// Durable puts of records in order, wrapping at the record count.
    Fill,
    /// YCSB A: 50% reads, 50% updates.
    A,
    /// YCSB B: 95% reads, 5% updates.
    B,
    /// YCSB C: reads only.
    C,
    /// YCSB F: 50% reads, 50% read-modify-writes.
    F,
}

impl Mix {
    pub fn name(self) -> &'static str {
        match self {
            Mix::Fill => "fill",
            Mix::A => "YCSB-A",
            Mix::B => "YCSB-B",
            Mix::C => "YCSB-C",
            Mix::F => "YCSB-F",
        }
    }

    /// Percent of operations that read only.
    pub fn read_percent(self) -> u32 {
        match self {
            Mix::Fill => 0,
            Mix::A | Mix::F => 50,
            Mix::B => 95,
            Mix::C => 100,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn zipf_is_skewed_and_in_range() {
        let records = 10_000;
        let chooser = KeyChooser::new(Distribution::Zipf99, records);
        let mut rng = SmallRng::seed_from_u64(7);
        let mut counts = vec![0u32; records as usize];
        for _ in 0..200_000 {
            let i = chooser.next(&mut rng);
            assert!(i < records);
            counts[i as usize] += 1;
        }
        counts.sort_unstable_by(|a, b| b.cmp(a));
        let top_percent: u32 = counts[..100].iter().sum();
        // With theta 0.99 over 10k keys the top 1% draw about half the
        // requests; uniform would give them 1%.
        assert!(top_percent > 70_000, "top 1% drew {top_percent}");
    }

    #[test]
    fn uniform_covers_the_keys() {
        let chooser = KeyChooser::new(Distribution::Uniform, 100);
        let mut rng = SmallRng::seed_from_u64(1);
        let mut seen = [false; 100];
        for _ in 0..10_000 {
            seen[chooser.next(&mut rng) as usize] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }

    #[test]
    fn keys_are_distinct_and_values_vary() {
        assert_ne!(key(1), key(256));
        assert_eq!(value(100, 3).len(), 100);
        assert_ne!(value(64, 1), value(64, 2));
    }
}
