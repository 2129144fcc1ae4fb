"""ImageNet per-image costs of the ImageNet presets' models, and the training time the presets imply.

Measured, alternately in one process (`bench/_timing.py`), blocks of the same number of images at 224 px:
- **decode**: JPEG decode + RandomResizedCrop 224 + flip of ImageNet-like files (333–500 px a side, written by
  `bench.data_stream.write_jpegs`) through the streaming loader in one process (0 workers),
- **step**: SGD training steps (forward, backward, update) of each preset's model: `resnet50-fanin`
  (imagenet-r50), `imagenet-resnet18` and `imagenet-resnet34` (imagenet-lp-r18/-r34); fp32 on CPU,
  bf16 autocast + channels_last on CUDA.
Rows: A = decode, B = the model's step; ratio B/A = step time / decode time per image, i.e. how many decoding
processes one training process keeps busy.

`study_costs(result, preset)` turns a result into the preset's cost table: training FLOPs (RigL's accounting,
`freetickets_nb.flops`), images processed, wall time on the measured machine, and on 8 and 64 H100s. On a CUDA
result the H100 time uses the measured GPU seconds per image; on a CPU result the GPU is unmeasured and the
H100 time is FLOPs / (GPUs × dense bf16 peak × `ASSUMED_MFU`), an assumption, not a measurement. Both assume
ideal data-parallel scaling and, for sparse runs, the library's masked dense kernels: a sparse run costs the
dense per-image time, its FLOP saving is not a wall-time saving.

    python -m bench.imagenet_cost [--quick] [--device cpu|cuda]
"""
from __future__ import annotations
import math, tempfile
import pandas as pd
import torch
from freetickets_nb.core import get_device
from freetickets_nb.data import get_dataset
from freetickets_nb.models import create_model
from bench._timing import alternate, bench_parser, compare, fmt_row, result, summary, sync_fn, train_step, write_result
from bench.data_stream import write_jpegs, loader_epoch

MODELS = {'imagenet-r50': 'resnet50-fanin', 'imagenet-lp-r18': 'imagenet-resnet18',
          'imagenet-lp-r34': 'imagenet-resnet34'}
H100_BF16_PEAK = 989e12  # dense bf16 FLOP/s of an H100 SXM (`bench.wrn_mfu.PEAK_BF16_TFLOPS`)
ASSUMED_MFU = 0.2  # model FLOP utilisation assumed for an unmeasured GPU (an assumption, not a measurement)
N_TRAIN = 1_281_167 - 26_000  # ImageNet training images minus the 26 per class held out for selection
GPUS = (8, 64)


