"""The book as a website: `make docs` (tools/build_docs.py) gives every notebook a page, in book
order, that renders in headless Chromium with its figures and API docs and without error text
(tools/check_docs.py).

The site is built from scratch in a temporary folder. Without Chromium the browser checks are
skipped, except where FT_DOCS_REQUIRE_BROWSER is set (.ci/run sets it and installs chromium)."""
import json, os, re, subprocess, sys
from pathlib import Path

import pytest
from execnb.nbio import read_nb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT/'tools'))
import build_docs, check_docs  # noqa: E402


def _need_chromium():
    if check_docs.find_chromium(): return
    msg = 'chromium is not installed (Debian: apt-get install chromium; .ci/run installs it)'
    if os.environ.get('FT_DOCS_REQUIRE_BROWSER'): pytest.fail(msg)
    pytest.skip(msg)


def test_book_order_is_file_name_order(tmp_path):
    for n in ['10_metrics', 'index', '04b_distributed', '04a_safety', '_scratch', '.hidden',
              '00_core', '32_edst_diversity', 'glossary']:
        (tmp_path/f'{n}.ipynb').write_text('{}')
    names = [p.name for p in build_docs.book_notebooks(tmp_path)]
    assert names == ['index.ipynb', '00_core.ipynb', '04a_safety.ipynb', '04b_distributed.ipynb',
                     '10_metrics.ipynb', '32_edst_diversity.ipynb', 'glossary.ipynb']
    assert [build_docs.page_name(tmp_path/n) for n in names[:3]] == [
        'index.html', 'core.html', 'safety.html']          # nbdev's names: stable under renumbering
    secs = build_docs.book_sections([tmp_path/n for n in names[1:]],
                                    [{'from': 30, 'title': 'Reproductions'},
                                     {'from': 0, 'title': 'Library'}])
    assert [(s, [p.stem for p in ps]) for s, ps in secs] == [
        ('Library', ['00_core', '04a_safety', '04b_distributed', '10_metrics']),
        ('Reproductions', ['32_edst_diversity']), ('More', ['glossary'])]


BAD_PAGE = """<html><body><div class="md-content"><div class="jupyter-wrapper">
<h1>A broken page</h1><p>Some prose that is long enough to count as the content of a page.</p>
<div class="jp-MarkdownCell"><div class="jp-RenderedMarkdown"><p>density $d_l$ of layer l</p>
</div></div><div class="jp-InputArea"><pre>#| export
def f(): pass</pre></div>
<div class="jp-OutputArea-output">NameError: name 'tickets' is not defined</div>
<pre>def f(x, # see [`g`](core.html#g)</pre>
<img src="missing.png"><script src="http://localhost:9/cdn.js"></script>
</div></div></body></html>"""


def test_the_browser_check_catches_a_broken_page(tmp_path):
    "Each kind of problem the site check looks for, on one hand-made page"
    _need_chromium()
    (tmp_path/'bad.html').write_text(BAD_PAGE)
    page = dict(page='bad.html', images=2, api=1)
    (info, probs), = check_docs.check_site(tmp_path, [page]).values()
    text = '\n'.join(probs)
    for expected in ['images not loaded: [0]', '1 images shown, 2 stored', "NameError: name 't",
                     'unrendered $…$ math', '1 code cells show #| lines', 'no API docs',
                     'request leaves the site: http://localhost:9/cdn.js', 'HTTP 404',
                     "raw markup shown: '](core.html#g)'"]:
        assert expected in text, f'{expected!r} not reported in:\n{text}'


@pytest.fixture(scope='module')
def built(tmp_path_factory):
    d = tmp_path_factory.mktemp('docs')
    r = subprocess.run([sys.executable, str(ROOT/'tools'/'build_docs.py'), '--out', str(d/'site'),
                        '--work', str(d/'work')], cwd=ROOT, capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, f'make docs failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}'
    return d/'site', d/'work', json.loads((d/'work'/'pages.json').read_text())


def _has_exported_defs(nb):
    return any(c.cell_type == 'code' and c.source.startswith('#| export') and
               any(l.startswith(('def ', 'class ', '@')) for l in c.source.splitlines())
               for c in nb.cells)


def test_every_notebook_has_a_page(built):
    site, work, pages = built
    nbs = sorted(p.name for p in (ROOT/'nbs').glob('*.ipynb')
                 if p.name[0] not in '_.' and p.name != 'index.ipynb')
    assert [Path(p['src']).name for p in pages] == ['index.ipynb'] + nbs
    for p in pages:
        assert p['page'] == re.sub(r'^\d+[a-z0-9]*_', '', Path(p['src']).stem.lower()) + '.html'
        src = read_nb(p['src'])
        assert (site/p['page']).stat().st_size > 10_000, p['page']
        stored = sum(any(k.startswith('image/') for k in o.get('data', {}))
                     for c in src.cells for o in c.get('outputs', []))
        assert p['images'] == stored, f"{p['page']}: {p['images']} figures shown, {stored} stored"
        if _has_exported_defs(src): assert p['api'] > 0, f"{p['page']}: no API docs"


def test_nbdev_directives_are_processed(built):
    "`#| hide` cells are gone, `hide_input` hides code, no `#|` line is left, exported code shown"
    site, work, pages = built
    def flagged(nb, flag): return {c.id for c in nb.cells if f'#| {flag}' in c.source.splitlines()}
    for p in pages:
        src, out = read_nb(p['src']), read_nb(work/'docs'/p['page'].replace('.html', '.ipynb'))
        ids = {c.get('id') for c in out.cells}
        assert not flagged(src, 'hide') & ids, f"{p['page']}: hidden cells shown"
        no_input = {c.get('id') for c in out.cells if 'remove_input' in c.metadata.get('tags', [])}
        assert flagged(src, 'hide_input') <= no_input, f"{p['page']}: hide_input cells show code"
        code = [c.source for c in out.cells if c.cell_type == 'code']
        assert not [s for s in code if s.lstrip().startswith('#|')], p['page']
        exported = {c.id for c in src.cells if c.source.startswith('#| export\n')}
        assert exported <= ids, f"{p['page']}: exported code missing"


def test_links_between_pages_resolve(built):
    "nbdev's links to documented names, the sidebar and the tables of contents all land somewhere"
    site, work, pages = built
    assert check_docs.broken_links(site) == []


def test_pages_render_in_chromium(built):
    _need_chromium()
    site, work, pages = built
    res = check_docs.check_site(site, pages)
    problems = {page: probs for page, (info, probs) in res.items() if probs}
    assert not problems, '\n'.join(f'{p}: {"; ".join(v)}' for p, v in problems.items())
    order = [p['page'] for p in pages]
    for page, (info, _) in res.items():
        nav = list(dict.fromkeys(info['nav']))
        assert nav == order, f'{page}: sidebar order {nav} is not the book order {order}'
