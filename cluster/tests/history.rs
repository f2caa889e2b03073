//! Tests of the linearizability checker: hand-written histories with known
//! verdicts, histories of a real atomic register (which must pass) and the
//! same with one read corrupted (which must fail), agreement with a
//! brute-force oracle on small random histories, and the search budget.

use cluster::history::{
    check, check_with, Budget, History, Op, Operation, Outcome, Violation, ViolationKind,
};
use std::collections::HashSet;

use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const KEY: &[u8] = b"k";

fn operation(client: u64, op: Op, span: (u64, u64), outcome: Outcome) -> Operation {
    Operation {
        client,
        key: KEY.to_vec(),
        op,
        invoked: span.0,
        completed: span.1,
        outcome,
    }
}

fn put(client: u64, value: &str, invoked: u64, completed: u64) -> Operation {
    let op = Op::Put(value.as_bytes().to_vec());
    operation(client, op, (invoked, completed), Outcome::Written)
}

fn delete(client: u64, invoked: u64, completed: u64) -> Operation {
    operation(client, Op::Delete, (invoked, completed), Outcome::Written)
}

fn get(client: u64, value: Option<&str>, invoked: u64, completed: u64) -> Operation {
    let read = Outcome::Read(value.map(|v| v.as_bytes().to_vec()));
    operation(client, Op::Get, (invoked, completed), read)
}

fn indeterminate(mut operation: Operation) -> Operation {
    operation.outcome = Outcome::Indeterminate;
    operation
}

fn failed(mut operation: Operation) -> Operation {
    operation.outcome = Outcome::Failed;
    operation
}

fn passes(operations: Vec<Operation>) {
    let history: History = operations.into_iter().collect();
    if let Err(violation) = check(&history) {
        panic!("expected linearizable, got: {violation}");
    }
}

/// Checks that `operations` are refuted (not merely inconclusive) and
/// returns the report.
fn refuted(operations: Vec<Operation>) -> Violation {
    let history: History = operations.into_iter().collect();
    let violation = check(&history).expect_err("expected a violation");
    assert_eq!(
        violation.kind,
        ViolationKind::NotLinearizable,
        "{violation}"
    );
    assert_eq!(violation.key, KEY);
    violation
}

fn assert_reason(violation: &Violation, words: &[&str]) {
    let report = violation.to_string();
    for word in words {
        assert!(report.contains(word), "{word:?} missing from:\n{report}");
    }
}

// ---------------------------------------------------------------------------
// Hand-written histories.

#[test]
fn sequential_puts_and_gets_pass() {
    let history: History = [
        get(1, None, 0, 1),
        put(1, "a", 2, 3),
        get(2, Some("a"), 4, 5),
        put(2, "b", 6, 7),
        get(1, Some("b"), 8, 9),
        delete(3, 10, 11),
        get(1, None, 12, 13),
    ]
    .into_iter()
    .collect();
    let summary = check(&history).expect("linearizable");
    assert_eq!((summary.keys, summary.operations), (1, 7));
    assert!(summary.max_states >= 1);
}

#[test]
fn stale_read_after_an_acknowledged_overwrite_fails() {
    let violation = refuted(vec![
        put(1, "a", 0, 10),
        put(2, "b", 20, 30),
        get(3, Some("b"), 32, 34),
        get(4, Some("a"), 40, 50),
    ]);
    assert_reason(
        &violation,
        &[
            "read of \"a\" by client 4 at [40, 50]",
            "overwritten",
            "client 2's put of \"b\"",
        ],
    );
    assert!(violation.operations.contains(&get(4, Some("a"), 40, 50)));
}

#[test]
fn lost_acknowledged_write_fails() {
    let violation = refuted(vec![
        put(1, "old", 0, 10),
        get(2, Some("old"), 12, 14),
        put(1, "new", 20, 30),
        get(2, Some("old"), 40, 50),
        get(3, Some("old"), 60, 70),
    ]);
    assert_reason(&violation, &["client 1's put of \"new\" at [20, 30]"]);
}

/// Both writes precede both reads, so the reads must agree with the last;
/// no single write is overwritten before a read, so only the search sees it.
#[test]
fn stale_read_among_concurrent_writes_fails_by_search() {
    let violation = refuted(vec![
        put(1, "a", 0, 10),
        put(2, "b", 5, 30),
        get(3, Some("b"), 35, 40),
        get(4, Some("a"), 45, 50),
    ]);
    assert_reason(
        &violation,
        &["client 4's get at [45, 50] (read \"a\") can no longer be explained"],
    );
    assert!(!violation.linearized_tail.is_empty());
}

