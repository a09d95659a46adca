"""Keeping secrets out of everything the tracking pipeline writes or prints.

Two sources of secrets: options a provider's schema marks ``secret=True``, and
environment variables whose names contain KEY, TOKEN, SECRET or PASSWORD. Their values
are replaced by ``***`` wherever they occur (inside longer strings too) before anything
reaches the journal, a tracker, a log line or a printed configuration. Mapping entries
whose key is a secret-looking word (``api_key``, ``token``) are redacted as well.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "***"
#: environment variable names containing one of these hold secrets
SECRET_ENV_WORDS: tuple[str, ...] = ("KEY", "TOKEN", "SECRET", "PASSWORD")
#: mapping keys made of one of these words (``api_key``, ``wandbToken``) hold secrets
_SECRET_KEY_WORDS = frozenset(
    {"key", "apikey", "token", "secret", "password", "passwd", "pwd", "credential", "credentials"}
)
#: shorter values ("1", "true", "gpu") are configuration, not secrets, and replacing
#: them everywhere would mangle every string
MIN_SECRET_LENGTH = 6

_WORD_RE = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")


def is_secret_env_name(name: str) -> bool:
    """Whether an environment variable called ``name`` holds a secret."""
    upper = name.upper()
    return any(word in upper for word in SECRET_ENV_WORDS)


def is_secret_key(key: str) -> bool:
    """Whether a mapping entry called ``key`` (``api_key``, ``authToken``) holds a secret."""
    words = [w.lower() for w in _WORD_RE.findall(str(key))]
    return any(w in _SECRET_KEY_WORDS for w in words)


class Redactor:
    """Replaces secret values with ``***`` in strings and nested plain data."""

    def __init__(self, secrets: Iterable[str] = (), env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self._secrets: set[str] = set()
        self.add(value for name, value in env.items() if is_secret_env_name(name))
        self.add(secrets)
        self._names: dict[str, str] = {}

    def add(self, secrets: Iterable[Any]) -> None:
        """Treat each of ``secrets`` as secret from now on."""
        for value in secrets:
            if isinstance(value, str) and len(value.strip()) >= MIN_SECRET_LENGTH:
                self._secrets.add(value)
        # longest first, so a secret that contains another is replaced whole
        self._ordered = sorted(self._secrets, key=len, reverse=True)
        self._names = {}

    def text(self, value: str) -> str:
        """``value`` with every secret replaced."""
        for secret in self._ordered:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value

    def name(self, value: str) -> str:
        """Like :meth:`text`, cached: metric names repeat on every flush."""
        cached = self._names.get(value)
        if cached is None:
            cached = self._names[value] = self.text(value)
        return cached

    def data(self, value: Any) -> Any:
        """A copy of nested plain data with secrets redacted (secret-named keys included)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            out: dict[str, Any] = {}
            for k, v in value.items():
                key = self.text(str(k))
                if is_secret_key(key) and isinstance(v, str) and v:
                    out[key] = REDACTED
                else:
                    out[key] = self.data(v)
            return out
        if isinstance(value, (list, tuple, set, frozenset)):
            return [self.data(v) for v in value]
        return value


def redact_options(options: Mapping[str, Any], secret_options: Iterable[str]) -> dict[str, Any]:
    """``options`` with the values of ``secret_options`` replaced by ``***``."""
    secret = set(secret_options)
    return {k: (REDACTED if k in secret and v is not None else v) for k, v in options.items()}


def redact_config(config: Any, redactor: Redactor | None = None) -> Any:
    """A printable copy of ``config``: environment secrets and secret-named keys redacted.

    For ``ember config`` and the run header; the tracking pipeline applies the same rules.
    """
    return (redactor or Redactor()).data(config)
