#!/usr/bin/env python
"""Open every page of the built book in headless Chromium and check that it renders.

Used by tests/test_docs.py and `make docs-check`. No Selenium or Playwright: Chromium (Debian
package `chromium`) is driven through the DevTools protocol over a pipe (`--remote-debugging-pipe`:
JSON messages ending in a NUL byte, on file descriptors 3 and 4) with the standard library only.
The site is served from 127.0.0.1. For each page it records what a reader sees: a screenshot of
the first screen and of the first figure, every image's natural size, the sidebar's links in
order, the text of the content and of the cell outputs, MathJax errors, leftover `#|` directives,
unrendered `$…$` math, failed requests and requests that leave the site (it must work offline).

    python tools/check_docs.py                  # check _site: a line per page, exit 1 on problems
    python tools/check_docs.py --site /tmp/site --work /tmp/work --shots /tmp/shots  # keep PNGs
"""
import argparse, base64, contextlib, fcntl, functools, http.server, io, json, os, re, select
import shutil, subprocess, sys, tempfile, threading, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT = 1280, 900
_ERROR_LINE = re.compile(r'^(\w+\.)*\w*(Error|Exception): ', re.M)
_LOCAL_LINK = re.compile(r'<a [^>]*?href="([^":]+?\.html(#[^"]*)?|#[^"]+)"')   # between pages
_RAW_MARKUP = re.compile(r'\]\([^)\s]+\.html[^)\s]*\)|\{target=')   # markdown links, Pandoc attrs
_RAW_MATH = re.compile(r'\$[^$\s][^$\n]*\$')

# Runs in the page once it has loaded: waits for MathJax and images, reports what is shown.
PAGE_JS = r"""(async () => {
  if (window.MathJax && MathJax.Hub) await new Promise(r => MathJax.Hub.Queue(r));
  await document.fonts.ready;
  const content = document.querySelector('.md-content .jupyter-wrapper');
  const imgs = content ? [...content.querySelectorAll('img')] : [];
  await Promise.all(imgs.map(i => i.decode().catch(() => null)));
  const md = document.querySelectorAll('.jupyter-wrapper .jp-MarkdownCell .jp-RenderedMarkdown');
  const prose = [...md].map(e => {
    const c = e.cloneNode(true);
    c.querySelectorAll('code, pre, .MathJax, script').forEach(x => x.remove());
    return c.innerText; });
  const nav = [...document.querySelectorAll('nav.md-nav--primary a.md-nav__link')]
    .map(a => a.getAttribute('href')).filter(h => h && !h.startsWith('#'));
  const outs = [...document.querySelectorAll('.jupyter-wrapper .jp-OutputArea-output')];
  const fig = imgs.find(i => i.naturalWidth > 0);
  let rect = null;
  if (fig) { const r = fig.getBoundingClientRect();
             rect = {x: r.left + scrollX, y: r.top + scrollY, width: r.width, height: r.height}; }
  return {
    title: document.title,
    h1: (document.querySelector('.md-content h1') || {}).innerText || '',
    nav: nav,
    text: content ? content.innerText : '',
    prose: prose,
    outputs: outs.map(o => o.innerText),
    stderr: outs.filter(o => o.dataset.mimeType === 'application/vnd.jupyter.stderr')
                .map(o => o.innerText),
    images: imgs.map(i => ({w: i.naturalWidth, h: i.naturalHeight, complete: i.complete})),
    apidocs: outs.filter(o => o.dataset.mimeType === 'text/markdown' && o.querySelector('h3, h4'))
                 .length,
    math: document.querySelectorAll('.MathJax, .MathJax_Display').length,
    math_errors: document.querySelectorAll('.MathJax_Error, merror, .mjx-merror').length,
    code_directives: [...document.querySelectorAll('.jupyter-wrapper .jp-InputArea pre')]
      .filter(p => /^#\|/m.test(p.innerText)).length,
    figure: rect,
  };
})()"""


