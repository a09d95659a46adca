"""The docs run as written: every ```python block of README.md, docs/*.md and the
plugins' README.md files is executed with Sybil, the blocks of one page in order and in
one namespace, in a fresh temporary working directory with trackers that need no network.

A block is left out only when the line ``<!-- skip: next -->`` stands right before its
fence (a sketch or a fragment). A block whose first line names a file
(``# ember_mytracker/logger.py``) is also written to that path, relative to the page's
working directory, so later blocks can import it; a block naming a test file
(``# tests/test_conformance.py``) is run with pytest in a fresh interpreter instead, and
must pass. Hidden set-up code goes in ``<!-- invisible-code-block: python ... -->``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import traceback
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from ember.hub import reset_plugin_manager
from sybil import Document, Example, Sybil
from sybil.evaluators.python import PythonEvaluator
from sybil.evaluators.skip import Skipper
from sybil.parsers.markdown import CodeBlockParser, SkipParser

ROOT = Path(__file__).resolve().parents[2]
PAGES = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    *sorted((ROOT / "plugins").glob("*/README.md")),
]
#: pages (relative to the repository root) whose blocks take more than a few seconds
SLOW_PAGES: set[str] = set()

#: ``# path/to/file.py`` on a block's first line
FILE_LINE = re.compile(r"#\s*(?P<path>[\w.-]+(?:/[\w.-]+)*\.py)\s*$")
#: environment variables that could send a page's records somewhere real
TRACKER_SECRETS = ("WANDB_API_KEY", "COMET_API_KEY", "MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_TOKEN")
PYTEST_TIMEOUT_S = 600


class PageEvaluator:
    """Run a block as Python; write a block that names a file to that file first, and run
    a block that names a test file with pytest in a subprocess."""

    def __init__(self) -> None:
        self.python = PythonEvaluator()

    def __call__(self, example: Example) -> None:
        source = str(example.parsed)
        first = source.split("\n", 1)[0]
        match = FILE_LINE.fullmatch(first.strip())
        if match is None:
            self.python(example)
            return
        path = Path.cwd() / match["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
        if path.name.startswith("test_"):
            run_pytest(path, f"{example.path}, line {example.line}")
        else:
            self.python(example)


def run_pytest(path: Path, where: str) -> None:
    """Run the test file ``path`` in a fresh interpreter, with the page's working directory
    importable; fail unless every test passed or was skipped, and at least one passed."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path.cwd()), *sys.path])}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(path)],
        cwd=Path.cwd(),
        env=env,
        capture_output=True,
        text=True,
        timeout=PYTEST_TIMEOUT_S,
    )
    output = proc.stdout + proc.stderr
    summary = output.strip().splitlines()[-1] if output.strip() else ""
    if proc.returncode != 0 or " passed" not in summary:
        raise AssertionError(
            f"the tests of the block at {where} did not pass (pytest exit status "
            f"{proc.returncode}):\n{output}"
        )
    print(f"{where}: {summary}")


SYBIL = Sybil(
    parsers=[CodeBlockParser(language="python", evaluator=PageEvaluator()), SkipParser()],
    path=str(ROOT),
)


@pytest.fixture
def page_sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh working directory and no tracker credentials; torch's global switches,
    the environment, sys.path and the modules a page wrote are restored afterwards."""
    import torch  # here, not at the top: the harness's own tests run pages without torch

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    for name in TRACKER_SECRETS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    environ = dict(os.environ)
    path = list(sys.path)
    modules = set(sys.modules)
    deterministic = torch.are_deterministic_algorithms_enabled()
    dtype = torch.get_default_dtype()
    rng = torch.random.get_rng_state()
    reset_plugin_manager()  # a page may register plugins: it gets a manager of its own
    try:
        with warnings.catch_warnings():
            yield work
    finally:
        os.environ.clear()
        os.environ.update(environ)
        sys.path[:] = path
        for name in set(sys.modules) - modules:
            origin = getattr(sys.modules[name], "__file__", None) or ""
            if origin.startswith(str(tmp_path)):
                del sys.modules[name]
        torch.use_deterministic_algorithms(deterministic)
        torch.set_default_dtype(dtype)
        torch.random.set_rng_state(rng)
        reset_plugin_manager()


def page_traceback(exc: BaseException, path: str) -> str:
    """The traceback of ``exc`` from the first frame in the page on (not the harness's)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != path:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb or exc.__traceback__))


def check_marker(document: Document, examples: list[Example], i: int, where: object) -> None:
    """A skip directive is exactly ``<!-- skip: next -->`` with a Python block right after
    it: ``skip: start`` could turn off the rest of a page, and a marker before a text block
    would silently skip the next Python block further down."""
    marker = examples[i]
    if marker.parsed != ("next", None):
        got = " ".join(filter(None, marker.parsed))
        pytest.fail(
            f"{where}, line {marker.line}: mark a sketch with <!-- skip: next --> right "
            f"before its block (got skip: {got})",
            pytrace=False,
        )
    after = examples[i + 1] if i + 1 < len(examples) else None
    if (
        after is None
        or isinstance(after.region.evaluator, Skipper)
        or not re.fullmatch(r"\s*-*>?\s*", document.text[marker.end : after.start])
    ):
        pytest.fail(
            f"{where}, line {marker.line}: <!-- skip: next --> must stand on the line right "
            "before the ```python block it marks",
            pytrace=False,
        )


def run_page(page: Path) -> tuple[int, int]:
    """Evaluate every block of ``page`` in order; return (blocks run, blocks skipped)."""
    __tracebackhide__ = True
    document = SYBIL.parse(page)
    document.namespace["__name__"] = "__main__"
    examples = list(document.examples())
    where = page.relative_to(ROOT) if page.is_relative_to(ROOT) else page
    ran = skipped = 0
    for i, example in enumerate(examples):
        is_marker = isinstance(example.region.evaluator, Skipper)
        if is_marker:
            check_marker(document, examples, i, where)
        marked = bool(document.evaluators)  # the marker before this block is active
        failure = ""
        try:
            example.evaluate()
        except Exception as exc:
            failure = f"{where}: the block at line {example.line} failed:\n"
            failure += page_traceback(exc, example.path)
        if failure:
            pytest.fail(failure, pytrace=False)
        if not is_marker:
            skipped, ran = (skipped + 1, ran) if marked else (skipped, ran + 1)
    return ran, skipped


@pytest.mark.parametrize(
    "page",
    [
        pytest.param(p, marks=[pytest.mark.slow] if str(p.relative_to(ROOT)) in SLOW_PAGES else [])
        for p in PAGES
    ],
    ids=[str(p.relative_to(ROOT)) for p in PAGES],
)
def test_page_runs(page: Path, page_sandbox: Path) -> None:
    """Every Python block of the page runs, in order, in one namespace."""
    ran, skipped = run_page(page)
    print(f"{page.relative_to(ROOT)}: {ran} block(s) run, {skipped} skipped")
