"""The evaluation report folder: metrics.csv, summary.json and one self-contained, printable report.html."""
from __future__ import annotations

import base64
import datetime as _dt
import math
from html import escape
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medseg.core.atomic import atomic_write_text
from medseg.core.log import get_logger
from medseg.reports._style import CSS
from medseg.reports.export import write_csv, write_summary_json
from medseg.reports.labels import plural

if TYPE_CHECKING:
    from medseg.reports.evaluation import EvaluationResult

logger = get_logger(__name__)

WORST_PER_LABEL = 3
WORST_TOTAL = 12
VIEWER_CASES = 6  # cases in the report's viewer (each carries its volumes)


def write_report(result: EvaluationResult, folder: str | PathLike, *, viewer: bool = True) -> Path:
    """Write metrics.csv, summary.json and report.html into ``folder`` (created); returns report.html.

    ``viewer``: embed the interactive viewer (NiiVue, about 2.3 MB plus the volumes) for the worst cases.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_csv(result, folder / "metrics.csv")
    write_summary_json(result, folder / "summary.json")
    path = folder / "report.html"
    atomic_write_text(path, render(result, viewer=viewer))
    return path


def render(result: EvaluationResult, *, viewer: bool = True) -> str:
    """The whole report as one HTML string (CSS inline, figures as base64 PNG, the viewer's code and data)."""
    from medseg.reports.figures import metric_plot

    s = result.summary
    labels = {int(k): v["name"] for k, v in s["labels"].items()}
    plots = ""
    if result.cases and labels:
        for metric, title in (("dice", "Dice per case"), ("hd95", "HD95 per case (mm)")):
            plots += _figure(metric_plot(result.cases, labels, metric, title),
                             "One dot per case; box: quartiles and median; whiskers: 1.5 × IQR; "
                             "∞: cases with exactly one empty mask.")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Segmentation evaluation: {plural(s['n_cases'], 'case')}</title>",
        f"<style>{CSS}</style></head><body><main>",
        _header(result),
        _notes(result),
        '<section><h2>Summary per label</h2>',
        _summary_table(result),
        ('<p class="small">Mean with its 95% bootstrap confidence interval; distances in mm, over cases where '
         "both masks are non-empty. <em>Missed</em>: the prediction is empty; <em>extra</em>: the reference "
         "is empty; both count as Dice 0 and infinite distance.</p></section>"),
        f'<section><h2>Distribution over cases</h2><div class="plots">{plots}</div></section>' if plots else "",
        _worst_cases(result),
        _viewer(result) if viewer else "",
        _all_cases(result),
        _definitions(result),
        (f'<footer>medseg {escape(s["medseg_version"])} · generated '
         f'{_dt.datetime.now().strftime("%Y-%m-%d %H:%M")} · full per-case numbers in metrics.csv, '
         "statistics in summary.json</footer>"),
        "</main></body></html>",
    ]
    return "\n".join(p for p in parts if p)


def _header(result: EvaluationResult) -> str:
    s = result.summary
    facts = [("Prediction", s["prediction"]), ("Reference", s["reference"]), ("Cases", str(s["n_cases"])),
             ("Labels", str(len(s["labels"]))), ("Convention", s["convention"]),
             ("NSD tolerance", f"{s['tolerance_mm']:g} mm")]
    items = "".join(f"<div><dt>{escape(k)}</dt><dd>{escape(v)}</dd></div>" for k, v in facts)
    return f"<header><h1>Segmentation evaluation</h1><dl class=\"facts\">{items}</dl></header>"


def _notes(result: EvaluationResult) -> str:
    s, notes = result.summary, []
    if s["cases_only_in_reference"]:
        notes.append(f"{plural(len(s['cases_only_in_reference']), 'reference case')} without a prediction (not "
                     f"evaluated): {_list(s['cases_only_in_reference'])}")
    if s["cases_only_in_prediction"]:
        notes.append(f"{plural(len(s['cases_only_in_prediction']), 'prediction')} without a reference (not "
                     f"evaluated): {_list(s['cases_only_in_prediction'])}")
    for value, cases in s["labels_only_in_prediction"].items():
        name = s["labels"].get(value, {}).get("name", f"label_{value}")
        notes.append(f"Label {value} ({name}) is in the prediction but not in the reference of "
                     f"{plural(len(cases), 'case')}: {_list(cases)}")
    for value, name in s.get("requested_labels_not_found", {}).items():
        notes.append(f"Label {value} ({name}) was asked for but occurs in no prediction and no reference: "
                     "it is absent, not scored")
    if s.get("named_labels_not_found"):
        notes.append(f"{len(s['named_labels_not_found'])} named label(s) occur in no prediction and no reference "
                     f"and are not listed: {_list([str(v) for v in s['named_labels_not_found']], 20)}")
    if s["resampled_cases"]:
        notes.append(f"{plural(len(s['resampled_cases']), 'prediction')} resampled onto the reference grid "
                     f"(nearest neighbour): {_list(s['resampled_cases'])}")
    if not notes:
        return ""
    return '<section class="notes"><h2>Check first</h2><ul>' + "".join(
        f"<li>{escape(n)}</li>" for n in notes) + "</ul></section>"


