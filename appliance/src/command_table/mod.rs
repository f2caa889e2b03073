//! The commands the data port implements, as Redis 7 describes them to
//! `COMMAND`, `COMMAND COUNT`, `COMMAND INFO`, `COMMAND LIST` and
//! `COMMAND DOCS`: one table ([`generated::COMMANDS`]), taken from Redis
//! 7.0 itself by `scripts/command_table.py`, so the answers match Redis's
//! for the commands this server has and name no command it lacks.

mod generated;

use crate::resp::encode;
use crate::resp::Protocol;

pub use generated::COMMANDS;

/// One command as `COMMAND INFO` and `COMMAND DOCS` describe it.
#[derive(Debug)]
pub struct CommandSpec {
    /// Lower case, as Redis reports it.
    pub name: &'static str,
    /// Arguments including the name; negative: at least that many.
    pub arity: i64,
    /// Redis's command flags (`readonly`, `write`, `fast`, ...).
    pub flags: &'static [&'static str],
    /// Position of the first key argument (0: none).
    pub first_key: i64,
    /// Position of the last key argument (-1: the last argument).
    pub last_key: i64,
    /// Distance between key arguments.
    pub step: i64,
    /// ACL categories (`@read`, `@string`, ...).
    pub categories: &'static [&'static str],
    /// Redis's hints for clients and proxies.
    pub tips: &'static [&'static str],
    /// Where the keys are.
    pub key_specs: &'static [KeySpec],
    /// COMMAND DOCS's one-line summary.
    pub summary: &'static str,
    /// The Redis version that introduced the command.
    pub since: &'static str,
    /// The command's group (`string`, `generic`, `connection`, ...).
    pub group: &'static str,
    /// Time complexity, as Redis's documentation states it.
    pub complexity: Option<&'static str>,
}

/// A key specification of the `index` begin-search and `range` find-keys
/// kinds, the only ones the implemented commands use.
#[derive(Debug)]
pub struct KeySpec {
    /// Redis's note on the flags, if any.
    pub notes: Option<&'static str>,
    /// `RO`, `RW`, `OW`, `RM`, `access`, `update`, ...
    pub flags: &'static [&'static str],
    /// Position of the first key.
    pub begin_index: i64,
    /// Last key relative to the first (-1: the last argument).
    pub last_key: i64,
    /// Distance between keys.
    pub key_step: i64,
    /// With `last_key` -1, a divisor of the arguments left (0: none).
    pub limit: i64,
}

/// The command named `name`, in any case.
pub fn find(name: &[u8]) -> Option<&'static CommandSpec> {
    let lower = name.to_ascii_lowercase();
    COMMANDS
        .binary_search_by(|c| c.name.as_bytes().cmp(lower.as_slice()))
        .ok()
        .map(|at| &COMMANDS[at])
}

fn statuses(out: &mut Vec<u8>, items: &[&str], protocol: Protocol) {
    encode::set_header(out, items.len(), protocol);
    for item in items {
        encode::simple(out, item);
    }
}

/// One command's `COMMAND INFO` entry, in Redis 7.0's shape: ten fields,
/// the last (subcommands) always empty.
pub fn info(out: &mut Vec<u8>, spec: &CommandSpec, protocol: Protocol) {
    encode::array_header(out, 10);
    encode::bulk(out, spec.name.as_bytes());
    encode::integer(out, spec.arity);
    statuses(out, spec.flags, protocol);
    encode::integer(out, spec.first_key);
    encode::integer(out, spec.last_key);
    encode::integer(out, spec.step);
    statuses(out, spec.categories, protocol);
    encode::set_header(out, spec.tips.len(), protocol);
    for tip in spec.tips {
        encode::bulk(out, tip.as_bytes());
    }
    encode::set_header(out, spec.key_specs.len(), protocol);
    for key_spec in spec.key_specs {
        key_spec_info(out, key_spec, protocol);
    }
    encode::set_header(out, 0, protocol);
}

fn key_spec_info(out: &mut Vec<u8>, spec: &KeySpec, protocol: Protocol) {
    encode::map_header(out, 3 + usize::from(spec.notes.is_some()), protocol);
    if let Some(notes) = spec.notes {
        encode::bulk(out, b"notes");
        encode::bulk(out, notes.as_bytes());
    }
    encode::bulk(out, b"flags");
    statuses(out, spec.flags, protocol);
    encode::bulk(out, b"begin_search");
    encode::map_header(out, 2, protocol);
    encode::bulk(out, b"type");
    encode::bulk(out, b"index");
    encode::bulk(out, b"spec");
    encode::map_header(out, 1, protocol);
    encode::bulk(out, b"index");
    encode::integer(out, spec.begin_index);
    encode::bulk(out, b"find_keys");
    encode::map_header(out, 2, protocol);
    encode::bulk(out, b"type");
    encode::bulk(out, b"range");
    encode::bulk(out, b"spec");
    encode::map_header(out, 3, protocol);
    for (field, value) in [
        ("lastkey", spec.last_key),
        ("keystep", spec.key_step),
        ("limit", spec.limit),
    ] {
        encode::bulk(out, field.as_bytes());
        encode::integer(out, value);
    }
}

/// One command's `COMMAND DOCS` value: `summary`, `since`, `group` and
/// `complexity` (Redis also sends `arguments`, and for some commands
/// `history` and `doc_flags`; they are left out).
pub fn docs(out: &mut Vec<u8>, spec: &CommandSpec, protocol: Protocol) {
    let fields = [
        ("summary", Some(spec.summary)),
        ("since", Some(spec.since)),
        ("group", Some(spec.group)),
        ("complexity", spec.complexity),
    ];
    let present = fields.iter().filter(|(_, v)| v.is_some()).count();
    encode::map_header(out, present, protocol);
    for (field, value) in fields {
        if let Some(value) = value {
            encode::bulk(out, field.as_bytes());
            encode::bulk(out, value.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_and_consistent() {
        for pair in COMMANDS.windows(2) {
            assert!(
                pair[0].name < pair[1].name,
                "{} {}",
                pair[0].name,
                pair[1].name
            );
        }
        for spec in COMMANDS {
            assert_eq!(spec.name, spec.name.to_ascii_lowercase());
            assert!(spec.arity != 0, "{}", spec.name);
            assert_eq!(
                spec.key_specs.is_empty(),
                spec.first_key == 0,
                "{}",
                spec.name
            );
            assert!(find(spec.name.to_ascii_uppercase().as_bytes()).is_some());
        }
        assert!(find(b"lpush").is_none());
    }

    /// Every name in the table is one `commands::dispatch` handles: none
    /// answers "unknown command".
    #[test]
    fn every_listed_command_is_implemented() {
        for spec in COMMANDS {
            let action = crate::commands::dispatch(&[spec.name.as_bytes()], Protocol::Resp2);
            if let crate::commands::Action::Reply(out) = action {
                let text = String::from_utf8_lossy(&out);
                assert!(!text.contains("unknown command"), "{}: {text}", spec.name);
            }
        }
    }
}
