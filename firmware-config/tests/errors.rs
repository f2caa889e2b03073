//! Every error kind: where it is reported and its exact text.

use firmware_config::{parse, ConfigError, ErrorKind, Unit, INPUT_BYTES_MAX, LINE_BYTES_MAX};

fn err(text: &str) -> ConfigError {
    match parse(text) {
        Ok(config) => panic!("accepted:\n{text}\n---\n{config:?}"),
        Err(error) => error,
    }
}

fn message(text: &str) -> String {
    err(text).to_string()
}

/// The examples in `docs/config.md`'s error table, with inputs that produce
/// them; each must appear there verbatim.
fn documented_examples() -> Vec<(String, &'static str)> {
    let mut examples = vec![];
    let mut too_long = "#".repeat(INPUT_BYTES_MAX - 16);
    too_long.push('\n');
    too_long.push_str(&"x".repeat(100));
    examples.push((
        too_long,
        "line 2, column 16: input is longer than 65536 bytes",
    ));
    examples.push((
        format!("[server]\n\n#{}\n", "x".repeat(LINE_BYTES_MAX)),
        "line 3, column 1025: line is longer than 1024 bytes",
    ));
    examples.push((
        "[engine]\ncache_bytes = 4GiB\n".to_owned(),
        "line 2, column 15: key `cache_bytes` in [engine]: syntax error: expected an integer; \
         a size with a unit is a quoted string, e.g. \"4GiB\"",
    ));
    examples.push((
        "[server]\nworkers = 4\n\n[engin]\n".to_owned(),
        "line 4, column 1: section `[engin]`: unknown section; did you mean `[engine]`?",
    ));
    examples.push((
        "[engine]\ncomit_interval_us = 100\n".to_owned(),
        "line 2, column 1: key `comit_interval_us` in [engine]: unknown key; \
         did you mean `commit_interval_us`?",
    ));
    examples.push((
        "[engine]\nworkers = 4\n".to_owned(),
        "line 2, column 1: key `workers` in [engine]: unknown key; \
         did you mean `workers` in [server]?",
    ));
    examples.push((
        "[server]\nworkers = 4\nlisten = \"0.0.0.0:6379\"\nworkers = 8\n".to_owned(),
        "line 4, column 1: key `workers` in [server]: given twice; first given on line 2",
    ));
    examples.push((
        "[server]\nworkers = \"8\"\n".to_owned(),
        "line 2, column 11: key `workers` in [server]: wrong type: \
         expected an integer (without quotes)",
    ));
    examples.push((
        "[server]\nlog_level = \"verbose\"\n".to_owned(),
        "line 2, column 13: key `log_level` in [server]: invalid value: \
         expected one of \"error\", \"warn\", \"info\", \"debug\", \"trace\"",
    ));
    examples.push((
        "[engine]\nbatch_bytes_max = \"128MiB\"\n".to_owned(),
        "line 2, column 19: key `batch_bytes_max` in [engine]: out of range: \
         expected 4KiB..=64MiB",
    ));
    examples.push((
        "[server]\nconnections_max = 0\n".to_owned(),
        "line 2, column 19: key `connections_max` in [server]: out of range: \
         expected 1..=1000000",
    ));
    examples.push((
        format!("[server]\ndata_dir = \"{}\"\n", "d".repeat(256)),
        "line 2, column 12: key `data_dir` in [server]: string is longer than 255 bytes",
    ));
    examples.push((
        "[[namespace]]\npath = \"/a\"\n".repeat(9),
        "line 17, column 1: section `[[namespace]]`: too many tables: at most 8 are allowed",
    ));
    examples.push((
        "[tls]\nenabled = true\nkey_file = \"/k.pem\"\n".to_owned(),
        "line 1, column 1: key `cert_file` in [tls]: missing: required when `enabled = true`",
    ));
    examples.push((
        "[[namespace]]\npath = \"/dev/nvme0n1\"\nserial = \"S1\"\nnsid = 1\n".to_owned(),
        "line 3, column 1: key `serial` in [[namespace]]: cannot be combined with `path`",
    ));
    examples.push((
        "[engine]\nsegment_bytes = \"4MiB\"\n".to_owned(),
        "line 2, column 1: key `segment_bytes` in [engine]: inconsistent: \
         requires `key_bytes_max` + `value_bytes_max` + 4KiB <= `segment_bytes`",
    ));
    examples
}

