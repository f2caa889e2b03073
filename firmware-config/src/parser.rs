//! Reads the text line by line into a [`Document`]: every key's value, typed
//! and range-checked, and where each key and header was given. Relations
//! between keys are checked afterwards, in [`validate`](crate::validate).

use crate::error::{ConfigError, ErrorKind, Unit};
use crate::lexer::{self, Line, Value};
use crate::limits::{
    ERROR_NAME_BYTES_MAX, INPUT_BYTES_MAX, LINE_BYTES_MAX, MEMBERS_MAX, NAMESPACES_MAX,
};
use crate::schema::{
    self, Auth, Backend, Engine, PathString, Section, SerialString, Server, Tls, ZoneString,
    SECTION_KEYS_MAX, WORKERS_MAX,
};
use crate::{suggest, validate, value};

/// A 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Position {
    pub line: u32,
    pub column: u32,
}

/// Where one table's header and keys were given.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Table {
    pub header: Option<Position>,
    /// Indexed like [`Section::keys`].
    pub keys: [Option<Position>; SECTION_KEYS_MAX],
}

impl Table {
    /// Where `key` of `section` was given, if it was.
    pub(crate) fn key(&self, section: Section, key: &str) -> Option<Position> {
        let index = section.keys().iter().position(|k| *k == key)?;
        self.keys.get(index).copied().flatten()
    }
}

/// One `[[namespace]]` table as written, before checking that its keys fit
/// together.
#[derive(Debug, Clone)]
pub(crate) struct NamespaceDraft {
    pub table: Table,
    pub path: Option<PathString>,
    pub serial: Option<SerialString>,
    pub nsid: Option<u32>,
    pub backend: Backend,
    pub size_bytes: Option<u64>,
    pub sqpoll: bool,
}

/// `[cluster]` as written.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClusterDraft {
    pub table: Table,
    pub id: Option<u128>,
    pub node: Option<u64>,
    pub groups: Option<u32>,
    pub tick_ms: Option<u32>,
    pub election_ticks: Option<u32>,
}

/// One `[[member]]` table as written.
#[derive(Debug, Clone, Default)]
pub(crate) struct MemberDraft {
    pub table: Table,
    pub node: Option<u64>,
    pub zone: Option<ZoneString>,
    pub peer: Option<core::net::SocketAddr>,
    pub data: Option<core::net::SocketAddr>,
}

/// Everything the text said, each value valid on its own.
#[derive(Debug, Clone, Default)]
pub(crate) struct Document {
    pub server: Server,
    pub tls: Tls,
    pub auth: Auth,
    pub engine: Engine,
    pub namespaces: heapless::Vec<NamespaceDraft, NAMESPACES_MAX>,
    pub server_table: Table,
    pub tls_table: Table,
    pub auth_table: Table,
    pub engine_table: Table,
    pub cluster: ClusterDraft,
    pub members: heapless::Vec<MemberDraft, MEMBERS_MAX>,
}

/// Parses and validates; see [`crate::parse`].
pub(crate) fn parse(text: &str) -> Result<crate::Config, ConfigError> {
    if text.len() > INPUT_BYTES_MAX {
        let at = floor_char_boundary(text, INPUT_BYTES_MAX);
        let before = &text[..at];
        let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
        let line = 1 + before.bytes().filter(|b| *b == b'\n').count();
        return Err(ConfigError::new(
            to_u32(line),
            column(&text[line_start..], at - line_start),
            None,
            "",
            ErrorKind::InputTooLong {
                max: to_u32(INPUT_BYTES_MAX),
            },
        ));
    }
    // Some editors start UTF-8 files with a byte-order mark; it is not text.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut parser = Parser::default();
    for (index, raw) in text.split_inclusive('\n').enumerate() {
        // A carriage return belongs to the line ending only before a newline.
        let line = match raw.strip_suffix('\n') {
            Some(line) => line.strip_suffix('\r').unwrap_or(line),
            None => raw,
        };
        parser.line(to_u32(index + 1), line)?;
    }
    validate::finish(parser.document)
}

#[derive(Debug, Default)]
struct Parser {
    document: Document,
    /// The table keys go to; `None` before the first header.
    current: Option<Section>,
}

