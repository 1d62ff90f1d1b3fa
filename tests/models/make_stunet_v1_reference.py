"""Regenerate the STU-Net parity reference (``tests/models/data/stunet_v1/``) with the original predictor.

STU-Net's TotalSegmentator checkpoints are nnU-Net v1 files, run by STU-Net's own copy of nnU-Net 1.7.1
(``nnUNet-1.7.1/`` in uni-medical/STU-Net, which adds ``STUNet.py`` and ``STUNetTrainer.py``). This script
builds a random-weight checkpoint in that format with the original ``STUNet`` class (width 2, 6 classes) and
the official ``small_ep4k.model.pkl`` plans (1.5 mm, 'nonCT' z-score, pools ``[2,2,2] x 4 + [1,1,2]``), with
two changes so that it runs in seconds: patch 32x32x64 (instead of 128^3) and 5 foreground classes. It writes
a synthetic CT phantom and the original predictor's labels with and without mirroring (``predict_cases``,
step 0.5, Gaussian, fp32). Nothing here is STU-Net's code; it is imported from the repository you point at.

Run it in a peer environment (never medseg's own)::

    python -m venv --system-site-packages /work/venv-stunet
    /work/venv-stunet/bin/pip install 'torch==2.13.0' nnunet          # nnU-Net v1's dependencies
    /work/venv-stunet/bin/python tests/models/make_stunet_v1_reference.py --stunet-repo PATH/TO/STU-Net

``--out`` defaults to the committed reference folder; ``tests/models/test_stunet_parity.py`` runs it into
a temporary folder when ``MEDSEG_PEER_STUNET_V1`` names such a python (the ``peer`` test).
"""
from __future__ import annotations

import argparse
import collections
import copy
import os
import pickle
import sys
from pathlib import Path

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # nnU-Net v1 predates weights_only loading

import nibabel as nib
import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = Path(__file__).resolve().parent / "data" / "stunet_v1"
CHECKPOINT = "tiny"           # fold_0/tiny.model + tiny.model.pkl
TRAINER = "STUNetTrainer_tiny"
DIMS = [2, 4, 8, 16, 32, 32]  # STU-Net-S is 16 x [1, 2, 4, 8, 16, 16]
FOREGROUND = 5
PATCH = [32, 32, 64]
# NIfTI voxel shapes (i, j, k); nnU-Net v1 sees the arrays as (k, j, i). "one" is exactly one patch (no
# stitching: tests the network, axis order and intensity alone); "multi" needs 2 x 2 x 2 windows.
CASES = {"one": (64, 32, 32), "multi": (80, 40, 48)}
SPACING = 1.5


