"""`make demo`, recorded: a fresh `ft-study --preset demo`, its table, settings and wall time.

Runs the demo in a new temporary folder exactly as `make demo` does (ft-study's own thread choice:
one intra-op thread unless `--threads` / `$FREETICKETS_THREADS` say otherwise) and writes
`bench/results/demo.json`. README's "What `make demo` prints" is rendered from that file by
`report.demo_section` (nbs/index.ipynb), and `tests/test_readme.py` runs the demo again and checks
that README's table equals the fresh run's.

    python -m bench.demo [--out PATH]
"""
from __future__ import annotations
import argparse, json, os, subprocess, sys, tempfile, time
from pathlib import Path
from freetickets_nb.core import THREADS_ENV, cpu_threads
from freetickets_nb.plan import StudyConfig, study_data
from freetickets_nb.safety import save_json
from bench._timing import RESULTS, machine_info

COMMAND = ('ft-study', '--preset', 'demo')


def demo_env()->dict:
    "The environment of a demo as `make demo` runs it: no thread settings, no GPU, Agg plots"
    env = {k: v for k, v in os.environ.items() if k not in ('OMP_NUM_THREADS', THREADS_ENV)}
    return {**env, 'MPLBACKEND': 'Agg', 'PYTHONHASHSEED': '0', 'FREETICKETS_DEVICE': 'cpu'}


def run_demo(out:Path)->float:
    "Run `ft-study --preset demo --out out` in a fresh process; its wall seconds"
    cmd = [sys.executable, '-m', 'freetickets_nb.study', *COMMAND[1:], '--out', str(out)]
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=demo_env())
    if r.returncode: raise RuntimeError(f"the demo failed: {r.stderr[-2000:]}")
    return time.perf_counter() - t


def record(out:Path, wall:float)->dict:
    "The demo's results, settings, data sizes, wall time and machine, as stored for README"
    res = json.loads((Path(out)/'results.json').read_text())
    data = study_data(StudyConfig.from_dict(res['config']))
    m = machine_info('cpu')
    return dict(command=' '.join(COMMAND), wall_seconds=round(wall, 1), threads=cpu_threads(),
                config=res['config'], results=res['results'], seconds=res['seconds'],
                data=dict(train=len(data.train), val=len(data.val), test=len(data.test)),
                machine=dict(cpu=m['cpu'], cores=m['cores'], torch=m['torch'],
                             load_average=m['load_average']))


def main(argv=None)->dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--out', default=str(RESULTS/'demo.json'), help='the JSON file to write')
    a = p.parse_args(argv)
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as d:
        wall = run_demo(Path(d)/'demo')
        res = record(Path(d)/'demo', wall)
    res['machine']['load_average'] = [round(x, 2) for x in load] # when the demo started
    save_json(res, a.out)
    print(f"demo: {res['wall_seconds']} s -> {a.out}")
    return res


if __name__ == '__main__':
    for k in ('OMP_NUM_THREADS', THREADS_ENV): os.environ.pop(k, None) # cpu_threads() as the demo
    main()
