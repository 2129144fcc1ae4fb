#!/usr/bin/env python
"""Readability numbers of the library and the book (developer tool, not exported).

    python tools/code_stats.py            # table of the numbers below
    python tools/code_stats.py --json     # the same as JSON

- longest function (lines, from `ast`) in `freetickets_nb/*.py`, and how many exceed 60 lines;
- lines over 100 and over 120 characters in the library and in the notebooks' code cells;
- the longest run of exported code (lines) in a notebook without a lesson cell between
  (a lesson: an unexported code cell that runs);
- `§` section references left in `nbs/`.
"""
import ast, json, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXPORT = re.compile(r'^#\|\s*(export|exports|exporti)\b', re.M)
FLAGGED = re.compile(r'^#\|\s*(eval:\s*false|hide)\s*$', re.M)


def functions(lib=ROOT/'freetickets_nb'):
    "(lines, 'module:function') of every function and method in the library"
    out = []
    for f in sorted(lib.glob('*.py')):
        if f.name.startswith('_'): continue
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out.append((node.end_lineno - node.lineno + 1, f'{f.stem}:{node.name}'))
    return sorted(out, reverse=True)


def _cells(nb):
    for c in json.loads(nb.read_text())['cells']:
        src = c['source'] if isinstance(c['source'], str) else ''.join(c['source'])
        yield c['cell_type'], src


def stretches(nbs=ROOT/'nbs'):
    "(lines, notebook) of the longest run of exported code without a lesson cell, per notebook"
    out = []
    for nb in sorted(nbs.glob('*.ipynb')):
        best = cur = 0
        for kind, src in _cells(nb):
            if kind != 'code': continue
            if EXPORT.search(src): cur += len([l for l in src.splitlines() if l.strip() and not l.startswith('#|')])
            elif src.strip() and not FLAGGED.search(src) and 'import' not in src.split('\n')[0]: best, cur = max(best, cur), 0
        out.append((max(best, cur), nb.name))
    return sorted(out, reverse=True)


def long_lines(limit):
    lib = sum(len(l) > limit for f in (ROOT/'freetickets_nb').glob('*.py') if not f.name.startswith('_')
              for l in f.read_text().splitlines())
    nbs = sum(len(l) > limit for nb in (ROOT/'nbs').glob('*.ipynb') for k, s in _cells(nb) if k == 'code'
              for l in s.splitlines())
    return lib, nbs


def stats():
    fn, st = functions(), stretches()
    sect = sum(s.count('§') for nb in (ROOT/'nbs').glob('*.ipynb') for _, s in _cells(nb))
    return dict(longest_function=dict(lines=fn[0][0], name=fn[0][1]), functions_over_60=sum(n > 60 for n, _ in fn),
                longest_stretch=dict(lines=st[0][0], notebook=st[0][1]),
                lib_lines_over_100=long_lines(100)[0], lib_lines_over_120=long_lines(120)[0],
                nb_code_lines_over_100=long_lines(100)[1], nb_code_lines_over_120=long_lines(120)[1],
                section_refs=sect, top_functions=[f'{n} {name}' for n, name in fn[:8]],
                top_stretches=[f'{n} {name}' for n, name in st[:8]])


if __name__ == '__main__':
    s = stats()
    if '--json' in sys.argv: print(json.dumps(s, indent=1))
    else:
        for k, v in s.items(): print(f'{k}: {v}')
