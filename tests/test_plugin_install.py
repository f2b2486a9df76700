"""A third-party channel plugin, built and installed for real, is found through the registry.

The package is written to ``tmp_path`` with its own ``pyproject.toml`` and a
``linkstate.channels`` entry point, installed by pip into a target directory
(no index, no network, no build isolation), and put on ``sys.path``. Then
:func:`linkstate.available_channels` and :func:`linkstate.load_channel`
must find it, and ``linkstate classify`` must classify with it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from linkstate._channel import Channel, ChannelError, available_channels, load_channel
from linkstate.cli import main

ROOT = Path(__file__).resolve().parent.parent

# The plugin's pyproject.toml: docs/plugins.md's, except for the build backend. This
# test environment has setuptools without ``wheel`` (so no bdist_wheel) and no
# network, so the package brings a tiny in-tree PEP 517 backend; pip itself
# still builds, installs and records the package as it would any other.
PYPROJECT = """\
[build-system]
requires = []
build-backend = "tiny_backend"
backend-path = ["."]

[project]
name = "linkstate-tinychat"
version = "0.0.1"

[project.entry-points."linkstate.channels"]
tinychat = "linkstate_tinychat:CHANNEL"
broken = "linkstate_tinychat:NOT_A_CHANNEL"
"""

BACKEND = '''\
"""A minimal PEP 517 backend: one module, metadata and entry points from pyproject.toml."""

import base64
import hashlib
import tomllib
import zipfile
from pathlib import Path


def _files():
    project = tomllib.loads(Path("pyproject.toml").read_text())["project"]
    dist = f"{project['name'].replace('-', '_')}-{project['version']}"
    info = f"{dist}.dist-info"
    entry_points = "".join(
        f"[{group}]\\n" + "".join(f"{k} = {v}\\n" for k, v in points.items()) + "\\n"
        for group, points in project.get("entry-points", {}).items()
    )
    files = {
        "linkstate_tinychat.py": Path("linkstate_tinychat.py").read_bytes(),
        f"{info}/METADATA": (
            f"Metadata-Version: 2.1\\nName: {project['name']}\\n"
            f"Version: {project['version']}\\n"
        ).encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\\nGenerator: tiny\\nRoot-Is-Purelib: true\\n"
        b"Tag: py3-none-any\\n",
        f"{info}/entry_points.txt": entry_points.encode(),
    }
    return dist, info, files


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    dist, info, files = _files()
    name = f"{dist}-py3-none-any.whl"
    record = []
    with zipfile.ZipFile(Path(wheel_directory) / name, "w") as wheel:
        for path, data in files.items():
            wheel.writestr(path, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append(f"{path},sha256={digest.decode()},{len(data)}")
        record.append(f"{info}/RECORD,,")
        wheel.writestr(f"{info}/RECORD", "\\n".join(record) + "\\n")
    return name
'''

MODULE = '''\
"""TinyChat: a made-up platform, to prove that third-party plugins load."""

from linkstate import Channel, CloseEvent, CloseTable, Rule, Verdict, normalise

TABLE = CloseTable(
    channel="tinychat",
    rules=(
        Rule(
            Verdict.relink,
            "kicked",
            "another device took the session",
            status=4401,
            message="TinyChat {status} on {link}: session taken; relink, then run "
            "`linkstate reset {link}`.",
        ),
        Rule(Verdict.retry_now, "restart", "the server restarts", code="RESTART"),
    ),
    unknown=Rule(Verdict.retry, "unknown", "a code this table does not list"),
    no_status=Rule(Verdict.retry, "noStatus", "a network error"),
)



def extract(raw: object) -> CloseEvent:
    """TinyChat sends {"bye": CODE} before it closes; anything else reads generically."""
    if isinstance(raw, dict) and "bye" in raw:
        return normalise({"code": raw["bye"], "reason": "bye frame"})
    return normalise(raw)


CHANNEL = Channel(name="tinychat", title="TinyChat", table=TABLE, extract=extract)
NOT_A_CHANNEL = "oops"
'''

# TinyChat's own test module, as its author writes it with the conformance kit.
# Its profile is strict about time on purpose: the kit's properties and machines
# bring their own settings and must pass under any profile.
KIT_TESTS = '''\
"""TinyChat conforms to the linkstate lifecycle."""

from datetime import timedelta

from hypothesis import settings

from linkstate import Verdict
from linkstate.testing import ConformanceMachine, RuntimeMachine, assert_conformance
from linkstate_tinychat import CHANNEL

settings.register_profile(
    "tinychat", max_examples=10, derandomize=True, deadline=timedelta(milliseconds=1)
)
settings.load_profile("tinychat")

EXPECTED = [(4401, Verdict.relink), ("RESTART", Verdict.retry_now), (1006, Verdict.retry)]


def test_tinychat_conforms() -> None:
    assert_conformance(CHANNEL, expected=EXPECTED, max_examples=10)


class TestTinyChat(ConformanceMachine):
    channel = CHANNEL
    expected = EXPECTED


class TestTinyChatRuntime(RuntimeMachine):
    channel = CHANNEL
    expected = EXPECTED


TestTinyChatCase = TestTinyChat.TestCase
TestTinyChatRuntimeCase = TestTinyChatRuntime.TestCase
'''


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build and install the plugin once; return the directory pip installed it into."""
    root = tmp_path_factory.mktemp("plugin")
    source = root / "src"
    source.mkdir()
    (source / "pyproject.toml").write_text(PYPROJECT)
    (source / "tiny_backend.py").write_text(BACKEND)
    (source / "linkstate_tinychat.py").write_text(textwrap.dedent(MODULE))
    target = root / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--no-build-isolation",
            "--disable-pip-version-check",
            "--target",
            str(target),
            str(source),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    assert (target / "linkstate_tinychat.py").is_file()
    assert list(target.glob("linkstate_tinychat-0.0.1.dist-info/entry_points.txt"))
    return target


