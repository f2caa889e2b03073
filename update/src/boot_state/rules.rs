//! Boot counting: which slot a boot starts, and how the state moves.

/// One of the two boot slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Slot {
    /// Slot A.
    A,
    /// Slot B.
    B,
}

impl Slot {
    /// The other slot.
    pub fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }

    /// `a` or `b`, as on the kernel command line (`veltrix.slot=`).
    pub fn name(self) -> &'static str {
        match self {
            Slot::A => "a",
            Slot::B => "b",
        }
    }

    /// The byte the record stores.
    pub(crate) fn code(self) -> u8 {
        match self {
            Slot::A => 0,
            Slot::B => 1,
        }
    }

    pub(crate) fn from_code(code: u8) -> Option<Slot> {
        match code {
            0 => Some(Slot::A),
            1 => Some(Slot::B),
            _ => None,
        }
    }
}

/// Boots a new slot gets before it is given up (the default).
pub const TRIES_DEFAULT: u8 = 3;
/// Most boots a new slot may be given.
pub const TRIES_MAX: u8 = 10;

/// What the record holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootState {
    /// The slot to boot: `last_good`, or a slot on trial.
    pub active: Slot,
    /// Boots left for `active` while it is on trial (it is on trial when it
    /// is not `last_good`). Taken before each trial boot starts.
    pub tries_left: u8,
    /// The last slot that booted and passed its health check.
    pub last_good: Slot,
}

/// What a boot does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootDecision {
    /// The slot to start.
    pub slot: Slot,
    /// Whether that slot is on trial (it must prove itself healthy).
    pub trial: bool,
    /// The state to write, durably, before the slot starts; `None` when
    /// it does not change (a boot of the last good slot writes nothing).
    pub write: Option<BootState>,
    /// The trial slot whose tries ran out on this boot, if any.
    pub gave_up: Option<Slot>,
}

impl BootState {
    /// A fresh appliance: slot A, good.
    pub fn factory() -> BootState {
        BootState {
            active: Slot::A,
            tries_left: 0,
            last_good: Slot::A,
        }
    }

    /// Whether `active` is on trial.
    pub fn on_trial(&self) -> bool {
        self.active != self.last_good
    }

    /// The decision of a boot. A trial slot is started only after its
    /// try is taken (the state to write has one try fewer), so every boot
    /// of it counts whatever happens next: a kernel that panics, a
    /// veltrixd that never becomes ready, a power cut. With no try left,
    /// the boot falls back to the last good slot, for good.
    pub fn boot(&self) -> BootDecision {
        if !self.on_trial() {
            return BootDecision {
                slot: self.last_good,
                trial: false,
                write: None,
                gave_up: None,
            };
        }
        if self.tries_left == 0 {
            let back = BootState {
                active: self.last_good,
                tries_left: 0,
                last_good: self.last_good,
            };
            return BootDecision {
                slot: self.last_good,
                trial: false,
                write: Some(back),
                gave_up: Some(self.active),
            };
        }
        BootDecision {
            slot: self.active,
            trial: true,
            write: Some(BootState {
                tries_left: self.tries_left - 1,
                ..*self
            }),
            gave_up: None,
        }
    }

    /// The running slot `slot` passed its health check: it becomes the last
    /// good slot. `None` when nothing changes (it already was, or the state
    /// no longer names it: a rollback in the meantime wins).
    pub fn mark_good(&self, slot: Slot) -> Option<BootState> {
        if self.active != slot || self.last_good == slot {
            return None;
        }
        Some(BootState {
            active: slot,
            tries_left: 0,
            last_good: slot,
        })
    }

    /// A bundle was written to `slot` (never the last good one): boot it
    /// next, on trial, up to `tries` times (1..=TRIES_MAX).
    pub fn install(&self, slot: Slot, tries: u8) -> Result<BootState, &'static str> {
        if slot == self.last_good {
            return Err("cannot install over the last good slot");
        }
        if !(1..=TRIES_MAX).contains(&tries) {
            return Err("tries must be 1..=TRIES_MAX");
        }
        Ok(BootState {
            active: slot,
            tries_left: tries,
            last_good: self.last_good,
        })
    }

    /// The operator gives up a slot on trial: the next boot starts the
    /// last good slot. `None` when no slot is on trial.
    pub fn abandon_trial(&self) -> Option<BootState> {
        self.on_trial().then_some(BootState {
            active: self.last_good,
            tries_left: 0,
            last_good: self.last_good,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_good_slot_boots_without_a_write() {
        let decision = BootState::factory().boot();
        assert_eq!(
            (decision.slot, decision.trial, decision.write),
            (Slot::A, false, None)
        );
    }

    #[test]
    fn a_new_slot_gets_its_tries_then_falls_back() {
        let mut state = BootState::factory()
            .install(Slot::B, 3)
            .unwrap_or_else(|e| panic!("{e}"));
        for left in (0..3).rev() {
            let decision = state.boot();
            assert_eq!((decision.slot, decision.trial), (Slot::B, true));
            state = decision
                .write
                .unwrap_or_else(|| panic!("a trial boot writes"));
            assert_eq!(state.tries_left, left);
        }
        let decision = state.boot();
        assert_eq!((decision.slot, decision.gave_up), (Slot::A, Some(Slot::B)));
        let state = decision
            .write
            .unwrap_or_else(|| panic!("the fallback is written"));
        assert_eq!(state, BootState::factory());
    }

    #[test]
    fn a_healthy_trial_becomes_good() {
        let state = BootState::factory()
            .install(Slot::B, 2)
            .unwrap_or_else(|e| panic!("{e}"));
        let state = state.boot().write.unwrap_or_else(|| panic!("written"));
        let good = state.mark_good(Slot::B).unwrap_or_else(|| panic!("marked"));
        assert_eq!(
            (good.active, good.last_good, good.on_trial()),
            (Slot::B, Slot::B, false)
        );
        // Marking the other slot, or again, changes nothing.
        assert_eq!(good.mark_good(Slot::B), None);
        assert_eq!(good.mark_good(Slot::A), None);
        assert!(
            good.install(Slot::B, 3).is_err(),
            "never over the last good slot"
        );
        assert!(good.install(Slot::A, 0).is_err());
    }

    fn arb_state() -> impl Strategy<Value = BootState> {
        (any::<bool>(), 0..=TRIES_MAX, any::<bool>()).prop_map(|(a, tries, g)| BootState {
            active: if a { Slot::A } else { Slot::B },
            tries_left: tries,
            last_good: if g { Slot::A } else { Slot::B },
        })
    }

    proptest! {
        /// From any state, if no boot ever passes its health check, the
        /// slot on trial is started at most `tries_left` more times, and
        /// then every boot starts the last good slot.
        #[test]
        fn failing_boots_are_bounded(start in arb_state(), boots in 1usize..30) {
            let mut state = start;
            let mut trial_boots = 0;
            for _ in 0..boots {
                let decision = state.boot();
                if decision.trial {
                    trial_boots += 1;
                    prop_assert_eq!(decision.slot, start.active);
                } else {
                    prop_assert_eq!(decision.slot, start.last_good);
                }
                if let Some(next) = decision.write {
                    state = next;
                }
            }
            let allowed = if start.on_trial() { usize::from(start.tries_left) } else { 0 };
            prop_assert!(trial_boots <= allowed);
            prop_assert_eq!(state.last_good, start.last_good, "only a health check moves it");
        }
    }
}
