"""Training throughput: the library's on-device loader vs the reference code's torchvision pipeline.

- **A, on-device**: `DataBundle.loader` (a `DeviceLoader`): the uint8 images live on the device; each
  batch is indexed, converted, randomly cropped (padding 4) and flipped there, in a few batched ops.
- **B, torchvision**: a `Dataset` of PIL images (as `torchvision.datasets.CIFAR10` returns them) with
  `RandomCrop(32, padding=4)`, `RandomHorizontalFlip`, `ToTensor`, `Normalize` per image and a
  `DataLoader` with `num_workers` processes (persistent, pinned memory on CUDA), batches moved to the
  device — the FreeTickets CIFAR code's way.

Both run over the same random CIFAR-sized uint8 data. Each block is one epoch (a fresh iterator):
loading alone (batches ready on the device), and full SGD training steps of a CIFAR ResNet
(`resnet18` with bf16 autocast + channels_last on CUDA; `resnet20` in fp32 on CPU, where one resnet18
step on 128 images takes about 10 s on 2 cores). Ratio = B's time / A's time = A's images/s over B's.
Targets: ≥ 3 for resnet18 training on GPU, ≥ 1 (no slower) on CPU.

    python -m bench.data_pipeline [--quick] [--device cpu]
"""
from __future__ import annotations
import numpy as np
import torch
from freetickets_nb.core import get_device
from freetickets_nb.data import DataBundle, TensorSplit
from freetickets_nb.models import create_model
from bench._timing import bench_parser, alternate, compare, fmt_row, result, sync_fn, train_step, write_result

CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)  # the reference code's constants


class PILImages(torch.utils.data.Dataset):
    "HWC uint8 images served as PIL images through `transform`, like `torchvision.datasets.CIFAR10`"
    def __init__(self, x:np.ndarray, y:np.ndarray, transform): self.x, self.y, self.transform = x, y, transform
    def __len__(self): return len(self.y)
    def __getitem__(self, i):
        from PIL import Image
        return self.transform(Image.fromarray(self.x[i])), int(self.y[i])


def reference_loader(x:np.ndarray, y:np.ndarray, batch_size:int, workers:int, pin:bool)->torch.utils.data.DataLoader:
    "The reference pipeline: PIL dataset, per-image torchvision transforms, shuffling `DataLoader`"
    from torchvision import transforms as T
    tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(CIFAR10_MEAN, CIFAR10_STD)])
    return torch.utils.data.DataLoader(PILImages(x, y, tf), batch_size, shuffle=True, num_workers=workers, pin_memory=pin,
                                       persistent_workers=workers > 0, generator=torch.Generator().manual_seed(0))


def device_loader(x:np.ndarray, y:np.ndarray, batch_size:int, device, channels_last:bool):
    "The library's loader over the same images (NCHW uint8 on the device, crop 4 + flip)"
    split = TensorSplit(torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(y).long())
    bundle = DataBundle('random', split, split.take(1), split.take(1), 10, CIFAR10_MEAN, CIFAR10_STD, crop_padding=4, flip=True)
    return bundle.loader('train', batch_size, device, generator=torch.Generator().manual_seed(0), channels_last=channels_last)


def run(quick:bool=False, device:str|None=None, n_images:int|None=None, n_train:int|None=None, batch_size:int=128,
        workers:tuple|None=None, model:str|None=None, repeats:int|None=None, out=None)->dict:
    "Time loading epochs and training epochs of both pipelines alternately; write and return the result"
    dev = get_device(device or 'cpu')
    cuda = dev.type == 'cuda'
    model = model or ('resnet18' if cuda else 'resnet20')
    workers = workers or ((8,) if cuda else (0, 2))
    n_images = n_images or (1024 if quick else 5000)
    n_train = n_train or (n_images if cuda else (256 if quick else 640))
    repeats = repeats or (2 if quick else 5)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (n_images, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n_images)
    mf = torch.channels_last if cuda else torch.contiguous_format
    sync = sync_fn(dev)

    def loaders(n):
        ls = {'on-device': device_loader(x[:n], y[:n], batch_size, dev, cuda)}
        for w in workers: ls[f'torchvision, {w} workers'] = reference_loader(x[:n], y[:n], batch_size, w, cuda)
        return ls

    def batches(name, dl):
        if name == 'on-device': yield from dl
        else:
            for xb, yb in dl: yield xb.to(dev, non_blocking=True, memory_format=mf), yb.to(dev, non_blocking=True)

    def load_epoch(name, dl):
        for xb, yb in batches(name, dl): pass

    torch.manual_seed(0)
    net = create_model(model, num_classes=10, in_channels=3, image_size=32).to(dev, memory_format=mf)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

    def train_epoch(name, dl):
        for xb, yb in batches(name, dl): train_step(net, opt, xb, yb, bf16=cuda)

    rows, detail = [], {}
    train_target = ('>=', 3.0) if cuda and model == 'resnet18' else ('>=', 1.0) if not cuda else None
    for kind, n, fn, tgt in (('loading', n_images, load_epoch, None), (f'training {model}', n_train, train_epoch, train_target)):
        ls = loaders(n)
        times = alternate({k: (lambda k=k, dl=dl: fn(k, dl)) for k, dl in ls.items()}, repeats, sync)
        for k in ls:
            if k == 'on-device': continue
            rows.append(compare(f'{kind}, {n} images/epoch, batch {batch_size}', 'on-device', k, times['on-device'], times[k],
                                tgt, unit='img/s', per=n))
        detail[kind] = {k: v for k, v in times.items()}
        del ls
    res = result('data_pipeline', dev, rows, quick=quick,
                 what='images/s over one epoch of random 32×32 RGB uint8 images (crop 4 + flip + normalise): loading alone '
                      '(batches on the device), and SGD training steps; on-device loader (A) vs torchvision DataLoader + PIL transforms (B)',
                 model=model, bf16=cuda, channels_last=cuda, batch_size=batch_size, n_images=n_images, n_train=n_train,
                 workers=list(workers), repeats=repeats, block_seconds=detail)
    write_result(res, out)
    return res


def main(argv=None):
    p = bench_parser(__doc__)
    p.add_argument('--model', default=None, help='resnet18 (default on CUDA) or resnet20 (default on CPU)')
    a = p.parse_args(argv)
    for row in run(a.quick, a.device, model=a.model, out=a.out)['rows']: print(fmt_row(row))


if __name__ == '__main__': main()
