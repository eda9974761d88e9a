"""PyTorch DistributedDataParallel communication hook: MCGQ-compressed
gradient exchange over torch.distributed (gloo on CPU, NCCL on GPU).

    state = MCGQState(k=0.1, accumulate="residual", model=ddp_model)
    ddp_model.register_comm_hook(state, mcgq_hook)

Per DDP bucket, every parameter is one mcgq layer.  Parameters with at least
`min_compress_numel` elements are compressed; smaller ones (biases, norms),
and all parameters during `warmup_steps`, travel as raw float32 and are
averaged in rank order (acc = 0; for r: acc += x_r; acc / P), so every rank
ends with bit-identical gradients for any number of ranks.

One protocol.  The compressed parameters of a bucket go through the
library's step protocol (mcgqCommStep: encode, agreement on failures and
sizes, exchange, decode-and-average, commit), with torch.distributed as its
transport through mcgqCommInitCallbacks (mcgq/torch_comm.py); the hook
re-codes none of it.  CPU buckets use the host codec; CUDA buckets a device
communicator (the library's GPU codec, payloads exchanged as CUDA tensors
on the exchange thread's own stream).  Each parameter samples with its
ordinal as layer id (mcgqCommSetLayerIds), so its bits do not depend on
DDP's bucket layout: a checkpoint resumes bit for bit into a fresh DDP, and
the numpy reference of the tests is layout-free.  float32, bfloat16 and
float16 buckets are compressed as they are (no float32 copy; the averages
are rounded once into the bucket's type).  What the hook adds per bucket is
what the library cannot see: a 64-byte header all_gather (a rank whose
Python-side preparation failed, a different layer table or step) and, for
buckets with uncompressed parameters, one all_gather of them.

Asynchronous, like DDP's own hooks: the hook queues the bucket for one
exchange worker thread per state and returns a future the thread
completes; DDP calls the hook in the same bucket order on every rank and
the thread runs the buckets in that order, so the collectives match across
ranks (the process group must not be used by other threads during
backward()).  The C calls release the GIL (ctypes), so encode and decode
overlap backward.

Failures are agreed, never local: a rank whose preparation or encode fails
still takes part in the header exchange with an error status, and every
rank then completes that bucket's future with the same
mcgq.torch.HookError (backward() raises on all ranks, naming the failing
rank and its error), delivered after the step's last bucket so that no
collective is left outstanding; ranks that disagree on the step or the
layer table fail the same way.  A non-finite value on any rank makes every
rank return that bucket filled with NaN (so torch.cuda.amp.GradScaler
skips the step).  In both cases the accumulators, K states and the step
counter stay unchanged on all ranks.

Exchange mode, MCGQState(exchange=...):

  "all_gather" (default, CPU and CUDA): every rank receives every rank's
      message; one compression, (P-1) b bits per element received.
  "two_stage" (CPU / gloo models only; no dynamic_k): the library's
      two-stage all-reduce: reduce-scatter of compressed shards, each
      owner re-encodes its average with an owner-side accumulator,
      all-gather of the owners' messages; about (P-1)/P (b1 + b2) bits per
      element, so it sends fewer bytes as P grows (README's table: more at
      P = 2, even at 3, fewer from 4), for a second quantization and more
      collectives per bucket.  16-bit buckets are widened into a float32
      copy (the owners re-encode float32 averages).  The owner-side
      accumulators go into state_dict() per parameter (this rank's shard,
      with "owner_layout" = [world, rank]) and into pickles.  CUDA
      parameters are refused (at bind(), or as an agreed HookError).
  "reduce_scatter" leaves each rank one shard, which DDP cannot use:
      sharded training calls mcgq.torch.reduce_scatter (mcgq/torch_comm.py).

Error-feedback accumulators and dynamic-K states live in the state object,
per parameter, matched to parameters by identity (a weak reference, never a
bare id()) and checked against shape and dtype before any buffer reaches
the C library.  state_dict() keys are parameter names without DDP's
"module." prefix (the same whether the DDP wrapper or the inner module was
given), and the state pickles whole (torch.save(state)) without its process
group, as PowerSGDState does.
"""

import ctypes
import functools
import hashlib
import queue
import threading
import time
import weakref

import torch
import torch.distributed as dist

from . import _capi
from . import _config, _u64, gpu_available
from .torch_comm import Comm, reduce_scatter, shard_range, _Transport, _callbacks

__all__ = ["MCGQState", "mcgq_hook", "HookError", "Comm", "reduce_scatter",
           "shard_range"]

_STATE_FORMAT = 2            # 1: keys could carry DDP's "module." prefix
# exchange= of the hook -> mcgq.h MCGQ_EXCHANGE_*; reduce_scatter shards the
# result, which DDP cannot use: it is mcgq.torch.reduce_scatter's.
_HOOK_MODES = {"all_gather": _capi.EXCHANGE_ALL_GATHER,
               "two_stage": _capi.EXCHANGE_TWO_STAGE}
_KSTATE_BYTES = ctypes.sizeof(_capi.KState)


class HookError(RuntimeError):
    """A bucket of the step failed on at least one rank; every rank raises
    this same error (through backward()).  `failures` maps rank -> text."""

    def __init__(self, text, failures=None):
        super().__init__(text)
        self.failures = dict(failures or {})


class _Layer:
    """Per-parameter state: checkpoint key, stable ordinal (the layer id of
    its random word), shape, accumulator and dynamic-K state (tensors on the
    parameter's device once used; the K state is the raw mcgqKState_t)."""

    __slots__ = ("key", "ordinal", "shape", "numel", "accum", "kstate", "owner")

    def __init__(self, key, ordinal, shape):
        self.key = key
        self.ordinal = int(ordinal)
        self.shape = tuple(int(s) for s in shape)
        numel = 1
        for s in self.shape:
            numel *= s
        self.numel = numel
        self.accum = None
        self.kstate = None
        self.owner = None    # two_stage: this rank's shard of the owner-side accumulator


def _kstate_tensor(k=None, d_prev=0.0, started=0):
    ks = _capi.KState()
    ks.k, ks.d_prev, ks.started = k, d_prev, started
    return torch.frombuffer(bytearray(ctypes.string_at(ctypes.addressof(ks),
                                                       _KSTATE_BYTES)),
                            dtype=torch.uint8)


def _kstate_fields(t):
    """(k, d_prev, started) of a K-state tensor (any device)."""
    raw = t.detach().cpu().contiguous()
    ks = _capi.KState.from_buffer_copy(raw.numpy().tobytes())
    return float(ks.k), float(ks.d_prev), int(ks.started)


