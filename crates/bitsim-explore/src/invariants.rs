//! Invariants: what must hold in every run, whatever the scenario. Each is checked over
//! the model's structured trace ([`TraceEvent`]s) and the run's directory, and each
//! cites the reference it comes from.

use bitsim_model::{
    next_state, Disposition, Hresult, JobId, JobState, JobType, NotificationId, NotificationKind, NotifyFlags, Profile,
    Span, Time, TraceEvent, TraceKind,
};
use bitsim_scenario::{Scenario, Step};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// "At most four simultaneous notifications per user" (ref: bits-spec §4.3). The
/// reference's number, not the profile's: a profile that allows more breaks it.
pub const NOTIFICATIONS_PER_USER: usize = 4;

/// One broken invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Short stable name (`notification-slots`), used to tell findings apart.
    pub invariant: &'static str,
    /// The reference the invariant comes from.
    pub source: &'static str,
    /// When (virtual time) and what.
    pub at: Time,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invariant {} ({}) broken at {}: {}",
            self.invariant, self.source, self.at, self.detail
        )
    }
}

/// What an invariant check looks at.
pub struct RunFacts<'a> {
    pub scenario: &'a Scenario,
    pub profile: &'a Profile,
    pub events: &'a [TraceEvent],
    /// Files left in the run's directory, if known.
    pub files_left: Option<&'a [String]>,
    /// The virtual time the run reached (`RunReport::covered`), if known. A run
    /// stopped early (trace limit, watchdog) ends there, not where its steps would
    /// have taken it.
    pub covered: Option<Time>,
}

/// Every violation in a run, in the order the invariants are listed.
pub fn check(facts: &RunFacts<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    states_follow_the_table(facts, &mut out);
    notification_slots(facts, &mut out);
    no_job_error_for_transient_errors(facts, &mut out);
    callbacks_until_s_ok(facts, &mut out);
    download_progress_never_goes_back(facts, &mut out);
    temporary_files_removed(facts, &mut out);
    out
}

fn violation(out: &mut Vec<Violation>, invariant: &'static str, source: &'static str, at: Time, detail: String) {
    out.push(Violation {
        invariant,
        source,
        at,
        detail,
    });
}

fn is_final(s: JobState) -> bool {
    matches!(s, JobState::Cancelled | JobState::Acknowledged)
}

/// Each job's state, replayed from the trace.
fn states_follow_the_table(facts: &RunFacts<'_>, out: &mut Vec<Violation>) {
    let mut state: BTreeMap<JobId, JobState> = BTreeMap::new();
    for e in facts.events {
        match &e.kind {
            TraceKind::JobCreated { job, .. } => {
                state.insert(*job, JobState::Suspended);
            }
            TraceKind::State { job, from, to, trigger } => {
                let known = state.get(job).copied();
                if let Some(now) = known.filter(|s| is_final(*s)) {
                    violation(
                        out,
                        "final-state",
                        "bits-spec §1.1, §1.3 (CANCELLED and ACKNOWLEDGED are final)",
                        e.at,
                        format!("job {job} left final state {now} for {to} ({trigger})"),
                    );
                } else if known != Some(*from) {
                    let was = known.map_or("unknown".to_string(), |s| s.to_string());
                    violation(
                        out,
                        "state-transition",
                        "bits-spec §1.3",
                        e.at,
                        format!("job {job} was {was} but the change is recorded from {from} to {to} ({trigger})"),
                    );
                } else if next_state(*from, *trigger) != Some(*to) {
                    violation(
                        out,
                        "state-transition",
                        "bits-spec §1.3",
                        e.at,
                        format!("job {job} {from} -> {to} on {trigger}: no such row in the transition table"),
                    );
                }
                state.insert(*job, *to);
            }
            TraceKind::TransferStart { job, what, .. } if state.get(job).is_some_and(|s| is_final(*s)) => {
                violation(
                    out,
                    "final-state",
                    "bits-spec §1.1, §1.3 (CANCELLED and ACKNOWLEDGED are final)",
                    e.at,
                    format!("job {job} starts transferring {what} after reaching a final state"),
                );
            }
            _ => {}
        }
    }
}

