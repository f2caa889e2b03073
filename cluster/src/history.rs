//! Linearizability checking of client histories against a key-value store.
//!
//! The cluster simulator records every client operation (what was asked,
//! when it was invoked, when and how it ended) and asks [`check`] whether
//! some order of the operations explains every answer as if each had taken
//! effect atomically at one instant inside its interval. Each operation
//! touches one key and linearizability is compositional (Herlihy & Wing),
//! so every key is checked alone, as a register that starts absent.
//!
//! The search is Wing & Gong's as improved by Lowe ("WGL", as in Porcupine
//! and Knossos): walk the time-ordered call and return events, try each
//! operation whose call comes before the first pending return as the next
//! to take effect, backtrack when every such choice fails, and memoize
//! every (set of operations placed, register value) pair already explored,
//! because two orders reaching the same pair have the same futures. Values
//! are interned per key to small integers so that a memo entry is a bitset
//! plus one word.
//!
//! A write whose outcome is unknown ([`Outcome::Indeterminate`]) may take
//! effect at any instant after its invocation, or never: it has no return
//! event, and the search succeeds once every *determinate* operation is
//! placed.
//!
//! Plain WGL ran out of a million states on some keys of 300 operations
//! from 16 clients, and on most refutations of such keys, so the search
//! only makes moves that keep some linearization whenever one exists (see
//! `Search`): reads of the current value are placed without branching;
//! acknowledged writes no read saw ride along with the next write;
//! indeterminate writes are tried only right before a read of their value
//! (and dropped when no read returned it); and a state is abandoned as soon
//! as some read's value is gone with no write left to bring it back. Such
//! keys then take a few thousand states at most, milliseconds.
//!
//! The search is bounded by [`Budget::states_per_key`]: a key that needs
//! more states is reported as [`ViolationKind::Inconclusive`], never as
//! linearizable.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

/// What a client asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Put(Vec<u8>),
    Delete,
    Get,
}

/// How an operation ended, as the client saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Put/Delete acknowledged.
    Written,
    /// Get answered with this value (`None`: no such key).
    Read(Option<Vec<u8>>),
    /// Definitely did not take effect (refused before any replication,
    /// e.g. "not leader"). Ignored by the checker.
    Failed,
    /// Unknown: timed out, connection lost, leader changed while in flight.
    /// A write may or may not have taken effect, at any time after it was
    /// invoked (even long after the client gave up). An indeterminate Get
    /// constrains nothing and is ignored.
    Indeterminate,
}

/// One client operation on one key.
///
/// `invoked` and `completed` are logical times from one clock: A precedes B
/// in real time iff `A.completed < B.invoked`, so equal times overlap. For
/// an [`Outcome::Indeterminate`] operation `completed` (when the client gave
/// up) is only shown in reports; the checker treats it as infinity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    pub client: u64,
    pub key: Vec<u8>,
    pub op: Op,
    pub invoked: u64,
    pub completed: u64,
    pub outcome: Outcome,
}

/// The operations recorded so far, grouped by key (each key is checked
/// alone), each key's in the order they were recorded.
#[derive(Clone, Debug, Default)]
pub struct History {
    by_key: BTreeMap<Vec<u8>, Vec<Operation>>,
    len: usize,
}

impl History {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn record(&mut self, operation: Operation) {
        self.len += 1;
        self.by_key
            .entry(operation.key.clone())
            .or_default()
            .push(operation);
    }

    /// Operations recorded, of every outcome.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The keys touched, in byte order.
    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        self.by_key.keys().map(Vec::as_slice)
    }

    /// The operations on `key`, in the order they were recorded.
    pub fn operations(&self, key: &[u8]) -> &[Operation] {
        self.by_key.get(key).map_or(&[], Vec::as_slice)
    }

    /// Every operation, key by key.
    pub fn iter(&self) -> impl Iterator<Item = &Operation> {
        self.by_key.values().flatten()
    }
}

impl Extend<Operation> for History {
    fn extend<I: IntoIterator<Item = Operation>>(&mut self, operations: I) {
        for operation in operations {
            self.record(operation);
        }
    }
}

impl FromIterator<Operation> for History {
    fn from_iter<I: IntoIterator<Item = Operation>>(operations: I) -> Self {
        let mut history = Self::new();
        history.extend(operations);
        history
    }
}

/// How far the search may go before giving up on a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Distinct (placed operations, value) states memoized per key. Each
    /// costs roughly 64 bytes plus 8 per 64 operations of the key, and the
    /// time spent is at most this times the key's concurrency.
    pub states_per_key: usize,
}

impl Default for Budget {
    /// For a key of a few hundred operations: at most a few seconds (four
    /// with 64 clients in flight) and about 100 MB, where real registers'
    /// histories from 16 clients need a few thousand states.
    fn default() -> Self {
        Self {
            states_per_key: 1 << 20,
        }
    }
}

/// What a successful check looked at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Keys checked.
    pub keys: usize,
    /// Operations that constrained the search: acknowledged writes, answered
    /// reads and indeterminate writes.
    pub operations: usize,
    /// Writes with an unknown outcome, among `operations`.
    pub indeterminate_writes: usize,
    /// Failed operations and indeterminate reads, which constrain nothing.
    pub ignored: usize,
    /// The most search states any one key needed.
    pub max_states: usize,
}

/// Why a check did not pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ViolationKind {
    /// No order of the key's operations explains every answer.
    NotLinearizable,
    /// The search ran out of [`Budget`] after this many states: the key is
    /// neither proven linearizable nor refuted.
    Inconclusive { states: usize },
    /// An operation that cannot be judged: it completed before it was
    /// invoked, or its outcome does not fit its kind (a Get "written").
    Malformed,
}

