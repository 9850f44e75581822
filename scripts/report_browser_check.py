#!/usr/bin/env python3
"""Checks bitsim HTML report pages as headless Chromium rendered them.

Usage: report_browser_check.py OUT_DIR SLOT_PAGE_STEM
OUT_DIR holds traces/ (bitsim run --trace-dir), dom/ (chromium --dump-dom,
one NAME.html per page) and png/ (chromium --screenshot). Each DOM is compared
with its run's trace: a lane per job, ERROR/TRANSIENT_ERROR spans carrying the
HRESULT name of the trace's error, one notification marker per delivery at the
trace's time, x growing with time, the in-flight chart within the limit of four
(and reaching it on SLOT_PAGE_STEM), the page's script having run. Each PNG must
not be blank. Python 3 standard library only.
"""
import html.parser
import pathlib
import re
import struct
import sys
import zlib


class Dom(html.parser.HTMLParser):
    """Every element's tag, attributes and the chain of enclosing lanes."""

    def __init__(self):
        super().__init__()
        self.elements = []
        self.stack = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        lane = next((s.get("data-job") for s in reversed(self.stack) if s.get("data-job")), None)
        a["_tag"], a["_lane"] = tag, lane
        a["_parent"] = self.stack[-1].get("class", "") if self.stack else ""
        self.elements.append(a)
        if tag not in ("rect", "path", "circle", "line", "meta", "br", "input", "i"):
            self.stack.append(a)

    def handle_startendtag(self, tag, attrs):
        a = dict(attrs)
        lane = next((s.get("data-job") for s in reversed(self.stack) if s.get("data-job")), None)
        a["_tag"], a["_lane"] = tag, lane
        self.elements.append(a)

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i]["_tag"] == tag:
                del self.stack[i:]
                break


def classes(e):
    return e.get("class", "").split()


STAMP = re.compile(r"^\s*(\d+)\.(\d{3})s\s+(.*)$")


def trace_lines(path):
    out = []
    for line in path.read_text().splitlines():
        m = STAMP.match(line)
        if m:
            out.append((int(m.group(1)) * 1000 + int(m.group(2)), m.group(3)))
    return out


def check_page(stem, dom_path, trace_path, slot_stem, fail):
    p = Dom()
    p.feed(dom_path.read_text())
    els = p.elements
    trace = trace_lines(trace_path)
    body = next(e for e in els if e["_tag"] == "body")
    if body.get("data-js") != "ready":
        fail(f"{stem}: the page's script did not run (body data-js={body.get('data-js')!r})")

    jobs = [m.group(1) for _, text in trace for m in [re.match(r"job (\S+) created", text)] if m]
    lanes = [e.get("data-job") for e in els if e["_tag"] == "g" and "lane" in classes(e) and e.get("data-job")]
    if sorted(lanes) != sorted(jobs):
        fail(f"{stem}: lanes {lanes} but the trace creates jobs {jobs}")

    # Errors: every ERROR / TRANSIENT_ERROR span names an HRESULT the trace gave that job.
    errors = {}
    for _, text in trace:
        m = re.match(r"job (\S+) error 0x[0-9A-F]{8} \((\w+)\)", text)
        if m:
            errors.setdefault(m.group(1), set()).add(m.group(2))
    entered = [(t, m.group(1)) for t, text in trace
               for m in [re.match(r"job (\S+) \S+ -> (?:ERROR|TRANSIENT_ERROR) ", text)] if m]
    spans = [e for e in els if "span" in classes(e) and e.get("data-state") in ("ERROR", "TRANSIENT_ERROR")]
    if len(spans) != len(entered):
        fail(f"{stem}: {len(spans)} error spans, the trace enters an error state {len(entered)} times")
    for s in spans:
        name = s.get("data-error", "")
        if name not in errors.get(s["_lane"], set()):
            fail(f"{stem}: {s['data-state']} span of {s['_lane']} at {s['data-t0']} ms names {name!r}, "
                 f"trace errors {sorted(errors.get(s['_lane'], []))}")
    if sorted(int(s["data-t0"]) for s in spans) != sorted(t for t, _ in entered):
        fail(f"{stem}: error spans start at {[s['data-t0'] for s in spans]}, trace at {[t for t, _ in entered]}")

    # Notification markers: one per delivery attempt, at the trace's times, in each job's lane.
    delivered = sorted((m.group(1), t) for t, text in trace
                       for m in [re.match(r"notify \w+ (\S+) #\d+ delivered", text)] if m)
    notes = sorted((e["_lane"], int(e["data-t"])) for e in els if e["_tag"] == "g" and "note" in classes(e))
    if notes != delivered:
        fail(f"{stem}: notification markers {notes} != trace deliveries {delivered}")

    # Requests: one mark per `http` line of the trace (connection faults have no line, so >=).
    http = sum(1 for _, text in trace if text.startswith("http "))
    reqs = [e for e in els if "req" in classes(e)]
    if len(reqs) < http:
        fail(f"{stem}: {len(reqs)} request marks, the trace shows {http} HTTP exchanges")

    # Positions: x is a function of t and grows with it, for every timed mark.
    timed = sorted({(int(e["data-t"]), float(e["data-x"])) for e in els
                    if e.get("data-t") and e.get("data-x") and e["_tag"] != "li"})
    by_t = {}
    for t, x in timed:
        by_t.setdefault(t, set()).add(x)
    if any(len(xs) > 1 for xs in by_t.values()):
        fail(f"{stem}: one instant drawn at several x: {[(t, xs) for t, xs in by_t.items() if len(xs) > 1][:3]}")
    xs = [min(by_t[t]) for t in sorted(by_t)]
    if any(b <= a for a, b in zip(xs, xs[1:])):
        fail(f"{stem}: x does not grow with t")
    # Trace lines link to the same x as the marks at their instant.
    for e in els:
        if e["_tag"] == "li" and e.get("data-t") in {str(t) for t in by_t}:
            if float(e["data-x"]) not in by_t[int(e["data-t"])]:
                fail(f"{stem}: trace line {e.get('id')} at {e['data-t']} ms links to x={e['data-x']}")
                break

    # A failed run: the verdict says so and the failing step's source line is marked.
    failed = next((text for _, text in trace if text.startswith("FAILED ")), None)
    if failed:
        m = re.match(r"FAILED .*?:(\d+): step", failed)
        marked = [e.get("id") for e in els if e["_tag"] == "span" and "failed" in classes(e)]
        if not m or marked != [f"src-{m.group(1)}"]:
            fail(f"{stem}: the trace fails at {failed!r}, the page marks {marked}")
        if not any(e.get("id") == "failure" for e in els):
            fail(f"{stem}: failed run without its failure box")

    # In flight: never above four; four on the slot scenario.
    values = [int(e["data-v"]) for e in els if "if" in classes(e)]
    top = max(values, default=0)
    trace_top = max((int(m.group(1)) for _, text in trace for m in [re.search(r"in_flight=(\d+)", text)] if m),
                    default=0)
    if top > 4 or top != trace_top:
        fail(f"{stem}: in-flight chart peaks at {top}, trace at {trace_top}")
    if stem == slot_stem and top != 4:
        fail(f"{stem}: the slot scenario's chart should reach 4, reaches {top}")
    return len(jobs), len(notes), len(spans)


