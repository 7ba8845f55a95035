"""Load and save FARTrack checkpoints in the official layout (weights under ``net``, no renaming)."""

from __future__ import annotations

import contextlib
import pickle
import pickletools
import re
import struct
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional

import torch

from .config import VARIANT_LAYERS, ModelConfig, truncate_config, variant_config
from .device import resolve_device
from .network import FARTrack
from .safe_pickle import is_legacy_torch_file, load_checkpoint_file

DEFAULT_WEIGHTS_PATH = Path(__file__).resolve().parent.parent / "weights" / "default.pth"
STANDARD_VIT_WIDTHS = (192, 384, 768, 1024)  # ViT-Ti/S/B/L: heads 64 wide
_LAYER_KEY = re.compile(r"^backbone\.(blocks|extension)\.(\d+)\.")


class CheckpointError(ValueError):
    """A weights file that cannot be used: missing, corrupt, of another layout or another variant."""


def read_checkpoint(path: "str | Path") -> dict[str, Any]:
    """The checkpoint dict of a file (``~`` expanded), read without running pickled code;
    CheckpointError if unusable."""
    path = Path(path).expanduser()
    if not path.is_file():
        problem = (f"weights file {path} is a folder" if path.is_dir() else
                   f"weights file {path} is not a regular file" if path.exists() else f"weights file not found: {path}")
        raise CheckpointError(f"{problem} (give a FARTrack .pth/.pth.tar file as the weights, or leave it "
                              "empty for the bundled model)")
    try:
        _check_archive(path)
        checkpoint = load_checkpoint_file(path)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"refusing to load {path}: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - torch.load fails on foreign files in many ways
        wrapped = _wrapper_of(path)
        if wrapped:
            raise CheckpointError(f"weights file {path} is {wrapped}: unpack the checkpoint first") from exc
        if path.suffix.lower() == ".onnx":
            raise CheckpointError(f"weights file {path} is an ONNX model: give the .pth checkpoint (backend "
                                  "onnxruntime builds its ONNX graph from it when the model loads)") from exc
        raise CheckpointError(f"weights file {path} {_damage(path, exc)}") from exc
    if isinstance(checkpoint, dict) and "net" not in checkpoint and checkpoint and all(
            isinstance(value, torch.Tensor) for value in checkpoint.values()):
        return {"net": checkpoint}  # a bare state dict (torch.save(model.state_dict()))
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("net"), dict):
        if isinstance(checkpoint, dict):
            keys = sorted(map(str, checkpoint))
            found = f"keys {keys[:8]}{' ...' if len(keys) > 8 else ''}"
        else:
            found = f"a {type(checkpoint).__name__}"
        raise CheckpointError(
            f"{path} is not in the FARTrack checkpoint layout: expected a dict with the weights under "
            f"'net' (or a bare state dict of tensors), found {found}"
        )
    return checkpoint


def _damage(path: Path, exc: Exception) -> str:
    """What is wrong with a file torch could not load, as a user can act on it."""
    with open(path, "rb") as file:
        head = file.read(4)
    if not head:
        return "is empty"
    is_zip = zipfile.is_zipfile(path)
    if head == b"PK\x03\x04" and not is_zip:
        return "is cut short or damaged (a torch.save zip archive without its end): copy it again"
    if is_zip or is_legacy_torch_file(path):
        return f"is a damaged torch checkpoint ({type(exc).__name__}: {exc}): copy it again"
    return "is not a torch checkpoint (neither torch.save's zip archive nor its legacy format)"


def _wrapper_of(path: Path) -> str | None:
    """What packs a checkpoint that torch cannot read (gzip, xz, bzip2, tar), by its magic bytes."""
    with open(path, "rb") as file:
        head = file.read(512)
    for magic, name in ((b"\x1f\x8b", "gzip-compressed"), (b"\xfd7zXZ\x00", "xz-compressed"),
                        (b"BZh", "bzip2-compressed")):
        if head.startswith(magic):
            return name
    return "a tar archive" if head[257:262] == b"ustar" else None


