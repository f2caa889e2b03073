//! TLS on the data ports, against the real daemon with certificates made
//! at test time: a start that cannot honour `[tls]` fails (never plain
//! text), redis-cli and rustls clients work over TLS and mutual TLS, and
//! each kind of refused client is refused while others are served.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is the failure report"
)]

mod client;
#[path = "../common/mod.rs"]
mod common;
mod pki;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use appliance::resp::Reply;
use common::{http_get, tool, veltrix, Daemon};
use pki::{Identity, Pki};
use veltrix_client::protocol::{Request, Status};

fn pong() -> Reply {
    Reply::Simple("PONG".into())
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A `[tls]` section with the server's certificate and the test CA.
fn tls_section(pki: &Pki, extra: &str) -> String {
    format!(
        "[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\nclient_ca_file = \"{}\"\n{extra}",
        path(&pki.server.cert),
        path(&pki.server.key),
        path(&pki.ca),
    )
}

/// Runs veltrixd on `config` and expects it to refuse to start: it must
/// exit with a failure within 20 s, without its ready line. Returns stderr.
fn start_refused(dir: &Path, config: &str) -> String {
    let file = dir.join("veltrix.toml");
    std::fs::write(&file, config).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_veltrixd"))
        .args([
            "--config",
            path(&file),
            "--data-dir",
            path(&dir.join("data")),
        ])
        .args(["--listen", "127.0.0.1:0", "--native-listen", "127.0.0.1:0"])
        .args(["--admin-listen", "127.0.0.1:0", "--namespace-size", "64MiB"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("veltrixd started (or hung) with a [tls] it cannot honour:\n{config}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!status.success(), "exit {status} for\n{config}");
    assert!(!stdout.contains("ready"), "{stdout}");
    stderr
}

#[test]
fn a_tls_setting_that_cannot_be_honoured_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let missing = dir.path().join("no-such.pem");
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "hello\n").unwrap();
    let server = (path(&pki.server.cert), path(&pki.server.key));
    let cases = [
        // The example in docs/config.md, on files that do not exist.
        (
            format!(
                "[tls]\nenabled = true\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
                path(&missing),
                server.1
            ),
            format!("[tls] cert_file = \"{}\": cannot read", path(&missing)),
        ),
        (
            format!(
                "[tls]\nenabled = true\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
                server.0,
                path(&missing)
            ),
            format!("[tls] key_file = \"{}\": cannot read", path(&missing)),
        ),
        // A key that is not the certificate's.
        (
            format!(
                "[tls]\nresp = \"tls\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
                server.0,
                path(&pki.client.key)
            ),
            format!(
                "[tls] key_file = \"{}\" cannot serve cert_file = \"{}\"",
                path(&pki.client.key),
                server.0
            ),
        ),
        // A certificate where the key should be.
        (
            format!(
                "[tls]\nadmin = \"tls\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
                server.0, server.0
            ),
            format!("[tls] key_file = \"{}\": no PEM private key", server.0),
        ),
        (
            format!(
                "[tls]\nnative = \"mtls\"\ncert_file = \"{}\"\nkey_file = \"{}\"\nclient_ca_file = \"{}\"\n",
                server.0,
                server.1,
                path(&not_pem)
            ),
            format!(
                "[tls] client_ca_file = \"{}\": holds no PEM certificate",
                path(&not_pem)
            ),
        ),
        (
            tls_section(
                &pki,
                &format!(
                    "resp = \"mtls\"\nclient_crl_file = \"{}\"\n",
                    path(&not_pem)
                ),
            ),
            format!(
                "[tls] client_crl_file = \"{}\": holds no PEM revocation list",
                path(&not_pem)
            ),
        ),
        // Refused by the parser, before any file is read.
        (
            tls_section(&pki, "resp = \"on\"\n"),
            "key `resp` in [tls]: invalid value".to_string(),
        ),
        (
            format!("[tls]\nresp = \"mtls\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n", server.0, server.1),
            "key `client_ca_file` in [tls]: missing".to_string(),
        ),
    ];
    for (config, expected) in cases {
        let stderr = start_refused(dir.path(), &config);
        assert!(
            stderr.contains(&expected),
            "expected {expected:?} in stderr:\n{stderr}\nfor:\n{config}"
        );
    }
}

/// RESP on mutual TLS (with the CRL), native on TLS, admin plain.
fn start_tls_daemon(dir: &Path, pki: &Pki) -> Daemon {
    let config = tls_section(
        pki,
        &format!(
            "client_crl_file = \"{}\"\nresp = \"mtls\"\nnative = \"tls\"\nadmin = \"off\"\n",
            path(&pki.crl)
        ),
    );
    let file = dir.join("veltrix.toml");
    std::fs::write(&file, config).unwrap();
    Daemon::start_with(&dir.join("data"), &["--config", path(&file)])
}

#[test]
fn redis_cli_sets_and_gets_over_mutual_tls() {
    if !tool("redis-cli") {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "redis-cli is missing under CI=true: .ci/run installs it (redis-tools)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let daemon = start_tls_daemon(dir.path(), &pki);
    let redis_cli = |identity: Option<&Identity>, args: &[&str]| {
        let mut command = Command::new("redis-cli");
        command
            .args(["--tls", "--cacert", path(&pki.ca), "-h", "127.0.0.1"])
            .args(["-p", &daemon.port.to_string()]);
        if let Some(id) = identity {
            command.args(["--cert", path(&id.cert), "--key", path(&id.key)]);
        }
        let output = command.args(args).output().unwrap();
        let text = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        text.trim().to_string()
    };
    let client = Some(&pki.client);
    assert_eq!(redis_cli(client, &["SET", "greeting", "over tls"]), "OK");
    assert_eq!(redis_cli(client, &["GET", "greeting"]), "over tls");
    // Without a client certificate redis-cli gets no answer.
    let refused = redis_cli(None, &["GET", "greeting"]);
    assert!(!refused.contains("over tls"), "{refused}");
    // Plain redis-cli on the TLS port gets nothing either.
    let output = Command::new("redis-cli")
        .args(["-p", &daemon.port.to_string(), "GET", "greeting"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&output.stdout).contains("over tls"));
    assert_eq!(redis_cli(client, &["GET", "greeting"]), "over tls");
}

/// Whether python3 can import redis-py; says loudly when not.
fn redis_py() -> bool {
    let found = Command::new("python3")
        .args(["-c", "import redis"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        common::skipped("python3 with redis-py is not installed (.ci/run installs python3-redis)");
    }
    found
}

/// redis-py with `ssl=True` and a client certificate.
#[test]
fn redis_py_sets_and_gets_over_mutual_tls() {
    if !redis_py() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let daemon = start_tls_daemon(dir.path(), &pki);
    let script = "import sys, redis\n\
        r = redis.Redis(host='127.0.0.1', port=int(sys.argv[1]), ssl=True,\n\
        \x20   ssl_ca_certs=sys.argv[2], ssl_certfile=sys.argv[3], ssl_keyfile=sys.argv[4])\n\
        r.set('py', 'over tls')\n\
        print(r.get('py').decode())\n";
    let output = Command::new("python3")
        .args(["-c", script, &daemon.port.to_string(), path(&pki.ca)])
        .args([path(&pki.client.cert), path(&pki.client.key)])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "over tls",
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Without the client certificate: refused.
    let output = Command::new("python3")
        .args(["-c", "import sys, redis\n\
            r = redis.Redis(host='127.0.0.1', port=int(sys.argv[1]), ssl=True, ssl_ca_certs=sys.argv[2])\n\
            print(r.get('py'))\n"])
        .args([&daemon.port.to_string(), path(&pki.ca)])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains("redis.exceptions.ConnectionError"),
        "not refused as a connection error: {output:?}"
    );
}

/// veltrix-client over TLS (no client certificate: the native port is
/// `tls`), through `Client::over` a rustls stream.
#[test]
fn veltrix_client_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let daemon = start_tls_daemon(dir.path(), &pki);
    let config = client::config(&pki.ca, None);
    let stream = client::connect(daemon.native, &config);
    let mut native = veltrix_client::Client::over(stream, "native TLS port").unwrap();
    native.put(b"k", b"over tls").unwrap();
    assert_eq!(native.get(b"k").unwrap(), Some(b"over tls".to_vec()));
    let responses = native
        .pipeline(&[
            Request::Put(b"a".to_vec(), b"1".to_vec()),
            Request::Get(b"a".to_vec()),
        ])
        .unwrap();
    assert_eq!(responses[1].status, Status::Ok);
    assert_eq!(responses[1].body, b"1");
    // The operator CLI, with --cacert (the port asks no client certificate).
    let native_flag = format!("127.0.0.1:{}", daemon.native);
    let tls_flags = ["--native", native_flag.as_str(), "--cacert", path(&pki.ca)];
    let put = veltrix(&[&tls_flags[..], &["put", "cli-key", "cli-value"]].concat());
    assert!(put.status.success(), "{put:?}");
    let get = veltrix(&[&tls_flags[..], &["get", "cli-key"]].concat());
    assert_eq!(String::from_utf8_lossy(&get.stdout), "cli-value");
    // Without --cacert the CLI speaks plain text: refused.
    let plain = veltrix(&["--native", native_flag.as_str(), "get", "cli-key"]);
    assert!(!plain.status.success(), "{plain:?}");
    // The same client code, plain, on the TLS port: refused, not served.
    let plain = veltrix_client::Client::connect(("127.0.0.1", daemon.native));
    assert!(plain.is_err(), "a plain hello was answered on a TLS port");
}

/// Waits (up to 10 s) for `veltrix_tls_refused_total` to reach `count`:
/// the server sends its alert before it counts the refusal, so a client
/// can see the refusal first. Returns the last value read.
fn tls_refused_reaches(daemon: &Daemon, count: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = tls_refused(daemon);
        if now >= count || Instant::now() > deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The `veltrix_tls_refused_total` counter from the admin port.
fn tls_refused(daemon: &Daemon) -> u64 {
    let metrics = http_get(daemon.admin, "/metrics");
    let line = metrics
        .lines()
        .find(|l| l.starts_with("veltrix_tls_refused_total "))
        .unwrap_or_else(|| panic!("no veltrix_tls_refused_total in\n{metrics}"));
    line.rsplit(' ').next().unwrap().trim().parse().unwrap()
}

/// Plain text on a TLS port: no reply but an alert, then the close.
fn plain_text_is_refused(port: u16, bytes: &[u8]) {
    let mut socket = TcpStream::connect(("127.0.0.1", port)).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    socket.write_all(bytes).unwrap();
    let mut answer = Vec::new();
    // Ends at the server's close; a timeout would fail the unwrap.
    let _ = socket.read_to_end(&mut answer);
    assert!(
        answer.is_empty() || answer[0] == 0x15,
        "expected nothing or a TLS alert record, got {answer:?}"
    );
}

#[test]
fn refused_clients_leave_others_served() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let daemon = start_tls_daemon(dir.path(), &pki);
    let good = client::config(&pki.ca, Some(&pki.client));
    let mut kept = client::connect(daemon.port, &good);
    assert_eq!(client::call(&mut kept, &[b"PING"]).unwrap(), pong());
    assert_eq!(tls_refused(&daemon), 0);

    let bad = [
        ("no client certificate", client::config(&pki.ca, None)),
        (
            "an untrusted CA",
            client::config(&pki.ca, Some(&pki.untrusted)),
        ),
        (
            "an expired certificate",
            client::config(&pki.ca, Some(&pki.expired)),
        ),
        (
            "a certificate without client-auth usage",
            client::config(&pki.ca, Some(&pki.server_usage_only)),
        ),
        (
            "a revoked certificate",
            client::config(&pki.ca, Some(&pki.revoked)),
        ),
    ];
    let mut refusals = 0;
    for (what, config) in &bad {
        let mut stream = client::connect(daemon.port, config);
        let result = client::call(&mut stream, &[b"PING"]);
        assert!(result.is_err(), "{what}: served: {result:?}");
        refusals += 1;
        assert_eq!(tls_refused_reaches(&daemon, refusals), refusals, "{what}");
        // Others are still served: the connection held open, and a new one.
        assert_eq!(
            client::call(&mut kept, &[b"PING"]).unwrap(),
            pong(),
            "{what}"
        );
        let mut fresh = client::connect(daemon.port, &good);
        assert_eq!(
            client::call(&mut fresh, &[b"PING"]).unwrap(),
            pong(),
            "{what}"
        );
    }
    plain_text_is_refused(daemon.port, b"PING\r\n");
    plain_text_is_refused(daemon.native, b"VELTRIX\x01\x00\x00\x00\x00");
    refusals += 2;
    assert_eq!(tls_refused_reaches(&daemon, refusals), refusals);
    assert_eq!(
        client::call(&mut kept, &[b"SET", b"still", b"here"]).unwrap(),
        Reply::Simple("OK".into())
    );
    assert_eq!(
        client::call(&mut kept, &[b"GET", b"still"]).unwrap(),
        Reply::Bulk(Some(b"here".to_vec()))
    );
}

/// The admin port on mutual TLS: probes and metrics for a client with a
/// certificate; nothing for one without, or for plain HTTP.
#[test]
fn admin_port_over_mutual_tls() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let config = tls_section(&pki, "admin = \"mtls\"\n");
    let file = dir.path().join("veltrix.toml");
    std::fs::write(&file, config).unwrap();
    let daemon = Daemon::start_with(&dir.path().join("data"), &["--config", path(&file)]);
    let good = client::config(&pki.ca, Some(&pki.client));
    let livez = client::https_get(daemon.admin, &good, "/livez").unwrap();
    assert!(livez.starts_with("HTTP/1.0 200 OK"), "{livez}");
    assert!(livez.ends_with("ok\n"), "{livez}");

    let anonymous = client::config(&pki.ca, None);
    let refused = client::https_get(daemon.admin, &anonymous, "/livez");
    assert!(
        refused.is_err(),
        "served without a certificate: {refused:?}"
    );
    plain_text_is_refused(daemon.admin, b"GET /livez HTTP/1.0\r\n\r\n");

    // The operator CLI over mutual TLS: status, and a checkpoint (a POST).
    let admin_flag = format!("127.0.0.1:{}", daemon.admin);
    let (cert, key) = (path(&pki.client.cert), path(&pki.client.key));
    let mutual = ["--admin", admin_flag.as_str(), "--cacert", path(&pki.ca)];
    let identity = ["--cert", cert, "--key", key];
    let status = veltrix(&[&mutual[..], &identity[..], &["status"]].concat());
    assert!(status.status.success(), "{status:?}");
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("\"workers\""),
        "{status:?}"
    );
    let checkpoint = veltrix(&[&mutual[..], &identity[..], &["checkpoint"]].concat());
    assert!(checkpoint.status.success(), "{checkpoint:?}");
    // Without a client certificate: refused, and the message says https.
    let refused = veltrix(&[&mutual[..], &["status"]].concat());
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("https://"),
        "{refused:?}"
    );
    // The data ports stay plain (their keys are not given and `enabled`
    // is false), and the refusals above are counted.
    let mut plain = daemon.client();
    assert_eq!(plain.call(&[b"PING"]), pong());
    // The relay counts a refusal after its connection closes: wait for it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let refusals = loop {
        let metrics = client::https_get(daemon.admin, &good, "/metrics").unwrap();
        let refusals = metrics
            .lines()
            .find_map(|l| l.strip_prefix("veltrix_tls_refused_total "))
            .unwrap_or_else(|| panic!("no veltrix_tls_refused_total in\n{metrics}"))
            .trim()
            .to_string();
        if refusals == "3" || Instant::now() > deadline {
            break refusals;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(refusals, "3");

    // A clean stop removes the HTTP server's private socket directory.
    let prefix = format!("veltrixd-admin-{}-", daemon.child.id());
    let left = || {
        std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .filter_map(Result::ok)
            .any(|e| e.file_name().to_string_lossy().starts_with(&prefix))
    };
    assert!(
        left(),
        "no private socket directory {prefix}* while running"
    );
    assert!(daemon.sigterm().success());
    assert!(!left(), "{prefix}* left behind after SIGTERM");
}

