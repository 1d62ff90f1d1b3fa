"""postprocessing.json (nnUNetv2_determine_postprocessing's output) applied; postprocessing.pkl never unpickled."""
from __future__ import annotations

import json
import pickle

import numpy as np
import SimpleITK as sitk
from typer.testing import CliRunner

from medseg.cli import main as cli_main
from medseg.nnunet.postprocessing import apply_steps, keep_largest, read_steps
from tests.nnunet._synthetic import make_folder, write_scan

runner = CliRunner()


def test_keep_largest_per_label_region_and_ties():
    seg = np.zeros((6, 6, 6), np.uint8)
    seg[0:2, 0:2, 0:2] = 1          # 8 voxels
    seg[4:6, 4:6, 4:5] = 1          # 4 voxels: removed
    seg[5, 5, 0] = 1                # touches nothing: removed
    seg[0, 5, 5] = 2
    seg[5, 0, 0] = 2                # two components of one voxel each: ties are all kept (acvl_utils)
    out = keep_largest(seg.copy(), [1])
    assert (out == 1).sum() == 8 and (out == 2).sum() == 2
    seg[2, 2, 2] = 2                # diagonal neighbour of label 1's cube: joins it as a region (full connectivity)
    region = keep_largest(seg.copy(), [1, 2])
    assert (region[0:3, 0:3, 0:3] == seg[0:3, 0:3, 0:3]).all() and (region[3:] == 0).all()


def _write_pp(folder, fns, kwargs, where=""):
    target = folder / where if where else folder
    target.mkdir(parents=True, exist_ok=True)
    (target / "postprocessing.json").write_text(json.dumps({"input_folder": {}, "postprocessed": {},
                                                            "postprocessing_fns": fns,
                                                            "postprocessing_kwargs": kwargs}))


class _Boom:
    def __reduce__(self):
        return (exec, ("raise SystemExit('postprocessing.pkl was unpickled')",))


def test_folder_postprocessing_json_is_applied_and_pkl_never_read(tmp_path):
    folder = make_folder(tmp_path / "results")
    fn = "remove_all_but_largest_component_from_segmentation"
    _write_pp(folder, [fn, fn], [{"labels_or_regions": 1}, {"labels_or_regions": [1, 2]}], "crossval_results_folds_0")
    (folder / "crossval_results_folds_0" / "postprocessing.pkl").write_bytes(pickle.dumps(_Boom()))
    scan = write_scan(tmp_path / "s_0000.nii.gz", seed=5)
    out, raw = tmp_path / "pp.nii.gz", tmp_path / "raw.nii.gz"
    base = ["predict", str(scan), "--model", str(folder), "--no-tta", "--exact"]
    assert runner.invoke(cli_main.app, [*base, "-o", str(out)]).exit_code == 0
    assert runner.invoke(cli_main.app, [*base, "-o", str(raw), "--no-postprocess"]).exit_code == 0
    got = sitk.GetArrayFromImage(sitk.ReadImage(str(out)))
    plain = sitk.GetArrayFromImage(sitk.ReadImage(str(raw)))
    expected = apply_steps(plain.copy(), read_steps(folder / "crossval_results_folds_0" / "postprocessing.json"))
    assert (got != plain).any()  # label 1 of a random network is scattered: islands removed
    np.testing.assert_array_equal(got, expected)
    sidecar = json.loads((tmp_path / "pp.json").read_text())
    assert sidecar["parameters"]["nnunet"]["postprocessing"] == [[1], [1, 2]]
    assert json.loads((tmp_path / "raw.json").read_text())["parameters"]["nnunet"]["postprocessing"] is None


def test_unsupported_postprocessing_function_is_refused_by_name(tmp_path):
    folder = make_folder(tmp_path / "results")
    _write_pp(folder, ["my_custom_fn"], [{}])
    scan = write_scan(tmp_path / "s_0000.nii.gz", seed=5)
    result = runner.invoke(cli_main.app, ["predict", str(scan), "--model", str(folder), "-o", str(tmp_path / "o.nii.gz")])
    assert result.exit_code == 2 and "my_custom_fn" in result.output and "--no-postprocess" in result.output
    assert not (tmp_path / "o.nii.gz").exists()
