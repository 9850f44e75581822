//! Loading scenario files: errors name the file, line, column and field, and
//! every step remembers its line so failures can point at it.

use crate::format::Scenario;
use bitsim_server::Plan;
use std::fmt;
use std::path::{Path, PathBuf};

/// A scenario (or plan) file that could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct LoadError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// Field path, e.g. `steps[3].within`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: field `{}`: {}",
            self.file, self.line, self.column, self.field, self.message
        )
    }
}

/// A scenario with where it came from.
#[derive(Debug, Clone)]
pub struct LoadedScenario {
    pub path: PathBuf,
    /// The name used in reports and snapshots: the path relative to the root searched,
    /// without `.json`, with `/` separators.
    pub name: String,
    pub scenario: Scenario,
    /// The plan, inline or from `plan_file`.
    pub plan: Plan,
}

/// Parses scenario text; `file` names it in errors.
pub fn parse_scenario(text: &str, file: &str) -> Result<Scenario, LoadError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let result: Result<Scenario, _> = serde_path_to_error::deserialize(&mut de);
    let mut scenario = match result {
        Ok(s) => s,
        Err(e) => {
            let mut field = e.path().to_string();
            let inner = e.into_inner();
            let mut message = strip_position(&inner.to_string());
            if let Some((sub, msg)) = message.clone().split_once(crate::format::FIELD_SEP) {
                if sub != "." {
                    field = format!("{field}.{sub}");
                }
                message = msg.to_string();
            }
            // Errors inside a step are reported by serde at the step's end; point at
            // the field itself (or, for a missing field, the step).
            let (line, column) = match step_index(&field) {
                Some(_) => bitsim_server::json_position(text, &field),
                None => (inner.line(), inner.column()),
            };
            return Err(LoadError {
                file: file.into(),
                line,
                column,
                field,
                message,
            });
        }
    };
    if let Err(e) = de.end() {
        return Err(LoadError {
            file: file.into(),
            line: e.line(),
            column: e.column(),
            field: ".".into(),
            message: strip_position(&e.to_string()),
        });
    }
    let lines = step_lines(text);
    for (i, step) in scenario.steps.iter_mut().enumerate() {
        step.line = lines.get(i).copied().unwrap_or(0);
    }
    crate::validate::check_duplicate_keys(text, file)?;
    validate(&scenario, text, file)?;
    crate::validate::check(&scenario, text, file)?;
    Ok(scenario)
}

/// Cross-field checks: aliases, users and callbacks that steps name must exist.
fn validate(s: &Scenario, text: &str, file: &str) -> Result<(), LoadError> {
    use crate::format::Step::*;
    let err = |i: usize, field: &str, message: String| {
        let field = format!("steps[{i}].{field}");
        let (line, column) = bitsim_server::json_position(text, &field);
        LoadError {
            file: file.into(),
            line,
            column,
            field,
            message,
        }
    };
    if s.users.is_empty() {
        return Err(LoadError {
            file: file.into(),
            line: line_of(text, "\"users\""),
            column: 1,
            field: "users".into(),
            message: "at least one user is needed".into(),
        });
    }
    if s.plan.is_some() && s.plan_file.is_some() {
        return Err(LoadError {
            file: file.into(),
            line: line_of(text, "\"plan_file\""),
            column: 1,
            field: "plan_file".into(),
            message: "give `plan` or `plan_file`, not both".into(),
        });
    }
    let mut jobs: Vec<&str> = Vec::new();
    for (i, entry) in s.steps.iter().enumerate() {
        let user_ok = |u: &Option<String>| u.as_ref().is_none_or(|u| s.users.contains(u));
        match &entry.step {
            CreateJob { job, user, .. } => {
                if !user_ok(user) {
                    return Err(err(
                        i,
                        "user",
                        format!("unknown user `{}`", user.as_deref().unwrap_or("")),
                    ));
                }
                if jobs.contains(&job.as_str()) {
                    return Err(err(i, "job", format!("job alias `{job}` is already used")));
                }
                jobs.push(job);
            }
            Logoff { user } | Logon { user } | TakeOwnership { user, .. } if !s.users.contains(user) => {
                return Err(err(i, "user", format!("unknown user `{user}`")));
            }
            SetNotifyInterface { callback: Some(cb), .. } | ReleaseCallback { callback: cb }
                if !s.callbacks.contains_key(cb) =>
            {
                return Err(err(
                    i,
                    "callback",
                    format!("unknown callback `{cb}` (define it under `callbacks`)"),
                ));
            }
            Wait {
                state: None, states, ..
            } if states.is_empty() => {
                return Err(err(i, "state", "give `state` or `states`".into()));
            }
            SetPlan {
                plan: None,
                plan_file: None,
            } => {
                return Err(err(i, "plan", "give `plan` or `plan_file`".into()));
            }
            _ => {}
        }
        if let Some(alias) = step_job(&entry.step) {
            if !jobs.contains(&alias) {
                return Err(err(i, "job", format!("unknown job `{alias}` (create it first)")));
            }
        }
    }
    Ok(())
}