/// A key whose history did not pass, with what the checker can say of why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub kind: ViolationKind,
    pub key: Vec<u8>,
    /// One line: the read no write explains, or where the search got stuck
    /// (or gave up).
    pub reason: String,
    /// The key's operations the reason is about (those that could not be
    /// linearized), in invocation order.
    pub operations: Vec<Operation>,
    /// The last operations of the longest order the search found, in that
    /// order: what the register went through just before it got stuck.
    /// Empty when the reason needs no search.
    pub linearized_tail: Vec<Operation>,
}

impl Violation {
    pub fn is_inconclusive(&self) -> bool {
        matches!(self.kind, ViolationKind::Inconclusive { .. })
    }
}

/// Checks every key with the default [`Budget`].
pub fn check(history: &History) -> Result<Summary, Violation> {
    check_with(history, Budget::default())
}

/// Checks every key, in byte order. A key that is not linearizable is
/// reported at once; an inconclusive one only if no later key is refuted,
/// since a refutation is the more useful report.
pub fn check_with(history: &History, budget: Budget) -> Result<Summary, Violation> {
    let mut summary = Summary::default();
    let mut inconclusive = None;
    for (key, operations) in &history.by_key {
        match check_key(key, operations, budget) {
            Ok(checked) => summary.add(&checked),
            Err(violation) if violation.is_inconclusive() => {
                inconclusive.get_or_insert(violation);
            }
            Err(violation) => return Err(violation),
        }
    }
    inconclusive.map_or(Ok(summary), Err)
}

impl Summary {
    fn add(&mut self, key: &Summary) {
        self.keys += key.keys;
        self.operations += key.operations;
        self.indeterminate_writes += key.indeterminate_writes;
        self.ignored += key.ignored;
        self.max_states = self.max_states.max(key.max_states);
    }
}

/// Checks one key's operations (all on `key`). A read that no write can
/// explain on its own (see [`refute_read`]) refutes the key at once, more
/// plainly and far sooner than a search, which may have to exhaust every
/// order of what came before the read; the search decides the rest.
fn check_key(key: &[u8], operations: &[Operation], budget: Budget) -> Result<Summary, Violation> {
    let violation = |kind, explanation: Explanation| Violation {
        kind,
        key: key.to_vec(),
        reason: explanation.reason,
        operations: explanation.operations,
        linearized_tail: explanation.linearized_tail,
    };
    let register = Register::new(operations).map_err(|(index, why)| {
        let reason = format!("{}: {why}", describe(&operations[index]));
        let explanation = explanation(reason, std::iter::once(&operations[index]));
        violation(ViolationKind::Malformed, explanation)
    })?;
    if let Some(explanation) = refute_read(operations) {
        return Err(violation(ViolationKind::NotLinearizable, explanation));
    }
    let (end, states) = Search::new(&register.searched, budget.states_per_key).run();
    let (kind, best) = match end {
        End::Linearizable => return Ok(register.summary(states)),
        End::Refuted(best) => (ViolationKind::NotLinearizable, best),
        End::OutOfBudget(best) => (ViolationKind::Inconclusive { states }, best),
    };
    Err(violation(kind, register.explain(operations, &best, kind)))
}

// ---------------------------------------------------------------------------
// One key's operations, reduced for the search.

/// What an operation does to the register, values interned (0: absent).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Write(u32),
    Read(u32),
}

/// How the search treats an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// An answered read, or an acknowledged write of a value some read
    /// returned: must be placed, wherever the register allows.
    Required,
    /// An acknowledged write of a value no read returned: must take effect
    /// but is never seen, so it only ever needs to go right before another
    /// write, or at the very end (see [`Search::frame`]).
    Unseen,
    /// An indeterminate write of a value some read returned: may take
    /// effect at any time after its invocation, or never.
    Optional,
}

/// An operation the search must (or, if optional, may) place.
#[derive(Clone, Copy, Debug)]
struct Entry {
    action: Action,
    role: Role,
    invoked: u64,
    /// `None`: indeterminate, may take effect at any time after `invoked`.
    completed: Option<u64>,
    /// Index into the key's operations, for reports.
    origin: usize,
}

/// One key's history as the search sees it.
struct Register {
    /// The operations to place: determinate ones, and indeterminate writes
    /// of values some read returned.
    searched: Vec<Entry>,
    /// Interned values: index is the id, `None` (absent) is id 0.
    values: Vec<Option<Vec<u8>>>,
    operations: usize,
    indeterminate_writes: usize,
    ignored: usize,
}

impl Register {
    /// Reduces `operations`, or names the first malformed one.
    fn new(operations: &[Operation]) -> Result<Self, (usize, &'static str)> {
        let mut interner = Interner::default();
        let mut entries = Vec::with_capacity(operations.len());
        let mut ignored = 0;
        for (origin, operation) in operations.iter().enumerate() {
            match entry(operation, origin, &mut interner).map_err(|why| (origin, why))? {
                Some(entry) => entries.push(entry),
                None => ignored += 1,
            }
        }
        let indeterminate_writes = entries.iter().filter(|e| e.completed.is_none()).count();
        let operations = entries.len();
        Ok(Self {
            searched: with_roles(entries),
            values: interner.values,
            operations,
            indeterminate_writes,
            ignored,
        })
    }

    fn summary(&self, states: usize) -> Summary {
        Summary {
            keys: 1,
            operations: self.operations,
            indeterminate_writes: self.indeterminate_writes,
            ignored: self.ignored,
            max_states: states,
        }
    }

    fn value(&self, id: u32) -> Option<&[u8]> {
        self.values.get(id as usize).and_then(|v| v.as_deref())
    }
}

