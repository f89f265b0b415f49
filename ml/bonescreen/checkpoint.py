"""Weights as safetensors plus a JSON config, written atomically; never unpickled.

A weights location is either a folder holding ``model.safetensors`` and
``model.json``, or a ``NAME.safetensors`` file with ``NAME.json`` beside it.
Training state for resuming (optimizer moments, epoch) is kept beside them in
``training.safetensors`` and ``training.json``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .atomic import atomic_path, write_text_atomic
from .errors import BoneScreenError
from .io.folders import file_problem
from .nets.names import model_names
from .nets.registry import create_model

FORMAT = "bonescreen-weights"
#: 2: tensors named by the networks' named sub-modules (``encoder.down2.norm.weight``); 1: by position in
#: lists (``down.1.1.weight``), read through the network's ``legacy_names``.
FORMAT_VERSION = 2


def weights_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """Return (safetensors file, JSON file) for a weights folder or file."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return path, path.with_suffix(".json")
    if path.suffix == ".json":
        return path.with_suffix(".safetensors"), path
    return path / "model.safetensors", path / "model.json"


def _training_paths(weights: Path) -> tuple[Path, Path]:
    stem = weights.with_suffix("")
    if weights.name == "model.safetensors":
        return weights.parent / "training.safetensors", weights.parent / "training.json"
    return Path(f"{stem}.training.safetensors"), Path(f"{stem}.training.json")


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    meta: dict | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    training_state: dict | None = None,
    storage_dtype: torch.dtype | None = None,
) -> Path:
    """Write ``model`` as safetensors + JSON, each through a temporary file.

    Parameters
    ----------
    path : str or PathLike
        Weights folder, or a ``.safetensors`` file name.
    model : nn.Module
        A network built by :func:`~bonescreen.nets.create_model`.
    meta : dict, optional
        Extra JSON fields: input size, preprocessing, epoch, metrics, data.
    optimizer : torch.optim.Optimizer, optional
        Saved with ``training_state`` so that training can resume.
    training_state : dict, optional
        JSON-serializable loop state (epoch, step, seed).
    storage_dtype : torch.dtype, optional
        Store floating-point tensors in this type (``torch.float16`` halves the
        file); they are cast back to the model's type on loading.

    Returns
    -------
    Path
        The safetensors file written.
    """
    st_path, json_path = weights_paths(path)
    name = getattr(model, "model_name", None)
    if name not in model_names():
        raise BoneScreenError("save_checkpoint needs a model built by create_model (it has no known model_name)")
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    if storage_dtype is not None:
        tensors = {k: v.to(storage_dtype) if v.is_floating_point() else v for k, v in tensors.items()}
    with atomic_path(st_path) as tmp:
        # one metadata key: safetensors writes several in varying order, which would change the file's hash
        save_file(tensors, str(tmp), metadata={"format": f"{FORMAT}/{name}"})
    doc = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": name,
        "config": model.config(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **(meta or {}),
    }
    if storage_dtype is not None:
        doc["storage_dtype"] = str(storage_dtype).removeprefix("torch.")
    write_text_atomic(json_path, json.dumps(doc, indent=2, default=_json_default) + "\n")
    if optimizer is not None:
        _save_training_state(st_path, optimizer, training_state or {})
    return st_path


def _json_default(obj):
    if isinstance(obj, tuple | set):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"not JSON-serializable: {type(obj).__name__}")


def _save_training_state(st_path: Path, optimizer: torch.optim.Optimizer, state: dict) -> None:
    opt = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict] = {}
    for pid, pstate in opt["state"].items():
        for key, value in pstate.items():
            if torch.is_tensor(value):
                tensors[f"state.{pid}.{key}"] = value.detach().to("cpu").contiguous()
            else:
                scalars.setdefault(str(pid), {})[key] = value
    tr_st, tr_json = _training_paths(st_path)
    with atomic_path(tr_st) as tmp:
        save_file(tensors, str(tmp), metadata={"format": FORMAT + "-training"})
    doc = {"optimizer": type(optimizer).__name__, "param_groups": opt["param_groups"], "scalars": scalars, **state}
    write_text_atomic(tr_json, json.dumps(doc, indent=2, default=_json_default) + "\n")


