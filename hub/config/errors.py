"""Configuration errors: every problem found in one pass, each at a dotted location."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ember.hub.errors import EmberPluginError


@dataclass(frozen=True)
class ConfigIssue:
    """One problem: where in the run file (``trainer.max_epochs``, ``loggers[1].name``)
    and what is wrong with it, including what was expected and the closest valid name."""

    location: str
    message: str

    def format(self, source: str | None = None) -> str:
        """``run.toml: trainer.max_epochs: expected int, got str 'ten'``."""
        parts = [p for p in (source, self.location) if p]
        return ": ".join([*parts, self.message])


class ConfigError(EmberPluginError, ValueError):
    """A run file (or its overrides) is not valid; ``issues`` lists every problem."""

    def __init__(self, issues: Iterable[ConfigIssue], source: str | None = None) -> None:
        self.issues = list(issues)
        self.source = source
        super().__init__(self.render())

    def with_source(self, source: str) -> ConfigError:
        """The same issues, attributed to the file ``source`` unless already attributed."""
        return ConfigError(self.issues, source=self.source or source)

    def render(self) -> str:
        """One line per issue."""
        return "\n".join(issue.format(self.source) for issue in self.issues)
