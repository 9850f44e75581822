//! The entry points `bitsim conform` calls on Windows (and under Wine):
//! `crates/bitsim/src/conform.rs` runs each scenario on the model and here,
//! then compares the projections.
//!
//! Status: the `bitsim_scenario::Backend` implementation over the COM layer
//! is the next step of issue 5. Until it lands, every scenario is reported as
//! not applicable (never as a pass), and `sweep_leftovers` is real.

use std::path::Path;

use bitsim_model::{Flavor, Time};
use bitsim_scenario::{LoadedScenario, Projection, RunReport, Verdict};

use crate::bits::BitsManager;
use crate::com::ComApartment;
use crate::delivery_optimization::DoManager;
use crate::guard::sweep;

const NOT_YET: &str = "the real-service backend (bitsim-windows Backend over BITS/DO) is not implemented yet";

/// Runs `l` under `flavor` against the real service, with the mock server at
/// `base_url` and local files under `scratch`; `label` names the system in
/// the report (e.g. `bits`, `wine-qmgr`).
pub fn run_scenario(
    l: &LoadedScenario,
    flavor: Flavor,
    seed: u64,
    _base_url: &str,
    _scratch: &Path,
    label: &str,
) -> RunReport {
    RunReport {
        name: l.name.clone(),
        file: l.path.display().to_string(),
        flavor,
        backend: label.to_string(),
        seed,
        verdict: Verdict::NotApplicable(NOT_YET.into()),
        trace: Vec::new(),
        projection: Projection::new(&l.name, flavor),
        covered: Time::ZERO,
    }
}

/// Cancels the current user's BITS jobs and aborts the DO downloads whose
/// display name starts with `bitsim-` (leftovers of earlier runs). Returns
/// how many were cancelled or aborted. DO is skipped where it does not exist
/// (before Windows 10 1809, under Wine).
pub fn sweep_leftovers() -> Result<usize, String> {
    let _apartment = ComApartment::init_mta().map_err(|hr| format!("CoInitializeEx(MTA) failed: {hr}"))?;
    let bits = BitsManager::connect().map_err(|hr| format!("connecting to BITS failed: {hr}"))?;
    let swept = sweep(&bits).map_err(|hr| format!("enumerating BITS jobs failed: {hr}"))?;
    let mut n = swept.iter().filter(|s| s.cancel.is_some()).count();
    if let Ok(dosvc) = DoManager::connect() {
        if let Ok(aborted) = dosvc.sweep() {
            n += aborted.len();
        }
    }
    Ok(n)
}
