"""What a user types, or a file holds, never crashes a command: one line, the right exit status.

Damaged rows, a read-only mount, bytes that are not UTF-8, huge numbers, a
reader that leaves the pipe, and ids or notes carrying escape sequences,
CR/LF or bidi overrides: each gets one line (or clean output) and the exit
status of the contract in ``linkstate.cli.common.ExitStatus``.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from linkstate.cli import main
from linkstate.cli.common import ExitStatus, shell_word

SCRIPT = Path(sys.executable).with_name("linkstate")
EVIL = "ev\x1b[31mil\r\nid\u202e"  # an escape sequence, CR/LF and a bidi override


def command(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def stored(capsys: pytest.CaptureFixture[str], db: Path, *links: str) -> None:
    """Links ending in ``needs_relink`` (a 428 retried, then a 440) in ``db``."""
    for link in links:
        argv = ["simulate", "whatsapp", "--close", "428", "--close", "440", "--db", str(db)]
        assert main([*argv, "--link", link, "--format", "json"]) == ExitStatus.needs_person
    capsys.readouterr()


@pytest.fixture
def three(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    db = tmp_path / "links.db"
    stored(capsys, db, "a", "b", "c")
    return db


def damage(db: Path, statement: str) -> None:
    with sqlite3.connect(db) as connection:
        connection.execute(statement)


@pytest.mark.parametrize(
    ("column", "statement"),
    [
        ("state", "UPDATE links SET state = 'bogus' WHERE link_id = 'b'"),
        ("since", "UPDATE links SET since = 'yesterday' WHERE link_id = 'b'"),
        ("recent_closes", "UPDATE links SET recent_closes = '[1, ' WHERE link_id = 'b'"),
        ("recent_closes", "UPDATE links SET recent_closes = '[\"x\"]' WHERE link_id = 'b'"),
        ("attempt", "UPDATE links SET attempt = -1 WHERE link_id = 'b'"),
        ("verdict", "UPDATE links SET verdict = 'maybe' WHERE link_id = 'b'"),
        ("stop_reason", "UPDATE links SET stop_reason = 42 WHERE link_id = 'b'"),
    ],
)
@pytest.mark.parametrize("json_lines", [False, True], ids=["text", "json"])
def test_a_damaged_row_is_named_and_the_other_links_are_shown(
    three: Path, capsys: pytest.CaptureFixture[str], column: str, statement: str, json_lines: bool
) -> None:
    damage(three, statement)
    code, out, err = command(capsys, "status", "--db", str(three), *["--json"] * json_lines)
    assert code == ExitStatus.store
    shown = [line.split()[0] for line in out.splitlines() if not line.startswith(" ")]
    assert shown == (['{"link":'] * 2 if json_lines else ["LINK", "a", "c"])
    assert '"a"' in out and '"c"' in out if json_lines else True
    (line,) = err.splitlines()
    assert line.startswith("linkstate status: error: ") and "link 'b'" in line and column in line
    # The damaged link itself: one line and the same exit status, not a traceback.
    for argv in (["history", "b"], ["relink", "b"]):
        code, out, err = command(capsys, *argv, "--db", str(three))
        assert (code, out, len(err.splitlines())) == (ExitStatus.store, "", 1), err
        assert "the row of link 'b' cannot be read" in err


def test_a_damaged_history_entry_is_one_line(
    three: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    damage(three, "UPDATE history SET record = '{\"bogus\": 1}' WHERE link_id = 'a'")
    code, out, err = command(capsys, "history", "a", "--db", str(three))
    assert (code, out) == (ExitStatus.store, "")
    assert "a history entry is not a stored transition" in err and len(err.splitlines()) == 1


def test_a_limit_beyond_any_integer_sqlite_holds_means_everything(
    three: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, everything, err = command(capsys, "history", "a", "--db", str(three))
    assert code == 0 and err == ""
    code, out, err = command(
        capsys, "history", "a", "--db", str(three), "--limit", "99999999999999999999"
    )
    assert (code, out, err) == (0, everything, "")
    assert len(everything.splitlines()) == 6


@pytest.mark.parametrize(
    "argv",
    [
        ["simulate", "whatsapp", "--close", "440", "--link", b"acct\xff"],
        ["history", b"acct\xff", "--db", "DB"],
        ["reset", b"\xfe", "--db", "DB"],
    ],
)
def test_a_link_id_that_is_not_utf8_is_one_line(argv: list[str | bytes], three: Path) -> None:
    args = [os.fsencode(str(three)) if a == "DB" else a for a in argv]
    done = subprocess.run([SCRIPT, *args], capture_output=True, timeout=60, check=False)
    assert done.returncode == ExitStatus.usage and done.stdout == b""
    (line,) = done.stderr.decode().splitlines()
    assert "is not valid UTF-8 text" in line and "Traceback" not in line


def run_into_a_closed_pipe(*argv: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI with a stdout whose reader is already gone: the first write breaks."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run(
            [SCRIPT, *argv],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write)


def test_a_reader_that_leaves_does_not_change_the_exit_status(three: Path) -> None:
    for argv in (["status", "--db", str(three)], ["history", "a", "--db", str(three)]):
        done = run_into_a_closed_pipe(*argv)
        assert (done.returncode, done.stderr) == (ExitStatus.ok, "")
    # A supervised run goes on without its reader; the status still says how it ended.
    done = run_into_a_closed_pipe("simulate", "whatsapp", "--close", "428", "--close", "440")
    assert (done.returncode, done.stderr) == (ExitStatus.needs_person, "")


def read_only_mount(directory: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI with ``directory`` bind-mounted read-only, in a mount namespace of its own.

    An unprivileged user namespace makes the mount without root; as root (CI
    containers), a mount namespace alone does.
    """
    inner = f'mount --bind -o ro {directory} {directory} && exec {SCRIPT} "$@"'
    for prefix in (["--user", "--map-root-user", "--mount"], ["--mount"]):
        done = subprocess.run(
            ["unshare", *prefix, "sh", "-c", inner, "sh", *argv],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if "unshare:" not in done.stderr and "mount:" not in done.stderr:
            return done
    pytest.fail(f"cannot make a read-only mount with unshare here: {done.stderr}")


def test_a_reader_needs_no_write_access(three: Path, tmp_path: Path) -> None:
    assert shutil.which("unshare"), "unshare (util-linux) is needed"
    mount = tmp_path / "ro"
    mount.mkdir()
    shutil.copy(three, mount / "links.db")  # a cleanly closed file: no -wal, no -shm
    db = str(mount / "links.db")
    done = read_only_mount(mount, "status", "--db", db)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    assert [line.split()[0] for line in done.stdout.splitlines()[1::2]] == ["a", "b", "c"]
    done = read_only_mount(mount, "history", "c", "--db", db)
    assert (done.returncode, done.stderr, len(done.stdout.splitlines())) == (0, "", 6)
    # Writing there is another matter, and says so in one line.
    done = read_only_mount(mount, "relink", "c", "--db", db)
    assert done.returncode == ExitStatus.store and "cannot write" in done.stderr
    assert len(done.stderr.splitlines()) == 1


def test_ids_and_notes_reach_text_output_sanitised(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "evil.db"
    argv = ["simulate", "whatsapp", "--close", "440", "--format", "text", "--link", EVIL]
    code = main([*argv, "--db", str(db)])
    out = capsys.readouterr().out
    assert code == ExitStatus.needs_person
    code, status, _ = command(capsys, "status", "--db", str(db))
    assert code == 0
    for text in (out, status):
        assert not any(ch in text for ch in "\x1b\r\u202e"), text
    # The message names the link safely, and its command still names this very link.
    relink = f"linkstate relink {shell_word(EVIL)} --db {shell_word(str(db))}"
    assert relink in status and "\x1b" not in relink
    done = subprocess.run(
        ["bash", "-c", relink.replace("linkstate", str(SCRIPT), 1) + " --note $'x\\x1b[2Jy\\r'"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "needs_relink -> idle (x [2Jy)" in done.stdout and "\x1b" not in done.stdout


@pytest.mark.parametrize(
    ("text", "word"),
    [
        ("plain", "plain"),
        ("it's", "'it'\"'\"'s'"),
        ("a\x1bb", "$'a\\x1bb'"),
        ("\u202e'\\", "$'\\u202e\\'\\\\'"),
        ("caf\udcc3", "$'caf\\xc3'"),  # a byte that was not UTF-8, as Python hands it over
        ("\U000e0001", "$'\\U000e0001'"),
    ],
)
def test_shell_words_are_printable_and_mean_the_same_text(text: str, word: str) -> None:
    assert shell_word(text) == word and word.isprintable()
    done = subprocess.run(
        ["bash", "-c", f"printf %s {word}"], capture_output=True, timeout=10, check=True
    )
    assert done.stdout == os.fsencode(text)
