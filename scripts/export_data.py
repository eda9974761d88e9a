#!/usr/bin/env python3
"""Export the training demo's data sets (examples/train) into data/.

Data sets (all with fixed seeds, so every run sees the same bytes):
  cancer       scikit-learn's bundled breast cancer set, binary (malignant=0,
               benign=1), 30 features.
  digits2      scikit-learn's bundled 8x8 digits as a binary task:
               label 1 = odd digit, 0 = even digit; 64 features.
  digits10     the same digits, 10 classes.
  epsilon      an epsilon-like synthetic set (the paper's section 4.1 uses the
               PASCAL epsilon set: dense, 2000 features, rows of unit norm).
               Not a download: labels come from a planted logistic model on a
               low-dimensional latent signal plus isotropic noise, so (like the
               real epsilon) the problem is dense, not separable, and a linear
               model reaches about 90% accuracy.

The sklearn sets are split 80/20 (train/test) with a fixed seed, then every
feature is standardized with the training split's mean and standard deviation.
The epsilon-like set is standardized the same way and then every row is scaled
to unit L2 norm, as the real epsilon's rows are (this is what makes the paper's
initial learning rate of 1.0 meaningful).

Binary format (little-endian), one file per split, <name>.train.bin and
<name>.test.bin:
  offset 0   char[8]  magic "MCGQDS01"
  offset 8   uint64   rows
  offset 16  uint64   cols
  offset 24  uint32   classes (2 for the binary sets)
  offset 28  uint32   reserved (0)
  offset 32  float32  x[rows][cols], row-major
  then       int32    y[rows], labels in 0..classes-1
Ranks shard the training file themselves: rank r of P reads the contiguous
rows [r*rows/P, (r+1)*rows/P) (examples/train/data.c), never the whole file.
The rows are stored in a seeded random order, so contiguous shards are iid.
"""
import argparse
import os
import struct
import sys

import numpy as np

MAGIC = b"MCGQDS01"
SPLIT_SEED = 20240607


def write_set(path, x, y, classes):
    x = np.ascontiguousarray(x, dtype="<f4")
    y = np.ascontiguousarray(y, dtype="<i4")
    assert x.ndim == 2 and y.shape == (x.shape[0],)
    assert y.min() >= 0 and y.max() < classes
    with open(path, "wb") as f:
        f.write(MAGIC)
        f.write(struct.pack("<QQII", x.shape[0], x.shape[1], classes, 0))
        f.write(x.tobytes())
        f.write(y.tobytes())


def split_and_standardize(x, y):
    from sklearn.model_selection import train_test_split
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=0.2, random_state=SPLIT_SEED, stratify=y)
    mean = x_tr.mean(axis=0)
    std = x_tr.std(axis=0)
    std[std == 0] = 1.0  # constant pixels of the digits stay 0
    return (x_tr - mean) / std, y_tr, (x_te - mean) / std, y_te


def export_sklearn(out_dir):
    from sklearn.datasets import load_breast_cancer, load_digits
    cancer = load_breast_cancer()
    digits = load_digits()
    sets = {
        "cancer": (cancer.data, cancer.target, 2),
        "digits2": (digits.data, digits.target % 2, 2),
        "digits10": (digits.data, digits.target, 10),
    }
    for name, (x, y, classes) in sets.items():
        x_tr, y_tr, x_te, y_te = split_and_standardize(x.astype(np.float64), y)
        write_set(os.path.join(out_dir, name + ".train.bin"), x_tr, y_tr, classes)
        write_set(os.path.join(out_dir, name + ".test.bin"), x_te, y_te, classes)
        print(f"{name}: {len(y_tr)} train, {len(y_te)} test, {x.shape[1]} features, "
              f"{classes} classes")


def epsilon_like(rows, cols, latent, seed):
    """Dense rows x = z U + noise; P(y=1) = sigmoid(4 z.w / ||w||)."""
    rng = np.random.default_rng(seed)
    basis = rng.standard_normal((latent, cols)).astype(np.float32) / np.sqrt(cols)
    w_true = rng.standard_normal(latent)
    w_true /= np.linalg.norm(w_true)
    x = np.empty((rows, cols), dtype=np.float32)
    y = np.empty(rows, dtype=np.int32)
    chunk = 5000
    for start in range(0, rows, chunk):
        stop = min(rows, start + chunk)
        z = rng.standard_normal((stop - start, latent)).astype(np.float32)
        noise = rng.standard_normal((stop - start, cols), dtype=np.float32)
        # Signal and noise carry comparable energy per row: the label
        # direction is well conditioned for SGD with lr 1 on unit-norm rows.
        x[start:stop] = z @ basis * np.float32(np.sqrt(cols / latent)) + 0.7 * noise
        p = 1.0 / (1.0 + np.exp(-4.0 * (z.astype(np.float64) @ w_true)))
        y[start:stop] = (rng.random(stop - start) < p).astype(np.int32)
    return x, y


def export_epsilon(out_dir, rows, test_rows, cols, seed):
    x, y = epsilon_like(rows + test_rows, cols, 32, seed)
    x_tr, y_tr, x_te, y_te = x[:rows], y[:rows], x[rows:], y[rows:]
    mean = x_tr.mean(axis=0, dtype=np.float64).astype(np.float32)
    std = x_tr.std(axis=0, dtype=np.float64).astype(np.float32)
    for part in (x_tr, x_te):
        part -= mean
        part /= std
        part /= np.linalg.norm(part, axis=1, keepdims=True)
    write_set(os.path.join(out_dir, "epsilon.train.bin"), x_tr, y_tr, 2)
    write_set(os.path.join(out_dir, "epsilon.test.bin"), x_te, y_te, 2)
    print(f"epsilon: {rows} train, {test_rows} test, {cols} features, 2 classes "
          f"(seed {seed})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="data", help="output folder (default data/)")
    ap.add_argument("--eps-rows", type=int, default=50000, help="epsilon-like train rows")
    ap.add_argument("--eps-test-rows", type=int, default=10000)
    ap.add_argument("--eps-cols", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1234, help="epsilon-like generator seed")
    ap.add_argument("--skip-epsilon", action="store_true")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    export_sklearn(args.out)
    if not args.skip_epsilon:
        export_epsilon(args.out, args.eps_rows, args.eps_test_rows, args.eps_cols, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
