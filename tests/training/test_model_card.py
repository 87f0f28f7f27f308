"""Runs compared side by side: one chart of their held-out curves, one table row each."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from training.model_card import compare_curves_svg, compare_table, render


def make_run(root: Path, losses: list[float], seconds_per_eval: float, **info: Any) -> Path:
    root.mkdir(parents=True)
    rows = [{"step": 10 * (i + 1), "tokens": 1000 * (i + 1), "loss": loss + 0.1,
             "held_out_loss": loss, "held_out_pkg_loss": loss + 1.0, "lr": 1e-3,
             "elapsed": seconds_per_eval * (i + 1)} for i, loss in enumerate(losses)]
    rows.insert(1, {"step": 15, "tokens": 1500, "loss": 9.0, "held_out_loss": None,
                    "lr": 1e-3, "elapsed": 1.0})  # a line without an evaluation
    (root / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows)
                                          + '{"step": 99, "cut sh')  # a crash mid-line
    base = {"task": "refiner", "preset": "gpu", "parameters": 8_400_000,
            "model_config": {"max_position_embeddings": 512}, "steps": 10 * len(losses),
            "tokens_seen": 1000 * len(losses), "tokens_per_s": 1234.5, "wall_time_s": 600.0,
            "final_held_out_loss": losses[-1], "final_held_out_pkg_loss": losses[-1] + 1.0,
            "hardware": {"device": "cuda", "gpu": "NVIDIA H100"},
            "saved": {"dtype": "bfloat16", "bytes": 16_900_000, "files": {"a": 1, "b": 2}}}
    (root / "training.json").write_text(json.dumps(base | info))
    return root


def polylines(svg: str) -> dict[str, list[tuple[float, float]]]:
    found = re.findall(r'points="([^"]*)"><title>([^<]*)</title>', svg)
    return {title: [tuple(map(float, p.split(","))) for p in pts.split()]  # type: ignore[misc]
            for pts, title in found}


def test_curves_of_several_runs_on_one_chart(tmp_path: Path) -> None:
    runs = {
        "cpu <scratch>": make_run(tmp_path / "a", [6.0, 5.0, 4.5], 100.0),
        "gpu & warm": make_run(tmp_path / "b", [5.0, 4.0, 3.0, 2.5], 10.0),
    }
    svg = compare_curves_svg(runs, "held_out_loss")
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    lines = polylines(svg)
    assert list(lines) == ["cpu &lt;scratch&gt;", "gpu &amp; warm"]
    assert [len(p) for p in lines.values()] == [3, 4]  # only lines with the metric
    a, b = lines.values()
    # one scale for both: the lowest loss (2.5) is drawn lowest, the highest (6.0) highest
    assert max(y for _, y in b) == pytest.approx(max(y for _, y in a + b))
    assert b[-1][1] > a[0][1]  # screen y grows downwards: 2.5 sits below 6.0
    assert a[-1][0] < b[-1][0]  # 3,000 tokens against 4,000
    assert "2.500 at the end" in svg and "held_out_loss (2.500 to 6.000)" in svg
    # against time the slow CPU run stretches furthest
    a_t, b_t = polylines(compare_curves_svg(runs, "held_out_pkg_loss", x="elapsed")).values()
    assert a_t[-1][0] > b_t[-1][0]


def test_curve_errors_name_the_run(tmp_path: Path) -> None:
    run = make_run(tmp_path / "a", [3.0], 1.0)
    with pytest.raises(FileNotFoundError, match="run 'b': no train_log.jsonl"):
        compare_curves_svg({"a": run, "b": tmp_path / "missing"})
    with pytest.raises(ValueError, match="run 'a': .* never records 'held_out_edit_auc'"):
        compare_curves_svg({"a": run}, "held_out_edit_auc")
    with pytest.raises(ValueError, match="x must be one of"):
        compare_curves_svg({"a": run}, x="steps")


def test_side_by_side_table(tmp_path: Path) -> None:
    a = make_run(tmp_path / "a", [6.0, 4.5], 1.0, preset="cpu", parameters=3_300_000,
                 hardware={"device": "cpu", "gpu": None}, final_held_out_pkg_loss=None)
    b = make_run(tmp_path / "b", [5.0, 2.5], 1.0)
    table = compare_table({"cpu": a, "gpu": b / "train_log.jsonl"}).splitlines()
    assert table[0].startswith("| run | task | preset | parameters | context |")
    assert len(table) == 4
    assert table[2] == ("| cpu | refiner | cpu | 3,300,000 | 512 | 16.9 MB bfloat16 | cpu | "
                        "20 | 2,000 | 1234.5000 | 10.0 | 4.5000 | - |")
    assert "| gpu | refiner | gpu | 8,400,000 |" in table[3] and "NVIDIA H100" in table[3]
    assert table[3].endswith("| 2.5000 | 3.5000 |")
    with pytest.raises(FileNotFoundError, match="run 'x': no training.json"):
        compare_table({"x": tmp_path / "none"})


def test_card_states_context_and_saved_size(tmp_path: Path) -> None:
    info = json.loads((make_run(tmp_path / "a", [3.0], 1.0) / "training.json").read_text())
    info |= {"objective": {}, "loop": {"batch_size": 8, "seq_len": 512, "lr": 1e-3,
                                       "warmup_steps": 1, "min_lr_ratio": 0.1,
                                       "grad_clip": 1.0, "seed": 0},
             "hardware": {"device": "cuda", "gpu": "H100", "cpu": "x", "torch_threads": 1,
                          "precision": "bf16"},
             "model_config": {"num_hidden_layers": 8, "hidden_size": 256,
                              "intermediate_size": 688, "num_attention_heads": 4,
                              "vocab_size": 8192, "max_position_embeddings": 512},
             "final_train_loss": 3.0,
             "data": {"corpus_sha256": "c" * 64, "train_tokens": 10, "held_out_tokens": 5,
                      "held_out_packages_tokens": 7, "held_out_packages_evaluated": True}}
    card = render(info, [], None)
    assert "16.9 MB of bfloat16 safetensors in 2 file(s)" in card
    assert "context: 512 tokens" in card and "7 tokens of whole held-out packages" in card
