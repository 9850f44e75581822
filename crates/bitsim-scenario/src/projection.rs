//! The projection: the part of a run a real system can reproduce — API return
//! codes, observed states and errors at checkpoints, which notifications arrived
//! (with their error and context), and the final files. No timings, no attempt
//! counts (the re-delivery interval is "arbitrary"). `bitsim diff` compares these.

use crate::backend::Delivery;
use bitsim_model::{ErrorContext, Flavor, Hresult, JobId, JobState, NotificationKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiResultRecord {
    pub line: usize,
    pub call: String,
    pub hresult: Hresult,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub line: usize,
    pub job: String,
    pub state: Option<JobState>,
    pub error: Option<(Hresult, ErrorContext)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationRecord {
    pub job: String,
    pub kind: NotificationKind,
    pub error: Option<(Hresult, ErrorContext)>,
    /// Whether some delivery of it was accepted (returned S_OK).
    pub accepted: bool,
}

/// What a run shows that another implementation can be compared on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Projection {
    pub scenario: String,
    pub flavor: String,
    pub api_results: Vec<ApiResultRecord>,
    pub checkpoints: Vec<Checkpoint>,
    pub notifications: Vec<NotificationRecord>,
    pub files: Vec<(String, u64)>,
}

impl Projection {
    pub fn new(scenario: &str, flavor: Flavor) -> Projection {
        Projection {
            scenario: scenario.to_string(),
            flavor: flavor.to_string(),
            api_results: Vec::new(),
            checkpoints: Vec::new(),
            notifications: Vec::new(),
            files: Vec::new(),
        }
    }

    /// One fact per line, in a stable order: what `bitsim diff` compares.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for r in &self.api_results {
            out.push(format!("line {:>4}  {} -> {}", r.line, r.call, r.hresult));
        }
        for c in &self.checkpoints {
            let state = c.state.map_or("none".to_string(), |s| s.to_string());
            let err = c
                .error
                .map_or(String::new(), |(h, ctx)| format!(" error={h} context={ctx}"));
            out.push(format!("line {:>4}  {} state={state}{err}", c.line, c.job));
        }
        for n in &self.notifications {
            let err = n
                .error
                .map_or(String::new(), |(h, ctx)| format!(" error={h} context={ctx}"));
            out.push(format!("notify {} {}{err} accepted={}", n.kind, n.job, n.accepted));
        }
        for (name, size) in &self.files {
            out.push(format!("file {name} {size} bytes"));
        }
        out
    }
}

/// Distinct notifications in order of first delivery.
pub fn notifications(deliveries: &[Delivery], names: &BTreeMap<JobId, String>) -> Vec<NotificationRecord> {
    let mut out: Vec<NotificationRecord> = Vec::new();
    for d in deliveries {
        let job = names.get(&d.job).cloned().unwrap_or_else(|| d.job.to_string());
        let accepted = d.returned == Some(Hresult::S_OK);
        if let Some(existing) = out
            .iter_mut()
            .find(|n| n.job == job && n.kind == d.kind && n.error == d.error)
        {
            existing.accepted |= accepted;
            continue;
        }
        out.push(NotificationRecord {
            job,
            kind: d.kind,
            error: d.error,
            accepted,
        });
    }
    out
}

/// A line-based diff of two projections: `-` only in `a`, `+` only in `b`.
/// Empty when they agree.
pub fn diff(a: &Projection, b: &Projection) -> Vec<String> {
    diff_lines(&a.lines(), &b.lines())
}

/// How long [`diff_lines`] searches for a minimal diff before settling for a
/// coarser (still correct) one: bounds the time on two long, unrelated traces.
pub const DIFF_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// Line diff of two line lists: `+ line` for lines only in `b`, `- line` for
/// lines only in `a` (in a changed block, the `+` lines first). Myers' algorithm
/// (the `similar` crate): memory linear in the input, not in the product of the
/// two lengths; within [`DIFF_DEADLINE`] the diff is minimal.
pub fn diff_lines(a: &[String], b: &[String]) -> Vec<String> {
    use similar::DiffOp;
    let deadline = std::time::Instant::now() + DIFF_DEADLINE;
    let ops = similar::capture_diff_slices_deadline(similar::Algorithm::Myers, a, b, Some(deadline));
    let mut out = Vec::new();
    for op in ops {
        match op {
            DiffOp::Equal { .. } => {}
            DiffOp::Delete { old_index, old_len, .. } => {
                out.extend(a[old_index..old_index + old_len].iter().map(|l| format!("- {l}")));
            }
            DiffOp::Insert { new_index, new_len, .. } => {
                out.extend(b[new_index..new_index + new_len].iter().map(|l| format!("+ {l}")));
            }
            DiffOp::Replace {
                old_index,
                old_len,
                new_index,
                new_len,
            } => {
                out.extend(b[new_index..new_index + new_len].iter().map(|l| format!("+ {l}")));
                out.extend(a[old_index..old_index + old_len].iter().map(|l| format!("- {l}")));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_shows_changed_lines() {
        let a: Vec<String> = ["x", "y", "z"].iter().map(|s| s.to_string()).collect();
        let b: Vec<String> = ["x", "q", "z"].iter().map(|s| s.to_string()).collect();
        assert_eq!(diff_lines(&a, &b), vec!["+ q".to_string(), "- y".to_string()]);
        assert!(diff_lines(&a, &a).is_empty());
    }

    /// Two long traces that differ in one line: the old LCS table took
    /// memory proportional to the product of the lengths (200k × 200k lines
    /// would be 160 GB); Myers needs memory linear in the input.
    #[test]
    fn long_traces_diff_in_linear_memory() {
        let a: Vec<String> = (0..200_000).map(|i| format!("{i:>12}  line {i}")).collect();
        let mut b = a.clone();
        b[123_456] = "changed".into();
        b.push("extra".into());
        let d = diff_lines(&a, &b);
        assert_eq!(
            d,
            vec![
                "+ changed".to_string(),
                format!("- {}", a[123_456]),
                "+ extra".to_string()
            ]
        );
    }
}
