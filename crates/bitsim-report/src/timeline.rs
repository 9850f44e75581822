//! What the timeline shows, derived from a run's structured events: one lane per
//! job (state spans, API calls, requests, notification attempts, command-line
//! runs), the environment events, requests no job claimed, and notifications in
//! flight per user. Pure data; `svg.rs` draws it.

use bitsim_model::{Hresult, JobId, JobState, NotificationKind, TraceEvent, TraceKind};
use bitsim_scenario::Observed;
use std::collections::BTreeMap;

/// A state the job was in from `t0` to `t1`.
#[derive(Debug, Clone, PartialEq)]
pub struct StateSpan {
    pub t0: u64,
    pub t1: u64,
    pub state: JobState,
    /// ERROR / TRANSIENT_ERROR: the error that put the job there.
    pub error: Option<ErrorInfo>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ErrorInfo {
    pub hresult: Hresult,
    pub context: String,
    pub disposition: String,
    pub file: Option<usize>,
    pub error_count: u32,
}

impl ErrorInfo {
    /// The HRESULT's name (`BG_E_HTTP_ERROR_403`), else its hex value.
    pub fn name(&self) -> String {
        self.hresult
            .name()
            .unwrap_or_else(|| format!("0x{:08X}", self.hresult.0))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub t: u64,
    pub call: String,
    pub result: Hresult,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub t: u64,
    pub method: String,
    pub path: String,
    pub packet: Option<String>,
    pub status: Option<u16>,
    pub fault: Option<String>,
}

/// One delivery attempt of a notification (or a command-line run).
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub t: u64,
    pub kind: NotificationKind,
    pub attempt: u32,
    /// When the callback returned; `None` if it was still blocked at the end.
    pub returned_at: Option<u64>,
    pub result: Option<Hresult>,
    /// The notify command line instead of a callback: its program.
    pub cmdline: Option<String>,
    pub exit_code: Option<i32>,
}

impl Attempt {
    /// How long the attempt blocked its slot (or ran), in ms, when it returned.
    pub fn blocked_ms(&self) -> Option<u64> {
        self.returned_at.map(|r| r - self.t)
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobLane {
    pub name: String,
    pub user: String,
    pub job_type: String,
    pub spans: Vec<StateSpan>,
    pub calls: Vec<Call>,
    pub requests: Vec<Request>,
    pub attempts: Vec<Attempt>,
}

/// Notifications in flight for one user: `(t0, t1, count)` steps.
#[derive(Debug, Clone, PartialEq)]
pub struct InFlight {
    pub user: String,
    pub steps: Vec<(u64, u64, usize)>,
}

impl InFlight {
    pub fn max(&self) -> usize {
        self.steps.iter().map(|s| s.2).max().unwrap_or(0)
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timeline {
    pub jobs: Vec<JobLane>,
    pub env: Vec<(u64, String)>,
    /// Requests whose job the backend did not say (e.g. a TCP lane).
    pub other_requests: Vec<Request>,
    pub in_flight: Vec<InFlight>,
    /// The last instant drawn.
    pub end: u64,
    /// Events or requests beyond [`MAX_MARKS`] were left out.
    pub truncated: bool,
}

/// The most events, and the most requests, a timeline draws: a page stays
/// bounded whatever a scenario does (the corpus's longest run has a few hundred).
pub const MAX_MARKS: usize = 20_000;

impl Timeline {
    /// Every instant something happens at (the axis is built through these).
    pub fn instants(&self) -> Vec<u64> {
        let mut out = vec![0, self.end];
        for j in &self.jobs {
            out.extend(j.spans.iter().flat_map(|s| [s.t0, s.t1]));
            out.extend(j.calls.iter().map(|c| c.t));
            out.extend(j.requests.iter().map(|r| r.t));
            out.extend(j.attempts.iter().flat_map(|a| [Some(a.t), a.returned_at]).flatten());
        }
        out.extend(self.env.iter().map(|e| e.0));
        out.extend(self.other_requests.iter().map(|r| r.t));
        out
    }
}

/// Builds the timeline of a run that ended at `end` (virtual ms).
pub fn build(observed: &Observed, end: u64) -> Timeline {
    let mut lanes: BTreeMap<JobId, usize> = BTreeMap::new();
    let mut jobs: Vec<JobLane> = Vec::new();
    let mut last_error: BTreeMap<JobId, ErrorInfo> = BTreeMap::new();
    let mut env = Vec::new();
    let mut end = end;
    // (job, kind, attempt) -> (lane, index in attempts, user)
    let mut open: BTreeMap<bitsim_model::NotificationId, (usize, usize, String)> = BTreeMap::new();
    let mut open_cmd: BTreeMap<JobId, (usize, usize)> = BTreeMap::new();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut in_flight: BTreeMap<String, Vec<(u64, usize)>> = BTreeMap::new();

    let mut lane = |jobs: &mut Vec<JobLane>, job: JobId| -> usize {
        *lanes.entry(job).or_insert_with(|| {
            jobs.push(JobLane {
                name: observed.job_name(job),
                ..JobLane::default()
            });
            jobs.len() - 1
        })
    };

    for TraceEvent { at, kind } in observed.events.iter().take(MAX_MARKS) {
        let t = at.0;
        end = end.max(t);
        match kind {
            TraceKind::JobCreated {
                job, job_type, user, ..
            } => {
                let i = lane(&mut jobs, *job);
                jobs[i].user = user.clone();
                jobs[i].job_type = job_type.to_string();
                jobs[i].spans.push(StateSpan {
                    t0: t,
                    t1: t,
                    state: JobState::Suspended,
                    error: None,
                });
            }
            TraceKind::Call {
                job: Some(job),
                call,
                result,
            } => {
                let i = lane(&mut jobs, *job);
                jobs[i].calls.push(Call {
                    t,
                    call: call.clone(),
                    result: *result,
                });
            }
            TraceKind::State { job, to, .. } => {
                let i = lane(&mut jobs, *job);
                let error = matches!(to, JobState::Error | JobState::TransientError)
                    .then(|| last_error.get(job).cloned())
                    .flatten();
                if !matches!(to, JobState::Error | JobState::TransientError) {
                    last_error.remove(job);
                }
                let spans = &mut jobs[i].spans;
                if let Some(last) = spans.last_mut() {
                    last.t1 = t;
                }
                spans.push(StateSpan {
                    t0: t,
                    t1: t,
                    state: *to,
                    error,
                });
            }
            TraceKind::Error {
                job,
                hresult,
                context,
                disposition,
                file,
                error_count,
            } => {
                let info = ErrorInfo {
                    hresult: *hresult,
                    context: context.to_string(),
                    disposition: disposition.to_string(),
                    file: *file,
                    error_count: *error_count,
                };
                // An error that arrives while the job already is in an error state
                // (e.g. a later retry's) belongs to the span it is in.
                let i = lane(&mut jobs, *job);
                if let Some(span) = jobs[i].spans.last_mut() {
                    if matches!(span.state, JobState::Error | JobState::TransientError) && span.t0 == t {
                        span.error = Some(info.clone());
                    }
                }
                last_error.insert(*job, info);
            }
            TraceKind::NotifySent {
                job,
                kind,
                attempt,
                user,
                in_flight: n,
                delivery,
            } => {
                let i = lane(&mut jobs, *job);
                jobs[i].attempts.push(Attempt {
                    t,
                    kind: *kind,
                    attempt: *attempt,
                    returned_at: None,
                    result: None,
                    cmdline: None,
                    exit_code: None,
                });
                open.insert(*delivery, (i, jobs[i].attempts.len() - 1, user.clone()));
                counts.insert(user.clone(), *n);
                in_flight.entry(user.clone()).or_default().push((t, *n));
            }
            TraceKind::NotifyReturned { result, delivery, .. } => {
                // Paired by call: two calls can share job, kind and attempt.
                if let Some((i, k, user)) = open.remove(delivery) {
                    let a = &mut jobs[i].attempts[k];
                    a.returned_at = Some(t);
                    a.result = Some(*result);
                    let n = counts.entry(user.clone()).or_default();
                    *n = n.saturating_sub(1);
                    in_flight.entry(user).or_default().push((t, *n));
                }
            }
            TraceKind::CmdLineRun {
                job,
                kind,
                attempt,
                program,
            } => {
                let i = lane(&mut jobs, *job);
                jobs[i].attempts.push(Attempt {
                    t,
                    kind: *kind,
                    attempt: *attempt,
                    returned_at: None,
                    result: None,
                    cmdline: Some(program.clone()),
                    exit_code: None,
                });
                open_cmd.insert(*job, (i, jobs[i].attempts.len() - 1));
            }
            TraceKind::CmdLineExit { job, exit_code } => {
                if let Some((i, k)) = open_cmd.remove(job) {
                    jobs[i].attempts[k].returned_at = Some(t);
                    jobs[i].attempts[k].exit_code = Some(*exit_code);
                }
            }
            TraceKind::Env { what } => env.push((t, what.clone())),
            _ => {}
        }
    }

    let mut other_requests = Vec::new();
    for r in observed.requests.iter().take(MAX_MARKS) {
        end = end.max(r.at_ms);
        let request = Request {
            t: r.at_ms,
            method: r.method.clone(),
            path: r.path.clone(),
            packet: r.packet_type.clone(),
            status: r.status,
            fault: r.fault.clone(),
        };
        match observed.request_job(r) {
            Some(job) => {
                let i = lane(&mut jobs, job);
                jobs[i].requests.push(request);
            }
            None => other_requests.push(request),
        }
    }

    for j in &mut jobs {
        // The last state lasts until the end of the run (a final one too: the
        // lane then says "CANCELLED since …").
        if let Some(last) = j.spans.last_mut() {
            last.t1 = end;
        }
    }
    let in_flight = in_flight
        .into_iter()
        .map(|(user, points)| {
            let mut steps: Vec<(u64, u64, usize)> = Vec::new();
            for (k, &(t, n)) in points.iter().enumerate() {
                let t1 = points.get(k + 1).map_or(end, |p| p.0);
                steps.push((t, t1, n));
            }
            InFlight { user, steps }
        })
        .collect();
    Timeline {
        jobs,
        env,
        other_requests,
        in_flight,
        end,
        truncated: observed.events.len() > MAX_MARKS || observed.requests.len() > MAX_MARKS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitsim_model::Time;

    #[test]
    fn a_flood_of_events_is_cut_at_the_mark_limit() {
        let observed = Observed {
            events: (0..MAX_MARKS as u64 + 5000)
                .map(|i| TraceEvent {
                    at: Time(i),
                    kind: TraceKind::Env {
                        what: "network lost".into(),
                    },
                })
                .collect(),
            ..Observed::default()
        };
        let tl = build(&observed, 0);
        assert_eq!(tl.env.len(), MAX_MARKS);
        assert!(tl.truncated);
        assert!(!build(&Observed::default(), 0).truncated);
    }
}