/// Counts each user's notifications in flight from the deliveries and returns.
fn notification_slots(facts: &RunFacts<'_>, out: &mut Vec<Violation>) {
    // Call → its user; a return names the call it ends (`delivery`).
    let mut in_flight: BTreeMap<NotificationId, String> = BTreeMap::new();
    let mut reported = BTreeSet::new();
    for e in facts.events {
        match &e.kind {
            TraceKind::NotifySent {
                job,
                kind,
                user,
                delivery,
                ..
            } => {
                in_flight.insert(*delivery, user.clone());
                let n = in_flight.values().filter(|u| *u == user).count();
                if n > NOTIFICATIONS_PER_USER && reported.insert(user.clone()) {
                    violation(
                        out,
                        "notification-slots",
                        "bits-spec §4.3 (at most four simultaneous notifications per user)",
                        e.at,
                        format!("{n} notifications in flight for user {user} after {kind} to {job}"),
                    );
                }
            }
            TraceKind::NotifyReturned { delivery, .. } => {
                in_flight.remove(delivery);
            }
            // Calls under way are gone with the old service process (ref: bits-spec §4.2).
            TraceKind::Env { what } if what == "service restart" => in_flight.clear(),
            _ => {}
        }
    }
}

/// The flags of a `SetNotifyFlags(0xB)` call as the model traces it (the trace's
/// calls are text).
fn set_notify_flags(call: &str) -> Option<NotifyFlags> {
    NotifyFlags::parse(call.strip_prefix("SetNotifyFlags(")?.strip_suffix(')')?)
}

/// JobError is "not called for transient errors": when it is delivered (by callback or
/// command line), the job's latest error must be a fatal one.
fn no_job_error_for_transient_errors(facts: &RunFacts<'_>, out: &mut Vec<Violation>) {
    let mut last_error: BTreeMap<JobId, (Hresult, Disposition)> = BTreeMap::new();
    for e in facts.events {
        let delivered = match &e.kind {
            TraceKind::Error {
                job,
                hresult,
                disposition,
                ..
            } => {
                last_error.insert(*job, (*hresult, *disposition));
                None
            }
            TraceKind::NotifySent {
                job,
                kind: NotificationKind::JobError,
                ..
            }
            | TraceKind::CmdLineRun {
                job,
                kind: NotificationKind::JobError,
                ..
            } => Some(*job),
            _ => None,
        };
        if let Some(job) = delivered {
            match last_error.get(&job) {
                Some((_, Disposition::Fatal)) => {}
                other => violation(
                    out,
                    "no-joberror-for-transient",
                    "bits-spec §4.3 (JobError: job entered ERROR; not called for transient errors)",
                    e.at,
                    format!(
                        "JobError for job {job} whose latest error is {}",
                        other.map_or("none".to_string(), |(h, d)| format!("{h} ({d})"))
                    ),
                ),
            }
        }
    }
}

/// The state whose entry raises a notification of `kind` (JobTransferred / JobError).
fn raising_state(kind: NotificationKind) -> Option<JobState> {
    match kind {
        NotificationKind::JobTransferred => Some(JobState::Transferred),
        NotificationKind::JobError => Some(JobState::Error),
        _ => None,
    }
}

