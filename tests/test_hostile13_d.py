"""Thirteenth hostile round (d): an insurance broker's renewals desk fine-tunes on its own
runs. Its project (a policy lookup, a renewal, a claims tool the routine does not use) is
distilled from gold and from signed `routine run` traces; the adapter is trained, compared
across schedules, exported to GGUF and served with vLLM. What broke: an edited signed trace
became training data, rates and budgets no run can use were accepted, a log cut short was a
bare ValidationError, a comparison reported another configuration's runs, a rerun with
another rate or re-distilled data was returned as "this run, finished", held-out data of
the training templates was measured without a word, vLLM was given a LoRA rank it refuses,
a printed command split a path at its space, and the GGUF export dropped tensors it could
not write. No model is loaded and nothing is trained: every check acts before training."""

from __future__ import annotations

import asyncio
import json
import shlex
import sys
from pathlib import Path

import pytest

from routine.cli.commands import main
from routine.errors import RoutineError, RoutineWarning
from routine.eval.dataset import load_dataset, load_domain
from routine.finetune.distill import distill, write_sft
from routine.models.testing import ScriptedModel, text_call
from routine.run.executor import Agent
from routine.run.trace import dump_traces, load_traces

KEY = "renewals-desk-signing-key-0123456789"

TOOLS = '''
from __future__ import annotations
import contextlib, sqlite3
from dataclasses import dataclass
from pydantic import BaseModel
from routine import RunContext, Toolset
from routine.tools.sqlite import SeededSqlite, snapshot

def build(conn):
    conn.executescript("""
        CREATE TABLE policies (id INTEGER PRIMARY KEY, number TEXT UNIQUE, holder TEXT,
                               premium REAL, status TEXT DEFAULT 'due');
        CREATE TABLE renewals (id INTEGER PRIMARY KEY, policy_id INTEGER, premium REAL);
    """)
    conn.executemany("INSERT INTO policies (number, holder, premium) VALUES (?, ?, ?)",
                     [("HX-1001", "Ana Lima", 420.0), ("HX-1002", "Ben Okoro", 515.5),
                      ("HX-1003", "Chloe Martin", 380.25), ("HX-1004", "Dev Patel", 610.0)])

_SEEDED = SeededSqlite(build)

@dataclass
class Db:
    conn: sqlite3.Connection
    def state_snapshot(self):
        return snapshot(self.conn)

@contextlib.contextmanager
def fresh():
    with _SEEDED.connect() as conn:
        yield Db(conn)

toolset = Toolset("renewals", setup=fresh)

class Policy(BaseModel):
    policy_id: int
    holder: str
    premium: float

class Renewal(BaseModel):
    renewal_id: int
    premium: float

@toolset.tool
def find_policy(ctx: RunContext[Db], number: str) -> Policy:
    """Look a policy up by its number.

    Args:
        number: the policy number, e.g. HX-1001.
    """
    row = ctx.deps.conn.execute("SELECT * FROM policies WHERE number = ?", (number.strip(),)).fetchone()
    if row is None:
        raise LookupError(f"no policy {number!r}")
    return Policy(policy_id=row["id"], holder=row["holder"], premium=row["premium"])

@toolset.tool
def renew_policy(ctx: RunContext[Db], policy_id: int) -> Renewal:
    """Renew a policy for another year at a 5% higher premium.

    Args:
        policy_id: the policy's id.
    """
    conn = ctx.deps.conn
    row = conn.execute("SELECT premium FROM policies WHERE id = ?", (policy_id,)).fetchone()
    if row is None:
        raise LookupError(f"no policy with the id {policy_id}")
    premium = round(row["premium"] * 1.05, 2)
    with conn:
        cur = conn.execute("INSERT INTO renewals (policy_id, premium) VALUES (?, ?)", (policy_id, premium))
        conn.execute("UPDATE policies SET status = 'renewed' WHERE id = ?", (policy_id,))
    return Renewal(renewal_id=cur.lastrowid or 0, premium=premium)

@toolset.tool
def list_claims(ctx: RunContext[Db], policy_id: int) -> list[str]:
    """Claims on a policy (unused by the renewal routine).

    Args:
        policy_id: the policy's id.
    """
    return []
'''

