"""Streamed image folders on the CPU, on JPEG files written by the tests: `ft-train` on a folder, the held-out split,
0 vs 2 workers, two gloo ranks, a run stopped and killed mid-epoch with workers, bad folders (one line, exit 2),
ImageNet-C / -A / -R / -O layouts on fake folders."""
import gc, os, socket, subprocess, tempfile
from pathlib import Path
import pytest
import torch
import torch.multiprocessing as mp
from conftest import BIN
from freetickets_nb.data import get_dataset
from freetickets_nb.imagefolder import write_image_folder, class_subset, corruption_cells, ood_subset, restrict

ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'FREETICKETS_DEVICE': 'cpu', 'MPLBACKEND': 'Agg'}
for k in ('FREETICKETS_CRASH_AT', 'FREETICKETS_CRASH_LOG', 'FREETICKETS_DETERMINISTIC'): ENV.pop(k, None)


@pytest.fixture(scope='module')
def pets(tmp_path_factory):
    "A folder of real JPEGs: 3 classes × 12 training and 4 test images (val/ as the test folder)"
    return write_image_folder(tmp_path_factory.mktemp('pets'), n={'train': 12, 'val': 4}, size=(36, 44))


class Result:
    def __init__(self, returncode, stdout, stderr): self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def ft_train(capsys, monkeypatch):
    "`ft-train` in this process: `ft_train(*args)` → returncode, stdout, stderr"
    monkeypatch.setenv('FREETICKETS_DEVICE', 'cpu')
    from freetickets_nb import train
    def _run(*args):
        capsys.readouterr()
        try: train.cli([*map(str, args)]); code = 0
        except SystemExit as e: code = e.code
        out = capsys.readouterr()
        return Result(code, out.out, out.err)
    return _run


def test_ft_train_resnet18_one_epoch_on_a_folder_of_jpegs(tmp_path, ft_train):
    root = write_image_folder(tmp_path/'data', ('ant', 'bee'), n={'train': 8, 'test': 2}, size=(40, 40))
    r = ft_train('--dataset', 'imagefolder', '--data-root', root, '--image-size', '32', '--model', 'resnet18',
                 '--epochs', '1', '--batch-size', '8', '--out', tmp_path/'runs')
    assert r.returncode == 0, r.stderr
    run, = (tmp_path/'runs').glob('dst/*')
    assert {'ticket.pt', 'metrics.json', 'checkpoint.pt'} <= {p.name for p in run.iterdir()}
    assert 'test acc' in r.stdout


def test_get_dataset_reports_classes_and_split_sizes_and_a_deterministic_disjoint_holdout(pets):
    d = get_dataset('imagefolder', root=pets, val_fraction=0.25, seed=3, image_size=32)
    assert repr(d) == ("DataBundle('imagefolder': train=27, val=9, test=12, classes=3 (cat, dog, fish), "
                       "shape=(3, 32, 32), streamed)")
    tr, va = set(d.train.indices.tolist()), set(d.val.indices.tolist())
    assert not tr & va and tr | va == set(range(36))
    assert torch.equal(get_dataset('imagefolder', root=pets, val_fraction=0.25, seed=3).val.indices, d.val.indices)
    assert not torch.equal(get_dataset('imagefolder', root=pets, val_fraction=0.25, seed=4).val.indices, d.val.indices)


def _epochs(bundle, split='train', n=2):
    dl = bundle.loader(split, 8, generator=torch.Generator().manual_seed(5))
    return [[(x, y) for x, y in dl] for _ in range(n)]


def test_batches_are_the_same_with_0_and_2_workers(pets):
    b0 = get_dataset('imagefolder', root=pets, image_size=24, workers=0)
    b2 = get_dataset('imagefolder', root=pets, image_size=24, workers=2)
    for split in ('train', 'test'):
        e0, e2 = _epochs(b0, split), _epochs(b2, split)
        for a, b in zip(sum(e0, []), sum(e2, [])):
            assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        if split == 'train':
            assert not torch.equal(torch.cat([x for x, _ in e0[0]]), torch.cat([x for x, _ in e0[1]])), 'new augmentation'


# --- two gloo ranks -------------------------------------------------------------------------------------------

def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


