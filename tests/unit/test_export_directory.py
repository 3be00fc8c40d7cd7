"""The HTML export's directory: all pages or none, built beside its place and renamed into it."""

from __future__ import annotations

import os

import pytest

from meterctl.errors import OutputError
from meterctl.io.files import write_directory_atomically


def listing(directory):
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_a_new_directory_holds_exactly_the_pages(tmp_path):
    out = tmp_path / "invoices"
    write_directory_atomically(out, [("INV-1.html", b"one"), ("INV-2.html", b"two")])
    assert listing(out) == {"INV-1.html": b"one", "INV-2.html": b"two"}
    assert sorted(os.listdir(tmp_path)) == ["invoices"]  # nothing left beside it


def test_an_export_again_replaces_the_pages_and_keeps_hidden_files(tmp_path):
    out = tmp_path / "invoices"
    write_directory_atomically(out, [("INV-1.html", b"one"), ("INV-2.html", b"two")])
    (out / ".keep").write_bytes(b"")
    write_directory_atomically(out, [("INV-1.html", b"one, revised"), ("INV-3.html", b"three")])
    # INV-2's page was of the earlier export: the directory holds this export and no other page.
    assert listing(out) == {".keep": b"", "INV-1.html": b"one, revised", "INV-3.html": b"three"}
    assert sorted(os.listdir(tmp_path)) == ["invoices"]


def test_a_failure_while_building_leaves_the_earlier_export_as_it_was(tmp_path):
    out = tmp_path / "invoices"
    write_directory_atomically(out, [("INV-1.html", b"one")])
    with pytest.raises(OutputError, match="cannot be written"):
        # The second page cannot be written (no such subdirectory): nothing of this export shows.
        write_directory_atomically(out, [("INV-1.html", b"new"), ("missing/INV-2.html", b"two")])
    assert listing(out) == {"INV-1.html": b"one"}
    assert sorted(os.listdir(tmp_path)) == ["invoices"]


def test_a_page_temporary_a_killed_earlier_version_left_inside_is_not_kept(tmp_path):
    out = tmp_path / "invoices"
    out.mkdir()
    (out / "INV-2026-000001.html").write_bytes(b"old")
    (out / ".INV-2026-000002.html.k3j_x9a1").write_bytes(b"half a page")
    write_directory_atomically(out, [("INV-2026-000001.html", b"new")])
    assert listing(out) == {"INV-2026-000001.html": b"new"}


def test_what_a_killed_export_left_beside_the_directory_is_cleared(tmp_path):
    out = tmp_path / "invoices"
    partial = tmp_path / ".invoices.4242-0badcafe-export"
    partial.mkdir()
    (partial / "INV-1.html").write_bytes(b"half")
    write_directory_atomically(out, [("INV-1.html", b"one")])
    assert sorted(os.listdir(tmp_path)) == ["invoices"]


def test_a_directory_holding_other_things_is_refused_untouched(tmp_path):
    out = tmp_path / "reports"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="holds other things than invoice pages \\(notes.txt\\)") as caught:
        write_directory_atomically(out, [("INV-1.html", b"one")])
    assert caught.value.exit_code == 73
    assert listing(out) == {"notes.txt": b"mine"}


def test_the_directory_one_stands_in_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OutputError, match="is the directory you are in"):
        write_directory_atomically(tmp_path, [("INV-1.html", b"one")])