def _inner_module(model):
    """The module whose parameter names are the checkpoint keys: DDP's
    wrapped module, so keys do not depend on which of the two was given."""
    from torch.nn.parallel import DistributedDataParallel
    return model.module if isinstance(model, DistributedDataParallel) else model


class MCGQState:
    """State of the MCGQ DDP hook.

    process_group: the group DDP uses (None: the default group).  Not pickled.
    k: sampling amount K in (0, 64] (N = ceil(numel * K) samples per layer).
    accumulate: "reset" (the paper's Alg 4), "residual" (error feedback with
        the damped scale) or "none" (Alg 2, no memory).
    dynamic_k, k_min, k_max, delta_k: the paper's Alg 3 per layer.
    seed: random words are random_word(seed, step, layer ordinal, rank).
    warmup_steps: steps sent uncompressed first.
    min_compress_numel: smaller parameters are sent uncompressed.
    checksum: CRC32C on every layer of the wire messages.
    exchange: "all_gather" (default) or "two_stage" (CPU models; see the
        module docstring for how to choose); anything else is a ValueError
        naming these.
    model: the DDP module or the module it wraps (or bind(model) later);
        checkpoint keys are then parameter names and layer ordinals their
        positions in model.parameters().  Without it parameters are numbered
        in the order the hook first meets them ("param0", ...;
        deterministic for a given model and DDP configuration).
    """

    _KNOBS = ("k", "accumulate", "dynamic_k", "k_min", "k_max", "delta_k",
              "seed", "warmup_steps", "min_compress_numel", "checksum", "algo",
              "exchange")

    def __init__(self, process_group=None, k=0.1, accumulate="reset",
                 dynamic_k=False, k_min=0.01, k_max=8.0, delta_k=0.0, seed=0,
                 warmup_steps=0, min_compress_numel=1024, checksum=False,
                 algo="fused", model=None, exchange="all_gather"):
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
        if exchange not in _HOOK_MODES:
            hint = ("; 'reduce_scatter' leaves each rank one shard, which DDP "
                    "cannot use: see mcgq.torch.reduce_scatter (sharded training)"
                    if exchange == "reduce_scatter" else "")
            raise ValueError("exchange = %r: the DDP hook's exchange modes are %s%s" %
                             (exchange, ", ".join(repr(m) for m in _HOOK_MODES), hint))
        if exchange == "two_stage" and dynamic_k:
            raise ValueError("exchange='two_stage' does not take dynamic_k=True (one K "
                             "state per layer but P shards; mcgq.h, exchange modes)")
        self.exchange = exchange
        if process_group is not None and not isinstance(process_group,
                                                        dist.ProcessGroup):
            raise TypeError("process_group must be a torch.distributed "
                            "ProcessGroup or None, got %s" % type(process_group).__name__)
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
        self._layers = {}          # key -> _Layer (live or loaded)
        self._params = {}          # id(param) -> (weakref, key), checked by identity
        self._names = None         # id(param) -> (weakref, ordinal, key) of the bound model
        self._named_keys = False   # keys are parameter names (bind() was called)
        self._next_ordinal = 0     # meeting order when no model is bound
        self._table_frozen = False  # meeting order: the table is fixed after one step
        self._owner_layout = None  # two_stage: (world, rank) the owner state belongs to
        self._protocol = _CommProtocol(exchange)
        self._cur = self._empty_step_stats()
        self._last = self._empty_step_stats()
        self._totals = {"steps": 0, "steps_nonfinite": 0, "steps_failed": 0,
                        "bytes_sent": 0, "elements_compressed": 0}
        if model is not None:
            self.bind(model)

    # ---------------------------------------------------------- binding

    def bind(self, model):
        """Names the parameters: keys become parameter names (without DDP's
        "module." prefix) and ordinals positions in model.parameters().
        Needed again after unpickling a state that was bound."""
        if not isinstance(model, torch.nn.Module):
            raise TypeError("model must be a torch.nn.Module (the DDP module or "
                            "the module it wraps), got %s" % type(model).__name__)
        if self._protocol.busy():
            raise RuntimeError("mcgq: bind() in the middle of a step")
        if self._layers and not self._named_keys:
            raise RuntimeError("mcgq: this state numbered its parameters by meeting "
                               "order (no model was given); bind a model before "
                               "the first step or build a new state")
        names = {}
        for i, (name, p) in enumerate(_inner_module(model).named_parameters()):
            if p.is_cuda and self.exchange == "two_stage":
                raise ValueError(
                    "mcgq: exchange='two_stage' runs on CPU (gloo) models only; "
                    "parameter %r is on %s (use exchange='all_gather' on GPUs)" %
                    (name, p.device))
            names[id(p)] = (weakref.ref(p), i, name)
        by_name = {n: ref() for ref, _, n in names.values()}
        for key, layer in self._layers.items():
            if key not in by_name:
                raise ValueError("mcgq: the state holds parameter %r, which the "
                                 "model does not have" % key)
            p = by_name[key]
            if tuple(p.shape) != layer.shape:
                raise ValueError("mcgq: the state's parameter %r has shape %s, the "
                                 "model's has %s" % (key, list(layer.shape),
                                                     list(p.shape)))
        self._names = names
        self._params = {}
        self._named_keys = True

    def _layer_of(self, param):
        entry = self._params.get(id(param))
        if entry is not None and entry[0]() is param:
            layer = self._layers[entry[1]]
        else:
            layer = self._bind_param(param)
        if tuple(param.shape) != layer.shape:
            raise ValueError("mcgq: parameter %r changed shape from %s to %s" %
                             (layer.key, list(layer.shape), list(param.shape)))
        if param.dtype not in _DTYPE_CODES:
            raise TypeError("mcgq: parameter %r is %s; mcgq compresses float32, "
                            "bfloat16 and float16" % (layer.key, param.dtype))
        return layer

    def _bind_param(self, param):
        if self._named_keys:
            if self._names is None:
                raise RuntimeError(
                    "mcgq: this state keys its parameters by name but is bound "
                    "to no model (it was unpickled); call state.bind(model) "
                    "before training")
            ent = self._names.get(id(param))
            if ent is None or ent[0]() is not param:
                raise RuntimeError(
                    "mcgq: a bucket holds a parameter that is not in the model "
                    "bound to MCGQState (a rebuilt model? call state.bind(model))")
            _, ordinal, key = ent
        else:
            if self._params and not any(ref() is not None
                                        for ref, _ in self._params.values()):
                # Every parameter met so far is gone: a rebuilt model.  Number
                # again from 0; the layers are matched by key and shape.
                self._params = {}
                self._next_ordinal = 0
                self._table_frozen = False
            if self._table_frozen:
                raise RuntimeError(
                    "mcgq: the hook met a parameter it did not meet in the first "
                    "step while those parameters are still alive; an MCGQState "
                    "serves one model (build one state per model, or pass model=)")
            ordinal = self._next_ordinal
            key = "param%d" % ordinal
            self._next_ordinal += 1
        layer = self._layers.get(key)
        if layer is None:
            layer = _Layer(key, ordinal, param.shape)
        elif layer.shape != tuple(param.shape):
            raise ValueError(
                "mcgq: the state for parameter %r was made for shape %s; the "
                "parameter has shape %s (a state reused on another model?)" %
                (key, list(layer.shape), list(param.shape)))
        layer.ordinal = ordinal
        self._layers[key] = layer
        self._params[id(param)] = (weakref.ref(param), key)
        return layer

    def _buffers_for(self, layer, device):
        """The layer's accumulator and K state on `device`, checked against
        the layer's size; fresh ones when it has none."""
        if self._cfg.accumulate != _capi.ACCUM_NONE:
            a = layer.accum
            if a is None:
                a = torch.zeros(layer.numel, dtype=torch.float32, device=device)
            if not isinstance(a, torch.Tensor) or a.dtype != torch.float32 or \
                    a.numel() != layer.numel:
                raise ValueError("mcgq: the accumulator of %r is not %d float32 "
                                 "values" % (layer.key, layer.numel))
            layer.accum = a.to(device).contiguous().view(-1)
        if self.dynamic_k:
            ks = layer.kstate
            if ks is None:
                ks = _kstate_tensor(self.k)
            if not isinstance(ks, torch.Tensor) or ks.dtype != torch.uint8 or \
                    ks.numel() != _KSTATE_BYTES:
                raise ValueError("mcgq: the K state of %r is not %d bytes" %
                                 (layer.key, _KSTATE_BYTES))
            layer.kstate = ks.to(device).contiguous()

    # ---------------------------------------------------------- checkpoint

    def _config_dict(self):
        return {name: getattr(self, name) for name in self._KNOBS}

    def state_dict(self):
        """Step counter, per-parameter accumulators (float32 CPU tensors) and
        dynamic-K states (k, d_prev as Python floats: exact doubles), shapes,
        the configuration (informative) and cumulative counters.  Only
        tensors and Python scalars, so torch.load(weights_only=True) reads it.
        With exchange="two_stage", also each layer's "owner": this rank's
        shard (mcgq.shard_range) of the owner-side accumulator of the second
        encode, and "owner_layout": [world size, rank] it belongs to (each
        rank saves its own, like the accumulators)."""
        self._protocol.drain()
        if self._protocol.busy():
            raise RuntimeError("mcgq: state_dict() in the middle of a step")
        layers = {}
        for key, layer in self._layers.items():
            rec = {"ordinal": layer.ordinal, "numel": layer.numel,
                   "shape": list(layer.shape),
                   "accum": None if layer.accum is None else layer.accum.detach().cpu().clone(),
                   "k": None, "d_prev": None, "started": None,
                   "owner": None if layer.owner is None else layer.owner.detach().cpu().clone()}
            if layer.kstate is not None:
                rec["k"], rec["d_prev"], rec["started"] = _kstate_fields(layer.kstate)
            layers[key] = rec
        return {
            "format": _STATE_FORMAT,
            "step": self.step,
            "seed": self.seed,
            "named_keys": self._named_keys,
            "config": self._config_dict(),
            "layers": layers,
            "totals": dict(self._totals),
            "exchange": self.exchange,
            "owner_layout": None if self._owner_layout is None else list(self._owner_layout),
        }

    def load_state_dict(self, sd):
        """Restores what state_dict() returned.  Everything is checked before
        anything changes: the accumulation mode must be the same (an
        accumulator means something else in another mode), every record must
        be consistent (accumulator size = numel = product of the shape), and
        with a bound model every key must name one of its parameters with
        that shape.  Format-1 checkpoints whose keys all carry DDP's
        "module." prefix are read without it."""
        if not isinstance(sd, dict):
            raise TypeError("mcgq: load_state_dict takes the dict state_dict() "
                            "returned, got %s" % type(sd).__name__)
        fmt = sd.get("format")
        if fmt not in (1, _STATE_FORMAT):
            raise ValueError("mcgq: unknown hook state format %r" % fmt)
        self._protocol.drain()
        if self._protocol.busy():
            raise RuntimeError("mcgq: load_state_dict in the middle of a step")
        try:
            accumulate = sd["config"]["accumulate"]
            step, seed, records = int(sd["step"]), _u64(sd["seed"], "seed"), sd["layers"]
        except (KeyError, TypeError) as e:
            raise ValueError("mcgq: the hook state lacks %s" % e) from None
        if accumulate != self.accumulate:
            raise ValueError("mcgq: checkpoint was made with accumulate=%r, this "
                             "state has %r" % (accumulate, self.accumulate))
        if step < 0:
            raise ValueError("mcgq: checkpoint step %d is negative" % step)
        owner_layout = sd.get("owner_layout")
        if owner_layout is not None:
            try:
                owner_layout = tuple(int(v) for v in owner_layout)
                if len(owner_layout) != 2:
                    raise ValueError
            except (TypeError, ValueError):
                raise ValueError("mcgq: the checkpoint's owner_layout %r is not "
                                 "[world size, rank]" % (sd.get("owner_layout"),)) from None
        named = bool(sd.get("named_keys", fmt == 1 and any(
            not k.startswith("param") for k in records)))
        if fmt == 1 and records and all(k.startswith("module.") for k in records):
            records = {k[len("module."):]: v for k, v in records.items()}
        layers = {key: self._layer_from_record(key, rec) for key, rec in records.items()}
        if named != self._named_keys and layers:
            raise ValueError(
                "mcgq: the checkpoint keys its parameters %s but this state %s" %
                ("by name" if named else "by meeting order (no model)",
                 "is bound to a model" if self._named_keys else "has no model"))
        if self._names is not None:
            by_name = {n: ref() for ref, _, n in self._names.values()}
            unknown = sorted(k for k in layers if k not in by_name)
            if unknown:
                raise ValueError("mcgq: the checkpoint holds state for %d parameter(s) "
                                 "the model does not have: %s" %
                                 (len(unknown), ", ".join(unknown[:8])))
            for key, layer in layers.items():
                p = by_name[key]
                if p is not None and tuple(p.shape) != layer.shape:
                    raise ValueError("mcgq: checkpoint parameter %r has shape %s, "
                                     "the model's has %s" % (key, list(layer.shape),
                                                             list(p.shape)))
        # Checked: now replace.  Devices follow the parameters at first use.
        if any(l.owner is not None for l in layers.values()) and owner_layout is None:
            raise ValueError("mcgq: the checkpoint has owner-side accumulators but no "
                             "owner_layout")
        self.step, self.seed = step, seed
        self._owner_layout = owner_layout if any(l.owner is not None
                                                 for l in layers.values()) else None
        self._totals = dict(self._totals, **sd.get("totals", {}))
        self._layers = layers
        self._params = {}
        self._next_ordinal = 0
        self._table_frozen = False

    def _layer_from_record(self, key, rec):
        if not isinstance(key, str) or not isinstance(rec, dict):
            raise ValueError("mcgq: checkpoint layer %r is not a name -> dict record" % (key,))
        try:
            numel = int(rec["numel"])
            shape = rec.get("shape")
            layer = _Layer(key, int(rec["ordinal"]), shape if shape is not None else [numel])
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError("mcgq: checkpoint layer %r is malformed (%s)" % (key, e)) from None
        if layer.numel != numel or numel < 0:
            raise ValueError("mcgq: checkpoint layer %r has numel %d but shape %s" %
                             (key, numel, list(layer.shape)))
        accum = rec.get("accum")
        if accum is not None:
            if not isinstance(accum, torch.Tensor) or accum.dtype != torch.float32 or \
                    accum.numel() != numel:
                raise ValueError("mcgq: checkpoint layer %r: the accumulator is not "
                                 "%d float32 values" % (key, numel))
            if self._cfg.accumulate == _capi.ACCUM_NONE:
                raise ValueError("mcgq: checkpoint layer %r has an accumulator but "
                                 "accumulate='none'" % key)
            layer.accum = accum.detach().clone().contiguous().view(-1)
        if rec.get("k") is not None:
            if not self.dynamic_k:
                raise ValueError("mcgq: checkpoint layer %r has a dynamic-K state but "
                                 "this state has dynamic_k=False" % key)
            layer.kstate = _kstate_tensor(float(rec["k"]), float(rec["d_prev"]),
                                          int(rec["started"]))
        owner = rec.get("owner")
        if owner is not None:
            if self.exchange != "two_stage":
                raise ValueError("mcgq: checkpoint layer %r has a two-stage owner-side "
                                 "accumulator but this state has exchange=%r" %
                                 (key, self.exchange))
            if not isinstance(owner, torch.Tensor) or owner.dtype != torch.float32 or \
                    owner.numel() > numel:
                raise ValueError("mcgq: checkpoint layer %r: the owner-side accumulator "
                                 "is not at most %d float32 values" % (key, numel))
            layer.owner = owner.detach().clone().contiguous().view(-1)
        return layer

    def __getstate__(self):
        """Pickles the knobs and state_dict(); the process group is left out
        (set state.process_group after loading; None means the default
        group) and so is the binding to the model (call bind(model) again
        when the state was bound)."""
        return {"knobs": self._config_dict(), "state": self.state_dict()}

    def __setstate__(self, pickled):
        self.__init__(**pickled["knobs"])
        self._named_keys = bool(pickled["state"].get("named_keys", False))
        self.load_state_dict(pickled["state"])

    # ---------------------------------------------------------- stats

    @staticmethod
    def _empty_step_stats():
        return {"layers_compressed": 0, "layers_uncompressed": 0,
                "elements_compressed": 0, "elements_uncompressed": 0,
                "bytes_message": 0, "bytes_uncompressed": 0, "bytes_header": 0,
                "bytes_padding": 0, "bytes_sent": 0, "paper_bits": 0,
                "k_sum": 0.0, "hook_seconds": 0.0,
                "buckets": 0}

    def stats(self):
        """Counters of the last completed step and since the start.

        bytes_sent: every byte this rank put into the step's collectives:
        headers, compressed messages, uncompressed float32 values and the
        padding to the largest rank's payload (broken down in bytes_header,
        bytes_message, bytes_uncompressed, bytes_padding).
        bits_per_element: message bits per compressed element;
        bits_per_element_all: 8 * bytes_sent per gradient element;
        paper_bits_per_element: the paper's stream + 32-bit scale.
        hook_seconds: wall time spent inside the hook calls of the step
        (blocked backward(), not the asynchronous exchange)."""
        self._protocol.drain()
        s = self._last
        ec, eu = s["elements_compressed"], s["elements_uncompressed"]
        total = ec + eu
        out = {key: s[key] for key in s if key != "k_sum"}
        out.update({
            "step": self.step,
            "bits_per_element": 8.0 * s["bytes_message"] / ec if ec else 32.0,
            "bits_per_element_all": 8.0 * s["bytes_sent"] / total if total else 0.0,
            "paper_bits_per_element": s["paper_bits"] / ec if ec else 32.0,
            "k": s["k_sum"] / s["layers_compressed"] if s["layers_compressed"] else self.k,
            "k_per_layer": {key: _kstate_fields(l.kstate)[0] if l.kstate is not None
                            else self.k for key, l in self._layers.items()},
            "total_steps": self._totals["steps"],
            "total_steps_nonfinite": self._totals["steps_nonfinite"],
            "total_steps_failed": self._totals["steps_failed"],
            "total_bytes_sent": self._totals["bytes_sent"],
        })
        return out

    # ---------------------------------------------------------- step end

    def _end_step(self, outcome, commits):
        """outcome: "ok", "nonfinite" or "failed" (agreed by all ranks)."""
        if outcome == "ok":
            for layer, accum, kstate, owner in commits:
                if accum is not None:
                    layer.accum = accum
                if kstate is not None:
                    layer.kstate = kstate
                if owner is not None:
                    layer.owner = owner
            self._totals["steps"] += 1
            self._totals["elements_compressed"] += self._cur["elements_compressed"]
            self.step += 1
            if not self._named_keys:
                self._table_frozen = True
        elif outcome == "nonfinite":
            self._totals["steps_nonfinite"] += 1
        else:
            self._totals["steps_failed"] += 1
        self._totals["bytes_sent"] += self._cur["bytes_sent"]
        self._last = self._cur
        self._cur = self._empty_step_stats()


