"""How far a compiled CPU runtime's logits are from PyTorch fp32 on one window of an nnU-Net folder.

Prints the mean/max absolute logit difference, the logits' spread, the distribution of top-2 margins and the
fraction of voxels whose argmax flips: what the run-time accuracy guard sees on its first window (docs/nnunet.md,
"Where OpenVINO is refused")::

    PYTHONPATH=$PWD python benchmarks/nnunet_runtime_diff.py FOLDER SCAN [--backend openvino]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from medseg.inference.runtime import cpu_runtime  # noqa: E402
from medseg.nnunet.predictor import NnUNetModel  # noqa: E402
from medseg.nnunet.preprocessing import preprocess  # noqa: E402
from medseg.nnunet.sliding import pad_to, slicers  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("scan", type=Path)
    parser.add_argument("--backend", default="openvino")
    args = parser.parse_args()
    model = NnUNetModel.load(args.folder)
    case = preprocess([args.scan], model.folder.plans, model.config)
    padded, _ = pad_to(torch.from_numpy(case.data), model.patch)
    x = padded[slicers(padded.shape[1:], model.patch)[0]][None].contiguous()
    net = model.networks[0]
    runtime = cpu_runtime(net, model.runtime_card(), backend=args.backend, precision="fp32")
    t = time.perf_counter()
    with torch.inference_mode():
        ref = net(x).float()
    t_torch = time.perf_counter() - t
    t = time.perf_counter()
    out = torch.as_tensor(runtime(x)).float()
    t_runtime = time.perf_counter() - t
    diff = (out - ref).abs()
    top2 = ref.topk(2, dim=1).values
    margins = (top2[:, 0] - top2[:, 1]).numpy()
    print(f"window {tuple(x.shape[2:])}: torch {t_torch:.1f} s, {args.backend} {t_runtime:.1f} s")
    print(f"logit difference mean {diff.mean().item():.4g}, max {diff.max().item():.4g}; logits std "
          f"{ref.std().item():.3g}")
    print("top-2 margin quantiles 0.1/1/10/50 %:", np.round(np.quantile(margins, [0.001, 0.01, 0.1, 0.5]), 4).tolist())
    print(f"argmax flips: {(out.argmax(1) != ref.argmax(1)).float().mean().item():.3g} of voxels")


if __name__ == "__main__":
    main()
