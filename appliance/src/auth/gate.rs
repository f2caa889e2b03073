//! The check before command dispatch when users are configured: who the
//! connection is, and whether its role allows the command. Replies are
//! Redis 7.0's, byte for byte (`tests/auth.rs` compares them with
//! redis-server's).

use super::users::{Role, Users};
use crate::command_table::{self, CommandSpec};
use crate::commands::Action;
use crate::resp::encode;

const NOAUTH: &str = "NOAUTH Authentication required.";
const NOAUTH_HELLO: &str = "NOAUTH HELLO must be called with the client already authenticated, \
     otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and \
     select the RESP protocol version at the same time";
const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

/// A connection's login.
#[derive(Debug, Default)]
pub struct Session {
    /// The authenticated user and their role; `None` until `AUTH`.
    user: Option<(Vec<u8>, Role)>,
}

fn reply_error(message: &str) -> Action {
    let mut out = Vec::new();
    encode::error(&mut out, message);
    Action::Reply(out)
}

fn arity(name: &str) -> Action {
    reply_error(&format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

/// Answers `words` here, or returns `None` to let dispatch run it: an
/// authenticated user's permitted command, `QUIT`, and a `HELLO` whose
/// `AUTH` succeeded.
///
/// Fails closed where it departs from Redis: before a login every other
/// command gets `-NOAUTH`, even an unknown one or one with the wrong number
/// of arguments (Redis reports those first); and a command the table does
/// not describe (an unknown one, or one added to dispatch without its
/// table entry) is allowed to admins only.
pub fn gate(users: &Users, session: &mut Session, words: &[&[u8]]) -> Option<Action> {
    let (first, rest) = words.split_first()?;
    let name = String::from_utf8_lossy(first).to_ascii_lowercase();
    match name.as_str() {
        "auth" => return Some(auth(users, session, rest)),
        "hello" => return hello(users, session, rest),
        "quit" => return None,
        _ => {}
    }
    if name == "acl" {
        return Some(match &session.user {
            None => reply_error(NOAUTH),
            Some((user, _)) => acl(user, rest),
        });
    }
    let role = match &session.user {
        None => return Some(reply_error(NOAUTH)),
        Some((_, role)) => *role,
    };
    let permitted = match command_table::find(first) {
        Some(spec) => permits(role, spec),
        None => role == Role::Admin,
    };
    if permitted {
        return None;
    }
    Some(reply_error(&format!(
        "NOPERM this user has no permissions to run the '{name}' command"
    )))
}

/// Redis's ACL categories decide: `read` may run no `@write` command, and
/// neither `read` nor `write` an `@admin` or `@dangerous` one.
fn permits(role: Role, spec: &CommandSpec) -> bool {
    let has = |category: &str| spec.categories.contains(&category);
    match role {
        Role::Admin => true,
        Role::Write => !has("@admin") && !has("@dangerous"),
        Role::Read => !has("@write") && !has("@admin") && !has("@dangerous"),
    }
}

/// `AUTH password` (the user `default`) or `AUTH user password`.
fn auth(users: &Users, session: &mut Session, rest: &[&[u8]]) -> Action {
    let (user, password): (&[u8], &[u8]) = match rest {
        [password] => (b"default", password),
        [user, password] => (user, password),
        [] => return arity("auth"),
        _ => return reply_error("ERR syntax error"),
    };
    match users.verify(user, password) {
        Some(role) => {
            session.user = Some((user.to_vec(), role));
            let mut out = Vec::new();
            encode::simple(&mut out, "OK");
            Action::Reply(out)
        }
        None => reply_error(WRONGPASS),
    }
}

/// `HELLO [protover [AUTH user password] [SETNAME name]]`: a failed `AUTH`
/// is refused here; otherwise dispatch answers the `HELLO` itself (it
/// checks the protocol version and the options).
fn hello(users: &Users, session: &mut Session, rest: &[&[u8]]) -> Option<Action> {
    let credentials = rest
        .iter()
        .position(|word| word.eq_ignore_ascii_case(b"auth"))
        .and_then(|at| Some((*rest.get(at + 1)?, *rest.get(at + 2)?)));
    match credentials {
        Some((user, password)) => match users.verify(user, password) {
            Some(role) => {
                session.user = Some((user.to_vec(), role));
                None
            }
            None => Some(reply_error(WRONGPASS)),
        },
        None if session.user.is_none() => Some(reply_error(NOAUTH_HELLO)),
        None => None,
    }
}

/// The `ACL` subcommands there are: `WHOAMI`.
fn acl(user: &[u8], rest: &[&[u8]]) -> Action {
    let Some((sub, args)) = rest.split_first() else {
        return arity("acl");
    };
    let sub_name = String::from_utf8_lossy(sub).to_ascii_lowercase();
    match (sub_name.as_str(), args) {
        ("whoami", []) => {
            let mut out = Vec::new();
            encode::bulk(&mut out, user);
            Action::Reply(out)
        }
        ("whoami", _) => arity("acl|whoami"),
        _ => reply_error(&format!(
            "ERR unknown subcommand '{}'. Try ACL HELP.",
            String::from_utf8_lossy(sub)
        )),
    }
}
