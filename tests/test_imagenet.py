"""The papers' ImageNet recipes as presets: every resolved setting against the papers' and the authors' tables,
the hard-coded 310-epoch EDST timeline, `ft-study --help`, a preset end-to-end on a folder of JPEGs at 32 px
(CPU, seconds), and groups of ranks (4 gloo processes as 2 groups of 2)."""
import gc, os, socket, tempfile
from pathlib import Path
import pytest
import torch
import torch.multiprocessing as mp
from freetickets_nb.plan import PRESETS, study_config, resolved_settings, study_parser

# FreeTickets, ImageNet / ResNet-50: the authors' README and `ImageNet/main.py` (hard-coded timeline), the
# `reference_imagenet` DST semantics (knob table of the reference's ImageNet `Masking`).
FREETICKETS_R50 = {
    'train.dataset': 'imagenet',
    'train.model': 'resnet50-fanin',  # torchvision ResNet-50 (v1.5), Kaiming fan-in (`-c fanin`)
    'train.batch_size': 128,  # 2 GPUs × 64
    'train.lr': 0.1, 'train.warmup_epochs': 5, 'train.momentum': 0.9, 'train.nesterov': False,
    'train.label_smoothing': 0.1,
    'train.weight_decay': 1e-4, 'train.wd_exclude': ['bn'],  # not on `bn` parameters
    'train.epochs': 100, 'train.milestones': [30, 60, 90], 'train.gamma': 0.1,  # the DST ensemble's runs
    'train.density': 0.2, 'train.distribution': 'erk', 'train.growth': 'gradient',  # S = 0.8, ERK
    'train.update_frequency': 4000, 'train.prune_rate': 0.5, 'train.static': False,
    'dst.prune_rate_schedule': 'cosine', 'dst.prune_rate_min': 0.005,  # cosine 0.5 → 0.005 ...
    'dst.restart_schedule_on_explore': True,  # ... restarted in every phase
    'dst.mask_sampling': 'bernoulli', 'dst.remove_rounding': 'ceil', 'dst.keep_value_if_regrown': False,
    'dst.keep_stale_momentum': False, 'dst.prune_dense_layers': False, 'dst.tie_break': 'index',
    'dst.prune_ranking': 'layerwise',  # layer-wise regrowth, no redistribution
    'ensemble.members': 4, 'ensemble.density': 0.2, 'ensemble.edst_timeline': 'imagenet',
    'ensemble.edst_epochs': 310, 'ensemble.edst_explore_epochs': 30, 'ensemble.explore_rate': 0.8,  # q
    'ensemble.reset_best_after_exploration': False,  # ticket 1: best val of epochs 0–99, exploration included
}
# Lottery Pools, ImageNet / ResNet-18 and -34: open_lth's `imagenet_resnet` defaults (paper Table 7).
LOTTERY_POOLS = {
    'train.dataset': 'imagenet', 'train.epochs': 90, 'train.batch_size': 1024, 'train.lr': 0.4,
    'train.momentum': 0.9, 'train.nesterov': False, 'train.weight_decay': 1e-4, 'train.wd_exclude': [],
    'train.wd_on_norm_and_bias': True, 'train.lr_schedule': 'multistep', 'train.milestones': [30, 60, 80],
    'train.gamma': 0.1, 'train.warmup_epochs': 5, 'train.label_smoothing': 0.0,
    'imp.levels': 9,  # levels 0..8: density 100 % … 16.78 %
    'imp.prune_fraction': 0.2, 'imp.prune_scope': 'conv+linear', 'imp.prune_ignore': [],  # fc included
    'imp.count_rounding': 'ceil', 'imp.rewind_epoch': 5, 'imp.ticket_choice': 'final',
    'imp.target_level': 8,
}
SPEC = {'imagenet-r50': FREETICKETS_R50,
        'imagenet-lp-r18': {**LOTTERY_POOLS, 'train.model': 'imagenet-resnet18'},
        'imagenet-lp-r34': {**LOTTERY_POOLS, 'train.model': 'imagenet-resnet34'}}


def _plain(v): return list(v) if isinstance(v, tuple) else v


