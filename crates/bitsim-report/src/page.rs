//! The scenario page and the index.

use crate::assets::{CSS, JS};
use crate::axis::{instant, Axis};
use crate::escape::esc;
use crate::svg::{self, state_colour, GUTTER};
use crate::timeline;
use crate::RunInput;
use bitsim_model::JobState;
use bitsim_scenario::Verdict;
use std::fmt::Write as _;

/// Longest trace and source shown in full; the rest is cut with a note (a
/// hostile scenario must not make a page without bound).
const MAX_LINES: usize = 20_000;

/// A page's head and the opening of its body.
pub fn head(title: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>{}</title><style>{CSS}</style></head><body>\n",
        esc(title)
    )
}

/// The tip element, the script and the end of the page.
pub fn tail() -> String {
    format!("<div id=\"tip\"></div><script>{JS}</script></body></html>\n")
}

/// `pass`, `fail` or `n/a`, and the CSS class for it.
pub fn verdict_label(v: &Verdict) -> (&'static str, &'static str) {
    match v {
        Verdict::Passed => ("pass", "pass"),
        Verdict::Failed(_) => ("fail", "fail"),
        Verdict::NotApplicable(_) => ("n/a", "na"),
    }
}

/// The virtual time at the start of a trace line (`      66.395s  notify …`).
pub fn stamp_ms(line: &str) -> Option<u64> {
    let stamp = line.split_whitespace().next()?.strip_suffix('s')?;
    let (secs, ms) = stamp.split_once('.')?;
    let (secs, ms): (u64, u64) = (secs.parse().ok()?, ms.parse().ok()?);
    secs.checked_mul(1000)?.checked_add(ms)
}

fn trace_class(text: &str) -> &'static str {
    let body = text.split_whitespace().nth(1).unwrap_or("");
    if body == "FAILED" {
        "t-failed"
    } else if body == "check" {
        "t-check"
    } else if body == "notify" || body == "cmdline" {
        "t-notify"
    } else if body == "http" {
        "t-http"
    } else if text.contains(" error 0x") || text.contains("ERROR") {
        "t-err"
    } else {
        ""
    }
}

/// One scenario run: header, timeline, trace, steps.
pub fn scenario(run: &RunInput) -> String {
    let r = run.report;
    let tl = timeline::build(run.observed, r.covered.as_millis());
    let axis = Axis::new(tl.instants(), GUTTER);
    let (label, class) = verdict_label(&r.verdict);
    let mut out = head(&format!("{} [{}] — bitsim", r.name, r.flavor));
    let _ = write!(
        out,
        "<nav><a href=\"../index.html\">← all runs</a></nav>\n<h1>{} <span class=\"flavor\">{}</span> <span class=\"verdict {class}\" id=\"verdict\">{label}</span></h1>\n<p>{}</p>\n<dl class=\"facts\"><dt>file</dt><dd><code>{}</code></dd><dt>backend</dt><dd>{}</dd><dt>seed</dt><dd>{}</dd><dt>virtual time</dt><dd>{} ({})</dd>",
        esc(&r.name),
        r.flavor,
        esc(&run.loaded.scenario.description),
        esc(&r.file),
        esc(&r.backend),
        r.seed,
        esc(&r.covered.to_string()),
        esc(&crate::axis::duration(r.covered.as_millis())),
    );
    if !run.loaded.scenario.covers.is_empty() {
        let _ = write!(
            out,
            "<dt>covers</dt><dd>{}</dd>",
            esc(&run.loaded.scenario.covers.join(" · "))
        );
    }
    out.push_str("</dl>\n");
    match &r.verdict {
        Verdict::Failed(f) => {
            let _ = writeln!(
                out,
                "<div class=\"failure\" id=\"failure\"><b>First failed expectation</b> at <a href=\"#src-{}\">line {}</a> (step {}: {})<br>expected: <code>{}</code><br>actual: <code>{}</code><br>rerun: <code>bitsim run {} --flavor {} --seed {}</code></div>",
                f.line,
                f.line,
                f.step,
                esc(&f.what),
                esc(&f.expected),
                esc(&f.actual),
                esc(&f.file),
                r.flavor,
                r.seed
            );
        }
        Verdict::NotApplicable(why) => {
            let _ = writeln!(out, "<div class=\"failure\">Not applicable: {}</div>", esc(why));
        }
        Verdict::Passed => {}
    }
    out.push_str("<h2>Timeline</h2>\n");
    legend(&mut out);
    if tl.jobs.is_empty() && tl.env.is_empty() {
        out.push_str("<p>This backend recorded no structured events; the trace below is the record.</p>\n");
    }
    out.push_str("<div class=\"tl-wrap\">");
    out.push_str(&svg::render(&tl, &axis));
    out.push_str("</div>\n<h2>Trace</h2>\n<p>Click a line to put the cursor on its instant in the timeline; click a mark to find its lines.</p>\n<ol class=\"trace\">");
    for (i, line) in r.trace.iter().take(MAX_LINES).enumerate() {
        let t = stamp_ms(line);
        let (t_attr, x_attr) = match t {
            Some(t) => (format!(" data-t=\"{t}\""), format!(" data-x=\"{:.1}\"", axis.x(t))),
            None => (String::new(), String::new()),
        };
        let _ = write!(
            out,
            "<li id=\"L{}\" class=\"{}\"{t_attr}{x_attr}>{}</li>",
            i + 1,
            trace_class(line),
            esc(line)
        );
    }
    out.push_str("</ol>\n");
    if r.trace.len() > MAX_LINES {
        let _ = writeln!(
            out,
            "<p>… {} more trace lines not shown.</p>",
            r.trace.len() - MAX_LINES
        );
    }
    steps(&mut out, run);
    out.push_str(&tail());
    out
}

