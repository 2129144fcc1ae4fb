"""Run the benchmark suite and write `bench/results/<name>_<device>.json` plus `bench/results/SUMMARY.md`.

    python -m bench [--quick] [--device cpu|cuda] [--only masking_overhead,ensemble_eval] [--compile]

`make bench` runs `python -m bench` (CPU, full size: a few minutes on 2 cores). `--quick` is a smoke
test of every benchmark in about a minute; its results go to `bench/results/quick/` (git-ignored) so
they never replace the committed full-size results. The summary gathers every result file of the
output folder, so CPU and GPU results committed at different times appear side by side.
"""
from __future__ import annotations
import argparse, importlib, os, sys, time, traceback
import torch
from pathlib import Path
from freetickets_nb.core import get_device
from freetickets_nb.safety import load_json, save_json
from bench._timing import RESULTS, fmt_value

BENCHMARKS = ('data_pipeline', 'data_stream', 'masking_overhead', 'ensemble_eval', 'pools_search', 'profile_demo', 'wrn_mfu', 'study_e2e',
              'imagenet_cost')
CPU_ONLY, GPU_MODELS = ('profile_demo', 'study_e2e'), {'masking_overhead': 'resnet18'}


def run_one(name:str, quick:bool, device:str, out_dir:Path, compile:bool=False)->dict:
    "Run benchmark `name` on `device`, add its wall time to its JSON and return the result"
    mod = importlib.import_module(f'bench.{name}')
    kw = dict(quick=quick, device=device, out=out_dir / f'{name}_{get_device(device).type}.json')
    if name in GPU_MODELS and get_device(device).type == 'cuda': kw['model'] = GPU_MODELS[name]
    if name == 'wrn_mfu': kw['compile'] = compile
    t = time.perf_counter()
    res = mod.run(**kw)
    res['wall_seconds'] = round(time.perf_counter() - t, 1)
    save_json(res, kw['out'])
    return res


def _ratio(r:dict)->str: return f"{r['median']:.3g} [{r['min']:.3g}–{r['max']:.3g}]"
def _target(t)->str: return f"{'≥' if t[0] == '>=' else '≤'} {t[1]:g}" if t else '—'
def _met(m)->str: return '—' if m is None else ('yes' if m else '**no**')


def summary_markdown(out_dir:Path=RESULTS)->str:
    "Markdown tables of every `*_cpu.json` / `*_cuda.json` result in `out_dir`, one section per device"
    lines = ['# Benchmark results', '',
             "Each benchmark times two implementations **A** and **B** of the same work alternately in one process "
             "(order reversed every repeat). Ratio = B's time / A's time for the same work, per repeat: median [min–max] "
             "over repeats; > 1 means A is faster. A and B show medians (time per step or images/s). "
             'Reproduce with `make bench` (CPU) or `python -m bench --device cuda`; details in each JSON file.', '']
    for dev in ('cpu', 'cuda'):
        files = sorted(out_dir.glob(f'*_{dev}.json'))
        if not files: continue
        results = [load_json(f) for f in files]
        m = results[0]['machine']
        wall = sum(r.get('wall_seconds', 0) for r in results)
        loads = ', '.join(f"{r['benchmark']} {r['machine']['load_average'][0]:g}" for r in results if r['machine'].get('load_average')) or 'n/a'
        lines += [f"## {dev.upper()}: {m['device_name']}", '',
                  f"torch {m['torch']}, torchvision {m['torchvision']}, {m['cores']} cores, {m['threads']} threads "
                  f"(OMP_NUM_THREADS={m['omp_num_threads']}){', CUDA ' + m['cuda'] if m.get('cuda') else ''}. "
                  f"Suite wall time {wall / 60:.1f} min; load average at the start of each benchmark: {loads}.", '',
                  '| benchmark | case | A | B | ratio B/A median [min–max] | target | met? | note |',
                  '| --- | --- | --- | --- | --- | --- | --- | --- |']
        skipped, pages = [], []
        for r in results:
            if r.get('skipped'): skipped.append(f"- `{r['benchmark']}`: skipped ({r['skipped']})")
            if (out_dir / f"{r['benchmark']}_{dev}.md").exists(): pages.append(f"- `{r['benchmark']}`: see [{r['benchmark']}_{dev}.md]({r['benchmark']}_{dev}.md)")
            for row in r['rows']:
                a = f"{row['a']}: {fmt_value(row['a_value']['median'], row['unit'])}"
                b = f"{row['b']}: {fmt_value(row['b_value']['median'], row['unit'])}"
                cells = [r['benchmark'], row['case'], a, b, _ratio(row['ratio']), _target(row['target']), _met(row['met']), row.get('note', '')]
                lines.append('| ' + ' | '.join(str(c).replace('|', '\\|') for c in cells) + ' |')
        lines += [''] + pages + skipped + ([''] if pages or skipped else [])
    return '\n'.join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(prog='python -m bench', description=__doc__.splitlines()[0])
    p.add_argument('--quick', action='store_true', help='small sizes, about a minute; results under bench/results/quick/')
    p.add_argument('--device', default='cpu', help='cpu (default) or cuda')
    p.add_argument('--only', default=None, help=f"comma-separated subset of {','.join(BENCHMARKS)}")
    p.add_argument('--compile', action='store_true', help='wrn_mfu: also time a torch.compile-d model (GPU)')
    p.add_argument('--out', default=None, help='results folder (default: bench/results, or bench/results/quick with --quick)')
    a = p.parse_args(argv)
    out = Path(a.out) if a.out else RESULTS / 'quick' if a.quick else RESULTS
    dev = get_device(a.device).type
    names = a.only.split(',') if a.only else [n for n in BENCHMARKS if not (dev != 'cpu' and n in CPU_ONLY)]
    bad = sorted(set(names) - set(BENCHMARKS))
    if bad: p.error(f"unknown benchmark(s) {bad}: choose from {', '.join(BENCHMARKS)}")
    load = os.getloadavg()[0] if hasattr(os, 'getloadavg') else 0.0
    if dev == 'cpu' and torch.get_num_threads() > 1 and load > 0.5:
        print(f'warning: load average {load:.2f} with {torch.get_num_threads()} threads: on a busy machine every multi-threaded op waits '
              'for a free core, which penalises many-small-op code (the on-device loader, small MLPs) far more than one-thread code '
              '(PIL workers); use an idle machine, or OMP_NUM_THREADS=1', file=sys.stderr)
    failed, t0 = [], time.perf_counter()
    for n in names:
        print(f'== {n} ({dev}{", quick" if a.quick else ""})', flush=True)
        try: res = run_one(n, a.quick, a.device, out, a.compile)
        except Exception:
            traceback.print_exc(); failed.append(n); continue
        print(f"   {res['wall_seconds']:.1f} s", flush=True)
    (out / 'SUMMARY.md').write_text(summary_markdown(out))
    print(f'\n{(out / "SUMMARY.md").read_text()}\nsuite: {time.perf_counter() - t0:.0f} s' + (f'; FAILED: {failed}' if failed else ''))
    sys.exit(1 if failed else 0)


if __name__ == '__main__': main()
