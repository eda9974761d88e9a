#!/usr/bin/env python3
"""model_table.py - README's table of the exchange modes (issue 16): for P =
2..1024 ranks, the predicted step of the faster mcgq all-reduce mode
(all-gather or two-stage, as mcgqPolicyChooseExchange picks it) against
fp32 and bf16 ring all-reduce, for the ResNet-50 layer table at K = 0.1 and
K = 1, on the pcie4 and nvlink-h100 link presets.

    scripts/model_table.py --mcgq build-host/tools/mcgq [--builtin]

Codec speeds: the newest recorded mcgq_bench result (what `mcgq model`
reads by default), or with --builtin the built-in assumptions.  Bits per
element: --bits-k01 / --bits-k1 (defaults: the wire bits of the CPU bench
on Gaussian layers, bench/results/2026-12-02-cpu-vm.txt)."""
import argparse
import subprocess
import sys

RANKS = [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]


def run_model(mcgq, link, bits, builtin):
    cmd = [mcgq, "model", "--modes", "--tables", "resnet50", "--link", link,
           "--bits", repr(bits), "--ranks", ",".join(map(str, RANKS))]
    if builtin:
        cmd.append("--builtin")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    header = [l for l in out.splitlines() if l.startswith("# codec")]
    rows = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) == 12 and f[0] == "resnet50":
            rows[int(f[1])] = {"ag": float(f[2]), "ts": float(f[3]), "x32": float(f[6]),
                               "x16": float(f[7]), "pick32": f[8], "pick16": f[9]}
    return header, rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mcgq", required=True)
    ap.add_argument("--builtin", action="store_true")
    ap.add_argument("--bits-k01", type=float, default=0.912)
    ap.add_argument("--bits-k1", type=float, default=4.0)
    a = ap.parse_args()
    cases = [("pcie4", "K=0.1", a.bits_k01), ("pcie4", "K=1", a.bits_k1),
             ("nvlink-h100", "K=0.1", a.bits_k01), ("nvlink-h100", "K=1", a.bits_k1)]
    results, header = [], []
    for link, k, bits in cases:
        header, rows = run_model(a.mcgq, link, bits, a.builtin)
        results.append(rows)
    print("\n".join(h.lstrip("# ") for h in header))
    print()
    print("| P | " + " | ".join("%s %s (%.3g b/el)" % (l, k, b) for l, k, b in cases) + " |")
    print("|---|" + "---|" * len(cases))
    for P in RANKS:
        cells = []
        for rows in results:
            r = rows[P]
            mode = "AG" if r["ag"] <= r["ts"] else "2S"
            cells.append("%.2fx / %.2fx %s" % (r["x32"], r["x16"], mode))
        print("| %d | %s |" % (P, " | ".join(cells)))
    print()
    print("Cells: fp32 all-reduce time / mcgq time, bf16 all-reduce time / mcgq time, "
          "and the faster mcgq mode (AG all-gather, 2S two-stage); above 1 mcgq is faster.")


if __name__ == "__main__":
    sys.exit(main())
