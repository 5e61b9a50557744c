"""`routine finetune`: real trl + peft training of a tiny Qwen3-shaped model on CPU."""

from __future__ import annotations

import asyncio
import itertools
import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")
pytest.importorskip("peft")

from routine.finetune.distill import distill, write_sft  # noqa: E402
from routine.finetune.random_model import bpe_tokenizer, random_model  # noqa: E402
from routine.finetune.schedules import multiplier, refined_from_grad_norms  # noqa: E402
from routine.finetune.train import finetune, load_recipe  # noqa: E402

from .conftest import ROOT  # noqa: E402

RETAIL = ROOT / "eval" / "datasets" / "retail"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """SFT data of a few retail trajectories and a tiny random model that knows its words."""
    folder = tmp_path_factory.mktemp("tiny")
    rows, _ = asyncio.run(distill(RETAIL, variants=("distilled",)))
    rows = [r for r in rows if r.routine == "order_status"][:6]
    data = write_sft(rows, folder / "sft.jsonl")
    texts = [json.dumps(r.prompt + r.completion) for r in rows] + [r.tools for r in rows]
    base = random_model(folder / "base", bpe_tokenizer(texts))
    return data, base


def _weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.timeout(600)
def test_lora_training_moves_the_adapter_not_the_base_and_resumes(tiny, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    data, base = tiny
    config = load_recipe(None, data=data, base=str(base), out=tmp_path / "run",
                         variants=["distilled"], max_steps=6, gradient_accumulation=1,
                         learning_rate=5e-3, max_length=4096, precision="fp32",
                         gradient_checkpointing=False, save_steps=3, schedule="rex")
    result = finetune(config)
    assert result.steps == 6 and len(result.losses) == 6
    assert min(result.losses[-2:]) < result.losses[0]  # the loss fell
    before = _weights(AutoModelForCausalLM.from_pretrained(base))
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base),
                                      result.adapter)
    lora = {k: v for k, v in model.state_dict().items() if "lora_B" in k}
    assert lora and any(v.abs().sum() > 0 for v in lora.values())  # B starts at 0: it moved
    merged = _weights(model.get_base_model())
    untouched = [k for k in before if "lora" not in k]
    base_after = {k.replace("base_layer.", ""): v for k, v in merged.items() if "lora" not in k}
    assert all(torch.equal(before[k], base_after[k]) for k in untouched if k in base_after)
    tokenizer = AutoTokenizer.from_pretrained(result.adapter)
    ids = tokenizer("<|im_start|>user\nhello<|im_end|>\n", return_tensors="pt").input_ids
    generated = model.generate(ids, max_new_tokens=4, do_sample=False)
    assert generated.shape[1] == ids.shape[1] + 4  # the adapter reloads and generates
    # stopped and started again: a longer run resumes from the last checkpoint
    again = finetune(config.model_copy(update={"max_steps": 8}))
    assert again.resumed_from is not None and again.resumed_from.endswith("checkpoint-6")
    assert again.steps == 8


def test_recipe_and_flags():
    recipe = ROOT / "finetune" / "recipes" / "embedded-0.5b-cpu.yaml"
    config = load_recipe(recipe, data="d.jsonl", out="o", learning_rate=None, lora_r=4)
    assert config.base == "qwen2.5-coder-0.5b" and config.lora_r == 4
    assert config.learning_rate == 1e-4  # a None flag leaves the recipe's value
    with pytest.raises(Exception, match="lora_rr"):
        load_recipe(None, data="d", base="b", out="o", lora_rr=3)


def test_schedules_have_their_shapes():
    assert multiplier("linear")(0.25) == pytest.approx(0.75)
    assert multiplier("rex")(0.5) == pytest.approx(0.5 / 0.75)  # above linear mid-run
    assert multiplier("rex")(1.0) == 0.0
    assert multiplier("uba", phi=2.0)(0.3) == pytest.approx(multiplier("cosine")(0.3))
    assert multiplier("uba", phi=0.5)(0.5) > multiplier("cosine")(0.5)  # small φ stays high
    flat = refined_from_grad_norms([1.0] * 50)  # constant norms: linear decay
    assert flat[0] == pytest.approx(1.0) and flat[-1] == 0.0
    assert flat[500] == pytest.approx(0.5, abs=0.01)
    shape = refined_from_grad_norms([10.0] * 10 + [1.0] * 90)  # large early norms
    assert max(shape) == pytest.approx(1.0) and shape[-1] == 0.0
    assert shape[0] < 0.1 < shape[300]  # it warms up by itself, then anneals
    with pytest.raises(ValueError, match="unknown schedule"):
        multiplier("magic")


