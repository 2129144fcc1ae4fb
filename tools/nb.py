#!/usr/bin/env python
"""Developer tool for writing notebooks from a plain-text draft without losing cell ids.

The notebooks in `nbs/` stay the single source of truth. A draft is a throw-away text view of one
notebook (kept out of git, e.g. under `.drafts/`), convenient to edit in a terminal:

    #%% md id=1a2b3c4d
    # Title
    #%% code id=5e6f7a8b
    #| export
    def f(): ...

Commands:
    python tools/nb.py draft nbs/03_masks.ipynb .drafts/03_masks.py   # notebook -> draft (ids kept)
    python tools/nb.py build .drafts/03_masks.py nbs/03_masks.ipynb   # draft -> notebook (ids and
                                                                       # unchanged cells' outputs kept)
    python tools/nb.py run nbs/03_masks.ipynb [--flags slow]           # execute, store outputs, clean

Cells without an id get a deterministic one. `run` skips `eval: false` cells and cells flagged with
a test flag (unless forced with --flags), exactly like `nbdev_test`, and stores the outputs that are
the documentation; then it runs `nbdev_clean` on the notebook.
"""
import hashlib, json, os, re, subprocess, sys
from pathlib import Path

MARK = re.compile(r'^#%% (md|code|raw)(?: id=([0-9A-Za-z_-]+))?\s*$')


def _new_id(name, i, src):
    return hashlib.sha1(f'{name}|{i}|{src}'.encode()).hexdigest()[:8]


def _src(cell):
    s = cell.get('source', '')
    return ''.join(s) if isinstance(s, list) else s


def to_draft(nb_path, out):
    nb = json.loads(Path(nb_path).read_text())
    kinds = {'markdown': 'md', 'code': 'code', 'raw': 'raw'}
    parts = [f"#%% {kinds[c['cell_type']]} id={c.get('id', '')}\n{_src(c)}\n" for c in nb['cells']]
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(''.join(parts))


def parse_draft(text):
    cells, cur = [], None
    for line in text.split('\n'):
        m = MARK.match(line)
        if m:
            cur = {'kind': m.group(1), 'id': m.group(2), 'lines': []}
            cells.append(cur)
        elif cur is not None: cur['lines'].append(line)
    for c in cells:
        while c['lines'] and not c['lines'][-1].strip(): c['lines'].pop()
        while c['lines'] and not c['lines'][0].strip() and c['kind'] != 'raw': c['lines'].pop(0)
        c['src'] = '\n'.join(c['lines'])
    return cells


def build(draft, nb_path):
    nb_path = Path(nb_path)
    old = json.loads(nb_path.read_text()) if nb_path.exists() else None
    old_cells = {c.get('id'): c for c in old['cells']} if old else {}
    cells, seen = [], set()
    for i, c in enumerate(parse_draft(Path(draft).read_text())):
        cid = c['id'] or _new_id(nb_path.stem, i, c['src'])
        while cid in seen: cid = _new_id(nb_path.stem, i, cid)
        seen.add(cid)
        src = c['src']
        lines = src.splitlines(keepends=True)
        if c['kind'] == 'code':
            prev = old_cells.get(cid)
            outs = prev.get('outputs', []) if prev and _src(prev) == src else []
            cells.append({'cell_type': 'code', 'execution_count': None, 'id': cid, 'metadata': {},
                          'outputs': outs, 'source': lines})
        else:
            cells.append({'cell_type': 'markdown' if c['kind'] == 'md' else 'raw', 'id': cid,
                          'metadata': {}, 'source': lines})
    nb = {'cells': cells,
          'metadata': {'kernelspec': {'display_name': 'python3', 'language': 'python', 'name': 'python3'}},
          'nbformat': 4, 'nbformat_minor': 5}
    nb_path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n')


def _directives(src):
    d = {}
    for line in src.splitlines():
        if not line.startswith('#|'): break
        toks = line[2:].strip().split()
        if toks: d[toks[0].rstrip(':').lower()] = [t.lower() for t in toks[1:]]
    return d


def run(nb_path, force=()):
    from execnb.nbio import read_nb, write_nb
    from execnb.shell import CaptureShell
    from fastcore.xtras import working_directory
    from nbdev.config import get_config
    nb_path = Path(nb_path).resolve()
    flags = set(get_config().tst_flags.split()) - set(force)
    nb = read_nb(nb_path)

    def skip(cell):
        if cell.cell_type != 'code' or 'nbdev_export(' in cell.source: return True
        d = _directives(cell.source)
        if d.get('eval', [''])[0] == 'false' or flags & d.keys(): return True
        return False
    for c in nb.cells:
        if c.cell_type == 'code': c.outputs = []
    shell = CaptureShell(nb_path)
    os.environ.setdefault('MPLBACKEND', 'module://matplotlib_inline.backend_inline')
    with working_directory(nb_path.parent):
        shell.run_all(nb, exc_stop=True, preproc=skip)
    write_nb(nb, nb_path)
    bin_dir = Path(sys.executable).parent
    subprocess.run([str(bin_dir / 'nbdev_clean'), '--fname', str(nb_path)], check=True)
    size = nb_path.stat().st_size
    print(f'{nb_path.name}: executed, {size/1024:.0f} KiB')
    if size > 1_000_000: sys.exit(f'{nb_path.name} is over 1 MB: shrink its outputs')


if __name__ == '__main__':
    cmd, *args = sys.argv[1:] or ['--help']
    if cmd == 'draft': to_draft(*args)
    elif cmd == 'build': build(*args)
    elif cmd == 'run':
        force = args[args.index('--flags') + 1].split() if '--flags' in args else []
        run(args[0], force)
    else: print(__doc__)
