"""Bad input, tried as a hostile user would: every row of `CASES` (the three command lines and the Python API) must cost
one line, exit status 2 and nothing else -- every file and folder under the test's root is byte for byte as it was.
The command lines run in this process through their entry points (a real process costs seconds of imports); real
processes check the rest: a stop during the evaluation and the report, two `ft-study` on one folder, a full disk."""
import errno, hashlib, json, os, shutil, signal, subprocess, sys, time
from pathlib import Path
import pytest
import torch
from test_data_files import CIFAR_CASES, IDX_CASES, mnist
from freetickets_nb.data import get_dataset, write_fake_cifar10

ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'FREETICKETS_DEVICE': 'cpu', 'MPLBACKEND': 'Agg'}
for k in ('FREETICKETS_CRASH_AT', 'FREETICKETS_CRASH_LOG', 'FREETICKETS_DETERMINISTIC'): ENV.pop(k, None)
# the finished study every ft-study case starts from (a case's own flags come after these: the last one counts)
STUDY = ['--methods', 'dense', '--epochs', '1', '--corruption-n', '20', '--ood-n', '20']


def S(*args, msg): return ('ft-study', ['--out', '{S}', *STUDY, *args], msg)
def T(*args, msg): return ('ft-train', ['--tiny', '--out', '{T}', *args], msg)
def E(*args, msg): return ('ft-eval', list(args), msg)
def A(call, msg): return ('api', call, msg)


def _api():
    "The Python API's cases: `call(paths)` must raise a one-line `FreeTicketsError` (exit status 2 from a command)"
    from freetickets_nb.core import atomic_write
    from freetickets_nb.masks import init_masks
    from freetickets_nb.models import create_model
    from freetickets_nb.train import TrainConfig, Trainer, load_ticket, train
    from freetickets_nb.ensembles import EnsembleConfig, load_manifest, load_members
    from freetickets_nb.plan import StudyConfig, study_config, prepare_folder
    from freetickets_nb.study import run_study
    from freetickets_nb.safety import load_json
    net = lambda: torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    nan, inf = float('nan'), float('inf')
    return [
        A(lambda p: TrainConfig(epochs=True), 'epochs must be an integer, got True'),
        A(lambda p: TrainConfig(epochs=2.5), 'epochs must be an integer'),
        A(lambda p: TrainConfig(lr='0.1'), "lr must be a number, got '0.1'"),
        A(lambda p: TrainConfig(lr=nan), 'lr must be a finite number'),
        A(lambda p: TrainConfig(lr=-0.1), 'lr must be positive'),
        A(lambda p: TrainConfig(gamma=-1.0), 'gamma must be in (0, 1]'),
        A(lambda p: TrainConfig(end_step=-1), 'end_step must be non-negative'),
        A(lambda p: TrainConfig(warmup_epochs=nan), 'warmup_epochs must be a finite number'),
        A(lambda p: TrainConfig(milestones=(0,)), 'every item of milestones must be a positive integer'),
        A(lambda p: TrainConfig(milestones=(5, inf)), 'milestones'),
        A(lambda p: TrainConfig(image_size=4), 'image_size must be >= 8'),
        A(lambda p: Trainer(TrainConfig(model='vit'), data=get_dataset('digits'), device='cpu'), "unknown model 'vit'"),
        A(lambda p: TrainConfig(dataset='imagenet-21k'), "unknown dataset 'imagenet-21k'"),
        A(lambda p: TrainConfig(nesterov='no'), 'nesterov must be true or false'),
        A(lambda p: TrainConfig(density=0), 'density must be in (0, 1]'),
        A(lambda p: EnsembleConfig(members=0), 'members must be at least 1'),
        A(lambda p: EnsembleConfig(pf_lr=nan), 'pf_lr must be a finite number'),
        A(lambda p: StudyConfig(methods=('dense', 'dense')), "gives the row 'dense' twice"),
        A(lambda p: StudyConfig(lr=inf), 'lr must be a finite number'),
        A(lambda p: StudyConfig(edst_reset_best='yes'), 'edst_reset_best must be true or false'),
        A(lambda p: study_config('huge'), "unknown preset 'huge'"),
        A(lambda p: init_masks(net(), 0.2, densities={}), "no density for '0.weight'"),
        A(lambda p: init_masks(net(), 0.2, densities={'0.weight': 0.5, '2.weight': 0.5, 'fc.weight': 0.5}),
          "no masked layer 'fc.weight'"),
        A(lambda p: init_masks(net(), 0.2, densities={'0.weight': 0.5, '2.weight': 1.5}),
          "layer density of '2.weight' is 1.5"),
        A(lambda p: init_masks(net(), 1.5), 'density must be in (0, 1]'),
        A(lambda p: init_masks(net(), 0.2, distribution='snip'), "unknown mask distribution 'snip'"),
        A(lambda p: create_model('resnet21'), "unknown model 'resnet21'"),
        A(lambda p: get_dataset('digits', root='/nonexistent'), "'/nonexistent' is not a folder"),
        A(lambda p: get_dataset('nope'), "unknown dataset 'nope'"),
        A(lambda p: get_dataset('digits', val_fraction=1.5), 'val_fraction must be in [0, 1)'),
        A(lambda p: Trainer(TrainConfig(dataset='mnist'), data=get_dataset('digits'), device='cpu'),
          "the data is 'digits' but the config trains on 'mnist'"),
        A(lambda p: load_manifest(p['S']/'nowhere'/'manifest.json'), 'does not exist'),
        A(lambda p: load_manifest(p['M'].parent), 'is a folder: pass the manifest.json'),
        A(lambda p: load_members(p['nosum']), 'no checksum'),
        A(lambda p: load_ticket(p['S']/'nowhere.pt'), 'does not exist'),
        A(lambda p: load_ticket(p['S']/'study.json'), 'study.json'),
        A(lambda p: load_json(p['bad_json']), 'not valid JSON'),
        A(lambda p: prepare_folder(p['X'], StudyConfig()), 'holds no study (thesis.tex)'),
        A(lambda p: prepare_folder(p['S'], StudyConfig()), 'holds a study with other settings'),
        A(lambda p: prepare_folder(p['R']/'new', StudyConfig(), resume=True), 'nothing to resume'),
        A(lambda p: run_study(StudyConfig(methods=('dense',), epochs=2), p['S'], verbose=False),
          'holds a study with other settings'),
        A(lambda p: run_study(study_config('demo', methods=('dense',)), p['H'], verbose=False), 'is in use by pid'),
        A(lambda p: train(TrainConfig(epochs=3, batch_size=32, lr_schedule='constant', update_frequency=10),
                          p['HT'], verbose=False), 'is in use by pid'),
        A(lambda p: train(TrainConfig(epochs=1), p['R']/'file'/'runs', verbose=False), 'file'),
        A(lambda p: atomic_write(p['R']/'file'/'x.txt', 'x'), 'file'),
        A(lambda p: TrainConfig().replace(lr=0.0), 'lr must be positive'),
    ]


