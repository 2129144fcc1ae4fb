"""Vectorised M-member evaluation vs a Python loop over the members.

`metrics.predict(members, data, vectorize=True)` stacks the members' states and runs one
`torch.func.functional_call` under `vmap` per batch (convolutions become grouped convolutions);
`vectorize=False` calls the members one after another. Both return the same `[M, N, C]` logits.
Timed alternately for M = 3 and 5 members of `mlp` (1×28×28 input) and `resnet20` (3×32×32) on random
inputs; ratio = loop time / vectorised time.

    python -m bench.ensemble_eval [--quick] [--device cpu]
"""
from __future__ import annotations
import torch
from freetickets_nb.core import get_device
from freetickets_nb.metrics import predict
from freetickets_nb.models import create_model
from bench._timing import alternate, compare, result, run_main, sync_fn, write_result

SHAPES = {'mlp': (1, 28), 'resnet20': (3, 32)}


def time_case(model:str, members:int, n:int, batch_size:int, dev, repeats:int)->dict:
    "A result row: `predict` with `vectorize=True` (A) and `False` (B) over the same members and inputs"
    c, s = SHAPES[model]
    ms = [create_model(model, num_classes=10, in_channels=c, image_size=s, seed=i).to(dev) for i in range(members)]
    g = torch.Generator().manual_seed(0)
    data = (torch.randn(n, c, s, s, generator=g).to(dev), torch.randint(0, 10, (n,), generator=g).to(dev))
    run = lambda v: predict(ms, data, batch_size=batch_size, device=dev, vectorize=v)
    a, b = run(True), run(False)
    assert a.meta['vectorized'] and not b.meta['vectorized']
    err = (a.logits - b.logits).abs().max().item()
    times = alternate({'vectorised': lambda: run(True), 'loop': lambda: run(False)}, repeats, sync_fn(dev), warmup=0)
    return compare(f'{model}, M={members}, {n} inputs, batch {batch_size}', 'vectorised (vmap)', 'loop over members',
                   times['vectorised'], times['loop'], ('>=', 1.0), unit='img/s', per=n, note=f'max abs logit difference {err:.1e}')


def run(quick:bool=False, device:str|None=None, repeats:int|None=None, out=None)->dict:
    "Time vectorised vs looped evaluation for mlp and resnet20 with M = 3 and 5; write and return the result"
    dev = get_device(device or 'cpu')
    cuda = dev.type == 'cuda'
    repeats = repeats or (2 if quick else 7)
    sizes = {'mlp': 2048 if quick else 10000, 'resnet20': (1024 if quick else 10000) if cuda else (128 if quick else 512)}
    rows = [time_case(m, k, sizes[m], 256, dev, repeats) for m in SHAPES for k in (3, 5)]
    res = result('ensemble_eval', dev, rows, quick=quick,
                 what='images/s of M-member evaluation (logits [M, N, C] of random inputs, eval mode) with metrics.predict: '
                      'vectorize=True (vmap over stacked states) vs vectorize=False (loop over members)',
                 sizes=sizes, batch_size=256, repeats=repeats)
    write_result(res, out)
    return res


def main(argv=None): run_main(run, __doc__, argv)


if __name__ == '__main__': main()