# ============================================================ the protocol
# _CommProtocol (below) runs each bucket through the library's step
# protocol; what is defined here is the bucket as MCGQState planned it
# (_Plan) and the 64-byte header the hook adds to the C step.

_HEADER_WORDS = 8
_OK, _ERROR = 0, 2                    # header status: ok, this rank failed
_ERROR_TEXT_BYTES = 512
_DATA_STATUSES = (_capi.NON_FINITE, _capi.RANGE_ERROR)


class _Plan:
    """One bucket as the state prepared it: where each parameter lies in the
    flat buffer, its layer (checked), and what failed locally, if anything."""

    __slots__ = ("buffer", "index", "is_last", "group", "rank", "world",
                 "compressed", "raw", "digest", "error")

    def __init__(self):
        self.compressed, self.raw, self.digest, self.error = [], [], 0, None


def _value_or_raise(fut):
    return fut.value()


# The bucket types the hook compresses without converting them first
# (mcgq.h MCGQ_DTYPE_*: the library widens 16-bit values exactly); the
# averages are written back into the bucket's own type, rounded once.
_DTYPE_CODES = {torch.float32: _capi.DTYPE_F32, torch.bfloat16: _capi.DTYPE_BF16,
                torch.float16: _capi.DTYPE_F16}


def _disagreement(headers, names):
    for word, name in enumerate(names):
        if name is None:
            continue
        values = [h[word] for h in headers]
        if len(set(values)) > 1:
            return "%s differs (%s)" % (name, ", ".join(
                "rank %d: %d" % rv for rv in enumerate(values)))
    return None


