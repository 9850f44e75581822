//! Conformance: compare a run on a real system (BITS, DO, Wine's qmgr) with the
//! model's run of the same scenario, allowing for known, explained deviations, and
//! write the scenario × backend matrix a reviewer reads.

use crate::projection::diff;
use crate::runner::{RunReport, Verdict};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::Path;

/// A backend's known deviations from the model, each with its explanation
/// (e.g. `fixtures/conformance/wine-qmgr.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectedDifferences {
    /// The backend these apply to (`bits`, `do`, `wine-qmgr`).
    pub backend: String,
    #[serde(default)]
    pub differences: Vec<KnownDifference>,
}

/// One known deviation.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KnownDifference {
    /// Scenario name (path under the corpus root, without `.json`); a trailing `*`
    /// matches a prefix (e.g. `uploads/*`).
    pub scenario: String,
    /// One line: why the backend differs.
    pub reason: String,
}

impl ExpectedDifferences {
    /// Loads a file; errors name the file, line and field.
    pub fn load(path: &Path) -> Result<ExpectedDifferences, crate::LoadError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| crate::LoadError {
            file: file.clone(),
            line: 0,
            column: 0,
            field: ".".into(),
            message: format!("cannot read: {e}"),
        })?;
        let mut de = serde_json::Deserializer::from_str(&text);
        serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let field = e.path().to_string();
            let inner = e.into_inner();
            crate::LoadError {
                file,
                line: inner.line(),
                column: inner.column(),
                field,
                message: inner.to_string(),
            }
        })
    }

    /// The explanation for `scenario`, if it is a known deviation.
    pub fn reason_for(&self, scenario: &str) -> Option<&str> {
        self.differences
            .iter()
            .find(|d| match d.scenario.strip_suffix('*') {
                Some(prefix) => scenario.starts_with(prefix),
                None => d.scenario == scenario,
            })
            .map(|d| d.reason.as_str())
    }
}

/// How one scenario compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The projections agree.
    Match,
    /// They differ, and the difference is not explained: a failure.
    Differs { diff: Vec<String> },
    /// They differ, as the expected-differences file explains.
    KnownDifference { reason: String, diff: Vec<String> },
    /// The scenario cannot run on this backend (sim-only, too long in real time,
    /// a step the backend cannot perform, a flavor it lacks).
    NotApplicable { why: String },
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Match => "match",
            Outcome::Differs { .. } => "differs",
            Outcome::KnownDifference { .. } => "known",
            Outcome::NotApplicable { .. } => "n/a",
        }
    }

    /// Whether this outcome fails the conformance run.
    pub fn fails(&self) -> bool {
        matches!(self, Outcome::Differs { .. })
    }
}

/// Compares the model's run with the real one.
pub fn compare(model: &RunReport, real: &RunReport, expected: &ExpectedDifferences) -> Outcome {
    if let Verdict::NotApplicable(why) = &real.verdict {
        return Outcome::NotApplicable { why: why.clone() };
    }
    let lines = diff(&model.projection, &real.projection);
    if lines.is_empty() {
        return Outcome::Match;
    }
    match expected.reason_for(&model.name) {
        Some(reason) => Outcome::KnownDifference {
            reason: reason.to_string(),
            diff: lines,
        },
        None => Outcome::Differs { diff: lines },
    }
}

/// One row of the matrix.
#[derive(Debug, Clone)]
pub struct MatrixRow {
    pub scenario: String,
    pub flavor: String,
    pub outcome: Outcome,
    /// Relative links to the model's and the backend's traces.
    pub model_trace: Option<String>,
    pub real_trace: Option<String>,
}

