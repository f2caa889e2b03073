//! Every key: its default, its accepted values and the edges of its range.

use core::net::SocketAddr;

use firmware_config::{
    parse, Backend, Config, ConfigError, ErrorKind, LogLevel, NamespaceTarget, TlsMode, Unit,
};

fn ok(text: &str) -> Config {
    parse(text).unwrap_or_else(|error| panic!("{error}\n---\n{text}"))
}

fn err(text: &str) -> ConfigError {
    match parse(text) {
        Ok(config) => panic!("accepted:\n{text}\n---\n{config:?}"),
        Err(error) => error,
    }
}

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const TIB: u64 = 1 << 40;

#[test]
fn empty_input_is_the_default_config() {
    for text in [
        "",
        "\n",
        "# nothing\n\n  \t\n",
        "[server]\n[tls]\n[engine]\n",
    ] {
        assert_eq!(ok(text), Config::default(), "{text:?}");
    }
}

#[test]
fn defaults_are_the_documented_ones() {
    let config = Config::default();
    let localhost = |port| SocketAddr::from(([127, 0, 0, 1], port));
    assert_eq!(config.server.data_dir, "./veltrix-data");
    assert_eq!(config.server.workers, 0);
    assert_eq!(config.server.listen, localhost(6379));
    assert_eq!(config.server.native_listen, localhost(7379));
    assert_eq!(config.server.admin_listen, localhost(9379));
    assert_eq!(config.server.connections_max, 10_000);
    assert_eq!(config.server.log_level, LogLevel::Info);
    assert!(!config.tls.enabled);
    assert_eq!(config.tls.cert_file, "");
    assert_eq!(config.tls.key_file, "");
    assert_eq!(config.tls.client_ca_file, "");
    assert_eq!(config.engine.commit_interval_us, 50);
    assert_eq!(config.engine.batch_bytes_max, MIB);
    assert_eq!(config.engine.cache_bytes, 256 * MIB);
    assert_eq!(config.engine.gc_io_share, 10);
    assert_eq!(config.engine.key_bytes_max, 1024);
    assert_eq!(config.engine.value_bytes_max, 4 * MIB);
    assert_eq!(config.engine.segment_bytes, 8 * MIB);
    assert_eq!(config.engine.checkpoint_interval_s, 300);
    assert!(config.namespaces.is_empty());
}

/// A numeric key, the lines it needs around it to be valid on its own, its
/// range, and how to read it back.
struct NumberKey {
    section: &'static str,
    key: &'static str,
    context: &'static str,
    min: u64,
    max: u64,
    unit: Unit,
    get: fn(&Config) -> u64,
}

/// Lets the engine's sizes reach their range's edges without tripping the
/// relations between them.
const ROOMY_ENGINE: &str = "segment_bytes = \"1GiB\"\n";
const TIGHT_ENGINE: &str = "batch_bytes_max = \"4KiB\"\nvalue_bytes_max = 1\nkey_bytes_max = 1\n";

