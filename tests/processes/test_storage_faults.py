"""The store under faults an operator meets: a full disk, a damaged file, a creation cut
short. Each one gets its exit code and a message naming the store and what to do, and
leaves the store as it was before the command.

The full disk is real where the tests may mount a small tmpfs (as root), and injected
everywhere with a file-size limit (RLIMIT_FSIZE: the write fails with EFBIG, as a full disk
fails it with ENOSPC). Damage is real bytes flipped in the file.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from meterctl.session import Session
from tests.conftest import REPO, SAMPLE, event, jsonl

MONTH = "2026-10"


def meterctl(*args, limit_file_size: int | None = None) -> subprocess.CompletedProcess:
    def limited() -> None:
        # A write past the limit then fails with EFBIG instead of killing the process.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_file_size, limit_file_size))

    return subprocess.run([sys.executable, "-m", "meterctl", *map(str, args)], capture_output=True, text=True,
                          timeout=120, cwd=REPO, preexec_fn=limited if limit_file_size else None)


def events_in(db: Path) -> int:
    with Session(db, read_only=True) as s:
        return s.status().events


@pytest.fixture(scope="module")
def sample_store(tmp_path_factory) -> Path:
    """The sample month's customers and events, stored once; tests work on copies."""
    path = tmp_path_factory.mktemp("sample") / "sample.duckdb"
    with Session(path) as s:
        s.import_customers(SAMPLE / "customers.yaml")
        s.ingest([SAMPLE / "events-2026-10.jsonl"])
    return path


@pytest.fixture
def store(sample_store, tmp_path) -> Path:
    copy = tmp_path / "store.duckdb"
    shutil.copyfile(sample_store, copy)
    return copy


