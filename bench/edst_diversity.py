"""EDST diversity study: when do the free tickets of one EDST run differ? (CPU, Fashion-MNIST)

FreeTickets (Liu et al., ICLR 2022; the authors' `main_EDST.py`) trains one sparse network through an
exploration phase and M refinement phases; before every refinement phase after the first, a global
exploration prunes a fraction q of each layer's active weights and regrows as many. The paper's claim is
that this moves the network to a new basin, so each phase yields a different ticket. This benchmark
measures how different the tickets are, one factor at a time around a base setting:

- q (`explore_rate`) ∈ {0.5, 0.8, 0.95}, with gradient and with random regrowth in the exploration;
- the refinement LR (the first half of each phase; the second half runs at a tenth of it);
- the refinement phase length t_re (epochs);
- a second seed of the base setting (noise).

For every setting it measures the tickets' pairwise prediction disagreement and KL, the loss barrier on
the linear path between tickets (union of masks; BN statistics recomputed where the model has BN), the
normalised mask Hamming distance, the weight distance and cosine, and the ensemble's accuracy / NLL / ECE
gain over its best member. The reference ceiling is the DST ensemble: M independent DST runs, each with
the budget of one EDST ticket (t_ex + t_re epochs), seeds s·M … s·M + M − 1.

Settings: LeNet-300-100 (`mlp`) on Fashion-MNIST (54k / 6k / 10k) and LeNet-5 (`lenet5`) on a seeded 20k
subset of the Fashion-MNIST training split (same validation and test splits). Every run and every
measured setting is cached under `--out` (default `runs/bench/edst_diversity`): a rerun resumes.
Writes `bench/results/edst_diversity.json` and `.md` (and the t-SNE / plane tables of the base run as
`edst_diversity_tsne.csv` and `edst_diversity_plane.csv`); `--quick` runs a tiny grid on digits and
writes under `bench/results/quick/`.

    OMP_NUM_THREADS=1 python -m bench.edst_diversity [--quick] [--jobs 2] [--models mlp,lenet5]
"""
from __future__ import annotations
import os, time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, fields, replace
from multiprocessing import get_context
from pathlib import Path
import numpy as np, pandas as pd, torch
from freetickets_nb.core import Config, short_hash, atomic_write, md_table, make_generator, get_device
from freetickets_nb.safety import load_json, save_json
from freetickets_nb.data import get_dataset
from freetickets_nb.train import TrainConfig, Trainer, ticket_model, load_ticket
from freetickets_nb.ensembles import EnsembleConfig, member_dir
from freetickets_nb.methods import METHODS, train_ensemble
from freetickets_nb.edst import EDSTCallback, edst_schedule
from freetickets_nb.function_space import PredictionRecorder, load_trajectory, tsne_trajectories
from freetickets_nb.landscape import plane, landscape_batches
from freetickets_nb.edst_diversity import ticket_diversity, finding
from bench._timing import RESULTS, machine_info, bench_parser

NAME = 'edst_diversity'


@dataclass(frozen=True)
class Setting(Config):
    "One point of the sweep: an EDST run (or the DST reference) and the knobs the study varies"
    model:str='mlp' # 'mlp' or 'lenet5' (data and recipe from `RECIPES`)
    method:str='edst' # 'edst', or 'dst' for the reference ensemble of independent members
    explore_rate:float=0.8 # q of the global exploration
    explore_growth:str='gradient' # regrowth of the global exploration: 'gradient' or 'random'
    refine_lr:float=0.01 # LR of the first half of each refinement phase (second half: a tenth)
    t_ex:int=6 # exploration epochs
    t_re:int=4 # epochs per refinement phase
    seed:int=0 # EDST run seed; the DST reference uses seeds seed·M … seed·M + M − 1


