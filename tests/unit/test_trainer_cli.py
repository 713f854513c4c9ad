"""``tagsmith train``, ``status``, ``models`` and ``taxonomy`` end to end over a local folder store
and the fake encoder (the CLI's session is swapped; everything below it is real)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from tagsmith.cli import app
from tagsmith.cli.common import Session
from tagsmith.config import Settings
from tagsmith.outlook import upload_outlook
from tagsmith.search import InMemorySearchIndex
from tagsmith.storage import FileObjectStore
from tagsmith.wiring import build
from typer.testing import CliRunner

from tests.fakes import COLOURS, FakeEncoder, solid_jpeg

runner = CliRunner()


@pytest.fixture
def session(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Session:
    c = build(
        Settings(data_bucket="data", assets_bucket="assets"),
        store=FileObjectStore(root=tmp_path / "s3"),
        index=InMemorySearchIndex(),
        encoder=FakeEncoder(),
    )
    s = Session(c, "test store")
    monkeypatch.setattr("tagsmith.cli.training.open_session", lambda target: s)
    monkeypatch.setenv("TAGSMITH_HOME", str(tmp_path / "home"))  # reports go there, not into var/
    return s


def example_folder(root: Path, per_tag: int = 5, seed: int = 0) -> Path:
    for tag, rgb in COLOURS.items():
        (root / tag).mkdir(parents=True, exist_ok=True)
        for i in range(per_tag):
            (root / tag / f"{seed + i}.jpg").write_bytes(solid_jpeg(rgb, noise=25, seed=seed + i))
    return root


def cli(*args: str) -> tuple[int, str]:
    """Exit code and output; for human output, rich's line wrapping is undone (spaces collapsed)."""
    result = runner.invoke(app, list(args))
    text = result.output if "--json" in args else " ".join(result.output.split())
    return result.exit_code, text


def test_train_from_a_folder_prints_the_decision_and_writes_the_html_report(
    session: Session, tmp_path: Path
) -> None:
    folder = example_folder(tmp_path / "ex")
    code, output = cli(
        "train", "-t", "acme", "-m", "colour", "-e", str(folder), "--report", str(tmp_path / "r.html")
    )
    assert code == 0, output
    assert "15 examples (15 embedded, 0 from cache)" in output and "first version of this model" in output
    assert (tmp_path / "r.html").read_text().startswith("<!doctype html>")


def test_a_failed_first_training_names_the_problem_once_and_leaves_no_model(
    session: Session, tmp_path: Path
) -> None:
    folder = tmp_path / "ex"
    (folder / "red").mkdir(parents=True)
    for i in range(4):
        (folder / "red" / f"{i}.jpg").write_bytes(solid_jpeg(COLOURS["red"], noise=25, seed=i))
    code, output = cli("train", "-t", "acme", "-m", "colour", "-e", str(folder))
    assert code == 1 and "found: red" in output
    assert output.count("at least 2 tags") == 1 and "nothing was saved" in output
    for command in (("status", "-t", "acme"), ("models", "-t", "acme")):
        code, output = cli(*command)
        assert code == 0 and "colour" not in output, command
    code, output = cli("models", "versions", "-t", "acme", "-m", "colour")
    assert code == 1 and "has no model 'colour'" in output


def test_a_failed_retraining_keeps_the_last_status_and_version(session: Session, tmp_path: Path) -> None:
    cli("train", "-t", "acme", "-m", "colour", "-e", str(example_folder(tmp_path / "ex")))
    before = session.components.models.read_status("acme", "colour")
    code, output = cli("train", "-t", "acme", "-m", "colour", "-e", str(tmp_path / "nope"))
    assert code == 1 and "does not exist" in output
    assert session.components.models.read_status("acme", "colour") == before
    code, output = cli("status", "-t", "acme")
    assert "colour: trained" in output


def test_a_failed_submitted_training_is_explained_by_models_versions(session: Session) -> None:
    from tagsmith.trainjobs import TrainingJobs, TrainingRequest

    c = session.components
    jobs = TrainingJobs(store=c.store, data_bucket="data", trainer=c.trainer)
    key = jobs.submit(
        TrainingRequest(tenant="acme", model="colour", examples=("s3://data/tenants/acme/none/",))
    )
    jobs.run(key)  # as the train handler would: no images there, so it fails and says so
    code, output = cli("status", "-t", "acme")
    assert "colour: failed" in output and "no images under" in output
    code, output = cli("models", "versions", "-t", "acme", "-m", "colour")
    assert code == 1 and "has no version yet" in output and "tagsmith models delete" in output
    code, output = cli("models", "delete", "-t", "acme", "-m", "colour")
    assert code == 0 and "deleted acme/colour" in output
    code, output = cli("models", "-t", "acme")
    assert "colour" not in output


