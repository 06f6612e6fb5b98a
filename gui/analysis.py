"""The Analysis dock: faces and their attributes, and the spoken narration.

`AnalysisDock` holds two panels:

* `FaceListPanel` — engine choice (offline detector / Amazon Rekognition),
  Analyze, and the faces found with their attributes (confidence, age range,
  emotions, smile, glasses, pose, quality…) and, on request, labels; it says
  which engine produced them. The faces themselves are core.faces.Face in
  photo pixels, exactly what `gui.canvas.Canvas.set_faces` draws (boxes and
  landmarks), so the dock emits them for the canvas rather than drawing.
* `NarrationPanel` — engine choice (offline speech / Amazon Polly), voice and
  language, Narrate, the narration text (always visible), Play / Stop with
  QtMultimedia and Save (MP3 from Polly, WAV offline).

Cloud requests go through `gui.consent_dialog.ask_consent` on the GUI thread
first; work runs as gui.workers.Job on the pool given (pass the main window's
TensorFlow pool so the offline detector never races a repair). When Polly
fails the narration falls back to the offline engine and says so.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, QThreadPool, QUrl, Signal
from PySide6.QtMultimedia import QAudioOutput, QMediaPlayer
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDockWidget,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from cloud.aws import AwsClients, AwsSettings
from cloud.consent import ConsentStore
from core.errors import BackendUnavailableError
from core.narration import FaceAnalysis, RepairSummary, engine_title, narration_text
from gui.consent_dialog import ask_consent
from gui.workers import Job, engine_pool, error_text

FACE_ENGINES = (("local", "Offline detector"), ("rekognition", "Amazon Rekognition"))
SPEECH_ENGINES = (("local", "Offline speech"), ("polly", "Amazon Polly"))
LANGUAGES = (("en", "English"), ("zh", "中文"))
_LANGUAGE_ROLE = int(Qt.ItemDataRole.UserRole.value) + 1  # narration language of a listed voice


def _pct(v: float) -> str:
    return f"{v:.1f}%"


def attribute_rows(attributes: dict) -> list[tuple[str, str]]:
    """(name, value) rows for a face's attributes, in reading order."""
    rows = []
    if "age_range" in attributes:
        a = attributes["age_range"]
        rows.append(("Age range", f"{a['low']}–{a['high']}"))
    if attributes.get("emotions"):
        rows.append(("Emotions", ", ".join(f"{e['type']} {_pct(e['confidence'])}" for e in attributes["emotions"][:3])))
    for key, title in (("smile", "Smile"), ("eyeglasses", "Eyeglasses"), ("sunglasses", "Sunglasses"),
                       ("eyes_open", "Eyes open"), ("mouth_open", "Mouth open"), ("beard", "Beard"),
                       ("mustache", "Mustache"), ("face_occluded", "Face occluded")):
        if key in attributes:
            v = attributes[key]
            rows.append((title, f"{'yes' if v['value'] else 'no'} ({_pct(v['confidence'])})"))
    if "pose" in attributes:
        p = attributes["pose"]
        rows.append(("Pose", f"roll {p.get('roll', 0):.0f}°, yaw {p.get('yaw', 0):.0f}°, pitch {p.get('pitch', 0):.0f}°"))
    if "quality" in attributes:
        q = attributes["quality"]
        rows.append(("Quality", f"brightness {q.get('brightness', 0):.0f}, sharpness {q.get('sharpness', 0):.0f}"))
    return rows


