"""ember's built-in providers, registered through the root distribution's own ``ember``
entry point: the same path as any third-party plugin. Factories are import strings, so
loading this module imports no torch."""

from __future__ import annotations