/// A write no read saw must still take effect, in its interval, even
/// when nothing can go in the same step (the put of "a" begins after it).
#[test]
fn an_acknowledged_write_nobody_read_still_takes_effect() {
    passes(vec![
        put(1, "unseen", 0, 10),
        put(2, "a", 20, 30),
        get(3, Some("a"), 40, 50),
    ]);
    let violation = refuted(vec![put(1, "unseen", 0, 10), get(2, None, 20, 30)]);
    assert_reason(
        &violation,
        &["read of <absent> by client 2 at [20, 30]", "overwritten"],
    );
    refuted(vec![
        get(3, None, 0, 100),
        put(1, "unseen", 0, 10),
        put(2, "a", 20, 30),
        get(3, None, 40, 50),
    ]);
}

#[test]
fn read_of_a_value_never_written_fails() {
    let violation = refuted(vec![put(1, "a", 0, 10), get(2, Some("ghost"), 20, 30)]);
    assert_reason(&violation, &["\"ghost\"", "no operation wrote that value"]);
}

#[test]
fn concurrent_get_may_see_either_value() {
    let before = || put(1, "a", 0, 5);
    let during = || put(2, "b", 10, 30);
    passes(vec![before(), during(), get(3, Some("a"), 15, 25)]);
    passes(vec![before(), during(), get(3, Some("b"), 15, 25)]);
    // Overlap is inclusive: completing when the other is invoked is no order.
    passes(vec![before(), during(), get(3, Some("a"), 30, 40)]);
    refuted(vec![before(), during(), get(3, Some("a"), 31, 40)]);
    refuted(vec![before(), during(), get(3, None, 15, 25)]);
}

#[test]
fn indeterminate_put_may_take_effect_much_later() {
    passes(vec![
        indeterminate(put(1, "x", 0, 5)),
        get(2, None, 10, 20),
        get(2, None, 500, 510),
        get(3, Some("x"), 1000, 1010),
        get(2, Some("x"), 1020, 1030),
    ]);
}

#[test]
fn indeterminate_put_may_never_take_effect() {
    passes(vec![
        indeterminate(put(1, "x", 0, 5)),
        indeterminate(put(1, "y", 6, 8)),
        get(2, None, 1000, 1010),
    ]);
}

#[test]
fn indeterminate_put_seen_then_gone_then_seen_again_fails() {
    let violation = refuted(vec![
        indeterminate(put(1, "x", 0, 5)),
        get(2, Some("x"), 10, 20),
        get(3, None, 30, 40),
        get(2, Some("x"), 50, 60),
    ]);
    assert_reason(&violation, &["client 3's get at [30, 40] (read <absent>)"]);
}

#[test]
fn delete_then_read_absent_passes_and_the_old_value_fails() {
    passes(vec![put(1, "a", 0, 1), delete(2, 2, 3), get(3, None, 4, 5)]);
    refuted(vec![
        put(1, "a", 0, 1),
        delete(2, 2, 3),
        get(3, Some("a"), 4, 5),
    ]);
}

#[test]
fn failed_put_whose_value_is_read_fails() {
    let violation = refuted(vec![failed(put(1, "a", 0, 10)), get(2, Some("a"), 20, 30)]);
    assert_reason(&violation, &["only failed operations wrote that value"]);
}

#[test]
fn indeterminate_and_failed_gets_constrain_nothing() {
    let history: History = [
        put(1, "a", 0, 1),
        indeterminate(get(2, Some("z"), 2, 3)),
        failed(get(2, Some("z"), 4, 5)),
        get(3, Some("a"), 6, 7),
    ]
    .into_iter()
    .collect();
    let summary = check(&history).expect("linearizable");
    assert_eq!((summary.operations, summary.ignored), (2, 2));
}

#[test]
fn keys_are_independent_and_the_failing_one_is_named() {
    let mut history: History = [put(1, "a", 0, 1), get(2, Some("a"), 2, 3)]
        .into_iter()
        .collect();
    let mut other = get(2, Some("a"), 4, 5);
    other.key = b"other\xff".to_vec();
    history.record(other);
    assert_eq!(history.keys().count(), 2);
    let violation = check(&history).expect_err("\"a\" was never written to the other key");
    assert_eq!(violation.key, b"other\xff");
    assert!(violation
        .to_string()
        .starts_with("key \"other\\xff\" is not linearizable"));
}

