"""End-to-end wall time of `ft-study` presets on this machine.

Runs `ft-study --preset demo` (and, with `--full`, `--preset fashion`) in a fresh temporary folder, as
`make demo` does after installation, and records the wall time and each method's share from the
study's own `results.json`. There is no A/B pair here: the figure is an absolute time, and the
target is the issue's (demo ≤ 5 minutes on a 2-core CPU). The page `study_e2e_<device>.md` lists
the times; `make bench` runs the demo only (the fashion preset takes 15–20 minutes on 2 cores).

    python -m bench.study_e2e [--full] [--device cpu]
"""
from __future__ import annotations
import argparse, json, os, subprocess, sys, tempfile, time
from pathlib import Path
from freetickets_nb.core import atomic_write, get_device
from bench._timing import RESULTS, result, write_result

TARGETS = {'demo': 300.0} # seconds


def time_preset(preset:str, device:str, extra=())->dict:
    "Wall time of one fresh `ft-study --preset <preset>` run and the per-method seconds it reports"
    with tempfile.TemporaryDirectory() as d:
        cmd = [sys.executable, '-m', 'freetickets_nb.study', '--preset', preset, '--out', str(Path(d)/preset), '--device', device, *extra]
        t = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, 'MPLBACKEND': 'Agg'})
        wall = time.perf_counter() - t
        if r.returncode: raise RuntimeError(f'{preset} study failed: {r.stderr[-2000:]}')
        res = json.loads((Path(d)/preset/'results.json').read_text())
    return dict(preset=preset, wall_seconds=round(wall, 1), target_seconds=TARGETS.get(preset),
                met=None if preset not in TARGETS else wall <= TARGETS[preset],
                methods={k: round(v, 1) for k, v in res['seconds'].items()}, accuracy={x['method']: x['acc'] for x in res['results']})


def markdown(res:dict)->str:
    m = res['machine']
    lines = [f"# End-to-end `ft-study` wall time ({m['device_name']})", '',
             f"torch {m['torch']}, {m['cores']} cores, {m['threads']} threads (OMP_NUM_THREADS={m['omp_num_threads']}); a fresh output folder, "
             'after installation (what `make demo` runs). Reproduce: `python -m bench.study_e2e [--full]`.', '',
             '| preset | wall time | target | met? | slowest methods (s) |', '| --- | --- | --- | --- | --- |']
    for p in res['presets']:
        top = ', '.join(f'{k} {v:g}' for k, v in sorted(p['methods'].items(), key=lambda kv: -kv[1])[:3])
        tgt = f"≤ {p['target_seconds']:.0f} s" if p['target_seconds'] else '—'
        met = '—' if p['met'] is None else 'yes' if p['met'] else '**no**'
        lines.append(f"| {p['preset']} | {p['wall_seconds'] / 60:.1f} min ({p['wall_seconds']:.0f} s) | {tgt} | {met} | {top} |")
    return '\n'.join(lines) + '\n'


def run(quick:bool=False, device:str|None=None, full:bool=False, out=None)->dict:
    "Time the demo (and with `full` the fashion) preset; write the JSON and the Markdown page"
    dev = get_device(device or 'cpu')
    presets = ['demo'] + (['fashion'] if full else [])
    res = result('study_e2e', dev, [], quick=quick, what='wall time of a fresh `ft-study --preset P` run (absolute, no A/B pair)',
                 presets=[time_preset(p, str(dev)) for p in presets])
    path = write_result(res, out)
    atomic_write(path.with_suffix('.md'), markdown(res))
    return res


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--full', action='store_true', help='also time the fashion preset (15–20 minutes on 2 cores)')
    p.add_argument('--device', default='cpu')
    a = p.parse_args()
    r = run(device=a.device, full=a.full)
    print(markdown(r))
