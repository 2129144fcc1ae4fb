"Two-process gloo checks of the distributed adapter (real collectives, CPU)."
import os, socket, tempfile
import pytest
import torch
import torch.multiprocessing as mp


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


def _worker(rank, world, port, fn_name, out):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR='127.0.0.1',
                      MASTER_PORT=str(port), FREETICKETS_DEVICE='cpu', OMP_NUM_THREADS='1')
    torch.set_num_threads(1)
    from freetickets_nb import distributed as D
    env = D.setup_dist()
    try: res = globals()[fn_name](env, D)
    except Exception as e: res = f'{type(e).__name__}: {e}'
    torch.save(res, f'{out}/rank{rank}.pt')
    D.cleanup_dist()


def run_ranks(fn_name, world=2):
    with tempfile.TemporaryDirectory() as out:
        mp.start_processes(_worker, args=(world, _free_port(), fn_name, out), nprocs=world, start_method='spawn')
        return [torch.load(f'{out}/rank{r}.pt', weights_only=False) for r in range(world)]


def _broadcast(env, D):
    g = torch.Generator().manual_seed(100 + env.rank)
    masks = {'a': torch.rand(5, 7, generator=g) < 0.3, 'b': torch.rand(11, generator=g) < 0.5}
    try: D.check_masks_in_sync(masks)
    except D.MaskSyncError: differ_before = True
    else: differ_before = False
    D.broadcast_tensors(list(masks.values()))
    D.check_masks_in_sync(masks)
    return differ_before, D.mask_checksum(masks)


def test_broadcast_makes_masks_identical_and_checksum_detects_mismatch():
    (d0, c0), (d1, c1) = run_ranks('_broadcast')
    assert d0 and d1
    assert torch.equal(c0, c1)


def _corrupt(env, D):
    masks = {'a': torch.zeros(4, 4, dtype=torch.bool), 'b': torch.ones(3, dtype=torch.bool)}
    if env.rank == 1: masks['b'][0] = False
    D.check_masks_in_sync(masks, where='after update 3 ')
    return 'no error'


def test_checksum_fires_on_corrupted_rank():
    res = run_ranks('_corrupt')
    assert all(isinstance(r, str) and r.startswith('MaskSyncError') and "['b']" in r for r in res), res


def _gather(env, D):
    n = 11
    x = torch.arange(n * 3, dtype=torch.float32).view(n, 3)
    idx = D.shard_indices(n)
    return D.gather_by_index(x[idx] * 1.0, idx, n)


def test_gather_reassembles_every_sample_once():
    outs = run_ranks('_gather')
    ref = torch.arange(33, dtype=torch.float32).view(11, 3)
    for o in outs: assert torch.equal(o, ref)


def _bn(env, D):
    bn = torch.nn.BatchNorm1d(3)
    bn.running_mean.fill_(float(env.rank)); bn.running_var.fill_(2.0 * (env.rank + 1))
    D.average_bn_stats(bn)
    return bn.running_mean.clone(), bn.running_var.clone()


def test_bn_stats_are_averaged():
    (m0, v0), (m1, v1) = run_ranks('_bn')
    assert torch.allclose(m0, torch.full((3,), 0.5)) and torch.equal(m0, m1)
    assert torch.allclose(v0, torch.full((3,), 3.0)) and torch.equal(v0, v1)
