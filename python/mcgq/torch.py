"""PyTorch DistributedDataParallel communication hook: MCGQ-compressed
gradient exchange over torch.distributed (gloo on CPU, NCCL on GPU).

    state = MCGQState(k=0.1, accumulate="residual", model=ddp_model)
    ddp_model.register_comm_hook(state, mcgq_hook)

Per DDP bucket, every parameter is one mcgq layer.  Parameters with at least
`min_compress_numel` elements are compressed with one segmented encode call
per bucket; smaller ones (biases, norms) and all parameters during
`warmup_steps` go through an ordinary all-reduce average.  The exchange is
all_gather of the sizes (with a non-finite flag), then all_gather of the
payloads padded to the largest, then a decode-and-average in rank order, so
every rank ends with bit-identical gradients.

Error-feedback accumulators and dynamic-K states live in the state object,
per parameter, and survive state_dict()/load_state_dict() bit for bit.  The
encode works on copies of them; the copies are committed when the whole step
(all buckets) was finite on every rank.  A non-finite value on any rank makes
every rank return its buckets filled with NaN (so torch.cuda.amp.GradScaler
skips the step) and leaves the accumulators, K states and the step counter
unchanged.
"""

import ctypes

import torch
import torch.distributed as dist

from . import _capi
from . import LayerStats, _config, _u64, gpu_available, random_word

__all__ = ["MCGQState", "mcgq_hook"]

_STATE_FORMAT = 1
_KSTATE_BYTES = ctypes.sizeof(_capi.KState)
_STATS_BYTES = ctypes.sizeof(_capi.LayerStats)


class _Layer:
    """Per-parameter state: stable ordinal (the layer id of its random word),
    checkpoint key, accumulator and dynamic-K state (both tensors on the
    parameter's device; the K state is the raw mcgqKState_t bytes)."""

    __slots__ = ("ordinal", "key", "numel", "accum", "kstate")

    def __init__(self, ordinal, key, numel):
        self.ordinal = ordinal
        self.key = key
        self.numel = numel
        self.accum = None
        self.kstate = None


def _kstate_bytes(k):
    ks = _capi.KState()
    ks.k = k
    return torch.frombuffer(bytearray(ctypes.string_at(ctypes.addressof(ks),
                                                       _KSTATE_BYTES)),
                            dtype=torch.uint8)


def _kstate_fields(t):
    """(k, d_prev, started) of a K-state tensor (any device)."""
    raw = t.detach().cpu().contiguous()
    ks = _capi.KState.from_buffer_copy(raw.numpy().tobytes())
    return float(ks.k), float(ks.d_prev), int(ks.started)


