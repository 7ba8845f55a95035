"""Checkpoints: official layout in and out, variants by truncation, clear errors, untrusted pickles."""

from __future__ import annotations

import argparse
import os
import pickle
import zipfile
from collections import Counter, OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from fartrack_ros.model import (
    CheckpointError,
    ModelConfig,
    build_model,
    config_from_state_dict,
    load_checkpoint,
    resolve_device,
    save_checkpoint,
)

FIXTURE_CKPT = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "official" / "fartrack_random_ckpt.pth"
SMALL = ModelConfig(embed_dim=64, depth=3, extension_depth=1, num_heads=2, template_size=48, search_size=96, name="test")
needs_fixture = pytest.mark.skipif(not FIXTURE_CKPT.is_file(), reason="official fixture checkpoint not beside the repo")


class TrainingSettings:
    """Looks like the official pytracking settings object pickled into training checkpoints."""

    def __init__(self) -> None:
        self.env = argparse.Namespace(workspace_dir="/ws", tensorboard_dir="/tb")
        self.cfg = EasyDictLike(MODEL=EasyDictLike(BINS=300, RANGE=2), TRAIN=EasyDictLike(LR=1e-4))
        self.device = torch.device("cpu")


class EasyDictLike(dict):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.__dict__.update(kwargs)


class StatValue:
    def __init__(self, value: float) -> None:
        self.val = value
        self.history = [value, value * 0.5]
        self.avg = np.float64(value)


