"""The Analysis dock and consent dialog, as real widgets (pytest-qt, offscreen):
playback of a real MP3, consent refused -> nothing reaches the (stubbed)
Rekognition client, accepted -> faces listed and handed to the canvas."""

import shutil
import subprocess

import pytest
from botocore.stub import Stubber
from PySide6.QtCore import QTimer
from PySide6.QtMultimedia import QMediaPlayer
from PySide6.QtWidgets import QApplication
from test_aws_rekognition import DOC_DETECT_FACES  # the AWS documentation example

from cloud.aws import AwsClients, AwsSettings
from cloud.consent import ConsentStore
from core.imageio import load_image

PHOTO = "tests/data/photos/faceapi_sample1.jpg"
REGION = "eu-west-1"


@pytest.fixture
def aws(offline_aws, tmp_path):
    return AwsClients(AwsSettings(region=REGION, max_attempts=1)), ConsentStore(tmp_path / "consent.json")


@pytest.fixture
def dock(qtbot, aws):
    from gui.analysis import AnalysisDock

    clients, consent = aws
    d = AnalysisDock(clients=clients, consent=consent)
    qtbot.addWidget(d)
    d.set_photo(load_image(PHOTO).rgb, "faceapi_sample1.jpg")
    d.faces_panel.engine.setCurrentIndex(d.faces_panel.engine.findData("rekognition"))
    return d


def _answer_consent(send: bool):
    def answer():
        dialog = QApplication.activeModalWidget()
        (dialog.send_button if send else dialog.refuse_button).click()

    QTimer.singleShot(50, answer)


def test_refused_consent_sends_nothing(dock, qtbot):
    with Stubber(dock.clients.client("rekognition")) as stub:
        stub.add_response("detect_faces", DOC_DETECT_FACES)
        _answer_consent(send=False)
        assert dock.analyze() is False
        with pytest.raises(AssertionError):  # the queued response was never asked for
            stub.assert_no_pending_responses()
    assert "Not sent" in dock.faces_panel.status.text() and dock.consent.records() == []


def test_accepted_consent_lists_faces_and_hands_them_to_the_canvas(dock, qtbot):
    with Stubber(dock.clients.client("rekognition")) as stub:
        stub.add_response("detect_faces", DOC_DETECT_FACES)
        _answer_consent(send=True)
        with qtbot.waitSignal(dock.facesChanged, timeout=10_000,
                              check_params_cb=lambda faces: len(faces) == 1) as blocker:
            assert dock.analyze() is True
    (face,) = blocker.args[0]
    assert face.box[2] == pytest.approx(0.47138047218322754 * 960)  # photo pixels, ready for Canvas.set_faces
    item = dock.faces_panel.tree.topLevelItem(0)
    rows = {item.child(i).text(0): item.child(i).text(1) for i in range(item.childCount())}
    assert rows["Age range"] == "19–36" and rows["Emotions"].startswith("happy")
    assert "Amazon Rekognition in eu-west-1" in dock.faces_panel.status.text()
    assert dock.consent.granted("rekognition", REGION)  # "remember" was checked


@pytest.mark.skipif(not shutil.which("espeak-ng"), reason="needs espeak-ng (apt install espeak-ng)")
def test_offline_narration_shows_text_and_loads_wav(dock, qtbot):
    with Stubber(dock.clients.client("rekognition")) as stub:
        stub.add_response("detect_faces", DOC_DETECT_FACES)
        dock.consent.grant("rekognition", REGION)
        with qtbot.waitSignal(dock.analysisReady, timeout=10_000):
            dock.analyze()
    panel = dock.narration_panel
    with qtbot.waitSignal(panel.player.sourceChanged, timeout=15_000):
        assert dock.narrate() is True
    assert "19 to 36" in panel.text.toPlainText()
    assert panel.audio_format == "wav" and panel.audio[:4] == b"RIFF" and panel.save_button.isEnabled()


@pytest.mark.skipif(not (shutil.which("espeak-ng") and shutil.which("lame")), reason="needs espeak-ng and lame")
def test_mp3_narration_plays(qtbot, tmp_path):
    from gui.analysis import NarrationPanel

    wav, mp3 = tmp_path / "n.wav", tmp_path / "n.mp3"
    subprocess.run(["espeak-ng", "-w", str(wav), "Two faces found. One was repaired."], check=True)
    subprocess.run(["lame", "--quiet", str(wav), str(mp3)], check=True)
    panel = NarrationPanel()
    qtbot.addWidget(panel)
    panel.set_audio(mp3.read_bytes(), "mp3")
    panel.play()
    loaded = (QMediaPlayer.MediaStatus.LoadedMedia, QMediaPlayer.MediaStatus.BufferingMedia,
              QMediaPlayer.MediaStatus.BufferedMedia, QMediaPlayer.MediaStatus.EndOfMedia)
    qtbot.waitUntil(lambda: panel.player.mediaStatus() in loaded
                    and panel.player.playbackState() == QMediaPlayer.PlaybackState.PlayingState, timeout=10_000)
    assert panel.player.duration() > 1000 and panel.stop_button.isEnabled()
    panel.stop()
    assert panel.player.playbackState() == QMediaPlayer.PlaybackState.StoppedState
    saved = panel.save_audio(tmp_path / "saved")
    assert saved.suffix == ".mp3" and saved.read_bytes() == mp3.read_bytes()


def test_consent_list_revokes(qtbot, aws):
    from gui.consent_dialog import ConsentList

    _clients, store = aws
    store.grant("polly", REGION)
    widget = ConsentList(store)
    qtbot.addWidget(widget)
    widget.list.setCurrentRow(0)
    with qtbot.waitSignal(widget.revoked):
        widget.revoke_button.click()
    assert store.records() == [] and not widget.revoke_all_button.isEnabled()
