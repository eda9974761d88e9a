"""The numpy API against the independent test vectors (tests/vectors) and
against bad input."""

import json
import os
import struct

import numpy as np
import pytest

import mcgq

HERE = os.path.dirname(os.path.abspath(__file__))
VECTORS = os.environ.get("MCGQ_VECTORS_DIR",
                         os.path.join(HERE, "..", "..", "tests", "vectors"))


def _load(name):
    path = os.path.join(VECTORS, name)
    if not os.path.exists(path):
        pytest.skip("test vectors not found at %s (set MCGQ_VECTORS_DIR)" % path)
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _quantize_cases():
    path = os.path.join(VECTORS, "quantize.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _rle_cases():
    path = os.path.join(VECTORS, "rle.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _f32_bits(x):
    return struct.pack("<f", x).hex()


def _f64_bits(x):
    return struct.pack("<d", x).hex()


def test_vectors_present():
    assert len(_load("quantize.jsonl")) > 0 and len(_load("rle.jsonl")) > 0


# ------------------------------------------------------------ vectors

@pytest.mark.parametrize("case", _quantize_cases(),
                         ids=lambda c: "%s-n%d-k%g" % (c["kind"], c["n"], c["k"]))
def test_quantize_vector(case):
    g = np.frombuffer(bytes.fromhex(case["g_bits"]), dtype="<f4").astype(np.float32)
    assert g.size == case["n"]
    g_int, st = mcgq.quantize(g, case["k"], case["u"])
    assert g_int.tolist() == case["g_int"]
    assert _f32_bits(st.scale) == case["scale_bits"]
    assert st.n == case["n"]
    assert mcgq.resolve_samples(case["n"], k=case["k"]) == case["N"]
    if any(case["g_int"]):
        assert st.samples == case["N"]
        assert sum(abs(v) for v in case["g_int"]) == case["N"]
    assert _f64_bits(st.w1) == case["w1_bits"]
    assert _f64_bits(mcgq.wasserstein(g, g_int)) == case["w1_bits"]
    assert st.nonzeros == sum(1 for v in case["g_int"] if v)
    # Residual error feedback: same integers, damped scale.
    g_int_d, st_d = mcgq.quantize(g, case["k"], case["u"], damped=True)
    assert np.array_equal(g_int_d, g_int)
    assert _f32_bits(st_d.scale) == case["scale_residual_bits"]
    # N given directly gives the same draw.
    g_int_n, _ = mcgq.quantize(g, case["k"], case["u"], samples=case["N"])
    assert np.array_equal(g_int_n, g_int)


@pytest.mark.parametrize("case", _rle_cases(), ids=lambda c: "n%d" % len(c["g_int"]))
def test_rle_vector(case):
    g_int = np.array(case["g_int"], dtype=np.int32)
    data, bits = mcgq.rle_encode(g_int)
    assert bits == case["bits"]
    assert data.hex() == case["hex"]
    assert mcgq.rle_decode(bytes.fromhex(case["hex"]), g_int.size).tolist() == case["g_int"]


def test_golden_rle_example():
    data, bits = mcgq.rle_encode(np.array([2, -1, 0, 0, 0, 3, 0, 1], np.int32))
    assert bits == 86 and data.hex() == "00000003000000025c6c24"


# ------------------------------------------------------------ container

def _layers(rng, sizes, **kw):
    return [mcgq.Layer(rng.standard_normal(n).astype(np.float32), layer_id=i, **kw)
            for i, n in enumerate(sizes)]


def test_encode_matches_quantize_per_layer():
    rng = np.random.default_rng(1)
    layers = _layers(rng, [1, 100, 5000], k=0.3)
    msg, stats = mcgq.encode(layers, seed=9, step=4, rank=2)
    assert len(msg) <= mcgq.max_output_size(layers)
    info = mcgq.message_info(msg)
    assert info["layer_count"] == 3 and info["total_n"] == 5101
    assert info["total_bytes"] == len(msg)
    g_int, scales = mcgq.decode_ints(msg)
    pos = 0
    for i, layer in enumerate(layers):
        u = mcgq.random_word(9, 4, i, 2)
        ref, st = mcgq.quantize(layer.g, 0.3, u)
        n = layer.g.size
        assert np.array_equal(g_int[pos:pos + n], ref)
        assert scales[i] == np.float32(st.scale)
        assert stats[i].scale == st.scale and stats[i].samples == st.samples
        assert mcgq.message_layer(msg, i)["n"] == n
        pos += n
    # decode is one float multiply per element.
    expected = np.concatenate([np.float32(scales[i]) * g_int[o:o + l.g.size].astype(np.float32)
                               for i, (o, l) in enumerate(zip([0, 1, 101], layers))])
    assert np.array_equal(mcgq.decode(msg).view(np.int32), expected.view(np.int32))
    # One rank: acc = fmaf(s, g, 0) / 1 = s*g rounded once, the same as decode.
    assert np.array_equal(mcgq.decode_average([msg]).view(np.int32),
                          expected.view(np.int32))


def test_encode_accumulators_and_kstate_in_place():
    rng = np.random.default_rng(2)
    g = rng.standard_normal(4000).astype(np.float32)
    acc = np.zeros_like(g)
    ks = mcgq.kstate_init(0.2)
    layer = mcgq.Layer(g, k=0.2, accumulate="reset", accum=acc, dynamic_k=True,
                       kstate=ks, delta_k=1.0)
    msg, _ = mcgq.encode([layer], seed=1, step=0)
    g_int, _ = mcgq.decode_ints(msg)
    # Alg 4 invariants: sampled elements reset to 0, the rest hold ag_old + g.
    assert np.all(acc[g_int != 0] == 0)
    assert np.array_equal(acc[g_int == 0], g[g_int == 0])
    assert ks.started == 1 and ks.k == 0.2
    d1 = ks.d_prev
    mcgq.encode([layer], seed=1, step=1)
    d2 = ks.d_prev
    # Alg 3: K = clamp(K + delta_k * (d_prev - d), k_min, k_max), in double.
    assert ks.k == min(max(0.2 + 1.0 * (d1 - d2), 0.01), 8.0)


def test_decode_average_two_ranks_close_to_mean():
    rng = np.random.default_rng(3)
    g = [rng.standard_normal(3000).astype(np.float32) for _ in range(2)]
    msgs = [mcgq.encode([mcgq.Layer(g[r], k=0.5)], seed=5, step=0, rank=r)[0]
            for r in range(2)]
    avg = mcgq.decode_average(msgs)
    a, b = mcgq.decode(msgs[0]), mcgq.decode(msgs[1])
    # fmaf(s1, g1, s0*g0) / 2 differs from (a + b) / 2 by at most one
    # rounding of the product s0*g0 and one of the sum: 2 ulp of the result.
    assert np.allclose(avg, (a.astype(np.float64) + b) / 2, rtol=2.5e-7, atol=1e-30)


def test_checksum_message_roundtrip():
    rng = np.random.default_rng(4)
    layers = _layers(rng, [20000], k=0.1, checksum=True)
    msg, _ = mcgq.encode(layers)
    assert mcgq.message_info(msg)["flags"] & 1
    mcgq.decode(msg)


# ------------------------------------------------------------ bad input

@pytest.mark.parametrize("k", [0.0, -0.5, float("nan"), float("inf"), 64.5])
def test_bad_k_raises(k):
    g = np.ones(10, np.float32)
    with pytest.raises(mcgq.InvalidArgument) as ei:
        mcgq.quantize(g, k, 1)
    assert "K" in str(ei.value) or "k" in str(ei.value)
    assert isinstance(ei.value, ValueError)
    with pytest.raises(mcgq.InvalidArgument):
        mcgq.encode([mcgq.Layer(g, k=k)])


def test_array_checks_never_copy():
    g = np.ones(10, np.float32)
    with pytest.raises(TypeError):
        mcgq.quantize(np.ones(10, np.float64), 0.5, 1)
    with pytest.raises(TypeError):
        mcgq.quantize(np.ones(10, ">f4"), 0.5, 1)
    with pytest.raises(TypeError):
        mcgq.quantize([1.0, 2.0], 0.5, 1)
    with pytest.raises(ValueError):
        mcgq.quantize(np.ones(20, np.float32)[::2], 0.5, 1)
    with pytest.raises(ValueError):
        mcgq.wasserstein(g, np.zeros(9, np.int32))
    with pytest.raises(TypeError):
        mcgq.wasserstein(g, np.zeros(10, np.int64))
    with pytest.raises(TypeError):
        mcgq.rle_encode(np.zeros(4, np.int64))
    with pytest.raises(ValueError):
        mcgq.encode([mcgq.Layer(g, accumulate="reset", accum=np.zeros(9, np.float32))])
    ro = np.zeros(10, np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError):
        mcgq.encode([mcgq.Layer(g, accumulate="reset", accum=ro)])
    with pytest.raises(ValueError):
        mcgq.encode([mcgq.Layer(g, accumulate="often")])
    with pytest.raises(TypeError):
        mcgq.quantize(g, "0.5", 1)


def test_integer_ranges_are_checked():
    for args in [(-1, 0, 0, 0), (0, 2**64, 0, 0), (0, 0, 2**32, 0), (0, 0, 0, -1)]:
        with pytest.raises(ValueError):
            mcgq.random_word(*args)
    with pytest.raises(ValueError):
        mcgq.quantize(np.ones(4, np.float32), 1.0, 2**32)
    with pytest.raises(TypeError):
        mcgq.random_word(0.5, 0, 0, 0)


def test_accumulator_mode_needs_accumulator():
    with pytest.raises(mcgq.InvalidArgument):
        mcgq.encode([mcgq.Layer(np.ones(10, np.float32), accumulate="reset")])


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nonfinite_changes_nothing(bad):
    g = np.ones(100, np.float32)
    g[37] = bad
    with pytest.raises(mcgq.NonFinite):
        mcgq.quantize(g, 0.5, 1)
    acc = np.full(100, 0.25, np.float32)
    good = mcgq.Layer(np.ones(50, np.float32), accumulate="residual",
                      accum=np.full(50, 0.5, np.float32))
    with pytest.raises(mcgq.NonFinite) as ei:
        mcgq.encode([good, mcgq.Layer(g, accumulate="residual", accum=acc)])
    assert np.all(acc == 0.25) and np.all(good.accum == 0.5)
    assert ei.value.layer_stats[1].status == 11


def test_error_carries_status_and_detail():
    with pytest.raises(mcgq.Error) as ei:
        mcgq.quantize(np.ones(4, np.float32), -1.0, 1)
    assert ei.value.status == 1
    assert ei.value.detail


def test_corrupt_bytes_raise():
    rng = np.random.default_rng(5)
    msg, _ = mcgq.encode(_layers(rng, [300, 9000], k=0.2, checksum=True))
    n = mcgq.message_info(msg)["total_n"]
    for cut in list(range(0, 100)) + [len(msg) - 1]:
        with pytest.raises(mcgq.Error):
            mcgq.decode(msg[:cut], n)
    with pytest.raises(mcgq.Error):
        mcgq.decode(msg + b"\0", n)
    bad = bytearray(msg)
    bad[0] ^= 0xFF                                  # magic
    with pytest.raises(mcgq.CorruptStream):
        mcgq.decode(bytes(bad), n)
    header = 32 + 56 * 2
    for pos in range(header, len(msg), 7):          # payloads: CRC32C catches all
        bad = bytearray(msg)
        bad[pos] ^= 0x10
        with pytest.raises(mcgq.CorruptStream):
            mcgq.decode(bytes(bad), n)
        with pytest.raises(mcgq.CorruptStream):
            mcgq.decode_average([msg, bytes(bad)], n)
    for seed in range(50):                          # garbage of every size
        junk = np.random.default_rng(seed).integers(0, 256, seed * 7, dtype=np.uint8)
        with pytest.raises(mcgq.Error):
            mcgq.decode(junk, n)
    with pytest.raises(mcgq.Error):                 # wrong n for the message
        mcgq.decode(msg, n + 1)
    with pytest.raises(TypeError):
        mcgq.decode("not bytes")


def test_corrupt_rle_raises():
    data, _ = mcgq.rle_encode(np.array([2, -1, 0, 0, 0, 3, 0, 1], np.int32))
    bad = bytearray(data)
    bad[-1] |= 0x01                                  # nonzero padding bit
    with pytest.raises(mcgq.CorruptStream):
        mcgq.rle_decode(bytes(bad), 8)
    with pytest.raises(mcgq.CorruptStream):
        mcgq.rle_decode(data, 9)                     # missing tokens
    with pytest.raises(mcgq.CorruptStream):
        mcgq.rle_decode(data[:-1], 8)


def test_decode_average_rejects_mismatched_messages():
    rng = np.random.default_rng(6)
    a, _ = mcgq.encode(_layers(rng, [100]))
    b, _ = mcgq.encode(_layers(rng, [120]))
    with pytest.raises(mcgq.Error):
        mcgq.decode_average([a, b])
    with pytest.raises(ValueError):
        mcgq.decode_average([])


def test_version():
    assert mcgq.version() == "0.1.0" and mcgq.version_code() == 100
    assert isinstance(mcgq.gpu_available(), bool)
