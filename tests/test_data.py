"Data checks that need files outside the repo (skipped where they are absent)."
from pathlib import Path
import pytest
from freetickets_nb.data import get_dataset

DEBIAN = Path('/usr/share/datasets/fashion-mnist')


@pytest.mark.skipif(not (DEBIAN/'train-images-idx3-ubyte.gz').exists(), reason='dataset-fashion-mnist not installed')
def test_fashion_mnist_from_debian_package():
    ds = get_dataset('fashion-mnist', val_fraction=0.1, seed=0)
    assert len(ds.train) + len(ds.val) == 60000 and len(ds.test) == 10000
    assert ds.train.x.shape[1:] == (1, 28, 28) and ds.num_classes == 10
    assert set(ds.test.y.unique().tolist()) == set(range(10))
