#!/usr/bin/env python3
"""Turns the benchmarks' CSV files into the performance report (Markdown + SVG plots).

Usage: scripts/report-render.py --out DIR [--env FILE] CSV...

Every CSV has the header channel,vmm,peer_vmm,direction,size_bytes,metric,value,unit.
The metrics the report knows (others are listed as they come, in "Other measurements"):
  throughput_MBps        bulk transfer, 10^6 bytes/s; channel "host" = memcpy on the host
  rtt_p50_us, rtt_p99_us small-message round trip; channel "host" = eventfd ping-pong
  msgs_per_s             messages per second
  rtt_sample_us          one raw round trip (latency distribution plots)
  layer_<name>_ns        the per-layer breakdown (any unit is shown as given)
  bytes_per_exit         port I/O bulk: bytes moved per VM exit (also read under the
                         names in PORTIO_BULK_METRICS)
  channel "cost"         tests/bench/exit-cost.sh's counts per operation (direction) and per
                         VM, unit count_per_<operation's unit>: exits, mmio_exits,
                         insn_emulation, halt_exits, irq_injections, userspace_exits; and
                         wall_s, the boot's wall clock (see COST_OPERATIONS, COST_COUNTERS)
Host rows carry where they were measured in the vmm column (build-machine, emulated-host,
...). The environment FILE holds key=value lines (date, git_commit, cpu_model, cores,
kernel, kvm_kind, vm_environment, qemu_version, ...); vm_environment names the host rows
measured where the VMs ran, which the goals compare against.

Bad input has a defined outcome: a row with the wrong number of cells, a value that is
not a finite number or a size that is not a non-negative integer is left out, counted,
and the report says how many; a file without the header is an error (exit 1). Exit 0
when the report was written; plots are left out, with a note, when gnuplot is missing.
"""

import argparse
import csv
import itertools
import math
import os
import shutil
import subprocess
import sys
import tempfile
from collections import OrderedDict, defaultdict

HEADER = ["channel", "vmm", "peer_vmm", "direction", "size_bytes", "metric", "value", "unit"]
ONE_GB = 1 << 30
PAGE = 4096
SHM_GOAL_FRACTION = 0.80
CDF_POINTS = 200


class Row:
    __slots__ = HEADER

    def __init__(self, cells):
        for name, cell in zip(HEADER, cells):
            setattr(self, name, cell.strip())
        self.size_bytes = int(self.size_bytes)
        self.value = float(self.value)

    @property
    def pair(self):
        if self.channel == "host" or self.peer_vmm in ("", "none"):
            return self.vmm
        return f"{self.vmm}↔{self.peer_vmm}"


def read_rows(paths):
    rows, bad = [], 0
    for path in paths:
        with open(path, newline="") as f:
            reader = csv.reader(f)
            first = next(reader, None)
            if first is None:
                continue
            if [c.strip() for c in first] != HEADER:
                raise ValueError(f"{path}: first line is not the header {','.join(HEADER)}")
            for cells in reader:
                if not cells:
                    continue
                try:
                    if len(cells) != len(HEADER):
                        raise ValueError
                    row = Row(cells)
                    if row.size_bytes < 0 or not math.isfinite(row.value):
                        raise ValueError
                except ValueError:
                    bad += 1
                    print(f"report-render: {path}: row left out: {','.join(cells)[:120]}",
                          file=sys.stderr)
                    continue
                rows.append(row)
    return rows, bad


def read_env(path):
    env = OrderedDict()
    if path:
        with open(path) as f:
            for line in f:
                key, sep, value = line.rstrip("\n").partition("=")
                if sep and key.strip():
                    env[key.strip()] = value.strip()
    return env


def fmt(v):
    if v is None:
        return "-"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def ratio(a, b):
    if a is None or not b:
        return "-"
    r = a / b
    return f"{r:.3f}" if abs(r) < 0.1 else f"{r:.2f}"


def layer_name(row):
    name = row.metric[len("layer_"):]
    suffix = "_" + row.unit
    return name[: -len(suffix)] if name.endswith(suffix) else name


def size_label(n):
    if n == 0:
        return "-"
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n} B"


def md_table(header, lines):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in line) + " |" for line in lines]
    return "\n".join(out)


def summary_rows(rows):
    return [r for r in rows if r.metric != "rtt_sample_us"]