def _rank(rank, world, port, root, out):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR='127.0.0.1',
                      MASTER_PORT=str(port), FREETICKETS_DEVICE='cpu', OMP_NUM_THREADS='1')
    torch.set_num_threads(1)
    from freetickets_nb import distributed as D
    from freetickets_nb.train import Trainer, TrainConfig
    D.setup_dist()
    data = get_dataset('imagefolder', root=root, image_size=8, workers=1)
    dl = data.loader('train', 8, generator=torch.Generator().manual_seed(1), rank=rank, world=world)
    seen = [[] for _ in range(2)]
    for e in range(2):
        for _ in dl: seen[e].append(dl.last_index)
    cfg = TrainConfig(dataset='imagefolder', model='mlp', image_size=8, epochs=1, batch_size=8, density=1.0,
                      lr_schedule='constant')
    tr = Trainer(cfg, device='cpu', data=data, ddp=True)
    tr.fit()
    res = dict(seen=seen, state={k: v.clone() for k, v in tr.model.state_dict().items()}, steps=tr.it)
    tr.release_ddp(); gc.collect()
    torch.save(res, f'{out}/rank{rank}.pt')
    D.cleanup_dist()


def test_two_gloo_ranks_see_every_training_sample_once_per_epoch_and_train_as_one(pets):
    with tempfile.TemporaryDirectory() as out:
        mp.start_processes(_rank, args=(2, _free_port(), str(pets), out), nprocs=2, start_method='spawn')
        r0, r1 = (torch.load(f'{out}/rank{r}.pt', weights_only=False) for r in (0, 1))
    data = get_dataset('imagefolder', root=pets, image_size=8)
    every = sorted(data.train.indices.tolist())
    for e in range(2):
        a, b = torch.cat(r0['seen'][e]).tolist(), torch.cat(r1['seen'][e]).tolist()
        assert sorted(a + b) == every and not set(a) & set(b)
        assert [len(x) for x in r0['seen'][e] + r1['seen'][e]] == [4] * 8  # 32 images: 4 global batches of 8
    assert not torch.equal(torch.cat(r0['seen'][0]), torch.cat(r0['seen'][1])), 'a new order every epoch'
    from freetickets_nb.train import Trainer, TrainConfig
    cfg = TrainConfig(dataset='imagefolder', model='mlp', image_size=8, epochs=1, batch_size=8, density=1.0,
                      lr_schedule='constant')
    single = Trainer(cfg, device='cpu', data=data); single.fit()
    assert r0['steps'] == r1['steps'] == single.it == 4
    for k, v in single.model.state_dict().items():
        assert torch.equal(r0['state'][k], r1['state'][k]) and torch.allclose(r0['state'][k], v, atol=1e-5), k


# --- stopped and killed mid-epoch, with workers -------------------------------------------------------------

def run(*args, crash=None):
    env = {**ENV, **({'FREETICKETS_CRASH_AT': crash} if crash else {})}
    return subprocess.run([str(BIN/'ft-train'), *map(str, args)], env=env, capture_output=True, text=True, timeout=300)


def test_a_run_stopped_and_killed_mid_epoch_with_workers_resumes_bit_identical(pets, tmp_path):
    args = ['--dataset', 'imagefolder', '--data-root', pets, '--image-size', '16', '--model', 'resnet20', '--epochs', '2',
            '--batch-size', '8', '--update-frequency', '3', '--lr', '0.02']
    ref = run(*args, '--workers', '0', '--out', tmp_path/'ref')
    assert ref.returncode == 0, ref.stderr
    out = tmp_path/'cut'
    stop = run(*args, '--workers', '2', '--out', out, crash='step:2:TERM')  # a stop inside epoch 1: mid-epoch checkpoint
    assert stop.returncode == 143 and 'epoch 1, iteration 2' in stop.stderr, stop.stderr
    kill = run(*args, '--workers', '2', '--out', out, crash='step:4')  # SIGKILL at iteration 6, inside epoch 2
    assert kill.returncode == -9, kill.stderr
    done = run(*args, '--workers', '2', '--out', out)
    assert done.returncode == 0 and 'resumes after epoch 1' in done.stdout, done.stderr
    (a,), (b,) = (tmp_path/'ref').glob('dst/*'), out.glob('dst/*')
    for f in ('ticket.pt', 'checkpoint.pt'):
        ta, tb = (torch.load(d/f, weights_only=True) for d in (a, b))
        for k, v in ta['model'].items(): assert torch.equal(v, tb['model'][k]), (f, k)
    assert (a/'history.csv').read_text() == (b/'history.csv').read_text()


# --- bad folders: one line, exit 2 ----------------------------------------------------------------------------

