"""Worker side of the DDP tests (run under torch.multiprocessing.spawn) and
the shared problem definition the single-process references reuse.

Every worker runs with one intra-op thread so that a gradient computed here
and the same gradient recomputed by the reference in the test process are
bit-identical (CPU GEMM results can depend on the thread count)."""

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


SCENARIOS = {"train": scenario_train, "checkpoint": scenario_checkpoint,
             "nonfinite": scenario_nonfinite, "cuda_vs_cpu": scenario_cuda_vs_cpu}


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
