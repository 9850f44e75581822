//! Notifications: callbacks, the command-line fallback, re-delivery, and the limit of
//! four notifications in flight per user.
//!
//! ref: bits-spec §4 (flags §4.1, registration §4.2, callback methods and the
//! four-per-user limit §4.3, command line §4.4).
//!
//! Each job has three channels:
//! - `final_`: JobTransferred or JobError, re-delivered until the callback accepts it,
//!   the command line exits 0, or the job ends; at-least-once, so it waits for a
//!   registration made after the event;
//! - `file`: FileTransferred, one file at a time and before `final_`;
//! - `modification`: JobModification, never retried, coalesced (one outstanding).

use crate::effect::Effect;
use crate::service::Service;
use crate::trace::TraceKind;
use crate::types::{Callback, ErrorContext, JobId, JobState, NotifyFlags, Time};
use crate::Hresult;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::fmt;

/// Identifies one delivery (a callback call or a command-line run).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NotificationId(pub u64);

/// The callback method being called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum NotificationKind {
    JobTransferred,
    JobError,
    JobModification,
    FileTransferred,
}

impl NotificationKind {
    /// The `BG_NOTIFY_*` flag that asks for this kind (ref: bits-spec §4.1).
    pub const fn flag(self) -> NotifyFlags {
        match self {
            NotificationKind::JobTransferred => NotifyFlags::JOB_TRANSFERRED,
            NotificationKind::JobError => NotifyFlags::JOB_ERROR,
            NotificationKind::JobModification => NotifyFlags::JOB_MODIFICATION,
            NotificationKind::FileTransferred => NotifyFlags::FILE_TRANSFERRED,
        }
    }
}

impl fmt::Display for NotificationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A callback invocation the driver must perform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub id: NotificationId,
    pub job: JobId,
    pub kind: NotificationKind,
    pub callback: Callback,
    /// 1 for the first delivery of this event, 2 for the first re-delivery, …
    pub attempt: u32,
    /// For FileTransferred: the file.
    pub file: Option<usize>,
    /// For JobError: the error.
    pub error: Option<(Hresult, ErrorContext)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) enum Channel {
    Final,
    File,
    Modification,
}

/// Where one channel's current notification is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Phase {
    /// Nothing under way: deliver when possible.
    #[default]
    Idle,
    /// In the owner's FIFO, waiting for a slot.
    Waiting,
    InFlight(NotificationId),
    /// Waiting for `retry_at`.
    Backoff,
    /// The command line is running.
    CmdLine(NotificationId),
}

#[derive(Debug, Clone, Default)]
pub(crate) struct ChannelState {
    pub kind: Option<NotificationKind>,
    pub phase: Phase,
    pub attempt: u32,
    /// The callback failed for this event: the command line handles it from now on.
    pub via_cmdline: bool,
    pub retry_at: Option<Time>,
}

