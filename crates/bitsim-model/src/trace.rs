//! The trace: the reviewable record of a run. One event per line, virtual timestamps,
//! no GUIDs and no wall-clock times (ARCHITECTURE.md, "The trace").

use crate::classify::Disposition;
use crate::notify::{NotificationId, NotificationKind};
use crate::rules::Trigger;
use crate::types::{ErrorContext, JobId, JobState, JobType, Time};
use crate::Hresult;
use std::fmt;

/// One observable change, stamped with the virtual time it happened at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceEvent {
    pub at: Time,
    pub kind: TraceKind,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceKind {
    JobCreated {
        job: JobId,
        job_type: JobType,
        user: String,
        display_name: String,
    },
    /// A state-changing or setter API call and what it returned (getters are not traced,
    /// so a trace does not depend on how often a client polls).
    Call {
        job: Option<JobId>,
        call: String,
        result: Hresult,
    },
    State {
        job: JobId,
        from: JobState,
        to: JobState,
        trigger: Trigger,
    },
    Error {
        job: JobId,
        hresult: Hresult,
        context: ErrorContext,
        disposition: Disposition,
        file: Option<usize>,
        error_count: u32,
    },
    TransferStart {
        job: JobId,
        what: String,
        offset: u64,
    },
    TransferAbort {
        job: JobId,
    },
    Connected {
        job: JobId,
        what: String,
        bytes_total: Option<u64>,
    },
    FileRestarted {
        job: JobId,
        file: usize,
    },
    FileDone {
        job: JobId,
        what: String,
        bytes: u64,
    },
    NotifySent {
        job: JobId,
        kind: NotificationKind,
        attempt: u32,
        user: String,
        in_flight: usize,
        /// Which call this is (not printed): two calls can share job, kind and
        /// attempt — a job that re-enters ERROR while its first JobError call is
        /// blocked starts a new event at #1 — and returns pair with calls by it.
        delivery: NotificationId,
    },
    NotifyReturned {
        job: JobId,
        kind: NotificationKind,
        attempt: u32,
        result: Hresult,
        /// The call returning (see `NotifySent::delivery`; not printed).
        delivery: NotificationId,
    },
    /// A notification waits for a free slot (the per-user limit).
    NotifyWaiting {
        job: JobId,
        kind: NotificationKind,
        user: String,
    },
    CmdLineRun {
        job: JobId,
        kind: NotificationKind,
        attempt: u32,
        program: String,
    },
    CmdLineExit {
        job: JobId,
        exit_code: i32,
    },
    FilesRenamed {
        job: JobId,
        files: Vec<usize>,
    },
    FilesDeleted {
        job: JobId,
        files: Vec<usize>,
    },
    Env {
        what: String,
    },
    /// Temporary files that could not be deleted (locked).
    FilesNotDeleted {
        job: JobId,
        files: Vec<usize>,
    },
    /// Files Complete could not rename onto their local names.
    RenameFailed {
        job: JobId,
        files: Vec<usize>,
        hresult: Hresult,
    },
    /// Cancel-Session sent for an upload (`what`: "upload" or "reply").
    CancelSession {
        job: JobId,
        what: &'static str,
        attempt: u32,
    },
    /// How a Cancel-Session ended: "server reached", "unreachable, retry at …", "gave up".
    CancelSessionOutcome {
        job: JobId,
        outcome: String,
    },
}

fn opt_size(v: Option<u64>) -> String {
    v.map_or_else(|| "unknown".to_string(), |v| v.to_string())
}

fn list(files: &[usize]) -> String {
    files.iter().map(|f| f.to_string()).collect::<Vec<_>>().join(",")
}

impl fmt::Display for TraceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceKind::JobCreated {
                job,
                job_type,
                user,
                display_name,
            } => {
                write!(
                    f,
                    "job {job} created type={job_type} user={user} name={display_name:?} -> SUSPENDED"
                )
            }
            TraceKind::Call {
                job: Some(job),
                call,
                result,
            } => write!(f, "call {job} {call} -> {result}"),
            TraceKind::Call {
                job: None,
                call,
                result,
            } => write!(f, "call {call} -> {result}"),
            TraceKind::State { job, from, to, trigger } => write!(f, "job {job} {from} -> {to} ({trigger})"),
            TraceKind::Error {
                job,
                hresult,
                context,
                disposition,
                file,
                error_count,
            } => {
                write!(f, "job {job} error {hresult} context={context} {disposition}")?;
                if let Some(file) = file {
                    write!(f, " file={file}")?;
                }
                write!(f, " errors={error_count}")
            }
            TraceKind::TransferStart { job, what, offset } => write!(f, "transfer {job} start {what} at {offset}"),
            TraceKind::TransferAbort { job } => write!(f, "transfer {job} abort"),
            TraceKind::Connected { job, what, bytes_total } => {
                write!(f, "transfer {job} connected {what} size={}", opt_size(*bytes_total))
            }
            TraceKind::FileRestarted { job, file } => {
                write!(f, "transfer {job} file {file} changed on server, restart at 0")
            }
            TraceKind::FileDone { job, what, bytes } => write!(f, "transfer {job} done {what} bytes={bytes}"),
            TraceKind::NotifySent {
                job,
                kind,
                attempt,
                user,
                in_flight,
                ..
            } => {
                write!(
                    f,
                    "notify {kind} {job} #{attempt} delivered user={user} in_flight={in_flight}"
                )
            }
            TraceKind::NotifyReturned {
                job,
                kind,
                attempt,
                result,
                ..
            } => {
                write!(f, "notify {kind} {job} #{attempt} returned {result}")
            }
            TraceKind::NotifyWaiting { job, kind, user } => {
                write!(f, "notify {kind} {job} waits for a slot user={user}")
            }
            TraceKind::CmdLineRun {
                job,
                kind,
                attempt,
                program,
            } => {
                write!(f, "cmdline {kind} {job} #{attempt} run {program:?}")
            }
            TraceKind::CmdLineExit { job, exit_code } => write!(f, "cmdline {job} exited {exit_code}"),
            TraceKind::FilesRenamed { job, files } => write!(f, "files {job} renamed [{}]", list(files)),
            TraceKind::FilesDeleted { job, files } => write!(f, "files {job} deleted [{}]", list(files)),
            TraceKind::Env { what } => write!(f, "env {what}"),
            TraceKind::FilesNotDeleted { job, files } => {
                write!(f, "files {job} temporaries not deleted [{}] (locked)", list(files))
            }
            TraceKind::RenameFailed { job, files, hresult } => {
                write!(f, "files {job} rename failed [{}] {hresult}", list(files))
            }
            TraceKind::CancelSession { job, what, attempt } => {
                write!(f, "cancel-session {job} {what} #{attempt} sent")
            }
            TraceKind::CancelSessionOutcome { job, outcome } => write!(f, "cancel-session {job} {outcome}"),
        }
    }
}

impl fmt::Display for TraceEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}  {}", self.at.padded(), self.kind)
    }
}

/// Renders events one per line.
pub fn render(events: &[TraceEvent]) -> String {
    let mut out = String::new();
    for e in events {
        out.push_str(&e.to_string());
        out.push('\n');
    }
    out
}
