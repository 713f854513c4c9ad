"""One mapping between the environment and the settings (tagsmith.config), used by every entry point."""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
from tagsmith.config import (
    ENV_NAMES,
    LOCAL_ENV_NAMES,
    RESOURCE_FIELDS,
    ConfigurationError,
    LocalSettings,
    Settings,
    tuning_env,
)

REPO = Path(__file__).resolve().parents[2]


def _other_than_default(f: dataclasses.Field[Any]) -> Any:
    """A value of ``f``'s type that is not its default."""
    kind = str(f.type)
    if "tuple" in kind:
        return ("effnet-a", "effnet-b")
    if "Path" in kind:
        return Path("/somewhere") / f.name
    if kind == "bool":
        return not f.default
    if kind == "int":
        return int(f.default) + 7  # type: ignore[call-overload]
    if kind == "float":
        return float(f.default) + 0.5  # type: ignore[arg-type]
    return f"value-of-{f.name}"


def test_settings_round_trip_every_field_through_the_environment() -> None:
    changed = Settings(
        **{f.name: _other_than_default(f) for f in dataclasses.fields(Settings)}  # type: ignore[arg-type]
    )
    assert all(getattr(changed, f.name) != f.default for f in dataclasses.fields(Settings)), (
        "every field differs from its default, so a field the mapping forgets cannot pass"
    )

    env = changed.to_env()

    assert Settings.from_env(env) == changed
    assert set(env) == set(ENV_NAMES.values())


def test_settings_at_their_defaults_round_trip_too() -> None:
    plain = Settings(data_bucket="data")

    assert Settings.from_env(plain.to_env()) == plain


def test_settings_an_empty_variable_leaves_the_default_and_a_malformed_one_is_named() -> None:
    assert Settings.from_env({"TAGSMITH_DATA_BUCKET": "d", "TAGSMITH_RETRAIN_EVERY": ""}).retrain_every == 25

    with pytest.raises(ConfigurationError, match="TAGSMITH_RETRAIN_EVERY='often'"):
        Settings.from_env({"TAGSMITH_DATA_BUCKET": "d", "TAGSMITH_RETRAIN_EVERY": "often"})
    with pytest.raises(ConfigurationError, match="TAGSMITH_DATA_BUCKET is not set"):
        Settings.from_env({})


def test_local_settings_take_the_tuning_but_never_an_aws_deployments_resources() -> None:
    # GIVEN a shell set up for an AWS deployment, with a tuned retrain rule and recipe
    env = {
        "TAGSMITH_DATA_BUCKET": "prod-data",
        "TAGSMITH_TRAINING_QUEUE_URL": "https://sqs.example/prod-training",
        "AWS_ENDPOINT_URL": "https://elsewhere.example",
        "TAGSMITH_RETRAIN_EVERY": "7",
        "TAGSMITH_ENCODER_RECIPE": "effnet-lite2-260-s7-v1",
    }

    local = Settings.local(env, data_bucket="local-data")

    assert (local.data_bucket, local.training_queue_url, local.endpoint_url) == ("local-data", "", None)
    assert (local.retrain_every, local.encoder_recipe) == (7, "effnet-lite2-260-s7-v1")
    assert tuning_env(env) == {
        "TAGSMITH_RETRAIN_EVERY": "7",
        "TAGSMITH_ENCODER_RECIPE": "effnet-lite2-260-s7-v1",
    }
    assert not {ENV_NAMES[f] for f in RESOURCE_FIELDS} & set(tuning_env(env))


def test_local_settings_round_trip_their_variables() -> None:
    changed = LocalSettings(
        **{f.name: _other_than_default(f) for f in dataclasses.fields(LocalSettings)}  # type: ignore[arg-type]
    )

    assert LocalSettings.from_env(changed.to_env()) == changed
    assert set(changed.to_env()) == set(LOCAL_ENV_NAMES.values())


def test_the_local_stack_hands_its_functions_exactly_its_settings_mapped_to_the_environment(
    tmp_path: Path,
) -> None:
    from tagsmith.local.stack import CREDENTIALS, StackConfig, StackInfo

    # GIVEN `make run` started with a tuned retrain rule and recipe (and a leftover AWS bucket)
    config = StackConfig.from_env(
        {
            "TAGSMITH_HOME": str(tmp_path),
            "TAGSMITH_MOTO_PORT": "41801",
            "TAGSMITH_RETRAIN_EVERY": "3",
            "TAGSMITH_ENCODER_RECIPE": "effnet-lite2-260-s7-v1",
            "TAGSMITH_DATA_BUCKET": "prod-data",
        }
    )
    info = StackInfo(
        pid=1,
        endpoint_url="http://127.0.0.1:41801",
        opensearch_url="http://127.0.0.1:41802",
        assets_bucket="tagsmith-assets",
        data_bucket="tagsmith-data",
        queue_urls={"training": "http://q/training", "webhooks-dlq": "http://q/webhooks-dlq"},
        home=str(config.home),
        tuning=config.tuning,
    )

    settings = info.settings()
    env = info.environment()

    assert (config.home, config.moto_port) == (tmp_path, 41801)
    assert (settings.retrain_every, settings.encoder_recipe) == (3, "effnet-lite2-260-s7-v1")
    assert settings.data_bucket == "tagsmith-data"
    assert env == {**CREDENTIALS, **settings.to_env()}
    assert Settings.from_env(env) == settings
    # a CLI in another process reads the stack from stack.json: the tuning survives JSON
    assert StackInfo(**dataclasses.asdict(info)).settings() == settings


def test_cli_files_target_honours_the_encoder_recipe_and_retrain_rule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tagsmith.cli.common import Target, open_session

    monkeypatch.setenv("TAGSMITH_HOME", str(tmp_path))
    monkeypatch.setenv("TAGSMITH_ENCODER_RECIPE", "effnet-lite2-260-s7-v1")
    monkeypatch.setenv("TAGSMITH_RETRAIN_EVERY", "4")
    monkeypatch.setenv("TAGSMITH_DATA_BUCKET", "prod-data")  # an AWS shell: --target files ignores it

    settings = open_session(Target.FILES).components.settings

    assert (settings.encoder_recipe, settings.retrain_every) == ("effnet-lite2-260-s7-v1", 4)
    assert settings.data_bucket != "prod-data"
    assert settings.encoder_cache_dir == tmp_path / "cache"


_VARIABLE = re.compile(r"^TAGSMITH_[A-Z0-9_]+$")


def test_no_module_but_config_spells_a_settings_variable() -> None:
    """Entry points (handlers, CLI, local stack, console, template) name settings through
    tagsmith.config; a variable name written as a string anywhere else is a second mapping."""
    offenders = []
    roots = [REPO / "shared" / "tagsmith", REPO / "functions", REPO / "infra"]
    for path in sorted(p for root in roots for p in root.rglob("*.py")):
        if path == REPO / "shared" / "tagsmith" / "config.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and _VARIABLE.match(node.value):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}: {node.value}")
    assert not offenders, "\n".join(offenders)
