#!/usr/bin/env python
"""Build the book's website (`make docs`) without Quarto: nbdev's processors, then MkDocs.

Every `nbs/*.ipynb` becomes a page: `index.ipynb` is the home page, the others follow in file-name
order, which is the book's reading order (names starting with `_` or `.` are left out). Each
notebook goes through the processors `nbdev.serve.proc_nbs` applies for Quarto (hidden cells
removed, directives stripped, `show_doc` cells added after exported definitions and rendered),
with two changes:

- only what `show_doc` needs is executed: exported cells, `show_doc` cells and the import
  statements of other cells (nbdev runs a whole lesson cell that contains an import, which fails
  without the lesson's context); stored outputs are never recomputed;
- exported code stays on the page, directive lines stripped, above its API docs, as in the
  notebook (`show_exported_code: false` in tools/docs/mkdocs.yml hides it, as nbdev does).

The processors' Quarto cell options (`#| echo: false`, `#| output: false`, `#| include: false`)
and `#| hide_input` / `#| hide_output` (tools/readme.py honours them too) are applied, the front
matter becomes the page title, and links that nbdev points at the configured doc_host become
links between pages. MkDocs Material with mkdocs-jupyter renders the pages (tools/docs/ holds
the config). The site needs no network: figures are embedded, fonts are
the system's and MathJax is served from the site (the `jupyter-server-mathjax` package's copy).

    python tools/build_docs.py                # -> _site/index.html (work files in _mkdocs/)
    python tools/build_docs.py --out /tmp/site --work /tmp/work --workers 2
"""
import argparse, ast, json, os, re, shutil, subprocess, sys, time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from execnb.nbio import mk_cell, read_nb, write_nb

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT/'tools'/'docs'
MARK = '.build_docs'   # marks folders this tool may empty
_QUARTO_OPT = re.compile(r'^#\|\s*([\w-]+)\s*:\s*(.*?)\s*$')
_PANDOC_LINK = re.compile(r'\[([^\]\n]+)\]\(([^)\s]+)\)\{([^}\n]*)\}')   # [text](url){attrs}
_MD_LINK = re.compile(r'\[([^\]\n]+)\]\([^)\s]+\)')
_DOC_HEADING = re.compile(r'^(#{2,6}) ([\w.]+\.[\w.]+)[ \t]*$', re.M)   # show_doc of `Class.method`


def book_notebooks(nbs=ROOT/'nbs'):
    "The book's notebooks in reading order: `index.ipynb` first, then the others by file name"
    nbs = [p for p in Path(nbs).glob('*.ipynb') if p.name[0] not in '_.']
    return sorted(nbs, key=lambda p: (p.name != 'index.ipynb', p.name))


def page_name(nb):
    "The page of notebook `nb`, named as nbdev's Quarto site does: `05_train.ipynb` -> `train.html`"
    from nbdev.doclinks import _nbpath2html
    return _nbpath2html(Path(nb)).name


def book_sections(paths, sections):
    "Group notebook `paths` by leading number into `sections` ({from, title}); others: 'More'"
    bounds = sorted(sections, key=lambda s: s['from'])
    def title(p):
        m = re.match(r'\d+', p.name)
        if not m: return 'More'
        below = [s['title'] for s in bounds if int(m.group()) >= s['from']]
        return below[-1] if below else 'Book'
    out = {}
    for p in paths: out.setdefault(title(p), []).append(p)
    return list(out.items())


# ------------------------------------------------ nbdev processing (runs in worker processes)
def _api_source(cell):
    "What of code `cell` `show_doc` needs executed: the cell, its import statements, or None"
    from nbdev.processors import _show_docs
    if cell.cell_type != 'code' or not cell.source or 'nbdev_export()' in cell.source: return None
    if cell.directives_.get('eval:', [''])[0].lower() == 'false': return None
    trees = cell.parsed_()
    if not trees: return None
    if cell.directives_.keys() & {'export', 'exports', 'exporti', 'exec_doc'}: return cell
    if getattr(cell, 'has_sd', False) or _show_docs(trees): return cell
    imps = [ast.unparse(t) for t in trees if isinstance(t, (ast.Import, ast.ImportFrom))]
    return '\n'.join(imps) or None


