"""What a plugin author's tests need besides the suites: an isolated plugin manager, a
real install of a distribution into a temporary folder discovered through its entry
points, and one-line messages for a suite whose required fixture is missing.

Torch-free, like the rest of ``ember.hub``; the torch-side fixtures (a tiny model and
data) live in :mod:`ember.trainer.testing`.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import NoReturn

import pytest
from ember.hub.manager import ENTRY_POINT_GROUP, PluginInfo, PluginManager


def missing_fixture(suite: object, fixture: str, what: str) -> NoReturn:
    """Fail the test with one line saying which fixture (or attribute) to define."""
    name = suite if isinstance(suite, str) else type(suite).__name__
    pytest.fail(f"{name} must define {fixture}: {what}", pytrace=False)


def isolated_plugin_manager(*plugins: object, autoload: bool = True) -> PluginManager:
    """A fresh plugin manager that ignores ``EMBER_*`` settings (nothing blocked, not
    strict) and is not the process-wide one; ``plugins`` (modules or objects with
    hook implementations) are registered from code, as if installed.

    With ``autoload=False`` only ember's built-ins and ``plugins`` are seen: a test of
    one plugin that no other installed plugin can disturb.
    """
    manager = PluginManager(autoload=autoload, block=(), strict=False)
    manager.load_entrypoints()
    for plugin in plugins:
        manager.register(plugin)
    return manager


@pytest.fixture
def ember_plugin_manager() -> PluginManager:
    """A fresh :func:`isolated_plugin_manager` for one test."""
    return isolated_plugin_manager()


@dataclass(frozen=True)
class InstalledDistribution:
    """A distribution installed by :func:`install_distribution` into :attr:`site`."""

    #: the distribution's name as its metadata spells it (``ember-my-plugin``)
    name: str
    version: str
    #: the folder it was installed into (put it on ``sys.path`` or ``PYTHONPATH``)
    site: Path
    #: the names of its ``ember`` entry points
    entry_points: tuple[str, ...]

    @contextlib.contextmanager
    def on_sys_path(self) -> Iterator[None]:
        """Put :attr:`site` first on ``sys.path`` for the block, then take it off."""
        path = str(self.site)
        sys.path.insert(0, path)
        importlib.invalidate_caches()
        try:
            yield
        finally:
            with contextlib.suppress(ValueError):
                sys.path.remove(path)
            importlib.invalidate_caches()

    def plugin_manager(self, *, autoload: bool = True) -> PluginManager:
        """A fresh manager that discovered this distribution through its real entry
        points; fails when one of them did not load (with the reason)."""
        with self.on_sys_path():
            manager = isolated_plugin_manager(autoload=autoload)
            infos = self.plugins(manager)
        bad = [f"{i.name}: {i.status} ({i.error})" for i in infos if i.status != "active"]
        if not infos or bad:
            raise AssertionError(
                f"{self.name} installed in {self.site} was not discovered as an active plugin: "
                + ("; ".join(bad) or "no entry point of the 'ember' group was found")
            )
        return manager

    def plugins(self, manager: PluginManager) -> list[PluginInfo]:
        """What ``manager`` knows of this distribution's plugins."""
        key = _canonical(self.name)
        return [
            i for i in manager.plugins() if i.distribution and _canonical(i.distribution) == key
        ]

    def environ(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """An environment for a subprocess that sees the distribution (``PYTHONPATH``)."""
        env = dict(os.environ if base is None else base)
        paths = [str(self.site), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
        env["PYTHONPATH"] = os.pathsep.join(paths)
        return env


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def install_distribution(
    source: str | os.PathLike[str], target: str | os.PathLike[str]
) -> InstalledDistribution:
    """Build the project at ``source`` (a folder with a ``pyproject.toml``) and install
    it with pip into the folder ``target``, as a user's ``pip install`` would, without
    its dependencies (the running environment provides them) and without a network.

    The source is copied first, so the build leaves nothing in it. Returns what was
    installed; :meth:`InstalledDistribution.plugin_manager` discovers it through its
    real entry points. Raises ``RuntimeError`` with pip's output when pip fails.
    """
    source, target = Path(source).resolve(), Path(target).resolve()
    if not (source / "pyproject.toml").is_file():
        raise FileNotFoundError(f"{source} has no pyproject.toml: pass a project folder")
    build = target.parent / f".build-{target.name}"
    shutil.rmtree(build, ignore_errors=True)
    ignore = shutil.ignore_patterns(
        "build", "dist", "*.egg-info", "__pycache__", ".venv", ".git", ".pytest_cache"
    )
    shutil.copytree(source, build, ignore=ignore)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "--disable-pip-version-check",
        "--target",
        str(target),
        str(build),
    ]
    env = {**os.environ, "PIP_CONSTRAINT": "", "PIP_REQUIRE_VIRTUALENV": "0"}
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=build, env=env, timeout=600)
    shutil.rmtree(build, ignore_errors=True)
    if proc.returncode != 0:
        raise RuntimeError(
            f"pip could not install {source} into {target}:\n{proc.stdout}{proc.stderr}"
        )
    dists = list(metadata.distributions(path=[str(target)]))
    if len(dists) != 1:
        raise RuntimeError(f"expected one distribution in {target}, found {len(dists)}")
    dist = dists[0]
    eps = tuple(ep.name for ep in dist.entry_points if ep.group == ENTRY_POINT_GROUP)
    return InstalledDistribution(dist.metadata["Name"], dist.version, target, eps)


@pytest.fixture
def ember_install(
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[[str | os.PathLike[str]], InstalledDistribution]:
    """``ember_install(project_folder)``: :func:`install_distribution` into a fresh
    temporary folder."""

    def install(source: str | os.PathLike[str]) -> InstalledDistribution:
        return install_distribution(source, tmp_path_factory.mktemp("site") / "site")

    return install