def host_env_label(rows, env):
    """The vmm label of the host rows measured where the VMs ran."""
    labels = sorted({r.vmm for r in rows if r.channel == "host"})
    wanted = env.get("vm_environment")
    if wanted in labels:
        return wanted
    return labels[0] if len(labels) == 1 else None


def lookup(rows, **want):
    for r in rows:
        if all(getattr(r, k) == v for k, v in want.items()):
            return r.value
    return None


def goal_shm(rows, host_label):
    """Shared memory, 1 GB: at least 80% of host memcpy bandwidth."""
    name = "Shared memory, 1 GB: at least 80% of host memcpy bandwidth measured in the same run"
    limit = lookup(rows, channel="host", vmm=host_label, size_bytes=ONE_GB,
                   metric="throughput_MBps") if host_label else None
    candidates = [r for r in rows if r.channel.startswith("shm") and r.vmm == "minivmm"
                  and r.peer_vmm == "minivmm" and r.size_bytes == ONE_GB
                  and r.metric == "throughput_MBps"]
    if limit is None or not candidates:
        missing = (["host memcpy 1 GiB row from where the VMs ran"] if limit is None else []) + \
                  (["minivmm shared-memory 1 GiB throughput row"] if not candidates else [])
        return f"- **not measured**: {name} (no {' and no '.join(missing)})"
    best = max(candidates, key=lambda r: r.value)
    fraction = best.value / limit
    verdict = "met" if fraction >= SHM_GOAL_FRACTION else "not met"
    return (f"- **{verdict}**: {name}: {best.channel} {best.direction} {fmt(best.value)} MB/s "
            f"= {fraction * 100:.0f}% of memcpy {fmt(limit)} MB/s ({host_label})")


def goal_doorbell(rows):
    """Doorbell round trip no slower than QEMU's in the same run, for every matching row."""
    name = "Doorbell round trip: no slower than QEMU's in the same run"
    parts, met = [], True
    for r in rows:
        if r.metric != "rtt_p50_us" or r.channel == "host" or (r.vmm, r.peer_vmm) != ("minivmm", "minivmm"):
            continue
        q = lookup(rows, channel=r.channel, vmm="qemu", peer_vmm="qemu", direction=r.direction,
                   size_bytes=r.size_bytes, metric="rtt_p50_us")
        if q is None:
            continue
        met &= r.value <= q
        parts.append(f"{r.channel} p50 {fmt(r.value)} us against QEMU {fmt(q)} us "
                     f"(ratio {ratio(r.value, q)})")
    if not parts:
        return f"- **not measured**: {name} (no minivmm and QEMU round-trip rows that match)"
    return f"- **{'met' if met else 'not met'}**: {name}: " + "; ".join(parts)


# Bytes a string I/O exit carries, under the names the benchmarks give it: the generic
# one, tests/bench/portio.sh's (between two VMs) and the tiny guests' (items of one byte).
PORTIO_BULK_METRICS = ("bytes_per_exit", "bytes_per_data_exit_string", "outsb_items_per_exit",
                       "insb_items_per_exit")


def goal_portio(rows):
    name = "Port I/O bulk: a full page per exit for string I/O"
    per_exit = [r for r in rows if r.channel.startswith("portio") and
                r.metric in PORTIO_BULK_METRICS and r.vmm == "minivmm"]
    if not per_exit:
        return f"- **not measured**: {name} (no portio bytes-per-exit row)"
    worst = min(per_exit, key=lambda r: r.value)
    verdict = "met" if worst.value >= PAGE else "not met"
    return (f"- **{verdict}**: {name}: at least {fmt(worst.value)} bytes per exit "
            f"({worst.channel} {worst.direction} {size_label(worst.size_bytes)})")


def goal_doorbell_exits(rows):
    name = "Doorbell round trip: at most QEMU's exits per VM"
    m = lookup(rows, channel="cost", vmm="minivmm", direction="doorbell", metric="exits")
    q = lookup(rows, channel="cost", vmm="qemu", direction="doorbell", metric="exits")
    if m is None or q is None:
        return f"- **not measured**: {name} (no minivmm and QEMU doorbell exit counts)"
    return (f"- **{'met' if m <= q else 'not met'}**: {name}: {fmt(m)} exits against QEMU "
            f"{fmt(q)} (ratio {ratio(m, q)})")


COST_OPERATIONS = ("doorbell", "msg64-poll", "msg64-irq", "mib-poll", "mib-irq", "portio-byte",
                   "portio-page", "boot")