/// Reduces one operation: `Ok(None)` if it constrains nothing.
fn entry(
    operation: &Operation,
    origin: usize,
    interner: &mut Interner,
) -> Result<Option<Entry>, &'static str> {
    let action = match (&operation.op, &operation.outcome) {
        (_, Outcome::Failed) | (Op::Get, Outcome::Indeterminate) => return Ok(None),
        (Op::Put(value), Outcome::Written | Outcome::Indeterminate) => {
            Action::Write(interner.id(Some(value)))
        }
        (Op::Delete, Outcome::Written | Outcome::Indeterminate) => Action::Write(0),
        (Op::Get, Outcome::Read(value)) => Action::Read(interner.id(value.as_deref())),
        (Op::Get, Outcome::Written) => return Err("a get cannot end \"written\""),
        (Op::Put(_) | Op::Delete, Outcome::Read(_)) => return Err("a write cannot end \"read\""),
    };
    let completed = match operation.outcome {
        Outcome::Indeterminate => None,
        _ if operation.completed < operation.invoked => {
            return Err("completed before it was invoked")
        }
        _ => Some(operation.completed),
    };
    Ok(Some(Entry {
        action,
        role: Role::Required,
        invoked: operation.invoked,
        completed,
        origin,
    }))
}

/// Sets each write's [`Role`] from whether some read returned its value,
/// and drops the indeterminate writes of values no read returned: a
/// linearization placing one stays valid without it, as no read can sit
/// between it and the next write.
fn with_roles(entries: Vec<Entry>) -> Vec<Entry> {
    let read: HashSet<u32> = entries
        .iter()
        .filter_map(|e| match e.action {
            Action::Read(value) => Some(value),
            Action::Write(_) => None,
        })
        .collect();
    entries
        .into_iter()
        .filter_map(|mut e| {
            let seen = match e.action {
                Action::Write(value) => read.contains(&value),
                Action::Read(_) => true,
            };
            e.role = match (seen, e.completed) {
                (true, Some(_)) => Role::Required,
                (true, None) => Role::Optional,
                (false, Some(_)) => Role::Unseen,
                (false, None) => return None,
            };
            Some(e)
        })
        .collect()
}

/// Maps a key's values to small integers, absent first.
struct Interner {
    ids: HashMap<Vec<u8>, u32>,
    values: Vec<Option<Vec<u8>>>,
}

impl Default for Interner {
    fn default() -> Self {
        Self {
            ids: HashMap::new(),
            values: vec![None],
        }
    }
}

impl Interner {
    fn id(&mut self, value: Option<&[u8]>) -> u32 {
        let Some(value) = value else { return 0 };
        if let Some(&id) = self.ids.get(value) {
            return id;
        }
        // A key has fewer values than operations; u32 is ample.
        let id = u32::try_from(self.values.len()).unwrap_or(u32::MAX);
        self.ids.insert(value.to_vec(), id);
        self.values.push(Some(value.to_vec()));
        id
    }
}

// ---------------------------------------------------------------------------
// The WGL search.

/// The sentinel node of the event list: both its head and its end.
const HEAD: usize = 0;

/// A node of the event list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Event {
    Head,
    Call(usize),
    Return(usize),
}

/// The call and return events of the operations not yet placed, in time
/// order, as a circular doubly linked list so that placing an operation
/// (unlinking its two events) and undoing it are O(1) ("dancing links").
struct Events {
    event: Vec<Event>,
    next: Vec<usize>,
    prev: Vec<usize>,
    /// Per entry: its call node and its return node (none if indeterminate).
    call: Vec<usize>,
    ret: Vec<Option<usize>>,
}

impl Events {
    /// Orders the events by time, calls before returns at equal times
    /// (equal times overlap), ties by entry for determinism.
    fn new(entries: &[Entry]) -> Self {
        let mut timeline: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * entries.len());
        for (index, entry) in entries.iter().enumerate() {
            timeline.push((entry.invoked, false, index));
            if let Some(completed) = entry.completed {
                timeline.push((completed, true, index));
            }
        }
        timeline.sort_unstable();
        let nodes = timeline.len() + 1;
        let mut events = Self {
            event: vec![Event::Head; nodes],
            next: (1..=nodes).map(|n| n % nodes).collect(),
            prev: (0..nodes).map(|n| (n + nodes - 1) % nodes).collect(),
            call: vec![HEAD; entries.len()],
            ret: vec![None; entries.len()],
        };
        for (position, &(_, is_return, index)) in timeline.iter().enumerate() {
            let node = position + 1;
            if is_return {
                events.event[node] = Event::Return(index);
                events.ret[index] = Some(node);
            } else {
                events.event[node] = Event::Call(index);
                events.call[index] = node;
            }
        }
        events
    }

    fn unlink(&mut self, node: usize) {
        let (prev, next) = (self.prev[node], self.next[node]);
        self.next[prev] = next;
        self.prev[next] = prev;
    }

    /// Undoes `unlink(node)`; undos must come in reverse order.
    fn relink(&mut self, node: usize) {
        let (prev, next) = (self.prev[node], self.next[node]);
        self.next[prev] = node;
        self.prev[next] = node;
    }

    fn lift(&mut self, entry: usize) {
        self.unlink(self.call[entry]);
        if let Some(ret) = self.ret[entry] {
            self.unlink(ret);
        }
    }

    fn unlift(&mut self, entry: usize) {
        if let Some(ret) = self.ret[entry] {
            self.relink(ret);
        }
        self.relink(self.call[entry]);
    }
}

/// The deepest point the search reached, for reports.
#[derive(Clone, Debug, Default)]
struct Best {
    /// Entries placed, in order.
    placed: Vec<usize>,
    /// Required entries among them.
    required: usize,
    /// The register's value after them.
    value: u32,
    /// Why the search could go no further from there.
    blocker: Option<Blocker>,
}

