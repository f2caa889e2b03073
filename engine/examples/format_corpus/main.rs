//! Writes the format corpus's namespaces of today's format (superblock,
//! checkpoint and records of format version 2, with key deadlines):
//! `engine/testdata/format-corpus/v2-*`. Run by `scripts/format-corpus.sh`,
//! which also writes the older versions with older engines (`v1.rs`).

include!("common.rs");

/// 2100-01-01T00:00:00Z: a deadline the corpus test never reaches.
const FAR_DEADLINE_MS: u64 = 4_102_444_800_000;

/// Keys with deadlines, which version 2 added (a record flag and a
/// checkpoint key-length bit).
fn write_deadlines(engine: &Engine, expected: &mut Expected, prefix: &str) {
    for i in 0..12u32 {
        let key = format!("{prefix}:{i}");
        let len = [10usize, 3000, 300][i as usize % 3];
        let deadline = FAR_DEADLINE_MS + u64::from(i);
        engine
            .put_until(key.as_bytes(), &corpus_value(len, i as u8), deadline)
            .expect("put_until");
        expected.lines.insert(
            key.as_bytes().to_vec(),
            format!("put {key} {len} {i} {deadline}"),
        );
    }
}

/// `--materialize CONTAINER OUT [--open]`: unpacks a corpus namespace into
/// a sparse file, and with `--open` opens it once with today's engine (which
/// raises an older format): what the version check in
/// `scripts/format-corpus.sh` hands to the old engine.
fn materialize(args: &[String]) {
    let packed = std::fs::read(&args[0]).expect("read the container");
    let body = &packed[..packed.len() - 4];
    assert_eq!(
        crc32c::crc32c(body).to_le_bytes(),
        packed[packed.len() - 4..],
        "container crc"
    );
    assert_eq!(&body[..8], CONTAINER_MAGIC);
    let u64_at = |at: usize| u64::from_le_bytes(body[at..at + 8].try_into().expect("8 bytes"));
    let u32_at = |at: usize| u32::from_le_bytes(body[at..at + 4].try_into().expect("4 bytes"));
    let (bytes, block, count) = (u64_at(8), u64::from(u32_at(16)), u32_at(20));
    let out = Path::new(&args[1]);
    let file = std::fs::File::create(out).expect("create the namespace file");
    file.set_len(bytes).expect("size the namespace file");
    let mut at = 24;
    for _ in 0..count {
        let (index, len) = (u64_at(at), u32_at(at + 8) as usize);
        std::os::unix::fs::FileExt::write_all_at(
            &file,
            &body[at + 12..at + 12 + len],
            index * block,
        )
        .expect("write a block");
        at += 12 + len;
    }
    drop(file);
    if args.get(2).map(String::as_str) == Some("--open") {
        let options = OpenOptions {
            backend: Backend::Sync,
            ..OpenOptions::default()
        };
        let namespace = open(out, &options).expect("open the namespace file");
        drop(Engine::open(namespace, &corpus_config()).expect("today's engine opens it"));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--materialize") {
        materialize(&args[1..]);
        return;
    }
    let (dir, namespace_path) = corpus_args();
    let commit = std::env::var("CORPUS_COMMIT").unwrap_or_else(|_| "unknown".into());
    let header = format!(
        "written by the engine at commit {commit}: superblock version 2, records version 2 (deadlines)"
    );

    let mut expected = Expected::new();
    let engine = Engine::open(fresh_namespace(&namespace_path), &corpus_config()).expect("open");
    expected.write_base(&engine);
    write_deadlines(&engine, &mut expected, "expiring");
    drop(engine);
    save(&dir, "v2-log", &namespace_path, &expected, &header);

    let mut expected = Expected::new();
    let engine = Engine::open(fresh_namespace(&namespace_path), &corpus_config()).expect("open");
    expected.write_base(&engine);
    write_deadlines(&engine, &mut expected, "expiring");
    engine.checkpoint().expect("checkpoint");
    expected.write_tail(&engine);
    write_deadlines(&engine, &mut expected, "expiring-after");
    drop(engine);
    let header = format!("{header}, checkpoint version 2 and a log tail after it");
    save(&dir, "v2-checkpoint", &namespace_path, &expected, &header);
}
