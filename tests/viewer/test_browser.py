"""The viewer page in headless Chromium (Debian's ``chromium``; skipped when absent), opened from a file URL
with networking off: it draws the scan and the overlay, the patient's right is on the screen's left
(radiological convention) until the display is switched, and slice and opacity controls change the picture."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from tests.viewer.browser import Browser, chromium_path

pytestmark = pytest.mark.skipif(chromium_path() is None,
                                reason="chromium is not installed (apt-get install chromium)")


@pytest.fixture(scope="module")
def browser():
    b = Browser()
    yield b
    b.close()


def _set(browser: Browser, element: str, value, event: str = "input") -> None:
    browser.evaluate(f"(() => {{ const e = document.getElementById('{element}'); e.value = {value!r}; "
                     f"e.dispatchEvent(new Event('{event}')); }})()")
    browser.wait_for("window.medsegViewer.ready")  # a first shown overlay is decoded then


def _canvas(browser: Browser) -> np.ndarray:
    """The canvas area of a screenshot as RGB uint8."""
    from PIL import Image

    browser.evaluate("new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")
    box = browser.evaluate("(() => { const r = document.getElementById('ms-canvas').getBoundingClientRect(); "
                           "return [r.left, r.top, r.right, r.bottom].map(Math.round); })()")
    image = np.asarray(Image.open(io.BytesIO(browser.screenshot())).convert("RGB"))
    return image[box[1]:box[3], box[0]:box[2]]


def _orange(rgb: np.ndarray) -> np.ndarray:
    """Pixels tinted by label 1's colour (#E69F00) over grey: red well above blue."""
    r, g, b = (rgb[..., i].astype(int) for i in range(3))
    return (r - b > 60) & (g - b > 25) & (r > g)


def _open(browser: Browser, page: Path) -> None:
    browser.open(page)
    browser.wait_for("document.body && document.body.dataset.medsegReady === '1' || "
                     "(window.medsegViewer && window.medsegViewer.error)")
    assert browser.evaluate("window.medsegViewer.error") is None


def _page(case, tmp_path: Path) -> Path:
    from medseg.viewer import write_viewer

    return write_viewer(case["scan"], [case["labels"]], reference=case["reference"], output=tmp_path / "v.html")


def test_page_shows_scan_and_overlay_and_follows_slice_and_opacity(browser, case, tmp_path):
    _open(browser, _page(case, tmp_path))
    _set(browser, "ms-view", "axial", "change")
    _set(browser, "ms-overlay", "1", "change")   # the label map itself (0 is the errors view)
    before = _canvas(browser)
    grey = (np.abs(before.astype(int) - before[..., :1]).max(-1) < 8) & (before[..., 0] > 60)
    assert grey.sum() > 1000, "the scan (grey soft tissue at W400 L40) is not drawn"
    orange = _orange(before)
    assert orange.sum() > 200, "the label overlay is not drawn"
    # radiological display: the structure (high x, RAS+: the patient's right) is left of the body's centre
    columns = np.flatnonzero(grey.any(0) | orange.any(0))
    assert np.flatnonzero(orange.any(0)).mean() < (columns.min() + columns.max()) / 2
    assert browser.evaluate("medsegViewer.nv.opts.isRadiologicalConvention") is True

    _set(browser, "ms-z", "0.02")                 # an axial slice below the structure
    below = _canvas(browser)
    assert _orange(below).sum() == 0 and not np.array_equal(before, below)

    _set(browser, "ms-z", "0.5")
    _set(browser, "ms-opacity", "0")
    assert _orange(_canvas(browser)).sum() == 0
    _set(browser, "ms-opacity", "1")
    opaque = _canvas(browser)
    assert _orange(opaque).sum() >= orange.sum() * 0.9
    hits = opaque[_orange(opaque)]                # fully opaque label 1 shows its own colour
    assert np.abs(np.median(hits, 0) - (0xE6, 0x9F, 0x00)).max() < 30


@pytest.mark.slow
def test_errors_view_and_neurological_display(browser, case, tmp_path):
    _open(browser, _page(case, tmp_path))
    _set(browser, "ms-view", "axial", "change")
    _set(browser, "ms-opacity", "1")
    errors = _canvas(browser).astype(int)        # overlay 0: errors against the reference
    cyan = (errors[..., 1] > 180) & (errors[..., 2] > 180) & (errors[..., 0] < 80)
    assert cyan.sum() > 20                        # the missed strip (false negative) crosses this slice
    _set(browser, "ms-z", "0.3")                  # a slice with extra (false positive) voxels
    errors = _canvas(browser).astype(int)
    magenta = (errors[..., 0] > 180) & (errors[..., 2] > 180) & (errors[..., 1] < 80)
    assert magenta.sum() > 20

    _set(browser, "ms-z", "0.5")
    _set(browser, "ms-overlay", "1", "change")
    rgb = _canvas(browser)
    body = np.flatnonzero((rgb.max(-1) > 60).any(0))
    _set(browser, "ms-convention", "neurological", "change")
    flipped = _orange(_canvas(browser))
    assert np.flatnonzero(flipped.any(0)).mean() > (body.min() + body.max()) / 2


@pytest.mark.slow
def test_report_viewer_shows_errors_of_a_worst_case(browser, tmp_path):
    from medseg.reports import evaluate
    from tests.reports.conftest import make_case, save

    pred, ref = make_case(3)
    report = evaluate(save(tmp_path / "p.nii.gz", pred), save(tmp_path / "r.nii.gz", ref)).write_report(tmp_path)
    _open(browser, report)
    browser.evaluate("document.getElementById('medseg-viewer').scrollIntoView()")
    _set(browser, "ms-view", "axial", "change")
    _set(browser, "ms-opacity", "1")
    rgb = _canvas(browser).astype(int)
    magenta = (rgb[..., 0] > 180) & (rgb[..., 2] > 180) & (rgb[..., 1] < 80)
    cyan = (rgb[..., 1] > 180) & (rgb[..., 2] > 180) & (rgb[..., 0] < 80)
    assert magenta.sum() > 20 and cyan.sum() > 20   # a shifted prediction: extra on one side, missed on the other
