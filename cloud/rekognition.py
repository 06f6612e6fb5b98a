"""Face analysis with Amazon Rekognition (DetectFaces, optionally DetectLabels).

The photo travels as image bytes in the request (never through S3): the
upright pixels re-encoded as a JPEG within Rekognition's limits (at most 5 MB,
at least 80 px a side), downscaled to `max_side` because face attributes do
not need more and a smaller upload is faster. The JPEG carries no EXIF, so
the service sees exactly the upright photo the user sees.

Rekognition gives boxes and landmarks as ratios of the image it received.
The sent image is the photo scaled uniformly, so a ratio times the photo's own
width or height is the position in photo pixels, whatever the downscale.

Landmarks: Rekognition's `eyeLeft`/`mouthLeft` are on the image's left (the
example response in the AWS Developer Guide, "Detecting faces in an image",
has eyeLeft.X < eyeRight.X and leftEyeBrowLeft left of leftEyeBrowRight), the
same convention as core.faces.Face and the offline detector, so they map
one to one onto LANDMARK_NAMES.

Nothing is sent without the user's consent for this feature and region
(cloud/consent.py); that check comes before any image is encoded.
"""

from __future__ import annotations

import io

import numpy as np

from cloud.aws import AwsClients
from cloud.consent import ConsentStore
from cloud.errors import aws_errors
from core.errors import BadInputError
from core.faces import Face
from core.narration import FaceAnalysis, Label

FEATURE = "rekognition"
MAX_BYTES = 5 * 1024 * 1024
MIN_SIDE = 80
DEFAULT_MAX_SIDE = 1920
# Rekognition's names for the five points every detector in the app shares,
# in core.bundle.LANDMARK_NAMES order (left_eye, right_eye, nose, mouth_left, mouth_right).
REKOGNITION_LANDMARKS = ("eyeLeft", "eyeRight", "nose", "mouthLeft", "mouthRight")
_FLAGS = {"Smile": "smile", "Eyeglasses": "eyeglasses", "Sunglasses": "sunglasses", "EyesOpen": "eyes_open",
          "MouthOpen": "mouth_open", "Beard": "beard", "Mustache": "mustache", "FaceOccluded": "face_occluded"}


class PreparedImage:
    """The JPEG sent, and its size (the photo's size times `scale`)."""

    def __init__(self, data: bytes, width: int, height: int, scale: float):
        self.data, self.width, self.height, self.scale = data, width, height, scale


