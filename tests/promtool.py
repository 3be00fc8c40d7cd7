"""promtool, Prometheus's own checker, for the tests: the one on PATH, or the one in
Debian's `prometheus` package, downloaded once (apt-get download, no install: no root
needed where the package lists exist) and unpacked into .cache/ beside the tests."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.conftest import REPO

CACHE = REPO / ".cache" / "prometheus"
BINARY = CACHE / "usr" / "bin" / "promtool"


def promtool() -> str:
    found = shutil.which("promtool")
    if found:
        return found
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE.parent / "prometheus.lock", "w") as lock:  # test workers download it once
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not BINARY.exists():
            _unpack()
    return str(BINARY)


def _unpack() -> None:
    with tempfile.TemporaryDirectory() as work:
        download = ["apt-get", "download", "prometheus"]
        done = subprocess.run(download, cwd=work, capture_output=True, text=True)
        if done.returncode != 0 and os.geteuid() == 0:  # no package lists yet (a fresh machine)
            subprocess.run(["apt-get", "update", "-q"], capture_output=True, check=False)
            done = subprocess.run(download, cwd=work, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"promtool is not on PATH and Debian's prometheus package could not be downloaded: "
                               f"{done.stderr.strip()}")
        [package] = Path(work).glob("prometheus_*.deb")
        subprocess.run(["dpkg-deb", "-x", str(package), str(CACHE)], check=True)
