"""The metrics of a trainer: which result collection ``self.log`` writes to, the views
callbacks read (``callback_metrics``, ``progress_bar_metrics``), and the one place
flushed values leave the loops (:meth:`Metrics.publish`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ember.trainer.results import ResultCollection, to_host
from torch import Tensor

#: tags the progress bar's values inside a flush's transfer (no logged name starts with NUL)
_VIEW = "\0view:"


class Metrics:
    """Logged values of the running trainer.

    :param deliver: hands published floats to the tracking session (journal, loggers).
    """

    def __init__(self, deliver: Callable[[dict[str, float], int], None]) -> None:
        self._deliver = deliver
        #: the training loop's collection (kept across epochs for epoch-level values)
        self.train_results = ResultCollection(training=True)
        #: the collection ``self.log`` writes to now (``None``: logging is not allowed)
        self.results: ResultCollection | None = None
        self._module: Any = None
        self._callback_metrics: dict[str, Tensor] = {}
        self._progress_bar_metrics: dict[str, float] = {}
        #: everything published so far, latest value per name
        self.logged_metrics: dict[str, float] = {}
        #: which collection and slot each logger name of the entry point comes from
        self._published: dict[str, Any] = {}

    def attach(self, module: Any) -> None:
        """The module whose ``self.log`` writes to :attr:`results`."""
        self._module = module
        if module is not None:
            module._ember_results = self.results

    def activate(
        self, results: ResultCollection | None, merge: bool = True
    ) -> ResultCollection | None:
        """Make ``results`` the collection ``self.log`` writes to; keep what the previous
        one holds in the views (unless ``merge`` is false: the sanity check). Returns the
        previous collection."""
        previous = self.results
        if merge and previous is not None and previous is not results:
            self.merge_views(previous)
        self.results = results
        if results is not None:
            results.published = self._published
        if self._module is not None:
            self._module._ember_results = results
        return previous

    def merge_views(self, results: ResultCollection) -> None:
        """Copy a collection's current values into the persistent views."""
        self._callback_metrics.update(results.callback_view())
        view = results.progress_view()
        if view:
            self._progress_bar_metrics.update(to_host(view)[0])

    def start_entry_point(self) -> None:
        """Each of fit, validate, test and predict starts with empty views, as in
        Lightning: after ``test()``, ``callback_metrics`` holds the test stage's values.
        (The run journal and the loggers keep everything.)"""
        self._callback_metrics.clear()
        self._progress_bar_metrics.clear()
        self.logged_metrics.clear()
        self._published.clear()

    def forget_views(self) -> None:
        """Drop the views (after the sanity check, whose values must leave no trace)."""
        self._callback_metrics.clear()
        self._progress_bar_metrics.clear()

    def flush_to_host(
        self,
        results: ResultCollection,
        values: Mapping[str, Tensor | float],
        extra: Sequence[Tensor] = (),
    ) -> tuple[dict[str, float], list[float]]:
        """:func:`to_host` for a flush point that also refreshes
        :attr:`flushed_progress_bar_metrics` from ``results`` in the same transfer, so the
        progress bar never needs a transfer of its own."""
        view = results.progress_view()
        host, extras = to_host({**values, **{_VIEW + k: v for k, v in view.items()}}, extra)
        for key in view:
            self._progress_bar_metrics[key] = host.pop(_VIEW + key)
        return host, extras

    @property
    def flushed_progress_bar_metrics(self) -> dict[str, float]:
        """``prog_bar=True`` values as of the last flush point (``log_every_n_steps``, epoch
        and evaluation ends) as floats: reading them costs no host transfer."""
        return self._progress_bar_metrics

    @property
    def callback_metrics(self) -> dict[str, Tensor]:
        """Latest logged values as tensors, computed when read."""
        results = self.results
        if results is not None:
            self._callback_metrics.update(results.callback_view())
        return self._callback_metrics

    @property
    def progress_bar_metrics(self) -> dict[str, float]:
        """Latest ``prog_bar=True`` values as floats (one host transfer per read)."""
        results = self.results
        if results is not None:
            view = results.progress_view()
            if view:
                self._progress_bar_metrics.update(to_host(view)[0])
        return self._progress_bar_metrics

    def publish(self, metrics: Mapping[str, float], step: int) -> None:
        """The one place flushed metrics leave the loops: plain floats at a step, into
        :attr:`logged_metrics` and the run journal (loggers receive them from their own
        threads, so this never waits on a tracker)."""
        values = dict(metrics)
        self.logged_metrics.update(values)
        self._deliver(values, step)
