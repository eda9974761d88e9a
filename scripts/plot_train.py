#!/usr/bin/env python3
"""Plots and the final table of the training demo (examples/train).

Reads the CSV files mcgq_train wrote (one row per method and epoch) and
writes, per CSV <name>.csv, into the output folder:
  <name>_loss.png    training objective vs epoch, one line per method (the
                     baselines, MCGQ at its smallest K and at K = 1, the
                     --extra-run runs): all epochs, and the second half of
                     the epochs on its own linear axis, where the runs part
  <name>_bytes.png   training objective vs total bytes sent by one rank
  <name>_ksweep.png  (when MCGQ ran at several K) the paper's Figure 2:
                     loss vs epoch for plain / accumulated / residual MCGQ
  <name>_ratio.png   (same condition) compression ratio vs K, paper's and wire
  <name>_headline.png  (with --headline) the same two panels for the listed
                     runs only
and a Markdown table of the last epoch of every method, <name>_table.md,
which it also prints.  --extra-run CSV LABEL adds the runs of another CSV
(e.g. fp32 at a larger learning rate) under LABEL to the first CSV's table
and figures, compared with that CSV's fp32.
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


# One colour family per method, so a reader can group lines by colour; runs
# of one family differ in shade, and every run of a figure in its dash, so
# lines that lie on top of each other still show as interleaved dashes.
FAMILY_COLOURS = {
    "fp32": ["black", "0.45", "0.65"],
    "qsgd2": ["tab:olive"], "qsgd4": ["tab:orange"], "qsgd8": ["tab:brown"],
    "efsign": ["tab:purple"], "topk": ["tab:gray"],
    "mcgq-plain": ["tab:blue", "tab:cyan", "navy", "cornflowerblue"],
    "mcgq-reset": ["tab:red", "darkred", "salmon", "orangered", "maroon"],
    "mcgq-residual": ["tab:green", "darkgreen", "limegreen", "olivedrab"],
    "mcgq-reset-dyn": ["tab:pink"], "mcgq-plain-dyn": ["tab:cyan"],
    "mcgq-residual-dyn": ["darkkhaki"],
}
DASHES = ["-", "--", "-.", ":", (0, (5, 1, 1, 1, 1, 1)), (0, (8, 2))]


def family_of(spec):
    """'mcgq-reset:0.1' -> 'mcgq-reset'; 'fp32 lr0=4' (an extra run) -> 'fp32'."""
    return spec.split(":")[0].split(" ")[0]


def styles_for(specs):
    """{spec: plot keywords}, distinct for every spec of one figure."""
    seen = {}
    out = {}
    for index, spec in enumerate(specs):
        family = family_of(spec)
        i = seen.get(family, 0)
        seen[family] = i + 1
        colours = FAMILY_COLOURS.get(family, ["tab:cyan"])
        out[spec] = dict(color=colours[i % len(colours)], linestyle=DASHES[index % len(DASHES)],
                         linewidth=2.2 if family == "fp32" else 1.5)
    return out


def title_of(runs):
    first = next(iter(runs.values()))[0]
    return f"{first['model']} on {first['data']}"


def plot_lines(plt, runs, specs, xkey, path, title, xlabel, logx=False):
    fig, ax = plt.subplots(figsize=(9.0, 4.6), dpi=90)
    styles = styles_for(specs)
    for spec in specs:
        rows = runs[spec]
        xs = [r[xkey] for r in rows]
        ys = [r["train_loss"] for r in rows]
        if logx:  # epoch 0 has sent nothing: start at the first step
            xs, ys = xs[1:], ys[1:]
        ax.plot(xs, ys, label=spec, **styles[spec])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("training objective")
    ax.set_yscale("log")
    if logx:
        ax.set_xscale("log")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def plot_epochs(plt, runs, specs, path, title):
    """Loss vs epoch in two linear panels: all epochs, then the second half,
    scaled to the runs' spread there (on one axis from 0.69 down, runs that
    end 0.1% apart and 9% apart look alike)."""
    fig, (full, tail) = plt.subplots(1, 2, figsize=(10.5, 4.4), dpi=90)
    styles = styles_for(specs)
    last = max(r["epoch"] for spec in specs for r in runs[spec])
    start = last // 2
    for spec in specs:
        xs = [r["epoch"] for r in runs[spec]]
        ys = [r["train_loss"] for r in runs[spec]]
        full.plot(xs, ys, label=f"{spec} ({ys[-1]:.4f})", **styles[spec])
        tail.plot([x for x in xs if x >= start], [y for x, y in zip(xs, ys) if x >= start],
                  **styles[spec])
    full.set_title("all epochs", fontsize=9)
    tail.set_title(f"epochs {start:g}-{last:g} (zoomed)", fontsize=9)
    for ax in (full, tail):
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
    full.set_ylabel("training objective")
    fig.suptitle(title)
    fig.tight_layout()
    fig.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5),
               title="run (last loss)", title_fontsize=8)
    fig.savefig(path, bbox_inches="tight")
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
        colour = FAMILY_COLOURS[family][0]
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
    """Last epoch of every run, each compared with the fp32 run at the
    file's own learning rate (also the --extra-run rows)."""
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


