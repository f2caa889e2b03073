//! Writes the format corpus's version 1 namespaces (superblock, checkpoint
//! and records of format version 1). It only runs against the engine of a
//! commit that wrote version 1: `scripts/format-corpus.sh` copies it, with
//! `common.rs`, into a worktree of such a commit as
//! `engine/examples/format_corpus_v1/main.rs`. It is not built here.

include!("common.rs");

/// `--open PATH...`: the old engine opens each namespace file and says
/// whether it refused; exits 1 if any opened (a newer format must be
/// refused by this engine, never read).
fn open_each(paths: &[String]) -> ! {
    let mut opened = 0;
    for path in paths {
        let options = OpenOptions {
            backend: Backend::Sync,
            ..OpenOptions::default()
        };
        let namespace = open(Path::new(path), &options).expect("open the namespace file");
        match Engine::open(namespace, &corpus_config()) {
            Ok(_) => {
                println!("{path}: OPENED by the version 1 engine");
                opened += 1;
            }
            Err(e) => println!("{path}: refused by the version 1 engine: {e}"),
        }
    }
    std::process::exit(i32::from(opened > 0));
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--open") {
        open_each(&args[1..]);
    }
    let (dir, namespace_path) = corpus_args();
    let commit = std::env::var("CORPUS_COMMIT").unwrap_or_else(|_| "unknown".into());
    let header = format!(
        "written by the engine at commit {commit}: superblock version 1, records version 1"
    );

    let mut expected = Expected::new();
    let engine = Engine::open(fresh_namespace(&namespace_path), &corpus_config()).expect("open");
    expected.write_base(&engine);
    drop(engine);
    save(&dir, "v1-log", &namespace_path, &expected, &header);

    let mut expected = Expected::new();
    let engine = Engine::open(fresh_namespace(&namespace_path), &corpus_config()).expect("open");
    expected.write_base(&engine);
    engine.checkpoint().expect("checkpoint");
    expected.write_tail(&engine);
    drop(engine);
    let header = format!("{header}, checkpoint version 1 and a log tail after it");
    save(&dir, "v1-checkpoint", &namespace_path, &expected, &header);
}