class MCGQState:
    """State of the MCGQ DDP hook.

    process_group: the group DDP uses (None: the default group).
    k: sampling amount K in (0, 64] (N = ceil(numel * K) samples per layer).
    accumulate: "reset" (the paper's Alg 4), "residual" (error feedback with
        the damped scale) or "none" (Alg 2, no memory).
    dynamic_k, k_min, k_max, delta_k: the paper's Alg 3 per layer.
    seed: random words are random_word(seed, step, layer ordinal, rank).
    warmup_steps: steps exchanged with a plain all-reduce first.
    min_compress_numel: smaller parameters are all-reduced, not compressed.
    checksum: CRC32C on every layer of the wire messages.
    model: the (DDP) module; when given, checkpoint keys are parameter names
        and layer ordinals their positions in model.parameters(); otherwise
        parameters are numbered in the order the hook first meets them
        (deterministic for a given model and DDP configuration).
    """

    def __init__(self, process_group=None, k=0.1, accumulate="reset",
                 dynamic_k=False, k_min=0.01, k_max=8.0, delta_k=0.0, seed=0,
                 warmup_steps=0, min_compress_numel=1024, checksum=False,
                 algo="fused", model=None):
        # Validate every knob now, with the library's own config check where
        # one exists, so a bad knob fails here and not inside backward().
        self._cfg = _config(k=k, accumulate=accumulate, dynamic_k=dynamic_k,
                            k_min=k_min, k_max=k_max, delta_k=delta_k,
                            checksum=checksum, algo=algo)
        probe = _capi.KState()
        _capi.check(_capi.fn.mcgqKStateInit(ctypes.byref(self._cfg),
                                            ctypes.byref(probe)),
                    "mcgqKStateInit")
        if not 0.0 < self._cfg.k <= _capi.MAX_K:
            raise ValueError("k = %r is not in (0, %g]" % (k, _capi.MAX_K))
        self.process_group = process_group
        self.k = float(k)
        self.accumulate = accumulate
        self.dynamic_k = bool(dynamic_k)
        self.k_min, self.k_max, self.delta_k = float(k_min), float(k_max), float(delta_k)
        self.seed = _u64(seed, "seed")
        self.warmup_steps = _u64(warmup_steps, "warmup_steps")
        self.min_compress_numel = max(1, int(min_compress_numel))
        self.checksum = bool(checksum)
        self.algo = algo
        self.step = 0
        self._names = None
        if model is not None:
            self._names = {id(p): (i, name) for i, (name, p)
                           in enumerate(model.named_parameters())}
        self._by_param = {}       # id(param) -> _Layer
        self._by_key = {}         # key -> _Layer
        self._loaded = {}         # key -> record from load_state_dict, not yet met
        self._pending = []        # (layer, new accum, new kstate) of this step
        self._step_nonfinite = False
        self._cur = self._empty_step_stats()
        self._last = self._empty_step_stats()
        self._totals = {"steps": 0, "steps_nonfinite": 0, "bytes_sent": 0,
                        "elements_compressed": 0}

    # ---------------------------------------------------------- layers

    def _layer_of(self, param):
        layer = self._by_param.get(id(param))
        if layer is not None:
            return layer
        if self._names is not None:
            if id(param) not in self._names:
                raise RuntimeError("mcgq: a bucket holds a parameter that is not "
                                   "in the model given to MCGQState")
            ordinal, key = self._names[id(param)]
        else:
            ordinal = len(self._by_param)
            key = "param%d" % ordinal
        layer = _Layer(ordinal, key, param.numel())
        record = self._loaded.pop(key, None)
        if record is not None:
            self._restore_layer(layer, record, param.device)
        self._by_param[id(param)] = layer
        self._by_key[key] = layer
        return layer

    def _restore_layer(self, layer, record, device):
        if int(record["numel"]) != layer.numel:
            raise ValueError("mcgq: checkpoint layer %r has %d elements, the "
                             "parameter has %d" % (layer.key, record["numel"],
                                                   layer.numel))
        accum = record.get("accum")
        layer.accum = None if accum is None else \
            accum.detach().to(device=device, dtype=torch.float32).clone().contiguous()
        if record.get("k") is not None:
            ks = _capi.KState()
            ks.k, ks.d_prev, ks.started = record["k"], record["d_prev"], record["started"]
            layer.kstate = torch.frombuffer(
                bytearray(ctypes.string_at(ctypes.addressof(ks), _KSTATE_BYTES)),
                dtype=torch.uint8).to(device)

    def _ensure_buffers(self, layer, device):
        if self._cfg.accumulate != _capi.ACCUM_NONE and layer.accum is None:
            layer.accum = torch.zeros(layer.numel, dtype=torch.float32, device=device)
        if self.dynamic_k and layer.kstate is None:
            layer.kstate = _kstate_bytes(self.k).to(device)

    # ---------------------------------------------------------- checkpoint

    def state_dict(self):
        """Step counter, per-parameter accumulators (float32 CPU tensors) and
        dynamic-K states (k, d_prev as Python floats: exact doubles), the
        configuration (informative) and cumulative counters.  Only tensors
        and Python scalars, so torch.load(weights_only=True) reads it."""
        layers = {}
        for key, rec in self._loaded.items():
            layers[key] = dict(rec)
        for key, layer in self._by_key.items():
            rec = {"ordinal": layer.ordinal, "numel": layer.numel,
                   "accum": None if layer.accum is None else layer.accum.detach().cpu().clone(),
                   "k": None, "d_prev": None, "started": None}
            if layer.kstate is not None:
                rec["k"], rec["d_prev"], rec["started"] = _kstate_fields(layer.kstate)
            layers[key] = rec
        return {
            "format": _STATE_FORMAT,
            "step": self.step,
            "seed": self.seed,
            "config": {"k": self.k, "accumulate": self.accumulate,
                       "dynamic_k": self.dynamic_k, "k_min": self.k_min,
                       "k_max": self.k_max, "delta_k": self.delta_k,
                       "warmup_steps": self.warmup_steps,
                       "min_compress_numel": self.min_compress_numel,
                       "checksum": self.checksum, "algo": self.algo},
            "layers": layers,
            "totals": dict(self._totals),
        }

    def load_state_dict(self, sd):
        """Restores what state_dict() returned.  The accumulation mode must be
        the same (an accumulator means something else in another mode)."""
        if sd.get("format") != _STATE_FORMAT:
            raise ValueError("mcgq: unknown hook state format %r" % sd.get("format"))
        if sd["config"]["accumulate"] != self.accumulate:
            raise ValueError("mcgq: checkpoint was made with accumulate=%r, this "
                             "state has %r" % (sd["config"]["accumulate"],
                                               self.accumulate))
        if self._pending:
            raise RuntimeError("mcgq: load_state_dict in the middle of a step")
        self.step = int(sd["step"])
        self.seed = _u64(sd["seed"], "seed")
        self._totals = dict(sd.get("totals", self._totals))
        self._loaded = {}
        for key, rec in sd["layers"].items():
            layer = self._by_key.get(key)
            if layer is None:
                self._loaded[key] = dict(rec)
            else:
                device = layer.accum.device if layer.accum is not None else (
                    layer.kstate.device if layer.kstate is not None else "cpu")
                layer.accum = layer.kstate = None
                self._restore_layer(layer, rec, device)

    # ---------------------------------------------------------- stats

    @staticmethod
    def _empty_step_stats():
        return {"layers_compressed": 0, "layers_allreduced": 0,
                "elements_compressed": 0, "elements_allreduced": 0,
                "bytes_sent": 0, "bytes_sent_padded": 0, "paper_bits": 0,
                "k_sum": 0.0}

    def stats(self):
        """Counters of the last completed step and since the start:
        bits_per_element (wire bits of the compressed layers per compressed
        element), bits_per_element_all (all-reduced elements at 32 bits),
        paper_bits_per_element (the paper's stream + 32-bit scale), layers
        compressed / all-reduced, mean K of the compressed layers, bytes this
        rank sent (exact and padded to the all_gather size)."""
        s = self._last
        ec, ea = s["elements_compressed"], s["elements_allreduced"]
        total = ec + ea
        return {
            "step": self.step,
            "layers_compressed": s["layers_compressed"],
            "layers_allreduced": s["layers_allreduced"],
            "elements_compressed": ec,
            "elements_allreduced": ea,
            "bytes_sent": s["bytes_sent"],
            "bytes_sent_padded": s["bytes_sent_padded"],
            "bits_per_element": 8.0 * s["bytes_sent"] / ec if ec else 32.0,
            "bits_per_element_all": (8.0 * s["bytes_sent"] + 32.0 * ea) / total
                                    if total else 0.0,
            "paper_bits_per_element": s["paper_bits"] / ec if ec else 32.0,
            "k": s["k_sum"] / s["layers_compressed"] if s["layers_compressed"] else self.k,
            "k_per_layer": {key: _kstate_fields(l.kstate)[0] if l.kstate is not None
                            else self.k for key, l in self._by_key.items()},
            "total_steps": self._totals["steps"],
            "total_steps_nonfinite": self._totals["steps_nonfinite"],
            "total_bytes_sent": self._totals["bytes_sent"],
        }

    # ---------------------------------------------------------- step end

    def _end_step(self):
        if self._step_nonfinite:
            self._totals["steps_nonfinite"] += 1
        else:
            for layer, accum, kstate in self._pending:
                if accum is not None:
                    layer.accum = accum
                if kstate is not None:
                    layer.kstate = kstate
            self._totals["steps"] += 1
            self._totals["bytes_sent"] += self._cur["bytes_sent"]
            self._totals["elements_compressed"] += self._cur["elements_compressed"]
            self.step += 1
        self._last = self._cur
        self._cur = self._empty_step_stats()
        self._pending = []
        self._step_nonfinite = False