class FaceListPanel(QWidget):
    analyzeRequested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        row = QHBoxLayout()
        self.engine = QComboBox()
        for key, title in FACE_ENGINES:
            self.engine.addItem(title, key)
        self.labels = QCheckBox("Labels")
        self.labels.setToolTip("Also ask Amazon Rekognition what else is in the photo")
        self.analyze_button = QPushButton("Analyze faces")
        row.addWidget(self.engine, 1)
        row.addWidget(self.labels)
        row.addWidget(self.analyze_button)
        layout.addLayout(row)
        self.status = QLabel("No analysis yet.")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Face", "Value"])
        self.tree.setColumnCount(2)
        layout.addWidget(self.tree, 1)
        self.engine.currentIndexChanged.connect(self._engine_changed)
        self.analyze_button.clicked.connect(self.analyzeRequested)
        self._engine_changed()

    def engine_key(self) -> str:
        return self.engine.currentData()

    def _engine_changed(self) -> None:
        self.labels.setEnabled(self.engine_key() == "rekognition")

    def show_analysis(self, analysis: FaceAnalysis) -> None:
        self.tree.clear()
        where = f" in {analysis.region}" if analysis.region else ", on this computer"
        n = len(analysis.faces)
        self.status.setText(f"{n} face{'s' if n != 1 else ''} found by {engine_title(analysis.engine)}{where}.")
        for i, face in enumerate(analysis.faces):
            x, y, w, h = (round(v) for v in face.box)
            item = QTreeWidgetItem([f"Face {i + 1}", f"{face.confidence * 100:.1f}% at {x},{y} ({w}×{h})"])
            for name, value in attribute_rows(face.attributes):
                item.addChild(QTreeWidgetItem([name, value]))
            self.tree.addTopLevelItem(item)
            item.setExpanded(True)
        if analysis.labels:
            labels = QTreeWidgetItem(["Labels", f"{len(analysis.labels)}"])
            for lab in analysis.labels:
                labels.addChild(QTreeWidgetItem([lab.name, _pct(lab.confidence)]))
            self.tree.addTopLevelItem(labels)
        self.tree.resizeColumnToContents(0)

    def show_message(self, text: str) -> None:
        self.status.setText(text)

    def selected_face(self) -> int:
        item = self.tree.currentItem()
        while item is not None and item.parent() is not None:
            item = item.parent()
        if item is None or not item.text(0).startswith("Face "):
            return -1
        return self.tree.indexOfTopLevelItem(item)