const NUMBER_KEYS: &[NumberKey] = &[
    NumberKey {
        section: "[server]",
        key: "workers",
        context: "",
        min: 0,
        max: 64,
        unit: Unit::Number,
        get: |c| c.server.workers.into(),
    },
    NumberKey {
        section: "[server]",
        key: "connections_max",
        context: "",
        min: 1,
        max: 1_000_000,
        unit: Unit::Number,
        get: |c| c.server.connections_max.into(),
    },
    NumberKey {
        section: "[engine]",
        key: "commit_interval_us",
        context: "",
        min: 1,
        max: 1_000_000,
        unit: Unit::Number,
        get: |c| c.engine.commit_interval_us.into(),
    },
    NumberKey {
        section: "[engine]",
        key: "gc_io_share",
        context: "",
        min: 1,
        max: 90,
        unit: Unit::Number,
        get: |c| c.engine.gc_io_share.into(),
    },
    NumberKey {
        section: "[engine]",
        key: "checkpoint_interval_s",
        context: "",
        min: 1,
        max: 86_400,
        unit: Unit::Number,
        get: |c| c.engine.checkpoint_interval_s.into(),
    },
    NumberKey {
        section: "[[namespace]]",
        key: "nsid",
        context: "serial = \"S1\"\n",
        min: 1,
        max: 0xFFFF_FFFE,
        unit: Unit::Number,
        get: |c| match c.namespaces[0].target {
            NamespaceTarget::Serial { nsid, .. } => nsid.into(),
            NamespaceTarget::Path(_) => panic!("not a serial target"),
        },
    },
    NumberKey {
        section: "[engine]",
        key: "batch_bytes_max",
        context: ROOMY_ENGINE,
        min: 4 * KIB,
        max: 64 * MIB,
        unit: Unit::Bytes,
        get: |c| c.engine.batch_bytes_max,
    },
    NumberKey {
        section: "[engine]",
        key: "cache_bytes",
        context: "",
        min: 0,
        max: 16 * TIB,
        unit: Unit::Bytes,
        get: |c| c.engine.cache_bytes,
    },
    NumberKey {
        section: "[engine]",
        key: "key_bytes_max",
        context: ROOMY_ENGINE,
        min: 1,
        max: 65_535,
        unit: Unit::Bytes,
        get: |c| c.engine.key_bytes_max.into(),
    },
    NumberKey {
        section: "[engine]",
        key: "value_bytes_max",
        context: ROOMY_ENGINE,
        min: 1,
        max: 64 * MIB,
        unit: Unit::Bytes,
        get: |c| c.engine.value_bytes_max,
    },
    NumberKey {
        section: "[engine]",
        key: "segment_bytes",
        context: TIGHT_ENGINE,
        min: MIB,
        max: GIB,
        unit: Unit::Bytes,
        get: |c| c.engine.segment_bytes,
    },
    NumberKey {
        section: "[[namespace]]",
        key: "size",
        context: "path = \"/f\"\n",
        min: MIB,
        max: 1024 * TIB,
        unit: Unit::Bytes,
        get: |c| c.namespaces[0].size_bytes.unwrap_or(0),
    },
];

fn with_value(number: &NumberKey, value: &str) -> String {
    format!(
        "{}\n{}{} = {value}\n",
        number.section, number.context, number.key
    )
}

#[test]
fn numbers_accept_their_range_and_reject_beyond_it() {
    for number in NUMBER_KEYS {
        let line = 2 + u32::try_from(number.context.lines().count()).unwrap();
        let value_column = u32::try_from(number.key.len()).unwrap() + 4;
        for n in [number.min, number.max] {
            let config = ok(&with_value(number, &n.to_string()));
            assert_eq!((number.get)(&config), n, "{}", number.key);
        }
        let out_of_range = ErrorKind::OutOfRange {
            min: number.min,
            max: number.max,
            unit: number.unit,
        };
        let mut beyond = vec![i128::from(number.max) + 1, i128::from(u64::MAX) + 1];
        beyond.push(i128::from(number.min) - 1);
        for n in beyond {
            let error = err(&with_value(number, &n.to_string()));
            assert_eq!(error.kind, out_of_range, "{} = {n}", number.key);
            assert_eq!((error.line, error.column), (line, value_column), "{error}");
            assert_eq!(error.key, number.key);
            assert_eq!(error.section, Some(number.section));
        }
        let error = err(&with_value(number, "true"));
        assert!(
            matches!(error.kind, ErrorKind::WrongType { .. }),
            "{}: {error}",
            number.key
        );
    }
}

#[test]
fn plain_numbers_reject_quoted_values() {
    for number in NUMBER_KEYS.iter().filter(|n| n.unit == Unit::Number) {
        let error = err(&with_value(number, &format!("\"{}\"", number.max)));
        assert_eq!(
            error.kind,
            ErrorKind::WrongType {
                expected: "an integer (without quotes)"
            },
            "{}",
            number.key
        );
    }
}