# -------------------------------------------------------------- the hook

def _group_info(state):
    group = state.process_group if state.process_group is not None else dist.group.WORLD
    return group, dist.get_rank(group), dist.get_world_size(group)


def _split_bucket(buffer, bucket):
    """(param, offset, numel) of each parameter inside the flat buffer."""
    base = buffer.data_ptr()
    item = buffer.element_size()
    out = []
    for p, g in zip(bucket.parameters(), bucket.gradients()):
        off, rem = divmod(g.data_ptr() - base, item)
        if rem or off < 0 or off + g.numel() > buffer.numel() or not g.is_contiguous():
            raise RuntimeError("mcgq: a gradient is not a contiguous view of its "
                               "DDP bucket")
        out.append((p, off, g.numel()))
    return out


def _allreduce_average(tensor, group, world):
    tensor.div_(world)
    dist.all_reduce(tensor, group=group)


def _fill_nonfinite(buffer, state):
    buffer.fill_(float("nan"))
    state._step_nonfinite = True


def _descriptors(state, entries, buffer, rank):
    """Layer table of the compressed parameters; the encode writes into
    fresh copies of the accumulators and K states (committed at step end)."""
    descs = (_capi.LayerDesc * len(entries))()
    copies = []
    base = buffer.data_ptr()
    item = buffer.element_size()
    for i, (layer, off, n) in enumerate(entries):
        d = descs[i]
        _capi.fn.mcgqLayerDescInit(ctypes.byref(d))
        d.cfg = state._cfg
        d.g = base + off * item
        d.n = n
        d.u = random_word(state.seed, state.step, layer.ordinal, rank)
        accum = layer.accum.clone() if layer.accum is not None else None
        kstate = layer.kstate.clone() if layer.kstate is not None else None
        if accum is not None:
            d.accum = accum.data_ptr()
        if kstate is not None:
            d.kstate = kstate.data_ptr()
        copies.append((layer, accum, kstate))
    return descs, copies


