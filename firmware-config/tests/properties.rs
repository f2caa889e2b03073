//! Property tests: no input panics the parser, errors point inside the
//! input, and every valid configuration survives `render` then `parse`.
//! Also runs the `config_parse` fuzz target's body over random inputs.

use core::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

use firmware_config::{
    parse, Auth, Backend, Cluster, Config, Engine, LogLevel, Member, NamespaceConfig,
    NamespaceTarget, Server, Tls, TlsMode, MEMBERS_MAX, NAMESPACES_MAX, PATH_BYTES_MAX,
    SERIAL_BYTES_MAX, ZONE_BYTES_MAX,
};
use proptest::prelude::*;
use proptest::sample::select;

#[path = "../fuzz/bodies/config_parse.rs"]
mod fuzz_body;

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const TIB: u64 = 1 << 40;

/// Characters for strings: quotes and backslashes to exercise escapes, a
/// `#` that is not a comment, tab, and multi-byte characters.
const CHARS: &[char] = &[
    'a',
    'z',
    'A',
    '0',
    '9',
    '/',
    '.',
    '_',
    '-',
    ' ',
    '\t',
    '"',
    '\\',
    '#',
    '=',
    '[',
    ']',
    '\u{e9}',
    '\u{20ac}',
    '\u{1f600}',
];

/// A string of `1..=max` bytes (or `0..`, if `empty`) from [`CHARS`].
fn text(max: usize, empty: bool) -> impl Strategy<Value = String> {
    let min = usize::from(!empty);
    prop::collection::vec(select(CHARS), min..=max).prop_map(move |chars| {
        let mut out = String::new();
        for c in chars {
            if out.len() + c.len_utf8() > max {
                break;
            }
            out.push(c);
        }
        out
    })
}

fn path(empty: bool) -> impl Strategy<Value = firmware_config::PathString> {
    text(PATH_BYTES_MAX, empty)
        .prop_map(|s| s.as_str().try_into().expect("`text` bounds the bytes"))
}

fn address() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        any::<([u8; 4], u16)>().prop_map(SocketAddr::from),
        (
            any::<[u8; 16]>(),
            any::<u16>(),
            prop_oneof![Just(0_u32), any::<u32>()]
        )
            .prop_map(|(ip, port, scope)| {
                SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(ip), port, 0, scope))
            }),
    ]
}

/// A size in `min..=max`, often a round number so that `render` uses units.
fn size(min: u64, max: u64) -> impl Strategy<Value = u64> {
    (min..=max, select(&[0_u32, 10, 20, 30, 40][..])).prop_map(move |(n, shift)| {
        let rounded = n >> shift << shift;
        if rounded >= min {
            rounded
        } else {
            n
        }
    })
}

fn server() -> impl Strategy<Value = Server> {
    (
        path(false),
        0_u32..=64,
        address(),
        address(),
        address(),
        1_u32..=1_000_000,
        select(&LogLevel::ALL[..]),
    )
        .prop_map(
            |(
                data_dir,
                workers,
                listen,
                native_listen,
                admin_listen,
                connections_max,
                log_level,
            )| {
                Server {
                    data_dir,
                    workers,
                    listen,
                    native_listen,
                    admin_listen,
                    connections_max,
                    log_level,
                }
            },
        )
}

/// A `[tls]` section whose modes can be served: a port on TLS has a
/// certificate and key, one on mutual TLS a CA, and a CRL comes with a CA.
fn tls() -> impl Strategy<Value = Tls> {
    let modes = select(&TlsMode::ALL[..]);
    (any::<bool>(), [modes.clone(), modes.clone(), modes]).prop_flat_map(
        |(enabled, [resp, native, admin])| {
            let modes = [resp, native, admin];
            let serving = enabled || modes.iter().any(|&m| m != TlsMode::Off);
            let mutual = modes.contains(&TlsMode::Mutual);
            (path(!serving), path(!serving), path(!mutual))
                .prop_flat_map(move |(cert_file, key_file, client_ca_file)| {
                    let client_crl_file = if client_ca_file.is_empty() {
                        Just(firmware_config::PathString::new()).boxed()
                    } else {
                        path(true).boxed()
                    };
                    (Just((cert_file, key_file, client_ca_file)), client_crl_file)
                })
                .prop_map(
                    move |((cert_file, key_file, client_ca_file), client_crl_file)| Tls {
                        enabled,
                        cert_file,
                        key_file,
                        client_ca_file,
                        client_crl_file,
                        resp,
                        native,
                        admin,
                    },
                )
        },
    )
}