/// The job alias a step refers to, if any (other than CreateJob's own).
fn step_job(step: &crate::format::Step) -> Option<&str> {
    use crate::format::Step::*;
    match step {
        GetJob { job, .. }
        | AddFile { job, .. }
        | AddFiles { job, .. }
        | Resume { job, .. }
        | Suspend { job, .. }
        | Cancel { job, .. }
        | Complete { job, .. }
        | SetDisplayName { job, .. }
        | SetDescription { job, .. }
        | SetPriority { job, .. }
        | SetNotifyFlags { job, .. }
        | SetNotifyInterface { job, .. }
        | SetNotifyCmdline { job, .. }
        | SetMinimumRetryDelay { job, .. }
        | SetNoProgressTimeout { job, .. }
        | SetMaximumDownloadTime { job, .. }
        | SetReplyFileName { job, .. }
        | TakeOwnership { job, .. }
        | Wait { job, .. }
        | ExpectCmdline { job, .. } => Some(job),
        Expect(e) => Some(&e.job),
        ExpectNotifications { job, .. } => job.as_deref(),
        _ => None,
    }
}

/// Loads one scenario file and its plan.
pub fn load_file(path: &Path, root: &Path) -> Result<LoadedScenario, LoadError> {
    let file = path.display().to_string();
    let text = crate::validate::read_bounded(path, "scenario")?;
    let scenario = parse_scenario(&text, &file)?;
    let plan = match (&scenario.plan, &scenario.plan_file) {
        (Some(p), _) => p.clone(),
        (None, Some(rel)) => load_plan(&path.parent().unwrap_or(Path::new(".")).join(rel))?,
        (None, None) => Plan::default(),
    };
    let rel = path.strip_prefix(root).unwrap_or(path);
    let name = rel.with_extension("").to_string_lossy().replace('\\', "/");
    let name = if name.is_empty() {
        path.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    } else {
        name
    };
    Ok(LoadedScenario {
        path: path.to_path_buf(),
        name,
        scenario,
        plan,
    })
}

/// Loads a plan file.
pub fn load_plan(path: &Path) -> Result<Plan, LoadError> {
    let file = path.display().to_string();
    let text = crate::validate::read_bounded(path, "plan")?;
    crate::validate::check_duplicate_keys(&text, &file)?;
    Plan::from_json_str(&text, &file).map_err(|e| LoadError {
        file: e.origin,
        line: e.line,
        column: e.column,
        field: e.path,
        message: e.message,
    })
}

/// Every `*.json` scenario under `paths` (files as given, directories searched
/// recursively, in sorted order), each with the root it was found under.
pub fn discover(paths: &[PathBuf]) -> std::io::Result<Vec<(PathBuf, PathBuf)>> {
    let mut out = Vec::new();
    let mut visited = std::collections::HashSet::new();
    for p in paths {
        if p.is_dir() {
            let mut found = Vec::new();
            walk(p, &mut found, &mut visited)?;
            found.sort();
            out.extend(found.into_iter().map(|f| (f, p.clone())));
        } else if p.exists() {
            out.push((p.clone(), p.parent().map(Path::to_path_buf).unwrap_or_default()));
        } else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{}: no such file or directory", p.display()),
            ));
        }
    }
    Ok(out)
}

/// Searches `dir`; `visited` holds the canonical paths of directories and files
/// already seen, so a symlink loop (or two links to one file) is followed once.
fn walk(dir: &Path, out: &mut Vec<PathBuf>, visited: &mut std::collections::HashSet<PathBuf>) -> std::io::Result<()> {
    let canonical = std::fs::canonicalize(dir).map_err(|e| with_path(dir, e))?;
    if !visited.insert(canonical) {
        return Ok(());
    }
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| with_path(dir, e))? {
        entries.push(entry.map_err(|e| with_path(dir, e))?.path());
    }
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk(&path, out, visited)?;
        } else if path.extension().is_some_and(|e| e == "json") {
            // A dangling link has no canonical path: keep it, loading names the problem.
            let key = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
            if visited.insert(key) {
                out.push(path);
            }
        }
    }
    Ok(())
}

