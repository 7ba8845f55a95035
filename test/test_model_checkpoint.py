"""Checkpoints: official layout in and out, variants by truncation, clear errors, untrusted pickles."""

from __future__ import annotations

import argparse
import gzip
import os
import pathlib
import pickle
import re
import tarfile
import warnings
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
    read_checkpoint,
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
        # builtins that protocol 2 names __builtin__.*, and a path
        self.datasets = {"got10k", "lasot"}
        self.frozen = frozenset({1, 2})
        self.raw = bytearray(b"ab")
        self.gain = complex(1, 2)
        self.save_dir = pathlib.Path("/ws/checkpoints")


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
def test_only_the_official_sizes_throughout_are_named_after_a_variant():
    state = torch.load(FIXTURE_CKPT, map_location="cpu", weights_only=True)["net"]
    state["identity"] = state["identity"][:, :4]  # 3 template slots: a 15-layer, 192-wide custom net
    assert config_from_state_dict(state).name == "custom"


def test_a_state_dict_without_a_backbone_key_says_what_it_lacks(tmp_path):
    state = _small_model().state_dict()
    del state["backbone.patch_embed.proj.weight"]
    torch.save({"net": state}, tmp_path / "partial.pth")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tmp_path / "partial.pth")
    assert "lacks 'backbone.patch_embed.proj.weight'" in str(err.value)
    assert "invalid model config" not in str(err.value)


def test_a_model_config_that_is_not_a_dict_is_refused(tmp_path):
    torch.save({"net": _small_model().state_dict(), "model_config": "tiny"}, tmp_path / "named.pth")
    with pytest.raises(CheckpointError, match="'model_config' is a str, not a dict"):
        load_checkpoint(tmp_path / "named.pth")


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
    (tmp_path / "list.txt").write_text("seq1\nseq2\n")  # made torch's reader raise IndexError
    (tmp_path / "empty.pth").write_bytes(b"")
    (tmp_path / "plain.pkl").write_bytes(pickle.dumps({"net": {}}, protocol=4))
    for name, problem in (("cut.pth", "is cut short or damaged .* copy it again"), ("empty.pth", "is empty"),
                          ("text.pth", "is not a torch checkpoint"), ("list.txt", "is not a torch checkpoint"),
                          ("plain.pkl", "is not a torch checkpoint")):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # torch's own warnings stay out of the refusal
            with pytest.raises(CheckpointError, match=f"weights file {re.escape(str(tmp_path / name))} {problem}"):
                load_checkpoint(tmp_path / name)


def test_damage_inside_a_record_is_caught_by_its_crc(tmp_path):
    save_checkpoint(_small_model(), tmp_path / "m.pth")
    with zipfile.ZipFile(tmp_path / "m.pth") as archive:  # overwrite bytes inside the largest tensor
        info = max(archive.infolist(), key=lambda i: i.file_size)
    data = bytearray((tmp_path / "m.pth").read_bytes())
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + 64
    data[start:start + 256] = b"\xff" * 256
    (tmp_path / "damaged.pth").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="fails its CRC check"):
        load_checkpoint(tmp_path / "damaged.pth")


def test_weights_with_nan_are_refused(tmp_path):
    state = _small_model().state_dict()
    state["backbone.norm.weight"][3] = float("nan")
    torch.save({"net": state, "model_config": SMALL.to_dict()}, tmp_path / "nan.pth")
    with pytest.raises(CheckpointError, match="NaN or infinite values \\(backbone.norm.weight\\)"):
        load_checkpoint(tmp_path / "nan.pth")


@needs_fixture
def test_a_bare_state_dict_loads_as_the_weights(tmp_path):
    torch.save(torch.load(FIXTURE_CKPT, weights_only=False)["net"], tmp_path / "bare.pth")
    model = load_checkpoint(tmp_path / "bare.pth", variant="pico")
    torch.testing.assert_close(_forward_logits(model), _forward_logits(load_checkpoint(FIXTURE_CKPT, variant="pico")),
                               atol=0, rtol=0)


def test_a_custom_width_without_its_config_is_refused_not_guessed(tmp_path):
    """The head count is not in the tensors: the bundled model's 4 heads would load as 2."""
    torch.save(load_checkpoint(None).state_dict(), tmp_path / "bundled_bare.pth")
    with pytest.raises(CheckpointError, match="128-wide network without 'model_config'"):
        load_checkpoint(tmp_path / "bundled_bare.pth")