# (column, minivmm's metric, QEMU's metric). QEMU reports no exits to its userspace of its
# own: KVM's count of the MMIO exits it handed to QEMU stands in.
COST_COUNTERS = (("exits", "exits", "exits"),
                 ("userspace", "userspace_exits", "mmio_exits"),
                 ("emulated", "insn_emulation", "insn_emulation"),
                 ("halts", "halt_exits", "halt_exits"),
                 ("injections", "irq_injections", "irq_injections"))
COUNT_UNIT_PREFIX = "count_per_"


def in_cost_section(row):
    # minivmm's mmio_exits are in there too: its userspace_exits include them.
    known = {metric for _, *metrics in COST_COUNTERS for metric in metrics} | {"wall_s"}
    return row.channel == "cost" and row.direction in COST_OPERATIONS and row.metric in known


def cost_table(rows, operations, counters):
    """minivmm, QEMU and minivmm/QEMU for each counter, one line per operation."""
    lines = []
    for op in operations:
        unit = next(r.unit for r in rows
                    if r.direction == op and r.unit.startswith(COUNT_UNIT_PREFIX))
        line = [f"{op}, per {unit[len(COUNT_UNIT_PREFIX):].replace('_', ' ')}"]
        for _, minivmm_metric, qemu_metric in counters:
            m = lookup(rows, vmm="minivmm", direction=op, metric=minivmm_metric)
            q = lookup(rows, vmm="qemu", direction=op, metric=qemu_metric)
            # Two different counts (all of minivmm's exits to userspace, QEMU's MMIO ones
            # only) are shown side by side but not divided.
            comparable = minivmm_metric == qemu_metric
            line += [fmt(m), fmt(q), ratio(m, q) if comparable else "-"]
        lines.append(line)
    header = ["operation, per VM"]
    for column, _, _ in counters:
        header += [f"{column} minivmm", f"{column} QEMU", "minivmm/QEMU"]
    return md_table(header, lines)


def cost_section(rows):
    md = ["## What each operation costs in VM exits", ""]
    md += ["Counted, not timed: how many exits an operation takes does not depend on how fast "
           "the emulator runs, and every exit is a cost that real hardware pays (a world "
           "switch, more when it reaches the VMM's userspace).", ""]
    cost = [r for r in rows if r.channel == "cost"]
    counted = [op for op in COST_OPERATIONS
               if any(r.direction == op and r.unit.startswith(COUNT_UNIT_PREFIX) for r in cost)]
    if not counted:
        return md + ["Not measured: no exit-cost rows (tests/bench/exit-cost.sh writes them).", ""]
    md += ["Per operation and per VM, the mean of a pair's two VMs, from the KVM host's debugfs "
           "counters for both VMMs. msg64: one 64-byte message echoed back plus one streamed; "
           "-poll and -irq: the receiver polls or waits for an interrupt; portio: minivmm's "
           "port I/O channel, which QEMU does not have; boot: from VM creation to the guest's "
           "/init. Userspace: for minivmm every exit that reached its userspace, port and MMIO "
           "(its own --stats); for QEMU, KVM's mmio_exits, the MMIO exits handed to QEMU's "
           "userspace (port I/O exits are not in it). Emulated: instructions KVM emulated.", ""]
    # Fifteen value columns do not read as one table: the exits, then what they were.
    md += [cost_table(cost, counted, COST_COUNTERS[:2]), "",
           cost_table(cost, counted, COST_COUNTERS[2:]), ""]
    missing = [op for op in COST_OPERATIONS if op not in counted]
    if missing:
        md += [f"Not measured: {', '.join(missing)} (no exit-cost rows).", ""]
    m = lookup(cost, vmm="minivmm", direction="boot", metric="wall_s")
    q = lookup(cost, vmm="qemu", direction="boot", metric="wall_s")
    if m is None and q is None:
        md += ["Boot wall clock: not measured (no wall_s rows).", ""]
    else:
        md += [f"Boot wall clock, VM creation to /init (timed, unlike the counts): minivmm "
               f"{fmt(m)} s, QEMU {fmt(q)} s, minivmm/QEMU {ratio(m, q)}.", ""]
    return md