# ============================================================ the C protocol
# _CommProtocol runs each bucket through the library's step protocol
# (host/comm/, mcgqCommStep) over torch.distributed, supplied as callbacks
# (mcgq/torch_comm.py): encode, agreement, exchange, decode-and-average and
# commit are C.  What stays here is what the library cannot see: a rank
# whose Python-side preparation failed (a parameter of another shape, a
# malformed accumulator) and the parameters sent uncompressed.  So a bucket
# is, in one exchange worker thread per state, in the order the hook calls
# came (the same on every rank, so the collectives match):
#   1. an all_gather of the 64-byte header (_HEADER_MAGIC_C, step, digest of
#      the layer table, status, uncompressed count, bucket index, mode): a
#      local failure or a disagreement fails the bucket on every rank alike;
#   2. when the bucket has uncompressed values: an all_gather of them as
#      float32, averaged in rank order (acc = 0; acc += x_r; acc / P); a
#      non-finite one is seen by every rank;
#   3. mcgqCommStep on the compressed parameters (layers in bucket order,
#      registered where they lie in the bucket, each with its ordinal as
#      layer id; accumulators, K states and owner state copied in and read
#      back, committed at the end of the step when every bucket of it was
#      finite and agreed).

_HEADER_MAGIC_C = 0x4D434751_0003    # "MCGQ", protocol 3: the C step per bucket


