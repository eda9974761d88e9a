"""The library's step protocol over torch.distributed (CPU tensors, gloo).

`Comm` is an mcgq communicator whose transport is a torch.distributed
process group, supplied to mcgqCommInitCallbacks as four collectives
(all_gather, all_gather of different sizes, a max all_reduce and, for the
sharded modes, all_to_all_single).  The protocol itself (agreement,
exchange, decode-and-average, commit) runs in the C library, exactly as on
MPI and NCCL, so every exchange mode of mcgq.h is available here:

    comm = Comm([w.grad for w in params], k=0.1, accumulate="residual",
                mode="reduce_scatter")
    comm.step()            # this rank's shard of every tensor is averaged

`reduce_scatter(comm)` is the sharded-training entry point (ZeRO / FSDP
style): rank j ends with shard j (mcgq.shard_range) of every registered
tensor holding the compressed average, the rest of each tensor untouched.

Host memory only: tensors must be contiguous float32 CPU tensors (the
device codec runs under the DDP hook, mcgq.torch.mcgq_hook).  Timeout: the
process group's own (init_process_group(timeout=...)).  A collective that
it ends makes step() raise mcgq.Timeout on the ranks that were waiting,
with nothing changed; the communicator is then aborted (every later step
raises mcgq.InvalidUsage): build a new one, on a new process group.  Tensors are
registered once; the library keeps their data pointers, so replace them
only through set_tensors().  Callbacks never raise into C: a failed
collective returns mcgqInternalError and the step fails on this rank with
the Python exception's text in the error.
"""

import ctypes
import traceback

import torch
import torch.distributed as dist

from . import _capi
from . import _config, _u64

__all__ = ["Comm", "reduce_scatter", "shard_range"]

_MODES = {"all_gather": _capi.EXCHANGE_ALL_GATHER,
          "two_stage": _capi.EXCHANGE_TWO_STAGE,
          "reduce_scatter": _capi.EXCHANGE_REDUCE_SCATTER}


def shard_range(n, nranks, shard):
    """[begin, end) of shard `shard` of n elements over nranks owners."""
    b, e = ctypes.c_uint64(), ctypes.c_uint64()
    _capi.check(_capi.fn.mcgqShardRange(n, nranks, shard, ctypes.byref(b),
                                        ctypes.byref(e)), "mcgqShardRange")
    return b.value, e.value


def _host_bytes(address, nbytes):
    """A uint8 tensor copy of nbytes at a C address."""
    if nbytes == 0:
        return torch.empty(0, dtype=torch.uint8)
    buf = (ctypes.c_uint8 * nbytes).from_address(address)
    return torch.frombuffer(bytearray(buf), dtype=torch.uint8)


def _store(address, tensor):
    if tensor.numel():
        ctypes.memmove(address, tensor.data_ptr(), tensor.numel())


def _timed_out(error):
    """A collective that the process group's own timeout ended (gloo:
    RuntimeError "Timed out waiting ...ms"; NCCL's watchdog: "caught
    collective operation timeout"), which the library turns into
    mcgqTimeout: the waiting ranks fail the step with mcgq.Timeout and the
    communicator is aborted."""
    text = str(error).lower()
    return isinstance(error, TimeoutError) or "timed out" in text or "timeout" in text


class _CudaBytes:
    """nbytes of device memory at a C address, as torch.as_tensor takes it
    (__cuda_array_interface__): a view, no copy."""

    def __init__(self, address, nbytes):
        self.__cuda_array_interface__ = {"shape": (nbytes,), "typestr": "|u1",
                                         "data": (address, False), "version": 2}


def _device_bytes(address, nbytes, device):
    """A uint8 CUDA tensor viewing nbytes at a device address."""
    if nbytes == 0:
        return torch.empty(0, dtype=torch.uint8, device=device)
    return torch.as_tensor(_CudaBytes(address, nbytes), device=device)


