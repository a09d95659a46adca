"""ember's built-in providers, registered through the root distribution's own ``ember``
entry point: the same path as any third-party plugin. Factories are import strings, so
loading this module imports no torch."""

from __future__ import annotations

from collections.abc import Iterator

from ember.hub import (
    AcceleratorSpec,
    CallbackSpec,
    LoggerSpec,
    Option,
    PrecisionSpec,
    StrategySpec,
    hookimpl,
)


@hookimpl
def ember_callbacks() -> Iterator[CallbackSpec]:
    """The built-in callbacks, selectable by name: ``Trainer(callbacks=["early_stopping"])``."""
    yield CallbackSpec(
        name="early_stopping",
        factory="ember.trainer.callbacks:EarlyStopping",
        description="Stop training when a monitored metric stops improving.",
        options={
            "monitor": Option(
                "str", required=True, description="logged metric to watch, e.g. 'val_loss'"
            ),
            "min_delta": Option(
                "float", 0.0, "smallest change of the metric that counts as an improvement"
            ),
            "patience": Option("int", 3, "checks without improvement allowed before stopping"),
            "verbose": Option("bool", False, "print a line on each improvement and on stopping"),
            "mode": Option(
                "str",
                "min",
                "'min' when lower is better, 'max' when higher is",
                choices=("min", "max"),
            ),
            "strict": Option("bool", True, "raise when the monitored metric is missing"),
            "check_finite": Option("bool", True, "stop when the metric becomes NaN or infinite"),
            "stopping_threshold": Option(
                "float", None, "stop at once when the metric reaches this value"
            ),
            "divergence_threshold": Option(
                "float", None, "stop at once when the metric gets worse than this value"
            ),
            "check_on_train_epoch_end": Option(
                "bool",
                None,
                "check at the end of each training epoch instead of after each validation "
                "(default: when validation runs exactly once per epoch)",
            ),
        },
    )
    yield CallbackSpec(
        name="learning_rate_monitor",
        aliases=("lr_monitor",),
        factory="ember.trainer.callbacks:LearningRateMonitor",
        description="Log the learning rate of every optimizer parameter group.",
        options={
            "logging_interval": Option(
                "str",
                None,
                "'step', 'epoch', or unset to follow each scheduler's own interval",
                choices=("step", "epoch"),
            ),
            "log_momentum": Option("bool", False, "also log momentum (betas[0] for Adam)"),
            "log_weight_decay": Option("bool", False, "also log weight decay"),
        },
    )
    yield CallbackSpec(
        name="progress_bar",
        aliases=("tqdm",),
        factory="ember.trainer.callbacks:ProgressBar",
        description="A tqdm progress bar; prints plain lines when stderr is not a terminal.",
        options={
            "refresh_rate": Option("int", 1, "redraw every this many batches; 0 disables"),
            "leave": Option("bool", False, "keep every finished epoch's bar on screen"),
            "process_position": Option(
                "int", 0, "line offset of the bars, for several trainers in one terminal"
            ),
            "non_tty_interval": Option(
                "float", 30.0, "least seconds between progress lines when not in a terminal"
            ),
        },
    )
    yield CallbackSpec(
        name="model_summary",
        factory="ember.trainer.callbacks:ModelSummary",
        description="Print the model's layers and parameter counts when fit starts.",
        options={
            "max_depth": Option("int", 1, "levels of submodules to list: -1 for all, 0 for none"),
        },
    )
    yield CallbackSpec(
        name="gradient_norm_monitor",
        factory="ember.trainer.callbacks:GradientNormMonitor",
        description="Log per-parameter and total gradient norms every N optimizer steps.",
        options={
            "norm_type": Option("any", 2.0, "p of the p-norm: a positive number or 'inf'"),
            "every_n_steps": Option(
                "int", None, "log every N optimizer steps (default: log_every_n_steps)"
            ),
            "per_layer": Option(
                "bool", True, "also log one norm per parameter tensor, not only the total"
            ),
        },
    )
    yield CallbackSpec(
        name="timer",
        factory="ember.trainer.callbacks:Timer",
        description="Time each stage and stop training when a time budget is spent.",
        options={
            "duration": Option(
                "any",
                None,
                "training time budget: 'DD:HH:MM:SS' or a table such as {hours = 1}",
            ),
            "interval": Option(
                "str",
                "step",
                "check the budget every 'step' or every 'epoch'",
                choices=("step", "epoch"),
            ),
            "verbose": Option("bool", True, "print a line when the budget is spent"),
        },
    )
    yield CallbackSpec(
        name="gradient_accumulation_scheduler",
        factory="ember.trainer.callbacks:GradientAccumulationScheduler",
        description="Change accumulate_grad_batches by epoch.",
        options={
            "scheduling": Option(
                "dict",
                required=True,
                description='{first epoch: batches to accumulate}, e.g. {"0" = 8, "4" = 1}',
            ),
        },
    )
    yield from _checkpoint_callbacks()