def _broken_jpeg(r): (r/'train'/'dog'/'0003.jpg').write_bytes(b'\xff\xd8\xff\xe0 truncated')
def _empty_class(r): (r/'train'/'emu').mkdir()
def _zero_bytes(r): (r/'train'/'cat'/'0000.jpg').write_bytes(b'')
def _mismatch(r): (r/'val'/'fish').rename(r/'val'/'shark')


@pytest.mark.parametrize('damage, msg, before_any_file', [
    (_broken_jpeg, 'cannot decode image {r}/train/dog/0003.jpg', False),
    (_empty_class, 'class folder {r}/train/emu holds no images', True),
    (_zero_bytes, '{r}/train/cat/0000.jpg is empty (0 bytes)', True),
    (_mismatch, 'class folders of {r}/val differ from the training classes: 1 not in training (shark); '
                '1 training classes missing (fish)', True),
])
def test_bad_folders_cost_one_line_and_exit_2(tmp_path, ft_train, damage, msg, before_any_file):
    r = write_image_folder(tmp_path/'data', n={'train': 6, 'val': 2}, size=(20, 20))
    damage(r)
    res = ft_train('--dataset', 'imagefolder', '--data-root', r, '--image-size', '16', '--epochs', '1',
                   '--batch-size', '4', '--workers', '1', '--out', tmp_path/'runs')
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: ') and 'Traceback' not in res.stderr, res.stderr
    assert msg.format(r=r) in lines[0], lines[0]
    if before_any_file: assert not (tmp_path/'runs').exists()


def test_explicit_roots_that_do_not_exist_are_errors(tmp_path, ft_train):
    res = ft_train('--dataset', 'imagefolder', '--data-root', tmp_path/'nowhere', '--out', tmp_path/'runs')
    assert res.returncode == 2 and 'is not a folder' in res.stderr
    res = ft_train('--dataset', 'imagefolder', '--out', tmp_path/'runs')
    assert res.returncode == 2 and "needs its folder: pass root= (CLI: --data-root)" in res.stderr
    assert not (tmp_path/'runs').exists()


# --- evaluation sets ----------------------------------------------------------------------------------------

def test_imagenet_a_r_predictions_are_restricted_to_their_classes(pets, tmp_path):
    data = get_dataset('imagefolder', root=pets, image_size=16)
    write_image_folder(tmp_path/'imagenet-a', ('dog', 'fish'), {'.': 3}, (20, 20))
    split, idx = class_subset(tmp_path/'imagenet-a', data)
    assert idx.tolist() == [1, 2] and split.y.tolist() == [0, 0, 0, 1, 1, 1]
    logits = torch.tensor([[9., 1., 2.], [9., 3., 2.]])  # class 0 ('cat') is not in the subset
    assert restrict(logits, idx).argmax(1).tolist() == [1, 0]


def test_imagenet_c_severity_layout(pets, tmp_path):
    data = get_dataset('imagefolder', root=pets, image_size=16)
    for s in (1, 2, 3):
        write_image_folder(tmp_path/'c'/'gaussian_noise', data.classes, {str(s): 1}, (24, 24), seed=s)
    cells = corruption_cells(tmp_path/'c', data, severities=(1, 2, 3), n=2)
    assert sorted(cells) == [('gaussian_noise', s) for s in (1, 2, 3)] and all(len(c) == 2 for c in cells.values())
    x = next(iter(cells[('gaussian_noise', 3)].loader(2, data.mean, data.std)))[0]
    assert x.shape == (2, 3, 16, 16)
    (tmp_path/'c'/'gaussian_noise'/'2'/'dog').rename(tmp_path/'c'/'gaussian_noise'/'2'/'wolf')
    with pytest.raises(Exception, match='differ from the training classes'): corruption_cells(tmp_path/'c', data, severities=(2,))


def test_imagenet_o_is_paired_with_test_images_of_its_classes(pets, tmp_path):
    data = get_dataset('imagefolder', root=pets, image_size=16)
    write_image_folder(tmp_path/'o', ('cat', 'fish'), {'.': 2}, (20, 20))
    ind, ood, idx = ood_subset(tmp_path/'o', data)
    assert sorted(ind.y.unique().tolist()) == [0, 2] and len(ind) == 8 and ood.y.tolist() == [-1, -1, -1, -1]