@pytest.mark.parametrize("extra", [{}, {"settings": TrainingSettings()}], ids=["weights", "pickled-objects"])
def test_a_checkpoint_saved_without_crcs_loads(tmp_path, extra):
    model = _small_model()
    torch.serialization.set_crc32_options(False)
    try:
        save_checkpoint(model, tmp_path / "nocrc.pth", **extra)
    finally:
        torch.serialization.set_crc32_options(True)
    torch.testing.assert_close(_forward_logits(load_checkpoint(tmp_path / "nocrc.pth")), _forward_logits(model),
                               atol=0, rtol=0)


def test_wrong_layout_names_the_expected_key_and_a_few_found_ones(tmp_path):
    torch.save({f"model_{i}": {"w": torch.zeros(1)} for i in range(300)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="weights under 'net'") as err:
        load_checkpoint(tmp_path / "other.pth")
    assert len(str(err.value)) < 400


@needs_fixture
def test_unused_parameters_load_whatever_their_size(tmp_path):
    """pos_embed, cls_token and the trajectory embeddings are never read (quirk Q3): their sizes,
    which follow the training set-up, must not stop a checkpoint from loading."""
    checkpoint = torch.load(FIXTURE_CKPT, weights_only=False)
    reference = load_checkpoint(FIXTURE_CKPT, variant="pico")
    net = checkpoint["net"]
    net["backbone.pos_embed"] = torch.zeros(1, 257, 192)
    net["backbone.prev_position_embeddings.weight"] = torch.zeros(28, 192)
    torch.save({"net": net}, tmp_path / "sizes.pth")
    model = load_checkpoint(tmp_path / "sizes.pth", variant="pico")
    assert model.backbone.prev_position_embeddings.num_embeddings == 28
    torch.testing.assert_close(_forward_logits(model), _forward_logits(reference), atol=0, rtol=0)


def test_a_used_parameter_of_another_size_is_a_checkpoint_error(tmp_path):
    state = _small_model().state_dict()
    state["backbone.output_bias"] = torch.zeros(7)
    torch.save({"net": state, "model_config": SMALL.to_dict()}, tmp_path / "size.pth")
    with pytest.raises(CheckpointError, match="does not fit.*backbone.output_bias"):
        load_checkpoint(tmp_path / "size.pth")


def test_strict_key_check_lists_missing_and_unexpected_keys(tmp_path):
    state = _small_model().state_dict()
    state.pop("backbone.norm.weight")
    state["backbone.extra.weight"] = torch.zeros(1)
    torch.save({"net": state, "model_config": SMALL.to_dict()}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tmp_path / "bad.pth")
    assert "backbone.norm.weight" in str(err.value) and "backbone.extra.weight" in str(err.value)


class _Allocates:
    """Pickles as ``constructor(size)``: what a hostile file writes by hand."""

    def __init__(self, constructor, size):
        self.constructor, self.size = constructor, size

    def __reduce__(self):
        return self.constructor, (self.size,)


@pytest.mark.parametrize("constructor", [bytearray, torch.FloatTensor], ids=["bytearray", "FloatTensor"])
def test_a_pickle_asking_a_constructor_for_a_huge_allocation_is_refused_before_loading(tmp_path, constructor):
    """bytearray(N) and torch.FloatTensor(N) are allowed by torch's weights_only reader: a 384-byte
    file asked for 1.6 GB. (Settings holding a small bytearray of data still load: see below.)"""
    state = {"net": _small_model().state_dict(), "model_config": SMALL.to_dict(),
             "settings": _Allocates(constructor, 1_600_000_000)}
    for legacy in (False, True):
        torch.save(state, tmp_path / "sized.pth", _use_new_zipfile_serialization=not legacy)
        with pytest.raises(CheckpointError, match=r"refusing to load .*the pickle calls .*\(1600000000\)"):
            load_checkpoint(tmp_path / "sized.pth")


def test_a_size_fetched_from_the_pickle_memo_is_seen_as_the_call_s_argument():
    import pickletools

    from fartrack_ros.model.checkpoint import _check_pickle

    # PROTO 2; BININT 1.6e9; BINPUT 0; POP; GLOBAL bytearray; BINGET 0; TUPLE1; REDUCE; STOP
    data = (b"\x80\x02J" + (1_600_000_000).to_bytes(4, "little") + b"q\x000c__builtin__\nbytearray\nh\x00\x85R.")
    with pytest.raises(pickle.UnpicklingError, match=r"bytearray\(1600000000\)"):
        _check_pickle(pickletools.genops(data))


def test_a_reference_to_a_sized_constructor_beside_a_large_number_is_no_call(tmp_path):
    """A settings object naming torch.FloatTensor next to a count of 40 M samples loads."""
    state = {"net": _small_model().state_dict(), "model_config": SMALL.to_dict(),
             "settings": {"tensor_type": torch.FloatTensor, "samples": 40_000_000, "raw": bytearray(b"ab")}}
    torch.save(state, tmp_path / "typeref.pth")
    assert load_checkpoint(tmp_path / "typeref.pth").cfg == SMALL


def test_a_checkpoint_with_compressed_records_is_refused(tmp_path):
    """torch.save stores records uncompressed; a deflated one can inflate a small file to gigabytes."""
    save_checkpoint(_small_model(), tmp_path / "plain.pth")
    with zipfile.ZipFile(tmp_path / "plain.pth") as source, \
            zipfile.ZipFile(tmp_path / "deflated.pth", "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            target.writestr(info.filename, source.read(info))
    assert load_checkpoint(tmp_path / "plain.pth").cfg == SMALL
    with pytest.raises(CheckpointError, match="is compressed, which torch.save never does"):
        load_checkpoint(tmp_path / "deflated.pth")


def test_a_number_as_variant_keeps_that_many_first_layers(tmp_path):
    save_checkpoint(_small_model(), tmp_path / "small.pth")  # 3 blocks + 1 extension
    full = load_checkpoint(tmp_path / "small.pth")
    for layers, (depth, extension) in {"2": (2, 0), "4": (3, 1)}.items():
        cut = load_checkpoint(tmp_path / "small.pth", variant=layers)
        assert (cut.cfg.depth, cut.cfg.extension_depth) == (depth, extension)
        for key, value in cut.state_dict().items():
            assert torch.equal(value, full.state_dict()[key]), key
    assert load_checkpoint(tmp_path / "small.pth", variant="2").cfg.name == "test-2L"
    with pytest.raises(CheckpointError, match="variant '5' needs 5 layers but the checkpoint has only 4"):
        load_checkpoint(tmp_path / "small.pth", variant="5")
    assert load_checkpoint(tmp_path / "small.pth", variant=2).cfg == load_checkpoint(tmp_path / "small.pth",
                                                                                      variant="2").cfg
    for bad in (0, -1, 2.0, True):  # a number of layers is a positive integer
        with pytest.raises(CheckpointError, match="variant"):
            load_checkpoint(tmp_path / "small.pth", variant=bad)


def test_an_onnx_file_given_as_weights_is_told_to_be_the_pth(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"\x08\x07\x12\x07pytorch")  # an ONNX protobuf's start
    with pytest.raises(CheckpointError, match="is an ONNX model: give the .pth checkpoint"):
        load_checkpoint(tmp_path / "model.onnx")


def test_a_checkpoint_missing_a_weight_is_refused_naming_it(tmp_path):
    state = _small_model().state_dict()
    state.pop("backbone.norm.weight")
    torch.save({"net": state, "model_config": SMALL.to_dict()}, tmp_path / "missing.pth")
    with pytest.raises(CheckpointError, match=r"missing keys \['backbone.norm.weight'\], unexpected keys \[\]"):
        load_checkpoint(tmp_path / "missing.pth")


@pytest.mark.parametrize("sizes", [dict(embed_dim=224, num_heads=4), dict(bins=75, coord_range=3),
                                   dict(bins=301, coord_range=1)], ids=["width-224", "bins-75x3", "bins-301x1"])
def test_a_model_config_the_tensors_cannot_tell_apart_still_loads(tmp_path, sizes):
    """The head count and the bins/range split are not in the tensors: a stored config decides them."""
    cfg = ModelConfig(**{**SMALL.to_dict(), **sizes})
    save_checkpoint(build_model(cfg), tmp_path / "custom.pth")
    assert load_checkpoint(tmp_path / "custom.pth").cfg == cfg


@pytest.mark.parametrize("change, reason", [
    ({"depth": 20000}, r"does not describe its weights: depth=20000 \(the tensors: 3\)"),
    ({"embed_dim": 4096}, "embed_dim=4096"),
    ({"patch_size": 0}, "invalid model config: patch_size must be a positive integer, got 0"),
    ({"depth": 3.0}, "invalid model config: depth must be a positive integer, got 3.0"),
    ({"num_heads": 3}, "invalid model config: embed_dim 64 is not divisible by num_heads 3"),
])
def test_a_model_config_that_does_not_describe_the_tensors_is_refused_before_building(tmp_path, change, reason):
    """The network is built from model_config: a few bytes claiming 20,000 layers took gigabytes."""
    config = {**SMALL.to_dict(), **change}
    torch.save({"net": _small_model().state_dict(), "model_config": config}, tmp_path / "config.pth")
    with pytest.raises(CheckpointError, match=reason):
        load_checkpoint(tmp_path / "config.pth")


@pytest.mark.parametrize("tamper, reason", [
    (lambda state: state.update({"backbone.norm.weight": torch.full((64,), complex("nan+0j"))}),
     "'backbone.norm.weight' is torch.complex64, not floating point"),
    (lambda state: state.update({"backbone.norm.weight": torch.ones(64, dtype=torch.int64)}),
     "is torch.int64, not floating point"),
    (lambda state: state.update({"backbone.pos_embed_x": torch.zeros(1).expand(1, 36, 64)}),
     "'backbone.pos_embed_x' is a view larger than its storage"),
    (lambda state: state.update({7: torch.zeros(1)}), "keys that are not parameter names: \\[7\\]"),
])
def test_weights_no_saved_network_holds_are_refused(tmp_path, tamper, reason):
    state = _small_model().state_dict()
    tamper(state)
    torch.save({"net": state, "model_config": SMALL.to_dict()}, tmp_path / "odd.pth")
    with pytest.raises(CheckpointError, match=reason):
        load_checkpoint(tmp_path / "odd.pth")


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


def test_sets_paths_and_other_plain_data_in_pickled_settings_come_back_as_data(tmp_path):
    torch.save({"net": _small_model().state_dict(), "settings": TrainingSettings()}, tmp_path / "train.pth.tar")
    settings = read_checkpoint(tmp_path / "train.pth.tar")["settings"].state
    assert settings["datasets"] == {"got10k", "lasot"} and settings["frozen"] == frozenset({1, 2})
    assert settings["raw"] == bytearray(b"ab") and settings["gain"] == complex(1, 2)
    assert str(settings["save_dir"]) == "/ws/checkpoints" and isinstance(settings["save_dir"], pathlib.PurePath)


def test_weights_given_as_a_folder_or_packed_say_so(tmp_path):
    with pytest.raises(CheckpointError, match="is a folder"):
        load_checkpoint(tmp_path)
    save_checkpoint(_small_model(), tmp_path / "m.pth")
    (tmp_path / "m.pth.gz").write_bytes(gzip.compress((tmp_path / "m.pth").read_bytes()))
    with tarfile.open(tmp_path / "m.tar", "w") as archive:
        archive.add(tmp_path / "m.pth", arcname="m.pth")
    for name, packed in (("m.pth.gz", "gzip-compressed"), ("m.tar", "a tar archive")):
        with pytest.raises(CheckpointError, match=f"is {packed}: unpack the checkpoint first"):
            load_checkpoint(tmp_path / name)


def test_a_home_relative_path_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    save_checkpoint(_small_model(), tmp_path / "m.pth")
    assert load_checkpoint("~/m.pth").cfg == SMALL


def test_a_legacy_format_checkpoint_with_pickled_objects_says_how_to_convert_it(tmp_path):
    torch.save({"net": _small_model().state_dict(), "settings": TrainingSettings()}, tmp_path / "old.pth",
               _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError, match="torch's legacy .pre-1.6. format.*re-save it") as refused:
        load_checkpoint(tmp_path / "old.pth")
    message = str(refused.value)
    assert "\n" not in message and "\x1b" not in message  # one plain line, not torch's advice to load it anyway
    assert f"({TrainingSettings.__module__}.TrainingSettings)" in message


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
