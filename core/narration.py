"""What the app says about a photo: the analysis it describes and the words.

`FaceAnalysis` is the result of any face engine (the offline detector or
Amazon Rekognition) in photo pixels; `narration_text` turns it, and what a
repair did, into a few short sentences for speech and for the screen (the
text is always shown too, for accessibility). Pure: no audio, no network.

Faces are described left to right, which is how a listener looks at a photo;
the list order elsewhere (best confidence first) is kept in `analysis.faces`.
Predicted gender is never spoken: it is a guess from appearance and not ours
to announce.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.faces import Face

ENGINE_TITLES = {
    "rekognition": "Amazon Rekognition",
    "mtcnn": "the offline face detector",
    "local": "the offline face detector",
}
LANGUAGES = ("en", "zh")
MAX_FACES_DESCRIBED = 8
EMOTION_MIN_CONFIDENCE = 50.0  # below this no single emotion stands out enough to name


@dataclass(frozen=True)
class Label:
    """Something seen in the photo (Rekognition DetectLabels), boxes in photo pixels."""

    name: str
    confidence: float  # percent, as the engine gives it
    parents: tuple[str, ...] = ()
    boxes: tuple[tuple[float, float, float, float], ...] = ()

    def as_json(self) -> dict:
        return {
            "name": self.name,
            "confidence": round(float(self.confidence), 2),
            "parents": list(self.parents),
            "boxes": [[round(float(v), 2) for v in b] for b in self.boxes],
        }


@dataclass(frozen=True)
class FaceAnalysis:
    engine: str  # "rekognition" or the offline detector's name ("mtcnn")
    faces: tuple[Face, ...]  # best confidence first, photo pixels
    image_size: tuple[int, int]  # width, height of the photo the coordinates refer to
    labels: tuple[Label, ...] = ()
    region: str | None = None  # AWS region that ran it; None offline

    def as_json(self) -> dict:
        d = {
            "engine": self.engine,
            "image_size": list(self.image_size),
            "faces": [f.as_json() for f in self.faces],
        }
        if self.region:
            d["region"] = self.region
        return d


@dataclass(frozen=True)
class RepairSummary:
    """What a repair did, as far as narration cares."""

    faces_repaired: int
    backend: str  # "cpu", "gpu", an endpoint name
    notes: tuple[str, ...] = field(default=(), compare=False)


def engine_title(engine: str) -> str:
    return ENGINE_TITLES.get(engine, engine)


def main_emotion(face: Face) -> str | None:
    """The engine's most confident emotion, lower-case, if it stands out."""
    emotions = face.attributes.get("emotions") or []
    if not emotions:
        return None
    best = max(emotions, key=lambda e: e.get("confidence", 0.0))
    if best.get("confidence", 0.0) < EMOTION_MIN_CONFIDENCE or best.get("type", "").lower() == "unknown":
        return None
    return str(best["type"]).lower()


_EMOTION_WORDS = {
    "en": {"happy": "happy", "sad": "sad", "angry": "angry", "confused": "confused", "disgusted": "disgusted",
           "surprised": "surprised", "calm": "calm", "fear": "afraid"},
    "zh": {"happy": "开心", "sad": "难过", "angry": "生气", "confused": "困惑", "disgusted": "厌恶",
           "surprised": "惊讶", "calm": "平静", "fear": "害怕"},
}
_NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth")
_ZH_NUMBERS = "零一两三四五六七八九十"
_ZH_ORDINALS = "一二三四五六七八"


def _count_en(n: int, noun: str) -> str:
    word = _NUMBER_WORDS[n] if n < len(_NUMBER_WORDS) else str(n)
    return f"{word} {noun}{'' if n == 1 else 's'}"


def _count_zh(n: int) -> str:
    return _ZH_NUMBERS[n] if n < len(_ZH_NUMBERS) else str(n)


def _flag(face: Face, key: str) -> bool:
    v = face.attributes.get(key)
    return bool(isinstance(v, dict) and v.get("value"))


def _describe_face_en(face: Face, prefix: str) -> str:
    parts = []
    age = face.attributes.get("age_range")
    if age:
        parts.append(f"looks {age['low']} to {age['high']} years old")
    emotion = main_emotion(face)
    if emotion:
        parts.append(f"seems {_EMOTION_WORDS['en'].get(emotion, emotion)}")
    extras = []
    if _flag(face, "smile"):
        extras.append("is smiling")
    if _flag(face, "sunglasses"):
        extras.append("wears sunglasses")
    elif _flag(face, "eyeglasses"):
        extras.append("wears glasses")
    parts.extend(extras)
    if not parts:
        return ""
    body = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"{prefix} {body}."


