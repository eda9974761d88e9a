"""ctypes binding of libmcgq's plain C ABI (include/mcgq.h).

Why ctypes: the ABI is plain C (fixed-width integers, flat structs, pointers),
so a ctypes binding needs no compiler at import time and no extension module
per Python version; one wheel per platform serves every CPython.  The cost is
a few microseconds per call, paid once per bucket, not per element.

This module mirrors the header one to one (structs, prototypes, status codes)
and turns statuses into exceptions.  The friendly numpy API lives in
mcgq/__init__.py, the PyTorch hook in mcgq/torch.py.
"""

import ctypes
import os

# ------------------------------------------------------------------ loading

_LIB_NAMES = ("libmcgq.so", "libmcgq.dylib", "mcgq.dll")


def _load_library():
    """Loads the libmcgq that was installed next to this file.

    MCGQ_LIBRARY (a path) overrides it, for running the package from a
    source tree against a build directory.  No LD_LIBRARY_PATH search: a
    package must use the library it was built with."""
    override = os.environ.get("MCGQ_LIBRARY")
    if override:
        return ctypes.CDLL(override)
    here = os.path.dirname(os.path.abspath(__file__))
    for name in _LIB_NAMES:
        path = os.path.join(here, name)
        if os.path.exists(path):
            return ctypes.CDLL(path)
    raise ImportError(
        "mcgq: libmcgq was not found next to %s (install the package with "
        "`pip install .`, or set MCGQ_LIBRARY to a built libmcgq.so)" % here)


lib = _load_library()

# ------------------------------------------------------------------ statuses

SUCCESS = 0
INVALID_ARGUMENT = 1
INVALID_USAGE = 2
UNSUPPORTED_VERSION = 3
CORRUPT_STREAM = 10
NON_FINITE = 11
CAPACITY_EXCEEDED = 12
RANGE_ERROR = 13
CUDA_ERROR = 20
NCCL_ERROR = 21
MPI_ERROR = 22
OUT_OF_MEMORY = 23
INTERNAL_ERROR = 30
TIMEOUT = 31

ACCUM_NONE = 0
ACCUM_RESET = 1
ACCUM_RESIDUAL = 2
ALGO_FUSED = 0
ALGO_SAMPLE = 1
DTYPE_F32 = 0   # MCGQ_DTYPE_*: float32, bfloat16, IEEE binary16
DTYPE_BF16 = 1
DTYPE_F16 = 2
LAYER_FLAG_FIXED_WIDTH = 1
LAYER_FLAG_CUT = 2
MAX_K = 64.0
MAX_SAMPLES = 0x7FFFFFFF
MAX_LAYER_ELEMENTS = 0xFFFFFFFF


class Error(Exception):
    """A libmcgq call failed.  `status` is the mcgqResult_t, `detail` the
    library's mcgqGetLastErrorDetail() text."""

    def __init__(self, status, detail, function=None):
        self.status = int(status)
        self.detail = detail
        self.function = function
        name = status_string(status)
        text = "%s (status %d)" % (name, self.status)
        if detail:
            text += ": " + detail
        elif function:
            text += " in " + function
        super().__init__(text)


class InvalidArgument(Error, ValueError):
    """mcgqInvalidArgument: bad pointer, size, K, mode ..."""


class InvalidUsage(Error, RuntimeError):
    """mcgqInvalidUsage: not valid in this state or this build."""


class UnsupportedVersion(Error):
    """mcgqUnsupportedVersion: struct_size or format version unknown."""


class CorruptStream(Error, ValueError):
    """mcgqCorruptStream: a message or bitstream is malformed."""


class NonFinite(Error, FloatingPointError):
    """mcgqNonFinite: NaN or Inf in the values to be sampled."""


class CapacityExceeded(Error):
    """mcgqCapacityExceeded: an output buffer is too small."""


class RangeError(Error, OverflowError):
    """mcgqRangeError: the scale is not representable in float32."""


class CudaError(Error, RuntimeError):
    """mcgqCudaError."""


class NcclError(Error, RuntimeError):
    """mcgqNcclError."""


class MpiError(Error, RuntimeError):
    """mcgqMpiError."""


class OutOfMemory(Error, MemoryError):
    """mcgqOutOfMemory."""


class InternalError(Error, RuntimeError):
    """mcgqInternalError: a bug in libmcgq."""


class Timeout(Error, TimeoutError):
    """mcgqTimeout: a peer did not join a collective in time; the
    communicator is aborted."""


