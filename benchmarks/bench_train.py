"""Training throughput on CPU: medseg's loop vs a standard MONAI loop, same network and patch, one run.

    python benchmarks/bench_train.py [--data ../shared/data/msd_hippocampus] [--iters 30] [--threads 2]

Arms (batch 2, patch 40x56x40, hippocampus MR, same augmentation family):
  medseg   medseg.training.fit on STU-Net-T (in-memory cases, seeded patch sampler, DataLoader worker)
  monai    the MONAI tutorial pattern: CacheDataset + RandCropByPosNegLabeld + the same random transforms,
           monai.losses.DiceCELoss with DeepSupervisionLoss, same STU-Net-T
  dynunet  the MONAI loop with MONAI's DynUNet (filters 16-32-64-128, deep supervision) for reference
Prints seconds per iteration and the ratio monai/medseg.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def bench_medseg(data: Path, iters: int, threads: int) -> float:
    from medseg.training import fit, load_recipe
    from medseg.training.prepare import prepare_data

    out = tempfile.mkdtemp()
    recipe = load_recipe(ROOT / "pipelines/hippocampus/stunet_t.toml", [
        f"data.dataset='{data}'", "train.epochs=2", f"train.iterations_per_epoch={iters}", "train.val_every=1000",
        f"train.threads={threads}", f"train.output='{out}'"])
    prepared = prepare_data(recipe)
    prepared.val = []
    fit(recipe, data=prepared, max_epochs=1)  # warm-up epoch
    start = time.perf_counter()
    fit(recipe, data=prepared, resume=True)
    return (time.perf_counter() - start) / iters


def bench_monai(data: Path, iters: int, threads: int, network: str) -> float:
    from monai.data import CacheDataset, DataLoader, load_decathlon_datalist
    from monai.losses import DeepSupervisionLoss, DiceCELoss
    from monai.networks.nets import DynUNet
    from monai.transforms import (
        Compose,
        EnsureChannelFirstd,
        LoadImaged,
        NormalizeIntensityd,
        RandAdjustContrastd,
        RandAffined,
        RandCropByPosNegLabeld,
        RandFlipd,
        RandGaussianNoised,
        RandGaussianSmoothd,
        RandScaleIntensityd,
        SpatialPadd,
    )

    from medseg.models import create_model

    torch.set_num_threads(threads)
    roi = (40, 56, 40)
    files = load_decathlon_datalist(str(data / "dataset.json"), data_list_key="training", base_dir=str(data))[:160]
    transforms = Compose([
        LoadImaged(keys=("image", "label")), EnsureChannelFirstd(keys=("image", "label")),
        NormalizeIntensityd(keys="image"), SpatialPadd(keys=("image", "label"), spatial_size=roi),
        RandCropByPosNegLabeld(keys=("image", "label"), label_key="label", spatial_size=roi, pos=1, neg=2,
                               num_samples=1),
        RandAffined(keys=("image", "label"), prob=0.3, rotate_range=(0.52,) * 3, scale_range=(0.3,) * 3,
                    mode=("bilinear", "nearest"), spatial_size=roi),
        RandGaussianNoised(keys="image", prob=0.15, std=0.1),
        RandGaussianSmoothd(keys="image", prob=0.1),
        RandScaleIntensityd(keys="image", prob=0.15, factors=0.25),
        RandAdjustContrastd(keys="image", prob=0.15, gamma=(0.7, 1.5)),
        *[RandFlipd(keys=("image", "label"), prob=0.5, spatial_axis=a) for a in range(3)],
    ])
    dataset = CacheDataset(files, transforms, cache_rate=1.0, num_workers=0, progress=False)
    loader = DataLoader(dataset, batch_size=2, shuffle=True, num_workers=1, drop_last=True)
    if network == "dynunet":
        model = DynUNet(3, 1, 3, kernel_size=[3] * 4, strides=[1, 2, 2, 2], upsample_kernel_size=[2, 2, 2],
                        filters=[16, 32, 64, 128], deep_supervision=True, deep_supr_num=2, res_block=True)
    else:
        model = create_model("stunet_t")
    loss_fn = DeepSupervisionLoss(DiceCELoss(to_onehot_y=True, softmax=True))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.99, nesterov=True)
    model.train()

    def step(batch):
        out = model(batch["image"].as_tensor())
        if network == "dynunet":
            out = list(torch.unbind(out, dim=1))
        loss = loss_fn(list(out) if isinstance(out, (tuple, list)) else out, batch["label"].as_tensor())
        opt.zero_grad()
        loss.backward()
        opt.step()

    it = iter(loader)
    for _ in range(3):
        step(next(it))
    done, start = 0, time.perf_counter()
    while done < iters:
        for batch in loader:
            step(batch)
            done += 1
            if done == iters:
                break
    return (time.perf_counter() - start) / iters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "msd_hippocampus")
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    ours = bench_medseg(args.data, args.iters, args.threads)
    monai = bench_monai(args.data, args.iters, args.threads, "stunet")
    dyn = bench_monai(args.data, args.iters, args.threads, "dynunet")
    print(f"{'arm':10s} {'s/iter':>8s} {'iter/s':>8s}")
    for name, value in (("medseg", ours), ("monai", monai), ("dynunet", dyn)):
        print(f"{name:10s} {value:8.3f} {1 / value:8.2f}")
    print(f"monai loop / medseg loop (same STU-Net-T): {monai / ours:.2f}x")


if __name__ == "__main__":
    main()
