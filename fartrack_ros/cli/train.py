"""fartrack-train: train a FARTrack model on generated sequences (default) or a GOT-10k/LaSOT folder.

Examples:
    fartrack-train --out out/run1                          # bundled-m from scratch, synthetic data
    fartrack-train --out out/run1 --resume                 # continue from the latest checkpoint
    fartrack-train --out out/ft --init '' --steps 2000 --grey-fraction 0.25   # fine-tune the bundled model
    fartrack-train --out out/ft --init model.pth --steps 500 --dataset /data/GOT-10k/train
    fartrack-train --out out/tiny --variant tiny --device cuda --batch-size 64
    fartrack-train --out out/sd --init tiny.pth --self-distill-from 6   # nano/pico cut from it track
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import platform
import shlex
import signal
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import torch

from ..training.trainer import TrainConfig, TrainingStopped
from .messages import CliError, Terminated, command, stopped_exit_code, warn
from .options import apply_threads, fraction, non_negative_int, positive_float, positive_int

if TYPE_CHECKING:
    from ..training import Trainer

PROG = "fartrack-train"
FINE_TUNE_LR = 1e-4  # --init's default peak lr: the from-scratch 8e-4 undid the bundled model (AO 0.78 -> 0.62)
# the run settings the command line can give, with TrainConfig's defaults
DEFAULTS = {name: getattr(TrainConfig, name) for name in
            ("steps", "batch_size", "lr", "stage2_steps", "checkpoint_every", "grey_fraction", "self_distill_from")}


def build_parser() -> argparse.ArgumentParser:
    """fartrack-train's options: the run folder, the model and where it starts (--init, --resume), the
    settings of `TrainConfig` the command line may change, the data and the runtime."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.split("\n")[1:]))
    parser.add_argument("--out", required=True, type=Path, help="run folder: checkpoints/, final.pth, logs")
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--config", default=None, help="named model size: bundled-m (default, the shipped model), bundled-s, test-xs (smoke runs)")
    model.add_argument("--variant", choices=["tiny", "nano", "pico"], help="official FARTrack size, from scratch")
    model.add_argument("--init", metavar="CKPT", help="start from this checkpoint (its size and weights; '' = "
                       f"the bundled model): fine-tuning, at --lr {FINE_TUNE_LR:g} unless given")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its latest checkpoint (its stored settings win); "
                             "with no checkpoint there a new run starts, with a warning (a job scheduler can "
                             "repeat one command)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    parser.add_argument("--seed", type=non_negative_int, help="seed of the weights and of every batch (default 0)")
    parser.add_argument("--steps", type=non_negative_int, help=f"stage-1 (pair) steps (default {DEFAULTS['steps']})")
    parser.add_argument("--batch-size", type=positive_int, help=f"samples per step (default {DEFAULTS['batch_size']})")
    parser.add_argument("--lr", type=positive_float, help=f"peak learning rate (default {DEFAULTS['lr']})")
    parser.add_argument("--stage2-steps", type=non_negative_int,
                        help=f"sequence-level steps after stage 1, tracking with the template memory (default {DEFAULTS['stage2_steps']})")
    parser.add_argument("--checkpoint-every", type=positive_int, help=f"steps between checkpoints (default {DEFAULTS['checkpoint_every']})")
    parser.add_argument("--keep-checkpoints", type=non_negative_int, default=0, metavar="N",
                        help="keep only the newest N checkpoints (default 0: keep every one); for this "
                             "invocation only: give it again with --resume")
    parser.add_argument("--grey-fraction", type=fraction,
                        help=f"share of the training sequences seen in grey, as from a mono camera "
                             f"(default {DEFAULTS['grey_fraction']}; 0: colour only)")
    parser.add_argument("--self-distill-from", type=non_negative_int, metavar="DEPTH",
                        help="FARTrack's task-specific self-distillation: every layer from DEPTH on also learns "
                             "to predict the box, from the box and from the next deeper layer, so that the first "
                             "N layers track alone (e.g. --variant tiny --self-distill-from 6; then the node's "
                             "variant nano/pico cuts it to 10/6 layers). Default 0: off")
    parser.add_argument("--dataset", type=Path,
                        help="GOT-10k or LaSOT root to train on instead of generated sequences")
    parser.add_argument("--workers", type=non_negative_int, default=0, help="threads preparing the next batch (default 0)")
    parser.add_argument("--threads", type=non_negative_int, default=0, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _sequence_source(dataset: Optional[Path], seed: int):
    from ..training import SequenceSource

    if dataset is None:
        return SequenceSource.synthetic(seed)
    from ..data.readers import load_dataset
    from ..training.sampling import trainable

    sequences = load_dataset(dataset)
    _warn_of_held_out_sequences(dataset, sequences)
    kept, left_out = [], []
    for sequence in sequences:
        (kept if trainable(sequence) else left_out).append(sequence)
    if not kept:
        raise CliError(f"no sequence in {dataset} shows its target in frame 0 and a later frame (a test split "
                       "has only first-frame boxes): nothing to train on")
    if left_out:
        warn(PROG, f"{len(left_out)} of the {len(sequences)} sequences in {dataset} are left out, "
                   f"e.g. {left_out[0].name}: their target is not visible in frame 0 and a later frame (a test "
                   "split has only first-frame boxes)")
    return SequenceSource.from_list(kept, seed, f"{dataset} ({len(kept)} sequences)")


def _warn_of_held_out_sequences(dataset: Path, sequences: list) -> None:
    """Generated sequences of held-out seeds in a training set (fartrack-make-data's default seeds)
    would make fartrack-eval's default set a training set: say so."""
    from ..data.synthetic import TRAIN_SEED_RANGE, seed_of

    held_out = [s.name for s in sequences if (seed := seed_of(s.name)) is not None and seed not in TRAIN_SEED_RANGE]
    if held_out:
        warn(PROG, f"{len(held_out)} of the {len(sequences)} sequences in {dataset} are generated from held-out "
                   f"seeds (>= {TRAIN_SEED_RANGE.stop}, e.g. {held_out[0]}): fartrack-eval's default set is no "
                   f"longer held out after this run; make training data with fartrack-make-data --seed-base "
                   f"below {TRAIN_SEED_RANGE.stop}")


def _train_config(args, stored: Optional[dict] = None):
    if stored is not None:
        return TrainConfig.from_dict(stored)
    values = {k: getattr(args, k) for k in DEFAULTS if getattr(args, k) is not None}
    if args.init is not None and args.lr is None:
        values["lr"] = FINE_TUNE_LR
    return replace(TrainConfig(), seed=args.seed or 0, **values)


@command(PROG)
def main(argv: Optional[list[str]] = None) -> int:
    """Train (or --resume) the run in --out; Ctrl-C or SIGTERM stops after the current step with a
    checkpoint, and a run that failed before its first checkpoint can be started again as it was."""
    args = build_parser().parse_args(argv)
    made_from = _first_missing(args.out)
    try:
        trainer = _trainer(args, argv)
    except BaseException as exc:
        _remove_made(args.out, made_from)
        if isinstance(exc, (ValueError, OSError)):
            raise CliError(exc) from None  # a bad --device, an unusable --init or dataset
        raise
    stopped_by = []

    def stop_after_this_step(signum, frame) -> None:
        trainer.stop_requested = True
        stopped_by.append(signum)
        for stop, at_once in previous.items():  # a second Ctrl-C or SIGTERM stops at once
            signal.signal(stop, at_once if at_once is not None else signal.SIG_DFL)

    previous = {}
    try:  # Ctrl-C, and SIGTERM as a job scheduler sends it, stop after the current step
        for stop in (signal.SIGINT, signal.SIGTERM):
            previous[stop] = signal.signal(stop, stop_after_this_step)
    except ValueError:  # not the main thread: the signals stay as they are
        pass
    try:
        summary = trainer.run()
    except TrainingStopped as stopped:
        print(f"{PROG}: interrupted: step {stopped.step} saved in {args.out / 'checkpoints'}; continue with "
              f"{PROG} --out {args.out} --resume", file=sys.stderr)
        return stopped_exit_code(stopped_by[:1] == [signal.SIGTERM])
    except BaseException as exc:
        saved = _forget_unsaved_run(args.out, made_from)
        if isinstance(exc, KeyboardInterrupt):  # a second Ctrl-C or SIGTERM: stopped mid-step
            print(f"{PROG}: stopped at once; " + (f"continue from the last checkpoint with {PROG} --out {args.out} "
                  "--resume" if saved else "no checkpoint was written"), file=sys.stderr)
            return stopped_exit_code(isinstance(exc, Terminated))
        if isinstance(exc, OSError):  # an unreadable dataset image, a full disk; anything else is a bug: traceback
            raise CliError(exc) from None
        raise
    finally:
        for stop, handler in previous.items():
            signal.signal(stop, handler if handler is not None else signal.SIG_DFL)
    print(f"{PROG}: {summary['steps']} steps in {summary['wall_time_s']:.0f} s -> {summary['final']}")
    return 0


def _first_missing(folder: Path) -> Path | None:
    """The outermost of ``folder`` and its parents that does not exist (what mkdir -p makes first)."""
    missing = None
    for path in (folder.absolute(), *folder.absolute().parents):
        if path.exists():
            break
        missing = path
    return missing


def _forget_unsaved_run(folder: Path, made_from: Path | None) -> bool:
    """After a run failed: whether it has a checkpoint to resume from; if not, its log goes too
    (and the folders this invocation made), so that the same command can start it again."""
    from ..training import latest_checkpoint

    if latest_checkpoint(folder) is not None:
        return True
    with contextlib.suppress(OSError):  # a read-only --out: the error that ended the run is what to say
        (folder / "train_log.jsonl").unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        (folder / "checkpoints").rmdir()  # only when empty
    _remove_made(folder, made_from)
    return False


def _remove_made(folder: Path, made_from: Path | None) -> None:
    """Remove the folders this invocation made for the run (``folder`` up to ``made_from``), empty
    as it failed before writing anything into them."""
    if made_from is None:
        return
    path = folder.absolute()
    while True:
        try:
            path.rmdir()  # only an empty folder goes
        except OSError:
            return
        if path == made_from:
            return
        path = path.parent


def _trainer(args: argparse.Namespace, argv: Optional[list[str]]) -> Trainer:
    """The Trainer of a new run, or of the run in ``--out`` resumed from its latest checkpoint."""
    from ..model import (DEFAULT_WEIGHTS_PATH, CheckpointError, FARTrack, ModelConfig, build_model, load_checkpoint,
                         read_checkpoint, resolve_device)
    from ..training import Trainer, latest_checkpoint, model_config
    from ..training.configs import init_for_training

    steps = DEFAULTS["steps"] if args.steps is None else args.steps
    stage2 = DEFAULTS["stage2_steps"] if args.stage2_steps is None else args.stage2_steps
    apply_threads(args.threads)
    device = resolve_device(args.device)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"cannot make the run folder --out {args.out}: {exc.strerror} (give a folder path)") from None
    resume_path = latest_checkpoint(args.out) if args.resume else None
    log_path = args.out / "train_log.jsonl"
    if args.resume and resume_path is None:
        warn(PROG, f"--resume: no checkpoint under {args.out / 'checkpoints'}; starting a new run")
        log_path.unlink(missing_ok=True)  # what an attempt that never reached a checkpoint logged
    elif not args.resume and (latest_checkpoint(args.out) is not None or log_path.is_file()):
        raise CliError(f"{args.out} already holds a run (checkpoints or train_log.jsonl): "
                       "continue it with --resume, or give a new --out")
    if resume_path is None and steps + stage2 < 1:  # a resumed run keeps its stored step counts
        raise CliError("--steps and --stage2-steps are both 0: nothing to train")
    if resume_path is not None:
        try:
            stored = read_checkpoint(resume_path)
        except CheckpointError as exc:
            raise CliError(f"--resume: {exc} (delete it to resume from the checkpoint before it)") from None
        config = _train_config(args, stored["train_config"])
        _warn_of_ignored_settings(args, config, stored)
        torch.manual_seed(config.seed)
        model = FARTrack(ModelConfig.from_dict(stored["model_config"]))
        metadata = dict(stored.get("metadata", {}))
        # where and how each continuation ran (a resumed run may have other threads or hardware)
        metadata["resumes"] = [*metadata.get("resumes", []),
                               {"at_step": int(stored.get("step", 0)), **_session(argv, device)}]
        metadata["data"] = _resumed_data(args, metadata.get("data", "synthetic"))
    else:
        config = _train_config(args)
        torch.manual_seed(config.seed)
        if args.init is not None:
            init = Path(args.init).expanduser().resolve() if args.init else DEFAULT_WEIGHTS_PATH
            model = load_checkpoint(init, device="cpu").train()
            origin = f"init {init} (sha256 {_sha256(init)})"  # the file may change later
            config = _keep_self_distillation(args, config, init)
        else:
            name = args.variant or args.config or "bundled-m"
            model = init_for_training(build_model(model_config(name)))
            origin = f"scratch {name}"
        metadata = {**_session(argv, device), "origin": origin,
                    "data": _data_name(args)}
    model = model.to(device)
    source = _sequence_source(None if metadata.get("data", "synthetic") == "synthetic" else Path(metadata["data"]),
                              config.seed)
    trainer = Trainer(model, source, config, args.out, workers=args.workers, progress=not args.no_progress,
                      metadata=metadata, keep_checkpoints=args.keep_checkpoints)
    if resume_path is not None:
        trainer.resume_from(resume_path)
        print(f"{PROG}: resumed {resume_path} at step {trainer.step}/{config.total_steps}", file=sys.stderr)
    return trainer


