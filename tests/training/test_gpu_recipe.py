"""The GPU recipe (``scripts/train_gpu.sh``) run for real on the CPU with a tiny budget.

A lent GPU machine has only torch, transformers and their kin, so the end-to-end run goes
through an import guard that makes every import of another third-party package by remask's
own code fail, as it would there. The recipe must still train, evaluate and export both
models; what it cannot compute there (the drafter's bench figures need pydantic) it records.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import subprocess
import sys
import tarfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from train_fakes import toy_corpus, toy_tokenizer  # noqa: F401  (fixtures)
from training_fakes import make_fake_roots
from transformers import AutoModelForCausalLM

from refiner.model import RefinerModel
from training import gpu_recipe
from training.gpu_recipe import (
    MAX_FILE_BYTES,
    NO_GPU_MESSAGE,
    PACK_NAME,
    RecipeError,
)

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "train_gpu.sh"

# what the lent machine's image holds besides the standard library (and remask's tree)
GPU_IMAGE = "torch,transformers,tokenizers,safetensors,numpy,tqdm,huggingface_hub"
# remask's own packages travel with the tree; their imports are checked like the recipe's
REMASK = "training,refiner,drafter,bench,backends"

# Installed as sitecustomize.py in a child interpreter. Two records:
# - DIRECT: every ``import X`` statement run by remask's own code (through builtins.__import__,
#   so an import of a module some dependency already loaded is seen too) whose top-level
#   package is neither stdlib, nor remask's, nor on the image; with GUARD_MODE=block it fails;
# - FIRST: which module first asked for each top-level package (a meta-path finder), so every
#   package in sys.modules can be traced to remask's code or to a dependency's own import.
GUARD = '''
import builtins, json, os, sys, importlib.abc

ALLOWED = frozenset(os.environ["GUARD_ALLOWED"].split(","))
REMASK = frozenset(os.environ["GUARD_REMASK"].split(","))
BLOCK = os.environ.get("GUARD_MODE") == "block"
DIRECT = {}
FIRST = {}
PRELOADED = {m.split(".")[0] for m in sys.modules}


def _outside(top):
    return top not in ALLOWED and top not in REMASK and top not in sys.stdlib_module_names


_import = builtins.__import__


def _guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
    importer = ((globals or {}).get("__name__") or "").split(".")[0]
    top = name.split(".")[0]
    if level == 0 and (importer in REMASK or importer == "__main__") and _outside(top):
        DIRECT.setdefault(top, importer)
        if BLOCK:
            raise ModuleNotFoundError(
                f"No module named {top!r} (not on the GPU image; imported by {importer})",
                name=top)
    return _import(name, globals, locals, fromlist, level)


def _asker():
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if not frame.f_code.co_filename.startswith("<frozen") and not name.startswith("importlib"):
            return name.split(".")[0]
        frame = frame.f_back
    return ""


class _First(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if "." not in name and name not in FIRST:
            FIRST[name] = _asker()
        return None


builtins.__import__ = _guarded_import
sys.meta_path.insert(0, _First())
'''

# called after the imports under test: what came in, and who brought it (modules an
# extension module puts into sys.modules itself were never asked for: they have no asker)
REPORT = '''
import json, sys
def report():
    g = sys.modules["sitecustomize"]
    loaded = {m.split(".")[0] for m in sys.modules} - g.PRELOADED
    by_remask = sorted(m for m in loaded if g._outside(m)
                       and g.FIRST.get(m, "") in g.REMASK | {"__main__"})
    print(json.dumps({"direct": dict(g.DIRECT), "by_remask": by_remask,
                      "loaded": sorted(loaded)}))
'''


def guard_env(tmp: Path, mode: str, remask: str = REMASK) -> dict[str, str]:
    """Environment of a child interpreter with the import guard installed."""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "sitecustomize.py").write_text(GUARD, encoding="utf-8")
    env = dict(os.environ)
    env.update(PYTHONPATH=os.pathsep.join([str(tmp), str(REPO)]), GUARD_MODE=mode,
               GUARD_ALLOWED=GPU_IMAGE, GUARD_REMASK=remask, PYTHON=sys.executable)
    return env


def imports_of(code: str, env: dict[str, str]) -> list[dict[str, Any]]:
    """The reports printed by ``report()`` calls in ``code``, run in a child interpreter."""
    proc = subprocess.run([sys.executable, "-c", REPORT + code], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def test_the_recipe_imports_only_what_the_gpu_image_holds(tmp_path: Path) -> None:
    guard = tmp_path / "guard"
    guard.mkdir()
    # the guard's own check: a remask-like module importing yaml, which huggingface_hub
    # (a dependency) loaded before, is still caught
    (guard / "fakeremask.py").write_text("import json\nimport yaml\n")
    env = guard_env(guard, "record", remask=f"{REMASK},fakeremask")
    recipe, fake = imports_of("import training.gpu_recipe\nreport()\n"
                              "import fakeremask\nreport()\n", env)
    assert recipe["direct"] == {}, f"remask code imports packages the GPU image lacks: {recipe}"
    assert recipe["by_remask"] == [], recipe
    assert {"torch", "transformers", "yaml", "training", "refiner"} <= set(recipe["loaded"])
    assert fake["direct"] == {"yaml": "fakeremask"}
    assert fake["by_remask"] == []  # yaml came in through a dependency's own imports


def run_script(out: Path, *args: str, env: dict[str, str] | None = None
               ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), str(out), *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=600, check=False)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_without_a_gpu_it_exits_2_with_one_line(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHON=sys.executable)
    proc = run_script(tmp_path / "out", "--preset", "tiny", env=env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stdout.strip().splitlines() == [NO_GPU_MESSAGE]  # the wrapper joins stderr
    assert (tmp_path / "out" / "recipe.log").read_text().strip() == NO_GPU_MESSAGE
    record = json.loads((tmp_path / "out" / "recipe.jsonl").read_text())
    assert record["step"] == "device" and record["status"] == "failed"
    assert not (tmp_path / "out" / "corpus").exists()  # nothing was built


def recipe_args(roots_base: Path, tokenizer: Path, pack: Path) -> list[str]:
    roots = make_fake_roots(roots_base)
    assert roots.stdlib and roots.doc and roots.common_licenses
    return [
        "--cpu", "--preset", "tiny", "--minutes", "0.25", "--seq-len", "32", "--batch-size", "4",
        "--threads", "1", "--eval-every", "5", "--eval-batches", "2", "--bench-windows", "8",
        "--no-progress", "--tokenizer", str(tokenizer), "--held-out-fraction", "0.25",
        "--stdlib", str(roots.stdlib), "--doc", str(roots.doc),
        "--common-licenses", str(roots.common_licenses),
        "--site-packages", str(roots.site_packages[0]), "--pack", str(pack),
    ]


@pytest.fixture(scope="module")
def recipe_run(
    tmp_path_factory: pytest.TempPathFactory, toy_tokenizer: Path,  # noqa: F811
) -> tuple[Path, list[str], subprocess.CompletedProcess[str], dict[str, str]]:
    """One run of the script on the CPU, as the GPU image would let it import."""
    base = tmp_path_factory.mktemp("recipe")
    args = recipe_args(base / "roots", toy_tokenizer, base / "pack")
    env = guard_env(base / "guard", "block")
    proc = run_script(base / "out", *args, env=env)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return base / "out", args, proc, env


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.slow
def test_the_run_trains_both_models_and_they_load(recipe_run: Any) -> None:
    out, _, proc, _ = recipe_run
    drafter = AutoModelForCausalLM.from_pretrained(out / "drafter", dtype=torch.float32)
    refiner = RefinerModel.from_pretrained(out / "refiner", dtype=torch.float32)
    ids = torch.randint(0, drafter.config.vocab_size, (1, 32))
    assert drafter(input_ids=ids).logits.shape == (1, 32, drafter.config.vocab_size)
    assert refiner(input_ids=ids).logits.shape == (1, 32, refiner.config.vocab_size)
    for model in (drafter, refiner):  # the trained context is the one the config claims
        assert model.config.max_position_embeddings == 32
        assert next(model.parameters()).dtype == torch.float32
    info = {name: read_json(out / name / "training.json") for name in ("drafter", "refiner")}
    assert all(i["steps"] >= 1 and i["hardware"]["device"] == "cpu" for i in info.values())
    assert info["refiner"]["init_from"], "the refiner was not warm-started from the drafter"
    assert info["drafter"]["command"].startswith(f"scripts/train_gpu.sh {out}")
    summary = read_json(out / "summary.json")
    assert summary["models"]["refiner"]["steps"] == info["refiner"]["steps"]
    assert summary["models"]["drafter"]["final_held_out_pkg"]["loss"] > 0  # whole packages
    assert set(summary["seconds"]) >= {"corpus", "plan", "drafter", "refiner", "eval", "export"}
    assert '"held_out_packages"' in proc.stdout  # the summary printed at the end
    assert (out / "recipe.log").read_text(encoding="utf-8").startswith(proc.stdout)


@pytest.mark.slow
def test_weights_are_small_shards_with_no_optimizer_state(recipe_run: Any) -> None:
    out, _, _, _ = recipe_run
    weights = sorted(out.glob("*/*.safetensors"))
    assert {p.parent.name for p in weights} == {"drafter", "refiner"}
    assert 2 <= len(weights) <= 8
    assert all(p.stat().st_size <= MAX_FILE_BYTES for p in out.glob("*/*") if p.is_file())
    assert not list(out.glob("*/checkpoint.pt"))
    for name in ("drafter", "refiner"):
        assert (out / name / "README.md").is_file() and (out / name / "loss_curve.svg").is_file()
        assert (out / name / "tokenizer.json").is_file()
        assert read_json(out / name / "training.json")["saved"]["dtype"] == "bfloat16"


@pytest.mark.slow
def test_eval_json_has_both_models_on_both_held_out_splits(recipe_run: Any) -> None:
    out, _, _, _ = recipe_run
    figures = read_json(out / "eval.json")
    for split in ("held_out", "held_out_packages"):
        d, r = figures["drafter"][split], figures["refiner"][split]
        assert math.isfinite(d["loss"]) and d["perplexity"] == pytest.approx(math.exp(d["loss"]),
                                                                               rel=1e-3)
        assert math.isfinite(d["fim_loss"]) and math.isfinite(r["loss"])
        assert 0.0 <= r["masked_acc_0.15"] <= 1.0 and 0.0 <= r["edit_auc"] <= 1.0
    bench = figures["bench"]
    assert 0.0 <= bench["refiner"]["masked_token_accuracy"]["0.15"] <= 1.0
    # the drafter's runtime needs a package the image lacks: recorded, not fatal
    assert bench["drafter"]["error"].startswith("ImportError: No module named")
    assert "not on the GPU image" in bench["drafter"]["error"]


@pytest.mark.slow
def test_the_pack_is_few_small_parts_that_unpack_to_the_models(recipe_run: Any) -> None:
    out, args, _, _ = recipe_run
    pack = Path(args[args.index("--pack") + 1])
    parts = sorted(pack.iterdir())
    assert 1 <= len(parts) <= 8 and all(p.name.startswith(PACK_NAME) for p in parts)
    assert all(p.stat().st_size <= MAX_FILE_BYTES for p in parts)
    whole = b"".join(p.read_bytes() for p in parts)
    with tarfile.open(fileobj=io.BytesIO(whole), mode="r:gz") as tar:
        names = set(tar.getnames())
        shard = next(n for n in names if n.startswith("refiner/") and n.endswith(".safetensors"))
        member = tar.extractfile(shard)
        assert member is not None and member.read() == (out / shard).read_bytes()
    assert {"eval.json", "summary.json", "plan.json", "recipe.jsonl", "drafter/config.json",
            "refiner/config.json", "drafter/tokenizer.json"} <= names
    assert not any(n.startswith("corpus/") or n.endswith("checkpoint.pt") for n in names)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_a_rerun_resumes_instead_of_starting_over(recipe_run: Any) -> None:
    out, args, _, env = recipe_run
    before = {p: sha(p) for p in out.glob("*/*.safetensors")}
    proc = run_script(out, *args, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert {p: sha(p) for p in out.glob("*/*.safetensors")} == before
    records = [json.loads(line) for line in (out / "recipe.jsonl").read_text().splitlines()]
    last = {r["step"]: r["status"] for r in records}  # the rerun's records come last
    assert last["corpus"] == "skipped (built before)"
    assert last["plan"] == "kept from the earlier run"
    assert last["drafter"] == last["refiner"] == "skipped (trained before)"
    assert last["eval"] == "skipped (evaluated before)"


def test_other_settings_in_the_same_folder_are_refused_with_exit_1(
    tmp_path: Path, toy_corpus: Path, toy_tokenizer: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["--out", str(tmp_path), "--cpu", "--preset", "tiny", "--corpus", str(toy_corpus),
            "--tokenizer", str(toy_tokenizer), "--no-progress"]
    earlier = gpu_recipe.make_plan(gpu_recipe.parse_args([*argv, "--seq-len", "32"]), "cpu", 60)
    gpu_recipe.load_or_make_plan(tmp_path, earlier)
    pack = tmp_path / "pack"
    assert gpu_recipe.main([*argv, "--seq-len", "48", "--pack", str(pack)]) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("error: ") and "seq_len=32" in err
    assert "rerun with the same --seq-len" in err
    assert not (tmp_path / "drafter").exists()  # refused before any training
    # what there is still comes back packed: the log that says why it stopped
    with tarfile.open(fileobj=io.BytesIO((pack / f"{PACK_NAME}.000").read_bytes())) as tar:
        assert {"recipe.jsonl", "plan.json"} <= set(tar.getnames())


# ------------------------------------------------------------------------------------------
# the parts, without training


def args_of(*extra: str) -> Any:
    return gpu_recipe.parse_args(["--out", "x", *extra])


def test_the_deadline_cuts_training_and_refuses_when_nothing_is_left() -> None:
    roomy = args_of("--minutes", "9", "--deadline-minutes", "12")
    assert gpu_recipe.training_seconds(roomy, spent=10.0) == 540.0  # 9 minutes fit
    args = args_of("--minutes", "9", "--deadline-minutes", "9.5")
    cut = gpu_recipe.training_seconds(args, spent=120.0)
    assert cut == 570.0 - 120.0 - gpu_recipe.EVAL_RESERVE_S
    with pytest.raises(RecipeError, match="--deadline-minutes 9.5"):
        gpu_recipe.training_seconds(args, spent=505.0)
    plan = gpu_recipe.make_plan(args, "cuda", 100.0)
    assert plan.drafter_seconds + plan.refiner_seconds == pytest.approx(100.0)
    assert plan.drafter_seconds > plan.refiner_seconds and plan.batch_size == 64
    assert gpu_recipe.make_plan(args, "cpu", 100.0).batch_size == 16


def test_a_stored_plan_is_kept_and_a_different_one_refused(tmp_path: Path) -> None:
    plan = gpu_recipe.make_plan(args_of(), "cuda", 300.0)
    assert gpu_recipe.load_or_make_plan(tmp_path, plan) == (plan, False)
    longer = gpu_recipe.make_plan(args_of("--minutes", "20"), "cuda", 900.0)
    assert gpu_recipe.load_or_make_plan(tmp_path, longer) == (plan, True)  # budgets kept
    with pytest.raises(RecipeError, match="--preset"):
        gpu_recipe.load_or_make_plan(tmp_path, replace(plan, preset="tiny"))
    with pytest.raises(RecipeError, match="--cpu"):
        gpu_recipe.load_or_make_plan(tmp_path, replace(plan, device="cpu"))


def test_sizes_over_the_limits_fail_loudly() -> None:
    ok = {"drafter/model.safetensors": 10 * 2**20, "drafter/tokenizer.json": 500_000}
    gpu_recipe.check_sizes(ok)
    with pytest.raises(RecipeError, match=r"drafter/model.safetensors \(15.5 MiB\)"):
        gpu_recipe.check_sizes({"drafter/model.safetensors": int(15.5 * 2**20)})
    many = {f"refiner/model-{i:05d}-of-00009.safetensors": 1000 for i in range(1, 10)}
    with pytest.raises(RecipeError, match="9 weight files"):
        gpu_recipe.check_sizes(many)
    with pytest.raises(RecipeError, match="no .safetensors"):
        gpu_recipe.check_sizes({"drafter/config.json": 10})


def test_the_pack_splits_into_parts_and_refuses_too_many(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "out"
    (out / "drafter").mkdir(parents=True)
    (out / "corpus").mkdir()
    (out / "drafter" / "model.safetensors").write_bytes(os.urandom(50_000))  # incompressible
    (out / "drafter" / "checkpoint.pt").write_bytes(b"optimizer state")
    (out / "corpus" / "train.jsonl").write_text("{}\n")
    (out / "eval.json").write_text("{}")
    monkeypatch.setattr(gpu_recipe, "MAX_FILE_BYTES", 20_000)
    parts = gpu_recipe.pack(out, tmp_path / "pack")
    assert parts == [f"{PACK_NAME}.{i:03d}" for i in range(3)]
    whole = b"".join((tmp_path / "pack" / p).read_bytes() for p in parts)
    with tarfile.open(fileobj=io.BytesIO(whole), mode="r:gz") as tar:
        assert sorted(tar.getnames()) == ["drafter/model.safetensors", "eval.json"]
    monkeypatch.setattr(gpu_recipe, "MAX_FILE_BYTES", 5_000)
    with pytest.raises(RecipeError, match="more than 8 parts"):
        gpu_recipe.pack(out, tmp_path / "pack")


def test_the_recorded_command_is_the_wrappers() -> None:
    argv = ["--out", "/tmp/run", "--cpu", "--preset", "tiny", "--out=/x", "--minutes", "1"]
    assert (gpu_recipe.recipe_command(argv, Path("/tmp/run"))
            == "scripts/train_gpu.sh /tmp/run --cpu --preset tiny --minutes 1")


def test_the_default_tokenizer_is_the_committed_one() -> None:
    assert (gpu_recipe.DEFAULT_TOKENIZER / "tokenizer.json").is_file()
    assert gpu_recipe.DEFAULT_TOKENIZER == REPO / "models" / "tokenizer"
