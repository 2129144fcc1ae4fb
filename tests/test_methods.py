"""Methods as plug-ins: a method defined in this file runs through `run_study` and `ft-study`; a study folder made before
methods were classes is reused without training; the ensemble-parallel study equals the sequential one for every method."""
import hashlib, io, json, os, shutil, subprocess, sys, tarfile
from pathlib import Path
import pytest
import torch
from conftest import ROOT, BIN
from freetickets_nb.methods import METHODS, DSTEnsemble, register_method

TESTS = Path(__file__).resolve().parent
ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'FREETICKETS_DEVICE': 'cpu', 'MPLBACKEND': 'Agg',
       'PYTHONPATH': os.pathsep.join([str(TESTS), os.environ.get('PYTHONPATH', '')])}
for k in ('FREETICKETS_CRASH_AT', 'FREETICKETS_CRASH_LOG'): ENV.pop(k, None)
OLD = 'dcbdd71'  # main before the methods became classes: its study folders must stay valid
OLD_METHODS = 'dense,dense-ensemble,static-ensemble,dst-ensemble,edst-ensemble,pf-ensemble,lottery-pools'
ALL_METHODS = OLD_METHODS + ',ltr-ensemble'
STUDY = ['--preset', 'demo', '--members', '2', '--epochs', '3', '--density', '0.64', '--pf-epochs', '1',
         '--corruption-n', '40', '--ood-n', '40', '--update-frequency', '10']


class HalfDensityDST(DSTEnsemble):
    "A user's method, outside the package and not registered: DST members at half the study's density"
    def member_configs(self): return [c.replace(density=self.ens.density / 2) for c in super().member_configs()]


def run(*args, env=None, timeout=900):
    return subprocess.run([*map(str, args)], env={**ENV, **(env or {})}, capture_output=True, text=True, timeout=timeout)


def results(out):
    return {r['method']: r for r in json.loads((Path(out)/'results.json').read_text())['results']}


def digest(*folders) -> dict:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for f in folders for p in sorted(Path(f).rglob('*'))
            if p.is_file()}


def test_registered_method_in_session_runs_in_run_study(tmp_path):
    from freetickets_nb.study import run_study, study_config

    @register_method('dst-random-test')
    class RandomGrowthDST(DSTEnsemble):
        "DST members with random regrowth (SET)"
        def member_configs(self): return [c.replace(growth='random') for c in super().member_configs()]

    assert METHODS['dst-random-test'] is RandomGrowthDST
    cfg = study_config('demo', methods='dense,dst-random-test', members=2, epochs=2, corruption_n=20, ood_n=20)
    table = run_study(cfg, tmp_path/'s', device='cpu', verbose=False)
    assert table.method.tolist() == ['dense', 'dst-random-test']
    man = json.loads((tmp_path/'s'/'dst-random-test'/'manifest.json').read_text())
    assert [m['seed'] for m in man['members']] == [0, 1]
    t = torch.load((tmp_path/'s'/'dst-random-test'/man['members'][0]['ticket']).resolve(), weights_only=True)
    assert t['config']['growth'] == 'random'
    assert 0 < table.train_flops_x_dense[1] < 1


def test_method_from_a_test_file_runs_through_ft_study(tmp_path):
    out = tmp_path/'s'
    r = run(BIN/'ft-study', '--preset', 'demo', '--methods', 'dense,test_methods:HalfDensityDST', '--members', '2',
            '--epochs', '2', '--corruption-n', '20', '--ood-n', '20', '--out', out)
    assert r.returncode == 0, r.stderr[-3000:]
    res = results(out)
    assert list(res) == ['dense', 'half-density-dst']
    assert res['half-density-dst']['density'] == pytest.approx(0.1, abs=2e-3)
    assert 'test_methods:HalfDensityDST' in (out/'report.md').read_text()  # the reproduce command names the class
    r = run(BIN/'ft-study', '--methods', 'dense,no_such_module:Nope', '--out', tmp_path/'x')
    assert r.returncode == 2 and "cannot import method 'no_such_module:Nope'" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path/'x').exists()


@pytest.fixture(scope='module')
def old_study(tmp_path_factory):
    "A study folder written by the code of `OLD` (git archive), or None where git or that commit is not available"
    if shutil.which('git') is None: return None
    tar = subprocess.run(['git', '-C', str(ROOT), 'archive', OLD, 'freetickets_nb'], capture_output=True)
    if tar.returncode: return None  # a shallow clone without that commit
    code = tmp_path_factory.mktemp('old_code')
    tarfile.open(fileobj=io.BytesIO(tar.stdout)).extractall(code)
    out = tmp_path_factory.mktemp('old_study')/'s'
    r = run(sys.executable, '-m', 'freetickets_nb.study', *STUDY, '--methods', OLD_METHODS, '--out', out,
            env={'PYTHONPATH': str(code)})
    assert r.returncode == 0, r.stderr[-3000:]
    return out


MANIFEST_KEYS = ('method', 'members', 'train_flops', 'train_flops_x_dense', 'inference_flops_x_dense', 'f_d', 'f_s')


