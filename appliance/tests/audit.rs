//! The audit log, from the outside: the real daemon records its start and
//! stop, the admin port's state-changing requests and the RESP logins;
//! `veltrix audit verify` passes on the log it wrote and names the entry
//! when one is edited, deleted, reordered or truncated; a tampered log is
//! kept aside at the next start, and a signing key others can read stops
//! the start.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is the failure report"
)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use appliance::auth::hash_password;
use common::{http, veltrix, Daemon};

fn verify(dir: &Path, public: Option<&str>) -> (bool, String) {
    let mut args = vec!["audit", "verify", "--dir", dir.to_str().unwrap()];
    if let Some(key) = public {
        args.extend(["--public-key", key]);
    }
    let out = veltrix(&args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn actions_are_recorded_and_tampering_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    let hash = hash_password(b"alice-pw").unwrap();
    std::fs::write(&users, format!("alice admin {hash}\n")).unwrap();
    let config = dir.path().join("veltrix.toml");
    std::fs::write(
        &config,
        format!("[auth]\nusers_file = \"{}\"\n", users.display()),
    )
    .unwrap();
    let data = dir.path().join("data");
    let audit = data.join("audit");
    let daemon = Daemon::start_with(&data, &["--config", config.to_str().unwrap()]);
    let mut c = daemon.client();
    assert!(matches!(
        c.call(&[b"AUTH", b"alice", b"wrong"]),
        appliance::resp::Reply::Error(_)
    ));
    assert_eq!(
        c.call(&[b"AUTH", b"alice", b"alice-pw"]),
        appliance::resp::Reply::Simple("OK".into())
    );
    let (status, _) = http(daemon.admin, "POST", "/api/gc");
    assert_eq!(status, 202);
    let metrics = common::http_get(daemon.admin, "/metrics");
    assert!(
        metrics.contains("\nveltrix_audit_last_seq 4\n"),
        "{metrics}"
    );
    assert!(daemon.sigterm().success());

    let public = std::fs::read_to_string(audit.join("signing.pub")).unwrap();
    let public = public.trim();
    let (ok, text) = verify(&audit, Some(public));
    assert!(ok, "{text}");
    assert!(text.contains("verifies: 5 entries"), "{text}");
    let out = veltrix(&["audit", "tail", "--dir", audit.to_str().unwrap()]);
    let tail = String::from_utf8_lossy(&out.stdout).to_string();
    let lines: Vec<&str> = tail.lines().collect();
    assert_eq!(lines.len(), 5, "{tail}");
    for (line, expected) in lines.iter().zip([
        "veltrixd  start  version",
        "user:alice  login  from 127.0.0.1: refused",
        "user:alice  login  from 127.0.0.1: accepted, role Admin",
        "anonymous  admin POST /api/gc  from 127.0.0.1: accepted",
        "veltrixd  stop  clean shutdown",
    ]) {
        assert!(line.contains(expected), "{line:?} lacks {expected:?}");
    }

    // Each kind of tampering, on a copy, names where trust ends.
    let log = std::fs::read_to_string(audit.join("audit.log")).unwrap();
    let entries: Vec<&str> = log.split_inclusive('\n').collect();
    let tampered = dir.path().join("tampered");
    std::fs::create_dir_all(&tampered).unwrap();
    let check = |text: String, expected: &str| {
        std::fs::write(tampered.join("audit.log"), text).unwrap();
        let (ok, out) = verify(&tampered, Some(public));
        assert!(!ok, "tampering not found ({expected}): {out}");
        assert!(out.contains(expected), "{out:?} lacks {expected:?}");
    };
    check(
        entries.concat().replacen("refused", "accepted", 1),
        "entry 2 (line 2): its hash does not match",
    );
    let mut deleted = entries.clone();
    deleted.remove(2);
    check(
        deleted.concat(),
        "line 3 holds entry 4 where entry 3 belongs",
    );
    let mut reordered = entries.clone();
    reordered.swap(3, 4);
    check(
        reordered.concat(),
        "line 4 holds entry 5 where entry 4 belongs",
    );
    let whole = entries.concat();
    check(
        whole[..whole.len() - 5].to_string(),
        "after entry 4 are an entry cut short",
    );
    // The right log with another log's key.
    std::fs::write(tampered.join("audit.log"), &whole).unwrap();
    let other = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    let (ok, out) = verify(&tampered, Some(other));
    assert!(
        !ok && out.contains("entry 1 (line 1): its signature does not verify"),
        "{out}"
    );

    // A tampered log at start: kept aside, a new log names it.
    std::fs::write(
        audit.join("audit.log"),
        entries.concat().replacen("gc", "GC", 1),
    )
    .unwrap();
    let daemon = Daemon::start(&data);
    assert!(daemon.sigterm().success());
    let aside: Vec<String> = std::fs::read_dir(&audit)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("audit.log.broken-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    let (ok, text) = verify(&audit, Some(public));
    assert!(ok, "{text}");
    let out = veltrix(&["audit", "tail", "--dir", audit.to_str().unwrap()]);
    let tail = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        tail.lines().next().unwrap().contains("audit log replaced")
            && tail.contains("entry 4 (line 4): its hash does not match"),
        "{tail}"
    );

    // A signing key others may read stops the start, naming it.
    let key = audit.join("signing.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_veltrixd"))
        .args([
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .args([
            "--native-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("signing.key is readable by others"), "{err}");
}
