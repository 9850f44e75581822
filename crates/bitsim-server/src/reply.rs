//! A planned response (`Reply`), its body (`ReplyBody`: zero-copy slices of
//! the seeded pattern, optional pacing and stalls), and its two writers: hyper
//! for well-formed responses, raw bytes on the connection for broken ones.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use tokio::time::Sleep;

use crate::server::Inner;
use crate::util::{Pattern, PATTERN_LEN};

/// Largest slice handed to the connection at once.
const CHUNK: u64 = 256 * 1024;

/// Where body bytes come from.
#[derive(Clone)]
pub(crate) enum BodySrc {
    Empty,
    /// Bytes, sliced from `pos`.
    Bytes(Bytes),
    /// Byte `i` is `pattern[i % PATTERN_LEN]`.
    Pattern(Pattern),
}

/// Accounts body bytes handed to the connection in the request log.
pub(crate) struct Tracker {
    pub(crate) inner: Arc<Inner>,
    pub(crate) ordinal: u64,
}

/// A response body: a window `[pos, pos+remaining)` of a source.
pub(crate) struct ReplyBody {
    src: BodySrc,
    pos: u64,
    remaining: u64,
    chunk: u64,
    interval: Option<Duration>,
    sleep: Option<Pin<Box<Sleep>>>,
    /// Headers-then-stall: `Some(None)` never yields, `Some(Some(d))` fails after `d`.
    stall: Option<Option<Duration>>,
    pub(crate) tracker: Option<Tracker>,
}

impl ReplyBody {
    pub(crate) fn empty() -> Self {
        Self::window(BodySrc::Empty, 0, 0)
    }

    pub(crate) fn bytes(b: Bytes) -> Self {
        let len = b.len() as u64;
        Self::window(BodySrc::Bytes(b), 0, len)
    }

    pub(crate) fn window(src: BodySrc, pos: u64, len: u64) -> Self {
        let len = if matches!(src, BodySrc::Empty) { 0 } else { len };
        ReplyBody {
            src,
            pos,
            remaining: len,
            chunk: CHUNK,
            interval: None,
            sleep: None,
            stall: None,
            tracker: None,
        }
    }

    pub(crate) fn len(&self) -> u64 {
        self.remaining
    }

    /// Spread the body over `chunks` pieces, one every `total / chunks`.
    pub(crate) fn dribble(&mut self, chunks: u32, total: Duration) {
        let chunks = chunks.max(1);
        self.chunk = self.remaining.div_ceil(chunks as u64).clamp(1, CHUNK);
        self.interval = Some(total / chunks);
    }

    /// About `bps` bytes per second: a chunk every 100 ms.
    pub(crate) fn throttle(&mut self, bps: u64) {
        let bps = bps.max(1);
        self.chunk = (bps / 10).clamp(1, CHUNK);
        self.interval = Some(Duration::from_nanos(
            (self.chunk as u128 * 1_000_000_000 / bps as u128).min(u64::MAX as u128) as u64,
        ));
    }

    pub(crate) fn stall(&mut self, after: Option<Duration>) {
        self.stall = Some(after);
    }

    /// Keep only the first `n` bytes.
    pub(crate) fn limit(&mut self, n: u64) {
        self.remaining = self.remaining.min(n);
    }

    /// The whole remaining content as one buffer (for gzip, echo); at most `cap` bytes.
    pub(crate) fn collect_all(&self, cap: u64) -> Option<Vec<u8>> {
        if self.remaining > cap {
            return None;
        }
        let mut out = Vec::with_capacity(self.remaining as usize);
        let mut pos = self.pos;
        let mut rem = self.remaining;
        while rem > 0 {
            let s = self.slice(pos, rem)?;
            pos += s.len() as u64;
            rem -= s.len() as u64;
            out.extend_from_slice(&s);
        }
        Some(out)
    }

    fn slice(&self, pos: u64, want: u64) -> Option<Bytes> {
        let want = want.min(self.chunk);
        match &self.src {
            BodySrc::Empty => None,
            BodySrc::Bytes(b) => {
                let start = usize::try_from(pos).ok()?.min(b.len());
                let end = (start + want as usize).min(b.len());
                if start == end {
                    return None;
                }
                Some(b.slice(start..end))
            }
            BodySrc::Pattern(p) => {
                let off = (pos % PATTERN_LEN as u64) as usize;
                let n = (want as usize).min(PATTERN_LEN - off);
                Some(p.slice(off, n)).filter(|b| !b.is_empty())
            }
        }
    }

    fn next_chunk(&mut self) -> Option<Bytes> {
        if self.remaining == 0 {
            return None;
        }
        let Some(s) = self.slice(self.pos, self.remaining) else {
            self.remaining = 0;
            return None;
        };
        let n = s.len() as u64;
        self.pos += n;
        self.remaining -= n;
        if let Some(t) = &self.tracker {
            t.inner.add_sent(t.ordinal, n);
        }
        Some(s)
    }
}

