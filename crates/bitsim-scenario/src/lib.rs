//! # bitsim-scenario
//!
//! Scenario files (JSON, with a JSON Schema), the [`Backend`] trait every system
//! under test implements, the [runner](run), the trace and the [`Projection`] used to
//! compare a run on the model with a run on real BITS, DO or Wine.

pub mod backend;
pub mod conformance;
pub mod digest;
pub mod format;
pub mod load;
pub mod observed;
pub mod projection;
pub mod runner;
pub mod validate;

pub use backend::{Backend, CommandRun, Delivery, NotApplicable};
pub use format::{CallbackPolicy, Dur, Scenario, Step, StepEntry};
pub use load::{discover, load_file, load_plan, parse_scenario, LoadError, LoadedScenario};
pub use observed::Observed;
pub use projection::{diff, diff_lines, Projection};
pub use runner::{flavors_for, run, run_full, run_observed, run_with, Failure, RunOptions, RunReport, Verdict};

/// The JSON Schema of scenario files, as `bitsim schema` prints it. Every step
/// variant also accepts `"only": "bits" | "do"`.
pub fn scenario_schema() -> serde_json::Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(Scenario)).unwrap_or_default();
    let only = serde_json::json!({
        "description": "Run this step only under this flavor.",
        "type": "string",
        "enum": ["bits", "do"]
    });
    if let Some(variants) = schema.pointer_mut("/$defs/Step/oneOf").and_then(|v| v.as_array_mut()) {
        for v in variants {
            if let Some(props) = v.get_mut("properties").and_then(|p| p.as_object_mut()) {
                props.insert("only".into(), only.clone());
            }
        }
    }
    schema
}