class _Worker:
    """One daemon thread running queued callables in FIFO order.  The
    thread holds no reference to the state between items, so a state that
    is dropped is collected (and its finalizer closes the worker)."""

    def __init__(self):
        self._queue = queue.Queue()
        self._thread = None
        self._lock = threading.Lock()

    def submit(self, fn):
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=_worker_loop, args=(self._queue,),
                                                name="mcgq-exchange", daemon=True)
                self._thread.start()
        self._queue.put(fn)

    def on_worker(self):
        return self._thread is not None and threading.current_thread() is self._thread

    def drain(self):
        """Waits until every submitted bucket was exchanged."""
        if self._thread is not None and not self.on_worker():
            self._queue.join()

    def close(self, timeout=10.0):
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is None:
            return
        self._queue.put(None)
        if threading.current_thread() is not thread:
            thread.join(timeout)


def _worker_loop(q):
    while True:
        item = q.get()
        try:
            if item is None:
                return
            item()
        except BaseException:    # noqa: BLE001 - items complete their own futures
            pass
        finally:
            item = None
            q.task_done()


class _BucketComm:
    """A C communicator over the state's process group for one bucket
    layout (DDP rebuilds its buckets after the first iteration, so there
    are a few), with the accumulators it works in."""

    def __init__(self, group, rank, world, mode, device):
        # CUDA buckets: a device communicator (the library's GPU codec),
        # whose payload collectives move device memory.
        self.transport = _Transport(group, device)
        self.callbacks = _callbacks(self.transport)
        self.handle = ctypes.c_void_p()
        self._check(_capi.fn.mcgqCommInitCallbacks(ctypes.byref(self.handle), rank, world,
                                                   ctypes.byref(self.callbacks)),
                    "mcgqCommInitCallbacks")
        self._check(_capi.fn.mcgqCommSetExchangeMode(self.handle, mode),
                    "mcgqCommSetExchangeMode")
        self.registered = None   # (pointers, ids, config bytes) of the registered table
        self.accum = []          # per layer: float32 the library updates, or None
        self.kstate = []         # per layer: the mcgqKState_t it updates, or None
        self.widened = None      # sharded modes, 16-bit buckets: the float32 copy

    def float32_of(self, buffer):
        """The bucket as float32: itself, or (16-bit) a copy in a buffer kept
        across steps, so the registered table's pointers stay the same."""
        if buffer.dtype == torch.float32:
            return buffer
        if self.widened is None or self.widened.numel() != buffer.numel() or \
                self.widened.device != buffer.device:
            self.widened = torch.empty(buffer.numel(), dtype=torch.float32,
                                       device=buffer.device)
        self.widened.copy_(buffer)
        return self.widened

    def last_error(self):
        text = ""
        if self.handle:
            text = (_capi.fn.mcgqCommGetLastError(self.handle) or b"").decode(
                "utf-8", "replace")
        if self.transport.error:
            text += " [callback: %s]" % self.transport.error.strip()
            self.transport.error = None
        return text

    def _check(self, status, function):
        if status != _capi.SUCCESS:
            raise _capi.error_for(status, function, self.last_error())

    def register(self, cfg, work, compressed):
        """Registers the layers where they lie in `work` (cfg.dtype is
        work's type), each sampling with its parameter's ordinal as layer
        id, so a parameter's bits do not depend on DDP's bucket layout.
        The accumulators and K states registered are this communicator's
        working copies (the step writes them; MCGQState commits them)."""
        item = work.element_size()
        ptrs = tuple(work.data_ptr() + item * off for _, off, _ in compressed)
        ids = tuple(layer.ordinal for layer, _, _ in compressed)
        key = (ptrs, ids, bytes(cfg))
        if key == self.registered:
            return
        accumulate = cfg.accumulate != _capi.ACCUM_NONE
        accum = [torch.zeros(n, dtype=torch.float32, device=work.device)
                 if accumulate else None for _, _, n in compressed]
        kstate = [torch.zeros(_KSTATE_BYTES, dtype=torch.uint8, device=work.device)
                  if cfg.dynamic_k else None for _ in compressed]
        table = (_capi.CommLayer * len(compressed))()
        for i, (ptr, (_, _, n)) in enumerate(zip(ptrs, compressed)):
            table[i].struct_size = ctypes.sizeof(_capi.CommLayer)
            table[i].grad = ptr
            table[i].accum = accum[i].data_ptr() if accum[i] is not None else None
            table[i].kstate = kstate[i].data_ptr() if kstate[i] is not None else None
            table[i].n = n
            table[i].cfg = cfg
        self.registered = None
        self._check(_capi.fn.mcgqCommSetLayers(self.handle, table, len(compressed)),
                    "mcgqCommSetLayers")
        self._check(_capi.fn.mcgqCommSetLayerIds(
            self.handle, (ctypes.c_uint32 * len(ids))(*ids), len(ids)),
            "mcgqCommSetLayerIds")
        self.accum, self.kstate, self.registered = accum, kstate, key

    def owner_state(self, elements):
        out = torch.zeros(elements, dtype=torch.float32)
        if elements:
            self._check(_capi.fn.mcgqCommGetOwnerState(self.handle, out.data_ptr(),
                                                       elements),
                        "mcgqCommGetOwnerState")
        return out

    def set_owner_state(self, state):
        if state.numel():
            self._check(_capi.fn.mcgqCommSetOwnerState(self.handle, state.data_ptr(),
                                                       state.numel()),
                        "mcgqCommSetOwnerState")

    def close(self):
        if self.handle:
            _capi.fn.mcgqCommDestroy(self.handle)
            self.handle = ctypes.c_void_p()

    def __del__(self):
        try:
            self.close()
        except Exception:    # noqa: BLE001 - interpreter shutdown
            pass


