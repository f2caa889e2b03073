// The part of the format corpus writer that every engine version it runs
// against compiles: it uses only the API the oldest format's engine has
// (format, open, put, delete, checkpoint). `scripts/format-corpus.sh`
// copies this file beside a version's `main.rs` into a worktree of that
// version's commit. Included with `include!`, so no `//!` and no `use` of
// anything the including file does not also have.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use engine::{format, Engine, EngineConfig, FormatOptions};
use nvme::{open, Backend, Namespace, OpenOptions};

/// Size of every corpus namespace (sparse while written).
const NAMESPACE_BYTES: u64 = 32 << 20;
const SEGMENT_BYTES: u64 = 1 << 20;
const BLOCK_BYTES: usize = 4096;
/// "VXCORP01": the container's magic (`engine/testdata/format-corpus/README.md`).
const CONTAINER_MAGIC: &[u8; 8] = b"VXCORP01";

/// The bytes of a corpus value: a function of its length and fill byte, so
/// that `expected.txt` names a value in two numbers.
fn corpus_value(len: usize, fill: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((u32::from(fill) + (i as u32).wrapping_mul(7)) % 251) as u8)
        .collect()
}

/// Writes what the corpus expects of a namespace, as it is written.
struct Expected {
    lines: std::collections::BTreeMap<Vec<u8>, String>,
}

impl Expected {
    fn new() -> Self {
        Expected {
            lines: std::collections::BTreeMap::new(),
        }
    }

    fn put(&mut self, engine: &Engine, key: &str, len: usize, fill: u8) {
        engine
            .put(key.as_bytes(), &corpus_value(len, fill))
            .expect("put");
        self.lines
            .insert(key.as_bytes().to_vec(), format!("put {key} {len} {fill}"));
    }

    fn delete(&mut self, engine: &Engine, key: &str) {
        assert!(engine.delete(key.as_bytes()).expect("delete"), "{key}");
        self.lines
            .insert(key.as_bytes().to_vec(), format!("absent {key}"));
    }

    /// Keys of many sizes over many shards (empty, small, a block, just over
    /// a block, several blocks), overwrites and deletes. Sizes are kept
    /// small so that the corpus stays small.
    fn write_base(&mut self, engine: &Engine) {
        for i in 0..64u32 {
            let len = match i % 8 {
                0 => 0,
                1 => 1,
                2 => 100,
                3 => 4096,
                4 => 4097,
                5 => 2000,
                6 => 33,
                _ => 700,
            };
            self.put(engine, &format!("key:{i}"), len, i as u8);
        }
        self.put(engine, "{user:1}.name", 3, 9);
        self.put(engine, "{user:1}.lang", 4, 10);
        self.put(engine, "big", 24 << 10, 77);
        for i in (0..64u32).step_by(5) {
            self.put(engine, &format!("key:{i}"), 50, 200);
        }
        for i in (0..64u32).step_by(7) {
            self.delete(engine, &format!("key:{i}"));
        }
    }

    /// Writes after a checkpoint: the log tail recovery replays over it.
    fn write_tail(&mut self, engine: &Engine) {
        for i in (1..64u32).step_by(11) {
            self.put(engine, &format!("key:{i}"), 64, 123);
        }
        self.delete(engine, "key:2");
        self.put(engine, "after-checkpoint", 10, 1);
    }

    fn text(&self, header: &str) -> String {
        let mut out = String::new();
        for line in header.lines() {
            let _ = writeln!(out, "# {line}");
        }
        for line in self.lines.values() {
            let _ = writeln!(out, "{line}");
        }
        out
    }
}

fn corpus_config() -> EngineConfig {
    EngineConfig {
        workers: 2,
        value_bytes_max: 256 << 10,
        // No checkpoint unless the writer asks for one (none at shutdown).
        checkpoint_records: 0,
        ..EngineConfig::default()
    }
}

fn fresh_namespace(path: &Path) -> Arc<dyn Namespace> {
    let _ = std::fs::remove_file(path);
    let options = OpenOptions {
        backend: Backend::Sync,
        create_bytes: Some(NAMESPACE_BYTES),
        ..OpenOptions::default()
    };
    let namespace = open(path, &options).expect("create the namespace file");
    let mut format_options = FormatOptions::new([0x5a; 16]);
    format_options.segment_bytes = SEGMENT_BYTES;
    format(namespace.as_ref(), &format_options).expect("format");
    namespace
}

/// Packs a namespace file into the corpus container: every block that is
/// not all zero, without its trailing zero bytes, then a crc32c of all of it.
fn pack(namespace_path: &Path) -> Vec<u8> {
    let image = std::fs::read(namespace_path).expect("read the namespace file");
    assert_eq!(image.len() as u64, NAMESPACE_BYTES);
    let mut entries = Vec::new();
    for (index, block) in image.chunks(BLOCK_BYTES).enumerate() {
        let used = block.iter().rposition(|&b| b != 0).map_or(0, |at| at + 1);
        if used > 0 {
            entries.push((index as u64, &block[..used]));
        }
    }
    let mut out = Vec::new();
    out.extend_from_slice(CONTAINER_MAGIC);
    out.extend_from_slice(&NAMESPACE_BYTES.to_le_bytes());
    out.extend_from_slice(&(BLOCK_BYTES as u32).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for (index, bytes) in entries {
        out.extend_from_slice(&index.to_le_bytes());
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(bytes);
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Writes `DIR/NAME/namespace.vxc` and `DIR/NAME/expected.txt`.
fn save(dir: &Path, name: &str, namespace_path: &Path, expected: &Expected, header: &str) {
    let target = dir.join(name);
    std::fs::create_dir_all(&target).expect("create the corpus directory");
    let packed = pack(namespace_path);
    std::fs::write(target.join("namespace.vxc"), &packed).expect("write namespace.vxc");
    let mut file = std::fs::File::create(target.join("expected.txt")).expect("expected.txt");
    file.write_all(expected.text(header).as_bytes())
        .expect("write expected.txt");
    println!("{}: {} bytes packed", target.display(), packed.len());
}

/// The corpus directory (first argument) and a scratch file for namespaces.
fn corpus_args() -> (PathBuf, PathBuf) {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().expect("usage: CORPUS_DIR SCRATCH_DIR"));
    let scratch = PathBuf::from(args.next().expect("usage: CORPUS_DIR SCRATCH_DIR"));
    std::fs::create_dir_all(&scratch).expect("create the scratch directory");
    (dir, scratch.join("namespace.img"))
}