#[test]
fn sizes_accept_strings_with_units() {
    for number in NUMBER_KEYS.iter().filter(|n| n.unit == Unit::Bytes) {
        // Written with each unit that divides the maximum, and as digits.
        for (unit, shift) in [("", 0), ("KiB", 10), ("M", 20), ("GiB", 30), ("tib", 40)] {
            if number.max % (1 << shift) == 0 {
                let value = format!("\"{}{unit}\"", number.max >> shift);
                let config = ok(&with_value(number, &value));
                assert_eq!(
                    (number.get)(&config),
                    number.max,
                    "{} = {value}",
                    number.key
                );
            }
        }
        let error = err(&with_value(number, &format!("\"{}\"", number.max + 1)));
        assert!(
            matches!(
                error.kind,
                ErrorKind::OutOfRange {
                    unit: Unit::Bytes,
                    ..
                }
            ),
            "{error}"
        );
        let error = err(&with_value(number, "\"4GB\""));
        assert!(
            matches!(error.kind, ErrorKind::InvalidValue { .. }),
            "{error}"
        );
    }
}

#[test]
fn segment_bytes_is_a_power_of_two() {
    let config = ok("[engine]\nsegment_bytes = \"16MiB\"\n");
    assert_eq!(config.engine.segment_bytes, 16 * MIB);
    let error = err("[engine]\nsegment_bytes = \"12MiB\"\n");
    assert_eq!(
        error.kind,
        ErrorKind::InvalidValue {
            expected: "a power of two, e.g. \"8MiB\""
        }
    );
    assert_eq!((error.line, error.column), (2, 17));
}

#[test]
fn namespace_size_is_a_multiple_of_4kib() {
    let config = ok("[[namespace]]\npath = \"/f\"\nsize = \"1052672\"\n");
    assert_eq!(config.namespaces[0].size_bytes, Some(MIB + 4 * KIB));
    let error = err("[[namespace]]\npath = \"/f\"\nsize = \"1050000\"\n");
    assert_eq!(
        error.kind,
        ErrorKind::InvalidValue {
            expected: "a multiple of 4KiB"
        }
    );
}

#[test]
fn data_dir() {
    let config = ok("[server]\ndata_dir = \"/var/lib/veltrix\"\n");
    assert_eq!(config.server.data_dir, "/var/lib/veltrix");
    let config = ok("[server]\ndata_dir = \"C:\\\\x \\\"y\\\" \u{e9}\"\n");
    assert_eq!(config.server.data_dir, "C:\\x \"y\" \u{e9}");
    let exactly = "d".repeat(255);
    let config = ok(&format!("[server]\ndata_dir = \"{exactly}\"\n"));
    assert_eq!(config.server.data_dir, exactly.as_str());
    // Escapes count once resolved: 255 escaped backslashes are 255 bytes.
    let escaped = "\\\\".repeat(255);
    assert_eq!(
        ok(&format!("[server]\ndata_dir = \"{escaped}\"\n"))
            .server
            .data_dir
            .len(),
        255
    );
    let error = err(&format!("[server]\ndata_dir = \"{exactly}d\"\n"));
    assert_eq!(error.kind, ErrorKind::TooLong { max: 255 });
    let error = err("[server]\ndata_dir = \"\"\n");
    assert_eq!(
        error.kind,
        ErrorKind::InvalidValue {
            expected: "a non-empty path"
        }
    );
    let error = err("[server]\ndata_dir = 1\n");
    assert_eq!(
        error.kind,
        ErrorKind::WrongType {
            expected: "a string"
        }
    );
}