def _exec_api_docs():
    "nbdev's `exec_show_docs` processor, running only what `show_doc` needs (`_api_source`)"
    from nbdev.processors import exec_show_docs
    class exec_api_docs(exec_show_docs):
        def __call__(self, cell):
            if not self.nb.has_docs_ or not hasattr(self, 'k'): return
            fm = getattr(self.nb, 'frontmatter_', {})
            if str(fm.get('skip_showdoc', '')).lower() == 'true': return
            src = _api_source(cell)
            if src is None: return
            if isinstance(src, str): self.k.run_cell(src)
            else: self.k.cell(src)
            if self.k.exc: raise RuntimeError(
                f'{self.nb.path_}: cell {cell.idx_} failed while rendering the API docs:\n'
                f'{cell.source}') from self.k.exc
    return exec_api_docs


def _rm_hidden_code(cell):
    "nbdev's `rm_export` keeping exported code: drops `hide`, `default_exp`, `exporti` cells"
    if cell.directives_.keys() & {'hide', 'default_exp', 'exporti'}: del cell['source']
_rm_hidden_code.__name__ = 'rm_export'   # settings.ini `skip_procs = rm_export` still applies


def _procs(show_code):
    from nbdev.processors import FilterDefaults, exec_show_docs, rm_export
    swap = {exec_show_docs: _exec_api_docs()}
    if show_code: swap[rm_export] = _rm_hidden_code
    return [swap.get(p, p) for p in FilterDefaults().procs()]


def _cell_options(cell):
    "Remove the leading `#|` lines of a code cell; return its Quarto options as a dict"
    lines, opts = cell.source.splitlines(), {}
    while lines and lines[0].startswith('#|'):
        if m := _QUARTO_OPT.match(lines.pop(0)):
            opts[m.group(1)] = m.group(2).strip('"\'').lower()
    cell.source = '\n'.join(lines)
    return opts


def _link(text, host):
    "Links to `host` (nbdev's doc_host) become links between pages; Pandoc attributes HTML"
    text = _PANDOC_LINK.sub(r'<a href="\2" \3>\1</a>', text)
    return text.replace(host, '') if host else text


def _unlink_headings(md):
    "Markdown `md` without links in its headings (nbdev links names there; the TOC loses them)"
    return re.sub(r'^#{1,6} .*$', lambda m: _MD_LINK.sub(r'\1', m.group()), md, flags=re.M)


def _unlink_code(md):
    "Markdown `md` without the links nbdev puts in fenced code (show_doc's signature comments)"
    return re.sub(r'^```.*?^```', lambda m: _MD_LINK.sub(r'\1', m.group()), md, flags=re.M | re.S)


def _anchor(m):
    "The anchor nbdev links `Class.method` to (`class.method`), next to the heading's own"
    return f'{m.group(1)} {m.group(2)} <a id="{m.group(2).lower()}"></a>'


def _defined(src):
    "nbdev's anchors for what code `src` defines: functions, classes, methods, `@patch`es"
    try: tree = ast.parse(src)
    except SyntaxError: return []
    fns, names = (ast.FunctionDef, ast.AsyncFunctionDef), []
    for t in tree.body:
        if isinstance(t, ast.ClassDef):
            names += [t.name] + [f'{t.name}.{m.name}' for m in t.body if isinstance(m, fns)]
        elif isinstance(t, fns):
            self_t = t.args.args[0].annotation if t.args.args else None
            patched = any('patch' in ast.unparse(d) for d in t.decorator_list)
            names.append(f'{ast.unparse(self_t)}.{t.name}' if patched and self_t else t.name)
    return [n.lower() for n in names]


def _add_code_anchors(cells, exported):
    "Anchors, next to their code, for exported names show_doc does not document: nbdev links them"
    docs = [''.join(o.get('data', {}).get('text/markdown', ''))
            for c in cells for o in c.get('outputs', [])]
    shown = {m.group(1).lower() for d in docs for m in re.finditer(r'^#{2,6} ([\w.]+)', d, re.M)}
    out = []
    for c in cells:
        names = [n for n in _defined(c.source) if n not in shown] if id(c) in exported else []
        if names:
            spans = ''.join(f'<span id="{n}"></span>' for n in dict.fromkeys(names))
            if out and out[-1].cell_type == 'markdown': out[-1].source += '\n' + spans
            else: out.append(mk_cell(spans, 'markdown'))
            shown |= set(names)
        out.append(c)
    return out


