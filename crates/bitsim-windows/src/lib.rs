//! bitsim's adapter for the real Windows BITS and Delivery Optimization
//! services, over COM. Everything here is `cfg(windows)`: on other targets the
//! crate is empty and its `windows` dependencies are not built.
//!
//! Layers:
//! - [`ComApartment`]: COM initialisation (MTA) for the calling thread;
//! - [`BitsManager`] / [`BitsJob`]: the BITS API, each call returning its raw
//!   HRESULT ([`Hr`], success codes included) and getters an [`Outcome`];
//! - [`CallbackRecorder`]: an `IBackgroundCopyCallback2` that records every
//!   delivery and answers per a [`CallbackPolicy`];
//! - [`JobGuard`], [`sweep`], [`cancel_live_jobs`]: no job is left behind;
//! - [`delivery_optimization`]: IDOManager / IDODownload declared by hand,
//!   with [`DoManager`] / [`DoDownload`] / [`DoStatusRecorder`];
//! - [`WindowsBackend`]: `bitsim_scenario::Backend` over BITS, so the
//!   scenario runner replays a scenario against the real service;
//! - [`conform`]: the entry points of `bitsim conform` on Windows.
//!
//! Type-check it on Linux with `scripts/check-windows.sh`; run it under Wine
//! with `scripts/wine-conformance.sh`.
#![cfg(windows)]

mod backend;
mod bits;
mod callback;
mod com;
pub mod conform;
pub mod delivery_optimization;
mod guard;
mod hr;
mod model;
mod types;

pub use backend::{confined_path, file_bytes, safe_display_name, ServerControl, WindowsBackend};
pub use bits::{prefixed_display_name, BitsJob, BitsManager, DISPLAY_NAME_PREFIX};
pub use callback::{CallbackPolicy, CallbackRecorder, Delivery, DeliveryKind};
pub use com::ComApartment;
pub use delivery_optimization::{DoDownload, DoManager, DoState, DoStatus, DoStatusEvent, DoStatusRecorder, PropValue};
pub use guard::{cancel_live_jobs, live_jobs, sweep, JobGuard, SweptJob};
pub use hr::{Hr, Outcome};
pub use types::{
    notify, ErrorContext, FileInfo, FileProgress, JobErrorInfo, JobGuid, JobPriority, JobProgress, JobState, JobTimes,
    JobType, ReplyProgress, SIZE_UNKNOWN,
};
