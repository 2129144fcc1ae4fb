"""Per-step time of dynamic sparse training vs dense training of the same model on the same batch.

The DST side is a `SparseController` (density 0.2, ERK, RigL growth, clean semantics) attached to an
SGD optimiser like the dense side's: gradients of inactive weights are masked before each ordinary
step (one `torch._foreach_mul_` over all layers) and the masks are re-applied where needed after it.
Three implementations run alternately in blocks of `steps` training steps (forward, backward, step):

- `dense`: no controller;
- `DST`: the controller with no topology update in the window (the plain-step overhead);
- `DST + update`: the controller with ΔT = `steps`, so every block contains one RigL update.

The topology update is also timed on its own, which gives the amortised overhead at the reference
ΔT = 1000. Targets: ≤ 1.05 on CPU (MLP), ≤ 1.03 on GPU (ResNet-18 at 32×32, bf16 + channels_last).

    python -m bench.masking_overhead [--quick] [--model mlp] [--device cpu]
"""
from __future__ import annotations
import statistics
import torch
from freetickets_nb.core import get_device
from freetickets_nb.dst import DSTConfig, SparseController
from freetickets_nb.models import create_model
from bench._timing import bench_parser, alternate, compare, fmt_row, result, summary, sync_fn, time_block, train_step, write_result

SHAPES = {'mlp': (1, 28), 'lenet5': (1, 28), 'resnet20': (3, 32), 'resnet18': (3, 32)}
TARGETS = {'cpu': ('<=', 1.05), 'cuda': ('<=', 1.03)}
REFERENCE_DT = 1000


def _setup(model, dev, cfg, channels_last):
    c, s = SHAPES.get(model, (3, 32))
    torch.manual_seed(0)
    net = create_model(model, num_classes=10, in_channels=c, image_size=s).to(dev)
    if channels_last: net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    ctl = SparseController(net, cfg, opt) if cfg is not None else None
    return net, opt, ctl


def run(quick:bool=False, model:str='mlp', device:str|None=None, batch_size:int=128, density:float=0.2,
        steps:int|None=None, repeats:int|None=None, bf16:bool|None=None, out=None)->dict:
    "Time dense, DST and DST-with-updates training steps alternately; write and return the result"
    dev = get_device(device or 'cpu')
    cuda = dev.type == 'cuda'
    bf16 = cuda if bf16 is None else bf16
    steps, repeats = steps or (20 if quick else 100), repeats or (3 if quick else 15)
    c, s = SHAPES.get(model, (3, 32))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch_size, c, s, s, generator=g).to(dev)
    y = torch.randint(0, 10, (batch_size,), generator=g).to(dev)
    if cuda: x = x.contiguous(memory_format=torch.channels_last)
    impls = {'dense': _setup(model, dev, None, cuda),
             'DST': _setup(model, dev, DSTConfig(density=density, update_frequency=10**9), cuda),
             'DST + update': _setup(model, dev, DSTConfig(density=density, update_frequency=steps), cuda)}
    sync = sync_fn(dev)

    def block(net, opt, _):
        for _ in range(steps): train_step(net, opt, x, y, bf16)

    times = alternate({k: (lambda v=v: block(*v)) for k, v in impls.items()}, repeats, sync)
    net, opt, ctl = impls['DST']
    upd = []
    for _ in range(3 if quick else 10):
        train_step(net, opt, x, y, bf16, step=False)  # dense gradients, as on an update step
        upd.append(time_block(ctl.update, sync))
    update_s = statistics.median(upd)
    amortised = [tb + steps * update_s / REFERENCE_DT for tb in times['DST']]
    tgt = TARGETS[dev.type]
    rows = [compare('plain step (no update in the window)', 'dense', 'DST', times['dense'], times['DST'], tgt, per=steps),
            compare(f'amortised: + one update per ΔT = {REFERENCE_DT} steps', 'dense', 'DST', times['dense'], amortised, tgt, per=steps,
                    note=f'update timed separately: median {update_s * 1e3:.3g} ms'),
            compare(f'in the window: one update every ΔT = {steps} steps', 'dense', 'DST + update', times['dense'], times['DST + update'],
                    None, per=steps, note=f'report only (ΔT {REFERENCE_DT // steps}× shorter than the reference)')]
    res = result('masking_overhead', dev, rows, quick=quick,
                 what='seconds per SGD training step (forward, backward, step) on one random batch; DST = SparseController '
                      f'(density {density}, ERK, RigL) attached to the optimiser',
                 model=model, input_shape=[batch_size, c, s, s], density=density, bf16=bf16, channels_last=cuda,
                 steps_per_block=steps, repeats=repeats, update_seconds=summary(upd), reference_update_frequency=REFERENCE_DT,
                 dst_final_density=ctl.masks.density)
    write_result(res, out)
    return res


def main(argv=None):
    p = bench_parser(__doc__)
    p.add_argument('--model', default='mlp', help='architecture name for models.create_model (default: mlp)')
    p.add_argument('--batch-size', type=int, default=128)
    a = p.parse_args(argv)
    r = run(quick=a.quick, model=a.model, device=a.device, batch_size=a.batch_size, out=a.out)
    for row in r['rows']: print(f"{r['model']}: {fmt_row(row)}")


if __name__ == '__main__': main()