@hookimpl
def ember_loggers() -> Iterator[LoggerSpec]:
    """The built-in logger: ``Trainer(logger="csv")``, and the default."""
    yield LoggerSpec(
        name="csv",
        factory="ember.hub.tracking.csv_logger:CSVLogger",
        description="Metrics (one row per step), hyperparameters, texts as local CSV/JSON files.",
        options={
            "save_dir": Option(
                "path", None, "write to SAVE_DIR/<run id>/ instead of the run directory"
            ),
        },
    )


@hookimpl
def ember_accelerators() -> Iterator[AcceleratorSpec]:
    """The built-in accelerators: ``Trainer(accelerator="cpu")``."""
    yield AcceleratorSpec(
        name="cpu",
        factory="ember.trainer.accelerators:CPUAccelerator",
        description="The CPU; always available.",
    )
    yield AcceleratorSpec(
        name="cuda",
        aliases=("gpu",),
        factory="ember.trainer.accelerators:CUDAAccelerator",
        description="NVIDIA GPUs through torch.cuda.",
        auto_priority=10,
    )
    yield AcceleratorSpec(
        name="mps",
        factory="ember.trainer.accelerators:MPSAccelerator",
        description="Apple-silicon GPUs through torch.mps.",
        auto_priority=5,
    )


@hookimpl
def ember_precisions() -> Iterator[PrecisionSpec]:
    """The built-in precision modes: ``Trainer(precision="32-true")``."""
    yield PrecisionSpec(
        name="32-true",
        aliases=("32",),
        factory="ember.trainer.precision:Float32Precision",
        description="float32 everywhere (the default).",
    )
    yield PrecisionSpec(
        name="64-true",
        aliases=("64",),
        factory="ember.trainer.precision:Float64Precision",
        description="float64 parameters, inputs and new tensors.",
    )
    yield PrecisionSpec(
        name="16-mixed",
        aliases=("16",),
        factory="ember.trainer.precision:Float16MixedPrecision",
        description="float16 autocast with a dynamic loss scale saved in checkpoints.",
        options={
            "init_scale": Option("float", 65536.0, "the first loss scale"),
            "growth_interval": Option(
                "int", 2000, "steps without overflow before the loss scale doubles"
            ),
        },
    )
    yield PrecisionSpec(
        name="bf16-mixed",
        aliases=("bf16",),
        factory="ember.trainer.precision:BF16MixedPrecision",
        description="bfloat16 autocast, float32 weights (CPU and GPUs with bfloat16).",
    )
    yield PrecisionSpec(
        name="16-true",
        factory="ember.trainer.precision:Float16TruePrecision",
        description="float16 weights, inputs and computation, no loss scaling.",
    )
    yield PrecisionSpec(
        name="bf16-true",
        factory="ember.trainer.precision:BF16TruePrecision",
        description="bfloat16 weights, inputs and computation.",
    )


