"""Every bad run file in the catalogue: the exact message at the dotted location, exit code
3, no traceback, nothing trained."""

from __future__ import annotations

from pathlib import Path

import pytest
from bad_cases import CASES, GOOD, Bad
from config_helpers import run_ember


def _issues(err: str, path: Path) -> list[str]:
    lines = err.splitlines()
    assert lines, "nothing was printed"
    return [line.removeprefix(f"{path}: ") for line in lines[:-1]]


def test_the_catalogue_is_large_enough() -> None:
    assert len(CASES) >= 25
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_run_file(case: Bad, tmp_path: Path, in_repo: Path, ember_main) -> None:
    path = tmp_path / "run.toml"
    path.write_text(case.text)
    code, out, err = ember_main("config", "validate", str(path))
    assert code == 3, out + err
    assert "Traceback" not in out + err
    assert err.splitlines()[-1] == (
        f"ember: 1 problem in {path}; nothing was run (see docs/config.md)"
    ), err
    issues = _issues(err, path)
    if case.messages:
        assert issues == list(case.messages), err
    else:
        assert len(issues) == 1, err
        assert issues[0].startswith(case.contains[0]), err
        for fragment in case.contains[1:]:
            assert fragment in issues[0], err


def test_every_problem_is_reported_in_one_pass(tmp_path: Path, in_repo: Path, ember_main) -> None:
    path = tmp_path / "run.toml"
    path.write_text(
        "seed_everythin = 1\n[trainer]\nmax_epoch = 3\nmax_steps = 'x'\n"
        "[model]\nclass_path = 'examples.digits.model:DigitsClassifier'\n"
        "init_args = { hiden = 3 }\n"
        "[[loggers]]\nname = 'csv'\nsave_dri = 'x'\n"
        "[[callbacks]]\nname = 'early_stopping'\n"
    )
    code, _, err = ember_main("config", "validate", str(path))
    assert code == 3
    assert [line.split(": ")[0] for line in _issues(err, path)] == [
        "seed_everythin",
        "trainer.max_epoch",
        "trainer.max_steps",
        "model.init_args.hiden",
        "loggers[0].save_dri",
        "callbacks[0].monitor",
    ]
    assert err.splitlines()[-1].startswith(f"ember: 6 problems in {path}")


def test_fit_with_a_bad_file_trains_nothing(tmp_path: Path) -> None:
    """Through the console script: exit 3, one line per problem, no traceback, no files."""
    path = tmp_path / "run.toml"
    path.write_text(f"[trainer]\nmax_epoch = 1\ndefault_root_dir = '{tmp_path / 'out'}'\n" + GOOD)
    proc = run_ember("fit", "--config", str(path))
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[0] == (
        f"{path}: trainer.max_epoch: unknown key 'max_epoch'; did you mean 'max_epochs'?"
    )
    assert not (tmp_path / "out").exists()


def test_missing_file(tmp_path: Path, ember_main) -> None:
    missing = tmp_path / "nope.toml"
    code, _, err = ember_main("fit", "--config", str(missing))
    assert code == 3
    assert err.splitlines()[0] == f"{missing}: no such file"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "trainer.max_epochs",
            "--set 'trainer.max_epochs': write --set SECTION.KEY=VALUE, e.g. --set "
            "trainer.max_epochs=3",
        ),
        (
            "loggers.3.save_dir=x",
            "loggers.3: --set loggers.3.save_dir=x: there is no entry 3 here (the file has 0; "
            "positions count from 0)",
        ),
        (
            "trainer.max_epochs=ten",
            "trainer.max_epochs: expected an integer, got string 'ten' "
            "(set by --set trainer.max_epochs)",
        ),
        (
            "trainer.max_epoch=3",
            "trainer.max_epoch: unknown key 'max_epoch'; did you mean 'max_epochs'? "
            "(set by --set trainer.max_epoch)",
        ),
        (
            "loggers=[{name = 'csv', flush_every = 2}]",
            "loggers[0].flush_every: unknown key 'flush_every'. Valid keys: save_dir "
            "(set by --set loggers)",
        ),
    ],
)
def test_bad_override(
    override: str, message: str, tmp_path: Path, in_repo: Path, ember_main
) -> None:
    path = tmp_path / "run.toml"
    path.write_text(GOOD)
    code, _, err = ember_main("config", "validate", str(path), "--set", override)
    assert code == 3
    assert "Traceback" not in err
    assert _issues(err, path) == [message]


