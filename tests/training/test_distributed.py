"""Two CPU processes with gloo train together; only rank 0 writes."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path


def test_ddp_two_processes_on_cpu(tiny_recipe, tmp_path, msd_dataset):
    script = tmp_path / "ddp.py"
    out = tmp_path / "ddp_run"
    script.write_text(textwrap.dedent(f"""
        import torch
        from medseg.training import fit, load_recipe
        from medseg.training.distributed import DistContext
        r = load_recipe(None, ["data.dataset='{msd_dataset}'", "data.val_fraction=0.34",
            "model.overrides={{width = 4}}", "plan.roi_size=[16, 16, 16]", "train.epochs=2",
            "train.iterations_per_epoch=2", "train.num_workers=0", "train.val_every=1", "train.threads=1",
            "train.output='{out}'"])
        from medseg.training.prepare import build_model_for, prepare_data
        dist = DistContext.from_env("cpu")
        assert dist.world_size == 2 and dist.initialized
        data = prepare_data(r)
        model = build_model_for(r, data)
        fit(r, dist=dist, data=data, model=model)
        import torch.distributed as td
        checksum = torch.stack([p.detach().double().sum() for p in model.parameters()]).sum().reshape(1)
        gathered = [torch.zeros(1, dtype=torch.float64) for _ in range(2)]
        td.all_gather(gathered, checksum)
        assert torch.equal(gathered[0], gathered[1]), gathered   # replicas stay identical
        dist.close()
        assert not td.is_initialized()
        print("RANK_DONE", dist.rank)
    """))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    # --standalone: the rendezvous binds a free port itself (no pick-then-bind race between test runs)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("RANK_DONE") == 2
    assert (out / "last.pt").is_file() and (out / "history.csv").is_file()
