"""Batched vs sequential evaluation of one Lottery Pools α grid.

One trial of the greedy search builds the 11 soups (1−α)·θ_cur + α·θ_cand, re-prunes each to the
target's exact count, recalibrates BatchNorm and scores validation accuracy. `SoupEvaluator(batched=True)`
does the whole grid in one vmapped pass (stacked parameters and BN buffers, `torch.func.functional_call`);
`batched=False` is the sequential fallback. The two are timed alternately in one process (so both see
the same machine state) and the ratio of medians is the speed-up.

    python -m bench.pools_search [--quick] [--device cuda]
"""
from __future__ import annotations
import argparse, json, os, platform, statistics, time
from pathlib import Path
import torch
from freetickets_nb.core import get_device, save_json
from freetickets_nb.data import get_dataset
from freetickets_nb.pools import INTERPOLATION_ALPHAS, SoupEvaluator, tiny_bn_net, topk_masks, apply_masks

RESULTS = Path(__file__).parent / 'results'


def _tickets(width, device):
    "Two random networks of `tiny_bn_net(width)`, the first pruned to 20 % density (the target)"
    torch.manual_seed(0)
    a, b = tiny_bn_net(width=width).to(device), tiny_bn_net(width=width).to(device)
    names = [n for n, p in a.named_parameters() if p.dim() > 1]
    sa = a.state_dict()
    k = round(0.2 * sum(sa[n].numel() for n in names))
    masks = topk_masks(sa, names, k)
    return apply_masks(sa, masks), b.state_dict(), names, k, a


def _time(f, sync):
    sync(); t = time.perf_counter(); f(); sync()
    return time.perf_counter() - t


CASES = (dict(width=8, batch_size=128), dict(width=8, batch_size=32), dict(width=16, batch_size=128))


def time_case(width:int, batch_size:int, dev, repeats:int, bn_samples:int=512)->dict:
    "Median/min/max seconds of one 11-value α grid trial, batched and sequential measured alternately"
    data = get_dataset('digits')
    cur, cand, names, k, model = _tickets(width, dev)
    bn = data.loader('train', batch_size, device=dev, shuffle=False, augment=False)
    val = data.loader('val', batch_size, device=dev)
    nb = max(1, bn_samples // batch_size)
    evs = {m: SoupEvaluator(model, bn, val, bn_batches=nb, batched=m == 'batched') for m in ('batched', 'sequential')}
    alphas = list(INTERPOLATION_ALPHAS)
    sync = torch.cuda.synchronize if dev.type == 'cuda' else (lambda: None)
    scores = {m: ev.trial(cur, cand, alphas, k, names)[0] for m, ev in evs.items()}  # warm-up and agreement check
    times = {m: [] for m in evs}
    for _ in range(repeats):
        for m, ev in evs.items(): times[m].append(_time(lambda: ev.trial(cur, cand, alphas, k, names), sync))
    st = {m: dict(min=min(v), median=statistics.median(v), max=max(v)) for m, v in times.items()}
    return dict(model=f'tiny_bn_net(width={width})', batch_size=batch_size, bn_batches=nb, val_samples=len(data.val),
                seconds={m: {s: round(x, 6) for s, x in d.items()} for m, d in st.items()},
                speedup_median=round(st['sequential']['median'] / st['batched']['median'], 3),
                speedup_min=round(st['sequential']['min'] / st['batched']['min'], 3),
                same_scores=max(abs(a - b) for a, b in zip(scores['batched'], scores['sequential'])) < 1e-9)


def run(quick:bool=False, device:str|None=None, repeats:int|None=None, out:str|Path|None=None)->dict:
    "Time batched vs sequential α-grid trials for each case in `CASES`; write and return the summary"
    dev = get_device(device or 'cpu')
    repeats = repeats or (3 if quick else 15)
    cases = [time_case(**c, dev=dev, repeats=repeats) for c in (CASES[:1] if quick else CASES)]
    res = dict(benchmark='pools_search',
               what='one trial of the greedy search: 11 soups, re-prune to exact k (20% density), BN recalibration '
                    'on 512 training samples, accuracy on the 144 digits validation samples; batched (vmap) vs sequential, '
                    'timed alternately; speed-up = sequential / batched',
               dataset='digits', alphas=len(INTERPOLATION_ALPHAS), repeats=repeats, quick=quick, device=str(dev),
               machine=torch.cuda.get_device_name(dev) if dev.type == 'cuda' else f'{platform.machine()} CPU ({os.cpu_count()} cores)',
               torch=torch.__version__, threads=torch.get_num_threads(), omp_num_threads=os.environ.get('OMP_NUM_THREADS'),
               speedup_median=cases[0]['speedup_median'], cases=cases)
    path = Path(out) if out else RESULTS / f'pools_search_{dev.type}.json'
    save_json(res, path)
    return res


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--quick', action='store_true')
    p.add_argument('--device', default=None)
    a = p.parse_args()
    print(json.dumps(run(a.quick, a.device), indent=1))
