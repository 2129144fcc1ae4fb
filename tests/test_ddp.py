"Two-process gloo checks of the distributed adapter and of data-parallel training (real collectives, CPU)."
import dataclasses, gc, json, os, re, signal, socket, subprocess, sys, tempfile, time
from pathlib import Path
import pytest
import torch
import torch.multiprocessing as mp
from conftest import BIN


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


def _worker(rank, world, port, fn_name, out):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR='127.0.0.1',
                      MASTER_PORT=str(port), FREETICKETS_DEVICE='cpu', OMP_NUM_THREADS='1', FT_TEST_OUT=out)
    torch.set_num_threads(1)
    from freetickets_nb import distributed as D
    env = D.setup_dist()
    try: res = globals()[fn_name](env, D)
    except Exception as e: res = f'{type(e).__name__}: {e}'
    torch.save(res, f'{out}/rank{rank}.pt')
    gc.collect()
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


# --- data-parallel training: one 2-rank job, checked by several tests --------------------------------

CFGS = dict(dense=dict(density=1.0), dst=dict(density=0.2, update_frequency=3))


def _tiny_data():
    "249 training samples (a last batch of 25, split 13/12 over 2 ranks) and 101 test samples (51/50)"
    from freetickets_nb.data import get_dataset
    d = get_dataset('digits')
    return dataclasses.replace(d, train=d.train.take(249), test=d.test.take(101))


def _cfg(**kw):
    from freetickets_nb.train import TrainConfig
    return TrainConfig(**{**dict(epochs=2, batch_size=32, lr=0.05, lr_schedule='constant'), **kw})


def _fit(data, cfg, **kw):
    "Train, recording each rank's own mask checksum at init and before every sync (i.e. before rank 0's masks are broadcast)"
    from freetickets_nb.train import Trainer
    tr = Trainer(cfg, device='cpu', data=data, **kw)
    seen = [tr.sparse.checksum()] if tr.sparse else []
    if tr.sparse:
        sync = tr.sparse.broadcast
        tr.sparse.broadcast = lambda m: (seen.append(m.checksum()), sync(m))
    tr.fit()
    return dict(state={k: v.clone() for k, v in tr.model.state_dict().items()}, masks=seen, syncs=list(tr.mask_syncs),
                history=tr.history_df(), metrics=tr.metrics, pred=tr.predict('test'), val=tr.evaluate('val'))


class _Crash:
    def before_epoch(self, t):
        if t.epoch == 1: raise KeyboardInterrupt


def _data_parallel(env, D):
    from freetickets_nb.train import Trainer
    data, res = _tiny_data(), {}
    for name, kw in CFGS.items(): res[name] = _fit(data, _cfg(**kw), ddp=True)
    if env.rank == 0:
        for name, kw in CFGS.items(): res[f'{name}_single'] = _fit(data, _cfg(**kw))
    folder = Path(os.environ['FT_TEST_OUT'])/'run'
    try: Trainer(_cfg(**CFGS['dst']), folder, device='cpu', data=data, ddp=True, callbacks=[_Crash()]).fit()
    except KeyboardInterrupt: pass
    tr = Trainer(_cfg(**CFGS['dst']), folder, device='cpu', data=data, ddp=True)
    res['resumed_at'], res['folder_is_none'] = tr.epoch, tr.folder is None
    tr.fit()
    res['resumed'] = {k: v.clone() for k, v in tr.model.state_dict().items()}
    res['files'] = sorted(p.name for p in folder.iterdir())
    try: Trainer(_cfg(batch_size=33), device='cpu', data=data, ddp=True)
    except Exception as e: res['batch_error'] = f'{type(e).__name__}: {e}'
    tr = Trainer(_cfg(**CFGS['dst'], growth='random'), device='cpu', data=data, ddp=True)
    if env.rank == 1: tr.sparse.growth_gen.manual_seed(12345)
    try: tr.fit()
    except D.MaskSyncError as e: res['desync'] = str(e)
    return res


@pytest.fixture(scope='module')
def dp():
    return run_ranks('_data_parallel')


def _close(a, b, atol=1e-5): return max((a[k] - b[k]).abs().max().item() for k in a) <= atol


@pytest.mark.parametrize('name', list(CFGS))
def test_two_ranks_match_one_process_with_the_same_global_batch(dp, name):
    r0, r1 = dp[0][name], dp[1][name]
    single = dp[0][f'{name}_single']
    for k in r0['state']: assert torch.equal(r0['state'][k], r1['state'][k]), k
    assert _close(r0['state'], single['state']), name
    assert r0['metrics']['steps'] == single['metrics']['steps'] == 16
    assert abs(r0['history'].train_loss - single['history'].train_loss).max() < 1e-5
    assert r0['history'].val_acc.tolist() == single['history'].val_acc.tolist()


def test_masks_identical_on_both_ranks_after_init_and_every_update(dp):
    r0, r1, single = dp[0]['dst'], dp[1]['dst'], dp[0]['dst_single']
    assert r0['syncs'] == r1['syncs'] == [0, 3, 6, 9, 12, 15]
    assert len(r0['masks']) == 6 and r0['masks'] == r1['masks'] == single['masks']
    assert len(set(r0['masks'])) == 6


def test_distributed_evaluation_gathers_exactly_n_predictions(dp):
    single = dp[0]['dst_single']
    for r in (0, 1):
        pred = dp[r]['dst']['pred']
        assert pred.shape == (101, 10)
        assert torch.allclose(pred, single['pred'], atol=1e-5)
        assert torch.equal(pred.argmax(1), single['pred'].argmax(1))
        assert dp[r]['dst']['val']['acc'] == single['val']['acc']