def test_bad_environment_override(
    tmp_path: Path, in_repo: Path, ember_main, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMBER_MAX_EPOCHS", "many")
    path = tmp_path / "run.toml"
    path.write_text(GOOD)
    code, _, err = ember_main("config", "validate", str(path))
    assert code == 3
    assert _issues(err, path) == [
        "trainer.max_epochs: expected an integer, got string 'many' "
        "(set by environment variable EMBER_MAX_EPOCHS)"
    ]


def test_a_problem_between_flags_says_which_value_was_overridden(
    tmp_path: Path, in_repo: Path, ember_main, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file says max_epochs = 5; the message quotes the value that was checked, so it
    says where that value came from, though the problem is laid at min_epochs."""
    monkeypatch.setenv("EMBER_MAX_EPOCHS", "1")
    path = tmp_path / "run.toml"
    path.write_text("[trainer]\nmax_epochs = 5\nmin_epochs = 3\n" + GOOD)
    code, _, err = ember_main("config", "validate", str(path))
    assert code == 3
    assert _issues(err, path) == [
        "trainer.min_epochs: min_epochs=3 is more than max_epochs=1: lower min_epochs or "
        "raise max_epochs (max_epochs set by environment variable EMBER_MAX_EPOCHS)"
    ]
    code, _, err = ember_main(
        "config",
        "validate",
        str(path),
        "--set",
        "trainer.max_epochs=2",
        "--set",
        "trainer.min_epochs=4",
    )
    assert code == 3
    assert _issues(err, path) == [
        "trainer.min_epochs: min_epochs=4 is more than max_epochs=2: lower min_epochs or "
        "raise max_epochs (set by --set trainer.min_epochs; max_epochs set by --set "
        "trainer.max_epochs)"
    ]
    # a value from the file gets no note
    monkeypatch.delenv("EMBER_MAX_EPOCHS")
    path.write_text("[trainer]\nmax_epochs = 1\nmin_epochs = 3\n" + GOOD)
    code, _, err = ember_main("config", "validate", str(path))
    assert _issues(err, path) == [
        "trainer.min_epochs: min_epochs=3 is more than max_epochs=1: lower min_epochs or "
        "raise max_epochs"
    ]


def test_the_note_on_an_override_never_shows_its_value(
    tmp_path: Path, in_repo: Path, ember_main
) -> None:
    """A mistyped option name given a secret on the command line: the note names the
    override, not the value."""
    path = tmp_path / "run.toml"
    path.write_text(GOOD + '[[loggers]]\nname = "csv"\n')
    code, _, err = ember_main(
        "config", "validate", str(path), "--set", "loggers[0].api_kye=hunter2-token"
    )
    assert code == 3
    assert "hunter2" not in err
    assert _issues(err, path) == [
        "loggers[0].api_kye: unknown key 'api_kye'. Valid keys: save_dir "
        "(set by --set loggers[0].api_kye)"
    ]


def test_trainer_refusal_is_a_configuration_error(tmp_path: Path, in_repo: Path) -> None:
    """A value of the right type that the Trainer refuses (min_epochs > max_epochs) is
    reported at its flag like any other configuration problem, before training."""
    path = tmp_path / "run.toml"
    path.write_text("[trainer]\nmax_epochs = 1\nmin_epochs = 5\n" + GOOD)
    proc = run_ember("fit", "--config", str(path))
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[0] == (
        f"{path}: trainer.min_epochs: min_epochs=5 is more than max_epochs=1: "
        "lower min_epochs or raise max_epochs"
    )


def test_every_bad_flag_value_is_reported(tmp_path: Path, in_repo: Path, ember_main) -> None:
    """Values the Trainer would refuse are all found in one pass, each at its flag."""
    path = tmp_path / "run.toml"
    path.write_text(
        "[trainer]\nmax_epochs = 2\nmin_epochs = 5\ngradient_clip_algorithm = 'foo'\n"
        "logger_timeout = -1\nlogger_delivery = 'proc'\nlog_every_n_steps = 10\n" + GOOD
    )
    code, _, err = ember_main("config", "validate", str(path))
    assert code == 3, err
    assert sorted(line.split(": ")[0] for line in _issues(err, path)) == [
        "trainer.gradient_clip_algorithm",
        "trainer.logger_delivery",
        "trainer.logger_timeout",
        "trainer.min_epochs",
    ]