/// An engine section whose sizes fit together: segment first, then the
/// others within what it leaves.
fn engine() -> impl Strategy<Value = Engine> {
    (20_u32..=30, 1_u64..=65_535)
        .prop_flat_map(|(shift, key_bytes_max)| {
            let segment_bytes = 1_u64 << shift;
            let value_max = (64 * MIB).min(segment_bytes - key_bytes_max - 4 * KIB);
            (
                Just(segment_bytes),
                Just(key_bytes_max),
                size(1, value_max),
                size(4 * KIB, (64 * MIB).min(segment_bytes)),
                size(0, 16 * TIB),
                1_u32..=1_000_000,
                1_u8..=90,
                1_u32..=86_400,
            )
        })
        .prop_map(
            |(
                segment_bytes,
                key_bytes_max,
                value_bytes_max,
                batch_bytes_max,
                cache_bytes,
                commit_interval_us,
                gc_io_share,
                checkpoint_interval_s,
            )| Engine {
                commit_interval_us,
                batch_bytes_max,
                cache_bytes,
                gc_io_share,
                key_bytes_max: u32::try_from(key_bytes_max).expect("at most 65535"),
                value_bytes_max,
                segment_bytes,
                checkpoint_interval_s,
            },
        )
}

fn namespace() -> impl Strategy<Value = NamespaceConfig> {
    let by_path = (
        path(false),
        prop::option::of(size(MIB / (4 * KIB), 1024 * TIB / (4 * KIB)).prop_map(|n| n * 4 * KIB)),
    )
        .prop_map(|(path, size_bytes)| (NamespaceTarget::Path(path), size_bytes));
    let by_serial =
        (text(SERIAL_BYTES_MAX, false), 1_u32..=0xFFFF_FFFE).prop_map(|(serial, nsid)| {
            let serial = serial.as_str().try_into().expect("`text` bounds the bytes");
            (NamespaceTarget::Serial { serial, nsid }, None)
        });
    (
        prop_oneof![by_path, by_serial],
        select(&Backend::ALL[..]),
        any::<bool>(),
    )
        .prop_map(|((target, size_bytes), backend, sqpoll)| NamespaceConfig {
            target,
            backend,
            size_bytes,
            sqpoll: sqpoll && backend == Backend::Uring,
        })
}

/// A valid cluster: members with distinct ids and addresses, the first
/// three in three different zones (their names start with 0, 1 and 2).
fn cluster() -> impl Strategy<Value = Cluster> {
    let member = (text(ZONE_BYTES_MAX - 4, false), any::<u16>(), any::<u32>());
    (
        any::<u128>(),
        0_u32..=10,
        1_u64..(1 << 40),
        prop::collection::vec(member, 3..=MEMBERS_MAX),
        any::<prop::sample::Index>(),
        (1_u32..=1_000, 2_u32..=60),
    )
        .prop_map(
            |(id, groups_log2, base, members, me, (tick_ms, election_ticks))| {
                let members: heapless::Vec<Member, MEMBERS_MAX> = members
                    .into_iter()
                    .enumerate()
                    .map(|(i, (zone, port, ip))| {
                        let zone = format!("{}{zone}", i % 3);
                        let ip = Ipv4Addr::from(ip);
                        Member {
                            node: base + i as u64 * 7,
                            zone: zone.as_str().try_into().expect("fits"),
                            peer: SocketAddr::new(ip.into(), port.wrapping_add(i as u16)),
                            data: SocketAddr::new(ip.into(), port.wrapping_sub(1 + i as u16)),
                        }
                    })
                    .collect();
                Cluster {
                    id,
                    node: members[me.index(members.len())].node,
                    groups: 1 << groups_log2,
                    tick_ms,
                    election_ticks,
                    members,
                }
            },
        )
}

fn config() -> impl Strategy<Value = Config> {
    (
        server(),
        tls(),
        (path(true), path(true)).prop_map(|(users_file, admin_token_file)| Auth {
            users_file,
            admin_token_file,
        }),
        engine(),
        prop::collection::vec(namespace(), 0..=NAMESPACES_MAX),
        prop::option::of(cluster()),
    )
        .prop_map(|(server, tls, auth, engine, namespaces, cluster)| Config {
            server,
            tls,
            auth,
            engine,
            namespaces: namespaces.into_iter().collect(),
            cluster,
        })
}