#[test]
fn listen_addresses() {
    for key in ["listen", "native_listen", "admin_listen"] {
        let get = |config: &Config| match key {
            "listen" => config.server.listen,
            "native_listen" => config.server.native_listen,
            _ => config.server.admin_listen,
        };
        for address in [
            "0.0.0.0:1",
            "10.1.2.3:65535",
            "[::]:0",
            "[2001:db8::7]:6379",
        ] {
            let config = ok(&format!("[server]\n{key} = \"{address}\"\n"));
            assert_eq!(get(&config), address.parse::<SocketAddr>().unwrap());
        }
        for bad in ["localhost:6379", "10.1.2.3", "10.1.2.3:65536", "::1:80", ""] {
            let error = err(&format!("[server]\n{key} = \"{bad}\"\n"));
            assert_eq!(
                error.kind,
                ErrorKind::InvalidValue {
                    expected: "a socket address \"IPv4:PORT\" or \"[IPv6]:PORT\""
                },
                "{bad}"
            );
        }
        let error = err(&format!("[server]\n{key} = 6379\n"));
        assert!(matches!(error.kind, ErrorKind::WrongType { .. }));
    }
}

#[test]
fn log_level() {
    for level in LogLevel::ALL {
        let config = ok(&format!("[server]\nlog_level = \"{}\"\n", level.as_str()));
        assert_eq!(config.server.log_level, level);
    }
    for bad in ["\"INFO\"", "\"verbose\"", "\"\""] {
        let error = err(&format!("[server]\nlog_level = {bad}\n"));
        assert_eq!(
            error.kind,
            ErrorKind::InvalidValue {
                expected: "one of \"error\", \"warn\", \"info\", \"debug\", \"trace\""
            }
        );
    }
    assert!(matches!(
        err("[server]\nlog_level = 3\n").kind,
        ErrorKind::WrongType { .. }
    ));
}

#[test]
fn tls() {
    let config = ok("[tls]\n\
         enabled = true\n\
         cert_file = \"/c.pem\"\n\
         key_file = \"/k.pem\"\n\
         client_ca_file = \"/ca.pem\"\n");
    assert!(config.tls.enabled);
    assert_eq!(config.tls.cert_file, "/c.pem");
    assert_eq!(config.tls.key_file, "/k.pem");
    assert_eq!(config.tls.client_ca_file, "/ca.pem");
    // Files may be given while TLS is off, and may be empty.
    let config = ok("[tls]\nenabled = false\ncert_file = \"/c.pem\"\nkey_file = \"\"\n");
    assert!(!config.tls.enabled);
    assert_eq!(config.tls.cert_file, "/c.pem");
    for key in ["cert_file", "key_file", "client_ca_file"] {
        let long = "f".repeat(256);
        let error = err(&format!("[tls]\n{key} = \"{long}\"\n"));
        assert_eq!(error.kind, ErrorKind::TooLong { max: 255 }, "{key}");
    }
    for bad in ["\"true\"", "1"] {
        let error = err(&format!("[tls]\nenabled = {bad}\n"));
        assert!(matches!(error.kind, ErrorKind::WrongType { .. }), "{error}");
    }
}

#[test]
fn auth() {
    assert_eq!(ok("").auth.users_file, "");
    assert_eq!(ok("").auth.admin_token_file, "");
    let config = ok("[auth]\nadmin_token_file = \"/etc/veltrix/admin.token\"\n");
    assert_eq!(config.auth.admin_token_file, "/etc/veltrix/admin.token");
    let config = ok("[auth]\nusers_file = \"/etc/veltrix/users\"\n");
    assert_eq!(config.auth.users_file, "/etc/veltrix/users");
    let error = err(&format!("[auth]\nusers_file = \"{}\"\n", "u".repeat(256)));
    assert_eq!(error.kind, ErrorKind::TooLong { max: 255 });
    let error = err("[auth]\nusers_file = true\n");
    assert!(matches!(error.kind, ErrorKind::WrongType { .. }), "{error}");
    let error = err("[auth]\nusers = \"/u\"\n");
    assert!(
        matches!(error.kind, ErrorKind::UnknownKey { .. }),
        "{error}"
    );
    let error = err("[auth]\n[auth]\n");
    assert!(
        matches!(error.kind, ErrorKind::Duplicate { first_line: 1 }),
        "{error}"
    );
}