def _keep_self_distillation(args: argparse.Namespace, config: TrainConfig, init: Path) -> TrainConfig:
    """A fine-tune of a self-distilled checkpoint stays self-distilled unless --self-distill-from says
    otherwise: without it, its shallower layers (the node's variant cut) would unlearn to track alone."""
    from ..model import read_checkpoint

    stored = read_checkpoint(init).get("train_config")
    depth = stored.get("self_distill_from", 0) if isinstance(stored, dict) else 0
    if args.self_distill_from is not None or not isinstance(depth, int) or depth <= 0:
        return config
    warn(PROG, f"{init} was self-distilled from layer {depth}: this run keeps it (--self-distill-from 0 turns it off)")
    return replace(config, self_distill_from=depth)


def _data_name(args: argparse.Namespace) -> str:
    """What a run's metadata calls its data: "synthetic", or the dataset's absolute path."""
    return "synthetic" if args.dataset is None else str(args.dataset.expanduser().resolve())


def _resumed_data(args: argparse.Namespace, data: str) -> str:
    """Where a resumed run reads its dataset: where it began, or ``--dataset`` when that names
    another folder (the run's data moved there)."""
    if data == "synthetic":
        return data
    if args.dataset is not None and _data_name(args) != data:
        warn(PROG, f"--resume: reading the run's dataset from {_data_name(args)} (it began on {data}); "
                   "the batches are the uninterrupted run's only if that is the same data")
        return _data_name(args)
    if not Path(data).is_dir():
        raise CliError(f"--resume: the run's dataset folder {data} is gone; if it moved, give its new place "
                       "with --dataset")
    return data