class NarrationPanel(QWidget):
    narrateRequested = Signal()
    voicesRequested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.engine = QComboBox()
        for key, title in SPEECH_ENGINES:
            self.engine.addItem(title, key)
        form.addRow("Speech", self.engine)
        voice_row = QHBoxLayout()
        self.voice = QComboBox()
        self.voice.setEditable(True)  # any engine voice name may be typed
        self.voice.setToolTip("Polly voice id (e.g. Joanna, Zhiyu, Hiujin) or an offline voice; empty = default")
        self.load_voices_button = QPushButton("Voices…")
        self.load_voices_button.setToolTip("List Amazon Polly voices (sends no photo or text)")
        voice_row.addWidget(self.voice, 1)
        voice_row.addWidget(self.load_voices_button)
        form.addRow("Voice", voice_row)
        self.language = QComboBox()
        for key, title in LANGUAGES:
            self.language.addItem(title, key)
        form.addRow("Language", self.language)
        layout.addLayout(form)
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        self.text.setPlaceholderText("The narration appears here.")
        self.text.setAccessibleName("Narration text")
        layout.addWidget(self.text, 1)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        buttons = QHBoxLayout()
        self.narrate_button = QPushButton("Narrate")
        self.play_button = QPushButton("Play")
        self.stop_button = QPushButton("Stop")
        self.save_button = QPushButton("Save…")
        for b in (self.narrate_button, self.play_button, self.stop_button, self.save_button):
            buttons.addWidget(b)
        layout.addLayout(buttons)

        self.player = QMediaPlayer(self)
        self.audio_output = QAudioOutput(self)
        self.player.setAudioOutput(self.audio_output)
        self._tmp = tempfile.TemporaryDirectory(prefix="facemend-narration-")
        self.audio: bytes | None = None
        self.audio_format: str | None = None  # "mp3" or "wav"

        self.narrate_button.clicked.connect(self.narrateRequested)
        self.load_voices_button.clicked.connect(self.voicesRequested)
        self.play_button.clicked.connect(self.play)
        self.stop_button.clicked.connect(self.stop)
        self.save_button.clicked.connect(self._save_clicked)
        self.player.playbackStateChanged.connect(lambda _s: self._update_buttons())
        self.player.errorOccurred.connect(lambda _e, msg: self.status.setText(f"Playback failed: {msg}"))
        self.engine.currentIndexChanged.connect(lambda _i: self._update_buttons())
        self.voice.currentIndexChanged.connect(self._voice_changed)
        self._update_buttons()

    def engine_key(self) -> str:
        return self.engine.currentData()

    def language_key(self) -> str:
        return self.language.currentData()

    def voice_id(self) -> str | None:
        data = self.voice.currentData()
        text = self.voice.currentText().strip()
        return data or (text or None)

    def set_voices(self, voices: list) -> None:
        """Fill the voice list with cloud.polly.Voice entries (Chinese ones included)."""
        current = self.voice_id()
        self.voice.clear()
        for v in voices:
            self.voice.addItem(f"{v.id} — {v.language_name} ({v.language_code})", v.id)
            self.voice.setItemData(self.voice.count() - 1, v.narration_language, role=_LANGUAGE_ROLE)
        if current:
            i = self.voice.findData(current)
            if i >= 0:
                self.voice.setCurrentIndex(i)

    def _voice_changed(self, index: int) -> None:
        language = self.voice.itemData(index, role=_LANGUAGE_ROLE) if index >= 0 else None
        if language:
            self.language.setCurrentIndex(self.language.findData(language))

    def set_text(self, text: str) -> None:
        self.text.setPlainText(text)

    def set_audio(self, audio: bytes, audio_format: str) -> Path:
        """Load speech for playback; returns the temporary file the player reads."""
        self.player.stop()
        self.audio, self.audio_format = audio, audio_format
        path = Path(self._tmp.name) / f"narration-{abs(hash(audio)) % 10**8}.{audio_format}"
        path.write_bytes(audio)
        self.player.setSource(QUrl.fromLocalFile(str(path)))
        self._update_buttons()
        return path

    def play(self) -> None:
        if self.audio is not None:
            self.player.play()

    def stop(self) -> None:
        self.player.stop()

    def save_audio(self, path: str | Path, overwrite: bool = True) -> Path:
        from core.imageio import atomic_write

        if self.audio is None:
            raise ValueError("no narration to save")
        path = Path(path)
        if path.suffix.lower() != f".{self.audio_format}":
            path = path.with_suffix(f".{self.audio_format}")
        data = self.audio
        return atomic_write(path, lambda fh: fh.write(data), overwrite=overwrite)

    def _save_clicked(self) -> None:
        fmt = self.audio_format or "wav"
        kind = "MP3 audio (*.mp3)" if fmt == "mp3" else "WAV audio (*.wav)"
        name, _ = QFileDialog.getSaveFileName(self, "Save narration", f"narration.{fmt}", kind)
        if name:
            try:
                saved = self.save_audio(name)
                self.status.setText(f"Saved {saved.name}.")
            except Exception as exc:  # noqa: BLE001 - shown, not raised, in the GUI
                self.status.setText(error_text(exc))

    def set_busy(self, busy: bool) -> None:
        self.narrate_button.setEnabled(not busy)
        self._update_buttons()

    def _update_buttons(self) -> None:
        playing = self.player.playbackState() == QMediaPlayer.PlaybackState.PlayingState
        self.play_button.setEnabled(self.audio is not None and not playing)
        self.stop_button.setEnabled(playing)
        self.save_button.setEnabled(self.audio is not None)
        self.load_voices_button.setEnabled(self.engine_key() == "polly")