NUMERIC = [  # a value every number flag of a study's member recipe refuses: (flag, value, message)
    ('--lr', 'inf', 'lr must be a finite number'), ('--lr', 'nan', 'lr must be a finite number'),
    ('--lr=-inf', None, 'lr must be a finite number'), ('--lr', '0', 'lr must be positive'), ('--lr', '-0.1', 'lr must be positive'),
    ('--weight-decay', 'nan', 'weight_decay must be a finite number'), ('--weight-decay', '-1', 'weight_decay must be non-negative'),
    ('--gamma', 'nan', 'gamma must be a finite number'), ('--gamma', '-1', 'gamma must be in (0, 1]'), ('--gamma', '0', 'gamma must be in (0, 1]'),
    ('--gamma', '2', 'gamma must be in (0, 1]'), ('--momentum', '1', 'momentum must be in [0, 1)'), ('--momentum', '-0.5', 'momentum must be in [0, 1)'),
    ('--momentum', 'nan', 'momentum must be a finite number'), ('--warmup-epochs', 'nan', 'warmup_epochs must be a finite number'),
    ('--warmup-epochs', '-1', 'warmup_epochs must be non-negative'), ('--warmup-epochs', 'inf', 'warmup_epochs must be a finite number'),
    ('--label-smoothing', '1', 'label_smoothing must be in [0, 1)'), ('--label-smoothing', 'nan', 'label_smoothing must be a finite number'),
    ('--end-step', '-1', 'end_step must be non-negative'), ('--step-size', '0', 'step_size must be a positive integer'),
    ('--milestones', '0', 'every item of milestones must be a positive integer'), ('--milestones', '5,x', "invalid"),
    ('--val-fraction', '0', 'val_fraction must be in (0, 1)'), ('--val-fraction', '1', 'val_fraction must be in (0, 1)'),
    ('--val-fraction', 'nan', 'val_fraction must be a finite number'), ('--image-size', '4', 'image_size must be >= 8'),
    ('--density', '0', 'density must be in (0, 1]'), ('--density', '1.5', 'density must be in (0, 1]'),
    ('--density', 'nan', 'density must be a finite number'), ('--density=-inf', None, 'density must be a finite number'),
    ('--prune-rate', '0', 'prune_rate must be in (0, 1]'), ('--prune-rate', 'nan', 'prune_rate must be a finite number'),
    ('--update-frequency', '0', 'update_frequency must be a positive integer'), ('--batch-size', '0', 'batch_size must be a positive integer'),
    ('--batch-size', '-8', 'batch_size must be a positive integer'), ('--seed', '-1', 'seed must be non-negative'),
    ('--epochs', '0', 'epochs must be a positive integer'), ('--epochs', '-3', 'epochs must be a positive integer'),
    ('--epochs', 'ten', "invalid int value: 'ten'"), ('--epochs', '1.5', "invalid int value: '1.5'"),
    ('--epochs', 'True', "invalid int value: 'True'"), ('--lr', 'fast', "invalid float value: 'fast'"),
    ('--lr', '', "invalid float value: ''"), ('--workers', '-1', 'workers must be non-negative'),
]