@pytest.mark.parametrize('preset', sorted(SPEC))
def test_presets_resolve_to_the_papers_settings(preset):
    got = resolved_settings(study_config(preset))
    wrong = {k: (_plain(got.get(k, 'missing')), v) for k, v in SPEC[preset].items() if _plain(got.get(k, 'missing')) != v}
    assert not wrong, f'{preset}: resolved vs paper {wrong}'


def test_lottery_pools_levels_are_the_papers_densities():
    from freetickets_nb.ensembles import EnsembleConfig
    from freetickets_nb.lottery import imp_counts
    cfg = study_config('imagenet-lp-r18')
    assert cfg.methods == ('lottery-pools',)
    paper = [100, 80, 64, 51.20, 40.96, 32.77, 26.21, 20.97, 16.78]  # the columns of the paper's ImageNet tables
    dens = [100 * 0.8 ** l for l in range(9)]
    assert [round(d, 2) for d in dens] == paper
    assert abs(cfg.ensemble_config().density - dens[-1] / 100) < 1e-8
    counts = imp_counts(10_001, 9, 0.2, 'ceil')  # open_lth: ceil of the fraction of what remains
    assert counts[1] == 10_001 - 2001 and all(a > b for a, b in zip(counts, counts[1:]))


def test_freetickets_timeline_is_the_hard_coded_310_epochs():
    "Spec table (0-based epochs): warm-up 0–4, 0.1 to 29, then 30/30/10 epochs at 0.01/0.001/0.0001 per phase"
    from freetickets_nb.edst import edst_timeline
    cfg = study_config('imagenet-r50')
    s = edst_timeline(cfg.ensemble_config(), cfg.train_config()).set_index('epoch')
    lr = {e - 1: v for e, v in s.lr.items()}  # 0-based
    want = {e: 0.1 * (e + 1) / 6 for e in range(5)} | {e: 0.1 for e in range(5, 30)}
    for start in (30, 100, 170, 240):
        end = 100 if start == 30 else start + 70
        want |= {e: 0.01 for e in range(start, start + 30)} | {e: 0.001 for e in range(start + 30, start + 60)}
        want |= {e: 0.0001 for e in range(start + 60, end)}
    assert sorted(lr) == list(range(310))
    assert all(abs(lr[e] - want[e]) < 1e-12 for e in range(310)), [e for e in range(310) if abs(lr[e] - want[e]) > 1e-12]
    assert s[s.ticket > 0].index.tolist() == [100, 170, 240, 310]  # checkpoint-0..3 (1-based last epochs)
    assert s[s.event.str.contains('explore')].index.tolist() == [100, 170, 240]


def test_ft_study_help_lists_the_imagenet_presets():
    text = ''.join(study_parser().format_help().split())
    assert 'imagenet-r50,imagenet-lp-r18,imagenet-lp-r34' in text
    assert {'imagenet-r50', 'imagenet-lp-r18', 'imagenet-lp-r34'} <= set(PRESETS)


# --- a preset end-to-end on a folder of JPEGs ---------------------------------------------------------------

@pytest.fixture(scope='module')
def imagenet_folder(tmp_path_factory):
    "ImageNet's layout with 2 classes: 30 training images per class (26 held out for selection) and 2 val"
    from freetickets_nb.imagefolder import write_image_folder
    return write_image_folder(tmp_path_factory.mktemp('inet'), ('n01', 'n02'), n={'train': 30, 'val': 2},
                              size=(36, 36))


SMALL = ['--image-size', '32', '--batch-size', '4', '--warmup-epochs', '0', '--corruption-n', '0', '--ood-n', '0',
         '--workers', '0']


def test_an_imagenet_preset_runs_end_to_end_on_jpegs(imagenet_folder, tmp_path, monkeypatch):
    "`imagenet-lp-r18` (ResNet-18, open_lth's recipe) with only epochs, milestones and levels scaled down"
    import pandas as pd
    from freetickets_nb import study
    monkeypatch.setenv('FREETICKETS_DEVICE', 'cpu')
    out = tmp_path/'s'
    small = ['--epochs', '2', '--milestones', '1', '--imp-levels', '2', '--imp-rewind-epoch', '1']
    study.main(['--preset', 'imagenet-lp-r18', '--data-root', str(imagenet_folder), *SMALL, *small, '--out', str(out)])
    res = pd.read_csv(out/'results.csv')
    assert res.method.tolist() == ['lottery-ticket', 'lottery-pools']
    report = (out/'report.md').read_text()
    assert 'ft-study --preset imagenet-lp-r18' in report and '--image-size 32' in report
    chain, = (out/'lottery').rglob('prunable.json')
    assert sorted(p.name for p in chain.parent.glob('level_*')) == ['level_0', 'level_1']