ROUTINE = '''name: renew_policy
description: Renew a client's insurance policy for another year.
toolsets: [renewals]
inputs:
  number: {type: string, description: "the policy number"}
steps:
  - id: find_policy
    name: Find the policy
    description: Look the policy up by its number.
    tool: find_policy
    args:
      number: ${inputs.number}
  - id: renew
    name: Renew it
    description: Renew the policy found.
    tool: renew_policy
    args:
      policy_id: ${steps.find_policy.output.policy_id}
  - id: answer
    name: Answer
    description: Tell the client the new premium.
    finish: true
    answer: "Renewed: the new premium is {{ steps.renew.output.premium }}."
'''

DOMAIN = '''
from routine.eval.dataset import Domain, Template

NUMBERS = ["HX-1001", "HX-1002", "HX-1003", "HX-1004"]

def sample(deps, rng):
    return {"number": rng.choice(NUMBERS)}

def answer(values, outputs):
    premium = outputs["renew"]["premium"]
    return f"Renewed: the new premium is {premium}.", [str(premium)]

DOMAIN = Domain(
    name="renewals", toolsets=["renewals"], routines_dir="routines", seed=3,
    templates=[
        Template(id="renew.plain", scenario="renew", split="train", routine="renew_policy",
                 phrasings=["Please renew policy {number}.", "Renew {number} for me."],
                 sample=sample, answer=answer, count=4),
        Template(id="renew.dev", scenario="renew", split="dev", routine="renew_policy",
                 phrasings=["Can policy {number} be renewed?"], sample=sample,
                 answer=answer, count=2),
        Template(id="renew.test", scenario="renew", split="test", routine="renew_policy",
                 phrasings=["Client wants {number} renewed."], sample=sample,
                 answer=answer, count=2),
    ])
'''

TOML = '''routines = ["routines"]
[toolsets]
renewals = "renewals_tools"
[datasets]
trusted = ["eval/*"]
'''


@pytest.fixture
def desk(tmp_path, monkeypatch):
    """The renewals desk's project, its gold data built, as the working directory."""
    for var in ("ROUTINE_PROJECT", "ROUTINE_TRACE_KEY"):
        monkeypatch.delenv(var, raising=False)
    folder = tmp_path / "renewals desk"
    (folder / "routines").mkdir(parents=True)
    (folder / "eval" / "renewals").mkdir(parents=True)
    (folder / "routine.toml").write_text(TOML)
    (folder / "renewals_tools.py").write_text(TOOLS)
    (folder / "routines" / "renew_policy.yaml").write_text(ROUTINE)
    (folder / "eval" / "renewals" / "domain.py").write_text(DOMAIN)
    monkeypatch.chdir(folder)
    assert main(["dataset", "build", "eval/renewals"]) == 0
    yield folder
    sys.modules.pop("renewals_tools", None)
    sys.path[:] = [p for p in sys.path if p != str(folder.resolve())]


def _sft(path: Path, split: str = "train") -> Path:
    rows, _ = asyncio.run(distill("eval/renewals", split=split, variants=("compact",)))
    return write_sft(rows, path)


