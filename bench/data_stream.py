"""Streaming image data: the loader's images/s (JPEG decode + augmentation) against its worker count, and the model step's.

The data are JPEG files written into a temporary `imagefolder` (`root/train/<class>/*.jpg`), ImageNet-like: sizes
between 333 and 500 pixels a side, smooth colour fields with noise, quality 90. Everything is timed alternately in one
process (`bench/_timing.py`), so ratios are comparable even on a shared machine.

- **loader**: one pass over the images through `DataBundle.loader('train')` (a `StreamLoader`: PIL decode, the seeded
  RandomResizedCrop + flip at the target size, batches normalised on the device) with 0, 1, 2, … worker processes.
  Ratio = time with 0 workers / time with w workers (the speed-up of the workers).
- **loader vs model**: time per image of the loader (with the most workers, one pass) and of SGD steps of torchvision's
  ImageNet ResNet-18 and ResNet-50 (fp32 on CPU; bf16 autocast + channels_last on CUDA) at a small and the standard
  resolution, timed alternately. Ratio = model time / loader time per image: above 1 the model step is the bottleneck
  (the loader keeps up), below 1 the loader is.
- **end to end**: training steps fed by the loader (its workers decode while the model computes) against the same
  steps on a batch prepared beforehand, per image. A ratio near 1 means the loader keeps up; on a machine with few
  cores the workers also take cores from the model step.

    python -m bench.data_stream [--quick] [--device cpu|cuda] [--workers 0,1,2]

On CUDA the default is ResNet-50 at 224 in bf16 with a batch of 256 and the machine's cores as workers.
"""
from __future__ import annotations
import os, tempfile
from pathlib import Path
import numpy as np
import torch
from freetickets_nb.core import get_device
from freetickets_nb.data import get_dataset
from bench._timing import (RESULTS, alternate, bench_parser, compare, fmt_row, result, sync_fn, train_step,
                           write_result)


def write_jpegs(root, n:int, classes:int=4, seed:int=0)->Path:
    "`n` ImageNet-like JPEG files (333–500 px a side, smooth colours with noise, quality 90) in `root/train/<class>/`"
    from PIL import Image
    rng, root = np.random.default_rng(seed), Path(root)
    for i in range(n):
        h, w = rng.integers(333, 501, 2)
        low = torch.from_numpy(rng.integers(0, 256, (1, 3, 6, 8)).astype(np.float32))
        img = torch.nn.functional.interpolate(low, size=(int(h), int(w)), mode='bicubic', align_corners=False)[0]
        img = (img + torch.from_numpy(rng.normal(0, 12, img.shape).astype(np.float32))).clamp(0, 255)
        d = root/'train'/f'c{i % classes}'
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img.permute(1, 2, 0).byte().numpy()).save(d/f'{i:05d}.jpg', quality=90)
    for c in range(classes): # a test folder, required by the layout
        (root/'val'/f'c{c}').mkdir(parents=True, exist_ok=True)
        (root/'val'/f'c{c}'/'0.jpg').write_bytes((root/'train'/f'c{c}'/f'{c:05d}.jpg').read_bytes())
    return root


def tv_model(name:str):
    "torchvision's ImageNet ResNet (weights=None, 1000 classes)"
    import torchvision
    return getattr(torchvision.models, name)(weights=None)


def loader_epoch(bundle, batch_size, device, channels_last):
    "A function running one pass of the training loader (the block timed)"
    g = torch.Generator().manual_seed(0)
    dl = bundle.loader('train', batch_size, device, generator=g, channels_last=channels_last)
    def run():
        for x, y in dl: pass
    return run


def model_steps(name, size, steps, batch_size, device, bf16, channels_last):
    "A function running `steps` SGD steps of model `name` on a fixed random batch"
    torch.manual_seed(0)
    mf = torch.channels_last if channels_last else torch.contiguous_format
    net = tv_model(name).to(device, memory_format=mf)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch_size, 3, size, size, device=device).contiguous(memory_format=mf)
    y = torch.randint(0, 1000, (batch_size,), device=device)
    def run():
        for _ in range(steps): train_step(net, opt, x, y, bf16=bf16)
    return run, net, opt


def fed_steps(bundle, net, opt, batch_size, device, bf16, channels_last):
    "A function running one pass of the loader with an SGD step on every batch"
    g = torch.Generator().manual_seed(0)
    dl = bundle.loader('train', batch_size, device, generator=g, channels_last=channels_last)
    def run():
        for x, y in dl: train_step(net, opt, x, y % 1000, bf16=bf16)
    return run


def per_image(times:list, n:int)->list: return [t / n for t in times]