def _keep(c):
    "Is cell `c` shown? Applies Quarto options and `hide_input`/`hide_output` (as tags)"
    if c.cell_type == 'raw': return not c.source.lstrip().startswith('---')   # front matter
    if c.cell_type == 'markdown': return not c.source.lstrip().startswith('<!-- WARNING')
    opts, dirs = _cell_options(c), getattr(c, 'directives_', {})
    tags = c.metadata.setdefault('tags', [])
    if opts.get('echo') == 'false' or 'hide_input' in dirs: tags.append('remove_input')
    if opts.get('output') == 'false' or 'hide_output' in dirs: tags.append('remove_output')
    empty = not c.source.strip() and ('remove_output' in tags or not c.get('outputs'))
    return opts.get('include') != 'false' and not empty


def _for_mkdocs(nb, host):
    "nbdev's Quarto-oriented result as a notebook for mkdocs-jupyter: title, options, links"
    fm = getattr(nb, 'frontmatter_', {}) or {}
    for c in nb.cells:
        if not isinstance(c.source, str): c.source = ''.join(c.source)
    exported = {id(c) for c in nb.cells
                if getattr(c, 'directives_', {}).keys() & {'export', 'exports'}}
    nb.cells = _add_code_anchors([c for c in nb.cells if _keep(c)], exported)
    for c in nb.cells:
        if c.cell_type == 'markdown': c.source = _unlink_headings(_link(c.source, host))
        for o in c.get('outputs', []):
            md = o.get('data', {}).get('text/markdown')
            if md:
                md = _unlink_code(_link(''.join(md), host))
                o['data']['text/markdown'] = _DOC_HEADING.sub(_anchor, md)
    head = f"# {fm.get('title', Path(nb.path_).stem)}"
    if fm.get('description'): head += f"\n\n> {fm['description']}"
    nb.cells.insert(0, mk_cell(head, 'markdown'))
    return fm


def process_notebook(src, dst, show_code=True, host=''):
    "nbdev's processors on notebook `src`, written to `dst`; returns page, title, figure count"
    os.environ['IN_TEST'] = '1'
    from nbdev.process import NBProcessor
    nb = read_nb(src)
    NBProcessor(nb=nb, procs=_procs(show_code)).process()
    fm = _for_mkdocs(nb, host)
    write_nb(nb, dst)
    shown = [c for c in nb.cells
             if c.cell_type == 'code' and 'remove_output' not in c.metadata.get('tags', [])]
    outs = [o for c in shown for o in c.get('outputs', [])]
    return dict(page=Path(dst).with_suffix('.html').name, title=fm.get('title', Path(src).stem),
                images=sum(any(k.startswith('image/') for k in o.get('data', {})) for o in outs),
                api=sum(c.source.startswith('show_doc(') and bool(c.get('outputs')) for c in shown))


def _process(args): return process_notebook(*args)


# ------------------------------------------------ site
def load_config(path=CONF/'mkdocs.yml'):
    "tools/docs/mkdocs.yml: (the MkDocs config, sidebar sections, show_exported_code)"
    import yaml
    cfg = yaml.safe_load(Path(path).read_text())
    cfg['hooks'] = [str(Path(path).parent/h) for h in cfg.get('hooks', [])]
    return cfg, cfg.pop('book_sections', []), cfg.pop('show_exported_code', True)


def site_config(cfg, sections, pages, docs, out):
    "The MkDocs config with site name, folders and the navigation in book order"
    from nbdev.config import get_config
    st = get_config(path=ROOT)
    by_src = {p['src']: p for p in pages}
    def file(p): return Path(p['page']).with_suffix('.ipynb').name   # in `docs`
    nav = [{'Home': file(pages[0])}]
    for sec, srcs in book_sections([Path(p['src']) for p in pages[1:]], sections):
        nav.append({sec: [{by_src[str(s)]['title']: file(by_src[str(s)])} for s in srcs]})
    return cfg | dict(site_name=st.get('title', st.lib_name),
                      site_description=st.get('description', ''),
                      docs_dir=str(docs), site_dir=str(out), nav=nav)


