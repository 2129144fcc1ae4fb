"One pytest test per notebook: each runs top to bottom in-process like `nbdev_test` does."
import os
from pathlib import Path
import pytest
import nbdev.test as nbt
from nbdev.config import get_config

CFG = get_config()
NBS = sorted(Path(CFG.config_path/'nbs').glob('[0-9]*.ipynb')) + [CFG.config_path/'nbs'/'index.ipynb']
FORCE = os.environ.get('FT_TEST_FLAGS', '').split()


@pytest.mark.parametrize('nb', NBS, ids=lambda p: p.name)
def test_notebook(nb):
    ok, _ = nbt.test_nb(nb, skip_flags=CFG.tst_flags.split(), force_flags=FORCE, basepath=CFG.config_path)
    assert ok, f'{nb.name} failed: see the traceback above'
