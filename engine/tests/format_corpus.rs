//! The format corpus (`testdata/format-corpus/`, README.md there): small
//! namespaces written by the engine of every on-disk format version it has
//! shipped. Today's engine must open each one and read back every value
//! (and no deleted key), raise an older format to today's crash-safely, and
//! refuse a format newer than it knows without writing anything.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is the failure report"
)]

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use engine::format::checkpoint::{Root, ROOT_LBAS};
use engine::format::store_seed;
use engine::format::superblock::{Superblock, FORMAT_VERSION};
use engine::{Engine, EngineConfig, OpenError};

const CORPUS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/format-corpus");
/// Every namespace of the corpus, oldest format first.
const CORPUS: [&str; 4] = ["v1-log", "v1-checkpoint", "v2-log", "v2-checkpoint"];
const CONTAINER_MAGIC: &[u8; 8] = b"VXCORP01";

/// A namespace unpacked from its container: its size and its non-zero
/// blocks (without their trailing zero bytes).
struct Packed {
    namespace_bytes: u64,
    block_bytes: u64,
    blocks: Vec<(u64, Vec<u8>)>,
}

fn unpack(name: &str) -> Packed {
    let path = Path::new(CORPUS_DIR).join(name).join("namespace.vxc");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    assert_eq!(
        crc32c::crc32c(body).to_le_bytes(),
        crc,
        "{name}: the container's crc"
    );
    assert_eq!(&body[..8], CONTAINER_MAGIC, "{name}: the container's magic");
    let u64_at = |at: usize| u64::from_le_bytes(body[at..at + 8].try_into().unwrap());
    let u32_at = |at: usize| u32::from_le_bytes(body[at..at + 4].try_into().unwrap());
    let (namespace_bytes, block_bytes, count) = (u64_at(8), u32_at(16), u32_at(20));
    let mut at = 24;
    let mut blocks = Vec::new();
    for _ in 0..count {
        let (index, len) = (u64_at(at), u32_at(at + 8) as usize);
        assert!(
            len <= block_bytes as usize,
            "{name}: entry longer than a block"
        );
        blocks.push((index, body[at + 12..at + 12 + len].to_vec()));
        at += 12 + len;
    }
    assert_eq!(at, body.len(), "{name}: bytes after the last entry");
    Packed {
        namespace_bytes,
        block_bytes: u64::from(block_bytes),
        blocks,
    }
}

/// Writes a corpus namespace into a sparse file at `path`.
fn materialize(name: &str, path: &Path) -> u64 {
    let packed = unpack(name);
    let file = std::fs::File::create(path).unwrap();
    file.set_len(packed.namespace_bytes).unwrap();
    for (index, bytes) in &packed.blocks {
        file.write_all_at(bytes, index * packed.block_bytes)
            .unwrap();
    }
    packed.namespace_bytes
}

/// What a key of the corpus holds: a value named by its length and fill
/// byte (see `corpus_value`), with a deadline or none; or nothing.
#[derive(Clone, Copy, Debug)]
enum Expect {
    Present {
        len: usize,
        fill: u8,
        deadline_ms: Option<u64>,
    },
    Absent,
}

/// The writer's value function (`engine/examples/format_corpus/common.rs`).
fn corpus_value(len: usize, fill: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((u32::from(fill) + (i as u32).wrapping_mul(7)) % 251) as u8)
        .collect()
}

fn expected(name: &str) -> BTreeMap<String, Expect> {
    let path = Path::new(CORPUS_DIR).join(name).join("expected.txt");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut keys = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let fields: Vec<&str> = line.split(' ').collect();
        let expect = match fields[0] {
            "put" => Expect::Present {
                len: fields[2].parse().unwrap(),
                fill: fields[3].parse().unwrap(),
                deadline_ms: fields.get(4).map(|d| d.parse().unwrap()),
            },
            "absent" => Expect::Absent,
            other => panic!("{name}: unknown line kind {other:?}"),
        };
        keys.insert(fields[1].to_string(), expect);
    }
    assert!(keys.len() > 40, "{name}: expected.txt lists too few keys");
    keys
}

fn config() -> EngineConfig {
    EngineConfig {
        workers: 2,
        value_bytes_max: 256 << 10,
        checkpoint_records: 0,
        ..EngineConfig::default()
    }
}

fn open(path: &Path, namespace_bytes: u64) -> Result<Engine, OpenError> {
    Engine::open(common::file_namespace(path, namespace_bytes), &config())
}

