"`ft-study` and `ft-eval` as a user runs them: console scripts in fresh processes, CPU, seconds."
import json, os, shutil, subprocess, sys
import pytest
import torch
from conftest import ROOT, BIN

ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'FREETICKETS_DEVICE': 'cpu', 'MPLBACKEND': 'Agg'}
TINY = ['--preset', 'demo', '--methods', 'dense,dst-ensemble', '--members', '3', '--epochs', '3', '--corruption-n', '40', '--ood-n', '40']


def run(*args, timeout=600):
    return subprocess.run([*map(str, args)], env=ENV, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope='module')
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp('study')/'s'
    r = run(BIN/'ft-study', *TINY, '--out', out)
    assert r.returncode == 0, r.stderr
    return out, r


def test_study_writes_report_and_prints_table(study):
    out, r = study
    for f in ('report.md', 'results.csv', 'results.json', 'study.json', 'dense/manifest.json', 'dst-ensemble/manifest.json'):
        assert (out/f).exists(), f
    assert 'dst-ensemble' in r.stdout and f"report: {out/'report.md'}" in r.stdout
    res = json.loads((out/'results.json').read_text())
    assert [row['method'] for row in res['results']] == ['dense', 'dst-ensemble']
    assert res['config']['members'] == 3 and 'Traceback' not in r.stderr


def test_interrupted_study_resumes_without_retraining(study):
    out, _ = study
    tickets = sorted((out/'members').rglob('ticket.pt'))
    assert len(tickets) == 4  # the dense model and three DST members
    man = json.loads((out/'dst-ensemble'/'manifest.json').read_text())
    lost = (out/'dst-ensemble'/man['members'][2]['ticket']).resolve()
    before = torch.load(lost, weights_only=True)['model']
    kept = {p: p.stat().st_mtime_ns for p in tickets if p != lost}
    shutil.rmtree(lost.parent)  # as if the run had been killed while training the third member
    (out/'report.md').unlink()
    r = run(BIN/'ft-study', *TINY, '--out', out)
    assert r.returncode == 0, r.stderr
    assert {p: p.stat().st_mtime_ns for p in kept} == kept  # finished members untouched
    after = torch.load(lost, weights_only=True)['model']
    assert all(torch.equal(before[k], after[k]) for k in before)  # the retrained member is bit-identical
    assert (out/'report.md').exists()


def test_other_settings_in_same_folder_are_refused(study):
    out, _ = study
    r = run(BIN/'ft-study', *TINY[:-6], '--members', '2', '--epochs', '3', '--out', out)
    assert r.returncode == 2 and r.stderr.startswith('error: ') and 'members' in r.stderr and '--force' in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and (out/'report.md').exists()


def test_ft_eval_reevaluates_a_manifest(study):
    out, _ = study
    r = run(BIN/'ft-eval', out/'dst-ensemble'/'manifest.json', '--no-cache', '--corruption-n', '40')
    assert r.returncode == 0, r.stderr
    res = {row['method']: row for row in json.loads((out/'results.json').read_text())['results']}
    acc = float(next(l.split()[1] for l in r.stdout.splitlines() if l.startswith('acc ')))
    assert acc == pytest.approx(res['dst-ensemble']['acc'])


@pytest.mark.parametrize('args, msg', [
    (['--preset', 'imagenet'], 'unknown preset'),
    (['--methods', 'dense,snip'], "unknown method 'snip'"),
    (['--density', '0'], 'density'),
    (['--model', 'vit'], 'unknown model'),
    (['--dataset', 'cifar10', '--data-root', '/nonexistent'], 'is not a folder'),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, msg):
    r = run(BIN/'ft-study', *args, '--epochs', '2', '--out', tmp_path/'s')
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith('error: ') and msg in r.stderr and 'Traceback' not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_unwritable_out_is_one_line(tmp_path):
    (tmp_path/'file').write_text('not a folder')  # unwritable even for root
    r = run(BIN/'ft-study', '--out', tmp_path/'file'/'s')
    assert r.returncode == 2 and 'cannot write to output folder' in r.stderr and '--out' in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_corrupt_manifest_is_one_line(tmp_path):
    (tmp_path/'manifest.json').write_text('{not json')
    r = run(BIN/'ft-eval', tmp_path/'manifest.json')
    assert r.returncode == 2 and 'not valid JSON' in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_python_m_study_help():
    r = run(sys.executable, '-m', 'freetickets_nb.study', '--help')
    assert r.returncode == 0 and '--methods' in r.stdout and '--data-root' in r.stdout


def test_ensemble_parallel_study_matches_sequential(study, tmp_path):
    "torchrun with 2 CPU processes spreads the runs over the ranks; results equal the sequential study's"
    seq, _ = study
    out = tmp_path/'par'
    r = run(BIN/'torchrun', '--standalone', '--nproc_per_node', '2', '-m', 'freetickets_nb.study', *TINY, '--out', out)
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'ensemble-parallel: 4 training runs over 2 processes' in r.stdout
    assert r.stdout.count('report: ') == 1  # only rank 0 reports
    a, b = (json.loads((d/'results.json').read_text())['results'] for d in (seq, out))
    for ra, rb in zip(a, b):
        assert ra['method'] == rb['method'] and ra['disagreement'] == rb['disagreement']
        for k in ('acc', 'nll', 'ece', 'brier', 'train_flops_x_dense', 'params'):
            assert ra[k] == pytest.approx(rb[k], rel=1e-9), k
    ma, mb = (json.loads((d/'dst-ensemble'/'manifest.json').read_text()) for d in (seq, out))
    assert [m['ticket'] for m in ma['members']] == [m['ticket'] for m in mb['members']]


def test_help_lists_every_setting_of_the_study_the_recipe_and_the_options():
    from dataclasses import fields
    from freetickets_nb.plan import StudyConfig, StudyOptions, recipe_fields
    r = run(BIN/'ft-study', '--help')
    assert r.returncode == 0, r.stderr
    names = [f.name for f in fields(StudyConfig) if f.name != 'recipe'] + list(recipe_fields())
    names += [f.name for f in fields(StudyOptions)]
    assert not [n for n in names if f"--{n.replace('_', '-')}" not in r.stdout]
    for flag in ('--lr ', '--batch-size', '--growth', '--data-root', '--momentum', '--imp-levels'):
        assert flag in r.stdout, flag
