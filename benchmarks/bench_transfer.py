"""Transfer experiment on real data: fine-tuning from pretrained weights vs training from scratch.

    python benchmarks/bench_transfer.py [--data ../shared/data/msd_hippocampus] [--out runs/transfer]

1. Pretrain STU-Net-T on *whole-hippocampus* masks (labels 1 and 2 merged) with cases 0-99 of the
   sorted case list (validation cases excluded).
2. On a label set that model never saw (anterior / posterior), with 10 *other* cases, train with the
   same small budget (a) from the pretrained weights (`medseg finetune` path: heads re-initialised,
   lr x0.1) and (b) from scratch (lr 0.01).
3. Evaluate both on the same 40 held-out cases every few epochs; print both curves and final Dice and
   write them to <out>/transfer.csv and <out>/transfer.png.
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "msd_hippocampus")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "transfer")
    parser.add_argument("--pretrain-epochs", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--lr-factors", default="0.1,1.0",
                        help="fine-tuning lr = 0.01 x factor; one fine-tune arm per factor (0.1 = STU-Net's recipe)")
    args = parser.parse_args()

    from medseg.training import fit, load_recipe
    from medseg.training.datalist import load_dataset
    from medseg.training.finetune import prepare_finetune
    from medseg.training.prepare import prepare_data

    names = [c["case"] for c in load_dataset(args.data).cases]
    val = names[4::5]
    pool = [n for n in names if n not in set(val)]
    pretrain_cases, small_cases = pool[:100], pool[100:110]
    common = [f"data.dataset='{args.data}'", f"data.val_cases={val!r}".replace("'", '"'),
              f"train.threads={args.threads}", "train.num_workers=1", "model.name='stunet_t'"]

    pre = load_recipe(None, common + [
        f"data.train_cases={pretrain_cases!r}".replace("'", '"'), 'data.label_map={"2" = 1}',
        'data.labels={"0" = "background", "1" = "hippocampus"}', f"train.epochs={args.pretrain_epochs}",
        "train.iterations_per_epoch=40", f"train.val_every={args.pretrain_epochs}",
        f"train.output='{args.out / 'pretrain'}'"])
    fit(pre, resume=True)  # resumes (or returns at once) when a previous run left last.pt

    small = common + [f"data.train_cases={small_cases!r}".replace("'", '"'), f"train.epochs={args.epochs}",
                      f"train.iterations_per_epoch={args.iters}", "train.val_every=2"]
    curves = {}
    for factor in [float(f) for f in args.lr_factors.split(",")]:
        arm = f"finetune_lr{factor:g}"
        ft = load_recipe(None, small + [f"finetune.source='{args.out / 'pretrain' / 'last.pt'}'",
                                        f"finetune.lr_factor={factor}", f"train.output='{args.out / arm}'"])
        data, model, report = prepare_finetune(ft)
        print("fine-tune load:", report.summary())
        if (args.out / arm / "last.pt").is_file():
            model = None  # a finished arm: resume returns its history without training again
        curves[arm] = fit(ft, data=data, model=model, resume=True).history
    scratch = load_recipe(None, small + [f"train.output='{args.out / 'scratch'}'"])
    curves["scratch"] = fit(scratch, data=prepare_data(scratch), resume=True).history

    rows = []
    for arm, history in curves.items():
        for row in history:
            if "val_dice" in row:
                rows.append({"arm": arm, "epoch": row["epoch"], "val_dice": round(row["val_dice"], 4),
                             "anterior": round(row["val_dice_Anterior"], 4),
                             "posterior": round(row["val_dice_Posterior"], 4)})
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "transfer.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    _plot(rows, args.out / "transfer.png")
    print(f"{'arm':10s} {'epoch':>5s} {'mean':>7s} {'ant':>7s} {'post':>7s}")
    for r in rows:
        print(f"{r['arm']:10s} {r['epoch']:5d} {r['val_dice']:7.4f} {r['anterior']:7.4f} {r['posterior']:7.4f}")
    final = {arm: [r for r in rows if r["arm"] == arm][-1]["val_dice"] for arm in curves}
    print("final mean Dice: " + ", ".join(f"{arm} {value:.4f}" for arm, value in final.items())
          + f" ({len(small_cases)} training cases, {args.epochs * args.iters} iterations each)")


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for arm in sorted({r["arm"] for r in rows}):
        pts = [(r["epoch"], r["val_dice"]) for r in rows if r["arm"] == arm]
        ax.plot(*zip(*pts), marker="o", label=arm)
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean validation Dice")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