impl Parser {
    fn line(&mut self, number: u32, line: &str) -> Result<(), ConfigError> {
        if line.len() > LINE_BYTES_MAX {
            let at = floor_char_boundary(line, LINE_BYTES_MAX);
            return Err(ConfigError::new(
                number,
                column(line, at),
                None,
                "",
                ErrorKind::LineTooLong {
                    max: to_u32(LINE_BYTES_MAX),
                },
            ));
        }
        match lexer::lex(line) {
            Err(error) => {
                let is_header = line.trim_start_matches([' ', '\t']).starts_with('[');
                let section = if is_header { None } else { self.current };
                Err(ConfigError::new(
                    number,
                    column(line, error.at),
                    section.map(Section::header),
                    error.key,
                    error.kind,
                ))
            }
            Ok(Line::Blank) => Ok(()),
            Ok(Line::Header { name, array, at }) => {
                let position = Position {
                    line: number,
                    column: column(line, at),
                };
                self.header(position, name, array)
            }
            Ok(Line::KeyValue {
                key,
                key_at,
                value,
                value_at,
            }) => {
                let key_position = Position {
                    line: number,
                    column: column(line, key_at),
                };
                let value_position = Position {
                    line: number,
                    column: column(line, value_at),
                };
                self.key_value(key, key_position, value, value_position)
            }
        }
    }

    fn header(&mut self, at: Position, name: &str, array: bool) -> Result<(), ConfigError> {
        let written = bracketed(name, array);
        let error = |kind| Err(ConfigError::new(at.line, at.column, None, &written, kind));
        let known = Section::ALL
            .into_iter()
            .find(|section| section.name() == name && section.is_array() == array);
        let Some(section) = known else {
            return error(ErrorKind::UnknownSection {
                suggestion: suggest::section(&written),
            });
        };
        let document = &mut self.document;
        let table = match section {
            Section::Server => &mut document.server_table,
            Section::Tls => &mut document.tls_table,
            Section::Auth => &mut document.auth_table,
            Section::Engine => &mut document.engine_table,
            Section::Cluster => &mut document.cluster.table,
            Section::Member => {
                let draft = MemberDraft {
                    table: Table {
                        header: Some(at),
                        ..Table::default()
                    },
                    ..MemberDraft::default()
                };
                if document.members.push(draft).is_err() {
                    return error(ErrorKind::TooMany {
                        max: to_u32(MEMBERS_MAX),
                    });
                }
                self.current = Some(section);
                return Ok(());
            }
            Section::Namespace => {
                let draft = NamespaceDraft {
                    table: Table {
                        header: Some(at),
                        ..Table::default()
                    },
                    path: None,
                    serial: None,
                    nsid: None,
                    backend: Backend::default(),
                    size_bytes: None,
                    sqpoll: false,
                };
                if document.namespaces.push(draft).is_err() {
                    return error(ErrorKind::TooMany {
                        max: to_u32(NAMESPACES_MAX),
                    });
                }
                self.current = Some(section);
                return Ok(());
            }
        };
        if let Some(first) = table.header {
            return error(ErrorKind::Duplicate {
                first_line: first.line,
            });
        }
        table.header = Some(at);
        self.current = Some(section);
        Ok(())
    }

    fn key_value(
        &mut self,
        key: &str,
        key_at: Position,
        value: Value<'_>,
        value_at: Position,
    ) -> Result<(), ConfigError> {
        let header = self.current.map(Section::header);
        let error =
            |at: Position, kind| Err(ConfigError::new(at.line, at.column, header, key, kind));
        let index = self
            .current
            .and_then(|section| section.keys().iter().position(|k| *k == key));
        let (Some(section), Some(index)) = (self.current, index) else {
            let suggestion = suggest::key(key, self.current);
            return error(
                key_at,
                ErrorKind::UnknownKey {
                    suggestion: suggestion.map(|(key, _)| key),
                    suggested_section: suggestion
                        .map(|(_, section)| section)
                        .filter(|section| Some(*section) != self.current)
                        .map(Section::header),
                },
            );
        };
        // A key given twice is reported as such, whatever its value. `index`
        // is below the section's key count, which `schema` asserts is at most
        // `SECTION_KEYS_MAX`, the length of `Table::keys`.
        let claim = |table: &mut Table| match table.keys[index] {
            Some(first) => error(
                key_at,
                ErrorKind::Duplicate {
                    first_line: first.line,
                },
            ),
            None => {
                table.keys[index] = Some(key_at);
                Ok(())
            }
        };
        let document = &mut self.document;
        let applied = match section {
            Section::Server => {
                claim(&mut document.server_table)?;
                server(&mut document.server, key, value)
            }
            Section::Tls => {
                claim(&mut document.tls_table)?;
                tls(&mut document.tls, key, value)
            }
            Section::Auth => {
                claim(&mut document.auth_table)?;
                auth(&mut document.auth, key, value)
            }
            Section::Engine => {
                claim(&mut document.engine_table)?;
                engine(&mut document.engine, key, value)
            }
            Section::Cluster => {
                claim(&mut document.cluster.table)?;
                cluster(&mut document.cluster, key, value)
            }
            Section::Member => match document.members.last_mut() {
                Some(draft) => {
                    claim(&mut draft.table)?;
                    member(draft, key, value)
                }
                // Cannot happen: `current` is `Member` only once a draft
                // was pushed.
                None => Err(UNHANDLED),
            },
            Section::Namespace => match document.namespaces.last_mut() {
                Some(draft) => {
                    claim(&mut draft.table)?;
                    namespace(draft, key, value)
                }
                // Cannot happen: `current` is `Namespace` only once a draft
                // was pushed.
                None => Err(UNHANDLED),
            },
        };
        applied.or_else(|kind| error(value_at, kind))
    }
}