def add_extra_runs(runs, extra):
    for path, label in extra:
        extra_runs = read_runs(path)
        if len(extra_runs) != 1:
            raise SystemExit(f"--extra-run {path}: expected one run, found {len(extra_runs)}")
        if label in runs:
            raise SystemExit(f"--extra-run {path}: label '{label}' is already a run")
        runs[label] = next(iter(extra_runs.values()))


def main_specs(runs, sweep):
    """Baselines and other non-sweep runs, plus each swept family at its
    smallest K and at K = 1 (the whole sweep has its own figure)."""
    keep = set()
    for points in sweep.values():
        keep.add(points[0][1])
        keep.update(s for k, s in points if k == 1.0)
    swept = {s for points in sweep.values() for _, s in points}
    return [s for s in runs if s not in swept or s in keep]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("csv", nargs="+", help="CSV files written by mcgq_train --out")
    ap.add_argument("--out", default="examples/train/results", help="output folder")
    ap.add_argument("--no-plots", action="store_true", help="only print the tables")
    ap.add_argument("--extra-run", nargs=2, action="append", default=[],
                    metavar=("CSV", "LABEL"),
                    help="add the one run of CSV to the first CSV's table and figures")
    ap.add_argument("--headline", default="",
                    help="comma-separated runs of the first CSV for <name>_headline.png")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    plt = None
    if not args.no_plots:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: F811
    for index, path in enumerate(args.csv):
        runs = read_runs(path)
        if not runs:
            print(f"{path}: empty", file=sys.stderr)
            continue
        if index == 0:
            add_extra_runs(runs, args.extra_run)
        name = os.path.splitext(os.path.basename(path))[0]
        title = title_of(runs)
        text = table(runs)
        with open(os.path.join(args.out, name + "_table.md"), "w") as f:
            f.write(text)
        print(f"\n## {title} ({path})\n\n{text}")
        if plt is None:
            continue
        sweep = mcgq_sweep(runs)
        specs = main_specs(runs, sweep)
        plot_epochs(plt, runs, specs, os.path.join(args.out, name + "_loss.png"),
                    title + ": loss vs epoch")
        plot_lines(plt, runs, specs, "bytes_total",
                   os.path.join(args.out, name + "_bytes.png"),
                   title + ": loss vs bytes sent", "bytes sent by one rank (total)", logx=True)
        if sweep:
            specs = [s for pts in sweep.values() for _, s in pts] + (["fp32"] if "fp32" in runs else [])
            plot_epochs(plt, runs, specs, os.path.join(args.out, name + "_ksweep.png"),
                        title + ": MCGQ variants and K")
            plot_ratio(plt, runs, sweep, os.path.join(args.out, name + "_ratio.png"), title)
        if args.headline and index == 0:
            wanted = args.headline.split(",")
            missing = [s for s in wanted if s not in runs]
            if missing:
                raise SystemExit(f"--headline: no run named {', '.join(missing)} in {path}")
            plot_epochs(plt, runs, wanted, os.path.join(args.out, name + "_headline.png"),
                        title + ": the headline comparison")
    return 0


if __name__ == "__main__":
    sys.exit(main())
