"""Amazon Rekognition face analysis, through botocore's Stubber.

moto has no DetectFaces, so responses are shaped like the example in the AWS
Developer Guide ("Detecting faces in an image", DetectFaces operation
response) and the DetectLabels reference; the Stubber also checks every
request against the service model (Attributes=["ALL"], image bytes).
"""

import io

import numpy as np
import pytest
from botocore.stub import Stubber
from PIL import Image

from cloud.aws import AwsClients, AwsSettings
from cloud.consent import ConsentRequiredError, ConsentStore
from cloud.rekognition import MIN_SIDE, RekognitionDetector, prepare_image
from core.errors import BackendUnavailableError
from core.imageio import load_image

PHOTO = "tests/data/photos/faceapi_sample1.jpg"  # 960 x 640
REGION = "eu-west-1"

# The Developer Guide's example response (its 30 landmarks trimmed to the five
# the app uses plus the pupils, which show which side "left" is).
DOC_DETECT_FACES = {
    "FaceDetails": [{
        "AgeRange": {"High": 36, "Low": 19},
        "Beard": {"Confidence": 99.99388122558594, "Value": False},
        "BoundingBox": {"Height": 0.35353535413742065, "Left": 0.10707070678472519,
                        "Top": 0.12777778506278992, "Width": 0.47138047218322754},
        "Confidence": 99.99736785888672,
        "Emotions": [{"Confidence": 89.59288024902344, "Type": "HAPPY"},
                     {"Confidence": 5.3619384765625, "Type": "CALM"},
                     {"Confidence": 4.1074934005737305, "Type": "ANGRY"}],
        "Eyeglasses": {"Confidence": 99.96102142333984, "Value": False},
        "EyesOpen": {"Confidence": 99.97982788085938, "Value": True},
        "Gender": {"Confidence": 100, "Value": "Female"},
        "Landmarks": [
            {"Type": "eyeLeft", "X": 0.23772846162319183, "Y": 0.2778792679309845},
            {"Type": "eyeRight", "X": 0.3944779932498932, "Y": 0.2527812421321869},
            {"Type": "nose", "X": 0.28617316484451294, "Y": 0.3367626965045929},
            {"Type": "mouthLeft", "X": 0.288897842168808, "Y": 0.4019121527671814},
            {"Type": "mouthRight", "X": 0.41363197565078735, "Y": 0.38766127824783325},
            {"Type": "leftPupil", "X": 0.25244733691215515, "Y": 0.27739065885543823},
            {"Type": "rightPupil", "X": 0.4029206931591034, "Y": 0.24940147995948792},
        ],
        "MouthOpen": {"Confidence": 99.97990417480469, "Value": False},
        "Mustache": {"Confidence": 99.97885131835938, "Value": False},
        "Pose": {"Pitch": 1.0711474418640137, "Roll": -10.933034896850586, "Yaw": -25.838171005249023},
        "Quality": {"Brightness": 43.86729431152344, "Sharpness": 99.95819854736328},
        "Smile": {"Confidence": 96.89310455322266, "Value": True},
        "Sunglasses": {"Confidence": 80.4033432006836, "Value": False},
    }]
}

# Shaped like the DetectLabels reference response (Instances with boxes, Parents, Categories).
DOC_DETECT_LABELS = {
    "Labels": [
        {"Name": "Person", "Confidence": 99.2786,
         "Instances": [{"BoundingBox": {"Width": 0.25, "Height": 0.5, "Left": 0.1, "Top": 0.2}, "Confidence": 99.2}],
         "Parents": [], "Categories": [{"Name": "Person Description"}]},
        {"Name": "Selfie", "Confidence": 70.0364, "Instances": [],
         "Parents": [{"Name": "Face"}, {"Name": "Head"}, {"Name": "Person"}]},
    ],
    "LabelModelVersion": "3.0",
}


@pytest.fixture
def aws_env(offline_aws, monkeypatch, tmp_path):
    monkeypatch.setenv("FACEMEND_CONSENT_FILE", str(tmp_path / "consent.json"))


@pytest.fixture
def clients(aws_env):
    return AwsClients(AwsSettings(region=REGION, max_attempts=1))


@pytest.fixture
def consent(aws_env, tmp_path):
    store = ConsentStore(tmp_path / "consent.json")
    store.grant("rekognition", REGION)
    return store


@pytest.fixture
def photo():
    return load_image(PHOTO)


