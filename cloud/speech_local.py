"""Offline narration with the speech engine the OS offers, written as WAV.

Linux: espeak-ng (or espeak); macOS: `say`; Windows: System.Speech through
PowerShell. Nothing leaves the machine.

Why here: this is the fallback of a cloud feature and has the same interface
as cloud.polly.PollySpeech (`name`, `audio_format`, `synthesize(text, voice)
-> bytes`), so callers choose between the two side by side. It cannot live in
core/ (it runs subprocesses) nor gui/ (the CLI narrates too).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from core.errors import BackendUnavailableError, UsageError

AUDIO_FORMAT = "wav"
TIMEOUT_S = 60.0
# espeak-ng voice names for the narration languages of core.narration.
ESPEAK_VOICES = {"en": "en-us", "zh": "cmn"}


def _find_engine() -> tuple[str, str] | None:
    if sys.platform == "darwin" and shutil.which("say"):
        return ("say", shutil.which("say"))
    if sys.platform == "win32":
        ps = shutil.which("powershell") or shutil.which("pwsh")
        return ("sapi", ps) if ps else None
    for name in ("espeak-ng", "espeak"):
        path = shutil.which(name)
        if path:
            return (name, path)
    return None


class LocalSpeech:
    name = "local"
    audio_format = AUDIO_FORMAT

    def __init__(self, *, voice: str | None = None, language: str = "en"):
        self.voice, self.language = voice, language
        self._engine = _find_engine()

    @property
    def available(self) -> bool:
        return self._engine is not None

    @property
    def engine_name(self) -> str | None:
        return self._engine[0] if self._engine else None

    def require(self) -> tuple[str, str]:
        if self._engine is None:
            hint = "install espeak-ng (apt install espeak-ng)" if sys.platform.startswith("linux") else \
                "the OS speech engine was not found"
            raise BackendUnavailableError(f"no offline speech engine: {hint}")
        return self._engine

    def synthesize(self, text: str, voice: str | None = None) -> bytes:
        """WAV bytes of `text`; `voice` is the engine's own voice name."""
        if not text.strip():
            raise UsageError("nothing to narrate: the text is empty")
        kind, exe = self.require()
        voice = voice or self.voice
        with tempfile.TemporaryDirectory(prefix="facemend-speech-") as tmp:
            out = Path(tmp) / "speech.wav"
            text_file = Path(tmp) / "text.txt"
            # Text goes through a file, never the command line: no quoting issues, no length limit.
            text_file.write_text(text, encoding="utf-8")
            if kind in ("espeak-ng", "espeak"):
                cmd = [exe, "-w", str(out), "-v", voice or ESPEAK_VOICES.get(self.language, "en"), "-f", str(text_file)]
            elif kind == "say":
                cmd = [exe, "-o", str(out), "--data-format=LEI16@22050", "-f", str(text_file)]
                if voice:
                    cmd += ["-v", voice]
            else:
                script = (
                    "Add-Type -AssemblyName System.Speech; "
                    "$s = New-Object System.Speech.Synthesis.SpeechSynthesizer; "
                    + ("$s.SelectVoice($env:FACEMEND_VOICE); " if voice else "")
                    + "$s.SetOutputToWaveFile($env:FACEMEND_OUT); "
                    "$s.Speak([IO.File]::ReadAllText($env:FACEMEND_TEXT, [Text.Encoding]::UTF8)); $s.Dispose()"
                )
                cmd = [exe, "-NoProfile", "-NonInteractive", "-Command", script]
            env = dict(os.environ, FACEMEND_OUT=str(out), FACEMEND_TEXT=str(text_file), FACEMEND_VOICE=voice or "")
            try:
                proc = subprocess.run(cmd, capture_output=True, timeout=TIMEOUT_S, env=env, check=False)
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise BackendUnavailableError(f"offline speech ({kind}) failed: {exc}") from exc
            if proc.returncode != 0 or not out.exists() or out.stat().st_size <= 44:
                detail = " ".join(proc.stderr.decode(errors="replace").split())[:200]
                raise BackendUnavailableError(f"offline speech ({kind}) failed: {detail or f'exit {proc.returncode}'}")
            return out.read_bytes()
