"""Runs that survive: real processes killed (SIGKILL) or stopped (SIGTERM) at chosen moments and started again with the same
command must finish with the results of an uninterrupted run, bit for bit on the CPU; damaged files are named; bad input costs
one line and exit status 2 and overwrites nothing; the same seed gives the same run in fresh processes."""
import hashlib, json, os, signal, subprocess, time
from pathlib import Path
import pytest
import torch
from conftest import BIN

ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'FREETICKETS_DEVICE': 'cpu', 'MPLBACKEND': 'Agg'}
for k in ('FREETICKETS_CRASH_AT', 'FREETICKETS_CRASH_LOG', 'FREETICKETS_DETERMINISTIC'): ENV.pop(k, None)
# every kind of training run of a study, small: dense (+ its PF pruning), DST and EDST members, an IMP chain with pools
STUDY = ['--preset', 'demo', '--methods', 'dense,dst-ensemble,edst-ensemble,pf-ensemble,lottery-pools', '--members', '2', '--epochs', '4',
         '--density', '0.64', '--pf-epochs', '1', '--corruption-n', '40', '--ood-n', '40', '--update-frequency', '10']
TRAIN = ['--dataset', 'digits', '--model', 'mlp', '--epochs', '12', '--batch-size', '32', '--lr-schedule', 'cosine', '--update-frequency', '10']


def run(*args, crash=None, log=None, timeout=600):
    env = {**ENV, **({'FREETICKETS_CRASH_AT': crash} if crash else {}), **({'FREETICKETS_CRASH_LOG': str(log)} if log else {})}
    return subprocess.run([*map(str, args)], env=env, capture_output=True, text=True, timeout=timeout)


def flat(o, k='', into=None) -> dict:
    "key path → tensor for every tensor inside nested dicts and lists"
    into = {} if into is None else into
    if isinstance(o, torch.Tensor): into[k] = o
    elif isinstance(o, dict): [flat(v, f'{k}/{kk}', into) for kk, v in o.items()]
    elif isinstance(o, (list, tuple)): [flat(v, f'{k}/{i}', into) for i, v in enumerate(o)]
    return into


def same_tensors(a, b) -> bool:
    fa, fb = flat(a), flat(b)
    return sorted(fa) == sorted(fb) and all(torch.equal(fa[k], fb[k]) for k in fa)


def tensors(folder: Path) -> dict:
    "relative path → every tensor of every `.pt` file under `folder` but the checkpoints (whose content depends on where a run stopped)"
    return {str(f.relative_to(folder)): flat(torch.load(f, weights_only=True, map_location='cpu'))
            for f in sorted(folder.rglob('*.pt')) if not f.name.startswith('checkpoint')}


def same_results(a: Path, b: Path):
    for name in ('results.csv', 'barriers.csv'):
        assert (a/name).read_text() == (b/name).read_text(), name
    ta, tb = tensors(a), tensors(b)
    assert sorted(ta) == sorted(tb)
    for f in ta:
        assert sorted(ta[f]) == sorted(tb[f]), f
        for k in ta[f]: assert torch.equal(ta[f][k], tb[f][k]), (f, k)
    assert not list(b.rglob('*.tmp')), 'temporary files left behind'


@pytest.fixture(scope='module')
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp('ref')/'s'
    log = out.parent/'crash.log'
    r = run(BIN/'ft-study', *STUDY, '--out', out, log=log)
    assert r.returncode == 0, r.stderr
    return out, log.read_text().splitlines()


def test_crash_log_lists_the_moments_of_a_run(reference):
    _, log = reference
    points = {line.split()[0] for line in log}
    assert points == {'write', 'written', 'step', 'epoch'}
    details = ' '.join(log)
    for what in ('dst-ensemble 2/2', 'edst-ensemble', 'pf-ensemble', 'IMP level 2', 'ticket_2.pt', 'manifest.json', 'eval.json', 'report.md'):
        assert what in details, what


