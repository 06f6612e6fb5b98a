"""`facemend faces` and `facemend narrate`: JSON, exit codes, consent in scripts
and at a terminal. AWS stand-ins are real servers on 127.0.0.1 (a moto server,
or a bare listening socket that records whether anyone connected)."""

import json
import socket

import pytest

from facemend.cli import main

PHOTO = "tests/data/photos/faceapi_sample1.jpg"  # 960 x 640, three faces


@pytest.fixture
def aws_env(offline_aws, monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("FACEMEND_CONSENT_FILE", str(tmp_path / "consent.json"))
    return tmp_path / "consent.json"


@pytest.fixture
def listener(monkeypatch, aws_env):
    """An endpoint that accepts connections but never answers; records whether any came."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.setblocking(False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{server.getsockname()[1]}")

    def connected() -> bool:
        try:
            conn, _ = server.accept()
        except BlockingIOError:
            return False
        conn.close()
        return True

    yield connected
    server.close()


class _Terminal:
    """stdin of a terminal where the user types `answer`."""

    def __init__(self, answer):
        self.answer = answer

    def isatty(self):
        return True

    def readline(self):
        return self.answer + "\n"


def test_faces_json_lists_boxes_in_photo_pixels(capsys):
    assert main(["faces", PHOTO, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["engine"] == "mtcnn" and report["image_size"] == [960, 640]
    assert len(report["faces"]) == 3
    for face in report["faces"]:
        x, y, w, h = face["box"]
        assert 0 <= x < x + w <= 960 and 0 <= y < y + h <= 640 and 0.9 <= face["confidence"] <= 1.0


def test_narrate_offline_prints_the_text_and_writes_wav(tmp_path, capsys):
    out = tmp_path / "n.wav"
    assert main(["narrate", PHOTO, "-o", str(out)]) == 0
    assert "found three faces" in capsys.readouterr().out
    data = out.read_bytes()
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE" and len(data) > 10_000


def test_rekognition_in_a_script_without_consent_sends_nothing_and_exits_4(listener, capsys):
    assert main(["faces", PHOTO, "--engine", "rekognition"]) == 4
    err = capsys.readouterr().err
    assert "--yes-send-to-aws" in err and "nothing was sent" in err and len(err.strip().splitlines()) == 1
    assert not listener()


def test_refusing_at_the_prompt_sends_nothing_and_exits_5(listener, monkeypatch, capsys, aws_env):
    monkeypatch.setattr("sys.stdin", _Terminal("n"))
    assert main(["faces", PHOTO, "--engine", "rekognition"]) == 5
    err = capsys.readouterr().err
    assert "Amazon Rekognition in the AWS region eu-west-1" in err  # what would have been sent, and where
    assert not listener() and not aws_env.exists()


def test_accepting_at_the_prompt_is_remembered(monkeypatch, capsys, aws_env):
    with socket.socket() as s:  # a closed port: the request is refused, quickly
        s.bind(("127.0.0.1", 0))
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{s.getsockname()[1]}")
    monkeypatch.setattr("sys.stdin", _Terminal("y"))
    assert main(["faces", PHOTO, "--engine", "rekognition"]) == 4
    assert "cannot reach Amazon Rekognition in eu-west-1" in capsys.readouterr().err
    assert json.loads(aws_env.read_text())["features"]["rekognition"]["region"] == "eu-west-1"


def test_no_credentials_is_exit_4_with_one_line_and_no_traceback(aws_env, monkeypatch, capsys):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    assert main(["faces", PHOTO, "--engine", "rekognition", "--yes-send-to-aws"]) == 4
    err = capsys.readouterr().err
    assert "no usable AWS credentials" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_narrate_with_polly_through_moto_writes_the_mp3(aws_env, monkeypatch, tmp_path, capsys):
    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
        out = tmp_path / "n.mp3"
        assert main(["narrate", PHOTO, "--engine", "polly", "--voice", "Zhiyu", "--yes-send-to-aws", "-o", str(out)]) == 0
    finally:
        server.stop()
    assert "找到了三张人脸" in capsys.readouterr().out  # a Mandarin voice gets Chinese text
    assert out.read_bytes() == b"\x00" * 8  # moto's stand-in audio, saved as received
    assert not aws_env.exists()  # --yes-send-to-aws is for this run only


def test_labels_need_the_rekognition_engine(capsys):
    assert main(["faces", PHOTO, "--labels"]) == 2


def test_missing_photo_is_bad_input(capsys):
    assert main(["faces", "tests/data/photos/no-such.jpg"]) == 3
    assert "no-such.jpg" in capsys.readouterr().err


def test_narrate_output_must_match_the_engine_format(tmp_path, capsys):
    assert main(["narrate", PHOTO, "--engine", "local", "-o", str(tmp_path / "n.mp3")]) == 2


def test_revoke_consent_forgets_every_answer(aws_env):
    from cloud.consent import ConsentStore

    ConsentStore(aws_env).grant("polly", "eu-west-1")
    assert main(["faces", "--revoke-consent"]) == 0
    assert ConsentStore(aws_env).records() == []
