"""Issue 14: hostile messages and wrong arguments of the numpy API.

A message may claim far more elements than it holds (a CUT layer codes none
of them), so decoding without a caller-given size is capped by max_elements;
and every wrong argument of a public function raises an mcgq exception, or a
TypeError / ValueError whose message names the argument."""

import ctypes
import struct
import time

import numpy as np
import pytest

import mcgq


def cut_message(n, n_coded=0):
    """An 88-byte container (docs/FORMAT.md 2): one CUT layer that claims n
    elements and codes none.  Valid, and tiny for what it claims."""
    header = b"MCGQ" + struct.pack("<HHII", 1, 0, 1, 0) + struct.pack("<QQ", 88, n)
    entry = struct.pack("<QQQQQfIBBBBHH", n, n_coded, 0, 0, 88, 0.0, 0,
                        1, 0, 0, 13, 3, 0)  # fixed width, FIXED_WIDTH | CUT
    assert len(header) == 32 and len(entry) == 56
    return header + entry


def test_cut_message_is_valid():
    info = mcgq.message_info(cut_message(1000))
    assert (info["total_n"], info["total_bytes"], info["layer_count"]) == (1000, 88, 1)
    assert mcgq.message_layer(cut_message(1000), 0)["n_coded"] == 0


# ------------------------------------------------------------ claimed sizes

DECODERS = {
    "decode": lambda m, **kw: mcgq.decode(m, **kw),
    "decode_ints": lambda m, **kw: mcgq.decode_ints(m, **kw),
    "decode_average": lambda m, **kw: mcgq.decode_average([m, m], **kw),
}


@pytest.mark.parametrize("name", sorted(DECODERS))
@pytest.mark.parametrize("n", [2**28, 2**32 - 1])
def test_claimed_size_over_the_default_limit_is_refused_before_allocating(name, n):
    start = time.monotonic()
    with pytest.raises(mcgq.CapacityExceeded) as ei:
        DECODERS[name](cut_message(n))
    # Allocating and zeroing 2^28 floats took 12 s; a refusal takes microseconds.
    assert time.monotonic() - start < 1.0
    text = str(ei.value)
    assert str(n) in text and str(mcgq.DEFAULT_MAX_ELEMENTS) in text
    assert "max_elements=" in text


@pytest.mark.parametrize("name", sorted(DECODERS))
def test_max_elements_sets_the_limit(name):
    msg = cut_message(1000)
    with pytest.raises(mcgq.CapacityExceeded, match="1000.*999"):
        DECODERS[name](msg, max_elements=999)
    result = DECODERS[name](msg, max_elements=1000)
    values = result[0] if name == "decode_ints" else result
    assert values.size == 1000 and not values.any()  # past n_coded: zeros


@pytest.mark.parametrize("bad, exc", [(0, ValueError), (-5, ValueError),
                                      (2**64, ValueError), (True, TypeError),
                                      (1.5, TypeError), ("big", TypeError)])
def test_max_elements_itself_is_checked(bad, exc):
    for name in DECODERS:
        with pytest.raises(exc, match="max_elements"):
            DECODERS[name](cut_message(10), max_elements=bad)


def test_a_given_output_array_is_the_limit():
    msg = cut_message(1000)
    out = np.full(1000, 7.0, np.float32)
    assert mcgq.decode(msg, out=out, max_elements=10) is out and not out.any()
    out[:] = 7.0
    assert mcgq.decode_average([msg, msg], out=out, max_elements=10) is out
    assert not out.any()
    ints = np.full(1000, 7, np.int32)
    g_int, scales = mcgq.decode_ints(msg, out=ints, max_elements=10)
    assert g_int is ints and not ints.any() and scales.tolist() == [0.0]
    with pytest.raises(ValueError, match="out has 999 elements.*1000"):
        mcgq.decode(msg, out=np.empty(999, np.float32))
    with pytest.raises(TypeError, match="out"):
        mcgq.decode(msg, out=np.empty(1000, np.float64))
    with pytest.raises(TypeError, match="out"):
        mcgq.decode_ints(msg, out=np.empty(1000, np.float32))
    ro = np.empty(1000, np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="out must be writable"):
        mcgq.decode_average([msg], out=ro)
    with pytest.raises(ValueError, match="out"):
        mcgq.decode(msg, n=1000, out=np.empty(1000, np.float32)[::1][:999])


def test_a_given_n_is_the_callers_count_and_checked_before_allocating():
    msg = cut_message(1000)
    assert mcgq.decode(msg, n=1000, max_elements=10).size == 1000
    assert mcgq.decode_average([msg], n=1000, max_elements=10).size == 1000
    # Before: np.empty(2^40 floats) raised numpy's MemoryError (4 TiB).
    for call in (lambda: mcgq.decode(msg, n=2**40),
                 lambda: mcgq.decode_average([msg], n=2**40)):
        with pytest.raises(mcgq.InvalidArgument, match="n = 1099511627776.*1000"):
            call()


