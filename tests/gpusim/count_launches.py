#!/usr/bin/env python3
"""count_launches.py LOG [--budget CALL=MAX ...] - kernel launches per API call
in a GPU-simulator log.

Reads the log of tests/gpusim/launch_probe.c run under gsim-run: the probe
prints "MCGQ_PROBE begin|end <call> <layers> <sizes>" around each call
(call: encode, decode, encode-all, decode-all), and GPGPU-Sim prints
"GPGPU-Sim PTX: cudaLaunch ..." once per kernel launch.
Prints one line per call and layer count,
    launches per encode call: <layers> layers -> <N> launches
(real sizes where the probe ran them, else capped ones, said in a note) and
exits nonzero if a call has no end marker, if capping the layer sizes changed
a count (the probe runs 10 layers with real and with capped sizes), or if a
call exceeds its budget: --budget encode=16 checks every call whose name
starts with "encode" (issue 13: at most 16 launches per encode call and 8
per decode-average call, for any layer count).
"""
import re
import sys


def parse_budgets(args):
    budgets = {}
    for arg in args:
        m = re.fullmatch(r"--budget=?(\w+)=(\d+)", arg)
        if not m:
            raise SystemExit(f"count_launches: bad argument {arg!r} (want --budget=CALL=MAX)")
        budgets[m.group(1)] = int(m.group(2))
    return budgets


def main(path, budgets):
    counts, order, open_call, n = {}, [], None, 0
    with open(path, errors="replace") as log:
        for line in log:
            if line.startswith("GPGPU-Sim PTX: cudaLaunch"):
                n += 1
                continue
            m = re.match(r"MCGQ_PROBE (begin|end) (\S+) (\d+) (\S+)", line)
            if not m:
                continue
            edge, call, layers, sizes = m.group(1), m.group(2), int(m.group(3)), m.group(4)
            key = (call, layers, sizes)
            if edge == "begin":
                open_call, n = key, 0
            elif open_call == key:
                counts[key] = n
                order.append(key)
                open_call = None
    if open_call is not None or not order:
        print(f"count_launches: incomplete probe log {path}", file=sys.stderr)
        return 1
    rc, notes = 0, []
    calls = []
    for key in order:
        if key[0] not in calls:
            calls.append(key[0])
    for call in calls:
        shown = {}
        for key in order:  # one line per layer count: real sizes where measured
            if key[0] == call and (key[1] not in shown or key[2] == "real"):
                shown[key[1]] = key
        for layers in sorted(shown):
            print(f"launches per {call} call: {layers} layers -> {counts[shown[layers]]} launches")
        for layers, key in sorted(shown.items()):
            if key[2] != "real":
                notes.append(f"{call}, {layers} layers: sizes {key[2]}")
        for layers in shown:
            both = {k[2]: counts[k] for k in order if k[0] == call and k[1] == layers}
            if len(both) > 1:
                if len(set(both.values())) > 1:
                    print(f"count_launches: capping the sizes changed the {call} count "
                          f"of {layers} layers: {both}", file=sys.stderr)
                    rc = 1
                else:
                    notes.append(f"{call}, {layers} layers: the same count with real and capped sizes")
    for key in order:
        for prefix, most in budgets.items():
            if key[0].startswith(prefix) and counts[key] > most:
                print(f"count_launches: {key[0]} of {key[1]} layers ({key[2]}) launched "
                      f"{counts[key]} kernels, over the budget of {most}", file=sys.stderr)
                rc = 1
    for note in notes:
        print(f"  ({note})")
    if budgets and rc == 0:
        print("within budget: " + ", ".join(f"{c} <= {m}" for c, m in budgets.items()))
    return rc


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(2)
    sys.exit(main(sys.argv[1], parse_budgets(sys.argv[2:])))
