"""mcgq - Monte Carlo Gradient Quantization (Python binding of libmcgq).

A numpy API that mirrors the C API of include/mcgq.h one call per function,
over the CPU reference of the library (bit-identical to its GPU paths):

    g_int, st = mcgq.quantize(g, k=0.1, u=mcgq.random_word(seed, step, 0, 0))
    msg, stats = mcgq.encode([mcgq.Layer(g, k=0.1)], seed=1, step=0, rank=0)
    avg = mcgq.decode_average([msg_rank0, msg_rank1])

Arrays are taken as they are, never converted: float32 / int32, C-contiguous,
of the right length, else TypeError / ValueError (a silent copy or cast could
change the bits).  Every wrong argument raises TypeError / ValueError naming
it; library failures raise mcgq.Error subclasses carrying the status and the
library's detail message.

A message's header may claim far more elements than its bytes hold (88 bytes
can claim 2^32-1), so the decoders that size their output from the header
refuse a message whose total_n exceeds max_elements (default
DEFAULT_MAX_ELEMENTS = 2^27, 512 MiB of float32) with mcgq.CapacityExceeded,
before allocating.  Passing n or an output array `out` makes the caller's
size the only limit.  The PyTorch DDP hook is in
mcgq.torch (imported separately, so numpy users do not need torch).
"""

import ctypes
import dataclasses
import numbers

import numpy as np

from . import _capi
from ._capi import (  # noqa: F401  (re-exported)
    Error, InvalidArgument, InvalidUsage, UnsupportedVersion, CorruptStream,
    NonFinite, CapacityExceeded, RangeError, CudaError, NcclError, MpiError,
    OutOfMemory, InternalError, Timeout, KState, MAX_K, MAX_SAMPLES,
    MAX_LAYER_ELEMENTS)

__all__ = [
    "version", "version_code", "gpu_available", "random_word", "quantize",
    "wasserstein", "resolve_samples", "KState", "kstate_init", "kstate_update",
    "rle_encode", "rle_decode", "Layer", "LayerStats", "max_output_size",
    "encode", "decode", "decode_ints", "decode_average", "message_info",
    "message_layer", "DEFAULT_MAX_ELEMENTS", "Error", "InvalidArgument", "InvalidUsage",
    "UnsupportedVersion", "CorruptStream", "NonFinite", "CapacityExceeded",
    "RangeError", "CudaError", "NcclError", "MpiError", "OutOfMemory",
    "InternalError", "Timeout",
]

_ACCUMULATE = {"none": _capi.ACCUM_NONE, "reset": _capi.ACCUM_RESET,
               "residual": _capi.ACCUM_RESIDUAL}
_ALGO = {"fused": _capi.ALGO_FUSED, "sample": _capi.ALGO_SAMPLE}

# The decoders that size their output from a message's header decode at most
# this many elements unless told otherwise (max_elements=, or n / out from
# the caller): 2^27 float32 are 512 MiB, more than the largest layer of
# common models (GPT-2's embedding is 2^25.2 values) and what any workstation
# holds, while a hostile 88-byte header can claim 2^32-1 elements (16 GiB).
DEFAULT_MAX_ELEMENTS = 2**27


# ------------------------------------------------------------- validation
# ctypes truncates out-of-range integers silently, so every integer that
# crosses the ABI is range-checked here first.

def _int_in(x, name, lo, hi):
    if isinstance(x, bool) or not isinstance(x, numbers.Integral):
        raise TypeError("%s must be an integer, got %s" % (name, type(x).__name__))
    x = int(x)
    if not lo <= x <= hi:
        raise ValueError("%s = %d is outside [%d, %d]" % (name, x, lo, hi))
    return x


def _u64(x, name):
    return _int_in(x, name, 0, 2**64 - 1)


def _u32(x, name):
    return _int_in(x, name, 0, 2**32 - 1)


