"""The data schedule of a trainer: which loaders each stage uses, how many batches of
each run (``limit_*_batches``), when validation runs inside an epoch, and when loaders
are reloaded (``reload_dataloaders_every_n_epochs``)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from ember.trainer.checkpoint import ResumableLoader
from ember.trainer.data import DataSource, limited_length, loader_length, without_shuffling
from ember.trainer.errors import MisconfigurationError, warn_user
from ember.trainer.flags import TrainerFlags
from ember.trainer.loops.progress import LoopProgress
from ember.trainer.plugins import Strategy


class DataSchedule:
    """Loaders, their lengths and the validation schedule, for every entry point."""

    def __init__(self, flags: TrainerFlags, strategy: Strategy, progress: LoopProgress) -> None:
        self.flags = flags
        self.strategy = strategy
        self.progress = progress
        self.train_source: DataSource | None = None
        self.val_source: DataSource | None = None
        #: the training loader as given, and as the fit loop drives it (position inside)
        self.train_dataloader: Any = None
        self.train_loader: ResumableLoader | None = None
        self.train_length: int | float = 0
        self.num_training_batches: int | float = 0
        #: validation runs after every this many training batches (``inf``: epoch end)
        self.val_check_batch: int | float = math.inf
        self.has_validation = False
        self.val_loaders: list[Any] = []
        self.val_lengths: list[int | float] = []
        self.num_val_batches: list[int | float] = []
        self.test_dataloaders: Any = None
        self.num_test_batches: list[int | float] = []
        self.predict_dataloaders: Any = None
        self.num_predict_batches: list[int | float] = []
        self._loaded_epoch = {"train": 0, "val": 0}
        self._module_name = "the module"
        self._has_validation_step = False

    # ------------------------------------------------------------------ fit
    def configure_fit(
        self, module: Any, datamodule: Any, train: Any, val: Any, has_validation_step: bool
    ) -> None:
        """Decide where fit's loaders come from; no data is loaded yet."""
        self.train_source = DataSource("train_dataloader", train, datamodule, module)
        if not self.train_source.defined:
            raise MisconfigurationError(
                "fit() needs training data: pass trainer.fit(model, train_dataloader), a "
                "datamodule with train_dataloader(), or define train_dataloader() on "
                f"{type(module).__name__}"
            )
        self.val_source = DataSource("val_dataloader", val, datamodule, module)
        self.has_validation = has_validation_step and (
            self.val_source.defined or bool(self.flags.overfit_batches)
        )
        if self.val_source.defined and not has_validation_step:
            warnings.warn(
                f"validation data was given but {type(module).__name__} has no "
                "validation_step: validation is skipped",
                UserWarning,
                stacklevel=5,
            )
        elif has_validation_step and not self.has_validation:
            warn_user(
                f"{type(module).__name__} defines validation_step but fit has no validation "
                "data, so validation is skipped: pass trainer.fit(model, train_loader, "
                "val_loader), or define val_dataloader() on the module or datamodule"
            )
        self._module_name = type(module).__name__
        self._has_validation_step = has_validation_step

    def load_train(self) -> None:
        """(Re)load the training loader and derive the batch counts from it."""
        if self.train_source is None:
            raise RuntimeError("configure_fit() first")
        flags = self.flags
        loaders = self.train_source.loaders()
        if len(loaders) != 1:
            raise MisconfigurationError(
                "fit() needs exactly one training loader; got "
                + ("none (train_dataloader returned None)" if not loaders else f"{len(loaders)}")
                + ". Combine several datasets into one (torch.utils.data.ConcatDataset)."
            )
        loader = loaders[0]
        if flags.overfit_batches:
            loader = without_shuffling(loader)
        loader = self.strategy.process_dataloader(loader)
        self.train_dataloader = loader
        self.train_loader = ResumableLoader(loader)
        self.train_length = loader_length(loader)
        if self.train_length == 0:
            raise MisconfigurationError(
                f"the training loader has no batches (len {self.train_length}), so fit would "
                "train nothing: the dataset is empty, or smaller than batch_size with "
                "drop_last=True"
            )
        n = limited_length(self.train_length, flags.limit_train_batches, "limit_train_batches")
        self.num_training_batches = n
        self._loaded_epoch["train"] = self.progress.current_epoch
        interval = flags.val_check_interval
        if isinstance(interval, timedelta):
            self.val_check_batch = math.inf  # the fit loop validates by elapsed time
        elif isinstance(interval, int):
            if flags.check_val_every_n_epoch is not None and not math.isinf(n) and interval > n:
                raise MisconfigurationError(
                    f"val_check_interval={interval} is more than the {n} training batches of "
                    f"an epoch, so validation would never run: set val_check_interval <= {n}, "
                    "or check_val_every_n_epoch=None to count batches across epochs"
                )
            self.val_check_batch = interval
        elif math.isinf(n):
            if interval != 1.0:
                raise MisconfigurationError(
                    f"val_check_interval={interval} is a fraction of the epoch, but the "
                    "training loader has no length: pass an int number of batches instead"
                )
            self.val_check_batch = math.inf
        elif math.isinf(self.train_length) and interval == 1.0:
            self.val_check_batch = math.inf
        else:
            self.val_check_batch = max(1, int(n * interval))

    def load_val(self) -> None:
        """(Re)load the validation loaders (the training loader under ``overfit_batches``)."""
        if not self.has_validation:
            self.val_loaders, self.val_lengths, self.num_val_batches = [], [], []
            return
        if self.flags.overfit_batches:
            loaders = [self.train_dataloader]
        else:
            assert self.val_source is not None
            loaders = [self.strategy.process_dataloader(d) for d in self.val_source.loaders()]
        self.val_loaders = loaders
        self.val_lengths = [loader_length(d) for d in loaders]
        empty = [i for i, n in enumerate(self.val_lengths) if n == 0]
        if empty:
            which = "the validation loader" if len(loaders) == 1 else f"validation loader {empty}"
            warn_user(
                f"{which} has no batches (len 0), so it is skipped: the dataset is empty, or "
                "smaller than batch_size with drop_last=True"
            )
        self.num_val_batches = [
            limited_length(n, self.flags.limit_val_batches, "limit_val_batches")
            for n in self.val_lengths
        ]
        self._loaded_epoch["val"] = self.progress.current_epoch

    def reload_due(self, kind: str, epoch: int) -> bool:
        """Whether ``reload_dataloaders_every_n_epochs`` asks for fresh loaders now."""
        every = self.flags.reload_dataloaders_every_n_epochs
        source = self.train_source if kind == "train" else self.val_source
        return bool(
            every
            and source is not None
            and source.reloadable
            and epoch - self._loaded_epoch[kind] >= every
        )

    def reload_for_resume(self) -> None:
        """Under ``reload_dataloaders_every_n_epochs``, reload as the uninterrupted run
        last did before the restored epoch, so the fit loop does not reload (and lose the
        restored position) on entering it."""
        every = self.flags.reload_dataloaders_every_n_epochs
        if not every:
            return
        epoch = self.progress.current_epoch
        last = epoch - epoch % every
        if self.reload_due("train", last):
            self.load_train()
        if self.reload_due("val", last):
            self.load_val()
        self._loaded_epoch = {"train": last, "val": last}

    def resume_train_loader(self, state: Mapping[str, Any] | None) -> None:
        """Put the training loader where a restored fit stopped inside its epoch."""
        self.reload_for_resume()
        loader = self.train_loader
        if loader is None:
            return
        if state is None:
            # a checkpoint without the loader's state: only the batch count is known, so
            # the consumed batches are read again and dropped (with a warning)
            state = {
                "epoch": self.progress.current_epoch,
                "batches_consumed": self.progress.batch_idx,
            }
        loader.load_state_dict(dict(state))

    def validation_off_reason(self) -> str | None:
        """Why fit does not validate, in words (``None`` when it does)."""
        if self.validation_enabled:
            return None
        if not self._has_validation_step:
            return f"{self._module_name} has no validation_step"
        if not self.has_validation:
            return "no validation data was given"
        if self.flags.limit_val_batches == 0:
            return "limit_val_batches=0"
        return "the validation loaders have no batches"

    @property
    def validation_enabled(self) -> bool:
        """Whether fit validates at all (a validation step, data, and batches to run)."""
        return self.has_validation and any(self.num_val_batches)

    def sanity_limits(self) -> list[int | float]:
        """Batches per validation loader of the sanity check (``num_sanity_val_steps``)."""
        steps = self.flags.num_sanity_val_steps
        if not self.validation_enabled or steps == 0:
            return []
        return [n if steps == -1 else min(steps, n) for n in self.num_val_batches]

    def estimated_stepping_batches(self) -> int | float:
        """Optimizer steps the whole fit will take (for OneCycleLR and warm-up schedules)."""
        flags = self.flags
        if self.train_dataloader is None and self.train_source is not None:
            self.load_train()
        per_epoch = self.num_training_batches
        if not math.isinf(per_epoch):
            per_epoch = math.ceil(per_epoch / flags.accumulate_grad_batches)
        total = math.inf if flags.max_epochs == -1 else per_epoch * flags.max_epochs
        if flags.max_steps != -1:
            total = min(total, flags.max_steps)
        return total

    # ------------------------------------------------------------------ other stages
    def evaluation_loaders(
        self, stage: str, method: str, given: Any, datamodule: Any, module: Any
    ) -> tuple[list[Any], list[int | float], list[int | float]]:
        """The loaders of ``validate``/``test``/``predict`` with their lengths and limits.

        :param stage: ``"validate"``, ``"test"`` or ``"predict"``.
        """
        loaders = [
            self.strategy.process_dataloader(d)
            for d in DataSource(method, given, datamodule, module).loaders()
        ]
        if not loaders:
            raise MisconfigurationError(
                f"{stage}() needs data: pass dataloaders=..., a datamodule with "
                f"{method}(), or define {method}() on {type(module).__name__}"
            )
        flag = {"validate": "limit_val_batches", "test": "limit_test_batches"}.get(
            stage, "limit_predict_batches"
        )
        lengths = [loader_length(d) for d in loaders]
        limits = [limited_length(n, getattr(self.flags, flag), flag) for n in lengths]
        if not any(limits):
            why = f"{flag}=0" if getattr(self.flags, flag) == 0 else "its loaders have no batches"
            warn_user(f"{stage}() runs no batch ({why}), so it returns no results")
        single = loaders[0] if len(loaders) == 1 else loaders
        if stage == "validate":
            self.val_loaders, self.val_lengths, self.num_val_batches = loaders, lengths, limits
        elif stage == "test":
            self.test_dataloaders, self.num_test_batches = single, limits
        else:
            self.predict_dataloaders, self.num_predict_batches = single, limits
        return loaders, lengths, limits