class SmallDisk:
    """A 16 MiB tmpfs that a filler file fills up to what a test leaves free."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.filler = root / "filler"

    def fill(self, leave_kib: int) -> None:
        self.free()
        stats = os.statvfs(self.root)
        with open(self.filler, "wb") as file:
            file.write(b"\0" * max(stats.f_bavail * stats.f_frsize - leave_kib * 1024, 0))

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def files(self) -> list[str]:
        return sorted(name for name in os.listdir(self.root) if name != "filler")


@pytest.fixture
def small_disk(tmp_path) -> SmallDisk:
    root = tmp_path / "disk"
    root.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root (the injected full disk runs everywhere)")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(root)], capture_output=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield SmallDisk(root)
    subprocess.run(["umount", "-l", str(root)], check=True)


# ---------------------------------------------------------------- a full disk


def test_a_full_disk_during_ingest_exits_73_and_the_rerun_after_freeing_space_completes(store, small_disk, write):
    on_disk = small_disk.root / "store.duckdb"
    shutil.copyfile(store, on_disk)
    before = events_in(on_disk)
    more = write("more.jsonl", jsonl(*(event(f"more-{i}", quantity=i, customer_id=f"cus_{i % 50 + 1:06d}")
                                       for i in range(30_000))))
    small_disk.fill(leave_kib=200)

    failed = meterctl("ingest", "--db", on_disk, more)

    assert failed.returncode == 73, failed.stderr
    assert f"{on_disk}: cannot write the store: the disk is full" in failed.stderr
    assert "No space left on device" in failed.stderr
    assert "Traceback" not in failed.stderr and "internal error" not in failed.stderr
    assert events_in(on_disk) == before  # as before the file
    small_disk.free()
    again = meterctl("ingest", "--db", on_disk, more)
    assert again.returncode == 0, again.stderr
    assert events_in(on_disk) == before + 30_000


def test_a_full_disk_at_commit_of_rate_and_finalize_reports_the_real_cause(store, small_disk):
    on_disk = small_disk.root / "store.duckdb"
    shutil.copyfile(store, on_disk)
    small_disk.fill(leave_kib=64)

    for command in (("rate", "--period", MONTH), ("invoice", "--period", MONTH, "--finalize")):
        failed = meterctl(*command, "--db", on_disk)
        assert failed.returncode == 73, (command, failed.stderr)
        assert "No space left on device" in failed.stderr
        assert "no transaction is active" not in failed.stderr

    small_disk.free()
    done = meterctl("invoice", "--period", MONTH, "--finalize", "--db", on_disk, "--json")
    assert done.returncode == 0, done.stderr
    numbers = sorted(invoice["number"] for invoice in json.loads(done.stdout)["invoices"])
    assert numbers == [f"INV-2026-{n:06d}" for n in range(1, 51)]  # no number lost to the failed attempts


@pytest.mark.parametrize("leave_kib", [0, 4, 8, 12])
def test_a_full_disk_while_creating_the_store_leaves_nothing_behind(small_disk, leave_kib):
    db = small_disk.root / "new.duckdb"
    small_disk.fill(leave_kib=leave_kib)

    failed = meterctl("customers", "import", "--db", db, SAMPLE / "customers.yaml")

    assert failed.returncode == 73, failed.stderr
    assert f"{db}: cannot write the store: the disk is full" in failed.stderr
    assert small_disk.files() == []  # no stub to block the next run
    small_disk.free()
    again = meterctl("customers", "import", "--db", db, SAMPLE / "customers.yaml")
    assert again.returncode == 0, again.stderr
    assert small_disk.files() == ["new.duckdb"]


def test_a_write_the_system_refuses_is_exit_73_and_keeps_nothing(store, write):
    # Injected: a file-size limit below what the ingest needs to write.
    before = events_in(store)
    more = write("more.jsonl", jsonl(*(event(f"more-{i}", customer_id="cus_000001") for i in range(20_000))))

    failed = meterctl("ingest", "--db", store, more, limit_file_size=256 * 1024)

    assert failed.returncode == 73, failed.stderr
    assert f"{store}: cannot write the store" in failed.stderr and "File too large" in failed.stderr
    assert events_in(store) == before
    assert meterctl("ingest", "--db", store, more).returncode == 0
    assert events_in(store) == before + 20_000


@pytest.mark.parametrize("stub", [b"", b"\0" * 8192, "prefix"])
def test_a_store_whose_creation_never_completed_is_created_anew(sample_store, tmp_path, stub):
    # What a full disk left behind before stores were created whole: an empty file, or the
    # first blocks of a DuckDB header.
    db = tmp_path / "store.duckdb"
    db.write_bytes(sample_store.read_bytes()[:8192] if stub == "prefix" else stub)

    read = meterctl("status", "--db", db)
    assert read.returncode == 66 and "no database there yet" in read.stderr

    created = meterctl("customers", "import", "--db", db, SAMPLE / "customers.yaml")
    assert created.returncode == 0, created.stderr
    assert meterctl("status", "--db", db).returncode == 0


# ---------------------------------------------------------------- a damaged file


def flip(path: Path, offset: int, count: int) -> None:
    with open(path, "r+b") as file:
        file.seek(offset)
        data = file.read(count)
        file.seek(offset)
        file.write(bytes(b ^ 0xFF for b in data))


def column_offset(path: Path, table: str, column: str) -> int:
    """Where in the file the first stored segment of a column begins."""
    with duckdb.connect(str(path), read_only=True) as con:
        block_size = con.execute("SELECT block_size FROM pragma_database_size()").fetchone()[0]
        block_id, offset = con.execute(
            "SELECT block_id, block_offset FROM pragma_storage_info(?) WHERE column_name = ? AND block_id >= 0 "
            "AND segment_type <> 'VALIDITY' ORDER BY row_group_id, block_id LIMIT 1", [table, column]).fetchone()
    return 3 * 4096 + block_id * block_size + offset


USAGE = ("usage", "--from", "2026-10-01", "--to", "2026-11-01")


@pytest.mark.parametrize("damage", ["header checksum", "second header", "events block zeroed", "tail cut off"])
def test_a_damaged_file_is_exit_66_naming_the_store_on_every_command(store, write, damage):
    if damage == "header checksum":
        flip(store, 0, 8)
    elif damage == "second header":
        flip(store, 4096 + 16, 8)
    elif damage == "events block zeroed":
        with open(store, "r+b") as file:
            file.seek(column_offset(store, "events", "customer_id"))
            file.write(b"\0" * 4096)
    else:
        os.truncate(store, store.stat().st_size - 200_000)
    new = write("new.jsonl", jsonl(event("new-1", customer_id="cus_000001")))

    # Every command opens the header; the events are read by these (and the damage, once
    # found, stops the ingest after them).
    commands = [("status",), ("ingest", new), ("invoice", "--period", MONTH)]
    if "header" in damage:
        commands += [("invoice", "list"), USAGE]
    for command in commands:
        result = meterctl(*command, "--db", store)
        assert result.returncode == 66, (command, result.stderr)
        assert f"{store}: the store is damaged" in result.stderr, command
        assert "restore a copy" in result.stderr
        assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1


def test_a_header_without_its_magic_bytes_is_exit_66(store):
    flip(store, 8, 8)
    result = meterctl("status", "--db", store)
    assert result.returncode == 66
    assert f"{store}: is not a meterctl database: no DuckDB header" in result.stderr
    assert "When the store is damaged" in result.stderr


def test_no_write_goes_ahead_on_a_store_known_to_be_damaged(store, write):
    before = events_in(store)
    where = column_offset(store, "events", "customer_id") + 64
    flip(store, where, 16)
    new = write("new.jsonl", jsonl(*(event(f"new-{i}", customer_id="cus_000001") for i in range(100))))

    assert meterctl("status", "--db", store).returncode == 66  # status reads the customers: the damage is found
    refused = meterctl("ingest", "--db", store, new)

    assert refused.returncode == 66, refused.stderr
    assert "the store is damaged" in refused.stderr
    flip(store, where, 16)  # the same bytes back: as a restored copy would be
    assert events_in(store) == before  # nothing was appended
    healed = meterctl("ingest", "--db", store, new)
    assert healed.returncode == 0, healed.stderr
    assert events_in(store) == before + 100
    assert not Path(f"{store}.damaged").exists()


def test_ingest_finds_damage_in_what_it_reads_itself(store, write):
    before_size = store.stat().st_size
    flip(store, column_offset(store, "events", "id_hash") + 64, 16)  # the keys every ingest looks up

    refused = meterctl("ingest", "--db", store, write("new.jsonl", jsonl(event("new-1", customer_id="cus_000001"))))

    assert refused.returncode == 66, refused.stderr
    assert "the store is damaged" in refused.stderr
    assert store.stat().st_size == before_size and not Path(f"{store}.wal").exists()


def test_status_verify_reads_every_block(store):
    # The quantities are read by rating, not by status: only --verify finds them damaged.
    flip(store, column_offset(store, "events", "quantity") + 64, 16)

    assert meterctl("status", "--db", store).returncode == 0
    verified = meterctl("status", "--verify", "--db", store)
    assert verified.returncode == 66
    assert "table events" in verified.stderr and "the store is damaged" in verified.stderr


def test_status_verify_says_a_sound_store_is_verified(store):
    result = meterctl("status", "--verify", "--db", store, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["verified"] is True
