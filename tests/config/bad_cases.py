"""The catalogue of bad run files: each the valid digits run file with one thing wrong."""

# ruff: noqa: E501  (expected messages are kept whole, one per line, to be read as printed)

from __future__ import annotations

from dataclasses import dataclass

MODEL = '[model]\nclass_path = "examples.digits.model:DigitsClassifier"\n'
DATA = '[data]\nclass_path = "examples.digits.data:DigitsData"\n'
GOOD = MODEL + DATA


@dataclass(frozen=True)
class Bad:
    """A run file, the exact lines ``ember config validate`` must print for it (after
    ``FILE: ``) or fragments of them, and whether the exported JSON Schema can reject it
    too (a class path that does not import, or init arguments that do not fit, only
    Python can see)."""

    id: str
    text: str
    messages: tuple[str, ...] = ()
    schema_rejects: bool = True
    #: for messages worded by the plugin registry (which lists what is installed): the
    #: line starts with the first fragment and holds every other one
    contains: tuple[str, ...] = ()


CASES: list[Bad] = [
    Bad(
        "unknown-section",
        "seed_everythin = 3\n" + GOOD,
        (
            "seed_everythin: unknown section 'seed_everythin'; did you mean 'seed_everything'? Sections: seed_everything, plugins, trainer, model, data, loggers, callbacks",
        ),
    ),
    Bad(
        "unknown-trainer-flag",
        "[trainer]\nmax_epoch = 3\n" + GOOD,
        ("trainer.max_epoch: unknown key 'max_epoch'; did you mean 'max_epochs'?",),
    ),
    Bad(
        "trainer-flag-type",
        '[trainer]\nmax_steps = "ten"\n' + GOOD,
        ("trainer.max_steps: expected an integer, got string 'ten'",),
    ),
    Bad(
        "trainer-bool-type",
        '[trainer]\nfast_dev_run = "yes"\n' + GOOD,
        ("trainer.fast_dev_run: expected true or false or an integer, got string 'yes'",),
    ),
    Bad(
        "trainer-flag-value",
        '[trainer]\nlogger_delivery = "proc"\n' + GOOD,
        (
            "trainer.logger_delivery: logger_delivery must be 'thread' (the loggers deliver from threads of the training process) or 'process' (from a helper process of their own, so that no logger code competes with training); got 'proc'",
        ),
        schema_rejects=False,
    ),
    Bad(
        "trainer-flag-range",
        "[trainer]\nlogger_timeout = -1\n" + GOOD,
        (
            "trainer.logger_timeout: logger_timeout must be a number of seconds >= 0 (how long the end of a run waits for loggers to deliver); got -1",
        ),
        schema_rejects=False,
    ),
    Bad(
        "trainer-flags-disagree",
        "[trainer]\nmax_epochs = 1\nmin_epochs = 5\n" + GOOD,
        (
            "trainer.min_epochs: min_epochs=5 is more than max_epochs=1: lower min_epochs or raise max_epochs",
        ),
        schema_rejects=False,
    ),
    Bad(
        "trainer-logger-flag",
        '[trainer]\nlogger = "csv"\n' + GOOD,
        (
            "trainer.logger: give loggers as [[loggers]] tables (name = ... plus options), not as a trainer flag",
        ),
    ),
    Bad(
        "trainer-not-a-table",
        "trainer = 3\n" + GOOD,
        ("trainer: expected a table of Trainer flags, got integer 3",),
    ),
    Bad(
        "unknown-accelerator",
        '[trainer]\naccelerator = "tpu"\n' + GOOD,
        contains=(
            "trainer.accelerator: no accelerator named 'tpu'",
            "Installed accelerator providers:",
        ),
    ),
    Bad(
        "unknown-precision",
        '[trainer]\nprecision = "bf17-mixed"\n' + GOOD,
        contains=(
            "trainer.precision: no precision named 'bf17-mixed'",
            "Installed precision providers:",
        ),
    ),
    Bad(
        "strategy-table-without-name",
        "[trainer]\nstrategy = { devices = 2 }\n" + GOOD,
        ("trainer.strategy: a strategy given as a table needs a 'name' key",),
    ),
    Bad(
        "missing-model",
        DATA,
        (
            "model: required section is missing: add [model] with class_path = 'package.module:YourModule' (and init_args = {...})",
        ),
    ),
    Bad(
        "model-without-class-path",
        "[model]\ninit_args = { hidden = 3 }\n" + DATA,
        (
            "model.class_path: required import path is missing, e.g. class_path = 'package.module:ClassName'",
        ),
    ),
    Bad(
        "class-path-no-module",
        '[model]\nclass_path = "nosuch.models:Net"\n' + DATA,
        (
            "model.class_path: cannot import 'nosuch.models:Net': no module named 'nosuch' (class paths import from the current directory and the installed packages)",
        ),
        schema_rejects=False,
    ),
    Bad(
        "class-path-typo",
        '[model]\nclass_path = "examples.digits.model:DigitsClasifier"\n' + DATA,
        (
            "model.class_path: 'examples.digits.model' has no attribute 'DigitsClasifier'; did you mean 'DigitsClassifier'?",
        ),
        schema_rejects=False,
    ),
    Bad(
        "class-path-not-a-path",
        '[model]\nclass_path = "DigitsClassifier"\n' + DATA,
        (
            "model.class_path: 'DigitsClassifier' is not an import path; write 'package.module:ClassName' (or 'package.module.ClassName')",
        ),
    ),
    Bad(
        "model-not-an-ember-module",
        '[model]\nclass_path = "examples.digits.data:DigitsData"\n' + DATA,
        (
            "model.class_path: expected an EmberModule subclass, got 'examples.digits.data:DigitsData' (a class derived from EmberDataModule)",
        ),
        schema_rejects=False,
    ),
    Bad(
        "init-args-unknown",
        MODEL + "init_args = { hiden = 64 }\n" + DATA,
        (
            "model.init_args.hiden: DigitsClassifier() takes no argument 'hiden'; did you mean 'hidden'?",
        ),
        schema_rejects=False,
    ),
    Bad(
        "init-args-type",
        MODEL + 'init_args = { hidden = "big" }\n' + DATA,
        ("model.init_args.hidden: expected an integer, got string 'big'",),
        schema_rejects=False,
    ),
    Bad(
        "init-args-not-a-table",
        MODEL + "init_args = 3\n" + DATA,
        ("model.init_args: expected a table of arguments, got integer 3",),
    ),
    Bad(
        "model-unknown-key",
        MODEL + "init_arg = { hidden = 3 }\n" + DATA,
        (
            "model.init_arg: unknown key 'init_arg'; did you mean 'init_args'? Valid keys: class_path, init_args",
        ),
    ),
    Bad(
        "data-class-path-and-loaders",
        MODEL + DATA + '[data.train]\nclass_path = "examples.digits.data:DigitsData"\n',
        (
            "data.train: give either a datamodule (class_path) or loaders ([data.train], ...), not both",
        ),
    ),
    Bad(
        "data-unknown-key",
        MODEL + '[data.trian]\nclass_path = "x.y:z"\n',
        (
            "data.trian: unknown key 'trian'; did you mean 'train'? [data] holds class_path and init_args (a datamodule), or loaders: train, val, test, predict",
        ),
    ),
    Bad(
        "loggers-not-a-list",
        'loggers = "csv"\n' + GOOD,
        (
            "loggers: expected a list of logger tables ([[loggers]] with name = ...), got string 'csv'",
        ),
    ),
    Bad(
        "logger-without-name",
        GOOD + '[[loggers]]\nsave_dir = "x"\n',
        contains=("loggers[0].name: required logger name is missing (installed: ", "csv"),
    ),
    Bad(
        "logger-typo-of-uninstalled",
        GOOD + '[[loggers]]\nname = "neptnue"\n',
        contains=(
            "loggers[0].name: no logger named 'neptnue'",
            "'neptune'",
            "pip install ember-neptune",
        ),
    ),
    Bad(
        "logger-known-not-installed",
        GOOD + '[[loggers]]\nname = "neptune"\n',
        contains=(
            "loggers[0].name: no logger named 'neptune' is installed",
            "pip install ember-neptune",
        ),
    ),
    Bad(
        "logger-unknown-option",
        GOOD + '[[loggers]]\nname = "csv"\nsave_dri = "x"\n',
        ("loggers[0].save_dri: unknown key 'save_dri'; did you mean 'save_dir'?",),
    ),
    Bad(
        "logger-option-type",
        GOOD + '[[loggers]]\nname = "csv"\nsave_dir = 3\n',
        ("loggers[0].save_dir: expected a string, got integer 3",),
    ),
    Bad(
        "callback-choice",
        GOOD + '[[callbacks]]\nname = "early_stopping"\nmonitor = "val_loss"\nmode = "mni"\n',
        ("callbacks[0].mode: expected one of 'min', 'max', got string 'mni'; did you mean 'min'?",),
    ),
    Bad(
        "callback-missing-required",
        GOOD + '[[callbacks]]\nname = "early_stopping"\n',
        (
            "callbacks[0].monitor: required key 'monitor' is missing (a string: logged metric to watch, e.g. 'val_loss')",
        ),
    ),
    Bad(
        "callback-unknown-name",
        GOOD + '[[callbacks]]\nname = "early_stoping"\n',
        contains=(
            "callbacks[0].name: no callback named 'early_stoping'",
            "Did you mean 'early_stopping'?",
        ),
    ),
    Bad(
        "seed-negative",
        "seed_everything = -1\n" + GOOD,
        ("seed_everything: expected an integer in [0, 2**32) or true, got integer -1",),
    ),
    Bad(
        "seed-string",
        'seed_everything = "zero"\n' + GOOD,
        ("seed_everything: expected an integer in [0, 2**32) or true, got string 'zero'",),
    ),
    Bad(
        "plugins-unknown-key",
        '[plugins]\nblok = ["wandb"]\n' + GOOD,
        ("plugins.blok: unknown key 'blok'; did you mean 'block'? Valid keys: block, only",),
    ),
    Bad(
        "plugins-only-unknown",
        '[plugins]\nonly = ["nosuchplugin"]\n' + GOOD,
        contains=(
            "plugins.only[0]: no installed plugin is called 'nosuchplugin'",
            "Installed plugins: ",
        ),
        schema_rejects=False,
    ),
    Bad(
        "not-toml",
        "[trainer\nmax_epochs = 3\n" + GOOD,
        (
            "is not valid TOML: Expected ']' at the end of a table declaration (at line 1, column 9)",
        ),
        schema_rejects=False,
    ),
]