/// The conformance matrix as Markdown: one row per scenario, with links to the
/// traces, and the known deviations explained.
pub fn report_markdown(backend: &str, rows: &[MatrixRow], note: &str) -> String {
    let mut out = String::new();
    let count = |label: &str| rows.iter().filter(|r| r.outcome.label() == label).count();
    let _ = writeln!(out, "# Conformance: model vs {backend}\n");
    if !note.is_empty() {
        let _ = writeln!(out, "{note}\n");
    }
    let _ = writeln!(
        out,
        "{} scenarios: {} match, {} known differences, {} unexpected differences, {} not applicable.\n",
        rows.len(),
        count("match"),
        count("known"),
        count("differs"),
        count("n/a")
    );
    let _ = writeln!(out, "| scenario | flavor | model | {backend} | traces | note |");
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    for r in rows {
        let traces = match (&r.model_trace, &r.real_trace) {
            (Some(m), Some(b)) => format!("[model]({m}) · [{backend}]({b})"),
            (Some(m), None) => format!("[model]({m})"),
            _ => String::new(),
        };
        let note = match &r.outcome {
            Outcome::Match => String::new(),
            Outcome::Differs { diff } => format!("unexpected: `{}`", diff.first().cloned().unwrap_or_default()),
            Outcome::KnownDifference { reason, .. } => reason.clone(),
            Outcome::NotApplicable { why } => why.clone(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | pass | {} | {} | {} |",
            r.scenario,
            r.flavor,
            r.outcome.label(),
            traces,
            note.replace('|', "\\|")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::projection::{ApiResultRecord, Projection};
    use bitsim_model::{Flavor, Hresult, Time};

    fn report(name: &str, hr: Hresult, verdict: Verdict) -> RunReport {
        let mut projection = Projection::new(name, Flavor::Bits);
        projection.api_results.push(ApiResultRecord {
            line: 3,
            call: "Resume".into(),
            hresult: hr,
        });
        RunReport {
            name: name.into(),
            file: format!("{name}.json"),
            flavor: Flavor::Bits,
            backend: "x".into(),
            seed: 1,
            verdict,
            trace: Vec::new(),
            projection,
            covered: Time::ZERO,
        }
    }

    fn expected() -> ExpectedDifferences {
        ExpectedDifferences {
            backend: "wine-qmgr".into(),
            differences: vec![
                KnownDifference {
                    scenario: "uploads/*".into(),
                    reason: "Wine has no upload".into(),
                },
                KnownDifference {
                    scenario: "errors/http-403".into(),
                    reason: "Wine treats 403 as success".into(),
                },
            ],
        }
    }

    #[test]
    fn equal_projections_match() {
        let a = report("api/x", Hresult::S_OK, Verdict::Passed);
        assert_eq!(compare(&a, &a.clone(), &expected()), Outcome::Match);
    }

    #[test]
    fn unexplained_differences_fail_and_explained_ones_do_not() {
        let model = report("api/x", Hresult::S_OK, Verdict::Passed);
        let real = report("api/x", Hresult::E_NOTIMPL, Verdict::Passed);
        let o = compare(&model, &real, &expected());
        assert!(o.fails(), "{o:?}");
        let model = report("uploads/u1", Hresult::S_OK, Verdict::Passed);
        let real = report("uploads/u1", Hresult::E_NOTIMPL, Verdict::Passed);
        let o = compare(&model, &real, &expected());
        assert_eq!(o.label(), "known");
        assert!(!o.fails());
    }

    #[test]
    fn not_applicable_is_reported_as_such() {
        let model = report("env/logoff", Hresult::S_OK, Verdict::Passed);
        let real = report(
            "env/logoff",
            Hresult::S_OK,
            Verdict::NotApplicable("cannot log a user off".into()),
        );
        assert_eq!(compare(&model, &real, &expected()).label(), "n/a");
    }

    #[test]
    fn the_report_lists_every_row_with_its_outcome() {
        let rows = vec![
            MatrixRow {
                scenario: "api/x".into(),
                flavor: "bits".into(),
                outcome: Outcome::Match,
                model_trace: Some("t/api/x.model.trace".into()),
                real_trace: Some("t/api/x.wine.trace".into()),
            },
            MatrixRow {
                scenario: "uploads/u1".into(),
                flavor: "bits".into(),
                outcome: Outcome::KnownDifference {
                    reason: "Wine has no upload".into(),
                    diff: vec![],
                },
                model_trace: None,
                real_trace: None,
            },
        ];
        let md = report_markdown("wine-qmgr", &rows, "");
        assert!(md.contains("2 scenarios: 1 match, 1 known differences, 0 unexpected differences, 0 not applicable."));
        assert!(md.contains(
            "| api/x | bits | pass | match | [model](t/api/x.model.trace) · [wine-qmgr](t/api/x.wine.trace) |  |"
        ));
        assert!(md.contains("| uploads/u1 | bits | pass | known |  | Wine has no upload |"));
    }
}