class Chromium:
    "Headless Chromium driven over the DevTools pipe; one tab, reused for every page"
    def __init__(self, exe=None, timeout=60):
        self.exe = exe or find_chromium()
        if not self.exe: raise FileNotFoundError('chromium not found (apt-get install chromium)')
        self.timeout, self.n, self.buf, self.events = timeout, 0, b'', []
        self.tmp = tempfile.mkdtemp(prefix='ft-chromium-')
        to_chrome, self._w = os.pipe()
        self._r, from_chrome = os.pipe()
        to_chrome, from_chrome = [self._hi(fd) for fd in (to_chrome, from_chrome)]
        args = [self.exe, '--headless', '--remote-debugging-pipe', '--no-sandbox', '--disable-gpu',
                '--disable-dev-shm-usage', '--no-first-run', '--no-default-browser-check',
                '--hide-scrollbars', '--disable-extensions', '--disable-background-networking',
                '--disable-sync', '--mute-audio', f'--user-data-dir={self.tmp}',
                f'--window-size={WIDTH},{HEIGHT}', 'about:blank']
        # Chromium reads commands on fd 3 and writes replies on fd 4: bash puts the pipe ends there.
        sh = f'exec "$@" 3<&{to_chrome} 4>&{from_chrome} {to_chrome}<&- {from_chrome}>&-'
        self.proc = subprocess.Popen(['bash', '-c', sh, 'bash', *args],
                                     pass_fds=(to_chrome, from_chrome), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome); os.close(from_chrome)
        tid = self.send('Target.createTarget', url='about:blank')['targetId']
        self.sid = self.send('Target.attachToTarget', targetId=tid, flatten=True)['sessionId']
        for m in ('Page.enable', 'Network.enable', 'Runtime.enable'): self.send(m, session=True)
        self.send('Emulation.setDeviceMetricsOverride', session=True, width=WIDTH, height=HEIGHT,
                  deviceScaleFactor=1, mobile=False)

    @staticmethod
    def _hi(fd):
        "Move `fd` to a number >= 10, clear of the 3 and 4 that Chromium expects"
        hi = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(fd)
        return hi

    def _read(self, deadline):
        while b'\0' not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._r], [], [], left)[0]:
                raise TimeoutError('chromium: no reply')
            chunk = os.read(self._r, 1 << 20)
            if not chunk: raise ConnectionError('chromium exited')
            self.buf += chunk
        msg, self.buf = self.buf.split(b'\0', 1)
        return json.loads(msg)

    def send(self, method, session=False, **params):
        "Call DevTools `method` (in the tab if `session`); return its result, keep events"
        self.n += 1
        msg = dict(id=self.n, method=method, params=params)
        if session: msg['sessionId'] = self.sid
        os.write(self._w, json.dumps(msg).encode() + b'\0')
        deadline = time.monotonic() + self.timeout
        while True:
            m = self._read(deadline)
            if m.get('id') != self.n: self.events.append(m); continue
            if 'error' in m: raise RuntimeError(f'chromium: {method}: {m["error"]}')
            return m.get('result', {})

    def wait_event(self, name):
        "The first event called `name`, waiting for it"
        deadline = time.monotonic() + self.timeout
        while True:
            for i, e in enumerate(self.events):
                if e.get('method') == name: return self.events.pop(i)
            self.events.append(self._read(deadline))

    def open(self, url):
        "Load `url`: (PAGE_JS's report, screenshot PNG, first figure PNG or None, events)"
        self.events = []
        self.send('Page.navigate', session=True, url=url)
        self.wait_event('Page.loadEventFired')
        r = self.send('Runtime.evaluate', session=True, expression=PAGE_JS, awaitPromise=True,
                      returnByValue=True)
        if 'exceptionDetails' in r: raise RuntimeError(f'{url}: {r["exceptionDetails"]}')
        info = r['result']['value']
        self.send('Runtime.evaluate', session=True, expression='window.scrollTo(0, 0)')
        shot, fig = self.screenshot(), None
        if info['figure'] and info['figure']['width'] > 0:
            fig = self.screenshot(clip=dict(info['figure'], scale=1), captureBeyondViewport=True)
        return info, shot, fig, self.events

    def screenshot(self, **kw):
        "PNG of the tab (`clip`: a region of the page)"
        png = self.send('Page.captureScreenshot', True, format='png', **kw)['data']
        return base64.b64decode(png)

    def close(self):
        with contextlib.suppress(Exception): self.send('Browser.close')
        with contextlib.suppress(Exception): self.proc.wait(10)
        if self.proc.poll() is None: self.proc.kill(); self.proc.wait()
        os.close(self._r); os.close(self._w)
        shutil.rmtree(self.tmp, ignore_errors=True)


def find_chromium():
    "The Chromium executable: `$CHROMIUM`, else chromium or chromium-browser on PATH, or None"
    if os.environ.get('CHROMIUM'): return os.environ['CHROMIUM']
    return shutil.which('chromium') or shutil.which('chromium-browser')


@contextlib.contextmanager
def serve(site):
    "Serve folder `site` on 127.0.0.1 (a free port) while in the block; yields the base URL"
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a): pass
    handler = functools.partial(Quiet, directory=str(site))
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try: yield f'http://127.0.0.1:{srv.server_address[1]}/'
    finally: srv.shutdown(); srv.server_close()


def pixel_std(png):
    "Standard deviation of the grey levels of a PNG image (about 0 for a blank one)"
    import numpy as np
    from PIL import Image
    return float(np.asarray(Image.open(io.BytesIO(png)).convert('L'), dtype=float).std())


