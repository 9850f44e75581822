//! The conformance matrix (scenario × backend) and, per cell, the model's and the
//! backend's projections side by side with the differing lines highlighted.

use crate::escape::{esc, page_file_name};
use crate::page::{head, tail};
use bitsim_scenario::conformance::Outcome;
use bitsim_scenario::Projection;
use std::fmt::Write as _;

/// One scenario on one backend, as `bitsim conform` compared it.
#[derive(Debug, Clone)]
pub struct ConformanceCell {
    pub scenario: String,
    pub flavor: String,
    /// The backend's label (`bits`, `do`, `wine-qmgr`).
    pub backend: String,
    pub outcome: Outcome,
    /// The projections compared, when both runs happened.
    pub model: Option<Projection>,
    pub real: Option<Projection>,
}

impl ConformanceCell {
    /// The detail page's file name (inside `conformance/`).
    pub fn page(&self) -> String {
        page_file_name(&[&self.scenario, &self.flavor, &self.backend])
    }
}

fn class(o: &Outcome) -> &'static str {
    match o {
        Outcome::Match => "match",
        Outcome::KnownDifference { .. } => "known",
        Outcome::Differs { .. } => "differs",
        Outcome::NotApplicable { .. } => "na",
    }
}

/// What the cell says in words.
fn cell_label(o: &Outcome) -> &'static str {
    match o {
        Outcome::Match => "match",
        Outcome::KnownDifference { .. } => "known difference",
        Outcome::Differs { .. } => "unexpected",
        Outcome::NotApplicable { .. } => "n/a",
    }
}

/// The matrix page: rows are scenario × flavor, columns backends.
pub fn matrix(cells: &[ConformanceCell], note: &str) -> String {
    let mut backends: Vec<&str> = Vec::new();
    let mut rows: Vec<(&str, &str)> = Vec::new();
    for c in cells {
        if !backends.contains(&c.backend.as_str()) {
            backends.push(&c.backend);
        }
        if !rows.contains(&(c.scenario.as_str(), c.flavor.as_str())) {
            rows.push((&c.scenario, &c.flavor));
        }
    }
    let count = |k: &str| cells.iter().filter(|c| class(&c.outcome) == k).count();
    let mut out = head("Conformance — bitsim");
    let _ = writeln!(
        out,
        "<nav><a href=\"index.html\">← index</a></nav>\n<h1>Conformance: model vs {}</h1>\n<p>{}</p>\n<p>{} cells: {} match, {} known differences, {} unexpected, {} not applicable.</p>",
        esc(&backends.join(", ")),
        esc(note),
        cells.len(),
        count("match"),
        count("known"),
        count("differs"),
        count("na")
    );
    out.push_str("<table id=\"matrix\"><thead><tr><th>scenario</th><th>flavor</th>");
    for b in &backends {
        let _ = write!(out, "<th>{}</th>", esc(b));
    }
    out.push_str("</tr></thead><tbody>\n");
    for (scenario, flavor) in &rows {
        let _ = write!(out, "<tr><td>{}</td><td>{}</td>", esc(scenario), esc(flavor));
        for b in &backends {
            match cells
                .iter()
                .find(|c| c.scenario == *scenario && c.flavor == *flavor && c.backend == *b)
            {
                Some(c) => {
                    let _ = write!(
                        out,
                        "<td><a class=\"cell {}\" data-outcome=\"{}\" href=\"conformance/{}\">{}</a></td>",
                        class(&c.outcome),
                        c.outcome.label(),
                        esc(&c.page()),
                        cell_label(&c.outcome)
                    );
                }
                None => out.push_str("<td></td>"),
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table>\n");
    out.push_str(&tail());
    out
}

/// For each line of `a` and of `b`: whether it is outside their longest common
/// subsequence (i.e. differs). Falls back to set membership for huge inputs.
fn differing(a: &[String], b: &[String]) -> (Vec<bool>, Vec<bool>) {
    let (n, m) = (a.len(), b.len());
    if n.saturating_mul(m) > 4_000_000 {
        let only = |x: &[String], y: &[String]| x.iter().map(|l| !y.contains(l)).collect();
        return (only(a, b), only(b, a));
    }
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut da, mut db) = (vec![true; n], vec![true; m]);
    let (mut i, mut j) = (0, 0);
    while i < n && j < m {
        if a[i] == b[j] {
            da[i] = false;
            db[j] = false;
            i += 1;
            j += 1;
        } else if lcs[i + 1][j] >= lcs[i][j + 1] {
            i += 1;
        } else {
            j += 1;
        }
    }
    (da, db)
}

/// One cell: the two projections side by side, differing lines highlighted, the
/// known-difference reason (or why it could not run) above them.
pub fn detail(c: &ConformanceCell) -> String {
    let mut out = head(&format!(
        "{} [{}] model vs {} — bitsim",
        c.scenario, c.flavor, c.backend
    ));
    let _ = writeln!(
        out,
        "<nav><a href=\"../conformance.html\">← matrix</a></nav>\n<h1>{} <span class=\"flavor\">{}</span> <span class=\"cell {}\" id=\"outcome\">{}</span></h1>",
        esc(&c.scenario),
        esc(&c.flavor),
        class(&c.outcome),
        cell_label(&c.outcome)
    );
    match &c.outcome {
        Outcome::KnownDifference { reason, .. } => {
            let _ = writeln!(
                out,
                "<p class=\"reason\" id=\"reason\">Known difference: {}</p>",
                esc(reason)
            );
        }
        Outcome::NotApplicable { why } => {
            let _ = writeln!(out, "<p id=\"reason\">Not applicable: {}</p>", esc(why));
        }
        Outcome::Differs { diff } => {
            let _ = writeln!(
                out,
                "<p id=\"reason\">Unexpected difference ({} lines); not in the expected-differences file.</p>",
                diff.len()
            );
        }
        Outcome::Match => out.push_str("<p>The projections agree.</p>\n"),
    }
    let (a, b) = (
        c.model.as_ref().map(Projection::lines).unwrap_or_default(),
        c.real.as_ref().map(Projection::lines).unwrap_or_default(),
    );
    if c.model.is_some() || c.real.is_some() {
        let (da, db) = differing(&a, &b);
        let _ = writeln!(
            out,
            "<div class=\"side\"><div><h2>model</h2><pre id=\"left\">{}</pre></div><div><h2>{}</h2><pre id=\"right\">{}</pre></div></div>",
            column(&a, &da, ""),
            esc(&c.backend),
            column(&b, &db, " b")
        );
    }
    out.push_str(&tail());
    out
}

fn column(lines: &[String], differs: &[bool], side: &str) -> String {
    let mut out = String::new();
    for (line, d) in lines.iter().zip(differs) {
        if *d {
            let _ = write!(out, "<span class=\"only{side}\">{}</span>", esc(line));
        } else {
            let _ = write!(out, "<span>{}</span>", esc(line));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_lines_outside_the_common_part_are_marked() {
        let a: Vec<String> = ["x", "y", "z"].map(String::from).to_vec();
        let b: Vec<String> = ["x", "q", "z", "w"].map(String::from).to_vec();
        let (da, db) = differing(&a, &b);
        assert_eq!(da, [false, true, false]);
        assert_eq!(db, [false, true, false, true]);
    }
}