def test_models_delete_asks_before_removing_versions(session: Session, tmp_path: Path) -> None:
    cli("train", "-t", "acme", "-m", "colour", "-e", str(example_folder(tmp_path / "ex")))
    code, output = cli("models", "delete", "-t", "acme", "-m", "colour")
    assert code == 1 and "--yes" in output
    assert session.components.models.active_version("acme", "colour") is not None
    code, output = cli("models", "delete", "-t", "acme", "-m", "colour", "--yes")
    assert code == 0 and "1 version(s)" in output
    assert list(session.components.store.list("data", "tenants/acme/models/")) == []
    assert session.components.tagger.active_models("acme") == []


def test_train_with_nothing_to_train_on_says_which_options_to_give(session: Session) -> None:
    code, output = cli("train", "-t", "acme", "-m", "colour")
    assert code == 1 and "--examples" in output and "--corrections" in output


def test_models_versions_and_rollback(session: Session, tmp_path: Path) -> None:
    folder = example_folder(tmp_path / "ex")
    cli("train", "-t", "acme", "-m", "colour", "-e", str(folder))
    example_folder(folder, per_tag=2, seed=50)
    cli("train", "-t", "acme", "-m", "colour", "-e", str(folder))
    code, output = cli("models", "versions", "-t", "acme", "-m", "colour", "--json")
    rows = [json.loads(line) for line in output.splitlines()]
    assert code == 0 and [r["active"] for r in rows] == [False, True]
    assert rows[1]["examples"] == 21 and "not worse than" in rows[1]["decision"]
    code, output = cli("models", "rollback", "-t", "acme", "-m", "colour", "--to", rows[0]["version"])
    assert code == 0 and rows[0]["version"] in output
    assert session.components.models.active_version("acme", "colour") == rows[0]["version"]
    code, output = cli("models", "-t", "acme", "--json")
    [listed] = [json.loads(line) for line in output.splitlines()]
    assert (listed["active"], listed["state"]) == (rows[0]["version"], "trained")


def test_rollback_to_an_unknown_version_lists_recent_ones(session: Session, tmp_path: Path) -> None:
    cli("train", "-t", "acme", "-m", "colour", "-e", str(example_folder(tmp_path / "ex")))
    [version] = session.components.models.versions("acme", "colour")
    code, output = cli("models", "rollback", "-t", "acme", "-m", "colour", "--to", "20990101-000000-dead")
    assert code == 1 and "no version '20990101-000000-dead'" in output and version in output


def test_taxonomy_set_changes_labels_without_retraining_and_hints_at_reindexing(
    session: Session, tmp_path: Path
) -> None:
    cli("train", "-t", "acme", "-m", "colour", "-e", str(example_folder(tmp_path / "ex")))
    [version] = session.components.models.versions("acme", "colour")
    labels = {
        "tags": [
            {"id": "red", "labels": {"en": "Red", "fr": "Rouge"}, "synonyms": {"fr": ["vermillon"]}},
            {"id": "purple", "labels": {"en": "Purple"}},
        ]
    }
    (tmp_path / "tax.json").write_text(json.dumps(labels))
    code, output = cli("taxonomy", "set", "-t", "acme", "-m", "colour", str(tmp_path / "tax.json"))
    assert code == 0 and "tagsmith reindex --tenant acme" in output
    assert "does not know these tags" in output and "purple" in output
    assert "no entry" in output and "blue, green" in output
    code, output = cli("taxonomy", "show", "-t", "acme", "-m", "colour", "--json")
    shown = json.loads(output)
    assert shown["tags"][2] == {
        "id": "red",
        "labels": {"en": "Red", "fr": "Rouge"},
        "synonyms": {"fr": ["vermillon"]},
    }
    assert session.components.models.versions("acme", "colour") == [version]  # no retraining
    active = session.components.models.load_active("acme", "colour")
    assert active is not None and active.taxonomy.get("red").label("fr") == "Rouge"


