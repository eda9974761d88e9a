"""Worker side of the DDP tests (run under torch.multiprocessing.spawn) and
the shared problem definition the single-process references reuse.

Every worker runs with one intra-op thread so that a gradient computed here
and the same gradient recomputed by the reference in the test process are
bit-identical (CPU GEMM results can depend on the thread count)."""

import gc
import io
import os

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP

IN, HIDDEN, OUT, BATCH = 16, 64, 4, 32


def make_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(IN, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, OUT))


def _labels(x):
    # A fixed, learnable rule: the class is the argmax of a fixed projection.
    proj = torch.Generator().manual_seed(99)
    w = torch.randn(IN, OUT, generator=proj)
    return (x @ w).argmax(dim=1)


def batch(step, rank, nonfinite=False):
    gen = torch.Generator().manual_seed(1000 * step + 17 * rank + 5)
    x = torch.randn(BATCH, IN, generator=gen)
    if nonfinite:
        x[0, 0] = float("nan")
    return x, _labels(x)


def eval_set():
    gen = torch.Generator().manual_seed(4242)
    x = torch.randn(512, IN, generator=gen)
    return x, _labels(x)


def eval_loss(model):
    x, y = eval_set()
    with torch.no_grad():
        return float(F.cross_entropy(model(x), y))


def snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# ------------------------------------------------------------ scenarios

def _ddp(model, bucket_cap_mb):
    return DDP(model, bucket_cap_mb=bucket_cap_mb)


def _train_steps(ddp, opt, steps, rank, first_step=0, record=None, losses=None):
    for s in range(first_step, first_step + steps):
        x, y = batch(s, rank)
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(ddp(x), y).backward()
        opt.step()
        if record is not None:
            record.append(snapshot(ddp.module))
        if losses is not None:
            losses.append(eval_loss(ddp.module))


def scenario_train(rank, world, cfg):
    """Trains with the MCGQ hook (or DDP's own all-reduce when cfg['hook'] is
    None); records parameters and eval loss after every step."""
    from mcgq.torch import MCGQState, mcgq_hook
    model = make_model(cfg.get("model_seed", 0))
    ddp = _ddp(model, cfg.get("bucket_cap_mb", 0.001))
    state = None
    if cfg["hook"] is not None:
        state = MCGQState(model=ddp, **cfg["hook"])
        ddp.register_comm_hook(state, mcgq_hook)
    opt = torch.optim.SGD(ddp.parameters(), lr=cfg["lr"])
    record, losses = [], [eval_loss(model)]
    _train_steps(ddp, opt, cfg["steps"], rank, record=record, losses=losses)
    return {"params": record, "losses": losses,
            "stats": state.stats() if state is not None else None}


def _checkpoint_run(rank, hook_cfg, bucket_cap_mb, steps_before, steps_after, saved=None):
    from mcgq.torch import MCGQState, mcgq_hook
    model = make_model(3)
    ddp = _ddp(model, bucket_cap_mb)
    state = MCGQState(**hook_cfg)        # no model=: ordinals by first meeting
    ddp.register_comm_hook(state, mcgq_hook)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.05, momentum=0.9)
    if saved is not None:
        ck = torch.load(io.BytesIO(saved), weights_only=True)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        state.load_state_dict(ck["hook"])
        _train_steps(ddp, opt, steps_after, rank, first_step=steps_before)
        return snapshot(model), state.state_dict(), None
    _train_steps(ddp, opt, steps_before, rank)
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(),
                "hook": state.state_dict()}, buf)
    _train_steps(ddp, opt, steps_after, rank, first_step=steps_before)
    return snapshot(model), state.state_dict(), buf.getvalue()


