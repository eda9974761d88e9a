#!/usr/bin/env python3
"""Plots and the final table of the training demo (examples/train).

Reads the CSV files mcgq_train wrote (one row per method and epoch) and
writes, per CSV <name>.csv, into the output folder:
  <name>_loss.png    training objective vs epoch, one line per method
  <name>_bytes.png   training objective vs total bytes sent by one rank
  <name>_ksweep.png  (when MCGQ ran at several K) the paper's Figure 2:
                     loss vs epoch for plain / accumulated / residual MCGQ
  <name>_ratio.png   (same condition) compression ratio vs K, paper's and wire
and a Markdown table of the last epoch of every method, <name>_table.md,
which it also prints.
"""
import argparse
import csv
import os
import sys
from collections import OrderedDict


def read_runs(path):
    runs = OrderedDict()  # spec -> list of rows (dicts, numbers parsed)
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            for key, value in row.items():
                if key not in ("model", "data", "method", "spec"):
                    row[key] = float(value)
            runs.setdefault(row["spec"], []).append(row)
    return runs


def style(spec):
    """Colour by method family, line style by K, so 19 lines stay readable."""
    family = spec.split(":")[0]
    colours = {"fp32": "black", "qsgd2": "tab:olive", "qsgd4": "tab:orange",
               "qsgd8": "tab:brown", "efsign": "tab:purple", "topk": "tab:gray",
               "mcgq-plain": "tab:blue", "mcgq-reset": "tab:red",
               "mcgq-residual": "tab:green", "mcgq-reset-dyn": "tab:pink",
               "mcgq-plain-dyn": "tab:cyan", "mcgq-residual-dyn": "tab:olive"}
    k = spec.split(":")[1] if ":" in spec else ""
    dashes = {"0.1": ":", "0.2": "-.", "0.5": "--"}
    return dict(color=colours.get(family, None), linestyle=dashes.get(k, "-"),
                linewidth=2.0 if family == "fp32" else 1.3)


def title_of(runs):
    first = next(iter(runs.values()))[0]
    return f"{first['model']} on {first['data']}"


def plot_lines(plt, runs, specs, xkey, path, title, xlabel, logx=False):
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=90)
    for spec in specs:
        rows = runs[spec]
        xs = [r[xkey] for r in rows]
        ys = [r["train_loss"] for r in rows]
        if logx:  # epoch 0 has sent nothing: start at the first step
            xs, ys = xs[1:], ys[1:]
        ax.plot(xs, ys, label=spec, **style(spec))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("training objective")
    ax.set_yscale("log")
    if logx:
        ax.set_xscale("log")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def mcgq_sweep(runs):
    """{family: [(K, spec)]} for the static-K MCGQ runs with one K."""
    sweep = {}
    for spec in runs:
        family, _, k = spec.partition(":")
        if family in ("mcgq-plain", "mcgq-reset", "mcgq-residual") and "/" not in k:
            sweep.setdefault(family, []).append((float(k), spec))
    return {f: sorted(v) for f, v in sweep.items() if len(v) > 1}


def plot_ratio(plt, runs, sweep, path, title):
    fig, ax = plt.subplots(figsize=(6.5, 4.2), dpi=90)
    for family, points in sweep.items():
        ks = [k for k, _ in points]
        colour = style(family)["color"]
        ax.plot(ks, [runs[s][-1]["paper_ratio"] for _, s in points], "o-",
                color=colour, label=f"{family} (paper stream)")
        ax.plot(ks, [runs[s][-1]["wire_ratio"] for _, s in points], "s--",
                color=colour, label=f"{family} (wire container)")
    ax.set_xlabel("K (samples per element)")
    ax.set_ylabel("compression ratio vs fp32")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_title(title + ": compression ratio vs K (last epoch)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def table(runs):
    fp32 = runs.get("fp32")
    lines = ["| method | K | train loss | vs fp32 | test acc | bytes/step | paper ratio | wire ratio |",
             "|---|---|---|---|---|---|---|---|"]
    for spec, rows in runs.items():
        last = rows[-1]
        rel = (f"{last['train_loss'] / fp32[-1]['train_loss'] - 1:+.2%}" if fp32 else "")
        k = f"{last['k']:.3g}" if last["k"] > 0 else ""
        lines.append(f"| {spec} | {k} | {last['train_loss']:.5f} | {rel} | "
                     f"{100 * last['test_acc']:.2f}% | {last['bytes_per_step']:.0f} | "
                     f"{last['paper_ratio']:.2f} | {last['wire_ratio']:.2f} |")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("csv", nargs="+", help="CSV files written by mcgq_train --out")
    ap.add_argument("--out", default="examples/train/results", help="output folder")
    ap.add_argument("--no-plots", action="store_true", help="only print the tables")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    plt = None
    if not args.no_plots:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: F811
    for path in args.csv:
        runs = read_runs(path)
        if not runs:
            print(f"{path}: empty", file=sys.stderr)
            continue
        name = os.path.splitext(os.path.basename(path))[0]
        title = title_of(runs)
        text = table(runs)
        with open(os.path.join(args.out, name + "_table.md"), "w") as f:
            f.write(text)
        print(f"\n## {title} ({path})\n\n{text}")
        if plt is None:
            continue
        sweep = mcgq_sweep(runs)
        # Main figure: baselines plus MCGQ at K = 1 and the other non-sweep runs
        # (the K sweep gets its own figure, as in the paper's Figures 1 and 2).
        swept = {s for points in sweep.values() for k, s in points if k != 1.0}
        main_specs = [s for s in runs if s not in swept]
        plot_lines(plt, runs, main_specs, "epoch", os.path.join(args.out, name + "_loss.png"),
                   title + ": loss vs epoch", "epoch")
        plot_lines(plt, runs, main_specs, "bytes_total",
                   os.path.join(args.out, name + "_bytes.png"),
                   title + ": loss vs bytes sent", "bytes sent by one rank (total)", logx=True)
        if sweep:
            specs = [s for pts in sweep.values() for _, s in pts] + (["fp32"] if "fp32" in runs else [])
            plot_lines(plt, runs, specs, "epoch", os.path.join(args.out, name + "_ksweep.png"),
                       title + ": MCGQ variants and K", "epoch")
            plot_ratio(plt, runs, sweep, os.path.join(args.out, name + "_ratio.png"), title)
    return 0


if __name__ == "__main__":
    sys.exit(main())