def run(quick:bool=False, device:str|None=None, workers:tuple|None=None, n_images:int|None=None,
        repeats:int|None=None, out=None)->dict:
    "Time the loader against its workers and against model steps; write and return the result"
    dev = get_device(device or 'cpu')
    cuda, load_start = dev.type == 'cuda', [round(x, 2) for x in os.getloadavg()]
    cores = os.cpu_count() or 1
    workers = workers or ((0, min(16, cores)) if cuda else tuple(range(0, min(cores, 2) + 1)))
    repeats = repeats or (2 if quick else 3)
    n = n_images or (16 if quick else (4096 if cuda else 512))
    # (model, image size, batch, steps per block, also end to end)
    cases = ([('resnet50', 224, 256, 4, True)] if cuda else
             [('resnet18', 64, 16, 2, True), ('resnet18', 224, 8, 1, False),
              ('resnet50', 64, 16, 1, False), ('resnet50', 224, 8, 1, True)])
    if quick: cases = [('resnet18', 64, 8, 1, True)]
    sizes = sorted({c[1] for c in cases})
    sync, rows, detail, best = sync_fn(dev), [], {}, max(workers)
    with tempfile.TemporaryDirectory() as tmp:
        root = write_jpegs(tmp, n)
        data = {(s, w): get_dataset('imagefolder', root=root, image_size=s, workers=w, val_fraction=2 / n)
                for s in sizes for w in workers}
        m = len(data[(sizes[0], 0)].train)
        for s in sizes: # loader speed against the number of workers
            times = alternate({f'{w} workers': loader_epoch(data[(s, w)], 16, dev, cuda) for w in workers},
                              repeats, sync)
            for w in workers[1:]:
                rows.append(compare(f'loader @{s}, {m} JPEGs', f'{w} workers', '0 workers', times[f'{w} workers'],
                                    times['0 workers'], unit='img/s', per=m, note='decode + RandomResizedCrop + flip'))
            detail[f'loader@{s}'] = times
        for name, s, bs, k, e2e in cases: # loader (most workers) against the model step
            steps, net, opt = model_steps(name, s, k, bs, dev, cuda, cuda)
            blocks = {'loader': loader_epoch(data[(s, best)], bs, dev, cuda), 'model': steps}
            if e2e: blocks['loader + model'] = fed_steps(data[(s, best)], net, opt, bs, dev, cuda, cuda)
            times = alternate(blocks, repeats, sync)
            t_load, t_model = per_image(times['loader'], m), per_image(times['model'], k * bs)
            slower = 'model step' if np.median(t_model) >= np.median(t_load) else 'loader'
            rows.append(compare(f'{name} @{s}, batch {bs}', f'loader ({best} workers)', f'{name} step', t_load,
                                t_model, unit='img/s', note=f'bottleneck: {slower}'))
            if e2e:
                fed = per_image(times['loader + model'], m // bs * bs)
                rows.append(compare(f'{name} @{s}, batch {bs}', f'{name} on ready batches', 'fed by the loader',
                                    t_model, fed, unit='img/s', note='≈ 1 when the loader keeps up'))
            detail[f'{name}@{s}'] = times
            del net, opt, steps
    res = result('data_stream', dev, rows, quick=quick,
                 what='images/s of the streaming loader (JPEG decode + RandomResizedCrop + flip, 0..w workers) and of '
                      'SGD steps of torchvision ResNet-18/50, alone and fed by the loader',
                 workers=list(workers), n_images=n, cases=[list(c) for c in cases], repeats=repeats,
                 bf16=cuda, channels_last=cuda, load_average_start=load_start, block_seconds=detail)
    write_result(res, out)
    if not quick: (Path(out).parent if out else RESULTS).joinpath(f'data_stream_{dev.type}.md').write_text(markdown(res))
    return res


def findings(res:dict)->list:
    "Sentences read off the rows: what the workers buy, the bottleneck of each model, the end-to-end cost"
    rows, out = res['rows'], []
    work = [r for r in rows if r['case'].startswith('loader @')]
    if work:
        q = [r['ratio']['median'] for r in work]
        out.append(f"Worker processes changed the loader's speed by a factor of {min(q):.2f} to {max(q):.2f} "
                   f"(time with 0 workers / time with w workers; {res['machine']['cores']} cores).")
    steps = [r for r in rows if r['b'].endswith(' step')]
    for kind in ('model step', 'loader'):
        hit = [r for r in steps if r['note'] == f'bottleneck: {kind}']
        if hit: out.append(f"The {kind} is the bottleneck for {'; '.join(r['case'] for r in hit)}: the loader "
                           f"delivers {'; '.join(format(r['ratio']['median'], '.3g') for r in hit)} times the images/s "
                           "the step consumes (in that order).")
    for r in rows:
        if r['b'] == 'fed by the loader':
            out.append(f"{r['case']}: training steps fed by the loader took {r['ratio']['median']:.3g}× the time of "
                       "steps on a ready batch.")
    return out


def markdown(res:dict)->str:
    "The result as a short report: machine, the table, and the findings read off it"
    from bench._timing import fmt_value
    m = res['machine']
    lines = ['# Streaming data: loader vs workers vs model step', '',
             f"{m['device_name']}, {m['cores']} cores, torch {m['torch']}, torchvision {m['torchvision']}; "
             f"load average {res.get('load_average_start')} at the start and {m['load_average']} at the end: other "
             "processes shared the machine, so compare the ratios (each measured alternately in one run) rather than "
             "absolute images/s.", '',
             '| case | A | B | B/A time ratio, median [min–max] | note |', '| --- | --- | --- | --- | --- |']
    for r in res['rows']:
        a, b = (f"{r[k]}: {fmt_value(r[k + '_value']['median'], r['unit'])}" for k in ('a', 'b'))
        q = r['ratio']
        lines.append(f"| {r['case']} | {a} | {b} | {q['median']:.3g} [{q['min']:.3g}–{q['max']:.3g}] | {r.get('note', '')} |")
    return '\n'.join(lines + [''] + [f'- {f}' for f in findings(res)]) + '\n'


def main(argv=None):
    p = bench_parser(__doc__)
    p.add_argument('--workers', default=None, help='comma-separated worker counts (default: 0..min(cores, 2) on CPU)')
    a = p.parse_args(argv)
    w = tuple(int(v) for v in a.workers.split(',')) if a.workers else None
    for row in run(a.quick, a.device, workers=w, out=a.out)['rows']: print(fmt_row(row))


if __name__ == '__main__': main()
