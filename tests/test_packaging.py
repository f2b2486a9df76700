"""What gets installed: one import root, ``linkstate``, and a conformance kit with few needs.

The wheel is built for real from a copy of the sources (offline, without
build isolation, so with this environment's setuptools) and read as a zip
file. The import checks run in a fresh interpreter whose working directory
is outside the repository, so the folders ``fsm/``, ``channels/`` and
``diagrams/`` cannot be found by accident.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from importlib.metadata import packages_distributions
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))

# Where each source folder lands under the import root.
SOURCE_FOLDERS = {
    "fsm": "linkstate",
    "channels": "linkstate/channels",
    "diagrams": "linkstate/diagrams",
}

BUNDLED_CHANNELS = ("discord", "matrix", "slack", "telegram", "websocket", "whatsapp")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    source = tmp_path_factory.mktemp("source")
    shutil.copy(ROOT / "pyproject.toml", source)
    shutil.copy(ROOT / "README.md", source)
    for folder in SOURCE_FOLDERS:
        shutil.copytree(
            ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps"),
            *("--no-build-isolation", "--no-index", "--wheel-dir", str(out), str(source)),
        ],
        check=True,
        capture_output=True,
        cwd=source,
    )
    (built,) = out.glob("linkstate-*.whl")
    return zipfile.ZipFile(built)


def dist_info(wheel: zipfile.ZipFile, name: str) -> str:
    (path,) = (
        n for n in wheel.namelist() if re.fullmatch(rf"linkstate-[^/]+\.dist-info/{name}", n)
    )
    return wheel.read(path).decode("utf-8")


def test_the_wheel_holds_one_top_level_package(wheel: zipfile.ZipFile) -> None:
    top = {PurePosixPath(name).parts[0] for name in wheel.namelist()}
    assert {name for name in top if not name.endswith(".dist-info")} == {"linkstate"}
    assert dist_info(wheel, "top_level.txt").split() == ["linkstate"]


def test_the_wheel_holds_every_module_under_its_new_name(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    assert {"linkstate/py.typed", "linkstate/plugin.py"} <= names
    assert {"linkstate/channels/__init__.py", "linkstate/diagrams/__init__.py"} <= names
    # The package list in pyproject.toml is explicit: a new sub-package left
    # out of it would be missing from the wheel, and this is where it shows.
    expected = {
        f"{target}/{path.relative_to(ROOT / folder).as_posix()}"
        for folder, target in SOURCE_FOLDERS.items()
        for path in (ROOT / folder).rglob("*.py")
    }
    assert expected <= names, sorted(expected - names)


def test_the_wheel_registers_the_console_script_and_the_channels(
    wheel: zipfile.ZipFile,
) -> None:
    groups: dict[str, dict[str, str]] = {}
    group = ""
    for line in dist_info(wheel, "entry_points.txt").splitlines():
        if line.startswith("["):
            group = line.strip("[]")
            groups[group] = {}
        elif "=" in line:
            key, value = (part.strip() for part in line.split("=", 1))
            groups[group][key] = value
    assert groups["console_scripts"] == {"linkstate": "linkstate.cli:main"}
    assert groups["linkstate.channels"] == {
        name: f"linkstate.channels.{name}:CHANNEL" for name in BUNDLED_CHANNELS
    }


def run_outside_the_repository(code: str, tmp_path: Path) -> object:
    """Run ``code`` with this environment's interpreter in ``tmp_path``; return what it prints."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    return json.loads(done.stdout)


def test_the_old_top_level_names_do_not_import(tmp_path: Path) -> None:
    code = (
        "import importlib, json\n"
        "def imports(name):\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ModuleNotFoundError:\n"
        "        return False\n"
        "    return True\n"
        "names = ['fsm', 'channels', 'diagrams', 'linkstate', 'linkstate.channels.whatsapp',"
        " 'linkstate.diagrams']\n"
        "print(json.dumps({name: imports(name) for name in names}))\n"
    )
    assert run_outside_the_repository(code, tmp_path) == {
        "fsm": False,
        "channels": False,
        "diagrams": False,
        "linkstate": True,
        "linkstate.channels.whatsapp": True,
        "linkstate.diagrams": True,
    }


def canonical(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def requirement_names(requirements: list[str]) -> set[str]:
    return {
        canonical(re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0])
        for requirement in requirements
    }


def test_the_testing_extra_is_only_hypothesis_and_the_test_extra_includes_it() -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert requirement_names(extras["testing"]) == {"hypothesis"}
    (self_reference,) = (r for r in extras["test"] if canonical(r).startswith("linkstate["))
    assert "testing" in re.findall(r"[\w-]+", self_reference.split("[", 1)[1])


def test_the_conformance_kit_imports_no_client_library_renderer_or_benchmark(
    tmp_path: Path,
) -> None:
    code = (
        "import json, sys\n"
        "from linkstate.testing import assert_conformance\n"
        "print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})))\n"
    )
    found = run_outside_the_repository(code, tmp_path)
    assert isinstance(found, list)
    imported = {str(name) for name in found}
    extras = PYPROJECT["project"]["optional-dependencies"]
    unwanted = requirement_names(extras["libs"] + extras["bench"] + extras["render"])
    providers = packages_distributions()
    modules_of_unwanted = {
        module
        for module, distributions in providers.items()
        if any(canonical(d) in unwanted for d in distributions)
    }
    # The client libraries and the benchmark baselines are installed here, so
    # each maps to the modules it provides (graphviz-pure provides a program).
    mapped = {canonical(d) for ds in providers.values() for d in ds}
    assert requirement_names(extras["libs"] + extras["bench"]) <= mapped
    assert not imported & modules_of_unwanted, sorted(imported & modules_of_unwanted)
    assert "linkstate" in imported and "hypothesis" in imported
