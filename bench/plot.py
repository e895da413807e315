#!/usr/bin/env python3
"""Restart-under-load plot: one panel per scenario, successful requests per second (line),
failed requests per second (red bars, own scale on the right) and the restart moments (dashed
lines). Standard library only: writes SVG directly, so CI needs no pip.

    bench/plot.py RESULTS_DIR OUT.svg SCENARIO...

reads RESULTS_DIR/restart-SCENARIO.csv (baton-mixed --series) and .events (unix ms per restart).

    bench/plot.py --soak RESULTS_DIR OUT.svg

the soak plot (bench/soak.sh): the serving baton's RSS and that of all live baton processes,
the serving process's open descriptors and the number of live processes, and the well-formed
requests per second with failures, restarts marked; reads soak.csv, soak.events and
soak-mixed.csv.

    bench/plot.py --sweep SIZE_SWEEP.csv OUT.svg

throughput against response size (bench/size_sweep.sh): median requests/s and MiB/s per
target, one line each, response size on a log-scale x axis.
"""
import math
import sys
from xml.sax.saxutils import escape

W, PANEL_H, TOP, LEFT, RIGHT, GAP = 860, 170, 30, 70, 60, 40


def load(results, sc):
    return load_csv(f"{results}/restart-{sc}.csv", f"{results}/restart-{sc}.events")


def load_csv(csv, events_path):
    t0, rows = 0, []
    with open(csv) as f:
        for line in f:
            line = line.strip()
            if line.startswith("# t0_unix_ms="):
                t0 = int(line.split("=", 1)[1])
            elif line and line[0].isdigit():
                v = line.split(",")
                rows.append((int(v[0]), int(v[1]), int(v[2])))
    events = []
    try:
        with open(events_path) as f:
            events = [(int(x) - t0) / 1000 for x in f.read().split()]
    except FileNotFoundError:
        pass
    return rows, events


def nice(v):
    """A round axis maximum at or above v."""
    if v <= 0:
        return 1
    p = 10 ** (len(str(int(v))) - 1)
    for m in (1, 2, 2.5, 5, 10):
        if v <= m * p:
            return int(m * p) if m * p >= 1 else 1
    return int(10 * p)


def panel(out, y0, sc, rows, events, xmax):
    pw = W - LEFT - RIGHT
    ok_max = nice(max([r[1] for r in rows] + [1]) * 1.1)
    fail_max = nice(max([r[2] for r in rows] + [1]))
    total_fail = sum(r[2] for r in rows)

    def x(t):
        return LEFT + pw * t / xmax

    def y_ok(v):
        return y0 + PANEL_H - PANEL_H * v / ok_max

    def y_fail(v):
        return y0 + PANEL_H - PANEL_H * v / fail_max

    out.append(f'<rect x="{LEFT}" y="{y0}" width="{pw}" height="{PANEL_H}" fill="#fafafa" stroke="#999"/>')
    title = f"{sc}: {len(events)} restarts, {total_fail} failed requests"
    out.append(f'<text x="{LEFT}" y="{y0 - 8}" font-size="13" font-weight="bold">{escape(title)}</text>')
    for i in range(5):
        v = ok_max * i / 4
        yy = y_ok(v)
        out.append(f'<line x1="{LEFT}" x2="{LEFT + pw}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#e4e4e4"/>')
        out.append(f'<text x="{LEFT - 6}" y="{yy + 4:.1f}" font-size="10" text-anchor="end">{int(v)}</text>')
        fv = fail_max * i / 4
        out.append(f'<text x="{LEFT + pw + 6}" y="{y_fail(fv) + 4:.1f}" font-size="10" fill="#c00">{fv:g}</text>')
    bw = max(pw / xmax * 0.8, 1)
    for s, _, failed in rows:
        if failed:
            out.append(f'<rect x="{x(s) + 0.1 * pw / xmax:.1f}" y="{y_fail(failed):.1f}" width="{bw:.1f}" '
                       f'height="{y0 + PANEL_H - y_fail(failed):.1f}" fill="#d62728" opacity="0.8"/>')
    pts = " ".join(f"{x(s + 0.5):.1f},{y_ok(ok):.1f}" for s, ok, _ in rows)
    out.append(f'<polyline points="{pts}" fill="none" stroke="#1f77b4" stroke-width="1.8"/>')
    for e in events:
        out.append(f'<line x1="{x(e):.1f}" x2="{x(e):.1f}" y1="{y0}" y2="{y0 + PANEL_H}" '
                   f'stroke="#444" stroke-dasharray="4,3"/>')
    out.append(f'<text transform="translate({LEFT - 48},{y0 + PANEL_H / 2}) rotate(-90)" font-size="10" '
               f'text-anchor="middle">ok req/s</text>')
    out.append(f'<text transform="translate({LEFT + pw + 44},{y0 + PANEL_H / 2}) rotate(90)" font-size="10" '
               f'text-anchor="middle" fill="#c00">failed /s</text>')