def check_links(out, fail):
    """The URL-driven views: #L15 puts the cursor on trace line 15's x; the index
    filtered by #verdict=fail shows only the failing run."""
    page = out / "hash" / "http-403-on-head.bits.L15.html"
    p = Dom()
    p.feed(page.read_text())
    cursor = next((e for e in p.elements if e.get("id") == "cursor"), None)
    line = next((e for e in p.elements if e.get("id") == "L15"), None)
    if cursor is None or line is None:
        fail(f"{page.name}: no cursor or no trace line L15")
    elif "display: none" in cursor.get("style", "") or float(cursor["x1"]) != float(line["data-x"]):
        fail(f"{page.name}: cursor at x={cursor.get('x1')} ({cursor.get('style')!r}), line L15 at x={line['data-x']}")
    elif "hl" not in classes(line):
        fail(f"{page.name}: line L15 is not highlighted")
    index = out / "hash" / "index.verdict-fail.html"
    p = Dom()
    p.feed(index.read_text())
    rows = [e for e in p.elements if e["_tag"] == "tr" and e.get("data-verdict")]
    shown = [e for e in rows if "display: none" not in e.get("style", "")]
    if len(rows) < 2 or [e["data-verdict"] for e in shown] != ["fail"]:
        fail(f"{index.name}: {len(shown)} of {len(rows)} rows shown with #verdict=fail: "
             f"{[e['data-verdict'] for e in shown]}")
    else:
        print(f"links    #L15 cursor at x={cursor['x1']}; #verdict=fail shows 1 of {len(rows)} runs")