def scenario_checkpoint(rank, world, cfg):
    """Train 3, save model+optimizer+hook state, train 3; then a fresh
    process state restores and trains the same 3."""
    a_params, a_state, saved = _checkpoint_run(rank, cfg["hook"], cfg["bucket_cap_mb"], 3, 3)
    b_params, b_state, _ = _checkpoint_run(rank, cfg["hook"], cfg["bucket_cap_mb"], 3, 3,
                                           saved=saved)
    return {"a_params": a_params, "b_params": b_params,
            "a_state": a_state, "b_state": b_state}


def scenario_nonfinite(rank, world, cfg):
    """Step 2 has a NaN input on rank cfg['bad_rank'] only."""
    from mcgq.torch import MCGQState, mcgq_hook
    model = make_model(5)
    ddp = _ddp(model, cfg["bucket_cap_mb"])
    state = MCGQState(model=ddp, **cfg["hook"])
    ddp.register_comm_hook(state, mcgq_hook)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.05)
    _train_steps(ddp, opt, 2, rank)
    before = state.state_dict()
    x, y = batch(2, rank, nonfinite=(rank == cfg["bad_rank"]))
    opt.zero_grad(set_to_none=True)
    F.cross_entropy(ddp(x), y).backward()
    grads_all_nan = all(bool(torch.isnan(p.grad).all()) for p in model.parameters())
    after = state.state_dict()
    stats = state.stats()
    # The run goes on: the next (finite) step works and changes the state.
    _train_steps(ddp, opt, 1, rank, first_step=3)
    later = state.state_dict()
    finite_after = all(bool(torch.isfinite(p).all()) for p in model.parameters())
    return {"grads_all_nan": grads_all_nan, "before": before, "after": after,
            "later": later, "stats": stats, "finite_after": finite_after}


def scenario_cuda_vs_cpu(rank, world, cfg):
    """World 1 on one GPU (NCCL): each step, the hook's averaged gradient
    must equal the CPU reference's decode of the same local gradient (the
    GPU path is specified bit-identical to the CPU reference)."""
    import numpy as np
    import mcgq
    from mcgq.torch import MCGQState, mcgq_hook
    device = torch.device("cuda", 0)
    model = make_model(0).to(device)
    shadow = make_model(0).to(device)      # same weights, no DDP: local grads
    ddp = DDP(model, device_ids=[0], bucket_cap_mb=cfg["bucket_cap_mb"])
    h = cfg["hook"]
    state = MCGQState(model=ddp, **h)
    ddp.register_comm_hook(state, mcgq_hook)
    params = list(shadow.parameters())
    accums = [np.zeros(p.numel(), np.float32) for p in params]
    mismatches = []
    for step in range(cfg["steps"]):
        x, y = batch(step, rank)
        x, y = x.to(device), y.to(device)
        model.zero_grad(set_to_none=True)
        shadow.zero_grad(set_to_none=True)
        F.cross_entropy(ddp(x), y).backward()
        F.cross_entropy(shadow(x), y).backward()
        layers = [mcgq.Layer(p.grad.detach().reshape(-1).cpu().numpy().copy(), k=h["k"],
                             accumulate=h["accumulate"], accum=accums[i], layer_id=i)
                  for i, p in enumerate(params)]
        expected = mcgq.decode_average([mcgq.encode(layers, seed=h.get("seed", 0),
                                                    step=step, rank=0)[0]])
        got = torch.cat([p.grad.detach().reshape(-1) for p in model.parameters()]).cpu()
        if not torch.equal(got.view(torch.int32),
                           torch.from_numpy(expected).view(torch.int32)):
            mismatches.append(step)
        with torch.no_grad():
            for p, q in zip(model.parameters(), shadow.parameters()):
                p.add_(p.grad, alpha=-0.1)
                q.copy_(p)
    return {"mismatches": mismatches}


def _backward_error(ddp, rank, step=0):
    """Runs one forward/backward; returns the text of what backward raised
    (None if nothing did)."""
    x, y = batch(step, rank)
    try:
        F.cross_entropy(ddp(x), y).backward()
    except Exception as e:      # noqa: BLE001 - the text is what is compared
        return "%s: %s" % (type(e).__name__, e)
    return None