fn legend(out: &mut String) {
    out.push_str("<div class=\"legend\">");
    for s in JobState::ALL {
        let _ = write!(out, "<span><i style=\"background:{}\"></i>{s}</span>", state_colour(*s));
    }
    out.push_str(
        "<span><i class=\"rq-ok\" style=\"background:#27ae60\"></i>request 2xx</span>\
         <span><i style=\"background:#eb5757\"></i>4xx</span><span><i style=\"background:#f2994a\"></i>5xx</span>\
         <span><i style=\"background:#111\"></i>fault / no answer</span>\
         <span><i style=\"background:#219653;border-radius:6px\"></i>notification → S_OK</span>\
         <span><i style=\"background:#c81e1e;border-radius:6px\"></i>→ failure</span>\
         <span><i style=\"background:#6b7280;border-radius:6px\"></i>still blocked</span>\
         <span><i style=\"background:#7c3aed\"></i>environment / in flight</span></div>\n",
    );
}

/// The scenario file with line numbers: step lines shaded, the first failed
/// expectation's line marked with what went wrong.
fn steps(out: &mut String, run: &RunInput) {
    let failed = match &run.report.verdict {
        Verdict::Failed(f) => Some(f),
        _ => None,
    };
    let step_lines: std::collections::BTreeSet<usize> = run.loaded.scenario.steps.iter().map(|s| s.line).collect();
    out.push_str("<h2>Steps</h2>\n<pre class=\"src\">");
    for (i, line) in run.source.lines().take(MAX_LINES).enumerate() {
        let n = i + 1;
        let class = if failed.is_some_and(|f| f.line == n) {
            "failed"
        } else if step_lines.contains(&n) {
            "step"
        } else {
            ""
        };
        let _ = write!(
            out,
            "<span id=\"src-{n}\" class=\"{class}\"><span class=\"n\">{n}</span>{}",
            esc(line)
        );
        if let Some(f) = failed.filter(|f| f.line == n) {
            let _ = write!(
                out,
                "  <span class=\"why\">← first failed expectation: expected {}, got {}</span>",
                esc(&f.expected),
                esc(&f.actual)
            );
        }
        out.push_str("</span>");
    }
    out.push_str("</pre>\n");
}

/// One row of the index.
#[derive(Debug, Clone)]
pub struct IndexRow {
    pub name: String,
    pub flavor: String,
    /// `pass`, `fail`, `n/a`.
    pub verdict: String,
    pub virtual_ms: u64,
    /// Measured wall time (the one non-deterministic number of the report).
    pub wall_ms: f64,
    /// The page, relative to the index.
    pub href: String,
}

/// The index: every run, filterable by folder and verdict.
pub fn index(title: &str, rows: &[IndexRow], conformance: Option<&str>) -> String {
    let folder = |name: &str| name.split_once('/').map_or(".", |(f, _)| f).to_string();
    let mut folders: Vec<String> = rows.iter().map(|r| folder(&r.name)).collect();
    folders.sort();
    folders.dedup();
    let count = |v: &str| rows.iter().filter(|r| r.verdict == v).count();
    let mut out = head(title);
    let _ = writeln!(
        out,
        "<h1>{}</h1>\n<p>{} runs: {} passed, {} failed, {} not applicable. Times are virtual (simulated) and wall (measured).</p>",
        esc(title),
        rows.len(),
        count("pass"),
        count("fail"),
        count("n/a")
    );
    if let Some(href) = conformance {
        let _ = writeln!(out, "<p><a href=\"{}\">Conformance matrix</a></p>", esc(href));
    }
    out.push_str("<div class=\"filters\"><label>folder <select id=\"f-folder\"><option value=\"\">all</option>");
    for f in &folders {
        let _ = write!(out, "<option>{}</option>", esc(f));
    }
    let _ = writeln!(
        out,
        "</select></label><label>verdict <select id=\"f-verdict\"><option value=\"\">all</option><option>pass</option><option>fail</option><option>n/a</option></select></label><span><span id=\"shown\">{}</span> shown</span></div>",
        rows.len()
    );
    out.push_str("<table id=\"runs\"><thead><tr><th>scenario</th><th>flavor</th><th>verdict</th><th>virtual time</th><th>wall time</th></tr></thead><tbody>\n");
    for r in rows {
        let class = match r.verdict.as_str() {
            "pass" => "pass",
            "fail" => "fail",
            _ => "na",
        };
        let _ = writeln!(
            out,
            "<tr data-folder=\"{}\" data-verdict=\"{}\"><td><a href=\"{}\">{}</a></td><td>{}</td><td><span class=\"verdict {class}\">{}</span></td><td class=\"num\" data-ms=\"{}\">{}</td><td class=\"num\">{:.1} ms</td></tr>",
            esc(&folder(&r.name)),
            esc(&r.verdict),
            esc(&r.href),
            esc(&r.name),
            esc(&r.flavor),
            esc(&r.verdict),
            r.virtual_ms,
            esc(&instant(r.virtual_ms)),
            r.wall_ms
        );
    }
    out.push_str("</tbody></table>\n");
    out.push_str(&tail());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_stamps_parse() {
        assert_eq!(stamp_ms("      66.395s  notify JobError dl #2"), Some(66_395));
        assert_eq!(stamp_ms(" 1209600.000s  job dl"), Some(1_209_600_000));
        assert_eq!(stamp_ms("no stamp here"), None);
    }
}