/// Every key reads back as expected, and the index holds nothing else.
fn check_contents(name: &str, engine: &Engine, expected: &BTreeMap<String, Expect>) {
    for (key, expect) in expected {
        let value = engine.get(key.as_bytes()).unwrap();
        match *expect {
            Expect::Present {
                len,
                fill,
                deadline_ms,
            } => {
                assert_eq!(value, Some(corpus_value(len, fill)), "{name}: {key}");
                let deadline = engine.deadline(key.as_bytes()).unwrap();
                let want = deadline_ms.map_or(-1, |d| d as i64);
                assert_eq!(deadline, want, "{name}: {key}'s deadline");
            }
            Expect::Absent => assert_eq!(value, None, "{name}: {key} was deleted"),
        }
    }
    let present = expected
        .values()
        .filter(|e| matches!(e, Expect::Present { .. }))
        .count() as u64;
    assert_eq!(
        engine.recovery_report().keys,
        present,
        "{name}: keys in the index"
    );
    assert!(
        engine.recovery_report().damage.is_empty(),
        "{name}: damage {:?}",
        engine.recovery_report().damage
    );
}

const BLOCK: usize = 4096;

fn read_block(path: &Path, lba: u64) -> Vec<u8> {
    let mut block = vec![0u8; BLOCK];
    let file = std::fs::File::open(path).unwrap();
    file.read_exact_at(&mut block, lba * BLOCK as u64).unwrap();
    block
}

fn write_block(path: &Path, lba: u64, block: &[u8]) {
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(block, lba * BLOCK as u64).unwrap();
}

/// The superblock copy in force: the valid one with the higher generation.
fn superblock_in_force(path: &Path) -> Superblock {
    [0, 1]
        .iter()
        .filter_map(|&lba| Superblock::decode(&read_block(path, lba)).ok())
        .max_by_key(|sb| sb.generation)
        .expect("a valid superblock copy")
}

/// After an open by this build, no superblock copy of an older format is
/// left for an older build to open the store from (builds up to format
/// version 2 open from the copy they can read when the other is newer).
fn assert_every_copy_current(name: &str, path: &Path) {
    for lba in [0, 1] {
        let copy = Superblock::decode(&read_block(path, lba)).unwrap();
        assert_eq!(
            copy.version, FORMAT_VERSION,
            "{name}: superblock copy {lba}"
        );
    }
}

fn scratch(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{name}.img"));
    (dir, path)
}

