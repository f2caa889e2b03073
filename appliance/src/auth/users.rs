//! The users file: one user a line, `NAME ROLE HASH`, where ROLE is `read`,
//! `write` or `admin` and HASH an Argon2 hash in PHC form
//! (`$argon2id$v=19$m=19456,t=2,p=1$SALT$HASH`, as `veltrix hash-password`
//! prints). Blank lines and lines starting with `#` are ignored.

use std::collections::HashMap;

use anyhow::{anyhow, bail};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Argon2, Params};

/// Largest Argon2 memory cost a users file may ask for, in KiB (256 MiB).
const MEMORY_KIB_MAX: u32 = 256 << 10;
/// Most Argon2 passes a users file may ask for.
const PASSES_MAX: u32 = 16;
/// Most Argon2 lanes a users file may ask for.
const LANES_MAX: u32 = 8;

/// What a user may do. Each role includes the ones before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Commands that only read: no `@write`, `@admin` or `@dangerous`
    /// command (Redis's ACL categories).
    Read,
    /// Reads and writes: no `@admin` or `@dangerous` command.
    Write,
    /// Every command.
    Admin,
}

impl Role {
    fn parse(text: &str) -> Option<Role> {
        match text {
            "read" => Some(Role::Read),
            "write" => Some(Role::Write),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

struct User {
    role: Role,
    /// The PHC string, checked to parse at load.
    hash: String,
}

/// The users the RESP port accepts.
pub struct Users {
    users: HashMap<Vec<u8>, User>,
    /// Checked for an unknown user, so that a login costs the same whether
    /// or not the user exists.
    decoy: String,
}

impl std::fmt::Debug for Users {
    /// Names the count only: hashes stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Users({} users)", self.users.len())
    }
}

/// An Argon2id hash of `password` with a fresh random salt and Argon2's
/// default cost (19 MiB, 2 passes), in PHC form.
pub fn hash_password(password: &[u8]) -> anyhow::Result<String> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .map_err(|e| anyhow!("cannot encode a salt: {e}"))?;
    Argon2::default()
        .hash_password(password, &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| anyhow!("cannot hash the password: {e}"))
}

/// Reads the users file `[auth] users_file` names; `None` when it names
/// none (nobody authenticates). Any line it cannot parse is an error that
/// names the setting and the line.
pub fn load(auth: &firmware_config::Auth) -> anyhow::Result<Option<Users>> {
    let path = auth.users_file.as_str();
    if path.is_empty() {
        return Ok(None);
    }
    let setting = format!("[auth] users_file = {path:?}");
    let text = std::fs::read_to_string(path).map_err(|e| anyhow!("{setting}: cannot read: {e}"))?;
    let mut users = HashMap::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = format!("{setting}: line {}", index + 1);
        let [name, role, hash] = line.split_whitespace().collect::<Vec<_>>()[..] else {
            bail!("{at}: expected NAME ROLE HASH");
        };
        let role = Role::parse(role)
            .ok_or_else(|| anyhow!("{at}: unknown role `{role}` (read, write or admin)"))?;
        let parsed = PasswordHash::new(hash)
            .ok()
            .filter(|h| h.algorithm.as_str().starts_with("argon2"));
        let Some(parsed) = parsed else {
            bail!("{at}: not an Argon2 hash in PHC form ($argon2id$v=19$...; `veltrix hash-password` makes one)");
        };
        // Each login costs what its hash says: bound it, so that a hash
        // with a huge cost cannot make logins eat the machine.
        let cost = Params::try_from(&parsed).map_err(|e| anyhow!("{at}: {e}"))?;
        if cost.m_cost() > MEMORY_KIB_MAX || cost.t_cost() > PASSES_MAX || cost.p_cost() > LANES_MAX
        {
            bail!(
                "{at}: an Argon2 cost beyond the limits (m <= {MEMORY_KIB_MAX} KiB, t <= {PASSES_MAX}, p <= {LANES_MAX})"
            );
        }
        let user = User {
            role,
            hash: hash.to_string(),
        };
        if users.insert(name.as_bytes().to_vec(), user).is_some() {
            bail!("{at}: user `{name}` is given twice");
        }
    }
    if users.is_empty() {
        bail!("{setting}: holds no user, so nobody could log in");
    }
    let decoy = hash_password(&rand::random::<[u8; 16]>())?;
    Ok(Some(Users { users, decoy }))
}

impl Users {
    /// The user's role if `password` is theirs. An unknown user and a
    /// wrong password look the same, in the answer and in the time taken.
    pub fn verify(&self, name: &[u8], password: &[u8]) -> Option<Role> {
        let user = self.users.get(name);
        let hash = user.map_or(self.decoy.as_str(), |u| u.hash.as_str());
        let parsed = PasswordHash::new(hash).ok()?;
        let matched = Argon2::default().verify_password(password, &parsed).is_ok();
        user.filter(|_| matched).map(|u| u.role)
    }
}
