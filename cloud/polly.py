"""Narration with Amazon Polly: voices (Chinese ones included) and MP3 speech.

SynthesizeSpeech takes at most 3,000 billed characters per request, so longer
text is split at sentence ends (Latin and CJK punctuation), then at spaces,
and the MP3 parts are joined: MP3 is a stream of self-contained frames, and
Polly's MP3 output carries no header that would have to be merged.

Only the narration text is sent (never an image), and only with the user's
consent for this feature and region. Listing voices sends nothing personal,
so it needs none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cloud.aws import AwsClients
from cloud.consent import ConsentStore
from cloud.errors import aws_errors
from core.errors import UsageError

FEATURE = "polly"
MAX_BILLED_CHARS = 3000
DEFAULT_VOICE = "Joanna"
AUDIO_FORMAT = "mp3"
# Sentence ends: Latin punctuation followed by space, or CJK full stops (no space after them).
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|(?<=[。！？；])")


@dataclass(frozen=True)
class Voice:
    id: str
    name: str
    language_code: str  # e.g. en-US, cmn-CN (Mandarin), yue-CN (Cantonese)
    language_name: str
    gender: str
    engines: tuple[str, ...]  # standard, neural, long-form, generative

    @property
    def narration_language(self) -> str:
        """The language core.narration should write for this voice."""
        return "zh" if self.language_code.split("-")[0] in ("cmn", "yue", "zh") else "en"


def split_text(text: str, limit: int = MAX_BILLED_CHARS) -> list[str]:
    """Pieces of at most `limit` characters, cut at sentence ends where possible."""
    text = " ".join(text.split())
    if not text:
        return []
    pieces: list[str] = []
    current = ""
    for sentence in (s for s in _SENTENCE_END.split(text) if s):
        while len(sentence) > limit:  # one sentence over the limit: cut at the last space, else hard
            cut = sentence.rfind(" ", 0, limit + 1)
            cut = cut if cut > 0 else limit
            if current:
                pieces.append(current)
                current = ""
            pieces.append(sentence[:cut].rstrip())
            sentence = sentence[cut:].lstrip()
        joiner = "" if not current or _is_cjk_end(current) else " "
        if len(current) + len(joiner) + len(sentence) <= limit:
            current = current + joiner + sentence if current else sentence
        else:
            pieces.append(current)
            current = sentence
    if current:
        pieces.append(current)
    return pieces


def _is_cjk_end(s: str) -> bool:
    return s[-1] in "。！？；"


class PollySpeech:
    """A speech engine (like cloud.speech_local.LocalSpeech) backed by Amazon Polly."""

    name = "polly"
    audio_format = AUDIO_FORMAT

    def __init__(self, clients: AwsClients, consent: ConsentStore, *, voice: str = DEFAULT_VOICE,
                 engine: str | None = None):
        self.clients, self.consent = clients, consent
        self.voice, self.engine = voice, engine
        self._voices: list[Voice] | None = None

    def voices(self, language_code: str | None = None) -> list[Voice]:
        """Every Polly voice (or those of one language), sorted by language then name."""
        region = self.clients.require_region(FEATURE)
        if self._voices is None:
            found: list[Voice] = []
            with aws_errors(FEATURE, region):
                client = self.clients.client(FEATURE)
                kwargs: dict = {"IncludeAdditionalLanguageCodes": True}
                while True:
                    resp = client.describe_voices(**kwargs)
                    found.extend(Voice(
                        id=v["Id"], name=v.get("Name", v["Id"]), language_code=v["LanguageCode"],
                        language_name=v.get("LanguageName", v["LanguageCode"]), gender=v.get("Gender", ""),
                        engines=tuple(v.get("SupportedEngines", ("standard",))),
                    ) for v in resp.get("Voices", []))
                    token = resp.get("NextToken")
                    if not token:
                        break
                    kwargs["NextToken"] = token
            self._voices = sorted(found, key=lambda v: (v.language_code, v.name))
        return [v for v in self._voices if language_code is None or v.language_code == language_code]

    def find_voice(self, voice_id: str) -> Voice:
        for v in self.voices():
            if v.id.lower() == voice_id.lower():
                return v
        raise UsageError(f"Polly has no voice {voice_id!r}; list them with `facemend narrate --list-voices`")

    def _engine_for(self, voice: Voice) -> str:
        if self.engine:
            if self.engine not in voice.engines:
                raise UsageError(f"Polly voice {voice.id} does not support the {self.engine} engine "
                                 f"(it supports {', '.join(voice.engines)})")
            return self.engine
        # Neural sounds better where offered; some voices (Hiujin, yue-CN) are neural only.
        for preferred in ("neural", "standard"):
            if preferred in voice.engines:
                return preferred
        return voice.engines[0]

    def synthesize(self, text: str, voice: str | None = None) -> bytes:
        """MP3 bytes of `text` spoken by `voice` (default: this engine's voice)."""
        region = self.clients.require_region(FEATURE)
        self.consent.require(FEATURE, region)  # before any request
        pieces = split_text(text)
        if not pieces:
            raise UsageError("nothing to narrate: the text is empty")
        v = self.find_voice(voice or self.voice)
        engine = self._engine_for(v)
        audio = bytearray()
        with aws_errors(FEATURE, region):
            client = self.clients.client(FEATURE)
            for piece in pieces:
                resp = client.synthesize_speech(Text=piece, TextType="text", OutputFormat=AUDIO_FORMAT,
                                                VoiceId=v.id, Engine=engine)
                with resp["AudioStream"] as stream:
                    audio += stream.read()
        return bytes(audio)