def series_panel(out, y0, title, xmax, events, left, right=None):
    """A panel with one or two lines on the left axis (left = (label, [(color, [(t, v)])]))
    and optionally lines on their own right axis."""
    pw = W - LEFT - RIGHT

    def x(t):
        return LEFT + pw * t / xmax

    def axis_max(lines):
        return nice(max([v for _, pts in lines for _, v in pts] + [1]) * 1.1)

    lmax = axis_max(left[1])
    out.append(f'<rect x="{LEFT}" y="{y0}" width="{pw}" height="{PANEL_H}" fill="#fafafa" stroke="#999"/>')
    out.append(f'<text x="{LEFT}" y="{y0 - 8}" font-size="13" font-weight="bold">{escape(title)}</text>')
    for i in range(5):
        v = lmax * i / 4
        yy = y0 + PANEL_H - PANEL_H * v / lmax
        out.append(f'<line x1="{LEFT}" x2="{LEFT + pw}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#e4e4e4"/>')
        out.append(f'<text x="{LEFT - 6}" y="{yy + 4:.1f}" font-size="10" text-anchor="end">{v:g}</text>')
    for e in events:
        out.append(f'<line x1="{x(e):.1f}" x2="{x(e):.1f}" y1="{y0}" y2="{y0 + PANEL_H}" '
                   f'stroke="#bbb" stroke-dasharray="2,3"/>')

    def lines(spec, vmax):
        for color, pts in spec:
            if pts:
                p = " ".join(f"{x(t):.1f},{y0 + PANEL_H - PANEL_H * v / vmax:.1f}" for t, v in pts)
                out.append(f'<polyline points="{p}" fill="none" stroke="{color}" stroke-width="1.4"/>')

    lines(left[1], lmax)
    out.append(f'<text transform="translate({LEFT - 48},{y0 + PANEL_H / 2}) rotate(-90)" font-size="10" '
               f'text-anchor="middle">{escape(left[0])}</text>')
    if right:
        rmax = axis_max(right[1])
        color = right[1][0][0]
        for i in range(5):
            v = rmax * i / 4
            yy = y0 + PANEL_H - PANEL_H * v / rmax
            out.append(f'<text x="{LEFT + pw + 6}" y="{yy + 4:.1f}" font-size="10" fill="{color}">{v:g}</text>')
        lines(right[1], rmax)
        out.append(f'<text transform="translate({LEFT + pw + 44},{y0 + PANEL_H / 2}) rotate(90)" font-size="10" '
                   f'text-anchor="middle" fill="{color}">{escape(right[0])}</text>')


