"`ft-train` as a user runs it: console script and `python -m`, in fresh processes."
import json, os, subprocess, sys
from conftest import ROOT, BIN

ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'FREETICKETS_DEVICE': 'cpu', 'MPLBACKEND': 'Agg', 'COLUMNS': '200'}


def run(*args, cwd=None):
    return subprocess.run([*args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=300)


def test_tiny_run_writes_run_folder_and_resumes(tmp_path):
    r = run(str(BIN/'ft-train'), '--tiny', '--out', str(tmp_path))
    assert r.returncode == 0, r.stderr
    runs = list(tmp_path.glob('dst/*'))
    assert len(runs) == 1
    assert sorted(p.name for p in runs[0].iterdir()) == ['checkpoint.prev.pt', 'checkpoint.pt', 'config.json', 'history.csv', 'metrics.json', 'ticket.pt']
    metrics = json.loads((runs[0]/'metrics.json').read_text())
    assert metrics['epochs'] == 3 and 0.5 < metrics['test_acc'] <= 1
    assert 'test acc' in r.stdout and 'Traceback' not in r.stderr
    again = run(str(BIN/'ft-train'), '--tiny', '--out', str(tmp_path))
    assert again.returncode == 0, again.stderr
    assert 'is complete' in again.stdout and 'epoch 1 ' not in again.stdout
    assert json.loads((runs[0]/'metrics.json').read_text())['test_acc'] == metrics['test_acc']


def test_help_lists_config_flags():
    for cmd in ([str(BIN/'ft-train'), '--help'], [sys.executable, '-m', 'freetickets_nb.train', '--help']):
        r = run(*cmd)
        assert r.returncode == 0, r.stderr
        for flag in ('--density', '--growth', '--update-frequency', '--tiny', '--dst-preset'): assert flag in r.stdout
        assert 'global density d of the masks' in r.stdout


def test_invalid_density_is_one_line_and_exit_2(tmp_path):
    r = run(str(BIN/'ft-train'), '--tiny', '--density', '1.5', '--out', str(tmp_path))
    assert r.returncode == 2
    assert r.stderr.strip().startswith('error: density must be in (0, 1]')
    assert len(r.stderr.strip().splitlines()) == 1 and 'Traceback' not in r.stderr
    assert not any(tmp_path.iterdir())


def test_python_m_runs_tiny(tmp_path):
    r = run(sys.executable, '-m', 'freetickets_nb.train', '--tiny', '--growth', 'random', '--out', str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert len(list(tmp_path.glob('dst/*/ticket.pt'))) == 1


def test_old_flag_spellings_are_hidden_aliases():
    "the snake-case flags and the former `--preset` of ft-train still parse, as the one kebab-case spelling does"
    from freetickets_nb.core import config_parser, config_kwargs
    from freetickets_nb.train import TrainConfig, TrainOptions
    p = config_parser('ft-train', TrainConfig, TrainOptions)
    old = p.parse_args(['--batch_size', '32', '--update_frequency', '10', '--preset', 'reference_cifar', '--data_root', 'd',
                        '--check_masks', 'false', '--wd_on_norm_and_bias', 'false'])
    new = p.parse_args(['--batch-size', '32', '--update-frequency', '10', '--dst-preset', 'reference_cifar', '--data-root', 'd',
                        '--no-check-masks', '--no-wd-on-norm-and-bias'])
    assert vars(old) == vars(new)
    assert config_kwargs(new, TrainConfig) == dict(batch_size=32, update_frequency=10, dst_preset='reference_cifar', wd_on_norm_and_bias=False)
    assert '--batch_size' not in p.format_help() and '--preset' not in p.format_help()


def test_bad_thread_settings_are_one_line_and_exit_2(tmp_path):
    "--threads below 0, or a $FREETICKETS_THREADS that is not a number: one line, exit 2, nothing written"
    r = run(str(BIN/'ft-train'), '--tiny', '--threads', '-1', '--out', str(tmp_path))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert 'threads' in r.stderr and 'Traceback' not in r.stderr
    bad = subprocess.run([str(BIN/'ft-study'), '--preset', 'demo', '--out', str(tmp_path/'s')], capture_output=True,
                         text=True, timeout=300, env={**ENV, 'FREETICKETS_THREADS': 'two'})
    assert bad.returncode == 2 and bad.stderr.strip().startswith('error: FREETICKETS_THREADS must be a whole number')
    assert len(bad.stderr.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())
