"""Shared test setup. Area-specific fixtures live in their own test modules."""

import os

# Before anything imports Qt: tests never need a display.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Tests must never read or write a developer's real settings or caches.
os.environ.setdefault("FACEMEND_MODELS_DIR", "")

import pytest


@pytest.fixture(autouse=True)
def _private_consent_file(tmp_path, monkeypatch):
    """Cloud consent is per user; a test must never read or grant a real one."""
    monkeypatch.setenv("FACEMEND_CONSENT_FILE", str(tmp_path / "consent.json"))


@pytest.fixture
def offline_aws(monkeypatch, tmp_path):
    """Dummy credentials and none of the developer's AWS config, profile,
    region or endpoint: nothing can reach real AWS, and a test sets exactly
    the region/endpoint it means."""
    for var in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_REKOGNITION", "AWS_ENDPOINT_URL_POLLY",
                "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(scope="session")
def face_model():
    """The shipped default bundle, loaded once per test session."""
    from core.model import load_model

    return load_model()


# --- Qt fixtures shared by the GUI test modules -------------------------------


@pytest.fixture
def isolated_settings(tmp_path):
    """Its own QSettings INI file per test: a developer's settings are never
    read or written (labelme's e2e tests do the same)."""
    from PySide6.QtCore import QSettings

    from gui.settings import open_settings

    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "settings"))
    yield
    open_settings().sync()


@pytest.fixture
def messages(monkeypatch):
    """Message boxes recorded instead of blocking; questions answered from
    `answers` (Cancel when it runs out)."""
    from PySide6.QtWidgets import QMessageBox

    log = {"warning": [], "question": [], "answers": []}

    def warning(parent, title, text, *a, **k):
        log["warning"].append((title, text))
        return QMessageBox.StandardButton.Ok

    def question(parent, title, text, *a, **k):
        log["question"].append((title, text))
        return log["answers"].pop(0) if log["answers"] else QMessageBox.StandardButton.Cancel

    def exec_(box):
        log["warning"].append((box.windowTitle(), box.text()))
        return QMessageBox.StandardButton.Ok

    monkeypatch.setattr(QMessageBox, "warning", staticmethod(warning))
    monkeypatch.setattr(QMessageBox, "question", staticmethod(question))
    monkeypatch.setattr(QMessageBox, "exec", exec_)
    return log
