"""The command line: exit codes, --json documents, stdout for data and stderr for the rest."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys

import pytest

from meterctl.store import open_store
from tests.conftest import ACME_CUSTOMERS, SAMPLE, event, jsonl

COUNT_KEYS = {"read", "accepted", "duplicates", "conflicts", "dead_lettered", "skipped_files", "seconds"}


def test_ingest_json_reports_per_file_and_in_total(cli, db, write):
    a = write("a.jsonl", jsonl(event("e1"), event("e1"), event("e2", quantity=3), event("e2", quantity=4)))
    b = write("b.jsonl", jsonl("{oops", event("e3")))
    result = cli("ingest", "--db", db, "--json", a, b)
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document.keys() >= COUNT_KEYS
    assert all(f.keys() >= COUNT_KEYS for f in document["files"])
    assert [f["source"] for f in document["files"]] == [str(a), str(b)]
    for key in ("read", "accepted", "duplicates", "conflicts", "dead_lettered"):
        assert document[key] == sum(f[key] for f in document["files"])
    assert (document["read"], document["accepted"], document["duplicates"], document["conflicts"], document["dead_lettered"]) == (6, 3, 1, 1, 1)


def test_ingest_summary_goes_to_stderr_not_stdout(cli, db, write):
    result = cli("ingest", "--db", db, write("a.jsonl", jsonl(event("e1"))))
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "accepted" in result.stderr


def test_strict_exits_65_but_keeps_what_it_read(cli, db, write):
    path = write("a.jsonl", jsonl(event("e1"), "not json"))
    result = cli("ingest", "--db", db, "--strict", path)
    assert result.exit_code == 65
    assert "--strict" in result.stderr
    status = json.loads(cli("status", "--db", db, "--json").stdout)
    assert (status["events"], status["dead_letters"]) == (1, 1)


def test_strict_passes_on_clean_input(cli, db, write):
    assert cli("ingest", "--db", db, "--strict", write("a.jsonl", jsonl(event("e1")))).exit_code == 0


def test_a_missing_input_exits_66_before_anything_is_written(cli, db, write, tmp_path):
    good = write("a.jsonl", jsonl(event("e1")))
    result = cli("ingest", "--db", db, good, tmp_path / "nope.jsonl")
    assert result.exit_code == 66
    assert "nope.jsonl: no such file or directory" in result.stderr
    assert "Traceback" not in result.output
    assert not db.exists()  # not even an empty store


def test_a_read_only_command_on_a_missing_store_creates_nothing(cli, db):
    for command in (["status"], ["dlq", "list"], ["invoice", "list"], ["invoice", "show", "x"]):
        result = cli(*command, "--db", db)
        assert result.exit_code == 66, command
        assert f"{db}: no database there yet" in result.stderr
        assert not db.exists()


def test_a_glob_that_matches_nothing_exits_66(cli, db, tmp_path):
    result = cli("ingest", "--db", db, str(tmp_path / "*.jsonl"))
    assert result.exit_code == 66
    assert "no file matches" in result.stderr


def test_globs_are_expanded(cli, db, write, tmp_path):
    write("d/x1.jsonl", jsonl(event("e1")))
    write("d/x2.jsonl", jsonl(event("e2")))
    result = cli("ingest", "--db", db, "--json", str(tmp_path / "d" / "x*.jsonl"))
    assert json.loads(result.stdout)["accepted"] == 2


def test_standard_input_plain_and_gzipped(cli, db):
    plain = cli("ingest", "--db", db, "--json", "-", input=jsonl(event("e1"), event("e2")))
    assert plain.exit_code == 0, plain.output
    assert json.loads(plain.stdout)["files"][0]["source"] == "-"
    zipped = cli("ingest", "--db", db, "--json", "-", input=gzip.compress(jsonl(event("e3")).encode()))
    assert json.loads(zipped.stdout)["accepted"] == 1
    again = cli("ingest", "--db", db, "--json", "-", input=jsonl(event("e1"), event("e2")))
    assert json.loads(again.stdout)["skipped_files"] == 1


def test_a_bad_duration_is_a_usage_error(cli, db, write):
    path = write("a.jsonl", jsonl(event("e1")))
    for option, value in (("--max-future", "soon"), ("--max-future", "106751991d"), ("--max-age", "99999999999d")):
        result = cli("ingest", "--db", db, option, value, path)
        assert result.exit_code == 2, (option, value, result.stderr)
        assert f"{option}: '{value}'" in result.stderr
    assert cli("ingest", "--db", db, "--max-future", "365250d", "--max-age", "365250d", path).exit_code == 0


def test_the_command_line_default_for_max_future_is_the_librarys():
    from meterctl.cli.commands.ingest import MAX_FUTURE_DEFAULT
    from meterctl.cli.common import parse_duration
    from meterctl.events import DEFAULT_MAX_FUTURE

    assert parse_duration(MAX_FUTURE_DEFAULT, "--max-future") == DEFAULT_MAX_FUTURE


def test_loading_the_command_line_leaves_the_ingest_machinery_unloaded():
    # Start-up time counts for every command: pyarrow and numpy are for ingest and exports.
    code = "import sys, meterctl.cli; print(sorted({'pyarrow', 'numpy', 'meterctl.ingest'} & set(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_a_run_builds_only_the_command_it_names_and_it_is_the_same_command():
    from typer.testing import CliRunner

    from meterctl.cli import _COMMANDS, app, build_app

    runner = CliRunner()
    for name in _COMMANDS:
        alone = build_app([name])
        assert [c.name for c in alone.registered_commands] + [g.name for g in alone.registered_groups] == [name]
        for args in ([name, "--help"], [name, "--no-such-option"]):
            slim, whole = runner.invoke(alone, args), runner.invoke(app, args)
            assert (slim.exit_code, slim.output) == (whole.exit_code, whole.output), args


def test_json_output_puts_a_key_or_an_item_per_line_and_keeps_the_document(capsys):
    from decimal import Decimal

    from meterctl.cli.common import print_json

    document = {"run": 1, "lines": [{"name": "Zoë", "meter": None}, {"amount": Decimal("1.50")}], "none": [],
                "totals": {"USD": [1, 2]}}
    print_json(document)
    out = capsys.readouterr().out
    assert json.loads(out) == json.loads(json.dumps(document, default=str))
    assert out.splitlines() == [
        "{", '  "run": 1,', '  "lines": [', '    {"name": "Zoë", "meter": null},', '    {"amount": "1.50"}', "  ],",
        '  "none": [],', '  "totals": {', '    "USD": [1, 2]', "  }", "}"]


def test_a_mistyped_command_gets_one_suggestion(cli):
    for args, suggested in ((["ratee"], "'rate'"), (["invoice", "lst"], "'list'"), (["pricebook", "shwo"], "'show'")):
        result = cli(*args)
        assert result.exit_code == 2
        assert result.output.count("Did you mean") == 1 and f"Did you mean {suggested}?" in result.output


def test_rating_invoicing_and_a_json_export_leave_pyarrow_unloaded(cli, db, config, write, tmp_path):
    # Importing pyarrow and numpy takes about a tenth of a second, as much as rating a
    # thousand customers: the commands that run after every ingest do without them.
    assert cli("customers", "import", "--db", db, write("customers.yaml", ACME_CUSTOMERS)).exit_code == 0
    events = jsonl(event("c1"), event("c2", timestamp="2026-10-25T12:00:00Z"),
                   event("t1", event_name="llm_tokens", quantity=5, properties={"model": "big"}))
    assert cli("ingest", "--db", db, write("events.jsonl", events)).exit_code == 0
    common = f"--db|{db}|--pricebooks|{config}|--period|2026-10"
    code = ("import sys\nfrom meterctl.cli import main\nfor args in sys.argv[1:]:\n    try:\n"
            "        main(args.split('|'))\n    except SystemExit as done:\n        assert not done.code, args\n"
            "print(sorted({'pyarrow', 'numpy'} & set(sys.modules)), file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code, f"rate|{common}", f"invoice|{common}",
                           f"invoice|export|--db|{db}|--period|2026-10|--format|json|-o|{tmp_path / 'out'}"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "cus_1" in (tmp_path / "out").read_text()
    assert done.stderr.strip().endswith("[]")


def test_a_command_without_configuration_parses_its_options_without_pydantic(tmp_path):
    # Typer from 0.26 coerces options through pydantic (see the pin in pyproject.toml).
    code = ("import sys\nfrom meterctl.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "print('pydantic' in sys.modules, file=sys.stderr)")
    open_store(tmp_path / "x.duckdb").close()
    done = subprocess.run([sys.executable, "-c", code, "status", "--db", str(tmp_path / "x.duckdb"), "--json"],
                          capture_output=True, text=True, check=True)
    assert json.loads(done.stdout)["events"] == 0
    assert done.stderr.strip().endswith("False")


@pytest.mark.parametrize("command", [["status"], ["customers", "list"], ["invoice", "list"], ["dlq", "list"]])
def test_reading_the_store_loads_neither_the_configuration_models_nor_the_currency_table(tmp_path, command):
    # Start-up time counts for every cron run: pydantic (configuration, rating) and iso4217
    # are loaded by the commands that price, not by those that only read what is stored.
    code = ("import sys\nfrom meterctl.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "print(sorted({'pydantic', 'iso4217', 'meterctl.rating.month'} & set(sys.modules)), file=sys.stderr)")
    open_store(tmp_path / "x.duckdb").close()
    done = subprocess.run([sys.executable, "-c", code, *command, "--db", str(tmp_path / "x.duckdb")],
                          capture_output=True, text=True, check=True)
    assert done.stderr.strip().endswith("[]"), done.stderr


def test_a_db_in_a_missing_directory_exits_73(cli, tmp_path, write):
    result = cli("ingest", "--db", tmp_path / "no" / "such" / "x.duckdb", write("a.jsonl", jsonl(event("e1"))))
    assert result.exit_code == 73


def test_db_from_the_environment(cli, tmp_path, write, monkeypatch):
    db = tmp_path / "env.duckdb"
    monkeypatch.setenv("METERCTL_DB", str(db))
    assert cli("ingest", write("a.jsonl", jsonl(event("e1")))).exit_code == 0
    assert db.exists()


def test_dlq_list_and_show(cli, db, write):
    cli("ingest", "--db", db, write("a.jsonl", jsonl(event("e1"), '{"event_id": "e2"', event("e3", quantity="x"))))
    listed = json.loads(cli("dlq", "list", "--db", db, "--json").stdout)
    assert [(d["line_no"], d["reason"]) for d in listed] == [
        (2, "malformed JSON"),
        (3, 'quantity "x" is not a finite decimal number that fits DECIMAL(38, 18)'),
    ]
    shown = json.loads(cli("dlq", "show", str(listed[0]["dead_letter_id"]), "--db", db, "--json").stdout)
    assert shown["raw"] == '{"event_id": "e2"'
    assert shown["source"].endswith("a.jsonl")
    filtered = json.loads(cli("dlq", "list", "--db", db, "--json", "--reason", "QUANTITY").stdout)
    assert len(filtered) == 1
    table = cli("dlq", "list", "--db", db)
    assert table.exit_code == 0 and "malformed JSON" in table.stdout


def test_dlq_show_never_sends_control_characters_to_the_terminal(cli, db, write):
    line = '{"event_id": "[red]x[/red]\x1b[2J", "note": "\x07\x08"'  # malformed: dead-lettered as it is
    cli("ingest", "--db", db, write("a.jsonl", line + "\n"))
    [dead] = json.loads(cli("dlq", "list", "--db", db, "--json").stdout)
    assert dead["raw"] == line  # stored exactly
    shown = cli("dlq", "show", str(dead["dead_letter_id"]), "--db", db).stdout
    assert not any(ord(c) < 32 and c != "\n" for c in shown)
    assert '"[red]x[/red]\\x1b[2J", "note": "\\x07\\x08"' in shown


def test_a_file_name_that_is_not_utf8_is_shown_with_its_bytes_escaped(cli, db, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / os.fsdecode(b"usage-\xff.jsonl")).write_text(jsonl(event("e1")))
    result = cli("ingest", "--db", db, "--json", folder)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["files"][0]["source"].endswith("usage-\\xff.jsonl")
    again = json.loads(cli("ingest", "--db", db, "--json", folder).stdout)
    assert again["skipped_files"] == 1  # recognised as the same file on the next run


def test_dlq_show_of_an_unknown_id(cli, db, write):
    cli("ingest", "--db", db, write("a.jsonl", jsonl(event("e1"))))
    result = cli("dlq", "show", "999", "--db", db)
    assert result.exit_code == 65
    assert "dead letter 999 does not exist" in result.stderr


def test_conflicts_list(cli, db, write):
    cli("ingest", "--db", db, write("a.jsonl", jsonl(event("e1", quantity=1))))
    cli("ingest", "--db", db, write("b.jsonl", jsonl(event("e1", quantity=2))))
    [conflict] = json.loads(cli("conflicts", "list", "--db", db, "--json").stdout)
    assert conflict["event_id"] == "e1"
    assert conflict["billed_source"].endswith("a.jsonl") and conflict["source"].endswith("b.jsonl")
    assert conflict["billed_hash"] != conflict["new_hash"]
    assert "e1" in cli("conflicts", "list", "--db", db).stdout


def test_status_on_the_sample_month(cli, db):
    cli("ingest", "--db", db, SAMPLE / "events-2026-10.jsonl")
    status = json.loads(cli("status", "--db", db, "--json").stdout)
    expected = json.loads((SAMPLE / "events-2026-10.expected.json").read_text())["expected"]
    assert status["events"] == expected["accepted"]
    assert status["dead_letters"] == expected["dead_lettered"]
    assert status["first_event_at"].startswith("2026-10-01")
    assert status["last_ingests"][0]["source"].endswith("events-2026-10.jsonl")
    assert cli("status", "--db", db).exit_code == 0


def test_version_and_help(cli):
    assert cli("--version").stdout.startswith("meterctl ")
    assert "ingest" in cli("--help").stdout


def test_an_unreadable_file_exits_66_after_the_others_are_ingested_and_reported(cli, db, write):
    good = write("a.jsonl", jsonl(event("e1")))
    whole = gzip.compress(jsonl(*[event(f"z{i}") for i in range(2000)]).encode())
    truncated = write("b.jsonl.gz", whole[: len(whole) // 2])
    after = write("c.jsonl", jsonl(event("e2"), event("e3")))
    result = cli("ingest", "--db", db, "--json", good, truncated, after)
    assert result.exit_code == 66
    assert "b.jsonl.gz: cannot be read" in result.stderr and "the others were ingested" in result.stderr
    report = json.loads(result.stdout)
    assert [(f["source"], f["accepted"], f["error"] is not None) for f in report["files"]] == [
        (str(good), 1, False), (str(truncated), 0, True), (str(after), 2, False)]
    assert (report["accepted"], report["failed_files"]) == (3, 1)
    status = json.loads(cli("status", "--db", db, "--json").stdout)
    assert (status["events"], status["batches"]) == (3, 2)  # nothing of the broken file
    table = cli("ingest", "--db", db, truncated)
    assert table.exit_code == 66 and "NOT INGESTED" in table.stderr


def test_a_file_too_big_for_the_memory_limit_says_so_and_the_others_go_on(cli, db, write, monkeypatch):
    # Lines of 100 KB take DuckDB far more memory than ordinary events.
    monkeypatch.setenv("METERCTL_MEMORY_LIMIT", "32MB")
    heavy = write("heavy.jsonl", jsonl(*[event(f"h{i}", properties={"blob": "x" * 100_000}) for i in range(300)]))
    light = write("light.jsonl", jsonl(event("e1"), event("e2")))
    result = cli("ingest", "--db", db, "--json", heavy, light)
    assert result.exit_code == 66
    report = json.loads(result.stdout)
    assert [f["accepted"] for f in report["files"]] == [0, 2]
    assert "within the memory limit of 30.5 MiB (nothing of it was stored)" in report["files"][0]["error"]
    assert "METERCTL_MEMORY_LIMIT=4GB" in result.stderr and "the others were ingested" in result.stderr
    status = json.loads(cli("status", "--db", db, "--json").stdout)
    assert (status["events"], status["batches"]) == (2, 1)


def test_a_corrupt_parquet_file_exits_66(cli, db, write):
    result = cli("ingest", "--db", db, write("bad.parquet", b"PAR1 this is not parquet"))
    assert result.exit_code == 66
    assert "cannot be read as Parquet" in result.stderr


def test_ctrl_c_during_a_query_is_interrupted_exit_130_not_an_internal_error(db, write, monkeypatch, capsys):
    # DuckDB answers SIGINT in a running query with RuntimeError("Query interrupted").
    from meterctl import ingest as ingest_module
    from meterctl.cli import main

    def interrupted(*args, **kwargs):
        raise RuntimeError("Query interrupted")

    monkeypatch.setattr(ingest_module, "ingest", interrupted)
    with pytest.raises(SystemExit) as exited:
        main(["ingest", "--db", str(db), str(write("a.jsonl", jsonl(event("e1"))))])
    assert exited.value.code == 130
    assert capsys.readouterr().err == "meterctl: interrupted\n"