def _stub(clients):
    return Stubber(clients.client("rekognition"))


def test_doc_example_box_and_landmarks_land_in_photo_pixels(clients, consent, photo):
    with _stub(clients) as stub:
        stub.add_response("detect_faces", DOC_DETECT_FACES)
        analysis = RekognitionDetector(clients, consent).analyze(photo.rgb)
    (face,) = analysis.faces
    bb = DOC_DETECT_FACES["FaceDetails"][0]["BoundingBox"]
    assert face.box == pytest.approx((bb["Left"] * 960, bb["Top"] * 640, bb["Width"] * 960, bb["Height"] * 640))
    nose = DOC_DETECT_FACES["FaceDetails"][0]["Landmarks"][2]
    assert face.landmarks[2] == pytest.approx((nose["X"] * 960, nose["Y"] * 640))
    assert face.confidence == pytest.approx(0.9999736785888672)
    assert analysis.engine == "rekognition" and analysis.region == REGION and analysis.image_size == (960, 640)


def test_rekognition_eye_left_is_the_image_left_like_the_offline_detector(clients, consent, photo):
    with _stub(clients) as stub:
        stub.add_response("detect_faces", DOC_DETECT_FACES)
        (face,) = RekognitionDetector(clients, consent).detect(photo.rgb)
    left_eye, right_eye, _nose, mouth_left, mouth_right = face.landmarks
    assert left_eye[0] < right_eye[0] and mouth_left[0] < mouth_right[0]


def test_attributes_keep_age_emotions_flags_pose_and_quality(clients, consent, photo):
    with _stub(clients) as stub:
        stub.add_response("detect_faces", DOC_DETECT_FACES)
        (face,) = RekognitionDetector(clients, consent).detect(photo.rgb)
    a = face.attributes
    assert a["age_range"] == {"low": 19, "high": 36}
    assert [e["type"] for e in a["emotions"]] == ["happy", "calm", "angry"]
    assert a["smile"]["value"] is True and a["eyeglasses"]["value"] is False and a["sunglasses"]["value"] is False
    assert a["pose"]["yaw"] == pytest.approx(-25.84, abs=0.01)
    assert set(a["quality"]) == {"brightness", "sharpness"}


def test_request_asks_for_all_attributes_with_image_bytes(clients, consent, photo):
    sent = prepare_image(photo.rgb)
    with _stub(clients) as stub:
        stub.add_response("detect_faces", DOC_DETECT_FACES, {"Image": {"Bytes": sent.data}, "Attributes": ["ALL"]})
        RekognitionDetector(clients, consent).detect(photo.rgb)
        stub.assert_no_pending_responses()


def _decode(data):
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)


def test_landmark_found_in_the_downscaled_upload_maps_back_onto_the_photo(clients, consent, photo):
    rgb = photo.rgb.copy()
    dot = (613.0, 377.0)  # pixel centre of a 9x9 red square painted on the real photo
    rgb[373:382, 609:618] = (255, 0, 0)
    detector = RekognitionDetector(clients, consent, max_side=400)
    sent = prepare_image(rgb, max_side=400)
    assert (sent.width, sent.height) == (400, 267)  # really downscaled from 960 x 640
    # Find the dot in the JPEG that is sent, and answer as Rekognition would: ratios of that image.
    # (where the upload differs from the upload of the untouched photo)
    diff = np.abs(_decode(sent.data) - _decode(prepare_image(photo.rgb, max_side=400).data)).sum(axis=2)
    ys, xs = np.nonzero(diff > diff.max() / 2)
    ux, uy = xs.mean(), ys.mean()
    rx, ry = (ux + 0.5) / sent.width, (uy + 0.5) / sent.height
    detail = dict(DOC_DETECT_FACES["FaceDetails"][0])
    detail["Landmarks"] = [{"Type": t, "X": rx, "Y": ry} for t in ("eyeLeft", "eyeRight", "nose", "mouthLeft", "mouthRight")]
    with _stub(clients) as stub:
        stub.add_response("detect_faces", {"FaceDetails": [detail]}, {"Image": {"Bytes": sent.data}, "Attributes": ["ALL"]})
        (face,) = detector.detect(rgb)
    x, y = face.landmarks[2]
    # Pixel centres: photo pixel 613 spans [613, 614), so its centre is 613.5.
    assert abs(x - (dot[0] + 0.5)) < 2.0 and abs(y - (dot[1] + 0.5)) < 2.0