# the fixed recipe of each model: data, batch, LR, ΔT, density, M
_COMMON = dict(lr=0.1, density=0.2, members=3)
RECIPES = {
    'mlp': dict(dataset='fashion-mnist', n_train=None, batch_size=128, update_frequency=200, **_COMMON),
    'lenet5': dict(dataset='fashion-mnist', n_train=20_000, batch_size=128, update_frequency=200, **_COMMON),
    'quick': dict(dataset='digits', n_train=None, batch_size=64, update_frequency=20, **_COMMON),
}


def grid(model:str='mlp', quick:bool=False)->list:
    "One factor at a time around the base (q 0.8, gradient regrowth, refine LR 0.01, t_re 4), and the DST reference"
    if quick:
        b = Setting(model='mlp', t_ex=2, t_re=1)
        return [b, replace(b, explore_rate=0.5), replace(b, explore_growth='random'), replace(b, method='dst')]
    b = Setting(model=model)
    qs = [replace(b, explore_rate=q, explore_growth=g) for g in ('gradient', 'random') for q in (0.5, 0.8, 0.95)]
    out = [b] + [x for x in qs if x != b] + [replace(b, method='dst'), replace(b, refine_lr=0.1)]
    if model == 'mlp':
        out += [replace(b, refine_lr=0.03)] + [replace(b, t_re=t) for t in (2, 8)]
        out += [replace(b, seed=1), replace(b, method='dst', seed=1)]
    return out


def recipe(s:Setting, quick:bool=False)->dict: return RECIPES['quick' if quick else s.model]


def load_data(s:Setting, quick:bool=False):
    "The setting's `DataBundle` (a seeded training subset when the recipe says so)"
    r = recipe(s, quick)
    data = get_dataset(r['dataset'])
    if r['n_train']:
        g = make_generator(0, 'edst_diversity', 'subset')
        idx = torch.randperm(len(data.train), generator=g)[:r['n_train']].sort().values
        data = replace(data, train=data.train.take(idx))
    return data


def configs(s:Setting, quick:bool=False)->tuple:
    "`(TrainConfig, EnsembleConfig)`: the EDST run's, or the DST members' (t_ex + t_re epochs each)"
    r = recipe(s, quick)
    M = r['members']
    base = TrainConfig(dataset=r['dataset'], model=s.model, epochs=s.t_ex + s.t_re, batch_size=r['batch_size'],
                       lr=r['lr'], density=r['density'], update_frequency=r['update_frequency'],
                       seed=s.seed * M if s.method == 'dst' else s.seed)
    E = s.t_ex + M * s.t_re
    ens = EnsembleConfig(members=M, density=r['density'], edst_epochs=E, edst_explore_epochs=s.t_ex,
                         explore_rate=s.explore_rate, explore_growth=s.explore_growth)
    return base, ens


def edst_lr_schedule(s:Setting, ens:EnsembleConfig, lr:float)->pd.DataFrame:
    "The EDST timeline with the setting's refinement LR: `refine_lr`, then a tenth of it, in each phase"
    sched = edst_schedule(ens.edst_epochs, ens.edst_explore_epochs, ens.members, lr)
    sched.loc[sched.phase > 0, 'lr'] *= s.refine_lr / (lr / 10)
    return sched


def train_edst_tickets(s:Setting, out:Path, data, quick:bool=False, device=None)->list:
    "Train (or resume) the setting's EDST run in `out`, recording its predictions; returns the M ticket paths"
    base, ens = configs(s, quick)
    cfg = base.replace(epochs=ens.edst_epochs, lr_schedule='constant')
    paths = [out/f'ticket_{i}.pt' for i in range(1, ens.members + 1)]
    if (out/'explorations.json').exists() and all(p.exists() for p in paths): return paths # written last
    cb = EDSTCallback(edst_lr_schedule(s, ens, base.lr), ens)
    rec = PredictionRecorder(n=min(500, len(data.test)), seed=0)
    Trainer(cfg, out, device=device, data=data, lr_fn=cb.lr, callbacks=[rec, cb], progress=False).fit()
    save_json(cb.explorations, out/'explorations.json')
    return paths


