"""Damaged data files, written by the tests: every case is refused when the data are loaded, with one line naming the file
(and, from `ft-train`, exit status 2 before any file is written)."""
import gzip, pickle
from pathlib import Path
import numpy as np
import pytest
from freetickets_nb.core import DataError
from freetickets_nb.data import _IDX, get_dataset, read_npy, write_idx, write_fake_cifar10

TRAIN_X, TRAIN_Y, TEST_X, TEST_Y = _IDX


def mnist(root: Path, n=600, m=100, **override) -> Path:
    "A valid fake MNIST (n training, m test images); `override` replaces a file's array"
    rng = np.random.default_rng(0)
    arrays = {TRAIN_X: rng.integers(0, 256, (n, 28, 28)), TRAIN_Y: rng.integers(0, 10, n),
              TEST_X: rng.integers(0, 256, (m, 28, 28)), TEST_Y: rng.integers(0, 10, m)}
    root.mkdir(parents=True, exist_ok=True)
    for f, a in arrays.items(): write_idx(override.get(f, a), root/f)
    return root


def gz(path: Path, data: bytes):
    with gzip.open(path, 'wb') as f: f.write(data)


def header(arr: np.ndarray, code=8) -> bytes:
    return bytes([0, 0, code, arr.ndim]) + b''.join(d.to_bytes(4, 'big') for d in arr.shape)


IDX_CASES = {
    '0-byte images': (lambda r: (r/TRAIN_X).write_bytes(b''), TRAIN_X, 'is empty'),
    'not gzip': (lambda r: (r/TRAIN_Y).write_bytes(b'\x00\x00\x08\x01 plain bytes'), TRAIN_Y, 'it is damaged'),
    'gzip cut short': (lambda r: (r/TRAIN_X).write_bytes((r/TRAIN_X).read_bytes()[:300]), TRAIN_X, 'it is damaged'),
    'payload truncated': (lambda r: gz(r/TRAIN_X, gzip.decompress((r/TRAIN_X).read_bytes())[:-784]), TRAIN_X,
                          'its header promises [600, 28, 28] (470400 bytes), it holds 469616'),
    'not uint8 (float code)': (lambda r: gz(r/TEST_Y, header(np.zeros(100), code=0x0D) + bytes(400)), TEST_Y,
                               'is not a uint8 idx file'),
    '593 labels for 600 images': (lambda r: mnist(r, **{TRAIN_Y: np.zeros(593)}), TRAIN_Y,
                                  'holds 593 labels but'),
    'labels out of range': (lambda r: mnist(r, **{TEST_Y: np.full(100, 12)}), TEST_Y,
                            'labels must be integers in [0, 10), found 12 to 12'),
    'images of the wrong shape': (lambda r: mnist(r, **{TRAIN_X: np.zeros((600, 32, 32))}), TRAIN_X,
                                  'the format promises [1, 28, 28]'),
    'labels with two dimensions': (lambda r: mnist(r, **{TRAIN_Y: np.zeros((600, 2))}), TRAIN_Y,
                                   'images must be [N, 28, 28] and labels [N]'),
    'zero images': (lambda r: mnist(r, n=0), TRAIN_X, 'no images'),
    'header only': (lambda r: gz(r/TEST_X, header(np.zeros((100, 28, 28)))), TEST_X, 'it holds 0'),
}


@pytest.mark.parametrize('case', list(IDX_CASES))
def test_damaged_idx_files_are_named_when_loaded(tmp_path, case):
    damage, name, msg = IDX_CASES[case]
    root = mnist(tmp_path/'mnist')
    damage(root)
    with pytest.raises(DataError) as e: get_dataset('mnist', root=root)
    text = str(e.value)
    assert name in text and msg in text and '\n' not in text, text


@pytest.mark.parametrize('case', ['0-byte images', '593 labels for 600 images', 'labels out of range'])
def test_ft_train_refuses_damaged_files_with_one_line_before_writing(tmp_path, case, capsys, monkeypatch):
    from freetickets_nb import train
    monkeypatch.setenv('FREETICKETS_DEVICE', 'cpu')
    damage, name, msg = IDX_CASES[case]
    damage(mnist(tmp_path/'mnist'))
    with pytest.raises(SystemExit) as e:
        train.cli(['--dataset', 'mnist', '--data-root', str(tmp_path/'mnist'), '--out', str(tmp_path/'runs')])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and err[0].startswith('error: ') and name in err[0] and msg in err[0], err
    assert not (tmp_path/'runs').exists()


def test_an_explicit_root_never_falls_back_to_another_copy(tmp_path):
    with pytest.raises(DataError, match="'/nonexistent' is not a folder"): get_dataset('fashion-mnist', root='/nonexistent')
    (tmp_path/'empty').mkdir()
    with pytest.raises(DataError) as e: get_dataset('fashion-mnist', root=tmp_path/'empty')
    assert str(tmp_path/'empty') in str(e.value) and '/usr/share' not in str(e.value), str(e.value)


def pickle_to(path: Path, obj):
    with open(path, 'wb') as f: pickle.dump(obj, f)


CIFAR_CASES = {
    '0-byte batch': (lambda d: (d/'data_batch_3').write_bytes(b''), 'data_batch_3', 'cannot read CIFAR batch'),
    'not a pickle': (lambda d: (d/'test_batch').write_bytes(b'\x80\x04garbage'), 'test_batch', 'it is damaged'),
    'not a dict': (lambda d: pickle_to(d/'data_batch_1', [1, 2, 3]), 'data_batch_1', 'is not a CIFAR batch'),
    'fewer labels': (lambda d: pickle_to(d/'data_batch_2', {b'data': np.zeros((4, 3072), np.uint8), b'labels': [0, 1, 2]}),
                     'data_batch_2', 'holds 4 images but 3 labels'),
    'label 10': (lambda d: pickle_to(d/'test_batch', {b'data': np.zeros((4, 3072), np.uint8), b'labels': [0, 1, 2, 10]}),
                 'test_batch', 'labels must be integers in [0, 10)'),
    'wrong width': (lambda d: pickle_to(d/'data_batch_5', {b'data': np.zeros((4, 3000), np.uint8), b'labels': [0] * 4}),
                    'data_batch_5', 'data must be uint8 [N, 3072]'),
}


@pytest.mark.parametrize('case', list(CIFAR_CASES))
def test_damaged_cifar_batches_are_named(tmp_path, case):
    damage, name, msg = CIFAR_CASES[case]
    d = write_fake_cifar10(tmp_path)
    damage(d)
    with pytest.raises(DataError) as e: get_dataset('cifar10', root=tmp_path)
    assert name in str(e.value) and msg in str(e.value), str(e.value)


NPY_CASES = {
    '0 bytes': lambda p: p.write_bytes(b''),
    'truncated': lambda p: p.write_bytes(p.read_bytes()[:-100]),
    'objects': lambda p: np.save(p, np.array([{'a': 1}], dtype=object), allow_pickle=True),
    'not npy': lambda p: p.write_bytes(b'PK\x03\x04 a zip, not an array'),
}


@pytest.mark.parametrize('case', list(NPY_CASES))
def test_damaged_npy_files_are_named(tmp_path, case):
    p = tmp_path/'fog.npy'
    np.save(p, np.zeros((10, 32, 32, 3), np.uint8))
    NPY_CASES[case](p)
    with pytest.raises(DataError) as e: read_npy(p)
    assert str(p) in str(e.value) and 'download it again' in str(e.value), str(e.value)
    with pytest.raises(DataError, match='not found'): read_npy(tmp_path/'snow.npy')