def test_labels_are_requested_only_when_asked_and_boxes_map_to_pixels(clients, consent, photo):
    with _stub(clients) as stub:
        stub.add_response("detect_faces", DOC_DETECT_FACES)
        stub.add_response("detect_labels", DOC_DETECT_LABELS)
        analysis = RekognitionDetector(clients, consent).analyze(photo.rgb, labels=True)
        stub.assert_no_pending_responses()
    person, selfie = analysis.labels
    assert person.name == "Person" and person.boxes[0] == pytest.approx((96.0, 128.0, 240.0, 320.0))
    assert selfie.parents == ("Face", "Head", "Person") and selfie.boxes == ()


@pytest.mark.parametrize("code, words", [
    ("AccessDeniedException", "IAM policy needs rekognition:DetectFaces"),
    ("ThrottlingException", "request rate exceeded"),
    ("InvalidImageFormatException", "could not read the image"),
    ("ImageTooLargeException", "image too large"),
])
def test_service_errors_become_exit_4_with_a_one_line_reason(clients, consent, photo, code, words):
    with _stub(clients) as stub:
        stub.add_client_error("detect_faces", service_error_code=code, service_message=f"{code} from the stub",
                              http_status_code=400)
        with pytest.raises(BackendUnavailableError) as err:
            RekognitionDetector(clients, consent).detect(photo.rgb)
    assert err.value.exit_code == 4
    assert words in str(err.value) and "\n" not in str(err.value) and REGION in str(err.value)


def test_without_consent_nothing_reaches_the_service(clients, tmp_path, photo):
    no_consent = ConsentStore(tmp_path / "empty-consent.json")
    with _stub(clients) as stub:
        stub.add_response("detect_faces", DOC_DETECT_FACES)
        with pytest.raises(ConsentRequiredError) as err:
            RekognitionDetector(clients, no_consent).detect(photo.rgb)
        with pytest.raises(AssertionError):  # the queued response is still waiting: no request came
            stub.assert_no_pending_responses()
    assert err.value.exit_code == 4 and "--yes-send-to-aws" in str(err.value)


def test_consent_for_another_region_does_not_count(clients, tmp_path, photo):
    store = ConsentStore(tmp_path / "c.json")
    store.grant("rekognition", "us-east-1")
    with pytest.raises(ConsentRequiredError):
        RekognitionDetector(clients, store).detect(photo.rgb)


def test_no_credentials_is_exit_4_naming_the_fix(aws_env, monkeypatch, consent, photo):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    clients = AwsClients(AwsSettings(region=REGION, max_attempts=1))
    with pytest.raises(BackendUnavailableError) as err:
        RekognitionDetector(clients, consent).detect(photo.rgb)
    assert "no usable AWS credentials" in str(err.value) and "aws configure" in str(err.value)


def test_region_without_rekognition_is_refused_before_any_request(aws_env):
    clients = AwsClients(AwsSettings(region="mars-east-1"))
    with pytest.raises(BackendUnavailableError, match="not offered in region mars-east-1"):
        clients.require_region("rekognition")


def test_unreachable_endpoint_is_exit_4_network_reason(aws_env, monkeypatch, consent, photo):
    import socket

    with socket.socket() as s:  # a port that was free a moment ago: connection refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    clients = AwsClients(AwsSettings(region=REGION, max_attempts=1))
    with pytest.raises(BackendUnavailableError, match="cannot reach Amazon Rekognition in eu-west-1"):
        RekognitionDetector(clients, consent).detect(photo.rgb)


def test_prepare_image_scales_a_tiny_photo_up_to_the_service_minimum():
    tiny = np.full((40, 60, 3), 128, np.uint8)
    sent = prepare_image(tiny)
    im = Image.open(io.BytesIO(sent.data))
    assert im.format == "JPEG" and min(im.size) >= MIN_SIDE and im.size == (sent.width, sent.height)


def test_prepare_image_stays_under_the_byte_limit():
    noise = np.random.default_rng(0).integers(0, 256, (900, 1200, 3), dtype=np.uint8)  # JPEG's worst case
    limit = 150_000
    sent = prepare_image(noise, max_side=1200, max_bytes=limit)
    assert len(sent.data) <= limit and min(sent.width, sent.height) >= MIN_SIDE
    assert sent.width / sent.height == pytest.approx(1200 / 900, rel=0.01)