/// "Should return S_OK. Any other return: BITS keeps calling it, at an arbitrary
/// interval, until S_OK. If it fails and a notify command line is set, the command
/// line runs" (ref: bits-spec §4.3, §4.4): once accepted (S_OK, or exit code 0), an
/// event is not delivered again; once refused, it is delivered again (callback or
/// command line) while nothing else changes.
fn callbacks_until_s_ok(facts: &RunFacts<'_>, out: &mut Vec<Violation>) {
    const SOURCE: &str = "bits-spec §4.3 (JobTransferred/JobError: called until S_OK), §4.4";
    // (job, kind) → when the current event was accepted.
    let mut accepted: BTreeMap<(JobId, NotificationKind), Time> = BTreeMap::new();
    let mut cmdline_kind: BTreeMap<JobId, NotificationKind> = BTreeMap::new();
    // (job, kind) → when the latest delivery was refused, and by whom.
    let mut refused: BTreeMap<(JobId, NotificationKind), (Time, String)> = BTreeMap::new();
    let mut owner: BTreeMap<JobId, String> = BTreeMap::new();
    let mut last_change: BTreeMap<JobId, Time> = BTreeMap::new();
    let mut last_env = Time::ZERO;
    let mut user_busy: BTreeMap<String, Time> = BTreeMap::new();
    // Calls under way (by delivery) → their user.
    let mut in_flight: BTreeMap<NotificationId, String> = BTreeMap::new();
    let mut state: BTreeMap<JobId, JobState> = BTreeMap::new();
    // Jobs whose callback answered RPC_E_DISCONNECTED: the pointer is dead, and what is
    // owed waits for a new registration (ref: bits-spec §4.2), a call on the job.
    let mut disconnected: BTreeSet<JobId> = BTreeSet::new();
    // Event positions: a call made while a delivery was under way (new flags, a new
    // callback) may have changed what is owed.
    let mut last_call: BTreeMap<JobId, usize> = BTreeMap::new();
    let mut sent: BTreeMap<(JobId, NotificationKind), usize> = BTreeMap::new();
    // Where each call under way was made, and where each job last entered a state
    // that raises an event: a call made before that answers an older event.
    let mut calls: BTreeMap<NotificationId, usize> = BTreeMap::new();
    let mut entered: BTreeMap<(JobId, JobState), usize> = BTreeMap::new();
    // The notify flags each job's latest successful SetNotifyFlags set.
    let mut notify_flags: BTreeMap<JobId, NotifyFlags> = BTreeMap::new();
    for (i, e) in facts.events.iter().enumerate() {
        match &e.kind {
            TraceKind::JobCreated { job, user, .. } => {
                owner.insert(*job, user.clone());
                last_change.insert(*job, e.at);
                state.insert(*job, JobState::Suspended);
            }
            TraceKind::State { job, to, .. } => {
                last_change.insert(*job, e.at);
                state.insert(*job, *to);
                entered.insert((*job, *to), i);
                refused.retain(|(j, k), _| j != job || raising_state(*k) == Some(*to));
                for kind in [NotificationKind::JobTransferred, NotificationKind::JobError] {
                    if raising_state(kind) == Some(*to) {
                        accepted.remove(&(*job, kind));
                    }
                }
            }
            TraceKind::Call {
                job: Some(job),
                call,
                result,
            } => {
                last_change.insert(*job, e.at);
                last_call.insert(*job, i);
                disconnected.remove(job);
                if let (Some(flags), true) = (set_notify_flags(call), result.is_success()) {
                    notify_flags.insert(*job, flags);
                }
                // A call after the refusal may change what is owed (same-time events too).
                refused.retain(|(j, _), _| j != job);
            }
            TraceKind::Env { what } => {
                last_env = e.at;
                // A restart drops registrations, a logoff or network change moves jobs:
                // what was refused before is not owed in the same form.
                refused.clear();
                if what == "service restart" {
                    in_flight.clear();
                }
            }
            TraceKind::NotifyWaiting { user, .. } => {
                user_busy.insert(user.clone(), e.at);
            }
            TraceKind::NotifySent {
                job,
                kind,
                attempt,
                user,
                delivery,
                ..
            } => {
                in_flight.insert(*delivery, user.clone());
                sent.insert((*job, *kind), i);
                calls.insert(*delivery, i);
                refused.remove(&(*job, *kind));
                if let Some(at) = accepted.get(&(*job, *kind)) {
                    violation(
                        out,
                        "accepted-callback-not-repeated",
                        SOURCE,
                        e.at,
                        format!("{kind} to job {job} delivered again (#{attempt}) after it was accepted at {at}"),
                    );
                }
            }
            TraceKind::CmdLineRun { job, kind, .. } => {
                cmdline_kind.insert(*job, *kind);
                refused.remove(&(*job, *kind));
                if let Some(at) = accepted.get(&(*job, *kind)) {
                    violation(
                        out,
                        "accepted-callback-not-repeated",
                        SOURCE,
                        e.at,
                        format!("command line run for {kind} of job {job} after the event was accepted at {at}"),
                    );
                }
            }
            TraceKind::CmdLineExit { job, exit_code } => {
                if let Some(kind) = cmdline_kind.get(job).copied() {
                    if *exit_code == 0 {
                        accepted.insert((*job, kind), e.at);
                    } else if state.get(job).copied() == raising_state(kind) {
                        let user = owner.get(job).cloned().unwrap_or_default();
                        refused.insert((*job, kind), (e.at, user));
                    }
                }
            }
            TraceKind::NotifyReturned {
                job,
                kind,
                result,
                delivery,
                ..
            } => {
                // The return names its call: with two calls of one job, kind and
                // attempt under way (a job that re-entered ERROR meanwhile), each
                // answer goes to its own event.
                let user = in_flight.remove(delivery).unwrap_or_default();
                let made_at = calls.remove(delivery);
                let answers_an_older_event = raising_state(*kind)
                    .and_then(|s| entered.get(&(*job, s)))
                    .is_some_and(|entered_at| made_at.is_some_and(|m| m < *entered_at));
                if *result == Hresult::RPC_E_DISCONNECTED {
                    disconnected.insert(*job);
                    refused.retain(|(j, _), _| j != job);
                }
                if raising_state(*kind).is_none() || answers_an_older_event {
                    continue;
                }
                // An event is owed only while the job is still in the state that raised
                // it (a job cancelled meanwhile is owed nothing).
                let changed_meanwhile = last_call.get(job) > sent.get(&(*job, *kind));
                // Flags set since the event was raised that no longer ask for it (or
                // BG_NOTIFY_DISABLE): nothing is owed (ref: bits-spec §4.1).
                let unwanted = notify_flags.get(job).is_some_and(|f| !f.wants(kind.flag()));
                let still_owed = state.get(job).copied() == raising_state(*kind) && !changed_meanwhile && !unwanted;
                if *result == Hresult::S_OK {
                    accepted.insert((*job, *kind), e.at);
                } else if still_owed && !disconnected.contains(job) {
                    refused.insert((*job, *kind), (e.at, user));
                }
            }
            _ => {}
        }
    }
    // Refused and never delivered again: a violation only when the run went on long
    // enough after it with nothing else happening (no call on the job, no environment
    // event, no slot pressure for the user, no notification still blocked).
    let end = facts.covered.unwrap_or_else(|| {
        facts
            .events
            .last()
            .map_or(Time::ZERO, |e| e.at)
            .max(run_end(facts.scenario))
    });
    let patience = redelivery_bound(facts);
    for ((job, kind), (at, user)) in refused {
        let quiet = last_change.get(&job).is_none_or(|t| *t <= at)
            && last_env <= at
            && user_busy.get(&user).is_none_or(|t| *t <= at)
            && !in_flight.values().any(|u| *u == user);
        if quiet && end.0.saturating_sub(at.0) > patience.0 {
            violation(
                out,
                "failed-callback-redelivered",
                SOURCE,
                at,
                format!(
                    "{kind} to job {job} was refused and not delivered again within {patience} (run went on to {end})"
                ),
            );
        }
    }
}

