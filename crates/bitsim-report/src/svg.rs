//! Draws a [`Timeline`] as one inline SVG on a compressed time axis. Every mark
//! carries its virtual time (`data-t`, ms) and its x (`data-x`), so the page's
//! script (and the browser test) can tie it to the trace.

use crate::axis::{instant, Axis};
use crate::escape::esc;
use crate::timeline::{Attempt, InFlight, JobLane, Request, StateSpan, Timeline};
use bitsim_model::{Hresult, JobState};
use std::fmt::Write as _;

/// Left gutter for lane labels, px.
pub const GUTTER: f64 = 170.0;
const AXIS_H: f64 = 40.0;
const LANE_H: f64 = 66.0;
const ROW_H: f64 = 28.0;
const CHART_H: f64 = 56.0;
/// The per-user limit the in-flight chart is drawn against (bits-spec §4.3).
pub const SLOT_LIMIT: usize = 4;

/// The state's fill colour (also used by the legend).
pub fn state_colour(s: JobState) -> &'static str {
    match s {
        JobState::Queued => "#a7b1bc",
        JobState::Connecting => "#f2c94c",
        JobState::Transferring => "#2d9cdb",
        JobState::Suspended => "#d3d6da",
        JobState::Error => "#eb5757",
        JobState::TransientError => "#f2994a",
        JobState::Transferred => "#6fcf97",
        JobState::Acknowledged => "#219653",
        JobState::Cancelled => "#6b7280",
    }
}

fn status_class(r: &Request) -> &'static str {
    match (r.fault.is_some(), r.status) {
        (_, None) => "rq-none",
        (_, Some(s)) if s >= 500 => "rq-5xx",
        (_, Some(s)) if s >= 400 => "rq-4xx",
        (_, Some(s)) if s >= 300 => "rq-3xx",
        (true, _) => "rq-fault",
        _ => "rq-ok",
    }
}

fn result_class(a: &Attempt) -> &'static str {
    match (a.result, a.exit_code) {
        (Some(Hresult::S_OK), _) | (_, Some(0)) => "nt-ok",
        (Some(hr), _) if hr.is_success() => "nt-other",
        (Some(_), _) | (_, Some(_)) => "nt-fail",
        (None, None) => "nt-blocked",
    }
}

/// Short text of a request: `HEAD /f 403`, `GET /f reset`, `BITS_POST Fragment /u 500`.
fn request_text(r: &Request) -> String {
    let mut s = r.method.clone();
    if let Some(p) = &r.packet {
        s.push(' ');
        s.push_str(p);
    }
    s.push(' ');
    s.push_str(&r.path);
    match (r.status, &r.fault) {
        (Some(st), Some(f)) => {
            let _ = write!(s, " {st} ({f})");
        }
        (Some(st), None) => {
            let _ = write!(s, " {st}");
        }
        (None, Some(f)) => {
            let _ = write!(s, " {f}");
        }
        (None, None) => s.push_str(" no answer"),
    }
    s
}

fn attempt_text(a: &Attempt) -> String {
    match &a.cmdline {
        Some(program) => {
            let exit = a.exit_code.map_or("still running".to_string(), |c| format!("exit {c}"));
            format!("cmdline {} #{} {program:?} → {exit}", a.kind, a.attempt)
        }
        None => {
            let ret = a.result.map_or("still blocked".to_string(), |r| r.to_string());
            let blocked = a
                .blocked_ms()
                .map_or(String::new(), |ms| format!(", blocked {}", crate::axis::duration(ms)));
            format!("{} #{} → {ret}{blocked}", a.kind, a.attempt)
        }
    }
}

fn span_text(s: &StateSpan) -> String {
    match &s.error {
        Some(e) => format!("{} · {} · {}", s.state, e.name(), e.context),
        None => s.state.to_string(),
    }
}

/// Cuts `text` to what fits in `px` at the label font size.
fn fit(text: &str, px: f64) -> Option<String> {
    let chars = (px / 6.3).floor() as usize;
    if chars < 3 {
        return None;
    }
    if text.chars().count() <= chars {
        return Some(text.to_string());
    }
    let cut: String = text.chars().take(chars.saturating_sub(1)).collect();
    Some(format!("{cut}…"))
}

