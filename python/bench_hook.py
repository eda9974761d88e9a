"""Step time of the MCGQ DDP hook against DDP's built-in all-reduce (and the
bf16 compression hook) in the same gloo run on CPU.

    python python/bench_hook.py --world 4 --steps 30

Spawns `--world` processes (gloo, one thread each).  For every model in the
table and every exchange it trains `--warmup` + `--steps` SGD steps and
reports, from rank 0: the median step time (forward, backward with the
exchange, optimizer step; the maximum over ranks of each step), the median
time spent inside the hook (the hook wrapped with a timer that also waits
for its future, so the all-reduce loses its overlap with backward in that
column only) and bits per gradient element on the wire.
"""

import argparse
import os
import socket
import statistics
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP

MODELS = {
    # name: layer widths of an MLP
    "mlp-1M": [256, 1024, 512, 10],
    "mlp-4M": [512, 2048, 1024, 256, 10],
    "deep-small": [64] + [128] * 24 + [10],   # many small layers
}


def make_model(widths):
    layers = []
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def make_exchange(name, ddp, k):
    """Registers the exchange; returns (hook or None, state)."""
    if name == "allreduce":
        from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
        return (lambda s, bucket: default_hooks.allreduce_hook(s, bucket)), None
    if name == "bf16":
        from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
        return (lambda s, bucket: default_hooks.bf16_compress_hook(s, bucket)), None
    from mcgq.torch import MCGQState, mcgq_hook
    state = MCGQState(k=k, accumulate="residual", model=ddp)
    return mcgq_hook, state


def run_one(widths, exchange, k, steps, warmup, timed_hook, rank):
    torch.manual_seed(0)
    model = make_model(widths)
    ddp = DDP(model)
    hook, state = make_exchange(exchange, ddp, k)
    hook_time = [0.0]
    hook_state = state if state is not None else dist.group.WORLD
    if timed_hook:
        def timed(s, bucket):
            t0 = time.perf_counter()
            fut = hook(s, bucket)
            fut.wait()
            hook_time[0] += time.perf_counter() - t0
            return fut
        ddp.register_comm_hook(hook_state, timed)
    elif exchange != "allreduce":
        ddp.register_comm_hook(hook_state, lambda s, bucket: hook(s, bucket))
    opt = torch.optim.SGD(ddp.parameters(), lr=0.01)
    gen = torch.Generator().manual_seed(rank)
    times, hook_times = [], []
    for i in range(warmup + steps):
        x = torch.randn(32, widths[0], generator=gen)
        y = torch.randint(0, widths[-1], (32,), generator=gen)
        dist.barrier()
        hook_time[0] = 0.0
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(ddp(x), y).backward()
        opt.step()
        t = torch.tensor([time.perf_counter() - t0, hook_time[0]], dtype=torch.float64)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        if i >= warmup:
            times.append(float(t[0]))
            hook_times.append(float(t[1]))
    bits = {"allreduce": 32.0, "bf16": 16.0}.get(exchange)
    if bits is None:
        bits = state.stats()["bits_per_element_all"]
    return statistics.median(times), statistics.median(hook_times), bits


def worker(rank, world, port, args):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method="tcp://127.0.0.1:%d" % port,
                            rank=rank, world_size=world)
    rows = []
    for model_name in args.models:
        widths = MODELS[model_name]
        n = sum(p.numel() for p in make_model(widths).parameters())
        for exchange in args.exchanges:
            step, _, bits = run_one(widths, exchange, args.k, args.steps, args.warmup,
                                    False, rank)
            _, hook_t, _ = run_one(widths, exchange, args.k, args.steps, args.warmup,
                                   True, rank)
            rows.append((model_name, n, exchange, step, hook_t, bits))
    if rank == 0:
        print("world=%d gloo CPU, 1 thread/rank, K=%g (residual), median of %d steps"
              % (world, args.k, args.steps))
        print("%-11s %9s %-10s %10s %10s %10s" % ("model", "params", "exchange",
                                                 "step ms", "hook ms", "bits/elem"))
        for model_name, n, exchange, step, hook_t, bits in rows:
            print("%-11s %9d %-10s %10.2f %10.2f %10.3f" %
                  (model_name, n, exchange, 1e3 * step, 1e3 * hook_t, bits))
    dist.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--world", type=int, default=4)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--k", type=float, default=0.1)
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--exchanges", nargs="+", default=["allreduce", "bf16", "mcgq"],
                   choices=["allreduce", "bf16", "mcgq"])
    args = p.parse_args()
    mp.spawn(worker, args=(args.world, free_port(), args), nprocs=args.world, join=True)


if __name__ == "__main__":
    main()