def scenario_async(rank, world, cfg):
    """Records, per step, whether each bucket's future was already complete
    when the hook returned (the payload of a bucket that is not the last is
    issued by the next hook call, so its future cannot be)."""
    from mcgq.torch import MCGQState, mcgq_hook
    model = make_model(0)
    ddp = _ddp(model, cfg["bucket_cap_mb"])
    state = MCGQState(model=ddp, **cfg["hook"])
    done = []

    def hook(s, bucket):
        fut = mcgq_hook(s, bucket)
        done[-1].append((bucket.index(), bucket.is_last(), fut.done()))
        return fut

    ddp.register_comm_hook(state, hook)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.1)
    for s in range(cfg["steps"]):
        done.append([])
        _train_steps(ddp, opt, 1, rank, first_step=s)
    return {"done": done, "stats": state.stats()}


def _reuse_run(rank, cfg, named, mode):
    """mode "save": train 3 steps, torch.save the whole state (with a process
    group), train 3 more.  mode "load": rebuild the model from the saved
    weights, torch.load the whole state, register it, train the same 3."""
    from mcgq.torch import MCGQState, mcgq_hook
    model = make_model(3)
    ddp = _ddp(model, cfg["bucket_cap_mb"])
    if mode == "save":
        state = MCGQState(process_group=dist.group.WORLD,
                          model=ddp if named else None, **cfg["hook"])
    else:
        model.load_state_dict(torch.load(io.BytesIO(cfg["weights"]), weights_only=True))
        state = torch.load(io.BytesIO(cfg["state"]), weights_only=False)
        if named:
            state.bind(model)            # the inner module this time
    ddp.register_comm_hook(state, mcgq_hook)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.05)
    saved = {}
    if mode == "save":
        _train_steps(ddp, opt, 3, rank)
        buf, wbuf = io.BytesIO(), io.BytesIO()
        torch.save(state, buf)
        torch.save(model.state_dict(), wbuf)
        saved = {"state": buf.getvalue(), "weights": wbuf.getvalue(),
                 "process_group_kept": state.process_group is not None}
    _train_steps(ddp, opt, 3, rank, first_step=3)
    return snapshot(model), state.state_dict(), saved


def scenario_reuse(rank, world, cfg):
    """The whole state saved with torch.save and registered on a rebuilt
    model: the same model continues bit for bit; a model of other shapes
    gets a clear error on every rank, never a corruption."""
    from mcgq.torch import MCGQState, mcgq_hook
    out = {}
    for named in (False, True):
        a_params, a_state, saved = _reuse_run(rank, cfg, named, "save")
        gc.collect()                 # free the old parameters' ids
        b_params, b_state, _ = _reuse_run(rank, dict(cfg, **saved), named, "load")
        loaded = torch.load(io.BytesIO(saved["state"]), weights_only=False)
        out[named] = {"a_params": a_params, "b_params": b_params, "a_state": a_state,
                      "b_state": b_state, "loaded_group": loaded.process_group}
        gc.collect()
        # Another model, with parameters of other sizes (Linear(16, 16)
        # where Linear(16, 64) was), built after the old one is gone, so
        # freed ids may come back.
        other = nn.Sequential(nn.Linear(IN, IN), nn.ReLU(), nn.Linear(IN, OUT))
        ddp = _ddp(other, cfg["bucket_cap_mb"])
        state = torch.load(io.BytesIO(saved["state"]), weights_only=False)
        bind_error = None
        if named:
            try:
                state.bind(other)
            except ValueError as e:
                bind_error = str(e)
        ddp.register_comm_hook(state, mcgq_hook)
        before = state.state_dict()
        err = _backward_error(ddp, rank)
        out[named].update({"other_bind_error": bind_error, "other_error": err,
                           "other_state_unchanged": same_state(before,
                                                                state.state_dict())})
        del ddp, other
        gc.collect()
    return out