impl hyper::body::Body for ReplyBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        if let Some(stall) = this.stall {
            // ref: bits-http §5.3 "headers then stall"
            let Some(d) = stall else {
                return Poll::Pending;
            };
            let sleep = this.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep(d)));
            ready!(sleep.as_mut().poll(cx));
            this.sleep = None;
            this.stall = Some(None);
            return Poll::Ready(Some(Err(io::Error::other("stall fault: closing"))));
        }
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        if let Some(iv) = this.interval {
            let sleep = this.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep(iv)));
            ready!(sleep.as_mut().poll(cx));
            this.sleep = None;
        }
        Poll::Ready(this.next_chunk().map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0 && self.stall.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// How a raw (hyper-bypassing) reply is written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RawMode {
    /// Head (with `content_length` as declared, possibly wrong or absent),
    /// the whole body, then FIN after `close_delay`.
    Normal { version10: bool, close_delay: Duration },
    /// Head, then `after` body bytes, then FIN or RST.
    Cut { after: u64, rst: bool },
    /// Nothing at all, then FIN or RST.
    Close { rst: bool },
    /// These bytes instead of a response, then FIN.
    Garbage(Bytes),
    /// `Transfer-Encoding: chunked`; `malformed` sends a bad chunk header.
    Chunked { malformed: bool },
}

/// A planned response.
pub(crate) struct Reply {
    pub(crate) status: u16,
    /// Headers other than Content-Length, in order.
    pub(crate) headers: Vec<(String, String)>,
    /// The declared Content-Length (None: omitted).
    pub(crate) content_length: Option<u64>,
    pub(crate) body: ReplyBody,
    pub(crate) raw: Option<RawMode>,
    pub(crate) fault: Option<String>,
    pub(crate) note: Option<String>,
}

impl Reply {
    pub(crate) fn new(status: u16) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            content_length: Some(0),
            body: ReplyBody::empty(),
            raw: None,
            fault: None,
            note: None,
        }
    }

    pub(crate) fn text(status: u16, text: impl Into<String>) -> Self {
        let b = Bytes::from(text.into());
        let mut r = Reply::new(status);
        r.content_length = Some(b.len() as u64);
        r.body = ReplyBody::bytes(b);
        r.header("Content-Type", "text/plain; charset=utf-8");
        r
    }

    pub(crate) fn json(status: u16, v: &impl serde::Serialize) -> Self {
        let b = Bytes::from(serde_json::to_vec_pretty(v).unwrap_or_default());
        let mut r = Reply::new(status);
        r.content_length = Some(b.len() as u64);
        r.body = ReplyBody::bytes(b);
        r.header("Content-Type", "application/json");
        r
    }

    pub(crate) fn raw_close(rst: bool) -> Self {
        let mut r = Reply::new(0);
        r.raw = Some(RawMode::Close { rst });
        r
    }

    pub(crate) fn header(&mut self, name: &str, value: impl Into<String>) -> &mut Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    pub(crate) fn set_header(&mut self, name: &str, value: impl Into<String>) {
        self.remove_header(name);
        self.header(name, value);
    }

    pub(crate) fn remove_header(&mut self, name: &str) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    /// Whether hyper can write this reply faithfully.
    fn hyper_ok(&self, head: bool) -> bool {
        if self.raw.is_some() || !(200..=999).contains(&self.status) {
            return false;
        }
        // framing headers set by a plan are written verbatim, not by hyper
        if self
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("transfer-encoding"))
        {
            return false;
        }
        match self.content_length {
            Some(cl) => head || cl == self.body.len(),
            None => false,
        }
    }

    /// Turns the plan into a hyper response, or hands it to the raw writer.
    pub(crate) fn into_outcome(mut self, head: bool) -> Outcome {
        if !self.hyper_ok(head) {
            if self.raw.is_none() {
                self.raw = Some(RawMode::Normal {
                    version10: false,
                    close_delay: Duration::ZERO,
                });
            }
            return Outcome::Raw(self, head);
        }
        let mut b = http::Response::builder().status(self.status);
        let mut ok = true;
        for (n, v) in &self.headers {
            match (
                http::HeaderName::from_bytes(n.as_bytes()),
                http::HeaderValue::from_str(v),
            ) {
                (Ok(n), Ok(v)) => b = b.header(n, v),
                _ => ok = false,
            }
        }
        if !ok {
            // a plan-supplied header hyper rejects: write it raw instead
            self.raw = Some(RawMode::Normal {
                version10: false,
                close_delay: Duration::ZERO,
            });
            return Outcome::Raw(self, head);
        }
        let body = if head {
            // ref: bits-http §1.2 — HEAD reports the full size
            if let Some(cl) = self.content_length {
                b = b.header(http::header::CONTENT_LENGTH, cl);
            }
            let mut e = ReplyBody::empty();
            e.tracker = self.body.tracker.take();
            e
        } else {
            self.body
        };
        match b.body(body) {
            Ok(resp) => Outcome::Hyper(resp),
            Err(_) => Outcome::Hyper(http::Response::new(ReplyBody::empty())),
        }
    }

    /// The raw response head.
    pub(crate) fn raw_head(&self, version10: bool, chunked: bool) -> Vec<u8> {
        let reason = http::StatusCode::from_u16(self.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Unknown");
        let mut h = format!(
            "HTTP/1.{} {} {}\r\n",
            if version10 { 0 } else { 1 },
            self.status,
            reason
        );
        for (n, v) in &self.headers {
            let clean = |s: &str| s.replace(['\r', '\n'], " ");
            h.push_str(&format!("{}: {}\r\n", clean(n), clean(v)));
        }
        let has = |name: &str| self.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
        if chunked {
            h.push_str("Transfer-Encoding: chunked\r\n");
        } else if has("content-length") || has("transfer-encoding") {
            // the plan set the framing itself
        } else if let Some(cl) = self.content_length {
            h.push_str(&format!("Content-Length: {cl}\r\n"));
        }
        h.push_str("\r\n");
        h.into_bytes()
    }
}

/// What the connection does with a reply.
pub(crate) enum Outcome {
    Hyper(http::Response<ReplyBody>),
    /// The reply and whether the request was HEAD.
    Raw(Reply, bool),
}
