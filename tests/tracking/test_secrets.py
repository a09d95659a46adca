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
from tracking_helpers import read_jsonl, run_ember

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


API_KEY = "sk-listed-0123456789"
INT_TOKEN = 8675309123
CRED_VALUE = "cred-value-abcdef"
PASSPHRASE = "correct horse battery"
AUTH_HEADER = "Bearer auth-header-0a1b2c3d"
DB_PASSWORD = "db-pass-9z8y7x"


def test_secrets_of_any_type_at_any_depth_and_where_they_reappear(
    tmp_path: Path, plugin_manager
) -> None:
    recorder_file = tmp_path / "rec.jsonl"
    run = Run.start(
        tmp_path,
        loggers=["csv", {"name": "recorder", "path": str(recorder_file)}],
        plugin_manager=plugin_manager,
    )
    run.log_hyperparams(
        {
            "api_keys": (API_KEY,),
            "service": {"token": INT_TOKEN, "credentials": {"value": CRED_VALUE}},
            "passphrase": PASSPHRASE,
            "headers": [{"Authorization": AUTH_HEADER}],
            "database_url": f"postgresql://trainer:{DB_PASSWORD}@db.internal:5432/runs",
            "key_dim": 64,
            "max_tokens": 512,
        }
    )
    # the same values, reused where no key says they are secret
    run.log_text("setup", f"called with {API_KEY}, {INT_TOKEN}, {CRED_VALUE} and {PASSPHRASE}")
    run.log_text("db", f"connected with password {DB_PASSWORD}")
    run.log_metrics({"loss": 0.5}, step=1)
    report = run.finish()
    assert report.complete, str(report)

    needles = (API_KEY, str(INT_TOKEN), CRED_VALUE, PASSPHRASE, AUTH_HEADER, DB_PASSWORD)
    # the journal, the CSV logger's hparams.json and texts, the recorder tracker
    assert _grep(tmp_path, *needles) == []
    with JournalReader(run.dir) as reader:
        hp = reader.hyperparams()
    assert hp["api_keys"] == hp["passphrase"] == "***"
    assert hp["service"] == {"token": "***", "credentials": "***"}
    assert hp["headers"] == [{"Authorization": "***"}]
    assert hp["database_url"] == "postgresql://trainer:***@db.internal:5432/runs"
    assert (hp["key_dim"], hp["max_tokens"]) == (64, 512)  # not secrets
    texts = [e["text"] for e in read_jsonl(recorder_file) if e["type"] == "text"]
    assert texts == ["called with ***, ***, *** and ***", "connected with password ***"]
    show = run_ember("runs", "show", str(run.dir), "--json")
    assert show.returncode == 0 and not [n for n in needles if n in show.stdout]


def test_checkpoints_store_hyperparameters_redacted(tmp_path: Path) -> None:
    import torch
    from ember.trainer import EmberModule, Trainer
    from torch.utils.data import DataLoader, TensorDataset

    class Model(EmberModule):
        def __init__(self, api_key: str, hidden: int = 3) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.layer = torch.nn.Linear(4, hidden)

        def training_step(self, batch, batch_idx):
            return self.layer(batch[0]).pow(2).mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    trainer = Trainer(
        default_root_dir=tmp_path,
        max_epochs=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=[],
    )
    trainer.fit(Model(api_key=API_KEY), DataLoader(TensorDataset(torch.randn(8, 4)), batch_size=4))
    path = tmp_path / "manual.ckpt"
    trainer.save_checkpoint(path)
    saved = [path, *tmp_path.rglob("*.ckpt")]
    for ckpt in saved:
        assert API_KEY.encode() not in ckpt.read_bytes(), ckpt
    hparams = torch.load(path, weights_only=False)["hyper_parameters"]
    assert hparams == {"api_key": "***", "hidden": 3}
    # loading needs the secret again, given as an override
    loaded = Model.load_from_checkpoint(path, api_key=API_KEY)
    assert loaded.hparams.api_key == API_KEY


def test_a_logger_constructor_error_does_not_print_its_secret_option() -> None:
    from ember.hub import LoggerSpec, Option, PluginLoadError, PluginManager, hookimpl

    def refuse(token: str) -> None:
        raise ValueError(f"the server rejected token {token}")

    class Plugin:
        @hookimpl
        def ember_loggers(self):
            yield LoggerSpec(
                name="refusing", factory=refuse, options={"token": Option("str", secret=True)}
            )

    pm = PluginManager(autoload=False, block=[])
    pm.register(Plugin(), name="refusing")
    with pytest.raises(PluginLoadError) as err:
        Run.start(".", loggers=[{"name": "refusing", "token": API_KEY}], plugin_manager=pm)
    assert str(err.value) == (
        "logger 'refusing' (from code) could not be built: "
        "ValueError: the server rejected token ***"
    )
    assert err.value.__cause__ is None and err.value.__suppress_context__
