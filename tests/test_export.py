"""A LoRA adapter written as GGUF loads in the embedded engine and changes its outputs."""

from __future__ import annotations

import json

import pytest

np = pytest.importorskip("numpy")
pytest.importorskip("gguf")
pytest.importorskip("llama_cpp")

from routine.errors import RoutineError  # noqa: E402
from routine.finetune.export import gguf_tensor_name, lora_to_gguf  # noqa: E402

BASE = "qwen2.5-coder-0.5b"
KEY = "base_model.model.model.layers.{i}.self_attn.q_proj.lora_{w}.weight"


def adapter(folder, scale: float, rank: int = 2, width: int = 896):
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    tensors = {}
    for i in range(2):
        tensors[KEY.format(i=i, w="A")] = rng.normal(size=(rank, width)).astype(np.float32)
        tensors[KEY.format(i=i, w="B")] = (scale * rng.normal(size=(width, rank))).astype(
            np.float32)
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    (folder / "adapter_config.json").write_text(json.dumps({"r": rank, "lora_alpha": 4}))
    return folder


def logits(lora_path=None):
    from llama_cpp import Llama

    from routine.models.embedded import ensure_model

    llm = Llama(model_path=str(ensure_model(BASE, show_progress=False)), lora_path=lora_path,
                n_ctx=128, n_threads=2, logits_all=True, verbose=False)
    tokens = llm.tokenize(b"def add(a, b):\n    return")
    llm.eval(tokens)
    out = np.array(llm.scores[len(tokens) - 1])
    llm.close()
    return out


@pytest.mark.timeout(300)
def test_gguf_adapter_loads_and_acts_in_the_embedded_engine(tmp_path):
    base = logits()
    moved = lora_to_gguf(adapter(tmp_path / "a", scale=0.5), tmp_path / "a.gguf", BASE)
    zero = lora_to_gguf(adapter(tmp_path / "z", scale=0.0), tmp_path / "z.gguf", BASE)
    assert np.allclose(logits(str(zero)), base, atol=1e-3)  # B = 0: the base model exactly
    assert not np.allclose(logits(str(moved)), base, atol=1e-2)  # a real adapter acts
    # the embedded server starts with it (routine run/eval/serve --adapter)
    import httpx

    from routine.models.embedded import embedded_server

    with embedded_server(BASE, adapter=moved, n_ctx=512, show_progress=False) as server:
        listed = httpx.get(server.base_url + "/models", timeout=10).json()
        assert [m["id"] for m in listed["data"]] == [BASE]


def test_names_and_shapes_are_checked(tmp_path):
    assert gguf_tensor_name("base_model.model.model.layers.7.mlp.down_proj.lora_B.weight") == \
        ("blk.7.ffn_down.weight", "b")
    assert gguf_tensor_name("base_model.model.lm_head.weight") is None
    with pytest.raises(RoutineError, match="does not fit"):
        lora_to_gguf(adapter(tmp_path / "w", 0.1, width=512), tmp_path / "w.gguf", BASE)


def test_adapter_belongs_to_the_embedded_model(tmp_path, capsys):
    from routine.cli.commands import main

    from .conftest import ROUTINES

    code = main(["run", str(ROUTINES / "hr" / "leave_balance.yaml"), "q", "--base-url",
                 "http://127.0.0.1:9/v1", "--model", "m", "--adapter", str(tmp_path / "a.gguf")])
    assert code == 1 and "--adapter runs in the embedded model" in capsys.readouterr().err


def test_an_adapter_served_on_another_base_is_said(tmp_path):
    """vLLM loads a LoRA adapter on any base whose shapes fit (an instruct model's adapter
    on its base model): the command was printed without a word, and the replies were
    quietly worse. The same model by a local path and by its hub name is no warning."""
    import warnings

    from routine.errors import RoutineWarning
    from routine.finetune.serve import vllm_command

    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps(
        {"r": 8, "base_model_name_or_path": "/models/Qwen3-14B/"}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        vllm_command("Qwen/Qwen3-14B", folder)  # the same model: no warning
    with pytest.warns(RoutineWarning, match="trained on /models/Qwen3-14B/.*served on "
                                            "Qwen/Qwen3-14B-Base"):
        command = vllm_command("Qwen/Qwen3-14B-Base", folder)
    assert command[2] == "Qwen/Qwen3-14B-Base"  # said, not refused


def test_vllm_command_line(tmp_path, capsys):
    from routine.cli.commands import main
    from routine.finetune.serve import vllm_command

    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"r": 16, "lora_alpha": 32}))
    command = vllm_command("Qwen/Qwen3-14B", folder, name="hr", port=9000)
    assert command[:3] == ["vllm", "serve", "Qwen/Qwen3-14B"]
    joined = " ".join(command)
    assert f"--enable-lora --lora-modules hr={folder} --max-lora-rank 16" in joined
    assert "--enable-auto-tool-choice --tool-call-parser hermes" in joined
    assert "--port 9000" in joined
    with pytest.raises(RoutineError, match="not a peft adapter folder"):
        vllm_command("b", tmp_path)
    assert main(["serve", "--vllm", "--model", "Qwen/Qwen3-14B", "--adapter", str(folder),
                 "--print-command"]) == 0
    assert "--lora-modules routine=" in capsys.readouterr().out
