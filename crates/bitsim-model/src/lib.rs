//! # bitsim-model
//!
//! A sans-IO model of the job semantics of Windows BITS (Background Intelligent
//! Transfer Service) and Delivery Optimization's BITS-compatible API, in the style of
//! `quinn-proto`: no I/O, no clock, no threads. A driver feeds it API calls, transfer
//! events, callback returns, environment events and `handle_timeout(now)`, and polls
//! [`Service::poll_effect`] / [`Service::poll_timeout`]. Every observable change lands
//! in the [trace](Service::trace). The same inputs and seed give the same trace.
//!
//! The rules come from `../shared/reference/bits-spec.md` (cited as `ref: bits-spec §…`)
//! and `bits-http.md`. Behaviour that reference marks UNVERIFIED is a [`Profile`] field
//! where it could differ, and a conformance question.
//!
//! ## Example: a 403 and a JobError callback that fails twice
//!
//! ```
//! use bitsim_model::*;
//!
//! let mut svc = Service::new(Flavor::Bits, 42);
//! let alice = svc.add_user("alice");
//! let job = svc.create_job(Time::ZERO, alice, "updater", JobType::Download).unwrap();
//! svc.add_file(Time::ZERO, job, "http://127.0.0.1/f.bin", "C:\\f.bin").unwrap();
//! svc.set_notify_interface(Time::ZERO, job, Some(Callback { id: 1, callback2: false })).unwrap();
//! svc.resume(Time::ZERO, job).unwrap();
//!
//! // The driver starts the transfer; its HEAD gets a 403.
//! let Some(Effect::StartTransfer(t)) = svc.poll_effect() else { unreachable!() };
//! let failure = TransferFailure::Http { status: 403, phase: RequestPhase::Download };
//! svc.handle_transfer(Time(4), t.transfer, TransferEvent::Failed(failure));
//! assert_eq!(svc.state(job), Ok(JobState::Error));
//! let err = svc.error(job).unwrap();
//! assert_eq!((err.hresult, err.context), (Hresult::BG_E_HTTP_ERROR_403, ErrorContext::RemoteFile));
//!
//! // The callback returns E_FAIL twice, then S_OK; BITS calls again until S_OK.
//! let mut deliveries = 0;
//! for answer in [Hresult::E_FAIL, Hresult::E_FAIL, Hresult::S_OK] {
//!     let n = loop {
//!         match svc.poll_effect() {
//!             Some(Effect::Notify(n)) if n.kind == NotificationKind::JobError => break n,
//!             Some(_) => continue,
//!             None => {
//!                 let at = svc.poll_timeout().expect("a re-delivery is scheduled");
//!                 svc.handle_timeout(at);
//!             }
//!         }
//!     };
//!     deliveries += 1;
//!     assert_eq!(n.attempt, deliveries);
//!     svc.notification_returned(svc.now(), n.id, answer);
//! }
//! let trace = render(svc.trace());
//! assert_eq!(trace.matches("returned 0x80004005 (E_FAIL)").count(), 2);
//! assert!(trace.contains("notify JobError j1 #3 returned 0x00000000 (S_OK)"));
//! ```

mod api;
mod classify;
mod credentials;
mod effect;
mod flavor;
mod hresult;
mod notify;
mod policy;
mod rng;
mod rules;
mod service;
mod trace;
mod types;
mod upload_cancel;

pub use api::{enum_jobs_scope, job_type_from_windows, ApiCall, ApiReply, ApiResult, ApiValue, EnumScope};
pub use classify::{
    classify, http_disposition, report_context, Classified, ContextPolicy, Disposition, HttpRule, NetworkFailure,
    NoProgressError, ProtocolFailure, RequestPhase, SourceFailure, TransferFailure, BITS_HTTP_RULES, DO_HTTP_RULES,
};
pub use credentials::{AuthScheme, AuthTarget, Credential};
pub use effect::{Effect, TransferId, TransferStart, TransferWhat};
pub use flavor::{CmdLineFallback, Codes, Flavor, Limits, Profile, RetryDelay, SuccessRule};
pub use hresult::Hresult;
pub use notify::{DeliveryPhase, Notification, NotificationId, NotificationKind};
pub use policy::{cost_state, transfer_policy};
pub use rng::Rng;
pub use rules::{method_rule, next_state, Allowed, Method, MethodRule, Transition, Trigger, METHOD_RULES, TRANSITIONS};
pub use service::{EnvEvent, FileLock, JobError, Service, TransferEvent};
pub use trace::{render, TraceEvent, TraceKind};
pub use types::*;
pub use upload_cancel::CancelWhat;
