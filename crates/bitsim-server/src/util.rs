//! Small self-contained helpers: a seeded PRNG, the body pattern, HTTP dates,
//! Range parsing, percent-decoding, base64 and hex.

use bytes::Bytes;

/// SplitMix64: tiny, seedable, good enough for test data and fault dice.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub(crate) fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A GUID string as Windows writes it: braces, upper case (bits-http §3.3).
    pub(crate) fn guid(&mut self) -> String {
        let a = self.next_u64();
        let b = self.next_u64();
        format!(
            "{{{:08X}-{:04X}-4{:03X}-{:04X}-{:012X}}}",
            a >> 32,
            (a >> 16) & 0xFFFF,
            a & 0x0FFF,
            ((b >> 48) & 0x3FFF) | 0x8000,
            b & 0xFFFF_FFFF_FFFF
        )
    }
}

/// Length of the repeating body pattern. Not a power of two, so the pattern
/// does not line up with block or fragment boundaries.
pub(crate) const PATTERN_LEN: usize = (1 << 20) + 13;

/// The first `len` bytes (at most [`PATTERN_LEN`]) of the deterministic body
/// pattern for a seed: byte `i` of every generated body is `pattern[i %
/// PATTERN_LEN]`, so any range can be served by slicing. A shorter prefix is a
/// prefix of the longer one.
pub(crate) fn make_pattern_prefix(seed: u64, len: usize) -> Bytes {
    let len = len.min(PATTERN_LEN);
    let mut rng = Rng::new(seed ^ 0xB175_1A00_0000_0000);
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        v.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    v.truncate(len);
    Bytes::from(v)
}

/// The whole pattern of a seed (see [`make_pattern_prefix`]).
pub(crate) fn make_pattern(seed: u64) -> Bytes {
    make_pattern_prefix(seed, PATTERN_LEN)
}

/// A seed's body pattern, built only as far as it has been read: a server is built
/// per scenario run (bitsim explore builds thousands a second, each with its own
/// seed), most runs read a few kilobytes of it, and the whole is over 1 MB.
#[derive(Clone)]
pub(crate) struct Pattern(std::sync::Arc<PatternInner>);

struct PatternInner {
    seed: u64,
    built: std::sync::Mutex<Bytes>,
}

impl Pattern {
    /// Cheap: nothing is built until [`Pattern::slice`] asks for it.
    pub(crate) fn new(seed: u64) -> Pattern {
        Pattern(std::sync::Arc::new(PatternInner {
            seed,
            built: std::sync::Mutex::new(Bytes::new()),
        }))
    }

    /// Bytes `[off, off + n)` of one period (`off + n <= PATTERN_LEN`; longer
    /// windows are cut at the period's end). Grows what is built by doubling, from
    /// 64 KiB.
    pub(crate) fn slice(&self, off: usize, n: usize) -> Bytes {
        let end = off.saturating_add(n).min(PATTERN_LEN);
        let off = off.min(end);
        let mut built = self.0.built.lock().unwrap_or_else(|e| e.into_inner());
        if built.len() < end {
            let len = end.next_power_of_two().clamp(64 << 10, PATTERN_LEN);
            *built = make_pattern_prefix(self.0.seed, len);
        }
        built.slice(off..end)
    }
}

/// [`Pattern::new`], remembered: the rerun of a scenario (explore's determinism
/// check) reuses what the first run built. Bounded: at most 32 patterns are kept.
pub(crate) fn shared_pattern(seed: u64) -> Pattern {
    static CACHE: std::sync::Mutex<Vec<(u64, Pattern)>> = std::sync::Mutex::new(Vec::new());
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, p)) = cache.iter().find(|(s, _)| *s == seed) {
        return p.clone();
    }
    let p = Pattern::new(seed);
    if cache.len() >= 32 {
        cache.remove(0);
    }
    cache.push((seed, p.clone()));
    p
}

/// Formats unix seconds as an IMF-fixdate (RFC 9110 §5.6.7).
pub(crate) fn http_date(unix: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix / 86_400;
    let secs = unix % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A parsed `Range` request header, resolved against an entity size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RangeReq {
    /// No usable Range (absent, unparsable, other unit, or several ranges):
    /// serve the whole entity with 200 (RFC 9110 §14.2 lets a server ignore it).
    Full,
    /// One satisfiable range, inclusive.
    Single(u64, u64),
    /// Several satisfiable ranges, in request order (multipart/byteranges).
    Multi(Vec<(u64, u64)>),
    /// Syntactically valid but not satisfiable: 416.
    Unsatisfiable,
}

/// ref: bits-http §1.2 — single byte ranges are a MUST; multi-range is only a
/// SHOULD and the client falls back to single ranges when given a 200 (§1.1).
pub(crate) fn parse_range(header: Option<&str>, size: u64) -> RangeReq {
    let Some(h) = header else {
        return RangeReq::Full;
    };
    let h = h.trim();
    let Some(spec) = h.get(..6).filter(|p| p.eq_ignore_ascii_case("bytes=")).map(|_| &h[6..]) else {
        return RangeReq::Full;
    };
    if spec.contains(',') {
        // ref: bits-http §1.2 — multi-range SHOULD: parts in request order, no merging
        let mut parts = Vec::new();
        for one in spec.split(',').take(MAX_RANGES + 1) {
            match parse_one(one, size) {
                RangeReq::Single(a, b) => parts.push((a, b)),
                RangeReq::Unsatisfiable => {}
                _ => return RangeReq::Full,
            }
        }
        return match parts.len() {
            0 => RangeReq::Unsatisfiable,
            1 => RangeReq::Single(parts[0].0, parts[0].1),
            n if n > MAX_RANGES => RangeReq::Full,
            _ => RangeReq::Multi(parts),
        };
    }
    parse_one(spec, size)
}

/// Most ranges served as multipart (Windows' `MaxRangesPerFile` default is 500).
pub(crate) const MAX_RANGES: usize = 500;

fn parse_one(spec: &str, size: u64) -> RangeReq {
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeReq::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        // suffix range: the last n bytes
        let Ok(n) = b.parse::<u64>() else {
            return RangeReq::Full;
        };
        if n == 0 || size == 0 {
            return RangeReq::Unsatisfiable;
        }
        let n = n.min(size);
        return RangeReq::Single(size - n, size - 1);
    }
    let Ok(start) = a.parse::<u64>() else {
        return RangeReq::Full;
    };
    let end = if b.is_empty() {
        u64::MAX
    } else {
        match b.parse::<u64>() {
            Ok(e) if e >= start => e,
            _ => return RangeReq::Full,
        }
    };
    if start >= size {
        return RangeReq::Unsatisfiable;
    }
    RangeReq::Single(start, end.min(size - 1))
}

