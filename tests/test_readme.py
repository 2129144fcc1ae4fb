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


def _readme_has(section:str):
    "`section` (a generated Markdown block) appears verbatim in README"
    assert section in (ROOT/'README.md').read_text(), 'README out of date: run python tools/readme.py'


def test_readme_fashion_sections_are_the_recorded_runs():
    "README's FreeTickets and Lottery Pools sections on Fashion-MNIST are written from bench/results"
    from freetickets_nb.safety import load_json
    from freetickets_nb import results
    res = ROOT/'bench'/'results'
    _readme_has(results.fashion_section(load_json(res/'fashion_seeds.json')))
    _readme_has(results.lottery_fashion_section(load_json(res/'lottery_pools_fashion.json')))


def test_readme_performance_section_is_the_recorded_benchmarks():
    "README's performance table and bullets come from the benchmarks' JSON files"
    from freetickets_nb.safety import load_json
    from freetickets_nb import results
    names = [*results.PERF_BENCHMARKS, 'study_e2e', 'profile_demo']
    _readme_has(results.performance_section({n: load_json(ROOT/'bench'/'results'/f'{n}_cpu.json')
                                             for n in names}))


def test_fashion_seeds_file_holds_the_studies_it_reports():
    "Every seed the README names was run with the fashion preset and holds every FreeTickets row"
    from freetickets_nb.safety import load_json
    from freetickets_nb.plan import FREETICKETS_METHODS
    res = load_json(ROOT/'bench'/'results'/'fashion_seeds.json')
    assert sorted(s['seed'] for s in res['studies'] if s['kind'] != 'random') == sorted(res['seeds'])
    for st in res['studies']:
        assert '--preset fashion' in st['command'] and f"--seed {st['seed']}" in st['command']
        if st['kind'] != 'random': assert set(FREETICKETS_METHODS) <= {r['method'] for r in st['table']}