@pytest.mark.timeout(600)
def test_cli_recipe_with_flags_on_top(tiny, tmp_path, capsys):
    from routine.cli.commands import main

    data, base = tiny
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"base: {base}\nlora_r: 4\nschedule: cosine\nmax_steps: 50\n"
                      "precision: fp32\ngradient_accumulation: 1\nmax_length: 4096\n")
    out = tmp_path / "run"
    code = main(["finetune", "--recipe", str(recipe), "--data", str(data), "--out", str(out),
                 "--max-steps", "2", "--variants", "distilled", "--no-gradient-checkpointing"])
    assert code == 0, capsys.readouterr()
    saved = json.loads((out / "config.json").read_text())
    assert (saved["lora_r"], saved["schedule"], saved["max_steps"]) == (4, "cosine", 2)
    assert saved["gradient_checkpointing"] is False
    log = json.loads((out / "log.json").read_text())
    assert log["steps"] == 2 and (out / "adapter" / "adapter_config.json").exists()
    assert main(["finetune", "--recipe", str(recipe), "--out", str(out)]) == 2  # no --data
    assert "data" in capsys.readouterr().err


@pytest.mark.timeout(900)
def test_schedule_comparison_runs_each_schedule_and_seed_once_and_resumes(tiny, tmp_path,
                                                                          monkeypatch):
    from routine.finetune import compare as comparing

    data, _ = tiny
    # a random base built in memory; its tokenizer learns the data's words
    config = load_recipe(None, data=data, eval_data=data, base="random:tiny",
                         out=tmp_path / "unused", variants=["distilled"], max_steps=3,
                         gradient_accumulation=1, learning_rate=5e-3, max_length=4096,
                         precision="fp32", gradient_checkpointing=False, save_steps=10)
    out = tmp_path / "cmp"
    result = comparing.compare_schedules(config, ["rex", "refined", "uba:0.5"], [0, 1], out)
    assert {(r.schedule, r.seed) for r in result.runs} == {
        (s, seed) for s in ("rex", "refined", "uba:0.5") for seed in (0, 1)}
    assert (out / "linear-seed0" / "log.json").exists()  # refined's pilot ran first
    refined = json.loads((out / "refined-seed1" / "config.json").read_text())
    assert refined["pilot"].endswith("linear-seed1") and refined["seed"] == 1
    assert json.loads((out / "uba-0.5-seed0" / "config.json").read_text())["uba_phi"] == 0.5
    assert all(r.eval_loss > 0 and r.steps == 3 for r in result.runs)
    assert [row.schedule for row in result.table] == sorted(
        (row.schedule for row in result.table),
        key=lambda s: next(r.eval_loss for r in result.table if r.schedule == s))
    assert "| schedule | held-out loss" in (out / "comparison.md").read_text()

    def no_training(config):
        raise AssertionError(f"{config.out} ran again")

    monkeypatch.setattr(comparing, "finetune", no_training)  # resumed: nothing reruns
    again = comparing.compare_schedules(config, ["rex", "refined", "uba:0.5"], [0, 1], out)
    assert again.table == result.table


def test_a_winner_must_beat_the_runner_up_in_every_seed_by_more_than_the_spread(tmp_path):
    from routine.finetune.compare import ScheduleRun, parse_schedule, summarise

    def runs(name, losses):
        return [ScheduleRun(schedule=name, seed=i, folder=tmp_path, eval_loss=v,
                            final_train_loss=v, steps=3, seconds=1, tokens_per_second=1)
                for i, v in enumerate(losses)]

    clear = runs("rex", [1.0, 1.1, 0.9]) + runs("linear", [1.2, 1.3, 1.1])
    rows, winner = summarise(clear, ["linear", "rex"])
    assert winner == "rex" and rows[0].schedule == "rex"
    assert rows[1].gap == pytest.approx(0.2) and rows[1].worse_in_every_seed
    mixed = runs("rex", [1.0, 1.3, 0.9]) + runs("linear", [1.2, 1.1, 1.0])
    rows, winner = summarise(mixed, ["linear", "rex"])
    assert winner is None and not rows[1].worse_in_every_seed  # linear won seed 1
    noisy = runs("rex", [1.0, 1.0, 1.0]) + runs("linear", [1.01, 1.5, 1.02])
    assert summarise(noisy, ["linear", "rex"])[1] is None  # gap 0.18 ± 0.28: no difference
    # a schedule that diverged (NaN held-out loss in one seed) ranks last, never wins: NaN
    # compared false with everything, so where it sorted depended on the order given
    diverged = runs("uba:2", [float("nan"), 0.5, 0.5]) + runs("rex", [1.0, 1.1, 0.9]) + \
        runs("linear", [1.2, 1.3, 1.1])
    for order in (["uba:2", "rex", "linear"], ["rex", "linear", "uba:2"]):
        rows, winner = summarise(diverged, order)
        assert [r.schedule for r in rows] == ["rex", "linear", "uba:2"] and winner == "rex"
    assert parse_schedule("uba:0.5") == ("uba", 0.5)
    for bad in ("magic", "rex:1", "uba:x"):
        with pytest.raises(Exception, match="schedule|parameter|number"):
            parse_schedule(bad)


