"""MkDocs hooks of the book's website (tools/docs/mkdocs.yml `hooks`).

- mkdocs-jupyter inlines the same notebook stylesheet (about 600 kB) in every page: it goes to one
  shared file under assets/, so pages are smaller and the browser caches the styles;
- mkdocs-jupyter builds a page's table of contents without the inline code of headings
  ("The `Masks` container" becomes "The container", with an anchor that does not exist): its
  entries get the headings' full titles and real anchors."""
import hashlib, html as H, re
from pathlib import Path

_STYLE = re.compile(r'<style type="text/css">(.*?)</style>', re.S)
_HEADING = re.compile(r'<h[1-6] id="([^"]+)">(.*?)</h[1-6]>', re.S)
_shared = {}


def _text(h): return ' '.join(H.unescape(re.sub(r'<[^>]+>|¶', '', h)).split())


def _fix_toc(page, html):
    "Point TOC entries whose anchor is missing at the heading they came from"
    ids, by_key = set(re.findall(r'\bid="([^"]+)"', html)), {}
    for hid, inner in _HEADING.findall(html):
        key = _text(re.sub(r'<code>.*?</code>', '', inner))
        by_key.setdefault(key, []).append((hid, _text(inner)))
    def walk(items):
        for it in items:
            if it.id not in ids and by_key.get(_text(it.title)):
                it.id, it.title = by_key[_text(it.title)].pop(0)
            walk(it.children)
    walk(page.toc or [])


def on_page_content(html, page, config, files):
    up = '../' * page.file.dest_uri.count('/')
    def link(m):
        css = m.group(1)
        if len(css) < 10_000: return m.group(0)
        name = f'assets/notebook-{hashlib.sha1(css.encode()).hexdigest()[:12]}.css'
        _shared[name] = css
        return f'<link rel="stylesheet" href="{up}{name}">'
    html = _STYLE.sub(link, html)
    _fix_toc(page, html)
    return html


def on_post_build(config):
    for name, css in _shared.items(): (Path(config.site_dir)/name).write_text(css)
