//! Checks that keys which are each valid fit together, and builds the
//! [`Config`]. Errors point at the key that completed the conflict (the one
//! given last) or, for a missing key, at its table's header.

use crate::error::{ConfigError, ErrorKind};
use crate::limits::{NAMESPACES_MAX, RECORD_OVERHEAD_BYTES_MAX};
use crate::parser::{ClusterDraft, Document, MemberDraft, NamespaceDraft, Position, Table};
use crate::schema::{
    Backend, Cluster, Config, Member, NamespaceConfig, NamespaceTarget, Section, Tls, TlsMode,
    ELECTION_TICKS_DEFAULT, ELECTION_TIMEOUT_MS_MAX, GROUPS_DEFAULT, TICK_MS_DEFAULT,
    TLS_PORT_KEYS,
};

// The record-overhead relation's text names the constant's value.
const _: () = assert!(RECORD_OVERHEAD_BYTES_MAX == 4096);

/// Checks relations between keys and returns the configuration.
pub(crate) fn finish(document: Document) -> Result<Config, ConfigError> {
    let tls = tls(&document)?;
    engine(&document)?;
    let mut namespaces = heapless::Vec::new();
    for draft in document.namespaces {
        let header = draft.table.header;
        let namespace = namespace(draft)?;
        if namespaces.push(namespace).is_err() {
            // Cannot happen: the drafts are bounded by the same capacity.
            let at = header.unwrap_or(START);
            return Err(error(
                at,
                Section::Namespace,
                "",
                ErrorKind::TooMany {
                    max: u32::try_from(NAMESPACES_MAX).unwrap_or(u32::MAX),
                },
            ));
        }
    }
    let cluster = cluster(&document.cluster, &document.members)?;
    Ok(Config {
        server: document.server,
        tls,
        auth: document.auth,
        engine: document.engine,
        namespaces,
        cluster,
    })
}

/// `[cluster]` and its members: a node id that names a member, at least
/// three members in at least three zones (a group's three replicas go to
/// three zones), no node id or peer address twice.
fn cluster(draft: &ClusterDraft, members: &[MemberDraft]) -> Result<Option<Cluster>, ConfigError> {
    let Some(header) = draft.table.header else {
        return match members.first().and_then(|m| m.table.header) {
            Some(at) => Err(error(
                at,
                Section::Member,
                "",
                ErrorKind::Inconsistent {
                    requires: "a `[cluster]` table when `[[member]]` tables are given",
                },
            )),
            None => Ok(None),
        };
    };
    let missing =
        |section, at, key, required| error(at, section, key, ErrorKind::Missing { required });
    let id = draft
        .id
        .ok_or_else(|| missing(Section::Cluster, header, "id", "in `[cluster]`"))?;
    let node = draft
        .node
        .ok_or_else(|| missing(Section::Cluster, header, "node", "in `[cluster]`"))?;
    let mut out = heapless::Vec::new();
    for draft in members {
        let at = draft.table.header.unwrap_or(START);
        let required = "in every `[[member]]`";
        let member = Member {
            node: draft
                .node
                .ok_or_else(|| missing(Section::Member, at, "node", required))?,
            zone: draft
                .zone
                .clone()
                .ok_or_else(|| missing(Section::Member, at, "zone", required))?,
            peer: draft
                .peer
                .ok_or_else(|| missing(Section::Member, at, "peer", required))?,
            data: draft
                .data
                .ok_or_else(|| missing(Section::Member, at, "data", required))?,
        };
        let clash = |key: &'static str, requires| {
            let at = draft.table.key(Section::Member, key).unwrap_or(at);
            Err(error(
                at,
                Section::Member,
                key,
                ErrorKind::Inconsistent { requires },
            ))
        };
        let earlier: &[Member] = &out;
        if earlier.iter().any(|m| m.node == member.node) {
            return clash("node", "every member's `node` to be different");
        }
        if earlier.iter().any(|m| m.peer == member.peer) {
            return clash("peer", "every member's `peer` to be different");
        }
        if earlier.iter().any(|m| m.data == member.data) {
            return clash("data", "every member's `data` to be different");
        }
        // Cannot fail: the drafts are bounded by the same capacity.
        let _ = out.push(member);
    }
    let zones = (0..out.len())
        .filter(|&i| out[..i].iter().all(|m| m.zone != out[i].zone))
        .count();
    if zones < 3 {
        return Err(error(
            header,
            Section::Cluster,
            "",
            ErrorKind::Inconsistent {
                requires: "`[[member]]` tables in at least three zones",
            },
        ));
    }
    if !out.iter().any(|m| m.node == node) {
        let at = draft.table.key(Section::Cluster, "node").unwrap_or(header);
        return Err(error(
            at,
            Section::Cluster,
            "node",
            ErrorKind::Inconsistent {
                requires: "`node` to name one of the `[[member]]` tables",
            },
        ));
    }
    let tick_ms = draft.tick_ms.unwrap_or(TICK_MS_DEFAULT);
    let election_ticks = draft.election_ticks.unwrap_or(ELECTION_TICKS_DEFAULT);
    if u64::from(tick_ms) * u64::from(election_ticks) > ELECTION_TIMEOUT_MS_MAX {
        let given = ["election_ticks", "tick_ms"]
            .into_iter()
            .filter_map(|key| Some((draft.table.key(Section::Cluster, key)?, key)))
            .max_by_key(|(at, _)| (at.line, at.column));
        let (at, key) = given.unwrap_or((header, ""));
        return Err(error(
            at,
            Section::Cluster,
            key,
            ErrorKind::Inconsistent {
                requires:
                    "`tick_ms` × `election_ticks` (the election timeout) to be at most 60000 ms",
            },
        ));
    }
    Ok(Some(Cluster {
        id,
        node,
        groups: draft.groups.unwrap_or(GROUPS_DEFAULT),
        tick_ms,
        election_ticks,
        members: out,
    }))
}

