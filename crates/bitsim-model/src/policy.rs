//! Transfer policy: jobs that quietly stall. The current network's cost against the
//! job's cost flags, battery saver and the bandwidth group policy block a job without
//! an error of its own: it waits in TRANSIENT_ERROR with a BG_E_BLOCKED_BY_* code, its
//! error count does not grow, no retry timer runs, and it goes back to QUEUED as soon
//! as the condition clears.
//!
//! ref: BITS_JOB_TRANSFER_POLICY, BITS_JOB_PROPERTY_ID_COST_FLAGS and "Control a BITS
//! download over an expensive connection" (Microsoft Learn: "if the end user's network
//! changes … BITS will suspend the job until network conditions are optimal"); BITS
//! return values (BG_E_BLOCKED_BY_COST_TRANSFER_POLICY, _BATTERY_SAVER, _POLICY); the
//! Group Policy "Limit the maximum network bandwidth for BITS background transfers".

use crate::classify::Disposition;
use crate::rules::Trigger;
use crate::service::{JobError, Service};
use crate::trace::TraceKind;
use crate::types::{ErrorContext, JobId, JobPriority, JobState};
use crate::Hresult;

/// `BITS_COST_STATE_*`: what the current network costs (one bit).
pub mod cost_state {
    pub const UNRESTRICTED: u32 = 0x1;
    pub const CAPPED_USAGE_UNKNOWN: u32 = 0x2;
    pub const BELOW_CAP: u32 = 0x4;
    pub const NEAR_CAP: u32 = 0x8;
    pub const OVERCAP_CHARGED: u32 = 0x10;
    pub const OVERCAP_THROTTLED: u32 = 0x20;
    pub const USAGE_BASED: u32 = 0x40;
    pub const ROAMING: u32 = 0x80;

    /// Every state with its scenario name.
    pub const NAMES: [(&str, u32); 8] = [
        ("unrestricted", UNRESTRICTED),
        ("capped_usage_unknown", CAPPED_USAGE_UNKNOWN),
        ("below_cap", BELOW_CAP),
        ("near_cap", NEAR_CAP),
        ("overcap_charged", OVERCAP_CHARGED),
        ("overcap_throttled", OVERCAP_THROTTLED),
        ("usage_based", USAGE_BASED),
        ("roaming", ROAMING),
    ];

    pub fn parse(s: &str) -> Option<u32> {
        NAMES.iter().find(|(n, _)| n.eq_ignore_ascii_case(s)).map(|(_, v)| *v)
    }
}

/// `BITS_JOB_TRANSFER_POLICY_*`: the cost states a job may transfer on.
pub mod transfer_policy {
    pub const ALWAYS: u32 = 0x8000_00FF;
    pub const NOT_ROAMING: u32 = 0x8000_007F;
    pub const NO_SURCHARGE: u32 = 0x8000_006F;
    pub const STANDARD: u32 = 0x8000_0067;
    pub const UNRESTRICTED: u32 = 0x8000_0021;

    pub const NAMES: [(&str, u32); 5] = [
        ("ALWAYS", ALWAYS),
        ("NOT_ROAMING", NOT_ROAMING),
        ("NO_SURCHARGE", NO_SURCHARGE),
        ("STANDARD", STANDARD),
        ("UNRESTRICTED", UNRESTRICTED),
    ];

    /// `STANDARD`, `BITS_JOB_TRANSFER_POLICY_STANDARD` or a number (`0x80000067`).
    pub fn parse(s: &str) -> Option<u32> {
        let s = s.trim();
        if let Some(hex) = s.strip_prefix("0x") {
            return u32::from_str_radix(hex, 16).ok();
        }
        if let Ok(v) = s.parse() {
            return Some(v);
        }
        let s = s.strip_prefix("BITS_JOB_TRANSFER_POLICY_").unwrap_or(s);
        NAMES.iter().find(|(n, _)| n.eq_ignore_ascii_case(s)).map(|(_, v)| *v)
    }
}

/// The machine-wide conditions the policy rules read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Conditions {
    /// One `BITS_COST_STATE_*` bit.
    pub network_cost: u32,
    pub battery_saver: bool,
    /// MaxInternetBandwidth for background transfers is 0.
    pub background_bandwidth_zero: bool,
}

impl Default for Conditions {
    fn default() -> Self {
        Conditions {
            network_cost: cost_state::UNRESTRICTED,
            battery_saver: false,
            background_bandwidth_zero: false,
        }
    }
}

impl Service {
    /// What keeps the job from transferring now, if anything (checked in this order).
    pub(crate) fn policy_block(&self, id: JobId) -> Option<Hresult> {
        let job = self.job(id);
        let c = self.conditions;
        let background = job.priority != JobPriority::Foreground;
        // ref: BITS_JOB_TRANSFER_POLICY: the job transfers only on the cost states its
        // flags include.
        if job.cost_flags & c.network_cost == 0 {
            return Some(self.profile.codes.blocked_by_cost);
        }
        // ref: BG_E_BLOCKED_BY_BATTERY_SAVER; foreground exempt is UNVERIFIED (Profile).
        if c.battery_saver && (background || !self.profile.battery_saver_spares_foreground) {
            return Some(Hresult::BG_E_BLOCKED_BY_BATTERY_SAVER);
        }
        // ref: Group Policy "… bandwidth for BITS background transfers": 0 blocks them.
        if c.background_bandwidth_zero && background {
            return Some(Hresult::BG_E_BLOCKED_BY_POLICY);
        }
        None
    }

    /// Puts a QUEUED or active job in TRANSIENT_ERROR with the block's code, without a
    /// retry timer and without counting an error.
    pub(crate) fn block_for_policy(&mut self, id: JobId, hresult: Hresult) {
        let err = JobError {
            hresult,
            context: ErrorContext::GeneralQueueManager,
            file: None,
        };
        self.job_mut(id).error = Some(err);
        let error_count = self.job(id).error_count;
        self.record(TraceKind::Error {
            job: id,
            hresult,
            context: err.context,
            disposition: Disposition::WaitForCondition,
            file: None,
            error_count,
        });
        if self.transition(id, Trigger::BlockedByPolicy) {
            self.job_mut(id).blocked_by_policy = true;
        }
    }

    /// The conditions (or a job's cost flags or priority) changed: block what is now
    /// blocked, release what no longer is.
    pub(crate) fn reevaluate_policy(&mut self) {
        let ids: Vec<JobId> = self.jobs.iter().filter(|j| !j.state.is_final()).map(|j| j.id).collect();
        for id in ids {
            self.reevaluate_job_policy(id);
        }
    }

    pub(crate) fn reevaluate_job_policy(&mut self, id: JobId) {
        if !self.network_up {
            return;
        }
        let state = self.job(id).state;
        let block = self.policy_block(id);
        match (state, block) {
            (JobState::Queued | JobState::Connecting | JobState::Transferring, Some(hr)) => {
                self.block_for_policy(id, hr);
            }
            (JobState::TransientError, None) if self.job(id).blocked_by_policy => {
                self.transition(id, Trigger::PolicyAllows);
            }
            // Still blocked, perhaps for another reason: the error says which.
            (JobState::TransientError, Some(hr))
                if self.job(id).blocked_by_policy && self.job(id).error.is_some_and(|e| e.hresult != hr) =>
            {
                if let Some(e) = self.job_mut(id).error.as_mut() {
                    e.hresult = hr;
                }
            }
            _ => {}
        }
    }
}
