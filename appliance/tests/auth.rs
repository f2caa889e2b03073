//! Users and roles on the RESP port, against the real daemon: the replies
//! to AUTH, HELLO ... AUTH, ACL WHOAMI and to commands refused before a
//! login or outside a role are redis-server's, byte for byte; a users file
//! that cannot be honoured stops the start; the native port refuses
//! everyone while users are configured.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is the failure report"
)]

mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use appliance::auth::hash_password;
use common::{tool, Client, Daemon, RedisServer};

/// (name, role, password), and the same user as a Redis ACL rule.
const USERS: [(&str, &str, &str, &str); 3] = [
    ("alice", "admin", "alice-pw", "+@all"),
    ("writer", "write", "writer-pw", "+@all -@admin -@dangerous"),
    (
        "reader",
        "read",
        "reader-pw",
        "+@all -@write -@admin -@dangerous",
    ),
];

fn users_file(dir: &Path) -> std::path::PathBuf {
    let mut text = String::from("# test users, hashed at test time\n");
    for (name, role, password, _) in USERS {
        let hash = hash_password(password.as_bytes()).unwrap();
        text.push_str(&format!("{name} {role} {hash}\n"));
    }
    let path = dir.join("users");
    std::fs::write(&path, text).unwrap();
    path
}

fn start_with_users(dir: &Path) -> Daemon {
    let users = users_file(dir);
    let config = dir.join("veltrix.toml");
    std::fs::write(
        &config,
        format!("[auth]\nusers_file = \"{}\"\n", users.display()),
    )
    .unwrap();
    Daemon::start_with(&dir.join("data"), &["--config", config.to_str().unwrap()])
}

/// The script both servers run, one connection, in order. Every reply is
/// compared raw, except where the servers differ on purpose (HELLO's own
/// map names the server).
const SCRIPT: &[&str] = &[
    "GET k",
    "PING",
    "SET k v",
    "ACL WHOAMI",
    "HELLO 3",
    "HELLO 3 AUTH alice wrong",
    "AUTH alice wrong",
    "AUTH nobody alice-pw",
    "AUTH alice-pw",
    "AUTH",
    "AUTH a b c",
    "GET k",
    "AUTH reader reader-pw",
    "ACL WHOAMI",
    "SET k v",
    "GET k",
    "DEL k",
    "EXPIRE k 10",
    "INFO",
    "FLUSHDB",
    "CONFIG GET maxmemory",
    "CLIENT LIST",
    "CLIENT SETNAME me",
    "CLIENT GETNAME",
    "DBSIZE",
    "AUTH writer writer-pw",
    "ACL WHOAMI",
    "SET k v",
    "GET k",
    "FLUSHDB",
    "AUTH reader wrong",
    "ACL WHOAMI",
    "AUTH alice alice-pw",
    "ACL WHOAMI",
    "ACL WHOAMI extra",
    "FLUSHDB",
    "GET k",
];

fn run_script(port: u16) -> Vec<String> {
    let mut client = Client::connect(port);
    SCRIPT
        .iter()
        .map(|line| {
            let words: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
            String::from_utf8_lossy(&client.raw(&words)).into_owned()
        })
        .collect()
}