def _describe_face_zh(face: Face, prefix: str) -> str:
    parts = []
    age = face.attributes.get("age_range")
    if age:
        parts.append(f"看起来{age['low']}到{age['high']}岁")
    emotion = main_emotion(face)
    if emotion:
        parts.append(f"表情{_EMOTION_WORDS['zh'].get(emotion, emotion)}")
    if _flag(face, "smile"):
        parts.append("在微笑")
    if _flag(face, "sunglasses"):
        parts.append("戴着墨镜")
    elif _flag(face, "eyeglasses"):
        parts.append("戴着眼镜")
    return f"{prefix}{'，'.join(parts)}。" if parts else ""


def narration_text(analysis: FaceAnalysis, repair: RepairSummary | None = None, *, language: str = "en") -> str:
    """A short spoken summary: how many faces, each one's age range and main
    emotion when the engine gives them, and what was repaired by what."""
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {LANGUAGES}, got {language!r}")
    faces = sorted(analysis.faces, key=lambda f: f.box[0])  # left to right
    n = len(faces)
    engine = engine_title(analysis.engine)
    has_attributes = any(f.attributes for f in faces)
    out: list[str] = []
    if language == "en":
        if n == 0:
            out.append(f"{engine[0].upper() + engine[1:]} found no face in this photo.")
        else:
            out.append(f"{engine[0].upper() + engine[1:]} found {_count_en(n, 'face')}.")
            if has_attributes:
                for i, face in enumerate(faces[:MAX_FACES_DESCRIBED]):
                    if n == 1:
                        prefix = "The person"
                    elif i == 0:
                        prefix = "From the left, the first person"
                    else:
                        prefix = f"The {_ORDINALS[i]}"
                    sentence = _describe_face_en(face, prefix)
                    if sentence:
                        out.append(sentence)
                if n > MAX_FACES_DESCRIBED:
                    out.append(f"{n - MAX_FACES_DESCRIBED} more are not described.")
            else:
                out.append("The offline detector gives no age or expression.")
        if repair is not None:
            if repair.faces_repaired:
                out.append(f"{_count_en(repair.faces_repaired, 'face').capitalize()} "
                           f"{'was' if repair.faces_repaired == 1 else 'were'} repaired {_backend_en(repair.backend)}.")
            else:
                out.append("Nothing was repaired.")
    else:
        if n == 0:
            out.append(f"{_engine_zh(analysis.engine)}没有在这张照片里找到人脸。")
        else:
            out.append(f"{_engine_zh(analysis.engine)}找到了{_count_zh(n)}张人脸。")
            if has_attributes:
                for i, face in enumerate(faces[:MAX_FACES_DESCRIBED]):
                    prefix = "这个人" if n == 1 else f"从左数第{_ZH_ORDINALS[i]}个人"
                    sentence = _describe_face_zh(face, prefix)
                    if sentence:
                        out.append(sentence)
                if n > MAX_FACES_DESCRIBED:
                    out.append(f"另外{n - MAX_FACES_DESCRIBED}张人脸没有描述。")
            else:
                out.append("离线检测器不提供年龄和表情。")
        if repair is not None:
            if repair.faces_repaired:
                out.append(f"{_backend_zh(repair.backend)}修复了{_count_zh(repair.faces_repaired)}张人脸。")
            else:
                out.append("没有修复任何地方。")
    return " ".join(out) if language == "en" else "".join(out)


def _backend_en(backend: str) -> str:
    if backend == "cpu":
        return "on this computer's processor"
    if backend == "gpu" or backend.startswith("gpu"):
        return "on this computer's graphics card"
    return f"by the remote backend {backend}"


def _engine_zh(engine: str) -> str:
    return "Amazon Rekognition" if engine == "rekognition" else "离线人脸检测器"


def _backend_zh(backend: str) -> str:
    if backend == "cpu":
        return "本机处理器"
    if backend == "gpu" or backend.startswith("gpu"):
        return "本机显卡"
    return f"远程后端{backend}"
