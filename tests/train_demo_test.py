#!/usr/bin/env python3
"""End-to-end test of the training demo (examples/train, label mpi).

Runs mcgq_train with `mpirun -np 4` on small synthetic data sets written
here (stdlib only, fixed seed, the MCGQDS01 format of scripts/export_data.py):
a logistic-regression set and a 3-class set for the MLP.  Checks
  1. the training objective decreases for every method;
  2. MCGQ accumulated (RESET) at K = 1 ends within a stated margin of fp32 SGD
     (derived at the check);
  3. the bytes each method reports as sent (for MCGQ: mcgqStepStats_t
     bytes_sent summed over steps) equal the bytes measured at the MPI layer
     by the demo's PMPI wrappers (train/mpi_count.c), exactly, at every epoch;
  4. a run is deterministic: a second run gives the same CSV (but the time).
Exit status 0 = pass; any failure is printed.
"""
import argparse
import csv
import math
import os
import random
import struct
import subprocess
import sys

METHODS = ("fp32,qsgd2,qsgd4,qsgd8,efsign,topk,mcgq-plain:0.5,mcgq-plain:1,"
           "mcgq-reset:1,mcgq-reset:0.2,mcgq-residual:0.2,mcgq-reset-dyn:0.5")
# MLP tensors: W0 b0 W1 b1 W2 b2 -> per-layer K
MLP_METHODS = "fp32,qsgd4,efsign,topk,mcgq-reset:1,mcgq-reset:0.2/1/0.5/1/1/1,mcgq-residual-dyn:0.3"


def write_set(path, rows, labels, classes):
    with open(path, "wb") as f:
        f.write(b"MCGQDS01")
        f.write(struct.pack("<QQII", len(rows), len(rows[0]), classes, 0))
        for row in rows:
            f.write(struct.pack("<%df" % len(row), *row))
        f.write(struct.pack("<%di" % len(labels), *labels))


def make_logreg(rng, count, dim, w):
    """Unit-norm rows (as epsilon's), labels from a planted logistic model."""
    rows, labels = [], []
    for _ in range(count):
        x = [rng.gauss(0, 1) for _ in range(dim)]
        norm = math.sqrt(sum(v * v for v in x))
        x = [v / norm for v in x]
        p = 1 / (1 + math.exp(-sum(a * b for a, b in zip(w, x))))
        rows.append(x)
        labels.append(1 if rng.random() < p else 0)
    return rows, labels


def make_blobs(rng, count, dim, centres):
    rows, labels = [], []
    for i in range(count):
        c = i % len(centres)
        rows.append([m + rng.gauss(0, 1) for m in centres[c]])
        labels.append(c)
    return rows, labels


def export(workdir):
    rng = random.Random(12345)
    dim = 40
    w = [3 * rng.gauss(0, 1) for _ in range(dim)]
    for split, count in (("train", 1600), ("test", 400)):
        rows, labels = make_logreg(rng, count, dim, w)
        write_set(os.path.join(workdir, f"lin.{split}.bin"), rows, labels, 2)
    centres = [[rng.gauss(0, 1) for _ in range(16)] for _ in range(3)]
    for split, count in (("train", 960), ("test", 240)):
        rows, labels = make_blobs(rng, count, 16, centres)
        write_set(os.path.join(workdir, f"blobs.{split}.bin"), rows, labels, 3)


def run(args, workdir, name, extra):
    out = os.path.join(workdir, name + ".csv")
    cmd = args.mpiexec + ["-np", "4", args.train, "--out", out, "--quiet"] + extra
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=240)
    if proc.returncode != 0:
        print(proc.stdout)
        raise SystemExit(f"FAIL: {' '.join(cmd)} exited with {proc.returncode}")
    with open(out, newline="") as f:
        return list(csv.DictReader(f))


def by_spec(rows):
    runs = {}
    for r in rows:
        runs.setdefault(r["spec"], []).append(r)
    return runs


def check(failures, ok, message):
    print(("ok   " if ok else "FAIL ") + message)
    if not ok:
        failures.append(message)


