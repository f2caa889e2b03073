//! The check before command dispatch when users are configured: who the
//! connection is, and whether its role allows the command. Replies are
//! Redis 7.0's, byte for byte (`tests/auth.rs` compares them with
//! redis-server's).

use super::users::Role;
use crate::command_table;
use crate::commands::Action;
use crate::resp::encode;

const NOAUTH: &str = "NOAUTH Authentication required.";
const NOAUTH_HELLO: &str = "NOAUTH HELLO must be called with the client already authenticated, \
     otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and \
     select the RESP protocol version at the same time";
/// The answer to a wrong password, an unknown user and a throttled source.
pub const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

/// A connection's login.
#[derive(Debug, Default)]
pub struct Session {
    /// The authenticated user and their role; `None` until `AUTH`.
    user: Option<(Vec<u8>, Role)>,
    /// A login being verified: the connection takes no further command
    /// until it is decided, so pipelined commands see its outcome.
    pending: Option<Pending>,
}

#[derive(Debug)]
struct Pending {
    user: Vec<u8>,
    then: Then,
}

/// What to verify, and what to answer once verified.
#[derive(Debug)]
pub struct Login {
    pub user: Vec<u8>,
    pub password: Vec<u8>,
    pub then: Then,
}

/// The command a login came with.
#[derive(Debug)]
pub enum Then {
    /// `AUTH`: `+OK`.
    Auth,
    /// `HELLO ... AUTH ...`: dispatch runs the `HELLO` (these words).
    Hello(Vec<Vec<u8>>),
}

/// What the gate decided for a command.
#[derive(Debug)]
pub enum Gate {
    /// Dispatch runs it.
    Pass,
    /// This answer instead.
    Answer(Action),
    /// Verify a password first (off the worker thread), then
    /// [`Session::finish`].
    Verify(Login),
}

impl Session {
    /// A login is being verified.
    pub fn is_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Remembers the login being verified (its password goes to the
    /// verifier only).
    pub fn start(&mut self, user: Vec<u8>, then: Then) {
        self.pending = Some(Pending { user, then });
    }

    /// The verification's outcome: logs the user in with `role`, or not
    /// (the previous login, if any, stays, as in Redis). `Ok` with what
    /// the login came with once logged in, else the answer (`-WRONGPASS`).
    pub fn finish(&mut self, role: Option<Role>) -> Result<Then, Action> {
        let Some(login) = self.pending.take() else {
            return Err(reply_error("ERR no login in progress"));
        };
        let Some(role) = role else {
            return Err(reply_error(WRONGPASS));
        };
        self.user = Some((login.user, role));
        Ok(login.then)
    }
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

/// Decides for `words`: dispatch runs an authenticated user's permitted
/// command, `QUIT`, and a `HELLO` without `AUTH` once logged in; `AUTH`
/// and `HELLO ... AUTH` go to verification; the rest is answered here.
///
/// Fails closed where it departs from Redis: before a login every other
/// command gets `-NOAUTH`, even an unknown one or one with the wrong number
/// of arguments (Redis reports those first); and a command the table does
/// not describe (an unknown one, or one added to dispatch without its
/// table entry) is allowed to admins only.
pub fn gate(session: &Session, words: &[&[u8]]) -> Gate {
    let Some((first, rest)) = words.split_first() else {
        return Gate::Pass;
    };
    let name = String::from_utf8_lossy(first).to_ascii_lowercase();
    match name.as_str() {
        "auth" => return auth(rest),
        "hello" => return hello(session, words),
        "quit" => return Gate::Pass,
        _ => {}
    }
    if name == "acl" {
        return Gate::Answer(match &session.user {
            None => reply_error(NOAUTH),
            Some((user, _)) => acl(user, rest),
        });
    }
    let role = match &session.user {
        None => return Gate::Answer(reply_error(NOAUTH)),
        Some((_, role)) => *role,
    };
    // Containers (CLIENT, CONFIG) are judged by their subcommand, and
    // named `command|subcommand` in the refusal, as Redis does.
    let (permitted, named) = if let Some(subcommands) = container(&name) {
        let sub = rest
            .first()
            .map(|s| String::from_utf8_lossy(s).to_ascii_lowercase())
            .unwrap_or_default();
        let categories = subcommands
            .iter()
            .find(|(known, _)| *known == sub)
            .map(|(_, categories)| *categories);
        let permitted = match categories {
            Some(categories) => permits(role, categories),
            None => role == Role::Admin,
        };
        (permitted, format!("{name}|{sub}"))
    } else {
        let permitted = match command_table::find(first) {
            Some(spec) => permits(role, spec.categories),
            None => role == Role::Admin,
        };
        (permitted, name)
    };
    if permitted {
        return Gate::Pass;
    }
    Gate::Answer(reply_error(&format!(
        "NOPERM this user has no permissions to run the '{named}' command"
    )))
}

type Categories = &'static [&'static str];

/// The subcommands dispatch implements for a container command, with
/// their ACL categories as Redis 7.0 gives them; a subcommand not listed
/// is for admins only.
fn container(name: &str) -> Option<&'static [(&'static str, Categories)]> {
    const CONNECTION: Categories = &["@slow", "@connection"];
    const ADMIN: Categories = &["@admin", "@slow", "@dangerous"];
    match name {
        "client" => Some(&[
            ("setname", CONNECTION),
            ("getname", CONNECTION),
            ("setinfo", CONNECTION),
            ("list", ADMIN),
        ]),
        "config" => Some(&[("get", ADMIN)]),
        _ => None,
    }
}