def test_the_imagenet_r50_preset_builds_its_runs_at_a_small_image_size():
    "The FreeTickets preset's runs (4 dense, 4 DST, one 310-epoch EDST run) and its fan-in ResNet-50 at 32 px"
    from freetickets_nb.methods import plan_jobs
    from freetickets_nb.models import create_model
    from freetickets_nb.plan import study_methods
    cfg = study_config('imagenet-r50', image_size=32)
    runs = [r for j in plan_jobs(study_methods(cfg, 'runs')) for r in j.runs]
    assert sorted(r.cfg.epochs for r in runs) == [100] * 8 + [310]
    with torch.device('meta'): m = create_model(cfg.model, 1000, 3, 32)
    assert sum(p.numel() for p in m.parameters()) == 25_557_032


# --- groups of ranks ----------------------------------------------------------------------------------------

def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


def _group_worker(rank, world, port, out):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR='127.0.0.1',
                      MASTER_PORT=str(port), FREETICKETS_DEVICE='cpu', OMP_NUM_THREADS='1')
    torch.set_num_threads(1)
    from freetickets_nb import distributed as D
    from freetickets_nb.methods import RunContext, plan_jobs, train_parallel, METHODS
    D.setup_dist()
    try:
        group, g, n = D.rank_groups(2)
        with D.use_group(group):
            seen = (D.get_rank(), D.get_world_size(), D.gather_objects(rank))
        base, ens, data = _recipe()
        jobs = plan_jobs([METHODS['dst-ensemble'](base, ens, out)])
        train_parallel(jobs, RunContext(data, 'cpu'), rank, world, poll=0.2, log=lambda *a: None, group_size=2)
        res = dict(group=(g, n), seen=seen)
    except Exception as e: res = f'{type(e).__name__}: {e}'
    torch.save(res, f'{out}/rank{rank}.pt')
    gc.collect()
    D.cleanup_dist()


def _recipe():
    from freetickets_nb.data import get_dataset
    from freetickets_nb.ensembles import EnsembleConfig
    from freetickets_nb.train import TrainConfig
    base = TrainConfig(dataset='digits', model='mlp', epochs=1, batch_size=64, density=0.3, update_frequency=4,
                       lr_schedule='constant', bf16=False)
    return base, EnsembleConfig(members=2, density=0.3), get_dataset('digits', seed=0)


def test_two_groups_of_two_ranks_train_two_members_each_data_parallel(tmp_path):
    "4 processes as 2 groups of 2: each group trains one member data-parallel; each equals its 2-process run"
    from freetickets_nb.methods import METHODS
    from freetickets_nb.train import load_ticket
    out = tmp_path/'grouped'
    out.mkdir()
    out = str(out)
    mp.start_processes(_group_worker, args=(4, _free_port(), out), nprocs=4, start_method='spawn')
    res = [torch.load(f'{out}/rank{r}.pt', weights_only=False) for r in range(4)]
    assert all(isinstance(r, dict) for r in res), res
    assert [r['group'] for r in res] == [(0, 2), (0, 2), (1, 2), (1, 2)]
    assert [r['seen'] for r in res] == [(0, 2, [0, 1]), (1, 2, [0, 1]), (0, 2, [2, 3]), (1, 2, [2, 3])]
    base, ens, data = _recipe()
    runs = METHODS['dst-ensemble'](base, ens, out).runs()
    assert len(runs) == 2 and all(r.done() for r in runs)
    # the same member trained on one process: data-parallel over 2 ranks is the same global batch
    from freetickets_nb.train import Trainer
    for r in runs:
        single = Trainer(r.cfg, device='cpu', data=data); single.fit()
        got = load_ticket(r.ticket)
        for k, v in single.model.state_dict().items():
            assert torch.allclose(got['model'][k].float(), v.float(), atol=1e-4), (r.ticket, k)


# --- the cost of the presets: bench/imagenet_cost.py and the notebooks' tables -----------------------------

