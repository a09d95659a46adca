"""The docs run (test_docs_run.py) fails when a block fails: it cannot pass by running
nothing. Each case runs the harness on a page written here."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

HARNESS = Path(__file__).with_name("test_docs_run.py")


def load_harness() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_harness", HARNESS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_page(folder: Path, text: str) -> Path:
    page = folder / "page.md"
    page.write_text(textwrap.dedent(text))
    return page


@pytest.fixture
def harness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.chdir(tmp_path)
    return load_harness()


def test_a_failing_block_fails_the_suite(tmp_path: Path) -> None:
    """pytest exits non-zero and names the page and line of the block that raised."""
    page = write_page(
        tmp_path,
        """\
        # A page

        ```python
        total = 1 + 1
        ```

        ```python
        assert total == 3, "the docs are wrong"
        ```
        """,
    )
    test_file = tmp_path / "test_page.py"
    test_file.write_text(
        textwrap.dedent(
            f"""\
            import importlib.util
            from pathlib import Path

            spec = importlib.util.spec_from_file_location("docs_harness", {str(HARNESS)!r})
            harness = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(harness)


            def test_page(tmp_path, monkeypatch):
                monkeypatch.chdir(tmp_path)
                harness.run_page(Path({str(page)!r}))
            """
        )
    )
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "the block at line 7 failed" in proc.stdout, proc.stdout
    assert "the docs are wrong" in proc.stdout


def test_blocks_share_one_namespace_in_order_and_a_sketch_is_skipped(
    harness: ModuleType, tmp_path: Path
) -> None:
    page = write_page(
        tmp_path,
        """\
        ```python
        numbers = [1, 2]
        ```

        <!-- skip: next -->
        ```python
        this is a sketch, not Python
        ```

        <!-- invisible-code-block: python
        numbers.append(3)
        -->

        ```python
        assert numbers == [1, 2, 3]
        ```

        ```bash
        not run: only Python blocks are
        ```
        """,
    )
    assert harness.run_page(page) == (3, 1)


def test_a_failing_block_without_the_marker_fails(harness: ModuleType, tmp_path: Path) -> None:
    page = write_page(
        tmp_path,
        """\
        <!-- a comment that is not the marker -->
        ```python
        undefined_name
        ```
        """,
    )
    with pytest.raises(pytest.fail.Exception, match="NameError: name 'undefined_name'"):
        harness.run_page(page)


def test_only_skip_next_marks_a_sketch(harness: ModuleType, tmp_path: Path) -> None:
    """``skip: start`` would silently turn off the rest of a page."""
    page = write_page(
        tmp_path,
        """\
        <!-- skip: start -->
        ```python
        undefined_name
        ```
        <!-- skip: end -->
        """,
    )
    with pytest.raises(pytest.fail.Exception, match="skip: next"):
        harness.run_page(page)


def test_a_block_naming_a_test_file_is_run_with_pytest(harness: ModuleType, tmp_path: Path) -> None:
    """The file is written under the page's working directory, earlier file blocks are
    importable from it, and a failing test fails the page."""
    page = write_page(
        tmp_path,
        """\
        ```python
        # mypkg/calc.py
        def double(x):
            return 2 * x
        ```

        ```python
        # tests/test_calc.py
        from mypkg.calc import double


        def test_double():
            assert double(2) == 4


        def test_wrong():
            assert double(2) == 5
        ```
        """,
    )
    with pytest.raises(pytest.fail.Exception, match="1 failed, 1 passed"):
        harness.run_page(page)
    assert (tmp_path / "mypkg" / "calc.py").read_text().startswith("# mypkg/calc.py")


def test_a_marker_must_stand_right_before_a_python_block(
    harness: ModuleType, tmp_path: Path
) -> None:
    """A marker before a text block would otherwise skip the next Python block below."""
    page = write_page(
        tmp_path,
        """\
        <!-- skip: next -->
        ```text
        output
        ```

        ```python
        undefined_name
        ```
        """,
    )
    with pytest.raises(pytest.fail.Exception, match="must stand on the line right before"):
        harness.run_page(page)


def test_every_python_fence_of_the_docs_is_parsed() -> None:
    """The run covers README.md, every docs page and the plugins' READMEs, and Sybil sees
    each ```python fence of them (a parser that saw none would pass by running nothing)."""
    harness = load_harness()
    root = harness.ROOT
    pages = {str(p.relative_to(root)) for p in harness.PAGES}
    assert "README.md" in pages
    assert {f"docs/{p.name}" for p in (root / "docs").glob("*.md")} <= pages
    total = 0
    for page in harness.PAGES:
        fences = len(re.findall(r"^[ \t]*```python[ \t]*$", page.read_text(), re.MULTILINE))
        document = harness.SYBIL.parse(page)
        blocks = [
            e
            for e in document.examples()
            if not isinstance(e.region.evaluator, harness.Skipper)
            and document.text[e.start : e.end].lstrip().startswith("```")
        ]
        assert len(blocks) == fences, page
        total += fences
    assert total > 50
