"""A trained LoRA adapter, written as a GGUF adapter the embedded engine loads.

llama.cpp reads LoRA adapters in GGUF form: per adapted matrix a ``lora_a`` and a
``lora_b`` tensor named after the base tensor (``blk.3.attn_q.weight.lora_a``),
plus ``general.type = adapter``, ``adapter.type = lora`` and
``adapter.lora.alpha``; the base model's architecture must match. The ``gguf``
package's writer makes that file directly from peft's ``adapter_model.safetensors``
(no conversion scripts from llama.cpp's source tree are needed).

    lora_to_gguf("runs/ft-0.5b/adapter", "runs/ft-0.5b/adapter.gguf", base="qwen2.5-coder-0.5b")
    routine run ROUTINE QUERY --model qwen2.5-coder-0.5b --adapter runs/ft-0.5b/adapter.gguf
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..errors import RoutineError

__all__ = ["lora_to_gguf", "gguf_tensor_name"]

# Hugging Face (Qwen2/Qwen3/Llama) module names -> llama.cpp tensor names
_MODULES = {
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
_KEY = re.compile(r"(?:^|\.)layers\.(\d+)\.(.+?)\.lora_([AB])(?:\.default)?\.weight$")


def gguf_tensor_name(key: str) -> tuple[str, str] | None:
    """(llama.cpp tensor name, ``a`` or ``b``) of a peft adapter key; None if not LoRA."""
    match = _KEY.search(key)
    if match is None:
        return None
    layer, module, which = match.groups()
    target = _MODULES.get(module)
    if target is None:
        raise RoutineError(f"adapter tensor {key!r}: module {module!r} has no llama.cpp name "
                           f"(adaptable: {', '.join(_MODULES)})")
    return f"blk.{layer}.{target}.weight", which.lower()


def lora_to_gguf(adapter: str | Path, out: str | Path, base: str | Path) -> Path:
    """Write peft adapter folder ``adapter`` as a GGUF LoRA for the GGUF model ``base`` (a
    path or an embedded model's name); check every adapted tensor exists there with a
    matching shape."""
    import gguf
    import numpy as np
    from safetensors.numpy import load_file

    from ..models.embedded import MODELS, ensure_model

    adapter = Path(adapter)
    base_path = ensure_model(str(base), show_progress=False) if str(base) in MODELS \
        else Path(base)
    config_path = adapter / "adapter_config.json"
    try:
        alpha = float(json.loads(config_path.read_text(encoding="utf-8"))["lora_alpha"])
    except (ValueError, KeyError, TypeError) as exc:  # OSError: named by the caller
        raise RoutineError(f"{config_path}: not a peft LoRA adapter's config ({exc!r})"
                           ) from None
    weights = load_file(str(adapter / "adapter_model.safetensors"))
    # every tensor of an adapter was trained: one with no GGUF form (LoRA on lm_head or the
    # embeddings, a DoRA magnitude, a module trained whole) was left out without a word,
    # and the engine ran another model than the one trained
    named = {key: gguf_tensor_name(key) for key in sorted(weights)}
    unmapped = [key for key, name in named.items() if name is None]
    if unmapped:
        raise RoutineError(f"{adapter}: {len(unmapped)} adapter tensor(s) have no GGUF LoRA "
                           f"form: {', '.join(unmapped[:3])}{' ...' if len(unmapped) > 3 else ''}"
                           f" (exportable: LoRA A/B of {', '.join(_MODULES)} in the layers); "
                           "train with target_modules among those")
    try:
        reader = gguf.GGUFReader(str(base_path))
    except (ValueError, KeyError) as exc:  # OSError: named by the caller
        raise RoutineError(f"{base_path}: not a GGUF model ({exc})") from None
    arch_field = reader.fields["general.architecture"]
    arch = bytes(arch_field.parts[arch_field.data[0]]).decode()
    shapes = {t.name: tuple(int(n) for n in t.shape) for t in reader.tensors}
    writer = gguf.GGUFWriter(str(out), arch)
    writer.add_string(gguf.Keys.General.TYPE, gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    written = 0
    for key, (tensor, which) in ((k, n) for k, n in named.items() if n is not None):
        if tensor not in shapes:
            raise RoutineError(f"{key}: the base model {base_path.name} has no tensor {tensor}")
        data = weights[key].astype(np.float32)
        in_features, out_features = shapes[tensor]  # ggml order: (columns, rows)
        expected = data.shape[1] == in_features if which == "a" else data.shape[0] == out_features
        if not expected:
            raise RoutineError(f"{key}: shape {data.shape} does not fit {tensor} "
                               f"({out_features} x {in_features}) of {base_path.name}")
        writer.add_tensor(f"{tensor}.lora_{which}", data)
        written += 1
    if not written:
        raise RoutineError(f"{adapter}: no LoRA tensors found")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return Path(out)