def test_an_edited_signed_trace_is_not_trained_on(desk, monkeypatch):
    """The desk signs its traces (ROUTINE_TRACE_KEY). One line was edited to add a promise
    to the answer ("we also waived your excess"); the judge reads only the answer's facts
    (the new premium), so `routine distill --traces` trained the promise as the right
    reply: a signed trace was checked when a conversation resumed, never when distilled."""
    monkeypatch.setenv("ROUTINE_TRACE_KEY", KEY)
    domain = load_domain("eval/renewals")
    routines = {n: loaded.routine for n, loaded in domain.routines().items()}
    example = load_dataset("eval/renewals", ("train",))[0]
    model = ScriptedModel([text_call(c.name, **c.arguments) for c in example.calls]
                          + [text_call("finish", answer=example.answer)])
    trace = Agent(routines["renew_policy"], domain.registry(), model).run(example.query)
    dump_traces([trace], "traces.jsonl")
    line = Path("traces.jsonl").read_text()
    said = json.dumps(example.answer)
    assert line.count(f'"answer":{said}') == 1
    Path("edited.jsonl").write_text(line.replace(
        f'"answer":{said}', f'"answer":{said[:-1]} We also waived your excess."'))
    rows, _ = asyncio.run(distill("eval/renewals", gold=False, variants=("compact",),
                                  traces=list(load_traces("traces.jsonl"))))
    assert rows  # the trace as it was signed is training data
    with pytest.raises(RoutineError, match="does not match its signature.*training data"):
        asyncio.run(distill("eval/renewals", gold=False, variants=("compact",),
                            traces=list(load_traces("edited.jsonl"))))
    assert main(["distill", "eval/renewals", "--traces", "edited.jsonl", "--out", "sft.jsonl",
                 "--no-count-tokens"]) == 1
    assert not Path("sft.jsonl").exists()


@pytest.mark.parametrize("flag, value, said", [
    ("--learning-rate", "inf", "finite"),  # before: trained NaN into the adapter
    ("--epochs", "inf", "finite"),  # before: OverflowError after the model loaded
    ("--max-steps", "0", "0 steps is no run"),  # before: a full run of the epochs
])
def test_a_rate_or_budget_no_run_can_use_is_refused(tmp_path, capsys, flag, value, said):
    """`--learning-rate inf` and `--epochs inf` passed the config's `gt=0` checks, and
    `--max-steps 0` (allowed by `ge=-1`) is what transformers reads as "the epochs decide":
    each reached the trainer; now each is one usage error before anything is read."""
    code = main(["finetune", "--data", str(tmp_path / "missing.jsonl"), "--base", "random:tiny",
                 "--out", str(tmp_path / "run"), "--precision", "fp32", flag, value])
    err = capsys.readouterr().err
    assert code == 2 and flag in err and said in err, err