#[test]
fn an_operation_completed_before_it_was_invoked_is_malformed() {
    let history: History = [put(1, "a", 10, 5)].into_iter().collect();
    let violation = check(&history).expect_err("malformed");
    assert_eq!(violation.kind, ViolationKind::Malformed);
}

// ---------------------------------------------------------------------------
// The budget.

/// A real register's history that the search needs a few thousand states
/// for (duplicate values, sixteen clients).
fn demanding_history() -> History {
    simulate(Shape {
        seed: 147,
        clients: 16,
        per_client: 20,
        keys: 1,
        pool: Some(5),
    })
}

#[test]
fn a_search_over_budget_is_inconclusive_not_linearizable() {
    let history = demanding_history();
    let needed = check(&history).expect("linearizable").max_states;
    assert!(
        needed > 1000,
        "{needed} states: not demanding enough for the test"
    );
    let enough = Budget {
        states_per_key: needed,
    };
    assert!(check_with(&history, enough).is_ok());
    // The search is deterministic: one state fewer and it must give up.
    let short = Budget {
        states_per_key: needed - 1,
    };
    let violation = check_with(&history, short).expect_err("one state short");
    assert_eq!(
        violation.kind,
        ViolationKind::Inconclusive { states: needed - 1 }
    );
    assert!(violation.is_inconclusive());
    assert!(violation.to_string().contains("could not be checked"));
}

#[test]
fn a_refuted_key_outranks_an_inconclusive_one() {
    let mut history = demanding_history();
    let mut ghost = get(1, Some("ghost"), 0, 1);
    ghost.key = b"later".to_vec();
    history.record(ghost);
    let violation = check_with(&history, Budget { states_per_key: 4 }).expect_err("refuted");
    assert_eq!(violation.kind, ViolationKind::NotLinearizable);
    assert_eq!(violation.key, b"later");
}

// ---------------------------------------------------------------------------
// Histories of a real register.

/// The shape of a simulated run.
#[derive(Clone, Copy, Debug)]
struct Shape {
    seed: u64,
    clients: u64,
    per_client: usize,
    keys: u64,
    /// Draw values from this many (repeats make the checker's job harder);
    /// `None`: every write's value is unique.
    pool: Option<u64>,
}

/// Clients run operations back to back on an atomic register per key. Each
/// operation that succeeds takes effect at a random instant inside its
/// interval; an indeterminate write takes effect or not, possibly long
/// after the client gave up; a failed one never does.
fn simulate(shape: Shape) -> History {
    let mut rng = ChaCha8Rng::seed_from_u64(shape.seed);
    let mut operations = Vec::new();
    let mut effects = Vec::new();
    for client in 0..shape.clients {
        let mut time = rng.random_range(0..20);
        for _ in 0..shape.per_client {
            let (operation, effect) = simulated_operation(&mut rng, shape, client, time);
            time = operation.completed + rng.random_range(0..10);
            if let Some(instant) = effect {
                effects.push((instant, operations.len()));
            }
            operations.push(operation);
        }
    }
    effects.sort_unstable();
    let mut registers = std::collections::HashMap::<Vec<u8>, Vec<u8>>::new();
    for (_, index) in effects {
        let operation: &mut Operation = &mut operations[index];
        match &operation.op {
            Op::Put(value) => {
                registers.insert(operation.key.clone(), value.clone());
            }
            Op::Delete => {
                registers.remove(&operation.key);
            }
            Op::Get => operation.outcome = Outcome::Read(registers.get(&operation.key).cloned()),
        }
    }
    operations.into_iter().collect()
}

/// One operation and the instant it takes effect, if it does.
fn simulated_operation(
    rng: &mut ChaCha8Rng,
    shape: Shape,
    client: u64,
    time: u64,
) -> (Operation, Option<u64>) {
    let invoked = time;
    let completed = invoked + rng.random_range(0..40);
    let key = format!("k{}", rng.random_range(0..shape.keys)).into_bytes();
    let value = match shape.pool {
        Some(pool) => format!("p{}", rng.random_range(0..pool)),
        None => format!("c{client}t{invoked}"),
    };
    let op = match rng.random_range(0..10) {
        0..5 => Op::Put(value.into_bytes()),
        5..9 => Op::Get,
        _ => Op::Delete,
    };
    let is_write = op != Op::Get;
    let (outcome, effect) = match rng.random_range(0..100) {
        0..8 => (Outcome::Failed, None),
        8..20 if is_write && rng.random_bool(0.5) => {
            let late = invoked + rng.random_range(0..300);
            (Outcome::Indeterminate, Some(late))
        }
        8..20 => (Outcome::Indeterminate, None),
        _ => (
            Outcome::Written,
            Some(rng.random_range(invoked..=completed)),
        ),
    };
    let operation = Operation {
        client,
        key,
        op,
        invoked,
        completed,
        outcome,
    };
    (operation, effect)
}