def test_bench_data_stream_tiny_run(tmp_path):
    import sys
    from conftest import ROOT
    sys.path.insert(0, str(ROOT))
    from bench import data_stream
    r = data_stream.run(quick=True, workers=(0, 1), n_images=10, repeats=1, out=tmp_path/'d.json')
    cases = [row['case'] for row in r['rows']]
    assert cases[0].startswith('loader @64') and any('resnet18 @64' in c for c in cases)
    assert all(row['ratio']['median'] > 0 for row in r['rows']) and (tmp_path/'d.json').exists()
    assert any(row['note'].startswith('bottleneck: ') for row in r['rows'])


def test_ood_and_corruption_evaluation_read_imagenet_o_and_c_folders(pets, tmp_path):
    from freetickets_nb.corruptions import corruption_eval
    from freetickets_nb.metrics import ood_eval
    data = get_dataset('imagefolder', root=pets, image_size=16)
    torch.manual_seed(0)
    nets = [torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 3)) for _ in range(2)]
    write_image_folder(tmp_path/'imagenet-o', ('cat',), {'.': 3}, (20, 20))
    oe = ood_eval(nets, data, scores=('entropy',), n=6, root=tmp_path)
    assert oe.ood.tolist() == ['gaussian', 'uniform', 'imagenet-o'] and oe.n_ood.tolist() == [6, 6, 3]
    assert oe.n_id.tolist() == [12, 12, 4]  # ImageNet-O: the test images of its classes only
    for c in ('fog', 'snow'):
        for s in (1, 2): write_image_folder(tmp_path/'c'/c, data.classes, {str(s): 1}, (16, 16), seed=s)
    ct = corruption_eval(nets, data, root=tmp_path/'c', severities=(0, 1, 2), n=2)
    assert ct[['corruption', 'severity', 'n']].values.tolist() == [
        ['fog', 0, 2], ['fog', 1, 2], ['fog', 2, 2], ['snow', 0, 2], ['snow', 1, 2], ['snow', 2, 2]]
    generated = corruption_eval(nets, data, corruptions=['gaussian_noise'], severities=(3,), n=4)
    assert generated.n.tolist() == [4]  # on a streamed test set too: corruptions of its decoded images


# --- studies on your own data and model, and on an image folder --------------------------------------------

def test_run_study_on_your_datasets_and_model(tmp_path):
    from torchvision.datasets import ImageFolder
    from freetickets_nb.data import datasets
    from freetickets_nb.models import models
    from freetickets_nb.plan import study_config
    from freetickets_nb.streaming import from_datasets
    from freetickets_nb.study import run_study
    root = write_image_folder(tmp_path/'d', n={'train': 10, 'test': 3}, size=(20, 20))
    @models.register('my-net')
    def my_net(num_classes, in_channels, image_size):
        return torch.nn.Sequential(torch.nn.Conv2d(in_channels, 8, 3, padding=1), torch.nn.ReLU(),
                                   torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten(), torch.nn.Linear(32, num_classes))
    try:
        data = from_datasets('my-pets', ImageFolder(root/'train'), ImageFolder(root/'test'), transforms='cifar',
                             image_size=16)
        cfg = study_config('demo', dataset='my-pets', model='my-net', methods='dense,dst-ensemble', members=2,
                           epochs=2, corruption_n=6, ood_n=6, update_frequency=2)
        table = run_study(cfg, tmp_path/'s', device='cpu', verbose=False, data=data)
        assert table.method.tolist() == ['dense', 'dst-ensemble'] and (tmp_path/'s'/'report.md').exists()
        again = run_study(cfg, tmp_path/'s2', device='cpu', verbose=False)  # by name: the registered dataset
        assert again.acc.tolist() == table.acc.tolist()
    finally:
        models.pop('my-net', None); datasets.pop('my-pets', None)


def test_ft_study_on_an_image_folder(pets, tmp_path, capsys, monkeypatch):
    from freetickets_nb import study
    monkeypatch.setenv('FREETICKETS_DEVICE', 'cpu')
    args = ['--dataset', 'imagefolder', '--data-root', str(pets), '--image-size', '16', '--model', 'resnet20',
            '--methods', 'dense', '--epochs', '1', '--corruption-n', '6', '--ood-n', '6', '--workers', '1']
    study.main([*args, '--out', str(tmp_path/'s')])
    assert 'dense' in (tmp_path/'s'/'results.csv').read_text()
    with pytest.raises(SystemExit) as e: study.main([*args, '--image-size', '32', '--out', str(tmp_path/'s')])
    assert e.value.code == 2 and 'holds a study with other settings' in capsys.readouterr().err
