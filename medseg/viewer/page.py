"""The viewer as HTML: NiiVue's browser bundle, the volumes as base64 NIfTI and a small control bar.

Everything is inline (no network, no other file), so the page works from a file URL, an e-mail attachment
or a notebook cell. Display convention: radiological by default (the patient's right on the left of axial
and coronal slices, as in the report's figures), switchable to neurological; NiiVue draws the orientation
letters on each slice.
"""
from __future__ import annotations

import json
from html import escape
from importlib import resources
from typing import Any

ASSET = "niivue.umd.js"

# name, (low, high) in HU; None: the scan's own robust range (0.5-99.5th percentile)
WINDOWS: dict[str, tuple[float, float] | None] = {
    "ct_soft": (40 - 200, 40 + 200),      # W400 L40
    "ct_lung": (-600 - 750, -600 + 750),  # W1500 L-600
    "ct_bone": (400 - 900, 400 + 900),    # W1800 L400
    "auto": None,
}
WINDOW_TITLES = {"ct_soft": "CT soft tissue (W400 L40)", "ct_lung": "CT lung (W1500 L-600)",
                 "ct_bone": "CT bone (W1800 L400)", "auto": "auto (0.5-99.5th percentile; MR)"}


def niivue_js() -> str:
    """The bundled NiiVue (BSD-2-Clause; see assets/README.md for its version and how to rebuild it)."""
    return resources.files("medseg.viewer").joinpath("assets", ASSET).read_text(encoding="utf-8")


