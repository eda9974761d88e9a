"""mcgq.torch_comm.Comm: the C step protocol over torch.distributed (gloo,
2 processes), against a simulation from the public numpy API (mcgq.encode
and mcgq.decode_average of the documented messages), bit for bit; the
failure protocol (a NaN on one rank raises mcgq.NonFinite on both and
changes nothing); a stalled rank (the other raises mcgq.Timeout within the
process group's timeout plus one second, nothing changed, the
communicator aborted).
"""
import datetime
import os
import time

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import mcgq

pytestmark = pytest.mark.skipif(not dist.is_available() or
                                not dist.is_gloo_available(),
                                reason="torch.distributed with gloo is not available")

SIZES = (1001, 3, 4099)
K, SEED, WORLD = 0.3, 77, 2


def _grads(rank, step):
    rng = np.random.default_rng(1000 * rank + step)
    return [rng.standard_normal(n).astype(np.float32) for n in SIZES]


def _simulate(mode, steps, me):
    """What rank `me` holds after each step, computed from messages."""
    accum = [[np.zeros(n, np.float32) for n in SIZES] for _ in range(WORLD)]
    out = []
    for step in range(steps):
        grads = [_grads(r, step) for r in range(WORLD)]
        if mode == "all_gather":
            msgs = [mcgq.encode([mcgq.Layer(g, k=K, accumulate="residual", accum=a)
                                 for g, a in zip(grads[r], accum[r])],
                                seed=SEED, step=step, rank=r)[0] for r in range(WORLD)]
            flat = mcgq.decode_average(msgs)
            res, at = [], 0
            for n in SIZES:
                res.append(flat[at:at + n].copy())
                at += n
            out.append(res)
            continue
        # reduce-scatter: owner j averages shard j of every layer
        res = [g.copy() for g in grads[me]]
        for j in range(WORLD):
            msgs = []
            for r in range(WORLD):
                layers = []
                for i, n in enumerate(SIZES):
                    b, e = mcgq.torch_comm.shard_range(n, WORLD, j)
                    if e > b:
                        layers.append(mcgq.Layer(grads[r][i][b:e], k=K, accumulate="residual",
                                                 accum=accum[r][i][b:e], layer_id=i))
                msgs.append(mcgq.encode(layers, seed=SEED, step=step, rank=r * WORLD + j)[0])
            avg = mcgq.decode_average(msgs)
            if j != me:
                continue
            at = 0
            for i, n in enumerate(SIZES):
                b, e = mcgq.torch_comm.shard_range(n, WORLD, j)
                res[i][b:e] = avg[at:at + e - b]
                at += e - b
        out.append(res)
    return out


def _worker(rank, init_file, result_dir):
    import mcgq.torch_comm as tc
    dist.init_process_group("gloo", init_method="file://" + init_file, rank=rank,
                            world_size=WORLD)
    report = []
    try:
        for mode in ("all_gather", "reduce_scatter"):
            tensors = [torch.zeros(n, dtype=torch.float32) for n in SIZES]
            comm = tc.Comm(tensors, k=K, accumulate="residual", mode=mode, seed=SEED)
            expect = _simulate(mode, 3, rank)
            for step in range(3):
                for t, g in zip(tensors, _grads(rank, step)):
                    t.copy_(torch.from_numpy(g))
                stats = tc.reduce_scatter(comm) if mode == "reduce_scatter" else comm.step()
                assert stats["elements"] == sum(SIZES)
                for i, t in enumerate(tensors):
                    got = t.numpy()
                    if got.tobytes() != expect[step][i].tobytes():
                        report.append("%s step %d tensor %d differs" % (mode, step, i))
            # a NaN on rank 1: both ranks raise NonFinite, nothing changes
            for t, g in zip(tensors, _grads(rank, 9)):
                t.copy_(torch.from_numpy(g))
            if rank == 1:
                tensors[2][5] = float("nan")
            before = [t.clone() for t in tensors] + [a.clone() for a in comm.accumulators]
            try:
                comm.step()
                report.append("%s: NaN step succeeded" % mode)
            except mcgq.NonFinite:
                pass
            after = list(tensors) + list(comm.accumulators)
            if any(not torch.equal(torch.nan_to_num(x), torch.nan_to_num(y)) or
                   x.isnan().sum() != y.isnan().sum() for x, y in zip(before, after)):
                report.append("%s: NaN step changed state" % mode)
            comm.close()
        # a bad mode is refused before anything moves
        try:
            tc.Comm([torch.zeros(4)], mode="ring")
            report.append("mode 'ring' accepted")
        except ValueError:
            pass
    except Exception as e:  # reported, not raised: the other rank must not hang
        report.append("exception: %r" % (e,))
    with open(os.path.join(result_dir, "rank%d" % rank), "w") as f:
        f.write("\n".join(report))
    dist.destroy_process_group()