def _real(x, name):
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise TypeError("%s must be a real number, got %s" % (name, type(x).__name__))
    try:
        return float(x)
    except OverflowError:
        raise ValueError("%s is an integer of %d digits, too large for a double"
                         % (name, len(str(abs(int(x)))))) from None


def _flag(x, name):
    """A yes/no argument: bool, numpy.bool_, or the integers 0 / 1 (as in the
    C API).  Truthiness is not enough: "no" is true, an array is ambiguous."""
    if isinstance(x, (bool, np.bool_)):
        return 1 if x else 0
    if isinstance(x, numbers.Integral) and int(x) in (0, 1):
        return int(x)
    raise TypeError("%s must be True or False, got %r" % (name, x))


def _choice(x, name, table):
    if not isinstance(x, str) or x not in table:
        raise ValueError("%s must be one of %s, got %r" % (name, sorted(table), x))
    return table[x]


def _max_elements(x):
    return _int_in(x, "max_elements", 1, 2**64 - 1)


def _check_claim(info, max_elements, function):
    """Refuses a message whose header claims more than max_elements elements,
    before its output is allocated."""
    if info["total_n"] > max_elements:
        raise _capi.CapacityExceeded(
            _capi.CAPACITY_EXCEEDED,
            "%s: the message claims %d elements (total_n of %d layer%s), more "
            "than max_elements = %d (default DEFAULT_MAX_ELEMENTS = %d, 512 MiB "
            "of float32); pass max_elements=%d or more to decode it, or an "
            "output array out= of that size" %
            (function, info["total_n"], info["layer_count"],
             "" if info["layer_count"] == 1 else "s", max_elements,
             DEFAULT_MAX_ELEMENTS, info["total_n"]), function)


def _check_n(n, info, function):
    """The caller's n against the message's total_n, before allocating n."""
    n = _u64(n, "n")
    if n != info["total_n"]:
        raise _capi.InvalidArgument(
            _capi.INVALID_ARGUMENT, "%s: n = %d, but the message holds total_n = "
            "%d elements" % (function, n, info["total_n"]), function)
    return n


def _array(a, name, dtype, n=None, writable=False):
    """Returns a as it is if it is a C-contiguous ndarray of `dtype` (native
    byte order) with n elements; raises otherwise.  Never copies."""
    if not isinstance(a, np.ndarray):
        raise TypeError("%s must be a numpy.ndarray of %s, got %s" %
                        (name, np.dtype(dtype).name, type(a).__name__))
    if a.dtype != np.dtype(dtype):
        raise TypeError("%s must have dtype %s (native byte order), got %s" %
                        (name, np.dtype(dtype).name, a.dtype))
    if not a.flags.c_contiguous:
        raise ValueError("%s must be C-contiguous (pass np.ascontiguousarray(%s) "
                         "if a copy is what you want)" % (name, name))
    if n is not None and a.size != n:
        raise ValueError("%s has %d elements, expected %d" % (name, a.size, n))
    if writable and not a.flags.writeable:
        raise ValueError("%s must be writable" % name)
    return a


def _f32(a, name, n=None, writable=False):
    return _array(a, name, np.float32, n, writable)


def _i32(a, name, n=None, writable=False):
    return _array(a, name, np.int32, n, writable)


def _bytes_view(buf, name="message"):
    """A read-only uint8 view of bytes / bytearray / memoryview / uint8
    ndarray, without copying."""
    if isinstance(buf, np.ndarray):
        return _array(buf, name, np.uint8).reshape(-1)
    if isinstance(buf, (bytes, bytearray, memoryview)):
        view = memoryview(buf)
        if not view.c_contiguous:
            raise ValueError("%s must be contiguous" % name)
        return np.frombuffer(view.cast("B") if view.format != "B" else view,
                             dtype=np.uint8)
    raise TypeError("%s must be bytes, bytearray, memoryview or a uint8 ndarray, "
                    "got %s" % (name, type(buf).__name__))