def _request_problems(events, base):
    "Requests that leave the site or fail, and JavaScript errors, from a page's DevTools events"
    p, urls = [], {}
    for e in events:
        m, a = e.get('method'), e.get('params', {})
        if m == 'Network.requestWillBeSent':
            u = urls[a['requestId']] = a['request']['url']
            if not u.startswith((base, 'data:', 'blob:', 'about:')):
                p.append(f'request leaves the site: {u}')
        elif m == 'Network.loadingFailed' and not a.get('canceled'):
            u = urls.get(a['requestId'], '?')
            if not u.startswith('about:'): p.append(f"request failed ({a.get('errorText')}): {u}")
        elif m == 'Network.responseReceived' and a['response']['status'] >= 400:
            p.append(f"HTTP {a['response']['status']}: {a['response']['url']}")
        elif m == 'Runtime.exceptionThrown':
            p.append(f"JavaScript error: {a['exceptionDetails'].get('text')}")
    return p


def page_problems(page, info, shot, fig, events, base):
    "What is wrong with one rendered page: one-line messages, none when it is fine"
    p, out, n = [], '\n'.join(info['outputs']), len(info['images'])
    if pixel_std(shot) < 10: p.append('blank screenshot')
    if not info['h1']: p.append('no title (h1)')
    if len(info['text']) < 50: p.append('no content')
    bad = [i for i, m in enumerate(info['images']) if not (m['complete'] and m['w'] > 0)]
    if bad: p.append(f'images not loaded: {bad}')
    if n < page['images']: p.append(f"{n} images shown, {page['images']} stored")
    if page['images'] and (fig is None or pixel_std(fig) < 5): p.append('first figure is blank')
    if 'Traceback (most recent call last)' in info['text']: p.append('a Python traceback')
    if m := _ERROR_LINE.search(out): p.append(f'error in an output: {out[m.start():][:80]!r}')
    if info['math_errors']: p.append(f"{info['math_errors']} MathJax errors")
    if any(_RAW_MATH.search(t) for t in info['prose']): p.append('unrendered $…$ math')
    if m := _RAW_MARKUP.search(info['text']): p.append(f'raw markup shown: {m.group()!r}')
    if info['code_directives']: p.append(f"{info['code_directives']} code cells show #| lines")
    if page.get('api') and not info['apidocs']: p.append('no API docs (show_doc) rendered')
    return p + _request_problems(events, base)


def broken_links(site):
    "Links between the site's pages whose page or anchor does not exist: ['page: href']"
    site, ids, links = Path(site), {}, []
    for f in site.glob('*.html'):
        if f.name == '404.html': continue   # served for any missing URL: its links are absolute
        html = f.read_text()
        ids[f.name] = set(re.findall(r'\bid="([^"]+)"', html))
        links += [(f.name, h) for h in _LOCAL_LINK.findall(html)]
    bad = []
    for page, (href, _) in links:
        target, _, frag = href.partition('#')
        target = target or page
        if target not in ids or (frag and frag not in ids[target]): bad.append(f'{page}: {href}')
    return bad


def check_site(site, pages, shots=None, chromium=None):
    "Open `pages` (dicts: page, images, api) of `site`: {page: (report, problems)}"
    res, shots = {}, Path(shots) if shots else None
    if shots: shots.mkdir(parents=True, exist_ok=True)
    with serve(site) as base:
        b = Chromium(chromium)
        try:
            for page in pages:
                info, shot, fig, events = b.open(base + page['page'])
                res[page['page']] = info, page_problems(page, info, shot, fig, events, base)
                if shots:
                    (shots/page['page']).with_suffix('.png').write_bytes(shot)
                    if fig: (shots/page['page']).with_suffix('.figure.png').write_bytes(fig)
        finally: b.close()
    return res


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--site', default=str(ROOT/'_site'), help='the built site')
    ap.add_argument('--work', default=str(ROOT/'_mkdocs'), help="build_docs' folder (pages.json)")
    ap.add_argument('--shots', default=None, help='save screenshots here')
    a = ap.parse_args()
    pages = json.loads((Path(a.work)/'pages.json').read_text())
    res, bad = check_site(a.site, pages, a.shots), 0
    for link in broken_links(a.site): print('broken link:', link); bad += 1
    for page, (info, probs) in res.items():
        bad += bool(probs)
        warn = f"  ({len(info['stderr'])} stderr outputs)" if info['stderr'] else ''
        print(f"{page:36} {len(info['images']):2} images {info['apidocs']:3} API docs  "
              f"{'; '.join(probs) or 'ok'}{warn}")
    sys.exit(1 if bad else 0)
