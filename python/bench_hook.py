"""Step time of the MCGQ DDP hook against DDP's built-in hooks (all-reduce,
bf16, PowerSGD) in the same gloo run on CPU.

    python python/bench_hook.py --world 4 --steps 40

Spawns `--world` processes (gloo, one intra-op thread each).  Every exchange
gets its own DDP copy of the same model; the copies take their steps in turn
(step i of every exchange, then step i+1), so load from other processes on
the machine hits all of them alike, and the comparison is a same-run ratio.
Per exchange, rank 0 reports:

  step ms   median over steps of the step time (zero_grad, forward, backward
            with the exchange, optimizer step), each step the maximum over
            ranks;
  hook ms   median over steps of the time spent inside the hook calls of a
            step (the time backward is blocked by the hook; the asynchronous
            work a hook returns as a future is not in it), max over ranks;
  bits/elem bits this rank puts into the step's collectives per gradient
            element (all-reduce: 32, bf16: 16, PowerSGD: its P and Q factors
            and the uncompressed tensors at 32 bits, from the shapes; mcgq:
            stats()["bits_per_element_all"], headers and padding included);
  x psgd    step time / PowerSGD's step time in the same run.

PowerSGD's hook issues its second all-reduce from a future callback, whose
timing differs between ranks; with gloo and several buckets per step that
mismatches collectives (seen here: gloo EnforceNotMet "Received data size
doesn't match expected size", SIGABRT), so it runs only when the model is one
bucket (the default --bucket-cap-mb 25 for the example model).  The mcgq hook
issues every collective from its one exchange thread, buckets in hook-call
order, the same on all ranks, so any bucket size works.

The default model is examples/torch_ddp.py's MLP (64-256-256-10, 84,490
parameters).
"""

import argparse
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
    "example": [64, 256, 256, 10],           # examples/torch_ddp.py, 85,002 params
    "mlp-1M": [256, 1024, 512, 10],
    "deep-small": [64] + [128] * 24 + [10],  # many small layers
}
EXCHANGES = ["allreduce", "bf16", "powersgd", "mcgq"]


def make_model(widths):
    layers = []
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def powersgd_bits(model, rank, min_rate):
    """Wire bits per element of PowerSGD (rank `rank`): a tensor of n x m
    (its matrix view) is sent as (n + m) * rank floats when
    n*m / ((n + m) * rank) >= min_rate, else whole."""
    sent = total = 0
    for p in model.parameters():
        total += p.numel()
        if p.dim() > 1:
            n = p.shape[0]
            m = p.numel() // n
            if n * m >= min_rate * (n + m) * rank:
                sent += (n + m) * rank
                continue
        sent += p.numel()
    return 32.0 * sent / total


def timed(hook, clock):
    """The hook, adding the time spent inside its call to clock[0]."""
    def timed_hook(state, bucket):
        t0 = time.perf_counter()
        fut = hook(state, bucket)
        clock[0] += time.perf_counter() - t0
        return fut
    return timed_hook


def setup(exchange, widths, args):
    from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
    from torch.distributed.algorithms.ddp_comm_hooks import powerSGD_hook as psgd
    torch.manual_seed(0)
    model = make_model(widths)
    ddp = DDP(model, bucket_cap_mb=args.bucket_cap_mb)
    info = {}
    if exchange == "allreduce":
        state, hook = dist.group.WORLD, default_hooks.allreduce_hook
        info["bits"] = 32.0
    elif exchange == "bf16":
        state, hook = dist.group.WORLD, default_hooks.bf16_compress_hook
        info["bits"] = 16.0
    elif exchange == "powersgd":
        state = psgd.PowerSGDState(process_group=None,
                                   matrix_approximation_rank=args.psgd_rank,
                                   start_powerSGD_iter=2, min_compression_rate=2,
                                   use_error_feedback=True, warm_start=True)
        hook = psgd.powerSGD_hook
        info["bits"] = powersgd_bits(model, args.psgd_rank, 2)
    else:
        from mcgq.torch import MCGQState, mcgq_hook
        state = MCGQState(k=args.k, accumulate="residual", model=ddp,
                          min_compress_numel=args.min_compress_numel)
        hook = mcgq_hook
        info["mcgq"] = state
    clock = [0.0]
    ddp.register_comm_hook(state, timed(hook, clock))
    opt = torch.optim.SGD(ddp.parameters(), lr=0.01)
    return {"ddp": ddp, "opt": opt, "clock": clock, "info": info,
            "times": [], "hook": []}


