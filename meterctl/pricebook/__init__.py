"""Versioned pricebooks: one YAML file per plan version, read exactly, frozen by content hash.

A pricebook prices one plan at one version. The configuration directory holds any number of
them, conventionally `<plan>/v<version>.yaml`. `models` holds the validated file, `loader`
reads a directory of them, `catalog` finds the version in force and guards frozen ones,
`diff` compares two versions and `schema` describes the files for editors.
"""

from meterctl.pricebook.catalog import Catalog, FrozenVersion, PricebookVersion, check_frozen, frozen_problems, parse_ref
from meterctl.pricebook.loader import load_catalog, load_configuration, load_pricebook, pricebook_from_text
from meterctl.pricebook.models import Charge, Fee, Pricebook

__all__ = [
    "Catalog", "Charge", "Fee", "FrozenVersion", "Pricebook", "PricebookVersion", "check_frozen", "frozen_problems",
    "load_catalog", "load_configuration", "load_pricebook", "parse_ref", "pricebook_from_text",
]
