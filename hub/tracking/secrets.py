"""Keeping secrets out of everything the tracking pipeline writes or prints.

Three sources of secrets: options a provider's schema marks ``secret=True``;
environment variables whose names contain KEY, TOKEN, SECRET, PASSWORD or PASSPHRASE; and values
found under secret-looking mapping keys (``api_key``, ``api_keys``, ``token``,
``passphrase``, ``Authorization``, ``credentials`` ...), at any depth and of any type. Such
a key's whole value is replaced by ``***``, and every string in it (and every number long
enough) becomes a known secret, replaced by ``***`` wherever it appears later: inside
longer strings, texts, metric names, error messages. The password of a URL with
credentials (``postgres://user:pw@host/db``) is redacted too.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "***"
#: environment variable names containing one of these hold secrets
SECRET_ENV_WORDS: tuple[str, ...] = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSPHRASE")
#: a mapping key whose last word is one of these holds a secret (``hf_token``, ``apiKey``)
_SECRET_LAST_WORDS = frozenset(
    {
        "apikey",
        "apikeys",
        "token",
        "secret",
        "secrets",
        "password",
        "passwords",
        "passwd",
        "pwd",
        "passphrase",
        "credential",
        "credentials",
        "authorization",
        "cookie",
        "cookies",
    }
)
#: ``key``/``keys``/``tokens`` are secret after one of these (``api_keys``, ``private_key``),
#: not otherwise (``key_dim``, ``sort_key``, ``max_tokens``)
_SECRET_QUALIFIERS = frozenset(
    {"api", "access", "secret", "private", "auth", "client", "ssh", "signing", "encryption"}
    | {"master", "session", "bearer", "refresh", "license"}
)
_QUALIFIED_WORDS = frozenset({"key", "keys", "tokens"})
#: shorter values ("1", "true", "gpu") are configuration, not secrets, and replacing
#: them everywhere would mangle every string
MIN_SECRET_LENGTH = 6

_WORD_RE = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
#: ``scheme://user:password@`` in a URL
_URL_CREDENTIALS_RE = re.compile(r"(?P<head>\b[a-zA-Z][\w+.-]*://[^\s/:@]*:)(?P<pw>[^\s/@]+)@")


def is_secret_env_name(name: str) -> bool:
    """Whether an environment variable called ``name`` holds a secret."""
    upper = name.upper()
    return any(word in upper for word in SECRET_ENV_WORDS)


def is_secret_key(key: Any) -> bool:
    """Whether a mapping entry called ``key`` holds a secret: ``api_key``, ``authToken``,
    ``api_keys``, ``passphrase``, ``Authorization``; not ``key_dim`` nor ``tokenizer``."""
    words = [w.lower() for w in _WORD_RE.findall(str(key))]
    if not words:
        return False
    last = words[-1]
    if last in _SECRET_LAST_WORDS:
        return True
    if last in _QUALIFIED_WORDS:
        return (len(words) == 1 and last != "tokens") or words[-2] in _SECRET_QUALIFIERS
    return False


def _leaves(value: Any) -> Iterable[str]:
    """Every string (and every number, as text) inside ``value``."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield from _leaves(k)
            yield from _leaves(v)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for v in value:
            yield from _leaves(v)
    elif isinstance(value, bytes):
        yield value.decode("utf-8", "replace")
    elif value is not None:
        yield str(value)


class Redactor:
    """Replaces secret values with ``***`` in strings and nested plain data."""

    def __init__(self, secrets: Iterable[Any] = (), env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self._secrets: set[str] = set()
        self._ordered: list[str] = []
        self._names: dict[str, str] = {}
        #: bumped whenever a secret is learnt: what was redacted before may need it again
        self.generation = 0
        self.add(value for name, value in env.items() if is_secret_env_name(name))
        self.add(secrets)

    def add(self, secrets: Iterable[Any]) -> None:
        """Treat each of ``secrets`` (strings, numbers, nested data) as secret from now on."""
        before = len(self._secrets)
        for value in secrets:
            for leaf in _leaves(value):
                if len(leaf.strip()) >= MIN_SECRET_LENGTH:
                    self._secrets.add(leaf)
        if len(self._secrets) != before:
            # longest first, so a secret that contains another is replaced whole
            self._ordered = sorted(self._secrets, key=len, reverse=True)
            self._names = {}
            self.generation += 1

    def text(self, value: str) -> str:
        """``value`` with every known secret and every URL password replaced."""
        for secret in self._ordered:
            if secret in value:
                value = value.replace(secret, REDACTED)
        if "://" in value:
            value = _URL_CREDENTIALS_RE.sub(self._url_password, value)
        return value

    def _url_password(self, match: re.Match[str]) -> str:
        self.add([match["pw"]])
        return f"{match['head']}{REDACTED}@"

    def name(self, value: str) -> str:
        """Like :meth:`text`, cached: metric names repeat on every flush."""
        cached = self._names.get(value)
        if cached is None:
            cached = self._names[value] = self.text(value)
        return cached

    def data(self, value: Any) -> Any:
        """A copy of nested plain data with secrets redacted.

        The value of a secret-named key is replaced whole, whatever its type, and learnt
        as a secret; tuples stay tuples, other sequences and sets become lists, string
        keys are redacted like values, and other values are kept as they are.
        """
        self._learn(value)
        return self._redact(value)

    def _learn(self, value: Any) -> None:
        """Collect the values under secret-named keys, first, so that they are redacted
        wherever else they appear in ``value``."""
        if isinstance(value, Mapping):
            for k, v in value.items():
                if is_secret_key(k):
                    self.add([v])
                else:
                    self._learn(v)
        elif isinstance(value, (list, tuple, set, frozenset)):
            for v in value:
                self._learn(v)

    def _redact(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            out: dict[Any, Any] = {}
            for k, v in value.items():
                key = self.text(k) if isinstance(k, str) else k
                if not isinstance(key, (str, int, float, bool)) and key is not None:
                    key = self.text(str(key))
                secret = is_secret_key(k) and v is not None and v != ""
                out[key] = REDACTED if secret else self._redact(v)
            return out
        if isinstance(value, tuple):
            return tuple(self._redact(v) for v in value)
        if isinstance(value, (list, set, frozenset)):
            return [self._redact(v) for v in value]
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
