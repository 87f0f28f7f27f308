"""The infill / revise / repair commands, driven through ``services.cli.main``."""

import json

import pytest
from transformers import LlamaConfig, LlamaForCausalLM

from refiner.text import tiny_text_refiner
from services.cli import main
from tests.conftest import build_tiny_tokenizer


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    tok = build_tiny_tokenizer()
    r = tiny_text_refiner(tok)
    r.predictor.model.save_pretrained(root / "refiner")
    tok.save_pretrained(root / "refiner")
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    LlamaForCausalLM(cfg).save_pretrained(root / "drafter")
    tok.save_pretrained(root / "drafter")
    return root


def _run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_infill_json_is_deterministic(model_dirs, tmp_path, capsys):
    f = tmp_path / "a.py"
    f.write_text("def add(a, b):\n    return <FILL>\n\nprint(add(1, 2))\n")
    args = [str(f), "--refiner", str(model_dirs / "refiner"), "--drafter", str(model_dirs / "drafter"),
            "--max-tokens", "4", "--json", "--seed", "3"]
    rc, out1, _ = _run(capsys, "infill", *args)
    rc2, out2, _ = _run(capsys, "infill", *args)
    assert rc == rc2 == 0
    a, b = json.loads(out1), json.loads(out2)
    assert a["text"] == b["text"] and a["start"] == len("def add(a, b):\n    return ")
    assert "<|mask|>" not in a["text"]


def test_revise_spans_and_errors(model_dirs, tmp_path, capsys):
    f = tmp_path / "doc.txt"
    f.write_text("The licensee shall not disclose confidential information.\n")
    rc, out, _ = _run(capsys, "revise", str(f), "--refiner", str(model_dirs / "refiner"), "--span", "4:12", "--json")
    assert rc == 0 and json.loads(out)["audit"]["pipeline"] == "revise"
    rc, _, err = _run(capsys, "revise", str(f), "--refiner", str(model_dirs / "refiner"), "--span", "4-12")
    assert rc == 2 and "--span '4-12'" in err
    rc, _, err = _run(capsys, "revise", str(f), "--refiner", str(model_dirs / "refiner"), "--span", "40:400")
    assert rc == 2 and "outside the text" in err


def test_bad_inputs_are_refused_with_names(model_dirs, tmp_path, capsys):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\x89PNG\x00\x01")
    rc, _, err = _run(capsys, "repair", str(bad), "--refiner", str(model_dirs / "refiner"))
    assert rc == 2 and "binary" in err
    latin = tmp_path / "latin.txt"
    latin.write_bytes("café".encode("latin-1"))
    rc, _, err = _run(capsys, "revise", str(latin), "--refiner", str(model_dirs / "refiner"))
    assert rc == 2 and "not valid UTF-8 (byte 3)" in err
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    rc, _, err = _run(capsys, "revise", str(empty), "--refiner", str(model_dirs / "refiner"))
    assert rc == 2 and "empty" in err
    rc, _, err = _run(capsys, "repair", str(latin), "--refiner", str(tmp_path / "missing"))
    assert rc == 2
    rc, _, err = _run(capsys, "infill", str(empty), "--refiner", str(model_dirs / "refiner"))
    assert rc == 2
    ok = tmp_path / "ok.txt"
    ok.write_text("no marker here\n")
    rc, _, err = _run(capsys, "infill", str(ok), "--refiner", str(model_dirs / "refiner"))
    assert rc == 2 and "marker '<FILL>' exactly once" in err


def test_repair_returns_code_unchanged_when_it_cannot_fix_it(model_dirs, tmp_path, capsys):
    f = tmp_path / "b.py"
    f.write_text("def (((\n")
    rc, out, err = _run(capsys, "repair", str(f), "--refiner", str(model_dirs / "refiner"), "--rounds", "1")
    assert rc in (0, 1)
    if rc == 1:
        assert out == "def (((\n" and "still does not parse" in err
    rc, out, _ = _run(capsys, "repair", str(tmp_path / "b.py"), "--refiner", str(model_dirs / "refiner"),
                      "--language", "cobol")
    assert rc == 2