def check_runs(failures, label, rows, fp32_margin):
    runs = by_spec(rows)
    for spec, rs in runs.items():
        first, last = float(rs[0]["train_loss"]), float(rs[-1]["train_loss"])
        check(failures, last < first,
              f"{label} {spec}: loss decreases ({first:.5f} -> {last:.5f})")
        for r in rs:
            if r["bytes_total"] != r["mpi_bytes_total"]:
                check(failures, False,
                      f"{label} {spec} epoch {r['epoch']}: reported bytes {r['bytes_total']} "
                      f"!= bytes at MPI {r['mpi_bytes_total']}")
                break
        else:
            check(failures, int(rs[-1]["bytes_total"]) > 0,
                  f"{label} {spec}: reported bytes == MPI bytes "
                  f"({rs[-1]['bytes_total']} over {rs[-1]['steps']} steps)")
    if fp32_margin is not None:
        f0 = float(runs["fp32"][0]["train_loss"])
        f_fp32 = float(runs["fp32"][-1]["train_loss"])
        f_mcgq = float(runs["mcgq-reset:1"][-1]["train_loss"])
        band = fp32_margin * (f0 - f_fp32)
        check(failures, abs(f_mcgq - f_fp32) <= band,
              f"{label} mcgq-reset:1 final loss {f_mcgq:.5f} within {band:.5f} "
              f"({fp32_margin:.0%} of fp32's decrease) of fp32's {f_fp32:.5f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", required=True, help="path of mcgq_train")
    ap.add_argument("--mpiexec", default="mpirun")
    ap.add_argument("--workdir", required=True)
    args = ap.parse_args()
    args.mpiexec = [args.mpiexec]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.mpiexec.append("--allow-run-as-root")
    args.mpiexec.append("--oversubscribe")  # CI machines have 2 cores
    os.makedirs(args.workdir, exist_ok=True)
    export(args.workdir)
    failures = []

    lin = ["--data", os.path.join(args.workdir, "lin"), "--model", "logreg",
           "--batch", "8", "--epochs", "4", "--methods", METHODS]
    rows = run(args, args.workdir, "lin", lin)
    # Margin for MCGQ accumulated at K = 1 against fp32 SGD: |f_mcgq - f_fp32|
    # <= 5% of the decrease fp32 achieves (f0 - f_fp32).  Why 5%: with K = 1
    # MCGQ draws N = n samples per layer, and the variance it adds is at most
    # the multinomial one (stratification only lowers it), sum_k Var =
    # (||a||_1^2 - ||a||_2^2)/N <= ||a||_1^2 / n <= ||a||_2^2 (Cauchy-Schwarz):
    # at most the squared norm of the (accumulated) gradient itself, the same
    # order as the mini-batch noise SGD already carries, which barely moves the
    # final objective.  Measured on this data (4 epochs, batch 4 x 8):
    #   fp32 over seeds 1..4:          spread 0.24% of the decrease
    #   mcgq-reset:1 over seeds 1..4:  1.3% .. 2.0% below fp32 (the paper's
    #                                  Figure 1: accumulated converges faster)
    #   a gradient scaled by 1/2 (a lost half, a wrong P): 37% above
    #   a gradient scaled by 2 (double counting):           38% below
    # so the band admits the method's real behaviour with a 2.5x margin and
    # rejects a mis-scaled exchange in either direction by a factor of 7.
    check_runs(failures, "logreg", rows, 0.05)

    mlp = ["--data", os.path.join(args.workdir, "blobs"), "--model", "mlp",
           "--hidden", "24,12", "--lr0", "0.05", "--batch", "8", "--epochs", "3",
           "--methods", MLP_METHODS]
    check_runs(failures, "mlp", run(args, args.workdir, "blobs", mlp), None)

    again = run(args, args.workdir, "lin_again", lin)
    strip = lambda rs: [{k: v for k, v in r.items() if k != "seconds"} for r in rs]
    check(failures, strip(again) == strip(rows), "logreg: a second run gives the same CSV")

    print(f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
