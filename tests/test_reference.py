"`--reference`: the authors' CIFAR setting on `ft-study` and `ft-train`, and each of its settings alone."
import json, os, subprocess, sys
import pytest
from conftest import BIN
from freetickets_nb.core import canonical_json
from freetickets_nb.data import write_fake_cifar10
from freetickets_nb.train import TrainConfig
from freetickets_nb.ensembles import EnsembleConfig
from freetickets_nb.plan import study_args, study_config

ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'FREETICKETS_DEVICE': 'cpu', 'MPLBACKEND': 'Agg',
       'COLUMNS': '200'}

# every setting `--reference` changes: (config it lives in, field, the authors' value, its own flags)
ITEMS = [
    ('ens', 'explore_batch', 'last', ['--explore-batch', 'last']),  # last-batch exploration gradient
    ('train', 'val_split', 'last', ['--val-split', 'last']),  # the last 5,000 training images
    ('train', 'val_augment', True, ['--val-augment']),  # ... served with training augmentation
    ('train', 'cifar_transforms', 'reference', ['--cifar-transforms', 'reference']),  # std, reflect
    ('train', 'bf16', False, ['--no-bf16']),  # fp32: no autocast, in training and validation
    ('train', 'tf32', False, ['--no-tf32']),  # ... and no TF32
    ('ens', 'pf_lr', 0.001, ['--pf-lr', '0.001']),  # the README's PF fine-tune
    ('ens', 'pf_epochs', 250, ['--pf-epochs', '250']),
    ('train', 'dst_preset', 'reference_cifar', ['--dst-preset', 'reference_cifar']),  # DST quirks
    ('ens', 'reset_best_after_exploration', False, ['--no-edst-reset-best']),  # best tracker
    ('study', 'ece_variant', 'freetickets', ['--ece-variant', 'freetickets']),  # 14-bin ECE
    ('ens', 'edst_growth', 'random', ['--edst-growth', 'random']),  # the authors' EDST scripts
]
IDS = [i[1] for i in ITEMS]


def value(cfg, where, field):
    return getattr({'study': cfg, 'train': cfg.train_config(), 'ens': cfg.ensemble_config()}[where],
                   field)


def values(cfg): return {f: value(cfg, w, f) for w, f, _, _ in ITEMS}


def test_reference_sets_every_item_and_the_clean_default_none():
    ref = study_args(['--preset', 'cifar10-wrn', '--reference'])[0]
    clean = study_args(['--preset', 'cifar10-wrn'])[0]
    assert values(ref) == {f: v for _, f, v, _ in ITEMS}
    assert not [f for _, f, v, _ in ITEMS if values(clean)[f] == v]
    assert (ref.train_config().growth, clean.train_config().growth) == ('gradient', 'gradient')
    c100 = study_args(['--preset', 'cifar100-wrn', '--reference'])[0]
    assert (c100.train_config().growth, c100.edst_growth) == ('random', 'random')


@pytest.mark.parametrize('where,field,ref_value,flags', ITEMS, ids=IDS)
def test_each_item_alone(where, field, ref_value, flags):
    clean = values(study_args(['--preset', 'cifar10-wrn'])[0])
    one = values(study_args(['--preset', 'cifar10-wrn', *flags])[0])
    assert one[field] == ref_value
    assert [f for f in one if one[f] != clean[f]] == [field]


def test_flags_given_with_reference_win():
    cfg = study_args(['--preset', 'cifar10-wrn', '--reference', '--bf16', '--val-split',
                      'random', '--explore-batch', 'fresh'])[0]
    assert (cfg.train_config().bf16, cfg.train_config().val_split, cfg.explore_batch) == (
        True, 'random', 'fresh')
    assert cfg.train_config().cifar_transforms == 'reference'


def test_defaults_leave_every_hash_unchanged():
    "The new fields at their defaults are not in the canonical JSON that run folders are hashed from"
    new = ('val_split', 'val_augment', 'cifar_transforms', 'tf32', 'explore_batch', 'edst_growth',
           'reference')
    for cfg in (TrainConfig(), EnsembleConfig(), study_config('cifar10-wrn'),
                study_config('cifar10-wrn').train_config()):
        assert not [n for n in new if f'"{n}"' in canonical_json(cfg)], canonical_json(cfg)
    assert canonical_json(TrainConfig()) == '{"class":"TrainConfig","fields":{}}'


def run(*args):
    return subprocess.run([str(a) for a in args], env=ENV, capture_output=True, text=True,
                          timeout=300)


def test_help_lists_reference_and_each_setting():
    study, train = run(BIN/'ft-study', '--help'), run(BIN/'ft-train', '--help')
    assert study.returncode == train.returncode == 0
    for flag in ('--reference', '--explore-batch', '--edst-growth', '--pf-lr', '--pf-epochs',
                 '--ece-variant', '--no-edst-reset-best', '--val-split', '--val-augment',
                 '--cifar-transforms', '--no-bf16', '--no-tf32', '--dst-preset'):
        assert flag in study.stdout, flag
    for flag in ('--reference', '--val-split', '--val-augment', '--cifar-transforms', '--no-bf16',
                 '--no-tf32', '--dst-preset'):
        assert flag in train.stdout, flag


def test_ft_train_reference_on_cifar10(tmp_path):
    write_fake_cifar10(tmp_path/'data')
    r = run(BIN/'ft-train', '--reference', '--dataset', 'cifar10', '--data-root', tmp_path/'data',
            '--epochs', '1', '--batch-size', '32', '--growth', 'random', '--out', tmp_path/'out')
    assert r.returncode == 0, r.stderr[-2000:]
    saved, = (tmp_path/'out').glob('dst/*/config.json')
    cfg = json.loads(saved.read_text())
    assert {k: cfg[k] for k in ('dst_preset', 'val_split', 'val_augment', 'cifar_transforms', 'bf16',
                                'tf32', 'growth')} == dict(
        dst_preset='reference_cifar', val_split='last', val_augment=True,
        cifar_transforms='reference', bf16=False, tf32=False, growth='random')


def test_ft_train_reference_refuses_a_streamed_dataset(tmp_path):
    r = run(BIN/'ft-train', '--reference', '--dataset', 'imagenet', '--out', tmp_path)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert 'is streamed' in r.stderr and 'Traceback' not in r.stderr
    assert not list(tmp_path.iterdir())