def read_meta(path: str | os.PathLike) -> dict:
    """Read and check the JSON config of a weights location."""
    _, json_path = weights_paths(path)
    why = file_problem(json_path, missing="weights config (JSON) not found beside the weights")
    if why is not None:
        raise BoneScreenError(why, json_path)
    try:
        meta = json.loads(json_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BoneScreenError(f"weights config is not valid JSON ({exc})", json_path) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise BoneScreenError(f'not a BoneScreen weights config (no "format": "{FORMAT}")', json_path)
    if meta.get("model") not in model_names():
        raise BoneScreenError(f"unknown model {meta.get('model')!r} in weights config", json_path)
    return meta


def _read_tensors(st_path: Path) -> dict[str, torch.Tensor]:
    why = file_problem(st_path, missing="weights file not found")
    if why is not None:
        raise BoneScreenError(why, st_path)
    try:
        return load_file(str(st_path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise BoneScreenError(
            f"not a readable safetensors weights file (truncated or foreign?): {exc}", st_path
        ) from None


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Build the network a weights location describes and load its weights.

    Parameters
    ----------
    path : str or PathLike
        Weights folder or ``.safetensors`` file.
    device : str or torch.device
        Where to put the model.

    Returns
    -------
    (nn.Module, dict)
        The model in eval mode and its JSON config (with ``sha256`` of the weights added).

    Raises
    ------
    BoneScreenError
        If a file is missing, truncated, foreign, or does not fit the network.
    """
    st_path, json_path = weights_paths(path)
    meta = read_meta(path)
    tensors = _read_tensors(st_path)
    try:
        model = create_model(meta["model"], **meta.get("config", {}))
    except (TypeError, BoneScreenError) as exc:  # TypeError: a keyword the builder does not take
        raise BoneScreenError(f"weights config does not describe a valid network: {exc}", json_path) from None
    if meta.get("format_version", 1) < 2:
        tensors = rename_legacy_tensors(model, tensors)
    missing, unexpected = _key_mismatch(model, tensors)
    if missing or unexpected:
        raise BoneScreenError(
            f"weights do not fit {meta['model']}: {len(missing)} missing tensors (e.g. {missing[:2]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:2]})",
            st_path,
        )
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise BoneScreenError(f"weights do not fit {meta['model']}: {str(exc).splitlines()[0]}", st_path) from None
    meta = {**meta, "sha256": file_sha256(st_path), "path": str(st_path)}
    return model.to(device).eval(), meta


def rename_legacy_tensors(model: nn.Module, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Tensors of a format-1 checkpoint (layers named by position) under the names ``model`` uses today.

    Parameters
    ----------
    model : nn.Module
        The network the tensors are for; its ``legacy_names()`` maps old module names to new.
    tensors : dict
        Format-1 state dict.

    Returns
    -------
    dict
        The same tensors, renamed; names the map does not hold (``head``, ``classifier``) are kept.
    """
    names = model.legacy_names()
    out = {}
    for key, value in tensors.items():
        module, _, leaf = key.rpartition(".")
        out[f"{names.get(module, module)}.{leaf}"] = value
    return out


def _key_mismatch(model: nn.Module, tensors: dict) -> tuple[list[str], list[str]]:
    expected = set(model.state_dict())
    return sorted(expected - set(tensors)), sorted(set(tensors) - expected)


def load_training_state(path: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """Restore model weights and optimizer state saved by :func:`save_checkpoint`.

    Returns the loop state (epoch, step, seed) saved with them.
    """
    st_path, _ = weights_paths(path)
    tensors = _read_tensors(st_path)
    if read_meta(path).get("format_version", 1) < 2:
        tensors = rename_legacy_tensors(model, tensors)
    model.load_state_dict(tensors, strict=True)
    tr_st, tr_json = _training_paths(st_path)
    if not tr_json.is_file():
        raise BoneScreenError("no training state to resume from (training.json missing)", tr_json)
    doc = json.loads(tr_json.read_text(encoding="utf-8"))
    opt_tensors = _read_tensors(tr_st)
    state: dict[int, dict] = {}
    for key, value in opt_tensors.items():
        _, pid, name = key.split(".", 2)
        state.setdefault(int(pid), {})[name] = value
    for pid, values in doc.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(values)
    device = next(model.parameters()).device
    state = {
        pid: {k: (v.to(device) if torch.is_tensor(v) and k != "step" else v) for k, v in s.items()}
        for pid, s in state.items()
    }
    optimizer.load_state_dict({"state": state, "param_groups": doc["param_groups"]})
    return {k: v for k, v in doc.items() if k not in ("optimizer", "param_groups", "scalars")}