/// Why a state of the search had no future.
#[derive(Clone, Copy, Debug)]
enum Blocker {
    /// Every move failed, and this entry's return comes first: it had to
    /// take effect before anything invoked later.
    Deadline(usize),
    /// This read's value is gone from the register and no write left can
    /// bring it back.
    Starved(usize),
}

/// How a search ended.
#[derive(Debug)]
enum End {
    Linearizable,
    Refuted(Best),
    OutOfBudget(Best),
}

/// Memo keys are bitsets of placed entries plus the value as a last word.
type Memo = HashSet<Box<[u64]>, BuildHasherDefault<WordHasher>>;

/// One key's WGL search.
///
/// A *state* is the set of entries placed and the register's value; a
/// *candidate* is an entry not placed whose call comes before the first
/// pending return, so that everything that must precede it is placed. From
/// each state the search tries *moves*, depth first, and memoizes every
/// state it settles in: reaching one again means it has no future, since
/// the search stops at the first state where every required entry is
/// placed. The moves are chosen so that whenever some order of the rest
/// works, one starting with a move tried does:
/// - candidate reads of the current value are placed at once, with no
///   alternative tried ([`Search::settle`]);
/// - each candidate required write, preceded by every candidate unseen
///   write: an unseen write is invisible right before a write, so in any
///   order it can move up to just before the next write after it became a
///   candidate;
/// - the unseen write whose return is the first pending one, alone: if an
///   order starts with a run of unseen writes that some other candidate
///   cannot join, that write is in the run and may lead it;
/// - one optional write per value some candidate read returned, preceded
///   by the unseen writes ([`Search::useful_writes`]).
///
/// A state where some read's value is gone from the register with no write
/// of it left is abandoned at once ([`Supply`]). The search succeeds once
/// every required entry is placed: unseen ones left can go last, in
/// invocation order.
struct Search<'a> {
    entries: &'a [Entry],
    events: Events,
    /// Placed entries as a bitset; the last word is scratch for the value.
    placed: Vec<u64>,
    memo: Memo,
    budget: usize,
    /// Placed entries in order, each with the value before it.
    stack: Vec<(usize, u32)>,
    /// One per state on the current path: the moves made and left.
    frames: Vec<Frame>,
    value: u32,
    required: usize,
    required_total: usize,
    supply: Supply,
    best: Option<Best>,
}

/// Per value, the required reads and the writes (required or optional)
/// not yet placed, to see early that a read can no longer be explained:
/// its value is gone from the register and no write left can bring it back.
#[derive(Default)]
struct Supply {
    reads: Vec<u32>,
    writes: Vec<u32>,
    /// Values with reads left but no writes: each must be what the
    /// register holds, so more than one means a dead state.
    orphans: usize,
    /// The sum of the orphan values: the orphan itself when there is one.
    orphan_sum: u64,
}

impl Supply {
    fn new(entries: &[Entry]) -> Self {
        let values = entries
            .iter()
            .map(|e| match e.action {
                Action::Write(v) | Action::Read(v) => v as usize + 1,
            })
            .max()
            .unwrap_or(1);
        let mut supply = Self {
            reads: vec![0; values],
            writes: vec![0; values],
            ..Self::default()
        };
        for entry in entries {
            supply.count(entry, 1);
        }
        supply
    }

    /// Counts `entry` as left (`delta` 1) or as placed (`delta` -1).
    fn count(&mut self, entry: &Entry, delta: i32) {
        let (value, is_read) = match (entry.action, entry.role) {
            (Action::Read(v), _) => (v, true),
            (Action::Write(_), Role::Unseen) => return,
            (Action::Write(v), _) => (v, false),
        };
        let index = value as usize;
        let before = self.orphan(value);
        let counts = if is_read {
            &mut self.reads
        } else {
            &mut self.writes
        };
        counts[index] = counts[index].saturating_add_signed(delta);
        let after = self.orphan(value);
        match (before, after) {
            (false, true) => {
                self.orphans += 1;
                self.orphan_sum += u64::from(value);
            }
            (true, false) => {
                self.orphans -= 1;
                self.orphan_sum -= u64::from(value);
            }
            _ => {}
        }
    }

    /// Whether `value` has reads left but no writes.
    fn orphan(&self, value: u32) -> bool {
        let index = value as usize;
        self.reads[index] > 0 && self.writes[index] == 0
    }

    /// Whether some read left can no longer be explained with the register
    /// holding `value`.
    fn starved(&self, value: u32) -> bool {
        self.orphans > 1 || (self.orphans == 1 && self.orphan_sum != u64::from(value))
    }
}

/// A state on the search path and the moves to try from it.
struct Frame {
    /// The last entry of each move, most urgent (earliest return) first.
    moves: Vec<usize>,
    /// How many of them were tried.
    tried: usize,
    /// The candidate unseen writes, placed before each move but one.
    unseen: Vec<usize>,
    /// The entry whose return ends the candidates: it must be placed
    /// before any operation invoked after that. `None`: only indeterminate
    /// calls are left.
    stuck: Option<usize>,
    /// The stack's height in this state.
    height: usize,
}

/// Where a move (or the start) led.
enum Step {
    /// A new state, settled: try its moves.
    Settled,
    /// A state with no future: undo back to the current frame.
    Dead,
    Complete,
    OutOfBudget,
}