def _finished_run(out: Path, config, **recorded) -> None:
    """A run folder as `routine finetune` leaves a finished run."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(
        config.model_dump(mode="json") | {"reply_format": "template"} | recorded))
    (out / "log.json").write_text(json.dumps({
        "adapter": str(out / "adapter"), "steps": 2, "losses": [2.0, 1.5],
        "grad_norms": [1.0, 0.8], "seconds": 1.0, "tokens_per_second": 10.0,
        "precision": "fp32", "eval_loss": 1.4}))


def _config(tmp_path, **more):
    from routine.finetune.train import FinetuneConfig

    values = dict(data=tmp_path / "sft.jsonl", base="Qwen/Qwen3-0.6B", out=tmp_path / "run",
                  variants=["compact"], max_steps=2, precision="fp32")
    return FinetuneConfig.model_validate(values | more)


def test_a_log_cut_short_or_a_pilot_without_norms_is_named(tmp_path):
    """A log.json left empty by a kill (it was written in place) stopped every rerun with
    a bare pydantic ValidationError ('not expected'), and `--schedule refined` with a pilot
    whose log has no gradient norms with KeyError: 'grad_norms'."""
    pytest.importorskip("trl")
    pytest.importorskip("peft")
    from routine.finetune.train import finetune

    (tmp_path / "sft.jsonl").write_text("")
    config = _config(tmp_path)
    _finished_run(config.out, config)
    (config.out / "log.json").write_text("")
    with pytest.raises(RoutineError, match=r"run/log.json: not a finished run's log .*"
                                           r"delete it"):
        finetune(config)
    pilot = tmp_path / "pilot"
    pilot.mkdir()
    (pilot / "log.json").write_text(json.dumps({"steps": 1}))
    with pytest.raises(RoutineError, match=r"pilot/log.json: not a finished run's log"):
        finetune(_config(tmp_path, out=tmp_path / "refined", schedule="refined", pilot=pilot))


def test_a_rerun_with_another_rate_or_redistilled_data_is_not_this_run(tmp_path):
    """The desk reran `routine finetune` into the same --out with a lower learning rate
    (and again after distilling more traces into the same sft.jsonl): the finished run of
    the old rate and the old data came back as 'this run, finished', and an unfinished one
    would resume with the rate and data order its checkpoint restores."""
    pytest.importorskip("trl")
    pytest.importorskip("peft")
    import hashlib

    from routine.finetune.train import finetune

    data = tmp_path / "sft.jsonl"
    data.write_text("first distillation\n")
    config = _config(tmp_path)
    _finished_run(config.out, config,
                  data_sha256=hashlib.sha256(data.read_bytes()).hexdigest())
    assert finetune(config).steps == 2  # the same run, finished: not trained again
    with pytest.raises(RoutineError, match=r"another learning_rate \(learning_rate: 0.0001 "
                                           r"then, 5e-05 now\)"):
        finetune(_config(tmp_path, learning_rate=5e-5))
    data.write_text("second distillation, more traces\n")
    with pytest.raises(RoutineError, match="another data_sha256"):
        finetune(config)


def test_a_comparison_does_not_report_another_configurations_runs(tmp_path):
    """compare-schedules reused any folder's log.json: a second comparison into the same
    --out with another base (or data, or budget) printed the first one's losses under its
    own settings. And `uba:5` passed parse_schedule, then (after the other schedules had
    trained) stopped with a bare ValidationError."""
    pytest.importorskip("trl")
    pytest.importorskip("peft")
    from routine.finetune.compare import compare_schedules

    (tmp_path / "sft.jsonl").write_text("")
    config = _config(tmp_path, eval_data=tmp_path / "sft.jsonl")
    out = tmp_path / "cmp"
    _finished_run(out / "rex-seed0", _config(tmp_path, base="Qwen/Qwen3-14B",
                                              out=out / "rex-seed0", schedule="rex"))
    with pytest.raises(RoutineError, match="another base"):
        compare_schedules(config, ["rex"], [0], out)
    same = _config(tmp_path, out=out / "rex-seed0", schedule="rex")
    _finished_run(out / "rex-seed0", same)
    assert compare_schedules(config, ["rex"], [0], out).runs[0].eval_loss == 1.4  # its own
    with pytest.raises(RoutineError, match=r"'uba:5': φ must be a number in \[0, 2\]"):
        compare_schedules(config, ["rex", "uba:5"], [0], out)


def test_held_out_data_of_the_training_templates_is_said(desk, tmp_path):
    """`--eval-data` given the training file itself (or the train split distilled twice)
    gave a 'held-out' loss of rows trained on, and compare-schedules ranked schedules by
    memory, without a word; a dev split's rows pass without one."""
    pytest.importorskip("trl")
    pytest.importorskip("peft")
    import warnings

    from routine.finetune.train import finetune

    train, dev = _sft(tmp_path / "train.jsonl"), _sft(tmp_path / "dev.jsonl", "dev")
    base = str(tmp_path / "no-model-here")  # stops at loading the base: nothing trains
    with pytest.warns(RoutineWarning, match=r"12 of its 12 rows are of templates --data .* "
                                            r"trains on \(renew.plain\)"):
        with pytest.raises(RoutineError, match="no such folder"):
            finetune(_config(tmp_path, data=train, eval_data=train, base=base))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RoutineWarning)
        with pytest.raises(RoutineError, match="no such folder"):
            finetune(_config(tmp_path, data=train, eval_data=dev, base=base))


