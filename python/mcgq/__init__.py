"""mcgq - Monte Carlo Gradient Quantization (Python binding of libmcgq).

A numpy API that mirrors the C API of include/mcgq.h one call per function,
over the CPU reference of the library (bit-identical to its GPU paths):

    g_int, st = mcgq.quantize(g, k=0.1, u=mcgq.random_word(seed, step, 0, 0))
    msg, stats = mcgq.encode([mcgq.Layer(g, k=0.1)], seed=1, step=0, rank=0)
    avg = mcgq.decode_average([msg_rank0, msg_rank1])

Arrays are taken as they are, never converted: float32 / int32, C-contiguous,
of the right length, else TypeError / ValueError (a silent copy or cast could
change the bits).  Library failures raise mcgq.Error subclasses carrying the
status and the library's detail message.  The PyTorch DDP hook is in
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
    OutOfMemory, InternalError, KState, MAX_K, MAX_SAMPLES,
    MAX_LAYER_ELEMENTS)

__all__ = [
    "version", "version_code", "gpu_available", "random_word", "quantize",
    "wasserstein", "resolve_samples", "KState", "kstate_init", "kstate_update",
    "rle_encode", "rle_decode", "Layer", "LayerStats", "max_output_size",
    "encode", "decode", "decode_ints", "decode_average", "message_info",
    "message_layer", "Error", "InvalidArgument", "InvalidUsage",
    "UnsupportedVersion", "CorruptStream", "NonFinite", "CapacityExceeded",
    "RangeError", "CudaError", "NcclError", "MpiError", "OutOfMemory",
    "InternalError",
]

_ACCUMULATE = {"none": _capi.ACCUM_NONE, "reset": _capi.ACCUM_RESET,
               "residual": _capi.ACCUM_RESIDUAL}
_ALGO = {"fused": _capi.ALGO_FUSED, "sample": _capi.ALGO_SAMPLE}


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
    return float(x)


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
    g_int = np.empty(g.shape, dtype=np.int32)
    st = _capi.LayerStats()
    _capi.check(_capi.fn.mcgqQuantizeHost(_ptr(g), g.size, k, n_samples,
                                          _u32(u, "u"), 1 if damped else 0,
                                          _ptr(g_int), ctypes.byref(st)),
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
            k_min=None, k_max=None, delta_k=None, checksum=False, algo="fused"):
    cfg = _capi.default_config()
    cfg.k = _real(k, "k")
    cfg.samples = 0 if samples is None else _int_in(samples, "samples", 1, 2**64 - 1)
    if accumulate not in _ACCUMULATE:
        raise ValueError("accumulate must be one of %s, got %r" %
                         (sorted(_ACCUMULATE), accumulate))
    cfg.accumulate = _ACCUMULATE[accumulate]
    cfg.dynamic_k = 1 if dynamic_k else 0
    if k_min is not None:
        cfg.k_min = _real(k_min, "k_min")
    if k_max is not None:
        cfg.k_max = _real(k_max, "k_max")
    if delta_k is not None:
        cfg.delta_k = _real(delta_k, "delta_k")
    cfg.checksum = 1 if checksum else 0
    if algo not in _ALGO:
        raise ValueError("algo must be one of %s, got %r" % (sorted(_ALGO), algo))
    cfg.algo = _ALGO[algo]
    return cfg


def resolve_samples(n, k=1.0, samples=None, kstate=None):
    """N the library draws for a layer of n elements (mcgqResolveSamples)."""
    cfg = _config(k=k, samples=samples, dynamic_k=kstate is not None)
    ks = ctypes.byref(kstate) if kstate is not None else None
    out = ctypes.c_uint64()
    _capi.check(_capi.fn.mcgqResolveSamples(ctypes.byref(cfg), ks,
                                            _u64(n, "n"), ctypes.byref(out)),
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
        raise TypeError("kstate must be an mcgq.KState")
    cfg = _config(k=kstate.k if kstate.k > 0 else 1.0, dynamic_k=True,
                  k_min=k_min, k_max=k_max, delta_k=delta_k)
    _capi.check(_capi.fn.mcgqKStateUpdate(ctypes.byref(cfg), ctypes.byref(kstate),
                                          _real(d, "d")),
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
    """Decodes a canonical paper bitstream of exactly n elements."""
    buf = _bytes_view(data, "data")
    g_int = np.empty(_u64(n, "n"), dtype=np.int32)
    _capi.check(_capi.fn.mcgqRleDecodeHost(_ptr(buf), buf.size, g_int.size,
                                           _ptr(g_int)),
                "mcgqRleDecodeHost")
    return g_int


# ------------------------------------------------------------- container

@dataclasses.dataclass
class Layer:
    """One layer of an encode call (mcgqLayerDesc_t).

    g: float32 gradient (read); accum: float32 accumulator, updated in place
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