/// The virtual time the scenario covers at least (its advances; waits may end early).
fn run_end(scenario: &Scenario) -> Time {
    let total: u64 = scenario
        .steps
        .iter()
        .map(|s| match &s.step {
            Step::Advance { by } => by.0 .0,
            _ => 0,
        })
        .sum();
    Time(total)
}

/// The longest a refused event may wait for its next delivery: the re-delivery
/// interval, or the retry delay before the command line runs again (ref: bits-spec §4.4).
fn redelivery_bound(facts: &RunFacts<'_>) -> Span {
    let longest_retry_delay = facts
        .scenario
        .steps
        .iter()
        .filter_map(|s| match &s.step {
            Step::SetMinimumRetryDelay { seconds, .. } => Some(Span::from_secs(u64::from(*seconds))),
            _ => None,
        })
        .chain([facts.profile.default_min_retry_delay])
        .max()
        .unwrap_or(Span::ZERO);
    Span(facts.profile.callback_retry_interval.1 .0 + longest_retry_delay.0 + 1_000)
}

/// A download file's transfer resumes where it left off; it restarts at 0 only when
/// the file changed on the server (ref: bits-spec §7.1 "File progress is reset to 0 if
/// the URL's time stamp changes").
fn download_progress_never_goes_back(facts: &RunFacts<'_>, out: &mut Vec<Violation>) {
    let mut downloads = BTreeSet::new();
    let mut offset: BTreeMap<(JobId, String), u64> = BTreeMap::new();
    for e in facts.events {
        match &e.kind {
            TraceKind::JobCreated {
                job,
                job_type: JobType::Download,
                ..
            } => {
                downloads.insert(*job);
            }
            TraceKind::FileRestarted { job, file } => {
                offset.remove(&(*job, format!("file {file}")));
            }
            TraceKind::TransferStart { job, what, offset: at } if downloads.contains(job) => {
                let key = (*job, what.clone());
                if let Some(before) = offset.get(&key).filter(|b| *at < **b) {
                    violation(
                        out,
                        "progress-monotonic",
                        "bits-spec §7.1 (progress is reset only when the file changed on the server)",
                        e.at,
                        format!("job {job} restarts {what} at byte {at} after reaching byte {before}"),
                    );
                }
                offset.insert(key, *at);
            }
            TraceKind::FileDone { job, what, bytes } if downloads.contains(job) => {
                offset.insert((*job, what.clone()), *bytes);
            }
            _ => {}
        }
    }
}

