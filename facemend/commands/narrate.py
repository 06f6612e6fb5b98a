"""`facemend narrate`: a short spoken summary of a photo, as text and audio.

Prints the narration text on stdout (always, so it is readable too) and saves
the speech: MP3 with Amazon Polly, WAV with the offline engine (default).
Polly receives only the text, and only with consent (see `facemend faces`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.errors import BadInputError, UsageError
from facemend.commands.faces import (
    FACE_ENGINES,
    add_aws_arguments,
    analyze,
    aws_context,
    ensure_consent,
    revoke_all,
)

SPEECH_ENGINES = ("local", "polly")
SUFFIX = {"polly": ".mp3", "local": ".wav"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "narrate",
        help="describe a photo's faces aloud (offline speech or Amazon Polly)",
        description="Find the faces in PHOTO, print a short narration (how many faces, age range and "
        "main expression of each when the face engine gives them, what was repaired) and save it as "
        "speech: WAV offline, MP3 with Amazon Polly.",
        epilog="Exit codes: 0 ok, 2 usage, 3 bad input, 4 AWS or speech engine unavailable or no consent "
        "(nothing sent), 5 consent refused at the prompt.",
    )
    p.add_argument("photo", nargs="?", type=Path, metavar="PHOTO")
    p.add_argument("-o", "--output", type=Path, help="audio file to write: .wav (local) or .mp3 (polly)")
    p.add_argument("--engine", choices=SPEECH_ENGINES, default="local",
                   help="local (offline speech engine of the OS, default) or polly (Amazon Polly)")
    p.add_argument("--voice", help="voice: a Polly voice id (e.g. Joanna, Zhiyu for Mandarin, Hiujin for "
                   "Cantonese) or an offline engine voice (e.g. espeak-ng's en-gb)")
    p.add_argument("--language", choices=("en", "zh"),
                   help="narration language (default: Chinese for a Chinese Polly voice, else English)")
    p.add_argument("--faces-engine", choices=FACE_ENGINES, default="local",
                   help="face engine: local (default; no ages or expressions) or rekognition")
    p.add_argument("--repair-report", type=Path, metavar="JSON",
                   help="output of `facemend repair --json`, to say what was repaired and by which backend")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--list-voices", action="store_true", help="list the Amazon Polly voices and exit")
    add_aws_arguments(p)
    p.set_defaults(func=run)


def _repair_summary(path: Path):
    from core.narration import RepairSummary

    try:
        report = json.loads(path.read_text(encoding="utf-8"))
        return RepairSummary(faces_repaired=len(report.get("faces", [])), backend=str(report["backend"]))
    except FileNotFoundError as exc:
        raise BadInputError(f"{path}: no such file") from exc
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BadInputError(f"{path}: not a `facemend repair --json` report ({exc})") from exc


def _list_voices(args) -> int:
    from cloud.polly import PollySpeech

    clients, consent = aws_context(args)
    for v in PollySpeech(clients, consent).voices():
        print(f"{v.id}\t{v.language_code}\t{v.language_name}\t{v.gender}\t{','.join(v.engines)}")
    return 0


def run(args) -> int:
    if args.revoke_consent:
        return revoke_all()
    if args.list_voices:
        return _list_voices(args)
    if args.photo is None or args.output is None:
        raise UsageError("narrate: PHOTO and -o OUT are required")
    if args.output.suffix.lower() != SUFFIX[args.engine]:
        raise UsageError(f"-o {args.output}: the {args.engine} engine writes {SUFFIX[args.engine]} audio")
    from core.imageio import atomic_write, load_image
    from core.narration import narration_text

    repair = _repair_summary(args.repair_report) if args.repair_report else None
    photo = load_image(args.photo)

    language = args.language or "en"
    if args.engine == "polly":
        from cloud.polly import DEFAULT_VOICE, FEATURE, PollySpeech

        clients, consent = aws_context(args)
        speech = PollySpeech(clients, consent, voice=args.voice or DEFAULT_VOICE)
        # Asked before any work, so a refusal costs nothing and nothing is sent.
        ensure_consent(consent, FEATURE, clients.require_region(FEATURE), None, args.yes_send_to_aws)
        if args.language is None:
            language = speech.find_voice(speech.voice).narration_language
    else:
        from cloud.speech_local import LocalSpeech

        speech = LocalSpeech(voice=args.voice, language=language)
        speech.require()  # no offline engine: say so before the slow face detection
    analysis = analyze(photo, args.faces_engine, labels=False, args=args, subject=args.photo.name)
    text = narration_text(analysis, repair, language=language)
    print(text)
    sys.stdout.flush()

    audio = speech.synthesize(text)
    atomic_write(args.output, lambda fh: fh.write(audio), overwrite=args.overwrite)
    print(f"facemend: {speech.name} speech saved to {args.output}", file=sys.stderr)
    return 0