CHOICES = [  # names that are not among the registered ones
    ('--model', 'resnet21', "unknown model 'resnet21'"), ('--model', 'wrn-27-10', 'wrn depth must satisfy'),
    ('--dataset', 'imagenet-21k', "unknown dataset 'imagenet-21k'"), ('--growth', 'snip', "unknown growth rule for growth 'snip': choose one of"),
    ('--lr-schedule', 'linear', "'linear': choose one of"), ('--distribution', 'erk2', "'erk2': choose one of er, erk, uniform"),
    ('--prune-rate-schedule', 'fast', "'fast': choose one of"), ('--dst-preset', 'dirty', "'dirty'"),
    ('--device', 'tpu', "unknown device 'tpu'"), ('--nesterov', 'maybe', 'unrecognized arguments: maybe'),
]

STUDY_ONLY = [
    S('--members', '0', msg='members must be at least 1'), S('--members', '1.5', msg="invalid int value: '1.5'"),
    S('--methods', 'dense,snip', msg="unknown method 'snip'"), S('--methods', 'dense,dense', msg="gives the row 'dense' twice"),
    S('--methods', '', msg='methods'), S('--preset', 'huge', msg="unknown preset 'huge'"),
    S('--methods', 'edst-ensemble', '--edst-epochs', '6', '--edst-explore-epochs', '6', msg='t_ex < E'),
    S('--edst-epochs', '-1', msg='edst_epochs must be non-negative, got -1'), S('--pf-epochs', '-1', msg='pf_epochs must be non-negative'),
    S('--imp-levels', '-1', msg='imp_levels must be non-negative'), S('--edst-explore-epochs', '-2', msg='edst_explore_epochs must be non-negative'),
    S('--explore-rate', 'nan', msg='explore_rate must be a finite number'), S('--explore-rate', '1.5', msg='explore_rate must be in (0, 1]'),
    S('--explore-growth', 'snip', msg="'snip'"), S('--pf-lr', 'inf', msg='pf_lr must be a finite number'),
    S('--pf-lr', '0', msg='pf_lr must be positive'), S('--ece-variant', 'best', msg="'best'"), S('--corruption-n', '-1', msg='corruption_n'),
    S('--ood-n', '-5', msg='ood_n'), S('--edst-reset-best', 'maybe', msg='unrecognized arguments: maybe'),
    S('--data-root', '/nonexistent/data', msg="'/nonexistent/data' is not a folder"),
    S('--dataset', 'cifar10', msg='cifar10'), S('--corruption-root', '/nonexistent/c', msg='is not a folder'),
    S('--resume', '--force', msg='contradict'), S('--epochs', '2', msg='holds a study with other settings'),
    S('--resume', '--epochs', '2', msg='--epochs 2 differs from its 1'), S('--nope', msg='unrecognized arguments: --nope'),
    S('--out', '{X}', msg='is not empty and holds no study (thesis.tex)'), S('--out', '{R}/file/s', msg='cannot write'),
    S('--out', '{R}/new', '--resume', msg='nothing to resume'), S('--out', '{H}', msg='is in use by pid'),
    S('--out', '{H}', '--resume', msg='is in use by pid'), S('--out', '{H}', '--force', msg='is in use by pid'),
    S('--out', '{R}/new', '--workers', 'two', msg="invalid int value: 'two'"), S('--preset', msg='expected one argument'),
]