class _AgreedFailure(Exception):
    """Carries the HookError every rank raises for a bucket."""

    def __init__(self, error):
        super().__init__(str(error))
        self.error = error


class _CommProtocol:
    """The hook's exchange through the C step protocol, asynchronous: the
    hook queues the bucket and returns a future; the worker thread runs the
    bucket's collectives and completes it.  An agreed failure's future is
    completed only at the end of the step (after the last bucket's
    collectives), so a backward() that raises leaves no collective of the
    step outstanding on any rank."""

    def __init__(self, exchange):
        self.mode = _HOOK_MODES[exchange]
        self._worker = _Worker()
        self._comms = {}         # (group, device, layout) -> _BucketComm
        self._streams = {}       # device -> the worker's CUDA stream there
        self._finalizer = weakref.finalize(self, _close_protocol, self._worker,
                                           self._comms)
        self._open = False       # the hook met bucket 0 and not yet the last one
        # worker side: the step in progress
        self._step_open = False
        self._outcome, self._commits, self._deferred = "ok", [], []

    def busy(self):
        return self._open

    def drain(self):
        self._worker.drain()

    def close(self):
        self._finalizer()

    def start_bucket(self, state, plan):
        buffer = plan.buffer
        ready = None
        if buffer.is_cuda:
            # A CUDA future waits for the worker's stream when completed;
            # the worker's stream waits for the gradients backward wrote.
            future = torch.futures.Future(devices=[buffer.device])
            ready = torch.cuda.Event()
            ready.record(torch.cuda.current_stream(buffer.device))
        else:
            future = torch.futures.Future()
        # DDP reads the hook's future from C++, where an exception stored by
        # set_exception() looks like a value ("Unable to cast ... to
        # Tensor"); a callback that raises marks the chained future failed.
        returned = future.then(_value_or_raise)
        self._open = not plan.is_last
        self._worker.submit(functools.partial(self._run, state, plan, future, ready))
        return returned

    # ------------------------------------------------------ in the worker

    def _stream_for(self, device):
        """The worker's own stream on a device: the C step's stream and the
        current stream of every collective and copy of the bucket."""
        stream = self._streams.get(str(device))
        if stream is None:
            stream = self._streams[str(device)] = torch.cuda.Stream(device)
        return stream

    def _run(self, state, plan, future, ready=None):
        if ready is None:
            self._run_bucket(state, plan, future)
            return
        stream = self._stream_for(plan.buffer.device)
        with torch.cuda.stream(stream):
            stream.wait_event(ready)
            self._run_bucket(state, plan, future)

    def _run_bucket(self, state, plan, future):
        if plan.index == 0 and self._step_open:
            # The last bucket of the previous step never came (backward()
            # aborted): nothing of it is committed.
            self._finish_step(None)
        self._step_open = True
        try:
            result = self._exchange(state, plan)
        except _AgreedFailure as f:
            self._outcome = "failed"
            self._deferred.append((future, f.error))
            result = None
        except Exception as e:   # noqa: BLE001 - a collective or the worker itself failed
            self._outcome = "failed"
            self._deferred.append((future, e))
            result = None
        if plan.is_last:
            self._finish_step(state)
        if result is not None:
            future.set_result(result)

    def _finish_step(self, state):
        if state is not None:
            state._end_step(self._outcome, self._commits)
        deferred = self._deferred
        self._outcome, self._commits, self._deferred = "ok", [], []
        self._step_open = False
        for fut, err in deferred:
            fut.set_exception(err if state is not None else HookError(
                "mcgq: the step ended before its last bucket"))

    def _exchange(self, state, plan):
        buffer, cur = plan.buffer, state._cur
        error, ready = plan.error, None
        if error is None:
            try:
                ready = self._prepare(state, plan)
            except Exception as e:   # agreed below, never raised alone
                error = e
        raw_n = sum(n for _, n in plan.raw)
        header = torch.tensor(
            [_HEADER_MAGIC_C, state.step, plan.digest if error is None else 0,
             _ERROR if error is not None else _OK, 0, raw_n, plan.index, self.mode],
            dtype=torch.int64, device=buffer.device)
        headers = torch.empty((plan.world, _HEADER_WORDS), dtype=torch.int64,
                              device=buffer.device)
        dist.all_gather(list(headers.unbind(0)), header, group=plan.group)
        cur["bytes_header"] += 8 * _HEADER_WORDS
        cur["bytes_sent"] += 8 * _HEADER_WORDS
        headers = headers.cpu().tolist()
        failed = [h[3] == _ERROR for h in headers]
        if any(failed):
            raise _AgreedFailure(_agreed_error(
                state, plan, _error_text(error), error is not None, failed,
                "no rank changed its state", error))
        problem = _disagreement(headers, _HEADER_NAMES_C)
        if problem:
            raise _AgreedFailure(HookError(
                "mcgq: the ranks disagree on bucket %d: %s" % (plan.index, problem)))
        cur["buckets"] += 1
        if raw_n and not self._average_raw(state, plan, raw_n):
            return self._nonfinite(plan)
        if ready is None:
            return buffer
        return self._step(state, plan, ready)

    def _prepare(self, state, plan):
        """Local work before the header: the communicator of this layout,
        the layer table, the accumulators and owner state copied in."""
        if not plan.compressed:
            return None
        buffer = plan.buffer
        if buffer.is_cuda and self.mode != _capi.EXCHANGE_ALL_GATHER:
            raise RuntimeError("mcgq: exchange='two_stage' runs on CPU (gloo) buckets "
                               "only; this bucket is on %s" % buffer.device)
        if state._owner_layout not in (None, (plan.world, plan.rank)):
            raise ValueError("mcgq: the two-stage owner state belongs to rank %d of %d; "
                             "this is rank %d of %d (owner state is per rank: load "
                             "each rank's own checkpoint into the same world size)" %
                             (state._owner_layout[1], state._owner_layout[0],
                              plan.rank, plan.world))
        key = (id(plan.group), str(buffer.device),
               tuple((l.ordinal, off, n) for l, off, n in plan.compressed))
        entry = self._comms.get(key)
        if entry is None:
            entry = _BucketComm(plan.group, plan.rank, plan.world, self.mode,
                                buffer.device)
            self._comms[key] = entry
        # All-gather takes 16-bit buckets as they are; the sharded modes
        # re-encode float32 averages, so there a 16-bit bucket is widened
        # into a float32 copy.
        work = buffer if self.mode == _capi.EXCHANGE_ALL_GATHER \
            else entry.float32_of(buffer)
        cfg = _capi.LayerConfig.from_buffer_copy(state._cfg)
        cfg.dtype = _DTYPE_CODES[work.dtype]
        entry.register(cfg, work, plan.compressed)
        for (layer, _, n), acc, ks in zip(plan.compressed, entry.accum, entry.kstate):
            # checked again here, next to the C call that reads them
            if acc is not None:
                if layer.accum is None or layer.accum.numel() != n or \
                        layer.accum.dtype != torch.float32:
                    raise ValueError("mcgq: the accumulator of %r does not match its "
                                     "gradient (%d float32 values)" % (layer.key, n))
                acc.copy_(layer.accum)
            if ks is not None:
                if layer.kstate is None or layer.kstate.numel() != _KSTATE_BYTES or \
                        layer.kstate.dtype != torch.uint8:
                    raise ValueError("mcgq: the K state of %r is malformed" % layer.key)
                ks.copy_(layer.kstate)
        shards = []
        if self.mode == _capi.EXCHANGE_TWO_STAGE and \
                state._cfg.accumulate != _capi.ACCUM_NONE:
            for layer, _, n in plan.compressed:
                b, e = shard_range(n, plan.world, plan.rank)
                owner = layer.owner
                if owner is None:
                    owner = torch.zeros(e - b, dtype=torch.float32)
                if owner.numel() != e - b or owner.dtype != torch.float32:
                    raise ValueError("mcgq: the owner-side accumulator of %r is not "
                                     "%d float32 values (its shard on rank %d of %d)" %
                                     (layer.key, e - b, plan.rank, plan.world))
                shards.append(owner.cpu())
            entry.set_owner_state(torch.cat(shards) if shards else
                                  torch.zeros(0, dtype=torch.float32))
        return entry, work, [s.numel() for s in shards]

    def _average_raw(self, state, plan, raw_n):
        buffer = plan.buffer
        mine = torch.cat([buffer[o:o + n] for o, n in plan.raw]).float()
        rows = torch.empty((plan.world, raw_n), dtype=torch.float32, device=buffer.device)
        dist.all_gather(list(rows.unbind(0)), mine, group=plan.group)
        cur = state._cur
        cur["layers_uncompressed"] += len(plan.raw)
        cur["elements_uncompressed"] += raw_n
        cur["bytes_uncompressed"] += 4 * raw_n
        cur["bytes_sent"] += 4 * raw_n
        if not bool(torch.isfinite(rows).all()):
            return False
        acc = torch.zeros(raw_n, dtype=torch.float32, device=buffer.device)
        for r in range(plan.world):
            acc.add_(rows[r])
        acc.div_(plan.world)
        pos = 0
        for off, n in plan.raw:
            buffer[off:off + n].copy_(acc[pos:pos + n])
            pos += n
        return True

    def _nonfinite(self, plan):
        if self._outcome == "ok":
            self._outcome = "nonfinite"
        plan.buffer.fill_(float("nan"))
        return plan.buffer

    def _step(self, state, plan, ready):
        entry, work, shard_sizes = ready
        cur, sent = state._cur, entry.transport.sent
        before = dict(sent)
        stats = _capi.StepStats()
        stream = None   # host communicator; CUDA: the worker's current stream
        if plan.buffer.is_cuda:
            stream = ctypes.c_void_p(torch.cuda.current_stream(plan.buffer.device)
                                     .cuda_stream)
        status = _capi.fn.mcgqCommStep(entry.handle, state.step, state.seed, stream,
                                       ctypes.byref(stats))
        delta = {k: sent[k] - before[k] for k in sent}
        cur["bytes_header"] += delta["header"]
        cur["bytes_message"] += delta["message"]
        cur["bytes_padding"] += delta["padding"]
        cur["bytes_sent"] += delta["header"] + delta["message"] + delta["padding"]
        if status in _DATA_STATUSES:
            entry.last_error()
            return self._nonfinite(plan)
        if status == _capi.TIMEOUT:
            # A peer stopped calling: no agreement is possible with it, so
            # this rank fails alone, and the aborted communicator goes (the
            # next bucket of this layout builds a new one).
            text = entry.last_error()
            for key in [k for k, v in self._comms.items() if v is entry]:
                del self._comms[key]     # in place: the finalizer holds this dict
            entry.close()
            raise HookError("mcgq: bucket %d: the process group's timeout ended a "
                            "collective (%s); no state changed on this rank" %
                            (plan.index, text))
        if status != _capi.SUCCESS:
            text = "%s: %s" % (_capi.error_for(status, "mcgqCommStep", "").__class__.__name__,
                               entry.last_error())
            mine = not _is_agreed_report(text)
            raise _AgreedFailure(_agreed_error(
                state, plan, text, mine, None,
                "no rank changed its state", None))
        owner = None
        if shard_sizes:
            owner = entry.owner_state(sum(shard_sizes)).split(shard_sizes)
            state._owner_layout = (plan.world, plan.rank)
        layer_stats = (_capi.LayerStats * len(plan.compressed))()
        if _capi.fn.mcgqCommGetLayerStats(entry.handle, layer_stats,
                                          len(plan.compressed)) == _capi.SUCCESS:
            cur["paper_bits"] += sum(int(s.stream_bits) + 32 for s in layer_stats)
            cur["k_sum"] += sum(float(s.k) for s in layer_stats)
        for i, (layer, off, n) in enumerate(plan.compressed):
            acc, ks = entry.accum[i], entry.kstate[i]
            self._commits.append((layer, None if acc is None else acc.clone(),
                                  None if ks is None else ks.clone(),
                                  None if owner is None else owner[i].clone()))
            if work is not plan.buffer:
                plan.buffer[off:off + n].copy_(work[off:off + n])
        cur["layers_compressed"] += len(plan.compressed)
        cur["elements_compressed"] += sum(n for _, _, n in plan.compressed)
        return plan.buffer


