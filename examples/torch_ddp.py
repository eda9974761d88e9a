"""Data-parallel training with MCGQ-compressed gradients through a DDP hook.

    torchrun --nproc_per_node 4 examples/torch_ddp.py --hook mcgq --k 0.1
    torchrun --nproc_per_node 4 examples/torch_ddp.py --hook allreduce
    torchrun --nproc_per_node 4 examples/torch_ddp.py --hook bf16
    torchrun --nproc_per_node 4 examples/torch_ddp.py --hook powersgd

CPU tensors and gloo without GPUs, CUDA tensors and NCCL with them (one GPU
per process).  A small MLP learns a synthetic classification task (Gaussian
clusters); every epoch rank 0 prints the training loss, held-out accuracy,
bits per gradient element on the wire, the mean step time and (mcgq) the
mean time backward spent blocked inside the hook.  python/bench_hook.py
times the same model's exchanges side by side.
"""

import argparse
import os
import time

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hook", choices=["mcgq", "allreduce", "bf16", "powersgd"],
                   default="mcgq")
    p.add_argument("--psgd-rank", type=int, default=2, help="PowerSGD's rank")
    p.add_argument("--k", type=float, default=0.1, help="MCGQ sampling amount K")
    p.add_argument("--accumulate", choices=["reset", "residual", "none"],
                   default="residual")
    p.add_argument("--dynamic-k", action="store_true", help="the paper's Alg 3")
    p.add_argument("--delta-k", type=float, default=0.5)
    p.add_argument("--min-compress-numel", type=int, default=1024)
    p.add_argument("--warmup-steps", type=int, default=0)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--steps-per-epoch", type=int, default=50)
    p.add_argument("--batch", type=int, default=64, help="per-rank batch size")
    p.add_argument("--lr", type=float, default=0.2)
    p.add_argument("--momentum", type=float, default=0.0,
                   help="heavy momentum (0.9) with residual feedback at K=0.1 diverged here")
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    return p.parse_args()


class Clusters:
    """Gaussian clusters in `dim` dimensions, one per class; each rank draws
    its own batches from its own generator."""

    def __init__(self, dim=64, classes=10, seed=0):
        gen = torch.Generator().manual_seed(seed)
        self.centers = torch.randn(classes, dim, generator=gen) * 1.5
        self.classes = classes

    def sample(self, n, gen):
        y = torch.randint(0, self.classes, (n,), generator=gen)
        x = self.centers[y] + torch.randn(n, self.centers.shape[1], generator=gen) * 4.0
        return x, y


def make_hook(args, ddp):
    if args.hook == "mcgq":
        from mcgq.torch import MCGQState, mcgq_hook
        state = MCGQState(k=args.k, accumulate=args.accumulate,
                          dynamic_k=args.dynamic_k, delta_k=args.delta_k,
                          seed=args.seed, warmup_steps=args.warmup_steps,
                          min_compress_numel=args.min_compress_numel, model=ddp)
        ddp.register_comm_hook(state, mcgq_hook)
        return state
    if args.hook == "bf16":
        from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
        ddp.register_comm_hook(dist.group.WORLD, default_hooks.bf16_compress_hook)
    if args.hook == "powersgd":
        from torch.distributed.algorithms.ddp_comm_hooks import powerSGD_hook as psgd
        ddp.register_comm_hook(psgd.PowerSGDState(
            process_group=None, matrix_approximation_rank=args.psgd_rank,
            start_powerSGD_iter=2), psgd.powerSGD_hook)
    return None


def bits_per_element(args, state):
    if state is not None:
        return state.stats()["bits_per_element_all"]
    if args.hook == "powersgd":
        return float("nan")     # see python/bench_hook.py's powersgd_bits
    return 16.0 if args.hook == "bf16" else 32.0


def main():
    args = parse_args()
    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    dist.init_process_group("nccl" if use_cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    if use_cuda:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
        torch.set_num_threads(1)  # ranks share the cores

    data = Clusters(seed=args.seed)
    torch.manual_seed(args.seed)
    model = nn.Sequential(nn.Linear(64, args.hidden), nn.ReLU(),
                          nn.Linear(args.hidden, args.hidden), nn.ReLU(),
                          nn.Linear(args.hidden, data.classes)).to(device)
    ddp = DDP(model, device_ids=[device.index] if use_cuda else None)
    state = make_hook(args, ddp)
    opt = torch.optim.SGD(ddp.parameters(), lr=args.lr, momentum=args.momentum)
    gen = torch.Generator().manual_seed(1000 + rank)
    x_test, y_test = data.sample(2000, torch.Generator().manual_seed(7))
    x_test, y_test = x_test.to(device), y_test.to(device)

    if rank == 0:
        n_params = sum(p.numel() for p in model.parameters())
        print("hook=%s world=%d device=%s params=%d%s" %
              (args.hook, world, device.type, n_params,
               " K=%g accumulate=%s" % (args.k, args.accumulate)
               if args.hook == "mcgq" else ""), flush=True)
        print("%5s %10s %9s %11s %12s %12s" % ("epoch", "loss", "accuracy", "bits/elem",
                                               "step (ms)", "in hook (ms)"), flush=True)
    for epoch in range(args.epochs):
        loss_sum, bits_sum, step_time, hook_time = 0.0, 0.0, 0.0, 0.0
        for _ in range(args.steps_per_epoch):
            x, y = data.sample(args.batch, gen)
            x, y = x.to(device), y.to(device)
            if use_cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(ddp(x), y)
            loss.backward()
            opt.step()
            if use_cuda:
                torch.cuda.synchronize()
            step_time += time.perf_counter() - t0
            loss_sum += loss.item()
            bits_sum += bits_per_element(args, state)
            if state is not None:
                hook_time += state.stats()["hook_seconds"]
        with torch.no_grad():
            acc = float((model(x_test).argmax(1) == y_test).float().mean())
        stats = torch.tensor([loss_sum, step_time, hook_time], dtype=torch.float64,
                             device=device)
        dist.all_reduce(stats)
        steps = args.steps_per_epoch
        if rank == 0:
            print("%5d %10.4f %9.3f %11.3f %12.3f %12s" %
                  (epoch, float(stats[0]) / steps / world, acc, bits_sum / steps,
                   1e3 * float(stats[1]) / steps / world,
                   "%.3f" % (1e3 * float(stats[2]) / steps / world)
                   if state is not None else "-"), flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