def soak(results, out_path):
    t0, rows = 0, []
    with open(f"{results}/soak.csv") as f:
        for line in f:
            line = line.strip()
            if line.startswith("# t0_unix_ms="):
                t0 = int(line.split("=", 1)[1])
            elif line and line[0].isdigit():
                rows.append([int(v) for v in line.split(",")])
    with open(f"{results}/soak.events") as f:
        events = [(int(v) - t0) / 1000 for v in f.read().split()]
    mixed = []
    try:
        mixed, _ = load_csv(f"{results}/soak-mixed.csv", f"{results}/soak.events")
    except FileNotFoundError:
        pass
    xmax = max([r[0] + 1 for r in rows] + [1])
    mib = 1024.0
    panels = 3 if mixed else 2
    h = TOP + panels * (PANEL_H + GAP) + 30
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" font-family="sans-serif">',
           f'<rect width="{W}" height="{h}" fill="white"/>']
    serving = [(r[0], r[2] / mib) for r in rows]
    every = [(r[0], r[5] / mib) for r in rows]
    series_panel(out, TOP, f"RSS (MiB): serving process (blue), all live baton processes (orange); "
                 f"{len(events)} restarts (dotted)", xmax, events,
                 ("MiB", [("#ff7f0e", every), ("#1f77b4", serving)]))
    series_panel(out, TOP + PANEL_H + GAP, "open descriptors of the serving process (blue); live baton "
                 "processes (green, right)", xmax, events,
                 ("descriptors", [("#1f77b4", [(r[0], r[3]) for r in rows])]),
                 ("processes", [("#2ca02c", [(r[0], r[4]) for r in rows])]))
    if mixed:
        # baton-mixed's own clock starts a moment after soak.csv's: its seconds are close enough.
        panel(out, TOP + 2 * (PANEL_H + GAP), "well-formed requests (baton-mixed)", mixed, events, xmax)
    pw = W - LEFT - RIGHT
    yb = TOP + panels * (PANEL_H + GAP) - GAP + 16
    for i in range(0, xmax + 1, max(1, xmax // 10)):
        out.append(f'<text x="{LEFT + pw * i / xmax:.1f}" y="{yb}" font-size="10" text-anchor="middle">{i}</text>')
    out.append(f'<text x="{LEFT + pw / 2}" y="{yb + 16}" font-size="11" text-anchor="middle">seconds '
               f'(dotted: hot restart)</text>')
    out.append("</svg>")
    with open(out_path, "w") as f:
        f.write("\n".join(out) + "\n")
    print(f"wrote {out_path}", file=sys.stderr)


SWEEP_COLORS = {"baton": "#1f77b4", "nginx": "#2ca02c", "haproxy": "#ff7f0e", "direct": "#7f7f7f"}


def size_label(b):
    return f"{b // 1048576} MiB" if b >= 1048576 else f"{b // 1024} KiB"


def sweep(csv, out_path):
    """Two panels (req/s, MiB/s) against log2(size); reads size_bytes,target,req/s,MiB/s,..."""
    data = {}
    with open(csv) as f:
        for line in f:
            v = line.strip().split(",")
            if len(v) >= 4 and v[0].isdigit():
                data.setdefault(v[1], []).append((int(v[0]), float(v[2]), float(v[3])))
    sizes = sorted({s for pts in data.values() for s, _, _ in pts})
    lo, hi = math.log2(sizes[0]), math.log2(sizes[-1])
    span = max(hi - lo, 1)
    pw = W - LEFT - RIGHT

    def x(size):
        return LEFT + pw * (math.log2(size) - lo) / span

    h = TOP + 2 * (PANEL_H + GAP) + 40
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" font-family="sans-serif">',
           f'<rect width="{W}" height="{h}" fill="white"/>']
    for i, (title, col) in enumerate((("requests per second", 1), ("MiB per second (response bodies)", 2))):
        y0 = TOP + i * (PANEL_H + GAP)
        vmax = nice(max([p[col] for pts in data.values() for p in pts] + [1]) * 1.05)
        out.append(f'<rect x="{LEFT}" y="{y0}" width="{pw}" height="{PANEL_H}" fill="#fafafa" stroke="#999"/>')
        out.append(f'<text x="{LEFT}" y="{y0 - 8}" font-size="13" font-weight="bold">{escape(title)}</text>')
        for k in range(5):
            v = vmax * k / 4
            yy = y0 + PANEL_H - PANEL_H * v / vmax
            out.append(f'<line x1="{LEFT}" x2="{LEFT + pw}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#e4e4e4"/>')
            out.append(f'<text x="{LEFT - 6}" y="{yy + 4:.1f}" font-size="10" text-anchor="end">{v:g}</text>')
        for size in sizes:
            out.append(f'<line x1="{x(size):.1f}" x2="{x(size):.1f}" y1="{y0}" y2="{y0 + PANEL_H}" stroke="#e4e4e4"/>')
        for j, (target, pts) in enumerate(data.items()):
            color = SWEEP_COLORS.get(target, "#9467bd")
            pts = sorted(pts)
            line = " ".join(f"{x(s):.1f},{y0 + PANEL_H - PANEL_H * p[col - 1] / vmax:.1f}" for s, *p in pts)
            out.append(f'<polyline points="{line}" fill="none" stroke="{color}" stroke-width="1.8"/>')
            for s, *p in pts:
                out.append(f'<circle cx="{x(s):.1f}" cy="{y0 + PANEL_H - PANEL_H * p[col - 1] / vmax:.1f}" '
                           f'r="2.5" fill="{color}"/>')
            if i == 0:
                out.append(f'<text x="{LEFT + pw - 8}" y="{y0 + 16 + 14 * j}" font-size="11" text-anchor="end" '
                           f'fill="{color}">{escape(target)}</text>')
    yb = TOP + 2 * (PANEL_H + GAP) - GAP + 16
    for size in sizes:
        out.append(f'<text x="{x(size):.1f}" y="{yb}" font-size="10" text-anchor="middle">{size_label(size)}</text>')
    out.append(f'<text x="{LEFT + pw / 2}" y="{yb + 16}" font-size="11" text-anchor="middle">response size '
               f'(log scale); wrk, 64 keep-alive connections, median of the rounds</text>')
    out.append("</svg>")
    with open(out_path, "w") as f:
        f.write("\n".join(out) + "\n")
    print(f"wrote {out_path}", file=sys.stderr)


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--soak":
        soak(sys.argv[2], sys.argv[3])
        return
    if len(sys.argv) == 4 and sys.argv[1] == "--sweep":
        sweep(sys.argv[2], sys.argv[3])
        return
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    results, out_path, scenarios = sys.argv[1], sys.argv[2], sys.argv[3:]
    data = {sc: load(results, sc) for sc in scenarios}
    xmax = max([r[0] + 1 for rows, _ in data.values() for r in rows] + [1])
    h = TOP + len(scenarios) * (PANEL_H + GAP) + 30
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" font-family="sans-serif">',
           f'<rect width="{W}" height="{h}" fill="white"/>']
    for i, sc in enumerate(scenarios):
        rows, events = data[sc]
        panel(out, TOP + i * (PANEL_H + GAP), sc, rows, events, xmax)
    pw = W - LEFT - RIGHT
    yb = TOP + len(scenarios) * (PANEL_H + GAP) - GAP + 16
    for i in range(0, xmax + 1, max(1, xmax // 10)):
        out.append(f'<text x="{LEFT + pw * i / xmax:.1f}" y="{yb}" font-size="10" text-anchor="middle">{i}</text>')
    out.append(f'<text x="{LEFT + pw / 2}" y="{yb + 16}" font-size="11" text-anchor="middle">seconds '
               f'(blue: successful requests per second; red bars: failed; dashed: restart)</text>')
    out.append("</svg>")
    with open(out_path, "w") as f:
        f.write("\n".join(out) + "\n")
    print(f"wrote {out_path}", file=sys.stderr)


if __name__ == "__main__":
    main()
