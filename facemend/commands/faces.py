"""`facemend faces`: find faces (offline, or with Amazon Rekognition) and list them.

The offline detector is the default: nothing leaves the machine unless
`--engine rekognition` is asked for *and* consent is given — recorded once at
a terminal prompt, or `--yes-send-to-aws` for this run only (scripts).
Without either, in a non-interactive run, the command sends nothing and
exits 4 saying how to consent.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.errors import CancelledError, UsageError

FACE_ENGINES = ("local", "rekognition")


def add_aws_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("AWS (only for the Amazon engines)")
    g.add_argument("--region", help="AWS region (default: AWS_REGION or the profile's region)")
    g.add_argument("--profile", help="AWS profile from ~/.aws/config (default: AWS_PROFILE or the default chain)")
    g.add_argument("--yes-send-to-aws", action="store_true",
                   help="consent, for this run only, to send what the feature needs to AWS (for scripts); "
                        "not remembered")
    g.add_argument("--revoke-consent", action="store_true",
                   help="forget every remembered consent to send data to AWS, then exit")


def aws_context(args):
    """The clients and consent store for this run (nothing connects yet)."""
    from cloud.aws import AwsClients, AwsSettings
    from cloud.consent import ConsentStore

    return AwsClients(AwsSettings(region=args.region, profile=args.profile)), ConsentStore()


def ensure_consent(consent, feature: str, region: str, subject: str | None, yes: bool) -> None:
    """Make sure `feature` may send to `region`, asking at a terminal if needed."""
    from cloud.consent import CONSENT_FLAG, FEATURE_TITLES, what_is_sent

    if consent.granted(feature, region):
        return
    if yes:
        consent.allow_once(feature, region)
        return
    if not sys.stdin.isatty():
        consent.require(feature, region)  # raises ConsentRequiredError (exit 4): nothing sent
        return
    print(f"{FEATURE_TITLES[feature]}: {what_is_sent(feature, region, subject)}", file=sys.stderr)
    sys.stderr.write("Send it, and remember this answer for this feature and region? [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline().strip().lower()
    if answer not in ("y", "yes"):
        raise CancelledError(f"not sent: consent to {FEATURE_TITLES[feature]} was refused "
                             f"(use the offline engine, or {CONSENT_FLAG} in scripts)")
    consent.grant(feature, region)
    print("facemend: consent remembered; forget it with --revoke-consent", file=sys.stderr)


def revoke_all() -> int:
    from cloud.consent import ConsentStore

    store = ConsentStore()
    store.revoke()
    print(f"facemend: forgot every consent to send data to AWS ({store.path})", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "faces",
        help="find the faces in a photo (offline, or Amazon Rekognition with attributes)",
        description="List the faces in PHOTO: box [x, y, w, h] in photo pixels and confidence, and with "
        "Amazon Rekognition their attributes (age range, emotions, smile, glasses, pose, quality). "
        "Rekognition sends the photo to AWS, only with your consent.",
        epilog="Exit codes: 0 ok, 2 usage, 3 bad input, 4 AWS unavailable or no consent (nothing sent), "
        "5 consent refused at the prompt.",
    )
    p.add_argument("photo", nargs="?", type=Path, metavar="PHOTO")
    p.add_argument("--engine", choices=FACE_ENGINES, default="local",
                   help="local (offline detector, default) or rekognition (Amazon Rekognition)")
    p.add_argument("--labels", action="store_true", help="also list what is in the photo (Rekognition DetectLabels)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    add_aws_arguments(p)
    p.set_defaults(func=run)


def analyze(photo, engine: str, *, labels: bool, args, subject: str | None):
    """FaceAnalysis of a loaded photo with the chosen engine (asks consent for Rekognition)."""
    from core.narration import FaceAnalysis

    if engine == "local":
        if labels:
            raise UsageError("--labels needs --engine rekognition (the offline detector finds faces only)")
        from core.faces import default_detector

        detector = default_detector()
        faces = detector.detect(photo.rgb)
        return FaceAnalysis(engine=detector.name, faces=tuple(faces), image_size=(photo.width, photo.height))
    from cloud.rekognition import FEATURE, RekognitionDetector

    clients, consent = aws_context(args)
    region = clients.require_region(FEATURE)
    ensure_consent(consent, FEATURE, region, subject, args.yes_send_to_aws)
    return RekognitionDetector(clients, consent).analyze(photo.rgb, labels=labels)


def _summary(face) -> str:
    a = face.attributes
    bits = []
    if "age_range" in a:
        bits.append(f"age {a['age_range']['low']}-{a['age_range']['high']}")
    if a.get("emotions"):
        e = a["emotions"][0]
        bits.append(f"{e['type']} {e['confidence']:.0f}%")
    for key in ("smile", "eyeglasses", "sunglasses"):
        if a.get(key, {}).get("value"):
            bits.append(key)
    return f" [{', '.join(bits)}]" if bits else ""


def run(args) -> int:
    if args.revoke_consent:
        return revoke_all()
    if args.photo is None:
        raise UsageError("faces: PHOTO is required")
    from core.imageio import load_image

    photo = load_image(args.photo)
    analysis = analyze(photo, args.engine, labels=args.labels, args=args, subject=args.photo.name)
    if args.json:
        report = analysis.as_json()
        if args.labels:
            report["labels"] = [lab.as_json() for lab in analysis.labels]
        print(json.dumps(report))
        return 0
    where = f" in {analysis.region}" if analysis.region else " (offline)"
    print(f"engine: {analysis.engine}{where}; {len(analysis.faces)} face(s)")
    for i, f in enumerate(analysis.faces):
        x, y, w, h = (round(v) for v in f.box)
        print(f"face {i}: box {x},{y},{w},{h} confidence {f.confidence:.3f}{_summary(f)}")
    if args.labels:
        print("labels: " + (", ".join(f"{lab.name} {lab.confidence:.0f}%" for lab in analysis.labels) or "none"))
    return 0