#[test]
fn logins_and_refusals_match_redis() {
    if !tool("redis-server") {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "redis-server is missing under CI=true: .ci/run installs it"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_with_users(dir.path());
    let acl = dir.path().join("users.acl");
    let mut rules = String::from("user default off\n");
    for (name, _, password, rule) in USERS {
        rules.push_str(&format!("user {name} on >{password} ~* &* {rule}\n"));
    }
    std::fs::write(&acl, rules).unwrap();
    let redis = RedisServer::start(&["--aclfile", acl.to_str().unwrap()]);

    let ours = run_script(daemon.port);
    let theirs = run_script(redis.port);
    for ((line, ours), theirs) in SCRIPT.iter().zip(&ours).zip(&theirs) {
        assert_eq!(ours, theirs, "{line}");
    }
    // The script reaches every kind of answer, so equality means something.
    let all = ours.concat();
    for expected in [
        "-NOAUTH Authentication required.\r\n",
        "-NOAUTH HELLO must be called",
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n",
        "-NOPERM this user has no permissions to run the 'set' command\r\n",
        "-NOPERM this user has no permissions to run the 'flushdb' command\r\n",
        "-NOPERM this user has no permissions to run the 'config|get' command\r\n",
        "$2\r\nme\r\n",
        "$6\r\nreader\r\n",
        "$5\r\nalice\r\n",
        "$1\r\nv\r\n",
    ] {
        assert!(all.contains(expected), "{expected:?} never answered");
    }
    // The script's refused logins: HELLO 3 AUTH alice wrong, AUTH alice
    // wrong, AUTH nobody, AUTH alice-pw (no user `default`), AUTH reader
    // wrong.
    let metrics = common::http_get(daemon.admin, "/metrics");
    assert!(
        metrics.contains("\nveltrix_auth_failures_total 5\n"),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("auth_failures"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // HELLO ... AUTH logs in (its reply names the server, so it is not
    // compared): a new connection, then a role check.
    let mut client = daemon.client();
    let hello = client.raw(&[b"HELLO", b"3", b"AUTH", b"reader", b"reader-pw"]);
    assert!(hello.starts_with(b"%7\r\n"), "{hello:?}");
    assert_eq!(client.raw(&[b"ACL", b"WHOAMI"]), b"$6\r\nreader\r\n");
    assert_eq!(
        client.raw(&[b"SET", b"x", b"y"]),
        b"-NOPERM this user has no permissions to run the 'set' command\r\n"
    );
}

#[test]
fn redis_cli_logs_in_with_user_and_password() {
    if !tool("redis-cli") {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "redis-cli is missing under CI=true: .ci/run installs it (redis-tools)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_with_users(dir.path());
    let cli = |args: &[&str]| {
        let output = Command::new("redis-cli")
            .args(["-p", &daemon.port.to_string(), "--no-auth-warning"])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    };
    let writer = ["--user", "writer", "--pass", "writer-pw"];
    assert_eq!(cli(&[&writer[..], &["SET", "k", "v"]].concat()), "OK");
    assert_eq!(cli(&[&writer[..], &["GET", "k"]].concat()), "v");
    let wrong = ["--user", "writer", "--pass", "nope", "GET", "k"];
    assert!(cli(&wrong).contains("NOAUTH"), "{}", cli(&wrong));
    assert!(cli(&["GET", "k"]).contains("NOAUTH"));
}

#[test]
fn the_native_port_refuses_everyone_while_users_are_configured() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_with_users(dir.path());
    let served =
        veltrix_client::Client::connect(("127.0.0.1", daemon.native)).and_then(|mut c| c.get(b"k"));
    let error = served.err().map(|e| e.to_string());
    assert!(
        error
            .as_deref()
            .is_some_and(|e| e.contains("authentication required")),
        "{error:?}"
    );
}

/// Runs veltrixd on `config`; it must refuse to start. Returns stderr.
fn start_refused(dir: &Path, config: &str) -> String {
    let file = dir.join("refused.toml");
    std::fs::write(&file, config).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_veltrixd"))
        .args(["--config", file.to_str().unwrap()])
        .args(["--data-dir", dir.join("data").to_str().unwrap()])
        .args(["--listen", "127.0.0.1:0", "--native-listen", "127.0.0.1:0"])
        .args(["--admin-listen", "127.0.0.1:0", "--namespace-size", "64MiB"])
        .stdout(Stdio::null())
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
            panic!("veltrixd started with an [auth] it cannot honour:\n{config}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!status.success());
    stderr
}

#[test]
fn a_users_file_that_cannot_be_honoured_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let hash = hash_password(b"pw").unwrap();
    let cases = [
        (None, "cannot read"),
        (Some(String::new()), "holds no user"),
        (Some("# only a comment\n".to_string()), "holds no user"),
        (
            Some(format!("alice root {hash}\n")),
            "line 1: unknown role `root`",
        ),
        (
            Some("alice admin plaintext\n".to_string()),
            "line 1: not an Argon2 hash",
        ),
        (
            Some("alice admin $2b$12$abcdefghijklmnopqrstuv\n".to_string()),
            "line 1: not an Argon2 hash",
        ),
        (
            Some(format!("\nalice admin\n{hash}\n")),
            "line 2: expected NAME ROLE HASH",
        ),
        (
            Some(format!(
                "alice admin {}\n",
                hash.replace("m=19456,t=2,p=1", "m=4194304,t=2,p=1")
            )),
            "line 1: an Argon2 cost beyond the limits",
        ),
        (
            Some(format!("alice admin {hash}\nalice read {hash}\n")),
            "line 2: user `alice` is given twice",
        ),
    ];
    for (index, (content, expected)) in cases.into_iter().enumerate() {
        let users = dir.path().join(format!("users-{index}"));
        if let Some(content) = &content {
            std::fs::write(&users, content).unwrap();
        }
        let config = format!("[auth]\nusers_file = \"{}\"\n", users.display());
        let stderr = start_refused(dir.path(), &config);
        let setting = format!("[auth] users_file = \"{}\"", users.display());
        assert!(
            stderr.contains(&setting) && stderr.contains(expected),
            "expected {setting:?} and {expected:?} in:\n{stderr}"
        );
    }
}

/// Commands pipelined after `AUTH` run under its outcome, in order.
#[test]
fn pipelined_commands_see_the_login_before_them() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_with_users(dir.path());
    let mut client = daemon.client();
    let script: [&[&[u8]]; 5] = [
        &[b"SET", b"k", b"early"],
        &[b"AUTH", b"writer", b"writer-pw"],
        &[b"SET", b"k", b"v"],
        &[b"AUTH", b"reader", b"wrong"],
        &[b"GET", b"k"],
    ];
    for command in script {
        client.send(command);
    }
    let replies: Vec<_> = (0..script.len()).map(|_| client.read().unwrap()).collect();
    use appliance::resp::Reply;
    assert_eq!(
        replies,
        [
            Reply::Error("NOAUTH Authentication required.".into()),
            Reply::Simple("OK".into()),
            Reply::Simple("OK".into()),
            Reply::Error("WRONGPASS invalid username-password pair or user is disabled.".into()),
            common::bulk(b"v"),
        ]
    );
}

/// Password checks run off the workers: a storm of logins does not hold up
/// other clients' commands. (With the check on the worker, a worker owning
/// n of the storm's connections was blocked for n checks in one poll, and
/// a PING behind them waited as long as the whole storm.)
#[test]
fn a_login_storm_does_not_stall_other_clients() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_with_users(dir.path());
    // Eight clients, so that some share each worker with the storm (two
    // workers; SO_REUSEPORT spreads connections).
    let mut others: Vec<Client> = (0..8)
        .map(|_| {
            let mut c = daemon.client();
            assert_eq!(
                c.raw(&[b"AUTH", b"reader", b"reader-pw"]),
                b"+OK\r\n".to_vec()
            );
            c
        })
        .collect();
    let mut storm: Vec<Client> = (0..32).map(|_| daemon.client()).collect();
    let started = Instant::now();
    // Right passwords: wrong ones would soon be refused unchecked (the
    // limit per source) and the storm would cost nothing.
    for client in &mut storm {
        client.send(&[b"AUTH", b"alice", b"alice-pw"]);
    }
    let mut slowest = Duration::ZERO;
    for client in &mut others {
        let asked = Instant::now();
        assert_eq!(client.raw(&[b"PING"]), b"+PONG\r\n".to_vec());
        slowest = slowest.max(asked.elapsed());
    }
    for client in &mut storm {
        assert_eq!(
            client.read(),
            Some(appliance::resp::Reply::Simple("OK".into()))
        );
    }
    let storm_took = started.elapsed();
    assert!(
        slowest * 4 < storm_took,
        "a PING took {slowest:?} during a login storm of {storm_took:?}"
    );
}

/// A client whose socket is bound to `source` (any 127/8 address reaches
/// the daemon on 127.0.0.1).
fn client_from(source: [u8; 4], port: u16) -> Client {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let local = std::net::SocketAddr::from((source, 0));
    socket.bind(&local.into()).unwrap();
    let server = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    socket.connect(&server.into()).unwrap();
    let stream: std::net::TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    Client {
        stream,
        buf: Vec::new(),
    }
}

/// After a burst of failed logins a source's logins are refused unchecked,
/// with the same answer as a wrong password, even the right one; another
/// source is not affected.
#[test]
fn failed_logins_are_limited_per_source() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_with_users(dir.path());
    let wrongpass = b"-WRONGPASS invalid username-password pair or user is disabled.\r\n".to_vec();
    let mut guesser = client_from([127, 0, 0, 3], daemon.port);
    for _ in 0..appliance::auth::FAILURES_BURST {
        assert_eq!(guesser.raw(&[b"AUTH", b"alice", b"guess"]), wrongpass);
    }
    assert_eq!(guesser.raw(&[b"AUTH", b"alice", b"alice-pw"]), wrongpass);
    let mut other = client_from([127, 0, 0, 4], daemon.port);
    assert_eq!(
        other.raw(&[b"AUTH", b"alice", b"alice-pw"]),
        b"+OK\r\n".to_vec()
    );
    let metrics = common::http_get(daemon.admin, "/metrics");
    let value = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
    };
    assert_eq!(value("veltrix_auth_throttled_total ").as_deref(), Some("1"));
    assert_eq!(value("veltrix_auth_failures_total ").as_deref(), Some("11"));
}