def test_vllm_is_given_a_lora_rank_it_takes(tmp_path):
    """A rank-12 adapter (or 24, or 100) got `--max-lora-rank 12`: vLLM takes only 8, 16,
    32, 64, 128, 256, 320 or 512 and refused to start; a torn adapter_config.json was a
    bare JSONDecodeError."""
    from routine.finetune.serve import vllm_command

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    for rank, served in ((4, "8"), (12, "16"), (16, "16"), (100, "128")):
        (adapter / "adapter_config.json").write_text(json.dumps({"r": rank, "lora_alpha": 8}))
        command = vllm_command("Qwen/Qwen3-14B", adapter)
        assert command[command.index("--max-lora-rank") + 1] == served
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 1024}))
    with pytest.raises(RoutineError, match="vLLM serves ranks up to 512"):
        vllm_command("Qwen/Qwen3-14B", adapter)
    (adapter / "adapter_config.json").write_text('{"r": 8,')
    with pytest.raises(RoutineError, match="not a peft adapter's config"):
        vllm_command("Qwen/Qwen3-14B", adapter)


def test_a_printed_serve_command_keeps_a_path_with_a_space(tmp_path, capsys):
    """`routine serve --vllm --print-command` joined the words with spaces: an adapter in
    'renewals desk/runs/adapter' came out as two words, and the pasted line served nothing."""
    adapter = tmp_path / "renewals desk" / "adapter"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 8, "lora_alpha": 16}))
    assert main(["serve", "--vllm", "--model", "Qwen/Qwen3-14B", "--adapter", str(adapter),
                 "--print-command"]) == 0
    words = shlex.split(capsys.readouterr().out)
    assert words[words.index("--lora-modules") + 1] == f"routine={adapter}"


def test_the_gguf_export_writes_every_trained_tensor_or_refuses(tmp_path):
    """An adapter with LoRA on lm_head (target_modules: [..., lm_head]) was exported with
    the lm_head tensors left out, and the engine ran another model than the one trained;
    a torn adapter_config.json was a bare JSONDecodeError and a base that is not a GGUF
    file a bare ValueError."""
    np = pytest.importorskip("numpy")
    gguf = pytest.importorskip("gguf")
    safetensors = pytest.importorskip("safetensors.numpy")
    from routine.finetune.export import lora_to_gguf

    base = tmp_path / "base.gguf"
    writer = gguf.GGUFWriter(str(base), "qwen2")
    writer.add_tensor("blk.0.attn_q.weight", np.zeros((16, 16), dtype=np.float32))
    writer.add_tensor("output.weight", np.zeros((32, 16), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    layer = "base_model.model.model.layers.0.self_attn.q_proj.lora_{}.weight"
    tensors = {layer.format("A"): np.ones((2, 16), np.float32),
               layer.format("B"): np.ones((16, 2), np.float32)}
    safetensors.save_file(tensors, str(adapter / "adapter_model.safetensors"))
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 2, "lora_alpha": 4}))
    assert lora_to_gguf(adapter, tmp_path / "ok.gguf", base).is_file()  # the layers: written
    with pytest.raises(RoutineError, match="not a GGUF model"):
        lora_to_gguf(adapter, tmp_path / "x.gguf", adapter / "adapter_config.json")
    tensors |= {"base_model.model.lm_head.lora_A.weight": np.ones((2, 16), np.float32),
                "base_model.model.lm_head.lora_B.weight": np.ones((32, 2), np.float32)}
    safetensors.save_file(tensors, str(adapter / "adapter_model.safetensors"))
    with pytest.raises(RoutineError, match=r"2 adapter tensor\(s\) have no GGUF LoRA form: "
                                           r"base_model.model.lm_head.lora_A.weight"):
        lora_to_gguf(adapter, tmp_path / "lm_head.gguf", base)
    assert not (tmp_path / "lm_head.gguf").exists()
    (adapter / "adapter_config.json").write_text('{"r": 2,')
    with pytest.raises(RoutineError, match="not a peft LoRA adapter's config"):
        lora_to_gguf(adapter, tmp_path / "torn.gguf", base)
