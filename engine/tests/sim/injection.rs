//! How the driver injects faults and learns where they are: faults placed
//! at rest between epochs, opens under I/O errors and power cuts, and the
//! places the oracle may blame for a reported loss.

use std::sync::Arc;

use engine::{open_workers, OpenError, RecoveryReport};
use nvme::sim::FaultConfig;
use nvme::Namespace;
use rand::Rng;

use super::disk::Survey;
use super::faults::{self, CutNamespace, Damage, Located, Placed, Site};
use super::{model, Class, Sim};

impl Sim {
    pub(super) fn describe_fresh_placed(&self) -> String {
        let fresh = &self.placed[self.placed.len() - self.fresh_placed..];
        fresh
            .iter()
            .map(|p| {
                format!(
                    " (after a {:?} placed at rest at LBA {}, {:?})",
                    p.damage, p.lba, p.site
                )
            })
            .collect()
    }

    /// Counts, per site of a fault placed before this recovery, whether the
    /// engine reported damage there.
    pub(super) fn count_site_duties(&mut self, report: &engine::RecoveryReport) {
        let fresh: Vec<Placed> = self.placed[self.placed.len() - self.fresh_placed..].to_vec();
        self.fresh_placed = 0;
        for p in fresh {
            let segment = self.segment_of(p.lba);
            let reported = report.damage.iter().any(|d| d.start.segment == segment)
                || report.torn_tails.iter().any(|t| t.at.segment == segment);
            let outcome = if reported { "reported" } else { "not_reported" };
            self.counters
                .add(&format!("at_rest_{}_{outcome}", p.site.name()), 1);
        }
    }

    /// Every place a fault sits that the oracle knows of, with the keys a
    /// loss there could take: faults placed at rest (flips still on the
    /// medium) and every latent sector error.
    pub(super) fn locate_faults(&mut self) -> Vec<Located> {
        if !self.faults_enabled() {
            return Vec::new();
        }
        let latent = self.namespace.latent_errors();
        let namespace = self.namespace.clone();
        self.placed.retain(|p| match p.damage {
            Damage::Latent => latent.contains(&p.lba),
            Damage::BitFlip => {
                p.flipped_block.as_deref() == Some(&namespace.read_durable(p.lba)[..])
            }
        });
        self.fresh_placed = self.fresh_placed.min(self.placed.len());
        let mut located: Vec<Located> = self
            .placed
            .iter()
            .filter(|p| p.damage == Damage::BitFlip)
            .map(|p| Located {
                lba: p.lba,
                extent: p.extent,
                keys: p.keys.clone(),
            })
            .collect();
        if !latent.is_empty() {
            if let Some(survey) = Survey::read(&self.namespace) {
                for lba in latent {
                    self.trace(format_args!(
                        "latent error at LBA {lba}: extent {:?}, tail frame {}, keys {}",
                        survey.extent_at(lba),
                        survey.in_tail_frame(lba),
                        survey.keys_at(lba).len()
                    ));
                    located.push(Located {
                        lba,
                        extent: survey.extent_at(lba),
                        keys: survey.keys_at(lba),
                    });
                }
            }
        }
        // Faults located before and gone (or changed) now were overwritten:
        // remembered for the torn tails they may have caused
        // (`absorb_torn_tails`).
        let gone: Vec<Located> = std::mem::take(&mut self.last_located)
            .into_iter()
            .filter(|l| {
                !located
                    .iter()
                    .any(|n| n.lba == l.lba && n.extent == l.extent && n.keys == l.keys)
            })
            .collect();
        self.faded.extend(gone);
        self.last_located = located.clone();
        located
    }

    /// An open while writes and flushes may fail: it succeeds or fails with
    /// an I/O error, and either way the power is cut after it. Returns what
    /// it reported, if it opened.
    pub(super) fn open_under_faults(&mut self) -> Option<RecoveryReport> {
        let workers = self.workers();
        let config = self.config();
        self.namespace
            .set_faults(faults::open_faults(&mut self.rng));
        let namespace: Arc<dyn Namespace> = self.namespace.clone();
        let result = open_workers(namespace, &config, workers);
        self.namespace.set_faults(FaultConfig::default());
        self.counters.add("opens_under_faults", 1);
        self.trace(format_args!(
            "open under faults ({:?}): {:?}",
            self.namespace.stats().faults,
            result
                .as_ref()
                .map(|o| &o.report)
                .map_err(ToString::to_string)
        ));
        let report = self.report_of(result, "opens_under_faults_failed", "open under I/O faults");
        self.crash_namespace();
        report
    }

    /// What an open that may fail reported: its report if it opened; an I/O
    /// error is counted under `failed`, any other error is checked.
    fn report_of(
        &mut self,
        result: Result<engine::Opened, OpenError>,
        failed: &str,
        what: &str,
    ) -> Option<RecoveryReport> {
        match result {
            Ok(opened) => Some(opened.report.clone()),
            Err(OpenError::Io(_)) => {
                self.counters.add(failed, 1);
                None
            }
            Err(e) => {
                self.unexpected_open_error(what, &e);
                None
            }
        }
    }

