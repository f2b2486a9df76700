"""The README and docs/ stay short, linked and runnable.

README.md is what a newcomer reads first, so it has a length budget, and its
table of contents must reach every document in docs/. Every relative link
must lead to a file that exists (and, for a ``#fragment`` into Markdown, to a
heading that exists), because moving text between files is how links rot.

Every ``python`` block is executed as a reader would paste it: in a fresh
module, in an empty working directory, and then each ``test_*`` function it
defines is called, as pytest would. A ``pycon`` block is run as a doctest, so
its printed output is checked too. A ``console`` block is a shell transcript:
each ``$ COMMAND`` line is run by bash, in order, in one empty directory per
block, and what it prints must match the lines below it (``...`` stands for
anything, as in a doctest). A python block whose line above says
``<!-- saved-as: NAME -->`` is written there first, as the prose says a reader
saves it. A block that cannot run on its own says why on the line before it,
``<!-- not-run: REASON -->``; a python one is still compiled.
"""

from __future__ import annotations

import ast
import contextlib
import doctest
import os
import re
import signal
import subprocess
import sys
import types
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
DOC_FILES = sorted(DOCS.glob("*.md"))
DOCUMENTS = [README, *DOC_FILES]
README_MAX_LINES = 250
PYTHON = frozenset({"python", "py", "pycon"})
CONSOLE = "console"
# The console scripts are the ones installed beside this interpreter.
BIN = Path(sys.executable).parent

# Design notes describe code that is not built; their blocks are compiled,
# never run. The file is kept as it is, so the reason lives here, not in it.
DESIGN_NOTES: dict[Path, str] = {}

