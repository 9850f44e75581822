//! Limits for untrusted scenario files (issue 13; docs/untrusted-input.md).
//!
//! Scenario files come from other people. Everything here runs after parsing,
//! as a pass of its own, so the format stays a plain description of fields:
//! local names must stay inside the run's directory, numbers stay in their
//! documented ranges, and the virtual time a scenario may ask for is bounded.
//! Every error names the file, line, column and field.

use crate::format::{Scenario, Step, TextSpec};
use crate::load::LoadError;
use std::io::Read;
use std::path::{Component, Path};

/// Largest scenario or plan file read (16 MiB): a bigger one is a mistake or an attack.
pub const MAX_INPUT_FILE_BYTES: u64 = 16 << 20;

/// Largest file a `write_file` step creates (256 MiB; the same cap as the
/// mock server's `/bytes/{n}` route and plan bodies).
pub const MAX_WRITE_FILE_BYTES: u64 = 256 << 20;

/// Largest duration, and largest total of the `advance.by` and `wait.within`
/// of one scenario: 100 years of virtual time, in ms. Beyond it a run would only
/// spin through timers (a u64::MAX wait never ended).
pub const MAX_VIRTUAL_MS: u64 = 100 * 365 * 86_400_000;

/// Largest `times` of a `{"repeat": …, "times": N}` text.
pub const MAX_TEXT_REPEAT: usize = 100_000;

/// Why a local name is refused, or `Ok` when it is a plain relative name that
/// stays inside the run's directory: no absolute path, drive or UNC prefix, no
/// `..`, no NUL, not empty. Both `/` and `\` count as separators, so a name
/// means the same on the simulator and on Windows.
pub fn check_relative_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.contains('\0') {
        return Err("must not contain NUL".into());
    }
    if name.starts_with(['/', '\\']) || name.as_bytes().get(1) == Some(&b':') {
        return Err(format!(
            "`{name}` is absolute: give a name relative to the run's directory"
        ));
    }
    if name.contains(':') {
        return Err(format!("`{name}` contains `:` (a drive or stream name)"));
    }
    if name.split(['/', '\\']).any(|part| part == "..") {
        return Err(format!("`{name}` leaves the run's directory (`..`)"));
    }
    if Path::new(name)
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(format!("`{name}` is not a plain relative name"));
    }
    Ok(())
}

