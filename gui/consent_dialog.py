"""Asking before a cloud feature sends anything, and revoking that answer.

`ask_consent` is the one gate the app calls before an AWS request with user
data: it returns True at once when consent for that feature and region is
recorded, otherwise shows `ConsentDialog` stating exactly what leaves the
machine and where. Refusing sends nothing. `ConsentList` is the settings-page
widget that lists recorded consents and revokes them.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from cloud.consent import FEATURE_TITLES, ConsentStore, what_is_sent


class ConsentDialog(QDialog):
    """Send / Don't send, with a "remember" box (checked: remembered for this
    feature and region; unchecked: for this session only)."""

    def __init__(self, feature: str, region: str, subject: str | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.feature, self.region = feature, region
        self.setWindowTitle(f"{FEATURE_TITLES[feature]} — send to AWS?")
        self.setModal(True)
        layout = QVBoxLayout(self)
        self.message = QLabel(what_is_sent(feature, region, subject))
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.message)
        hint = QLabel("Nothing is sent if you choose Don't send; the offline engine stays available. "
                      "You can revoke this in Settings.")
        hint.setWordWrap(True)
        layout.addWidget(hint)
        self.remember = QCheckBox(f"Remember my answer for {FEATURE_TITLES[feature].lower()} in {region}")
        self.remember.setChecked(True)
        layout.addWidget(self.remember)
        self.buttons = QDialogButtonBox()
        self.send_button = self.buttons.addButton("Send", QDialogButtonBox.ButtonRole.AcceptRole)
        self.refuse_button = self.buttons.addButton("Don't send", QDialogButtonBox.ButtonRole.RejectRole)
        self.refuse_button.setDefault(True)  # Enter must not send a face by accident
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self.resize(480, self.sizeHint().height())


def ask_consent(store: ConsentStore, feature: str, region: str, subject: str | None = None,
                parent: QWidget | None = None) -> bool:
    """True if `feature` may send to `region` now (asking if needed)."""
    if store.granted(feature, region):
        return True
    dialog = ConsentDialog(feature, region, subject, parent)
    if dialog.exec() != QDialog.DialogCode.Accepted:
        return False
    if dialog.remember.isChecked():
        store.grant(feature, region)
    else:
        store.allow_once(feature, region)
    return True


class ConsentList(QWidget):
    """Recorded consents with a Revoke button, for the settings dialog."""

    revoked = Signal(str)  # feature

    def __init__(self, store: ConsentStore, parent: QWidget | None = None):
        super().__init__(parent)
        self.store = store
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("Cloud features allowed to send data to AWS:"))
        self.list = QListWidget()
        layout.addWidget(self.list)
        row = QHBoxLayout()
        self.revoke_button = QPushButton("Revoke")
        self.revoke_all_button = QPushButton("Revoke all")
        row.addStretch(1)
        row.addWidget(self.revoke_button)
        row.addWidget(self.revoke_all_button)
        layout.addLayout(row)
        self.revoke_button.clicked.connect(self._revoke_selected)
        self.revoke_all_button.clicked.connect(self._revoke_all)
        self.list.currentRowChanged.connect(lambda _row: self._update_buttons())
        self.refresh()

    def refresh(self) -> None:
        self.list.clear()
        for rec in self.store.records():
            item = QListWidgetItem(f"{FEATURE_TITLES[rec.feature]} — region {rec.region} (since {rec.granted_at})")
            item.setData(Qt.ItemDataRole.UserRole, rec.feature)
            self.list.addItem(item)
        if not self.list.count():
            self.list.addItem(QListWidgetItem("None: every cloud feature will ask first."))
        self._update_buttons()

    def _update_buttons(self) -> None:
        item = self.list.currentItem()
        self.revoke_button.setEnabled(item is not None and item.data(Qt.ItemDataRole.UserRole) is not None)
        self.revoke_all_button.setEnabled(bool(self.store.records()))

    def _revoke_selected(self) -> None:
        item = self.list.currentItem()
        feature = item.data(Qt.ItemDataRole.UserRole) if item else None
        if feature:
            self.store.revoke(feature)
            self.revoked.emit(feature)
            self.refresh()

    def _revoke_all(self) -> None:
        for rec in self.store.records():
            self.revoked.emit(rec.feature)
        self.store.revoke()
        self.refresh()
