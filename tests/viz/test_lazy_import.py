"""``import medseg`` loads neither medseg.viz nor matplotlib; ``import medseg.viz`` stays light until used."""
from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_import_medseg_leaves_viz_and_matplotlib_alone():
    code = ("import sys, medseg, medseg.viz; "
            "assert 'matplotlib' not in sys.modules, 'matplotlib'; "
            "assert 'medseg.viz.slices' not in sys.modules; "
            "medseg.viz.orthogonal_slices; assert 'medseg.viz.slices' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_medseg_alone_does_not_import_viz():
    code = "import sys, medseg; assert 'medseg.viz' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