def same_state(a, b):
    """Two hook state_dicts hold the same step and, bit for bit, the same
    accumulators, K states and owner-side accumulators."""
    if a["step"] != b["step"] or a["layers"].keys() != b["layers"].keys():
        return False
    for key, la in a["layers"].items():
        lb = b["layers"][key]
        if (la["accum"] is None) != (lb["accum"] is None):
            return False
        if la["accum"] is not None and not torch.equal(la["accum"].view(torch.int32),
                                                       lb["accum"].view(torch.int32)):
            return False
        if (la["k"], la["d_prev"], la["started"]) != (lb["k"], lb["d_prev"], lb["started"]):
            return False
        oa, ob = la.get("owner"), lb.get("owner")
        if (oa is None) != (ob is None) or (oa is not None and not torch.equal(
                oa.view(torch.int32), ob.view(torch.int32))):
            return False
    return True


def scenario_keys(rank, world, cfg):
    """Checkpoint keys do not depend on naming the DDP wrapper or the inner
    module; a checkpoint of one loads into the other, old "module." keys
    load, unknown keys are refused."""
    from mcgq.torch import MCGQState, mcgq_hook
    model = make_model(3)
    ddp = _ddp(model, cfg["bucket_cap_mb"])
    state = MCGQState(model=ddp, **cfg["hook"])
    ddp.register_comm_hook(state, mcgq_hook)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.05)
    _train_steps(ddp, opt, 2, rank)
    sd = state.state_dict()
    inner = MCGQState(model=model, **cfg["hook"])
    inner.load_state_dict(sd)
    old = dict(sd, format=1, named_keys=None,
               layers={"module." + k: v for k, v in sd["layers"].items()})
    del old["named_keys"]
    legacy = MCGQState(model=model, **cfg["hook"])
    legacy.load_state_dict(old)
    unknown = MCGQState(model=model, **cfg["hook"])
    try:
        unknown.load_state_dict(dict(sd, layers=dict(sd["layers"], **{"9.weight": sd["layers"]["0.weight"]})))
        unknown_error = None
    except ValueError as e:
        unknown_error = str(e)
    return {"keys": sorted(sd["layers"]), "inner": inner.state_dict(),
            "legacy": legacy.state_dict(), "sd": sd, "unknown_error": unknown_error}


def scenario_failures(rank, world, cfg):
    """Errors on one rank become the same error on every rank, with every
    state unchanged.  Each case uses a fresh DDP (a backward that raised
    leaves DDP's reducer mid-iteration)."""
    from mcgq.torch import MCGQState, mcgq_hook
    bad = cfg["bad_rank"]
    out = {}

    def fresh(**over):
        model = make_model(4)
        ddp = _ddp(model, cfg["bucket_cap_mb"])
        state = MCGQState(model=ddp, **dict(cfg["hook"], **over))
        ddp.register_comm_hook(state, mcgq_hook)
        opt = torch.optim.SGD(ddp.parameters(), lr=0.05)
        _train_steps(ddp, opt, 2, rank)     # several buckets from now on
        return ddp, state

    # A library error (the C encoder refuses K = 100) on one rank.
    ddp, state = fresh()
    if rank == bad:
        state._cfg.k = 100.0
    before = state.state_dict()
    out["library"] = {"error": _backward_error(ddp, rank, 2),
                      "unchanged": same_state(before, state.state_dict())}
    # An accumulator of the wrong size on one rank (caught before C).
    ddp, state = fresh()
    if rank == bad:
        state._layers["0.weight"].accum = torch.zeros(7)
    out["accum_size"] = {"error": _backward_error(ddp, rank, 2)}
    # Ranks with different layer tables.
    ddp, state = fresh()
    if rank == bad:
        state.min_compress_numel = 1000
    before = state.state_dict()
    out["table"] = {"error": _backward_error(ddp, rank, 2),
                    "unchanged": same_state(before, state.state_dict())}
    # A state that is not an MCGQState.
    ddp = _ddp(make_model(4), cfg["bucket_cap_mb"])
    ddp.register_comm_hook(None, mcgq_hook)
    out["none_state"] = {"error": _backward_error(ddp, rank)}
    return out


