"""User settings of the desktop app, persisted with QSettings.

One dataclass holds every knob the app remembers, so the settings dialog, the
main window and the tests read one name per idea. Storage is always an INI
file in Qt's per-user location (tests redirect it with QSettings.setPath).
Window geometry/state and recent files live in the same file under their own
keys. No secrets ever go here (API keys stay in FACEMEND_API_KEY).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from PySide6.QtCore import QSettings

from core.api import MAX_CANDIDATES, CompletionSettings
from core.errors import FaceMendError

ORGANIZATION = "FaceMend"
APPLICATION = "facemend"
MAX_RECENT_FILES = 10
_DEFAULTS = CompletionSettings()


@dataclass(frozen=True)
class GuiSettings:
    steps: int = _DEFAULTS.steps
    restarts: int = _DEFAULTS.restarts
    candidates: int = 1
    seed: int = _DEFAULTS.seed
    backend: str = "auto"  # passed as-is to facemend.backends.choose_backend
    brush_size: int = 24  # diameter in photo pixels
    overlay_color: str = "#ff3060"
    overlay_opacity: float = 0.5
    # AWS for face analysis/narration; empty = boto3's own resolution
    # (AWS_REGION/AWS_PROFILE, ~/.aws/config). Never credentials: the standard
    # chain provides those.
    aws_region: str = ""
    aws_profile: str = ""

    def aws_settings(self):
        from cloud.aws import AwsSettings

        return AwsSettings(region=self.aws_region or None, profile=self.aws_profile or None)

    def completion_settings(self) -> CompletionSettings:
        """The core settings; restarts grow to cover the candidates asked for."""
        return CompletionSettings(
            steps=self.steps,
            restarts=max(self.restarts, self.candidates),
            candidates=min(self.candidates, MAX_CANDIDATES),
            seed=self.seed,
        ).validated()


def open_settings() -> QSettings:
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANIZATION, APPLICATION)


def load_settings(qs: QSettings | None = None) -> GuiSettings:
    qs = qs or open_settings()
    values = {}
    for f in fields(GuiSettings):
        raw = qs.value(f"settings/{f.name}")
        if raw is None:
            continue
        try:
            values[f.name] = type(getattr(GuiSettings, f.name))(raw)
        except (TypeError, ValueError):
            continue  # a hand-edited or older INI value: keep the default
    s = replace(GuiSettings(), **values)
    try:
        s.completion_settings()
    except FaceMendError:  # values out of range together (e.g. candidates > restarts)
        s = replace(s, steps=_DEFAULTS.steps, restarts=_DEFAULTS.restarts, candidates=1, seed=0)
    return s


def save_settings(settings: GuiSettings, qs: QSettings | None = None) -> None:
    qs = qs or open_settings()
    for f in fields(GuiSettings):
        qs.setValue(f"settings/{f.name}", getattr(settings, f.name))
    qs.sync()


def recent_files(qs: QSettings | None = None) -> list[str]:
    qs = qs or open_settings()
    raw = qs.value("recent_files") or []
    if isinstance(raw, str):  # QSettings gives a bare string for a one-item list
        raw = [raw]
    return [str(p) for p in raw][:MAX_RECENT_FILES]


def add_recent_file(path: str, qs: QSettings | None = None) -> list[str]:
    qs = qs or open_settings()
    files = [path] + [p for p in recent_files(qs) if p != path]
    files = files[:MAX_RECENT_FILES]
    qs.setValue("recent_files", files)
    qs.sync()
    return files
