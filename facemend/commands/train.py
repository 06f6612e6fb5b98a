"""`facemend train prepare|run|export`: train a face generator on your own photos."""

from __future__ import annotations

import argparse
import math
import signal
import sys
import threading
import time
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a face generator on your own photos (prepare, run, export)",
        description="Train a DCGAN face generator locally: `prepare` aligns the faces of a photo "
        "collection, `run` trains (and resumes), `export` writes a model bundle.",
    )
    tsub = p.add_subparsers(dest="train_command", metavar="ACTION", required=True)

    pr = tsub.add_parser(
        "prepare",
        help="detect and align faces into a training data folder",
        description="Read LFW's lfw-funneled.tgz (streamed, nothing extracted) or a folder of photos "
        "(recursive), detect and align every face as repairs do, and write sharded TFRecords of "
        "aligned faces plus summary.json to a new folder. Exit 3 if no usable face is found.",
    )
    pr.add_argument("--source", required=True, type=Path, help="lfw-funneled.tgz (or any .tgz of photos) or a folder of photos")
    pr.add_argument("--out", required=True, type=Path, help="data folder to create")
    pr.add_argument("--bundle", default=None, help="bundle whose landmark template and size to align to (default: the shipped one)")
    pr.add_argument("--max-faces-per-image", type=int, default=1, help="keep up to N faces per photo, most confident first (default 1)")
    pr.add_argument("--min-face-size", type=int, default=40, help="skip faces whose box is smaller than N pixels (default 40)")
    pr.add_argument("--shard-size", type=int, default=2000, help="faces per TFRecord shard (default 2000)")
    pr.set_defaults(func=_prepare)

    r = tsub.add_parser(
        "run",
        help="train (or resume training) a DCGAN on a prepared data folder",
        description="Train generator and discriminator (Adam lr 2e-4, beta1 0.5, non-saturating loss). "
        "Checkpoints every N steps; running the same command on the same --out resumes exactly "
        "where it stopped. Ctrl+C saves a checkpoint and exits 5. Uses a GPU when TensorFlow sees one.",
    )
    r.add_argument("--data", type=Path, help="folder made by `facemend train prepare` (required for a new run)")
    r.add_argument("--out", required=True, type=Path, help="run folder: checkpoints, samples/, logs/ (TensorBoard), config.json")
    r.add_argument("--from-bundle", default=None, help="fine-tune this bundle's generator instead of starting from scratch")
    r.add_argument("--steps", type=int, default=None, help="train up to this many steps in total (default 5000)")
    r.add_argument("--batch-size", type=int, default=None, help="faces per step (default 64)")
    r.add_argument("--checkpoint-every", type=int, default=None, help="steps between checkpoints (default 500)")
    r.add_argument("--sample-every", type=int, default=None, help="steps between sample grids (default 500)")
    r.add_argument("--seed", type=int, default=None, help="seed of initial weights, data order and noise (default 0)")
    r.set_defaults(func=_run)

    e = tsub.add_parser(
        "export",
        help="write a run's generator as a model bundle",
        description="Write the latest checkpoint's generator as a bundle (generator.npz, manifest.json, "
        "MODEL_CARD.md) that `facemend models verify` and every backend accept.",
    )
    e.add_argument("run", type=Path, help="run folder of `facemend train run`")
    e.add_argument("--out", required=True, type=Path, help="bundle folder to create")
    e.add_argument("--name", default=None, help="bundle name (default: user-<run folder name>)")
    e.add_argument("--version", default=None, help="bundle version (default 0.1.0)")
    e.set_defaults(func=_export)


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


class _Throttle:
    """True at most every `interval` seconds (and always when forced)."""

    def __init__(self, interval: float = 2.0):
        self.interval = interval
        self.last = 0.0

    def __call__(self, force: bool = False) -> bool:
        now = time.monotonic()
        if force or now - self.last >= self.interval:
            self.last = now
            return True
        return False


def _prepare(args) -> int:
    from core.train.prepare import PrepareOptions, prepare_dataset

    options = PrepareOptions(args.bundle, args.max_faces_per_image, args.min_face_size, args.shard_size).validated()
    started = time.monotonic()
    throttle = _Throttle()

    def progress(images, faces, fraction, note):
        if note:
            print(f"facemend: {note}", file=sys.stderr)
        if throttle():
            elapsed = time.monotonic() - started
            eta = elapsed * (1 - fraction) / fraction if fraction else float("nan")
            pct = f" {fraction:6.1%}" if fraction is not None else ""
            print(f"prepare:{pct} {images} images, {faces} faces, ETA {_duration(eta)}", file=sys.stderr)

    summary = prepare_dataset(args.source, args.out, options, progress=progress)
    skipped = ", ".join(f"{r} {e['count']}" for r, e in sorted(summary.skipped.items())) or "none"
    print(f"wrote {summary.faces_kept} faces from {summary.images_read} images in {len(summary.shards)} shard(s) to {args.out} "
          f"(skipped: {skipped}; details in {args.out / 'summary.json'})")
    return 0


def _run(args) -> int:
    from core.api import CancelToken
    from core.train.dcgan import resolve_config, train

    config = resolve_config(args.out, {
        "data": str(args.data) if args.data else None,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "checkpoint_every": args.checkpoint_every,
        "sample_every": args.sample_every,
        "seed": args.seed,
        "from_bundle": args.from_bundle,
    })
    cancel = CancelToken()
    previous = None
    if threading.current_thread() is threading.main_thread():
        def on_sigint(signum, frame):
            cancel.cancel()
            # A second Ctrl+C stops at once (the last checkpoint still stands).
            signal.signal(signal.SIGINT, signal.default_int_handler)
            print("\nfacemend: stopping after this step to save a checkpoint (Ctrl+C again to abort)", file=sys.stderr)

        previous = signal.signal(signal.SIGINT, on_sigint)
    throttle = _Throttle()

    def progress(p):
        if p.event == "start":
            print(f"train: new run in {args.out}, {p.steps} steps", file=sys.stderr)
        elif p.event == "resumed":
            print(f"train: resuming {args.out} from step {p.step} of {p.steps}", file=sys.stderr)
        elif p.event == "checkpoint":
            print(f"train: checkpoint saved at step {p.step}", file=sys.stderr)
        if p.step > 0 and p.event != "checkpoint" and (p.event or throttle(force=p.step == p.steps)):
            print(f"step {p.step}/{p.steps}  d_loss {p.d_loss:.4f}  g_loss {p.g_loss:.4f}  "
                  f"{p.seconds_per_step:.2f} s/step  ETA {_duration(p.eta_seconds)}", file=sys.stderr)

    from core.train.dcgan import describe_device

    print(f"train: device {describe_device()}", file=sys.stderr)
    try:
        result = train(config, args.out, progress=progress, cancel=cancel)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    print(f"trained {args.out} to step {result.step} on {result.device} in {_duration(result.seconds)}"
          + (f" (resumed from step {result.resumed_from})" if result.resumed_from else ""))
    return 0


def _export(args) -> int:
    from core.train.export import export_bundle

    info = export_bundle(args.run, args.out, name=args.name, version=args.version)
    print(f"exported {info.ref} to {args.out}")
    return 0
