//! What a run observed, in structured form, for renderers (the HTML report):
//! the model's trace events, the scenario's job aliases, the mock server's
//! request log and the callback deliveries. The text trace in [`RunReport`]
//! stays the reviewable record; this is the same run without re-parsing it.
//!
//! [`RunReport`]: crate::RunReport

use crate::backend::{CommandRun, Delivery};
use bitsim_model::{JobId, TraceEvent};
use bitsim_server::RequestLogEntry;
use std::collections::BTreeMap;

/// The structured side of one run. Backends that have no structured trace
/// (the Windows adapters) leave `events` empty.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// The model's events, in order.
    pub events: Vec<TraceEvent>,
    /// The scenario's alias of each job (`dl` for `j1`).
    pub jobs: BTreeMap<JobId, String>,
    /// Every request the mock server saw, in arrival order.
    pub requests: Vec<RequestLogEntry>,
    /// Which job opened each request-log connection number.
    pub connections: BTreeMap<u64, JobId>,
    pub deliveries: Vec<Delivery>,
    pub command_runs: Vec<CommandRun>,
}

impl Observed {
    /// The alias of `job`, or its model id when the scenario did not name it.
    pub fn job_name(&self, job: JobId) -> String {
        self.jobs.get(&job).cloned().unwrap_or_else(|| job.to_string())
    }

    /// The job a logged request belongs to, when the backend said.
    pub fn request_job(&self, request: &RequestLogEntry) -> Option<JobId> {
        self.connections.get(&request.connection).copied()
    }
}