_ERROR_CLASSES = {
    INVALID_ARGUMENT: InvalidArgument,
    INVALID_USAGE: InvalidUsage,
    UNSUPPORTED_VERSION: UnsupportedVersion,
    CORRUPT_STREAM: CorruptStream,
    NON_FINITE: NonFinite,
    CAPACITY_EXCEEDED: CapacityExceeded,
    RANGE_ERROR: RangeError,
    CUDA_ERROR: CudaError,
    NCCL_ERROR: NcclError,
    MPI_ERROR: MpiError,
    OUT_OF_MEMORY: OutOfMemory,
    INTERNAL_ERROR: InternalError,
    TIMEOUT: Timeout,
}

# ------------------------------------------------------------------ structs
# Field for field as in mcgq.h; ctypes applies the platform's C alignment,
# and _check_abi() compares the sizes with what the library writes.


class LayerConfig(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("dtype", ctypes.c_int32),
        ("k", ctypes.c_double),
        ("samples", ctypes.c_uint64),
        ("accumulate", ctypes.c_int32),
        ("dynamic_k", ctypes.c_int32),
        ("k_min", ctypes.c_double),
        ("k_max", ctypes.c_double),
        ("delta_k", ctypes.c_double),
        ("algo", ctypes.c_int32),
        ("checksum", ctypes.c_int32),
    ]


class KState(ctypes.Structure):
    _fields_ = [
        ("k", ctypes.c_double),
        ("d_prev", ctypes.c_double),
        ("started", ctypes.c_int32),
        ("reserved", ctypes.c_int32),
    ]


class LayerStats(ctypes.Structure):
    _fields_ = [
        ("n", ctypes.c_uint64),
        ("samples", ctypes.c_uint64),
        ("k", ctypes.c_double),
        ("scale", ctypes.c_float),
        ("bits_value", ctypes.c_uint32),
        ("bits_run", ctypes.c_uint32),
        ("status", ctypes.c_uint32),
        ("stream_bits", ctypes.c_uint64),
        ("wire_bytes", ctypes.c_uint64),
        ("nonzeros", ctypes.c_uint64),
        ("w1", ctypes.c_double),
        ("flags", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32),
    ]


class LayerDesc(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("u", ctypes.c_uint32),
        ("g", ctypes.c_void_p),
        ("accum", ctypes.c_void_p),
        ("kstate", ctypes.c_void_p),
        ("n", ctypes.c_uint64),
        ("cfg", LayerConfig),
    ]


class MessageInfo(ctypes.Structure):
    _fields_ = [
        ("format_version", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("layer_count", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32),
        ("total_n", ctypes.c_uint64),
        ("total_bytes", ctypes.c_uint64),
    ]


class MessageLayer(ctypes.Structure):
    _fields_ = [
        ("n", ctypes.c_uint64),
        ("n_coded", ctypes.c_uint64),
        ("samples", ctypes.c_uint64),
        ("scale", ctypes.c_float),
        ("encoding", ctypes.c_uint32),
        ("bits_value", ctypes.c_uint32),
        ("bits_run", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32),
        ("stream_bits", ctypes.c_uint64),
        ("byte_offset", ctypes.c_uint64),
        ("byte_size", ctypes.c_uint64),
    ]


# ------------------------------------------------------------------ prototypes

_p = ctypes.POINTER
_vp = ctypes.c_void_p
_res = ctypes.c_int  # mcgqResult_t: a C enum, int-sized

# ------------------------------------------------------------ exchange
# The communicator over caller-supplied collectives (mcgqCommInitCallbacks,
# mcgq.h): the PyTorch hook passes torch.distributed collectives as these
# callbacks and calls mcgqCommStep; the protocol runs in the library.  Each
# callback returns an mcgqResult_t (SUCCESS, TIMEOUT, or another status on
# failure) and must not raise (ctypes would print and return 0): catch,
# and return INTERNAL_ERROR.  Keep the CFUNCTYPE objects alive as long as
# the communicator.

ALLGATHER_FN = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p,
                                ctypes.c_void_p, ctypes.c_size_t)
ALLGATHERV_FN = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p,
                                 ctypes.c_size_t, ctypes.c_void_p,
                                 ctypes.POINTER(ctypes.c_size_t),
                                 ctypes.POINTER(ctypes.c_size_t))
ALLREDUCE_MAX_FN = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p,
                                    ctypes.POINTER(ctypes.c_int32))
# Needed by the sharded exchange modes only (MPI_Alltoallv semantics):
# (user, send, send_counts, send_displs, recv, recv_counts, recv_displs).
ALLTOALLV_FN = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p,
                                ctypes.POINTER(ctypes.c_size_t),
                                ctypes.POINTER(ctypes.c_size_t), ctypes.c_void_p,
                                ctypes.POINTER(ctypes.c_size_t),
                                ctypes.POINTER(ctypes.c_size_t))

# Exchange modes (mcgq.h, "exchange modes"; mcgqCommSetExchangeMode).
EXCHANGE_NONE = -1  # policy only: send uncompressed
EXCHANGE_ALL_GATHER = 0
EXCHANGE_TWO_STAGE = 1
EXCHANGE_REDUCE_SCATTER = 2
MAX_SHARDED_RANKS = 65535


