//! The `Backend` trait: what the runner needs from a system under test. The
//! simulator (bitsim-engine) implements it over the model; the Windows adapter
//! implements it over real BITS / DO.

use crate::format::CallbackPolicy;
use bitsim_model::{
    ApiCall, ApiReply, Callback, EnvEvent, ErrorContext, Flavor, Hresult, JobId, NotificationKind, OwnerKind, Time,
    UserId,
};
use bitsim_server::{Plan, RequestLogEntry};
use serde::Serialize;

/// One callback delivery a backend observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    pub at: Time,
    pub job: JobId,
    pub kind: NotificationKind,
    /// 1 for the first delivery of an event, 2 for the first re-delivery, …
    pub attempt: u32,
    /// What the callback returned; `None` while it is still blocked.
    pub returned: Option<Hresult>,
    /// For JobError: the error the job reported.
    pub error: Option<(Hresult, ErrorContext)>,
    pub file: Option<usize>,
}

/// One run of the notify command line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommandRun {
    pub at: Time,
    pub job: JobId,
    pub exit_code: i32,
}

/// A step this backend cannot perform (e.g. "log a user off" on a real machine).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not applicable on this backend: {0}")]
pub struct NotApplicable(pub String);

/// The system a scenario runs against.
#[allow(async_fn_in_trait)]
pub trait Backend {
    /// E.g. `model`, `wine-qmgr`, `bits`, `do`.
    fn name(&self) -> String;
    fn flavor(&self) -> Flavor;
    /// Time since the run started (virtual on the simulator).
    fn now(&self) -> Time;
    fn add_user(&mut self, name: &str) -> Result<UserId, NotApplicable>;
    /// Makes a user a service account, an administrator or a non-interactive logon.
    fn set_user_kind(&mut self, user: UserId, kind: OwnerKind) -> Result<(), NotApplicable> {
        let _ = user;
        Err(NotApplicable(format!("cannot run jobs as a {} owner", kind.as_str())))
    }
    /// Creates a callback object that answers by `policy`.
    fn define_callback(&mut self, name: &str, policy: &CallbackPolicy) -> Callback;
    /// The exit codes the job's notify command line will return, in order.
    fn set_cmdline_exit_codes(&mut self, job: JobId, codes: &[i32]);
    /// The URL of a path on the mock server.
    fn url(&self, path: &str) -> String;
    /// The absolute local name of a file of the run.
    fn local_path(&self, name: &str) -> String;

    async fn call(&mut self, call: ApiCall) -> ApiReply;
    /// Lets time pass until `deadline`, returning early after any observable change
    /// (a state change, a delivery, a transfer event).
    async fn advance_until(&mut self, deadline: Time);
    async fn env(&mut self, event: EnvEvent) -> Result<(), NotApplicable>;
    async fn set_plan(&mut self, plan: Plan) -> Result<(), NotApplicable>;
    /// Lets blocked calls of callback `name` return.
    async fn release_callback(&mut self, name: &str);

    fn deliveries(&self) -> Vec<Delivery>;
    fn command_runs(&self) -> Vec<CommandRun>;
    fn in_flight(&self, user: UserId) -> Result<usize, NotApplicable>;
    fn requests(&self) -> Result<Vec<RequestLogEntry>, NotApplicable>;
    /// Creates a file of `size` deterministic bytes in the run's directory.
    fn write_file(&mut self, name: &str, size: u64) -> std::io::Result<()>;
    /// The size of a file in the run's directory, if it exists.
    fn file_size(&self, name: &str) -> Option<u64>;
    /// The size of a file the mock server committed from an upload, by URL path.
    fn uploaded_size(&self, path: &str) -> Result<Option<u64>, NotApplicable> {
        let _ = path;
        Err(NotApplicable("the server's committed uploads are not visible".into()))
    }
    /// The SHA-256 of what the mock server sends for a generated route
    /// (`/bytes/N`, `/redirect/k/bytes/N`, …); `None` for other paths.
    fn route_digest(&self, path: &str) -> Result<Option<[u8; 32]>, NotApplicable> {
        let _ = path;
        Err(NotApplicable("the mock server's route contents are not visible".into()))
    }
    /// Trace lines recorded since the last call.
    fn take_trace(&mut self) -> Vec<String>;
    /// The model's structured events since the last call (for the HTML report);
    /// backends without a model trace return none.
    fn take_events(&mut self) -> Vec<bitsim_model::TraceEvent> {
        Vec::new()
    }
    /// Which job opened each mock-server connection (by the request log's
    /// connection number), where the backend knows.
    fn connection_jobs(&self) -> Vec<(u64, JobId)> {
        Vec::new()
    }
    /// Why the backend stopped the run (a wall-clock timeout, or no progress in
    /// virtual time), if it did; the runner then fails the scenario with it.
    fn halted(&self) -> Option<String> {
        None
    }
    /// Names of the files in the run's directory (for the temporary-file invariant);
    /// `None` when the backend cannot list them.
    fn list_files(&self) -> Option<Vec<String>> {
        None
    }
}