def comparison_table(rows, host_label):
    """minivmm against QEMU and the physical limit, for every minivmm↔minivmm row."""
    lines = []
    host_metric = {"throughput_MBps": "throughput_MBps", "rtt_p50_us": "rtt_p50_us",
                   "rtt_p99_us": "rtt_p99_us", "msgs_per_s": "msgs_per_s"}
    for r in rows:
        if r.channel == "host" or (r.vmm, r.peer_vmm) != ("minivmm", "minivmm"):
            continue
        if r.metric not in host_metric:
            continue
        q = lookup(rows, channel=r.channel, vmm="qemu", peer_vmm="qemu", direction=r.direction,
                   size_bytes=r.size_bytes, metric=r.metric)
        limit = None
        if host_label:
            if r.metric == "throughput_MBps":
                limit = lookup(rows, channel="host", vmm=host_label, size_bytes=r.size_bytes,
                               metric=r.metric)
            else:
                limit = lookup(rows, channel="host", vmm=host_label, metric=r.metric)
        lines.append([r.channel, r.direction, size_label(r.size_bytes), r.metric,
                      f"{fmt(r.value)} {r.unit}", f"{fmt(q)}", ratio(r.value, q), fmt(limit),
                      ratio(r.value, limit)])
    return lines


def throughput_series(rows):
    series = defaultdict(list)
    for r in rows:
        if r.metric == "throughput_MBps":
            series[(r.channel, r.pair, r.direction)].append((r.size_bytes, r.value))
    return OrderedDict(sorted((k, sorted(v)) for k, v in series.items()))


def latency_samples(rows):
    samples = defaultdict(list)
    for r in rows:
        if r.metric == "rtt_sample_us":
            samples[(r.channel, r.pair, r.direction, r.size_bytes)].append(r.value)
    return OrderedDict(sorted((k, sorted(v)) for k, v in samples.items()))


def gp_quote(text):
    return "'" + text.replace("'", "''") + "'"


def run_gnuplot(script, workdir):
    result = subprocess.run(["gnuplot"], input=script, text=True, cwd=workdir,
                            capture_output=True)
    if result.returncode != 0:
        print(f"report-render: gnuplot failed: {result.stderr.strip()}", file=sys.stderr)
        return False
    return True


THROUGHPUT_TITLE = "Throughput by transfer size, one panel per channel: minivmm, QEMU, host memcpy"
# The same colour for a VMM pair in every panel, so minivmm and QEMU are found at a glance;
# a pair's directions differ by point type.
PAIR_COLOURS = {"minivmm↔minivmm": "#1f77b4", "qemu↔qemu": "#d62728"}
MIXED_PAIR_COLOUR = "#2ca02c"
POINT_TYPES = (7, 5, 9, 11, 13, 4, 6, 8)
HOST_LIMIT_STYLE = "lc rgb '#555555' dt 2 lw 2 pt 1"
PANEL_COLUMNS = 2
KEY_MARGIN_CHARS = 36


def plot_throughput(series, host_label, out_dir, tmp):
    """Small multiples: one panel per channel, its VMM pairs against host memcpy."""
    def drawable(points):
        return [(s, v) for s, v in points if s > 0 and v > 0]

    # Without a label to choose by, every place's memcpy is drawn, each named.
    limits = [(where, drawable(points)) for (channel, where, _), points in series.items()
              if channel == "host" and host_label in (None, where) and drawable(points)]
    panels = OrderedDict()
    for (channel, pair, direction), points in series.items():
        if channel != "host" and drawable(points):
            panels.setdefault(channel, []).append((pair, direction, drawable(points)))
    if not panels:
        return None
    every_point = [p for panel in panels.values() for _, _, pts in panel for p in pts] + \
                  [p for _, pts in limits for p in pts]
    sizes = sorted({s for s, _ in every_point})
    values = [v for _, v in every_point]
    columns = min(len(panels), PANEL_COLUMNS)
    rows = math.ceil(len(panels) / columns)
    data_files = itertools.count()

    def clause(points, style, title):
        data = os.path.join(tmp, f"tp{next(data_files)}.dat")
        with open(data, "w") as f:
            f.writelines(f"{s} {v}\n" for s, v in points)
        return f"{gp_quote(data)} using 1:2 with linespoints {style} title {gp_quote(title)}"

    script = [f"set terminal svg size {760 * columns},{400 * rows} noenhanced font 'sans,11' "
              "background rgb 'white'",
              f"set output {gp_quote(os.path.join(out_dir, 'throughput.svg'))}",
              f"set multiplot layout {rows},{columns} title {gp_quote(THROUGHPUT_TITLE)}",
              "set logscale xy",
              # One scale for every panel, or the panels would not compare.
              f"set xrange [{sizes[0] / 2}:{sizes[-1] * 2}]",
              f"set yrange [{min(values) / 2}:{max(values) * 2}]",
              "set xtics (" + ", ".join(f"{gp_quote(size_label(s))} {s}" for s in sizes) + ")",
              "set xlabel 'transfer size'",
              "set ylabel 'MB/s (10^6 bytes/s)'",
              "set grid",
              # Beside the plot, where it hides no data, in a margin of fixed width: every
              # panel's plot area has the same size.
              "set key outside right top font ',9'",
              f"set rmargin {KEY_MARGIN_CHARS}"]
    for channel, panel in panels.items():
        lines_of_pair = defaultdict(int)
        plots = []
        for pair, direction, points in panel:
            point_type = POINT_TYPES[lines_of_pair[pair] % len(POINT_TYPES)]
            lines_of_pair[pair] += 1
            colour = PAIR_COLOURS.get(pair, MIXED_PAIR_COLOUR)
            plots.append(clause(points, f"lc rgb '{colour}' lw 2 pt {point_type} ps 0.8",
                                f"{pair} {direction}"))
        plots += [clause(points, HOST_LIMIT_STYLE, f"host memcpy ({where})")
                  for where, points in limits]
        script += [f"set title {gp_quote(channel)}", "plot " + ", ".join(plots)]
    script.append("unset multiplot")
    return "throughput.svg" if run_gnuplot("\n".join(script) + "\n", tmp) else None


