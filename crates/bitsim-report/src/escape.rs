//! Everything from a scenario or a trace is untrusted text: it is escaped before
//! it reaches a page, and page file names made from scenario names stay inside
//! the report's directory.

/// Escapes text for HTML content and for double- or single-quoted attributes.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters (other than tab and newline) have no business in a page.
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// A page's file name (no directory part) made from a scenario name and its
/// qualifiers: ASCII letters, digits, `-` and `_` are kept, `/` becomes `__`,
/// everything else `_`; at most 120 characters, then `.html`. It never contains
/// a path separator or starts with a dot, so joined to a directory it stays in it.
pub fn page_file_name(parts: &[&str]) -> String {
    let mut out = String::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        for c in part.chars() {
            match c {
                'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' => out.push(c),
                '/' | '\\' => out.push_str("__"),
                _ => out.push('_'),
            }
        }
    }
    let mut out: String = out.chars().take(120).collect();
    if out.is_empty() || out.starts_with('.') {
        out.insert(0, 'x');
    }
    out.push_str(".html");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_quotes_are_escaped() {
        assert_eq!(
            esc(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
    }

    #[test]
    fn page_names_cannot_leave_the_directory() {
        assert_eq!(
            page_file_name(&["errors/http-403", "bits"]),
            "errors__http-403.bits.html"
        );
        for evil in ["../../etc/passwd", "/abs/path", "..", ".hidden", "a\\..\\b", "x\0y"] {
            let name = page_file_name(&[evil, "bits"]);
            assert!(
                !name.contains('/') && !name.contains('\\') && !name.starts_with('.'),
                "{name}"
            );
            assert!(!name.contains(".."), "{name}");
        }
        assert!(page_file_name(&[&"a".repeat(1000)]).len() <= 125);
    }
}
