//! bitsim's adapter for the real Windows BITS and Delivery Optimization
//! services, over COM. Everything here but [`do_map`] is `cfg(windows)`: on
//! other targets only that pure module is built, not the `windows` crates.
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
//! - [`DoBackend`]: `bitsim_scenario::Backend` over Delivery Optimization's
//!   IDODownload (one scenario job = one download);
//! - [`do_map`]: the pure DO → BITS state / error mappings (every target);
//! - [`conform`]: the entry points of `bitsim conform` on Windows.
//!
//! Type-check it on Linux with `scripts/check-windows.sh`; run it under Wine
//! with `scripts/wine-conformance.sh`.

#[cfg(windows)]
mod backend;
#[cfg(windows)]
mod bits;
#[cfg(windows)]
mod callback;
#[cfg(windows)]
mod com;
#[cfg(windows)]
pub mod conform;
#[cfg(windows)]
pub mod delivery_optimization;
#[cfg(windows)]
mod do_backend;
pub mod do_map;
#[cfg(windows)]
mod guard;
#[cfg(windows)]
mod hr;
#[cfg(windows)]
mod model;
#[cfg(windows)]
mod types;

#[cfg(windows)]
pub use backend::{confined_path, file_bytes, safe_display_name, ServerControl, WindowsBackend};
#[cfg(windows)]
pub use bits::{prefixed_display_name, BitsJob, BitsManager, DISPLAY_NAME_PREFIX};
#[cfg(windows)]
pub use callback::{CallbackPolicy, CallbackRecorder, Delivery, DeliveryKind};
#[cfg(windows)]
pub use com::ComApartment;
#[cfg(windows)]
pub use delivery_optimization::{DoDownload, DoManager, DoState, DoStatus, DoStatusEvent, DoStatusRecorder, PropValue};
#[cfg(windows)]
pub use do_backend::DoBackend;
#[cfg(windows)]
pub use guard::{cancel_live_jobs, live_jobs, sweep, JobGuard, SweptJob};
#[cfg(windows)]
pub use hr::{Hr, Outcome};
#[cfg(windows)]
pub use types::{
    notify, ErrorContext, FileInfo, FileProgress, JobErrorInfo, JobGuid, JobPriority, JobProgress, JobState, JobTimes,
    JobType, ReplyProgress, SIZE_UNKNOWN,
};