def scenario_sixteen_bit(rank, world, cfg):
    """bfloat16 and float16 models through the hook: the buckets go to the
    library as they are (cfg.dtype), the averages come back in the bucket's
    type.  Records the parameters after each step and the hook's stats."""
    from mcgq.torch import MCGQState, mcgq_hook
    out = {}
    for name, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
        model = make_model(0).to(dtype)
        ddp = _ddp(model, cfg["bucket_cap_mb"])
        state = MCGQState(model=ddp, **cfg["hook"])
        ddp.register_comm_hook(state, mcgq_hook)
        opt = torch.optim.SGD(ddp.parameters(), lr=cfg["lr"])
        record = []
        for s in range(cfg["steps"]):
            x, y = batch(s, rank)
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(ddp(x.to(dtype)).float(), y).backward()
            opt.step()
            record.append(snapshot(ddp.module))
        out[name] = {"params": record, "stats": state.stats()}
    return out


def _two_stage_reference(rank, world, cfg, step, captured, names, ref):
    """What the hook must give for each captured bucket of this step: the
    compressed parameters through mcgq.torch.Comm in two_stage mode (the
    same C protocol, driven directly, with the hook's per-bucket seed), the
    others averaged in rank order.  `ref` carries the per-parameter
    accumulators and owner state between steps (by name, like the hook).
    Returns {name: expected averaged gradient}."""
    import mcgq.torch as mt
    h = cfg["hook"]
    out = {}
    for _, params, grads in captured:
        big = [(p, g) for p, g in zip(params, grads)
               if g.numel() >= h["min_compress_numel"] and step >= h.get("warmup_steps", 0)]
        small = [(p, g) for p, g in zip(params, grads) if all(p is not q for q, _ in big)]
        if big:
            tensors = [g.clone() for _, g in big]
            comm = mt.Comm(tensors, k=h["k"], accumulate=h["accumulate"], mode="two_stage",
                           seed=h.get("seed", 0),
                           layer_ids=[names[id(p)][0] for p, _ in big])
            comm.step_count = step
            owners = []
            for (p, _), acc in zip(big, comm.accumulators):
                key = names[id(p)][1]
                acc.copy_(ref["accum"].get(key, acc))
                b, e = mt.shard_range(p.numel(), world, rank)
                owners.append(ref["owner"].get(key, torch.zeros(e - b)))
            comm.set_owner_state(torch.cat(owners))
            comm.step()
            state = comm.owner_state().split([o.numel() for o in owners])
            for (p, _), t, acc, o in zip(big, tensors, comm.accumulators, state):
                key = names[id(p)][1]
                out[key] = t
                ref["accum"][key], ref["owner"][key] = acc.clone(), o.clone()
            comm.close()
        for p, g in small:
            rows = [torch.empty_like(g) for _ in range(world)]
            dist.all_gather(rows, g.contiguous())
            acc = torch.zeros_like(g)
            for r in range(world):
                acc += rows[r]
            out[names[id(p)][1]] = acc / world
    return out


