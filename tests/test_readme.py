"README.md is generated from nbs/index.ipynb (tools/readme.py) and must stay in sync with it."
import subprocess, sys
from conftest import ROOT


def test_readme_in_sync_with_index():
    r = subprocess.run([sys.executable, str(ROOT/'tools'/'readme.py'), '--check'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr or 'README out of date: run python tools/readme.py'


def test_readme_has_the_two_commands():
    text = (ROOT/'README.md').read_text()
    assert 'make demo' in text and 'make test' in text


def test_readme_demo_section_is_the_recorded_demo():
    "README's 'What make demo prints' is `report.demo_section` of bench/results/demo.json"
    from freetickets_nb.safety import load_json
    from freetickets_nb.report import demo_section
    res = load_json(ROOT/'bench'/'results'/'demo.json')
    assert demo_section(res) in (ROOT/'README.md').read_text()


def test_fresh_demo_agrees_with_readme(tmp_path):
    "A fresh `ft-study --preset demo`, run as `make demo` runs it, prints README's table"
    import json
    from freetickets_nb.report import demo_table
    sys.path.insert(0, str(ROOT))
    from bench.demo import run_demo
    run_demo(tmp_path/'demo')
    rows = json.loads((tmp_path/'demo'/'results.json').read_text())['results']
    assert demo_table(rows) in (ROOT/'README.md').read_text()