const START: Position = Position { line: 1, column: 1 };

/// Resolves each port's mode (a port without its own key follows
/// `enabled`) and checks that every mode can be served with the files
/// given: a setting that asks for TLS is never quietly dropped.
fn tls(document: &Document) -> Result<Tls, ConfigError> {
    let mut tls = document.tls.clone();
    let table = &document.tls_table;
    let followed = match (tls.enabled, tls.client_ca_file.is_empty()) {
        (false, _) => TlsMode::Off,
        (true, true) => TlsMode::Tls,
        (true, false) => TlsMode::Mutual,
    };
    for (key, mode) in TLS_PORT_KEYS.into_iter().zip(tls_modes(&mut tls)) {
        if table.key(Section::Tls, key).is_none() {
            *mode = followed;
        }
    }
    let modes = [tls.resp, tls.native, tls.admin];
    let serving = tls.enabled || modes.iter().any(|&m| m != TlsMode::Off);
    let required = if tls.enabled {
        "when `enabled = true`"
    } else {
        "when a port's mode is \"tls\" or \"mtls\""
    };
    for (key, path) in [("cert_file", &tls.cert_file), ("key_file", &tls.key_file)] {
        if serving && path.is_empty() {
            return Err(missing(table, key, &TLS_PORT_KEYS, required));
        }
    }
    if modes.contains(&TlsMode::Mutual) && tls.client_ca_file.is_empty() {
        let required = "when a port's mode is \"mtls\"";
        return Err(missing(table, "client_ca_file", &TLS_PORT_KEYS, required));
    }
    if !tls.client_crl_file.is_empty() && tls.client_ca_file.is_empty() {
        let required = "when `client_crl_file` is given";
        return Err(missing(
            table,
            "client_ca_file",
            &["client_crl_file"],
            required,
        ));
    }
    Ok(tls)
}

fn tls_modes(tls: &mut Tls) -> [&mut TlsMode; 3] {
    [&mut tls.resp, &mut tls.native, &mut tls.admin]
}