/// Each port's mode: given, or following `enabled` and `client_ca_file`.
#[test]
fn tls_port_modes() {
    let modes = |c: &Config| [c.tls.resp, c.tls.native, c.tls.admin];
    assert_eq!(modes(&ok("")), [TlsMode::Off; 3]);
    let files = "cert_file = \"/c\"\nkey_file = \"/k\"\n";
    let config = ok(&format!("[tls]\nenabled = true\n{files}"));
    assert_eq!(modes(&config), [TlsMode::Tls; 3]);
    let config = ok(&format!(
        "[tls]\nenabled = true\n{files}client_ca_file = \"/ca\"\n"
    ));
    assert_eq!(modes(&config), [TlsMode::Mutual; 3]);
    // A port's own key wins over `enabled`, either way.
    let config = ok(&format!(
        "[tls]\nenabled = true\n{files}client_ca_file = \"/ca\"\nadmin = \"tls\"\nresp = \"off\"\n"
    ));
    assert_eq!(
        modes(&config),
        [TlsMode::Off, TlsMode::Mutual, TlsMode::Tls]
    );
    let config = ok(&format!("[tls]\n{files}native = \"tls\"\n"));
    assert_eq!(modes(&config), [TlsMode::Off, TlsMode::Tls, TlsMode::Off]);
    let config = ok(&format!(
        "[tls]\n{files}client_ca_file = \"/ca\"\nclient_crl_file = \"/crl\"\nresp = \"mtls\"\n"
    ));
    assert_eq!(config.tls.client_crl_file, "/crl");
    assert_eq!(config.tls.resp, TlsMode::Mutual);
    for key in ["resp", "native", "admin"] {
        for bad in ["\"on\"", "\"TLS\"", "\"mutual\"", "\"\""] {
            let error = err(&format!("[tls]\n{files}{key} = {bad}\n"));
            assert_eq!(
                error.kind,
                ErrorKind::InvalidValue {
                    expected: "one of \"off\", \"tls\", \"mtls\""
                },
                "{key} = {bad}"
            );
        }
        let error = err(&format!("[tls]\n{files}{key} = true\n"));
        assert!(matches!(error.kind, ErrorKind::WrongType { .. }), "{error}");
    }
}

#[test]
fn namespace_by_path() {
    let config = ok("[[namespace]]\npath = \"/dev/nvme0n1\"\n");
    assert_eq!(config.namespaces.len(), 1);
    let namespace = &config.namespaces[0];
    assert_eq!(
        namespace.target,
        NamespaceTarget::Path("/dev/nvme0n1".try_into().unwrap())
    );
    assert_eq!(namespace.backend, Backend::Uring);
    assert_eq!(namespace.size_bytes, None);
    assert!(!namespace.sqpoll);
    let error = err("[[namespace]]\npath = \"\"\n");
    assert!(matches!(error.kind, ErrorKind::InvalidValue { .. }));
    let error = err(&format!("[[namespace]]\npath = \"{}\"\n", "p".repeat(256)));
    assert_eq!(error.kind, ErrorKind::TooLong { max: 255 });
}

#[test]
fn namespace_by_serial() {
    let config = ok("[[namespace]]\nserial = \"S4EVNX0R123456\"\nnsid = 3\n");
    assert_eq!(
        config.namespaces[0].target,
        NamespaceTarget::Serial {
            serial: "S4EVNX0R123456".try_into().unwrap(),
            nsid: 3
        }
    );
    let twenty = "s".repeat(20);
    ok(&format!("[[namespace]]\nserial = \"{twenty}\"\nnsid = 1\n"));
    let error = err(&format!(
        "[[namespace]]\nserial = \"{twenty}s\"\nnsid = 1\n"
    ));
    assert_eq!(error.kind, ErrorKind::TooLong { max: 20 });
    let error = err("[[namespace]]\nserial = \"\"\nnsid = 1\n");
    assert!(matches!(error.kind, ErrorKind::InvalidValue { .. }));
}