def _ptr(a):
    return ctypes.c_void_p(a.ctypes.data)


# ------------------------------------------------------------- results

@dataclasses.dataclass(frozen=True)
class LayerStats:
    """mcgqLayerStats_t of one layer (see include/mcgq.h)."""
    n: int
    samples: int
    k: float
    scale: float
    bits_value: int
    bits_run: int
    status: int
    stream_bits: int
    wire_bytes: int
    nonzeros: int
    w1: float
    flags: int

    @property
    def fixed_width(self):
        return bool(self.flags & _capi.LAYER_FLAG_FIXED_WIDTH)

    @property
    def paper_bits_per_element(self):
        """(paper stream bits + 32 for the scale) / n."""
        return (self.stream_bits + 32) / self.n if self.n else 0.0

    @classmethod
    def from_c(cls, s):
        return cls(int(s.n), int(s.samples), float(s.k), float(s.scale),
                   int(s.bits_value), int(s.bits_run), int(s.status),
                   int(s.stream_bits), int(s.wire_bytes), int(s.nonzeros),
                   float(s.w1), int(s.flags))


# ------------------------------------------------------------- small calls

def version_code():
    """MAJOR*10000 + MINOR*100 + PATCH of the loaded libmcgq."""
    return int(_capi.fn.mcgqGetVersion())