TRAIN_ONLY = [
    T('--out', '{HT}', msg='is in use by pid'), T('--data-root', '/nonexistent/data', msg='is not a folder'),
    T('--nope', msg='unrecognized arguments: --nope'), T('--backend', 'mpi2', msg="'mpi2'"),
    T('--dataset', 'cifar10', msg='cifar10'), T('--out', '{R}/file/runs', msg='file'),
    T('--tiny', 'yes', msg='unrecognized arguments: yes'),
]

EVAL = [
    E('{S}/nowhere/manifest.json', msg='does not exist'), E('{S}', msg='is a folder without a manifest.json: pass one of its ensembles'),
    E('{R}', msg='is a folder without a manifest.json'), E('{bad_json}', msg='not valid JSON'),
    E('{edited}', msg='checksum mismatch'), E('{nosum}', msg='no checksum'), E('{gone}', msg='points to 1 missing ticket'),
    E('{M}', '--corruption-n', '-1', msg='corruption_n must be non-negative'), E('{M}', '--ood-n', '-1', msg='ood_n must be non-negative'),
    E('{M}', '--ood-n', 'nan', msg="invalid int value: 'nan'"), E('{M}', '--ece-variant', 'best', msg="'best'"),
    E('{M}', '--device', 'tpu', msg="unknown device 'tpu'"), E('{M}', '--data-root', '/nonexistent/d', msg='is not a folder'),
    E('{M}', '--corruption-root', '/nonexistent/c', msg='drop --corruption-root'), E('{M}', '--nope', msg='unrecognized arguments'),
    E(msg='the following arguments are required: manifest'), E('{M}', '{M}', msg='unrecognized arguments'),
    E('{held_manifest}', '--ood-n', '30', msg='is in use by pid'), E('{M}', '--ood-n', '30', '--out', '{R}/file/eval', msg='file'),
    E('{M}', '--cache', 'no', msg='unrecognized arguments: no'), E('{R}/thesis/thesis.tex', msg='thesis.tex'),
]

DATA = [S('--dataset', 'mnist', '--data-root', f'{{mnist:{c}}}', msg=IDX_CASES[c][2]) for c in IDX_CASES] + \
       [T('--dataset', 'mnist', '--data-root', f'{{mnist:{c}}}', msg=IDX_CASES[c][2]) for c in ('0-byte images', 'zero images')] + \
       [S('--dataset', 'cifar10', '--data-root', f'{{cifar:{c}}}', msg=CIFAR_CASES[c][2]) for c in CIFAR_CASES]

def _flag(f, v): return [f] if v is None else [f, v]


CASES = ([S(*_flag(f, v), msg=m) for f, v, m in NUMERIC + CHOICES] + [T(*_flag(f, v), msg=m) for f, v, m in NUMERIC + CHOICES]
         + STUDY_ONLY + TRAIN_ONLY + EVAL + DATA + _api())


def counts() -> dict:
    "How many bad inputs the table holds, per command (for the README, which states them)"
    out = {}
    for cmd, *_ in CASES: out[cmd] = out.get(cmd, 0) + 1
    return dict(out, total=len(CASES), data=len(DATA))


def digest(root: Path) -> dict:
    "every path under `root`: a file's SHA-256, 'dir' for a folder"
    return {str(p.relative_to(root)): 'dir' if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob('*'))}