#[test]
fn namespace_backend_and_sqpoll() {
    for backend in Backend::ALL {
        let config = ok(&format!(
            "[[namespace]]\npath = \"/f\"\nbackend = \"{}\"\n",
            backend.as_str()
        ));
        assert_eq!(config.namespaces[0].backend, backend);
    }
    let error = err("[[namespace]]\npath = \"/f\"\nbackend = \"aio\"\n");
    assert_eq!(
        error.kind,
        ErrorKind::InvalidValue {
            expected: "one of \"uring\", \"sync\", \"vfio\", \"sim\""
        }
    );
    let config = ok("[[namespace]]\npath = \"/f\"\nsqpoll = true\n");
    assert!(config.namespaces[0].sqpoll);
    let config = ok("[[namespace]]\npath = \"/f\"\nbackend = \"sync\"\nsqpoll = false\n");
    assert!(!config.namespaces[0].sqpoll);
}

#[test]
fn namespaces_keep_file_order_up_to_eight() {
    let mut text = String::from("[server]\nworkers = 2\n");
    for index in 0..8 {
        text.push_str(&format!("\n[[namespace]]\npath = \"/ns{index}\"\n"));
    }
    let config = ok(&text);
    assert_eq!(config.server.workers, 2);
    assert_eq!(config.namespaces.len(), 8);
    for (index, namespace) in config.namespaces.iter().enumerate() {
        let NamespaceTarget::Path(path) = &namespace.target else {
            panic!("{namespace:?}");
        };
        assert_eq!(path.as_str(), format!("/ns{index}"));
    }
    // Sections may come in any order, also after namespaces.
    let config = ok(
        "[[namespace]]\npath = \"/a\"\n[engine]\ngc_io_share = 20\n[[namespace]]\npath = \"/b\"\n",
    );
    assert_eq!(config.engine.gc_io_share, 20);
    assert_eq!(config.namespaces.len(), 2);
}

#[test]
fn syntax_variants_that_are_accepted() {
    // A byte-order mark at the start, as some editors write, is skipped.
    assert_eq!(ok("\u{feff}[server]\nworkers = 1\n").server.workers, 1);
    let config = ok("  [ server ]  # comment\r\n\
         \tworkers\t=\t+8 # eight\r\n\
         connections_max = 1_000\r\n\
         data_dir = \"#not a comment\" # a comment\r\n");
    assert_eq!(config.server.workers, 8);
    assert_eq!(config.server.connections_max, 1000);
    assert_eq!(config.server.data_dir, "#not a comment");
    // No newline at the end.
    assert_eq!(ok("[server]\nworkers = 3").server.workers, 3);
}

#[test]
fn from_str_is_parse() {
    let config: Config = "[server]\nworkers = 5\n".parse().unwrap();
    assert_eq!(config.server.workers, 5);
    let error = "[server]\nworkers = 65\n".parse::<Config>().unwrap_err();
    assert_eq!(error.line, 2);
}

fn member(node: u64, zone: &str) -> String {
    format!(
        "[[member]]\nnode = {node}\nzone = \"{zone}\"\npeer = \"127.0.0.1:{}\"\ndata = \"127.0.0.1:{}\"\n",
        7000 + node,
        6000 + node
    )
}

const CLUSTER: &str = "[cluster]\nid = \"0123456789abcdef0123456789ABCDEF\"\nnode = 2\n";