def _max_output_size(descs):
    size = ctypes.c_size_t()
    _capi.check(_capi.fn.mcgqEncodeGetMaxOutputSize(descs, len(descs),
                                                    ctypes.byref(size)),
                "mcgqEncodeGetMaxOutputSize")
    return int(size.value)


_DATA_STATUSES = (_capi.NON_FINITE, _capi.RANGE_ERROR)


def _encode_cpu(descs):
    """Returns (payload uint8 tensor, size, flag, [LayerStats])."""
    capacity = _max_output_size(descs)
    out = torch.empty(capacity, dtype=torch.uint8)
    stats = (_capi.LayerStats * len(descs))()
    out_bytes = ctypes.c_size_t()
    status = _capi.fn.mcgqEncodeHost(descs, len(descs), out.data_ptr(), capacity,
                                     ctypes.byref(out_bytes), stats)
    if status in _DATA_STATUSES:
        return out, 0, 1, None
    _capi.check(status, "mcgqEncodeHost")
    return out, int(out_bytes.value), 0, [LayerStats.from_c(s) for s in stats]


def _decode_average_cpu(gathered, sizes, total_n):
    world = len(sizes)
    stride = gathered.shape[1]
    ptrs = (ctypes.c_void_p * world)(*[gathered.data_ptr() + r * stride
                                       for r in range(world)])
    lens = (ctypes.c_size_t * world)(*sizes)
    out = torch.empty(total_n, dtype=torch.float32)
    _capi.check(_capi.fn.mcgqDecodeAverageHost(ptrs, lens, world, out.data_ptr(),
                                               total_n),
                "mcgqDecodeAverageHost")
    return out


