"""Device check (not a peer benchmark): every registered model at its full card configuration on one GPU.

Reports whether a bf16 training step gives the declared outputs and finite gradients, peak memory, and eval
forward time at the card ROI (batch 1). Run where a GPU is available: ``python benchmarks/zoo_forward_gpu.py``.
"""
import json
import os
import time

import torch

from medseg.models import (
    count_parameters,
    create_model,
    list_models,
    unpack_train_output,
)

torch.backends.cudnn.benchmark = True
dev = torch.device("cuda")
rows = {}
for name in list_models():
    row = {"params": count_parameters(name)}
    try:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        with torch.device(dev):
            model = create_model(name)
        card = model.card
        x = torch.randn(1, card.in_channels, *card.roi_size, device=dev)
        full = (1, card.out_channels, *card.roi_size)
        model.train()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = unpack_train_output(model(x))
            loss = sum(o.float().square().mean() for o in out.deep_supervision + out.predictions)
            if out.aux_loss is not None:
                loss = loss + out.aux_loss.float()
        loss.backward()
        torch.cuda.synchronize()
        row["train_ok"] = tuple(out.logits.shape) == full and len(out.deep_supervision) == 1 + card.deep_supervision
        row["train_peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        row["grad_finite"] = all(torch.isfinite(p.grad).all().item() for p in model.parameters() if p.grad is not None)
        model.zero_grad(set_to_none=True)
        del out, loss
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        model.eval()
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
            y = model(x)
            torch.cuda.synchronize()
            t = time.perf_counter()
            for _ in range(5):
                y = model(x)
            torch.cuda.synchronize()
        row["eval_ms"] = round((time.perf_counter() - t) / 5 * 1000, 1)
        row["eval_peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        row["eval_ok"] = tuple(y.shape) == full and bool(torch.isfinite(y.float()).all())
        row["roi"] = list(card.roi_size)
        del model, x, y
    except Exception as exc:  # noqa: BLE001
        row["error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
    rows[name] = row
    print(name, row, flush=True)
print(torch.cuda.get_device_name(), torch.__version__)
with open(os.path.join(os.environ.get("OUT", "."), "zoo_gpu.json"), "w") as f:
    json.dump(rows, f, indent=1)