def test_comm_over_gloo_matches_simulation(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD)
    for r in range(WORLD):
        text = (tmp_path / ("rank%d" % r)).read_text()
        assert text == "", "rank %d: %s" % (r, text)


STALL_TIMEOUT_S = 2.0


def _stall_worker(rank, init_file, result_dir):
    import mcgq.torch_comm as tc
    dist.init_process_group("gloo", init_method="file://" + init_file, rank=rank,
                            world_size=WORLD,
                            timeout=datetime.timedelta(seconds=STALL_TIMEOUT_S))
    report = []
    tensors = [torch.zeros(n, dtype=torch.float32) for n in SIZES]
    comm = tc.Comm(tensors, k=K, accumulate="residual", seed=SEED)
    for t, g in zip(tensors, _grads(rank, 0)):
        t.copy_(torch.from_numpy(g))
    comm.step()                          # both ranks: a normal step
    if rank == 1:                        # then rank 1 stops calling
        time.sleep(STALL_TIMEOUT_S + 3)
    else:
        for t, g in zip(tensors, _grads(rank, 1)):
            t.copy_(torch.from_numpy(g))
        before = [t.clone() for t in tensors] + [a.clone() for a in comm.accumulators]
        t0 = time.monotonic()
        try:
            comm.step()
            report.append("the step with a stalled peer succeeded")
        except mcgq.Timeout as e:
            waited = time.monotonic() - t0
            if waited > STALL_TIMEOUT_S + 1.0:
                report.append("mcgq.Timeout after %.2f s" % waited)
            if "aborted" not in str(e):
                report.append("the timeout does not say the handle is aborted: %s" % e)
        except Exception as e:  # noqa: BLE001 - reported
            report.append("not mcgq.Timeout: %r" % (e,))
        after = list(tensors) + list(comm.accumulators)
        if any(not torch.equal(x, y) for x, y in zip(before, after)):
            report.append("the timed-out step changed state")
        try:
            comm.step()
            report.append("an aborted communicator took another step")
        except mcgq.InvalidUsage:
            pass
    comm.close()
    with open(os.path.join(result_dir, "rank%d" % rank), "w") as f:
        f.write("\n".join(report))
    # The process group still holds the timed-out operation: its destructor
    # may abort the process at exit (seen: SIGABRT), so leave without it.
    os._exit(0)


def test_stalled_rank_times_out_on_the_others(tmp_path):
    mp.spawn(_stall_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD)
    for r in range(WORLD):
        text = (tmp_path / ("rank%d" % r)).read_text()
        assert text == "", "rank %d: %s" % (r, text)


def test_hook_takes_all_gather_and_two_stage():
    import mcgq.torch as mt
    assert mt.MCGQState(exchange="all_gather").exchange == "all_gather"
    assert mt.MCGQState(exchange="two_stage").exchange == "two_stage"
    for mode in ("reduce_scatter", "ring", "TWO_STAGE", None):
        with pytest.raises(ValueError, match="'all_gather', 'two_stage'") as e:
            mt.MCGQState(exchange=mode)
        assert repr(mode) in str(e.value)
    with pytest.raises(ValueError, match="mcgq.torch.reduce_scatter"):
        mt.MCGQState(exchange="reduce_scatter")
    with pytest.raises(ValueError, match="dynamic_k"):
        mt.MCGQState(exchange="two_stage", dynamic_k=True)


def test_two_stage_state_pickles_and_closes_its_worker():
    """The exchange worker starts with the first bucket only, the state
    pickles without it, and dropping a state stops its thread."""
    import gc
    import pickle
    import threading
    import mcgq.torch as mt
    st = mt.MCGQState(exchange="two_stage", k=0.2, accumulate="residual")
    back = pickle.loads(pickle.dumps(st))
    assert back.exchange == "two_stage" and back.state_dict()["exchange"] == "two_stage"
    st._protocol._worker.submit(lambda: None)
    st._protocol.drain()
    thread = st._protocol._worker._thread
    assert thread.is_alive() and thread.daemon
    del st
    gc.collect()
    thread.join(5)
    assert not thread.is_alive()
    assert not any(t.name == "mcgq-exchange" and t is thread for t in threading.enumerate())