def _steps(name:str, size:int, images:int, batch:int, dev, bf16:bool):
    "A block of SGD steps of model `name` over `images` random images in batches of `batch`"
    torch.manual_seed(0)
    mf = torch.channels_last if dev.type == 'cuda' else torch.contiguous_format
    net = create_model(name, 1000, 3, size, seed=0).to(dev, memory_format=mf)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, size, size, device=dev).contiguous(memory_format=mf)
    y = torch.randint(0, 1000, (batch,), device=dev)
    def run():
        for _ in range(images // batch): train_step(net, opt, x, y, bf16=bf16)
    return run


def run(quick:bool=False, device:str|None=None, out=None, size:int|None=None, batch:int|None=None,
        repeats:int|None=None)->dict:
    "Time decode and each preset model's training steps per image, alternately; write and return the result"
    dev = get_device(device or 'cpu')
    cuda = dev.type == 'cuda'
    size = size or (64 if quick else 224)
    batch = batch or (2 if quick else 256 if cuda else 8)
    repeats = repeats or (1 if quick else 3)
    images = batch * (2 if quick else 4 if cuda else 1)  # at least 4: one JPEG per class of write_jpegs
    with tempfile.TemporaryDirectory() as tmp:
        n = images + 2  # 2 held out: the training split holds `images` files
        data = get_dataset('imagefolder', root=write_jpegs(tmp, n), image_size=size, val_fraction=2 / n, workers=0)
        assert len(data.train) == images, len(data.train)
        impls = {'decode': loader_epoch(data, batch, torch.device('cpu'), False)}
        impls |= {m: _steps(m, size, images, batch, dev, bf16=cuda) for m in MODELS.values()}
        times = alternate(impls, repeats, sync_fn(dev))
    what = (f'seconds per image at {size} px: JPEG decode + RandomResizedCrop + flip in one process (A), SGD training '
            f"steps of each ImageNet preset's model, batch {batch}, {'bf16 + channels_last' if cuda else 'fp32'} (B)")
    rows = [compare(f'{m} @{size}, {images} images', 'decode (1 process)', f'{m} step', times['decode'], times[m],
                    unit='img/s', per=images, note='ratio: decoding processes one training process keeps busy')
            for m in MODELS.values()]
    per_image = {k: summary(ts, images) for k, ts in times.items()}
    res = result('imagenet_cost', dev, rows, what=what, quick=quick, image_size=size, batch_size=batch,
                 images_per_block=images, repeats=repeats, seconds_per_image=per_image)
    write_result(res, out)
    return res


def _flops(model:str, size:int=224):
    "(f_D, {density: f_S of ERK masks}, IMP level → f_S with 0.8^level of every conv and linear weight)"
    from freetickets_nb.flops import inference_flops
    from freetickets_nb.lottery import prunable_names
    from freetickets_nb.masks import erk_densities
    net, x = create_model(model, 1000, 3, size), (1, 3, size, size)
    f_d = inference_flops(net, x).dense_flops
    f_s = {d: inference_flops(net, x, masks=erk_densities(net, d)).flops for d in (0.2, 0.1)}
    names = set(prunable_names(net, 'conv+linear'))
    level = lambda l: inference_flops(net, x, masks={n: 0.8 ** l for n in names}).flops if l else f_d
    return f_d, f_s, level


def _rows(preset:str, f_d:float, f_s:dict, level)->list:
    "(name, runs, epochs per run, training FLOPs) of the methods of `preset` at the paper's settings"
    from freetickets_nb.flops import edst_flops, imp_flops, run_flops
    from freetickets_nb.plan import study_config
    cfg = study_config(preset)
    kw = dict(n_examples=N_TRAIN)
    if preset == 'imagenet-r50':
        E, t, M, dt = cfg.edst_epochs, cfg.edst_explore_epochs, cfg.members, cfg.update_frequency
        rows = [('Dense (1 model)', 1, cfg.epochs, run_flops('dense', f_d, epochs=cfg.epochs, **kw)),
                (f'Dense ensemble (M={M})', M, cfg.epochs, run_flops('dense', f_d, members=M, epochs=cfg.epochs, **kw))]
        for d in (0.2, 0.1):
            s = f'S={1 - d:.1f}'
            rows += [(f'DST ensemble (M={M}, {s})', M, cfg.epochs,
                      run_flops('rigl', f_d, f_s[d], members=M, epochs=cfg.epochs, delta_t=dt, **kw)),
                     (f'EDST ensemble (M={M}, {s})', 1, E,
                      edst_flops(f_d, f_s[d], E, t, M, delta_t=dt, batch_size=cfg.batch_size, **kw))]
        study = [r for r in rows[1:4] if 'S=0.8' in r[0] or 'Dense' in r[0]]
        rows.append(('Whole study (4 dense, 4 DST, 1 EDST run)', 2 * M + 1, None,
                     dict(train_flops=sum(r[3]['train_flops'] for r in study))))
        return rows
    levels, rewind = cfg.imp_levels, cfg.imp_rewind_epoch
    eps = [cfg.epochs] + [cfg.epochs - rewind] * (levels - 1)
    return [('Dense (level 0)', 1, cfg.epochs, run_flops('dense', f_d, epochs=cfg.epochs, **kw)),
            (f'IMP chain ({levels} levels)', levels, sum(eps) / levels,
             imp_flops(f_d, [level(l) for l in range(levels)], eps, **kw))]


def run_gpus(preset:str, gpus:int)->int:
    "GPUs per run: all of them, but at least 16 images per GPU of the recipe's global batch (BatchNorm)"
    from freetickets_nb.plan import study_config
    return max(1, min(gpus, study_config(preset).batch_size // 16))


def _hours(preset:str, jobs:list, gpu_sec:float, gpus:int)->float:
    "Wall hours of `jobs` (epochs of each independent job) on `gpus` GPUs: groups of `run_gpus` GPUs, round robin"
    per = run_gpus(preset, gpus)
    groups = gpus // per
    return max(sum(jobs[g::groups]) for g in range(groups)) * N_TRAIN * gpu_sec / per / 3600


def study_costs(res:dict, preset:str, gpus:tuple=GPUS)->pd.DataFrame:
    "The training cost of `preset`'s methods: FLOPs, images, wall time measured here and on `gpus` H100s"
    model = MODELS[preset]
    f_d, f_s, level = _flops(model)
    sec = res['seconds_per_image'][model]['median'] * (224 / res['image_size']) ** 2  # per image at 224 px
    gpu_sec = gpu_seconds(res, preset, f_d)
    dense = 3 * f_d * N_TRAIN * study_epochs(preset)
    out = []
    for name, runs, epochs, r in _rows(preset, f_d, f_s, level):
        jobs = [runs * epochs] if name.startswith('IMP') else [epochs] * runs  # IMP levels: one after the other
        if epochs is None: # the whole study: its distinct runs in the study's order (dense, DST, EDST)
            jobs, epochs = [study_epochs(preset)] * (runs - 1) + [study_config_of(preset).edst_epochs], None
        row = dict(method=name, runs=runs, epochs=epochs, train_flops=r['train_flops'],
                   train_x_dense=r['train_flops'] / dense, images=sum(jobs) * N_TRAIN,
                   here_days=sum(jobs) * N_TRAIN * sec / 86400)
        row |= {f'h100x{g}_hours': _hours(preset, jobs, gpu_sec, g) for g in gpus}
        out.append(row)
    return pd.DataFrame(out)


def gpu_seconds(res:dict, preset:str, f_d:float|None=None)->float:
    "Seconds per training image on one H100: measured (a CUDA result) or 3 f_D / (peak × `ASSUMED_MFU`)"
    model = MODELS[preset]
    if res['machine']['device'].startswith('cuda'):
        return res['seconds_per_image'][model]['median'] * (224 / res['image_size']) ** 2
    return 3 * (f_d or _flops(model)[0]) / (H100_BF16_PEAK * ASSUMED_MFU)


def study_config_of(preset:str):
    "The preset's `StudyConfig`"
    from freetickets_nb.plan import study_config
    return study_config(preset)


def study_epochs(preset:str)->int:
    "Epochs of the preset's dense reference run"
    from freetickets_nb.plan import study_config
    return study_config(preset).epochs


def decode_cores(res:dict, preset:str)->float:
    "Decoding processes one H100 needs at its (measured or assumed) training images/s, at the measured decode cost"
    return res['seconds_per_image']['decode']['median'] / gpu_seconds(res, preset)  # the JPEG's size, not the crop's


def main(argv=None):
    a = bench_parser(__doc__).parse_args(argv)
    r = run(a.quick, a.device, out=a.out)
    for row in r['rows']: print(fmt_row(row), '|', row['note'])


if __name__ == '__main__': main()