/// Lines that are valid or nearly so, to reach deep into the parser.
const LINES: &[&str] = &[
    "[server]",
    "[tls]",
    "[engine]",
    "[[namespace]]",
    "[cluster]",
    "[[member]]",
    "id = \"000000000000000000000000000000ff\"",
    "node = 1",
    "node = 2",
    "node = 3",
    "groups = 64",
    "zone = \"a\"",
    "zone = \"b\"",
    "zone = \"c\"",
    "peer = \"127.0.0.1:7000\"",
    "data = \"127.0.0.1:6000\"",
    "[engin]",
    "[ server ]",
    "[[server]]",
    "",
    "# comment",
    "workers = 4",
    "workers = 65",
    "workers=-1",
    "data_dir = \"/d\\\\x\\\"\"",
    "listen = \"[::1]:6379\"",
    "listen = \"127.0.0.1\"",
    "log_level = \"debug\"",
    "enabled = true",
    "cert_file = \"/c\"",
    "key_file = \"/k\"",
    "segment_bytes = \"1MiB\"",
    "segment_bytes = \"3MiB\"",
    "batch_bytes_max = \"2MiB\"",
    "value_bytes_max = \"64MiB\"",
    "value_bytes_max = 1",
    "key_bytes_max = \"64K\"",
    "cache_bytes = 0",
    "path = \"/dev/nvme0n1\"",
    "serial = \"SN\"",
    "nsid = 1",
    "backend = \"sync\"",
    "size = \"4GiB\"",
    "sqpoll = true",
    "comit_interval_us = 1",
    "x = [1]",
    "y = \"unterminated",
    "\u{e9} = 1",
];

fn line_soup() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        8 => select(LINES).prop_map(str::to_owned),
        1 => "[ -~\u{e9}\t\r]{0,40}",
    ];
    (
        prop::collection::vec(line, 0..16),
        select(&["\n", "\r\n"][..]),
    )
        .prop_map(|(lines, ending)| lines.join(ending))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any text: no panic; an error points inside it; a config round-trips.
    #[test]
    fn arbitrary_text_never_panics(text in prop_oneof![any::<String>(), line_soup()]) {
        match parse(&text) {
            Ok(config) => prop_assert_eq!(parse(&config.to_string()), Ok(config)),
            Err(error) => fuzz_body::check_position(&text, &error),
        }
    }

    /// A valid configuration, rendered, parses back to itself.
    #[test]
    fn render_then_parse_round_trips(config in config()) {
        let text = config.to_string();
        prop_assert!(text.len() <= firmware_config::RENDERED_BYTES_MAX);
        prop_assert_eq!(parse(&text), Ok(config), "{}", text);
    }

    /// One byte of a valid file changed: it parses (to a config that
    /// round-trips), or the error points inside the changed file.
    #[test]
    fn one_changed_byte_parses_or_points_inside(
        config in config(),
        index in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut bytes = config.to_string().into_bytes();
        let at = index.index(bytes.len());
        let unchanged = bytes[at] == byte;
        bytes[at] = byte;
        let text = String::from_utf8_lossy(&bytes);
        match parse(&text) {
            Ok(parsed) => {
                if unchanged {
                    prop_assert_eq!(&parsed, &config);
                }
                prop_assert_eq!(parse(&parsed.to_string()), Ok(parsed));
            }
            Err(error) => {
                prop_assert!(!unchanged, "{}", error);
                fuzz_body::check_position(&text, &error);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    /// The fuzz target's body, over random bytes and near-valid text.
    #[test]
    fn fuzz_body_over_random_inputs(
        data in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..2048),
            line_soup().prop_map(String::into_bytes),
        ]
    ) {
        fuzz_body::run(&data);
    }
}

#[test]
fn largest_config_fits_the_limits() {
    // Every string at its limit and made of escaped characters: the longest
    // rendering there is.
    let quotes = "\"".repeat(PATH_BYTES_MAX);
    let path: firmware_config::PathString = quotes.as_str().try_into().unwrap();
    let address = SocketAddr::V6(SocketAddrV6::new(
        "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"
            .parse()
            .unwrap(),
        65535,
        0,
        u32::MAX,
    ));
    let mut config = Config {
        server: Server {
            data_dir: path.clone(),
            listen: address,
            native_listen: address,
            admin_listen: address,
            ..Server::default()
        },
        tls: Tls {
            enabled: true,
            cert_file: path.clone(),
            key_file: path.clone(),
            client_ca_file: path.clone(),
            client_crl_file: path.clone(),
            resp: TlsMode::Mutual,
            native: TlsMode::Mutual,
            admin: TlsMode::Mutual,
        },
        auth: Auth {
            users_file: path.clone(),
            admin_token_file: path.clone(),
        },
        ..Config::default()
    };
    for _ in 0..NAMESPACES_MAX {
        let namespace = NamespaceConfig {
            target: NamespaceTarget::Path(path.clone()),
            backend: Backend::Uring,
            size_bytes: Some((1024 << 40) - 4096),
            sqpoll: true,
        };
        config.namespaces.push(namespace).unwrap();
    }
    let text = config.to_string();
    assert!(
        text.len() <= firmware_config::RENDERED_BYTES_MAX,
        "{}",
        text.len()
    );
    assert_eq!(parse(&text), Ok(config));
}