class AnalysisDock(QDockWidget):
    """See the module doc. Wiring: `facesChanged` -> Canvas.set_faces,
    `set_photo` when a photo opens, `set_repair_summary` after a repair."""

    facesChanged = Signal(object)  # list[core.faces.Face], photo pixels
    faceSelected = Signal(int)  # index into that list, -1 for none
    analysisReady = Signal(object)  # core.narration.FaceAnalysis
    narrationReady = Signal(str)  # the narration text
    statusMessage = Signal(str)  # one line for the status bar

    def __init__(self, parent: QWidget | None = None, *, clients: AwsClients | None = None,
                 consent: ConsentStore | None = None, pool: QThreadPool | None = None,
                 local_detector=None):
        super().__init__("Analysis", parent)
        self.setObjectName("analysisDock")
        self.clients = clients or AwsClients()
        self.consent = consent or ConsentStore()
        self.pool = pool or engine_pool()
        self._local_detector = local_detector  # None: core.faces.default_detector() when first needed
        self.faces_panel = FaceListPanel()
        self.narration_panel = NarrationPanel()
        body = QWidget()
        layout = QVBoxLayout(body)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.faces_panel, 3)
        layout.addWidget(self.narration_panel, 2)
        self.setWidget(body)

        self.rgb: np.ndarray | None = None
        self.photo_name: str | None = None
        self.analysis: FaceAnalysis | None = None
        self.repair: RepairSummary | None = None
        self._jobs: list[Job] = []
        self._narrate_after_analysis = False

        self.faces_panel.analyzeRequested.connect(self.analyze)
        self.faces_panel.tree.currentItemChanged.connect(lambda *_: self.faceSelected.emit(self.faces_panel.selected_face()))
        self.narration_panel.narrateRequested.connect(self.narrate)
        self.narration_panel.voicesRequested.connect(self.load_voices)
        self._update_enabled()

    # --- inputs from the main window --------------------------------------

    def set_photo(self, rgb: np.ndarray | None, name: str | None = None) -> None:
        """A newly opened photo (HxWx3 uint8, upright): forget the old results."""
        self.rgb, self.photo_name = rgb, name
        self.analysis = None
        self.faces_panel.tree.clear()
        self.faces_panel.show_message("No analysis yet." if rgb is not None else "Open a photo to analyze it.")
        self.narration_panel.set_text("")
        self.facesChanged.emit([])
        self._update_enabled()

    def set_repair_summary(self, summary: RepairSummary | None) -> None:
        self.repair = summary

    def set_aws_settings(self, settings: AwsSettings) -> None:
        """New region/profile from the settings dialog: new clients, consent asked again per region."""
        self.clients = AwsClients(settings)

    def set_local_detector(self, detector) -> None:
        self._local_detector = detector

    # --- analysis ----------------------------------------------------------

    def _start(self, fn, on_success, name: str) -> Job:
        job = Job(lambda _report, _cancel: fn(), name=name)
        job.signals.succeeded.connect(on_success)
        job.signals.failed.connect(lambda exc: self._failed(name, exc))
        job.signals.finished.connect(lambda _state: self._job_done(job))
        self._jobs.append(job)
        self._update_enabled()
        self.pool.start(job)
        return job

    def _job_done(self, job: Job) -> None:
        if job in self._jobs:
            self._jobs.remove(job)
        self._update_enabled()

    def busy(self) -> bool:
        return bool(self._jobs)

    def analyze(self) -> bool:
        """Start an analysis with the chosen engine; False if nothing was started
        (no photo, or consent refused: then nothing was sent)."""
        if self.rgb is None:
            return False
        rgb = self.rgb
        engine = self.faces_panel.engine_key()
        if engine == "rekognition":
            from cloud.rekognition import FEATURE, RekognitionDetector

            try:
                region = self.clients.require_region(FEATURE)
            except BackendUnavailableError as exc:
                self._failed("analysis", exc)
                return False
            if not ask_consent(self.consent, FEATURE, region, self.photo_name, self):
                self._narrate_after_analysis = False
                self._say(self.faces_panel.show_message, "Not sent: Amazon Rekognition was not allowed. "
                          "The offline detector is still available.")
                return False
            detector = RekognitionDetector(self.clients, self.consent)
            labels = self.faces_panel.labels.isChecked()
            fn = lambda: detector.analyze(rgb, labels=labels)
        else:
            local = self._local_detector

            def fn():
                from core.faces import default_detector

                d = local or default_detector()
                faces = d.detect(rgb)
                return FaceAnalysis(engine=d.name, faces=tuple(faces), image_size=(rgb.shape[1], rgb.shape[0]))

        self.faces_panel.show_message(f"Analyzing with {dict(FACE_ENGINES)[engine]}…")
        self._start(fn, self._analysis_done, "analysis")
        return True

    def _analysis_done(self, analysis: FaceAnalysis) -> None:
        self.analysis = analysis
        self.faces_panel.show_analysis(analysis)
        self.facesChanged.emit(list(analysis.faces))
        self.analysisReady.emit(analysis)
        if self._narrate_after_analysis:
            self._narrate_after_analysis = False
            self.narrate()

    # --- narration -----------------------------------------------------------

    def narrate(self) -> bool:
        """Narrate the current analysis (analyzing first if there is none)."""
        if self.analysis is None:
            self._narrate_after_analysis = True
            return self.analyze()
        panel = self.narration_panel
        text = narration_text(self.analysis, self.repair, language=panel.language_key())
        panel.set_text(text)
        self.narrationReady.emit(text)
        voice = panel.voice_id()
        if panel.engine_key() == "polly":
            from cloud.polly import DEFAULT_VOICE, FEATURE, PollySpeech

            try:
                region = self.clients.require_region(FEATURE)
            except BackendUnavailableError as exc:
                return self._narrate_offline(text, f"Amazon Polly unavailable ({exc}); narrated offline instead.")
            if not ask_consent(self.consent, FEATURE, region, None, self):
                return self._narrate_offline(text, "Not sent to Amazon Polly; narrated offline instead.")
            speech = PollySpeech(self.clients, self.consent, voice=voice or DEFAULT_VOICE)
            self._start(lambda: speech.synthesize(text), lambda audio: self._audio_ready(audio, "mp3", None), "polly narration")
            return True
        return self._narrate_offline(text, None, voice)

    def _narrate_offline(self, text: str, note: str | None, voice: str | None = None) -> bool:
        from cloud.speech_local import LocalSpeech

        language = self.narration_panel.language_key()
        speech = LocalSpeech(voice=voice if self.narration_panel.engine_key() == "local" else None, language=language)
        self._start(lambda: speech.synthesize(text), lambda audio: self._audio_ready(audio, "wav", note), "offline narration")
        return True

    def _audio_ready(self, audio: bytes, audio_format: str, note: str | None) -> None:
        self.narration_panel.set_audio(audio, audio_format)
        self._say(self.narration_panel.status.setText, note or f"Narration ready ({audio_format.upper()}).")

    def load_voices(self) -> None:
        from cloud.polly import PollySpeech

        speech = PollySpeech(self.clients, self.consent)
        self._start(speech.voices, self.narration_panel.set_voices, "voices")

    # --- feedback ------------------------------------------------------------

    def _failed(self, name: str, exc: BaseException) -> None:
        message = error_text(exc)
        if name == "polly narration" and isinstance(exc, BackendUnavailableError):
            # Polly failed: speak offline, and say why.
            text = self.narration_panel.text.toPlainText()
            self._narrate_offline(text, f"{message} Narrated offline instead.")
            return
        if name == "analysis":
            self._narrate_after_analysis = False
            self._say(self.faces_panel.show_message, message)
        else:
            self._say(self.narration_panel.status.setText, message)

    def _say(self, show, text: str) -> None:
        show(text)
        self.statusMessage.emit(text)

    def _update_enabled(self) -> None:
        busy = self.busy()
        has_photo = self.rgb is not None
        self.faces_panel.analyze_button.setEnabled(has_photo and not busy)
        self.narration_panel.narrate_button.setEnabled(has_photo and not busy)