def scenario_two_stage(rank, world, cfg):
    """exchange="two_stage": each step, every bucket's averaged gradient is
    compared bit for bit with the same exchange done by mcgq.torch.Comm on
    the gradients the hook received; then a checkpoint of the hook state
    (owner-side accumulators included) is restored into a fresh model and
    state, and must continue bit for bit (and must not without the owner
    state).  The random words of the two-stage exchange follow DDP's bucket
    layout, which a fresh DDP builds anew, so at the checkpoint the live run
    also moves to a fresh DDP (the same state object): both then meet the
    same layouts."""
    from mcgq.torch import MCGQState, mcgq_hook
    import pickle
    h = cfg["hook"]
    model = make_model(1)
    ddp = _ddp(model, cfg["bucket_cap_mb"])
    state = MCGQState(model=ddp, **h)
    names = {id(p): (i, n) for i, (n, p) in enumerate(model.named_parameters())}
    captured = []

    def hook(s, bucket):
        captured.append((bucket.index(), list(bucket.parameters()),
                         [g.detach().clone().reshape(-1) for g in bucket.gradients()]))
        return mcgq_hook(s, bucket)

    ddp.register_comm_hook(state, hook)
    opt = torch.optim.SGD(ddp.parameters(), lr=cfg["lr"])
    ref = {"accum": {}, "owner": {}}
    mismatches, record, layouts = [], [], []
    steps, saved = cfg["steps"], None
    for s in range(steps):
        if s == cfg["save_at"]:
            saved = {"sd": state.state_dict(), "model": snapshot(model),
                     "opt": opt.state_dict(), "pickled": pickle.dumps(state)}
            del ddp
            ddp = _ddp(model, cfg["bucket_cap_mb"])
            ddp.register_comm_hook(state, hook)
        captured.clear()
        x, y = batch(s, rank)
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(ddp(x), y).backward()
        expect = _two_stage_reference(rank, world, cfg, s, captured, names, ref)
        layouts.append([[names[id(p)][1] for p in ps] for _, ps, _ in captured])
        for n, p in model.named_parameters():
            got = p.grad.detach().reshape(-1)
            if not torch.equal(got.view(torch.int32), expect[n].view(torch.int32)):
                mismatches.append((s, n, float((got - expect[n]).abs().max())))
        opt.step()
        record.append(snapshot(model))
    final_sd = state.state_dict()
    stats = state.stats()

    def resume(sd, drop_owner=False, pickled=None):
        m = make_model(1)
        m.load_state_dict(saved["model"])
        d = _ddp(m, cfg["bucket_cap_mb"])
        if pickled is not None:
            st = pickle.loads(pickled)
            st.bind(d)
        else:
            st = MCGQState(model=d, **h)
            if drop_owner:
                sd = dict(sd, owner_layout=None, layers={
                    k: dict(v, owner=None) for k, v in sd["layers"].items()})
            st.load_state_dict(sd)
        d.register_comm_hook(st, mcgq_hook)
        o = torch.optim.SGD(d.parameters(), lr=cfg["lr"])
        o.load_state_dict(saved["opt"])
        _train_steps(d, o, steps - cfg["save_at"], rank, first_step=cfg["save_at"])
        return snapshot(m), st.state_dict()

    resumed, resumed_sd = resume(saved["sd"])
    unpickled, _ = resume(None, pickled=saved["pickled"])
    no_owner, _ = resume(saved["sd"], drop_owner=True)
    return {"mismatches": mismatches, "params": record, "layouts": layouts,
            "final_sd": final_sd, "saved_sd": saved["sd"], "resumed": resumed,
            "resumed_sd": resumed_sd, "unpickled": unpickled, "no_owner": no_owner,
            "stats": stats}


SCENARIOS = {"train": scenario_train, "two_stage": scenario_two_stage, "checkpoint": scenario_checkpoint,
             "nonfinite": scenario_nonfinite, "cuda_vs_cpu": scenario_cuda_vs_cpu,
             "async": scenario_async, "reuse": scenario_reuse, "keys": scenario_keys,
             "failures": scenario_failures,
             "sixteen_bit": scenario_sixteen_bit}


def worker(rank, world, init_file, outdir, jobs, backend="gloo"):
    torch.set_num_threads(1)
    dist.init_process_group(backend, init_method="file://" + init_file,
                            rank=rank, world_size=world)
    try:
        results = {}
        for name, scenario, cfg in jobs:
            results[name] = SCENARIOS[scenario](rank, world, cfg)
            dist.barrier()
        torch.save(results, os.path.join(outdir, "rank%d.pt" % rank))
    finally:
        dist.destroy_process_group()
