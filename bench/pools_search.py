"""Batched vs sequential evaluation of one Lottery Pools α grid.

One trial of the greedy search builds the 11 soups (1−α)·θ_cur + α·θ_cand, re-prunes each to the
target's exact count, recalibrates BatchNorm and scores validation accuracy. `SoupEvaluator(batched=True)`
does the whole grid in one vmapped pass (stacked parameters and BN buffers, `torch.func.functional_call`);
`batched=False` is the sequential fallback. The two are timed alternately in one process (so both see
the same machine state); the ratio sequential / batched is the speed-up.

    python -m bench.pools_search [--quick] [--device cuda]
"""
from __future__ import annotations
import torch
from freetickets_nb.core import get_device
from freetickets_nb.data import get_dataset
from freetickets_nb.masks import apply_mask_policy
from freetickets_nb.models import tiny_bn_net
from freetickets_nb.pools import INTERPOLATION_ALPHAS, SoupEvaluator
from bench._timing import alternate, compare, result, run_main, sync_fn, write_result


def _tickets(width, device):
    "Two random networks of `tiny_bn_net(width)`, the first pruned to 20 % density (the target)"
    torch.manual_seed(0)
    a, b = tiny_bn_net(width=width).to(device), tiny_bn_net(width=width).to(device)
    names = [n for n, p in a.named_parameters() if p.dim() > 1]
    sa = a.state_dict()
    k = round(0.2 * sum(sa[n].numel() for n in names))
    return apply_mask_policy(sa, 'reprune', names=names, k=k)[0], b.state_dict(), names, k, a


CASES = (dict(width=8, batch_size=128), dict(width=8, batch_size=32), dict(width=16, batch_size=128))


def time_case(width:int, batch_size:int, dev, repeats:int, bn_samples:int=512)->dict:
    "A result row for one α-grid trial, batched (A) and sequential (B) measured alternately"
    data = get_dataset('digits')
    cur, cand, names, k, model = _tickets(width, dev)
    bn = data.loader('train', batch_size, device=dev, shuffle=False, augment=False)
    val = data.loader('val', batch_size, device=dev)
    nb = max(1, bn_samples // batch_size)
    evs = {m: SoupEvaluator(model, bn, val, bn_batches=nb, batched=m == 'batched') for m in ('batched', 'sequential')}
    alphas = list(INTERPOLATION_ALPHAS)
    scores = {m: ev.trial(cur, cand, alphas, k, names)[0] for m, ev in evs.items()}  # warm-up and agreement check
    times = alternate({m: (lambda ev=ev: ev.trial(cur, cand, alphas, k, names)) for m, ev in evs.items()}, repeats, sync_fn(dev), warmup=0)
    same = max(abs(a - b) for a, b in zip(scores['batched'], scores['sequential'])) < 1e-9
    return compare(f'tiny_bn_net(width={width}), batch {batch_size}', 'batched (vmap)', 'sequential',
                   times['batched'], times['sequential'], ('>=', 1.0), note=f'{nb} BN batches; same scores: {same}')


def run(quick:bool=False, device:str|None=None, repeats:int|None=None, out=None)->dict:
    "Time batched vs sequential α-grid trials for each case in `CASES`; write and return the result"
    dev = get_device(device or 'cpu')
    repeats = repeats or (3 if quick else 15)
    rows = [time_case(**c, dev=dev, repeats=repeats) for c in (CASES[:1] if quick else CASES)]
    res = result('pools_search', dev, rows, quick=quick,
                 what='seconds per trial of the greedy search: 11 soups, re-prune to exact k (20% density), BN recalibration '
                      'on 512 training samples, accuracy on the 144 digits validation samples; batched (vmap) vs sequential',
                 dataset='digits', alphas=len(INTERPOLATION_ALPHAS), repeats=repeats)
    write_result(res, out)
    return res


def main(argv=None): run_main(run, __doc__, argv)


if __name__ == '__main__': main()