fn with_path(path: &Path, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

fn step_index(field: &str) -> Option<usize> {
    let rest = field.strip_prefix("steps[")?;
    rest[..rest.find(']')?].parse().ok()
}

fn line_of(text: &str, needle: &str) -> usize {
    text.find(needle).map_or(0, |i| text[..i].matches('\n').count() + 1)
}

/// The 1-based line of each element of the top-level `"steps"` array, found with a
/// small scanner (serde_json does not keep spans).
pub fn step_lines(text: &str) -> Vec<usize> {
    let bytes = text.as_bytes();
    let mut lines = Vec::new();
    let (mut depth, mut line, mut i) = (0usize, 1usize, 0usize);
    let mut in_steps_at: Option<usize> = None; // depth of the steps array's contents
    let mut last_key: Option<&str> = None;
    let mut expect_element = false;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'\n' => line += 1,
            b'"' => {
                let start = i + 1;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    if i < bytes.len() && bytes[i] == b'\n' {
                        line += 1;
                    }
                    i += 1;
                }
                let s = text.get(start..i.min(text.len())).unwrap_or("");
                if expect_element && in_steps_at == Some(depth) {
                    lines.push(line);
                    expect_element = false;
                }
                last_key = Some(s);
            }
            b'{' | b'[' => {
                if expect_element && in_steps_at == Some(depth) {
                    lines.push(line);
                    expect_element = false;
                }
                depth += 1;
                if c == b'[' && depth == 2 && last_key == Some("steps") && in_steps_at.is_none() {
                    in_steps_at = Some(depth);
                    expect_element = true;
                }
            }
            b'}' | b']' => {
                if in_steps_at == Some(depth) && c == b']' {
                    in_steps_at = None;
                }
                depth = depth.saturating_sub(1);
            }
            b',' => {
                if in_steps_at == Some(depth) {
                    expect_element = true;
                }
            }
            b':' => {}
            c if c.is_ascii_whitespace() => {}
            _ => {
                if expect_element && in_steps_at == Some(depth) {
                    lines.push(line);
                    expect_element = false;
                }
            }
        }
        i += 1;
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"{
  "description": "x",
  "steps": [
    {"op": "create_job", "job": "j1"},
    {"op": "resume",
     "job": "j1"},

    {"op": "advance", "by": "10s"}
  ]
}"#;

    #[test]
    fn steps_know_their_lines() {
        let s = parse_scenario(OK, "t.json").unwrap();
        let lines: Vec<usize> = s.steps.iter().map(|s| s.line).collect();
        assert_eq!(lines, vec![4, 5, 8]);
    }

    #[test]
    fn a_bad_field_names_file_line_and_field() {
        let text = OK.replace("\"10s\"", "\"10 parsecs\"");
        let e = parse_scenario(&text, "t.json").unwrap_err();
        assert_eq!(e.file, "t.json");
        assert_eq!(e.line, 8);
        assert!(e.field.starts_with("steps[2]"), "{e}");
        assert!(e.message.contains("bad duration"), "{e}");
    }

    #[test]
    fn unknown_job_alias_is_rejected() {
        let text = OK.replace("     \"job\": \"j1\"}", "     \"job\": \"j9\"}");
        let e = parse_scenario(&text, "t.json").unwrap_err();
        assert!(e.message.contains("unknown job `j9`"), "{e}");
        // The `job` field's own line and column, not the step's first line.
        assert_eq!((e.line, e.column), (6, 6), "{e}");
    }

    /// The issue's reproducer: with job alias "a", a bad `state` was reported as
    /// `steps[1].job` (the field was guessed by a substring of the message).
    #[test]
    fn a_bad_field_in_a_step_is_named_exactly() {
        let text = r#"{"description": "x", "steps": [
  {"op": "create_job", "job": "a"},
  {"op": "wait", "job": "a", "state": "a", "within": "1s"}]}"#;
        let e = parse_scenario(text, "t.json").unwrap_err();
        assert_eq!(e.field, "steps[1].state", "{e}");
        let text = text
            .replace(r#""state": "a""#, r#""state": "QUEUED""#)
            .replace(r#""1s""#, r#""a""#);
        let e = parse_scenario(&text, "t.json").unwrap_err();
        assert_eq!(e.field, "steps[1].within", "{e}");
    }

    #[test]
    fn a_duplicate_key_in_a_step_is_an_error() {
        let text = r#"{"description": "x", "steps": [
  {"op": "advance", "by": "1s",
   "by": "2s"}]}"#;
        let e = parse_scenario(text, "t.json").unwrap_err();
        assert!(e.message.contains("duplicate key `by`"), "{e}");
        assert_eq!(e.line, 3, "{e}");
    }

    #[test]
    fn duplicate_keys_are_found_escaped_and_in_large_objects() {
        // `\u0062y` is `by`: the same key written two ways.
        let text = r#"{"description": "x", "steps": [{"op": "advance", "by": "1s", "\u0062y": "2s"}]}"#;
        let e = parse_scenario(text, "t.json").unwrap_err();
        assert!(e.message.contains("duplicate key `by`"), "{e}");
        // Past the short list: 40 distinct keys, then the first again.
        let keys: String = (0..40).map(|k| format!("\"k{k}\": 1, ")).collect();
        let e = crate::validate::check_duplicate_keys(&format!("{{{keys}\"k0\": 2}}"), "t.json").unwrap_err();
        assert!(e.message.contains("duplicate key `k0`"), "{e}");
        assert!(crate::validate::check_duplicate_keys(&format!("{{{keys}\"k40\": 2}}"), "t.json").is_ok());
    }

    #[test]
    fn syntax_error_has_position() {
        let e = parse_scenario("{\n  \"description\": \"x\",\n  \"steps\": [,]\n}", "t.json").unwrap_err();
        assert_eq!(e.line, 3);
    }
}
