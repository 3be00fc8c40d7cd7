"""Versioned pricebooks: one YAML file per plan version, read exactly, frozen by content hash.

A pricebook prices one plan at one version. The configuration directory holds any number of
them, conventionally `<plan>/v<version>.yaml`. `models` holds the validated file, `loader`
reads a directory of them, `catalog` finds the version in force and guards frozen ones,
`diff` compares two versions and `schema` describes the files for editors.

The names below are imported on first use (the models need pydantic, which commands that
read no configuration do without).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from meterctl.pricebook.catalog import Catalog, PricebookVersion, check_frozen, frozen_problems, parse_ref
    from meterctl.pricebook.loader import load_catalog, load_configuration, load_pricebook, pricebook_from_text
    from meterctl.pricebook.models import Charge, Fee, Pricebook

_WHERE = {
    "Catalog": "catalog", "PricebookVersion": "catalog", "check_frozen": "catalog", "frozen_problems": "catalog",
    "parse_ref": "catalog",
    "load_catalog": "loader", "load_configuration": "loader", "load_pricebook": "loader", "pricebook_from_text": "loader",
    "Charge": "models", "Fee": "models", "Pricebook": "models",
}

__all__ = [
    "Catalog", "Charge", "Fee", "Pricebook", "PricebookVersion", "check_frozen", "frozen_problems", "load_catalog", "load_configuration", "load_pricebook", "parse_ref", "pricebook_from_text",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