/// Reads a scenario or plan file as UTF-8 text: only a regular file (a FIFO or
/// `/dev/zero` is refused before it is opened), at most `MAX_INPUT_FILE_BYTES`,
/// and invalid UTF-8 reported at the line and column of the bad byte.
pub fn read_bounded(path: &Path, what: &str) -> Result<String, LoadError> {
    let file = path.display().to_string();
    let fail = |line: usize, column: usize, message: String| LoadError {
        file: file.clone(),
        line,
        column,
        field: ".".into(),
        message,
    };
    let meta = std::fs::metadata(path).map_err(|e| fail(0, 0, format!("cannot read {what}: {e}")))?;
    if !meta.is_file() {
        return Err(fail(0, 0, format!("cannot read {what}: not a regular file")));
    }
    if meta.len() > MAX_INPUT_FILE_BYTES {
        return Err(fail(
            0,
            0,
            format!("{what} is {} bytes; the limit is {MAX_INPUT_FILE_BYTES}", meta.len()),
        ));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_INPUT_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| fail(0, 0, format!("cannot read {what}: {e}")))?;
    if bytes.len() as u64 > MAX_INPUT_FILE_BYTES {
        return Err(fail(
            0,
            0,
            format!("{what} is larger than {MAX_INPUT_FILE_BYTES} bytes"),
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        let good = e.utf8_error().valid_up_to();
        let text = String::from_utf8_lossy(&e.as_bytes()[..good]);
        let (line, column) = bitsim_server::line_col(&text, good);
        fail(
            line,
            column,
            "invalid UTF-8 (scenario and plan files are UTF-8 JSON)".into(),
        )
    })
}

/// The checks of this module on a parsed scenario (`text` finds positions).
pub(crate) fn check(s: &Scenario, text: &str, file: &str) -> Result<(), LoadError> {
    let err = |field: String, message: String| {
        let (line, column) = bitsim_server::json_position(text, &field);
        LoadError {
            file: file.into(),
            line,
            column,
            field,
            message,
        }
    };
    if let Some(p) = &s.plan_file {
        check_relative_name(p).map_err(|m| err("plan_file".into(), m))?;
    }
    for (name, cb) in &s.callbacks {
        if let Some(d) = cb.block {
            if d.0 .0 > MAX_VIRTUAL_MS {
                return Err(err(format!("callbacks.{name}.block"), too_long(d.0 .0)));
            }
        }
    }
    let mut total: u64 = 0;
    for (i, entry) in s.steps.iter().enumerate() {
        let at = |field: &str| format!("steps[{i}].{field}");
        let name = |field: String, value: &str| check_relative_name(value).map_err(|m| err(field, m));
        match &entry.step {
            Step::AddFile { local, .. } => name(at("local"), local)?,
            Step::AddFiles { files, .. } => {
                for (k, f) in files.iter().enumerate() {
                    name(at(&format!("files[{k}].local")), &f.local)?;
                }
            }
            Step::SetReplyFileName { local: Some(l), .. } => name(at("local"), l)?,
            Step::WriteFile { name: n, size } => {
                name(at("name"), n)?;
                if *size > MAX_WRITE_FILE_BYTES {
                    return Err(err(
                        at("size"),
                        format!("must be at most {MAX_WRITE_FILE_BYTES} bytes (256 MiB), got {size}"),
                    ));
                }
            }
            Step::ExpectFiles { present, absent } => {
                for (k, f) in present.iter().enumerate() {
                    name(at(&format!("present[{k}].name")), &f.name)?;
                }
                for (k, a) in absent.iter().enumerate() {
                    name(at(&format!("absent[{k}]")), a)?;
                }
            }
            Step::SetPlan { plan_file: Some(p), .. } => name(at("plan_file"), p)?,
            Step::Advance { by } => {
                total = total.saturating_add(by.0 .0);
                if total > MAX_VIRTUAL_MS {
                    return Err(err(at("by"), over_ceiling()));
                }
            }
            Step::Wait { within, .. } => {
                total = total.saturating_add(within.0 .0);
                if total > MAX_VIRTUAL_MS {
                    return Err(err(at("within"), over_ceiling()));
                }
            }
            Step::SetDisplayName { value, .. } | Step::SetDescription { value, .. } => {
                check_text(value).map_err(|m| err(at("value"), m))?
            }
            Step::SetNotifyCmdline {
                program, parameters, ..
            } => {
                for (field, t) in [("program", program), ("parameters", parameters)] {
                    if let Some(t) = t {
                        check_text(t).map_err(|m| err(at(field), m))?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Duplicate keys in any object are an error (serde_json keeps the last one
/// silently, so `{"op": "advance", "by": "1s", "by": "9d"}` would hide a typo).
pub(crate) fn check_duplicate_keys(text: &str, file: &str) -> Result<(), LoadError> {
    use std::borrow::Cow;
    /// An open object (its keys so far and the key being read) or array (the
    /// element being read): enough to name the path of a duplicate.
    enum Frame<'t> {
        Object(Keys<'t>, Option<Cow<'t, str>>),
        Array(usize),
    }
    /// An object's keys: a short list (most objects have a few keys, and keys
    /// without escapes are borrowed from the text), a set once it grows, so a
    /// file of a million keys stays linear.
    #[derive(Default)]
    struct Keys<'t> {
        few: Vec<Cow<'t, str>>,
        many: Option<std::collections::HashSet<Cow<'t, str>>>,
    }
    impl<'t> Keys<'t> {
        /// False when `key` was there already.
        fn insert(&mut self, key: Cow<'t, str>) -> bool {
            if let Some(many) = &mut self.many {
                return many.insert(key);
            }
            if self.few.contains(&key) {
                return false;
            }
            self.few.push(key);
            if self.few.len() > 32 {
                self.many = Some(self.few.drain(..).collect());
            }
            true
        }
    }
    fn path(stack: &[Frame], key: &str) -> String {
        let mut p = String::new();
        for f in stack {
            match f {
                Frame::Object(_, Some(k)) => {
                    if !p.is_empty() {
                        p.push('.');
                    }
                    p.push_str(k);
                }
                Frame::Object(_, None) => {}
                Frame::Array(i) => p.push_str(&format!("[{i}]")),
            }
        }
        if p.is_empty() {
            key.to_string()
        } else {
            format!("{p}.{key}")
        }
    }
    let b = text.as_bytes();
    let mut stack: Vec<Frame> = Vec::new();
    let mut expect_key = false;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'{' => {
                stack.push(Frame::Object(Default::default(), None));
                expect_key = true;
            }
            b'[' => {
                stack.push(Frame::Array(0));
                expect_key = false;
            }
            b'}' | b']' => {
                stack.pop();
                expect_key = false;
            }
            b',' => match stack.last_mut() {
                Some(Frame::Array(n)) => *n += 1,
                Some(Frame::Object(..)) => expect_key = true,
                None => {}
            },
            b'"' => {
                let start = i;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                if expect_key {
                    expect_key = false;
                    let end = (i + 1).min(b.len());
                    let raw = &b[start..end];
                    let key: Cow<str> = match text.get(start + 1..i) {
                        Some(plain) if !raw.contains(&b'\\') && end > start + 1 => Cow::Borrowed(plain),
                        _ => Cow::Owned(serde_json::from_slice::<String>(raw).unwrap_or_default()),
                    };
                    let duplicate = match stack.last_mut() {
                        Some(Frame::Object(keys, current)) => {
                            *current = Some(key.clone());
                            !keys.insert(key.clone())
                        }
                        _ => false,
                    };
                    if duplicate {
                        let (line, column) = bitsim_server::line_col(text, start);
                        let mut parents = stack;
                        parents.pop();
                        return Err(LoadError {
                            file: file.into(),
                            line,
                            column,
                            field: path(&parents, &key),
                            message: format!("duplicate key `{key}` (each key may appear once per object)"),
                        });
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

fn check_text(t: &TextSpec) -> Result<(), String> {
    match t {
        TextSpec::Repeat { times, .. } if *times > MAX_TEXT_REPEAT => {
            Err(format!("`times` must be at most {MAX_TEXT_REPEAT}, got {times}"))
        }
        _ => Ok(()),
    }
}

fn too_long(ms: u64) -> String {
    format!("{ms} ms is longer than 100 years (at most {MAX_VIRTUAL_MS} ms)")
}

fn over_ceiling() -> String {
    format!(
        "the scenario's `advance` and `wait.within` add up to more than 100 years of virtual time \
         (at most {MAX_VIRTUAL_MS} ms in all)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_leave_the_run_directory_are_refused() {
        for bad in [
            "/etc/passwd",
            "\\\\server\\share",
            "C:\\x",
            "c:x",
            "../x",
            "a/../../x",
            "a\\..\\x",
            "",
            "a\0b",
            "/",
        ] {
            assert!(check_relative_name(bad).is_err(), "{bad:?} was accepted");
        }
        for good in ["a.bin", "sub/a.bin", "./a.bin", "a..b"] {
            assert!(check_relative_name(good).is_ok(), "{good:?} was refused");
        }
    }

    #[test]
    fn duplicate_keys_are_found_with_their_position() {
        let text = "{\n  \"steps\": [\n    {\"op\": \"advance\", \"by\": \"1s\", \"by\": \"9d\"}\n  ]\n}";
        let e = check_duplicate_keys(text, "t.json").unwrap_err();
        assert_eq!((e.line, e.column, e.field.as_str()), (3, 35, "steps[0].by"), "{e}");
        let text = "{\"plan\": {\"rules\": [{}, {\"match\": {\"path\": \"/a\", \"path\": \"/b\"}}]}}";
        let e = check_duplicate_keys(text, "t.json").unwrap_err();
        assert_eq!(e.field, "plan.rules[1].match.path", "{e}");
        // Linear: one object of 100,000 distinct keys is checked at once.
        let many: Vec<String> = (0..100_000).map(|k| format!("\"k{k}\": 0")).collect();
        assert!(check_duplicate_keys(&format!("{{{}}}", many.join(",")), "t").is_ok());
        assert!(check_duplicate_keys("{\"a\": {\"b\": 1}, \"b\": [\"b\", \"b\"]}", "t").is_ok());
    }
}
