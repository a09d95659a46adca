"""docs/troubleshooting.md names every exception and warning class ember defines, so a
new error cannot ship without an entry that says what it means and what to do."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path

import ember.hub
import ember.trainer

PAGE = Path(__file__).resolve().parents[2] / "docs" / "troubleshooting.md"


def ember_error_classes() -> dict[str, str]:
    """Every public exception or warning class defined in ember.hub and ember.trainer:
    ``{class name: module}``."""
    found: dict[str, str] = {}
    for package in (ember.hub, ember.trainer):
        for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            if info.name.rsplit(".", 1)[-1] == "__main__":  # runs the CLI
                continue
            module = importlib.import_module(info.name)
            for name, obj in vars(module).items():
                if (
                    inspect.isclass(obj)
                    and issubclass(obj, (BaseException, Warning))
                    and obj.__module__ == module.__name__
                    and not name.startswith("_")
                ):
                    found[name] = module.__name__
    return found


def test_the_walk_finds_the_known_classes() -> None:
    """The walk itself works: it finds classes of both packages and of sub-packages."""
    found = ember_error_classes()
    for name in ("MisconfigurationError", "PluginWarning", "JournalWriteError", "CheckpointError"):
        assert name in found, sorted(found)


def test_every_error_and_warning_class_is_on_the_troubleshooting_page() -> None:
    text = PAGE.read_text()
    missing = sorted(
        f"{name} ({module})"
        for name, module in ember_error_classes().items()
        if f"`{name}" not in text
    )
    assert not missing, (
        "docs/troubleshooting.md does not mention these error/warning classes; add an "
        "entry (when it is raised, what to do) for each: " + ", ".join(missing)
    )
