"""What a plugin author's tests need besides the suites: an isolated plugin manager, a
real install of a distribution into a temporary folder discovered through its entry
points, a fresh virtual environment that holds the running torch, and one-line messages
for a suite whose required fixture is missing.

Torch-free, like the rest of ``ember.hub``; the torch-side fixtures (a tiny model and
data) live in :mod:`ember.trainer.testing`.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
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


def _copy_project(source: Path, dest: Path) -> None:
    """Copy a project to build it there: pip builds a folder in place, and would leave
    ``build/`` and ``*.egg-info`` in the checkout."""
    shutil.rmtree(dest, ignore_errors=True)
    ignore = shutil.ignore_patterns(
        "build", "dist", "*.egg-info", "__pycache__", ".venv", ".git", ".pytest_cache"
    )
    shutil.copytree(source, dest, ignore=ignore)


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
    _copy_project(source, build)
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


@dataclass(frozen=True)
class VirtualEnv:
    """A virtual environment made by :func:`fresh_venv`."""

    #: the environment's folder
    path: Path
    #: pip constraints that hold what it was made with (the running torch)
    constraints: Path

    @property
    def python(self) -> Path:
        """The environment's interpreter."""
        return self.path / ("Scripts/python.exe" if os.name == "nt" else "bin/python")

    def pip_install(self, *requirements: str | os.PathLike[str], timeout: float = 1800) -> None:
        """``pip install`` into the environment under :attr:`constraints`, so that nothing
        replaces the torch it holds. A project folder (a ``Path``) is copied first and built
        from the copy, which leaves the folder as it was. Raises ``RuntimeError`` with pip's
        output on failure."""
        args = []
        for requirement in requirements:
            if isinstance(requirement, os.PathLike):
                source = Path(requirement).resolve()
                requirement = self.path.parent / f".build-{source.name}-{len(args)}"
                _copy_project(source, requirement)
            args.append(str(requirement))
        cmd = [str(self.python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        cmd += ["-c", str(self.constraints), *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        for arg, requirement in zip(args, requirements, strict=True):
            if isinstance(requirement, os.PathLike):
                shutil.rmtree(arg, ignore_errors=True)
        if proc.returncode != 0:
            raise RuntimeError(
                f"pip could not install {[str(r) for r in requirements]} into {self.path}:\n"
                f"{proc.stdout}{proc.stderr}"
            )

    def distributions(self) -> set[str]:
        """The normalized names of every distribution installed (``ember-my-plugin``)."""
        listed = subprocess.run(
            [str(self.python), "-m", "pip", "list", "--format=json"],
            capture_output=True,
            text=True,
            check=True,
        )
        return {_canonical(d["name"]) for d in json.loads(listed.stdout)}


def running_torch() -> list[str]:
    """The requirement that pins the torch this interpreter has (``torch==2.13.0+cpu``);
    empty when it has none. Read from metadata: torch is not imported."""
    try:
        return [f"torch=={metadata.version('torch')}"]
    except metadata.PackageNotFoundError:
        return []


def fresh_venv(
    target: str | os.PathLike[str],
    pins: Sequence[str] | None = None,
    *,
    cache: str | os.PathLike[str] | None = None,
) -> VirtualEnv:
    """A new virtual environment at ``target`` holding pip and ``pins`` only (requirements;
    default :func:`running_torch`, so that installing ember there takes the torch on disk
    instead of downloading another build). The pins are also its :attr:`~VirtualEnv.constraints`.

    With ``cache``, the environment is built once per Python and pins under that folder, and
    ``target`` is a copy made of hard links (a second instead of a torch install). Its
    scripts and ``pyvenv.cfg`` name ``target``; tracebacks from the copied packages may name
    the cached files, which are the same.
    """
    target = Path(target).resolve()
    pins = list(running_torch() if pins is None else pins)
    if cache is None:
        _build_venv(target, pins)
    else:
        key = hashlib.sha256(json.dumps([sys.version, sys.executable, pins]).encode())
        base = Path(cache).resolve() / f"venv-{key.hexdigest()[:16]}"
        if not (base / ".complete").exists():
            building = base.with_name(f"{base.name}.{os.getpid()}")
            shutil.rmtree(building, ignore_errors=True)
            _build_venv(building, pins)
            _retarget(building, building, base)
            (building / ".complete").touch()
            try:
                building.rename(base)
            except OSError:  # another process finished first: use its copy
                shutil.rmtree(building, ignore_errors=True)
        shutil.copytree(base, target, symlinks=True, copy_function=_link_or_copy)
        (target / ".complete").unlink()
        _retarget(target, base, target)
    return VirtualEnv(target, target / "ember-constraints.txt")


def _build_venv(path: Path, pins: list[str]) -> None:
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=600)
    constraints = path / "ember-constraints.txt"
    constraints.write_text("".join(f"{p}\n" for p in pins))
    if pins:
        VirtualEnv(path, constraints).pip_install(*pins)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system
        shutil.copy2(src, dst)


def _retarget(venv: Path, old: Path, new: Path) -> None:
    """Make the scripts and ``pyvenv.cfg`` of ``venv`` name the folder ``new`` instead of
    ``old``. Each file is written anew, never in place: it may be a hard link to the cached
    one."""
    scripts = venv / ("Scripts" if os.name == "nt" else "bin")
    for path in [venv / "pyvenv.cfg", *scripts.iterdir()]:
        if path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        if str(old).encode() not in data:
            continue
        mode = path.stat().st_mode
        path.unlink()
        path.write_bytes(data.replace(str(old).encode(), str(new).encode()))
        path.chmod(mode)


@pytest.fixture
def ember_venv(
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[..., VirtualEnv]:
    """``ember_venv()``: a :func:`fresh_venv` holding the running torch in a new temporary
    folder; the first call of a test session builds it, later calls copy it."""
    cache = tmp_path_factory.getbasetemp() / "ember-venvs"

    def make(pins: Sequence[str] | None = None) -> VirtualEnv:
        return fresh_venv(tmp_path_factory.mktemp("venv") / "venv", pins, cache=cache)

    return make