impl ChannelState {
    fn reset(&mut self, kind: Option<NotificationKind>) {
        *self = ChannelState {
            kind,
            ..ChannelState::default()
        };
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Channels {
    pub final_: ChannelState,
    pub file: ChannelState,
    /// Files whose FileTransferred is still owed, in order.
    pub file_queue: VecDeque<usize>,
    pub modification: ChannelState,
}

impl Channels {
    pub(crate) fn clear(&mut self) {
        *self = Channels::default();
    }

    fn get_ref(&self, c: Channel) -> &ChannelState {
        match c {
            Channel::Final => &self.final_,
            Channel::File => &self.file,
            Channel::Modification => &self.modification,
        }
    }

    fn get(&mut self, c: Channel) -> &mut ChannelState {
        match c {
            Channel::Final => &mut self.final_,
            Channel::File => &mut self.file,
            Channel::Modification => &mut self.modification,
        }
    }
}

impl Service {
    /// Reacts to a state change: owes JobTransferred / JobError, drops what no longer
    /// applies, and sends JobModification (not for the change to ERROR or TRANSFERRED,
    /// ref: bits-spec §4.3).
    pub(crate) fn on_state_changed(&mut self, id: JobId, from: JobState, to: JobState) {
        if to.is_final() {
            return;
        }
        let job = self.job_mut(id);
        match to {
            JobState::Transferred => job.channels.final_.reset(Some(NotificationKind::JobTransferred)),
            JobState::Error => job.channels.final_.reset(Some(NotificationKind::JobError)),
            _ if matches!(from, JobState::Transferred | JobState::Error) => job.channels.final_.reset(None),
            _ => {}
        }
        if !matches!(to, JobState::Transferred | JobState::Error) {
            self.modified(id);
        }
        self.pump_job(id);
    }

    /// Something about the job changed: owe a JobModification if the app wants one.
    pub(crate) fn modified(&mut self, id: JobId) {
        let job = self.job_mut(id);
        if job.channels.modification.kind.is_none() {
            job.channels.modification.reset(Some(NotificationKind::JobModification));
        }
        self.pump_job(id);
    }

    /// A file finished: owe FileTransferred for it (ref: bits-spec §4.3).
    pub(crate) fn file_transferred(&mut self, id: JobId, file: usize) {
        self.job_mut(id).channels.file_queue.push_back(file);
        self.pump_job(id);
    }

    pub(crate) fn notify_retry_due(&mut self, id: JobId, channel: Channel) {
        let ch = self.job_mut(id).channels.get(channel);
        if ch.phase == Phase::Backoff {
            ch.phase = Phase::Idle;
        }
        self.pump_job(id);
    }

    /// Service restart: registrations and in-flight calls are gone; what is owed stays
    /// owed (ref: bits-spec §4.2, at-least-once).
    pub(crate) fn restart_notifications(&mut self) {
        self.deliveries.clear();
        for u in &mut self.users {
            u.in_flight = 0;
            u.waiting.clear();
        }
        for job in &mut self.jobs {
            job.callback = None;
            for c in [Channel::Final, Channel::File, Channel::Modification] {
                let ch = job.channels.get(c);
                // A command line running at the restart is forgotten with its delivery
                // id: what it was for is owed again (at-least-once, ref: bits-spec §4.2).
                if matches!(ch.phase, Phase::InFlight(_) | Phase::Waiting | Phase::CmdLine(_)) {
                    ch.phase = Phase::Idle;
                }
            }
            job.channels.modification.reset(None);
        }
        // The command line is a persisted job property: what is owed goes to it now
        // rather than waiting for an unrelated event (ref: bits-spec §4.2, §4.4).
        let ids: Vec<JobId> = self.jobs.iter().filter(|j| !j.state.is_final()).map(|j| j.id).collect();
        for id in ids {
            self.pump_job(id);
        }
    }

    /// Moves every channel of the job forward as far as it can go now.
    pub(crate) fn pump_job(&mut self, id: JobId) {
        let job = self.job(id);
        if job.state.is_final() {
            return;
        }
        let flags = job.notify_flags;
        let disabled = self.profile.honours_disable && flags.0 & NotifyFlags::DISABLE.0 != 0;
        let callback = job.callback;
        // Callbacks run as the user who registered them (ref: bits-spec §4.2).
        let owner = job.callback_user;

        // FileTransferred, one at a time (ref: bits-spec §4.3 "serialized per job").
        let wants_files = !disabled && flags.0 & NotifyFlags::FILE_TRANSFERRED.0 != 0;
        if !wants_files || callback.is_some_and(|c| !c.callback2) {
            // Nobody can receive them: they must not hold up JobTransferred / JobError.
            let job = self.job_mut(id);
            if job.channels.file.phase == Phase::Idle {
                job.channels.file_queue.clear();
                job.channels.file.reset(None);
            }
        } else if callback.is_some() {
            let job = self.job_mut(id);
            if job.channels.file.kind.is_none() && !job.channels.file_queue.is_empty() {
                job.channels.file.reset(Some(NotificationKind::FileTransferred));
            }
            if job.channels.file.kind.is_some() && job.channels.file.phase == Phase::Idle {
                self.enqueue(owner, id, Channel::File);
            }
        }

        // JobTransferred / JobError, after every FileTransferred (ref: bits-spec §4.3).
        let job = self.job(id);
        // Only a callback can take FileTransferred: the command line ignores the flag, so
        // without a callback owed files must not hold it up. ref: bits-spec §4.1, §4.4
        let files_owed = !job.channels.file_queue.is_empty() && wants_files && callback.is_some();
        if let Some(kind) = job.channels.final_.kind {
            let flag = kind.flag();
            let ch = &job.channels.final_;
            if !disabled && flags.0 & flag.0 != 0 && ch.phase == Phase::Idle && !files_owed {
                let cmdline = self.cmdline_runs_for(id);
                // Once the callback failed, the command line handles the event; if the
                // command line has since been removed, the callback is the only way left.
                if callback.is_some() && (!ch.via_cmdline || !cmdline) {
                    self.enqueue(owner, id, Channel::Final);
                } else if cmdline {
                    self.run_cmdline(id);
                }
                // Neither: it stays owed until someone registers (at-least-once, §4.2).
            }
        }

        // JobModification: fire and forget; dropped when nobody listens (§4.3).
        let job = self.job(id);
        if job.channels.modification.kind.is_some() && job.channels.modification.phase == Phase::Idle {
            if !disabled && flags.0 & NotifyFlags::JOB_MODIFICATION.0 != 0 && callback.is_some() {
                self.enqueue(owner, id, Channel::Modification);
            } else {
                self.job_mut(id).channels.modification.reset(None);
            }
        }
        self.pump_user(owner);
    }

    fn enqueue(&mut self, user: crate::types::UserId, id: JobId, channel: Channel) {
        self.job_mut(id).channels.get(channel).phase = Phase::Waiting;
        let limit = self.profile.max_notifications_in_flight_per_user;
        let u = &mut self.users[user.0 as usize];
        u.waiting.push_back((id, channel));
        if u.in_flight >= limit {
            let kind = self.job(id).channels_kind(channel);
            let user_name = self.users[user.0 as usize].name.clone();
            self.record(TraceKind::NotifyWaiting {
                job: id,
                kind,
                user: user_name,
            });
        }
    }

    /// Delivers waiting notifications while the user has free slots (ref: bits-spec §4.3:
    /// at most four in flight per user; other users are not held up).
    fn pump_user(&mut self, user: crate::types::UserId) {
        let limit = self.profile.max_notifications_in_flight_per_user;
        loop {
            let u = &mut self.users[user.0 as usize];
            if u.in_flight >= limit {
                return;
            }
            let Some((id, channel)) = u.waiting.pop_front() else {
                return;
            };
            let job = self.job(id);
            let Some(callback) = job.callback else {
                self.job_mut(id).channels.get(channel).phase = Phase::Idle;
                continue;
            };
            if job.state.is_final() || job.channels.get_ref(channel).phase != Phase::Waiting {
                continue;
            }
            let error = job.error.map(|e| (e.hresult, e.context));
            let file = job.channels.file_queue.front().copied();
            let nid = NotificationId(self.fresh_id());
            let ch = self.job_mut(id).channels.get(channel);
            ch.attempt += 1;
            ch.phase = Phase::InFlight(nid);
            let attempt = ch.attempt;
            let kind = ch.kind.unwrap_or(NotificationKind::JobModification);
            self.users[user.0 as usize].in_flight += 1;
            self.deliveries.insert(nid, (id, channel, kind, attempt));
            let in_flight = self.users[user.0 as usize].in_flight;
            let user_name = self.users[user.0 as usize].name.clone();
            self.record(TraceKind::NotifySent {
                job: id,
                kind,
                attempt,
                user: user_name,
                in_flight,
                delivery: nid,
            });
            self.effects.push_back(Effect::Notify(Notification {
                id: nid,
                job: id,
                kind,
                callback,
                attempt,
                file: (kind == NotificationKind::FileTransferred).then_some(file).flatten(),
                error: (kind == NotificationKind::JobError).then_some(error).flatten(),
            }));
        }
    }

    /// Whether the job's notify command line can run at all: the flavor has it, one is
    /// set, and the owner is not a service account (ref: SetNotifyCmdLine: "no form of
    /// command line callback" in a service account context).
    pub(crate) fn cmdline_runs_for(&self, id: JobId) -> bool {
        let job = self.job(id);
        let service = self.user_kind(job.owner).is_service_account();
        self.profile.supports_cmdline
            && job.cmdline.is_some()
            && (!service || self.profile.service_accounts_run_cmdline)
    }

    fn run_cmdline(&mut self, id: JobId) {
        let Some((program, parameters)) = self.job(id).cmdline.clone() else {
            return;
        };
        let nid = NotificationId(self.fresh_id());
        let ch = &mut self.job_mut(id).channels.final_;
        ch.attempt += 1;
        ch.phase = Phase::CmdLine(nid);
        let (attempt, kind) = (ch.attempt, ch.kind.unwrap_or(NotificationKind::JobTransferred));
        self.deliveries.insert(nid, (id, Channel::Final, kind, attempt));
        self.record(TraceKind::CmdLineRun {
            job: id,
            kind,
            attempt,
            program: program.clone(),
        });
        self.effects.push_back(Effect::RunCommandLine {
            id: nid,
            job: id,
            program,
            parameters,
        });
    }

    /// The application's callback returned `hr` for delivery `id`. `RPC_E_DISCONNECTED`
    /// means the callback object is gone: its registration is dropped.
    pub fn notification_returned(&mut self, now: Time, id: NotificationId, hr: Hresult) {
        self.advance(now);
        let Some((job_id, channel, kind, attempt)) = self.deliveries.remove(&id) else {
            return;
        };
        // Traced before the freed slot is reused, and also when the job has moved on
        // (cancelled, completed) since the call: the call held a slot until now.
        self.record(TraceKind::NotifyReturned {
            job: job_id,
            kind,
            attempt,
            result: hr,
            delivery: id,
        });
        let owner = self.job(job_id).callback_user;
        let u = &mut self.users[owner.0 as usize];
        u.in_flight = u.in_flight.saturating_sub(1);
        let ch = self.job_mut(job_id).channels.get(channel).clone();
        if ch.phase != Phase::InFlight(id) {
            self.pump_user(owner);
            return;
        }
        if hr == Hresult::RPC_E_DISCONNECTED {
            // ref: bits-spec §4.2: a new pointer gets the notification again
            self.job_mut(job_id).callback = None;
        }
        let accepted = match channel {
            Channel::Final => self.profile.job_callback_success.accepts(hr),
            Channel::File => self.profile.file_callback_success.accepts(hr),
            Channel::Modification => true, // never retried (ref: bits-spec §4.3)
        };
        // ref: "Registering to Execute a Program": only a failure code hands the event
        // to the command line; a success code (S_FALSE) is re-delivered to the callback.
        let cmdline = self.cmdline_runs_for(job_id) && self.profile.cmdline_fallback.runs_for(hr);
        let delay = {
            let (lo, hi) = self.profile.callback_retry_interval;
            crate::types::Span(self.rng.between(lo.0, hi.0))
        };
        let job = self.job_mut(job_id);
        match channel {
            Channel::Modification => job.channels.modification.reset(None),
            Channel::File if accepted => {
                job.channels.file_queue.pop_front();
                job.channels.file.reset(None);
            }
            Channel::Final if accepted => job.channels.final_.reset(None),
            Channel::Final if cmdline => {
                // ref: bits-spec §4.3/§4.4: a failing callback makes the command line run,
                // and the callback is not called again for this event
                job.channels.final_.via_cmdline = true;
                job.channels.final_.phase = Phase::Idle;
            }
            Channel::Final | Channel::File => {
                // ref: bits-spec §4.3: called again "at an arbitrary interval" until S_OK
                job.channels.get(channel).phase = Phase::Backoff;
                let kind = if channel == Channel::Final {
                    crate::service::TimerKind::FinalNotify
                } else {
                    crate::service::TimerKind::FileNotify
                };
                let at = self.now.plus(delay);
                self.arm(job_id, kind, at);
            }
        }
        self.pump_job(job_id);
        self.pump_user(owner);
    }

    /// The notify command line of delivery `id` exited with `exit_code`
    /// (ref: bits-spec §4.4: non-zero → run again after MinimumRetryDelay unless the
    /// program completed or cancelled the job).
    pub fn command_line_exited(&mut self, now: Time, id: NotificationId, exit_code: i32) {
        self.advance(now);
        let Some((job_id, ..)) = self.deliveries.remove(&id) else {
            return;
        };
        if self.job(job_id).channels.final_.phase != Phase::CmdLine(id) {
            return;
        }
        self.record(TraceKind::CmdLineExit { job: job_id, exit_code });
        if exit_code == 0 {
            self.job_mut(job_id).channels.final_.reset(None);
        } else {
            let at = self.now.plus(self.job(job_id).min_retry_delay);
            self.job_mut(job_id).channels.final_.phase = Phase::Backoff;
            self.arm(job_id, crate::service::TimerKind::FinalNotify, at);
        }
        self.pump_job(job_id);
        self.schedule();
    }
}

/// Where a job's notification channel stands, as [`Service::owed_final_notification`]
/// reports it (for liveness checks in tests and tools).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryPhase {
    /// Owed, nothing under way (no receiver, flags off, or held up by FileTransferred).
    Idle,
    /// In the owner's FIFO, waiting for one of the four slots.
    Waiting,
    /// Delivered to the callback, not yet returned.
    InFlight,
    /// Waiting for the re-delivery timer.
    Backoff,
    /// The notify command line is running.
    CmdLine,
}

impl From<Phase> for DeliveryPhase {
    fn from(p: Phase) -> DeliveryPhase {
        match p {
            Phase::Idle => DeliveryPhase::Idle,
            Phase::Waiting => DeliveryPhase::Waiting,
            Phase::InFlight(_) => DeliveryPhase::InFlight,
            Phase::Backoff => DeliveryPhase::Backoff,
            Phase::CmdLine(_) => DeliveryPhase::CmdLine,
        }
    }
}

impl Service {
    /// The JobTransferred / JobError notification `job` still owes and where it is;
    /// `None` when nothing is owed (not yet due, accepted, or the job moved on).
    pub fn owed_final_notification(&self, job: JobId) -> Option<(NotificationKind, DeliveryPhase)> {
        let ch = &self.find(job).ok()?.channels.final_;
        ch.kind.map(|k| (k, ch.phase.into()))
    }

    /// How many FileTransferred notifications `job` still owes, and its channel's phase.
    pub fn owed_file_notifications(&self, job: JobId) -> (usize, DeliveryPhase) {
        self.find(job).map_or((0, DeliveryPhase::Idle), |j| {
            (j.channels.file_queue.len(), j.channels.file.phase.into())
        })
    }
}

impl crate::service::Job {
    fn channels_kind(&self, c: Channel) -> NotificationKind {
        self.channels
            .get_ref(c)
            .kind
            .unwrap_or(NotificationKind::JobModification)
    }
}
