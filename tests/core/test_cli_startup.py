"""``duowei --help`` and light commands start without loading the heavy libraries that only
some commands need (scikit-learn, optbinning, scipy.optimize, openpyxl): they took the command's
start from about 1 s to 4.4 s on the 2-core machine, for every invocation."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("sklearn", "optbinning", "scipy.optimize", "openpyxl", "lightgbm", "plotly")

_PROBE = """
import json, sys
from duowei.cli import get_app
get_app()
heavy = sys.argv[1:]
print(json.dumps(sorted(m for m in sys.modules if any(m == h or m.startswith(h + ".")
                                                     for h in heavy))))
"""


def test_building_the_command_tree_loads_no_heavy_library() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, *HEAVY], capture_output=True, text=True, check=True
    ).stdout
    loaded = json.loads(out)
    assert loaded == [], f"`duowei --help` imports {loaded[:5]}: import them inside the command"


def test_the_probe_sees_a_heavy_import() -> None:
    # The check above can fail: importing a command's module that needs one is seen.
    probe = _PROBE.replace("get_app()", "get_app()\nimport duowei.services.demo")
    out = subprocess.run(
        [sys.executable, "-c", probe, *HEAVY], capture_output=True, text=True, check=True
    ).stdout
    assert "sklearn" in json.loads(out)
