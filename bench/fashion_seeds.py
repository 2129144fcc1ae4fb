"""FreeTickets on Fashion-MNIST: the `fashion` study for several seeds, gathered into one results file.

Runs `ft-study --preset fashion --seed S` for every seed (the FreeTickets methods; `--lottery-seeds`
also the lottery-pools method; `--random-seeds` an extra EDST-only study with random exploration
regrowth, as in the authors' scripts) into `runs/bench/fashion_*` (kept: a second call reuses the
finished runs), `--parallel` studies at a time with one thread each (ft-study's default on a CPU), and
writes `bench/results/fashion_seeds.json`: each study's table (`results.csv`), loss barriers
(`barriers.csv`), command line and wall time (measured with the other studies running beside it).
README's "FreeTickets on Fashion-MNIST" section is rendered from this file (`report.fashion_section`).

    python -m bench.fashion_seeds [--seeds 0,1,2] [--lottery-seeds 0] [--random-seeds 0] [--parallel 3]

With `--collect` nothing is trained: the existing study folders are read.
"""
from __future__ import annotations
import argparse, json, os, subprocess, sys, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
import pandas as pd
from freetickets_nb.plan import FREETICKETS_METHODS, DEFAULT_METHODS
from freetickets_nb.safety import save_json
from bench._timing import RESULTS, machine_info

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ['method', 'members', 'density', 'acc', 'nll', 'ece', 'brier', 'ood_auroc',
           'corruption_acc', 'disagreement', 'kl', 'train_flops_x_dense']


def study_cmd(seed:int, out:Path, kind:str)->list:
    "The `ft-study` command of one seed; `kind`: 'freetickets', 'lottery' (adds lottery-pools) or 'random'"
    methods = {'lottery': DEFAULT_METHODS, 'freetickets': FREETICKETS_METHODS,
               'random': ('edst-ensemble',)}[kind]
    extra = ['--explore-growth', 'random'] if kind == 'random' else []
    return ['ft-study', '--preset', 'fashion', '--seed', str(seed), '--methods', ','.join(methods),
            *extra, '--out', str(out)]


def run_seed(seed:int, root:Path, kind:str, collect:bool)->dict:
    "Run (unless `collect`) and read the study of one seed"
    name = f'fashion_s{seed}' + ('_random' if kind == 'random' else '')
    out, cmd = root/name, study_cmd(seed, root/name, kind)
    wall = None
    if not collect:
        t = time.perf_counter()
        exe = [sys.executable, '-m', 'freetickets_nb.study', *cmd[1:]]
        env = {**os.environ, 'MPLBACKEND': 'Agg', 'OMP_NUM_THREADS': '1'}
        r = subprocess.run(exe, env=env, capture_output=True, text=True)
        if r.returncode: raise RuntimeError(f'seed {seed} failed: {r.stderr[-2000:]}')
        wall = round(time.perf_counter() - t, 1)
    table = pd.read_csv(out/'results.csv')
    bar = pd.read_csv(out/'barriers.csv') if (out/'barriers.csv').exists() else pd.DataFrame()
    res = json.loads((out/'results.json').read_text())
    return dict(seed=seed, kind=kind, command=' '.join(cmd[:-2]), wall_seconds=wall,
                table=json.loads(table[[c for c in COLUMNS if c in table]].to_json(orient='records')),
                barriers=json.loads(bar.to_json(orient='records')),
                seconds=res.get('seconds'), config=res.get('config'))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--seeds', default='0,1,2')
    p.add_argument('--lottery-seeds', default='0', help='seeds whose study adds lottery-pools')
    p.add_argument('--random-seeds', default='0', help='seeds that also get an EDST study with random regrowth')
    p.add_argument('--parallel', type=int, default=3, help='studies run at the same time')
    p.add_argument('--root', default=str(ROOT/'runs'/'bench'))
    p.add_argument('--collect', action='store_true', help='only read the existing study folders')
    p.add_argument('--out', default=str(RESULTS/'fashion_seeds.json'))
    a = p.parse_args()
    seeds = [int(s) for s in a.seeds.split(',')]
    lot = {int(s) for s in a.lottery_seeds.split(',') if s}
    rnd = [int(s) for s in a.random_seeds.split(',') if s]
    machine = machine_info('cpu')
    jobs = [(s, 'lottery' if s in lot else 'freetickets') for s in seeds] + [(s, 'random') for s in rnd]
    with ThreadPoolExecutor(max(1, a.parallel)) as ex:
        studies = list(ex.map(lambda j: run_seed(j[0], Path(a.root), j[1], a.collect), jobs))
    for st in studies: print(f"seed {st['seed']} ({st['kind']}): {st['wall_seconds']} s", flush=True)
    prev = json.loads(Path(a.out).read_text()) if a.collect and Path(a.out).exists() else {}
    if a.collect and prev: # keep the wall times measured when the studies trained
        walls = {(st['seed'], st['kind']): st['wall_seconds'] for st in prev.get('studies', [])}
        for st in studies: st['wall_seconds'] = walls.get((st['seed'], st['kind']))
        machine = prev.get('machine', machine)
    save_json(dict(benchmark='fashion_seeds', machine=machine, seeds=seeds,
                   lottery_seeds=sorted(lot), random_seeds=rnd,
                   parallel=a.parallel, threads=1, studies=studies), a.out)
    print(f"wrote {a.out}")


if __name__ == '__main__': main()