fn shapes() -> impl Strategy<Value = Shape> {
    (
        any::<u64>(),
        1..=16u64,
        1..=20usize,
        1..=3u64,
        prop_oneof![Just(None), (1..=4u64).prop_map(Some)],
    )
        .prop_map(|(seed, clients, per_client, keys, pool)| Shape {
            seed,
            clients,
            per_client,
            keys,
            pool,
        })
}

/// Replaces the value of one answered read, chosen by `pick`, with one no
/// write stored; returns the corrupted read, or `None` if there is none.
fn corrupt_one_read(history: &History, pick: usize) -> (History, Option<Operation>) {
    let mut operations: Vec<Operation> = history.iter().cloned().collect();
    let reads: Vec<usize> = (0..operations.len())
        .filter(|&i| matches!(operations[i].outcome, Outcome::Read(_)))
        .collect();
    let corrupted = (!reads.is_empty()).then(|| {
        let read = &mut operations[reads[pick % reads.len()]];
        read.outcome = Outcome::Read(Some(b"never written".to_vec()));
        read.clone()
    });
    (operations.into_iter().collect(), corrupted)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn histories_of_a_real_register_pass(shape in shapes()) {
        let history = simulate(shape);
        match check(&history) {
            Ok(summary) => prop_assert!(summary.operations <= history.len()),
            Err(violation) => prop_assert!(false, "{:?}: {}", shape, violation),
        }
    }

    #[test]
    fn a_read_no_write_explains_fails(shape in shapes(), pick in any::<usize>()) {
        let (history, corrupted) = corrupt_one_read(&simulate(shape), pick);
        let Some(corrupted) = corrupted else { return Ok(()) };
        let violation = check(&history).expect_err("a read of a value never written");
        prop_assert_eq!(violation.kind, ViolationKind::NotLinearizable, "{}", violation);
        prop_assert_eq!(&violation.key, &corrupted.key);
        prop_assert!(violation.operations.contains(&corrupted), "{}", violation);
    }
}