def manifests(out) -> dict:
    "row → the manifest entries the methods compute (tickets, seeds, epochs, densities, FLOPs)"
    return {m.parent.name: {k: json.loads(m.read_text())[k] for k in MANIFEST_KEYS}
            for m in sorted(Path(out).glob('*/manifest.json'))}


@pytest.fixture(scope='module')
def reused(old_study, tmp_path_factory):
    "The new code run on the old study: (folder, old results.csv, old manifests, run files before, crash log)"
    if old_study is None: pytest.skip(f'needs git and commit {OLD}')
    before, ref = digest(old_study/'members', old_study/'lottery'), (old_study/'results.csv').read_text()
    old = manifests(old_study)
    log = tmp_path_factory.mktemp('log')/'crash.log'
    r = run(BIN/'ft-study', *STUDY, '--methods', OLD_METHODS, '--out', old_study, env={'FREETICKETS_CRASH_LOG': str(log)})
    assert r.returncode == 0, r.stderr[-3000:]
    return old_study, ref, old, before, log.read_text().splitlines()


def test_study_made_before_methods_were_classes_is_reused(reused):
    "nothing trains again, every run file is untouched, the manifests the new code writes (tickets, FLOPs) equal the\n    old ones, and results.csv is identical (its evaluations are the cached ones: their key did not change)"
    out, ref, old, before, log = reused
    assert not [l for l in log if l.split()[0] in ('step', 'epoch')], 'a run was trained again'
    assert digest(out/'members', out/'lottery') == before
    assert manifests(out) == old and len(old) == 8
    assert (out/'results.csv').read_text() == ref


@pytest.fixture(scope='module')
def sequential(reused):
    "The same study with every method (the LTR ensemble added): only LTR's second chain trains"
    out = reused[0]
    for f in out.rglob('eval.json'): f.unlink()  # evaluated again by this code, as the parallel study will be
    r = run(BIN/'ft-study', *STUDY, '--methods', ALL_METHODS, '--force', '--out', out)
    assert r.returncode == 0, r.stderr[-3000:]
    return out, r


def test_ltr_ensemble_row(sequential):
    out, r = sequential
    res = results(out)
    assert list(res) == ALL_METHODS.replace('lottery-pools', 'lottery-ticket,lottery-pools').split(',')
    ltr = res['ltr-ensemble']
    assert ltr['members'] == 2 and ltr['density'] == pytest.approx(0.64, abs=2e-3)
    for k in ('acc', 'nll', 'ece', 'disagreement', 'kl'): assert 0 <= ltr[k] < 5, k
    assert 2 * 2 < ltr['train_flops_x_dense'] < 2 * 3  # two chains of three levels (densities 1, 0.8, 0.64)
    assert '[ltr-ensemble] 2 IMP chains of 3 levels, tickets at level 2' in r.stdout
    man = json.loads((out/'ltr-ensemble'/'manifest.json').read_text())
    assert [m['seed'] for m in man['members']] == [0, 1]
    lp = json.loads((out/'lottery-ticket'/'manifest.json').read_text())
    trunk = lambda m: m['ticket'].split('/')[:3]  # ../lottery/<trunk>
    assert trunk(man['members'][0]) == trunk(lp['members'][0]) != trunk(man['members'][1])  # chain 1: the LP chain


def test_reproduce_command_of_the_report_is_accepted(sequential):
    out, _ = sequential
    cmd = (out/'report.md').read_text().split('## Reproduce')[1].split('```sh\n')[1].split('\n')[0]
    assert cmd.startswith('ft-study --preset demo') and '--methods' in cmd
    r = run(BIN/cmd.split()[0], *cmd.split()[1:], '--out', out)
    assert r.returncode == 0, r.stderr[-3000:]


def test_ensemble_parallel_study_equals_sequential_for_every_method(sequential, tmp_path):
    seq, _ = sequential
    out = tmp_path/'par'
    r = run(BIN/'torchrun', '--standalone', '--nproc_per_node', '2', '-m', 'freetickets_nb.study', *STUDY,
            '--methods', ALL_METHODS, '--out', out)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count('report: ') == 1
    a, b = results(seq), results(out)
    assert list(a) == list(b)
    for m in a:
        for k in ('acc', 'nll', 'ece', 'brier', 'train_flops_x_dense', 'inference_flops_x_dense', 'params'):
            assert a[m][k] == pytest.approx(b[m][k], rel=1e-9), (m, k)
        assert a[m]['disagreement'] == pytest.approx(b[m]['disagreement'], nan_ok=True), m
        ma, mb = (json.loads((d/m/'manifest.json').read_text()) for d in (seq, out))
        assert [x['ticket'] for x in ma['members']] == [x['ticket'] for x in mb['members']], m
        for x, y in zip(ma['members'], mb['members']):
            ta, tb = (torch.load((d/m/t['ticket']).resolve(), weights_only=True)['model'] for d, t in ((seq, x), (out, y)))
            assert all(torch.equal(ta[k], tb[k]) for k in ta), (m, x['ticket'])
