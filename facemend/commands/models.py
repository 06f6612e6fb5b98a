"""`facemend models list|verify|import-gan-face-generate`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core import bundle as bundles
from core.errors import BundleError, UsageError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list, verify and import model bundles", description="Manage model bundles.")
    msub = p.add_subparsers(dest="models_command", metavar="ACTION", required=True)

    ls = msub.add_parser("list", help="list the bundles FaceMend can find")
    ls.set_defaults(func=_list)

    v = msub.add_parser(
        "verify",
        help="check every file of a bundle against its manifest's sha256",
        description="Check size and sha256 of every file. Exit 0 with one OK line per bundle, "
        "exit 3 naming the first missing, truncated or altered file.",
    )
    v.add_argument("path", nargs="*", help="bundle folder(s) or names; default: every bundle found")
    v.set_defaults(func=_verify)

    imp = msub.add_parser(
        "import-gan-face-generate",
        help="convert the gan-face-generate 1.1.1 generator into a new bundle",
        description="Read gan_face_generate/weights.tar (from the wheel, the installed package folder, or the "
        "file itself) without torch and without unpickling arbitrary objects, convert it to the Keras "
        "generator and start a bundle with it. Get the wheel with: "
        "pip download --no-deps gan-face-generate==1.1.1",
    )
    imp.add_argument("--source", required=True, help="gan_face_generate-1.1.1-py3-none-any.whl, its package folder, or weights.tar")
    imp.add_argument("--out", required=True, type=Path, help="bundle folder to create")
    imp.add_argument("--no-verify", action="store_true", help="accept a weights.tar whose sha256 differs from 1.1.1's")
    imp.add_argument("--template-samples", type=int, default=400, help="generator samples used to measure the landmark template")
    imp.add_argument("--seed", type=int, default=0)
    imp.set_defaults(func=_import)

    for role, helptext in (
        ("encoder", "train the encoder (partly hidden face -> z) on the bundle's generator and add it to the bundle"),
        ("critic", "train the completion critic (is the fill coherent with its context?) and add it to the bundle"),
    ):
        t = msub.add_parser(f"train-{role}", help=helptext, description=helptext + ". Checkpoints to RUN; "
                            "run the same command again to resume after an interruption.")
        t.add_argument("--bundle", required=True, type=Path, help="bundle folder to extend (its generator stays frozen)")
        t.add_argument("--run", required=True, type=Path, help="folder for checkpoints and logs")
        t.add_argument("--steps", type=int, default=3000)
        t.add_argument("--batch-size", type=int, default=32)
        t.add_argument("--seed", type=int, default=1)
        t.add_argument("--checkpoint-every", type=int, default=100)
        t.set_defaults(func=_train_prior, role=role)


def _list(args) -> int:
    found = bundles.list_bundles()
    if not found:
        print("no model bundles found", file=sys.stderr)
        return 3
    for folder in found:
        try:
            info = bundles.read_manifest(folder)
            roles = ", ".join(sorted(info.files))
            print(f"{info.ref:28s} {info.image_size}x{info.image_size}  [{roles}]  {folder}")
        except BundleError as exc:
            print(f"{folder}  UNREADABLE: {exc}")
    return 0


def _verify(args) -> int:
    targets = [bundles.find_bundle(p) for p in args.path] if args.path else bundles.list_bundles()
    if not targets:
        raise BundleError("no model bundles found to verify")
    for folder in targets:
        info = bundles.verify_bundle(folder)  # raises BundleError (exit 3) naming the file
        print(f"OK {info.ref} ({len(info.files)} files) {folder}")
    return 0


def _import(args) -> int:
    from core.model_build import create_bundle_from_gan_face_generate

    if args.out.exists() and any(args.out.iterdir()):
        raise UsageError(f"{args.out} exists and is not empty; choose a new folder")
    info = create_bundle_from_gan_face_generate(
        args.source, args.out, verify_sha256=not args.no_verify, template_samples=args.template_samples, seed=args.seed
    )
    print(f"created {info.ref} in {args.out}")
    return 0


def _train_prior(args) -> int:
    from core.train import priors

    cfg = priors.PriorTrainConfig(steps=args.steps, batch_size=args.batch_size, seed=args.seed,
                                  checkpoint_every=args.checkpoint_every)
    if args.role == "encoder":
        priors.build_encoder_into_bundle(args.bundle, args.run, cfg)
    else:
        priors.build_critic_into_bundle(args.bundle, args.run, cfg)
    info = bundles.verify_bundle(args.bundle)
    print(f"{args.role} added to {info.ref} ({args.bundle})")
    return 0
