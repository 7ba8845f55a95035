"""Build the node's Tracker from its parameter values: load the model, check it, warm it up.

Kept out of node.py so that the ROS adapter stays thin; this module knows the model and tracker
APIs (``load_checkpoint``, ``Tracker``) and no ROS.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .cpu_pinning import pin_model_team, start_model_team
from .model import DEFAULT_WEIGHTS_PATH, device_for_backend, load_checkpoint, with_backend_for_device
from .model.device import resolve_device
from .tracker import Tracker, TrackerConfig

if TYPE_CHECKING:
    from rclpy.impl.rcutils_logger import RcutilsLogger

# The process's thread count before any cpu_threads was applied (it follows OMP_NUM_THREADS).
STARTUP_CPU_THREADS = torch.get_num_threads()


@dataclass
class LoadedTracker:
    """The node's warmed-up tracker and what the node reports of it: device, model name, checkpoint,
    load and warm-up times, CPU threads."""

    tracker: Tracker
    device: str  # the device the model actually runs on, e.g. "cpu", "cuda:0"
    model_name: str  # "<variant>/<backend>[-<precision>]", e.g. "tiny/torch", "tiny/torch-bfloat16"
    weights: str  # the checkpoint file
    load_s: float
    warmup_s: float
    cpu_threads: int  # threads of the model's CPU arithmetic
    pinned_cpus: list[int]  # CPUs the model's threads are pinned to, one each ([] = not pinned)

    @property
    def bundled(self) -> bool:
        """Whether the model is the package's bundled default, which tracks less well in grey."""
        return Path(self.weights) == DEFAULT_WEIGHTS_PATH

    def describe(self) -> str:
        """The configure log line: model, layers, template slots, checkpoint, device, threads, times."""
        cfg = self.tracker.cfg
        plural = "s" if self.cpu_threads != 1 else ""
        pinned = f", pinned to CPUs {','.join(map(str, self.pinned_cpus))}" if self.pinned_cpus else ""
        threads = f" ({self.cpu_threads} thread{plural}{pinned})" if self.device == "cpu" else ""
        return (f"model {self.model_name} ({cfg.num_layers} layers, {cfg.num_template_slots} template "
                f"slots) from {self.weights} on {self.device}{threads}: loaded in {self.load_s:.2f} s, "
                f"warm-up {self.warmup_s:.2f} s")

    def release(self) -> None:
        """Drop the model (and the CUDA cache it used)."""
        on_cuda = self.device.startswith("cuda")
        self.tracker = None
        if on_cuda:
            torch.cuda.empty_cache()


def load_tracker(values: dict[str, Any], log: RcutilsLogger | None = None) -> LoadedTracker:
    """A warmed-up Tracker for the node's parameter ``values``; raises with the reason on failure.

    Call it from the thread that will run the model: the CPU thread count is set for the calling
    thread (OpenMP keeps it per thread).
    """
    threads = values["cpu_threads"] or auto_cpu_threads()
    usable = usable_cpus()
    if threads > usable:  # OpenMP's lock-stepped threads beyond the CPUs only wait on each other
        if log is not None:
            source = f"cpu_threads={threads}" if values["cpu_threads"] else f"OMP_NUM_THREADS={threads}"
            log.warning(f"{source} but this process may use {usable} CPUs: running {usable} model threads"
                        + (" (set cpu_threads to 0 for automatic)" if values["cpu_threads"] else ""))
        threads = usable
    pin_model_team(1)  # undo an earlier load's pinning: threads started below inherit this thread's CPUs
    torch.set_num_threads(threads)
    start_model_team()  # before the load, whose CUDA or ONNX Runtime threads are not the model's team
    weights = values["weights"] or ""
    weights_path = str(Path(weights).expanduser()) if weights else str(DEFAULT_WEIGHTS_PATH)
    variant = values["variant"] or None
    requested = device_for_backend(values["device"], values["backend"])
    # An absent CUDA device is decided here, so the user gets one warning (in the node's log) or one error.
    load_device = str(resolve_device(requested, values["device_strict"], warn=None if log is None else log.warning))
    started = time.perf_counter()
    model, precision = _load_model(values["backend"], values["precision"], weights_path if weights else None,
                                   variant, load_device, values["device_strict"], log)
    load_s = time.perf_counter() - started
    cfg = model.cfg
    if values["num_templates"] and values["num_templates"] != cfg.num_template_slots:
        raise ValueError(
            f"num_templates={values['num_templates']} but {weights_path} was trained with "
            f"{cfg.num_template_slots} template slots (set num_templates to 0 or "
            f"{cfg.num_template_slots})")
    device = str(_model_device(model))
    tracker = Tracker(model, TrackerConfig(
        template_memory_cap=values["template_memory_cap"],
        lost_threshold=values["lost_threshold"],
        lost_frames=values["lost_frames"],
        max_targets=values["max_targets"],
    ))
    started = time.perf_counter()
    tracker.warm_up()
    warmup_s = time.perf_counter() - started
    runtime = values["backend"] if precision == "float32" else f"{values['backend']}-{precision}"
    # 1 (CUDA, ONNX Runtime, whose own threads do the arithmetic, or pinning off) undoes earlier pinning
    pinning = device == "cpu" and values["backend"] == "torch" and values["pin_cpu_threads"]
    pinned = pin_model_team(torch.get_num_threads() if pinning else 1)
    return LoadedTracker(tracker, device, f"{cfg.name}/{runtime}", weights_path, load_s, warmup_s,
                         torch.get_num_threads(), pinned)


def auto_cpu_threads() -> int:
    """The model's CPU threads for cpu_threads 0: OMP_NUM_THREADS when set, else one less than
    the usable CPUs (at least 1).

    The spare core is for the camera driver, rclpy and Fast DDS. With a thread per core, any other
    busy thread deschedules one of the model's lock-stepped OpenMP threads and the others wait for
    it at every barrier: on 2 cores next to one busy process, node p99 was 170-220 ms with 2
    unpinned model threads, 21-32 ms with 2 pinned ones and 14-36 ms with 1 (bundled and pico).
    """
    if os.environ.get("OMP_NUM_THREADS"):
        return STARTUP_CPU_THREADS
    return max(1, usable_cpus() - 1)


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one): the main thread's,
    which is never pinned, not the calling thread's (a compute thread pinned by an earlier load)."""
    try:
        return len(os.sched_getaffinity(os.getpid()))
    except AttributeError:  # no affinity API (macOS, Windows)
        return os.cpu_count() or 1


def _load_model(backend: str, precision: str, weights: str | None, variant: str | None, device: str,
                strict: bool, log=None):
    """The torch model at the precision its device runs well (see `precision_for_device`; the
    user is told when that differs), or its ONNX Runtime twin; and the precision it runs at."""
    model = load_checkpoint(weights, variant=variant, device=device, strict_device=strict)
    runner, precision, warning = with_backend_for_device(model, backend, precision)
    if warning and log is not None:
        log.warning(warning)
    return runner, precision


def _model_device(model) -> str:
    device = getattr(model, "device", None)
    if device is None:
        device = next(model.parameters()).device
    return str(device)