def test_a_comparison_needs_a_budget_and_held_out_data(tmp_path):
    from routine.finetune.compare import compare_schedules

    config = load_recipe(None, data="d.jsonl", base="random:tiny", out=tmp_path)
    with pytest.raises(Exception, match="max-steps"):
        compare_schedules(config, ["rex"], [0], tmp_path)
    with pytest.raises(Exception, match="eval-data"):
        compare_schedules(config.model_copy(update={"max_steps": 2}), ["rex"], [0], tmp_path)


@pytest.mark.timeout(300)
def test_the_gpu_throughput_benchmark_runs_at_a_tiny_shape(tmp_path):
    import subprocess
    import sys

    script = ROOT / "benchmarks" / "finetune-gpu" / "bench.py"
    done = subprocess.run([sys.executable, str(script), "--shape", "tiny", "--seq", "128",
                           "--steps", "2", "--configs", "reference", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((tmp_path / "results.json").read_text())[0]
    assert result["config"] == "reference" and result["steps"] == 2
    assert result["tokens_per_s"] > 0 and result["parameters"] > 0
    rows = [json.loads(line) for line in (tmp_path / "data.jsonl").read_text().splitlines()]
    assert len(rows) == 8  # batch 4 x 2 steps, each rendered to at most --seq tokens


def test_every_recipe_is_a_valid_config():
    recipes = sorted((ROOT / "finetune" / "recipes").glob("*.yaml"))
    assert len(recipes) >= 4
    for recipe in recipes:
        config = load_recipe(recipe, data="d.jsonl", out="o")
        assert config.lora_r == 8, recipe


def test_eval_limit_takes_a_fixed_subset(tiny):
    from routine.finetune.train import _rows

    data, _ = tiny
    assert len(_rows(data, ["distilled"], 2)) == 2
    assert len(_rows(data, ["distilled"])) == len(data.read_text().splitlines()) == 4
    assert _rows(data, ["distilled"], 2)[0] == _rows(data, ["distilled"])[0]


def test_balanced_variants_take_as_many_rows_of_each(tmp_path):
    from routine.finetune.distill import SftExample
    from routine.finetune.train import _rows, balance_variants

    def row(i: int, variant: str) -> SftExample:
        return SftExample(id=f"e{i}:{variant}", example_id=f"e{i}", template="t", split="train",
                          routine="r", variant=variant, source="gold", step=0,
                          prompt=[{"role": "user", "content": f"q{i}"}],
                          completion=[{"role": "assistant", "content": f"a{i}"}], tools="[]")

    rows = [row(i, "compact") for i in range(9)] + [row(i, "distilled") for i in range(3)]
    picked = balance_variants(rows, seed=0)
    assert [r.variant for r in picked].count("compact") == 3
    assert [r for r in picked if r.variant == "distilled"] == rows[9:]  # the smallest: all
    assert picked == [r for r in rows if r in picked]  # the data's order kept
    assert balance_variants(rows, seed=0) == picked  # the seed decides the sample
    assert any(balance_variants(rows, seed=s) != picked for s in range(1, 6))
    data = tmp_path / "sft.jsonl"
    write_sft(rows, data)
    assert len(_rows(data, ["compact", "distilled"], balance=True)) == 6
    assert len(_rows(data, ["compact", "distilled"])) == 12
    assert len(_rows(data, ["compact"], balance=True)) == 9  # one variant: nothing to balance


def test_every_reply_of_a_merged_row_is_trained_and_nothing_else(tiny):
    """The loss mask: each assistant reply (through its end of turn), never the prompt or a
    tool result; a one-reply row gets the span trl gives a prompt-completion row."""
    from transformers import AutoTokenizer

    from routine.finetune.distill import load_sft
    from routine.finetune.train import _ids, tokenize_rows

    data, base = tiny
    tokenizer = AutoTokenizer.from_pretrained(base)
    row = next(r for r in load_sft(data) if r.turns >= 3)
    (tokens,) = tokenize_rows([row], tokenizer)
    ids, mask = tokens["input_ids"], tokens["completion_mask"]
    spans = list(_runs(mask))
    assert len(spans) == row.turns
    tools = json.loads(row.tools)
    for (start, end), index in zip(spans, row.trained(), strict=True):
        asked = _ids(tokenizer, row.messages[:index], tools, generation=True)
        assert ids[:start] == asked  # trained on exactly what the executor sent then
        call = row.messages[index]["tool_calls"][0]["function"]
        assert call["name"] in tokenizer.decode(ids[start:end])
    trained = tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if m])
    for message in row.messages:
        if message["role"] == "tool":
            assert message["content"][:40] not in trained
    single = row.model_copy(update={"turns": 1, "completion": [row.messages[row.trained()[0]]],
                                    "prompt": row.messages[:row.trained()[0]]})
    (one,) = tokenize_rows([single], tokenizer)
    asked = _ids(tokenizer, single.prompt, tools, generation=True)
    assert one["completion_mask"] == [0] * len(asked) + [1] * (len(one["input_ids"]) - len(asked))


