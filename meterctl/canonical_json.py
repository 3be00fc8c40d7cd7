"""Canonical JSON: sorted keys, no spaces, ASCII only, as
`json.dumps(value, sort_keys=True, separators=(",", ":"))` writes it.

The run hash and the invoice content hash are sha256 over this text, and stores keep those
hashes, so its bytes must never change. Besides `compact` (json.dumps with one reused
encoder), `json_object` builds an object from members encoded beforehand: rating encodes
each line's values once and joins them for both hashes.
"""

from __future__ import annotations

import json

# The string encoder json.dumps uses with ensure_ascii (its C version when available).
string = json.encoder.encode_basestring_ascii

# One encoder each, not one per call (json.dumps builds a new one whenever options are given).
compact = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode


def nullable(value: str | None) -> str:
    return "null" if value is None else string(value)


def json_object(members: dict[str, str]) -> str:
    """An object from already-encoded member values, keys sorted: byte for byte what
    `compact` writes for the decoded object."""
    return "{" + ",".join([f"{string(key)}:{members[key]}" for key in sorted(members)]) + "}"
