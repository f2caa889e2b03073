//! The built `veltrix` binary against a real daemon and on offline files.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is the failure report"
)]

mod common;

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Output;

use appliance::resp::Reply;
use common::{bulk, veltrix, Daemon};

/// Runs veltrix against `daemon`'s ports.
fn online(daemon: &Daemon, args: &[&str]) -> Output {
    let admin = format!("127.0.0.1:{}", daemon.admin);
    let native = format!("127.0.0.1:{}", daemon.native);
    let resp = format!("127.0.0.1:{}", daemon.port);
    let mut all = vec!["--admin", &admin, "--native", &native, "--resp", &resp];
    all.extend_from_slice(args);
    veltrix(&all)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn put_get_del_status_and_shards_against_a_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());
    let o = online(&daemon, &["put", "greeting", "hello"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = online(&daemon, &["get", "greeting"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(o.stdout, b"hello", "the value, as is, when not a terminal");
    // The same key over RESP.
    assert_eq!(daemon.client().call(&[b"GET", b"greeting"]), bulk(b"hello"));
    // A value from a file, binary.
    let file = dir.path().join("value.bin");
    std::fs::write(&file, [0u8, 1, 2, 255]).unwrap();
    let o = online(&daemon, &["put", "bin", "--file", file.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(online(&daemon, &["get", "bin"]).stdout, [0u8, 1, 2, 255]);

    let o = online(&daemon, &["del", "greeting"]);
    assert_eq!(stdout(&o).trim(), "deleted");
    let o = online(&daemon, &["get", "greeting"]);
    assert_eq!(o.status.code(), Some(1), "a missing key exits 1");
    assert!(stderr(&o).contains("not found"), "{}", stderr(&o));
    assert_eq!(
        daemon.client().call(&[b"GET", b"greeting"]),
        Reply::Bulk(None)
    );

    let o = online(&daemon, &["status"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let status = stdout(&o);
    assert!(status.contains("\"ready\":true"), "{status}");
    assert!(status.contains("\"workers\":2"), "{status}");
    assert!(status.contains("\"keys\":1"), "{status}");

    let o = online(&daemon, &["shards", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let json = stdout(&o);
    assert!(
        json.starts_with("{\"shard_count\":1024,\"workers\":2"),
        "{json}"
    );
    assert_eq!(json.matches("{\"shard\":").count(), 1024);
    assert!(json.contains("{\"shard\":1023,\"worker\":1,"), "{json}");
    assert!(json.contains("\"shards_per_worker\":[512,512]"), "{json}");
    let o = online(&daemon, &["shards"]);
    assert!(
        stdout(&o).contains("worker 1: 512 shards"),
        "{}",
        stdout(&o)
    );

    // The one key left ("bin") is counted in its shard.
    let bin_shard = engine::shard::shard(b"bin");
    assert!(
        json.contains(&format!(
            "{{\"shard\":{bin_shard},\"worker\":{},\"keys\":1}}",
            bin_shard % 2
        )),
        "{json}"
    );
    assert_eq!(json.matches("\"keys\":1}").count(), 1, "{json}");

    // GC starts a storm and prints the daemon's answer.
    let o = online(&daemon, &["gc"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("\"started\":true"), "{}", stdout(&o));
}

#[test]
fn an_unreachable_daemon_is_named() {
    let (_reserved, port) = common::refusing_port();
    let addr = format!("127.0.0.1:{port}");
    let o = veltrix(&["--native", &addr, "get", "k"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains(&addr), "{}", stderr(&o));
    let o = veltrix(&["--admin", &addr, "status"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(&format!("admin port at http://{addr}")),
        "{}",
        stderr(&o)
    );
}

#[test]
fn nvme_bind_refuses_what_is_not_an_nvme_controller() {
    // Nothing here binds anything: every case is refused before sysfs is
    // written. Binding itself is exercised in the guest
    // (scripts/vfio-guest-check.sh, the hwtests vfio-conformance scenario).
    let o = veltrix(&["nvme", "list"]);
    if Path::new("/sys/bus/pci/devices").is_dir() {
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(!stdout(&o).is_empty());
    } else {
        // A container without the PCI bus in sysfs: a clear error.
        assert_eq!(o.status.code(), Some(1));
        assert!(
            stderr(&o).contains("cannot list PCI devices"),
            "{}",
            stderr(&o)
        );
    }

    for bad in [
        "../../../../tmp/x",
        "0000:00:03",
        "00:03.0",
        "0000:00:03.0/ns1",
    ] {
        let o = veltrix(&["nvme", "bind", bad, "--driver", "vfio-pci"]);
        assert_eq!(o.status.code(), Some(2), "{bad}");
        assert!(
            stderr(&o).contains("is not a PCI address"),
            "{}",
            stderr(&o)
        );
    }
    let o = veltrix(&["nvme", "bind", "0000:00:03.0", "--driver", "ahci"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));

    let absent = (0..=0xffu32)
        .map(|bus| format!("0000:{bus:02x}:1f.7"))
        .find(|bdf| !Path::new("/sys/bus/pci/devices").join(bdf).exists())
        .unwrap();
    let o = veltrix(&["nvme", "bind", &absent, "--driver", "vfio-pci"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no such PCI device"), "{}", stderr(&o));

    // A PCI device that is not an NVMe controller (a host bridge, a NIC)
    // must never be unbound from its driver.
    let other = std::fs::read_dir("/sys/bus/pci/devices")
        .into_iter()
        .flatten()
        .flatten()
        .find(|d| {
            std::fs::read_to_string(d.path().join("class")).is_ok_and(|c| c.trim() != "0x010802")
        });
    match other {
        Some(device) => {
            let bdf = device.file_name().to_string_lossy().into_owned();
            let driver_before = std::fs::read_link(device.path().join("driver")).ok();
            let o = veltrix(&["nvme", "bind", &bdf, "--driver", "vfio-pci"]);
            assert_eq!(o.status.code(), Some(1));
            assert!(
                stderr(&o).contains("is not an NVMe controller"),
                "{}",
                stderr(&o)
            );
            assert_eq!(
                std::fs::read_link(device.path().join("driver")).ok(),
                driver_before
            );
        }
        // The CI machine (a KVM guest) always has virtio PCI devices.
        None => common::skipped("no non-NVMe PCI device in /sys/bus/pci/devices to try binding"),
    }
}

#[test]
fn format_refuses_a_store_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ns.img");
    let p = path.to_str().unwrap();
    let o = veltrix(&["format", p]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));
    let o = veltrix(&["format", p, "--size", "64MiB", "--segment-size", "1MiB"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("formatted"), "{}", stdout(&o));
    let o = veltrix(&["format", p]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("already holds a VeltrixDB store") && stderr(&o).contains("--force"),
        "{}",
        stderr(&o)
    );
    let o = veltrix(&["format", p, "--force", "--segment-size", "1MiB"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// Writes through a real daemon on `dir`, then stops it.
fn written_store(dir: &Path) -> std::path::PathBuf {
    let daemon = Daemon::start(dir);
    let mut c = daemon.client();
    assert_eq!(
        c.call(&[b"SET", b"victim", &[0x11; 3000]]),
        Reply::Simple("OK".into())
    );
    for i in 0..100u32 {
        assert_eq!(
            c.call(&[b"SET", format!("key{i}").as_bytes(), b"value"]),
            Reply::Simple("OK".into())
        );
    }
    drop(c);
    assert!(daemon.sigterm().success());
    dir.join("namespace-0.veltrix")
}

#[test]
fn inspect_passes_a_clean_store_and_locates_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let path = written_store(dir.path());
    let p = path.to_str().unwrap();
    let o = veltrix(&["inspect", p]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    assert!(out.contains("superblocks:  2 of 2 valid"), "{out}");
    assert!(out.contains("live keys:    101"), "{out}");
    assert!(out.contains("problems:     none"), "{out}");

    // Flip a byte inside the victim's value.
    let bytes = std::fs::read(&path).unwrap();
    let key_at = bytes.windows(6).position(|w| w == b"victim").unwrap() as u64;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, key_at + 500).unwrap();
    file.write_all_at(&[byte[0] ^ 0x01], key_at + 500).unwrap();
    drop(file);
    let record_at = key_at - 24;
    let (segment_bytes, lba_bytes) = (8u64 << 20, 4096u64);
    let o = veltrix(&["inspect", p]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(2), "{out}{}", stderr(&o));
    let expected = format!(
        "CORRUPT record at segment {} offset {} (LBA {}",
        record_at / segment_bytes,
        record_at % segment_bytes,
        record_at / lba_bytes
    );
    assert!(out.contains(&expected), "want `{expected}` in:\n{out}");
    assert!(out.contains("result:       CORRUPT"), "{out}");
}

#[test]
fn bench_runs_a_short_load_and_prints_a_histogram() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());
    for protocol in ["native", "resp"] {
        let o = online(
            &daemon,
            &[
                "bench",
                "--protocol",
                protocol,
                "--clients",
                "2",
                "--requests",
                "400",
                "--pipeline",
                "4",
                "--keys",
                "50",
                "--value-bytes",
                "64",
            ],
        );
        let out = stdout(&o);
        assert!(o.status.success(), "{out}{}", stderr(&o));
        assert!(out.starts_with("400 requests in "), "{out}");
        assert!(out.contains(" 0 errors"), "{out}");
        assert!(out.contains("p50 ") && out.contains("p999 "), "{out}");
        assert!(out.contains("latency histogram"), "{out}");
        assert!(out.contains(" us "), "a histogram row: {out}");
    }
    // Keys the bench wrote are real.
    assert!(matches!(
        daemon.client().call(&[b"DBSIZE"]),
        Reply::Integer(n) if n > 0
    ));
}

#[test]
fn checkpoint_is_taken_on_request_and_a_restart_starts_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());
    let mut client = daemon.client();
    for i in 0..200u32 {
        let key = format!("ck:{i}");
        let reply = client.call(&[b"SET", key.as_bytes(), format!("v{i}").as_bytes()]);
        assert_eq!(reply, Reply::Simple("OK".into()));
    }
    let o = online(&daemon, &["checkpoint"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("checkpoint durable"), "{}", stdout(&o));
    // One more write after the checkpoint, then a crash: the restart loads
    // the checkpoint and replays that write on top.
    let reply = client.call(&[b"SET", b"ck:0", b"after"]);
    assert_eq!(reply, Reply::Simple("OK".into()));
    drop(client);
    daemon.kill9();
    let daemon = Daemon::start(dir.path());
    let status = common::http_get(daemon.admin, "/api/checkpoint");
    assert!(status.contains("\"recovered_from\":1"), "{status}");
    let metrics = common::http_get(daemon.admin, "/metrics");
    assert!(
        metrics.contains("veltrix_recovery_checkpoint 1"),
        "{metrics}"
    );
    let mut client = daemon.client();
    assert_eq!(client.call(&[b"GET", b"ck:0"]), bulk(b"after"));
    assert_eq!(client.call(&[b"GET", b"ck:199"]), bulk(b"v199"));
}

#[test]
fn help_shows_an_example_for_every_command() {
    let o = veltrix(&["--help"]);
    assert!(stdout(&o).contains("Examples:"), "{}", stdout(&o));
    for command in [
        "status",
        "shards",
        "get",
        "put",
        "del",
        "gc",
        "checkpoint",
        "format",
        "inspect",
        "nvme",
        "bench",
    ] {
        let o = veltrix(&[command, "--help"]);
        let out = stdout(&o);
        assert!(o.status.success(), "{command}: {}", stderr(&o));
        assert!(
            out.contains("Example") && out.contains(&format!("veltrix {command}")),
            "`veltrix {command} --help` has no example:\n{out}"
        );
    }
}

/// A test that skips fails under CI=true (where `.ci/run` provides what
/// the tests need), and only says so elsewhere.
#[test]
fn a_skip_fails_under_ci() {
    common::skip_or_fail(false, "the check itself, outside CI");
    let under_ci = std::panic::catch_unwind(|| common::skip_or_fail(true, "the check itself"));
    assert!(under_ci.is_err(), "a skip passed under CI=true");
}
