#!/usr/bin/env python3
"""End-to-end tests of the `mcgq` command-line tool (stdlib only).

Expected values come from tests/vectors/*.jsonl (computed independently of
this project's code), from the paper's golden RLE example (DESIGN.md 3), or
from arithmetic done here in Python on the tool's own outputs (round trips,
scale * g_int in float32).  Run:
    test_cli.py --mcgq build/tools/mcgq --vectors tests/vectors
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import unittest

MCGQ = None
VECTORS = None


def run(*args, expect=0):
    """Runs mcgq; returns (stdout, stderr); checks the exit status."""
    p = subprocess.run([MCGQ, *map(str, args)], capture_output=True, text=True, timeout=120)
    if p.returncode != expect:
        raise AssertionError(f"mcgq {' '.join(map(str, args))}: exit {p.returncode}, "
                             f"expected {expect}\nstdout: {p.stdout}\nstderr: {p.stderr}")
    return p.stdout, p.stderr


def run_json(*args):
    out, err = run(*args)
    return json.loads(out)


def f32_bits_hex(x):
    return struct.pack("<f", x).hex()


def to_f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def load_jsonl(name):
    with open(os.path.join(VECTORS, name)) as f:
        return [json.loads(line) for line in f if line.strip()]


def cut_message(n, n_coded=0):
    """An 88-byte container (docs/FORMAT.md 2) of one CUT layer that claims n
    elements and codes none of them: valid, and tiny for what it claims."""
    header = b"MCGQ" + struct.pack("<HHII", 1, 0, 1, 0) + struct.pack("<QQ", 88, n)
    entry = struct.pack("<QQQQQfIBBBBHH", n, n_coded, 0, 0, 88, 0.0, 0,
                        1, 0, 0, 13, 3, 0)  # fixed width, FIXED_WIDTH|CUT
    assert len(header) == 32 and len(entry) == 56
    return header + entry


class CliTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="mcgq_cli_")
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.dir, name)

    def write(self, name, data):
        p = self.path(name)
        with open(p, "wb") as f:
            f.write(data)
        return p

    def read(self, name):
        with open(self.path(name), "rb") as f:
            return f.read()

    def gradient(self, name, n, seed=1):
        """n float32 values of a fixed-seed normal/heavy mix; returns path, values."""
        import random
        rng = random.Random(seed)
        values = [to_f32(rng.gauss(0, 1) * (10 if rng.random() < 0.05 else 1))
                  for _ in range(n)]
        return self.write(name, struct.pack(f"<{n}f", *values)), values


class QuantizeVectors(CliTest):
    def test_every_vector_bit_exact(self):
        cases = [c for c in load_jsonl("quantize.jsonl") if c["n"] >= 1]
        self.assertGreater(len(cases), 20)
        for i, c in enumerate(cases):
            with self.subTest(case=i, kind=c["kind"], n=c["n"]):
                g = self.write("g.f32", bytes.fromhex(c["g_bits"]))
                js = run_json("quantize", "--in", g, "--k", repr(c["k"]), "--u", c["u"],
                              "--out", self.path("gint.i32"))
                self.assertEqual(self.read("gint.i32"),
                                 struct.pack(f"<{c['n']}i", *c["g_int"]))
                self.assertEqual(js["N"], c["N"])
                self.assertEqual(js["n"], c["n"])
                self.assertEqual(js["u"], c["u"])
                self.assertEqual(js["scale_bits"], c["scale_bits"])
                self.assertEqual(f32_bits_hex(js["scale"]), c["scale_bits"])
                self.assertEqual(struct.pack("<d", js["w1"]).hex(), c["w1_bits"])
                self.assertEqual(js["nonzeros"], sum(1 for v in c["g_int"] if v))
                # Paper ratio from the stream length the rle command measures.
                rle = run_json("rle", "--in", self.path("gint.i32"), "--out", self.path("s"))
                self.assertEqual(js["stream_bits"], rle["stream_bits"])
                self.assertEqual(js["B_g"], rle["B_g"])
                self.assertEqual(js["B_RLE"], rle["B_RLE"])
                self.assertAlmostEqual(js["paper_ratio"],
                                       32 * c["n"] / (rle["stream_bits"] + 32), places=12)

    def test_residual_scale_is_damped(self):
        cases = [c for c in load_jsonl("quantize.jsonl") if c["n"] >= 1]
        for i, c in enumerate(cases):
            with self.subTest(case=i, kind=c["kind"]):
                g = self.write("g.f32", bytes.fromhex(c["g_bits"]))
                js = run_json("quantize", "--in", g, "--k", repr(c["k"]), "--u", c["u"],
                              "--residual", "--out", self.path("gint.i32"))
                self.assertEqual(js["scale_bits"], c["scale_residual_bits"])
                self.assertEqual(self.read("gint.i32"),
                                 struct.pack(f"<{c['n']}i", *c["g_int"]))

    def test_samples_overrides_k(self):
        c = next(c for c in load_jsonl("quantize.jsonl") if c["n"] >= 8 and c["N"] > 1)
        g = self.write("g.f32", bytes.fromhex(c["g_bits"]))
        js = run_json("quantize", "--in", g, "--samples", c["N"], "--u", c["u"],
                      "--out", self.path("gint.i32"))
        self.assertEqual(js["N"], c["N"])
        self.assertEqual(self.read("gint.i32"), struct.pack(f"<{c['n']}i", *c["g_int"]))

    def test_seed_gives_the_same_u_as_encode(self):
        g, _ = self.gradient("g.f32", 300)
        q = run_json("quantize", "--in", g, "--k", "0.5", "--seed", 99, "--step", 7,
                     "--layer", 3, "--rank", 2, "--out", self.path("q.i32"))
        e = run_json("encode", "--in", g, "--out", self.path("m"), "--k", "0.5",
                     "--seed", 99, "--step", 7, "--layer", 3, "--rank", 2)
        self.assertEqual(e["layer_stats"][0]["u"], q["u"])
        run("decode", "--in", self.path("m"), "--ints", self.path("d.i32"))
        self.assertEqual(self.read("d.i32"), self.read("q.i32"))
        # wire ratio of quantize is that of this one-layer container.
        self.assertEqual(q["wire_bytes"], os.path.getsize(self.path("m")))
        self.assertAlmostEqual(q["wire_ratio"], 4 * 300 / q["wire_bytes"], places=12)


class Rle(CliTest):
    def test_paper_golden_example(self):
        gi = self.write("g.i32", struct.pack("<8i", 2, -1, 0, 0, 0, 3, 0, 1))
        js = run_json("rle", "--in", gi, "--out", self.path("s.bin"))
        self.assertEqual(self.read("s.bin"), bytes.fromhex("00000003000000025c6c24"))
        self.assertEqual((js["B_g"], js["B_RLE"], js["stream_bits"], js["bytes"]),
                         (3, 2, 86, 11))
        run("unrle", "--in", self.path("s.bin"), "--n", 8, "--out", self.path("r.i32"))
        self.assertEqual(self.read("r.i32"), self.read("g.i32"))

    def test_rle_vectors_and_round_trip(self):
        cases = [c for c in load_jsonl("rle.jsonl") if c["g_int"]]
        self.assertGreater(len(cases), 10)
        for i, c in enumerate(cases):
            with self.subTest(case=i):
                n = len(c["g_int"])
                gi = self.write("g.i32", struct.pack(f"<{n}i", *c["g_int"]))
                js = run_json("rle", "--in", gi, "--out", self.path("s.bin"))
                self.assertEqual(self.read("s.bin").hex(), c["hex"])
                self.assertEqual(js["stream_bits"], c["bits"])
                run("unrle", "--in", self.path("s.bin"), "--n", n, "--out", self.path("r.i32"))
                self.assertEqual(self.read("r.i32"), self.read("g.i32"))

    def test_unrle_rejects_a_wrong_n(self):
        gi = self.write("g.i32", struct.pack("<8i", 2, -1, 0, 0, 0, 3, 0, 1))
        run("rle", "--in", gi, "--out", self.path("s.bin"))
        for n in (7, 9):
            out, err = run("unrle", "--in", self.path("s.bin"), "--n", n,
                           "--out", self.path("r.i32"), expect=2)
            self.assertEqual(out, "")
            self.assertIn("corrupt stream", err)


class Container(CliTest):
    def test_encode_decode_round_trip_multi_layer(self):
        g, values = self.gradient("g.f32", 5000)
        e = run_json("encode", "--in", g, "--out", self.path("m"), "--k", "0.2", "--seed", 5,
                     "--step", 11, "--layers", "1000,3000,1000", "--checksum")
        self.assertEqual((e["n"], e["layers"]), (5000, 3))
        self.assertEqual(e["bytes"], os.path.getsize(self.path("m")))
        info = run_json("info", "--in", self.path("m"))
        self.assertTrue(info["crc32c"])
        self.assertEqual((info["layers"], info["total_n"], info["total_bytes"]),
                         (3, 5000, e["bytes"]))
        self.assertEqual([l["n"] for l in info["layer"]], [1000, 3000, 1000])
        d = run_json("decode", "--in", self.path("m"), "--out", self.path("d.f32"),
                     "--ints", self.path("d.i32"))
        self.assertEqual(d["n"], 5000)
        ints = struct.unpack("<5000i", self.read("d.i32"))
        floats = struct.unpack("<5000f", self.read("d.f32"))
        # Each layer must be what quantize gives for the same u (layer L + i).
        offset = 0
        for i, (n, stats) in enumerate(zip([1000, 3000, 1000], e["layer_stats"])):
            part = self.write("p.f32", struct.pack(f"<{n}f", *values[offset:offset + n]))
            q = run_json("quantize", "--in", part, "--k", "0.2", "--seed", 5, "--step", 11,
                         "--layer", i, "--out", self.path("p.i32"))
            self.assertEqual(q["u"], stats["u"])
            self.assertEqual(struct.unpack(f"<{n}i", self.read("p.i32")),
                             ints[offset:offset + n])
            self.assertEqual(f32_bits_hex(d["scales"][i]), q["scale_bits"])
            self.assertEqual(info["layer"][i]["N"], q["N"])
            # Dequantized = scale * g_int rounded to float32 (the product of
            # two float32 is exact in double, so one rounding is the float
            # product).
            scale = to_f32(q["scale"])
            for k in range(n):
                self.assertEqual(floats[offset + k], to_f32(scale * ints[offset + k]))
            offset += n

    def test_same_arguments_same_bytes(self):
        g, _ = self.gradient("g.f32", 2000)
        args = ["--k", "1", "--seed", 3, "--step", 4, "--rank", 1]
        run("encode", "--in", g, "--out", self.path("a"), *args)
        run("encode", "--in", g, "--out", self.path("b"), *args)
        self.assertEqual(self.read("a"), self.read("b"))
        run("encode", "--in", g, "--out", self.path("c"), "--k", "1", "--seed", 3,
            "--step", 5, "--rank", 1)
        self.assertNotEqual(self.read("a"), self.read("c"))


class BadInput(CliTest):
    def expect_failure(self, *args, mention=None):
        out, err = run(*args, expect=2)
        self.assertEqual(out, "", "nothing on stdout on failure")
        lines = err.strip().splitlines()
        self.assertEqual(len(lines), 1, f"one line on stderr, got {err!r}")
        self.assertTrue(lines[0].startswith("mcgq"), lines[0])
        if mention:
            self.assertIn(mention, lines[0])
        return lines[0]

    def test_bad_inputs_exit_2_with_one_line(self):
        g, values = self.gradient("g.f32", 100)
        gi = self.write("g.i32", struct.pack("<4i", 1, 0, 0, -1))
        odd = self.write("odd.f32", b"\0" * 10)
        empty = self.write("empty.f32", b"")
        nan = self.write("nan.f32", struct.pack("<3f", 1.0, float("nan"), 2.0))
        missing = self.path("does-not-exist.f32")
        run("encode", "--in", g, "--out", self.path("m"), "--k", "0.5", "--seed", 1,
            "--step", 1, "--checksum")
        msg = self.read("m")
        corrupt = bytearray(msg)
        corrupt[-1] ^= 0x40  # payload byte: the CRC32C must catch it
        bad_crc = self.write("crc.mcgq", bytes(corrupt))
        truncated = self.write("trunc.mcgq", msg[:-8])
        cases = [
            (("frobnicate",), "unknown command"),
            (("quantize", "--k", "1", "--u", "1"), "missing option --in"),
            (("quantize", "--in", g, "--u", "1"), "--k"),
            (("quantize", "--in", g, "--k", "1"), "--seed"),
            (("quantize", "--in", g, "--k", "1", "--u", "1", "--seed", "2", "--step", "1"),
             "either --u"),
            (("quantize", "--in", g, "--k", "1", "--u", "1", "--frob"), "unknown option"),
            (("quantize", "--in", g, "--k", "abc", "--u", "1"), "--k"),
            (("quantize", "--in", g, "--k", "1", "--u", "4294967296"), "--u"),
            (("quantize", "--in", g, "--k", "1", "--u", "-3"), "--u"),
            (("quantize", "--in", g, "--k", "1x", "--u", "1"), "--k"),
            (("quantize", "--in", g, "--k", "nan", "--u", "1"), "--k"),
            (("quantize", "--in", g, "--k"), "needs a value"),
            (("quantize", "--in", g, "--k", "1", "--k", "2", "--u", "1"), "twice"),
            (("quantize", "--in", missing, "--k", "1", "--u", "1"), "does-not-exist"),
            (("quantize", "--in", odd, "--k", "1", "--u", "1"), "multiple of 4"),
            (("quantize", "--in", self.dir, "--k", "1", "--u", "1"), "not a regular file"),
            (("quantize", "--in", empty, "--k", "1", "--u", "1"), "n = 0"),
            (("quantize", "--in", g, "--k", "0", "--u", "1"), "invalid argument"),
            (("quantize", "--in", g, "--k", "65", "--u", "1"), "invalid argument"),
            (("quantize", "--in", g, "--samples", "0", "--u", "1"), "--samples"),
            (("quantize", "--in", nan, "--k", "1", "--u", "1"), "non-finite"),
            (("quantize", "--in", g, "--k", "1", "--u", "1", "--out", self.dir), "cannot create"),
            (("rle", "--in", gi), "missing option --out"),
            (("rle", "--in", odd, "--out", self.path("s")), "multiple of 4"),
            (("rle", "--in", empty, "--out", self.path("s")), "n = 0"),
            (("unrle", "--in", gi, "--n", "0", "--out", self.path("r")), "--n"),
            (("unrle", "--in", gi, "--n", "4", "--out", self.path("r")), "corrupt stream"),
            (("unrle", "--in", missing, "--n", "4", "--out", self.path("r")), "does-not-exist"),
            (("encode", "--in", g, "--out", self.path("x"), "--k", "1", "--seed", "1"), "--step"),
            (("encode", "--in", g, "--out", self.path("x"), "--k", "1", "--seed", "1",
              "--step", "1", "--layers", "50,40"), "add up"),
            (("encode", "--in", g, "--out", self.path("x"), "--k", "1", "--seed", "1",
              "--step", "1", "--layers", "50,,50"), "--layers"),
            (("encode", "--in", nan, "--out", self.path("x"), "--k", "1", "--seed", "1",
              "--step", "1"), "non-finite"),
            (("decode", "--in", self.path("m")), "--out"),
            (("decode", "--in", g, "--out", self.path("d")), "corrupt stream"),
            (("decode", "--in", bad_crc, "--out", self.path("d")), "corrupt stream"),
            (("decode", "--in", truncated, "--ints", self.path("d")), "corrupt stream"),
            (("decode", "--in", empty, "--out", self.path("d")), "corrupt stream"),
            (("info", "--in", truncated), "corrupt stream"),
            (("info", "--in", missing), "does-not-exist"),
            (("demo", "--n", "0"), "--n"),
            (("demo", "--dist", "uniform"), "--dist"),
        ]
        for args, mention in cases:
            with self.subTest(args=" ".join(map(str, args))):
                self.expect_failure(*args, mention=mention)

    def test_failed_command_writes_no_output_file(self):
        nan = self.write("nan.f32", struct.pack("<3f", 1.0, float("inf"), 2.0))
        self.expect_failure("quantize", "--in", nan, "--k", "1", "--u", "1",
                            "--out", self.path("gint.i32"))
        self.assertFalse(os.path.exists(self.path("gint.i32")))


class HostileInput(CliTest):
    """Issue 14: a message may claim any size; a path may be any file type;
    numbers must mean what --help says."""

    def expect_failure(self, *args, mention=(), timeout=20):
        p = subprocess.run([MCGQ, *map(str, args)], capture_output=True, text=True,
                           timeout=timeout)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertEqual(p.stdout, "")
        lines = p.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, p.stderr)
        for m in mention:
            self.assertIn(m, lines[0])
        return lines[0]

    def test_decode_refuses_a_claimed_size_over_the_limit_before_allocating(self):
        msg = self.write("cut.mcgq", cut_message(2**28))
        info = run_json("info", "--in", msg)  # valid: info allocates nothing per element
        self.assertEqual((info["total_n"], info["total_bytes"]), (2**28, 88))
        for out in (("--out", self.path("d.f32")), ("--ints", self.path("d.i32"))):
            # 2 s: well under the 11 s it took to allocate and fill 2^28 values.
            line = self.expect_failure("decode", "--in", msg, *out, timeout=2,
                                       mention=("268435456", "134217728",
                                                "--max-elements"))
            self.assertIn("cut.mcgq", line)
            self.assertFalse(os.path.exists(out[1]))
        self.expect_failure("decode", "--in", self.write("big.mcgq", cut_message(2**32 - 1)),
                            "--out", self.path("d.f32"), timeout=2,
                            mention=("4294967295", "--max-elements"))

    def test_max_elements_raises_and_lowers_the_limit(self):
        msg = self.write("cut.mcgq", cut_message(1000, n_coded=0))
        d = run_json("decode", "--in", msg, "--out", self.path("d.f32"),
                     "--max-elements", 1000)
        self.assertEqual(d["n"], 1000)
        self.assertEqual(self.read("d.f32"), b"\0" * 4000)  # elements past n_coded are 0
        self.expect_failure("decode", "--in", msg, "--out", self.path("e.f32"),
                            "--max-elements", 999, mention=("1000", "999"))
        self.assertFalse(os.path.exists(self.path("e.f32")))
        self.expect_failure("decode", "--in", msg, "--out", self.path("e.f32"),
                            "--max-elements", 0, mention=("--max-elements",))

    def test_a_fifo_is_refused_without_blocking(self):
        fifo = self.path("f")
        os.mkfifo(fifo)
        for args in (("info", "--in", fifo),
                     ("decode", "--in", fifo, "--out", self.path("d")),
                     ("quantize", "--in", fifo, "--k", "1", "--u", "1"),
                     ("rle", "--in", fifo, "--out", self.path("s")),
                     ("unrle", "--in", fifo, "--n", "4", "--out", self.path("r")),
                     ("encode", "--in", fifo, "--out", self.path("m"), "--k", "1",
                      "--seed", "1", "--step", "1")):
            with self.subTest(args=args[0]):
                self.expect_failure(*args, timeout=5, mention=("'%s'" % fifo, "FIFO"))

    def test_an_output_fifo_without_reader_is_refused_without_blocking(self):
        g = self.write("g.f32", struct.pack("<4f", 1, -2, 3, 0.5))
        fifo = self.path("out-fifo")
        os.mkfifo(fifo)
        self.expect_failure("quantize", "--in", g, "--k", "1", "--u", "1", "--out", fifo,
                            timeout=5, mention=("'%s'" % fifo, "FIFO", "no process"))
        # A character device that takes writes is fine.
        run("quantize", "--in", g, "--k", "1", "--u", "1", "--out", "/dev/null")

    def test_devices_and_directories_are_named_by_type(self):
        self.expect_failure("info", "--in", "/dev/null", timeout=5,
                            mention=("/dev/null", "character device"))
        self.expect_failure("info", "--in", self.dir, timeout=5,
                            mention=("directory",))

    def test_numbers_are_strict_decimal(self):
        g = self.write("g.f32", struct.pack("<4f", 1, -2, 3, 0.5))
        # --u 8 and --u 010 would be the same word if 010 were read as octal.
        bad_u = ["010", "0x10", "0X10", " 8", "8 ", "+8", "-0", "", "1e3", "8\n",
                 "18446744073709551616", "99999999999999999999999"]
        for u in bad_u:
            with self.subTest(u=u):
                self.expect_failure("quantize", "--in", g, "--k", "1", "--u", u,
                                    mention=("--u",))
        for seed in ("0x10", "010", "18446744073709551616"):
            with self.subTest(seed=seed):
                self.expect_failure("encode", "--in", g, "--out", self.path("m"), "--k", "1",
                                    "--seed", seed, "--step", "1", mention=("--seed",))
        self.assertEqual(run_json("quantize", "--in", g, "--k", "1", "--u", "0")["u"], 0)
        self.assertEqual(run_json("quantize", "--in", g, "--k", "1",
                                  "--u", "4294967295")["u"], 4294967295)
        self.assertEqual(run_json("quantize", "--in", g, "--k", "1", "--seed",
                                  "18446744073709551615", "--step", "0")["n"], 4)
        for layers in ("0x2,2", "02,2", "2,+2", "2, 2", "2,2,", "18446744073709551617,2"):
            with self.subTest(layers=layers):
                self.expect_failure("encode", "--in", g, "--out", self.path("m"), "--k", "1",
                                    "--seed", "1", "--step", "1", "--layers", layers,
                                    mention=("--layers",))
        self.assertEqual(run_json("encode", "--in", g, "--out", self.path("m"), "--k", "1",
                                  "--seed", "1", "--step", "1", "--layers", "1,3")["layers"], 2)
        for n in ("0x8", "010"):
            with self.subTest(n=n):
                self.expect_failure("demo", "--n", n, mention=("--n",))

    def test_real_numbers_are_plain_decimal(self):
        g = self.write("g.f32", struct.pack("<4f", 1, -2, 3, 0.5))
        for k in ("0x1p-1", " 0.5", "0.5 ", "0.5x", "inf", "-inf", "nan", "infinity",
                  "1e999", "", "0.5\n", ".", "e5"):
            with self.subTest(k=k):
                self.expect_failure("quantize", "--in", g, "--k", k, "--u", "1",
                                    mention=("--k",))
        for k, N in (("0.5", 2), ("1e0", 4), ("2.", 8), (".25", 1), ("1E-1", 1)):
            with self.subTest(k=k):
                self.assertEqual(run_json("quantize", "--in", g, "--k", k, "--u", "1")["N"], N)


class HelpAndDemo(CliTest):
    def test_help_of_every_subcommand(self):
        out, _ = run("--help")
        commands = [line.split()[0] for line in out.splitlines() if line.startswith("  ")]
        self.assertIn("quantize", commands)
        self.assertIn("demo", commands)
        for c in commands:
            with self.subTest(command=c):
                out, err = run(c, "--help")
                self.assertTrue(out.startswith("usage: mcgq " + c), out[:80])
                self.assertEqual(err, "")

    def test_demo_table(self):
        out, err = run("demo", "--n", 4096, "--dist", "normal")
        self.assertEqual(err, "")
        rows = [l.split() for l in out.splitlines() if l and not l.startswith("#")]
        self.assertEqual(rows[0][0], "K")
        body = rows[1:]
        self.assertEqual([float(r[0]) for r in body], [0.01, 0.05, 0.1, 0.2, 0.5, 1, 2, 4])
        import math
        for r in body:
            k, N, nonzeros = float(r[0]), int(r[1]), int(r[2])
            self.assertEqual(N, math.ceil(4096 * k))
            self.assertLessEqual(nonzeros, min(N, 4096))
            bits = float(r[5])
            self.assertAlmostEqual(float(r[6]), 32 / bits, delta=0.01 * 32 / bits)
        # More samples, smaller error: the estimate's variance falls like 1/K.
        errors = [float(r[8]) for r in body]
        self.assertLess(errors[-1], errors[0])


def main():
    global MCGQ, VECTORS
    parser = argparse.ArgumentParser()
    parser.add_argument("--mcgq", required=True)
    parser.add_argument("--vectors", required=True)
    args, rest = parser.parse_known_args()
    MCGQ, VECTORS = os.path.abspath(args.mcgq), args.vectors
    unittest.main(argv=[sys.argv[0], *rest], verbosity=2)


if __name__ == "__main__":
    main()
