#!/usr/bin/env python
"""Render README.md from nbs/index.ipynb without Quarto (nbdev_readme needs Quarto, which cannot be installed).

Hidden cells (`#| hide`) are dropped, directive lines are stripped, markdown cells are copied verbatim, code
cells become ```python blocks followed by their text or Markdown outputs (images are left to the docs site).

    python tools/readme.py            # rewrite README.md
    python tools/readme.py --check    # exit 1 when README.md is out of date
"""
import json, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _src(c): return ''.join(c['source']) if isinstance(c['source'], list) else c['source']


def _directives(src):
    lines = src.splitlines()
    d = [l for l in lines if l.startswith('#|')]
    return {l[2:].strip().split(':')[0].split()[0] for l in d if l[2:].strip()}, '\n'.join(l for l in lines if not l.startswith('#|')).strip()


def _output_text(o):
    if o['output_type'] == 'stream': return ''.join(o['text']).rstrip(), False
    data = o.get('data', {})
    if 'text/markdown' in data: return ''.join(data['text/markdown']).rstrip(), True
    if 'text/plain' in data and not any(k.startswith('image/') for k in data): return ''.join(data['text/plain']).rstrip(), False
    return None, False


def render(nb_path=ROOT/'nbs'/'index.ipynb'):
    nb = json.loads(Path(nb_path).read_text())
    parts = ['<!-- generated from nbs/index.ipynb by tools/readme.py: edit the notebook, not this file -->']
    for c in nb['cells']:
        if c['cell_type'] == 'raw': continue
        flags, body = _directives(_src(c))
        if 'hide' in flags or not body: continue
        if c['cell_type'] == 'markdown':
            parts.append(body)
            continue
        if 'hide_input' not in flags: parts.append(f'```python\n{body}\n```')
        if 'hide_output' in flags: continue
        for o in c.get('outputs', []):
            text, is_md = _output_text(o)
            if text: parts.append(text if is_md else f'```\n{text}\n```')
    return '\n\n'.join(parts) + '\n'


if __name__ == '__main__':
    out = render()
    readme = ROOT/'README.md'
    if '--check' in sys.argv:
        if not readme.exists() or readme.read_text() != out: sys.exit('README out of date: run python tools/readme.py')
    else: readme.write_text(out)