/// Parses a fragment's `Content-Range: bytes a-b/total` (bits-http §3.2).
pub(crate) fn parse_content_range(v: &str) -> Option<(u64, u64, u64)> {
    let v = v.trim();
    let rest = v
        .get(..5)
        .filter(|p| p.eq_ignore_ascii_case("bytes"))
        .map(|_| v[5..].trim_start_matches([' ', '=']))?;
    let (range, total) = rest.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    let a: u64 = a.trim().parse().ok()?;
    let b: u64 = b.trim().parse().ok()?;
    let total: u64 = total.trim().parse().ok()?;
    if a > b || b >= total {
        return None;
    }
    Some((a, b, total))
}

/// Percent-decodes a URL path. `None` when the result is not UTF-8 or has NUL.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hi = (b[i + 1] as char).to_digit(16);
            let lo = (b[i + 2] as char).to_digit(16);
            if let (Some(hi), Some(lo)) = (hi, lo) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    let s = String::from_utf8(out).ok()?;
    if s.contains('\0') {
        return None;
    }
    Some(s)
}

/// Percent-encodes the characters of a path segment that are not unreserved.
pub(crate) fn percent_encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &c in s.as_bytes() {
        if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
            out.push(c as char);
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
    out
}

pub(crate) fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let n = match chunk.len() {
            3 => (chunk[0] as u32) << 16 | (chunk[1] as u32) << 8 | chunk[2] as u32,
            2 => (chunk[0] as u32) << 16 | (chunk[1] as u32) << 8,
            _ => (chunk[0] as u32) << 16,
        };
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lazily_built_pattern_serves_the_bytes_of_the_whole_one() {
        let whole = make_pattern(42);
        let p = Pattern::new(42);
        // Small first, then a window that makes it grow, then one at the period's end.
        for (off, n) in [(0, 10), (100, 70_000), (5, 3), (PATTERN_LEN - 7, 100), (0, PATTERN_LEN)] {
            let got = p.slice(off, n);
            let end = (off + n).min(PATTERN_LEN);
            assert_eq!(&got[..], &whole[off..end], "window {off}+{n}");
        }
        assert_ne!(&Pattern::new(43).slice(0, 64)[..], &whole[..64]);
    }

    #[test]
    fn dates() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(1_700_000_000), "Tue, 14 Nov 2023 22:13:20 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range(Some("bytes=0-9"), 100), RangeReq::Single(0, 9));
        assert_eq!(parse_range(Some("bytes=90-"), 100), RangeReq::Single(90, 99));
        assert_eq!(parse_range(Some("bytes=-10"), 100), RangeReq::Single(90, 99));
        assert_eq!(parse_range(Some("bytes=50-500"), 100), RangeReq::Single(50, 99));
        assert_eq!(parse_range(Some("bytes=100-"), 100), RangeReq::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=9-1"), 100), RangeReq::Full);
        assert_eq!(parse_range(Some("items=1-2"), 100), RangeReq::Full);
        assert_eq!(
            parse_range(Some("bytes=0-1,5-6"), 100),
            RangeReq::Multi(vec![(0, 1), (5, 6)])
        );
        assert_eq!(parse_range(Some("bytes=0-1,500-"), 100), RangeReq::Single(0, 1));
        assert_eq!(parse_range(Some("bytes=0-1,x"), 100), RangeReq::Full);
        assert_eq!(parse_range(Some("b"), 100), RangeReq::Full);
        assert_eq!(parse_range(None, 100), RangeReq::Full);
    }

    #[test]
    fn content_range() {
        assert_eq!(parse_content_range("bytes 0-9/10"), Some((0, 9, 10)));
        assert_eq!(parse_content_range("bytes 5-9/4"), None);
        assert_eq!(parse_content_range("bytes */10"), None);
    }

    #[test]
    fn misc() {
        assert_eq!(base64(b"user:pass"), "dXNlcjpwYXNz");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(percent_decode("/a%7Bb%7D%2"), Some("/a{b}%2".into()));
        assert_eq!(percent_decode("/a%00"), None);
        let g = Rng::new(1).guid();
        assert_eq!(g.len(), 38);
    }
}