def worker(rank, world, port, args):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method="tcp://127.0.0.1:%d" % port,
                            rank=rank, world_size=world)
    rows = []
    for model_name in args.models:
        widths = MODELS[model_name]
        runs = {ex: setup(ex, widths, args) for ex in args.exchanges}
        gen = torch.Generator().manual_seed(rank)
        for i in range(args.warmup + args.steps):
            x = torch.randn(args.batch, widths[0], generator=gen)
            y = torch.randint(0, widths[-1], (args.batch,), generator=gen)
            for ex in args.exchanges:
                run = runs[ex]
                dist.barrier()
                run["clock"][0] = 0.0
                t0 = time.perf_counter()
                run["opt"].zero_grad(set_to_none=True)
                F.cross_entropy(run["ddp"](x), y).backward()
                run["opt"].step()
                t = torch.tensor([time.perf_counter() - t0, run["clock"][0]],
                                 dtype=torch.float64)
                dist.all_reduce(t, op=dist.ReduceOp.MAX)
                if i >= args.warmup:
                    run["times"].append(float(t[0]))
                    run["hook"].append(float(t[1]))
        n = sum(p.numel() for p in make_model(widths).parameters())
        base = statistics.median(runs["powersgd"]["times"]) \
            if "powersgd" in runs else None
        for ex in args.exchanges:
            run = runs[ex]
            bits = run["info"].get("bits")
            if bits is None:
                bits = run["info"]["mcgq"].stats()["bits_per_element_all"]
            step = statistics.median(run["times"])
            rows.append((model_name, n, ex, step, statistics.median(run["hook"]), bits,
                         step / base if base else float("nan")))
        del runs
    if rank == 0:
        print("world=%d gloo CPU, 1 thread/rank, batch %d/rank, bucket_cap_mb %g, "
              "median of %d steps (after %d warm-up), mcgq K=%g residual "
              "min_compress_numel=%d, PowerSGD rank %d" %
              (world, args.batch, args.bucket_cap_mb, args.steps, args.warmup, args.k,
               args.min_compress_numel, args.psgd_rank))
        print("%-11s %9s %-10s %9s %9s %10s %7s" % ("model", "params", "exchange",
                                                  "step ms", "hook ms", "bits/elem",
                                                  "x psgd"))
        for model_name, n, ex, step, hook_t, bits, ratio in rows:
            print("%-11s %9d %-10s %9.2f %9.2f %10.3f %7.2f" %
                  (model_name, n, ex, 1e3 * step, 1e3 * hook_t, bits, ratio))
    dist.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--world", type=int, default=4)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--batch", type=int, default=64, help="per-rank batch size")
    p.add_argument("--k", type=float, default=0.1)
    p.add_argument("--min-compress-numel", type=int, default=1024)
    p.add_argument("--psgd-rank", type=int, default=2)
    p.add_argument("--bucket-cap-mb", type=float, default=25.0,
                   help="DDP's bucket_cap_mb (25: the example model is one bucket)")
    p.add_argument("--models", nargs="+", default=["example"], choices=list(MODELS))
    p.add_argument("--exchanges", nargs="+", default=EXCHANGES, choices=EXCHANGES)
    args = p.parse_args()
    if args.world < 1 or args.steps < 1 or args.warmup < 2:
        p.error("--world and --steps must be >= 1 and --warmup >= 2 (PowerSGD "
                "compresses from its second step)")
    if args.bucket_cap_mb < 25 and "powersgd" in args.exchanges:
        print("note: powersgd left out: with several buckets its gloo collectives "
              "mismatch (see the docstring)")
        args.exchanges = [e for e in args.exchanges if e != "powersgd"]
    mp.spawn(worker, args=(args.world, free_port(), args), nprocs=args.world, join=True)


if __name__ == "__main__":
    main()
