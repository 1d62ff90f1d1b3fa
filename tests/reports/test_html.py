"""The report folder: metrics.csv, summary.json and a self-contained, printable report.html."""
import csv
import json
import re
from html.parser import HTMLParser

from medseg.reports import evaluate
from medseg.reports.html import select_worst


class Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.images, self.links = [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        for key in ("href", "src"):
            if key in attrs and tag != "img":
                self.links.append(attrs[key])


def test_report_folder(folders, tmp_path):
    pred_dir, ref_dir = folders
    result = evaluate(pred_dir, ref_dir, label_names=ref_dir / "dataset.json")
    html_path = result.write_report(tmp_path / "report")
    folder = html_path.parent
    assert sorted(p.name for p in folder.iterdir()) == ["metrics.csv", "report.html", "summary.json"]

    with open(folder / "metrics.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 * 3  # cases x labels
    assert list(rows[0])[:11] == ["case", "label", "label_name", "dice", "iou", "hd", "hd95", "assd", "nsd",
                                  "empty_reference", "empty_prediction"]
    missed = next(r for r in rows if r["case"] == "c" and r["label"] == "2")
    assert missed["hd95"] == "inf" and float(missed["hd95"]) == float("inf") and missed["dice"] == "0.0"

    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    dice = summary["summary"]["labels"]["1"]["metrics"]["dice"]
    assert set(dice) >= {"mean", "median", "std", "min", "max", "ci95", "n"}
    assert summary["summary"]["labels"]["2"]["n_only_prediction_empty"] == 1
    assert "dice" in summary["definitions"]

    text = html_path.read_text(encoding="utf-8")
    page = Collector()
    page.feed(text)
    assert page.links == []  # self-contained: nothing to fetch (the viewer's scripts are inline)
    assert page.images and all(src.startswith("data:image/png;base64,") for src in page.images)
    worst = select_worst(result.cases)
    assert len(page.images) == 2 + len(worst)  # Dice and HD95 plots, one overlay per worst case
    assert "@media print" in text and "break-inside" in text
    assert re.search(r"<table class=\"summary\">.*liver.*spleen.*label_3", text, re.DOTALL)
    assert "Check first" in text and "lonely" in text  # unmatched cases are called out
    assert "reference only (missed)" in text
    # every case and label is listed, not only the worst
    table = re.search(r'<table class="cases">(.*?)</table>', text, re.DOTALL).group(1)
    assert table.count("<tr>") == 1 + 3 * 3
    # the worst cases are in the embedded viewer, each with its errors overlay
    data = json.loads(re.search(r'<script type="application/json" id="ms-data">(.*?)</script>', text,
                                re.DOTALL).group(1))
    assert {c["title"] for c in data["cases"]} == {r["case"] for r in worst}
    assert all(c["overlays"][0]["title"].startswith("errors") for c in data["cases"])


def test_report_without_viewer_has_no_script_and_says_one_case(folders, tmp_path):
    pred_dir, ref_dir = folders
    result = evaluate(pred_dir / "a.nii.gz", ref_dir / "a.nii.gz")
    text = result.write_report(tmp_path / "r", viewer=False).read_text(encoding="utf-8")
    page = Collector()
    page.feed(text)
    assert "script" not in page.tags
    assert "<title>Segmentation evaluation: 1 case</title>" in text


def test_overlay_marks_the_patients_right_on_the_left():
    from matplotlib.figure import Figure

    from medseg.reports.figures import orientation_letters

    ax = Figure().add_subplot()
    orientation_letters(ax)
    letters = {t.get_text(): t.get_position() for t in ax.texts}
    assert letters["R"][0] < 0.5 < letters["L"][0] and letters["A"][1] > 0.5 > letters["P"][1]


def test_worst_cases_lowest_dice_first_at_most_three_per_label():
    rows = [{"case": f"c{i}", "label": 1, "dice": d, "hd95": 1.0} for i, d in enumerate((0.9, 0.5, 0.7, 0.1, 1.0))]
    rows += [{"case": "z", "label": 2, "dice": 0.0, "hd95": None}, {"case": "y", "label": 2, "dice": 0.0, "hd95": 9.0}]
    worst = select_worst(rows)
    assert [(r["case"], r["label"]) for r in worst] == [("z", 2), ("y", 2), ("c3", 1), ("c1", 1), ("c2", 1)]