/// The timeline as an `<svg>` element.
pub fn render(tl: &Timeline, axis: &Axis) -> String {
    let width = (axis.end_x + 160.0).ceil();
    let lanes = tl.jobs.len() as f64;
    let extra_rows = 1.0 + f64::from(u8::from(!tl.other_requests.is_empty()));
    let height = (AXIS_H + lanes * LANE_H + extra_rows * ROW_H + tl.in_flight.len() as f64 * CHART_H + 10.0).ceil();
    let mut out = String::with_capacity(16 * 1024);
    let _ = write!(
        out,
        r#"<svg id="timeline" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" data-end="{}">"#,
        tl.end
    );
    axis_row(&mut out, axis, height);
    for b in &axis.breaks {
        let _ = write!(
            out,
            r#"<rect class="brk" data-t0="{}" data-t1="{}" x="{:.1}" y="{AXIS_H}" width="{:.1}" height="{:.1}"/>"#,
            b.t0,
            b.t1,
            b.x0,
            b.x1 - b.x0,
            height - AXIS_H,
        );
    }
    let mut y = AXIS_H;
    for lane in &tl.jobs {
        job_lane(&mut out, lane, axis, y);
        y += LANE_H;
    }
    env_row(&mut out, &tl.env, axis, y);
    y += ROW_H;
    if !tl.other_requests.is_empty() {
        let _ = write!(
            out,
            r#"<g class="lane other"><text class="label" x="8" y="{}">requests (no job)</text>"#,
            y + 16.0
        );
        requests(&mut out, &tl.other_requests, axis, y + 6.0);
        out.push_str("</g>");
        y += ROW_H;
    }
    for chart in &tl.in_flight {
        in_flight(&mut out, chart, axis, y);
        y += CHART_H;
    }
    // Zigzags on top of the marks; the band itself is drawn under them.
    for b in &axis.breaks {
        let _ = write!(
            out,
            r#"<path class="brk-zz" d="M{:.1} {AXIS_H} {zz} M{:.1} {AXIS_H} {zz}"/>"#,
            b.x0 + 4.0,
            b.x1 - 4.0,
            zz = zigzag(height - AXIS_H),
        );
    }
    let _ = write!(
        out,
        r#"<line id="cursor" x1="0" x2="0" y1="{AXIS_H}" y2="{height}" style="display:none"/></svg>"#
    );
    out
}

/// A zigzag line going down `h` px (relative path commands).
fn zigzag(h: f64) -> String {
    let mut out = String::new();
    for k in 0..(h / 12.0).ceil() as usize {
        let _ = write!(out, "{}", if k % 2 == 0 { "l4 6 l-4 6 " } else { "l-4 6 l4 6 " });
    }
    out
}

