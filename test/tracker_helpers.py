"""Shared pieces of the tracker tests: fixture paths, a small random network, generated videos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fartrack_ros.model import FARTrack, ModelConfig, ModelOutput, load_checkpoint, with_backend

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "official"
TRACE_PATH = FIXTURES / "tracker_trace.npz"
CKPT_PATH = FIXTURES / "fartrack_random_ckpt.pth"

# The devices parity and precision tests run on: the CPU, and CUDA where this machine has it (the
# test's own logic is checked on the CPU everywhere; its CUDA run waits for a GPU).
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                                 reason="no CUDA device on this machine"))]


def official_model_on(device: str) -> FARTrack:
    """The official fixture checkpoint at float32 on ``device`` (on CUDA as the node runs it: TF32 off)."""
    return with_backend(load_checkpoint(CKPT_PATH, device=device), "torch")


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Run a test on one torch thread: the test machine's cores are shared, and two threads
    competing with other processes are many times slower than one. Imported by test modules."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


SMALL_CONFIG = ModelConfig(embed_dim=32, depth=1, extension_depth=1, num_heads=2, patch_size=8,
                           template_size=32, search_size=64, name="small-test")
MICRO_CONFIG = ModelConfig(embed_dim=16, depth=1, extension_depth=0, num_heads=1, patch_size=8,
                           template_size=16, search_size=32, name="micro-test")


def random_embedded_inputs(cfg: ModelConfig, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random template embeddings (B,S,T,D) and search images (B,3,H,W) for ``forward_embedded``."""
    embeds = torch.randn(batch, cfg.num_template_slots, cfg.template_tokens, cfg.embed_dim, generator=generator)
    search = torch.randn(batch, 3, cfg.search_size, cfg.search_size, generator=generator)
    return embeds, search


def random_model(cfg: ModelConfig = SMALL_CONFIG, seed: int = 0) -> FARTrack:
    """A network with weights drawn like the official random fixture: every weight matters and
    the coordinate logits are far from uniform, so argmax decisions are not near-ties."""
    model = FARTrack(cfg)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=gen)
            if "norm" in name and name.endswith("weight"):
                param.copy_(1.0 + 0.1 * noise)
            elif name.endswith("output_bias"):
                param.copy_(0.5 * noise)
            elif "word_embeddings" in name:
                param.copy_(0.2 * noise)
            else:
                param.copy_(0.1 * noise)
    return model.eval()


def textured_background(height: int, width: int, seed: int) -> np.ndarray:
    """16 px block mosaic in muted colours, deterministic."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(40, 140, size=(height // 16 + 1, width // 16 + 1, 3), dtype=np.uint8)
    return np.repeat(np.repeat(blocks, 16, axis=0), 16, axis=1)[:height, :width].copy()


def draw_target(frame: np.ndarray, box_xywh) -> None:
    """A bright red/yellow checkerboard in ``box_xywh`` (clipped to the frame), in place."""
    x, y, w, h = (int(round(v)) for v in box_xywh)
    yy, xx = np.mgrid[y:y + h, x:x + w]
    inside = (yy >= 0) & (yy < frame.shape[0]) & (xx >= 0) & (xx < frame.shape[1])
    checker = ((yy // 8 + xx // 8) % 2).astype(bool)
    colours = np.where(checker[..., None], np.array([250, 40, 30], np.uint8),
                       np.array([250, 230, 40], np.uint8))
    frame[yy[inside], xx[inside]] = colours[inside]


def moving_target_video(num_frames: int, height: int = 120, width: int = 160, seed: int = 0,
                        start=(20.0, 30.0), velocity=(3.0, 1.0), size=(32.0, 28.0)):
    """Frames with a checkerboard target moving at constant velocity; returns (frames, boxes)."""
    background = textured_background(height, width, seed)
    frames, boxes = [], []
    for f in range(num_frames):
        box = (start[0] + velocity[0] * f, start[1] + velocity[1] * f, size[0], size[1])
        frame = background.copy()
        draw_target(frame, box)
        frames.append(frame)
        boxes.append(box)
    return frames, boxes


def leave_and_return_video(height: int = 240, width: int = 320, seed: int = 3):
    """The target moves right, leaves the view through the right border, stays out, and comes
    back the same way. Returns (frames, boxes, visible) with visible[f] False while it is out."""
    size = (48.0, 40.0)
    y = 100.0
    xs = list(np.arange(120.0, 340.0, 8.0))  # out of view once x >= width
    xs += [340.0] * 20
    xs += list(np.arange(340.0, 60.0, -8.0))
    background = textured_background(height, width, seed)
    frames, boxes, visible = [], [], []
    for x in xs:
        box = (float(x), y, *size)
        frame = background.copy()
        draw_target(frame, box)
        frames.append(frame)
        boxes.append(box)
        visible.append(x + 0.75 * size[0] < width)  # at least a quarter of it inside
    return frames, boxes, visible


def iou_xywh(a, b) -> float:
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax1, bx1) - max(a[0], b[0]))
    ih = max(0.0, min(ay1, by1) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


class ScriptedScoreModel(torch.nn.Module):
    """Test double for the *score only*: a real network runs, then its coordinate logits are
    replaced by ones that decode to the centre of the search crop with the target's usual size
    and whose confidence (peak bin probability) is the next value of ``scores`` (a tuple: one
    per target of the batch)."""

    def __init__(self, model: FARTrack, scores):
        super().__init__()
        self.inner = model
        self.cfg = model.cfg
        self.scores = list(scores)

    def embed_template(self, z):
        return self.inner.embed_template(z)

    def forward_embedded(self, template_embeds, template_keep, search, drop_pruned=True):
        out = self.inner.forward_embedded(template_embeds, template_keep, search, drop_pruned)
        score = self.scores.pop(0)
        per_target = score if isinstance(score, tuple) else (score,) * out.logits.shape[0]
        cfg = self.cfg
        # bins whose values are x0,y0 = 0.375 and x1,y1 = 0.625: a box a quarter of the crop
        bins = [round((v + 0.5) * cfg.bins) for v in (0.375, 0.375, 0.625, 0.625)]
        logits = torch.zeros_like(out.logits)
        for row, row_score in enumerate(per_target):
            peak = float(np.log(row_score * (cfg.num_bins - 1) / (1.0 - row_score)))
            for i, b in enumerate(bins):
                logits[row, i, b] = peak
        return ModelOutput(logits=logits, prune_scores=out.prune_scores, prune_keep=out.prune_keep,
                           template_scores=out.template_scores)


class RecordingModel(torch.nn.Module):
    """Spy: passes every call through to a real network and keeps each forward's logits."""

    def __init__(self, model: FARTrack):
        super().__init__()
        self.inner = model
        self.cfg = model.cfg
        self.logits: list[torch.Tensor] = []

    def embed_template(self, z):
        return self.inner.embed_template(z)

    def forward_embedded(self, template_embeds, template_keep, search, drop_pruned=True):
        out = self.inner.forward_embedded(template_embeds, template_keep, search, drop_pruned)
        self.logits.append(out.logits.clone())
        return out