def train_dst_tickets(s:Setting, out:Path, data, quick:bool=False, device=None)->list:
    "Train (or load) the M independent DST members of the reference; returns their ticket paths"
    base, ens = configs(s, quick)
    rec = lambda m: [PredictionRecorder(n=min(500, len(data.test)), seed=0)]
    return train_ensemble('dst-ensemble', base, ens, out, data=data, device=device, callbacks=rec).tickets


def measure_setting(s:Setting, out, quick:bool=False, device:str='cpu', jobs:int=1)->dict:
    "Train and measure one setting, or load its cached row: setting fields, metrics, seconds"
    torch.set_num_threads(1)
    folder = _folder(s, out)
    if (folder/'row.json').exists(): return load_json(folder/'row.json')
    data, t0, started = load_data(s, quick), time.perf_counter(), time.time()
    tickets = (train_edst_tickets if s.method == 'edst' else train_dst_tickets)(s, folder, data, quick, device)
    if not (folder/'seconds.json').exists(): # the process that trained the setting
        save_json(dict(train=round(time.perf_counter() - t0, 1), started=started, finished=time.time(), jobs=jobs),
                  folder/'seconds.json')
    t1, members = time.perf_counter(), [ticket_model(p, device=device) for p in tickets]
    div = ticket_diversity([m for m, _ in members], [k for _, k in members], data)
    ex = load_json(folder/'explorations.json') if s.method == 'edst' else []
    row = dict(s.to_dict(), hash=short_hash(s), n_train=len(data.train),
               steps_per_epoch=-(-len(data.train) // recipe(s, quick)['batch_size']),
               **div, churn=float(np.mean([e['churn'] for e in ex])) if ex else None,
               train_seconds=load_json(folder/'seconds.json')['train'],
               measure_seconds=round(time.perf_counter() - t1, 1))
    save_json(row, folder/'row.json')
    return row


def _measure(args)->dict: return measure_setting(*args)

def _cost(s:Setting)->int: return 3 * (s.t_ex + s.t_re) if s.method == 'dst' else s.t_ex + 3 * s.t_re # epochs


def run_grid(settings:list, runs, quick:bool=False, device:str='cpu', jobs:int=1)->list:
    "Measure every setting (or load it), `jobs` processes of one thread each, longest first; rows in grid order"
    order = sorted(range(len(settings)), key=lambda i: -_cost(settings[i]))
    args = [(settings[i], runs, quick, device, jobs) for i in order]
    if jobs > 1:
        with ProcessPoolExecutor(jobs, mp_context=get_context('spawn')) as ex:
            done = list(ex.map(_measure, args))
    else: done = [_measure(a) for a in args]
    rows = [None] * len(settings)
    for i, r in zip(order, done): rows[i] = r
    return rows


def _folder(s:Setting, runs)->Path: return Path(runs)/s.model/f'{s.method}-{short_hash(s)}'


def edst_phase_trajectories(s:Setting, folder:Path, quick:bool=False)->dict:
    "The EDST run's recorded predictions: the exploration, then one segment per refinement phase, ticket starred"
    t, M = load_trajectory(folder/'trajectory.pt'), recipe(s, quick)['members']
    ep = torch.tensor(t['epochs'])
    def seg(lo, hi, ticket=None):
        keep = ((ep >= lo) & (ep <= hi)).nonzero().flatten().tolist()
        return dict(probs=t['probs'][keep], epochs=[t['epochs'][j] for j in keep], ticket_epoch=ticket,
                    idx=t['idx'])
    out = {'EDST exploration': seg(0, s.t_ex)}
    for i in range(1, M + 1):
        lo = s.t_ex + (i - 1) * s.t_re
        out[f'EDST ticket {i}'] = seg(lo, lo + s.t_re, load_ticket(folder/f'ticket_{i}.pt')['epoch'])
    return out


def dst_trajectories(s:Setting, folder:Path, quick:bool=False)->dict:
    "The DST reference members' recorded predictions, best-validation ticket starred"
    base, ens = configs(s, quick)
    cfgs = METHODS['dst-ensemble'](base, ens, folder).member_configs()
    return {f'DST member {i + 1}': load_trajectory(member_dir(folder, 'dst', c)/'trajectory.pt')
            for i, c in enumerate(cfgs)}


def _trained(t:dict)->dict:
    "A trajectory without its epoch-0 point (the untrained network, which dominates a PCA of trained ones)"
    keep = [i for i, e in enumerate(t['epochs']) if e > 0]
    return {**t, 'probs': t['probs'][keep], 'epochs': [t['epochs'][i] for i in keep]}


def figure_tables(edst:Setting, runs, quick:bool=False, device:str='cpu')->tuple:
    "`(tsne, plane)`: t-SNE/PCA of the EDST and DST trajectories, and the planes through their three tickets"
    dst = replace(edst, method='dst')
    fe, fd = _folder(edst, runs), _folder(dst, runs)
    trajs = {**edst_phase_trajectories(edst, fe, quick), **dst_trajectories(dst, fd, quick)}
    trajs = {k: _trained(v) for k, v in trajs.items()}
    tsne = tsne_trajectories(trajs, seed=0)
    data, planes = load_data(edst, quick), []
    batches = landscape_batches(data, ('test',), n_test=2000, seed=0, device=device)
    for run, folder, method in (('EDST: tickets of one run', fe, 'edst'), ('DST: independent runs', fd, 'dst')):
        train = train_edst_tickets if method == 'edst' else train_dst_tickets
        paths = train(replace(edst, method=method), folder, data, quick, device)
        mem = [ticket_model(p, device=device) for p in paths[:3]]
        pl = plane(mem[0][0], [m.state_dict() for m, _ in mem], [k for _, k in mem], mask_policy='union',
                   data=batches, n=11, names=['1', '2', '3'])
        planes.append(pl.assign(run=run))
    return tsne, pd.concat(planes, ignore_index=True)


COLUMNS = {'model': 'model', 'varies': 'varies', 'method': 'method', 'explore_rate': 'q', 'explore_growth': 'growth',
           'refine_lr': 'refine LR', 't_re': 't_re', 'seed': 'seed', 'disagreement': 'disagr.', 'kl': 'KL',
           'barrier_test_loss': 'barrier (loss)', 'barrier_test_err': 'barrier (err)', 'hamming': 'Hamming',
           'weight_dist': 'weight dist.', 'weight_cos': 'weight cos', 'churn': 'explore churn', 'ens_acc': 'ens. acc',
           'gain_acc': 'Δacc', 'gain_nll': 'ΔNLL', 'gain_ece': 'ΔECE'}


def varies(row:dict, quick:bool=False)->str:
    "The knobs in which an EDST row differs from its model's base setting ('base': none; 'DST reference')"
    if row['method'] == 'dst': return 'DST reference'
    base = grid(row['model'], quick)[0]
    diff = [f.name for f in fields(Setting) if f.name not in ('model', 'method', 'seed') # a seed is not a knob
            and row[f.name] != getattr(base, f.name)]
    return ', '.join(diff) or 'base'


def _recipe_text(model:str, r:dict)->str:
    n = f" ({r['n_train']:,} training images)" if r['n_train'] else ''
    return (f"`{model}`: {r['dataset']}{n}, batch {r['batch_size']}, LR {r['lr']}, ΔT {r['update_frequency']}, "
            f"density {r['density']}, M = {r['members']}")


def markdown(res:dict)->str:
    "The Markdown page: what was measured, on which machine, the table and the finding"
    t = pd.DataFrame(res['rows'])[list(COLUMNS)].rename(columns=COLUMNS)
    m, sec = res['machine'], res['seconds']
    recipes = '; '.join(_recipe_text(k, r) for k, r in res['recipes'].items())
    return '\n'.join([
        '# When do free tickets differ? EDST diversity on Fashion-MNIST', '',
        f"Machine: {m['device_name']}, {m['cores']} cores, {res['jobs']} process(es) of one torch thread each, "
        f"torch {m['torch']}, shared with other jobs. Training wall time {sec['wall'] / 60:.1f} min (first "
        f"run started to last run finished); summed over the settings, training {sec['train'] / 60:.1f} min "
        f"and measuring {sec['measure'] / 60:.1f} min. Reproduce: `{res['command']}`.", '',
        f"Recipes: {recipes}. EDST: t_ex epochs of exploration at the LR, then M refinement phases of t_re epochs "
        "(refine LR for the first half, a tenth of it for the second), the q-exploration between phases. DST "
        "reference: M independent runs of t_ex + t_re epochs (multi-step LR, ×0.1 at E/2 and 3E/4). Metrics "
        f"on the {res['rows'][0]['n_test']:,} test images. Barriers: test-loss (nats) and test-error barriers "
        "on the linear path between tickets (11 points, union of masks), mean over pairs; Hamming: "
        "normalised mask distance (1 − density for independent random masks); weight dist.: ‖θ_i − θ_j‖ over "
        "the mean norm; explore churn: fraction of the active weights at new positions after a global "
        "exploration; Δ: ensemble gain over its best member (accuracy: ensemble minus best; NLL and ECE: "
        "best minus ensemble).", '',
        md_table(t, floatfmt='.4g'), '', res['finding'], ''])


def run(quick:bool=False, device:str|None=None, out=None, models=('mlp', 'lenet5'), jobs:int=1,
        runs='runs/bench/edst_diversity')->dict:
    "Run (or resume) the sweep and the base run's figure tables; write the JSON, the Markdown page, the CSV tables"
    dev = str(get_device(device or 'cpu'))
    runs = Path(runs)/'quick' if quick else Path(runs)
    settings = [s for m in (('mlp',) if quick else models) for s in grid(m, quick)]
    path = Path(out) if out else RESULTS/('quick' if quick else '.')/f'{NAME}.json'
    rows = [dict(r, varies=varies(r, quick)) for r in run_grid(settings, runs, quick, dev, jobs)]
    tsne, planes = figure_tables(settings[0], runs, quick, dev)
    tr = [load_json(_folder(s, runs)/'seconds.json') for s in settings]
    cmd = 'python -m bench.edst_diversity' + (' --quick' if quick else f" --models {','.join(models)} "
                                                                     f"--jobs {jobs}")
    res = dict(benchmark=NAME, quick=quick, command=cmd, machine=machine_info(dev), jobs=max(t['jobs'] for t in tr),
               recipes={m: RECIPES['quick' if quick else m] for m in dict.fromkeys(s.model for s in settings)},
               rows=rows,
               seconds=dict(wall=round(max(t['finished'] for t in tr) - min(t['started'] for t in tr), 1),
                            train=round(sum(r['train_seconds'] for r in rows), 1),
                            measure=round(sum(r['measure_seconds'] for r in rows), 1)),
               tsne_perplexity=tsne.attrs['perplexity'])
    res['finding'] = finding(res) if not quick else 'Quick run (a smoke test on digits): no finding.'
    save_json(res, path)
    atomic_write(path.with_suffix('.md'), markdown(res))
    atomic_write(path.with_name(f'{NAME}_tsne.csv'), tsne.to_csv(index=False))
    atomic_write(path.with_name(f'{NAME}_plane.csv'), planes.to_csv(index=False))
    return res


if __name__ == '__main__':
    p = bench_parser(__doc__, out_help=f'JSON output path (default: bench/results/{NAME}.json)')
    p.add_argument('--models', default='mlp,lenet5', help='comma-separated: mlp, lenet5 (--quick: mlp on digits)')
    p.add_argument('--jobs', type=int, default=1, help='settings trained in parallel, one torch thread each')
    p.add_argument('--runs', default='runs/bench/edst_diversity', help='cache of runs and measured rows (resumable)')
    a = p.parse_args()
    r = run(a.quick, a.device, a.out, tuple(a.models.split(',')), a.jobs, a.runs)
    print(markdown(r))
