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