def _check_archive(path: Path) -> None:
    """Refuse a zip checkpoint whose records fail their CRC (torch.load does not check them, and
    damage in the middle of a file would load as wrong, often NaN, weights), whose records are
    compressed (torch.save never compresses; a 1 MB deflated record inflated to 1.2 GB), or whose
    pickle calls a constructor that allocates what its arguments ask (`_check_pickle`)."""
    if not zipfile.is_zipfile(path):  # torch's legacy format: its first pickles, then raw storages
        with open(path, "rb") as file:
            for _ in range(4):  # magic number, protocol, system info, the checkpoint itself
                _check_pickle(pickletools.genops(file))
        return
    with zipfile.ZipFile(path) as archive:
        records = archive.infolist()
        compressed = [info.filename for info in records if info.compress_type != zipfile.ZIP_STORED]
        if compressed:
            raise zipfile.BadZipFile(f"record {compressed[0]!r} is compressed, which torch.save never does")
        for info in records:
            if info.filename.endswith("/data.pkl") or info.filename == "data.pkl":
                _check_pickle(pickletools.genops(_stored_record(path, info)))
        if all(info.CRC == 0 for info in records):
            return  # saved with torch.serialization.set_crc32_options(False): nothing to check
        bad = archive.testzip()
    if bad is not None:
        raise zipfile.BadZipFile(f"record {bad!r} fails its CRC check")


def _stored_record(path: Path, info: zipfile.ZipInfo) -> bytes:
    """The bytes of an uncompressed zip record, read past its local header (zipfile's own reader
    checks the CRC, which torch lets a writer leave out)."""
    with open(path, "rb") as file:
        file.seek(info.header_offset + 26)
        name_length, extra_length = struct.unpack("<HH", file.read(4))
        file.seek(info.header_offset + 30 + name_length + extra_length)
        return file.read(info.file_size)


# Constructors torch's weights_only reader (and the restricted one) allow that allocate the size a
# pickle gives them: a 384-byte file asked bytearray for 1.6 GB. Settings may hold a small bytearray
# of data; a call with an integer argument above MAX_PICKLED_ALLOCATION is refused.
_SIZED_CONSTRUCTORS = {("builtins", "bytearray"), ("__builtin__", "bytearray")} | {
    ("torch", f"{kind}Tensor") for kind in ("Float", "Double", "Half", "BFloat16", "Long", "Int", "Short",
                                           "Char", "Byte", "Bool")}
MAX_PICKLED_ALLOCATION = 1 << 24
_MARK = object()


def _check_pickle(ops) -> None:
    """pickle.UnpicklingError when the pickle whose opcodes ``ops`` (`pickletools.genops`) yields
    calls a `_SIZED_CONSTRUCTORS` entry with an integer above MAX_PICKLED_ALLOCATION. The stack is
    followed as the unpickler builds it (memo included), holding only globals, numbers, strings
    and tuples of them; a pickle it cannot follow is left to torch.load to judge."""
    stack: list = []
    memo: dict = {}

    def pop_to_mark() -> list:
        index = len(stack) - 1 - stack[::-1].index(_MARK)
        items = stack[index + 1:]
        del stack[index:]
        return items

    try:
        for opcode, argument, _ in ops:
            name = opcode.name
            if name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
                memo[len(memo) if name == "MEMOIZE" else argument] = stack[-1]
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                stack.append(memo.get(argument))
            elif name == "MARK":
                stack.append(_MARK)
            elif name == "GLOBAL":
                stack.append(tuple(str(argument).split(" ", 1)))
            elif name == "STACK_GLOBAL":
                attribute, module = stack.pop(), stack.pop()
                stack.append((module, attribute))
            elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
                count = int(name[-1])
                items = tuple(stack[-count:])
                del stack[-count:]
                stack.append(items)
            elif name == "TUPLE":
                stack.append(tuple(pop_to_mark()))
            elif name in ("REDUCE", "NEWOBJ"):
                arguments, function = stack.pop(), stack.pop()
                if function in _SIZED_CONSTRUCTORS and isinstance(arguments, tuple) and any(
                        isinstance(a, int) and not isinstance(a, bool) and a > MAX_PICKLED_ALLOCATION
                        for a in arguments):
                    call = f"{'.'.join(function)}({', '.join(map(repr, arguments))})"
                    raise pickle.UnpicklingError(f"the pickle calls {call}, an allocation no checkpoint needs")
                stack.append(None)
            elif name == "STOP":
                return
            else:  # anything else: its arguments off the stack, an unknown result on
                before = opcode.stack_before
                if pickletools.markobject in before:
                    pop_to_mark()
                    before = before[:before.index(pickletools.markobject)]
                if before:
                    del stack[-len(before):]
                if opcode.stack_after:
                    stack.extend([argument if isinstance(argument, (int, str)) else None]
                                 * len(opcode.stack_after))
    except (ValueError, IndexError, KeyError, TypeError):
        return  # not a pickle followed here: torch.load will say what is wrong