#[test]
fn documented_examples_are_exact_and_documented() {
    let docs = include_str!("../../docs/config.md");
    for (input, expected) in documented_examples() {
        assert_eq!(message(&input), expected);
        assert!(
            docs.contains(expected),
            "docs/config.md lacks the example:\n{expected}"
        );
    }
}

#[test]
fn input_too_long() {
    let exactly = format!("{}\n", "#".repeat(INPUT_BYTES_MAX - 1));
    assert!(parse(&exactly).is_err()); // the one line is too long ...
    let lines = "# comment\n".repeat(INPUT_BYTES_MAX / 10);
    let padded = format!("{lines}{}", "#".repeat(INPUT_BYTES_MAX - lines.len()));
    assert_eq!(padded.len(), INPUT_BYTES_MAX);
    assert!(parse(&padded).is_ok()); // ... but the size is not.
    let error = err(&format!("{padded}#"));
    assert_eq!(error.kind, ErrorKind::InputTooLong { max: 65536 });
    assert_eq!(error.line, u32::try_from(INPUT_BYTES_MAX / 10).unwrap() + 1);
    assert!(error.key.is_empty());
}

#[test]
fn line_too_long_counts_bytes_without_the_line_ending() {
    let exactly = format!("#{}\r\n", "x".repeat(LINE_BYTES_MAX - 1));
    assert!(parse(&exactly).is_ok());
    // Two-byte characters: the column counts characters up to the limit.
    let error = err(&format!("# {}\n", "\u{e9}".repeat(LINE_BYTES_MAX / 2)));
    assert_eq!(error.kind, ErrorKind::LineTooLong { max: 1024 });
    assert_eq!((error.line, error.column), (1, 2 + 511 + 1));
}