def test_text_calls_are_trained_as_the_model_writes_them(tiny):
    """reply_format text: each reply a row of its own (its prompt as the executor sent it,
    earlier calls in the template's form), the call as bare JSON, no <tool_call> tag."""
    from transformers import AutoTokenizer

    from routine.finetune.distill import load_sft
    from routine.finetune.train import FinetuneConfig, as_text_calls, resolve_reply_format, tokenize_rows

    data, base = tiny
    tokenizer = AutoTokenizer.from_pretrained(base)
    row = next(r for r in load_sft(data) if r.turns >= 3)
    split = as_text_calls([row])
    assert len(split) == row.turns and len({r.id for r in split}) == row.turns
    for one, index in zip(split, row.trained(), strict=True):
        assert one.prompt == row.messages[:index] and one.turns == 1
        (reply,) = one.completion
        call = row.messages[index]["tool_calls"][0]["function"]
        assert "tool_calls" not in reply
        assert json.loads(reply["content"]) == {"name": call["name"],
                                                "arguments": json.loads(call["arguments"])}
    tokens = tokenize_rows(split, tokenizer)
    for one, t in zip(split, tokens, strict=True):
        trained = tokenizer.decode([x for x, m in zip(t["input_ids"], t["completion_mask"],
                                                      strict=True) if m])
        assert one.completion[0]["content"] in trained and "tool_call" not in trained
    text = FinetuneConfig(base="qwen2.5-coder-0.5b", data="d.jsonl", out="o")
    assert resolve_reply_format(text) == "text"  # the embedded models write bare JSON
    assert resolve_reply_format(text.model_copy(update={"base": "random:tiny"})) == "template"
    assert resolve_reply_format(text.model_copy(update={"reply_format": "template"})) == "template"


def _runs(mask):
    """(start, end) of each run of 1s."""
    at = 0
    for value, group in itertools.groupby(mask):
        size = len(list(group))
        if value:
            yield at, at + size
        at += size


def test_auto_precision_of_a_resumed_run_is_the_one_it_started_with(tmp_path, monkeypatch):
    """A busy machine must not switch a run from bf16 to fp32 halfway (the probe once did)."""
    from routine.finetune import train

    config = load_recipe(None, data=tmp_path / "sft.jsonl", base="qwen2.5-coder-0.5b",
                         out=tmp_path / "run", precision="auto")
    probed = []
    monkeypatch.setattr(train, "probe_bf16", lambda: probed.append(1) or False)
    assert train.resolve_bf16(config) is False and probed == [1]  # a new run probes
    config.out.mkdir()
    (config.out / "config.json").write_text(json.dumps({"precision": "bf16"}))
    assert train.resolve_bf16(config) is False  # no checkpoint yet: probes again
    (config.out / "checkpoint-2").mkdir()
    (config.out / "checkpoint-2" / "trainer_state.json").write_text("{}")
    assert train.resolve_bf16(config) is True and len(probed) == 2  # resumes as it started
    assert train.resolve_bf16(config.model_copy(update={"precision": "fp32"})) is False


def test_a_finished_run_records_the_precision_it_ran_in(tiny, tmp_path):
    data, base = tiny
    config = load_recipe(None, data=data, base=str(base), out=tmp_path / "run",
                         variants=["distilled"], max_steps=1, gradient_accumulation=1,
                         max_length=4096, precision="fp32", gradient_checkpointing=False)
    finetune(config)
    assert json.loads((config.out / "config.json").read_text())["precision"] == "fp32"
