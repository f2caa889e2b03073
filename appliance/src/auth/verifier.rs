//! Password verification off the data path. An Argon2 check costs tens of
//! milliseconds of CPU; on a worker thread it would stall every other
//! connection of that worker, and anyone who can reach the port (no login
//! needed to send `AUTH`) could stall them all. So workers hand logins to a
//! few threads of their own through a bounded queue, and get the outcomes
//! back in their [`Inbox`], with a wake-up. Failed logins are limited per
//! source (`throttle.rs`).

use std::net::IpAddr;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::throttle::Throttle;
use super::users::{Role, Users};
use crate::audit::{AuditLog, Event};

/// Logins waiting for a verifier thread; more are refused at once.
pub const QUEUE_MAX: usize = 64;

/// Where a worker's login outcomes arrive: (ticket, role if verified).
pub struct Inbox {
    outcomes: Mutex<Vec<(u64, Option<Role>)>>,
    wake: Box<dyn Fn() + Send + Sync>,
}

impl Inbox {
    /// An inbox that calls `wake` when an outcome arrives.
    pub fn new(wake: Box<dyn Fn() + Send + Sync>) -> Arc<Inbox> {
        Arc::new(Inbox {
            outcomes: Mutex::new(Vec::new()),
            wake,
        })
    }

    /// The outcomes that arrived since the last call.
    pub fn take(&self) -> Vec<(u64, Option<Role>)> {
        std::mem::take(&mut *self.outcomes.lock().expect("login inbox lock is poisoned"))
    }

    fn put(&self, ticket: u64, role: Option<Role>) {
        self.outcomes
            .lock()
            .expect("login inbox lock is poisoned")
            .push((ticket, role));
        (self.wake)();
    }
}

struct Job {
    user: Vec<u8>,
    password: Vec<u8>,
    source: IpAddr,
    ticket: u64,
    inbox: Arc<Inbox>,
}

/// What became of a login handed to [`Verifier::submit`].
#[derive(Debug, PartialEq, Eq)]
pub enum Submitted {
    /// Its outcome will arrive in the inbox.
    Queued,
    /// Its source has failed too often lately: refuse it as a wrong
    /// password, unchecked.
    Throttled,
    /// The queue is full (or the threads are gone): refuse it.
    Busy,
}

/// The verifier threads' queue, and the failed logins per source. The
/// threads stop once every `Verifier` is dropped.
pub struct Verifier {
    queue: SyncSender<Job>,
    throttle: Arc<Throttle>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Verifier")
    }
}

impl Verifier {
    /// Starts `threads` verifier threads for `users`; every login they
    /// check is recorded in `audit` before its outcome is given.
    pub fn start(
        users: Arc<Users>,
        threads: usize,
        audit: Arc<AuditLog>,
    ) -> std::io::Result<Verifier> {
        let (queue, jobs) = sync_channel::<Job>(QUEUE_MAX);
        let jobs = Arc::new(Mutex::new(jobs));
        let throttle = Arc::new(Throttle::default());
        for _ in 0..threads.max(1) {
            let (users, jobs, throttle, audit) = (
                Arc::clone(&users),
                Arc::clone(&jobs),
                Arc::clone(&throttle),
                Arc::clone(&audit),
            );
            std::thread::Builder::new()
                .name("veltrix-login".into())
                .spawn(move || verify_until_closed(&users, &jobs, &throttle, &audit))?;
        }
        Ok(Verifier { queue, throttle })
    }

    /// Queues a login from `source`; its outcome arrives in `inbox` under
    /// `ticket`. Not queued when the source is throttled or the queue is
    /// full.
    pub fn submit(
        &self,
        user: Vec<u8>,
        password: Vec<u8>,
        source: IpAddr,
        ticket: u64,
        inbox: &Arc<Inbox>,
    ) -> Submitted {
        if !self.throttle.allows(source, Instant::now()) {
            return Submitted::Throttled;
        }
        let job = Job {
            user,
            password,
            source,
            ticket,
            inbox: Arc::clone(inbox),
        };
        match self.queue.try_send(job) {
            Ok(()) => Submitted::Queued,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => Submitted::Busy,
        }
    }
}

fn verify_until_closed(
    users: &Users,
    jobs: &Mutex<Receiver<Job>>,
    throttle: &Throttle,
    audit: &AuditLog,
) {
    loop {
        let job = jobs.lock().expect("login queue lock is poisoned").recv();
        let Ok(mut job) = job else {
            return;
        };
        let mut role = users.verify(&job.user, &job.password);
        if role.is_none() {
            throttle.failed(job.source, Instant::now());
        }
        let event = Event {
            actor: format!("user:{}", String::from_utf8_lossy(&job.user)),
            action: "login".into(),
            detail: match role {
                Some(role) => format!("from {}: accepted, role {role:?}", job.source),
                None => format!("from {}: refused", job.source),
            },
        };
        if let Err(e) = audit.append(event) {
            // Not recorded, not granted.
            tracing::error!("audit log: {e}; the login is refused");
            role = None;
        }
        // Overwritten, not just dropped: the password is gone from memory
        // once checked (as far as this copy goes).
        job.password.fill(0);
        job.inbox.put(job.ticket, role);
    }
}