/// Up to 16 clients and a few hundred operations on one key, the size the
/// simulator produces, check well within the default budget.
#[test]
fn few_hundred_operations_on_one_key_check_within_budget() {
    let budget = Budget::default();
    for seed in 0..8 {
        let shape = Shape {
            seed,
            clients: 16,
            per_client: 20,
            keys: 1,
            pool: if seed % 2 == 0 { None } else { Some(3) },
        };
        let summary = check(&simulate(shape)).expect("a real register is linearizable");
        assert!(summary.operations > 250, "{summary:?}");
        assert!(
            summary.max_states < budget.states_per_key / 4,
            "{summary:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// A brute-force oracle.

/// Whether some order of the operations explains every answer, by trying
/// every order that respects real time, skipping only (placed set, value)
/// pairs already tried: the definition, without the checker's event list,
/// forced moves or pruning.
fn linearizable_by_brute_force(operations: &[Operation]) -> bool {
    let relevant: Vec<&Operation> = operations
        .iter()
        .filter(|o| o.outcome != Outcome::Failed)
        .filter(|o| !(o.op == Op::Get && o.outcome == Outcome::Indeterminate))
        .collect();
    assert!(relevant.len() <= 64, "the oracle's placed set is a u64");
    extend_order(&relevant, 0, None, &mut HashSet::new())
}

type Tried = HashSet<(u64, Option<Vec<u8>>)>;

fn extend_order(
    operations: &[&Operation],
    placed: u64,
    value: Option<&[u8]>,
    tried: &mut Tried,
) -> bool {
    let determinate = |o: &Operation| o.outcome != Outcome::Indeterminate;
    let unplaced: Vec<usize> = (0..operations.len())
        .filter(|&i| placed & (1 << i) == 0)
        .collect();
    if unplaced.iter().all(|&i| !determinate(operations[i])) {
        return true;
    }
    if !tried.insert((placed, value.map(<[u8]>::to_vec))) {
        return false;
    }
    for &i in &unplaced {
        let preceded = unplaced.iter().any(|&j| {
            determinate(operations[j]) && operations[j].completed < operations[i].invoked
        });
        let next = match (&operations[i].op, &operations[i].outcome) {
            _ if preceded => continue,
            (Op::Put(v), _) => Some(v.as_slice()),
            (Op::Delete, _) => None,
            (Op::Get, Outcome::Read(read)) if read.as_deref() == value => value,
            (Op::Get, _) => continue,
        };
        if extend_order(operations, placed | 1 << i, next, tried) {
            return true;
        }
    }
    false
}

/// Checks the verdict against the oracle's. Also with no budget, where the
/// search gives up at once and only the look at each read's writes can
/// refute: that must never refute a linearizable history either.
fn agrees_with_oracle(operations: Vec<Operation>) -> Result<(), TestCaseError> {
    let expected = linearizable_by_brute_force(&operations);
    let history: History = operations.into_iter().collect();
    match check(&history) {
        Ok(_) => prop_assert!(expected, "passed, but no order explains it"),
        Err(violation) => {
            prop_assert!(!expected, "refuted, but an order exists: {}", violation);
            prop_assert_eq!(violation.kind, ViolationKind::NotLinearizable);
        }
    }
    let no_budget = Budget { states_per_key: 0 };
    if let Err(violation) = check_with(&history, no_budget) {
        let refuted = violation.kind == ViolationKind::NotLinearizable;
        prop_assert!(
            !(refuted && expected),
            "refuted without search: {}",
            violation
        );
    }
    Ok(())
}

/// Up to 24 operations on one key, for the oracle.
fn small_shapes() -> impl Strategy<Value = Shape> {
    (
        any::<u64>(),
        1..=6u64,
        1..=4usize,
        prop_oneof![Just(None), (1..=3u64).prop_map(Some)],
    )
        .prop_map(|(seed, clients, per_client, pool)| Shape {
            seed,
            clients,
            per_client,
            keys: 1,
            pool,
        })
}

/// Changes answered reads, each `(which, to)` picking a read and a value
/// among those written and absent.
fn change_reads(history: &History, changes: &[(usize, usize)]) -> Vec<Operation> {
    let mut operations: Vec<Operation> = history.iter().cloned().collect();
    let mut values: Vec<Option<Vec<u8>>> = vec![None];
    for operation in &operations {
        if let Op::Put(value) = &operation.op {
            values.push(Some(value.clone()));
        }
    }
    let reads: Vec<usize> = (0..operations.len())
        .filter(|&i| matches!(operations[i].outcome, Outcome::Read(_)))
        .collect();
    for &(which, to) in changes {
        if !reads.is_empty() {
            let read = reads[which % reads.len()];
            operations[read].outcome = Outcome::Read(values[to % values.len()].clone());
        }
    }
    operations
}

fn small_operation() -> impl Strategy<Value = Operation> {
    let value = prop_oneof![Just(None), (0..3u8).prop_map(|v| Some(vec![b'a' + v]))];
    (0..6u64, 0..3u8, value, 0..30u64, 0..10u64, 0..10u8).prop_map(
        |(client, kind, value, invoked, length, fate)| {
            let op = match (kind, &value) {
                (0, Some(v)) => Op::Put(v.clone()),
                (0, None) => Op::Delete,
                (1, _) => Op::Put(value.clone().unwrap_or_else(|| b"a".to_vec())),
                _ => Op::Get,
            };
            let outcome = match fate {
                0 => Outcome::Failed,
                1 | 2 => Outcome::Indeterminate,
                _ if op == Op::Get => Outcome::Read(value),
                _ => Outcome::Written,
            };
            let span = (invoked, invoked + length);
            operation(client, op, span, outcome)
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    /// Near misses: a real register's history with a read or two changed
    /// to another value written, or to absent.
    #[test]
    fn agrees_with_brute_force_near_real_histories(
        shape in small_shapes(),
        changes in prop::collection::vec((any::<usize>(), any::<usize>()), 0..4),
    ) {
        agrees_with_oracle(change_reads(&simulate(shape), &changes))?;
    }

    #[test]
    fn agrees_with_brute_force(operations in prop::collection::vec(small_operation(), 0..16)) {
        agrees_with_oracle(operations)?;
    }
}
