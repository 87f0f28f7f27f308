"""``remask train drafter|refiner`` through the real CLI entry point: a run and its errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from train_fakes import toy_corpus, toy_tokenizer  # noqa: F401  (fixtures)

from services import cli


@pytest.fixture(autouse=True)
def only_train_commands(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Parse with the training commands only, so other features' imports cannot interfere."""
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("services.commands.train",))
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def args(model: str, corpus: Path, tok: Path, out: Path, *extra: str) -> list[str]:
    return ["train", model, "--corpus", str(corpus), "--tokenizer", str(tok), "--out", str(out),
            "--preset", "tiny", "--seq-len", "16", "--batch-size", "4", "--threads", "1",
            "--eval-batches", "1", "--no-progress", *extra]


@pytest.mark.slow
@pytest.mark.parametrize("model", ["drafter", "refiner"])
def test_train_and_resume(
    model: str, toy_corpus: Path, toy_tokenizer: Path, tmp_path: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / model
    code, stdout, err = run(args(model, toy_corpus, toy_tokenizer, out, "--max-steps", "3",
                                 "--seed", "5"), capsys)
    assert code == 0, err
    info = json.loads(stdout)
    assert info["task"] == model and info["steps"] == 3 and info["loop"]["seed"] == 5
    assert info["command"].startswith(f"remask train {model} --corpus {toy_corpus}")
    assert "--max-steps 3" in info["command"] and "--seq-len 16" in info["command"]
    # a longer budget continues the same run from its checkpoint
    code, stdout, err = run(args(model, toy_corpus, toy_tokenizer, out, "--max-steps", "5",
                                 "--seed", "5", "--resume"), capsys)
    assert code == 0, err
    assert json.loads(stdout)["steps"] == 5


@pytest.mark.slow
def test_refiner_warm_started_from_a_drafter(
    toy_corpus: Path, toy_tokenizer: Path, tmp_path: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    drafter = tmp_path / "drafter"
    code, stdout, err = run(args("drafter", toy_corpus, toy_tokenizer, drafter, "--max-steps",
                                 "2", "--max-shard-size", "20KB"), capsys)
    assert code == 0, err
    saved = json.loads(stdout)["saved"]
    assert saved["dtype"] == "bfloat16" and "model.safetensors.index.json" in saved["files"]
    refiner = tmp_path / "refiner"
    argv = args("refiner", toy_corpus, toy_tokenizer, refiner, "--max-steps", "2",
                "--seq-len", "24", "--init-from", str(drafter), "--save-dtype", "float32")
    argv.remove("--preset")
    argv.remove("tiny")  # the shape comes from the drafter
    code, stdout, err = run(argv, capsys)
    assert code == 0, err
    info = json.loads(stdout)
    assert info["preset"] == "tiny" and info["model_config"]["max_position_embeddings"] == 24
    assert info["init_from"]["path"] == str(drafter) and info["init_from"]["steps"] == 2
    assert info["init_from"]["tokenizer_sha256"] == info["data"]["tokenizer_sha256"]
    assert info["saved"]["dtype"] == "float32" and list(info["saved"]["files"]) == [
        "model.safetensors"]
    assert "--init-from" in info["command"] and "--save-dtype float32" in info["command"]
    assert "--preset" not in info["command"]
    # a preset of another shape than the drafter's is an error
    argv = args("refiner", toy_corpus, toy_tokenizer, tmp_path / "r2", "--max-steps", "1",
                "--init-from", str(drafter))
    argv[argv.index("tiny")] = "cpu"
    code, _, err = run(argv, capsys)
    assert code == 2 and "--preset cpu disagrees with the drafter" in err
    # a drafter whose weights were cut short is refused naming the file
    shard = min(drafter.glob("model-*.safetensors"))
    shard.write_bytes(shard.read_bytes()[:100])
    for model in ("drafter", "refiner"):
        code, _, err = run(args(model, toy_corpus, toy_tokenizer, tmp_path / f"{model}-bad",
                                "--max-steps", "1", "--init-from", str(drafter)), capsys)
        assert code == 2 and f"'{shard}' cannot be read" in err, err


def test_missing_corpus_and_tokenizer_are_named(
    toy_corpus: Path, toy_tokenizer: Path, tmp_path: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    missing = tmp_path / "no" / "such"
    for model in ("drafter", "refiner"):
        code, _, err = run(args(model, missing, toy_tokenizer, tmp_path / "o", "--max-steps",
                                "1"), capsys)
        assert code == 2 and err.startswith("remask: error:")
        assert f"corpus directory not found: {missing}" in err
        code, _, err = run(args(model, toy_corpus, missing, tmp_path / "o", "--max-steps",
                                "1"), capsys)
        assert code == 2 and f"tokenizer directory not found: {missing}" in err


@pytest.mark.parametrize(
    ("budget", "message"),
    [(["--time-budget", "0"], "--time-budget must be positive"),
     (["--time-budget", "-30"], "--time-budget must be positive"),
     (["--max-steps", "0"], "--max-steps must be positive")],
)
def test_bad_budget(
    budget: list[str], message: str, toy_corpus: Path, toy_tokenizer: Path,  # noqa: F811
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run(args("refiner", toy_corpus, toy_tokenizer, tmp_path / "o", *budget),
                       capsys)
    assert code == 2 and message in err
    assert not (tmp_path / "o").exists()  # nothing written for a run that cannot start


def test_budget_is_required(
    toy_corpus: Path, toy_tokenizer: Path, tmp_path: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(args("drafter", toy_corpus, toy_tokenizer, tmp_path / "o"))
    assert exc.value.code == 2
    assert "--time-budget" in capsys.readouterr().err


def test_corrupt_checkpoint_on_resume(
    toy_corpus: Path, toy_tokenizer: Path, tmp_path: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "o"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(b"\x80\x02garbage")
    code, _, err = run(args("refiner", toy_corpus, toy_tokenizer, out, "--max-steps", "2",
                            "--resume"), capsys)
    assert code == 2
    assert f"checkpoint {out / 'checkpoint.pt'} cannot be read" in err
    code, _, err = run(args("drafter", toy_corpus, toy_tokenizer, tmp_path / "none",
                            "--max-steps", "2", "--resume"), capsys)
    assert code == 2 and "no checkpoint to resume from" in err


def test_unknown_preset(
    toy_corpus: Path, toy_tokenizer: Path, tmp_path: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = args("refiner", toy_corpus, toy_tokenizer, tmp_path / "o", "--max-steps", "1")
    argv[argv.index("tiny")] = "enormous"
    code, _, err = run(argv, capsys)
    assert code == 2 and "unknown refiner preset 'enormous'" in err