def holder(*folders):
    "Another process holding `folders` (as a running command does) until its stdin closes"
    code = ("import sys, contextlib; from freetickets_nb.safety import hold_folder\n"
            "with contextlib.ExitStack() as s:\n"
            "    for f in sys.argv[1:]: s.enter_context(hold_folder(f))\n"
            "    print('held', flush=True); sys.stdin.read()")
    p = subprocess.Popen([sys.executable, '-c', code, *map(str, folders)], env=ENV, text=True,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert p.stdout.readline() == 'held\n'
    return p


@pytest.fixture(scope='module')
def root(tmp_path_factory):
    "A finished study, a finished `ft-train` run, damaged data, odd files; copies of the runs held by another process"
    from freetickets_nb import study, train
    r = tmp_path_factory.mktemp('bad')
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('FREETICKETS_DEVICE', 'cpu')
        study.main(['--out', str(r/'S'), *STUDY, '--preset', 'demo'])
        train.cli(['--tiny', '--out', str(r/'T')])
    p = dict(R=r, S=r/'S', T=r/'T', M=r/'S'/'dense'/'manifest.json', X=r/'thesis')
    p['X'].mkdir(); (p['X']/'thesis.tex').write_text('...')
    (r/'file').write_text('a file, not a folder')
    p['bad_json'] = r/'bad.json'; p['bad_json'].write_text('{"format": "freetickets_nb.manifest/1", "members": [')
    text = p['M'].read_text()
    (r/'edit').mkdir()
    p['edited'] = r/'edit'/'manifest.json'
    p['edited'].write_text(text.replace('"seed": 0', '"seed": 7'))  # by hand: the checksum no longer matches
    m = json.loads(text); m.pop('_sha256')
    m['members'] = [dict(x, ticket=os.path.relpath(p['M'].parent/x['ticket'], r/'edit')) for x in m['members']]
    p['nosum'] = r/'edit'/'nosum.json'; p['nosum'].write_text(json.dumps(m))
    m['members'][0]['ticket'] = '../S/members/dense/gone/ticket.pt'
    p['gone'] = r/'edit'/'gone.json'; p['gone'].write_text(json.dumps(m))
    for c, (damage, *_) in IDX_CASES.items():
        p[f'mnist:{c}'] = d = r/'data'/'mnist'/c.replace(' ', '_')
        mnist(d); damage(d)
    for c, (damage, *_) in CIFAR_CASES.items():
        p[f'cifar:{c}'] = d = r/'data'/'cifar'/c.replace(' ', '_')
        damage(write_fake_cifar10(d))
    shutil.copytree(p['S'], r/'H'); shutil.copytree(p['T'], r/'HT')
    p['H'], p['HT'] = r/'H', r/'HT'
    p['held_manifest'] = p['H']/'dense'/'manifest.json'
    run_folder, = (p['HT']/'dst').iterdir()
    h = holder(p['H'], run_folder)
    yield p
    h.stdin.close(); h.wait(timeout=60)


def fill(a: str, p: dict) -> str:
    for k, v in sorted(p.items(), key=lambda kv: -len(kv[0])): a = a.replace(f'{{{k}}}', str(v))
    return a


def run_case(case, p, capsys):
    "`(exit status, stderr)` of one case, run in this process"
    from freetickets_nb import study, train
    from freetickets_nb.core import cli_errors
    cmd, args, _ = case
    capsys.readouterr()
    entry = {'ft-study': study.main, 'ft-train': train.cli, 'ft-eval': study.eval_main}.get(cmd)
    try:
        if entry: entry([fill(a, p) for a in args])
        else: cli_errors(lambda: args(p))()
        code = 0
    except SystemExit as e: code = e.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize('case', CASES, ids=[f'{i:03d}-{c[0]}' for i, c in enumerate(CASES)])
def test_bad_input_costs_one_line_exit_2_and_touches_nothing(root, case, capsys, monkeypatch):
    monkeypatch.setenv('FREETICKETS_DEVICE', 'cpu')
    before = digest(root['R'])
    code, err = run_case(case, root, capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith('error: '), (code, err)
    assert fill(case[2], root) in lines[0], (case[2], lines[0])
    assert digest(root['R']) == before, 'a refused command changed files'


def test_the_table_is_large_and_covers_every_command():
    c = counts()
    assert c['total'] >= 150 and all(c[k] >= 10 for k in ('ft-study', 'ft-train', 'ft-eval', 'api')), c


LAUNCH = "import sys; from freetickets_nb.launch import {0}; sys.exit({0}())"


def command(name, *args, crash=None):
    "A real `ft-study` / `ft-train` / `ft-eval` process, started as the console scripts start (`launch`)"
    env = {**ENV, **({'FREETICKETS_CRASH_AT': crash} if crash else {})}
    return subprocess.Popen([sys.executable, '-c', LAUNCH.format(name), *map(str, args)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def stopped_line(err: str, sig: str, where: str):
    lines = err.strip().splitlines()
    assert lines and lines[-1].startswith(f'stopped: {sig} received') and where in lines[-1], err
    assert 'Traceback' not in err and 'run the same command again' in lines[-1], err


@pytest.mark.parametrize('crash, sig, where', [
    ('written@eval.json:1:INT', 'SIGINT', 'evaluating dense'),  # the evaluation cached, the report not yet written
    ('write@report.md:1:TERM', 'SIGTERM', 'writing the report'),  # half-way through the report
])
def test_a_stop_during_evaluation_or_report_exits_128_plus_signal_and_the_next_run_finishes(tmp_path, crash, sig, where):
    out = tmp_path/'s'
    p = command('study', '--out', out, *STUDY, crash=crash)
    _, err = p.communicate(timeout=600)
    assert p.returncode == 128 + getattr(signal, sig), err
    stopped_line(err, sig, where)
    assert (out/'dense'/'eval.json').exists() and not list(out.rglob('*.tmp')) and not (out/'.lock').exists()
    runs = digest(out/'members')
    p = command('study', '--out', out, *STUDY)
    _, err = p.communicate(timeout=600)
    assert p.returncode == 0, err
    assert digest(out/'members') == runs  # nothing retrained
    assert (out/'report.md').exists() and 'dense' in (out/'results.csv').read_text()


def test_two_studies_on_one_folder_the_second_is_refused(tmp_path):
    out = tmp_path/'s'
    a = command('study', '--out', out, *STUDY, crash='written@study.json:1:STOP')  # holds the folder, then pauses
    t0 = time.time()
    while not (out/'study.json').exists() and time.time() - t0 < 300: time.sleep(0.1)
    try:
        b = command('study', '--out', out, *STUDY)
        _, err = b.communicate(timeout=300)
        assert b.returncode == 2 and err.count('\n') == 1 and 'Traceback' not in err, err
        assert f'is in use by pid {a.pid} on this host' in err and 'one process writes a folder at a time' in err, err
    finally: a.send_signal(signal.SIGCONT)
    _, err = a.communicate(timeout=600)
    assert a.returncode == 0, err
    assert (out/'report.md').exists() and not (out/'.lock').exists()


class Full:
    "A file whose writes fail as on a full disk"
    def __init__(self, f): self.f = f
    def write(self, b): raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    def __enter__(self): return self
    def __exit__(self, *exc): self.f.close()
    def __getattr__(self, name): return getattr(self.f, name)


@pytest.mark.parametrize('name', ['checkpoint.pt', 'report.md'])
def test_a_full_disk_is_one_line_naming_the_file_and_leaves_nothing_partial(tmp_path, name, capsys, monkeypatch):
    from freetickets_nb import study
    monkeypatch.setenv('FREETICKETS_DEVICE', 'cpu')
    fdopen = os.fdopen
    def full_for(fd, *a, **k):
        f = fdopen(fd, *a, **k)
        return Full(f) if os.path.basename(os.readlink(f'/proc/self/fd/{fd}')).startswith(f'.{name}') else f
    out = tmp_path/'s'
    with monkeypatch.context() as m:
        m.setattr(os, 'fdopen', full_for)
        with pytest.raises(SystemExit) as e: study.main(['--out', str(out), *STUDY])
    lines = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(lines) == 1 and 'Traceback' not in lines[0], lines
    assert name in lines[0] and 'No space left on device (ENOSPC)' in lines[0] and 'free space' in lines[0], lines
    assert not list(out.rglob('*.tmp')) and not list(out.rglob(name)) and not (out/'.lock').exists()
    study.main(['--out', str(out), *STUDY])  # space freed: the same command finishes
    assert (out/'report.md').exists()


def readme_text() -> str:
    "The README's counts, from the tables of the tests (tools/readme.py renders them from nbs/index.ipynb)"
    from test_reliability import KILLS
    c, kills = counts(), [code for _, code in KILLS]
    n = lambda s: sum(k == (128 + s if s != signal.SIGKILL else -s) for k in kills)
    return (f"Counted by the tests: {c['total']} bad inputs ({c['ft-study']} to `ft-study`, {c['ft-train']} to `ft-train`, "
            f"{c['ft-eval']} to `ft-eval`, {c['api']} calls of the Python API; {c['data']} of them damaged data files), "
            f"each refused with one line and exit status 2 and leaving every file byte for byte as it was; one study "
            f"stopped {len(kills)} times ({n(signal.SIGKILL)} SIGKILL, {n(signal.SIGTERM)} SIGTERM, {n(signal.SIGINT)} "
            "SIGINT) and finished identical to an uninterrupted run; a stop during the evaluation and during the report; "
            "two studies on one folder; a full disk.")


def test_readme_states_the_counts():
    from conftest import ROOT
    assert readme_text() in (ROOT/'README.md').read_text(), 'README out of date: run nbs/index.ipynb, then python tools/readme.py'