    /// An open that met injected I/O errors must fail with an I/O error.
    pub(super) fn unexpected_open_error(&mut self, what: &str, e: &OpenError) {
        if matches!(e, OpenError::CheckpointCorrupt(_)) && self.checkpoint_faults_possible() {
            // Both checkpoints damaged for real: the documented refusal
            // (the open that follows discards them).
            self.counters
                .add("checkpoint_refusals_under_open_faults", 1);
            return;
        }
        if matches!(e, OpenError::CheckpointCorrupt(_))
            && self.options.tolerate_checkpoint_corrupt_on_open_io_errors
        {
            self.counters
                .add("known_bug_checkpoint_corrupt_on_open_io_errors", 1);
            return;
        }
        self.violation(format!("{what} failed with {e}"));
    }

    /// An open cut short by a power cut after a random number of commands.
    /// Returns what it reported, if it opened.
    pub(super) fn open_with_power_cut(&mut self) -> Option<RecoveryReport> {
        let workers = self.workers();
        let config = self.config();
        let commands = self.rng.random_range(0..160);
        let cut = Arc::new(CutNamespace::new(self.namespace.clone(), commands));
        let result = open_workers(cut.clone() as Arc<dyn Namespace>, &config, workers);
        self.counters.add("open_power_cuts", 1);
        self.trace(format_args!(
            "open with a power cut after {commands} commands (cut: {}): {:?}",
            cut.cut(),
            result
                .as_ref()
                .map(|o| &o.report)
                .map_err(ToString::to_string)
        ));
        if cut.cut() {
            self.counters.add("open_power_cuts_mid_open", 1);
        }
        let report = self.report_of(
            result,
            "open_power_cuts_failed_open",
            "open cut by a power cut",
        );
        self.crash_namespace();
        report
    }

    /// Whether two checkpoints may both be damaged: a fault placed in one
    /// is still there, and the other may have met a fault the oracle cannot
    /// place (a misdirected write, a latent error left by a write).
    pub(super) fn checkpoint_faults_possible(&self) -> bool {
        let at_checkpoints = |p: &&Placed| matches!(p.site, Site::Root | Site::CheckpointBody);
        // Two faults placed at checkpoint sites (even if since overwritten)
        // can each have taken one checkpoint: an unreadable root hides its
        // checkpoint, whose body is then free to reuse.
        if self.counters.get("checkpoint_site_faults_placed") >= 2 {
            return true;
        }
        self.placed.iter().any(|p| at_checkpoints(&p))
            && (self.counters.get("misdirected_epochs") > 0
                || self.counters.get("random_latent_sector_errors") > 0
                || self.counters.get("random_flush_errors") > 0)
    }

    /// Places a fault at rest at a known LBA, between a crash and the open.
    pub(super) fn inject_at_rest(&mut self) {
        let Class::Faults(classes) = &self.class else {
            return;
        };
        let mut sites = classes.sites.clone();
        if sites.is_empty() || self.rng.random_range(0..3) == 0 {
            return;
        }
        // One fault at a time in the superblocks and checkpoints: two at once
        // may leave nothing to open from, by design.
        let metadata = |s: Site| matches!(s, Site::Superblock | Site::Root | Site::CheckpointBody);
        if self.placed.iter().any(|p| metadata(p.site)) {
            sites.retain(|s| !metadata(*s));
        }
        if self.batch_failed && !classes.checkpoint_faults_after_failed_batch {
            sites.retain(|s| !matches!(s, Site::Root | Site::CheckpointBody));
        }
        let Some(survey) = Survey::read(&self.namespace) else {
            return;
        };
        if sites.is_empty() {
            return;
        }
        let site = sites[self.rng.random_range(0..sites.len())];
        let Some(lba) = faults::choose_lba(&survey, site, &mut self.rng) else {
            self.counters
                .add(&format!("at_rest_{}_no_place", site.name()), 1);
            return;
        };
        let mut damage = if self.rng.random_bool(0.5) {
            Damage::BitFlip
        } else {
            Damage::Latent
        };
        if classes.excluded.contains(&(site, damage)) {
            damage = match damage {
                Damage::BitFlip => Damage::Latent,
                Damage::Latent => Damage::BitFlip,
            };
            if classes.excluded.contains(&(site, damage)) {
                return;
            }
        }
        let keys = survey.keys_at(lba);
        let extent = survey.extent_at(lba);
        let flipped_block = faults::place(&self.namespace, damage, lba, &mut self.rng);
        let kind = if damage == Damage::BitFlip {
            "bit_flip"
        } else {
            "latent"
        };
        self.counters
            .add(&format!("at_rest_{}_{kind}", site.name()), 1);
        self.trace(format_args!(
            "placed {damage:?} at LBA {lba} ({site:?}), frame {extent:?}, keys {:?}",
            keys.iter().map(|k| model::show_key(k)).collect::<Vec<_>>()
        ));
        if matches!(site, Site::Root | Site::CheckpointBody) {
            self.counters.add("checkpoint_site_faults_placed", 1);
        }
        self.placed.push(Placed {
            site,
            damage,
            lba,
            keys,
            extent,
            flipped_block,
        });
        self.fresh_placed += 1;
    }
}
