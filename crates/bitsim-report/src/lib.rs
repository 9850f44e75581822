//! # bitsim-report
//!
//! Renders a run as a static site a reviewer opens in a browser: an `index.html`
//! listing every run, one page per scenario run (a timeline of job states,
//! requests, notification attempts, command-line runs, environment events and
//! notifications in flight per user, on a compressed time axis; the trace; the
//! steps), and a conformance matrix with side-by-side projections.
//!
//! The pages are pure functions of a run's data ([`scenario_page`],
//! [`index_page`], [`conformance::matrix`]); [`Site`] is the only I/O, and it
//! writes only inside its directory. No network, no framework: inline SVG, CSS
//! and a little plain JS. Every string from a scenario or trace is escaped.

mod assets;
pub mod axis;
pub mod conformance;
pub mod escape;
mod page;
pub mod svg;
pub mod timeline;

pub use conformance::ConformanceCell;
pub use page::{index as index_page, scenario as scenario_page, stamp_ms, IndexRow};

use bitsim_scenario::{LoadedScenario, Observed, RunReport};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One run, as the report draws it.
pub struct RunInput<'a> {
    pub loaded: &'a LoadedScenario,
    /// The scenario file's text (the steps pane shows it with line numbers).
    pub source: &'a str,
    pub report: &'a RunReport,
    pub observed: &'a Observed,
    /// Measured wall time of the run; only the index shows it.
    pub wall: Duration,
}

/// A report being written to a directory: pages as runs arrive, the index at
/// [`Site::finish`].
pub struct Site {
    dir: PathBuf,
    title: String,
    rows: Vec<IndexRow>,
    pages: BTreeSet<String>,
    conformance: bool,
}

impl Site {
    /// Creates `dir` (and `dir/runs`). Refuses a `runs` or `conformance` that is a
    /// symbolic link, so nothing is written outside `dir` through one.
    pub fn create(dir: &Path, title: &str) -> std::io::Result<Site> {
        std::fs::create_dir_all(dir)?;
        for sub in ["runs", "conformance"] {
            let p = dir.join(sub);
            if std::fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(std::io::Error::other(format!(
                    "{} is a symbolic link; refusing to write through it",
                    p.display()
                )));
            }
        }
        std::fs::create_dir_all(dir.join("runs"))?;
        Ok(Site {
            dir: dir.to_path_buf(),
            title: title.to_string(),
            rows: Vec::new(),
            pages: BTreeSet::new(),
            conformance: false,
        })
    }

    /// A page name no earlier page of this site has (`-2`, `-3`… on a clash).
    fn unique(&mut self, name: String) -> String {
        let mut candidate = name.clone();
        let mut n = 2;
        while self.pages.contains(&candidate) {
            candidate = format!("{}-{n}.html", name.trim_end_matches(".html"));
            n += 1;
        }
        self.pages.insert(candidate.clone());
        candidate
    }

    /// Writes the run's page; returns its path.
    pub fn add_run(&mut self, run: &RunInput) -> std::io::Result<PathBuf> {
        let r = run.report;
        let file = self.unique(escape::page_file_name(&[&r.name, r.flavor.as_str()]));
        let path = self.dir.join("runs").join(&file);
        std::fs::write(&path, scenario_page(run))?;
        self.rows.push(IndexRow {
            name: r.name.clone(),
            flavor: r.flavor.to_string(),
            verdict: page::verdict_label(&r.verdict).0.to_string(),
            virtual_ms: r.covered.as_millis(),
            wall_ms: run.wall.as_secs_f64() * 1000.0,
            href: format!("runs/{file}"),
        });
        Ok(path)
    }

    /// Writes `conformance.html` and one side-by-side page per cell.
    pub fn add_conformance(&mut self, cells: &[ConformanceCell], note: &str) -> std::io::Result<()> {
        std::fs::create_dir_all(self.dir.join("conformance"))?;
        for c in cells {
            std::fs::write(self.dir.join("conformance").join(c.page()), conformance::detail(c))?;
        }
        std::fs::write(self.dir.join("conformance.html"), conformance::matrix(cells, note))?;
        self.conformance = true;
        Ok(())
    }

    /// Writes `index.html`; returns its path.
    pub fn finish(self) -> std::io::Result<PathBuf> {
        let path = self.dir.join("index.html");
        let link = self.conformance.then_some("conformance.html");
        std::fs::write(&path, index_page(&self.title, &self.rows, link))?;
        Ok(path)
    }
}