def _warn_of_ignored_settings(args: argparse.Namespace, config, stored: dict) -> None:
    """A resumed run keeps its stored settings, model and data (``stored``: its checkpoint): say
    which given ones differ and are ignored."""
    ignored = [f"--{name.replace('_', '-')} {getattr(args, name)} (the run has {getattr(config, name)})"
               for name in DEFAULTS if getattr(args, name) is not None and getattr(args, name) != getattr(config, name)]
    # the model and the data are the run's too (its checkpoint and metadata)
    if args.init is not None:
        ignored.append(f"--init {args.init!r}")
    for name in ("config", "variant"):
        if getattr(args, name) not in (None, stored["model_config"].get("name")):
            ignored.append(f"--{name} {getattr(args, name)} (the run's model is {stored['model_config'].get('name')})")
    if args.dataset is not None and stored.get("metadata", {}).get("data", "synthetic") == "synthetic":
        ignored.append(f"--dataset {args.dataset} (the run trains on generated sequences)")
    if args.seed is not None and args.seed != config.seed:
        ignored.append(f"--seed {args.seed} (the run has {config.seed})")
    if ignored:
        warn(PROG, f"--resume continues the run with its stored settings; ignored: {', '.join(ignored)} "
                   "(to train longer, start a new run with --init from this run's final.pth)")


def _session(argv: Optional[list[str]], device) -> dict[str, str]:
    """What this invocation ran with: command, device, hardware and torch (checkpoint metadata)."""
    return {
        "command": f"{PROG} " + shlex.join(sys.argv[1:] if argv is None else argv),
        "device": str(device),
        "hardware": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads",
        "torch": str(torch.__version__),
    }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


if __name__ == "__main__":
    sys.exit(main())