#[test]
fn every_shipped_format_opens_and_reads_back() {
    for name in CORPUS {
        let expected = expected(name);
        let (_dir, path) = scratch(name);
        let bytes = materialize(name, &path);
        let written_as = superblock_in_force(&path).version;
        assert_eq!(name[1..2].parse::<u32>().unwrap(), written_as, "{name}");

        let engine = open(&path, bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        check_contents(name, &engine, &expected);
        assert_eq!(
            engine.recovery_report().checkpoint.is_some(),
            name.ends_with("checkpoint"),
            "{name}: recovery starts from the corpus's checkpoint"
        );
        drop(engine);
        // The first open raised the format to today's (one way: an older
        // build now refuses the store rather than misread a newer record).
        assert_every_copy_current(name, &path);

        let engine = open(&path, bytes).unwrap();
        check_contents(name, &engine, &expected);
    }
}

/// Blocks that differ between two copies of a namespace file.
fn changed_blocks(before: &[u8], after: &[u8]) -> Vec<u64> {
    before
        .chunks(BLOCK)
        .zip(after.chunks(BLOCK))
        .enumerate()
        .filter(|(_, (a, b))| a != b)
        .map(|(i, _)| i as u64)
        .collect()
}

/// The upgrade's writes (the superblock raised to today's version, and
/// whatever else the first open writes) may each be lost, land, or be torn
/// by a power cut. Every such crash state must open, read back everything,
/// and leave the store at today's version after that open.
#[test]
fn the_upgrade_survives_a_power_cut_at_any_point() {
    for name in ["v1-log", "v1-checkpoint"] {
        let expected = expected(name);
        let (_dir, path) = scratch(name);
        let bytes = materialize(name, &path);
        let before = std::fs::read(&path).unwrap();
        drop(open(&path, bytes).unwrap());
        let after = std::fs::read(&path).unwrap();
        let changed = changed_blocks(&before, &after);
        assert!(
            changed.contains(&0) || changed.contains(&1),
            "{name}: the upgrade writes a superblock copy"
        );
        // Each changed block old, new, or torn (its first half new: the
        // crash model tears at sector granularity). 3^n states; n is small.
        assert!(changed.len() <= 6, "{name}: {changed:?} changed at open");
        let states = 3usize.pow(changed.len() as u32);
        for state in 0..states {
            let mut image = before.clone();
            let mut choice = state;
            for &block in &changed {
                let range = block as usize * BLOCK..(block as usize + 1) * BLOCK;
                match choice % 3 {
                    0 => {}
                    1 => image[range.clone()].copy_from_slice(&after[range]),
                    _ => {
                        let half = range.start..range.start + BLOCK / 2;
                        image[half.clone()].copy_from_slice(&after[half]);
                    }
                }
                choice /= 3;
            }
            std::fs::write(&path, &image).unwrap();
            let engine = open(&path, bytes)
                .unwrap_or_else(|e| panic!("{name}: crash state {state} of {states}: {e}"));
            check_contents(name, &engine, &expected);
            drop(engine);
            assert_every_copy_current(name, &path);
        }
        println!("{name}: {states} crash states of the upgrade's {changed:?} blocks open");
    }
}

/// A superblock copy re-encoded as `version`, generation `generation`.
fn superblock_as(path: &Path, lba: u64, version: u32, generation: u64) {
    let mut sb = Superblock::decode(&read_block(path, lba)).unwrap();
    sb.version = version;
    sb.generation = generation;
    let mut block = vec![0u8; BLOCK];
    sb.encode(&mut block);
    write_block(path, lba, &block);
}

/// Today's engine meeting a store of a format after its own: a clear
/// refusal naming both versions, and not a byte written.
#[test]
fn a_newer_superblock_is_refused_and_left_alone() {
    let newer = FORMAT_VERSION + 1;
    // Both copies newer; and only the copy in force newer (an upgrade by a
    // newer build that wrote one copy), where the older copy must not be
    // used instead.
    for copies in [vec![0u64, 1], vec![1]] {
        let (_dir, path) = scratch("v2-log");
        let bytes = materialize("v2-log", &path);
        let top = superblock_in_force(&path).generation + 10;
        for &lba in &copies {
            superblock_as(&path, lba, newer, top + lba);
        }
        let before = std::fs::read(&path).unwrap();
        match open(&path, bytes) {
            Err(e @ OpenError::NewerVersion { found, supported }) => {
                assert_eq!((found, supported), (newer, FORMAT_VERSION));
                let message = e.to_string();
                assert!(message.contains("newer VeltrixDB"), "{message}");
            }
            Err(e) => panic!("copies {copies:?}: refused, but not as newer: {e}"),
            Ok(_) => panic!("copies {copies:?}: a newer format was opened"),
        }
        assert!(
            std::fs::read(&path).unwrap() == before,
            "a refused open wrote to the namespace"
        );
    }
}

/// The root slot holding the corpus checkpoint, and its root.
fn checkpoint_root(path: &Path) -> (u64, Root) {
    let seed = store_seed(&superblock_in_force(path).uuid);
    ROOT_LBAS
        .iter()
        .find_map(|&lba| {
            Root::decode(&read_block(path, lba), seed)
                .ok()
                .map(|r| (lba, r))
        })
        .expect("the corpus checkpoint's root")
}

fn write_root(path: &Path, lba: u64, root: &Root) {
    let seed = store_seed(&superblock_in_force(path).uuid);
    let mut block = vec![0u8; BLOCK];
    root.encode(&mut block, seed);
    write_block(path, lba, &block);
}

/// A checkpoint of a newer version is never loaded as one of ours. In one
/// slot it is passed over and the whole log replayed (safe: with one slot
/// written, GC has kept every record a full replay needs), which reads
/// every value back; in both slots the open is refused, naming the version.
#[test]
fn a_newer_checkpoint_is_never_misread() {
    let name = "v2-checkpoint";
    let expected = expected(name);
    let (_dir, path) = scratch(name);
    let bytes = materialize(name, &path);
    let (lba, mut root) = checkpoint_root(&path);
    root.version = engine::format::checkpoint::CHECKPOINT_VERSION + 1;
    write_root(&path, lba, &root);

    let engine = open(&path, bytes).unwrap();
    assert_eq!(engine.recovery_report().checkpoint, None, "not loaded");
    check_contents(name, &engine, &expected);
    drop(engine);

    let (_dir, path) = scratch(name);
    materialize(name, &path);
    let (lba, mut root) = checkpoint_root(&path);
    root.version = engine::format::checkpoint::CHECKPOINT_VERSION + 1;
    write_root(&path, lba, &root);
    root.generation += 1;
    let other = if lba == ROOT_LBAS[0] {
        ROOT_LBAS[1]
    } else {
        ROOT_LBAS[0]
    };
    write_root(&path, other, &root);
    match open(&path, bytes) {
        Err(OpenError::CheckpointCorrupt(why)) => {
            assert!(
                why.contains("newer"),
                "the refusal names the version: {why}"
            );
        }
        Err(e) => panic!("refused, but not for the checkpoints: {e}"),
        Ok(_) => panic!("two newer checkpoints were passed over"),
    }
}
