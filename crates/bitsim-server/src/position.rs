//! Where a field is in a JSON document. serde_json keeps no spans, so errors
//! found after parsing (cross-field checks, ranges) would otherwise say line 0;
//! this small scanner finds the line and column of a serde_path_to_error path
//! such as `rules[3].fault.ms` in the original text.

/// One step of a field path.
#[derive(Debug, PartialEq)]
enum Seg {
    Key(String),
    Index(usize),
}

/// Splits `a.b[2].c` into segments; `.` (the root) is no segment at all.
fn parse_path(path: &str) -> Vec<Seg> {
    let mut segs = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            segs.push(Seg::Key(key.to_string()));
        }
        while let Some(end) = rest.find(']') {
            if let Ok(n) = rest[1..end].parse() {
                segs.push(Seg::Index(n));
            }
            rest = &rest[end + 1..];
        }
    }
    segs
}

/// The 1-based line and column of the field `path` (its key, or its array
/// element) in `text`; the deepest part of the path that exists when the rest
/// does not (e.g. a missing field points at its parent object).
pub fn json_position(text: &str, path: &str) -> (usize, usize) {
    let b = text.as_bytes();
    let mut i = 0;
    let mut found = skip_ws(b, 0);
    'segs: for seg in parse_path(path) {
        i = skip_ws(b, i);
        match seg {
            Seg::Key(want) => {
                if b.get(i) != Some(&b'{') {
                    break;
                }
                i += 1;
                loop {
                    i = skip_ws(b, i);
                    if b.get(i) != Some(&b'"') {
                        break 'segs;
                    }
                    let key_at = i;
                    let end = skip_string(b, i);
                    let key = serde_json::from_slice::<String>(&b[key_at..end.min(b.len())]).unwrap_or_default();
                    i = skip_ws(b, end);
                    if b.get(i) != Some(&b':') {
                        break 'segs;
                    }
                    i = skip_ws(b, i + 1);
                    if key == want {
                        found = key_at;
                        continue 'segs;
                    }
                    i = skip_ws(b, skip_value(b, i));
                    if b.get(i) != Some(&b',') {
                        break 'segs;
                    }
                    i += 1;
                }
            }
            Seg::Index(n) => {
                if b.get(i) != Some(&b'[') {
                    break;
                }
                i += 1;
                for _ in 0..n {
                    i = skip_ws(b, skip_value(b, skip_ws(b, i)));
                    if b.get(i) != Some(&b',') {
                        break 'segs;
                    }
                    i += 1;
                }
                i = skip_ws(b, i);
                if i >= b.len() || b[i] == b']' {
                    break;
                }
                found = i;
            }
        }
    }
    line_col(text, found)
}

/// 1-based line and column (in characters) of byte offset `at`.
pub fn line_col(text: &str, at: usize) -> (usize, usize) {
    let at = at.min(text.len());
    let before = &text.as_bytes()[..at];
    let line = before.iter().filter(|&&c| c == b'\n').count() + 1;
    let start = before.iter().rposition(|&c| c == b'\n').map_or(0, |p| p + 1);
    let col = String::from_utf8_lossy(&before[start..]).chars().count() + 1;
    (line, col)
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// From an opening quote to just after the closing one.
fn skip_string(b: &[u8], mut i: usize) -> usize {
    i += 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    b.len()
}

/// From the start of a value to just after it (depth-counting, string-aware).
fn skip_value(b: &[u8], mut i: usize) -> usize {
    let mut depth = 0usize;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i = skip_string(b, i);
                if depth == 0 {
                    return i;
                }
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                if depth == 0 {
                    return i;
                }
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            b',' if depth == 0 => return i,
            _ => {}
        }
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "{\n  \"a\": 1,\n  \"rules\": [\n    {\"x\": \"]\"},\n    {\"fault\": {\"ms\": 5}}\n  ]\n}";

    #[test]
    fn finds_nested_fields() {
        assert_eq!(json_position(DOC, "a"), (2, 3));
        assert_eq!(json_position(DOC, "rules[1]"), (5, 5));
        assert_eq!(json_position(DOC, "rules[1].fault.ms"), (5, 16));
        // Missing parts point at the deepest part that exists.
        assert_eq!(json_position(DOC, "rules[1].fault.nope"), (5, 6));
        assert_eq!(json_position(DOC, "rules[7]"), (3, 3));
        assert_eq!(json_position(DOC, "."), (1, 1));
    }
}
