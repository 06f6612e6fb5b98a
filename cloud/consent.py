"""The user's consent to each cloud feature, asked once and revocable.

Faces are personal data: nothing leaves the machine for an AWS feature unless
the user agreed to exactly what is sent, where. A consent is remembered per
feature *and region*: sending the same photo to another region is a different
question, so a changed region asks again.

Storage is a small JSON file in the user's config folder (FACEMEND_CONSENT_FILE
overrides the path; tests point it at a temporary file). It holds only the
feature, region and time of the answer — no photos, names or secrets.
Consent given "for this run only" (the CLI's --yes-send-to-aws) lives in
memory and is never written.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from core.errors import BackendUnavailableError

FEATURES = ("rekognition", "polly")
FEATURE_TITLES = {
    "rekognition": "Face analysis with Amazon Rekognition",
    "polly": "Narration with Amazon Polly",
}
CONSENT_FLAG = "--yes-send-to-aws"
_VERSION = 1


class ConsentRequiredError(BackendUnavailableError):
    """The feature needs consent the user has not given (nothing was sent)."""


@dataclass(frozen=True)
class ConsentRecord:
    feature: str
    region: str
    granted_at: str  # ISO 8601, UTC


def default_consent_path() -> Path:
    override = os.environ.get("FACEMEND_CONSENT_FILE")
    if override:
        return Path(override)
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming") / "FaceMend"
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support" / "FaceMend"
    else:
        base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "facemend"
    return base / "consent.json"


def what_is_sent(feature: str, region: str, subject: str | None = None) -> str:
    """Plain words for exactly what leaves the machine, shown before asking."""
    if feature == "rekognition":
        photo = f"the photo {subject}" if subject else "the open photo"
        return (f"{photo.capitalize()}, re-encoded as a JPEG (at most 5 MB, downscaled if larger), is sent to "
                f"Amazon Rekognition in the AWS region {region}, under your AWS account, to find faces and "
                "estimate their attributes (age range, emotions, glasses, pose, image quality). Only that "
                "image is sent, no file name. AWS may use content sent to its AI services to improve them "
                "unless your organisation has opted out (AWS AI services opt-out policy).")
    if feature == "polly":
        return ("The narration text (number of faces, their estimated age ranges and expressions, and what "
                f"was repaired) is sent to Amazon Polly in the AWS region {region}, under your AWS account, to "
                "turn it into speech. No image is sent. AWS may use content sent to its AI services to improve "
                "them unless your organisation has opted out (AWS AI services opt-out policy).")
    raise ValueError(f"unknown cloud feature {feature!r}; known: {', '.join(FEATURES)}")


class ConsentStore:
    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else default_consent_path()
        self._once: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    # --- reading ---------------------------------------------------------

    def _read(self) -> dict[str, dict]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            # An unreadable record means no consent: asking again is the safe side.
            return {}
        features = data.get("features") if isinstance(data, dict) else None
        return features if isinstance(features, dict) else {}

    def record(self, feature: str) -> ConsentRecord | None:
        entry = self._read().get(feature)
        if not isinstance(entry, dict) or not entry.get("region"):
            return None
        return ConsentRecord(feature, str(entry["region"]), str(entry.get("granted_at", "")))

    def records(self) -> list[ConsentRecord]:
        return [r for r in (self.record(f) for f in FEATURES) if r is not None]

    def granted(self, feature: str, region: str) -> bool:
        _check_feature(feature)
        if (feature, region) in self._once:
            return True
        rec = self.record(feature)
        return rec is not None and rec.region == region

    def require(self, feature: str, region: str) -> None:
        """Raise ConsentRequiredError unless `feature` may send to `region`."""
        if not self.granted(feature, region):
            raise ConsentRequiredError(
                f"{FEATURE_TITLES[feature]} needs your consent before anything is sent to AWS region "
                f"{region}; nothing was sent (answer the prompt in a terminal, pass {CONSENT_FLAG} "
                "in scripts, or use the offline engine)")

    # --- writing ---------------------------------------------------------

    def grant(self, feature: str, region: str) -> ConsentRecord:
        """Remember the consent (replacing one for another region)."""
        _check_feature(feature)
        rec = ConsentRecord(feature, region, datetime.now(UTC).isoformat(timespec="seconds"))
        with self._lock:
            features = self._read()
            features[feature] = {"region": rec.region, "granted_at": rec.granted_at}
            self._write(features)
        return rec

    def allow_once(self, feature: str, region: str) -> None:
        """Consent for this process only; never written to disk."""
        _check_feature(feature)
        self._once.add((feature, region))

    def revoke(self, feature: str | None = None) -> None:
        """Forget the consent for `feature` (or every feature)."""
        if feature is not None:
            _check_feature(feature)
        with self._lock:
            self._once = {k for k in self._once if feature is not None and k[0] != feature}
            features = self._read()
            for f in list(features):
                if feature is None or f == feature:
                    del features[f]
            if self.path.exists():
                self._write(features)

    def _write(self, features: dict) -> None:
        from core.imageio import atomic_write

        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = json.dumps({"version": _VERSION, "features": features}, indent=2).encode("utf-8")
        atomic_write(self.path, lambda fh: fh.write(payload), overwrite=True)


def _check_feature(feature: str) -> None:
    if feature not in FEATURES:
        raise ValueError(f"unknown cloud feature {feature!r}; known: {', '.join(FEATURES)}")
