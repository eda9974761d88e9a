#!/usr/bin/env python3
"""Plots mcgq_bench JSON files (-J) as small PNGs.

  plot.py --prefix bench/results/2026-11-28-cpu-vm SWEEP.json [KSWEEP.json ...]

Writes, next to the prefix:
  PREFIX-throughput.png  encode, decode and copy GB/s vs input size (one line per K)
  PREFIX-pct-copy.png    encode time as % of a same-size copy vs input size
  PREFIX-bits-vs-k.png   wire and paper bits/element vs K (largest size of each
                         file with at least three K values, one line per file)
The size plots use the first file with several sizes.
"""
import argparse
import json
import os
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# Small files: results are committed.
FIGSIZE = (6.0, 3.6)
DPI = 90


def load(paths):
    runs = []
    for path in paths:
        with open(path) as f:
            runs.append(json.load(f))
    return runs


def provenance(run):
    """Machine, date, commit and load of a run: a figure without them cannot
    be told from a stale one."""
    device = run["device"] if not run["device"].startswith("none") else run["cpu"]
    load = (run.get("load_average") or "?").split()[0]
    return (f"{device[:40]}, {run['date'][:10]}, commit {run.get('commit', '?')[:12]}, "
            f"load {load}")


def title(run, what):
    return f"{what}\n{run['algo']}, {run['dist']}: {provenance(run)}"


def rows_by_k(run):
    by_k = defaultdict(list)
    for r in run["rows"]:
        by_k[r["k"]].append(r)
    for rows in by_k.values():
        rows.sort(key=lambda r: r["bytes"])
    return by_k


def plot_throughput(run, out):
    fig, ax = plt.subplots(figsize=FIGSIZE)
    by_k = rows_by_k(run)
    for k, rows in sorted(by_k.items()):
        x = [r["bytes"] for r in rows]
        ax.plot(x, [r["gbs"] for r in rows], "o-", label=f"encode K={k:g}")
        ax.plot(x, [r["decode_gbs"] for r in rows], "s--", label=f"decode K={k:g}")
    rows = next(iter(by_k.values()))
    copy = [r["bytes"] / (r["copy_us"] * 1e3) for r in rows]
    ax.plot([r["bytes"] for r in rows], copy, "k:", label="copy")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("input size (bytes of fp32)")
    ax.set_ylabel("GB/s (input bytes)")
    ax.set_title(title(run, "throughput vs size"), fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=DPI)
    plt.close(fig)


def plot_pct_copy(run, out):
    fig, ax = plt.subplots(figsize=FIGSIZE)
    for k, rows in sorted(rows_by_k(run).items()):
        ax.plot([r["bytes"] for r in rows], [r["pct_copy"] for r in rows], "o-",
                label=f"encode K={k:g}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("input size (bytes of fp32)")
    ax.set_ylabel("% of same-size copy throughput")
    ax.set_title(title(run, "encode speed relative to a copy"), fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=DPI)
    plt.close(fig)


def plot_bits_vs_k(runs, out):
    fig, ax = plt.subplots(figsize=FIGSIZE)
    for i, run in enumerate(runs):
        largest = max(r["n"] for r in run["rows"])
        rows = sorted((r for r in run["rows"] if r["n"] == largest), key=lambda r: r["k"])
        ks = [r["k"] for r in rows]
        color = f"C{i % 10}"
        label = f"{run['dist']}, n={largest}"
        ax.plot(ks, [r["bits_per_element"] for r in rows], "o-", color=color,
                label=f"wire, {label}")
        ax.plot(ks, [32.0 / r["paper_ratio"] for r in rows], "x--", color=color,
                label=f"paper, {label}")
    ax.axhline(32, color="k", lw=0.8, ls=":")
    ax.axhline(16, color="gray", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("K (samples per element)")
    ax.set_ylabel("bits per element")
    ax.set_title("bits/element vs K (dotted: fp32, bf16)\n" + provenance(runs[0]), fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out, dpi=DPI)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prefix", required=True, help="output path prefix")
    ap.add_argument("json", nargs="+", help="mcgq_bench -J files")
    args = ap.parse_args()
    runs = load(args.json)
    sweeps = [r for r in runs if len({row["bytes"] for row in r["rows"]}) > 1]
    written = []
    if sweeps:
        plot_throughput(sweeps[0], args.prefix + "-throughput.png")
        plot_pct_copy(sweeps[0], args.prefix + "-pct-copy.png")
        written += [args.prefix + "-throughput.png", args.prefix + "-pct-copy.png"]
    # K sweeps: runs with at least three K values.
    k_sweeps = [r for r in runs if len({row["k"] for row in r["rows"]}) >= 3]
    if k_sweeps:
        plot_bits_vs_k(k_sweeps, args.prefix + "-bits-vs-k.png")
        written.append(args.prefix + "-bits-vs-k.png")
    for path in written:
        print(f"{path} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