impl<'a> Search<'a> {
    fn new(entries: &'a [Entry], budget: usize) -> Self {
        Self {
            entries,
            events: Events::new(entries),
            placed: vec![0; entries.len().div_ceil(64) + 1],
            memo: Memo::default(),
            budget,
            stack: Vec::with_capacity(entries.len()),
            frames: Vec::with_capacity(entries.len()),
            value: 0,
            required: 0,
            required_total: entries.iter().filter(|e| e.role == Role::Required).count(),
            supply: Supply::new(entries),
            best: None,
        }
    }

    /// Runs to the end; also returns the states memoized.
    fn run(mut self) -> (End, usize) {
        let end = self.search();
        (end, self.memo.len())
    }

    fn search(&mut self) -> End {
        let mut step = self.settle();
        loop {
            match step {
                Step::Settled => {
                    let frame = self.frame();
                    self.frames.push(frame);
                }
                Step::Dead => self.undo_to(self.frames.last().map_or(0, |f| f.height)),
                Step::Complete => return End::Linearizable,
                Step::OutOfBudget => {
                    // Where it gave up may be deeper than any dead end.
                    self.note(|search| search.frames.last()?.stuck.map(Blocker::Deadline));
                    return End::OutOfBudget(self.best_so_far());
                }
            }
            let Some(frame) = self.frames.last_mut() else {
                return End::Refuted(self.best_so_far());
            };
            step = match frame.moves.get(frame.tried).copied() {
                Some(entry) => {
                    frame.tried += 1;
                    self.try_move(entry)
                }
                None => self.dead_end(),
            };
        }
    }

    /// The current state's moves (see [`Search`]). Required writes are
    /// tried earliest deadline first: in a real register's history that is
    /// close to the order they took effect in, so a witness is found with
    /// little backtracking.
    fn frame(&self) -> Frame {
        let (mut frame, optional) = self.candidates();
        let entries = self.entries;
        frame
            .moves
            .sort_by_key(|&e| (entries[e].completed, entries[e].invoked, e));
        if let Some(stuck) = frame.stuck.filter(|&e| entries[e].role == Role::Unseen) {
            frame.moves.insert(0, stuck);
        }
        let useful = self.useful_writes(&optional);
        frame.moves.extend(useful);
        frame
    }

    /// Sorts the calls before the first pending return: required writes
    /// into `moves`, unseen writes into `unseen`, optional writes into the
    /// second result; required reads do not match the settled value.
    fn candidates(&self) -> (Frame, Vec<usize>) {
        let mut frame = Frame {
            moves: Vec::new(),
            tried: 0,
            unseen: Vec::new(),
            stuck: None,
            height: self.stack.len(),
        };
        let mut optional = Vec::new();
        let mut node = self.events.next[HEAD];
        loop {
            match self.events.event[node] {
                Event::Call(entry) => {
                    match (self.entries[entry].role, self.entries[entry].action) {
                        (Role::Required, Action::Write(_)) => frame.moves.push(entry),
                        (Role::Required, Action::Read(_)) => {}
                        (Role::Unseen, _) => frame.unseen.push(entry),
                        (Role::Optional, _) => optional.push(entry),
                    }
                }
                Event::Return(entry) => {
                    frame.stuck = Some(entry);
                    break;
                }
                Event::Head => break,
            }
            node = self.events.next[node];
        }
        (frame, optional)
    }

    /// The optional writes worth trying next: one per value that some
    /// candidate read returned. Placing one is only ever needed right
    /// before a read of its value (one followed by a write or by nothing
    /// can be left out), and such a read must already be a candidate, as
    /// the write adds no return to wait for. Candidate optional writes of
    /// one value are interchangeable from here on (none has a deadline),
    /// so the first stands for all.
    fn useful_writes(&self, optional: &[usize]) -> Vec<usize> {
        let mut wanted: Vec<u32> = Vec::new();
        let mut node = self.events.next[HEAD];
        while let Event::Call(entry) = self.events.event[node] {
            if let Action::Read(value) = self.entries[entry].action {
                wanted.push(value);
            }
            node = self.events.next[node];
        }
        let mut useful: Vec<usize> = Vec::new();
        for &entry in optional {
            let action = self.entries[entry].action;
            let Action::Write(value) = action else {
                continue;
            };
            let taken = useful.iter().any(|&u| self.entries[u].action == action);
            if wanted.contains(&value) && !taken {
                useful.push(entry);
            }
        }
        useful
    }

    /// Makes the move ending with `entry` from the current frame's state.
    fn try_move(&mut self, entry: usize) -> Step {
        let frame = self.frames.len() - 1;
        if self.entries[entry].role != Role::Unseen {
            for index in 0..self.frames[frame].unseen.len() {
                let unseen = self.frames[frame].unseen[index];
                self.place(unseen);
            }
        }
        self.place(entry);
        self.settle()
    }

    /// Places every candidate read of the current value, as forced moves:
    /// if any order of the rest works, one placing such a read first does
    /// too (it needs nothing before it and changes nothing), so the search
    /// need not branch on where reads go among the writes around them.
    /// Then memoizes the state reached, unless a read left is starved.
    fn settle(&mut self) -> Step {
        let mut node = self.events.next[HEAD];
        loop {
            if self.required == self.required_total {
                return Step::Complete;
            }
            match self.events.event[node] {
                Event::Call(entry) if self.entries[entry].action == Action::Read(self.value) => {
                    self.place(entry);
                    // The read's events are gone: rescan from the head.
                    node = self.events.next[HEAD];
                }
                Event::Call(_) => node = self.events.next[node],
                Event::Return(_) | Event::Head if self.supply.starved(self.value) => {
                    return self.starved()
                }
                Event::Return(_) | Event::Head => return self.remember(),
            }
        }
    }