def version():
    """Version of the loaded libmcgq as 'MAJOR.MINOR.PATCH'."""
    code = version_code()
    return "%d.%d.%d" % (code // 10000, code // 100 % 100, code % 100)


__version__ = "0.1.0"


def gpu_available():
    """True if libmcgq was built with the GPU path and a device is usable."""
    if isinstance(_capi.fn.mcgqGpuAvailable, _capi._MissingFunction):
        return False
    return bool(_capi.fn.mcgqGpuAvailable())


def random_word(seed, step, layer, rank):
    """The layer's 32-bit random word u (Philox4x32-10, DESIGN.md 2.8)."""
    return int(_capi.fn.mcgqRandomWord(_u64(seed, "seed"), _u64(step, "step"),
                                       _u32(layer, "layer"), _u32(rank, "rank")))


def quantize(g, k, u, samples=None, damped=False):
    """MCGQ of one layer (mcgqQuantizeHost).

    g: float32 C-contiguous array; k: sampling amount in (0, 64]; u: 32-bit
    random word; samples: N given directly (overrides k); damped: the scale of
    residual error feedback.  Returns (g_int int32 array shaped like g,
    LayerStats)."""
    g = _f32(g, "g")
    k = _real(k, "k")
    n_samples = 0 if samples is None else _int_in(samples, "samples", 1, 2**64 - 1)
    u = _u32(u, "u")
    damped = _flag(damped, "damped")
    g_int = np.empty(g.shape, dtype=np.int32)
    st = _capi.LayerStats()
    _capi.check(_capi.fn.mcgqQuantizeHost(_ptr(g), g.size, k, n_samples, u,
                                          damped, _ptr(g_int), ctypes.byref(st)),
                "mcgqQuantizeHost")
    return g_int, LayerStats.from_c(st)


def wasserstein(g, g_int):
    """Exact W1 of DESIGN.md Alg 3 between g and its quantization g_int."""
    g = _f32(g, "g")
    g_int = _i32(g_int, "g_int", g.size)
    d = ctypes.c_double()
    _capi.check(_capi.fn.mcgqWassersteinHost(_ptr(g), _ptr(g_int), g.size,
                                             ctypes.byref(d)),
                "mcgqWassersteinHost")
    return d.value


def _config(k=1.0, samples=None, accumulate="none", dynamic_k=False,
            k_min=None, k_max=None, delta_k=None, checksum=False, algo="fused",
            prefix=""):
    """mcgqLayerConfig_t of these arguments; `prefix` ("layers[3].") goes in
    front of the argument names in error messages."""
    cfg = _capi.default_config()
    cfg.k = _real(k, prefix + "k")
    cfg.samples = (0 if samples is None else
                   _int_in(samples, prefix + "samples", 1, 2**64 - 1))
    cfg.accumulate = _choice(accumulate, prefix + "accumulate", _ACCUMULATE)
    cfg.dynamic_k = _flag(dynamic_k, prefix + "dynamic_k")
    if k_min is not None:
        cfg.k_min = _real(k_min, prefix + "k_min")
    if k_max is not None:
        cfg.k_max = _real(k_max, prefix + "k_max")
    if delta_k is not None:
        cfg.delta_k = _real(delta_k, prefix + "delta_k")
    cfg.checksum = _flag(checksum, prefix + "checksum")
    cfg.algo = _choice(algo, prefix + "algo", _ALGO)
    return cfg


def resolve_samples(n, k=1.0, samples=None, kstate=None):
    """N the library draws for a layer of n elements (mcgqResolveSamples);
    with a dynamic-K state `kstate` (mcgq.KState) its K is used."""
    n = _u64(n, "n")
    if kstate is not None and not isinstance(kstate, KState):
        raise TypeError("kstate must be an mcgq.KState or None, got %s" %
                        type(kstate).__name__)
    cfg = _config(k=k, samples=samples, dynamic_k=kstate is not None)
    ks = ctypes.byref(kstate) if kstate is not None else None
    out = ctypes.c_uint64()
    _capi.check(_capi.fn.mcgqResolveSamples(ctypes.byref(cfg), ks, n,
                                            ctypes.byref(out)),
                "mcgqResolveSamples")
    return int(out.value)


def kstate_init(k):
    """A fresh dynamic-K state (mcgqKStateInit): K = k, not started."""
    cfg = _config(k=k)
    ks = KState()
    _capi.check(_capi.fn.mcgqKStateInit(ctypes.byref(cfg), ctypes.byref(ks)),
                "mcgqKStateInit")
    return ks


def kstate_update(kstate, d, k_min=0.01, k_max=8.0, delta_k=0.0):
    """Alg 3 update of `kstate` (in place, also returned) with distance d."""
    if not isinstance(kstate, KState):
        raise TypeError("kstate must be an mcgq.KState, got %s" %
                        type(kstate).__name__)
    d = _real(d, "d")
    cfg = _config(k=kstate.k if kstate.k > 0 else 1.0, dynamic_k=True,
                  k_min=k_min, k_max=k_max, delta_k=delta_k)
    _capi.check(_capi.fn.mcgqKStateUpdate(ctypes.byref(cfg), ctypes.byref(kstate), d),
                "mcgqKStateUpdate")
    return kstate


# ------------------------------------------------------------- paper RLE

def rle_encode(g_int):
    """The paper's bitstream of one layer.  Returns (bytes, stream_bits)."""
    g_int = _i32(g_int, "g_int")
    bits = ctypes.c_uint64()
    _capi.check(_capi.fn.mcgqRleEncodeHost(_ptr(g_int), g_int.size, None, 0,
                                           ctypes.byref(bits)),
                "mcgqRleEncodeHost")
    out = np.zeros((bits.value + 7) // 8, dtype=np.uint8)
    _capi.check(_capi.fn.mcgqRleEncodeHost(_ptr(g_int), g_int.size, _ptr(out),
                                           out.size, ctypes.byref(bits)),
                "mcgqRleEncodeHost")
    return out.tobytes(), int(bits.value)


def rle_decode(data, n):
    """Decodes a canonical paper bitstream of exactly n elements (the caller's
    count: the stream does not record it), 0 <= n < 2^32."""
    buf = _bytes_view(data, "data")
    g_int = np.empty(_int_in(n, "n", 0, MAX_LAYER_ELEMENTS), dtype=np.int32)
    _capi.check(_capi.fn.mcgqRleDecodeHost(_ptr(buf), buf.size, g_int.size,
                                           _ptr(g_int)),
                "mcgqRleDecodeHost")
    return g_int


# ------------------------------------------------------------- container

@dataclasses.dataclass
class Layer:
    """One layer of an encode call (mcgqLayerDesc_t).

    g: gradient (read): float32, float16 (IEEE binary16), or bfloat16 given as
    a uint16 array of the bf16 bit patterns with dtype="bfloat16" (numpy has
    no bfloat16); a 16-bit layer gives the message of its values widened to
    float32.  accum: float32 accumulator, updated in place
    (required iff accumulate != 'none'); kstate: mcgq.KState updated in place
    (required iff dynamic_k).  u: explicit random word; default
    random_word(seed, step, layer_id, rank) with layer_id defaulting to the
    layer's position in the call."""
    g: np.ndarray
    k: float = 1.0
    samples: int = None
    accumulate: str = "none"
    accum: np.ndarray = None
    dynamic_k: bool = False
    kstate: KState = None
    k_min: float = None
    k_max: float = None
    delta_k: float = None
    checksum: bool = False
    algo: str = "fused"
    u: int = None
    layer_id: int = None
    dtype: str = None


def _layer_list(layers):
    """layers as a list of mcgq.Layer: one Layer, or a list / tuple / other
    iterable of them (not bytes, str or an array, whose items are no layers)."""
    if isinstance(layers, Layer):
        return [layers]
    if isinstance(layers, (str, bytes, bytearray, memoryview, np.ndarray)) or \
            not hasattr(layers, "__iter__"):
        raise TypeError("layers must be an mcgq.Layer or a list of them, got %s" %
                        type(layers).__name__)
    layers = list(layers)
    if not layers:
        raise ValueError("layers is empty: encode needs at least one layer")
    if len(layers) > 2**31 - 1:
        raise ValueError("layers has %d entries, more than 2^31-1" % len(layers))
    for i, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            raise TypeError("layers[%d] must be an mcgq.Layer, got %s" %
                            (i, type(layer).__name__))
    return layers


# Layer.dtype / decode(dtype=) names and their numpy arrays.
_DTYPES = {"float32": (_capi.DTYPE_F32, np.float32),
           "float16": (_capi.DTYPE_F16, np.float16),
           "bfloat16": (_capi.DTYPE_BF16, np.uint16)}
_DTYPE_NAMES = {name: name for name in _DTYPES}


def _gradient(g, dtype, where):
    """(array, MCGQ_DTYPE_*) of a layer's g: float32 or float16 by the array's
    dtype, bfloat16 only when named (its bits in a uint16 array)."""
    if dtype is None:
        if isinstance(g, np.ndarray) and g.dtype == np.float16:
            dtype = "float16"
        elif isinstance(g, np.ndarray) and g.dtype == np.uint16:
            raise TypeError("%sg is a uint16 array: pass dtype=\"bfloat16\" if it "
                            "holds bfloat16 bit patterns" % where)
        else:
            dtype = "float32"
    code, np_type = _DTYPES[_choice(dtype, where + "dtype", _DTYPE_NAMES)]
    return _array(g, where + "g", np_type), code


def _descriptors(layers, seed, step, rank):
    seed, step, rank = _u64(seed, "seed"), _u64(step, "step"), _u32(rank, "rank")
    layers = _layer_list(layers)
    descs = (_capi.LayerDesc * len(layers))()
    for i, layer in enumerate(layers):
        where = "layers[%d]." % i
        d = descs[i]
        _capi.fn.mcgqLayerDescInit(ctypes.byref(d))
        g, dtype = _gradient(layer.g, layer.dtype, where)
        d.g = g.ctypes.data
        d.n = g.size
        d.cfg = _config(layer.k, layer.samples, layer.accumulate,
                        layer.dynamic_k, layer.k_min, layer.k_max,
                        layer.delta_k, layer.checksum, layer.algo, prefix=where)
        d.cfg.dtype = dtype
        if layer.accum is not None:
            d.accum = _f32(layer.accum, where + "accum", g.size,
                           writable=True).ctypes.data
        if layer.kstate is not None:
            if not isinstance(layer.kstate, KState):
                raise TypeError("%skstate must be an mcgq.KState, got %s" %
                                (where, type(layer.kstate).__name__))
            d.kstate = ctypes.addressof(layer.kstate)
        if layer.u is not None:
            d.u = _u32(layer.u, where + "u")
        else:
            lid = i if layer.layer_id is None else layer.layer_id
            d.u = random_word(seed, step, _u32(lid, where + "layer_id"), rank)
    return layers, descs


def max_output_size(layers):
    """mcgqEncodeGetMaxOutputSize of these layers (bytes)."""
    _, descs = _descriptors(layers, 0, 0, 0)
    size = ctypes.c_size_t()
    _capi.check(_capi.fn.mcgqEncodeGetMaxOutputSize(descs, len(descs),
                                                    ctypes.byref(size)),
                "mcgqEncodeGetMaxOutputSize")
    return int(size.value)


def encode(layers, seed=0, step=0, rank=0):
    """Encodes layers into one container message (mcgqEncodeHost).

    Returns (message bytes, [LayerStats]).  Accumulators and K states of the
    layers are updated in place on success and untouched on failure; the
    raised Error then carries `layer_stats` telling which layer failed."""
    layers, descs = _descriptors(layers, seed, step, rank)
    size = ctypes.c_size_t()
    _capi.check(_capi.fn.mcgqEncodeGetMaxOutputSize(descs, len(descs),
                                                    ctypes.byref(size)),
                "mcgqEncodeGetMaxOutputSize")
    out = np.empty(size.value, dtype=np.uint8)
    stats = (_capi.LayerStats * len(descs))()
    out_bytes = ctypes.c_size_t()
    status = _capi.fn.mcgqEncodeHost(descs, len(descs), _ptr(out), out.size,
                                     ctypes.byref(out_bytes), stats)
    layer_stats = [LayerStats.from_c(s) for s in stats]
    if status != _capi.SUCCESS:
        err = _capi.error_for(status, "mcgqEncodeHost")
        err.layer_stats = layer_stats
        raise err
    return out[:out_bytes.value].tobytes(), layer_stats


def message_info(message):
    """Header facts of a container (validated, payloads not decoded)."""
    buf = _bytes_view(message)
    info = _capi.MessageInfo()
    _capi.check(_capi.fn.mcgqMessageGetInfo(_ptr(buf), buf.size,
                                            ctypes.byref(info)),
                "mcgqMessageGetInfo")
    return {f: int(getattr(info, f)) for f, _ in info._fields_ if f != "reserved"}


def message_layer(message, index):
    """Directory entry `index` of a container, as a dict."""
    buf = _bytes_view(message)
    ml = _capi.MessageLayer()
    _capi.check(_capi.fn.mcgqMessageGetLayer(_ptr(buf), buf.size,
                                             _u32(index, "index"),
                                             ctypes.byref(ml)),
                "mcgqMessageGetLayer")
    return {f: (float(getattr(ml, f)) if f == "scale" else int(getattr(ml, f)))
            for f, _ in ml._fields_ if f != "reserved"}


def decode_ints(message, out=None, max_elements=DEFAULT_MAX_ELEMENTS):
    """Integers of a container: (g_int of total_n int32, scales float32).

    out: an int32 array of total_n elements to decode into (then returned as
    g_int); without it, a message claiming more than max_elements elements
    raises mcgq.CapacityExceeded before anything is allocated."""
    buf = _bytes_view(message)
    max_elements = _max_elements(max_elements)
    info = message_info(buf)
    if out is None:
        _check_claim(info, max_elements, "decode_ints")
        g_int = np.empty(info["total_n"], dtype=np.int32)
    else:
        g_int = _i32(out, "out", info["total_n"], writable=True)
    scales = np.empty(info["layer_count"], dtype=np.float32)
    _capi.check(_capi.fn.mcgqDecodeIntsHost(_ptr(buf), buf.size, _ptr(g_int),
                                            g_int.size, _ptr(scales), scales.size),
                "mcgqDecodeIntsHost")
    return g_int, scales


def _float_output(info, n, out, max_elements, function, dtype="float32"):
    """The array a decoder writes (float32, float16, or bfloat16 bits as
    uint16): the caller's `out`, n elements the caller asked for, or total_n
    elements within max_elements."""
    np_type = _DTYPES[dtype][1]
    if out is not None:
        out = _array(out, "out", np_type, writable=True)
        if n is not None:
            _check_n(n, info, function)
        if out.size != info["total_n"]:
            raise ValueError("out has %d elements, but the message holds total_n = %d"
                             % (out.size, info["total_n"]))
        return out
    if n is not None:
        return np.empty(_check_n(n, info, function), dtype=np_type)
    _check_claim(info, max_elements, function)
    return np.empty(info["total_n"], dtype=np_type)


def decode(message, n=None, out=None, max_elements=DEFAULT_MAX_ELEMENTS,
           dtype="float32"):
    """Dequantized floats scale*g_int of a container (total_n values).

    n: the element count the caller expects (must equal total_n); out: an
    array of total_n elements to decode into (returned).  With neither, a
    message claiming more than max_elements elements raises
    mcgq.CapacityExceeded before anything is allocated.  dtype: "float32",
    "float16" or "bfloat16" (uint16 bit patterns): each value computed in
    float32, then rounded once to nearest even (mcgqDecodeHostTyped)."""
    buf = _bytes_view(message)
    max_elements = _max_elements(max_elements)
    dtype = _choice(dtype, "dtype", _DTYPE_NAMES)
    out = _float_output(message_info(buf), n, out, max_elements, "decode", dtype)
    _capi.check(_capi.fn.mcgqDecodeHostTyped(_ptr(buf), buf.size, _ptr(out),
                                             _DTYPES[dtype][0], out.size),
                "mcgqDecodeHostTyped")
    return out


def _message_list(messages):
    if isinstance(messages, (str, bytes, bytearray, memoryview, np.ndarray)) or \
            not hasattr(messages, "__iter__"):
        raise TypeError("messages must be a list of messages (one per rank), got %s"
                        % type(messages).__name__)
    bufs = [_bytes_view(m, "messages[%d]" % i) for i, m in enumerate(messages)]
    if not bufs:
        raise ValueError("messages is empty: decode_average needs at least one message")
    if len(bufs) > 2**31 - 1:
        raise ValueError("messages has %d entries, more than 2^31-1" % len(bufs))
    return bufs


def decode_average(messages, n=None, out=None, max_elements=DEFAULT_MAX_ELEMENTS,
                   dtype="float32"):
    """Average of one message per rank, in rank order (mcgqDecodeAverageHost):
    bit-identical to what every rank of an exchange computes.  n, out,
    max_elements and dtype as in decode() (total_n of the first message; the
    library checks that every message agrees)."""
    bufs = _message_list(messages)
    max_elements = _max_elements(max_elements)
    dtype = _choice(dtype, "dtype", _DTYPE_NAMES)
    out = _float_output(message_info(bufs[0]), n, out, max_elements,
                        "decode_average", dtype)
    ptrs = (ctypes.c_void_p * len(bufs))(*[b.ctypes.data for b in bufs])
    sizes = (ctypes.c_size_t * len(bufs))(*[b.size for b in bufs])
    _capi.check(_capi.fn.mcgqDecodeAverageHostTyped(ptrs, sizes, len(bufs), _ptr(out),
                                                    _DTYPES[dtype][0], out.size),
                "mcgqDecodeAverageHostTyped")
    return out