def _close_protocol(worker, comms):
    worker.close()
    for entry in list(comms.values()):
        entry.close()
    comms.clear()


_HEADER_NAMES_C = ("protocol", "step", "layer table", None, None,
                   "uncompressed element count", "bucket index", "exchange mode")


def _error_text(error):
    if error is None:
        return ""
    return "%s: %s" % (type(error).__name__, error)


def _hook_error(index, failures, what):
    """The HookError of bucket `index` from every failing rank's text
    (failures: rank -> text), worded the same on every rank."""
    ranks = ", ".join(map(str, failures))
    plural = "s" if len(failures) > 1 else ""
    if len(set(failures.values())) == 1:
        detail = "rank%s %s: %s" % (plural, ranks, next(iter(failures.values())))
    else:
        detail = "; ".join("rank %d: %s" % kv for kv in failures.items())
    return HookError("mcgq: bucket %d failed on rank%s %s; %s.  %s" %
                     (index, plural, ranks, what, detail), failures)


def _is_agreed_report(text):
    """True for the library's report of another rank's failure (mcgq.h: the
    ranks that did not fail learn it from the agreement block)."""
    return "mcgqCommStep: " in text and " on rank(s) " in text and \
        "no rank changed" in text


def _agreed_error(state, plan, text, mine, failed, what, cause):
    """Every rank gathers every rank's failure text (one collective, the
    same on every rank) and builds the same HookError from them.  `mine`:
    this rank failed itself; `failed`: the ranks' flags when already agreed
    (else the gathered flags decide)."""
    raw = text.encode("utf-8", "replace")[:_ERROR_TEXT_BYTES - 1]
    slot = torch.zeros(_ERROR_TEXT_BYTES, dtype=torch.uint8)
    slot[0] = 1 if mine else 0
    if raw:
        slot[1:1 + len(raw)] = torch.frombuffer(bytearray(raw), dtype=torch.uint8)
    slot = slot.to(plan.buffer.device)
    texts = torch.empty((plan.world, _ERROR_TEXT_BYTES), dtype=torch.uint8,
                        device=plan.buffer.device)
    dist.all_gather(list(texts.unbind(0)), slot, group=plan.group)
    state._cur["bytes_sent"] += _ERROR_TEXT_BYTES
    rows = texts.cpu()
    flags = failed if failed is not None else [bool(rows[r, 0]) for r in range(plan.world)]
    if not any(flags):
        flags = [True] * plan.world
    failures = {}
    for r in range(plan.world):
        if flags[r]:
            t = bytes(rows[r, 1:].tolist()).rstrip(b"\0").decode("utf-8", "replace")
            failures[r] = t or "(no text)"
    err = _hook_error(plan.index, failures, what)
    if cause is not None:
        err.__cause__ = cause
    return err


