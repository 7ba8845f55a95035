"""Read torch checkpoints without ever running pickled code.

Weights load with ``torch.load(..., weights_only=True)``. Official *training* checkpoints also
carry pickled Python objects (settings, stats, optimizer, constructor) that ``weights_only``
refuses. For those, :func:`load_untrusted` reads the archive with a restricted unpickler:

* torch's own allowlist of safe globals (tensor rebuilders, dtypes, OrderedDict, ...) is used as is;
* any other class becomes an inert placeholder that only stores the state it is given, so an object
  such as ``settings`` loads as data and nothing from its module is imported;
* *calling* such an unknown global (the ``__reduce__`` trick behind every pickle exploit) is refused;
* setting state (pickle's BUILD) works on placeholders and on instances of allowed types only, never
  on a class, function or module: otherwise a checkpoint could rewrite, say, ``Counter.elements``.
"""

from __future__ import annotations

import _compat_pickle
import io
import pickle
import re
import warnings
import zipfile
from pathlib import Path, PurePath, PurePosixPath, PureWindowsPath
from typing import Any

import torch
from torch import _weights_only_unpickler


class UnsafeCheckpointError(pickle.UnpicklingError):
    """The checkpoint asks to call a function or class that is not known to be safe."""


class InertObject:
    """Stand-in for an instance of a class we refuse to import: it only holds the pickled state."""

    pickled_class = "?"

    def __init__(self) -> None:
        self.state: Any = None
        self.items: dict = {}
        self.list_items: list = []

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:
        self.items[key] = value

    def append(self, value: Any) -> None:
        """Pickle's APPEND on a placeholder: keep the item as data."""
        self.list_items.append(value)

    def extend(self, values: Any) -> None:
        """Pickle's APPENDS on a placeholder: keep the items as data."""
        self.list_items.extend(values)

    def __repr__(self) -> str:
        return f"<inert {self.pickled_class}>"


class _InertClassMeta(type):
    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        raise UnsafeCheckpointError(
            f"checkpoint tries to call {cls.pickled_class}{args!r:.80}; refusing to run pickled code"
        )


def _placeholder(module: str, name: str) -> type:
    def new(cls: type, *args: Any) -> InertObject:
        obj = object.__new__(cls)
        InertObject.__init__(obj)
        return obj

    return _InertClassMeta(name, (InertObject,), {"pickled_class": f"{module}.{name}", "__new__": new})


def _numpy_data_globals() -> dict[str, Any]:
    """numpy's array and scalar reconstructors: plain data, safe to call (training stats hold them)."""
    import numpy as np

    multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
    names = {}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        names[f"{module}.scalar"] = multiarray.scalar
        names[f"{module}._reconstruct"] = multiarray._reconstruct
    names["numpy.dtype"] = np.dtype
    names["numpy.ndarray"] = np.ndarray
    return names


def _plain_data_globals() -> dict[str, Any]:
    """Data that torch's list lacks, safe to build (a training config may hold a frozenset or a
    path). Paths become pure paths, which touch no file."""
    names: dict[str, Any] = {"builtins.frozenset": frozenset}
    for module in ("pathlib", "pathlib._local"):  # Python 3.13 moved the classes
        for name, pure in (("Path", PurePath), ("PurePath", PurePath), ("PosixPath", PurePosixPath),
                           ("PurePosixPath", PurePosixPath), ("WindowsPath", PureWindowsPath),
                           ("PureWindowsPath", PureWindowsPath)):
            names[f"{module}.{name}"] = pure
    return names


class _RestrictedUnpickler(pickle._Unpickler):
    """The pure-Python unpickler (its opcodes can be overridden; the C one's cannot)."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str) -> None:
        super().__init__(io.BytesIO(data))
        self._archive = archive
        self._prefix = prefix
        self._allowed = {**_weights_only_unpickler._get_allowed_globals(), **_numpy_data_globals(),
                         **_plain_data_globals()}
        self._buildable = tuple(v for v in self._allowed.values() if isinstance(v, type))
        self._storages: dict[str, Any] = {}

    def _load_build(self) -> None:
        inst = self.stack[-2]  # under the state
        if not isinstance(inst, InertObject) and (isinstance(inst, type) or not isinstance(inst, self._buildable)):
            raise UnsafeCheckpointError(
                f"checkpoint tries to set the state of {inst!r:.80}; only data objects may be built"
            )
        pickle._Unpickler.load_build(self)

    dispatch[pickle.BUILD[0]] = _load_build

    def find_class(self, module: str, name: str) -> Any:
        if self.proto < 3 and self.fix_imports:  # torch pickles with protocol 2: builtins as __builtin__
            module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
            module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        full_name = f"{module}.{name}"
        if full_name in self._allowed:
            return self._allowed[full_name]
        return _placeholder(module, name)

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise UnsafeCheckpointError(f"unsupported persistent id {pid!r:.80}")
        _, storage_type, key, _location, numel = pid
        dtype = storage_type.dtype if hasattr(storage_type, "dtype") else storage_type(0).dtype
        if key not in self._storages:
            raw = read_record(self._archive, f"{self._prefix}data/{key}")
            untyped = torch.UntypedStorage.from_buffer(raw, dtype=torch.uint8) if raw else torch.UntypedStorage(0)
            self._storages[key] = torch.storage.TypedStorage(wrap_storage=untyped, dtype=dtype, _internal=True)
        return self._storages[key]


def load_untrusted(path: "str | Path") -> Any:
    """Load a torch.save archive, keeping tensors and plain data and neutralising everything else."""
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise pickle.UnpicklingError(f"not a torch checkpoint archive: found {len(pickles)} data.pkl records")
        prefix = pickles[0][: -len("data.pkl")]
        return _RestrictedUnpickler(read_record(archive, pickles[0]), archive, prefix).load()


def read_record(archive: zipfile.ZipFile, name: str) -> bytes:
    """A record's bytes. torch may save with CRCs switched off (all stored as 0), which
    ``ZipFile.read`` takes for damage; such stored (uncompressed) records are read directly."""
    info = archive.getinfo(name)
    if info.CRC != 0 or info.compress_type != zipfile.ZIP_STORED or info.file_size == 0:
        return archive.read(name)
    archive.fp.seek(info.header_offset)
    header = archive.fp.read(30)  # the local file header: its name and extra field lengths
    name_length, extra_length = int.from_bytes(header[26:28], "little"), int.from_bytes(header[28:30], "little")
    archive.fp.seek(info.header_offset + 30 + name_length + extra_length)
    return archive.fp.read(info.file_size)


def load_checkpoint_file(path: "str | Path") -> Any:
    """torch.load with weights_only=True; if the file holds pickled objects, the restricted reader."""
    try:
        with warnings.catch_warnings():  # torch warns of a pickle protocol before it refuses the file
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if is_legacy_torch_file(path):
            refused = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
            objects = f" ({refused.group(1)})" if refused else ""
            raise pickle.UnpicklingError(
                f"it is in torch's legacy (pre-1.6) format with pickled objects{objects}, which are not read "
                "from that format here: load it once where you trust it and re-save it with a current "
                "torch.save") from exc
        return load_untrusted(path)


def is_legacy_torch_file(path: "str | Path") -> bool:
    """Whether ``path`` starts as torch.save's legacy (pre-1.6, non-zip) format does: the magic
    number, pickled with torch's default protocol 2."""
    magic = pickle.dumps(torch.serialization.MAGIC_NUMBER, protocol=2)
    with open(path, "rb") as file:
        return file.read(len(magic)) == magic