def _require_gpu():
    if not gpu_available():
        raise RuntimeError(
            "mcgq: the gradients are CUDA tensors but the loaded libmcgq has no "
            "usable GPU path (built without CUDA, e.g. with "
            "-C cmake.define.MCGQ_ENABLE_CUDA=OFF, or no device visible); "
            "reinstall with the CUDA toolkit present or train on CPU tensors")


def _encode_cuda(descs, device):
    """GPU encode on the current stream; reads the per-layer statuses and
    the size back to the host (the sizes are needed for the all_gather)."""
    _require_gpu()
    stream = ctypes.c_void_p(torch.cuda.current_stream(device).cuda_stream)
    temp_bytes = ctypes.c_size_t()
    _capi.check(_capi.fn.mcgqEncodeGetTempSize(descs, len(descs),
                                               ctypes.byref(temp_bytes)),
                "mcgqEncodeGetTempSize")
    capacity = _max_output_size(descs)
    out = torch.empty(capacity, dtype=torch.uint8, device=device)
    temp = torch.empty(max(1, temp_bytes.value), dtype=torch.uint8, device=device)
    d_size = torch.zeros(1, dtype=torch.int64, device=device)
    d_stats = torch.zeros(len(descs) * _STATS_BYTES, dtype=torch.uint8, device=device)
    _capi.check(_capi.fn.mcgqEncodeAsync(descs, len(descs), out.data_ptr(), capacity,
                                         d_size.data_ptr(), d_stats.data_ptr(),
                                         temp.data_ptr(), temp_bytes.value, stream),
                "mcgqEncodeAsync")
    raw = d_stats.cpu().numpy().tobytes()
    stats = (_capi.LayerStats * len(descs)).from_buffer_copy(raw)
    statuses = [int(s.status) for s in stats]
    if any(s in _DATA_STATUSES for s in statuses):
        return out, 0, 1, None
    for s in statuses:
        if s != _capi.SUCCESS:
            raise _capi.error_for(s, "mcgqEncodeAsync", "a layer's device status")
    return out, int(d_size.item()), 0, [LayerStats.from_c(s) for s in stats]


def _decode_average_cuda(gathered, sizes, total_n):
    device = gathered.device
    world = len(sizes)
    stride = gathered.shape[1]
    stream = ctypes.c_void_p(torch.cuda.current_stream(device).cuda_stream)
    temp_bytes = ctypes.c_size_t()
    _capi.check(_capi.fn.mcgqDecodeAverageGetTempSize(world, total_n, stride,
                                                      ctypes.byref(temp_bytes)),
                "mcgqDecodeAverageGetTempSize")
    temp = torch.empty(max(1, temp_bytes.value), dtype=torch.uint8, device=device)
    out = torch.empty(total_n, dtype=torch.float32, device=device)
    d_status = torch.zeros(1, dtype=torch.int32, device=device)
    ptrs = (ctypes.c_void_p * world)(*[gathered.data_ptr() + r * stride
                                       for r in range(world)])
    lens = (ctypes.c_size_t * world)(*sizes)
    _capi.check(_capi.fn.mcgqDecodeAverageAsync(ptrs, lens, world, out.data_ptr(),
                                                total_n, d_status.data_ptr(),
                                                temp.data_ptr(), temp_bytes.value,
                                                stream),
                "mcgqDecodeAverageAsync")
    status = int(d_status.item())
    if status != _capi.SUCCESS:
        raise _capi.error_for(status, "mcgqDecodeAverageAsync",
                              "a received message failed to decode on the device")
    return out


