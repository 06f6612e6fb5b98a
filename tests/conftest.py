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


@pytest.fixture(scope="session")
def face_model():
    """The shipped default bundle, loaded once per test session."""
    from core.model import load_model

    return load_model()