def test_taxonomy_set_with_invalid_json_says_what_is_wrong(session: Session, tmp_path: Path) -> None:
    (tmp_path / "tax.json").write_text('{"tags": [{"labels": {"en": "Red"}}]}')
    code, output = cli("taxonomy", "set", "-t", "acme", "-m", "colour", str(tmp_path / "tax.json"))
    assert code == 1 and "has no 'id'" in output


def test_submit_writes_a_pending_status_and_a_request(session: Session) -> None:
    code, output = cli(
        "train", "-t", "acme", "-m", "colour", "-e", "s3://assets/acme/ex/", "--submit", "--json"
    )
    assert code == 0
    key = json.loads(output)["request"]
    assert key.startswith("tenants/acme/training-requests/colour-") and key.endswith(".train.json")
    code, output = cli("status", "-t", "acme", "-m", "colour", "--json")
    assert json.loads(output)["state"] == "pending"


def test_submit_refuses_local_examples_the_handler_cannot_read(session: Session, tmp_path: Path) -> None:
    code, output = cli("train", "-t", "acme", "-m", "colour", "-e", str(tmp_path), "--submit")
    assert code == 1 and "upload these first" in output


def test_train_shows_a_progress_bar_over_embedding_on_a_terminal(
    session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    terminal = Console(file=io.StringIO(), force_terminal=True, width=120)
    monkeypatch.setattr("tagsmith.cli.progress.err", terminal)
    monkeypatch.setattr("tagsmith.cli.progress.out", terminal)  # an interactive session
    code, output = cli("train", "-t", "acme", "-m", "colour", "-e", str(example_folder(tmp_path / "ex")))
    assert code == 0, output
    shown = terminal.file.getvalue()  # type: ignore[attr-defined]
    assert "embedding 15 photos and 30 augmented views" in shown and "45/45" in shown
    assert "embedding" not in output  # the bar is on the terminal's stderr only, never in the results


def test_train_prints_the_outlook_the_report_file_and_next_steps(session: Session, tmp_path: Path) -> None:
    code, output = cli("train", "-t", "acme", "-m", "colour", "-e", str(example_folder(tmp_path / "ex")))
    model = session.components.models.load_active("acme", "colour")
    assert code == 0 and model is not None
    share = upload_outlook(model).auto_apply_share
    assert share is not None
    assert "uploads: " in output and (
        "nearly every upload" in output if share >= 0.995 else f"{share:.0%}" in output
    )
    report = Path(output.split("report: ", 1)[1].split()[0])
    assert report.is_file() and report.name == f"acme-colour-{model.version}.html"
    assert "tagsmith taxonomy set -t acme -m colour labels.json" in output
    assert "make run" in output  # no stack in this session: upload needs one


def test_train_json_carries_the_report_file_and_the_outlook(session: Session, tmp_path: Path) -> None:
    code, output = cli(
        "train", "-t", "acme", "-m", "colour", "-e", str(example_folder(tmp_path / "ex")), "--json"
    )
    d = json.loads(output)
    assert code == 0 and Path(d["report_file"]).is_file()
    assert set(d["outlook"]) == {
        "auto_apply_share",
        "precision",
        "precision_lower",
        "applied",
        "target_precision",
    }


class CountingOcr:
    """Reads nothing, counting the photos it was given."""

    engine_id = "counting-ocr-v1"

    def __init__(self) -> None:
        self.calls = 0

    def read(self, image: Any) -> list[Any]:
        self.calls += 1
        return []


def test_train_with_text_shows_a_second_bar_over_reading_the_print(
    session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = CountingOcr()
    session.components.trainer.ocr = engine
    terminal = Console(file=io.StringIO(), force_terminal=True, width=120)
    monkeypatch.setattr("tagsmith.cli.progress.err", terminal)
    monkeypatch.setattr("tagsmith.cli.progress.out", terminal)
    folder = str(example_folder(tmp_path / "ex"))
    code, output = cli("train", "-t", "acme", "-m", "colour", "-e", folder, "--text", "--augment", "0")
    assert code == 0, output
    shown = terminal.file.getvalue()  # type: ignore[attr-defined]
    assert engine.calls == 15 and "reading the print on up to 15 photos" in shown and "15/15" in shown
    assert session.components.trainer.ocr is engine  # unwrapped afterwards