def _descriptors(layers, seed, step, rank):
    if isinstance(layers, Layer):
        layers = [layers]
    layers = list(layers)
    if not layers:
        raise ValueError("encode needs at least one layer")
    descs = (_capi.LayerDesc * len(layers))()
    for i, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            raise TypeError("layers[%d] must be an mcgq.Layer" % i)
        d = descs[i]
        _capi.fn.mcgqLayerDescInit(ctypes.byref(d))
        g = _f32(layer.g, "layers[%d].g" % i)
        d.g = g.ctypes.data
        d.n = g.size
        d.cfg = _config(layer.k, layer.samples, layer.accumulate,
                        layer.dynamic_k, layer.k_min, layer.k_max,
                        layer.delta_k, layer.checksum, layer.algo)
        if layer.accum is not None:
            d.accum = _f32(layer.accum, "layers[%d].accum" % i, g.size,
                           writable=True).ctypes.data
        if layer.kstate is not None:
            if not isinstance(layer.kstate, KState):
                raise TypeError("layers[%d].kstate must be an mcgq.KState" % i)
            d.kstate = ctypes.addressof(layer.kstate)
        if layer.u is not None:
            d.u = _u32(layer.u, "layers[%d].u" % i)
        else:
            lid = i if layer.layer_id is None else layer.layer_id
            d.u = random_word(seed, step, lid, rank)
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
    _u64(seed, "seed"), _u64(step, "step"), _u32(rank, "rank")
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


def decode_ints(message):
    """Integers of a container: (g_int of total_n int32, scales float32)."""
    buf = _bytes_view(message)
    info = message_info(buf)
    g_int = np.empty(info["total_n"], dtype=np.int32)
    scales = np.empty(info["layer_count"], dtype=np.float32)
    _capi.check(_capi.fn.mcgqDecodeIntsHost(_ptr(buf), buf.size, _ptr(g_int),
                                            g_int.size, _ptr(scales), scales.size),
                "mcgqDecodeIntsHost")
    return g_int, scales


def decode(message, n=None):
    """Dequantized floats scale*g_int of a container (total_n float32)."""
    buf = _bytes_view(message)
    if n is None:
        n = message_info(buf)["total_n"]
    out = np.empty(_u64(n, "n"), dtype=np.float32)
    _capi.check(_capi.fn.mcgqDecodeHost(_ptr(buf), buf.size, _ptr(out), out.size),
                "mcgqDecodeHost")
    return out


def decode_average(messages, n=None):
    """Average of one message per rank, in rank order (mcgqDecodeAverageHost):
    bit-identical to what every rank of an exchange computes."""
    bufs = [_bytes_view(m, "messages[%d]" % i) for i, m in enumerate(messages)]
    if not bufs:
        raise ValueError("decode_average needs at least one message")
    if n is None:
        n = message_info(bufs[0])["total_n"]
    ptrs = (ctypes.c_void_p * len(bufs))(*[b.ctypes.data for b in bufs])
    sizes = (ctypes.c_size_t * len(bufs))(*[b.size for b in bufs])
    out = np.empty(_u64(n, "n"), dtype=np.float32)
    _capi.check(_capi.fn.mcgqDecodeAverageHost(ptrs, sizes, len(bufs), _ptr(out),
                                               out.size),
                "mcgqDecodeAverageHost")
    return out
