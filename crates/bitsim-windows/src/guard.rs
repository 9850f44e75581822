//! Job safety: a conformance run must never leave a job behind.
//!
//! - every job gets the `bitsim-` display-name prefix ([`crate::BitsManager::create_job`]);
//! - a [`JobGuard`] cancels its job on drop, so also when a panic unwinds;
//! - live guarded jobs are listed process-wide, so a Ctrl-C handler or a
//!   timeout on another thread can cancel them ([`cancel_live_jobs`]);
//! - [`sweep`] cancels leftovers of earlier runs by display name.

use std::collections::BTreeSet;
use std::ops::Deref;
use std::sync::Mutex;

use crate::bits::{BitsJob, BitsManager, DISPLAY_NAME_PREFIX};
use crate::hr::Hr;
use crate::types::{JobGuid, JobState};

static LIVE: Mutex<BTreeSet<JobGuid>> = Mutex::new(BTreeSet::new());

fn live() -> std::sync::MutexGuard<'static, BTreeSet<JobGuid>> {
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Owns a job and cancels it on drop unless it already reached a final state
/// (ACKNOWLEDGED or CANCELLED) or was [`released`](JobGuard::release).
#[derive(Debug)]
pub struct JobGuard {
    job: Option<BitsJob>,
}

impl JobGuard {
    pub fn new(job: BitsJob) -> JobGuard {
        live().insert(job.id());
        JobGuard { job: Some(job) }
    }

    pub fn job(&self) -> &BitsJob {
        self.job.as_ref().expect("JobGuard holds its job until drop")
    }

    /// Stop guarding: the job is no longer cancelled on drop.
    pub fn release(mut self) -> BitsJob {
        let job = self.job.take().expect("JobGuard holds its job until drop");
        live().remove(&job.id());
        job
    }

    /// Cancel now unless final; returns Cancel's HRESULT (`None` if the job
    /// was already final). The guard stays, so drop does nothing more.
    pub fn cancel_unless_final(&self) -> Option<Hr> {
        let job = self.job();
        let final_already = job.get_state().ok().is_ok_and(JobState::is_final);
        if final_already {
            None
        } else {
            Some(job.cancel())
        }
    }
}

impl Deref for JobGuard {
    type Target = BitsJob;

    fn deref(&self) -> &BitsJob {
        self.job()
    }
}

impl Drop for JobGuard {
    fn drop(&mut self) {
        if let Some(job) = self.job.take() {
            let final_already = job.get_state().ok().is_ok_and(JobState::is_final);
            if !final_already {
                let _ = job.cancel();
            }
            live().remove(&job.id());
        }
    }
}

/// Ids of the jobs currently held by a [`JobGuard`] in this process.
pub fn live_jobs() -> Vec<JobGuid> {
    live().iter().copied().collect()
}

/// Cancel every job currently held by a [`JobGuard`] in this process (for a
/// Ctrl-C handler or a watchdog on another thread; the guards' own drops are
/// then no-ops apart from a GetState). Returns (id, Cancel's HRESULT) pairs.
pub fn cancel_live_jobs(manager: &BitsManager) -> Vec<(JobGuid, Hr)> {
    live_jobs()
        .into_iter()
        .map(|id| {
            let hr = match manager.get_job(id).ok() {
                Ok(job) => job.cancel(),
                Err(hr) => hr,
            };
            (id, hr)
        })
        .collect()
}

/// A job [`sweep`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweptJob {
    pub id: JobGuid,
    pub display_name: String,
    pub state: Option<JobState>,
    /// Cancel's HRESULT (`None` if the job was already final).
    pub cancel: Option<Hr>,
}

/// Cancel every job of the current user whose display name starts with
/// `bitsim-` (leftovers of earlier runs). Jobs in a final state are listed
/// but not cancelled. Fails only if EnumJobs fails.
pub fn sweep(manager: &BitsManager) -> Result<Vec<SweptJob>, Hr> {
    let jobs = manager.enum_jobs(false).ok()?;
    let mut swept = Vec::new();
    for job in jobs {
        let Ok(name) = job.get_display_name().ok() else {
            continue;
        };
        if !name.starts_with(DISPLAY_NAME_PREFIX) {
            continue;
        }
        let state = job.get_state().ok().ok();
        let cancel = match state {
            Some(s) if s.is_final() => None,
            _ => Some(job.cancel()),
        };
        swept.push(SweptJob {
            id: job.id(),
            display_name: name,
            state,
            cancel,
        });
    }
    Ok(swept)
}
