"""Secrets (options marked secret, KEY/TOKEN/SECRET/PASSWORD environment values) reach
no file of the run directory, no tracker, no log line and no printed report."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from ember.hub.tracking import (
    DeliveryPolicy,
    JournalReader,
    Redactor,
    Run,
    redact_config,
)
from ember_fixture_trackers.loggers import FaultyLogger
from tracking_helpers import run_ember

ENV_SECRET = "sk-env-0123456789abcdef"
OPTION_SECRET = "tok-option-fedcba9876543210"
KEY_NAMED = "hunter2-but-longer"


def _grep(folder: Path, *needles: str) -> list[str]:
    hits = []
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            hits += [f"{path}: {n}" for n in needles if n.encode() in data]
    return hits


def test_secrets_never_reach_files_trackers_or_logs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, plugin_manager, caplog
) -> None:
    monkeypatch.setenv("MY_SERVICE_API_KEY", ENV_SECRET)
    caplog.set_level(logging.DEBUG, logger="ember.tracking")
    recorder_file = tmp_path / "tracker" / "rec.jsonl"
    recorder_file.parent.mkdir()
    leaky = FaultyLogger("raise", secret_in_errors=f"auth {ENV_SECRET} / {OPTION_SECRET}")
    loggers = [
        "csv",
        {"name": "recorder", "path": str(recorder_file), "token": OPTION_SECRET},
        leaky,
    ]
    config = {
        "trainer": {"max_epochs": 1},
        "loggers": [{"name": "recorder", "token": OPTION_SECRET}],
        "env_copy": f"key={ENV_SECRET}",
        "db": {"password": KEY_NAMED},
    }
    run = Run.start(
        tmp_path,
        loggers=loggers,
        config=config,
        name=f"run-{ENV_SECRET}",
        policy=DeliveryPolicy(backoff=0.01, max_attempts=2),
        plugin_manager=plugin_manager,
    )
    run.log_hyperparams({"api_key": KEY_NAMED, "note": f"uses {ENV_SECRET}", "lr": 0.1})
    run.log_metrics({"loss": 0.5, f"m_{OPTION_SECRET}": 1.0}, step=1)
    run.log_text("cmd", f"curl -H 'Authorization: {OPTION_SECRET}'", step=1)
    report = run.finish("success")
    text = str(report)

    assert _grep(tmp_path, ENV_SECRET, OPTION_SECRET, KEY_NAMED) == []
    for needle in (ENV_SECRET, OPTION_SECRET, KEY_NAMED):
        assert needle not in text
        assert needle not in caplog.text
        assert needle not in repr(report.as_dict())
    assert "***" in (report.loggers[2].error or "")
    with JournalReader(run.dir) as reader:
        assert reader.hyperparams() == {"api_key": "***", "note": "uses ***", "lr": 0.1}
        assert reader.last_event("config")["data"]["db"] == {"password": "***"}
    show = run_ember("runs", "show", str(run.dir), "--config", "--json")
    assert show.returncode == 0 and ENV_SECRET not in show.stdout
    assert OPTION_SECRET not in show.stdout


def test_redactor_rules() -> None:
    r = Redactor(
        ["s3cr3t-value"],
        env={"HF_TOKEN": "hf_abcdefgh", "PATH": "/usr/bin:/bin", "TOKENIZERS_PARALLELISM": "false"},
    )
    assert r.text("x hf_abcdefgh y s3cr3t-value") == "x *** y ***"
    assert r.text("/usr/bin false") == "/usr/bin false"  # not secret names / too short
    data = r.data({"apiKey": "abc", "tokenizer": "bert", "key_dim": 64, "nested": ["hf_abcdefgh"]})
    assert data == {"apiKey": "***", "tokenizer": "bert", "key_dim": 64, "nested": ["***"]}
    assert redact_config({"password": "pw"}) == {"password": "***"}
