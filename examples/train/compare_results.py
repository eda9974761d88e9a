#!/usr/bin/env python3
"""Says whether a demo run reproduced the committed training results.

  compare_results.py COMMITTED_DIR NEW_DIR

Compares every CSV of COMMITTED_DIR with the file of the same name in NEW_DIR,
cell by cell as text, except the `seconds` column (wall time, which no two
runs share).  The demo is deterministic from its seed (examples/train/README.md),
so any other difference means the code or the data changed.  Prints one line
per file; exit status 1 if a file is missing or differs.
"""
import csv
import os
import sys

IGNORED = {"seconds"}


def read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def first_difference(old, new):
    """'' when equal; else where they first differ, in words."""
    if len(old) != len(new):
        return f"{len(new)} rows instead of {len(old)}"
    for i, (a, b) in enumerate(zip(old, new)):
        if set(a) != set(b):
            return f"columns differ: {sorted(set(a) ^ set(b))}"
        for key in a:
            if key not in IGNORED and a[key] != b[key]:
                return (f"row {i + 2} ({a.get('spec', '?')}, epoch {a.get('epoch', '?')}): "
                        f"{key} {b[key]} instead of {a[key]}")
    return ""


def main():
    if len(sys.argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    committed, new = sys.argv[1], sys.argv[2]
    names = sorted(n for n in os.listdir(committed) if n.endswith(".csv"))
    if not names:
        print(f"compare_results.py: no CSV files in {committed}", file=sys.stderr)
        return 2
    bad = 0
    for name in names:
        theirs = os.path.join(new, name)
        if not os.path.exists(theirs):
            print(f"  {name}: not produced by this run")
            bad += 1
            continue
        diff = first_difference(read(os.path.join(committed, name)), read(theirs))
        if diff:
            print(f"  {name}: DIFFERS from {committed}/{name}: {diff}")
            bad += 1
        else:
            print(f"  {name}: identical to {committed}/{name} (wall times aside)")
    if bad:
        print(f"{bad} of {len(names)} result files do not match the committed results")
        return 1
    print(f"all {len(names)} result files match the committed results in {committed}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