def render_page(cases: list[dict[str, Any]], title: str, *, convention: str = "radiological") -> str:
    """A whole HTML document holding one viewer that shows ``cases`` (see :func:`viewer_block`)."""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{escape(title)}</title><style>body{{margin:0;font:14px system-ui,sans-serif;background:#111;"
            "color:#eee}}</style></head><body>"
            f"{viewer_block(cases, title, convention=convention, height='calc(100vh - 190px)')}</body></html>")


def viewer_block(cases: list[dict[str, Any]], title: str, *, convention: str = "radiological",
                 height: str = "560px") -> str:
    """One viewer as an HTML fragment (styles, controls, canvas, NiiVue and the data); one per page.

    Each case: ``{"title", "scan": {"base64", "name", "ct", "auto"} or None, "overlays": [{"title", "base64",
    "name", "legend": [[value, name, "#rrggbb"], ...]}]}``.
    """
    data = {"title": title, "convention": convention, "cases": cases, "windows": WINDOWS}
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    case_select = ""
    if len(cases) > 1:
        options = "".join(f'<option value="{i}">{escape(c["title"])}</option>' for i, c in enumerate(cases))
        case_select = f'<label>case <select id="ms-case">{options}</select></label>'
    windows = "".join(f'<option value="{k}">{escape(v)}</option>' for k, v in WINDOW_TITLES.items())
    checked = " selected" if convention == "neurological" else ""
    return f"""<div id="medseg-viewer" style="color:#eee;background:#111;padding:6px;border-radius:4px">
<style>#medseg-viewer .bar{{display:flex;flex-wrap:wrap;gap:4px 14px;align-items:center;margin:4px 0;font-size:13px}}
#medseg-viewer select,#medseg-viewer input{{font-size:13px}}#medseg-viewer .legend span{{margin-right:12px;
white-space:nowrap}}#medseg-viewer .legend i{{display:inline-block;width:11px;height:11px;margin-right:4px;
vertical-align:-1px;border:1px solid #000}}#medseg-viewer .note{{font-size:12px;color:#bbb}}</style>
<div class="bar">{case_select}
<label>view <select id="ms-view"><option value="multi">axial + coronal + sagittal</option>
<option value="axial">axial</option><option value="coronal">coronal</option><option value="sagittal">sagittal</option>
<option value="render">3D</option></select></label>
<label>window <select id="ms-window">{windows}</select></label>
<label>overlay <select id="ms-overlay"></select></label>
<label>opacity <input id="ms-opacity" type="range" min="0" max="1" step="0.05" value="0.5"></label>
<label>display <select id="ms-convention"><option value="radiological">radiological (patient right on screen left)</option>
<option value="neurological"{checked}>neurological (patient right on screen right)</option></select></label></div>
<div class="bar"><label>sagittal <input id="ms-x" type="range" min="0" max="1" step="0.001" value="0.5"></label>
<label>coronal <input id="ms-y" type="range" min="0" max="1" step="0.001" value="0.5"></label>
<label>axial <input id="ms-z" type="range" min="0" max="1" step="0.001" value="0.5"></label>
<span id="ms-location" class="note"></span></div>
<div style="height:{height};min-height:300px"><canvas id="ms-canvas"></canvas></div>
<div class="bar legend" id="ms-legend"></div>
<div class="note" id="ms-note">Slices are in physical space (the files' affines). Letters on each slice name the
patient's side (R/L, A/P, S/I). Scroll or drag on a slice to move; right-drag changes window/level.</div>
<script type="application/json" id="ms-data">{payload}</script>
<script>{niivue_js()}</script>
<script>{_SCRIPT}</script></div>"""


_SCRIPT = r"""
(function () {
  const data = JSON.parse(document.getElementById('ms-data').textContent);
  const $ = (id) => document.getElementById(id);
  const state = {case: 0, overlay: 0, images: []};
  const nv = new niivue.Niivue({backColor: [0, 0, 0, 1], show3Dcrosshair: true, isOrientationTextVisible: true,
    isRadiologicalConvention: data.convention !== 'neurological', dragAndDropEnabled: false,
    crosshairColor: [1, 1, 1, 0.45], crosshairWidth: 1});
  window.medsegViewer = {nv: nv, ready: false, error: null};
  function lut(legend) {
    const top = Math.max(1, ...legend.map((e) => e[0]));
    const R = [], G = [], B = [], A = [], I = [], labels = [];
    for (let i = 0; i <= top; i++) {
      const hit = legend.find((e) => e[0] === i);
      const c = hit ? hit[2] : '#000000';
      R.push(parseInt(c.slice(1, 3), 16)); G.push(parseInt(c.slice(3, 5), 16)); B.push(parseInt(c.slice(5, 7), 16));
      A.push(hit && i > 0 ? 255 : 0); I.push(i); labels.push(hit ? hit[1] : '');
    }
    return {R, G, B, A, I, labels};
  }
  function legend() {
    const c = data.cases[state.case], o = c.overlays[state.overlay];
    $('ms-legend').innerHTML = '';
    if (!o) return;
    for (const [value, name, colour] of o.legend) {
      if (value === 0) continue;
      const s = document.createElement('span');
      const i = document.createElement('i'); i.style.background = colour;
      s.appendChild(i); s.appendChild(document.createTextNode(value + ' ' + name));
      $('ms-legend').appendChild(s);
    }
  }
  function windowing() {
    const c = data.cases[state.case];
    if (!c.scan || !nv.volumes.length) return;
    const key = $('ms-window').value, w = data.windows[key] || c.scan.auto;
    nv.volumes[0].cal_min = w[0]; nv.volumes[0].cal_max = w[1];
    nv.updateGLVolume();
  }
  async function overlays() {  // an overlay is decoded the first time it is shown (large pages open faster)
    const c = data.cases[state.case], alpha = parseFloat($('ms-opacity').value), i = state.overlay;
    if (i >= 0 && !state.images[i]) {
      window.medsegViewer.ready = false;
      const o = c.overlays[i];
      const v = await niivue.NVImage.loadFromBase64({base64: o.base64, name: o.name});
      v.setColormapLabel(lut(o.legend));
      nv.addVolume(v); state.images[i] = v;
      window.medsegViewer.ready = true;
    }
    state.images.forEach((v, k) => { if (v) nv.setOpacity(nv.volumes.indexOf(v), k === i ? alpha : 0); });
    legend();
  }
  function slices() {
    nv.scene.crosshairPos = [+$('ms-x').value, +$('ms-y').value, +$('ms-z').value];
    nv.drawScene();
  }
  async function load(index) {
    state.case = index; window.medsegViewer.ready = false;
    const c = data.cases[index];
    while (nv.volumes.length) nv.removeVolume(nv.volumes[nv.volumes.length - 1]);
    if (c.scan) {
      const v = await niivue.NVImage.loadFromBase64({base64: c.scan.base64, name: c.scan.name, colormap: 'gray'});
      nv.addVolume(v);
    }
    state.images = [];
    const select = $('ms-overlay');
    select.innerHTML = '';
    c.overlays.forEach((o, i) => { const e = document.createElement('option'); e.value = i; e.textContent = o.title;
      select.appendChild(e); });
    const none = document.createElement('option'); none.value = -1; none.textContent = 'none'; select.appendChild(none);
    state.overlay = Math.min(state.overlay, c.overlays.length - 1); select.value = state.overlay;
    $('ms-window').value = c.scan && c.scan.ct ? 'ct_soft' : 'auto';
    $('ms-window').disabled = !c.scan || !!c.scan.mask;
    nv.setInterpolation(!c.scan || !!c.scan.mask);  // nearest voxels for a mask background
    windowing(); await overlays(); slices();
    window.medsegViewer.ready = true; document.body.dataset.medsegReady = '1';
  }
  const views = {multi: nv.sliceTypeMultiplanar, axial: nv.sliceTypeAxial, coronal: nv.sliceTypeCoronal,
    sagittal: nv.sliceTypeSagittal, render: nv.sliceTypeRender};
  $('ms-view').addEventListener('change', (e) => nv.setSliceType(views[e.target.value]));
  $('ms-window').addEventListener('change', windowing);
  $('ms-overlay').addEventListener('change', (e) => { state.overlay = +e.target.value; overlays(); });
  $('ms-opacity').addEventListener('input', overlays);
  $('ms-convention').addEventListener('change', (e) => nv.setRadiologicalConvention(e.target.value === 'radiological'));
  for (const id of ['ms-x', 'ms-y', 'ms-z']) $(id).addEventListener('input', slices);
  if ($('ms-case')) $('ms-case').addEventListener('change', (e) => load(+e.target.value));
  nv.onLocationChange = (where) => {
    $('ms-location').textContent = where.string || '';
    const f = nv.scene.crosshairPos;
    $('ms-x').value = f[0]; $('ms-y').value = f[1]; $('ms-z').value = f[2];
  };
  nv.attachToCanvas($('ms-canvas')).then(() => load(0)).catch((err) => {
    window.medsegViewer.error = String(err);
    $('ms-note').textContent = 'The viewer could not start (' + err + '): it needs a browser with WebGL2.';
  });
})();
"""
