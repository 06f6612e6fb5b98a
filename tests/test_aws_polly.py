"""Amazon Polly (and the shared client factory) against a real moto server on
127.0.0.1, reached through boto3's own AWS_ENDPOINT_URL setting.

moto's SynthesizeSpeech returns 8 zero bytes: these tests check the request
flow (voices, splitting, engine choice, consent), not the audio.
"""

import json
import socket

import pytest
from moto.server import ThreadedMotoServer

from cloud.aws import AwsClients, AwsSettings
from cloud.consent import ConsentRequiredError, ConsentStore
from cloud.polly import MAX_BILLED_CHARS, PollySpeech, split_text

REGION = "us-east-1"
MOTO_AUDIO = b"\x00" * 8


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def moto_url():
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def aws(offline_aws, monkeypatch, tmp_path, moto_url):
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("FACEMEND_CONSENT_FILE", str(tmp_path / "consent.json"))
    return AwsClients(AwsSettings(max_attempts=1))


def _record_requests(clients, service):
    """Every request the client puts on the wire: (operation, JSON body)."""
    sent = []

    def before_send(request, **_):
        body = request.body
        sent.append((request.headers.get("X-Amz-Target", b"").decode() or request.url, body))

    clients.client(service).meta.events.register(f"before-send.{service}", before_send)
    return sent


def _speech(clients, tmp_path, granted=True, **kw):
    store = ConsentStore(tmp_path / "consent.json")
    if granted:
        store.grant("polly", REGION)
    return PollySpeech(clients, store, **kw)


def test_voices_include_mandarin_and_cantonese(aws, tmp_path):
    voices = _speech(aws, tmp_path, granted=False).voices()
    by_language = {v.language_code for v in voices}
    assert {"cmn-CN", "yue-CN", "en-US"} <= by_language
    zhiyu = next(v for v in voices if v.id == "Zhiyu")
    assert zhiyu.narration_language == "zh" and "standard" in zhiyu.engines


def test_listing_voices_needs_no_consent_and_sends_no_text(aws, tmp_path):
    sent = _record_requests(aws, "polly")
    _speech(aws, tmp_path, granted=False).voices("cmn-CN")
    assert len(sent) == 1 and "voices" in sent[0][0]


def test_synthesize_returns_the_service_audio(aws, tmp_path):
    audio = _speech(aws, tmp_path).synthesize("Amazon Rekognition found one face.")
    assert audio == MOTO_AUDIO


def test_long_text_goes_in_pieces_under_the_billed_limit_and_audio_is_joined(aws, tmp_path):
    sentence = "The first person looks nineteen to thirty six years old and seems happy. "
    text = sentence * 100  # about 7,300 characters
    sent = _record_requests(aws, "polly")
    audio = _speech(aws, tmp_path).synthesize(text)
    texts = [json.loads(body)["Text"] for target, body in sent if "speech" in target]
    assert len(texts) == 3 and all(len(t) <= MAX_BILLED_CHARS for t in texts)
    assert all(t.endswith("happy.") for t in texts)  # cut at sentence ends
    assert audio == MOTO_AUDIO * 3


def test_neural_only_cantonese_voice_is_asked_with_the_neural_engine(aws, tmp_path):
    sent = _record_requests(aws, "polly")
    _speech(aws, tmp_path, voice="Hiujin").synthesize("找到了一张人脸。")
    body = json.loads(next(b for target, b in sent if "speech" in target))
    assert body["VoiceId"] == "Hiujin" and body["Engine"] == "neural" and body["OutputFormat"] == "mp3"


def test_refused_consent_sends_nothing_to_the_server(aws, tmp_path):
    sent = _record_requests(aws, "polly")
    with pytest.raises(ConsentRequiredError):
        _speech(aws, tmp_path, granted=False).synthesize("Two faces.")
    assert sent == []


def test_split_text_cuts_chinese_at_full_stops():
    text = "找到了两张人脸。" * 500  # 4,000 characters, no spaces
    pieces = split_text(text)
    assert len(pieces) == 2 and all(len(p) <= MAX_BILLED_CHARS for p in pieces)
    assert all(p.endswith("。") for p in pieces) and "".join(pieces) == text


def test_split_text_cuts_an_endless_sentence_at_spaces():
    text = "word " * 1000  # 5,000 characters, no sentence end
    pieces = split_text(text)
    assert [len(p) <= MAX_BILLED_CHARS for p in pieces] == [True, True]
    assert " ".join(pieces).split() == text.split()


def test_shared_factory_reaches_s3_at_the_endpoint_from_the_environment(aws):
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="facemend-test")
    s3.put_object(Bucket="facemend-test", Key="k", Body=b"v")
    assert s3.get_object(Bucket="facemend-test", Key="k")["Body"].read() == b"v"
    assert aws.client("s3") is s3  # created once, then shared


def test_clients_use_the_configured_retry_mode(aws):
    clients = AwsClients(AwsSettings(retry_mode="adaptive", max_attempts=3))
    retries = clients.client("polly").meta.config.retries
    assert retries["mode"] == "adaptive" and retries["total_max_attempts"] == 3