    /// Memoizes the current state, or finds it explored already, which
    /// means it has no future: the search ends at the first that does.
    fn remember(&mut self) -> Step {
        let last = self.placed.len() - 1;
        self.placed[last] = u64::from(self.value);
        if self.memo.contains(self.placed.as_slice()) {
            return Step::Dead;
        }
        if self.memo.len() >= self.budget {
            return Step::OutOfBudget;
        }
        self.memo.insert(self.placed.clone().into_boxed_slice());
        Step::Settled
    }

    /// Places `entry` next, whatever the register holds (moves are only
    /// made of writes and of reads of the current value).
    fn place(&mut self, entry: usize) {
        let Entry { action, role, .. } = self.entries[entry];
        self.placed[entry / 64] |= 1u64 << (entry % 64);
        self.stack.push((entry, self.value));
        if let Action::Write(value) = action {
            self.value = value;
        }
        self.required += usize::from(role == Role::Required);
        self.supply.count(&self.entries[entry], -1);
        self.events.lift(entry);
    }

    /// Undoes placements down to `height`, back to an earlier state.
    fn undo_to(&mut self, height: usize) {
        while self.stack.len() > height {
            let Some((entry, value)) = self.stack.pop() else {
                return;
            };
            self.events.unlift(entry);
            self.placed[entry / 64] &= !(1u64 << (entry % 64));
            self.value = value;
            self.required -= usize::from(self.entries[entry].role == Role::Required);
            self.supply.count(&self.entries[entry], 1);
        }
    }

    /// Every move from the current state failed: remembers the state if it
    /// is the deepest so far, and goes back to its parent.
    fn dead_end(&mut self) -> Step {
        let Some(frame) = self.frames.pop() else {
            return Step::Dead;
        };
        self.note(|_| frame.stuck.map(Blocker::Deadline));
        Step::Dead
    }

    /// A read left is starved: remembers the state if it is the deepest so
    /// far, naming that read.
    fn starved(&mut self) -> Step {
        self.note(|search| {
            (0..search.entries.len())
                .filter(|&e| search.placed[e / 64] & (1u64 << (e % 64)) == 0)
                .find(|&e| match search.entries[e].action {
                    Action::Read(v) => v != search.value && search.supply.orphan(v),
                    Action::Write(_) => false,
                })
                .map(Blocker::Starved)
        });
        Step::Dead
    }

    /// Remembers the current state as the deepest so far if it is (by
    /// required entries placed, then by all), blocked by what `blocker`
    /// finds.
    fn note(&mut self, blocker: impl FnOnce(&Self) -> Option<Blocker>) {
        let depth = (self.required, self.stack.len());
        if let Some(best) = &self.best {
            if (best.required, best.placed.len()) >= depth {
                return;
            }
        }
        self.best = Some(Best {
            placed: self.stack.iter().map(|&(entry, _)| entry).collect(),
            required: self.required,
            value: self.value,
            blocker: blocker(self),
        });
    }

    fn best_so_far(&mut self) -> Best {
        self.best.take().unwrap_or_default()
    }
}

/// FxHash's mixing, one word at a time: memo keys are machine words that
/// need no protection from adversarial collisions, and SipHash would cost
/// more than the rest of a search step.
#[derive(Default)]
struct WordHasher(u64);

