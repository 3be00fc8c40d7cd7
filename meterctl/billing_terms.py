"""Who bills, and the taxes customers are billed: `seller.yaml` and `taxes.yaml` in the
configuration directory, both optional, checked like every configuration file (every
problem at its file, line and key, exit 78).

    # seller.yaml
    name: Example Cloud Ltd
    address: |
      1 Infinite Loop
      Dublin D02 XY45, Ireland
    email: billing@example.com
    tax_id: IE1234567X
    payment_terms_days: 30          # a customer's own payment_terms_days wins
    note: "IBAN IE29 AIBK 9311 5212 3456 78"
    logo: logo.png                  # relative to the configuration directory

    # taxes.yaml
    taxes:
      - {code: GST, name: GST, rate: 0.05}
      - {code: QST, name: QST (Québec), rate: 0.09975}

Customers name the taxes they pay by code (`taxes: [GST, QST]` in the customers file).
Rates are exact decimals (never floats) between 0 and 1.
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator

from meterctl.config_yaml import ConfigProblems, Problem, load_document, repeats, validate

SELLER_FILE = "seller.yaml"
TAXES_FILE = "taxes.yaml"
TAX_CODE = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]*$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def checked_email(value: str | None) -> str | None:
    """An email address as the seller and customers give it (a plausible shape, no more)."""
    if value is not None and not _EMAIL.match(value):
        raise ValueError(f"'{value}' is not an email address")
    return value


class Seller(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: StrictStr = Field(min_length=1)
    address: StrictStr | tuple[StrictStr, ...] = ()
    email: StrictStr | None = None
    tax_id: StrictStr | None = Field(default=None, min_length=1)
    payment_terms_days: StrictInt = Field(default=30, ge=0, le=3650)
    note: StrictStr | None = None  # bank details, a line of terms
    logo: StrictStr | None = None

    _email = field_validator("email")(classmethod(lambda cls, value: checked_email(value)))

    @property
    def address_lines(self) -> tuple[str, ...]:
        lines = self.address.splitlines() if isinstance(self.address, str) else self.address
        return tuple(line.strip() for line in lines if line.strip())


class Tax(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    code: StrictStr
    name: StrictStr = Field(min_length=1)
    rate: Decimal

    @field_validator("code")
    @classmethod
    def _code(cls, code: str) -> str:
        if not TAX_CODE.match(code):
            raise ValueError(f"'{code}' is not a tax code (letters, digits, _ and -, starting with a letter)")
        return code

    @field_validator("rate")
    @classmethod
    def _rate(cls, rate: Decimal) -> Decimal:
        if not rate.is_finite() or rate < 0 or rate >= 1:
            raise ValueError("must be a fraction from 0 to below 1 (0.05 is 5%)")
        return rate


class TaxesFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    taxes: tuple[Tax, ...] = ()


def load_seller(directory: Path) -> Seller | None:
    """seller.yaml, or None when the directory has none; its logo must exist."""
    path = directory / SELLER_FILE
    if not path.exists():
        return None
    document = load_document(path)
    seller = validate(document, Seller)
    if seller.logo is not None and not (directory / seller.logo).is_file():
        raise ConfigProblems([document.problem(("logo",), f"no file '{seller.logo}' in {directory}")])
    return seller


def load_taxes(directory: Path) -> dict[str, Tax]:
    """taxes.yaml by code (empty when the directory has none)."""
    path = directory / TAXES_FILE
    if not path.exists():
        return {}
    document = load_document(path)
    parsed = validate(document, TaxesFile)
    problems = [document.problem(("taxes", index, "code"), f"tax '{code}' is defined twice (first as taxes[{first}])")
                for index, code, first in repeats(tax.code for tax in parsed.taxes)]
    if problems:
        raise ConfigProblems(problems)
    return {tax.code: tax for tax in parsed.taxes}


def unknown_tax_codes(customer_taxes: dict[str, tuple[str, ...]], taxes: dict[str, Tax], source: str) -> list[Problem]:
    """A problem for each customer naming a tax code taxes.yaml does not define."""
    known = ", ".join(sorted(taxes)) or f"none: add {TAXES_FILE} to the configuration directory"
    return [Problem(source, None, f"customer {customer_id}",
                    f"tax '{code}' is not in {TAXES_FILE} (codes: {known})")
            for customer_id, codes in sorted(customer_taxes.items()) for code in codes if code not in taxes]