def _check_tensors(path: "str | Path", state_dict: dict) -> None:
    """Refuse what no saved network holds, before anything is sized from it: keys that are not
    names, weights that are not floating point (a complex NaN would pass the finite check and be
    cast into the weights), and views larger than their storage (a stride-0 tensor of a few bytes
    expands to gigabytes when read)."""
    odd_keys = [key for key in state_dict if not isinstance(key, str)]
    if odd_keys:
        raise CheckpointError(f"{path}: 'net' has keys that are not parameter names: {odd_keys[:4]!r}")
    for key, value in state_dict.items():
        if not value.is_floating_point():
            raise CheckpointError(f"{path}: weight {key!r} is {value.dtype}, not floating point")
        if value.layout != torch.strided:
            raise CheckpointError(f"{path}: weight {key!r} is a {value.layout} tensor, not a dense one")
        if value.untyped_storage().nbytes() < value.numel() * value.element_size():
            raise CheckpointError(f"{path}: weight {key!r} is a view larger than its storage (stride 0): "
                                  "no saved network holds one")


def _check_config(path: "str | Path", cfg: ModelConfig, state_dict: dict[str, torch.Tensor]) -> None:
    """A stored ``model_config`` must describe the tensors: the network is built from it, so a
    few-byte config claiming 20,000 layers would otherwise allocate gigabytes before the keys are
    compared. Only what the tensors fix is compared (not the head count or how the vocabulary
    splits into bins and range)."""
    sizes = _tensor_sizes(state_dict)
    stored = {"embed_dim": cfg.embed_dim, "patch_size": cfg.patch_size, "depth": cfg.depth,
              "extension_depth": cfg.extension_depth, "num_template_slots": cfg.num_template_slots,
              "template_tokens": cfg.template_tokens, "search_tokens": cfg.search_tokens,
              "vocab_size": cfg.vocab_size, "mlp_hidden": round(cfg.embed_dim * cfg.mlp_ratio)}
    mismatched = [f"{name}={value!r} (the tensors: {sizes[name]!r})" for name, value in stored.items()
                  if value != sizes[name]]
    if mismatched:
        raise CheckpointError(f"{path}: model_config does not describe its weights: {', '.join(mismatched)}")


def _check_finite(path: "str | Path", state_dict: dict[str, torch.Tensor]) -> None:
    bad = [key for key, value in state_dict.items()
           if value.is_floating_point() and not bool(torch.isfinite(value).all())]
    if bad:
        raise CheckpointError(f"{path}: weights hold NaN or infinite values ({', '.join(bad[:4])}"
                              f"{', ...' if len(bad) > 4 else ''}); the file is damaged or the training diverged")


# Parameters every official checkpoint has and inference never reads (fixture README, quirk Q3);
# their sizes depend on how the checkpoint was trained (pos_embed comes from the 224 px ViT).
_UNUSED_PARAMETERS = ("backbone.pos_embed", "backbone.cls_token", "backbone.prev_position_embeddings.weight")


