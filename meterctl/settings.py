"""Where meterctl looks by default, and the environment variables that move it: the store
(`METERCTL_DB`, default ./meterctl.duckdb) and the configuration directory
(`METERCTL_PRICEBOOKS`, default ./pricebooks)."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_DB = "meterctl.duckdb"
ENV_DB = "METERCTL_DB"
DEFAULT_CONFIG_DIR = "pricebooks"
ENV_CONFIG_DIR = "METERCTL_PRICEBOOKS"


def default_db_path() -> Path:
    return Path(os.environ.get(ENV_DB) or DEFAULT_DB)


def config_dir(given: Path | None = None) -> Path:
    return given or Path(os.environ.get(ENV_CONFIG_DIR) or DEFAULT_CONFIG_DIR)
