//! Cancel of an upload tells the server: the client sends Cancel-Session so the
//! server drops the partial upload, and keeps trying for a while when the server
//! cannot be reached.
//!
//! ref: IBackgroundCopyJob::Cancel (Microsoft Learn): "removes related temporary
//! files from the … server (uploads)"; "BITS periodically sends a cancel request to
//! the BITS server for up to 24 hours … If the no-progress time-out period is less
//! than 24 hours, BITS uses the no-progress time-out period"; "If the upload is
//! complete and the job is of type BG_JOB_TYPE_UPLOAD_REPLY, the method cancels the
//! reply". ref: Cancel-Session (Microsoft Learn): "no effect on a file whose last
//! fragment has already been sent"; "in the upload-reply case, the Cancel-Session
//! packet cancels the reply portion". ref: bits-http §3.3.

use crate::effect::Effect;
use crate::service::{Service, TimerKind};
use crate::trace::TraceKind;
use crate::types::{JobId, JobType, Span, Time};

/// What a Cancel-Session cancels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelWhat {
    /// The upload is not complete: the server deletes the partial upload.
    Upload,
    /// An upload-reply job whose upload landed: only the reply is cancelled; the
    /// uploaded file stays on the server.
    Reply,
}

impl CancelWhat {
    fn as_str(self) -> &'static str {
        match self {
            CancelWhat::Upload => "upload",
            CancelWhat::Reply => "reply",
        }
    }
}

/// A Cancel-Session still owed to the server.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PendingCancel {
    pub what: CancelWhat,
    pub attempt: u32,
    /// No try is made after this.
    pub give_up_at: Time,
}

impl Service {
    /// Whether cancelling the job now must tell the server, and what it cancels.
    /// A finished upload (TRANSFERRED upload job, or an upload-reply job with its
    /// reply) has nothing left on the server to cancel; a job that never sent
    /// Create-Session has no session.
    pub(crate) fn session_to_cancel(&self, id: JobId) -> Option<CancelWhat> {
        let job = self.job(id);
        if !job.job_type.is_upload() || !job.upload_session_opened {
            return None;
        }
        let uploaded = job.files.first().is_some_and(|f| f.transferred);
        match (job.job_type, uploaded) {
            (_, false) => Some(CancelWhat::Upload),
            (JobType::UploadReply, true) if !job.reply.done => Some(CancelWhat::Reply),
            _ => None,
        }
    }

    /// Cancel was called: the first Cancel-Session goes out now.
    pub(crate) fn start_cancel_session(&mut self, id: JobId, what: CancelWhat) {
        let job = self.job(id);
        let window = self.profile.cancel_session_retry_for.min(job.no_progress_timeout);
        let give_up_at = self.now.plus(window);
        self.job_mut(id).cancel_session = Some(PendingCancel {
            what,
            attempt: 0,
            give_up_at,
        });
        self.send_cancel_session(id);
    }

    /// Emits the next Cancel-Session try.
    pub(crate) fn send_cancel_session(&mut self, id: JobId) {
        let Some(pending) = self.job(id).cancel_session else {
            return;
        };
        let attempt = pending.attempt + 1;
        let remote_name = self
            .job(id)
            .files
            .first()
            .map(|f| f.remote_name.clone())
            .unwrap_or_default();
        if let Some(p) = self.job_mut(id).cancel_session.as_mut() {
            p.attempt = attempt;
        }
        self.record(TraceKind::CancelSession {
            job: id,
            what: pending.what.as_str(),
            attempt,
        });
        self.effects.push_back(Effect::CancelUploadSession {
            job: id,
            remote_name,
            attempt,
        });
    }

    /// The driver's Cancel-Session try ended: `reached` when the server answered
    /// (any answer: a session the server no longer knows is gone either way).
    pub fn cancel_session_result(&mut self, now: Time, job: JobId, reached: bool) {
        self.advance(now);
        let Ok(j) = self.find(job) else { return };
        let Some(pending) = j.cancel_session else { return };
        if reached {
            self.job_mut(job).cancel_session = None;
            self.record(TraceKind::CancelSessionOutcome {
                job,
                outcome: "server reached".into(),
            });
            return;
        }
        let every = self
            .profile
            .cancel_session_retry_every
            .unwrap_or(self.job(job).min_retry_delay)
            .max(Span::from_secs(1));
        let next = self.now.plus(every);
        if next > pending.give_up_at {
            self.job_mut(job).cancel_session = None;
            self.record(TraceKind::CancelSessionOutcome {
                job,
                outcome: format!("unreachable, gave up after {} tries", pending.attempt),
            });
            return;
        }
        self.record(TraceKind::CancelSessionOutcome {
            job,
            outcome: format!("unreachable, retry at {next}"),
        });
        self.arm(job, TimerKind::CancelSession, next);
    }

    /// Whether a cancelled upload still owes the server a Cancel-Session.
    pub fn cancel_session_pending(&self, job: JobId) -> bool {
        self.find(job).is_ok_and(|j| j.cancel_session.is_some())
    }
}
