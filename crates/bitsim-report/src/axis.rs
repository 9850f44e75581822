//! The time axis: piecewise linear, so one picture reads from milliseconds to 90
//! days. Consecutive instants closer than [`BREAK_MS`] share one linear scale
//! (with a minimum spacing, so events a millisecond apart stay apart); a longer
//! idle stretch is drawn as a fixed-width break labelled with its length
//! ("+14 days").

/// Gaps at least this long (virtual ms) may become breaks.
pub const BREAK_MS: u64 = 60_000;
/// Width of a break band, px.
pub const BREAK_PX: f64 = 56.0;
/// Minimum distance between two distinct instants, px.
pub const MIN_GAP_PX: f64 = 10.0;
/// Width the linear stretches share, px (before minimum spacing and breaks).
const LINEAR_PX: f64 = 760.0;
/// The widest a millisecond is drawn, px.
const MAX_PX_PER_MS: f64 = 2.0;

/// A compressed idle stretch.
#[derive(Debug, Clone, PartialEq)]
pub struct Break {
    pub t0: u64,
    pub t1: u64,
    pub x0: f64,
    pub x1: f64,
}

impl Break {
    /// "+14 days", "+8 min".
    pub fn label(&self) -> String {
        format!("+{}", duration(self.t1 - self.t0))
    }
}

/// Maps virtual time (ms) to x (px, from `origin`).
#[derive(Debug, Clone)]
pub struct Axis {
    /// Distinct instants, ascending, with their x.
    knots: Vec<(u64, f64)>,
    pub breaks: Vec<Break>,
    pub origin: f64,
    /// x of the last instant.
    pub end_x: f64,
}

impl Axis {
    /// An axis through `times` (any order, duplicates allowed; 0 is always included).
    pub fn new(times: impl IntoIterator<Item = u64>, origin: f64) -> Axis {
        let mut ts: Vec<u64> = times.into_iter().chain([0]).collect();
        ts.sort_unstable();
        ts.dedup();
        let linear_ms: u64 = ts.windows(2).map(|w| w[1] - w[0]).filter(|g| *g < BREAK_MS).sum();
        let scale = if linear_ms == 0 {
            MAX_PX_PER_MS
        } else {
            (LINEAR_PX / linear_ms as f64).min(MAX_PX_PER_MS)
        };
        let mut knots = Vec::with_capacity(ts.len());
        let mut breaks = Vec::new();
        let mut x = origin;
        knots.push((ts[0], x));
        for w in ts.windows(2) {
            let gap = w[1] - w[0];
            let linear = gap as f64 * scale;
            if gap >= BREAK_MS && linear > BREAK_PX {
                breaks.push(Break {
                    t0: w[0],
                    t1: w[1],
                    x0: x,
                    x1: x + BREAK_PX,
                });
                x += BREAK_PX;
            } else {
                x += linear.max(MIN_GAP_PX);
            }
            knots.push((w[1], x));
        }
        Axis {
            knots,
            breaks,
            origin,
            end_x: x,
        }
    }

    /// x of `t`: exact at every instant the axis was built from, linear between.
    pub fn x(&self, t: u64) -> f64 {
        let i = self.knots.partition_point(|(k, _)| *k <= t);
        if i == 0 {
            return self.knots[0].1;
        }
        let (t0, x0) = self.knots[i - 1];
        match self.knots.get(i) {
            Some(&(t1, x1)) if t1 > t0 => x0 + (x1 - x0) * (t - t0) as f64 / (t1 - t0) as f64,
            _ => x0,
        }
    }

    /// Tick labels: instants at least `spacing` px apart, skipping those inside breaks.
    pub fn ticks(&self, spacing: f64) -> Vec<(u64, f64)> {
        let mut out: Vec<(u64, f64)> = Vec::new();
        for &(t, x) in &self.knots {
            if out.last().is_none_or(|(_, last)| x - last >= spacing) {
                out.push((t, x));
            }
        }
        out
    }
}

/// A length of time for labels, rounded to its largest unit: "250 ms",
/// "4.5 s", "66 s", "8 min", "3 h 20 min", "1 day 2 h", "14 days".
pub fn duration(ms: u64) -> String {
    const S: u64 = 1000;
    const M: u64 = 60 * S;
    const H: u64 = 60 * M;
    const D: u64 = 24 * H;
    let round = |v: u64, unit: u64| (v + unit / 2) / unit;
    match ms {
        ms if ms < S => format!("{ms} ms"),
        ms if ms < 10 * S => format!("{:.1} s", ms as f64 / 1000.0),
        ms if ms < 2 * M => format!("{} s", round(ms, S)),
        ms if ms < H => format!("{} min", round(ms, M)),
        ms if ms < D => match (ms / H, round(ms % H, M)) {
            (h, 60) => format!("{} h", h + 1),
            (h, 0) => format!("{h} h"),
            (h, m) => format!("{h} h {m} min"),
        },
        ms => {
            let (days, hours) = match (ms / D, round(ms % D, H)) {
                (d, 24) => (d + 1, 0),
                (d, _) if d >= 10 => (round(ms, D), 0),
                dh => dh,
            };
            let unit = if days == 1 { "day" } else { "days" };
            match hours {
                0 => format!("{days} {unit}"),
                h => format!("{days} {unit} {h} h"),
            }
        }
    }
}

/// An instant for tick labels: "0 s", "66.395 s", "8m20s", "3h05m", "14d02h".
pub fn instant(ms: u64) -> String {
    let s = ms / 1000;
    match ms {
        0 => "0 s".into(),
        ms if ms < 60_000 => format!("{}.{:03} s", s, ms % 1000),
        ms if ms < 3_600_000 => format!("{}m{:02}s", s / 60, s % 60),
        ms if ms < 86_400_000 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_stretches_become_labelled_breaks_and_order_is_kept() {
        const DAY: u64 = 86_400_000;
        let a = Axis::new([0, 3, 4, 14 * DAY, 14 * DAY + 500, 90 * DAY], 100.0);
        assert_eq!(a.breaks.len(), 2);
        assert_eq!(a.breaks[0].label(), "+14 days");
        assert_eq!(a.breaks[1].label(), "+76 days");
        let xs: Vec<f64> = [0, 3, 4, 14 * DAY, 14 * DAY + 500, 90 * DAY].map(|t| a.x(t)).to_vec();
        assert!(xs.windows(2).all(|w| w[1] - w[0] >= MIN_GAP_PX - 1e-9), "{xs:?}");
        assert_eq!(xs[0], 100.0);
        // 90 days fit in a few hundred pixels, and 1 ms is still visible.
        assert!(a.end_x < 100.0 + 2000.0, "{}", a.end_x);
    }

    #[test]
    fn short_runs_are_linear() {
        let a = Axis::new([0, 100, 200], 0.0);
        assert!(a.breaks.is_empty());
        assert!((a.x(100) - a.x(0) - (a.x(200) - a.x(100))).abs() < 1e-9);
        assert!((a.x(50) - (a.x(0) + a.x(100)) / 2.0).abs() < 1e-9);
    }

    #[test]
    fn durations_read_like_a_person_writes_them() {
        assert_eq!(duration(250), "250 ms");
        assert_eq!(duration(66_395), "66 s");
        assert_eq!(duration(486_213), "8 min");
        assert_eq!(duration(14 * 86_400_000), "14 days");
        assert_eq!(duration(86_400_000 + 2 * 3_600_000), "1 day 2 h");
        assert_eq!(instant(66_395), "1m06s");
        assert_eq!(instant(4_321), "4.321 s");
        assert_eq!(duration(14 * 86_400_000 - 4), "14 days");
    }
}
