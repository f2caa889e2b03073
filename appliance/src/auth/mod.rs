//! Users, passwords and roles on the RESP port (`docs/security.md`).
//!
//! [`users`] loads the users file that `[auth] users_file` names, failing
//! the start on anything it cannot parse; `verifier.rs` checks passwords on
//! threads of its own, off the data path; [`gate`] stands before command
//! dispatch and answers `AUTH`, `HELLO ... AUTH` and `ACL WHOAMI`, refuses
//! other commands before authentication (`-NOAUTH`) and commands outside
//! the user's role (`-NOPERM`), with Redis's texts.

mod gate;
mod throttle;
mod token;
mod users;
mod verifier;

pub use gate::{gate, Gate, Login, Session, Then, WRONGPASS};
pub use throttle::{FAILURES_BURST, REFILL_EVERY};
pub use token::{load_admin_token, token_matches, TOKEN_BYTES_MIN};
pub use users::{hash_password, load, Role, Users};
pub use verifier::{Inbox, Submitted, Verifier, QUEUE_MAX};
