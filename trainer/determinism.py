"""``Trainer(deterministic=..., benchmark=...)``: torch's global determinism switches, set
for the duration of each entry point and put back as they were when it ends.

Lightning sets these switches when its Trainer is built and leaves them set; ember scopes
them to ``fit``/``validate``/``test``/``predict``, so that two trainers in one process do
not overwrite each other's choice and code outside the trainer is left as it was. Only
``CUBLAS_WORKSPACE_CONFIG`` is set when the Trainer is built and stays set: cuBLAS reads
it when CUDA first uses it, which may be before fit starts.
"""

from __future__ import annotations

import os
import re
import warnings
from typing import Any

import torch
from ember.trainer.errors import warn_user
from ember.trainer.plugins import Accelerator

#: what torch says when an operation has no deterministic implementation
_ALERT = re.compile(r"(\S+) does not have a deterministic implementation")
#: the cuBLAS workspace setting under which cuBLAS is deterministic (CUDA >= 10.2)
CUBLAS_WORKSPACE_CONFIG = ":4096:8"


class Determinism:
    """The determinism of one trainer: :meth:`apply` when an entry point starts,
    :meth:`restore` when it ends.

    With ``deterministic="warn"``, torch warns at each operation that has no deterministic
    implementation and runs it anyway; the operations seen are listed once more when the
    entry point ends. With ``deterministic=True`` such an operation raises torch's
    ``RuntimeError``, to which :meth:`explain` adds what to do.
    """

    def __init__(self, deterministic: bool | str | None, benchmark: bool | None) -> None:
        self.deterministic = deterministic
        self.benchmark = benchmark
        self._saved: tuple[bool, bool, bool, bool] | None = None
        self._previous_show: Any = None
        self._show: Any = None
        #: operations torch reported as non-deterministic (``"warn"`` mode), in order seen
        self.nondeterministic_ops: dict[str, None] = {}
        if deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE_CONFIG)
            if benchmark:
                warn_user(
                    "Trainer(deterministic=True, benchmark=True): cuDNN's benchmark mode picks "
                    "convolution algorithms by timing them, so convolutions on cuDNN are not "
                    "deterministic; leave benchmark unset (it is then off)"
                )

    @property
    def active(self) -> bool:
        """Whether any switch is set (``None`` for both leaves torch as it is)."""
        return self.deterministic is not None or self.benchmark is not None

    def apply(self, accelerator: Accelerator) -> None:
        """Save torch's switches, then set them through ``accelerator`` (which adds its
        device's own, e.g. cuDNN's) and cuDNN's deterministic flag."""
        if not self.active:
            return
        cudnn = torch.backends.cudnn
        self._saved = (
            torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled(),
            bool(cudnn.deterministic),
            bool(cudnn.benchmark),
        )
        accelerator.configure_determinism(self.deterministic, self.benchmark)
        # cuDNN's switches, whatever the accelerator (as Lightning): they only act on CUDA
        if self.deterministic is not None:
            cudnn.deterministic = bool(self.deterministic)
        if self.benchmark is not None:
            cudnn.benchmark = self.benchmark
        elif self.deterministic:
            cudnn.benchmark = False
        if self.deterministic == "warn":
            self._record_alerts()

    def restore(self) -> None:
        """Put torch's switches back as :meth:`apply` found them; in ``"warn"`` mode, list
        the operations that ran without a deterministic implementation."""
        if self._previous_show is not None:
            if warnings.showwarning is self._show:  # unless something replaced it since
                warnings.showwarning = self._previous_show
            self._previous_show = self._show = None
        if self._saved is None:
            return
        enabled, warn_only, cudnn_deterministic, cudnn_benchmark = self._saved
        self._saved = None
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
        torch.backends.cudnn.deterministic = cudnn_deterministic
        torch.backends.cudnn.benchmark = cudnn_benchmark
        if self.nondeterministic_ops:
            ops = ", ".join(self.nondeterministic_ops)
            self.nondeterministic_ops = {}
            warn_user(
                f"Trainer(deterministic='warn'): these operations have no deterministic "
                f"implementation and ran anyway, so results may differ between runs: {ops}. "
                "Replace them to make the run reproducible"
            )

    def _record_alerts(self) -> None:
        """Note each operation torch warns about, then show the warning as usual."""
        previous = self._previous_show = warnings.showwarning
        seen = self.nondeterministic_ops

        def show(message: Any, category: Any, *args: Any, **kwargs: Any) -> None:
            found = _ALERT.match(str(message))
            if found:
                seen.setdefault(found[1], None)
            previous(message, category, *args, **kwargs)

        warnings.showwarning = self._show = show

    def explain(self, error: BaseException) -> None:
        """Add a note to torch's error for an operation that has no deterministic
        implementation, under ``deterministic=True``."""
        found = _ALERT.search(str(error)) if isinstance(error, RuntimeError) else None
        if found is None or self.deterministic is not True:
            return
        add_note = getattr(error, "add_note", None)
        if add_note is not None:
            add_note(
                f"Trainer(deterministic=True) makes torch refuse {found[1]}, which has no "
                "deterministic implementation. Replace the operation, or pass "
                "deterministic='warn' to run it anyway (ember then lists such operations "
                "when the run ends)"
            )