#[test]
fn syntax_errors_name_line_column_and_key() {
    let cases = [
        (
            "[server]\nworkers 4\n",
            "line 2, column 9: key `workers` in [server]: syntax error: expected `=` after the key",
        ),
        (
            "[server]\n  data_dir = \"/x\n",
            "line 2, column 17: key `data_dir` in [server]: syntax error: expected a closing `\"`",
        ),
        (
            "[server]\ndata_dir = \"\u{e9}\u{e9}\" x\n",
            "line 2, column 17: key `data_dir` in [server]: syntax error: \
             expected end of line or a `# comment`",
        ),
        (
            "[tls]\nenabled = yes\n",
            "line 2, column 11: key `enabled` in [tls]: syntax error: \
             expected a value: a \"string\", an integer, `true` or `false`",
        ),
        (
            "[server.x]\n",
            "line 1, column 8: syntax error: expected `]` (dotted section names are not supported)",
        ),
        (
            "workers = 1\n\u{3000}\n",
            "line 1, column 1: key `workers` at top level: unknown key; \
             did you mean `workers` in [server]?",
        ),
        (
            "[engine]\n=1\n",
            "line 2, column 1: syntax error: expected a key, a `[section]` header or a `# comment`",
        ),
        (
            "[engine]\ncache_bytes = 1\r2\n",
            "line 2, column 16: syntax error: expected no control characters other than tab",
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(message(input), expected, "{input:?}");
    }
    // The section is known to the error even where the text leaves it out.
    let error = err("[server]\nworkers 4\n");
    assert_eq!(error.section, Some("[server]"));
    assert_eq!(
        error.kind,
        ErrorKind::Syntax {
            expected: "`=` after the key"
        }
    );
    let error = err("[server]\n[tls\n");
    assert_eq!(error.section, None);
}

#[test]
fn unknown_sections() {
    let cases = [
        (
            "[namespace]\n",
            "line 1, column 1: section `[namespace]`: unknown section; did you mean `[[namespace]]`?",
        ),
        (
            "\n  [[server]]\n",
            "line 2, column 3: section `[[server]]`: unknown section; did you mean `[server]`?",
        ),
        (
            "[storage]\n",
            "line 1, column 1: section `[storage]`: unknown section",
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(message(input), expected, "{input:?}");
    }
    let error = err("[engin]\n");
    assert_eq!(
        error.kind,
        ErrorKind::UnknownSection {
            suggestion: Some("[engine]")
        }
    );
    assert_eq!(error.key, "[engin]");
    assert_eq!(error.section, None);
}

#[test]
fn unknown_keys() {
    let cases = [
        (
            "[[namespace]]\npath = \"/f\"\nsqpol = true\n",
            "line 3, column 1: key `sqpol` in [[namespace]]: unknown key; did you mean `sqpoll`?",
        ),
        (
            "[tls]\ncolour = \"blue\"\n",
            "line 2, column 1: key `colour` in [tls]: unknown key",
        ),
        (
            "[server]\n  Workers = 1\n",
            "line 2, column 3: key `Workers` in [server]: unknown key; did you mean `workers`?",
        ),
        (
            "[server]\ncommit_interval_us = 1\n",
            "line 2, column 1: key `commit_interval_us` in [server]: unknown key; \
             did you mean `commit_interval_us` in [engine]?",
        ),
        (
            "anything = 1\n",
            "line 1, column 1: key `anything` at top level: unknown key",
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(message(input), expected, "{input:?}");
    }
    let error = err("[server]\ncommit_interval_us = 1\n");
    assert_eq!(
        error.kind,
        ErrorKind::UnknownKey {
            suggestion: Some("commit_interval_us"),
            suggested_section: Some("[engine]"),
        }
    );
}

#[test]
fn long_names_are_cut_short_in_errors() {
    let key = "k".repeat(200);
    let error = err(&format!("[server]\n{key} = 1\n"));
    assert_eq!(error.key, "k".repeat(48).as_str());
    let error = err(&format!("[{key}]\n"));
    assert_eq!(error.key, format!("[{}]", "k".repeat(46)).as_str());
}

#[test]
fn duplicates() {
    let cases = [
        (
            "[server]\n[tls]\n[server]\n",
            "line 3, column 1: section `[server]`: given twice; first given on line 1",
        ),
        (
            "[[namespace]]\npath = \"/a\"\n[[namespace]]\npath = \"/b\"\npath = \"/c\"\n",
            "line 5, column 1: key `path` in [[namespace]]: given twice; first given on line 4",
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(message(input), expected, "{input:?}");
    }
    // A key given once in each of two namespace tables is no duplicate, and
    // a section may be given after namespaces.
    assert!(parse("[[namespace]]\npath = \"/a\"\n[[namespace]]\npath = \"/b\"\n").is_ok());
}

#[test]
fn wrong_types_and_invalid_values() {
    let cases = [
        (
            "[tls]\nenabled = \"true\"\n",
            "line 2, column 11: key `enabled` in [tls]: wrong type: \
             expected `true` or `false` (without quotes)",
        ),
        (
            "[engine]\ncache_bytes = true\n",
            "line 2, column 15: key `cache_bytes` in [engine]: wrong type: \
             expected a size: a string such as \"4GiB\", or an integer of bytes",
        ),
        (
            "[engine]\ncache_bytes = \"1.5GiB\"\n",
            "line 2, column 15: key `cache_bytes` in [engine]: invalid value: \
             expected a size: digits, then optionally B, K, KiB, M, MiB, G, GiB, T or TiB \
             (binary units)",
        ),
        (
            "[server]\nlisten = \"localhost:6379\"\n",
            "line 2, column 10: key `listen` in [server]: invalid value: \
             expected a socket address \"IPv4:PORT\" or \"[IPv6]:PORT\"",
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(message(input), expected, "{input:?}");
    }
}

#[test]
fn out_of_range_renders_sizes_with_units() {
    assert_eq!(
        message("[engine]\nvalue_bytes_max = 0\n"),
        "line 2, column 19: key `value_bytes_max` in [engine]: out of range: expected 1..=64MiB"
    );
    assert_eq!(
        message("[engine]\ncommit_interval_us = -5\n"),
        "line 2, column 22: key `commit_interval_us` in [engine]: out of range: \
         expected 1..=1000000"
    );
    assert_eq!(
        err("[engine]\ngc_io_share = 91\n").kind,
        ErrorKind::OutOfRange {
            min: 1,
            max: 90,
            unit: Unit::Number
        }
    );
}

#[test]
fn tls_requires_cert_and_key_when_enabled() {
    let cases = [
        (
            "[server]\n[tls]\nenabled = true\ncert_file = \"/c.pem\"\n",
            "line 2, column 1: key `key_file` in [tls]: missing: required when `enabled = true`",
        ),
        // Given but empty: reported at the key.
        (
            "[tls]\nenabled = true\ncert_file = \"\"\nkey_file = \"/k\"\n",
            "line 3, column 1: key `cert_file` in [tls]: missing: required when `enabled = true`",
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(message(input), expected, "{input:?}");
    }
}

/// A port mode that cannot be served with the files given is refused at
/// parse time, at the key that asked for it: never quietly plain text.
#[test]
fn tls_modes_require_their_files() {
    let cases = [
        (
            "[tls]\nresp = \"tls\"\nkey_file = \"/k\"\n",
            "line 2, column 1: key `cert_file` in [tls]: missing: \
             required when a port's mode is \"tls\" or \"mtls\"",
        ),
        (
            "[tls]\ncert_file = \"/c\"\nadmin = \"mtls\"\n",
            "line 3, column 1: key `key_file` in [tls]: missing: \
             required when a port's mode is \"tls\" or \"mtls\"",
        ),
        (
            "[tls]\ncert_file = \"/c\"\nkey_file = \"/k\"\nnative = \"mtls\"\n",
            "line 4, column 1: key `client_ca_file` in [tls]: missing: \
             required when a port's mode is \"mtls\"",
        ),
        // Given but empty: reported at the key itself.
        (
            "[tls]\ncert_file = \"/c\"\nkey_file = \"/k\"\nclient_ca_file = \"\"\nresp = \"mtls\"\n",
            "line 4, column 1: key `client_ca_file` in [tls]: missing: \
             required when a port's mode is \"mtls\"",
        ),
        (
            "[tls]\nclient_crl_file = \"/crl\"\n",
            "line 2, column 1: key `client_ca_file` in [tls]: missing: \
             required when `client_crl_file` is given",
        ),
        // `enabled = true` asks for TLS even when every port is "off".
        (
            "[tls]\nenabled = true\nresp = \"off\"\n",
            "line 3, column 1: key `cert_file` in [tls]: missing: required when `enabled = true`",
        ),
        (
            "[tls]\nresp = \"mtls\"\n",
            "line 2, column 1: key `cert_file` in [tls]: missing: \
             required when a port's mode is \"tls\" or \"mtls\"",
        ),
        (
            "[tls]\nadmin = \"on\"\n",
            "line 2, column 9: key `admin` in [tls]: invalid value: \
             expected one of \"off\", \"tls\", \"mtls\"",
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(message(input), expected, "{input:?}");
    }
}

#[test]
fn namespace_forms_exclude_each_other() {
    let cases = [
        (
            "[[namespace]]\nnsid = 1\nserial = \"S1\"\npath = \"/f\"\n",
            "line 4, column 1: key `path` in [[namespace]]: cannot be combined with `serial`",
        ),
        (
            "[[namespace]]\npath = \"/f\"\nnsid = 1\n",
            "line 3, column 1: key `nsid` in [[namespace]]: cannot be combined with `path`",
        ),
        (
            "[[namespace]]\nserial = \"S1\"\nnsid = 1\nsize = \"1GiB\"\n",
            "line 4, column 1: key `size` in [[namespace]]: cannot be combined with `serial`",
        ),
        (
            "[[namespace]]\npath = \"/f\"\n\n[[namespace]]\nbackend = \"sim\"\n",
            "line 4, column 1: key `path` in [[namespace]]: missing: \
             required unless `serial` and `nsid` are given",
        ),
        (
            "[[namespace]]\nserial = \"S1\"\n",
            "line 1, column 1: key `nsid` in [[namespace]]: missing: required when `serial` is given",
        ),
        (
            "[[namespace]]\nnsid = 2\n",
            "line 1, column 1: key `serial` in [[namespace]]: missing: required when `nsid` is given",
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(message(input), expected, "{input:?}");
    }
}

#[test]
fn relations_between_keys() {
    let cases = [
        (
            "[engine]\nbatch_bytes_max = \"16MiB\"\n",
            "line 2, column 1: key `batch_bytes_max` in [engine]: inconsistent: \
             requires `batch_bytes_max` <= `segment_bytes`",
        ),
        (
            "[engine]\nsegment_bytes = \"1MiB\"\nbatch_bytes_max = \"2MiB\"\nvalue_bytes_max = 1\n",
            "line 3, column 1: key `batch_bytes_max` in [engine]: inconsistent: \
             requires `batch_bytes_max` <= `segment_bytes`",
        ),
        (
            "[engine]\nvalue_bytes_max = \"8MiB\"\n",
            "line 2, column 1: key `value_bytes_max` in [engine]: inconsistent: \
             requires `key_bytes_max` + `value_bytes_max` + 4KiB <= `segment_bytes`",
        ),
        (
            "[[namespace]]\nsqpoll = true\npath = \"/f\"\nbackend = \"sync\"\n",
            "line 4, column 1: key `backend` in [[namespace]]: inconsistent: \
             requires `backend = \"uring\"` when `sqpoll = true`",
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(message(input), expected, "{input:?}");
    }
    // Exactly at the edge: 8MiB - 4KiB - 1024 is the largest value for the
    // default segment and key sizes.
    let edge = (8 << 20) - 4096 - 1024;
    assert!(parse(&format!("[engine]\nvalue_bytes_max = {edge}\n")).is_ok());
    assert!(parse(&format!("[engine]\nvalue_bytes_max = {}\n", edge + 1)).is_err());
}

#[test]
fn every_kind_displays_its_message() {
    let cases = [
        (
            ErrorKind::InputTooLong { max: 9 },
            "input is longer than 9 bytes",
        ),
        (
            ErrorKind::LineTooLong { max: 9 },
            "line is longer than 9 bytes",
        ),
        (
            ErrorKind::Syntax { expected: "`=`" },
            "syntax error: expected `=`",
        ),
        (
            ErrorKind::UnknownSection { suggestion: None },
            "unknown section",
        ),
        (
            ErrorKind::UnknownKey {
                suggestion: None,
                suggested_section: Some("[tls]"),
            },
            "unknown key",
        ),
        (
            ErrorKind::Duplicate { first_line: 3 },
            "given twice; first given on line 3",
        ),
        (
            ErrorKind::WrongType {
                expected: "a string",
            },
            "wrong type: expected a string",
        ),
        (
            ErrorKind::InvalidValue { expected: "x" },
            "invalid value: expected x",
        ),
        (
            ErrorKind::OutOfRange {
                min: 0,
                max: 3 << 30,
                unit: Unit::Bytes,
            },
            "out of range: expected 0..=3GiB",
        ),
        (
            ErrorKind::TooLong { max: 20 },
            "string is longer than 20 bytes",
        ),
        (
            ErrorKind::TooMany { max: 8 },
            "too many tables: at most 8 are allowed",
        ),
        (
            ErrorKind::Missing { required: "always" },
            "missing: required always",
        ),
        (
            ErrorKind::Conflict { with: "path" },
            "cannot be combined with `path`",
        ),
        (
            ErrorKind::Inconsistent { requires: "a < b" },
            "inconsistent: requires a < b",
        ),
    ];
    for (kind, expected) in cases {
        assert_eq!(kind.to_string(), expected);
    }
}

#[test]
fn config_error_is_a_std_error() {
    let error: Box<dyn std::error::Error> = Box::new(err("[x]\n"));
    assert_eq!(
        error.to_string(),
        "line 1, column 1: section `[x]`: unknown section"
    );
}