/// Redis's ACL categories decide: `read` may run no `@write` command, and
/// neither `read` nor `write` an `@admin` or `@dangerous` one.
fn permits(role: Role, categories: Categories) -> bool {
    let has = |category: &str| categories.contains(&category);
    match role {
        Role::Admin => true,
        Role::Write => !has("@admin") && !has("@dangerous"),
        Role::Read => !has("@write") && !has("@admin") && !has("@dangerous"),
    }
}

/// `AUTH password` (the user `default`) or `AUTH user password`.
fn auth(rest: &[&[u8]]) -> Gate {
    let (user, password): (&[u8], &[u8]) = match rest {
        [password] => (b"default", password),
        [user, password] => (user, password),
        [] => return Gate::Answer(arity("auth")),
        _ => return Gate::Answer(reply_error("ERR syntax error")),
    };
    Gate::Verify(Login {
        user: user.to_vec(),
        password: password.to_vec(),
        then: Then::Auth,
    })
}

/// `HELLO [protover [AUTH user password] [SETNAME name]]`: with `AUTH`,
/// verify first; once verified, dispatch answers the `HELLO` itself (it
/// checks the protocol version and the options).
fn hello(session: &Session, words: &[&[u8]]) -> Gate {
    let credentials = words
        .iter()
        .skip(1)
        .position(|word| word.eq_ignore_ascii_case(b"auth"))
        .and_then(|at| Some((*words.get(at + 2)?, *words.get(at + 3)?)));
    match credentials {
        Some((user, password)) => Gate::Verify(Login {
            user: user.to_vec(),
            password: password.to_vec(),
            then: Then::Hello(words.iter().map(|w| w.to_vec()).collect()),
        }),
        None if session.user.is_none() => Gate::Answer(reply_error(NOAUTH_HELLO)),
        None => Gate::Pass,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<&[u8]> {
        line.split(' ').map(str::as_bytes).collect()
    }

    fn logged_in(role: Role) -> Session {
        Session {
            user: Some((b"u".to_vec(), role)),
            pending: None,
        }
    }

    fn answer(session: &Session, line: &str) -> Option<String> {
        match gate(session, &words(line)) {
            Gate::Answer(Action::Reply(bytes)) => Some(String::from_utf8(bytes).unwrap()),
            Gate::Answer(_) => Some("(another action)".into()),
            Gate::Pass => None,
            Gate::Verify(login) => Some(format!("verify {}", String::from_utf8_lossy(&login.user))),
        }
    }

    fn noperm(name: &str) -> Option<String> {
        Some(format!(
            "-NOPERM this user has no permissions to run the '{name}' command\r\n"
        ))
    }

    #[test]
    fn before_a_login_only_logins_and_quit_get_through() {
        let session = Session::default();
        let noauth = Some(format!("-{NOAUTH}\r\n"));
        for line in [
            "GET k",
            "PING",
            "FROB x",
            "GET",
            "ACL WHOAMI",
            "CLIENT SETNAME x",
        ] {
            assert_eq!(answer(&session, line), noauth, "{line}");
        }
        assert_eq!(
            answer(&session, "HELLO 3"),
            Some(format!("-{NOAUTH_HELLO}\r\n"))
        );
        assert_eq!(answer(&session, "QUIT"), None);
        assert_eq!(answer(&session, "AUTH pw"), Some("verify default".into()));
        assert_eq!(answer(&session, "auth u pw"), Some("verify u".into()));
        assert_eq!(
            answer(&session, "HELLO 3 SETNAME n AUTH u pw"),
            Some("verify u".into())
        );
        assert_eq!(
            answer(&session, "AUTH a b c"),
            Some("-ERR syntax error\r\n".into())
        );
    }

    #[test]
    fn roles_follow_the_acl_categories() {
        let reader = logged_in(Role::Read);
        let writer = logged_in(Role::Write);
        let admin = logged_in(Role::Admin);
        for line in [
            "GET k",
            "MGET a b",
            "SCAN 0",
            "PING",
            "CLIENT SETNAME n",
            "HELLO 3",
        ] {
            assert_eq!(answer(&reader, line), None, "reader: {line}");
        }
        assert_eq!(answer(&reader, "SET k v"), noperm("set"));
        assert_eq!(answer(&reader, "del k"), noperm("del"));
        assert_eq!(answer(&writer, "SET k v"), None);
        assert_eq!(answer(&writer, "DEL k"), None);
        for (line, name) in [
            ("FLUSHDB", "flushdb"),
            ("KEYS *", "keys"),
            ("INFO", "info"),
            ("CONFIG GET maxmemory", "config|get"),
            ("CLIENT LIST", "client|list"),
            ("CLIENT NOSUCH", "client|nosuch"),
            ("FROB x", "frob"),
        ] {
            assert_eq!(answer(&reader, line), noperm(name), "reader: {line}");
            assert_eq!(answer(&writer, line), noperm(name), "writer: {line}");
            assert_eq!(answer(&admin, line), None, "admin: {line}");
        }
        assert_eq!(answer(&reader, "ACL WHOAMI"), Some("$1\r\nu\r\n".into()));
    }

    #[test]
    fn a_failed_login_keeps_the_previous_one() {
        let mut session = logged_in(Role::Write);
        session.start(b"other".to_vec(), Then::Auth);
        assert!(session.is_pending());
        assert!(session.finish(None).is_err());
        assert!(!session.is_pending());
        assert_eq!(answer(&session, "SET k v"), None, "still the writer");
        session.start(b"other".to_vec(), Then::Auth);
        assert!(matches!(session.finish(Some(Role::Read)), Ok(Then::Auth)));
        assert_eq!(answer(&session, "SET k v"), noperm("set"));
    }
}