# one study folder, killed again and again: every restarted process skips the finished work and dies at the next moment
KILLS = [
    ('step@dst-ensemble 1/2 epoch 2:5', -signal.SIGKILL),  # inside an epoch of a DST member
    ('write@checkpoint.pt:3', -signal.SIGKILL),  # a checkpoint complete on disk but not yet in place
    ('written@ticket_1.pt:1', -signal.SIGKILL),  # EDST: ticket 1 written, the epoch's checkpoint not yet
    ('step@edst-ensemble epoch 6:3:TERM', 128 + signal.SIGTERM),  # SIGTERM in the middle of an EDST phase: clean stop
    ('step@pf-ensemble 2/2:4', -signal.SIGKILL),  # fine-tuning the second PF member
    ('epoch@IMP level 1:2', -signal.SIGKILL),  # IMP chain: after a level's epoch checkpoint
    ('step@IMP level 3:7:INT', 128 + signal.SIGINT),  # Ctrl-C in the last level
    ('written@eval.json:1', -signal.SIGKILL),  # evaluation: one method cached, the others not
    ('write@report.md:1', -signal.SIGKILL),  # the report half-way
]


def test_killed_and_stopped_study_resumes_to_identical_results(reference, tmp_path):
    ref, _ = reference
    out = tmp_path/'s'
    for crash, code in KILLS:
        r = run(BIN/'ft-study', *STUDY, '--out', out, crash=crash)
        assert r.returncode == code, (crash, r.returncode, r.stderr[-2000:])
        if code > 0:  # a clean stop: one line naming the signal and how to resume
            assert r.stderr.strip().splitlines()[-1].startswith('stopped: SIG') and 'run the same command again' in r.stderr, r.stderr
            assert 'Traceback' not in r.stderr
    r = run(BIN/'ft-study', *STUDY, '--out', out)
    assert r.returncode == 0, r.stderr
    same_results(ref, out)


