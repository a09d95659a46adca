"""Which ember versions a plugin supports, read from its distribution's metadata.

A plugin declares them the standard way: its distribution depends on ``ember`` with a
version range (``dependencies = ["ember>=0.1,<0.2"]`` in its pyproject, a
``Requires-Dist: ember<0.2,>=0.1`` line in the installed metadata). The hub compares that
range with the installed ember and marks the plugin compatible, incompatible or without
declared compatibility. Nothing here imports the plugin.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata

#: the three verdicts, as ``ember plugins --json`` writes them
COMPATIBLE = "compatible"
INCOMPATIBLE = "incompatible"
UNDECLARED = "undeclared"


@dataclass(frozen=True)
class Compatibility:
    """The verdict on one distribution: ``status`` is one of :data:`COMPATIBLE`,
    :data:`INCOMPATIBLE` or :data:`UNDECLARED`; ``requirement`` is the declared range
    (``"ember<0.2,>=0.1"``) or None; ``reason`` says in a sentence why it is not
    compatible (None when it is)."""

    status: str
    requirement: str | None
    reason: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        """Plain data for ``ember plugins --json`` and ``ember doctor --json``."""
        return {"status": self.status, "requires": self.requirement, "reason": self.reason}


def installed_ember_version() -> str:
    """The version of the installed ember distribution (the package's own when ember
    runs from a source tree that is not installed)."""
    try:
        return metadata.version("ember")
    except metadata.PackageNotFoundError:
        from ember.hub import __version__

        return __version__


def check_requirements(
    distribution: str, version: str | None, requires: Iterable[str] | None, ember_version: str
) -> Compatibility:
    """Judge a distribution's ``Requires-Dist`` lines against ``ember_version``.

    Only requirements that apply to a plain install count: one behind an extra
    (``ember[yaml]; extra == "test"``) or an environment marker that does not hold here is
    ignored. Several ``ember`` requirements are all applied. A bare ``ember`` (no range)
    declares nothing about versions.
    """
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.specifiers import SpecifierSet
    from packaging.utils import canonicalize_name
    from packaging.version import InvalidVersion, Version

    who = f"{distribution} {version}" if version else distribution
    specifier = SpecifierSet()
    named = False
    for line in requires or ():
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue  # pip would have refused it; it names nothing we can judge
        if canonicalize_name(req.name) != "ember":
            continue
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        named = True
        specifier &= req.specifier
    if not named:
        return Compatibility(
            UNDECLARED,
            None,
            f"{who} declares no compatible ember versions: its dependencies do not name "
            "ember. Its author should add a range such as 'ember>=0.1,<0.2' to "
            "[project] dependencies",
        )
    if not str(specifier):
        return Compatibility(
            UNDECLARED,
            "ember",
            f"{who} depends on ember without a version range, so it declares no compatible "
            "ember versions. Its author should pin a range such as 'ember>=0.1,<0.2'",
        )
    requirement = f"ember{specifier}"
    try:
        ok = specifier.contains(Version(ember_version), prereleases=True)
    except InvalidVersion:
        ok = False
    if ok:
        return Compatibility(COMPATIBLE, requirement)
    return Compatibility(
        INCOMPATIBLE,
        requirement,
        f"installed ember {ember_version} does not satisfy {who}'s requirement "
        f"{requirement}. Install a release of {distribution} made for ember "
        f"{ember_version}, or an ember that matches {requirement}",
    )


def check_distribution(dist: metadata.Distribution, ember_version: str) -> Compatibility:
    """:func:`check_requirements` for an installed distribution."""
    return check_requirements(dist.name, dist.version, dist.requires, ember_version)


__all__ = [
    "COMPATIBLE",
    "INCOMPATIBLE",
    "UNDECLARED",
    "Compatibility",
    "check_distribution",
    "check_requirements",
    "installed_ember_version",
]