class _Transport:
    """The collectives of mcgqTransportCallbacks_t over one process group.

    device None (or CPU): a host communicator, every buffer host memory.
    A CUDA device: a device communicator (payload_on_device): the payloads
    and the step blocks (allgather_device) are device memory, viewed as
    CUDA tensors, and the small host-memory collectives go through CUDA
    tensors too (NCCL moves device memory only).  Everything then runs on
    the calling thread's current stream, which must be mcgqCommStep's
    stream, so the library's decode follows the copies into its buffers.

    `sent` counts the bytes this rank put into each kind of collective:
    "header" (the protocol's fixed blocks and max-reductions), "message"
    (payloads) and "padding" (what allgatherv adds to reach the largest
    rank's payload, since torch.distributed gathers equal sizes)."""

    def __init__(self, group, device=None):
        self.group = group
        self.world = dist.get_world_size(group)
        self.device = torch.device("cpu") if device is None else torch.device(device)
        self.on_device = self.device.type == "cuda"
        self.error = None  # text of the last callback failure
        self.sent = {"header": 0, "message": 0, "padding": 0}

    def _guard(self, fn):
        def call(*args):
            try:
                fn(*args)
                return _capi.SUCCESS
            except Exception as e:  # never raise into C
                self.error = traceback.format_exc(limit=2)
                return _capi.TIMEOUT if _timed_out(e) else _capi.INTERNAL_ERROR
        return call

    # payload memory: host copies, or views of device memory
    def _payload(self, address, nbytes):
        if self.on_device:
            return _device_bytes(address, nbytes, self.device)
        return _host_bytes(address, nbytes)

    def _deliver(self, address, tensor):
        if self.on_device:
            _device_bytes(address, tensor.numel(), self.device).copy_(tensor)
        else:
            _store(address, tensor)

    def _empty(self, nbytes):
        return torch.empty(nbytes, dtype=torch.uint8, device=self.device)

    def allgather(self, _user, send, recv, nbytes):
        mine = _host_bytes(send, nbytes).to(self.device)
        parts = [self._empty(nbytes) for _ in range(self.world)]
        dist.all_gather(parts, mine, group=self.group)
        self.sent["header"] += nbytes
        _store(recv, torch.cat(parts).cpu())

    def allgather_device(self, _user, send, recv, nbytes):
        # the step blocks where the library's encode left them: no host copy
        parts = [_device_bytes(recv + r * nbytes, nbytes, self.device)
                 for r in range(self.world)]
        dist.all_gather(parts, _device_bytes(send, nbytes, self.device),
                        group=self.group)
        self.sent["header"] += nbytes

    def allgatherv(self, _user, send, send_bytes, recv, counts, displs):
        # counts are equal on every rank: pad to the largest, gather, place
        width = max(counts[r] for r in range(self.world))
        if width == 0:
            return
        mine = torch.zeros(width, dtype=torch.uint8, device=self.device)
        mine[:send_bytes].copy_(self._payload(send, send_bytes))
        parts = [self._empty(width) for _ in range(self.world)]
        dist.all_gather(parts, mine, group=self.group)
        self.sent["message"] += send_bytes
        self.sent["padding"] += width - send_bytes
        for r in range(self.world):
            self._deliver(recv + displs[r], parts[r][:counts[r]])

    def allreduce_max_int(self, _user, value):
        t = torch.tensor([value[0]], dtype=torch.int32, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self.group)
        self.sent["header"] += 4
        value[0] = int(t[0])

    def alltoallv(self, _user, send, send_counts, send_displs, recv,
                  recv_counts, recv_displs):
        out_sizes = [int(send_counts[j]) for j in range(self.world)]
        in_sizes = [int(recv_counts[r]) for r in range(self.world)]
        pieces = [self._payload(send + send_displs[j], out_sizes[j])
                  for j in range(self.world)]
        inp = torch.cat(pieces) if pieces else self._empty(0)
        out = self._empty(sum(in_sizes))
        dist.all_to_all_single(out, inp, output_split_sizes=in_sizes,
                               input_split_sizes=out_sizes, group=self.group)
        self.sent["message"] += sum(out_sizes)
        at = 0
        for r in range(self.world):
            self._deliver(recv + recv_displs[r], out[at:at + in_sizes[r]])
            at += in_sizes[r]


def _callbacks(transport):
    """The mcgqTransportCallbacks_t of a _Transport (keep it alive as long
    as the communicator: it owns the ctypes thunks)."""
    t = transport
    cb = _capi.TransportCallbacks()
    cb.struct_size = ctypes.sizeof(_capi.TransportCallbacks)
    cb.payload_on_device = 1 if t.on_device else 0
    cb.allgather = _capi.ALLGATHER_FN(t._guard(t.allgather))
    cb.allgatherv = _capi.ALLGATHERV_FN(t._guard(t.allgatherv))
    cb.allreduce_max_int = _capi.ALLREDUCE_MAX_FN(t._guard(t.allreduce_max_int))
    cb.alltoallv = _capi.ALLTOALLV_FN(t._guard(t.alltoallv))
    if t.on_device:
        cb.allgather_device = _capi.ALLGATHER_FN(t._guard(t.allgather_device))
    return cb


