"""`facemend repair`: the command other tools depend on; its flags and JSON are fixed."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from core.api import MASK_TYPES, CancelToken, CompletionSettings, RepairRequest
from core.errors import BadInputError, FaceMendError, UsageError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif"}
_DEFAULTS = CompletionSettings()


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "repair",
        help="repair the masked part of the faces in a photo",
        description="Fill the damaged (mask white) part of every face the mask touches, paste it back "
        "into the full-resolution photo and save <stem>.repaired.<ext> beside it. Pixels outside the "
        "slightly dilated mask stay bit-identical.",
        epilog="Exit codes: 0 ok, 2 usage, 3 bad input (unreadable image or mask, no face, mask outside "
        "every face), 4 backend unavailable, 5 cancelled.",
    )
    p.add_argument("photos", nargs="+", metavar="PHOTO", help="photo file(s) or a folder of photos")
    m = p.add_mutually_exclusive_group(required=True)
    m.add_argument("--mask", type=Path, help="mask PNG (white = damaged) in photo coordinates; a folder of masks with matching names in batch mode")
    m.add_argument("--mask-type", choices=MASK_TYPES, help="preset mask drawn in each face's aligned frame")
    p.add_argument("-o", "--output", type=Path, help="output file (one photo) or folder (batch); default <stem>.repaired.<ext> beside each input")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file (never the input)")
    p.add_argument("--aligned", action="store_true", help="PHOTO is already a crop aligned to the model; the mask is in the same frame")
    p.add_argument("--face", type=int, metavar="INDEX", help="repair only this face (0 = most confident detection)")
    p.add_argument("--backend", default="auto", help="auto (local GPU, then the FACEMEND_ENDPOINTS endpoints in order, then the local CPU), "
                   "gpu, cpu, an endpoint name from FACEMEND_ENDPOINTS (lambda, gke, …), a service URL, or a comma-separated "
                   "list tried in order (e.g. gke,lambda,cpu); the API key comes from FACEMEND_API_KEY")
    p.add_argument("--model", default=None, help="bundle folder or name[@version]; default the shipped bundle")
    p.add_argument("--steps", type=int, default=_DEFAULTS.steps, help=f"latent search steps (default {_DEFAULTS.steps})")
    p.add_argument("--restarts", type=int, default=_DEFAULTS.restarts, help=f"restarts searched together (default {_DEFAULTS.restarts})")
    p.add_argument("--candidates", type=int, default=1, help="alternatives to save, best first (1-8); extra ones as <stem>.repaired-2.<ext> …")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _collect_photos(items: list[str]) -> list[Path]:
    out = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and ".repaired" not in f.name)
            if not found:
                raise BadInputError(f"{p}: folder holds no photos ({', '.join(sorted(IMAGE_SUFFIXES))})")
            out.extend(found)
        elif p.exists():
            out.append(p)
        else:
            raise BadInputError(f"{p}: no such file")
    return out


def _mask_for(photo_path: Path, mask_arg: Path, batch: bool) -> Path:
    if not batch:
        if mask_arg.is_dir():
            return _mask_for(photo_path, mask_arg, True)
        return mask_arg
    if not mask_arg.is_dir():
        raise UsageError("with several photos, --mask must be a folder of masks named like the photos")
    for cand in (mask_arg / photo_path.name, mask_arg / (photo_path.stem + ".png")):
        if cand.exists():
            return cand
    raise BadInputError(f"{photo_path.name}: no mask named {photo_path.name} or {photo_path.stem}.png in {mask_arg}")


def _output_paths(photo_path: Path, args, batch: bool, n: int) -> list[Path]:
    from core.imageio import default_output_path

    base = default_output_path(photo_path)
    if args.output is not None:
        if batch or args.output.is_dir():
            args.output.mkdir(parents=True, exist_ok=True)
            base = args.output / base.name
        else:
            base = args.output
    return [base] + [base.with_name(f"{base.stem}-{k + 1}{base.suffix}") for k in range(1, n)]


class _ProgressBar:
    """A redrawn bar on a terminal; on a pipe or log, a line every 10 %."""

    def __init__(self, enabled: bool, label: str):
        self.enabled, self.label, self.t0 = enabled, label, time.perf_counter()
        self.tty = sys.stderr.isatty()
        self.drawn = False
        self.last_decile = -1

    def __call__(self, step, total, loss, preview):
        # Only for work that takes over a second, as the CLI contract says.
        if not self.enabled or time.perf_counter() - self.t0 < 1.0:
            return
        width = 30
        done = int(width * step / max(total, 1))
        line = f"{self.label} [{'#' * done}{'.' * (width - done)}] {step}/{total} loss {loss:.4f}"
        if self.tty:
            sys.stderr.write("\r" + line)
        else:
            decile = 10 * step // max(total, 1)
            if decile == self.last_decile:
                return
            self.last_decile = decile
            sys.stderr.write(line + "\n")
        self.drawn = True
        sys.stderr.flush()

    def close(self):
        if self.enabled and self.tty and self.drawn:
            sys.stderr.write("\n")


def run(args) -> int:
    from core.imageio import load_image, save_image
    from core.masks import load_mask

    settings = CompletionSettings(
        steps=args.steps, restarts=max(args.restarts, args.candidates), candidates=args.candidates, seed=args.seed
    ).validated()
    photos = _collect_photos(args.photos)
    batch = len(photos) > 1
    if batch and args.output is not None and args.output.suffix and not args.output.is_dir():
        raise UsageError("with several photos, -o must be a folder")
    show_progress = not (args.quiet or args.json)

    t_total = time.perf_counter()
    # Load the model once for the whole batch.
    t = time.perf_counter()
    from core import bundle as bundles
    from core.model import load_model
    from facemend.backends import choose_backend

    bundle = bundles.read_manifest(bundles.find_bundle(args.model))
    def say(note: str) -> None:
        if not args.json:
            print(f"facemend: {note}", file=sys.stderr)

    # Fallbacks decided now are said now; one that happens mid-batch (an
    # endpoint dies) comes back in that photo's result notes, said below.
    choice = choose_backend(args.backend, lambda: load_model(bundle.path), model=bundle.ref, on_note=lambda _n: None)
    load_seconds = time.perf_counter() - t
    backend_notes = list(choice.notes)
    for note in backend_notes:
        say(note)

    from core.faces import default_detector
    from core.repair import repair

    detector = None if args.aligned else default_detector()
    cancel = CancelToken()
    report = {"outputs": [], "faces": [], "notes": []}
    errors = []
    last = None
    for photo_path in photos:
        try:
            photo = load_image(photo_path)
            mask = None
            if args.mask is not None:
                mask = load_mask(_mask_for(photo_path, args.mask, batch), (photo.height, photo.width))
            request = RepairRequest(photo, mask=mask, mask_type=args.mask_type, face_index=args.face,
                                    aligned=args.aligned, settings=settings)
            bar = _ProgressBar(show_progress, photo_path.name)
            try:
                result = repair(request, choice.completer, bundle, detector=detector, progress=bar, cancel=cancel)
            finally:
                bar.close()
            outs = _output_paths(photo_path, args, batch, len(result.candidates))
            for native, out in zip(result.candidates, outs):
                save_image(photo, native, out, overwrite=args.overwrite)
                report["outputs"].append(str(out))
                if not args.json:
                    print(str(out))
            for fr in result.faces:
                report["faces"].append({
                    "photo": str(photo_path),
                    "index": fr.index,
                    "box": [round(float(v), 2) for v in fr.face.box],
                    "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in fr.face.landmarks],
                    "ood_score": None if fr.completion.ood_score != fr.completion.ood_score else round(fr.completion.ood_score, 4),
                    "ood_warning": fr.completion.ood_warning,
                })
            for note in result.notes:
                report["notes"].append(f"{photo_path.name}: {note}")
                if not args.json:
                    print(f"facemend: {photo_path.name}: {note}", file=sys.stderr)
            last = result
        except FaceMendError as exc:
            if not batch:
                raise
            # In a batch, one bad photo must not lose the others; report and go on.
            errors.append((photo_path, exc))
            print(f"facemend: error: {photo_path}: {exc}", file=sys.stderr)
    if last is None:
        raise errors[0][1]
    report["notes"] = backend_notes + report["notes"]
    report.update({
        "backend": last.backend,
        "device": last.device,
        "model": {"name": last.model.name, "version": last.model.version},
        "seed": settings.seed,
        "steps": settings.steps,
        "loss": round(float(last.losses[0]), 6),
        "seconds": {
            "load": round(load_seconds, 3),
            "detect": round(last.seconds["detect"], 3),
            "complete": round(last.seconds["complete"], 3),
            "blend": round(last.seconds["blend"], 3),
            "total": round(time.perf_counter() - t_total, 3),
        },
        "errors": [{"photo": str(p), "error": str(e), "exit_code": e.exit_code} for p, e in errors],
    })
    if args.json:
        print(json.dumps(report))
    return errors[0][1].exit_code if errors else 0
