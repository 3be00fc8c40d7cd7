"""The JSON Schema of pricebook files, for editors (yaml-language-server, IDEs)."""

from __future__ import annotations

from meterctl.pricebook.models import _NUMBER_SCHEMA, Pricebook


def schema() -> dict:
    """JSON Schema of a pricebook file, for editors.

    It checks the shape of a file (keys, types, signs); the rules that relate values to one
    another (tiers ascending, the price fields each model needs) are `pricebook validate`'s.
    """
    document = Pricebook.model_json_schema(mode="validation")
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["title"] = "meterctl pricebook"
    definitions = document["$defs"]
    # A price_by value is a price object or, for per_unit and package, the bare price.
    definitions["Charge"]["properties"]["price_by"] = {
        "anyOf": [
            {"type": "object", "minProperties": 1, "maxProperties": 1, "additionalProperties": {
                "type": "object", "minProperties": 1, "additionalProperties": {
                    "anyOf": [{**_NUMBER_SCHEMA, "minimum": 0}, {"$ref": "#/$defs/DimensionPrice"}]}}},
            {"type": "null"},
        ],
        "default": None,
        "title": "Price By",
    }
    for holder in (definitions["Charge"], definitions["DimensionPrice"]):
        tiers = holder["properties"]["tiers"]["anyOf"][0]
        tiers["minItems"] = 1
    return document

