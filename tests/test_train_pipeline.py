"""`facemend train prepare | run | export` end to end, at tiny scale.

The "LFW" archive is built here, in LFW's own layout, from faces drawn by the
shipped generator and upscaled to LFW's 250x250 (the detector finds those),
plus one noise image and one truncated JPEG. Training runs in real
subprocesses through the CLI, so that a SIGKILL is a real kill. The slow
artifacts (data set, runs, bundle) are module-scoped and shared.
"""

import io
import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from core.errors import BadInputError

N_FACES = 8
LFW_SIZE = 250
SMALL_RUN = ["--batch-size", "4", "--checkpoint-every", "2", "--sample-every", "2", "--seed", "0"]
DEADLINE_S = 240


def _cli(*args, timeout=DEADLINE_S):
    return subprocess.run([sys.executable, "-m", "facemend", *args], capture_output=True, text=True, timeout=timeout)


def _start_training(run: Path, data: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "facemend", "train", "run", "--data", str(data), "--out", str(run), *SMALL_RUN, *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(condition, what: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"training exited ({proc.returncode}) before {what}: {proc.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _state(run: Path) -> dict:
    try:
        return json.loads((run / "state.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {"step": 0}


def _jpeg(rgb: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", np.ascontiguousarray(rgb[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()


def _write_tgz(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _read_records(data: Path) -> list[dict]:
    from core.lazy_tf import tf

    out = []
    for shard in sorted(data.glob("shard-*.tfrecord")):
        for raw in tf.data.TFRecordDataset(str(shard)):
            ex = tf.train.Example.FromString(raw.numpy()).features.feature
            png = ex["image"].bytes_list.value[0]
            out.append({
                "shard": shard.name,
                "image": cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1],
                "source": ex["source"].bytes_list.value[0].decode(),
            })
    return out


def _checkpoint_tensors(run: Path, name: str) -> dict[str, np.ndarray]:
    from core.lazy_tf import tf

    reader = tf.train.load_checkpoint(str(run / "checkpoints" / name))
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map() if k != "_CHECKPOINTABLE_OBJECT_GRAPH"}


# --- fixtures -------------------------------------------------------------------


@pytest.fixture(scope="module")
def lfw_photos(face_model):
    """name in the archive -> 250x250 RGB photo of a generated face."""
    from core.model_build import sample_faces

    faces, _ = sample_faces(face_model.generator, N_FACES, seed=1)
    return {
        f"lfw_funneled/Person_{i}/Person_{i}_0001.jpg": cv2.resize(f, (LFW_SIZE, LFW_SIZE), interpolation=cv2.INTER_CUBIC)
        for i, f in enumerate(faces)
    }


@pytest.fixture(scope="module")
def lfw_tgz(tmp_path_factory, lfw_photos):
    members = {name: _jpeg(rgb) for name, rgb in lfw_photos.items()}
    noise = np.random.default_rng(0).integers(0, 256, (LFW_SIZE, LFW_SIZE, 3), dtype=np.uint8)
    members["lfw_funneled/Noise_Image/Noise_Image_0001.jpg"] = _jpeg(noise)
    whole = _jpeg(next(iter(lfw_photos.values())))
    members["lfw_funneled/Cut_Short/Cut_Short_0001.jpg"] = whole[: len(whole) // 3]
    return _write_tgz(tmp_path_factory.mktemp("lfw") / "lfw-funneled.tgz", members)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, lfw_tgz):
    from core.train import PrepareOptions, prepare_dataset, read_summary

    data = tmp_path_factory.mktemp("prepared") / "data"
    prepare_dataset(lfw_tgz, data, PrepareOptions(shard_size=3))
    return SimpleNamespace(path=data, summary=read_summary(data))


@pytest.fixture(scope="module")
def runs(tmp_path_factory, prepared):
    """CLI runs on the prepared data, started together to save wall time:

    straight  — 4 steps uninterrupted;
    killed    — SIGKILL once its step-2 checkpoint exists, then resumed to 4;
    ctrl_c    — fine-tunes the shipped bundle's generator; SIGINT once it has trained 2 steps.
    """
    root = tmp_path_factory.mktemp("runs")
    straight, killed, ctrl_c = root / "straight", root / "killed", root / "ctrl_c"
    started = []

    def start(*args):
        started.append(_start_training(*args))
        return started[-1]

    try:
        p_straight = start(straight, prepared.path, "--steps", "4")
        # Far more steps than they will live for: the signal, not the end, stops them.
        # A sample grid every step widens the window between checkpoints 2 and 4 to kill in.
        p_killed = start(killed, prepared.path, "--steps", "1000", "--sample-every", "1")
        # No periodic checkpoint before step 1000: any checkpoint it leaves is Ctrl+C's.
        p_ctrl_c = start(
            ctrl_c, prepared.path, "--steps", "1000", "--checkpoint-every", "1000", "--sample-every", "1", "--from-bundle", "facemend-faces64"
        )

        _wait_for(lambda: _state(killed)["step"] >= 2, "the step-2 checkpoint", p_killed)
        os.kill(p_killed.pid, signal.SIGKILL)
        p_killed.communicate()
        state_at_kill = _state(killed)
        p_resume = start(killed, prepared.path, "--steps", "4")

        _wait_for(lambda: (ctrl_c / "samples" / "step-0000002.png").exists(), "step 2", p_ctrl_c)
        p_ctrl_c.send_signal(signal.SIGINT)

        _, straight_err = p_straight.communicate(timeout=DEADLINE_S)
        assert p_straight.returncode == 0, straight_err[-2000:]
        _, ctrl_c_err = p_ctrl_c.communicate(timeout=DEADLINE_S)
        _, resume_err = p_resume.communicate(timeout=DEADLINE_S)
        assert p_resume.returncode == 0, resume_err[-2000:]
    finally:
        for proc in started:  # a failed fixture must not leave a 1000-step run behind
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    return SimpleNamespace(
        straight=straight,
        straight_stderr=straight_err,
        killed=killed,
        state_at_kill=state_at_kill,
        resume_stderr=resume_err,
        ctrl_c=ctrl_c,
        ctrl_c_returncode=p_ctrl_c.returncode,
        ctrl_c_stderr=ctrl_c_err,
    )


@pytest.fixture(scope="module")
def exported(tmp_path_factory, runs):
    from core.train import export_bundle

    out = tmp_path_factory.mktemp("bundles") / "my-faces"
    info = export_bundle(runs.straight, out, name="my-faces", version="0.0.1")
    return SimpleNamespace(path=out, info=info, manifest=json.loads((out / "manifest.json").read_text()))


# --- prepare --------------------------------------------------------------------


def test_prepare_writes_every_detected_face_as_64px_png_in_named_shards(prepared, lfw_photos):
    records = _read_records(prepared.path)
    assert len(records) == prepared.summary["faces_kept"] >= N_FACES - 2
    assert all(r["image"].shape == (64, 64, 3) for r in records)
    assert {r["source"] for r in records} <= set(lfw_photos)
    n_shards = -(-len(records) // 3)
    assert sorted({r["shard"] for r in records}) == [f"shard-{i:05d}-of-{n_shards:05d}.tfrecord" for i in range(n_shards)]
    assert [s["faces"] for s in prepared.summary["shards"]] == [3] * (n_shards - 1) + [len(records) - 3 * (n_shards - 1)]


def test_prepared_faces_are_aligned_exactly_as_repairs_align_them(prepared, lfw_photos):
    from core import align, bundle
    from core.faces import default_detector
    from core.imageio import load_image

    template = bundle.read_manifest(bundle.find_bundle()).landmark_template
    record = _read_records(prepared.path)[0]
    photo = load_image(_jpeg(lfw_photos[record["source"]])).rgb
    face = default_detector().detect(photo)[0]
    alignment = align.compute_alignment(face.landmarks, template, 64, photo.shape[:2])
    np.testing.assert_array_equal(record["image"], align.warp_to_aligned(photo, alignment))


def test_prepare_counts_skipped_images_by_reason_with_their_file_names(prepared, lfw_photos):
    s = prepared.summary
    assert s["images_read"] == N_FACES + 2
    assert s["layout"] == "lfw" and s["source_kind"] == "tgz"
    assert "lfw_funneled/Noise_Image/Noise_Image_0001.jpg" in s["skipped"]["no_face"]["samples"]
    assert s["skipped"]["unreadable"] == {
        "count": 1,
        "samples": ["lfw_funneled/Cut_Short/Cut_Short_0001.jpg"],
        "meaning": s["skipped"]["unreadable"]["meaning"],
    }
    kept = {r["source"] for r in _read_records(prepared.path)}
    listed = {name for e in s["skipped"].values() for name in e["samples"]}
    assert all(name in kept or name in listed for name in lfw_photos)


def test_prepare_summary_records_template_size_and_bundle(prepared):
    from core import bundle

    shipped = bundle.read_manifest(bundle.find_bundle())
    assert prepared.summary["image_size"] == 64
    assert prepared.summary["bundle"] == shipped.ref
    assert prepared.summary["landmark_template"] == shipped.manifest["landmark_template"]


def test_prepare_tgz_without_images_exits_3_naming_it_and_leaves_nothing(tmp_path):
    tgz = _write_tgz(tmp_path / "not-lfw.tgz", {"docs/README.txt": b"no photos here"})
    r = _cli("train", "prepare", "--source", str(tgz), "--out", str(tmp_path / "data"))
    assert r.returncode == 3
    assert "not-lfw.tgz" in r.stderr and "no images" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-lfw.tgz"]


def test_prepare_rejects_a_file_that_is_not_an_archive(tmp_path):
    from core.train import prepare_dataset

    fake = tmp_path / "lfw-funneled.tgz"
    fake.write_bytes(b"<html>download failed</html>")
    with pytest.raises(BadInputError, match=r"lfw-funneled\.tgz: not a tar archive"):
        prepare_dataset(fake, tmp_path / "data")


def test_prepare_folder_without_faces_raises_bad_input_and_leaves_nothing(tmp_path, prepared):
    from core.train import prepare_dataset

    photos = tmp_path / "holiday"
    (photos / "beach").mkdir(parents=True)
    rng = np.random.default_rng(3)
    for i in range(2):
        cv2.imwrite(str(photos / "beach" / f"sea_{i}.png"), rng.integers(0, 256, (120, 160, 3), dtype=np.uint8))
    with pytest.raises(BadInputError, match=r"holiday: no usable faces in 2 image\(s\) \(no_face: 2") as exc:
        prepare_dataset(photos, tmp_path / "data")
    assert exc.value.exit_code == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["holiday"]


# --- run ------------------------------------------------------------------------


def test_sigkill_then_resume_gives_the_same_weights_as_an_uninterrupted_run(runs):
    assert runs.state_at_kill["step"] == 2
    assert "resuming" in runs.resume_stderr and "from step 2 of 4" in runs.resume_stderr
    straight = _checkpoint_tensors(runs.straight, "ckpt-4")
    resumed = _checkpoint_tensors(runs.killed, "ckpt-4")
    assert straight.keys() == resumed.keys()
    assert any(k.startswith("generator_optimizer/") for k in straight)
    assert int(straight["step/.ATTRIBUTES/VARIABLE_VALUE"]) == 4
    for key, value in straight.items():
        np.testing.assert_allclose(resumed[key], value, rtol=0, atol=1e-6, err_msg=key)
    assert json.loads((runs.killed / "state.json").read_text())["g_loss"] == pytest.approx(
        json.loads((runs.straight / "state.json").read_text())["g_loss"], abs=1e-6
    )


def test_run_writes_fixed_noise_sample_grids_every_n_steps(runs):
    grids = sorted(p.name for p in (runs.straight / "samples").glob("*.png"))
    assert grids == ["step-0000002.png", "step-0000004.png"]
    img = cv2.imread(str(runs.straight / "samples" / "step-0000004.png"))
    assert img.shape == (8 * 66 + 2, 8 * 66 + 2, 3)


def test_run_logs_tensorboard_scalars_every_step(runs):
    from core.lazy_tf import tf

    seen = {}
    for path in (runs.straight / "logs").glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for v in event.summary.value:
                assert v.metadata.plugin_data.plugin_name == "scalars"
                seen.setdefault(v.tag, set()).add(event.step)
    assert seen == {tag: {1, 2, 3, 4} for tag in ("d_loss", "g_loss", "seconds_per_step")}


def test_run_records_config_and_reports_device_and_eta_on_stderr(runs, prepared):
    config = json.loads((runs.straight / "config.json").read_text())
    assert config["config"]["seed"] == 0 and config["config"]["batch_size"] == 4
    assert config["optimizer"] == {"name": "adam", "learning_rate": 2e-4, "beta1": 0.5, "beta2": 0.999}
    assert Path(config["config"]["data"]) == prepared.path.resolve()
    assert re.search(r"train: device (CPU|GPU:\d)", runs.straight_stderr)
    assert re.search(r"step 4/4 .* ETA", runs.straight_stderr)


def test_ctrl_c_saves_a_checkpoint_at_the_current_step_and_exits_5(runs):
    assert runs.ctrl_c_returncode == 5, runs.ctrl_c_stderr[-2000:]
    assert "run the same command again to resume" in runs.ctrl_c_stderr.lower()
    state = json.loads((runs.ctrl_c / "state.json").read_text())
    assert state["step"] >= 2 and state["checkpoint"] == f"ckpt-{state['step']}"
    assert (runs.ctrl_c / "checkpoints" / f"ckpt-{state['step']}.index").exists()


def test_resume_refuses_to_change_what_defines_the_run(runs, prepared):
    r = _cli("train", "run", "--data", str(prepared.path), "--out", str(runs.straight), "--batch-size", "8", "--steps", "5")
    assert r.returncode == 2
    assert "batch_size=4" in r.stderr


def test_batch_order_visits_every_face_once_per_epoch_and_depends_only_on_seed_and_step():
    from core.train.dcgan import batch_indices, batch_noise

    epoch = np.concatenate([batch_indices(5, step, 4, 10) for step in range(5)])  # 20 = two epochs of 10
    assert sorted(epoch[:10]) == list(range(10)) and sorted(epoch[10:]) == list(range(10))
    np.testing.assert_array_equal(batch_indices(5, 3, 4, 10), epoch[12:16])
    np.testing.assert_array_equal(batch_noise(5, 3, 4, 100), batch_noise(5, 3, 4, 100))
    assert not np.array_equal(batch_noise(5, 3, 4, 100), batch_noise(5, 4, 4, 100))


# --- export ---------------------------------------------------------------------


def test_exported_bundle_passes_models_verify(exported):
    r = _cli("models", "verify", str(exported.path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("OK my-faces@0.0.1")


def test_exported_bundle_loads_and_draws_faces(exported):
    from core.model import load_model

    model = load_model(exported.path)
    z = np.random.default_rng(0).standard_normal((2, model.z_dim)).astype(np.float32)
    faces = model.generator(z, training=False).numpy()
    assert faces.shape == (2, 64, 64, 3)
    assert np.all(np.abs(faces) <= 1.0) and faces.std() > 0.01


def test_exported_generator_holds_the_last_checkpoints_trained_weights(exported, runs):
    last = list(_checkpoint_tensors(runs.straight, "ckpt-4").values())
    earlier = list(_checkpoint_tensors(runs.straight, "ckpt-2").values())
    with np.load(exported.path / "generator.npz") as weights:
        kernels = {k: weights[k] for k in weights.files if weights[k].ndim == 4}
    assert len(kernels) == 5  # up0..up4
    for key, kernel in kernels.items():
        assert any(t.shape == kernel.shape and np.array_equal(t, kernel) for t in last), key
        assert not any(t.shape == kernel.shape and np.array_equal(t, kernel) for t in earlier), key


def test_exported_manifest_records_training_and_the_data_template(exported, prepared, runs):
    m = exported.manifest
    assert m["landmark_template"]["points"] == prepared.summary["landmark_template"]["points"]
    training = m["files"]["generator"]["training"]
    state = json.loads((runs.straight / "state.json").read_text())
    assert training["steps"] == 4 and training["seed"] == 0 and training["batch_size"] == 4
    assert training["final_losses"] == {"d_loss": state["d_loss"], "g_loss": state["g_loss"]}
    assert training["data"]["faces_kept"] == prepared.summary["faces_kept"]
    assert training["started_from"] == "scratch"
    assert m["files"]["generator"]["evaluated"] is False


def test_exported_model_card_says_user_trained_and_unevaluated(exported):
    card = (exported.path / "MODEL_CARD.md").read_text()
    assert "Unevaluated" in card and "user-trained" in card
    assert "4 steps" in card and "lfw-funneled.tgz" in card


def test_fine_tuning_starts_from_the_bundles_generator(runs, tmp_path):
    from core import bundle
    from core.train import export_bundle

    info = export_bundle(runs.ctrl_c, tmp_path / "tuned")
    training = info.manifest["files"]["generator"]["training"]
    assert training["started_from"]["ref"] == "facemend-faces64@1.0.0"
    with np.load(tmp_path / "tuned" / "generator.npz") as tuned, np.load(bundle.find_bundle() / "generator.npz") as shipped:
        assert tuned.files == shipped.files
        kernels = [k for k in shipped.files if shipped[k].ndim == 4]
        # An Adam step moves each weight by about the learning rate (2e-4), no more.
        for k in kernels:
            moved = np.abs(tuned[k] - shipped[k]).max()
            assert 0 < moved < training["steps"] * 3e-4, k


def test_export_into_a_non_empty_folder_is_refused(runs, tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    r = _cli("train", "export", str(runs.straight), "--out", str(tmp_path))
    assert r.returncode == 2 and "not empty" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]