class Payload:
    """Unpickling this calls os.mkdir: the shape of every pickle exploit."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


def _small_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(SMALL).eval()


def _forward_logits(model) -> torch.Tensor:
    cfg = model.cfg
    gen = torch.Generator().manual_seed(3)
    templates = torch.randn(1, cfg.num_template_slots, 3, cfg.template_size, cfg.template_size, generator=gen)
    search = torch.randn(1, 3, cfg.search_size, cfg.search_size, generator=gen)
    with torch.inference_mode():
        return model(templates, search).logits


def test_save_then_load_gives_the_same_network(tmp_path):
    model = _small_model()
    save_checkpoint(model, tmp_path / "m.pth.tar", epoch=3)
    loaded = load_checkpoint(tmp_path / "m.pth.tar")
    assert loaded.cfg == model.cfg
    torch.testing.assert_close(_forward_logits(loaded), _forward_logits(model), atol=0, rtol=0)


@needs_fixture
def test_saved_checkpoint_has_the_official_key_layout(tmp_path):
    official = torch.load(FIXTURE_CKPT, map_location="cpu", weights_only=True)["net"]
    model = load_checkpoint(FIXTURE_CKPT)
    save_checkpoint(model, tmp_path / "again.pth.tar")
    saved = torch.load(tmp_path / "again.pth.tar", map_location="cpu", weights_only=True)["net"]
    assert set(saved) == set(official)
    for key, value in official.items():
        assert saved[key].shape == value.shape, key


@needs_fixture
def test_official_checkpoint_is_recognised_as_tiny():
    cfg = config_from_state_dict(torch.load(FIXTURE_CKPT, map_location="cpu", weights_only=True)["net"])
    assert (cfg.name, cfg.num_layers, cfg.embed_dim, cfg.num_heads, cfg.vocab_size) == ("tiny", 15, 192, 3, 605)


@needs_fixture
@pytest.mark.parametrize("variant,layers", [("nano", 10), ("pico", 6)])
def test_nano_and_pico_are_the_first_layers_of_tiny(variant, layers):
    tiny = load_checkpoint(FIXTURE_CKPT)
    cut = load_checkpoint(FIXTURE_CKPT, variant=variant)
    assert cut.cfg.num_layers == layers and cut.cfg.extension_depth == 0
    last = cut.backbone.blocks[layers - 1].attn.qkv.weight
    torch.testing.assert_close(last, tiny.backbone.blocks[layers - 1].attn.qkv.weight, atol=0, rtol=0)


def test_asking_for_more_layers_than_the_checkpoint_has_is_an_error(tmp_path):
    pico_like = build_model(ModelConfig(embed_dim=64, depth=6, extension_depth=0, num_heads=2,
                                        template_size=48, search_size=96, name="pico"))
    save_checkpoint(pico_like, tmp_path / "pico.pth")
    with pytest.raises(CheckpointError, match="variant 'tiny' needs 15 layers"):
        load_checkpoint(tmp_path / "pico.pth", variant="tiny")


def test_unknown_variant_is_an_error(tmp_path):
    save_checkpoint(_small_model(), tmp_path / "m.pth")
    with pytest.raises(CheckpointError, match="unknown variant 'huge'"):
        load_checkpoint(tmp_path / "m.pth", variant="huge")


def test_missing_file_error_says_what_to_do(tmp_path):
    with pytest.raises(CheckpointError, match="weights file not found.*leave it empty for the bundled model"):
        load_checkpoint(tmp_path / "absent.pth")


def test_corrupt_file_is_refused_with_a_clear_error(tmp_path):
    save_checkpoint(_small_model(), tmp_path / "m.pth")
    data = (tmp_path / "m.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.pth").write_text("not a checkpoint")
    for name in ("cut.pth", "text.pth"):
        with pytest.raises(CheckpointError, match="corrupt or not a torch checkpoint"):
            load_checkpoint(tmp_path / name)


def test_wrong_layout_names_the_expected_key(tmp_path):
    torch.save(_small_model().state_dict(), tmp_path / "bare.pth")
    with pytest.raises(CheckpointError, match="weights under 'net'"):
        load_checkpoint(tmp_path / "bare.pth")


def test_strict_key_check_lists_missing_and_unexpected_keys(tmp_path):
    state = _small_model().state_dict()
    state.pop("backbone.norm.weight")
    state["backbone.extra.weight"] = torch.zeros(1)
    torch.save({"net": state, "model_config": SMALL.to_dict()}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tmp_path / "bad.pth")
    assert "backbone.norm.weight" in str(err.value) and "backbone.extra.weight" in str(err.value)


def test_data_parallel_prefix_is_explained(tmp_path):
    state = {f"module.{k}": v for k, v in _small_model().state_dict().items()}
    torch.save({"net": state}, tmp_path / "dp.pth")
    with pytest.raises(CheckpointError, match="module."):
        load_checkpoint(tmp_path / "dp.pth")


def test_training_checkpoint_with_pickled_objects_loads(tmp_path):
    model = _small_model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model(torch.randn(1, 5, 3, 48, 48), torch.randn(1, 3, 96, 96)).logits.sum().backward()
    optimizer.step()
    torch.save(
        {
            "epoch": 15,
            "actor_type": "FARTrackSparseActor",
            "net_type": "FARTrackSparse",
            "net": model.state_dict(),
            "net_info": None,
            "constructor": argparse.Namespace(fun_name="build", fun_module="lib.models", args=(1,), kwds={}),
            "optimizer": optimizer.state_dict(),
            "stats": OrderedDict(train=OrderedDict(Loss=StatValue(0.5))),
            "settings": TrainingSettings(),
            "model_config": SMALL.to_dict(),
        },
        tmp_path / "train.pth.tar",
    )
    with pytest.raises(Exception):
        torch.load(tmp_path / "train.pth.tar", weights_only=True)  # what makes the safe reader necessary
    loaded = load_checkpoint(tmp_path / "train.pth.tar")
    torch.testing.assert_close(_forward_logits(loaded), _forward_logits(model), atol=0, rtol=0)


def test_checkpoint_with_a_reduce_payload_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "payload_ran"
    torch.save({"net": _small_model().state_dict(), "settings": Payload(marker)}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="refusing"):
        load_checkpoint(tmp_path / "evil.pth")
    assert not marker.exists()


def _text(value: str) -> bytes:
    return pickle.BINUNICODE + len(value).to_bytes(4, "little") + value.encode()


def test_checkpoint_setting_attributes_of_a_class_is_refused(tmp_path):
    """pickle's BUILD on a class object (here Counter.elements = set) would patch it process-wide."""
    torch.save({"net": {}, "settings": OrderedDict()}, tmp_path / "build.pth")
    with zipfile.ZipFile(tmp_path / "build.pth") as archive:
        records = {name: archive.read(name) for name in archive.namelist()}
    # {'net': {}, 'x': Counter built with the slot state {'elements': set}}
    records[next(n for n in records if n.endswith("data.pkl"))] = b"".join([
        pickle.PROTO, b"\x02", pickle.EMPTY_DICT, pickle.MARK,
        _text("net"), pickle.EMPTY_DICT, _text("x"), pickle.GLOBAL, b"collections\nCounter\n",
        pickle.NONE, pickle.EMPTY_DICT, _text("elements"), pickle.GLOBAL, b"__builtin__\nset\n", pickle.SETITEM,
        pickle.TUPLE2, pickle.BUILD, pickle.SETITEMS, pickle.STOP,
    ])
    with zipfile.ZipFile(tmp_path / "build.pth", "w") as archive:
        for name, data in records.items():
            archive.writestr(name, data)
    elements = Counter.elements
    with pytest.raises(CheckpointError, match="set the state of <class 'collections.Counter'>"):
        load_checkpoint(tmp_path / "build.pth")
    assert Counter.elements is elements


def test_device_resolution_falls_back_to_cpu_or_fails_when_strict(caplog):
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="invalid device"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with caplog.at_level("WARNING"):
            assert resolve_device("cuda:0").type == "cpu"
        assert "no CUDA device is available" in caplog.text
        with pytest.raises(RuntimeError, match="device_strict"):
            resolve_device("cuda", strict=True)