def test_resume_under_ddp_is_exact_and_only_rank0_writes(dp):
    assert dp[0]['resumed_at'] == dp[1]['resumed_at'] == 1
    assert (dp[0]['folder_is_none'], dp[1]['folder_is_none']) == (False, True)
    assert dp[0]['files'] == ['checkpoint.prev.pt', 'checkpoint.pt', 'config.json', 'history.csv', 'metrics.json', 'ticket.pt']
    for k, v in dp[0]['dst']['state'].items(): assert torch.equal(dp[0]['resumed'][k], v), k


def test_global_batch_must_divide_and_desync_stops_training(dp):
    for r in dp: assert r['batch_error'].startswith('ConfigError: batch_size 33 is the global batch') and 'use 32' in r['batch_error']
    for r in dp: assert 'masks differ across ranks at step 3 ' in r['desync']


def test_torchrun_tiny_run(tmp_path):
    launcher = [str(BIN/'torchrun')] if (BIN/'torchrun').exists() else [sys.executable, '-m', 'torch.distributed.run']
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'FREETICKETS_DEVICE': 'cpu'}
    r = subprocess.run([*launcher, '--standalone', '--nproc_per_node', '2', '-m', 'freetickets_nb.train', '--tiny', '--out', str(tmp_path)],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    run, = tmp_path.glob('dst/*')
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob('*')) == ['dst', f'dst/{run.name}'] + [
        f'dst/{run.name}/{f}' for f in ('checkpoint.prev.pt', 'checkpoint.pt', 'config.json', 'history.csv', 'metrics.json', 'ticket.pt')]
    metrics = json.loads((run/'metrics.json').read_text())
    assert metrics['epochs'] == 3 and 0.8 < metrics['test_acc'] <= 1
    out = r.stdout
    assert 'data-parallel on 2 ranks (gloo, cpu): global batch 32 = 2 × 16' in out
    assert out.count('run dst/') == 1 and out.count('epoch 1 ') == 1, out
    m = re.search(r'masks in sync on 2 ranks at the start and after (\d+) topology updates \(checksums compared\): ([0-9a-f]{16})', out)
    assert m and int(m[1]) == metrics['steps'] // 10, out
    from freetickets_nb.masks import Masks
    ck = torch.load(run/'checkpoint.pt', weights_only=True)
    assert Masks.from_state_dict(ck['sparse']['masks']).checksum() == m[2]
    assert 'Traceback' not in r.stderr


def _children(pid: int) -> list:
    "pids of the processes started by `pid` (Linux /proc)"
    kids = []
    for task in Path(f'/proc/{pid}/task').iterdir():
        kids += [int(k) for k in (task/'children').read_text().split()]
    return kids


def _rank_of(pid: int) -> int | None:
    env = dict(kv.split('=', 1) for kv in Path(f'/proc/{pid}/environ').read_bytes().decode(errors='replace').split('\0') if '=' in kv)
    return int(env['RANK']) if 'RANK' in env else None


@pytest.mark.skipif(not Path('/proc/self/task').exists(), reason='finds the worker processes through /proc')
def test_sigterm_to_one_rank_stops_every_rank_cleanly_and_resumes_exactly(tmp_path):
    "only rank 1 gets SIGTERM: the ranks agree on the stop (no rank waits alone in a collective), rank 0 writes the mid-epoch checkpoint"
    launcher = [str(BIN/'torchrun')] if (BIN/'torchrun').exists() else [sys.executable, '-m', 'torch.distributed.run']
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'FREETICKETS_DEVICE': 'cpu'}
    cmd = lambda out: [*launcher, '--standalone', '--nproc_per_node', '2', '-m', 'freetickets_nb.train', '--dataset', 'digits', '--epochs', '8',
                       '--batch-size', '32', '--lr-schedule', 'cosine', '--update-frequency', '10', '--out', str(out)]
    ref = subprocess.run(cmd(tmp_path/'ref'), env=env, capture_output=True, text=True, timeout=300)
    assert ref.returncode == 0, ref.stderr[-3000:]
    p = subprocess.Popen(cmd(tmp_path/'run'), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while not list((tmp_path/'run').glob('dst/*/checkpoint.pt')) and time.time() - t0 < 120: time.sleep(0.02)
    workers = {_rank_of(k): k for k in _children(p.pid)}
    os.kill(workers[1], signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode != 0 and 'Timeout' not in err and 'timed out' not in err, err[-3000:]
    assert err.count('stopped: SIGTERM received') == 2, err[-3000:]  # both ranks stopped, each with its one line
    run_dir, = (tmp_path/'run').glob('dst/*')
    ck = torch.load(run_dir/'checkpoint.pt', weights_only=True)
    assert ck['epoch'] < 8
    r = subprocess.run(cmd(tmp_path/'run'), env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    ref_dir, = (tmp_path/'ref').glob('dst/*')
    assert json.loads((ref_dir/'metrics.json').read_text()) == json.loads((run_dir/'metrics.json').read_text())
    a, b = (torch.load(d/'ticket.pt', weights_only=True)['model'] for d in (ref_dir, run_dir))
    assert all(torch.equal(a[k], b[k]) for k in a)
    h_ref, h = ((d/'history.csv').read_text() for d in (ref_dir, run_dir))
    assert h_ref == h  # also the training loss of the interrupted epoch: its partial sums are over all ranks