def test_sigterm_from_outside_stops_cleanly_and_resumes(tmp_path):
    ref, out = tmp_path/'ref', tmp_path/'run'
    assert run(BIN/'ft-train', *TRAIN, '--out', ref).returncode == 0
    env = {**ENV}
    p = subprocess.Popen([str(BIN/'ft-train'), *TRAIN, '--out', str(out)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while not list(out.glob('dst/*/checkpoint.pt')) and time.time() - t0 < 120: time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 128 + signal.SIGTERM, err
    assert err.strip().splitlines()[-1].startswith('stopped: SIGTERM received') and 'Traceback' not in err
    run_dir, = out.glob('dst/*')
    assert torch.load(run_dir/'checkpoint.pt', weights_only=True)['epoch'] < 12
    assert run(BIN/'ft-train', *TRAIN, '--out', out).returncode == 0
    ref_dir, = ref.glob('dst/*')
    assert (ref_dir/'metrics.json').read_text() == (run_dir/'metrics.json').read_text()
    assert (ref_dir/'history.csv').read_text() == (run_dir/'history.csv').read_text()  # the stopped epoch's LR and loss too
    a, b = torch.load(ref_dir/'ticket.pt', weights_only=True), torch.load(run_dir/'ticket.pt', weights_only=True)
    assert same_tensors(a['model'], b['model']) and same_tensors(a['masks'], b['masks'])


def test_damaged_checkpoint_falls_back_and_damaged_ticket_is_named(tmp_path):
    out = tmp_path/'run'
    r = run(BIN/'ft-train', *TRAIN, '--out', out, crash='epoch:5')  # killed after the 5th epoch's checkpoint
    assert r.returncode == -signal.SIGKILL
    run_dir, = out.glob('dst/*')
    ck = run_dir/'checkpoint.pt'
    ck.write_bytes(ck.read_bytes()[:ck.stat().st_size // 2])  # truncated, as by a full disk
    r = run(BIN/'ft-train', *TRAIN, '--out', out)
    assert r.returncode == 0, r.stderr
    assert 'checkpoint.pt' in r.stderr and 'resumed from the previous checkpoint' in r.stderr and '(epoch 4)' in r.stderr
    ref = tmp_path/'ref'
    assert run(BIN/'ft-train', *TRAIN, '--out', ref).returncode == 0
    ref_dir, = ref.glob('dst/*')
    assert (ref_dir/'metrics.json').read_text() == (run_dir/'metrics.json').read_text()
    # a finished member whose ticket was damaged afterwards: the study names the file and the fix
    s = tmp_path/'s'
    args = ['--preset', 'demo', '--methods', 'dst-ensemble', '--members', '2', '--epochs', '2', '--corruption-n', '20', '--ood-n', '20', '--out', s]
    assert run(BIN/'ft-study', *args).returncode == 0
    t = sorted((s/'members').rglob('ticket.pt'))[0]
    b = bytearray(t.read_bytes()); b[len(b) // 2] ^= 0xFF; t.write_bytes(bytes(b))
    r = run(BIN/'ft-study', *args)
    assert r.returncode == 2 and 'Traceback' not in r.stderr
    assert r.stderr.count('\n') == 1 and str(t) in r.stderr and 'checksum mismatch' in r.stderr and 'to retrain this run' in r.stderr


def test_divergence_stops_with_epoch_iteration_and_last_finite_loss(tmp_path):
    r = run(BIN/'ft-train', *TRAIN[:-6], '--lr', '1e6', '--density', '1', '--out', tmp_path)
    assert r.returncode == 2 and r.stderr.count('\n') == 1 and 'Traceback' not in r.stderr
    for part in ('diverged', 'at epoch 1, iteration', 'last finite loss', 'lower the learning rate'): assert part in r.stderr, r.stderr


def digest(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob('*')) if p.is_file()}


@pytest.fixture(scope='module')
def finished(tmp_path_factory):
    "A finished tiny study, and its file digests: refused commands must leave it as it is"
    out = tmp_path_factory.mktemp('done')/'s'
    args = ['--preset', 'demo', '--methods', 'dense', '--epochs', '1', '--corruption-n', '20', '--ood-n', '20', '--out', out]
    assert run(BIN/'ft-study', *args).returncode == 0
    return out, digest(out)


class Result:
    def __init__(self, returncode, stderr): self.returncode, self.stderr = returncode, stderr


@pytest.fixture
def inproc(capsys, monkeypatch):
    "Run a console entry point in this process (no 4-second import per case): `inproc('ft-study', *args)` → returncode, stderr"
    monkeypatch.setenv('FREETICKETS_DEVICE', 'cpu')
    from freetickets_nb import study, train
    entries = {'ft-study': study.main, 'ft-train': train.cli, 'ft-eval': study.eval_main}
    def _run(entry, *args):
        capsys.readouterr()
        try: entries[entry]([*map(str, args)]); code = 0
        except SystemExit as e: code = e.code
        return Result(code, capsys.readouterr().err)
    return _run


def one_line_exit_2(r, *msgs):
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: ') and 'Traceback' not in r.stderr, r.stderr
    for m in msgs: assert m in lines[0], (m, lines[0])


@pytest.mark.parametrize('args, msgs', [
    (['--density', '0'], ['density must be in (0, 1]']),
    (['--density', '1.5'], ['density must be in (0, 1]']),
    (['--members', '0'], ['members must be at least 1']),
    (['--epochs', '0'], ['epochs must be a positive integer']),
    (['--epochs', 'ten'], ["argument --epochs: invalid int value: 'ten'", 'ft-study --help']),
    (['--model', 'resnet21'], ["unknown model 'resnet21'", 'choose one of']),
    (['--model', 'wrn-27-10'], ['wrn depth must satisfy']),
    (['--dataset', 'imagenet-21k'], ["unknown dataset 'imagenet-21k'"]),
    (['--methods', 'dense,snip'], ["unknown method 'snip'"]),
    (['--preset', 'huge'], ["unknown preset 'huge'"]),
    (['--methods', 'edst-ensemble', '--edst-epochs', '6', '--edst-explore-epochs', '6'], ['t_ex < E']),
    (['--data-root', '/nonexistent/data'], ["'/nonexistent/data' is not a folder", '--download']),
    (['--dataset', 'cifar10'], ['cifar10']),  # not on this machine: the message names where it looked and --download
    (['--corruption-root', '/nonexistent/c'], ['is not a folder']),
    (['--resume', '--force'], ['contradict']),
    (['--device', 'tpu'], ["unknown device 'tpu'"]),
    (['--epochs', '2'], ['holds a study with other settings', '--resume', '--force']),
    (['--resume', '--epochs', '2'], ['--epochs 2 differs from its 1', '--force']),
])
def test_ft_study_bad_input(finished, inproc, args, msgs):
    out, before = finished
    args = ['--out', out, '--methods', 'dense', '--corruption-n', '20', '--ood-n', '20', *args]
    if '--epochs' not in args: args += ['--epochs', '1']
    one_line_exit_2(inproc('ft-study', *args), *msgs)
    assert digest(out) == before, 'a refused command changed the finished study'


def test_bad_input_in_a_real_process(finished, tmp_path):
    "the same contract from the console scripts themselves (the matrices below call their entry points in-process)"
    out, before = finished
    one_line_exit_2(run(BIN/'ft-study', '--out', out, '--density', '1.5'), 'density must be in (0, 1]')
    one_line_exit_2(run(BIN/'ft-study', '--out', out, '--epochs', 'ten'), "argument --epochs: invalid int value: 'ten'", 'ft-study --help')
    one_line_exit_2(run(BIN/'ft-train', '--out', tmp_path, '--model', 'vit'), "unknown model 'vit'")
    one_line_exit_2(run(BIN/'ft-eval', tmp_path/'none.json'), 'does not exist')
    assert digest(out) == before


def test_ft_study_output_folder_checks(tmp_path, inproc):
    (tmp_path/'file').write_text('a file, not a folder')
    one_line_exit_2(inproc('ft-study', '--out', tmp_path/'file'/'s'), 'cannot write to output folder', '--out')
    other = tmp_path/'thesis'; other.mkdir(); (other/'chapter1.tex').write_text('...')
    one_line_exit_2(inproc('ft-study', '--out', other), 'is not empty and holds no study (chapter1.tex)', '--force')
    assert sorted(p.name for p in other.iterdir()) == ['chapter1.tex']
    one_line_exit_2(inproc('ft-study', '--out', tmp_path/'new', '--resume'), 'nothing to resume')


@pytest.mark.parametrize('args, msgs', [
    (['--density', '0'], ['density must be in (0, 1]']),
    (['--density', '2'], ['density must be in (0, 1]']),
    (['--epochs', '0'], ['epochs must be a positive integer']),
    (['--epochs', 'abc'], ["invalid int value: 'abc'", 'ft-train --help']),
    (['--model', 'vit'], ["unknown model 'vit'"]),
    (['--dataset', 'imagenet-21k'], ["unknown dataset 'imagenet-21k'"]),
    (['--growth', 'snip'], ['unknown growth']),
    (['--data-root', '/nonexistent/data'], ['is not a folder']),
    (['--nope'], ['unrecognized arguments: --nope']),
])
def test_ft_train_bad_input(tmp_path, inproc, args, msgs):
    one_line_exit_2(inproc('ft-train', '--out', tmp_path/'runs', *args), *msgs)
    assert not (tmp_path/'runs').exists() or not any((tmp_path/'runs').rglob('*.pt'))


def test_ft_train_refuses_a_checkpoint_of_another_config(tmp_path):
    r = run(BIN/'ft-train', *TRAIN, '--out', tmp_path, crash='epoch:2')
    run_dir, = tmp_path.glob('dst/*')
    (run_dir/'config.json').write_text((run_dir/'config.json').read_text())
    ck = torch.load(run_dir/'checkpoint.pt', weights_only=True)
    ck['config']['lr'] = 0.5  # as if another run had written here
    torch.save(ck, run_dir/'checkpoint.pt')
    before = digest(run_dir)
    one_line_exit_2(run(BIN/'ft-train', *TRAIN, '--out', tmp_path), 'written for another config (lr: 0.5 there, 0.1 here)', 'another run folder')
    assert digest(run_dir) == before


def test_ft_eval_damaged_and_missing(finished, tmp_path, inproc):
    out, _ = finished
    (tmp_path/'bad.json').write_text('{"format": "freetickets_nb.manifest/1", "members": [')
    one_line_exit_2(inproc('ft-eval', tmp_path/'bad.json'), 'bad.json', 'not valid JSON')
    man = out/'dense'/'manifest.json'
    edited = tmp_path/'dense'/'manifest.json'; edited.parent.mkdir()
    edited.write_text(man.read_text().replace('"seed": 0', '"seed": 7'))  # hand-edited: the checksum no longer matches
    one_line_exit_2(inproc('ft-eval', edited), 'checksum mismatch')
    gone = json.loads(man.read_text()); gone.pop('_sha256')
    gone['members'][0]['ticket'] = '../members/dense/gone/ticket.pt'
    (tmp_path/'dense'/'gone.json').write_text(json.dumps(gone))
    one_line_exit_2(inproc('ft-eval', tmp_path/'dense'/'gone.json'), 'points to 1 missing ticket', 'gone/ticket.pt')
    one_line_exit_2(inproc('ft-eval', man, '--corruption-n', '-1'), 'must be non-negative')


def test_same_seed_same_run_in_fresh_processes(tmp_path):
    outs = [tmp_path/'a', tmp_path/'b', tmp_path/'c']
    for o, seed in zip(outs, ('0', '0', '1')):
        assert run(BIN/'ft-train', *TRAIN[:-6], '--epochs', '3', '--seed', seed, '--out', o).returncode == 0
    (a,), (b,), (c,) = (list(o.glob('dst/*')) for o in outs)
    assert (a/'metrics.json').read_text() == (b/'metrics.json').read_text() and (a/'history.csv').read_text() == (b/'history.csv').read_text()
    ta, tb, tc = (torch.load(d/'ticket.pt', weights_only=True) for d in (a, b, c))
    assert same_tensors(ta['masks'], tb['masks']) and same_tensors(ta['model'], tb['model'])
    assert not same_tensors(ta['masks'], tc['masks'])  # another seed: other masks (the comparison can fail)
    r = run(BIN/'ft-train', *TRAIN[:-6], '--epochs', '3', '--deterministic', '--out', tmp_path/'d')
    assert r.returncode == 0, r.stderr
    (d,) = (tmp_path/'d').glob('dst/*')
    assert (d/'metrics.json').read_text() == (a/'metrics.json').read_text()  # --deterministic changes kernels, not results, on the CPU


def test_temporary_file_of_a_killed_write_is_cleaned_up(tmp_path):
    r = run(BIN/'ft-train', *TRAIN, '--epochs', '3', '--out', tmp_path, crash='write@checkpoint.pt:2')  # killed before the rename
    assert r.returncode == -signal.SIGKILL
    run_dir, = tmp_path.glob('dst/*')
    left, = run_dir.glob('.checkpoint.pt.*.tmp')  # the complete temporary file; checkpoint.pt itself is still epoch 1's
    assert torch.load(run_dir/'checkpoint.pt', weights_only=True)['epoch'] == 1
    assert run(BIN/'ft-train', *TRAIN, '--epochs', '3', '--out', tmp_path).returncode == 0
    assert not left.exists() and not list(run_dir.glob('*.tmp'))
