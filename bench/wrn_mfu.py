"""WRN-28-10 training speed on a GPU and its model FLOP utilisation (MFU).

Time per training step (forward, backward, SGD step) of `wrn-28-10` on random 32×32 batches, for
- **A**: bf16 autocast + channels_last (the library's CUDA setting; `--compile` adds a `torch.compile`d A),
- **B**: fp32, contiguous memory (the reference code's setting; cuDNN may still use TF32 for convs),
alternated in one run. Time per epoch-equivalent = steps per 50,000 images (CIFAR-10's training set)
× step time. MFU = achieved model FLOPs/s ÷ the GPU's dense bf16 peak, with FLOPs per training step =
3 × forward FLOPs (`flops.inference_flops`, conv + linear, 2 FLOPs per MAC) × batch size.
GPU only: on CPU the benchmark is skipped with a note.

    python -m bench.wrn_mfu [--quick] [--device cuda] [--compile]
"""
from __future__ import annotations
import copy, math
import torch
from freetickets_nb.core import get_device
from freetickets_nb.flops import inference_flops
from freetickets_nb.models import create_model
from bench._timing import bench_parser, alternate, compare, fmt_row, result, summary, sync_fn, train_step, write_result

# dense bf16 tensor-core peaks (TFLOP/s, without sparsity), by a substring of torch.cuda.get_device_name
PEAK_BF16_TFLOPS = (('H100 PCIe', 756.0), ('H100', 989.0), ('H200', 989.0), ('GH200', 989.0), ('A100', 312.0))
EPOCH_IMAGES = 50_000


def peak_tflops(device_name:str)->float|None:
    "Dense bf16 peak of the GPU named `device_name` (None when not in `PEAK_BF16_TFLOPS`)"
    return next((v for k, v in PEAK_BF16_TFLOPS if k in device_name), None)


def run(quick:bool=False, device:str|None=None, model:str='wrn-28-10', batch_size:int=128, steps:int|None=None,
        repeats:int|None=None, compile:bool=False, allow_cpu:bool=False, out=None)->dict:
    "Time bf16 + channels_last vs fp32 training steps alternately and compute MFU; write and return the result"
    dev = get_device(device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    what = (f'seconds per SGD training step of {model} on random [{batch_size}, 3, 32, 32] batches; A = bf16 autocast + channels_last, '
            'B = fp32 contiguous; MFU = 3 × forward FLOPs × batch / step time / dense bf16 peak')
    if dev.type != 'cuda' and not allow_cpu:
        res = result('wrn_mfu', dev, [], quick=quick, what=what, skipped='GPU only: run `python -m bench --device cuda` on a CUDA machine')
        write_result(res, out)
        return res
    steps, repeats = steps or (3 if quick else 10), repeats or (2 if quick else 5)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch_size, 3, 32, 32, generator=g).to(dev)
    y = torch.randint(0, 10, (batch_size,), generator=g).to(dev)
    base = create_model(model, num_classes=10, in_channels=3, image_size=32, seed=0)
    fwd_flops = inference_flops(base, (1, 3, 32, 32)).flops
    step_flops = 3 * fwd_flops * batch_size

    def setup(bf16, channels_last, compiled=False):
        net = copy.deepcopy(base).to(dev, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        xin = x.contiguous(memory_format=torch.channels_last) if channels_last else x
        fwd = torch.compile(net) if compiled else net
        def block():
            for _ in range(steps): train_step(fwd, opt, xin, y, bf16)
        return block

    impls = {'bf16 + channels_last': setup(True, True), 'fp32': setup(False, False)}
    if compile: impls['bf16 + channels_last + compile'] = setup(True, True, True)
    times = alternate(impls, repeats, sync_fn(dev))
    name = torch.cuda.get_device_name(dev) if dev.type == 'cuda' else 'cpu'
    peak = peak_tflops(name)
    per_epoch = math.ceil(EPOCH_IMAGES / batch_size)
    details = {}
    for k, ts in times.items():
        st = summary(ts, steps)
        details[k] = dict(step_seconds=st, epoch_seconds=st['median'] * per_epoch, tflops_per_s=step_flops / st['median'] / 1e12,
                          mfu=step_flops / st['median'] / (peak * 1e12) if peak else None)
    mfu = lambda k: f"MFU {details[k]['mfu']:.1%}" if details[k]['mfu'] is not None else 'MFU n/a (peak unknown)'
    rows = [compare(f'{model}, batch {batch_size}', k, 'fp32', times[k], times['fp32'], None, per=steps,
                    note=f"{k}: {details[k]['epoch_seconds']:.1f} s/epoch ({EPOCH_IMAGES} images), {details[k]['tflops_per_s']:.0f} TFLOP/s, {mfu(k)}; "
                         f"fp32: {details['fp32']['epoch_seconds']:.1f} s/epoch, {mfu('fp32')}")
            for k in impls if k != 'fp32']
    res = result('wrn_mfu', dev, rows, quick=quick, what=what, model=model, batch_size=batch_size, steps_per_block=steps,
                 repeats=repeats, forward_flops_per_image=fwd_flops, flops_per_step=step_flops, peak_bf16_tflops=peak,
                 steps_per_epoch=per_epoch, epoch_images=EPOCH_IMAGES, details=details)
    write_result(res, out)
    return res


def main(argv=None):
    p = bench_parser(__doc__, device_help='cuda (default when available)')
    p.add_argument('--compile', action='store_true', help='also time a torch.compile-d bf16 + channels_last model')
    a = p.parse_args(argv)
    r = run(a.quick, a.device, compile=a.compile, out=a.out)
    if r.get('skipped'): print(f"wrn_mfu skipped: {r['skipped']}")
    for row in r['rows']: print(fmt_row(row), '|', row['note'])


if __name__ == '__main__': main()
