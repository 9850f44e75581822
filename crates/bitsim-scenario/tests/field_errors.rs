//! Issue 13 item 6: an error names the field that is wrong, on that field's
//! line. Every field of every fixture is broken in turn, one at a time: given
//! a value of the wrong type, or (the case a substring guess got wrong) the
//! string value of another field of the same step, such as the job alias as a
//! `state`. The error must name exactly that field, and its line must be the
//! one the field is on.

use serde_json::Value;
use std::path::Path;

/// The fixture scenarios, as (name, JSON value).
fn fixtures() -> Vec<(String, Value)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/scenarios");
    let files = bitsim_scenario::discover(&[root]).expect("fixtures");
    files
        .into_iter()
        .map(|(path, _)| {
            let text = std::fs::read_to_string(&path).expect("fixture");
            (
                path.display().to_string(),
                serde_json::from_str(&text).expect("fixture JSON"),
            )
        })
        .collect()
}

/// Whether `field` is `want` or a path below it (`want.x`, `want[0]`).
fn names(field: &str, want: &str) -> bool {
    field == want || field.starts_with(&format!("{want}.")) || field.starts_with(&format!("{want}["))
}

/// Loads `doc` pretty-printed; when it fails, checks the error names
/// `want` on the line where `key` is. Returns whether it failed.
/// With `only_in`, an error about another step is not checked (a valid value
/// can break a later step, e.g. a renamed job alias).
fn check(doc: &Value, want: &str, key: &str, after_line: usize, what: &str, only_in: Option<&str>) -> bool {
    let text = serde_json::to_string_pretty(doc).expect("JSON");
    let Err(e) = bitsim_scenario::parse_scenario(&text, "t.json") else {
        return false;
    };
    if only_in.is_some_and(|step| !names(&e.field, step)) {
        return false;
    }
    assert!(
        names(&e.field, want),
        "{what}: error names `{}`, not `{want}`: {e}",
        e.field
    );
    // The key's own line: the first line after the step's start that has it.
    let line_of_key = text
        .lines()
        .enumerate()
        .skip(after_line)
        .find(|(_, l)| l.trim_start().starts_with(&format!("\"{key}\":")))
        .map(|(n, _)| n + 1);
    // On the key's line, or inside its value (a nested field's own line).
    let Some(at) = line_of_key else {
        panic!("{what}: key `{key}` not found after line {after_line}")
    };
    assert!(
        (at..=value_end(&text, at)).contains(&e.line),
        "{what}: error on line {}, the field is on line {at}: {e}\n{text}",
        e.line
    );
    true
}

/// The last line (1-based) of the value whose key is on line `at`: the
/// lines after it that are indented deeper, and its closing bracket.
fn value_end(text: &str, at: usize) -> usize {
    let lines: Vec<&str> = text.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let key_indent = indent(lines[at - 1]);
    let mut end = at;
    for (k, l) in lines.iter().enumerate().skip(at) {
        if indent(l) <= key_indent {
            if l.trim_start().starts_with(['}', ']']) {
                end = k + 1;
            }
            break;
        }
        end = k + 1;
    }
    end
}

/// The 0-based line where step `i` starts in the pretty-printed document.
fn step_start(doc: &Value, i: usize) -> usize {
    let text = serde_json::to_string_pretty(doc).expect("JSON");
    let mut seen = 0;
    let mut in_steps = false;
    for (n, l) in text.lines().enumerate() {
        if l == "  \"steps\": [" {
            in_steps = true;
        } else if in_steps && l == "    {" {
            if seen == i {
                return n;
            }
            seen += 1;
        }
    }
    0
}

#[test]
fn a_wrong_field_in_a_step_is_named_exactly_on_its_line() {
    let wrong_type = serde_json::json!({ "not": ["what", "this", "field", "takes"] });
    let (mut checked, mut guessable) = (0usize, 0usize);
    for (name, doc) in fixtures() {
        let steps = doc["steps"].as_array().cloned().unwrap_or_default();
        for (i, step) in steps.iter().enumerate() {
            let Some(fields) = step.as_object() else { continue };
            let start = step_start(&doc, i);
            for key in fields.keys().filter(|k| *k != "op" && *k != "only") {
                let want = format!("steps[{i}].{key}");
                // 1. A value of the wrong type.
                let mut broken = doc.clone();
                broken["steps"][i][key] = wrong_type.clone();
                if check(&broken, &want, key, start, &format!("{name} {want} = object"), None) {
                    checked += 1;
                }
                // 2. Another field's string value (what a substring guess mistook).
                for (other, v) in fields.iter().filter(|(o, _)| *o != key && *o != "op") {
                    let Some(s) = v.as_str() else { continue };
                    let mut broken = doc.clone();
                    broken["steps"][i][key] = Value::String(s.to_string());
                    let what = format!("{name} {want} = value of `{other}` ({s:?})");
                    if check(&broken, &want, key, start, &what, Some(&format!("steps[{i}]"))) {
                        guessable += 1;
                    }
                }
            }
        }
    }
    assert!(checked > 1000, "only {checked} wrong-type errors checked");
    assert!(guessable > 100, "only {guessable} borrowed-value errors checked");
    eprintln!("{checked} wrong-type and {guessable} borrowed-value errors named their field and line");
}

#[test]
fn a_wrong_top_level_field_is_named_on_its_line() {
    let mut checked = 0usize;
    for (name, doc) in fixtures() {
        let Some(fields) = doc.as_object() else { continue };
        for key in fields.keys().filter(|k| *k != "steps" && *k != "$schema") {
            let mut broken = doc.clone();
            broken[key] = serde_json::json!({ "not": ["what", "this", "field", "takes"] });
            if check(&broken, key, key, 0, &format!("{name} {key} = object"), None) {
                checked += 1;
            }
        }
    }
    assert!(checked > 100, "only {checked} checked");
}