/// "Cancel deletes partial and completed temp files; Complete deletes unfinished ones"
/// (ref: bits-spec §7.2): a job that ended CANCELLED or ACKNOWLEDGED leaves no
/// temporary file (`BIT<job>_<file>.tmp`) behind, unless its Cancel or Complete
/// said it could not: BG_S_UNABLE_TO_DELETE_FILES (ref: IBackgroundCopyJob::Cancel,
/// ::Complete return values).
fn temporary_files_removed(facts: &RunFacts<'_>, out: &mut Vec<Violation>) {
    let Some(files) = facts.files_left else { return };
    let mut final_at: BTreeMap<JobId, (JobState, Time)> = BTreeMap::new();
    let mut could_not_delete: std::collections::BTreeSet<JobId> = Default::default();
    for e in facts.events {
        match &e.kind {
            TraceKind::State { job, to, .. } => {
                if is_final(*to) {
                    final_at.insert(*job, (*to, e.at));
                } else {
                    final_at.remove(job);
                }
            }
            TraceKind::Call {
                job: Some(job), result, ..
            } if *result == bitsim_model::Hresult::BG_S_UNABLE_TO_DELETE_FILES => {
                could_not_delete.insert(*job);
            }
            _ => {}
        }
    }
    final_at.retain(|job, _| !could_not_delete.contains(job));
    for (job, (state, at)) in final_at {
        let prefix = format!("BIT{}_", job.0);
        for f in files.iter().filter(|f| f.starts_with(&prefix) && f.ends_with(".tmp")) {
            violation(
                out,
                "temp-files-removed",
                "bits-spec §7.2 (Cancel and Complete delete temporary files)",
                at,
                format!("job {job} ended {state} but its temporary file {f} is still there"),
            );
        }
    }
}
