"""``ember plugin new``: scaffold a plugin distribution that works and passes ember's
conformance suite for its kind out of the box.

The files come from templates shipped as package data (``hub/templates/plugin``):
``common/`` for every kind, one folder per kind, ``licenses/``. Placeholders are written
``{{name}}``. Importing this module imports neither torch nor ``ember.trainer``.
"""

from __future__ import annotations

import contextlib
import datetime
import getpass
import importlib.util
import keyword
import re
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path

from ember.hub.errors import EmberPluginError

#: kind -> (record type, the suite its tests subclass, implementation module, class suffix)
KINDS: dict[str, tuple[str, str, str, str]] = {
    "logger": ("LoggerSpec", "ember.hub.testing.LoggerConformance", "logger", "Logger"),
    "accelerator": (
        "AcceleratorSpec",
        "ember.trainer.testing.AcceleratorConformance",
        "accelerator",
        "Accelerator",
    ),
    "precision": (
        "PrecisionSpec",
        "ember.trainer.testing.PrecisionConformance",
        "precision",
        "Precision",
    ),
    "strategy": (
        "StrategySpec",
        "ember.trainer.testing.StrategyConformance",
        "strategy",
        "Strategy",
    ),
    "callback": (
        "CallbackSpec",
        "ember.trainer.testing.CallbackConformance",
        "callback",
        "Callback",
    ),
}

#: license choice -> (SPDX expression for pyproject, trove classifier or None)
LICENSES: dict[str, tuple[str, str | None]] = {
    "MIT": ("MIT", None),
    "Apache-2.0": ("Apache-2.0", None),
    "BSD-3-Clause": ("BSD-3-Clause", None),
    "Proprietary": ("LicenseRef-Proprietary", "Private :: Do Not Upload"),
}

_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


class ScaffoldError(EmberPluginError):
    """The plugin cannot be scaffolded as asked (bad name, existing folder, ...)."""


@dataclass(frozen=True)
class PluginNames:
    """The names of one plugin: ``my-thing`` gives distribution ``ember-my-thing``,
    package ``ember_my_thing``, provider and entry point ``my-thing``, class ``MyThing``."""

    name: str

    @property
    def distribution(self) -> str:
        return f"ember-{self.name}"

    @property
    def package(self) -> str:
        return f"ember_{self.name.replace('-', '_')}"

    @property
    def camel(self) -> str:
        return "".join(part.capitalize() for part in self.name.split("-"))


def ember_requirement(version: str) -> str:
    """The compatible-versions pin on ember a new plugin declares: ``ember>=0.1,<0.2``
    for ember 0.1.x (a 0.x minor release may break plugins), ``ember>=1.4,<2`` for 1.4.x."""
    parts = re.findall(r"\d+", version)
    major, minor = (int(parts[0]), int(parts[1])) if len(parts) > 1 else (int(parts[0]), 0)
    upper = f"{major}.{minor + 1}" if major == 0 else f"{major + 1}"
    return f"ember>={major}.{minor},<{upper}"


def _taken_names(kind: str) -> dict[str, str]:
    """Provider names of ``kind`` that are taken -> who takes them (built-ins, installed
    plugins, ember's first-party plugins that may not be installed)."""
    from ember.hub.errors import DuplicateProviderError
    from ember.hub.manager import CORE_DISTRIBUTION, FIRST_PARTY, PluginManager
    from ember.hub.records import normalize_name

    taken: dict[str, str] = {}
    for (k, name), dist in FIRST_PARTY.items():
        if k == kind:
            taken[normalize_name(name)] = f"ember's first-party plugin {dist}"
    manager = PluginManager(autoload=True, block=(), strict=False)

    def owner(distribution: str | None) -> str:
        if distribution == CORE_DISTRIBUTION:
            return "a built-in provider"
        return f"installed from {distribution}" if distribution else "registered in code"

    for info in manager.plugins():
        for k, name in info.provides:
            if k == kind:
                taken[normalize_name(name)] = owner(info.distribution)
    with contextlib.suppress(DuplicateProviderError):  # aliases; a conflict is not ours
        for spec in manager.providers(kind).values():
            for key in spec.keys:
                taken[key] = owner(spec.distribution)
    return taken