/// One POST to the admin port with `headers`; the status code.
fn post(port: u16, path: &str, headers: &str) -> u16 {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.0\r\nHost: x\r\n{headers}Content-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    response
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// With `[auth] admin_token_file`, the admin port's state-changing requests
/// need the token; probes, metrics and the GET API stay open.
#[test]
fn admin_changes_need_the_token() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("admin.token");
    std::fs::write(&token, "correct-horse-battery-staple\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = dir.path().join("veltrix.toml");
    std::fs::write(
        &config,
        format!("[auth]\nadmin_token_file = \"{}\"\n", token.display()),
    )
    .unwrap();
    let daemon = Daemon::start_with(
        &dir.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    assert_eq!(post(daemon.admin, "/api/checkpoint", ""), 401);
    assert_eq!(
        post(daemon.admin, "/api/gc", "Authorization: Bearer wrong\r\n"),
        401
    );
    assert_eq!(
        post(
            daemon.admin,
            "/api/gc",
            "Authorization: Bearer correct-horse-battery-stapl\r\n"
        ),
        401
    );
    assert_eq!(
        post(
            daemon.admin,
            "/api/gc",
            "Authorization: Bearer correct-horse-battery-staple\r\n"
        ),
        202,
        "a GC pass is started (202 Accepted)"
    );
    assert_eq!(common::http(daemon.admin, "GET", "/livez").0, 200);
    assert_eq!(common::http(daemon.admin, "GET", "/api/status").0, 200);
    // The data port needs no login: only [auth] admin_token_file is given.
    assert_eq!(daemon.client().raw(&[b"PING"]), b"+PONG\r\n".to_vec());
    let veltrix = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_veltrix"))
            .args(["--admin", &format!("127.0.0.1:{}", daemon.admin)])
            .args(args)
            .output()
            .unwrap()
    };
    let with = veltrix(&["--token-file", token.to_str().unwrap(), "checkpoint"]);
    assert!(with.status.success(), "{with:?}");
    let without = veltrix(&["checkpoint"]);
    assert!(!without.status.success());
    assert!(
        String::from_utf8_lossy(&without.stderr).contains("401"),
        "{without:?}"
    );
}

#[test]
fn an_admin_token_file_that_cannot_be_honoured_stops_the_start() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("missing", None, 0o600, "cannot read"),
        (
            "open",
            Some("correct-horse-battery-staple\n"),
            0o644,
            "readable by group or others (mode 644)",
        ),
        ("short", Some("short\n"), 0o600, "shorter than 16 bytes"),
    ];
    for (name, content, mode, expected) in cases {
        let token = dir.path().join(name);
        if let Some(content) = content {
            std::fs::write(&token, content).unwrap();
            std::fs::set_permissions(&token, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let config = format!("[auth]\nadmin_token_file = \"{}\"\n", token.display());
        let stderr = start_refused(dir.path(), &config);
        let setting = format!("[auth] admin_token_file = \"{}\"", token.display());
        assert!(
            stderr.contains(&setting) && stderr.contains(expected),
            "expected {setting:?} and {expected:?} in:\n{stderr}"
        );
    }
}
