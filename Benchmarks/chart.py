#!/usr/bin/env python3
"""The standing at a glance: each server's rate as a fraction of the C epoll server, per workload.

Draws a grouped horizontal bar chart as a self-contained SVG (no plotting library needed) from the
medians a run of Benchmarks/run.py measured.  run.py calls it for RESULTS.md; by hand:

    python3 Benchmarks/chart.py Benchmarks/.build-bench/results.json Benchmarks/RESULTS.svg

Only the rate workloads are drawn (higher is better); a bar's length is median(server) /
median(epoll-c) of the same run, with the ratio written at its end, and a line marks 1.0 (the C
epoll server itself).  A workload the server did not run or that failed has no bar.
"""

import html
import json
import statistics
import sys

REFERENCE = "epoll-c"
# Rate workloads, in the order of RESULTS.md, with short titles.
WORKLOADS = [
    ("a", "a TCP echo, 64 conns"),
    ("c", "c connect, line, close"),
    ("d", "d Unix stream echo"),
    ("e", "e UDP echo"),
    ("h", "h Unix datagram echo"),
]
# One colour per server, in the order run.py lists servers; the reference is grey.
PALETTE = ["#1f77b4", "#aec7e8", "#ff7f0e", "#ffbb78", "#2ca02c", "#98df8a", "#d62728", "#9467bd",
           "#8c564b", "#e377c2", "#17becf", "#bcbd22"]

BAR = 14          # height of one bar
GAP = 10          # space between workloads
LEFT = 190        # room for the workload titles
WIDTH = 900
SCALE_MAX = 1.6   # the longest bar drawn (ratios above are cut and marked)


def ratios(results, servers):
    """{workload: [(server, ratio or None)]} for the servers that have a reference to compare with."""
    table = {}
    for key, _ in WORKLOADS:
        reference = results.get(REFERENCE, {}).get(key)
        if not reference:
            continue
        base = statistics.median(reference)
        row = []
        for server in servers:
            values = results.get(server, {}).get(key)
            row.append((server, statistics.median(values) / base if values and base > 0 else None))
        table[key] = row
    return table


def svg(results, servers, title):
    """The chart as SVG text."""
    table = ratios(results, servers)
    colours = {server: ("#7f7f7f" if server == REFERENCE else PALETTE[i % len(PALETTE)])
               for i, server in enumerate(s for s in servers if s != REFERENCE)}
    colours[REFERENCE] = "#7f7f7f"
    plot = WIDTH - LEFT - 60

    def x(ratio):
        return LEFT + plot * min(ratio, SCALE_MAX) / SCALE_MAX

    body = []
    y = 50
    for key, name in WORKLOADS:
        if key not in table:
            continue
        rows = table[key]
        body.append(f'<text x="{LEFT - 8}" y="{y + BAR * len(rows) / 2 + 4:.0f}" text-anchor="end" '
                    f'font-weight="bold">{html.escape(name)}</text>')
        for server, ratio in rows:
            if ratio is not None:
                cut = ratio > SCALE_MAX
                body.append(f'<rect x="{LEFT}" y="{y}" width="{x(ratio) - LEFT:.1f}" height="{BAR - 2}" '
                            f'fill="{colours[server]}"><title>{html.escape(server)}: {ratio:.2f}x</title></rect>')
                body.append(f'<text x="{x(ratio) + 4:.1f}" y="{y + BAR - 4}" font-size="10">'
                            f'{ratio:.2f}x{" (cut)" if cut else ""}</text>')
            else:
                body.append(f'<text x="{LEFT + 4}" y="{y + BAR - 4}" font-size="10" fill="#7f7f7f">'
                            f'{html.escape(server)}: not run</text>')
            y += BAR
        y += GAP
    height = y + 30 + 16 * ((len(servers) + 2) // 3)
    grid = []
    for tick in [0.25 * i for i in range(int(SCALE_MAX / 0.25) + 1)]:
        colour = "#000" if tick == 1.0 else "#ddd"
        grid.append(f'<line x1="{x(tick):.1f}" y1="40" x2="{x(tick):.1f}" y2="{y}" stroke="{colour}"/>')
        grid.append(f'<text x="{x(tick):.1f}" y="34" text-anchor="middle" font-size="10">{tick:g}x</text>')
    legend = []
    for i, server in enumerate(servers):
        lx = LEFT + (i % 3) * 230
        ly = y + 16 + 16 * (i // 3)
        legend.append(f'<rect x="{lx}" y="{ly - 10}" width="12" height="12" fill="{colours[server]}"/>')
        legend.append(f'<text x="{lx + 16}" y="{ly}">{html.escape(server)}</text>')
    return "\n".join([
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
        f'<text x="{LEFT}" y="18" font-weight="bold">{html.escape(title)}</text>',
        *grid, *body, *legend, "</svg>", ""])


def write(results, servers, path, title="Rate as a fraction of the C epoll server (1.0x): medians, all servers in one run"):
    """Writes the chart to `path`; returns False (and writes nothing) when the run has no reference."""
    if REFERENCE not in servers or not ratios(results, servers):
        return False
    with open(path, "w") as f:
        f.write(svg(results, servers, title))
    return True


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        print("usage: chart.py RESULTS.json OUT.svg", file=sys.stderr)
        return 2
    with open(argv[1]) as f:
        run = json.load(f)
    results = run["results"]
    servers = [s for s in run.get("servers", results) if s in results]
    if not write(results, servers, argv[2]):
        print(f"chart.py: {argv[1]} has no {REFERENCE} rates to compare with", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