// The functions below see only keys of their section's key list (the caller
// checked), so `UNHANDLED` is never returned; it keeps them total without a
// panic.
const UNHANDLED: ErrorKind = ErrorKind::UnknownKey {
    suggestion: None,
    suggested_section: None,
};

fn server(server: &mut Server, key: &str, value: Value<'_>) -> Result<(), ErrorKind> {
    match key {
        "data_dir" => server.data_dir = value::non_empty_string(value, "a non-empty path")?,
        "workers" => server.workers = value::integer_as(value, (0, u64::from(WORKERS_MAX)))?,
        "listen" => server.listen = value::socket_address(value)?,
        "native_listen" => server.native_listen = value::socket_address(value)?,
        "admin_listen" => server.admin_listen = value::socket_address(value)?,
        "connections_max" => {
            server.connections_max = value::integer_as(value, schema::CONNECTIONS)?;
        }
        "log_level" => server.log_level = value::log_level(value)?,
        _ => return Err(UNHANDLED),
    }
    Ok(())
}

fn tls(tls: &mut Tls, key: &str, value: Value<'_>) -> Result<(), ErrorKind> {
    match key {
        "enabled" => tls.enabled = value::boolean(value)?,
        "cert_file" => tls.cert_file = value::string(value)?,
        "key_file" => tls.key_file = value::string(value)?,
        "client_ca_file" => tls.client_ca_file = value::string(value)?,
        "client_crl_file" => tls.client_crl_file = value::string(value)?,
        "resp" => tls.resp = value::tls_mode(value)?,
        "native" => tls.native = value::tls_mode(value)?,
        "admin" => tls.admin = value::tls_mode(value)?,
        _ => return Err(UNHANDLED),
    }
    Ok(())
}

fn auth(auth: &mut Auth, key: &str, value: Value<'_>) -> Result<(), ErrorKind> {
    match key {
        "users_file" => auth.users_file = value::string(value)?,
        "admin_token_file" => auth.admin_token_file = value::string(value)?,
        _ => return Err(UNHANDLED),
    }
    Ok(())
}

fn engine(engine: &mut Engine, key: &str, value: Value<'_>) -> Result<(), ErrorKind> {
    match key {
        "commit_interval_us" => {
            engine.commit_interval_us = value::integer_as(value, schema::COMMIT_INTERVAL_US)?;
        }
        "batch_bytes_max" => engine.batch_bytes_max = value::size(value, schema::BATCH_BYTES)?,
        "cache_bytes" => engine.cache_bytes = value::size(value, schema::CACHE_BYTES)?,
        "gc_io_share" => engine.gc_io_share = value::integer_as(value, schema::GC_IO_SHARE)?,
        "key_bytes_max" => {
            let bytes = value::size(value, schema::KEY_BYTES)?;
            let (min, max) = schema::KEY_BYTES;
            engine.key_bytes_max = u32::try_from(bytes).map_err(|_| ErrorKind::OutOfRange {
                min,
                max,
                unit: Unit::Bytes,
            })?;
        }
        "value_bytes_max" => engine.value_bytes_max = value::size(value, schema::VALUE_BYTES)?,
        "segment_bytes" => {
            let bytes = value::size(value, schema::SEGMENT_BYTES)?;
            if !bytes.is_power_of_two() {
                return Err(ErrorKind::InvalidValue {
                    expected: "a power of two, e.g. \"8MiB\"",
                });
            }
            engine.segment_bytes = bytes;
        }
        "checkpoint_interval_s" => {
            engine.checkpoint_interval_s = value::integer_as(value, schema::CHECKPOINT_INTERVAL_S)?;
        }
        _ => return Err(UNHANDLED),
    }
    Ok(())
}