def adopt_unused_shapes(model: FARTrack, state_dict: dict[str, torch.Tensor]) -> None:
    """Give the unused parameters the checkpoint's shapes, so they load whatever their size."""
    for key in _UNUSED_PARAMETERS:
        if key in state_dict:
            owner_name, name = key.rsplit(".", 1)
            owner = model.get_submodule(owner_name)
            if getattr(owner, name).shape != state_dict[key].shape:
                setattr(owner, name, torch.nn.Parameter(torch.zeros_like(state_dict[key])))
                if isinstance(owner, torch.nn.Embedding):
                    owner.num_embeddings = state_dict[key].shape[0]


def _tensor_sizes(state_dict: dict[str, torch.Tensor]) -> dict[str, int]:
    """The network sizes the tensor shapes fix (CheckpointError when a key they come from is missing)."""
    try:
        dim, _, patch, _ = state_dict["backbone.patch_embed.proj.weight"].shape
        template_key = "backbone.pos_embed_z0" if "backbone.pos_embed_z0" in state_dict else "backbone.pos_embed_z1"
        return {
            "embed_dim": int(dim),
            "patch_size": int(patch),
            "depth": _count_layers(state_dict, "blocks"),
            "extension_depth": _count_layers(state_dict, "extension"),
            "num_template_slots": int(state_dict["identity"].shape[1] - 1),
            "template_tokens": int(state_dict[template_key].shape[1]),
            "search_tokens": int(state_dict["backbone.pos_embed_x"].shape[1]),
            "vocab_size": int(state_dict["backbone.word_embeddings.weight"].shape[0]),
            "mlp_hidden": int(state_dict["backbone.blocks.0.mlp.fc1.weight"].shape[0]),
        }
    except KeyError as exc:
        raise CheckpointError(f"state dict lacks {exc.args[0]!r}; it is not a FARTrack network") from exc