class TransportCallbacks(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("payload_on_device", ctypes.c_int32),
        ("user", ctypes.c_void_p),
        ("allgather", ALLGATHER_FN),
        ("allgatherv", ALLGATHERV_FN),
        ("allreduce_max_int", ALLREDUCE_MAX_FN),
        ("alltoallv", ALLTOALLV_FN),  # NULL: no sharded modes
        ("allgather_device", ALLGATHER_FN),  # payload_on_device only; may be NULL
    ]


class CommLayer(ctypes.Structure):
    """mcgqLayer_t."""
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32),
        ("grad", ctypes.c_void_p),
        ("accum", ctypes.c_void_p),
        ("kstate", ctypes.c_void_p),
        ("n", ctypes.c_uint64),
        ("cfg", LayerConfig),
    ]


class StepStats(ctypes.Structure):
    """mcgqStepStats_t."""
    _fields_ = [
        ("bytes_sent", ctypes.c_uint64),
        ("elements", ctypes.c_uint64),
        ("paper_ratio", ctypes.c_double),
        ("wire_ratio", ctypes.c_double),
        ("found_nonfinite", ctypes.c_int32),
        ("layers_cut", ctypes.c_int32),
    ]


_PROTOTYPES = {
    # name: (restype, argtypes)
    "mcgqGetVersion": (ctypes.c_int, []),
    "mcgqGetErrorString": (ctypes.c_char_p, [ctypes.c_int]),
    "mcgqGetLastErrorDetail": (ctypes.c_char_p, []),
    "mcgqLayerDescInit": (None, [_p(LayerDesc)]),
    "mcgqKStateInit": (_res, [_p(LayerConfig), _p(KState)]),
    "mcgqRandomWord": (ctypes.c_uint32, [ctypes.c_uint64, ctypes.c_uint64,
                                         ctypes.c_uint32, ctypes.c_uint32]),
    "mcgqResolveSamples": (_res, [_p(LayerConfig), _p(KState), ctypes.c_uint64,
                                  _p(ctypes.c_uint64)]),
    "mcgqQuantizeHost": (_res, [_vp, ctypes.c_uint64, ctypes.c_double,
                                ctypes.c_uint64, ctypes.c_uint32, ctypes.c_int,
                                _vp, _p(LayerStats)]),
    "mcgqWassersteinHost": (_res, [_vp, _vp, ctypes.c_uint64,
                                   _p(ctypes.c_double)]),
    "mcgqKStateUpdate": (_res, [_p(LayerConfig), _p(KState), ctypes.c_double]),
    "mcgqRleEncodeHost": (_res, [_vp, ctypes.c_uint64, _vp, ctypes.c_size_t,
                                 _p(ctypes.c_uint64)]),
    "mcgqRleDecodeHost": (_res, [_vp, ctypes.c_size_t, ctypes.c_uint64, _vp]),
    "mcgqEncodeGetMaxOutputSize": (_res, [_vp, ctypes.c_int,
                                          _p(ctypes.c_size_t)]),
    "mcgqEncodeHost": (_res, [_vp, ctypes.c_int, _vp, ctypes.c_size_t,
                              _p(ctypes.c_size_t), _vp]),
    "mcgqMessageGetInfo": (_res, [_vp, ctypes.c_size_t, _p(MessageInfo)]),
    "mcgqMessageGetLayer": (_res, [_vp, ctypes.c_size_t, ctypes.c_uint32,
                                   _p(MessageLayer)]),
    "mcgqDecodeIntsHost": (_res, [_vp, ctypes.c_size_t, _vp, ctypes.c_uint64,
                                  _vp, ctypes.c_uint32]),
    "mcgqDecodeHost": (_res, [_vp, ctypes.c_size_t, _vp, ctypes.c_uint64]),
    "mcgqDecodeAverageHost": (_res, [_vp, _vp, ctypes.c_int, _vp,
                                     ctypes.c_uint64]),
    "mcgqDecodeHostTyped": (_res, [_vp, ctypes.c_size_t, _vp, ctypes.c_int32,
                                   ctypes.c_uint64]),
    "mcgqDecodeAverageHostTyped": (_res, [_vp, _vp, ctypes.c_int, _vp, ctypes.c_int32,
                                          ctypes.c_uint64]),
    "mcgqGpuAvailable": (ctypes.c_int, []),
    "mcgqEncodeGetTempSize": (_res, [_vp, ctypes.c_int, _p(ctypes.c_size_t)]),
    "mcgqEncodeAsync": (_res, [_vp, ctypes.c_int, _vp, ctypes.c_size_t, _vp,
                               _vp, _vp, ctypes.c_size_t, _vp]),
    "mcgqDecodeAverageGetTempSize": (_res, [ctypes.c_int, ctypes.c_uint64,
                                            ctypes.c_size_t,
                                            _p(ctypes.c_size_t)]),
    "mcgqDecodeAverageAsync": (_res, [_vp, _vp, ctypes.c_int, _vp,
                                      ctypes.c_uint64, _vp, _vp,
                                      ctypes.c_size_t, _vp]),
    "mcgqCommInitCallbacks": (_res, [_p(_vp), ctypes.c_int, ctypes.c_int,
                                     _p(TransportCallbacks)]),
    "mcgqCommSetLayers": (_res, [_vp, _p(CommLayer), ctypes.c_int]),
    "mcgqCommSetLayerIds": (_res, [_vp, _p(ctypes.c_uint32), ctypes.c_int]),
    "mcgqCommSetCapacity": (_res, [_vp, ctypes.c_size_t]),
    "mcgqCommSetTimeout": (_res, [_vp, ctypes.c_double]),
    "mcgqCommStep": (_res, [_vp, ctypes.c_uint64, ctypes.c_uint64, _vp,
                            _p(StepStats)]),
    "mcgqCommGetRank": (_res, [_vp, _p(ctypes.c_int), _p(ctypes.c_int)]),
    "mcgqCommGetLastError": (ctypes.c_char_p, [_vp]),
    "mcgqCommGetLayerStats": (_res, [_vp, _p(LayerStats), ctypes.c_int]),
    "mcgqCommDestroy": (_res, [_vp]),
    "mcgqShardRange": (_res, [ctypes.c_uint64, ctypes.c_int, ctypes.c_int,
                              _p(ctypes.c_uint64), _p(ctypes.c_uint64)]),
    "mcgqCommSetExchangeMode": (_res, [_vp, ctypes.c_int32]),
    "mcgqCommGetExchangeMode": (_res, [_vp, _p(ctypes.c_int32)]),
    "mcgqCommGetOwnerStateSize": (_res, [_vp, _p(ctypes.c_uint64)]),
    "mcgqCommGetOwnerState": (_res, [_vp, _vp, ctypes.c_uint64]),
    "mcgqCommSetOwnerState": (_res, [_vp, _vp, ctypes.c_uint64]),
}