def plot_latency(samples, out_dir, tmp):
    plots = []
    for i, (key, values) in enumerate(samples.items()):
        data = os.path.join(tmp, f"lat{i}.dat")
        n = len(values)
        step = max(1, n // CDF_POINTS)
        with open(data, "w") as f:
            for j in list(range(0, n, step)) + [n - 1]:
                f.write(f"{values[j]} {(j + 1) / n}\n")
        channel, pair, direction, _ = key
        plots.append(f"{gp_quote(data)} using 1:2 with lines lw 2 title "
                     f"{gp_quote(f'{channel} {pair} {direction} (n={n})')}")
    if not plots:
        return None
    script = f"""set terminal svg size 900,500 noenhanced font 'sans,11' background rgb 'white'
set output {gp_quote(os.path.join(out_dir, 'latency-cdf.svg'))}
set title 'Round-trip latency distribution (CDF of every sample)'
set logscale x
set xlabel 'round trip (us)'
set ylabel 'fraction of round trips at or below'
set yrange [0:1]
set grid
set key outside right top
plot {', '.join(plots)}
"""
    return "latency-cdf.svg" if run_gnuplot(script, tmp) else None


def render(rows, bad, env, csv_names, out_dir):
    summary = summary_rows(rows)
    host_label = host_env_label(summary, env)
    md = ["# minivmm performance report", ""]
    md += ["Generated by `scripts/report.sh` (rendered by `scripts/report-render.py`) from "
           "the CSV files listed at the end. MB/s is 10^6 bytes per second.", ""]
    if env.get("note"):
        md += [f"> {env['note']}", ""]
    if env.get("vm_environment") == "emulated-host":
        md += ["> The VMs ran in the emulated KVM host (nested KVM under QEMU's TCG emulator): "
               "absolute times are an emulator's and compare only with each other, within "
               "this run; the host limits measured there are the ones the goals use.", ""]

    md += ["## Goals", ""]
    md += [goal_shm(summary, host_label), goal_doorbell(summary),
           goal_doorbell_exits(summary), goal_portio(summary), ""]

    md += cost_section(summary)

    md += ["## Machine and environment", ""]
    md += [md_table(["", ""], [[k, v.replace("|", "/")] for k, v in env.items() if k != "note"])
           if env else "Not recorded (no environment file given).", ""]

    md += ["## minivmm against QEMU and the physical limit", ""]
    lines = comparison_table(summary, host_label)
    if lines:
        md += [f"Both VMMs ran the same guest programs in the same KVM environment; the "
               f"host limit is the same-size memcpy (throughput) or the eventfd round trip "
               f"between two processes (latency), measured on `{host_label or 'not measured'}`.", ""]
        md += [md_table(["channel", "direction", "size", "metric", "minivmm", "QEMU",
                         "minivmm/QEMU", "host limit", "minivmm/limit"], lines), ""]
    else:
        md += ["Not measured: no minivmm↔minivmm rows.", ""]

    md += ["## Throughput by size and channel", ""]
    series = throughput_series(summary)
    if series:
        sizes = sorted({s for pts in series.values() for s, _ in pts})
        table = []
        for (channel, pair, direction), points in series.items():
            by_size = dict(points)
            table.append([channel, pair, direction] + [fmt(by_size.get(s)) for s in sizes])
        md += [md_table(["channel", "VMMs / where", "direction"] +
                        [f"{size_label(s)} MB/s" for s in sizes], table), ""]
    else:
        md += ["Not measured: no throughput rows.", ""]

    md += ["## Round-trip latency", ""]
    lat = [r for r in summary if r.metric in ("rtt_p50_us", "rtt_p99_us", "msgs_per_s")]
    if lat:
        keys = OrderedDict()
        for r in lat:
            keys.setdefault((r.channel, r.pair, r.direction, r.size_bytes), {})[r.metric] = r.value
        md += [md_table(["channel", "VMMs / where", "direction", "message", "p50 us", "p99 us",
                         "messages/s"],
                        [[c, p, d, size_label(s), fmt(v.get("rtt_p50_us")),
                          fmt(v.get("rtt_p99_us")), fmt(v.get("msgs_per_s"))]
                         for (c, p, d, s), v in keys.items()]), ""]
    else:
        md += ["Not measured: no round-trip rows.", ""]

    md += ["## Per-layer breakdown", ""]
    layers = [r for r in summary if r.metric.startswith("layer_")]
    if layers:
        md += ["Measured with timestamps by the benchmark that wrote the rows.", ""]
        md += [md_table(["channel", "VMMs", "direction", "size", "layer", "time"],
                        [[r.channel, r.pair, r.direction, size_label(r.size_bytes),
                          layer_name(r), f"{fmt(r.value)} {r.unit}"] for r in layers]), ""]
    else:
        md += ["Not measured: no `layer_*` rows in this run.", ""]

    known = ("throughput_MBps", "rtt_p50_us", "rtt_p99_us", "msgs_per_s", "bytes_per_exit")
    other = [r for r in summary if r.metric not in known and not r.metric.startswith("layer_")
             and not in_cost_section(r)]
    portio = [r for r in summary if r.metric == "bytes_per_exit"]
    if other or portio:
        md += ["## Other measurements", ""]
        md += [md_table(["channel", "VMMs / where", "direction", "size", "metric", "value"],
                        [[r.channel, r.pair, r.direction, size_label(r.size_bytes), r.metric,
                          f"{fmt(r.value)} {r.unit}"] for r in portio + other]), ""]

    md += ["## Plots", ""]
    if shutil.which("gnuplot"):
        with tempfile.TemporaryDirectory() as tmp:
            made = [plot_throughput(series, host_label, out_dir, tmp),
                    plot_latency(latency_samples(rows), out_dir, tmp)]
        titles = {"throughput.svg": THROUGHPUT_TITLE,
                  "latency-cdf.svg": "Round-trip latency distribution"}
        made = [m for m in made if m]
        md += [f"![{titles[m]}]({m})" for m in made] or ["No data to plot."]
    else:
        md += ["Plots left out: gnuplot is not installed (`apt-get install gnuplot-nox`)."]
    md += ["", "## Data", ""]
    md += [f"- `{name}`" for name in csv_names]
    if bad:
        md += [f"- {bad} malformed row(s) left out (listed on stderr when rendered)"]
    md.append("")
    with open(os.path.join(out_dir, "report.md"), "w") as f:
        f.write("\n".join(md))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="folder for report.md and the plots")
    parser.add_argument("--env", help="key=value file describing the machine and run")
    parser.add_argument("csv", nargs="+")
    args = parser.parse_args()
    try:
        rows, bad = read_rows(args.csv)
        env = read_env(args.env)
    except (OSError, ValueError, UnicodeDecodeError, csv.Error) as e:
        print(f"report-render: {e}", file=sys.stderr)
        return 1
    os.makedirs(args.out, exist_ok=True)
    # gnuplot runs in a temporary folder: the plots' paths must not be relative.
    render(rows, bad, env, [os.path.basename(p) for p in args.csv], os.path.abspath(args.out))
    print(f"report-render: wrote {os.path.join(args.out, 'report.md')} from {len(rows)} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
