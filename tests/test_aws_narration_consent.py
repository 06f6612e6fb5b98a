"""The narration text (core/narration.py) and the consent record (cloud/consent.py)."""

import json

import pytest

from cloud.consent import ConsentRequiredError, ConsentStore, what_is_sent
from core.faces import Face
from core.narration import FaceAnalysis, RepairSummary, narration_text


def _face(x, age=None, emotion=None, smile=False, glasses=False, gender=None):
    attributes = {}
    if age:
        attributes["age_range"] = {"low": age[0], "high": age[1]}
    if emotion:
        attributes["emotions"] = [{"type": emotion, "confidence": 91.0}, {"type": "calm", "confidence": 5.0}]
    if smile:
        attributes["smile"] = {"value": True, "confidence": 97.0}
    if glasses:
        attributes["eyeglasses"] = {"value": True, "confidence": 99.0}
    if gender:
        attributes["gender"] = {"value": gender, "confidence": 99.0}
    return Face((x, 10.0, 50.0, 60.0), 0.99, None, attributes)


def test_narration_counts_faces_and_describes_them_left_to_right():
    analysis = FaceAnalysis("rekognition", (_face(300, (30, 40), "calm"), _face(20, (19, 36), "happy", smile=True)), (640, 480))
    text = narration_text(analysis)
    assert text.startswith("Amazon Rekognition found two faces.")
    first, second = text.index("19 to 36"), text.index("30 to 40")
    assert first < second  # the face at x=20 is described before the one at x=300
    assert "seems happy" in text and "is smiling" in text and "seems calm" in text


def test_narration_never_speaks_predicted_gender():
    analysis = FaceAnalysis("rekognition", (_face(0, (20, 30), gender="female"),), (100, 100))
    assert "female" not in narration_text(analysis).lower() and "woman" not in narration_text(analysis).lower()


def test_offline_narration_says_it_has_no_attributes():
    analysis = FaceAnalysis("mtcnn", (_face(0),), (100, 100))
    text = narration_text(analysis)
    assert "offline face detector found one face" in text.lower() and "no age or expression" in text


def test_narration_says_what_was_repaired_and_by_which_backend():
    analysis = FaceAnalysis("mtcnn", (_face(0), _face(60)), (100, 100))
    assert "Two faces were repaired by the remote backend lambda." in narration_text(analysis, RepairSummary(2, "lambda"))
    assert "repaired on this computer's processor" in narration_text(analysis, RepairSummary(1, "cpu"))


def test_no_face_is_said_plainly():
    assert narration_text(FaceAnalysis("rekognition", (), (100, 100))) == "Amazon Rekognition found no face in this photo."


def test_chinese_narration_for_chinese_voices():
    analysis = FaceAnalysis("rekognition", (_face(0, (19, 36), "happy"),), (100, 100))
    text = narration_text(analysis, RepairSummary(1, "cpu"), language="zh")
    assert "找到了一张人脸" in text and "19到36岁" in text and "开心" in text and "本机处理器修复了一张人脸" in text


def test_consent_is_remembered_per_feature_and_region(tmp_path):
    path = tmp_path / "consent.json"
    ConsentStore(path).grant("rekognition", "eu-west-1")
    store = ConsentStore(path)  # a new process reads the same answer
    assert store.granted("rekognition", "eu-west-1")
    assert not store.granted("rekognition", "us-east-1")  # another region asks again
    assert not store.granted("polly", "eu-west-1")  # another feature asks again


def test_consent_is_revocable(tmp_path):
    store = ConsentStore(tmp_path / "consent.json")
    store.grant("rekognition", "eu-west-1")
    store.grant("polly", "eu-west-1")
    store.revoke("rekognition")
    assert not store.granted("rekognition", "eu-west-1") and store.granted("polly", "eu-west-1")
    store.revoke()
    assert store.records() == []
    with pytest.raises(ConsentRequiredError):
        store.require("polly", "eu-west-1")


def test_consent_for_this_run_only_is_never_written(tmp_path):
    path = tmp_path / "consent.json"
    store = ConsentStore(path)
    store.allow_once("polly", "eu-west-1")
    assert store.granted("polly", "eu-west-1") and not path.exists()
    assert not ConsentStore(path).granted("polly", "eu-west-1")


def test_consent_file_holds_only_feature_region_and_time(tmp_path):
    path = tmp_path / "consent.json"
    ConsentStore(path).grant("rekognition", "eu-west-1")
    entry = json.loads(path.read_text())["features"]["rekognition"]
    assert set(entry) == {"region", "granted_at"}


def test_a_damaged_consent_file_means_no_consent(tmp_path):
    path = tmp_path / "consent.json"
    path.write_text("{not json")
    assert not ConsentStore(path).granted("rekognition", "eu-west-1")


def test_consent_text_names_what_is_sent_and_where():
    text = what_is_sent("rekognition", "ap-southeast-2", "family.jpg")
    assert "family.jpg" in text and "ap-southeast-2" in text and "JPEG" in text
    assert "No image is sent" in what_is_sent("polly", "eu-west-1")