def _exchange_compressed(state, compressed, small, buffer, group, rank, world):
    """Encode, agree on finiteness, exchange, decode-average into buffer."""
    cuda = buffer.is_cuda
    for layer, _, _ in compressed:
        state._ensure_buffers(layer, buffer.device)
    descs, copies = _descriptors(state, compressed, buffer, rank)
    if cuda:
        out, size, flag, layer_stats = _encode_cuda(descs, buffer.device)
    else:
        out, size, flag, layer_stats = _encode_cpu(descs)
    small_flat = torch.cat([buffer[o:o + n] for o, n in small]) if small else None
    if small_flat is not None and not bool(torch.isfinite(small_flat).all()):
        flag = 1

    meta = torch.tensor([size, flag], dtype=torch.int64, device=buffer.device)
    metas = [torch.empty_like(meta) for _ in range(world)]
    dist.all_gather(metas, meta, group=group)
    metas = torch.stack(metas).cpu().tolist()
    if any(f for _, f in metas):
        _fill_nonfinite(buffer, state)
        return
    sizes = [s for s, _ in metas]
    stride = max(sizes)
    gathered = torch.empty((world, stride), dtype=torch.uint8, device=buffer.device)
    dist.all_gather(list(gathered.unbind(0)), out[:stride], group=group)
    if small_flat is not None:
        _allreduce_average(small_flat, group, world)
    total_n = sum(n for _, _, n in compressed)
    if cuda:
        avg = _decode_average_cuda(gathered, sizes, total_n)
    else:
        avg = _decode_average_cpu(gathered, sizes, total_n)

    pos = 0
    for _, off, n in compressed:
        buffer[off:off + n].copy_(avg[pos:pos + n])
        pos += n
    if small_flat is not None:
        pos = 0
        for off, n in small:
            buffer[off:off + n].copy_(small_flat[pos:pos + n])
            pos += n

    state._pending.extend(copies)
    cur = state._cur
    cur["layers_compressed"] += len(compressed)
    cur["elements_compressed"] += total_n
    cur["layers_allreduced"] += len(small)
    cur["elements_allreduced"] += sum(n for _, n in small)
    cur["bytes_sent"] += size
    cur["bytes_sent_padded"] += stride
    cur["paper_bits"] += sum(s.stream_bits + 32 for s in layer_stats)
    cur["k_sum"] += sum(s.k for s in layer_stats)


def _hook_step(state, bucket):
    buffer = bucket.buffer()
    if buffer.dtype != torch.float32:
        raise TypeError("mcgq: the DDP bucket holds %s gradients; mcgq compresses "
                        "float32 only" % buffer.dtype)
    group, rank, world = _group_info(state)
    compress_now = state.step >= state.warmup_steps
    compressed, small = [], []
    for param, off, n in _split_bucket(buffer, bucket):
        if compress_now and n >= state.min_compress_numel and n <= _capi.MAX_LAYER_ELEMENTS:
            compressed.append((state._layer_of(param), off, n))
        else:
            state._layer_of(param)   # numbered in meeting order all the same
            small.append((off, n))
    if compressed:
        _exchange_compressed(state, compressed, small, buffer, group, rank, world)
    else:
        _allreduce_average(buffer, group, world)
        # Identical on every rank after the all-reduce, so all agree.
        if not bool(torch.isfinite(buffer).all()):
            _fill_nonfinite(buffer, state)
        else:
            state._cur["layers_allreduced"] += len(small)
            state._cur["elements_allreduced"] += buffer.numel()


def mcgq_hook(state, bucket):
    """DDP communication hook: register with
    ddp_model.register_comm_hook(state, mcgq_hook).  Returns a completed
    torch.futures.Future holding the averaged bucket."""
    try:
        _hook_step(state, bucket)
    finally:
        if bucket.is_last():
            state._end_step()
    fut = torch.futures.Future()
    fut.set_result(bucket.buffer())
    return fut
