"""Eighth hostile round, an insurer fine-tuning on its own traces: what would train the
wrong thing silently is refused, named (a template that drops tool calls, packing without
flash attention, replies cut by max_length, another run's folder), a finished run is not
trained again, and a bad SFT file is named by file and line."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("trl")
pytest.importorskip("peft")

from routine.errors import RoutineError  # noqa: E402
from routine.finetune.distill import load_sft  # noqa: E402
from routine.finetune.train import finetune, load_recipe, tokenize_rows  # noqa: E402

from .test_finetune import tiny  # noqa: E402,F401 - the fixture

CHATML = ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
          "{{ message['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def test_a_chat_template_that_drops_tool_calls_is_refused_not_trained_on_empty_replies(tiny):  # noqa: F811
    from transformers import AutoTokenizer

    data, base = tiny
    tokenizer = AutoTokenizer.from_pretrained(base)
    rows = load_sft(data)
    assert tokenize_rows(rows[:1], tokenizer)  # its own template renders the calls
    tokenizer.chat_template = CHATML  # a plain ChatML template: calls rendered as nothing
    with pytest.raises(RoutineError, match="does not render the assistant's tool calls"):
        tokenize_rows(rows[:1], tokenizer)  # before: every trained span was '<|im_end|>'


def _config(data, base, out, **more):
    values = dict(data=data, base=str(base), out=out, variants=["distilled"], max_steps=1,
                  gradient_accumulation=1, precision="fp32", gradient_checkpointing=False)
    return load_recipe(None, **(values | more))


def test_packing_without_flash_attention_is_refused(tiny, tmp_path):  # noqa: F811
    data, base = tiny
    with pytest.raises(RoutineError, match="flash_attention_2"):  # before: trained, mixed
        finetune(_config(data, base, tmp_path / "run", packing=True))
    assert not (tmp_path / "run").exists()


def test_replies_past_max_length_are_refused_not_cut(tiny, tmp_path):  # noqa: F811
    data, base = tiny
    with pytest.raises(RoutineError, match=r"have trained replies past max_length \(64 tokens"):
        finetune(_config(data, base, tmp_path / "run", max_length=64))


def test_an_out_folder_of_another_run_or_of_other_files_is_refused(tiny, tmp_path):  # noqa: F811
    data, base = tiny
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "README.md").write_text("# mine")
    with pytest.raises(RoutineError, match="not a fine-tuning run's folder"):
        finetune(_config(data, base, notes))  # before: README.md and config.json replaced
    assert (notes / "README.md").read_text() == "# mine"
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(
        _config(data, "other-base", run).model_dump(mode="json") | {"reply_format": "text"}))
    with pytest.raises(RoutineError, match="another base"):  # before: resumed onto it
        finetune(_config(data, base, run))


def test_a_finished_run_is_not_trained_again(tiny, tmp_path):  # noqa: F811
    data, base = tiny
    config = _config(data, base, tmp_path / "run", max_steps=2, save_steps=2)
    first = finetune(config)
    again = finetune(config)  # before: one more step each time
    assert again.steps == first.steps == 2 and again.losses == first.losses


@pytest.mark.parametrize("content, said", [
    (None, r"sft.jsonl:2: not an SFT row \(a line cut short"),
    (b"\xff\xfe garbage\n", "sft.jsonl:2: not UTF-8 text"),
    (b'{"not": "a row"}\n', "sft.jsonl:2: not an SFT row: "),
])
def test_a_bad_sft_file_is_named_by_file_and_line(tiny, tmp_path, content, said):  # noqa: F811
    data, _ = tiny
    lines = data.read_bytes().split(b"\n")
    path = tmp_path / "sft.jsonl"
    if content is None:  # torn: the second row cut short, nothing after it
        path.write_bytes(lines[0] + b"\n" + lines[1][:200])
    else:
        path.write_bytes(lines[0] + b"\n" + content)
    with pytest.raises(RoutineError, match=said):  # before: a raw ValidationError
        load_sft(path)


@pytest.mark.parametrize("base, fmt", [
    ("qwen2.5-coder-0.5b", "text"), ("Qwen/Qwen2.5-Coder-0.5B-Instruct", "text"),
    ("models/qwen2.5-coder-0.5b-instruct-q4.hf", "text"),  # before: template (-20 points)
    ("Qwen/Qwen3-14B", "template"),
])
def test_auto_reply_format_knows_the_coder_models_in_any_form(base, fmt, tmp_path):
    from routine.finetune.train import FinetuneConfig, resolve_reply_format

    config = FinetuneConfig(base=base, data=tmp_path / "d.jsonl", out=tmp_path / "o")
    assert resolve_reply_format(config) == fmt


def test_a_relative_base_folder_that_is_not_there_is_named_as_such():
    from routine.finetune.train import load_base

    with pytest.raises(RoutineError, match="no such folder here"):  # before: a hub error
        load_base("./models/qwen", None)


def test_a_calls_arguments_keep_their_characters_in_the_history():
    from routine.models.messages import ToolCall

    call = ToolCall.of("c1", "find_customer", {"name": "Müller 🌧"})
    assert call.function.arguments == '{"name": "Müller 🌧"}'  # before: \\u00fc, \\ud83c