#[test]
fn cluster() {
    let three = [member(1, "a"), member(2, "b"), member(3, "c")].concat();
    let config = ok(&format!("{CLUSTER}{three}"));
    let cluster = config.cluster.expect("a cluster");
    assert_eq!(cluster.id, 0x0123456789abcdef0123456789abcdef);
    assert_eq!((cluster.node, cluster.groups), (2, 64));
    assert_eq!(cluster.members.len(), 3);
    assert_eq!(cluster.members[1].zone, "b");
    assert_eq!(
        cluster.members[2].data,
        "127.0.0.1:6003".parse::<SocketAddr>().expect("an address")
    );
    assert_eq!(ok("").cluster, None);
    let groups = ok(&format!("{CLUSTER}groups = 1024\n{three}"));
    assert_eq!(groups.cluster.expect("a cluster").groups, 1024);
    // The Raft clock: a 1 s election timeout unless told otherwise.
    assert_eq!((cluster.tick_ms, cluster.election_ticks), (100, 10));
    let timing = ok(&format!(
        "{CLUSTER}tick_ms = 10\nelection_ticks = 300\n{three}"
    ));
    let timing = timing.cluster.expect("a cluster");
    assert_eq!((timing.tick_ms, timing.election_ticks), (10, 300));

    let refused = |text: String, key: &str| {
        let error = err(&text);
        assert_eq!(error.key, key, "{error}");
        error
    };
    // Members without a cluster, and a cluster without enough zones.
    refused(three.clone(), "");
    let two_zones = [member(1, "a"), member(2, "b"), member(3, "b")].concat();
    refused(format!("{CLUSTER}{two_zones}"), "");
    refused(format!("{CLUSTER}{}", member(2, "a")), "");
    // The node must be a member; ids, peers and data addresses unique.
    let other = "[cluster]\nid = \"0123456789abcdef0123456789abcdef\"\nnode = 9\n";
    refused(format!("{other}{three}"), "node");
    let twice = [
        member(1, "a"),
        member(2, "b"),
        member(3, "c"),
        member(2, "d"),
    ]
    .concat();
    refused(format!("{CLUSTER}{twice}"), "node");
    let same_peer = format!(
        "{CLUSTER}{three}[[member]]\nnode = 4\nzone = \"d\"\npeer = \"127.0.0.1:7001\"\ndata = \"127.0.0.1:6004\"\n"
    );
    refused(same_peer, "peer");
    // Required keys.
    refused(format!("[cluster]\nnode = 2\n{three}"), "id");
    refused(
        format!("[cluster]\nid = \"{}\"\n{three}", "0".repeat(32)),
        "node",
    );
    refused(
        format!("{CLUSTER}{three}[[member]]\nnode = 4\nzone = \"d\"\npeer = \"127.0.0.1:1\"\n"),
        "data",
    );
    // Values.
    for id in ["\"0123\"", "\"0123456789abcdef0123456789abcdeg\"", "5"] {
        refused(format!("[cluster]\nid = {id}\n"), "id");
    }
    for groups in ["3", "0", "2048"] {
        refused(format!("[cluster]\ngroups = {groups}\n"), "groups");
    }
    for node in ["0", "281474976710656"] {
        refused(format!("[cluster]\nnode = {node}\n"), "node");
    }
    for tick in ["0", "1001", "\"100ms\""] {
        refused(format!("[cluster]\ntick_ms = {tick}\n"), "tick_ms");
    }
    for ticks in ["1", "1001"] {
        refused(
            format!("[cluster]\nelection_ticks = {ticks}\n"),
            "election_ticks",
        );
    }
    // An election timeout past a minute, named at the key given last.
    let slow = refused(
        format!("{CLUSTER}election_ticks = 601\n{three}"),
        "election_ticks",
    );
    assert!(slow.to_string().contains("at most 60000 ms"), "{slow}");
    refused(
        format!("{CLUSTER}election_ticks = 100\ntick_ms = 1000\n{three}"),
        "tick_ms",
    );
    ok(&format!("{CLUSTER}election_ticks = 600\n{three}"));
    refused(
        format!("[[member]]\nzone = \"{}\"\n", "z".repeat(33)),
        "zone",
    );
    // It renders and parses back.
    let text = format!("{CLUSTER}tick_ms = 20\nelection_ticks = 50\n{three}");
    let config = ok(&text);
    assert_eq!(ok(&config.to_string()), config);
}
