"""Shared measurement helpers of the `bench/` suite.

Every benchmark compares implementations of the same work **alternately in one process**: after a
warm-up of each, the implementations run one block each per repeat, in an order that reverses every
repeat, so all of them see the same machine state (thermal, cache, other processes on a shared
machine). A benchmark reports the min / median / max seconds of each implementation and, for a pair
(A, B), the ratio **B's time / A's time** computed per repeat (the two blocks of one repeat ran back to
back), summarised by its median and min–max. A ratio above 1 means A is faster.
"""
from __future__ import annotations
import os, platform, statistics, sys, time
from pathlib import Path
from typing import Callable
import torch
from freetickets_nb.core import get_device
from freetickets_nb.safety import save_json

RESULTS = Path(__file__).parent / 'results'


def sync_fn(device)->Callable:
    "A function that waits for the device's queued work (a no-op on CPU)"
    dev = get_device(device)
    return (lambda: torch.cuda.synchronize(dev)) if dev.type == 'cuda' else (lambda: None)


def cpu_model()->str:
    "The CPU model name from /proc/cpuinfo (or `platform`)"
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'): return line.split(':', 1)[1].strip()
    except OSError: pass
    return platform.processor() or platform.machine()


def machine_info(device)->dict:
    "CPU model, cores, threads, torch / torchvision / Python versions, the device name and the load average (1, 5, 15 min)"
    dev = get_device(device)
    try: import torchvision; tv = torchvision.__version__
    except ImportError: tv = None
    return dict(device=str(dev), device_name=torch.cuda.get_device_name(dev) if dev.type == 'cuda' else f'{cpu_model()} (CPU)',
                cpu=cpu_model(), cores=os.cpu_count(), threads=torch.get_num_threads(),
                omp_num_threads=os.environ.get('OMP_NUM_THREADS'), torch=torch.__version__, torchvision=tv,
                cuda=torch.version.cuda if dev.type == 'cuda' else None, python=platform.python_version(), platform=sys.platform,
                load_average=[round(x, 2) for x in os.getloadavg()] if hasattr(os, 'getloadavg') else None)


def train_step(net, opt, x, y, bf16:bool=False, step:bool=True):
    "One SGD training step of `net` on `(x, y)`: forward (bf16 autocast when asked), cross-entropy, backward, optimiser step"
    opt.zero_grad(set_to_none=True)
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16): out = net(x)
    torch.nn.functional.cross_entropy(out.float(), y).backward()
    if step: opt.step()


def time_block(f:Callable, sync:Callable)->float:
    "Seconds that `f()` takes, with the device synchronised before and after"
    sync(); t = time.perf_counter(); f(); sync()
    return time.perf_counter() - t


def alternate(impls:dict, # name → callable running one block of work
              repeats:int, # timed blocks per implementation
              sync:Callable=lambda: None, # device synchronisation (see `sync_fn`)
              warmup:int=1, # untimed blocks per implementation first
             )->dict:
    "Name → list of `repeats` block times, the implementations alternated in an order that reverses every repeat"
    names = list(impls)
    for _ in range(warmup):
        for n in names: impls[n]()
    times = {n: [] for n in names}
    for r in range(repeats):
        for n in (names if r % 2 == 0 else names[::-1]): times[n].append(time_block(impls[n], sync))
    return times


def summary(xs:list, scale:float=1.0)->dict:
    "min / median / max of `xs`, each divided by `scale` (e.g. seconds per block → seconds per step)"
    return dict(min=min(xs) / scale, median=statistics.median(xs) / scale, max=max(xs) / scale)


def paired_ratio(num:list, den:list)->dict:
    "median / min / max over repeats of `num[i] / den[i]` (blocks of one repeat ran back to back)"
    return summary([n / d for n, d in zip(num, den)])


def target_met(ratio:float, target:tuple|None)->bool|None:
    "Whether `ratio` meets `target = ('>=' | '<=', value)`; None without a target"
    if target is None: return None
    op, v = target
    return bool(ratio >= v) if op == '>=' else bool(ratio <= v)


def compare(case:str, # what is measured, e.g. 'mlp, M=3'
            a:str, b:str, # names of implementations A and B
            ta:list, tb:list, # their block times (same repeats, alternated)
            target:tuple|None=None, # ('>=', 3.0) or ('<=', 1.05) on the median ratio B/A
            unit:str='s', per:float=1.0, # report A and B as `per / seconds` in `unit` (e.g. images/s), or seconds when `unit='s'`
            note:str='')->dict:
    "One result row: A and B values, the paired ratio B/A and whether its median meets `target`"
    val = (lambda ts: summary(ts, per)) if unit == 's' else (lambda ts: {k: per / v for k, v in summary(ts).items()})
    r = paired_ratio(tb, ta)
    return dict(case=case, a=a, b=b, unit=unit, a_value=val(ta), b_value=val(tb), ratio=r,
                target=list(target) if target else None, met=target_met(r['median'], target), note=note)


def result(name:str, device, rows:list, what:str, quick:bool, **details)->dict:
    "The JSON document of one benchmark: name, definition, machine, rows and details"
    return dict(benchmark=name, what=what, ratio_definition="B's time / A's time per unit of work (> 1: A is faster)",
                quick=quick, machine=machine_info(device), rows=rows, **details)


def write_result(res:dict, out=None)->Path:
    "Write `res` to `out` (default `bench/results/<benchmark>_<device type>.json`; quick runs under `results/quick/`)"
    dev = get_device(res['machine']['device']).type
    path = Path(out) if out else (RESULTS / ('quick' if res['quick'] else '.') / f"{res['benchmark']}_{dev}.json")
    return save_json(res, path)


def fmt_value(v:float, unit:str)->str:
    "A compact number with its unit: ms for seconds, k/M suffixes for rates"
    if unit == 's': return f'{v * 1e3:.3g} ms' if v < 1 else f'{v:.3g} s'
    for div, suf in ((1e6, 'M'), (1e3, 'k')):
        if abs(v) >= div: return f'{v / div:.3g}{suf} {unit}'
    return f'{v:.3g} {unit}'


def fmt_row(row:dict)->str:
    "One line of a console report for a `compare` row"
    r, t = row['ratio'], row['target']
    tgt = f" (target {'≥' if t[0] == '>=' else '≤'} {t[1]}: {'met' if row['met'] else 'NOT met'})" if t else ''
    return (f"{row['case']}: A {row['a']} {fmt_value(row['a_value']['median'], row['unit'])}, B {row['b']} "
            f"{fmt_value(row['b_value']['median'], row['unit'])}, B/A {r['median']:.3f} [{r['min']:.3f}–{r['max']:.3f}]{tgt}")


def bench_parser(doc:str, device_help:str='cpu (default) or cuda', out_help:str|None=None):
    "The command line every benchmark module shares: `--quick`, `--device`, `--out` (add its own flags to the returned parser)"
    import argparse
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument('--quick', action='store_true', help='small sizes, a few seconds, for smoke tests')
    p.add_argument('--device', default=None, help=device_help)
    p.add_argument('--out', default=None, help=out_help or 'JSON output path (default: bench/results/<benchmark>_<device>.json)')
    return p


def run_main(run:Callable, doc:str, argv=None):
    "The whole command line of a benchmark without flags of its own: `run(quick, device, out=)`, one line per row"
    a = bench_parser(doc).parse_args(argv)
    for row in run(a.quick, a.device, out=a.out)['rows']: print(fmt_row(row))