def _doc_host():
    from nbdev.config import get_config
    st = get_config(path=ROOT)
    return f"{st.get('doc_host', '').rstrip('/')}{st.get('doc_baseurl', '').rstrip('/')}/"


def _fresh(*folders):
    "Empty `folders` (creating them) if each is new, empty or made by this tool; else exit"
    for f in folders:
        if f.exists() and any(f.iterdir()) and not (f/MARK).exists():
            sys.exit(f'build_docs: {f} is not empty and was not made by build_docs: '
                     f'choose another folder')
    for f in folders:
        shutil.rmtree(f, ignore_errors=True)
        f.mkdir(parents=True)
        (f/MARK).write_text('')


def _mathjax(out):
    "Copy MathJax 2 (jupyter-server-mathjax's files) and the book's MathJax settings into `out`"
    import jupyter_server_mathjax
    mj = out/'assets'/'mathjax'
    shutil.copytree(Path(jupyter_server_mathjax.__file__).parent/'static', mj)
    (mj/'config'/'local').mkdir(exist_ok=True)
    shutil.copy(CONF/'mathjax-book.js', mj/'config'/'local'/'book.js')


def build(out=ROOT/'_site', work=ROOT/'_mkdocs', workers=None, nbs=ROOT/'nbs'):
    "Process every notebook of the book and build the site in `out`; return the pages' summaries"
    import yaml
    t0, work, out = time.time(), Path(work).resolve(), Path(out).resolve()
    srcs = book_notebooks(nbs)
    if not srcs or srcs[0].name != 'index.ipynb':
        sys.exit(f'build_docs: {nbs} has no index.ipynb (the home page)')
    _fresh(work, out)
    docs = work/'docs'
    (docs/'assets').mkdir(parents=True)
    cfg, sections, show_code = load_config()
    for k, v in dict(MPLBACKEND='Agg', OMP_NUM_THREADS='1', PYTHONHASHSEED='0').items():
        os.environ.setdefault(k, v)
    if str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))   # the workers import this checkout
    names = [page_name(s) for s in srcs]
    if clash := {n for n in names if names.count(n) > 1}:
        sys.exit(f'build_docs: notebooks {[s.name for s, n in zip(srcs, names) if n in clash]} '
                 f'would share a page: rename one')
    jobs = [(str(s), str((docs/n).with_suffix('.ipynb')), show_code, _doc_host())
            for s, n in zip(srcs, names)]
    n = workers or min(len(jobs), len(os.sched_getaffinity(0)))
    with ProcessPoolExecutor(n, mp_context=get_context('spawn')) as ex:
        pages = list(ex.map(_process, jobs))
    for p, s in zip(pages, srcs): p['src'] = str(s)
    (work/'pages.json').write_text(json.dumps(pages, indent=1))
    shutil.copy(CONF/'extra.css', docs/'assets'/'extra.css')
    cfg = site_config(cfg, sections, pages, docs, out)
    (work/'mkdocs.yml').write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    r = subprocess.run([sys.executable, '-m', 'mkdocs', 'build', '--strict', '-q', '-f',
                        str(work/'mkdocs.yml')], cwd=work, capture_output=True, text=True,
                       env=os.environ | {'NO_MKDOCS_2_WARNING': '1'})
    if r.returncode: sys.exit(f'build_docs: mkdocs failed:\n{r.stdout}{r.stderr}')
    (out/MARK).write_text('')
    _mathjax(out)
    print(f'build_docs: {len(pages)} pages in {time.time()-t0:.0f} s -> {out/"index.html"}')
    return pages


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--out', default=str(ROOT/'_site'), help='the site (a folder it replaces)')
    ap.add_argument('--work', default=str(ROOT/'_mkdocs'), help='processed notebooks, mkdocs.yml')
    ap.add_argument('--workers', type=int, default=None, help='processes (default: CPU count)')
    a = ap.parse_args()
    # Workers unpickle `_process` by module name: IPython, running cells, replaces `__main__`.
    sys.path.insert(0, str(Path(__file__).parent))
    import build_docs
    build_docs.build(a.out, a.work, a.workers)
