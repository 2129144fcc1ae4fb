"README.md is generated from nbs/index.ipynb (tools/readme.py) and must stay in sync with it."
import subprocess, sys
from conftest import ROOT


def test_readme_in_sync_with_index():
    r = subprocess.run([sys.executable, str(ROOT/'tools'/'readme.py'), '--check'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr or 'README out of date: run python tools/readme.py'


def test_readme_has_the_two_commands():
    text = (ROOT/'README.md').read_text()
    assert 'make demo' in text and 'make test' in text