def decode_png(path):
    """(width, height, bytes per pixel, rows) of an 8-bit RGB(A) PNG."""
    data = path.read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, ctype = struct.unpack(">IIBB", body[:10])
            if depth != 8 or ctype not in (2, 6):
                raise ValueError(f"unsupported PNG (depth {depth}, colour type {ctype})")
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * bpp
    prev = bytearray(stride)
    rows = []
    for y in range(height):
        f = raw[y * (stride + 1)]
        row = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if f == 1:
            for i in range(bpp, stride):
                row[i] = (row[i] + row[i - bpp]) & 255
        elif f == 2:
            row = bytearray((a + b) & 255 for a, b in zip(row, prev))
        elif f == 3:
            for i in range(stride):
                left = row[i - bpp] if i >= bpp else 0
                row[i] = (row[i] + ((left + prev[i]) >> 1)) & 255
        elif f == 4:
            for i in range(stride):
                a = row[i - bpp] if i >= bpp else 0
                b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                row[i] = (row[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(row)
        prev = row
    return width, height, bpp, rows


def png_colours(png):
    """Distinct colours and the share of non-white pixels (sampled)."""
    width, height, bpp, rows = png
    colours, ink, total = set(), 0, 0
    for row in rows[::4]:
        for x in range(0, width * bpp, bpp * 2):
            px = bytes(row[x:x + 3])
            colours.add(px)
            total += 1
            ink += px != b"\xff\xff\xff"
    return len(colours), ink / max(total, 1)


NOTE_COLOURS = {"nt-ok": "#219653", "nt-fail": "#c81e1e", "nt-other": "#d98c00", "nt-blocked": "#6b7280"}


def rgb(hex_colour):
    return tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))


def check_pixels(stem, dom_path, png, fail):
    """Reads the screenshot at the marks' coordinates: each state span shows its
    state's colour, each notification dot its result's colour."""
    width, height, bpp, rows = png
    p = Dom()
    p.feed(dom_path.read_text())
    svg = next((e for e in p.elements if e.get("id") == "timeline"), None)
    if svg is None or "data-left" not in svg:
        fail(f"{stem}: the timeline's position is unknown (script did not run?)")
        return 0
    left, top, clip = float(svg["data-left"]), float(svg["data-top"]), float(svg["data-clip-right"])

    def matches(x, y, want, tol=28):
        if not (0 <= x < width and 0 <= y < height):
            return False
        px = rows[y][x * bpp:x * bpp + 3]
        return all(abs(a - b) <= tol for a, b in zip(px, want))

    checked = 0
    for e in p.elements:
        if "span" in classes(e) and e["_tag"] == "rect" and float(e["width"]) >= 6:
            x = left + float(e["x"]) + float(e["width"]) / 2
            y0 = top + float(e["y"])
            if x > clip - 4 or y0 + 18 > height:
                continue
            want = rgb(e["fill"])
            hits = sum(matches(int(x) + dx, int(y0) + dy, want) for dx in (-1, 0, 1) for dy in range(3, 16))
            if hits < 12:
                fail(f"{stem}: the {e['data-state']} span at {e['data-t0']} ms is not {e['fill']} on screen "
                     f"({hits}/39 pixels at x={x:.0f})")
            checked += 1
        if e["_tag"] == "circle" and "note" in e["_parent"].split():
            kind = next(c for c in e["_parent"].split() if c.startswith("nt-"))
            x, y = left + float(e["cx"]), top + float(e["cy"])
            if x > clip - 8 or y + 8 > height:
                continue
            want = rgb(NOTE_COLOURS[kind])
            ring = [(-5, 0), (5, 0), (0, -5), (0, 5), (-4, -3), (4, 3)]
            hits = sum(matches(int(round(x)) + dx, int(round(y)) + dy, want) for dx, dy in ring)
            if hits < 4:
                fail(f"{stem}: the notification dot at x={x:.0f} is not {NOTE_COLOURS[kind]} ({kind}) on screen")
            checked += 1
    return checked


def main():
    out, slot_stem = pathlib.Path(sys.argv[1]), sys.argv[2]
    problems = []
    doms = sorted((out / "dom").glob("*.html"))
    if not doms:
        problems.append("no DOM dumps to check")
    for dom in doms:
        stem = dom.name[:-len(".html")]
        trace = out / "traces" / f"{stem}.trace"
        if not trace.exists():
            problems.append(f"{stem}: no trace {trace}")
            continue
        jobs, notes, spans = check_page(stem, dom, trace, slot_stem, problems.append)
        print(f"dom      {stem}: {jobs} lanes, {notes} notification markers, {spans} error spans")
    check_links(out, problems.append)
    for path in sorted((out / "png").glob("*.png")):
        png = decode_png(path)
        n, ink = png_colours(png)
        seen = ""
        dom = out / "dom" / (path.name[:-len(".png")] + ".html")
        if dom.exists():
            seen = f", {check_pixels(path.name, dom, png, problems.append)} marks seen in their colours"
        print(f"png      {path.name}: {n} colours, {ink:.0%} non-white{seen}")
        if n < 16 or ink < 0.01:
            problems.append(f"{path.name}: looks blank ({n} colours, {ink:.1%} non-white)")
    for p in problems:
        print(f"FAIL {p}", file=sys.stderr)
    print(f"{len(doms)} pages checked, {len(problems)} problems")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