def _cost_module():
    import sys
    from conftest import ROOT
    if str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))
    from bench import imagenet_cost
    return imagenet_cost


def _fake_cost(device='cpu', step=0.5, decode=0.01):
    models = _cost_module().MODELS.values()
    per = {k: dict(min=v, median=v, max=v) for k, v in {'decode': decode, **{m: step for m in models}}.items()}
    return dict(machine=dict(device=device), image_size=224, seconds_per_image=per)


def test_imagenet_cost_tiny_run(tmp_path):
    C = _cost_module()
    r = C.run(quick=True, size=32, batch=2, out=tmp_path/'c.json')
    assert [row['b'] for row in r['rows']] == [f'{m} step' for m in C.MODELS.values()]
    assert set(r['seconds_per_image']) == {'decode', *C.MODELS.values()}
    assert all(v['median'] > 0 for v in r['seconds_per_image'].values())


def test_preset_costs_follow_the_flop_accounting_and_the_run_placement():
    C = _cost_module()
    ft = C.study_costs(_fake_cost(), 'imagenet-r50').set_index('method')
    de = ft.train_flops['Dense ensemble (M=4)']
    assert ft.train_x_dense['Dense ensemble (M=4)'] == pytest.approx(4)
    assert 0.17 < ft.train_flops['EDST ensemble (M=4, S=0.9)'] / de < 0.23  # "about 1/5" (notebook 30)
    assert 0.28 < ft.train_flops['EDST ensemble (M=4, S=0.8)'] / de < 0.38  # "about a third"
    assert ft.here_days['Dense (1 model)'] == pytest.approx(100 * C.N_TRAIN * 0.5 / 86400)
    h8, h64 = ft.h100x8_hours, ft.h100x64_hours
    assert h64['Dense ensemble (M=4)'] == pytest.approx(h8['Dense (1 model)'])  # 4 runs at once, 8 GPUs each
    assert h64['Whole study (4 dense, 4 DST, 1 EDST run)'] == pytest.approx(4.1 * h8['Dense (1 model)'])
    lp = C.study_costs(_fake_cost(), 'imagenet-lp-r18').set_index('method')
    assert lp.images['IMP chain (9 levels)'] == (90 + 8 * 85) * C.N_TRAIN
    assert lp.h100x64_hours['IMP chain (9 levels)'] == pytest.approx(lp.h100x8_hours['IMP chain (9 levels)'] / 8)
    measured = C.study_costs(_fake_cost('cuda', step=1e-3), 'imagenet-lp-r18').set_index('method')
    assert measured.h100x8_hours['Dense (level 0)'] == pytest.approx(90 * C.N_TRAIN * 1e-3 / 8 / 3600)


def test_the_committed_measurement_is_full_size_and_the_notebooks_show_its_tables():
    "Notebooks 30 and 31 print tables computed from bench/results/imagenet_cost_cpu.json (not typed)"
    import json
    from conftest import ROOT
    C = _cost_module()
    res = json.loads((ROOT/'bench'/'results'/'imagenet_cost_cpu.json').read_text())
    assert not res['quick'] and res['image_size'] == 224
    assert C.decode_cores(res, 'imagenet-r50') > 1  # one CPU decoder cannot feed an H100 (notebook 30)
    def shown(nb, cell):
        c, = [c for c in json.loads((ROOT/'nbs'/nb).read_text())['cells'] if c['id'] == cell]
        text = [o.get('data', {}).get('text/plain', o.get('text', '')) for o in c['outputs']]
        return ''.join(''.join(t) if isinstance(t, list) else t for t in text)
    r50, r18 = C.study_costs(res, 'imagenet-r50'), C.study_costs(res, 'imagenet-lp-r18')
    text30, text31 = shown('30_reproduce_freetickets.ipynb', '1e4a0004'), shown('31_reproduce_lottery_pools.ipynb', '1e4b0003')
    for v in r50.here_days.round(2): assert f'{v:.2f}' in text30, v
    for v in r50.h100x64_hours.round(2): assert f'{v:.2f}' in text30, v
    for v in r18.h100x8_hours.round(2): assert f'{v:.2f}' in text31, v
    line = shown('30_reproduce_freetickets.ipynb', '1e4a0005')
    assert f"{res['seconds_per_image']['resnet50-fanin']['median']:.3f} s per image" in line
