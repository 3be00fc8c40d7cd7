"""Time meterctl the way an installed copy starts: from compiled bytecode.

`pip install` compiles a package's modules; a checkout under PYTHONDONTWRITEBYTECODE (set
on some CI machines and sandboxes) would recompile every changed module in every timed
subprocess instead, which says nothing about meterctl.
"""

from __future__ import annotations

import compileall
import os
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "meterctl"


def use_compiled_bytecode() -> None:
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    compileall.compile_dir(PACKAGE, quiet=1)