@pytest.fixture
def on_path(installed: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.syspath_prepend(str(installed))
    yield installed
    sys.modules.pop("linkstate_tinychat", None)


def test_not_found_before_it_is_on_the_path(installed: Path) -> None:
    assert "tinychat" not in available_channels()
    with pytest.raises(ChannelError, match="unknown channel 'tinychat'"):
        load_channel("tinychat")


def test_found_through_the_registry(on_path: Path) -> None:
    assert "tinychat" in available_channels()
    channel = load_channel("tinychat")
    assert isinstance(channel, Channel)
    assert channel.classify(4401)[1].name == "kicked"
    assert channel.classify("RESTART")[1].verdict.value == "retry_now"
    assert channel.classify({"bye": "RESTART"})[1].name == "restart"


def test_classified_through_the_cli(on_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["classify", "tinychat", "4401"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["rule"], result["verdict"], result["state"]) == (
        "4401 kicked",
        "relink",
        "needs_relink",
    )
    assert "session taken" in result["message"]


def test_a_broken_entry_point_is_a_clear_error(
    on_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ChannelError, match=r"gives a str, not a linkstate\.Channel"):
        load_channel("broken")
    assert main(["classify", "broken", "4401"]) == 2
    assert "broken" in capsys.readouterr().err


def test_the_plugin_guide_example_is_the_one_tested() -> None:
    text = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    section = text.split("<!-- section:plugins -->", 1)[1].split("<!-- /section:plugins -->")[0]
    assert '[project.entry-points."linkstate.channels"]' in section
    assert 'tinychat = "linkstate_tinychat:CHANNEL"' in section
    for line in MODULE.splitlines():
        if line.strip() and "NOT_A_CHANNEL" not in line:
            assert line in section, f"docs/plugins.md plugin example lacks: {line!r}"


def test_the_kit_runs_a_plugin_authors_tests_outside_this_repository(
    installed: Path, tmp_path: Path
) -> None:
    """No conftest, no profile of ours, no pytest-trio mode: only the kit and the plugin."""
    assert not tmp_path.resolve().is_relative_to(ROOT)
    (tmp_path / "test_tinychat.py").write_text(KIT_TESTS)
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    env["PYTHONPATH"] = str(installed)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            # The machines are named Test...; pytest must not try to collect them.
            "-W",
            "error::pytest.PytestCollectionWarning",
            "test_tinychat.py",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    assert "3 passed" in report, report
    assert "warning" not in report.lower(), report
