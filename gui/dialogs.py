"""Dialogs: settings, keyboard shortcuts, about, and the message helpers.

Messages go through QMessageBox's static functions (warning/question/about),
so tests can swap them for recorders instead of blocking on a modal box.
"""

from __future__ import annotations

import html

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHeaderView,
    QLineEdit,
    QMessageBox,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.api import MAX_CANDIDATES
from gui.settings import GuiSettings

BACKEND_CHOICES = ("auto", "gpu", "cpu")


def show_error(parent: QWidget | None, title: str, text: str, details: str | None = None) -> None:
    if details:
        box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok, parent)
        box.setDetailedText(details)
        box.exec()
    else:
        QMessageBox.warning(parent, title, text)


class SettingsDialog(QDialog):
    """Steps, restarts, candidates, seed and backend preference."""

    def __init__(self, settings: GuiSettings, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Repair settings")
        self._base = settings
        form = QFormLayout()
        self.steps = QSpinBox(minimum=1, maximum=5000, value=settings.steps)
        self.steps.setToolTip("Latent search steps per face: more is slower and usually closer")
        self.restarts = QSpinBox(minimum=1, maximum=64, value=settings.restarts)
        self.restarts.setToolTip("Searches run together from different starting points; the best wins")
        self.candidates = QSpinBox(minimum=1, maximum=MAX_CANDIDATES, value=settings.candidates)
        self.candidates.setToolTip("Alternatives to choose from after a repair (restarts grow to match)")
        self.seed = QSpinBox(minimum=0, maximum=2**31 - 1, value=settings.seed)
        self.seed.setToolTip("Same seed, same settings, same photo: same result")
        self.backend = QComboBox()
        self.backend.setEditable(True)  # remote endpoints are named by the user
        self.backend.addItems(BACKEND_CHOICES)
        self.backend.setCurrentText(settings.backend)
        self.backend.setToolTip("auto: GPU if TensorFlow sees one, else CPU")
        form.addRow("Steps", self.steps)
        form.addRow("Restarts", self.restarts)
        form.addRow("Candidates", self.candidates)
        form.addRow("Seed", self.seed)
        form.addRow("Backend", self.backend)
        self.aws_region = QLineEdit(settings.aws_region)
        self.aws_region.setPlaceholderText("default from AWS config, e.g. eu-west-1")
        self.aws_profile = QLineEdit(settings.aws_profile)
        self.aws_profile.setPlaceholderText("default profile")
        self.aws_profile.setToolTip("A profile from ~/.aws/config; FaceMend never stores AWS keys")
        form.addRow("AWS region", self.aws_region)
        form.addRow("AWS profile", self.aws_profile)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        # Consents given to cloud features, each revocable here (built lazily:
        # the consent module is small and imports no AWS SDK).
        from cloud.consent import ConsentStore
        from gui.consent_dialog import ConsentList

        self.consents = ConsentList(ConsentStore(), parent=self)
        layout.addWidget(self.consents)
        layout.addWidget(buttons)

    def settings(self) -> GuiSettings:
        from dataclasses import replace

        return replace(
            self._base,
            steps=self.steps.value(),
            restarts=self.restarts.value(),
            candidates=self.candidates.value(),
            seed=self.seed.value(),
            backend=self.backend.currentText().strip() or "auto",
            aws_region=self.aws_region.text().strip(),
            aws_profile=self.aws_profile.text().strip(),
        )


class ShortcutsDialog(QDialog):
    def __init__(self, shortcuts: list[tuple[str, str]], parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        table = QTableWidget(len(shortcuts), 2, self)
        table.setHorizontalHeaderLabels(["Keys", "Action"])
        table.verticalHeader().setVisible(False)
        table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        for row, (keys, what) in enumerate(shortcuts):
            table.setItem(row, 0, QTableWidgetItem(keys))
            table.setItem(row, 1, QTableWidgetItem(what))
        table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        table.horizontalHeader().setStretchLastSection(True)
        self.table = table
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(table)
        layout.addWidget(buttons)
        self.resize(520, 560)


def about_html(app_version: str) -> str:
    """About text from the shipped bundle's manifest (no TensorFlow needed)."""
    from core import bundle as bundles

    parts = [f"<h3>FaceMend {html.escape(app_version)}</h3>",
             ("<p>Repairs damaged face photos by semantic inpainting with a DCGAN "
              "(Yeh et al. 2017, <i>Semantic Image Inpainting with Deep Generative Models</i>).</p>")]
    try:
        info = bundles.read_manifest(bundles.find_bundle())
    except Exception as exc:  # noqa: BLE001 - About must open even with a broken bundle
        parts.append(f"<p><b>Model:</b> unavailable ({html.escape(str(exc))})</p>")
        return "".join(parts)
    parts.append(f"<p><b>Model:</b> {html.escape(info.name)} {html.escape(info.version)} "
                 f"({info.image_size}×{info.image_size} px faces)</p>")
    rows = []
    for role, entry in info.manifest.get("files", {}).items():
        src = entry.get("source") or {}
        provenance = ", ".join(
            f"{k}: {v}" for k, v in (("package", src.get("package")), ("version", src.get("package_version")),
                                     ("file", src.get("file"))) if v)
        bits = [f"<b>{html.escape(role)}</b>"]
        if entry.get("licence"):
            bits.append(f"licence: {html.escape(str(entry['licence']))}")
        if provenance:
            bits.append(f"from {html.escape(provenance)}")
        if entry.get("training_data"):
            bits.append(f"trained on: {html.escape(str(entry['training_data']))}")
        rows.append("<li>" + "; ".join(bits) + "</li>")
    if rows:
        parts.append("<p><b>Licence and provenance</b></p><ul>" + "".join(rows) + "</ul>")
    parts.append(f"<p>Bundle folder: {html.escape(str(info.path))} (see its MODEL_CARD.md).</p>")
    parts.append("<p>Photos never leave this computer unless you choose a cloud backend.</p>")
    return "".join(parts)