/// A `[tls]` key that is missing (or given empty): reported at the key if
/// it was given, else at whichever of `because` was given last, else at the
/// table's header.
fn missing(
    table: &Table,
    key: &'static str,
    because: &[&'static str],
    required: &'static str,
) -> ConfigError {
    let at = table
        .key(Section::Tls, key)
        .or(last_given(table, Section::Tls, because).map(|(_, at)| at))
        .or(table.header)
        .unwrap_or(START);
    error(at, Section::Tls, key, ErrorKind::Missing { required })
}

fn engine(document: &Document) -> Result<(), ConfigError> {
    let engine = &document.engine;
    let table = &document.engine_table;
    if engine.batch_bytes_max > engine.segment_bytes {
        return Err(inconsistent(
            table,
            &["batch_bytes_max", "segment_bytes"],
            "`batch_bytes_max` <= `segment_bytes`",
        ));
    }
    let record_bytes_max =
        u64::from(engine.key_bytes_max) + engine.value_bytes_max + RECORD_OVERHEAD_BYTES_MAX;
    if record_bytes_max > engine.segment_bytes {
        return Err(inconsistent(
            table,
            &["key_bytes_max", "value_bytes_max", "segment_bytes"],
            "`key_bytes_max` + `value_bytes_max` + 4KiB <= `segment_bytes`",
        ));
    }
    Ok(())
}

/// An [`ErrorKind::Inconsistent`] at whichever of `keys` was given last.
fn inconsistent(table: &Table, keys: &[&'static str], requires: &'static str) -> ConfigError {
    let (key, at) =
        last_given(table, Section::Engine, keys).unwrap_or(("", table.header.unwrap_or(START)));
    error(
        at,
        Section::Engine,
        key,
        ErrorKind::Inconsistent { requires },
    )
}

fn namespace(draft: NamespaceDraft) -> Result<NamespaceConfig, ConfigError> {
    let table = &draft.table;
    let header = table.header.unwrap_or(START);
    let given = |key| table.key(Section::Namespace, key);
    let conflict = |first: &'static str, second: &'static str| {
        // Report at the key given last, naming the other.
        let (key, at) =
            last_given(table, Section::Namespace, &[first, second]).unwrap_or((second, header));
        let with = if key == first { second } else { first };
        error(at, Section::Namespace, key, ErrorKind::Conflict { with })
    };
    let missing = |key, required| {
        error(
            header,
            Section::Namespace,
            key,
            ErrorKind::Missing { required },
        )
    };
    let target = match (draft.path, draft.serial, draft.nsid) {
        (Some(_), Some(_), _) => return Err(conflict("path", "serial")),
        (Some(_), None, Some(_)) => return Err(conflict("path", "nsid")),
        (Some(path), None, None) => NamespaceTarget::Path(path),
        (None, Some(serial), Some(nsid)) => NamespaceTarget::Serial { serial, nsid },
        (None, Some(_), None) => return Err(missing("nsid", "when `serial` is given")),
        (None, None, Some(_)) => return Err(missing("serial", "when `nsid` is given")),
        (None, None, None) => {
            return Err(missing("path", "unless `serial` and `nsid` are given"));
        }
    };
    if matches!(target, NamespaceTarget::Serial { .. }) && given("size").is_some() {
        return Err(conflict("serial", "size"));
    }
    if draft.sqpoll && draft.backend != Backend::Uring {
        let (key, at) = last_given(table, Section::Namespace, &["backend", "sqpoll"])
            .unwrap_or(("sqpoll", header));
        return Err(error(
            at,
            Section::Namespace,
            key,
            ErrorKind::Inconsistent {
                requires: "`backend = \"uring\"` when `sqpoll = true`",
            },
        ));
    }
    Ok(NamespaceConfig {
        target,
        backend: draft.backend,
        size_bytes: draft.size_bytes,
        sqpoll: draft.sqpoll,
    })
}

/// The key of `keys` given on the latest line, and where.
fn last_given(
    table: &Table,
    section: Section,
    keys: &[&'static str],
) -> Option<(&'static str, Position)> {
    keys.iter()
        .filter_map(|&key| Some((key, table.key(section, key)?)))
        .max_by_key(|(_, at)| (at.line, at.column))
}

fn error(at: Position, section: Section, key: &str, kind: ErrorKind) -> ConfigError {
    ConfigError::new(at.line, at.column, Some(section.header()), key, kind)
}