impl WordHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for WordHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, word: u64) {
        self.add(word);
    }

    fn write_usize(&mut self, word: usize) {
        self.add(word as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

// ---------------------------------------------------------------------------
// Explanations.

/// What a violation report says, before the key is attached.
struct Explanation {
    reason: String,
    operations: Vec<Operation>,
    linearized_tail: Vec<Operation>,
}

/// The most operations a search-based report lists as context.
const TAIL: usize = 6;

impl Register {
    /// Describes where the search got stuck (or gave up).
    fn explain(&self, operations: &[Operation], best: &Best, kind: ViolationKind) -> Explanation {
        let origin = |entry: usize| &operations[self.searched[entry].origin];
        let pending = self.pending(operations, best);
        let required = self
            .searched
            .iter()
            .filter(|e| e.role == Role::Required)
            .count();
        let held = show_value(self.value(best.value));
        let progress = format!(
            "the longest order found fits {} of {required} operations (reads and writes of \
             values read), leaving {held} in the register",
            best.required
        );
        let reason = match (kind, best.blocker) {
            (ViolationKind::Inconclusive { states }, _) => format!(
                "search gave up after {states} states with no verdict (neither proven nor \
                 refuted); {progress}"
            ),
            (_, Some(Blocker::Deadline(stuck))) => format!(
                "{progress}; then {} cannot take effect before it completes, in any order of \
                 the {} operations that may go before it (listed)",
                describe(origin(stuck)),
                pending.len()
            ),
            (_, Some(Blocker::Starved(read))) => format!(
                "{progress}; then {} can no longer be explained: no write of its value is left",
                describe(origin(read)),
            ),
            (_, None) => format!("no order places every completed operation; {progress}"),
        };
        let skip = best.placed.len().saturating_sub(TAIL);
        Explanation {
            reason,
            operations: pending,
            linearized_tail: best.placed[skip..]
                .iter()
                .map(|&e| origin(e).clone())
                .collect(),
        }
    }

    /// The operations not placed at `best` that were invoked by the time
    /// its blocker completed, in invocation order.
    fn pending(&self, operations: &[Operation], best: &Best) -> Vec<Operation> {
        let placed: HashSet<usize> = best.placed.iter().copied().collect();
        let horizon = match best.blocker {
            Some(Blocker::Deadline(entry) | Blocker::Starved(entry)) => {
                self.searched[entry].completed
            }
            None => None,
        };
        let horizon = horizon.unwrap_or(u64::MAX);
        let mut pending: Vec<Operation> = (0..self.searched.len())
            .filter(|entry| !placed.contains(entry) && self.searched[*entry].invoked <= horizon)
            .map(|entry| operations[self.searched[entry].origin].clone())
            .collect();
        pending.sort_by_key(|operation| (operation.invoked, operation.client));
        pending
    }
}

/// A write as a possible source of a read's value.
struct Source<'a> {
    /// `None`: the key's initial absence.
    write: Option<&'a Operation>,
    /// The acknowledged write of another value that certainly came between
    /// it and the read, if any.
    overwritten_by: Option<&'a Operation>,
}

/// Finds, in invocation order, the first read that no write can explain on
/// its own: nothing wrote its value, every write of it began after the read
/// completed, or each was overwritten by an acknowledged write of another
/// value that completed before the read began. Any of these refutes the
/// key, and says so more plainly than the search.
fn refute_read(operations: &[Operation]) -> Option<Explanation> {
    let mut reads: Vec<&Operation> = operations
        .iter()
        .filter(|o| matches!((&o.op, &o.outcome), (Op::Get, Outcome::Read(_))))
        .collect();
    reads.sort_by_key(|read| (read.invoked, read.client));
    reads
        .into_iter()
        .find_map(|read| unexplained_read(operations, read))
}

/// The value a determinate write stores, or a determinate read returned.
fn written_value(operation: &Operation) -> Option<Option<&[u8]>> {
    match (&operation.op, &operation.outcome) {
        (_, Outcome::Failed) | (Op::Get, _) => None,
        (Op::Put(value), _) => Some(Some(value)),
        (Op::Delete, _) => Some(None),
    }
}

fn read_value(operation: &Operation) -> Option<&[u8]> {
    match &operation.outcome {
        Outcome::Read(value) => value.as_deref(),
        _ => None,
    }
}

/// Explains why `read` cannot be linearized, if a look at the writes of
/// its value (rather than a search) shows it: whether the write of its
/// value that could precede it and finished last was overwritten, since
/// whatever overwrote it overwrote the earlier ones (and the initial
/// absence) too. Linear in the key's operations.
fn unexplained_read(operations: &[Operation], read: &Operation) -> Option<Explanation> {
    let value = read_value(read);
    let latest = operations
        .iter()
        .filter(|o| written_value(o) == Some(value) && o.invoked <= read.completed)
        .max_by_key(|write| finished(write));
    let explained = match latest {
        Some(write) => overwriter(operations, Some(write), read, value).is_none(),
        None => value.is_none() && overwriter(operations, None, read, value).is_none(),
    };
    if explained {
        return None;
    }
    Some(unexplained(operations, read, value))
}

/// Why `read` (of `value`) cannot be linearized, knowing that it cannot.
fn unexplained(operations: &[Operation], read: &Operation, value: Option<&[u8]>) -> Explanation {
    let writes: Vec<&Operation> = operations
        .iter()
        .filter(|o| written_value(o) == Some(value))
        .collect();
    let initial = value.is_none().then_some(None);
    let candidates = writes.iter().filter(|w| w.invoked <= read.completed);
    let sources: Vec<Source> = initial
        .into_iter()
        .chain(candidates.map(|w| Some(*w)))
        .map(|write| Source {
            write,
            overwritten_by: overwriter(operations, write, read, value),
        })
        .collect();
    let head = format!(
        "read of {} by {}",
        show_value(value),
        describe_who_when(read)
    );
    if sources.is_empty() && writes.is_empty() {
        never_written(operations, read, value, head)
    } else if sources.is_empty() {
        written_too_late(read, &writes, head)
    } else {
        overwritten(read, &sources, head)
    }
}

/// When a write finished, an indeterminate one never.
fn finished(write: &Operation) -> u64 {
    match write.outcome {
        Outcome::Indeterminate => u64::MAX,
        _ => write.completed,
    }
}

/// The latest-completed acknowledged write of a value other than `value`
/// that certainly came after `write` (`None`: the initial absence) and
/// before `read`.
fn overwriter<'a>(
    operations: &'a [Operation],
    write: Option<&Operation>,
    read: &Operation,
    value: Option<&[u8]>,
) -> Option<&'a Operation> {
    let after = write.map_or(0, |w| finished(w).saturating_add(1));
    operations
        .iter()
        .filter(|o| o.outcome == Outcome::Written)
        .filter(|o| written_value(o).is_some_and(|v| v != value))
        .filter(|o| o.invoked >= after && o.completed < read.invoked)
        .max_by_key(|o| o.completed)
}

fn never_written(
    operations: &[Operation],
    read: &Operation,
    value: Option<&[u8]>,
    head: String,
) -> Explanation {
    let failed: Vec<&Operation> = operations
        .iter()
        .filter(|o| {
            o.outcome == Outcome::Failed
                && matches!(&o.op, Op::Put(v) if Some(v.as_slice()) == value)
        })
        .collect();
    let reason = match failed.first() {
        None => format!("{head}, but no operation wrote that value"),
        Some(first) => format!(
            "{head}, but only failed operations wrote that value, such as {}",
            describe(first)
        ),
    };
    explanation(reason, std::iter::once(read).chain(failed))
}

fn written_too_late(read: &Operation, writes: &[&Operation], head: String) -> Explanation {
    let first = writes.iter().min_by_key(|w| w.invoked).copied();
    let reason = match first {
        Some(first) => format!(
            "{head}, but every write of that value began after the read completed, the first \
             being {}",
            describe(first)
        ),
        None => format!("{head}, but no write of that value began before it completed"),
    };
    explanation(reason, std::iter::once(read).chain(writes.iter().copied()))
}

/// The most overwritten sources a reason spells out.
const SOURCES_SHOWN: usize = 3;

