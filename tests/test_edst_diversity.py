"The EDST diversity study: the bench module's machinery on a tiny grid (seconds), and the prose quoting its results"
import json, sys
import pytest
from conftest import ROOT
sys.path.insert(0, str(ROOT))
from bench import edst_diversity as B
from freetickets_nb.safety import load_json
from freetickets_nb.edst_diversity import finding, readme_finding, sweep_table

RESULT = ROOT/'bench'/'results'/'edst_diversity.json'


def test_refinement_lr_schedule_and_labels():
    s = B.Setting(refine_lr=0.1, t_ex=2, t_re=2)
    _, ens = B.configs(s)
    sch = B.edst_lr_schedule(s, ens, lr=0.1)
    assert sch.lr.tolist() == pytest.approx([0.1, 0.1] + [0.1, 0.01] * 3)
    assert B.varies(s.to_dict()) == 'refine_lr, t_ex, t_re' and B.varies(B.Setting(seed=1).to_dict()) == 'base'
    assert B.varies(B.Setting(model='lenet5').to_dict()) == 'base'
    assert B.varies(B.Setting(method='dst').to_dict()) == 'DST reference'
    dst, _ = B.configs(B.Setting(method='dst', seed=1))
    assert (dst.epochs, dst.seed) == (10, 3) # one ticket's budget; members 3, 4, 5


def test_quick_sweep_runs_and_resumes(tmp_path):
    out, runs = tmp_path/'res'/'edst_diversity.json', tmp_path/'runs'
    r = B.run(quick=True, out=out, runs=runs)
    assert [(x['method'], x['varies']) for x in r['rows']] == [
        ('edst', 'base'), ('edst', 'explore_rate'), ('edst', 'explore_growth'), ('dst', 'DST reference')]
    t = sweep_table(load_json(out))
    assert t.disagreement.between(0, 1).all() and (t.hamming > 0).all() and t.n_test.eq(360).all()
    edst = t[t.method == 'edst']
    assert edst.churn.between(0, 1).all() and t[t.method == 'dst'].churn.isna().all()
    assert len(r['rows'][0]['pairs']) == 3 # M = 3 tickets, three pairs
    for f in ('edst_diversity.md', 'edst_diversity_tsne.csv', 'edst_diversity_plane.csv'):
        assert (out.parent/f).exists()
    stamp = {p: p.stat().st_mtime_ns for p in runs.rglob('ticket*.pt')}
    again = B.run(quick=True, out=out, runs=runs) # everything cached: nothing retrained, same numbers
    assert {p: p.stat().st_mtime_ns for p in runs.rglob('ticket*.pt')} == stamp
    assert [x['disagreement'] for x in again['rows']] == [x['disagreement'] for x in r['rows']]
    assert again['seconds']['wall'] == r['seconds']['wall']


def test_prose_agrees_with_the_results():
    res = load_json(RESULT)
    text, short = finding(res), readme_finding(res)
    assert text == res['finding'], 'rerun python -m bench.edst_diversity'
    assert text in RESULT.with_suffix('.md').read_text(), 'rerun python -m bench.edst_diversity'
    assert short in (ROOT/'README.md').read_text(), 'README out of date: run nbs/index.ipynb, then tools/readme.py'
    nb = json.loads((ROOT/'nbs'/'32_edst_diversity.ipynb').read_text())
    outs = [''.join(o.get('data', {}).get('text/markdown', '')) for c in nb['cells'] for o in c.get('outputs', [])]
    assert text in outs and short in outs, 'notebook 32 out of date: python tools/nb.py run nbs/32_edst_diversity.ipynb'
