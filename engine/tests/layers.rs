//! The engine's modules import only downwards (ARCHITECTURE.md, "Layers"):
//! format and the other leaves → log → store → recovery, checkpoint,
//! worker, inspect → open → runtime. This test reads the sources and fails
//! on an import that goes up a layer, or on any cycle between modules.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is the failure report"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each top-level module of `engine/src` and its layer.
const LAYERS: &[(&str, u8)] = &[
    ("error", 0),
    ("config", 0),
    ("stats", 0),
    ("shard", 0),
    ("index", 0),
    ("cache", 0),
    ("format", 0),
    ("blocking", 0),
    ("layout", 0),
    ("modify", 0),
    ("log", 1),
    ("store", 2),
    ("recovery", 3),
    ("checkpoint", 3),
    ("worker", 3),
    ("inspect", 3),
    ("open", 4),
    ("runtime", 5),
];

/// Names `lib.rs` re-exports at the crate root, and the module they live in.
const ROOT_NAMES: &[(&str, &str)] = &[
    ("Checkpointer", "checkpoint"),
    ("EngineConfig", "config"),
    ("FormatOptions", "config"),
    ("Layout", "layout"),
    ("OpenError", "error"),
    ("EngineError", "error"),
    ("Modify", "modify"),
    ("ModifyError", "modify"),
    ("Location", "error"),
    ("WorkerCore", "worker"),
    ("RecoveryReport", "open"),
    ("Opened", "open"),
    ("open_workers", "open"),
    ("Space", "store"),
    ("Damage", "recovery"),
    ("Engine", "runtime"),
];

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The crate-level names a source file imports (`crate::x`, `crate::{x, y}`),
/// outside its tests.
fn imported(text: &str) -> BTreeSet<String> {
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap();
            for item in group[..end].split(',') {
                let name = item.trim().split("::").next().unwrap_or_default();
                if !name.is_empty() {
                    names.insert(name.to_string());
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            names.insert(name);
        }
    }
    names
}

#[test]
fn engine_modules_import_only_downwards_and_without_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let layer: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
    let root: BTreeMap<&str, &str> = ROOT_NAMES.iter().copied().collect();
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(&src).unwrap();
        let first = relative.components().next().unwrap();
        let module = first
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if module == "lib" {
            continue;
        }
        assert!(
            layer.contains_key(module.as_str()),
            "module {module} has no layer: add it to LAYERS (and to ARCHITECTURE.md)"
        );
        let text = std::fs::read_to_string(&file).unwrap();
        for name in imported(&text) {
            let target = root.get(name.as_str()).copied().unwrap_or(name.as_str());
            if target != module && layer.contains_key(target) {
                deps.entry(module.clone())
                    .or_default()
                    .insert(target.to_string());
            }
        }
    }
    let mut upward = Vec::new();
    for (module, targets) in &deps {
        for target in targets {
            if layer[target.as_str()] > layer[module.as_str()] {
                upward.push(format!("{module} imports {target}, a layer above it"));
            }
        }
    }
    assert!(upward.is_empty(), "{}", upward.join("\n"));
    // No cycles, even within a layer.
    fn visit(
        module: &str,
        deps: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if let Some(at) = path.iter().position(|m| m == module) {
            panic!("import cycle: {} -> {module}", path[at..].join(" -> "));
        }
        if !done.insert(module.to_string()) {
            return;
        }
        path.push(module.to_string());
        for next in deps.get(module).into_iter().flatten() {
            visit(next, deps, path, done);
        }
        path.pop();
    }
    for module in deps.keys() {
        visit(module, &deps, &mut Vec::new(), &mut BTreeSet::new());
    }
    assert!(deps.len() >= 10, "the scan found too few modules: {deps:?}");
}

#[test]
fn the_scan_sees_grouped_and_plain_imports() {
    let names = imported("use crate::a::B;\nuse crate::{c, d::E};\nfn f() { crate::g::h(); }");
    let expected: BTreeSet<String> = ["a", "c", "d", "g"].iter().map(|s| s.to_string()).collect();
    assert_eq!(names, expected);
}