fn axis_row(out: &mut String, axis: &Axis, height: f64) {
    out.push_str(r#"<g class="axis">"#);
    for (t, x) in axis.ticks(84.0) {
        let _ = write!(
            out,
            r#"<line class="tick" x1="{x:.1}" x2="{x:.1}" y1="26" y2="{height:.1}"/><text x="{x:.1}" y="22" data-t="{t}">{}</text>"#,
            esc(&instant(t))
        );
    }
    for b in &axis.breaks {
        let _ = write!(
            out,
            r#"<text class="brk-label" x="{:.1}" y="10">{}</text>"#,
            (b.x0 + b.x1) / 2.0,
            esc(&b.label())
        );
    }
    out.push_str("</g>");
}

fn job_lane(out: &mut String, lane: &JobLane, axis: &Axis, y: f64) {
    let _ = write!(
        out,
        r#"<g class="lane" data-job="{}"><rect class="lane-bg" x="0" y="{y}" width="100%" height="{LANE_H}"/><text class="label" x="8" y="{:.1}">{}</text><text class="sub" x="8" y="{:.1}">{}</text>"#,
        esc(&lane.name),
        y + 18.0,
        esc(&fit(&lane.name, GUTTER - 16.0).unwrap_or_default()),
        y + 32.0,
        esc(&fit(&format!("{} · {}", lane.user, lane.job_type), GUTTER - 16.0).unwrap_or_default()),
    );
    for s in &lane.spans {
        let (x0, x1) = (axis.x(s.t0), axis.x(s.t1));
        let error = s.error.as_ref().map_or(String::new(), |e| {
            format!(r#" data-error="{}" data-context="{}""#, esc(&e.name()), esc(&e.context))
        });
        let tip = match &s.error {
            Some(e) => format!(
                "{} from {} to {}: {} ({}) context={} {} errors={}",
                s.state,
                instant(s.t0),
                instant(s.t1),
                e.name(),
                e.hresult,
                e.context,
                e.disposition,
                e.error_count
            ),
            None => format!("{} from {} to {}", s.state, instant(s.t0), instant(s.t1)),
        };
        let _ = write!(
            out,
            r#"<rect class="span" data-state="{}" data-t0="{}" data-t1="{}" data-x="{x0:.1}"{error} data-tip="{}" x="{x0:.1}" y="{:.1}" width="{:.1}" height="18" fill="{}"/>"#,
            s.state,
            s.t0,
            s.t1,
            esc(&tip),
            y + 6.0,
            x1 - x0,
            state_colour(s.state)
        );
        if let Some(text) = fit(&span_text(s), x1 - x0 - 6.0) {
            let _ = write!(
                out,
                r#"<text class="span-label" x="{:.1}" y="{:.1}">{}</text>"#,
                x0 + 3.0,
                y + 19.0,
                esc(&text)
            );
        }
    }
    for c in &lane.calls {
        let x = axis.x(c.t);
        let class = if c.result.is_success() {
            "call"
        } else {
            "call call-fail"
        };
        let _ = write!(
            out,
            r#"<path class="{class}" data-t="{}" data-x="{x:.1}" data-tip="{}" d="M{:.1} {:.1} l3 -5 h-6 z"/>"#,
            c.t,
            esc(&format!("{} → {} at {}", c.call, c.result, instant(c.t))),
            x,
            y + 6.0,
        );
    }
    requests(out, &lane.requests, axis, y + 28.0);
    attempts(out, &lane.attempts, axis, y + 44.0);
    out.push_str("</g>");
}

/// Requests as small marks on one row; requests at one instant share a label.
fn requests(out: &mut String, list: &[Request], axis: &Axis, y: f64) {
    for (k, r) in list.iter().enumerate() {
        let x = axis.x(r.t);
        let _ = write!(
            out,
            r#"<rect class="req {}" data-t="{}" data-x="{x:.1}" data-method="{}" data-path="{}" data-status="{}" data-fault="{}" data-tip="{}" x="{:.1}" y="{y:.1}" width="5" height="11"/>"#,
            status_class(r),
            r.t,
            esc(&r.method),
            esc(&r.path),
            r.status.map_or(String::new(), |s| s.to_string()),
            esc(r.fault.as_deref().unwrap_or("")),
            esc(&format!("{} at {}", request_text(r), instant(r.t))),
            x - 2.5,
        );
        let first_at_t = k == 0 || list[k - 1].t != r.t;
        if first_at_t {
            let same: Vec<String> = list[k..].iter().take_while(|o| o.t == r.t).map(request_text).collect();
            let next_x = list[k..].iter().find(|o| o.t != r.t).map_or(f64::MAX, |o| axis.x(o.t));
            let text = if same.len() > 3 {
                format!("{} · … ({} requests)", same[..2].join(" · "), same.len())
            } else {
                same.join(" · ")
            };
            if let Some(text) = fit(&text, (next_x - x - 8.0).min(420.0)) {
                let _ = write!(
                    out,
                    r#"<text class="req-label" x="{:.1}" y="{:.1}">{}</text>"#,
                    x + 5.0,
                    y + 9.0,
                    esc(&text)
                );
            }
        }
    }
}

/// Notification attempts: a dot with the attempt number, and a bar for as long
/// as the callback blocked; command-line runs as diamonds.
fn attempts(out: &mut String, list: &[Attempt], axis: &Axis, y: f64) {
    let cy = y + 8.0;
    for (k, a) in list.iter().enumerate() {
        let x = axis.x(a.t);
        let end_x = a.returned_at.map_or(axis.end_x, |r| axis.x(r));
        if end_x > x {
            let _ = write!(
                out,
                r#"<rect class="blocked {}" x="{x:.1}" y="{:.1}" width="{:.1}" height="6"/>"#,
                result_class(a),
                cy - 3.0,
                end_x - x
            );
        }
        let common = format!(
            r#"data-t="{}" data-x="{x:.1}" data-kind="{}" data-attempt="{}" data-result="{}" data-blocked-ms="{}" data-tip="{}""#,
            a.t,
            a.kind,
            a.attempt,
            a.result
                .and_then(|r| r.name())
                .or(a.exit_code.map(|c| format!("exit {c}")))
                .unwrap_or_default(),
            a.blocked_ms().map_or(String::new(), |b| b.to_string()),
            esc(&format!("{} at {}", attempt_text(a), instant(a.t)))
        );
        match &a.cmdline {
            Some(_) => {
                let _ = write!(
                    out,
                    r#"<path class="cmd {}" {common} d="M{x:.1} {:.1} l7 7 -7 7 -7 -7 z"/>"#,
                    result_class(a),
                    cy - 7.0
                );
            }
            None => {
                let _ = write!(
                    out,
                    r#"<g class="note {}" {common}><circle cx="{x:.1}" cy="{cy:.1}" r="7"/><text x="{x:.1}" y="{:.1}">{}</text></g>"#,
                    result_class(a),
                    cy + 3.5,
                    a.attempt
                );
            }
        }
        // One label per instant: "JobError #2 → E_FAIL".
        let first_at_t = k == 0 || list[k - 1].t != a.t;
        if first_at_t {
            let next_x = list[k..].iter().find(|o| o.t != a.t).map_or(f64::MAX, |o| axis.x(o.t));
            let short = match (&a.cmdline, a.result, a.exit_code) {
                (Some(_), _, Some(c)) => format!("cmdline #{} exit {c}", a.attempt),
                (Some(_), _, None) => format!("cmdline #{}", a.attempt),
                (None, Some(r), _) => format!(
                    "{} #{} → {}",
                    a.kind,
                    a.attempt,
                    r.name().unwrap_or_else(|| format!("0x{:08X}", r.0))
                ),
                (None, None, _) => format!("{} #{} blocked", a.kind, a.attempt),
            };
            if let Some(text) = fit(&short, (next_x - x - 12.0).min(260.0)) {
                let _ = write!(
                    out,
                    r#"<text class="note-label" x="{:.1}" y="{:.1}">{}</text>"#,
                    x + 10.0,
                    cy + 4.0,
                    esc(&text)
                );
            }
        }
    }
}

fn env_row(out: &mut String, env: &[(u64, String)], axis: &Axis, y: f64) {
    let _ = write!(
        out,
        r#"<g class="lane envs"><text class="label" x="8" y="{:.1}">environment</text>"#,
        y + 17.0
    );
    for (k, (t, what)) in env.iter().enumerate() {
        let x = axis.x(*t);
        let _ = write!(
            out,
            r#"<path class="env" data-t="{t}" data-x="{x:.1}" data-what="{}" data-tip="{}" d="M{x:.1} {:.1} l6 6 -6 6 -6 -6 z"/>"#,
            esc(what),
            esc(&format!("{what} at {}", instant(*t))),
            y + 6.0
        );
        let next_x = env.get(k + 1).map_or(f64::MAX, |e| axis.x(e.0));
        if let Some(text) = fit(what, (next_x - x - 12.0).min(240.0)) {
            let _ = write!(
                out,
                r#"<text class="env-label" x="{:.1}" y="{:.1}">{}</text>"#,
                x + 9.0,
                y + 16.0,
                esc(&text)
            );
        }
    }
    out.push_str("</g>");
}

/// Notifications in flight for one user, against the limit of four.
fn in_flight(out: &mut String, chart: &InFlight, axis: &Axis, y: f64) {
    let top = y + 8.0;
    let h = CHART_H - 16.0;
    let ymax = chart.max().max(SLOT_LIMIT) as f64;
    let level = |v: f64| top + h - h * v / ymax;
    let _ = write!(
        out,
        r#"<g class="inflight" data-user="{}" data-max="{}"><text class="label" x="8" y="{:.1}">in flight: {}</text><text class="sub" x="8" y="{:.1}">max {} of {SLOT_LIMIT}</text><line class="limit" x1="{GUTTER}" x2="{:.1}" y1="{:.1}" y2="{:.1}"/><text class="limit-label" x="{:.1}" y="{:.1}">limit {SLOT_LIMIT}</text>"#,
        esc(&chart.user),
        chart.max(),
        top + 12.0,
        esc(&fit(&chart.user, GUTTER - 80.0).unwrap_or_default()),
        top + 26.0,
        chart.max(),
        axis.end_x,
        level(SLOT_LIMIT as f64),
        level(SLOT_LIMIT as f64),
        axis.end_x + 4.0,
        level(SLOT_LIMIT as f64) + 4.0,
    );
    for &(t0, t1, v) in &chart.steps {
        let (x0, x1) = (axis.x(t0), axis.x(t1));
        let _ = write!(
            out,
            r#"<rect class="if" data-t0="{t0}" data-t1="{t1}" data-v="{v}" data-x="{x0:.1}" data-tip="{}" x="{x0:.1}" y="{:.1}" width="{:.1}" height="{:.1}"/>"#,
            esc(&format!("{v} in flight for {} from {}", chart.user, instant(t0))),
            level(v as f64),
            x1 - x0,
            h * v as f64 / ymax
        );
    }
    out.push_str("</g>");
}