# ------------------------------------------------------------ library calls

def _require_gpu():
    if not gpu_available():
        raise RuntimeError(
            "mcgq: the gradients are CUDA tensors but the loaded libmcgq has no "
            "usable GPU path (built without CUDA, e.g. with "
            "-C cmake.define.MCGQ_ENABLE_CUDA=OFF, or no device visible); "
            "reinstall with the CUDA toolkit present or train on CPU tensors")


# ============================================================ the hook

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


def _table_digest(state, plan):
    text = repr((plan.index, state._config_dict(), state.step >= state.warmup_steps,
                 [(l.ordinal, n) for l, _, n in plan.compressed],
                 [n for _, n in plan.raw]))
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(),
                          "little") & (2**63 - 1)


def _plan_bucket(state, bucket, group, rank, world):
    """Splits the bucket into compressed layers and uncompressed values and
    checks every layer's buffers; a failure is recorded, not raised, so the
    rank still takes part in the bucket's exchange."""
    plan = _Plan()
    plan.buffer = bucket.buffer()
    plan.index, plan.is_last = bucket.index(), bucket.is_last()
    plan.group, plan.rank, plan.world = group, rank, world
    try:
        buffer = plan.buffer
        if buffer.dtype not in _DTYPE_CODES:
            raise TypeError("mcgq: the DDP bucket holds %s gradients; mcgq "
                            "compresses float32, bfloat16 and float16" % buffer.dtype)
        if buffer.is_cuda:
            _require_gpu()
        compress_now = state.step >= state.warmup_steps
        for param, off, n in _split_bucket(buffer, bucket):
            layer = state._layer_of(param)      # numbered in meeting order all the same
            if compress_now and state.min_compress_numel <= n <= _capi.MAX_LAYER_ELEMENTS:
                state._buffers_for(layer, buffer.device)
                plan.compressed.append((layer, off, n))
            else:
                plan.raw.append((off, n))
        plan.digest = _table_digest(state, plan)
    except Exception as e:
        plan.error = e
    return plan


def mcgq_hook(state, bucket):
    """DDP communication hook: register with
    ddp_model.register_comm_hook(state, mcgq_hook).  Returns a
    torch.futures.Future that the asynchronous exchange completes with the
    averaged bucket (or with the same HookError on every rank)."""
    if not isinstance(state, MCGQState):
        raise TypeError("mcgq_hook's state must be an MCGQState, got %s: register "
                        "it with ddp.register_comm_hook(MCGQState(...), mcgq_hook)"
                        % type(state).__name__)
    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError("mcgq_hook: torch.distributed is not initialized")
    t0 = time.perf_counter()
    group = state.process_group if state.process_group is not None else dist.group.WORLD
    rank, world = dist.get_rank(group), dist.get_world_size(group)
    plan = _plan_bucket(state, bucket, group, rank, world)
    cur = state._cur
    fut = state._protocol.start_bucket(state, plan)
    # start_bucket of the last bucket ends the step and swaps the counters.
    cur["hook_seconds"] += time.perf_counter() - t0
    return fut