def prepare_image(rgb: np.ndarray, max_side: int = DEFAULT_MAX_SIDE, max_bytes: int = MAX_BYTES) -> PreparedImage:
    """Encode upright RGB pixels as a JPEG Rekognition accepts."""
    from PIL import Image

    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise BadInputError("face analysis needs an HxWx3 8-bit RGB image")
    h, w = rgb.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    # A tiny photo is scaled up: the service refuses images under 80 px a side.
    scale = max(scale, MIN_SIDE / min(h, w))
    im = Image.fromarray(rgb)
    quality = 90
    while True:
        size = (max(MIN_SIDE, round(w * scale)), max(MIN_SIDE, round(h * scale)))
        sized = im if size == (w, h) else im.resize(size, Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        sized.save(buf, "JPEG", quality=quality)
        data = buf.getvalue()
        if len(data) <= max_bytes:
            return PreparedImage(data, size[0], size[1], size[0] / w)
        if quality > 70:
            quality -= 10
        elif min(size) * 0.75 >= MIN_SIDE:
            scale *= 0.75
        else:
            raise BadInputError(f"image cannot be encoded under {max_bytes} bytes for Rekognition")


def _box(bb: dict, width: int, height: int) -> tuple[float, float, float, float]:
    # Boxes may stick out of the image (the API allows ratios < 0 or > 1): clip to the photo.
    x0 = min(max(bb.get("Left", 0.0) * width, 0.0), width)
    y0 = min(max(bb.get("Top", 0.0) * height, 0.0), height)
    x1 = min(max((bb.get("Left", 0.0) + bb.get("Width", 0.0)) * width, 0.0), width)
    y1 = min(max((bb.get("Top", 0.0) + bb.get("Height", 0.0)) * height, 0.0), height)
    return (x0, y0, x1 - x0, y1 - y0)


def _attributes(detail: dict) -> dict:
    a: dict = {}
    if "AgeRange" in detail:
        a["age_range"] = {"low": int(detail["AgeRange"]["Low"]), "high": int(detail["AgeRange"]["High"])}
    if "Emotions" in detail:
        a["emotions"] = sorted(({"type": e["Type"].lower(), "confidence": round(float(e["Confidence"]), 2)}
                                for e in detail["Emotions"]), key=lambda e: -e["confidence"])
    for key, name in _FLAGS.items():
        if key in detail:
            a[name] = {"value": bool(detail[key]["Value"]), "confidence": round(float(detail[key]["Confidence"]), 2)}
    if "Gender" in detail:
        # Kept as the engine reports it (a prediction from appearance); never narrated.
        a["gender"] = {"value": str(detail["Gender"]["Value"]).lower(),
                       "confidence": round(float(detail["Gender"]["Confidence"]), 2)}
    if "Pose" in detail:
        a["pose"] = {k.lower(): round(float(v), 2) for k, v in detail["Pose"].items()}
    if "Quality" in detail:
        a["quality"] = {k.lower(): round(float(v), 2) for k, v in detail["Quality"].items()}
    if "EyeDirection" in detail:
        a["eye_direction"] = {k.lower(): round(float(v), 2) for k, v in detail["EyeDirection"].items()}
    return a


def faces_from_response(response: dict, width: int, height: int) -> list[Face]:
    """DetectFaces output -> Faces in the pixels of a width x height photo, best first."""
    faces = []
    for detail in response.get("FaceDetails", []):
        points = {lm["Type"]: (float(lm["X"]) * width, float(lm["Y"]) * height) for lm in detail.get("Landmarks", [])}
        landmarks = tuple(points[k] for k in REKOGNITION_LANDMARKS) if all(k in points for k in REKOGNITION_LANDMARKS) else None
        faces.append(Face(
            box=_box(detail.get("BoundingBox", {}), width, height),
            confidence=float(detail.get("Confidence", 0.0)) / 100.0,  # Face.confidence is 0..1 like the offline detector
            landmarks=landmarks,
            attributes=_attributes(detail),
        ))
    faces.sort(key=lambda f: -f.confidence)
    return faces


def labels_from_response(response: dict, width: int, height: int) -> list[Label]:
    labels = []
    for lab in response.get("Labels", []):
        boxes = tuple(_box(inst["BoundingBox"], width, height) for inst in lab.get("Instances", []) if "BoundingBox" in inst)
        labels.append(Label(
            name=str(lab["Name"]),
            confidence=float(lab.get("Confidence", 0.0)),
            parents=tuple(str(p["Name"]) for p in lab.get("Parents", [])),
            boxes=boxes,
        ))
    labels.sort(key=lambda lab: -lab.confidence)
    return labels


class RekognitionDetector:
    """A core.faces.FaceDetector backed by Amazon Rekognition."""

    name = "rekognition"

    def __init__(self, clients: AwsClients, consent: ConsentStore, *, max_side: int = DEFAULT_MAX_SIDE,
                 max_labels: int = 20, min_label_confidence: float = 70.0):
        self.clients, self.consent = clients, consent
        self.max_side = max_side
        self.max_labels, self.min_label_confidence = max_labels, min_label_confidence

    def detect(self, rgb: np.ndarray) -> list[Face]:
        return list(self.analyze(rgb).faces)

    def analyze(self, rgb: np.ndarray, *, labels: bool = False) -> FaceAnalysis:
        region = self.clients.require_region(FEATURE)
        self.consent.require(FEATURE, region)  # before anything is encoded or sent
        h, w = rgb.shape[:2]
        image = prepare_image(rgb, self.max_side)
        with aws_errors(FEATURE, region):
            client = self.clients.client(FEATURE)
            response = client.detect_faces(Image={"Bytes": image.data}, Attributes=["ALL"])
            label_response = None
            if labels:
                label_response = client.detect_labels(Image={"Bytes": image.data}, MaxLabels=self.max_labels,
                                                      MinConfidence=self.min_label_confidence)
        return FaceAnalysis(
            engine=self.name,
            faces=tuple(faces_from_response(response, w, h)),
            image_size=(w, h),
            labels=tuple(labels_from_response(label_response, w, h)) if label_response else (),
            region=region,
        )