def config_from_state_dict(state_dict: dict[str, torch.Tensor]) -> ModelConfig:
    """Infer the network sizes from tensor shapes (official checkpoints carry no config)."""
    sizes = _tensor_sizes(state_dict)
    dim, patch = sizes["embed_dim"], sizes["patch_size"]
    coord_range = 2
    cfg = ModelConfig(
        embed_dim=dim,
        depth=sizes["depth"],
        extension_depth=sizes["extension_depth"],
        num_heads=max(1, dim // 64),
        mlp_ratio=sizes["mlp_hidden"] / dim,
        patch_size=patch,
        template_size=int(round(sizes["template_tokens"] ** 0.5)) * patch,
        search_size=int(round(sizes["search_tokens"] ** 0.5)) * patch,
        num_template_slots=sizes["num_template_slots"],
        bins=(sizes["vocab_size"] - 5) // coord_range,
        coord_range=coord_range,
        name="custom",
    )
    # named after an official variant only when it has that variant's sizes throughout
    return next((official for official in map(variant_config, VARIANT_LAYERS)
                 if replace(cfg, name=official.name) == official), cfg)


def _count_layers(state_dict: dict[str, torch.Tensor], group: str) -> int:
    indices = {int(m.group(2)) for key in state_dict if (m := _LAYER_KEY.match(key)) and m.group(1) == group}
    return max(indices) + 1 if indices else 0


def _truncate_state_dict(state_dict: dict[str, torch.Tensor], cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """Drop the weights of layers beyond cfg (Nano/Pico are the first N layers of Tiny)."""
    kept = {}
    for key, value in state_dict.items():
        match = _LAYER_KEY.match(key)
        if match:
            limit = cfg.depth if match.group(1) == "blocks" else cfg.extension_depth
            if int(match.group(2)) >= limit:
                continue
        kept[key] = value
    return kept


def load_checkpoint(
    path: "str | Path | None" = None,
    variant: "str | int | None" = None,
    device: str = "cpu",
    strict_device: bool = False,
) -> FARTrack:
    """Build the network a checkpoint describes and load its weights strictly, in eval mode.

    ``path`` empty or None means the bundled default model. ``variant`` (tiny/nano/pico) takes the
    first 15/10/6 layers of the checkpoint, a number N the first N; None keeps them all.
    """
    if path is None or str(path) == "":
        path = DEFAULT_WEIGHTS_PATH
        if not path.is_file():
            raise CheckpointError(
                f"the bundled default model is missing ({path.name}); train it with fartrack-train "
                "or set 'weights' to a checkpoint file"
            )
    checkpoint = read_checkpoint(path)
    state_dict = {k: v for k, v in checkpoint["net"].items() if isinstance(v, torch.Tensor)}
    if len(state_dict) != len(checkpoint["net"]):
        raise CheckpointError(f"{path}: 'net' holds entries that are not tensors; not a state dict")
    _check_tensors(path, state_dict)
    _check_finite(path, state_dict)
    if any(k.startswith("module.") for k in state_dict):
        raise CheckpointError(
            f"{path}: keys start with 'module.' (a DataParallel wrapper); save model.state_dict() of the bare network"
        )
    stored = checkpoint.get("model_config")
    if stored is not None and not isinstance(stored, dict):
        raise CheckpointError(f"{path}: 'model_config' is a {type(stored).__name__}, not a dict of sizes "
                              "(as ModelConfig.to_dict() writes)")
    if stored is None:
        cfg = config_from_state_dict(state_dict)
    else:
        try:
            cfg = ModelConfig.from_dict(stored)
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{path}: invalid model config: {exc}") from exc
        _check_config(path, cfg, state_dict)
    if stored is None and cfg.embed_dim not in STANDARD_VIT_WIDTHS:
        # The tensors give every size but the head count. The standard ViT widths have 64-wide
        # heads; in any other (the bundled model: 128 wide, 4 heads of 32) it cannot be known.
        raise CheckpointError(
            f"{path}: a {cfg.embed_dim}-wide network without 'model_config': its attention head count "
            "is not in the tensors. Save it with save_checkpoint (or add model.cfg.to_dict() as "
            f"'model_config'); only standard ViT widths {STANDARD_VIT_WIDTHS} load from the weights alone."
        )
    if variant is not None and variant != "":
        try:
            cfg = truncate_config(cfg, variant)
        except ValueError as exc:
            raise CheckpointError(f"{path}: {exc}") from exc
        state_dict = _truncate_state_dict(state_dict, cfg)
    model = FARTrack(cfg)
    adopt_unused_shapes(model, state_dict)
    try:
        result = model.load_state_dict(state_dict, strict=False)
    except RuntimeError as exc:  # size mismatches
        detail = " ".join(str(exc).split())  # torch's message spans lines; a log line should not
        raise CheckpointError(f"{path} does not fit a FARTrack {cfg.name} network: {detail}") from exc
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(
            f"{path} does not match a FARTrack {cfg.name} network ({cfg.num_layers} layers, dim {cfg.embed_dim}): "
            f"missing keys {result.missing_keys[:8]}{'...' if len(result.missing_keys) > 8 else ''}, "
            f"unexpected keys {result.unexpected_keys[:8]}{'...' if len(result.unexpected_keys) > 8 else ''}. "
            "Use an official FARTrack(-Sparse) checkpoint or one written by fartrack-train, and check 'variant'."
        )
    model.eval()
    return model.to(resolve_device(device, strict=strict_device))


def save_checkpoint(model: FARTrack, path: "str | Path", **extra: Any) -> None:
    """Write ``{'net': state_dict, 'model_config': ..., **extra}`` (official layout plus our config),
    whole or not at all: through a temporary file, removed when the write fails (OSError, also
    for the full disk that torch reports as a RuntimeError)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {"net": state, "net_type": "FARTrackSparse", "model_config": model.cfg.to_dict(), **extra}
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save(payload, tmp)
        tmp.replace(path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if isinstance(exc, RuntimeError):  # torch's zip writer: a full disk, an I/O error
            raise OSError(f"cannot write checkpoint {path}: {' '.join(str(exc).split())}") from exc
        raise

