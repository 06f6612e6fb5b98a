"""`facemend train export`: a training run's generator -> a model bundle.

The bundle has the shipped bundle's manifest layout, so `facemend models
verify`, core.model.load_model and every backend take it like any other. It
carries the whole training record and a model card that says plainly what it
is: a user-trained, unevaluated model.
"""

from __future__ import annotations

import datetime as _dt
import re
import shutil
from pathlib import Path

from core import bundle as bundles
from core.errors import BadInputError, UsageError
from core.train.dcgan import CHECKPOINTS, read_run
from core.files import publish, temp_folder_beside

MODEL_CARD = "MODEL_CARD.md"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def default_name(run: Path) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", run.resolve().name).strip("-.") or "run"
    return f"user-{slug}"[:64]


def export_bundle(run: str | Path, out: str | Path, *, name: str | None = None, version: str | None = None) -> bundles.BundleInfo:
    """Write the generator of `run`'s latest checkpoint as a new bundle folder `out`."""
    from core.lazy_tf import tf
    from core.networks import build_generator, save_weights

    run, out = Path(run), Path(out)
    name = name or default_name(run)
    version = version or "0.1.0"
    for label, value in (("name", name), ("version", version)):
        if not _NAME.match(value) or "@" in value:
            raise UsageError(f"--{label} {value!r}: use letters, digits, '.', '_' or '-' (at most 64)")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"{out} exists and is not empty; choose a new folder for the bundle")
    config, state = read_run(run)
    latest = tf.train.latest_checkpoint(str(run / CHECKPOINTS))
    if latest is None:
        raise BadInputError(f"{run}: no checkpoint yet; train for at least --checkpoint-every steps first")
    step = int(latest.rsplit("-", 1)[1])
    # state.json is written just after each checkpoint; a kill in between leaves it one behind.
    losses = {"d_loss": state.get("d_loss"), "g_loss": state.get("g_loss")} if state.get("step") == step else None

    arch = config["architecture"]
    generator = build_generator(z_dim=arch["z_dim"], image_size=arch["image_size"], **arch["generator"])
    # expect_partial: the discriminator and optimizers stay behind on purpose.
    tf.train.Checkpoint(generator=generator).restore(latest).expect_partial().assert_existing_objects_matched()

    summary = dict(config["data_summary"])
    # A bundle may be shared: keep the source's file name, not the user's folder layout.
    summary["source"] = Path(str(summary.get("source"))).name
    template = dict(summary["landmark_template"])
    template["copied_from"] = f"the training data's alignment template (data prepared against {summary.get('bundle')})"
    cfg = config["config"]
    training = {
        "method": "DCGAN (Radford et al. 2016), non-saturating loss on logits",
        "started_from": {k: v for k, v in config["from_bundle"].items() if k != "path"} if config["from_bundle"] else "scratch",
        "steps": step,
        "seed": cfg["seed"],
        "batch_size": cfg["batch_size"],
        "optimizer": config["optimizer"],
        "final_losses": losses,
        "discriminator": arch["discriminator"],
        "device": config.get("device"),
        "tensorflow": config.get("tensorflow"),
        "data": summary,
        "checkpoint": Path(latest).name,
    }
    manifest = {
        "manifest_version": 1,
        "name": name,
        "version": version,
        "created": _dt.date.today().isoformat(),
        "image_size": arch["image_size"],
        "channels": 3,
        "pixel_range": [-1.0, 1.0],
        "z_dim": arch["z_dim"],
        "z_prior": {"distribution": "normal", "mean": 0.0, "std": 1.0},
        "landmark_template": template,
        "files": {
            "generator": {
                "path": "generator.npz",
                "architecture": arch["generator"],
                "training": training,
                "training_data": f"user data: {summary.get('faces_kept')} faces from {summary.get('source')}",
                "evaluated": False,
            },
        },
    }

    work = temp_folder_beside(out)
    try:
        save_weights(generator, work / "generator.npz")
        (work / MODEL_CARD).write_text(_model_card(manifest, training, summary), encoding="utf-8")
        bundles.write_manifest(work, manifest)
        bundles.verify_bundle(work)
        publish(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return bundles.read_manifest(out)


def _model_card(manifest: dict, training: dict, summary: dict) -> str:
    base = training["started_from"]
    if isinstance(base, dict):
        origin = (f"fine-tuned from the generator of `{base['ref']}` (sha256 {base['generator_sha256'][:12]}…); "
                  "that model's licence and training-data terms still apply (see its MODEL_CARD.md)")
    else:
        origin = "trained from scratch (random initial weights)"
    losses = training["final_losses"]
    loss_line = (f"d_loss {losses['d_loss']:.4f}, g_loss {losses['g_loss']:.4f} at the last step" if losses and losses["d_loss"] is not None
                 else "not recorded for the exported checkpoint")
    skipped = ", ".join(f"{r} {e['count']}" for r, e in (summary.get("skipped") or {}).items()) or "none"
    return f"""# {manifest['name']} {manifest['version']} — user-trained face generator

**Unevaluated.** This model was trained by a FaceMend user with `facemend train`.
Nobody has measured its repair quality, its failure modes or its biases. Treat
its repairs as drafts, and compare them with those of an evaluated bundle.

## Provenance
- Generator: DCGAN, {manifest['image_size']}x{manifest['image_size']} RGB, z {manifest['z_dim']}-d ~ N(0, 1);
  {origin}.
- Training: {training['steps']} steps, batch {training['batch_size']}, seed {training['seed']},
  Adam lr {training['optimizer']['learning_rate']} beta1 {training['optimizer']['beta1']},
  non-saturating GAN loss; discriminator trained from scratch and not shipped.
- Final losses: {loss_line}. GAN losses say little about image quality.
- Device: {training['device']}, TensorFlow {training['tensorflow']}.
- Data: {summary.get('faces_kept')} aligned faces from {summary.get('images_read')} images of
  `{summary.get('source')}` ({summary.get('layout')} layout); skipped: {skipped}.
  Aligned with the landmark template of `{summary.get('bundle')}`, copied into this manifest.

## Use with care
- A generator trained on few faces can reproduce them almost exactly. If the
  training photos show people who did not agree to it, do not share this bundle.
- The licence of the training photos (e.g. LFW's terms) governs what you may do
  with this model; FaceMend adds no rights.
- The full training record (data summary, hyper-parameters, losses) is in
  `manifest.json` under `files.generator.training`.
"""