fn sighup(daemon: &Daemon) {
    let status = Command::new("kill")
        .args(["-HUP", &daemon.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// CRLs (and certificates) are read again on SIGHUP: a certificate revoked
/// after the start is refused once the new CRL is loaded, others stay
/// served, and a reload that fails keeps the previous files in service.
#[test]
fn a_crl_reloaded_on_sighup_refuses_a_newly_revoked_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let live = dir.path().join("live.crl");
    std::fs::copy(&pki.crl_empty, &live).unwrap();
    let config = tls_section(
        &pki,
        &format!("client_crl_file = \"{}\"\nresp = \"mtls\"\n", path(&live)),
    );
    let file = dir.path().join("veltrix.toml");
    std::fs::write(&file, config).unwrap();
    let daemon = Daemon::start_with(&dir.path().join("data"), &["--config", path(&file)]);
    let good = client::config(&pki.ca, Some(&pki.client));
    let soon_revoked = client::config(&pki.ca, Some(&pki.revoked));
    let ping = |config: &std::sync::Arc<rustls::ClientConfig>| {
        let mut stream = client::connect(daemon.port, config);
        client::call(&mut stream, &[b"PING"])
    };
    assert_eq!(ping(&soon_revoked).unwrap(), pong(), "not revoked yet");
    let mut held = client::connect(daemon.port, &good);
    assert_eq!(client::call(&mut held, &[b"PING"]).unwrap(), pong());

    // A broken CRL: the reload fails and the previous CRL stays in service.
    std::fs::write(&live, "not a CRL\n").unwrap();
    sighup(&daemon);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        ping(&soon_revoked).unwrap(),
        pong(),
        "after a failed reload"
    );
    assert_eq!(ping(&good).unwrap(), pong());

    // The CRL that names it: refused once reloaded.
    std::fs::copy(&pki.crl, &live).unwrap();
    sighup(&daemon);
    let deadline = Instant::now() + Duration::from_secs(10);
    while ping(&soon_revoked).is_ok() {
        assert!(
            Instant::now() < deadline,
            "still served 10 s after the CRL reload"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(ping(&good).unwrap(), pong());
    assert_eq!(client::call(&mut held, &[b"PING"]).unwrap(), pong());
}