@hookimpl
def ember_strategies() -> Iterator[StrategySpec]:
    """The built-in strategies: ``Trainer(strategy="single_device")``."""
    yield StrategySpec(
        name="single_device",
        factory="ember.trainer.strategies:SingleDeviceStrategy",
        description="Train on one device in this process.",
    )
    common = {
        "process_group_backend": Option(
            "str", None, "torch.distributed backend (default: nccl on CUDA, gloo otherwise)"
        ),
        "timeout_s": Option("float", 1800.0, "seconds a collective waits for the others"),
        "requeue": Option(
            "bool", True, "under SLURM, requeue the job after saving on a preemption signal"
        ),
    }
    yield StrategySpec(
        name="ddp",
        factory="ember.trainer.distributed.ddp:DDPStrategy",
        description="One process per device, gradients averaged (DistributedDataParallel).",
        options={
            **common,
            "find_unused_parameters": Option(
                "bool", False, "let DDP handle parameters that a step does not use"
            ),
            "static_graph": Option("bool", False, "the graph is the same at every step"),
            "gradient_as_bucket_view": Option(
                "bool", False, "gradients as views of DDP's buckets (saves memory)"
            ),
        },
    )
    yield StrategySpec(
        name="fsdp",
        factory="ember.trainer.distributed.fsdp:FSDPStrategy",
        description="Parameters, gradients and optimizer state sharded (FSDP2 fully_shard).",
        options={
            **common,
            "state_dict_type": Option(
                "str",
                "full",
                "checkpoints as one gathered file ('full') or a folder of shards ('sharded')",
                choices=("full", "sharded"),
            ),
            "reshard_after_forward": Option(
                "bool", True, "free the gathered parameters after forward (less memory)"
            ),
        },
    )


def _checkpoint_callbacks() -> Iterator[CallbackSpec]:
    """The checkpoint callbacks, yielded from ``ember_callbacks``."""
    yield CallbackSpec(
        name="model_checkpoint",
        aliases=("checkpoint",),
        factory="ember.trainer.checkpoint.model_checkpoint:ModelCheckpoint",
        description="Save the best k checkpoints by a metric, and last.ckpt to resume from.",
        options={
            "dirpath": Option(
                "path", None, "folder of the checkpoints (default: <default_root_dir>/checkpoints)"
            ),
            "filename": Option(
                "str", None, "file name template, e.g. '{epoch}-{val_loss:.3f}' (no extension)"
            ),
            "monitor": Option("str", None, "logged metric that ranks checkpoints, e.g. 'val_loss'"),
            "verbose": Option("bool", False, "log a line per save"),
            "save_last": Option("bool", None, "also keep last.ckpt, the file to resume from"),
            "save_top_k": Option("int", 1, "how many ranked checkpoints to keep (-1 all, 0 none)"),
            "save_weights_only": Option(
                "bool", False, "save only weights and hyperparameters (cannot resume training)"
            ),
            "mode": Option(
                "str",
                "min",
                "'min' when lower is better, 'max' when higher is",
                choices=("min", "max"),
            ),
            "auto_insert_metric_name": Option(
                "bool", True, "write 'name=' before each value in file names"
            ),
            "every_n_train_steps": Option("int", None, "save every N optimizer steps"),
            "train_time_interval": Option(
                "any",
                None,
                "save after this much training time: seconds, 'HH:MM:SS' or {minutes = 30}",
            ),
            "every_n_epochs": Option("int", None, "save every N epochs (default 1)"),
            "save_on_train_epoch_end": Option(
                "bool",
                None,
                "save at the end of the training epoch instead of after validation "
                "(default: when validation runs exactly once per epoch)",
            ),
            "enable_version_counter": Option(
                "bool", True, "add -v1, -v2 to a name that exists instead of overwriting"
            ),
        },
    )
    yield CallbackSpec(
        name="on_exception_checkpoint",
        factory="ember.trainer.checkpoint.on_exception:OnExceptionCheckpoint",
        description="Save a checkpoint when the run raises.",
        options={
            "dirpath": Option(
                "path", None, "folder of the file (default: <default_root_dir>/checkpoints)"
            ),
            "filename": Option("str", "on_exception", "file name without extension"),
        },
    )
