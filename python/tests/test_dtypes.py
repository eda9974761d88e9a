"""16-bit gradients from Python: float16 arrays and bfloat16 bit patterns
give the message of their float32 widening; typed decodes round the float32
result once (checked against numpy's own float16 rounding, and for bfloat16
against rounding done here from the definition)."""
import numpy as np
import pytest

import mcgq


def bf16_bits(x):
    """float32 -> bfloat16 bits, round to nearest even (finite x)."""
    b = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype(np.uint16)


def bf16_values(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_sixteen_bit_layer_equals_widened_float32_layer(dtype):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(5000).astype(np.float32)
    if dtype == "float16":
        g16 = x.astype(np.float16)
        g32 = g16.astype(np.float32)
        layer16 = mcgq.Layer(g=g16, k=0.5)
    else:
        g16 = bf16_bits(x)
        g32 = bf16_values(g16)
        layer16 = mcgq.Layer(g=g16, k=0.5, dtype="bfloat16")
    m16, _ = mcgq.encode([layer16], seed=1, step=2)
    m32, _ = mcgq.encode([mcgq.Layer(g=g32, k=0.5)], seed=1, step=2)
    assert m16 == m32


def test_typed_decode_rounds_the_float32_result_once():
    rng = np.random.default_rng(4)
    msgs = [mcgq.encode([mcgq.Layer(g=rng.standard_normal(3000).astype(np.float32), k=1.0)],
                        seed=5, rank=r)[0] for r in range(3)]
    f32 = mcgq.decode_average(msgs)
    f16 = mcgq.decode_average(msgs, dtype="float16")
    assert f16.dtype == np.float16
    assert np.array_equal(f16.view(np.uint16), f32.astype(np.float16).view(np.uint16))
    bf = mcgq.decode(msgs[0], dtype="bfloat16")
    assert bf.dtype == np.uint16
    assert np.array_equal(bf, bf16_bits(mcgq.decode(msgs[0])))


def test_uint16_without_dtype_and_unknown_dtypes_are_refused():
    with pytest.raises(TypeError, match="bfloat16"):
        mcgq.encode([mcgq.Layer(g=np.zeros(4, dtype=np.uint16))])
    with pytest.raises(ValueError, match="dtype"):
        mcgq.encode([mcgq.Layer(g=np.zeros(4, dtype=np.float32), dtype="float64")])
    msg, _ = mcgq.encode([mcgq.Layer(g=np.ones(4, dtype=np.float32))])
    with pytest.raises(ValueError, match="dtype"):
        mcgq.decode(msg, dtype="int8")
    with pytest.raises(TypeError):
        mcgq.decode(msg, out=np.zeros(4, dtype=np.float32), dtype="float16")
