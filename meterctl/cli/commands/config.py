"""`meterctl config validate`."""

from __future__ import annotations

from meterctl.cli.common import ConfigOption, JsonOption, command_group, print_json, problems_as_json, session, stderr_console

config_app = command_group("Check the configuration directory.")


@config_app.command("validate")
def config_validate(pricebooks: ConfigOption = None, as_json: JsonOption = False) -> None:
    """List every problem in meters.yaml and the pricebooks at once (exit 78 if there is any)."""
    with problems_as_json(as_json), session(None, pricebooks=pricebooks) as s:
        summary = s.validate_config()
    if as_json:
        print_json({"directory": summary.directory, "meters": list(summary.meters),
                    "pricebooks": list(summary.pricebooks), "seller": summary.seller, "taxes": list(summary.taxes),
                    "problems": []})
    else:
        stderr_console().print(f"{summary.directory}: {len(summary.meters)} meter(s), {len(summary.pricebooks)} "
                               f"pricebook version(s), {'a seller' if summary.seller else 'no seller.yaml'}, "
                               f"{len(summary.taxes)} tax(es), no problems")