def validate_name(name: str, kind: str) -> PluginNames:
    """Check a new plugin's name; raise :class:`ScaffoldError` saying what to change."""
    if kind not in KINDS:
        raise ScaffoldError(f"unknown kind {kind!r}: use one of {', '.join(KINDS)}")
    given = name
    name = name.strip()
    if name.startswith(("ember-", "ember_")):
        raise ScaffoldError(
            f"plugin name {given!r}: leave out the 'ember-' prefix, it is added for you "
            f"(ember plugin new {name[6:]} gives the distribution ember-{name[6:]})"
        )
    if not _NAME.match(name):
        hint = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        raise ScaffoldError(
            f"plugin name {given!r} is not valid: use lower-case letters, digits and single "
            "hyphens, starting with a letter"
            + (f" (e.g. {hint!r})" if hint and _NAME.match(hint) else "")
        )
    names = PluginNames(name)
    if keyword.iskeyword(name.replace("-", "_")):
        raise ScaffoldError(
            f"plugin name {given!r} is a Python keyword, which makes a confusing provider "
            f"name in code: choose another (e.g. '{name}-plugin')"
        )
    from ember.hub.records import normalize_name

    owner = _taken_names(kind).get(normalize_name(name))
    if owner:
        raise ScaffoldError(
            f"{'an' if kind[0] in 'aeiou' else 'a'} {kind} named {name!r} exists already "
            f"({owner}); two plugins providing one "
            "name cannot be installed together: choose another name"
        )
    from ember.hub.manager import FIRST_PARTY

    if names.distribution in FIRST_PARTY.values():
        raise ScaffoldError(
            f"{names.distribution} is the name of one of ember's first-party plugins: "
            "choose another name"
        )
    try:
        found = metadata.distribution(names.distribution)
    except metadata.PackageNotFoundError:
        pass
    else:
        raise ScaffoldError(
            f"a distribution named {names.distribution} {found.version} is already installed: "
            "choose another name, or uninstall it first"
        )
    if importlib.util.find_spec(names.package) is not None:
        raise ScaffoldError(
            f"a module named {names.package} can already be imported here, and the new "
            "plugin's package would clash with it: choose another name"
        )
    return names


def _template(relative: str) -> str:
    return (
        resources.files("ember.hub")
        .joinpath("templates", "plugin", *relative.split("/"))
        .read_text(encoding="utf-8")
    )


def _render(text: str, values: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise KeyError(f"template placeholder {{{{{key}}}}} has no value")
        return values[key]

    return re.sub(r"\{\{(\w+)\}\}", replace, text)


def scaffold(
    name: str,
    kind: str,
    directory: str | Path = ".",
    *,
    license: str = "Apache-2.0",
    author: str | None = None,
    ember_version: str | None = None,
) -> Path:
    """Write the project ``DIRECTORY/ember-NAME/`` for a plugin of ``kind``; return its
    folder. Never overwrites: an existing folder is a :class:`ScaffoldError`."""
    if license not in LICENSES:
        raise ScaffoldError(f"unknown license {license!r}: use one of {', '.join(LICENSES)}")
    names = validate_name(name, kind)
    root = Path(directory).expanduser().resolve() / names.distribution
    if root.exists():
        raise ScaffoldError(
            f"{root} exists already; ember plugin new never overwrites a folder: remove it, "
            "or pass --dir to create the plugin somewhere else"
        )
    if ember_version is None:
        from ember.hub import __version__ as ember_version
    spec, suite, module, suffix = KINDS[kind]
    expression, classifier = LICENSES[license]
    torch_side = kind != "logger"
    values = {
        "name": names.name,
        "dist": names.distribution,
        "package": names.package,
        "kind": kind,
        "class_name": f"{names.camel}{suffix}",
        "requirement": ember_requirement(ember_version),
        "license": license,
        "license_expression": expression,
        "classifiers": f'"{classifier}"' if classifier else "",
        "description": f"A {kind} plugin for ember: {names.name}.",
        "suite": suite,
        "spec": spec,
        "year": str(datetime.date.today().year),
        "author": author or _author(),
        "pytest_plugins": '"ember.hub.testing", "ember.trainer.testing"'
        if torch_side
        else '"ember.hub.testing"',
        "conftest_extra": (
            ";\nfrom ember.trainer.testing, ``ember_tiny_module`` and ``ember_tiny_data``"
            if torch_side
            else ""
        ),
    }
    values["options"] = _render(_template(f"{kind}/options.md.tmpl"), values).strip()
    values["usage"] = _render(_template(f"{kind}/usage.md.tmpl"), values).strip()
    files = {
        "pyproject.toml": "common/pyproject.toml.tmpl",
        "README.md": "common/README.md.tmpl",
        "LICENSE": f"licenses/{license}.tmpl",
        ".gitignore": "common/gitignore.tmpl",
        f"{names.package}/__init__.py": f"{kind}/__init__.py.tmpl",
        f"{names.package}/{module}.py": f"{kind}/{module}.py.tmpl",
        "tests/conftest.py": "common/conftest.py.tmpl",
        "tests/test_conformance.py": f"{kind}/test_conformance.py.tmpl",
        "tests/test_install.py": "common/test_install.py.tmpl",
    }
    rendered = {path: _render(_template(tmpl), values) for path, tmpl in files.items()}
    root.mkdir(parents=True)
    for path, text in rendered.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return root


def _author() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "the authors"


def next_steps(root: Path, kind: str) -> str:
    """What to run after scaffolding, as printed by ``ember plugin new``."""
    names = PluginNames(root.name.removeprefix("ember-"))
    return (
        f"created {root} ({kind} '{names.name}': distribution {names.distribution}, "
        f"package {names.package})\n"
        "next:\n"
        f"  cd {root}\n"
        '  pip install -e ".[test]"\n'
        "  pytest\n"
        f"  ember plugins --kind {kind}"
    )