def _summary_table(result: EvaluationResult) -> str:
    head = ("<tr><th class=\"name\">Label</th><th>Cases</th><th>Dice mean [95% CI]</th><th>Dice median</th>"
            "<th>HD95 mean [95% CI]</th><th>HD95 median</th><th>ASSD mean</th>"
            f"<th>NSD mean ({result.summary['tolerance_mm']:g} mm)</th><th>Missed</th><th>Extra</th>"
            "<th>Both empty</th></tr>")
    body = []
    for value, block in result.summary["labels"].items():
        m = block["metrics"]
        body.append(
            "<tr>"
            f"<td class=\"name\">{escape(value)} · {escape(block['name'])}</td><td>{block['n_cases']}</td>"
            f"<td>{_mean_ci(m['dice'], 3)}</td><td>{_num(m['dice']['median'], 3)}</td>"
            f"<td>{_mean_ci(m['hd95'], 2)}</td><td>{_num(m['hd95']['median'], 2)}</td>"
            f"<td>{_num(m['assd']['mean'], 2)}</td><td>{_num(m['nsd']['mean'], 3)}</td>"
            f"<td{_flag(block['n_only_prediction_empty'])}>{block['n_only_prediction_empty']}</td>"
            f"<td{_flag(block['n_only_reference_empty'])}>{block['n_only_reference_empty']}</td>"
            f"<td>{block['n_both_empty']}</td></tr>"
        )
    return (f'<div class="table-wrap"><table class="summary"><thead>{head}</thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def select_worst(rows: list[dict[str, Any]], per_label: int = WORST_PER_LABEL, total: int = WORST_TOTAL) -> list[dict]:
    """Lowest Dice first (ties: largest HD95, infinite first), at most ``per_label`` per label; perfect
    agreement (Dice 1) is never 'worst'."""
    def key(row):
        hd95 = math.inf if row["hd95"] is None else row["hd95"]
        return (row["dice"], -hd95, row["case"])

    chosen, count = [], {}
    for row in sorted((r for r in rows if r["dice"] < 1.0), key=key):
        if count.get(row["label"], 0) < per_label:
            chosen.append(row)
            count[row["label"]] = count.get(row["label"], 0) + 1
    return chosen[:total]


def _worst_cases(result: EvaluationResult) -> str:
    from medseg.reports.figures import AGREE, CONTEXT, EXTRA, MISSED, overlay

    worst = select_worst(result.cases)
    if not worst:
        return ""
    rows, figures = [], []
    for row in worst:
        rows.append(f"<tr><td class=\"name\">{escape(row['case'])}</td><td class=\"name\">"
                    f"{escape(str(row['label']))} · {escape(row['label_name'])}</td>"
                    f"<td>{_num(row['dice'], 3)}</td><td>{_dist(row['hd95'])}</td><td>{_dist(row['assd'])}</td>"
                    f"<td>{_signed(row['volume_difference'])}</td></tr>")
        try:
            pred, ref = result.load_case(row["case"])
            png, where = overlay(pred.array, ref.array, ref.affine, row["label"],
                                 f"{row['case']} · {row['label_name']} · Dice {row['dice']:.3f}")
            figures.append(_figure(png, where))
        except Exception as exc:  # noqa: BLE001  (a figure must not cost the numbers: report it, go on)
            logger.warning("no overlay for %s label %s: %s", row["case"], row["label"], exc)
    unit = result.summary["volume_unit"]
    table = ('<table class="worst"><thead><tr><th class="name">Case</th><th class="name">Label</th><th>Dice</th>'
             f"<th>HD95 (mm)</th><th>ASSD (mm)</th><th>Volume diff. ({unit})</th></tr></thead>"
             f"<tbody>{''.join(rows)}</tbody></table>")
    legend = "".join(f'<span><i style="background:{colour}"></i>{text}</span>' for colour, text in
                     ((AGREE, "in both"), (MISSED, "reference only (missed)"), (EXTRA, "prediction only (extra)"),
                      (CONTEXT, "other reference labels")))
    return (f"<section><h2>Worst cases</h2>{table}<p class=\"small\">Each overlay shows the slice where "
            "prediction and reference disagree most (3D: axial, radiological view with the patient's right on "
            f"the left, marked R), cropped around the structure.</p><p class=\"legend\">{legend}</p>"
            f"<div class=\"overlays\">{''.join(figures)}</div></section>")


def _viewer(result: EvaluationResult) -> str:
    """The interactive viewer (the one ``medseg view`` writes) over the worst cases, one case at a time."""
    from medseg.viewer import label_maps_case
    from medseg.viewer.page import viewer_block

    names = {int(k): v["name"] for k, v in result.summary["labels"].items()}
    chosen: list[str] = []
    for row in select_worst(result.cases):
        if row["case"] not in chosen and len(chosen) < VIEWER_CASES:
            chosen.append(row["case"])
    cases = []
    for case in chosen:
        try:
            pred, ref = result.load_case(case)
            cases.append(label_maps_case(pred.array, ref.array, ref.affine, names=names, title=case))
        except Exception as exc:  # noqa: BLE001  (the viewer must not cost the numbers: report it, go on)
            logger.warning("no viewer for %s: %s", case, exc)
    if not cases:
        return ""
    return ("<section class=\"viewer\"><h2>Look at the worst cases</h2><p class=\"small\">Scroll through each "
            "case in 3D: grey is the reference's foreground; the overlay menu switches between errors "
            "(magenta: prediction only, cyan: reference only, yellow: another label), the prediction and the "
            "reference. Needs a browser with WebGL2; the figures above are the static view.</p>"
            f"{viewer_block(cases, 'worst cases')}</section>")


def _all_cases(result: EvaluationResult) -> str:
    """Every case and label with its main numbers (the full set is in metrics.csv)."""
    if not result.cases:
        return ""
    unit = result.summary["volume_unit"]
    rows = "".join(
        f"<tr><td class=\"name\">{escape(row['case'])}</td><td class=\"name\">{escape(str(row['label']))} · "
        f"{escape(row['label_name'])}</td><td>{_num(row['dice'], 3)}</td><td>{_dist(row['hd95'])}</td>"
        f"<td>{_dist(row['assd'])}</td><td>{_num(row['nsd'], 3)}</td><td>{_signed(row['volume_difference'])}</td>"
        "</tr>" for row in result.cases)
    return ('<section><h2>All cases</h2><div class="table-wrap"><table class="cases"><thead><tr>'
            '<th class="name">Case</th><th class="name">Label</th><th>Dice</th><th>HD95 (mm)</th>'
            f"<th>ASSD (mm)</th><th>NSD</th><th>Volume diff. ({unit})</th></tr></thead><tbody>{rows}</tbody>"
            "</table></div></section>")


def _definitions(result: EvaluationResult) -> str:
    items = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in result.definitions.items())
    agg = escape(result.summary["aggregation"])
    return (f'<section class="definitions"><h2>Definitions</h2><dl>{items}<dt>aggregation</dt><dd>{agg}</dd>'
            "</dl></section>")


def _figure(png: bytes, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{escape(caption)}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def _num(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _dist(value: float | None) -> str:
    return "∞" if value is None else f"{value:.2f}"


def _signed(value: float) -> str:
    """Signed volume difference, no scientific notation: +1,043 / +2.71 / -0.027."""
    size = abs(value)
    return f"{value:+,.0f}" if size >= 100 else f"{value:+.2f}" if size >= 1 else f"{value:+.3f}"


def _mean_ci(stats: dict[str, Any], digits: int) -> str:
    if stats["mean"] is None:
        return "–"
    lo, hi = stats["ci95"]
    return f"{stats['mean']:.{digits}f} <span class=\"ci\">[{lo:.{digits}f}, {hi:.{digits}f}]</span>"


def _flag(count: int) -> str:
    return ' class="warn"' if count else ""


def _list(items: list[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")