def test_rle_decode_n_is_bounded_by_the_layer_limit():
    data, _ = mcgq.rle_encode(np.zeros(4, np.int32))
    with pytest.raises(ValueError, match="n = 4294967296"):
        mcgq.rle_decode(data, 2**32)       # was np.empty of 16 GiB first
    with pytest.raises(mcgq.CorruptStream):
        mcgq.rle_decode(data, 0)
    assert mcgq.rle_decode(data, 4).tolist() == [0, 0, 0, 0]


# ------------------------------------------------------------ wrong arguments

G = np.ones(10, np.float32)
MSG = mcgq.encode([mcgq.Layer(np.arange(1, 11, dtype=np.float32), k=0.5)])[0]
KS = mcgq.kstate_init(0.5)
RLE = mcgq.rle_encode(np.array([2, -1, 0, 0, 0, 3, 0, 1], np.int32))[0]


def L(**kw):
    return mcgq.Layer(G, **kw)


# (call, exception class, text the message must contain)
WRONG = [
    # resolve_samples
    (lambda: mcgq.resolve_samples(10, kstate="x"), TypeError, "kstate"),
    (lambda: mcgq.resolve_samples(-1), ValueError, "n"),
    (lambda: mcgq.resolve_samples(True), TypeError, "n"),
    (lambda: mcgq.resolve_samples(10, k=None), TypeError, "k"),
    (lambda: mcgq.resolve_samples(10, samples=0), ValueError, "samples"),
    (lambda: mcgq.resolve_samples(10, k=0.0), mcgq.InvalidArgument, "k = 0"),
    # quantize / wasserstein
    (lambda: mcgq.quantize(None, 0.5, 1), TypeError, "g"),
    (lambda: mcgq.quantize(G, 10**400, 1), ValueError, "k"),
    (lambda: mcgq.quantize(G, "0.5", 1), TypeError, "k"),
    (lambda: mcgq.quantize(G, 0.5, True), TypeError, "u"),
    (lambda: mcgq.quantize(G, 0.5, 1.0), TypeError, "u"),
    (lambda: mcgq.quantize(G, 0.5, 1, samples=True), TypeError, "samples"),
    (lambda: mcgq.quantize(G, 0.5, 1, samples=2**64), ValueError, "samples"),
    (lambda: mcgq.quantize(G, 0.5, 1, damped="no"), TypeError, "damped"),
    (lambda: mcgq.quantize(G, 0.5, 1, damped=2), TypeError, "damped"),
    (lambda: mcgq.quantize(np.zeros(0, np.float32), 0.5, 1), mcgq.InvalidArgument, "n = 0"),
    (lambda: mcgq.wasserstein(G, None), TypeError, "g_int"),
    (lambda: mcgq.wasserstein(G.reshape(2, 5)[:, :4], np.zeros(8, np.int32)), ValueError,
     "g must be C-contiguous"),
    # K state
    (lambda: mcgq.kstate_init("0.1"), TypeError, "k"),
    (lambda: mcgq.kstate_init(float("nan")), mcgq.InvalidArgument, "K"),
    (lambda: mcgq.kstate_update("x", 0.1), TypeError, "kstate"),
    (lambda: mcgq.kstate_update(KS, "d"), TypeError, "d"),
    (lambda: mcgq.kstate_update(KS, 0.1, k_min="a"), TypeError, "k_min"),
    # RLE
    (lambda: mcgq.rle_encode(None), TypeError, "g_int"),
    (lambda: mcgq.rle_decode(None, 8), TypeError, "data"),
    (lambda: mcgq.rle_decode(RLE, -1), ValueError, "n"),
    (lambda: mcgq.rle_decode(RLE, 8.0), TypeError, "n"),
    (lambda: mcgq.rle_decode(RLE, True), TypeError, "n"),
    # encode / max_output_size / Layer fields
    (lambda: mcgq.encode(None), TypeError, "layers"),
    (lambda: mcgq.encode(5), TypeError, "layers"),
    (lambda: mcgq.encode(b"abc"), TypeError, "layers"),
    (lambda: mcgq.encode(G), TypeError, "layers"),
    (lambda: mcgq.encode([]), ValueError, "layers"),
    (lambda: mcgq.encode([G]), TypeError, "layers[0]"),
    (lambda: mcgq.max_output_size(None), TypeError, "layers"),
    (lambda: mcgq.encode([L()], seed=-1), ValueError, "seed"),
    (lambda: mcgq.encode([L()], step=True), TypeError, "step"),
    (lambda: mcgq.encode([L()], rank=2**32), ValueError, "rank"),
    (lambda: mcgq.encode([mcgq.Layer("g")]), TypeError, "layers[0].g"),
    (lambda: mcgq.encode([L(), L(k=10**400)]), ValueError, "layers[1].k"),
    (lambda: mcgq.encode([L(k=None)]), TypeError, "layers[0].k"),
    (lambda: mcgq.encode([L(samples=1.5)]), TypeError, "layers[0].samples"),
    (lambda: mcgq.encode([L(samples=0)]), ValueError, "layers[0].samples"),
    (lambda: mcgq.encode([L(accumulate=["reset"])]), ValueError, "layers[0].accumulate"),
    (lambda: mcgq.encode([L(accumulate="often")]), ValueError, "layers[0].accumulate"),
    (lambda: mcgq.encode([L(algo=None)]), ValueError, "layers[0].algo"),
    (lambda: mcgq.encode([L(dynamic_k="yes")]), TypeError, "layers[0].dynamic_k"),
    (lambda: mcgq.encode([L(checksum=np.array([1, 2]))]), TypeError, "layers[0].checksum"),
    (lambda: mcgq.encode([L(k_max="8")]), TypeError, "layers[0].k_max"),
    (lambda: mcgq.encode([L(delta_k=[1.0])]), TypeError, "layers[0].delta_k"),
    (lambda: mcgq.encode([L(u=-1)]), ValueError, "layers[0].u"),
    (lambda: mcgq.encode([L(layer_id=-1)]), ValueError, "layers[0].layer_id"),
    (lambda: mcgq.encode([L(layer_id=True)]), TypeError, "layers[0].layer_id"),
    (lambda: mcgq.encode([L(kstate="x", dynamic_k=True)]), TypeError, "layers[0].kstate"),
    (lambda: mcgq.encode([L(accumulate="reset", accum=[0.0] * 10)]), TypeError,
     "layers[0].accum"),
    (lambda: mcgq.encode([L(accumulate="reset", accum=np.zeros(9, np.float32))]),
     ValueError, "layers[0].accum"),
    (lambda: mcgq.encode([L(accumulate="reset")]), mcgq.InvalidArgument, "accum"),
    (lambda: mcgq.encode([L(dynamic_k=True)]), mcgq.InvalidArgument, "kstate"),
    # container reading
    (lambda: mcgq.message_info(None), TypeError, "message"),
    (lambda: mcgq.message_info("MCGQ"), TypeError, "message"),
    (lambda: mcgq.message_info(np.zeros(88, np.int8)), TypeError, "message"),
    (lambda: mcgq.message_info(memoryview(bytes(176))[::2]), ValueError, "message"),
    (lambda: mcgq.message_layer(MSG, -1), ValueError, "index"),
    (lambda: mcgq.message_layer(MSG, 1), mcgq.InvalidArgument, "index 1"),
    (lambda: mcgq.message_layer(MSG, None), TypeError, "index"),
    (lambda: mcgq.decode(None), TypeError, "message"),
    (lambda: mcgq.decode(MSG, n=-1), ValueError, "n"),
    (lambda: mcgq.decode(MSG, n=9), mcgq.InvalidArgument, "n = 9"),
    (lambda: mcgq.decode(MSG, n=10.0), TypeError, "n"),
    (lambda: mcgq.decode(MSG, out=[0.0] * 10), TypeError, "out"),
    (lambda: mcgq.decode_ints(None), TypeError, "message"),
    (lambda: mcgq.decode_average(None), TypeError, "messages"),
    (lambda: mcgq.decode_average(MSG), TypeError, "messages"),
    (lambda: mcgq.decode_average(np.frombuffer(MSG, np.uint8)), TypeError, "messages"),
    (lambda: mcgq.decode_average([MSG, None]), TypeError, "messages[1]"),
    (lambda: mcgq.decode_average([]), ValueError, "messages"),
    (lambda: mcgq.decode_average([MSG], n=True), TypeError, "n"),
    # random_word
    (lambda: mcgq.random_word(None, 0, 0, 0), TypeError, "seed"),
    (lambda: mcgq.random_word(0, 0, 0, 2**32), ValueError, "rank"),
]


@pytest.mark.parametrize("index", range(len(WRONG)))
def test_wrong_argument_names_itself(index):
    call, exc, mention = WRONG[index]
    with pytest.raises(exc) as ei:
        call()
    assert mention in str(ei.value)
    # Never a raw ctypes / numpy failure: those name no argument.
    assert not isinstance(ei.value, ctypes.ArgumentError)


def test_numpy_scalars_and_flag_ints_are_accepted():
    g_int, st = mcgq.quantize(G, np.float32(0.5), np.uint32(7), samples=np.int64(5),
                              damped=np.bool_(True))
    assert st.samples == 5 and int(np.abs(g_int).sum()) == 5
    msg, _ = mcgq.encode([L(k=np.float64(0.5), checksum=1, dynamic_k=0)],
                         seed=np.int64(3), step=np.uint8(1))
    assert mcgq.message_info(msg)["flags"] == 1
    assert mcgq.resolve_samples(np.int32(10), k=0.5, kstate=mcgq.kstate_init(0.5)) == 5