fn overwritten(read: &Operation, sources: &[Source], head: String) -> Explanation {
    let shown: Vec<String> = sources
        .iter()
        .take(SOURCES_SHOWN)
        .map(|source| {
            let what = source
                .write
                .map_or("the initial absence".to_string(), describe);
            match source.overwritten_by {
                Some(by) => format!("{what} by {}", describe(by)),
                None => what,
            }
        })
        .collect();
    let more = match sources.len().saturating_sub(SOURCES_SHOWN) {
        0 => String::new(),
        n => format!(", and {n} more"),
    };
    let reason = format!(
        "{head}, but every write of that value that could precede it was overwritten before \
         it began: {}{more}",
        shown.join("; ")
    );
    let involved = sources
        .iter()
        .flat_map(|source| [source.write, source.overwritten_by])
        .flatten();
    explanation(reason, std::iter::once(read).chain(involved))
}

/// Bundles a reason with its operations, deduplicated, in invocation order.
fn explanation<'a>(reason: String, involved: impl Iterator<Item = &'a Operation>) -> Explanation {
    let mut operations: Vec<Operation> = Vec::new();
    for operation in involved {
        if !operations.contains(operation) {
            operations.push(operation.clone());
        }
    }
    operations.sort_by_key(|operation| (operation.invoked, operation.client));
    Explanation {
        reason,
        operations,
        linearized_tail: Vec::new(),
    }
}

// ---------------------------------------------------------------------------
// Display.

/// Values longer than this are shortened in reports.
const VALUE_SHOWN: usize = 24;

/// A value for a report: quoted, escaped; or `<absent>`. A long one keeps
/// its start and its end, where values written by a test usually differ.
fn show_value(value: Option<&[u8]>) -> String {
    match value {
        None => "<absent>".to_string(),
        Some(bytes) if bytes.len() <= VALUE_SHOWN => format!("\"{}\"", bytes.escape_ascii()),
        Some(bytes) => format!(
            "\"{}…{}\" ({} bytes)",
            bytes[..VALUE_SHOWN - 8].escape_ascii(),
            bytes[bytes.len() - 6..].escape_ascii(),
            bytes.len()
        ),
    }
}

/// `[invoked, completed]`, or `[invoked, ∞)` for an unknown outcome.
fn interval(operation: &Operation) -> String {
    match operation.outcome {
        Outcome::Indeterminate => format!("[{}, ∞)", operation.invoked),
        _ => format!("[{}, {}]", operation.invoked, operation.completed),
    }
}

fn describe_who_when(operation: &Operation) -> String {
    format!("client {} at {}", operation.client, interval(operation))
}

/// One operation in a sentence: `client 1's put of "v3" at [10, 20]`.
fn describe(operation: &Operation) -> String {
    let who = operation.client;
    let when = interval(operation);
    match (&operation.op, &operation.outcome) {
        (Op::Put(value), Outcome::Indeterminate) => format!(
            "client {who}'s indeterminate put of {} at {when}",
            show_value(Some(value))
        ),
        (Op::Put(value), _) => {
            format!(
                "client {who}'s put of {} at {when}",
                show_value(Some(value))
            )
        }
        (Op::Delete, Outcome::Indeterminate) => {
            format!("client {who}'s indeterminate delete at {when}")
        }
        (Op::Delete, _) => format!("client {who}'s delete at {when}"),
        (Op::Get, Outcome::Read(value)) => format!(
            "client {who}'s get at {when} (read {})",
            show_value(value.as_deref())
        ),
        (Op::Get, _) => format!("client {who}'s get at {when}"),
    }
}

impl fmt::Display for Operation {
    /// `client 4: get at [120, 130]: read "v3"`; an unknown outcome also
    /// shows when the client gave up.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "client {}: ", self.client)?;
        match &self.op {
            Op::Put(value) => write!(f, "put {}", show_value(Some(value)))?,
            Op::Delete => f.write_str("delete")?,
            Op::Get => f.write_str("get")?,
        }
        write!(f, " at {}: ", interval(self))?;
        match &self.outcome {
            Outcome::Written => f.write_str("written"),
            Outcome::Read(value) => write!(f, "read {}", show_value(value.as_deref())),
            Outcome::Failed => f.write_str("failed"),
            Outcome::Indeterminate => {
                write!(f, "indeterminate (gave up at {})", self.completed)
            }
        }
    }
}

/// The most operations a report prints per list; the rest are counted.
const LISTED: usize = 40;

fn write_list(f: &mut fmt::Formatter<'_>, title: &str, operations: &[Operation]) -> fmt::Result {
    if operations.is_empty() {
        return Ok(());
    }
    write!(f, "\n{title}:")?;
    for operation in operations.iter().take(LISTED) {
        write!(f, "\n  {operation}")?;
    }
    match operations.len().saturating_sub(LISTED) {
        0 => Ok(()),
        more => write!(f, "\n  … and {more} more"),
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = match self.kind {
            ViolationKind::NotLinearizable => "is not linearizable",
            ViolationKind::Inconclusive { .. } => "could not be checked",
            ViolationKind::Malformed => "has a malformed operation",
        };
        write!(
            f,
            "key \"{}\" {verdict}: {}",
            self.key.escape_ascii(),
            self.reason
        )?;
        let title = match self.kind {
            ViolationKind::NotLinearizable => {
                "operations that could not be linearized, in invocation order"
            }
            ViolationKind::Inconclusive { .. } => {
                "operations pending where the search got deepest, in invocation order"
            }
            ViolationKind::Malformed => "the operation",
        };
        write_list(f, title, &self.operations)?;
        write_list(
            f,
            "last operations of the longest order found, in that order",
            &self.linearized_tail,
        )
    }
}

impl std::error::Error for Violation {}