class _MissingFunction:
    """Stands in for an entry point this libmcgq does not export, so the
    package imports and fails only where that function is used."""

    def __init__(self, name):
        self.name = name

    def __call__(self, *args):
        raise InvalidUsage(INVALID_USAGE,
                           "%s is not exported by the loaded libmcgq" % self.name,
                           self.name)


class _Functions:
    pass


fn = _Functions()
for _name, (_restype, _argtypes) in _PROTOTYPES.items():
    try:
        _f = getattr(lib, _name)
    except AttributeError:
        setattr(fn, _name, _MissingFunction(_name))
        continue
    _f.restype = _restype
    _f.argtypes = _argtypes
    setattr(fn, _name, _f)


def status_string(status):
    try:
        text = fn.mcgqGetErrorString(int(status))
    except Error:
        text = None
    return text.decode("utf-8", "replace") if text else "status %d" % int(status)


def last_error_detail():
    try:
        text = fn.mcgqGetLastErrorDetail()
    except Error:
        return ""
    return text.decode("utf-8", "replace") if text else ""


def error_for(status, function=None, detail=None):
    """The exception for a failed status (reads the thread's detail)."""
    if detail is None:
        detail = last_error_detail()
    cls = _ERROR_CLASSES.get(int(status), Error)
    return cls(status, detail, function)


def check(status, function):
    """Raises the mcgq.Error subclass of a failed status."""
    if status != SUCCESS:
        raise error_for(status, function)


def _check_abi():
    """The library writes struct_size of the descriptor and of its config:
    a mismatch means this binding and the library disagree on the ABI."""
    if isinstance(fn.mcgqLayerDescInit, _MissingFunction):
        return
    desc = LayerDesc()
    fn.mcgqLayerDescInit(ctypes.byref(desc))
    if desc.struct_size != ctypes.sizeof(LayerDesc) or \
            desc.cfg.struct_size != ctypes.sizeof(LayerConfig):
        raise ImportError(
            "mcgq: ABI mismatch: libmcgq says sizeof(mcgqLayerDesc_t)=%d, "
            "sizeof(mcgqLayerConfig_t)=%d; this binding has %d, %d" %
            (desc.struct_size, desc.cfg.struct_size, ctypes.sizeof(LayerDesc),
             ctypes.sizeof(LayerConfig)))


_check_abi()


def default_config():
    """MCGQ_LAYER_CONFIG_INITIALIZER, as the library fills it."""
    desc = LayerDesc()
    fn.mcgqLayerDescInit(ctypes.byref(desc))
    return desc.cfg
