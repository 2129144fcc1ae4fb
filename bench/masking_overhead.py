"""Per-step time of dynamic sparse training vs dense training of the same model on the same batch.

The DST side is a `SparseController` (density 0.2, ERK, clean semantics) attached to the same SGD
optimiser as the dense side: gradients of inactive weights are masked before each ordinary step, and
the masks are re-applied where needed after it. Both are timed alternately in one process, in blocks
of steps whose order flips every repeat, so that both see the same machine state; the ratio of
median per-step times is the overhead (target: <= 1.05 on CPU for the MLP). The topology update
itself runs once every ΔT steps and is timed separately; its amortised cost per step is reported
alongside.

    python -m bench.masking_overhead [--quick] [--model mlp] [--device cpu]
"""
from __future__ import annotations
import argparse, os, platform, statistics, time
from pathlib import Path
import torch
import torch.nn.functional as F
from freetickets_nb.core import get_device, save_json
from freetickets_nb.dst import DSTConfig, SparseController

RESULTS = Path(__file__).parent / 'results'
SHAPES = {'mlp': (1, 28), 'lenet5': (1, 28), 'resnet20': (3, 32), 'resnet18': (3, 32)}


def _machine(dev):
    if dev.type == 'cuda': return torch.cuda.get_device_name(dev)
    name = platform.processor() or platform.machine()
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'): return line.split(':', 1)[1].strip()
    except OSError: pass
    return name


def _setup(model, sparse, dev, density, update_frequency, channels_last):
    from freetickets_nb.models import create_model
    c, s = SHAPES.get(model, (3, 32))
    torch.manual_seed(0)
    net = create_model(model, num_classes=10, in_channels=c, image_size=s).to(dev)
    if channels_last: net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    ctl = SparseController(net, DSTConfig(density=density, update_frequency=update_frequency), opt) if sparse else None
    return net, opt, ctl


def run(quick:bool=False, model:str='mlp', device:str|None=None, batch_size:int=128, density:float=0.2,
        steps:int|None=None, repeats:int|None=None, update_frequency:int=1000, bf16:bool|None=None,
        out:str|Path|None=None)->dict:
    "Time dense and DST training steps alternately; write and return the summary"
    dev = get_device(device or 'cpu')
    cuda = dev.type == 'cuda'
    bf16 = cuda if bf16 is None else bf16
    steps, repeats = steps or (10 if quick else 50), repeats or (5 if quick else 30)
    c, s = SHAPES.get(model, (3, 32))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch_size, c, s, s, generator=g).to(dev)
    y = torch.randint(0, 10, (batch_size,), generator=g).to(dev)
    if cuda: x = x.contiguous(memory_format=torch.channels_last)
    # topology updates are timed on their own below; the per-step comparison uses ordinary steps
    impls = {'dense': _setup(model, False, dev, density, 10**9, cuda), 'dst': _setup(model, True, dev, density, 10**9, cuda)}
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    def block(net, opt, n):
        sync(); t = time.perf_counter()
        for _ in range(n):
            opt.zero_grad(set_to_none=True)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16): logits = net(x)
            F.cross_entropy(logits.float(), y).backward()
            opt.step()
        sync(); return (time.perf_counter() - t) / n

    for net, opt, _ in impls.values(): block(net, opt, max(steps // 2, 3))
    times = {k: [] for k in impls}
    for r in range(repeats):
        for k in (list(impls) if r % 2 == 0 else list(impls)[::-1]): times[k].append(block(*impls[k][:2], steps))
    net, opt, ctl = impls['dst']
    upd = []
    for _ in range(3 if quick else 10):
        opt.zero_grad(set_to_none=True)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16): logits = net(x)
        F.cross_entropy(logits.float(), y).backward()
        sync(); t = time.perf_counter(); ctl.update(); sync(); upd.append(time.perf_counter() - t)
    st = {k: dict(min=min(v), median=statistics.median(v), max=max(v)) for k, v in times.items()}
    ratio = st['dst']['median'] / st['dense']['median']
    update_s = statistics.median(upd)
    res = dict(benchmark='masking_overhead', what='seconds per SGD training step (forward, backward, step) on one random batch',
               model=model, input_shape=[batch_size, c, s, s], density=density, bf16=bf16, channels_last=cuda,
               steps_per_block=steps, repeats=repeats, quick=quick, device=str(dev), machine=_machine(dev),
               torch=torch.__version__, threads=torch.get_num_threads(), omp_num_threads=os.environ.get('OMP_NUM_THREADS'),
               dense=st['dense'], dst=st['dst'], ratio_median=ratio, ratio_min=st['dst']['min'] / st['dense']['min'],
               update_seconds=update_s, update_frequency=update_frequency,
               ratio_with_amortised_updates=(st['dst']['median'] + update_s / update_frequency) / st['dense']['median'],
               dst_final_density=ctl.masks.density)
    path = Path(out) if out else RESULTS / f"masking_overhead_{'quick_' if quick else ''}{dev.type}{'' if model == 'mlp' else '_' + model}.json"
    save_json(res, path)
    return res


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--quick', action='store_true', help='a few seconds, for smoke tests')
    p.add_argument('--model', default='mlp', help='architecture name for models.create_model (default: mlp)')
    p.add_argument('--device', default=None, help='cpu (default) or cuda')
    p.add_argument('--batch-size', type=int, default=128)
    p.add_argument('--out', default=None, help='JSON output path (default: bench/results/masking_overhead_<device>.json)')
    a = p.parse_args(argv)
    r = run(quick=a.quick, model=a.model, device=a.device, batch_size=a.batch_size, out=a.out)
    print(f"{r['model']} on {r['device']} ({r['machine']}): dense {r['dense']['median'] * 1e3:.3f} ms, "
          f"DST {r['dst']['median'] * 1e3:.3f} ms per step, ratio {r['ratio_median']:.3f} "
          f"(min-based {r['ratio_min']:.3f}; with updates every {r['update_frequency']} steps {r['ratio_with_amortised_updates']:.3f})")


if __name__ == '__main__': main()
