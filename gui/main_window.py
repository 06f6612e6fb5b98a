"""The FaceMend main window: open, paint, repair, compare, save.

All pixel work is delegated: core.imageio reads/writes photos, core.masks and
core.align build presets, core.repair (through gui.workers) repairs. This
module wires widgets, actions and background jobs together.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtGui import (
    QAction,
    QActionGroup,
    QColor,
    QIcon,
    QKeySequence,
    QPixmap,
    QUndoStack,
)
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QColorDialog,
    QComboBox,
    QDockWidget,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSlider,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from core.api import MASK_TYPES, RepairRequest
from core.errors import BackendUnavailableError, FaceMendError
from facemend import __version__
from gui import workers
from gui.canvas import Canvas, qimage_from_rgb, rgb_from_qimage
from gui.dialogs import SettingsDialog, ShortcutsDialog, about_html, show_error
from gui.mask_layer import MaskDiff, MaskEditCommand, MaskLayer
from gui.panels import CandidateStrip, Filmstrip
from gui.settings import (
    GuiSettings,
    add_recent_file,
    load_settings,
    open_settings,
    recent_files,
    save_settings,
)

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif")
PHOTO_FILTER = "Photos (" + " ".join(f"*{s}" for s in PHOTO_SUFFIXES) + ");;All files (*)"
PREVIEW_SIZE = 192

# Input that is not an action (so it is not in any menu); listed in Help -> Shortcuts.
MOUSE_AND_HELD_KEYS = [
    ("Left drag", "Paint the mask (eraser tool: erase)"),
    ("Right drag", "Erase the mask"),
    ("Mouse wheel", "Zoom at the cursor"),
    ("Space + drag / middle drag", "Pan"),
    ("Hold Tab", "Show the original photo"),
    ("Drag the split line", "Compare before/after (compare mode)"),
]


class MainWindow(QMainWindow):
    def __init__(self, engine: workers.Engine | None = None, *, background: bool = True, parent: QWidget | None = None):
        """`engine`: an already loaded workers.Engine (tests share one); None
        loads it in the background shortly after the window is shown.
        `background=False`: never start model loading or face detection on
        its own (tests of the editing UI; a repair still loads what it needs)."""
        super().__init__(parent)
        self._background = background
        self.setWindowTitle("FaceMend[*]")
        self.setAcceptDrops(True)
        self.qsettings = open_settings()
        self.settings: GuiSettings = load_settings(self.qsettings)
        self.photo = None  # core.imageio.Photo
        self.photo_path: str | None = None
        self.layer: MaskLayer | None = None
        self.undo_stack = QUndoStack(self)
        self.faces: list = []
        self.result = None  # core.api.RepairResult
        self.result_rgbs: list[np.ndarray] = []
        self.chosen = 0
        self.saved_path: Path | None = None
        self._result_saved = True
        self._photo_token = 0
        self._pool = workers.engine_pool()
        self._jobs: set[workers.Job] = set()
        self.repair_job: workers.Job | None = None
        self.engine_job: workers.Job | None = None
        # Written by the loader inside its worker thread, so a repair queued
        # behind it finds the engine without waiting for the GUI thread.
        self._engine_box: dict = {"engine": engine, "error": None}
        self._repair_started = 0.0
        self._shown_once = False
        self._filmstrip_paths: list[str] = []

        self.canvas = Canvas(self)
        self.canvas.brush_size = self.settings.brush_size
        self.canvas.overlay_opacity = self.settings.overlay_opacity
        self.canvas.set_overlay_color(QColor(self.settings.overlay_color))
        self.setCentralWidget(self.canvas)
        self._make_actions()
        self._make_menus()
        self._make_tool_panel()
        self._make_docks()
        self._make_status_bar()
        self.canvas.strokeFinished.connect(self._stroke_finished)
        self.canvas.brushSizeChanged.connect(self._brush_size_changed)
        self.canvas.zoomChanged.connect(lambda z: self.zoom_label.setText(f"{z * 100:.0f} %"))
        self.canvas.splitChanged.connect(lambda f: self.split_slider.setValue(round(f * 100)))
        self.undo_stack.cleanChanged.connect(lambda _clean: self._update_modified())
        QApplication.instance().installEventFilter(self)
        self.resize(1280, 820)
        geometry = self.qsettings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        state = self.qsettings.value("window/state")
        if state is not None:
            self.restoreState(state)
        if engine is not None:
            self._engine_ready(engine)
        self._update_actions()

    # -- construction -------------------------------------------------------------
    def _action(self, text: str, slot=None, shortcut=None, checkable=False, tip: str | None = None) -> QAction:
        a = QAction(text, self)
        if shortcut is not None:
            if isinstance(shortcut, (list, tuple)):
                a.setShortcuts([QKeySequence(s) for s in shortcut])
            else:
                a.setShortcut(QKeySequence(shortcut))
        a.setCheckable(checkable)
        if tip:
            a.setStatusTip(tip)
            a.setToolTip(tip)
        if slot is not None:
            (a.toggled if checkable else a.triggered).connect(slot)
        self.addAction(a)  # shortcuts work even with the menu bar hidden
        return a

    def _make_actions(self) -> None:
        A = self._action
        self.open_action = A("&Open…", self.open_dialog, QKeySequence.StandardKey.Open, tip="Open one or more photos")
        self.paste_action = A("&Paste photo", self.paste, QKeySequence.StandardKey.Paste, tip="Open the image on the clipboard")
        self.save_action = A("&Save", self.save, QKeySequence.StandardKey.Save,
                             tip="Save the repaired photo as <name>.repaired.<ext> beside the original")
        self.save_as_action = A("Save &As…", self.save_as, "Ctrl+Shift+S")
        self.import_mask_action = A("&Import mask…", self.import_mask_dialog, "Ctrl+I", tip="Load a mask PNG (white = damaged)")
        self.export_mask_action = A("&Export mask…", self.export_mask_dialog, "Ctrl+E", tip="Save the mask as a PNG (white = damaged)")
        self.quit_action = A("&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.undo_action = self.undo_stack.createUndoAction(self, "&Undo")
        self.undo_action.setShortcut(QKeySequence.StandardKey.Undo)
        self.redo_action = self.undo_stack.createRedoAction(self, "&Redo")
        self.redo_action.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        self.addAction(self.undo_action)
        self.addAction(self.redo_action)
        self.clear_action = A("&Clear mask", self.clear_mask, "Ctrl+Backspace")
        self.invert_action = A("In&vert mask", self.invert_mask, "Ctrl+Shift+I")
        self.settings_action = A("Repair &settings…", self.settings_dialog, "Ctrl+,")
        self.brush_action = A("&Brush", lambda on: on and self.set_eraser(False), "B", checkable=True, tip="Paint the damage")
        self.eraser_action = A("&Eraser", lambda on: on and self.set_eraser(True), "E", checkable=True, tip="Erase the mask")
        group = QActionGroup(self)
        group.addAction(self.brush_action)
        group.addAction(self.eraser_action)
        self.brush_action.setChecked(True)
        self.smaller_action = A("Smaller brush", lambda: self.canvas.set_brush_size(round(self.canvas.brush_size / 1.25)), "[")
        self.bigger_action = A("Bigger brush", lambda: self.canvas.set_brush_size(round(self.canvas.brush_size * 1.25) + 1), "]")
        self.zoom_in_action = A("Zoom &in", lambda: self.canvas.zoom_by(1.25), ["Ctrl++", "Ctrl+="])
        self.zoom_out_action = A("Zoom &out", lambda: self.canvas.zoom_by(1 / 1.25), "Ctrl+-")
        self.fit_action = A("&Fit to window", self.canvas.fit, "Ctrl+0")
        self.actual_size_action = A("&Actual size (1:1)", self.canvas.actual_size, "Ctrl+1")
        self.mask_visible_action = A("Show &mask", self.set_mask_visible, "M", checkable=True)
        self.mask_visible_action.setChecked(True)
        self.compare_action = A("&Compare before/after", self.set_compare, "C", checkable=True,
                                tip="Split view: original left of the line, repair right; drag the line")
        self.original_action = A("Show &original (hold Tab)", self.set_show_original, checkable=True)
        self.repair_action = A("&Repair", self.start_repair, ["Ctrl+R", "Ctrl+Return"], tip="Repair the masked area")
        self.cancel_action = A("&Cancel repair", self.cancel_repair, "Esc")
        self.shortcuts_action = A("&Keyboard shortcuts", self.shortcuts_dialog, QKeySequence.StandardKey.HelpContents)
        self.about_action = A("&About FaceMend", self.about_dialog)

    def _make_menus(self) -> None:
        mb = self.menuBar()
        f = mb.addMenu("&File")
        f.addAction(self.open_action)
        self.recent_menu = f.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        f.addAction(self.paste_action)
        f.addSeparator()
        f.addAction(self.save_action)
        f.addAction(self.save_as_action)
        f.addSeparator()
        f.addAction(self.import_mask_action)
        f.addAction(self.export_mask_action)
        f.addSeparator()
        f.addAction(self.quit_action)
        e = mb.addMenu("&Edit")
        for a in (self.undo_action, self.redo_action, None, self.clear_action, self.invert_action, None, self.settings_action):
            e.addSeparator() if a is None else e.addAction(a)
        m = mb.addMenu("&Mask")
        for a in (self.brush_action, self.eraser_action, self.smaller_action, self.bigger_action):
            m.addAction(a)
        presets = m.addMenu("&Preset")
        for kind in MASK_TYPES:
            presets.addAction(kind.capitalize(), lambda k=kind: self.apply_preset(k))
        v = mb.addMenu("&View")
        for a in (self.zoom_in_action, self.zoom_out_action, self.fit_action, self.actual_size_action, None,
                  self.mask_visible_action, self.compare_action, self.original_action):
            v.addSeparator() if a is None else v.addAction(a)
        r = mb.addMenu("&Repair")
        r.addAction(self.repair_action)
        r.addAction(self.cancel_action)
        a = mb.addMenu("&Faces")
        self.analysis_action = a.addAction("&Analyze faces and narrate…", self.show_analysis)
        self.analysis_action.setShortcut("Ctrl+Shift+A")
        h = mb.addMenu("&Help")
        h.addAction(self.shortcuts_action)
        h.addAction(self.about_action)
        tb = self.addToolBar("Main")
        tb.setObjectName("main_toolbar")
        for a in (self.open_action, self.save_action, None, self.undo_action, self.redo_action, None,
                  self.brush_action, self.eraser_action, None, self.fit_action, self.actual_size_action, None,
                  self.compare_action, self.repair_action):
            tb.addSeparator() if a is None else tb.addAction(a)

    def _make_tool_panel(self) -> None:
        panel = QWidget()
        col = QVBoxLayout(panel)

        brush = QGroupBox("Mask")
        form = QFormLayout(brush)
        tools = QHBoxLayout()
        for a in (self.brush_action, self.eraser_action):
            b = QToolButton()
            b.setDefaultAction(a)
            tools.addWidget(b)
        tools.addStretch(1)
        form.addRow("Tool", tools)
        self.size_slider = QSlider(Qt.Orientation.Horizontal, minimum=1, maximum=300, value=self.canvas.brush_size)
        self.size_slider.setToolTip("Brush size in photo pixels ([ and ])")
        self.size_slider.valueChanged.connect(self.canvas.set_brush_size)
        self.size_label = QLabel(f"{self.canvas.brush_size} px")
        row = QHBoxLayout()
        row.addWidget(self.size_slider)
        row.addWidget(self.size_label)
        form.addRow("Size", row)
        self.color_button = QPushButton()
        self.color_button.setToolTip("Overlay colour")
        self.color_button.clicked.connect(self.choose_overlay_color)
        self._paint_color_button()
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal, minimum=5, maximum=100,
                                      value=round(self.canvas.overlay_opacity * 100))
        self.opacity_slider.valueChanged.connect(self.set_overlay_opacity)
        row = QHBoxLayout()
        row.addWidget(self.color_button)
        row.addWidget(self.opacity_slider)
        form.addRow("Overlay", row)
        self.mask_visible_box = QCheckBox("Show mask (M)")
        self.mask_visible_box.setChecked(True)
        self.mask_visible_box.toggled.connect(self.mask_visible_action.setChecked)
        self.mask_visible_action.toggled.connect(self.mask_visible_box.setChecked)
        form.addRow(self.mask_visible_box)
        row = QHBoxLayout()
        for a in (self.clear_action, self.invert_action):
            b = QToolButton()
            b.setDefaultAction(a)
            row.addWidget(b)
        form.addRow(row)
        self.preset_combo = QComboBox()
        self.preset_combo.addItems(MASK_TYPES)
        self.preset_combo.setToolTip("Mask drawn in each face's own frame (needs detected faces)")
        preset_button = QPushButton("Add preset")
        preset_button.clicked.connect(lambda: self.apply_preset(self.preset_combo.currentText()))
        row = QHBoxLayout()
        row.addWidget(self.preset_combo, 1)
        row.addWidget(preset_button)
        form.addRow("Preset", row)
        row = QHBoxLayout()
        for a in (self.import_mask_action, self.export_mask_action):
            b = QToolButton()
            b.setDefaultAction(a)
            row.addWidget(b)
        form.addRow(row)
        col.addWidget(brush)

        rep = QGroupBox("Repair")
        rcol = QVBoxLayout(rep)
        self.face_combo = QComboBox()
        self.face_combo.setToolTip("Which face to repair; Auto repairs every face the mask touches")
        self.face_combo.currentIndexChanged.connect(self._face_choice_changed)
        rcol.addWidget(self.face_combo)
        row = QHBoxLayout()
        self.repair_button = QPushButton("Repair")
        self.repair_button.setToolTip("Repair the masked area (Ctrl+R)")
        self.repair_button.clicked.connect(self.start_repair)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_repair)
        row.addWidget(self.repair_button, 2)
        row.addWidget(self.cancel_button, 1)
        rcol.addLayout(row)
        self.preview_label = QLabel("Live preview of the\nface being repaired")
        self.preview_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview_label.setFixedSize(PREVIEW_SIZE, PREVIEW_SIZE)
        self.preview_label.setStyleSheet("QLabel { background: #303034; color: #aaa; }")
        rcol.addWidget(self.preview_label, 0, Qt.AlignmentFlag.AlignHCenter)
        self.notes_label = QLabel()
        self.notes_label.setWordWrap(True)
        rcol.addWidget(self.notes_label)
        col.addWidget(rep)

        cmp_box = QGroupBox("Compare")
        ccol = QVBoxLayout(cmp_box)
        self.compare_box = QCheckBox("Before/after split (C)")
        self.compare_box.toggled.connect(self.compare_action.setChecked)
        self.compare_action.toggled.connect(self.compare_box.setChecked)
        ccol.addWidget(self.compare_box)
        self.split_slider = QSlider(Qt.Orientation.Horizontal, minimum=0, maximum=100, value=50)
        self.split_slider.valueChanged.connect(lambda v: self.canvas.set_split(v / 100))
        ccol.addWidget(self.split_slider)
        self.original_button = QPushButton("Hold to see original (Tab)")
        self.original_button.pressed.connect(lambda: self.set_show_original(True))
        self.original_button.released.connect(lambda: self.set_show_original(False))
        ccol.addWidget(self.original_button)
        col.addWidget(cmp_box)
        col.addStretch(1)

        scroll = QScrollArea()
        scroll.setWidget(panel)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        dock = QDockWidget("Tools", self)
        dock.setObjectName("tools_dock")
        dock.setWidget(scroll)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        panel.setMinimumWidth(260)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
        self._refresh_face_combo()

    def _make_docks(self) -> None:
        self.filmstrip = Filmstrip()
        self.filmstrip.photoActivated.connect(self._filmstrip_activated)
        self.filmstrip_dock = QDockWidget("Photos", self)
        self.filmstrip_dock.setObjectName("photos_dock")
        self.filmstrip_dock.setWidget(self.filmstrip)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.filmstrip_dock)
        self.filmstrip_dock.hide()
        self.candidate_strip = CandidateStrip()
        self.candidate_strip.candidateChosen.connect(self.choose_candidate)
        self.candidates_dock = QDockWidget("Candidates: click to pick one", self)
        self.candidates_dock.setObjectName("candidates_dock")
        self.candidates_dock.setWidget(self.candidate_strip)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.candidates_dock)
        self.candidates_dock.hide()

    def show_analysis(self):
        """Face analysis (local detector or Rekognition) and narration (offline
        or Polly). Built on first use: it imports boto3, which the window's
        start-up should not pay for; nothing is sent without consent."""
        if getattr(self, "analysis_dock", None) is None:
            from gui.analysis import AnalysisDock

            from cloud.aws import AwsClients

            dock = AnalysisDock(self, pool=self._pool, clients=AwsClients(self.settings.aws_settings()))
            dock.facesChanged.connect(lambda faces: self.canvas.set_faces(faces, -1))
            dock.faceSelected.connect(lambda i: self.canvas.set_faces(self.canvas.faces, i))
            dock.statusMessage.connect(lambda msg: self.statusBar().showMessage(msg, 10000))
            self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
            self.analysis_dock = dock
        if self.photo is not None:
            self.analysis_dock.set_photo(self.photo.rgb, Path(self.photo_path).name if self.photo_path else None)
        if self.result is not None:
            from core.narration import RepairSummary

            self.analysis_dock.set_repair_summary(RepairSummary(len(self.result.faces), self.result.backend))
        self.analysis_dock.show()
        self.analysis_dock.raise_()
        return self.analysis_dock

    def _make_status_bar(self) -> None:
        sb = self.statusBar()
        self.progress_bar = QProgressBar()
        self.progress_bar.setMaximumWidth(220)
        self.progress_bar.setFormat("%v / %m")
        self.progress_bar.hide()
        self.zoom_label = QLabel("")
        self.engine_label = QLabel("")
        sb.addPermanentWidget(self.progress_bar)
        sb.addPermanentWidget(self.zoom_label)
        sb.addPermanentWidget(self.engine_label)

    # -- engine ---------------------------------------------------------------------
    def start_engine(self) -> None:
        """Load TensorFlow, the model and the backend in the background."""
        backend = self.settings.backend
        box = self._engine_box

        def load(report, cancel):
            box["engine"], box["error"] = None, None
            try:
                engine = workers.load_engine(backend, progress=report)
            except BaseException as exc:
                box["error"] = exc
                raise
            box["engine"] = engine
            return engine

        self.engine_label.setText("Starting the repair engine…")
        job = workers.Job(load, "load model")
        job.signals.progress.connect(lambda msg: self.engine_label.setText(str(msg)))
        job.signals.succeeded.connect(self._engine_ready)
        job.signals.failed.connect(self._engine_failed)
        self.engine_job = job
        self._submit(job)

    @property
    def engine(self) -> workers.Engine | None:
        return self._engine_box["engine"]

    def _engine_ready(self, engine: workers.Engine) -> None:
        self.engine_label.setText(f"Backend: {engine.backend} ({engine.device}) · ready")
        self.engine_label.setToolTip(f"model {engine.bundle.ref}; loaded in {engine.seconds:.1f} s")
        if engine.notes:
            self.statusBar().showMessage("; ".join(engine.notes), 15000)

    def _engine_failed(self, exc: BaseException) -> None:
        self.engine_label.setText("Repair engine unavailable")
        show_error(self, "Repair engine unavailable", workers.error_text(exc), workers.error_details(exc))

    def _submit(self, job: workers.Job) -> None:
        self._jobs.add(job)
        job.signals.finished.connect(lambda _state, j=job: self._jobs.discard(j))
        self._pool.start(job)

    # -- opening ------------------------------------------------------------------------
    def open_dialog(self) -> None:
        start = str(Path(self.photo_path).parent) if self.photo_path else ""
        paths, _ = QFileDialog.getOpenFileNames(self, "Open photos", start, PHOTO_FILTER)
        if paths:
            self.open_files(paths)

    def open_files(self, paths: list[str]) -> bool:
        """Open the first photo; with several, list them all in the filmstrip."""
        expanded: list[str] = []
        for p in paths:
            path = Path(p)
            if path.is_dir():
                expanded += sorted(str(f) for f in path.iterdir() if f.suffix.lower() in PHOTO_SUFFIXES)
            else:
                expanded.append(str(path))
        if not expanded:
            show_error(self, "Nothing to open", "No photos found in: " + ", ".join(map(str, paths)))
            return False
        if len(expanded) > 1:
            self._filmstrip_paths = expanded
            self.filmstrip.set_paths(expanded)
            self.filmstrip_dock.show()
        return self.open_path(expanded[0])

    def _filmstrip_activated(self, path: str) -> None:
        if path != self.photo_path:
            self.open_path(path)

    def open_path(self, path: str) -> bool:
        from core.imageio import load_image

        if not self.maybe_discard_work():
            return False
        try:
            photo = load_image(path)
        except FaceMendError as exc:
            show_error(self, "Cannot open photo", str(exc))
            return False
        except Exception as exc:  # noqa: BLE001 - a photo must never crash the app
            show_error(self, "Cannot open photo", f"{path}: {workers.error_text(exc)}", workers.error_details(exc))
            return False
        self.set_photo(photo, str(path))
        add_recent_file(str(Path(path).resolve()), self.qsettings)
        self.filmstrip.select_path(str(path))
        return True

    def paste(self) -> bool:
        from core.imageio import photo_from_array

        mime = QApplication.clipboard().mimeData()
        if mime is not None and mime.hasUrls() and any(u.isLocalFile() for u in mime.urls()):
            return self.open_files([u.toLocalFile() for u in mime.urls() if u.isLocalFile()])
        image = QApplication.clipboard().image()
        if image.isNull():
            show_error(self, "Nothing to paste", "The clipboard holds no image.")
            return False
        if not self.maybe_discard_work():
            return False
        rgba = rgb_from_qimage(image)
        pixels = rgba[..., :3] if (rgba[..., 3] == 255).all() else rgba
        try:
            photo = photo_from_array(pixels)
        except FaceMendError as exc:
            show_error(self, "Cannot paste", str(exc))
            return False
        self.set_photo(photo, None)
        return True

    def set_photo(self, photo, path: str | None) -> None:
        self._cancel_repair_job()
        self.photo, self.photo_path = photo, path
        self.layer = MaskLayer(photo.height, photo.width, self)
        self.layer.changed.connect(self._mask_changed)
        self.undo_stack.clear()
        self.faces = []
        self._clear_result()
        self.saved_path = None
        self._result_saved = True
        self._photo_token += 1
        self.canvas.set_photo(photo.rgb, self.layer)
        self.canvas.setFocus()
        self.mask_visible_action.setChecked(True)
        self._refresh_face_combo()
        name = Path(path).name if path else "pasted image"
        self.setWindowFilePath(path or "")
        self.setWindowTitle(f"{name} — FaceMend[*]")
        note = f"{name}: {photo.width}×{photo.height}"
        if photo.frames > 1:
            note += f"; the file has {photo.frames} frames, only the first is shown and repaired"
        self.statusBar().showMessage(note + " — detecting faces…")
        if getattr(self, "analysis_dock", None) is not None:
            self.analysis_dock.set_photo(photo.rgb, name)
        self._start_detection()
        self._update_actions()

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        files = recent_files(self.qsettings)
        if not files:
            self.recent_menu.addAction("(none)").setEnabled(False)
        for p in files:
            self.recent_menu.addAction(p, lambda p=p: self.open_files([p]))

    # -- drag and drop --------------------------------------------------------------------
    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls() or event.mimeData().hasImage():
            event.acceptProposedAction()

    def dragMoveEvent(self, event) -> None:
        if event.mimeData().hasUrls() or event.mimeData().hasImage():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        mime = event.mimeData()
        paths = [u.toLocalFile() for u in mime.urls() if u.isLocalFile()]
        event.acceptProposedAction()
        if paths:
            # Let the drop finish (and the drag source return) before a dialog may open.
            QTimer.singleShot(0, lambda: self.open_files(paths))
        elif mime.hasUrls():
            show_error(self, "Cannot open", "Only files on this computer can be opened; save the image first.")

    # -- faces ------------------------------------------------------------------------------
    def _start_detection(self) -> None:
        if self.photo is None or not self._background:
            return
        token, rgb = self._photo_token, self.photo.rgb

        def detect(report, cancel):
            from core.faces import default_detector
            from core.repair import detect_faces

            return token, detect_faces(rgb, default_detector())

        job = workers.Job(detect, "detect faces")
        job.signals.succeeded.connect(self._faces_detected)
        job.signals.failed.connect(lambda exc: self.statusBar().showMessage(
            f"Face detection failed: {workers.error_text(exc)}"))
        self._submit(job)

    def _faces_detected(self, payload) -> None:
        token, faces = payload
        if token != self._photo_token:
            return  # a result for a photo no longer shown
        self.faces = faces
        self._refresh_face_combo()
        self.canvas.set_faces(faces, self.selected_face)
        if faces:
            self.statusBar().showMessage(f"{len(faces)} face(s) found: paint over the damage, then Repair (Ctrl+R)")
        else:
            self.statusBar().showMessage("No face found: FaceMend repairs faces; try a photo with a frontal face")
        self._update_actions()

    def _refresh_face_combo(self) -> None:
        self.face_combo.blockSignals(True)
        self.face_combo.clear()
        self.face_combo.addItem("Auto (faces the mask touches)", None)
        for i, f in enumerate(self.faces):
            self.face_combo.addItem(f"Face {i + 1} ({f.confidence:.0%})", i)
        self.face_combo.blockSignals(False)

    @property
    def selected_face(self) -> int | None:
        return self.face_combo.currentData()

    def select_face(self, index: int | None) -> None:
        self.face_combo.setCurrentIndex(0 if index is None else index + 1)

    def _face_choice_changed(self, _row: int) -> None:
        self.canvas.set_faces(self.faces, self.selected_face)

    # -- mask editing ------------------------------------------------------------------------
    def _stroke_finished(self, diff: MaskDiff) -> None:
        text = "Erase" if self.canvas.erasing else "Brush stroke"
        self.undo_stack.push(MaskEditCommand(self.layer, diff, text))

    def _mask_changed(self, *_rect) -> None:
        if not self.canvas.mask_visible:
            self.mask_visible_action.setChecked(True)  # painting blind helps no one
        self._update_actions()

    def replace_mask(self, new_mask: np.ndarray, text: str) -> bool:
        """Whole-mask edits become one undoable diff of the pixels that changed."""
        if self.layer is None:
            return False
        diff = self.layer.diff_to(new_mask)
        if diff is None:
            return False
        self.undo_stack.push(MaskEditCommand(self.layer, diff, text, applied=False))
        return True

    def clear_mask(self) -> None:
        if self.layer is not None:
            self.replace_mask(np.zeros(self.layer.shape, bool), "Clear mask")

    def invert_mask(self) -> None:
        if self.layer is not None:
            self.replace_mask(~self.layer.mask, "Invert mask")

    def apply_preset(self, kind: str) -> None:
        """Add a core preset, drawn in each chosen face's aligned frame."""
        if self.layer is None:
            return
        if not self.faces:
            show_error(self, "No faces yet", "Presets are placed on detected faces; none are detected "
                       "(yet). Paint the mask by hand, or wait for detection to finish.")
            return
        from core import bundle as bundles
        from core.align import aligned_mask_to_photo, compute_alignment
        from core.masks import preset_mask

        info = self.engine.bundle if self.engine is not None else bundles.read_manifest(bundles.find_bundle())
        template = np.asarray(info.landmark_template)
        indices = [self.selected_face] if self.selected_face is not None else range(len(self.faces))
        added = np.zeros(self.layer.shape, bool)
        aligned = preset_mask(kind, info.image_size, template, seed=self.settings.seed)
        for i in indices:
            al = compute_alignment(self.faces[i].landmarks, template, info.image_size, self.layer.shape)
            added |= aligned_mask_to_photo(aligned, al)
        self.replace_mask(self.layer.mask | added, f"Preset: {kind}")

    def import_mask_dialog(self) -> None:
        if self.layer is None:
            return
        path, _ = QFileDialog.getOpenFileName(self, "Import mask (white = damaged)", self._folder(), "Masks (*.png *.bmp *.tif *.tiff *.jpg *.webp);;All files (*)")
        if path:
            self.import_mask(path)

    def import_mask(self, path: str) -> bool:
        from core.masks import load_mask

        try:
            mask = load_mask(path, self.layer.shape)
        except FaceMendError as exc:
            show_error(self, "Cannot import mask", str(exc))
            return False
        self.replace_mask(mask, f"Import mask {Path(path).name}")
        return True

    def export_mask_dialog(self) -> bool:
        if self.layer is None:
            return False
        stem = Path(self.photo_path).stem if self.photo_path else "pasted"
        path, _ = QFileDialog.getSaveFileName(self, "Export mask", str(Path(self._folder()) / f"{stem}.mask.png"), "PNG (*.png)")
        if not path:
            return False
        if not path.lower().endswith(".png"):
            path += ".png"
        return self.export_mask(path)

    def export_mask(self, path: str) -> bool:
        from core.masks import save_mask

        try:
            # The file dialog already asked before replacing an existing file.
            save_mask(self.layer.mask.copy(), path, overwrite=True)
        except FaceMendError as exc:
            show_error(self, "Cannot export mask", str(exc))
            return False
        if self.result is None:
            self.undo_stack.setClean()
        self.statusBar().showMessage(f"Mask saved to {path}", 8000)
        return True

    def set_eraser(self, on: bool) -> None:
        self.canvas.erasing = bool(on)
        (self.eraser_action if on else self.brush_action).setChecked(True)

    def _brush_size_changed(self, size: int) -> None:
        self.size_slider.blockSignals(True)
        self.size_slider.setValue(min(size, self.size_slider.maximum()))
        self.size_slider.blockSignals(False)
        self.size_label.setText(f"{size} px")

    def choose_overlay_color(self) -> None:
        color = QColorDialog.getColor(self.canvas.overlay_color, self, "Mask overlay colour")
        if color.isValid():
            self.canvas.set_overlay_color(color)
            self._paint_color_button()

    def _paint_color_button(self) -> None:
        pix = QPixmap(28, 16)
        pix.fill(self.canvas.overlay_color)
        self.color_button.setIcon(QIcon(pix))

    def set_overlay_opacity(self, percent: int) -> None:
        self.canvas.overlay_opacity = percent / 100
        self.canvas.update()

    def set_mask_visible(self, on: bool) -> None:
        self.canvas.mask_visible = bool(on)
        self.canvas.update()

    def set_compare(self, on: bool) -> None:
        self.canvas.compare = bool(on) and self.canvas.has_result
        if on and not self.canvas.has_result:
            self.compare_action.setChecked(False)
        self.canvas.update()

    def set_show_original(self, on: bool) -> None:
        self.canvas.show_original = bool(on)
        if self.original_action.isChecked() != bool(on):
            self.original_action.setChecked(bool(on))
        self.canvas.update()

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        # Hold Tab to see the original. Tab normally moves focus, so it is
        # caught here, before any widget, while this window is the active one.
        if event.type() in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease) and event.key() == Qt.Key.Key_Tab \
                and self.isActiveWindow() and QApplication.activeModalWidget() is None \
                and isinstance(obj, QWidget) and obj.window() is self:
            if not event.isAutoRepeat():
                self.set_show_original(event.type() == QEvent.Type.KeyPress)
            return True
        return super().eventFilter(obj, event)

    # -- repair ------------------------------------------------------------------------------------
    def start_repair(self) -> workers.Job | None:
        if self.photo is None or self.layer is None:
            return None
        if self.repair_job is not None:
            return self.repair_job
        if not self.layer.mask.any():
            show_error(self, "Nothing to repair", "Paint over the damaged part of a face first (white = damaged).")
            return None
        if self.engine is None and self.engine_job is None:
            self.start_engine()
        try:
            settings = self.settings.completion_settings()
        except FaceMendError as exc:
            show_error(self, "Invalid settings", str(exc))
            return None
        photo, mask, face_index = self.photo, self.layer.mask.copy(), self.selected_face
        faces = list(self.faces) if self.faces else None
        box, token = self._engine_box, self._photo_token

        def run(report, cancel):
            from core.imageio import display_rgb
            from core.repair import repair

            engine = box["engine"]
            if engine is None:
                reason = workers.error_text(box["error"]) if box["error"] is not None else "the model is not loaded"
                raise BackendUnavailableError(f"cannot repair: {reason}")
            request = RepairRequest(photo, mask=mask, face_index=face_index, settings=settings)
            result = repair(request, engine.completer, engine.bundle, detector=engine.detector,
                            progress=lambda step, total, loss, preview: report((step, total, loss, preview)),
                            cancel=cancel, faces=faces)
            # Display copies; the saved file is built from result.candidates (native layout).
            return token, mask, result, [display_rgb(photo, c) for c in result.candidates]

        job = workers.Job(run, "repair")
        job.signals.progress.connect(self._repair_progress)
        job.signals.succeeded.connect(self._repair_succeeded)
        job.signals.failed.connect(self._repair_failed)
        job.signals.cancelled.connect(lambda: self.statusBar().showMessage("Repair cancelled", 8000))
        job.signals.finished.connect(lambda state, j=job: self._repair_finished(j, state))
        self.repair_job = job
        self._repair_started = time.perf_counter()
        self.progress_bar.setRange(0, 0)  # busy until the first step
        self.progress_bar.show()
        waiting = self.engine is None
        self.statusBar().showMessage("Waiting for the model to load…" if waiting else "Repairing…")
        self._submit(job)
        self._update_actions()
        return job

    def _repair_progress(self, payload) -> None:
        step, total, loss, preview = payload
        if self.progress_bar.maximum() != total:
            self.progress_bar.setRange(0, total)
        self.progress_bar.setValue(step)
        elapsed = time.perf_counter() - self._repair_started
        self.statusBar().showMessage(f"Repairing… step {step}/{total}, loss {loss:.4f}, {elapsed:.1f} s")
        if preview is not None:
            self.preview_label.setPixmap(QPixmap.fromImage(qimage_from_rgb(preview)).scaled(
                PREVIEW_SIZE, PREVIEW_SIZE, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation))

    def _repair_succeeded(self, payload) -> None:
        token, mask, result, rgbs = payload
        if token != self._photo_token:
            return
        self.result, self.result_rgbs, self.chosen = result, rgbs, 0
        self._result_saved = False
        self.canvas.set_result(rgbs[0])
        self.mask_visible_action.setChecked(False)  # show the repair, not the paint
        if len(rgbs) > 1:
            self.candidate_strip.set_candidates(rgbs, result.losses, mask)
            self.candidates_dock.show()
        else:
            self.candidates_dock.hide()
        s = result.seconds
        self.engine_label.setText(f"Backend: {result.backend} ({result.device}) · {s.get('total', 0):.1f} s")
        self.engine_label.setToolTip(
            f"model {result.model}; detect {s.get('detect', 0):.2f} s, complete {s.get('complete', 0):.2f} s, "
            f"blend {s.get('blend', 0):.2f} s")
        self.notes_label.setText("\n".join(result.notes))
        faces = ", ".join(str(fr.index + 1) for fr in result.faces)
        self.statusBar().showMessage(
            f"Repaired face(s) {faces} in {s.get('total', 0):.1f} s — compare with C or hold Tab; save with Ctrl+S"
            + (" — " + "; ".join(result.notes) if result.notes else ""))
        self._update_modified()

    def _repair_failed(self, exc: BaseException) -> None:
        self.statusBar().showMessage("Repair failed", 8000)
        details = None if isinstance(exc, FaceMendError) else workers.error_details(exc)
        show_error(self, "Repair failed", workers.error_text(exc), details)

    def _repair_finished(self, job: workers.Job, state: str) -> None:
        if self.repair_job is job:
            self.repair_job = None
        self.progress_bar.hide()
        self._update_actions()

    def cancel_repair(self) -> None:
        if self.repair_job is not None:
            self.repair_job.cancel()
            self.statusBar().showMessage("Cancelling…")

    def _cancel_repair_job(self) -> None:
        if self.repair_job is not None:
            self.repair_job.cancel()

    def choose_candidate(self, index: int) -> None:
        if not 0 <= index < len(self.result_rgbs):
            return
        if index != self.chosen:
            self.chosen = index
            self._result_saved = False
            self._update_modified()
        self.canvas.set_result(self.result_rgbs[index])

    def _clear_result(self) -> None:
        self.result, self.result_rgbs, self.chosen = None, [], 0
        self.canvas.set_result(None)
        self.compare_action.setChecked(False)
        self.candidates_dock.hide()
        self.notes_label.clear()
        self.preview_label.clear()
        self.preview_label.setText("Live preview of the\nface being repaired")

    # -- saving ------------------------------------------------------------------------------------
    def _folder(self) -> str:
        return str(Path(self.photo_path).parent) if self.photo_path else str(Path.home())

    def default_save_path(self) -> Path:
        from core.imageio import default_output_path

        if self.photo_path:
            return default_output_path(self.photo_path)
        return Path(self._folder()) / "pasted.repaired.png"

    def save(self) -> bool:
        """Save the chosen repair: to the file already saved to, else to the
        default `<stem>.repaired.<ext>` if that is free, else ask."""
        if self.result is None:
            self.statusBar().showMessage("Nothing to save yet: repair first", 5000)
            return False
        if self.saved_path is not None:
            return self.save_to(self.saved_path, overwrite=True)
        target = self.default_save_path()
        if target.exists():
            return self.save_as()
        return self.save_to(target)

    def save_as(self) -> bool:
        if self.result is None:
            return False
        path, _ = QFileDialog.getSaveFileName(self, "Save repaired photo", str(self.default_save_path()),
                                              "Images (*.png *.jpg *.jpeg *.tif *.tiff *.webp *.bmp)")
        if not path:
            return False
        # The dialog asked before replacing; core still refuses the original itself.
        return self.save_to(Path(path), overwrite=True)

    def save_to(self, path: Path | str, overwrite: bool = False) -> bool:
        from core.imageio import save_image

        path = Path(path)
        try:
            save_image(self.photo, self.result.candidates[self.chosen], path, overwrite=overwrite)
        except FaceMendError as exc:
            show_error(self, "Cannot save", str(exc))
            return False
        self.saved_path = path
        self._result_saved = True
        self.undo_stack.setClean()
        self._update_modified()
        self.statusBar().showMessage(f"Saved {path}", 10000)
        return True

    # -- unsaved work and closing -------------------------------------------------------------------
    def has_unsaved_work(self) -> bool:
        unsaved_result = self.result is not None and not self._result_saved
        unsaved_mask = self.layer is not None and not self.undo_stack.isClean() and bool(self.layer.mask.any())
        return unsaved_result or unsaved_mask

    def maybe_discard_work(self) -> bool:
        """True if it is fine to drop the current work (nothing unsaved, saved now, or discarded)."""
        if not self.has_unsaved_work():
            return True
        what = "the repaired photo" if self.result is not None and not self._result_saved else "the painted mask"
        answer = QMessageBox.question(
            self, "Unsaved work", f"Save {what} first?",
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Save)
        if answer == QMessageBox.StandardButton.Save:
            return self.save() if self.result is not None else self.export_mask_dialog()
        return answer == QMessageBox.StandardButton.Discard

    def closeEvent(self, event) -> None:
        if not self.maybe_discard_work():
            event.ignore()
            return
        QApplication.instance().removeEventFilter(self)
        for job in list(self._jobs):
            job.cancel()
        self._pool.clear()
        self.qsettings.setValue("window/geometry", self.saveGeometry())
        self.qsettings.setValue("window/state", self.saveState())
        self._store_settings()
        # A loading model cannot be interrupted; wait so no thread outlives Qt.
        self._pool.waitForDone()
        event.accept()

    def _store_settings(self) -> None:
        from dataclasses import replace

        self.settings = replace(self.settings, brush_size=self.canvas.brush_size,
                                overlay_color=self.canvas.overlay_color.name(),
                                overlay_opacity=round(self.canvas.overlay_opacity, 2))
        save_settings(self.settings, self.qsettings)

    # -- dialogs -----------------------------------------------------------------------------------------
    def settings_dialog(self) -> None:
        dialog = SettingsDialog(self.settings, self)
        if dialog.exec():
            self.apply_settings(dialog.settings())

    def apply_settings(self, new: GuiSettings) -> None:
        try:
            new.completion_settings()
        except FaceMendError as exc:
            show_error(self, "Invalid settings", str(exc))
            return
        backend_changed = new.backend != self.settings.backend
        aws_changed = (new.aws_region, new.aws_profile) != (self.settings.aws_region, self.settings.aws_profile)
        self.settings = new
        if aws_changed and getattr(self, "analysis_dock", None) is not None:
            self.analysis_dock.set_aws_settings(new.aws_settings())
        self._store_settings()
        if backend_changed and (self.engine is not None or self.engine_job is not None):
            self.start_engine()

    def shortcut_list(self) -> list[tuple[str, str]]:
        rows = []
        for a in self.actions():
            keys = ", ".join(s.toString(QKeySequence.SequenceFormat.NativeText) for s in a.shortcuts())
            if keys:
                rows.append((keys, a.text().replace("&", "").rstrip("…")))
        return rows + MOUSE_AND_HELD_KEYS

    def shortcuts_dialog(self) -> None:
        ShortcutsDialog(self.shortcut_list(), self).exec()

    def about_dialog(self) -> None:
        QMessageBox.about(self, "About FaceMend", about_html(__version__))

    # -- state ---------------------------------------------------------------------------------------------
    def _update_actions(self) -> None:
        has_photo = self.photo is not None
        has_mask = has_photo and self.layer is not None and bool(self.layer.mask.any())
        busy = self.repair_job is not None
        for a in (self.clear_action, self.invert_action, self.import_mask_action, self.export_mask_action):
            a.setEnabled(has_photo)
        self.repair_action.setEnabled(has_mask and not busy)
        self.repair_button.setEnabled(has_mask and not busy)
        self.cancel_action.setEnabled(busy)
        self.cancel_button.setEnabled(busy)
        self.save_action.setEnabled(self.result is not None)
        self.save_as_action.setEnabled(self.result is not None)
        self.compare_action.setEnabled(self.result is not None)
        self.compare_box.setEnabled(self.result is not None)
        self.split_slider.setEnabled(self.result is not None)
        self._update_modified()

    def _update_modified(self) -> None:
        self.setWindowModified(self.has_unsaved_work())

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self._shown_once:
            return
        self._shown_once = True
        if os.environ.get("FACEMEND_REPORT_STARTUP"):
            # Printed once the first frame is on screen (after this event's paint).
            QTimer.singleShot(0, lambda: print(f"facemend: window shown at {time.time():.3f}", flush=True))
        if self._background and self.engine is None and self.engine_job is None:
            # Let the first frame paint before TensorFlow's import competes for the GIL.
            QTimer.singleShot(150, self.start_engine)