fn namespace(draft: &mut NamespaceDraft, key: &str, value: Value<'_>) -> Result<(), ErrorKind> {
    match key {
        "path" => draft.path = Some(value::non_empty_string(value, "a non-empty path")?),
        "serial" => {
            draft.serial = Some(value::non_empty_string(value, "a non-empty serial number")?);
        }
        "nsid" => draft.nsid = Some(value::integer_as(value, schema::NSID)?),
        "backend" => draft.backend = value::backend(value)?,
        "size" => {
            let bytes = value::size(value, schema::NAMESPACE_BYTES)?;
            if bytes % schema::NAMESPACE_BYTES_ALIGN != 0 {
                return Err(ErrorKind::InvalidValue {
                    expected: "a multiple of 4KiB",
                });
            }
            draft.size_bytes = Some(bytes);
        }
        "sqpoll" => draft.sqpoll = value::boolean(value)?,
        _ => return Err(UNHANDLED),
    }
    Ok(())
}

fn cluster(cluster: &mut ClusterDraft, key: &str, value: Value<'_>) -> Result<(), ErrorKind> {
    match key {
        "id" => {
            let text = value::string::<32>(value)?;
            let id = (text.len() == 32)
                .then(|| u128::from_str_radix(&text, 16).ok())
                .flatten()
                .ok_or(ErrorKind::InvalidValue {
                    expected: "32 hexadecimal digits",
                })?;
            cluster.id = Some(id);
        }
        "node" => cluster.node = Some(value::integer(value, schema::NODE_ID)?),
        "groups" => {
            let groups: u32 = value::integer_as(value, schema::GROUPS)?;
            if !groups.is_power_of_two() {
                return Err(ErrorKind::InvalidValue {
                    expected: "a power of two from 1 to 1024",
                });
            }
            cluster.groups = Some(groups);
        }
        "tick_ms" => cluster.tick_ms = Some(value::integer_as(value, schema::TICK_MS)?),
        "election_ticks" => {
            cluster.election_ticks = Some(value::integer_as(value, schema::ELECTION_TICKS)?)
        }
        _ => return Err(UNHANDLED),
    }
    Ok(())
}

fn member(member: &mut MemberDraft, key: &str, value: Value<'_>) -> Result<(), ErrorKind> {
    match key {
        "node" => member.node = Some(value::integer(value, schema::NODE_ID)?),
        "zone" => member.zone = Some(value::non_empty_string(value, "a non-empty zone name")?),
        "peer" => member.peer = Some(value::socket_address(value)?),
        "data" => member.data = Some(value::socket_address(value)?),
        _ => return Err(UNHANDLED),
    }
    Ok(())
}

/// `[name]` or `[[name]]`, cut short to fit an error's name.
fn bracketed(name: &str, array: bool) -> heapless::String<ERROR_NAME_BYTES_MAX, u8> {
    let (open, close) = if array { ("[[", "]]") } else { ("[", "]") };
    let room = ERROR_NAME_BYTES_MAX - open.len() - close.len();
    // Section names are bare, so ASCII: any byte offset is a boundary.
    let name = name.get(..name.len().min(room)).unwrap_or("");
    let mut written = heapless::String::new();
    for part in [open, name, close] {
        // Cannot fail: the parts fit by construction.
        let pushed = written.push_str(part);
        debug_assert!(pushed.is_ok());
    }
    written
}

/// The 1-based column, in characters, of byte offset `at` in `line`.
fn column(line: &str, at: usize) -> u32 {
    let at = floor_char_boundary(line, at);
    to_u32(line[..at].chars().count() + 1)
}

fn floor_char_boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// Line and column numbers fit: the input is at most `INPUT_BYTES_MAX`
/// bytes, checked against `u32` in `limits`.
fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
