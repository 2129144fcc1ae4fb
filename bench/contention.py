"""The demo on a busy machine: wall time idle and with one competing CPU-bound process, in one run.

Each case runs a fresh `ft-study --preset demo` (in a new temporary folder) twice, back to back:
alone (A) and while one other process spins on a core (B, `python -c "while True: pass"`); the ratio
B/A is the slowdown that contention causes. The order reverses every repeat. Cases:

- `policy`: `ft-study`'s own thread choice (`core.cpu_threads`: one thread unless the user asks),
  the whole demo -- what `make demo` runs; target B/A ≤ 2;
- the dense and DST rows only (`--methods dense,dst-ensemble`), with the policy's one thread,
  with two threads (`--threads 2`: PyTorch's default on 2 cores, what `make demo` used before), and
  with two threads under `OMP_WAIT_POLICY=PASSIVE` (threads sleep instead of spinning at barriers).

"Idle" is whatever else the machine runs (the load average is recorded): on a shared machine both
halves of a pair see the same background, which is why they run back to back.

    python -m bench.contention [--quick] [--repeats 1]
"""
from __future__ import annotations
import os, resource, subprocess, sys, tempfile, time
from pathlib import Path
from freetickets_nb.core import atomic_write, THREADS_ENV
from bench._timing import compare, result, write_result, bench_parser, fmt_row

SUBSET = ('--methods', 'dense,dst-ensemble')
CASES = { # name → (extra flags, extra environment, target on B/A)
    'policy, whole demo': ((), {}, ('<=', 2.0)),
    'policy (1 thread), dense + DST': (SUBSET, {}, ('<=', 2.0)),
    '2 threads, dense + DST': (SUBSET + ('--threads', '2'), {}, None),
    '2 threads + OMP_WAIT_POLICY=PASSIVE, dense + DST': (SUBSET + ('--threads', '2'),
                                                          {'OMP_WAIT_POLICY': 'PASSIVE'}, None),
}


def _env(extra:dict)->dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ('OMP_NUM_THREADS', THREADS_ENV, 'OMP_WAIT_POLICY')}
    return {**env, 'MPLBACKEND': 'Agg', 'PYTHONHASHSEED': '0', 'FREETICKETS_DEVICE': 'cpu', **extra}


def demo_seconds(flags:tuple, env:dict)->tuple:
    "`(wall, cpu)` seconds of one fresh `ft-study --preset demo` with `flags`"
    with tempfile.TemporaryDirectory() as d:
        cmd = [sys.executable, '-m', 'freetickets_nb.study', '--preset', 'demo', '--out',
               str(Path(d)/'demo'), *flags]
        c0, t = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True, env=_env(env))
        wall, c1 = time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN)
        if r.returncode: raise RuntimeError(f"demo {flags} failed: {r.stderr[-2000:]}")
    return wall, (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)


def contended(flags:tuple, env:dict)->tuple:
    "`demo_seconds` while one other process keeps a core busy"
    spin = subprocess.Popen([sys.executable, '-c', 'while True: pass'])
    try:
        time.sleep(0.5) # the competitor is running before the demo starts
        return demo_seconds(flags, env)
    finally:
        spin.kill(); spin.wait()


def measure(name:str, repeats:int)->dict:
    "Idle and contended runs of one case, alternated; a `compare` row (A idle, B contended)"
    flags, env, target = CASES[name]
    runs = {'idle': [], 'contended': []}
    cpu = {'idle': [], 'contended': []}
    for r in range(repeats):
        for k in (('idle', 'contended') if r % 2 == 0 else ('contended', 'idle')):
            w, c = (demo_seconds if k == 'idle' else contended)(flags, env)
            runs[k].append(w); cpu[k].append(c)
    note = (f"CPU time idle {min(cpu['idle']):.0f} s, contended {min(cpu['contended']):.0f} s; "
            f"load average {os.getloadavg()[0]:.2f}")
    row = compare(name, 'idle', 'one competing process', runs['idle'], runs['contended'], target,
                  note=note)
    return row


def markdown(res:dict)->str:
    m = res['machine']
    lines = [f"# The demo on a busy machine ({m['device_name']})", '',
             f"torch {m['torch']}, {m['cores']} cores; load average at the end "
             f"{m['load_average'][0]:g} (other jobs shared the machine: the two halves of a pair "
             "ran back to back, so both saw the same background). Each row runs a fresh `ft-study "
             "--preset demo` alone (A) and with one process spinning on a core (B); ratio = B / A. "
             'Reproduce: `python -m bench.contention`. The rows ran one after another while the '
             "machine's background load changed (load average in the note): compare the ratio and "
             'the CPU time within a row, not wall times across rows.', '',
             '| case | idle | one competing process | ratio B/A | target | met? | note |',
             '| --- | --- | --- | --- | --- | --- | --- |']
    for r in res['rows']:
        t = f"≤ {r['target'][1]:g}" if r['target'] else '—'
        met = '—' if r['met'] is None else 'yes' if r['met'] else '**no**'
        lines.append(f"| {r['case']} | {r['a_value']['median']:.1f} s | "
                     f"{r['b_value']['median']:.1f} s | {r['ratio']['median']:.2f} | {t} | {met} | "
                     f"{r['note']} |")
    return '\n'.join(lines) + '\n'


def run(quick:bool=False, device=None, out=None, repeats:int=1)->dict:
    "Measure every case (with `quick`: the dense + DST policy case only); write JSON and Markdown"
    names = list(CASES)[1:2] if quick else list(CASES)
    rows = []
    for n in names:
        rows.append(measure(n, repeats))
        print(fmt_row(rows[-1]), flush=True)
    res = result('contention', 'cpu', rows, quick=quick, repeats=repeats,
                 what='demo wall time with one competing CPU-bound process / idle')
    path = write_result(res, out)
    atomic_write(path.with_suffix('.md'), markdown(res))
    return res


if __name__ == '__main__':
    p = bench_parser(__doc__)
    p.add_argument('--repeats', type=int, default=1)
    a = p.parse_args()
    print(markdown(run(a.quick, a.device, a.out, a.repeats)))