class Comm:
    """An mcgq communicator over a torch.distributed process group.

    tensors: contiguous float32 CPU tensors, one layer each (the input
        gradients, overwritten with the result of each step).
    k, accumulate, seed, checksum: as for mcgq.torch.MCGQState; the
        accumulators belong to this object (one per tensor, zeros).
    mode: "all_gather" (default), "reduce_scatter" or "two_stage".
    process_group: None for the default group.
    layer_ids: None (tensor i samples as layer i) or one distinct id per
        tensor (mcgqCommSetLayerIds: a tensor keeps its random words
        wherever it lies in the list); set_tensors() takes new ones.
    """

    def __init__(self, tensors, k=0.1, accumulate="reset", mode="all_gather",
                 seed=0, checksum=False, process_group=None, layer_ids=None):
        if not dist.is_initialized():
            raise RuntimeError("torch.distributed is not initialized")
        self._cfg = _config(k=k, accumulate=accumulate, checksum=checksum)
        self.seed = _u64(seed, "seed")
        self.step_count = 0
        self._handle = ctypes.c_void_p()
        self._transport = _Transport(process_group)
        t = self._transport
        self._cb = _callbacks(t)
        rank = dist.get_rank(process_group)
        _capi.check(_capi.fn.mcgqCommInitCallbacks(ctypes.byref(self._handle), rank,
                                                   t.world, ctypes.byref(self._cb)),
                    "mcgqCommInitCallbacks")
        self.rank, self.world = rank, t.world
        self.set_mode(mode)
        self.set_tensors(tensors, layer_ids)

    # ------------------------------------------------------------ setup

    def _fail(self, status, function):
        detail = (_capi.fn.mcgqCommGetLastError(self._handle) or b"").decode()
        if self._transport.error:
            detail += " [callback: %s]" % self._transport.error.strip()
            self._transport.error = None
        raise _capi.error_for(status, function, detail)

    def _call(self, status, function):
        if status != _capi.SUCCESS:
            self._fail(status, function)

    def set_mode(self, mode):
        if mode not in _MODES:
            raise ValueError("mode = %r is not one of %s" % (mode, sorted(_MODES)))
        self._call(_capi.fn.mcgqCommSetExchangeMode(self._handle, _MODES[mode]),
                   "mcgqCommSetExchangeMode")
        self.mode = mode

    def set_tensors(self, tensors, layer_ids=None):
        tensors = list(tensors)
        if layer_ids is not None and len(layer_ids) != len(tensors):
            raise ValueError("layer_ids has %d ids for %d tensors" %
                             (len(layer_ids), len(tensors)))
        for i, t in enumerate(tensors):
            if not isinstance(t, torch.Tensor) or t.dtype != torch.float32 or \
                    t.device.type != "cpu" or not t.is_contiguous() or t.numel() == 0:
                raise ValueError("tensors[%d] must be a non-empty contiguous float32 "
                                 "CPU tensor" % i)
        accum = [torch.zeros_like(t) if self._cfg.accumulate != 0 else None
                 for t in tensors]
        table = (_capi.CommLayer * max(1, len(tensors)))()
        for i, t in enumerate(tensors):
            table[i].struct_size = ctypes.sizeof(_capi.CommLayer)
            table[i].grad = t.data_ptr()
            table[i].accum = accum[i].data_ptr() if accum[i] is not None else None
            table[i].kstate = None
            table[i].n = t.numel()
            table[i].cfg = self._cfg
        self._call(_capi.fn.mcgqCommSetLayers(self._handle, table, len(tensors)),
                   "mcgqCommSetLayers")
        self.tensors, self.accumulators = tensors, accum
        if layer_ids is not None:
            ids = [int(i) for i in layer_ids]
            self._call(_capi.fn.mcgqCommSetLayerIds(
                self._handle, (ctypes.c_uint32 * max(1, len(ids)))(*ids), len(ids)),
                "mcgqCommSetLayerIds")

    # ------------------------------------------------------------ steps

    def step(self):
        """One exchange of every registered tensor (collective).  Returns
        this rank's mcgqStepStats_t as a dict; raises the same mcgq.Error
        subclass on every rank when any rank fails (nothing changed)."""
        stats = _capi.StepStats()
        self._call(_capi.fn.mcgqCommStep(self._handle, self.step_count, self.seed,
                                         None, ctypes.byref(stats)), "mcgqCommStep")
        self.step_count += 1
        return {f: getattr(stats, f) for f, _ in _capi.StepStats._fields_}

    def shard(self, i):
        """[begin, end) of this rank's shard of tensor i (sharded modes)."""
        return shard_range(self.tensors[i].numel(), self.world, self.rank)

    def owner_state(self):
        n = ctypes.c_uint64()
        self._call(_capi.fn.mcgqCommGetOwnerStateSize(self._handle, ctypes.byref(n)),
                   "mcgqCommGetOwnerStateSize")
        out = torch.zeros(n.value, dtype=torch.float32)
        if n.value:
            self._call(_capi.fn.mcgqCommGetOwnerState(self._handle, out.data_ptr(), n.value),
                       "mcgqCommGetOwnerState")
        return out

    def set_owner_state(self, state):
        """Replaces the two-stage owner-side accumulators (what owner_state()
        returned: float32, this rank's shard of every tensor in order)."""
        state = torch.as_tensor(state, dtype=torch.float32).contiguous()
        self._call(_capi.fn.mcgqCommSetOwnerState(self._handle, state.data_ptr(),
                                                  state.numel()),
                   "mcgqCommSetOwnerState")

    def close(self):
        if self._handle:
            _capi.fn.mcgqCommDestroy(self._handle)
            self._handle = ctypes.c_void_p()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def reduce_scatter(comm):
    """Compressed reduce-scatter of comm's tensors: shard `rank` of each
    tensor receives the average over ranks (mcgq.h, MCGQ_EXCHANGE_REDUCE_
    SCATTER).  Switches comm to that mode if needed; returns the stats."""
    if comm.mode != "reduce_scatter":
        comm.set_mode("reduce_scatter")
    return comm.step()