class _PlansUnpickler(pickle.Unpickler):
    """The official plans hold only numpy arrays/scalars and OrderedDicts: allow exactly those."""

    def find_class(self, module: str, name: str):
        allowed = {("collections", "OrderedDict"), ("numpy", "ndarray"), ("numpy", "dtype"),
                   ("numpy.core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
                   ("numpy._core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar")}
        if (module, name) not in allowed:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a plans file")
        return super().find_class(module.replace("numpy.core", "numpy._core"), name)


def tiny_plans(official_pkl: Path) -> dict:
    """The official STU-Net-S plans with 5 foreground classes and a 32x32x64 patch."""
    with open(official_pkl, "rb") as handle:
        plans = copy.deepcopy(_PlansUnpickler(handle).load()["plans"])
    plans["num_classes"] = FOREGROUND
    plans["all_classes"] = list(range(1, FOREGROUND + 1))
    plans["plans_per_stage"][0]["patch_size"] = np.array(PATCH)
    return plans


def register_tiny_trainer():
    """A trainer like ``STUNetTrainer_small`` at width 2, found by name by v1's ``restore_model``."""
    from nnunet.network_architecture.STUNet import STUNet
    from nnunet.training.network_training import STUNetTrainer as module
    from nnunet.utilities.nd_softmax import softmax_helper

    class STUNetTrainer_tiny(module.STUNetTrainer):  # v1 looks trainers up by this name
        def initialize_network(self):
            self.network = STUNet(self.num_input_channels, self.num_classes, depth=[1] * 6, dims=DIMS,
                                  pool_op_kernel_sizes=self.net_num_pool_op_kernel_sizes,
                                  conv_kernel_sizes=self.net_conv_kernel_sizes)
            self.network.inference_apply_nonlin = softmax_helper

    setattr(module, TRAINER, STUNetTrainer_tiny)
    return STUNet


def random_state(stunet_class, pools) -> collections.OrderedDict:
    """He-initialised weights of the original class, norms and biases perturbed so each tensor matters."""
    torch.manual_seed(0)
    net = stunet_class(1, FOREGROUND + 1, depth=[1] * 6, dims=DIMS, pool_op_kernel_sizes=pools,
                       conv_kernel_sizes=[[3, 3, 3]] * 6)
    state = net.state_dict()
    gen = torch.Generator().manual_seed(1)
    for key, value in state.items():
        if ".norm" in key and key.endswith(".weight"):
            value.copy_(1 + 0.2 * torch.randn(value.shape, generator=gen))
        elif key.endswith(".bias"):
            value.copy_(0.1 * torch.randn(value.shape, generator=gen))
    return collections.OrderedDict((k, v.clone()) for k, v in state.items())


def phantom(shape: tuple[int, int, int]) -> np.ndarray:
    """A CT-like volume (HU, int16) with a body, organs of different densities and smooth texture."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(0)
    i, j, k = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij")
    volume = np.full(shape, -1000.0)
    volume[(i / 0.9) ** 2 + (j / 0.8) ** 2 < 1] = 20.0
    for (ci, cj, ck, r, hu) in ((-0.4, 0.1, 0.2, 0.3, 60.0), (0.35, -0.2, -0.3, 0.25, 150.0),
                                (0.1, 0.4, 0.5, 0.2, -80.0), (0.5, 0.3, -0.6, 0.15, 700.0)):
        volume[((i - ci) ** 2 + (j - cj) ** 2 + (k - ck) ** 2) < r ** 2] = hu
    volume += gaussian_filter(rng.normal(0, 40, shape), 1.5)
    return (np.round(volume / 5) * 5).astype(np.int16)  # 5 HU steps: a smaller file


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stunet-repo", type=Path, required=True, help="a checkout of uni-medical/STU-Net")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(args.stunet_repo / "nnUNet-1.7.1"))
    sys.path.insert(1, str(REPO_ROOT))
    import nnunet

    if not (Path(nnunet.__file__).parent / "network_architecture" / "STUNet.py").is_file():
        raise SystemExit(f"{nnunet.__file__} is not STU-Net's nnU-Net 1.7.1 (no STUNet.py)")
    from nnunet.inference.predict import predict_cases

    from tests.models.official_checkpoints import save_nnunet_v1

    stunet_class = register_tiny_trainer()
    plans = tiny_plans(args.stunet_repo / "plan_files" / "small_ep4k.model.pkl")
    pools = [list(p) for p in plans["plans_per_stage"][0]["pool_op_kernel_sizes"]]
    out = args.out
    fold = out / "model" / "fold_0"
    fold.mkdir(parents=True, exist_ok=True)
    save_nnunet_v1(random_state(stunet_class, pools), fold / f"{CHECKPOINT}.model")
    info = collections.OrderedDict(init=("", 0, "", "", False, 0, True, False, False), name=TRAINER,
                                   plans=plans)  # v1 also stores "class" (a str); restore_model reads init/name/plans
    with open(fold / f"{CHECKPOINT}.model.pkl", "wb") as handle:
        pickle.dump(info, handle)
    scans, outputs = [], {False: [], True: []}
    for case, shape in CASES.items():
        scans.append(out / f"{case}_0000.nii.gz")
        nib.save(nib.Nifti1Image(phantom(shape), np.diag([SPACING, SPACING, SPACING, 1.0])), scans[-1])
        for tta, names in outputs.items():
            names.append(str(out / f"{case}_v1_{'tta' if tta else 'no_tta'}.nii.gz"))
    for tta, names in outputs.items():
        predict_cases(str(out / "model"), [[str(s)] for s in scans], names, [0], save_npz=False,
                      num_threads_preprocessing=1, num_threads_nifti_save=1, do_tta=tta,
                      mixed_precision=False, overwrite_existing=True, all_in_gpu=False, step_size=0.5,
                      checkpoint_name=CHECKPOINT)
    for log in fold.glob("training_log_*.txt"):  # v1's trainer opens a log even for inference
        log.unlink()
    print(f"reference written to {out}")  # noqa: T201 (a script)


if __name__ == "__main__":
    main()