NOT_RUN = re.compile(r"<!--\s*not-run:\s*(?P<reason>.*?)\s*-->")
SAVED_AS = re.compile(r"<!--\s*saved-as:\s*(?P<name>[\w.-]+)\s*-->")
FENCE = re.compile(r"^ {0,3}(?P<fence>```+|~~~+)(?P<info>.*)$")
LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\((?P<target><[^>]*>|[^)\s]+)(?:\s+\"[^\"]*\")?\)")
INLINE_CODE = re.compile(r"`+[^`]*`+")
HEADING = re.compile(r"^#{1,6}\s+(?P<title>.+?)\s*#*\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced code block: where it is, its language and its text."""

    path: Path
    line: int
    language: str
    code: str
    not_run: str | None
    saved_as: str | None = None

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks(path: Path) -> Iterator[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        fence = opening["fence"]
        start = index
        index += 1
        body: list[str] = []
        while index < len(lines) and not lines[index].strip().startswith(fence):
            body.append(lines[index])
            index += 1
        index += 1  # past the closing fence
        above = lines[start - 1].strip() if start else ""
        marker = NOT_RUN.fullmatch(above)
        saved = SAVED_AS.fullmatch(above)
        yield Block(
            path=path,
            line=start + 1,
            language=opening["info"].strip().split(" ")[0].lower(),
            code="\n".join(body) + "\n",
            not_run=marker["reason"] if marker else DESIGN_NOTES.get(path),
            saved_as=saved["name"] if saved else None,
        )


def outside_blocks(path: Path) -> Iterator[tuple[int, str]]:
    """Each line that is not inside a fenced block, with its number."""
    inside: str | None = None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fence = FENCE.match(line)
        if fence and (inside is None or line.strip().startswith(inside)):
            inside = fence["fence"] if inside is None else None
        elif inside is None:
            yield number, line


def anchors(path: Path) -> set[str]:
    """The fragment ids GitHub gives the headings of a Markdown file."""
    seen: Counter[str] = Counter()
    found: set[str] = set()
    for _, line in outside_blocks(path):
        heading = HEADING.match(line)
        if heading is None:
            continue
        slug = slugify(heading["title"])
        found.add(f"{slug}-{seen[slug]}" if seen[slug] else slug)
        seen[slug] += 1
    return found


def slugify(title: str) -> str:
    # GitHub's rule: lower case, drop punctuation (backticks included), and
    # turn each space into a hyphen.
    kept = "".join(ch for ch in title.strip().lower() if ch.isalnum() or ch in " -_")
    return kept.replace(" ", "-")


def links(path: Path) -> Iterator[tuple[int, str]]:
    # Link text may wrap onto the next line, so search the prose as a whole;
    # blocks and inline code become blanks of the same shape to keep line numbers.
    numbered = dict(outside_blocks(path))
    count = len(path.read_text(encoding="utf-8").splitlines())
    prose = "\n".join(numbered.get(number, "") for number in range(1, count + 1))
    prose = INLINE_CODE.sub(lambda code: re.sub(r"[^\n]", " ", code[0]), prose)
    for match in LINK.finditer(prose):
        yield prose.count("\n", 0, match.start()) + 1, match["target"].strip("<>")


def python_blocks() -> list[Block]:
    return [block for path in DOCUMENTS for block in blocks(path) if block.language in PYTHON]


def runnable(*languages: str) -> list[Block]:
    return [b for b in python_blocks() if b.language in languages and b.not_run is None]


def by_place(block: Block) -> str:
    return block.where


def test_the_readme_fits_in_five_minutes() -> None:
    count = len(README.read_text(encoding="utf-8").splitlines())
    assert count <= README_MAX_LINES, (
        f"README.md has {count} lines, over its budget of {README_MAX_LINES}; move the "
        "detail into a file in docs/ and link it from the README's Documentation table"
    )


def test_the_readme_links_every_document_in_docs() -> None:
    linked = {(README.parent / target.split("#")[0]).resolve() for _, target in links(README)}
    unlisted = [p.name for p in DOC_FILES if p.resolve() not in linked]
    assert not unlisted, (
        f"docs/{unlisted} are not linked from README.md; add them to its Documentation table"
    )


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_leads_somewhere(path: Path) -> None:
    broken: list[str] = []
    for number, target in links(path):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):
            continue  # a URL with a scheme: not ours to check offline
        file_part, _, fragment = target.partition("#")
        destination = (path.parent / file_part).resolve() if file_part else path
        if not destination.exists():
            broken.append(f"line {number}: {target} (no such file)")
        elif fragment and destination.suffix == ".md" and fragment not in anchors(destination):
            broken.append(f"line {number}: {target} (no heading with that id)")
    assert not broken, (
        f"{path.relative_to(ROOT)} has broken links; fix the path (relative to the file) "
        "or the heading:\n" + "\n".join(broken)
    )


def test_every_not_run_marker_stands_before_a_block_that_runs_and_gives_a_reason() -> None:
    stray: list[str] = []
    for path in DOCUMENTS:
        lines = path.read_text(encoding="utf-8").splitlines()
        above = {b.line - 1 for b in blocks(path) if b.language in PYTHON | {CONSOLE}}
        above_python = {b.line - 1 for b in blocks(path) if b.language in PYTHON}
        for number, line in enumerate(lines, start=1):
            marker = NOT_RUN.fullmatch(line.strip())
            if marker and (number not in above or not marker["reason"]):
                stray.append(f"{path.relative_to(ROOT)}:{number}")
            if SAVED_AS.fullmatch(line.strip()) and number not in above_python:
                stray.append(f"{path.relative_to(ROOT)}:{number}")
    assert not stray, (
        f"markers at {stray} either name no reason or are not on the line just before a "
        "```python or ```console block (saved-as: a ```python one); write "
        "<!-- not-run: REASON --> or <!-- saved-as: NAME --> right above the block"
    )


@pytest.mark.parametrize("block", python_blocks(), ids=by_place)
def test_every_python_block_compiles(block: Block) -> None:
    if block.language == "pycon":
        parsed = doctest.DocTestParser().get_examples(block.code)
        sources = [example.source for example in parsed]
    else:
        sources = [block.code]
    for source in sources:
        try:
            compile(source, block.where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        except SyntaxError as exc:
            pytest.fail(f"the example at {block.where} does not compile: {exc}")


@pytest.fixture
def fresh_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> types.ModuleType:
    """An empty module, importable by name (dataclasses look their module up), in tmp_path."""
    monkeypatch.chdir(tmp_path)
    module = types.ModuleType("doc_example_" + re.sub(r"\W", "_", request.node.name))
    monkeypatch.setitem(sys.modules, module.__name__, module)
    return module


@pytest.mark.parametrize("block", runnable("python", "py"), ids=by_place)
def test_python_examples_run(block: Block, fresh_module: types.ModuleType) -> None:
    exec(compile(block.code, block.where, "exec"), fresh_module.__dict__)
    tests: list[Callable[[], object]] = [
        value
        for name, value in vars(fresh_module).items()
        if name.startswith("test_") and isinstance(value, types.FunctionType)
    ]
    for test in tests:
        test()


@pytest.mark.parametrize("block", runnable("pycon"), ids=by_place)
def test_console_examples_print_what_they_show(
    block: Block, fresh_module: types.ModuleType
) -> None:
    example = doctest.DocTestParser().get_doctest(
        block.code, fresh_module.__dict__, block.where, str(block.path), block.line
    )
    output: list[str] = []
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(example, out=output.append)
    assert not runner.failures, (
        f"the console example at {block.where} no longer prints what it shows; update the "
        "document or the code:\n" + "".join(output)
    )


def console_blocks() -> list[Block]:
    return [
        block
        for path in DOCUMENTS
        for block in blocks(path)
        if block.language == CONSOLE and block.not_run is None
    ]


def transcript(block: Block) -> list[tuple[str, str]]:
    """The block's ``(command, what it printed)`` steps, in order."""
    steps: list[tuple[str, list[str]]] = []
    for line in block.code.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif steps:
            steps[-1][1].append(line)
        else:
            pytest.fail(
                f"the console block at {block.where} shows output before any `$ ` command; "
                "start it with the command, or mark it <!-- not-run: REASON -->"
            )
    return [(command, "\n".join(printed).rstrip() + "\n") for command, printed in steps]


@pytest.mark.parametrize("block", console_blocks(), ids=by_place)
def test_console_transcripts_print_what_they_show(block: Block, tmp_path: Path) -> None:
    for saved in blocks(block.path):
        if saved.saved_as is not None:
            (tmp_path / saved.saved_as).write_text(saved.code, encoding="utf-8")
    steps = transcript(block)
    mark = "@@linkstate-docs-step@@"
    # One bash for the block; `(exit $status)` hands each command the status of
    # the one before it, past the marker's echo, so that `echo $?` shows it.
    script = "status=0\n" + "".join(
        f"echo {mark}\n(exit $status)\n{{ {command}\n}} 2>&1\nstatus=$?\n" for command, _ in steps
    )
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    bash = subprocess.Popen(
        ["bash", "-c", script],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: nothing it starts outlives it
    )
    try:
        stdout, stderr = bash.communicate(timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(bash.pid, signal.SIGKILL)
    printed = stdout.split(mark + "\n")[1:]
    assert len(printed) == len(steps), stdout + stderr
    checker = doctest.OutputChecker()
    for (command, shown), raw in zip(steps, printed, strict=True):
        got = "\n".join(line.rstrip() for line in raw.splitlines()).rstrip() + "\n"
        assert checker.check_output(shown, got, doctest.ELLIPSIS), (
            f"the console example at {block.where} no longer prints what it shows for "
            f"`{command}`; update the document or the code.\nshown:\n{shown}\nprinted:\n{got}"
        )


def test_the_examples_are_found() -> None:
    # A parser that silently found nothing would make every test above pass.
    assert len(runnable("python", "py")) >= 5
    assert runnable("pycon")
    assert len(console_blocks()) >= 3
