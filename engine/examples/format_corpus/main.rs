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

fn main() {
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
