"""Where a service gets its model bundle: the package, S3 or HTTPS.

`FACEMEND_MODEL_URI` may be

* empty — the bundle shipped in the package (`models/`);
* a bundle folder or `name[@version]` — as `--model` everywhere else;
* `s3://bucket/key.tar.gz` (or .tar, .tgz, .zip) — an archive of one bundle;
* `s3://bucket/prefix/` — a bundle's files stored under a prefix (needs
  s3:ListBucket on that prefix; the archive form needs only s3:GetObject on one object);
* `https://host/path/bundle.tar.gz` — an archive over HTTPS.

Downloaded bundles are unpacked under the cache folder (`/tmp/facemend-models`
by default, the one writable place on Lambda) keyed by URI and S3 ETag, so a
warm container or a restarted pod reuses them. Every file is then checked
against the bundle manifest's sha256 (core.bundle.verify_bundle); with
`FACEMEND_MODEL_SHA256` the archive itself is pinned too, which also pins the
manifest.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import zipfile
from pathlib import Path
from urllib.parse import urlparse

from core import bundle as bundles
from core.errors import BackendUnavailableError, BundleError, UsageError

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def default_cache_dir() -> Path:
    return Path(os.environ.get("FACEMEND_CACHE_DIR") or Path(tempfile.gettempdir()) / "facemend-models")


def resolve_bundle(uri: str | None = None, *, cache_dir: Path | None = None, expected_sha256: str | None = None,
                   s3_client=None) -> Path:
    """A verified local bundle folder for `uri` (see module doc)."""
    uri = (uri if uri is not None else os.environ.get("FACEMEND_MODEL_URI", "")).strip()
    expected_sha256 = expected_sha256 or os.environ.get("FACEMEND_MODEL_SHA256") or None
    if not uri:
        return bundles.verify_bundle(bundles.find_bundle(None)).path
    scheme = urlparse(uri).scheme
    if scheme not in ("s3", "https", "http"):
        return bundles.verify_bundle(bundles.find_bundle(uri)).path
    cache_dir = Path(cache_dir or default_cache_dir())
    if scheme == "s3":
        return _from_s3(uri, cache_dir, expected_sha256, s3_client)
    return _from_https(uri, cache_dir, expected_sha256)


# --- S3 ---------------------------------------------------------------------------


def _split_s3(uri: str) -> tuple[str, str]:
    p = urlparse(uri)
    if not p.netloc:
        raise UsageError(f"{uri}: expected s3://bucket/key")
    return p.netloc, p.path.lstrip("/")


def _from_s3(uri: str, cache_dir: Path, expected_sha256: str | None, s3) -> Path:
    import boto3
    import botocore.exceptions

    bucket, key = _split_s3(uri)
    s3 = s3 or boto3.client("s3")
    try:
        if key.endswith(ARCHIVE_SUFFIXES):
            etag = s3.head_object(Bucket=bucket, Key=key)["ETag"]
            target = _cache_slot(cache_dir, uri, etag)
            if (cached := _cached(target)) is not None:
                return cached

            def fetch(fh):
                s3.download_fileobj(bucket, key, fh)

            return _install_archive(fetch, key, target, expected_sha256, uri)
        prefix = key if key.endswith("/") or not key else key + "/"
        objects = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            objects.extend(page.get("Contents", []))
        if not any(o["Key"] == prefix + bundles.MANIFEST for o in objects):
            raise BundleError(f"{uri}: no {bundles.MANIFEST} under this prefix")
        target = _cache_slot(cache_dir, uri, "|".join(sorted(o["ETag"] for o in objects)))
        if (cached := _cached(target)) is not None:
            return cached
        staging = Path(tempfile.mkdtemp(dir=_mkdir(cache_dir), prefix=".staging-"))
        try:
            for o in objects:
                rel = o["Key"][len(prefix):]
                if not rel or rel.endswith("/"):
                    continue
                dest = (staging / rel).resolve()
                if staging.resolve() not in dest.parents:
                    raise BundleError(f"{uri}: object {o['Key']!r} would land outside the bundle")
                dest.parent.mkdir(parents=True, exist_ok=True)
                s3.download_file(bucket, o["Key"], str(dest))
            return _publish(staging, staging, target, uri)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    except botocore.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "?")
        raise BackendUnavailableError(f"{uri}: S3 refused ({code}); check the bucket, key and the role's s3:GetObject permission") from None
    except botocore.exceptions.BotoCoreError as exc:
        raise BackendUnavailableError(f"{uri}: cannot reach S3 ({exc})") from None


# --- HTTPS ------------------------------------------------------------------------


def _from_https(uri: str, cache_dir: Path, expected_sha256: str | None) -> Path:
    import requests

    p = urlparse(uri)
    if p.scheme == "http" and p.hostname not in LOOPBACK_HOSTS:
        raise UsageError(f"{uri}: model URLs must use https (plain http only for loopback)")
    if not p.path.endswith(ARCHIVE_SUFFIXES):
        raise UsageError(f"{uri}: an HTTPS model must be an archive ({', '.join(ARCHIVE_SUFFIXES)})")
    try:
        etag = requests.head(uri, timeout=(5, 30), allow_redirects=True).headers.get("ETag", "")
    except requests.RequestException as exc:
        raise BackendUnavailableError(f"{uri}: cannot reach ({exc.__class__.__name__})") from None
    target = _cache_slot(cache_dir, uri, etag)
    if etag and (cached := _cached(target)) is not None:
        return cached

    def fetch(fh):
        with requests.get(uri, stream=True, timeout=(5, 60)) as r:
            r.raise_for_status()
            for chunk in r.iter_content(1 << 20):
                fh.write(chunk)

    try:
        return _install_archive(fetch, p.path, target, expected_sha256, uri)
    except requests.RequestException as exc:
        raise BackendUnavailableError(f"{uri}: download failed ({exc})") from None


# --- archives and the cache ---------------------------------------------------------


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def _cache_slot(cache_dir: Path, uri: str, version: str) -> Path:
    return cache_dir / hashlib.sha256(f"{uri}\n{version}".encode()).hexdigest()[:24]


def _cached(target: Path) -> Path | None:
    if not (target / bundles.MANIFEST).exists():
        return None
    try:
        return bundles.verify_bundle(target).path
    except BundleError:
        shutil.rmtree(target, ignore_errors=True)  # damaged cache: fetch again
        return None


def _install_archive(fetch, name: str, target: Path, expected_sha256: str | None, uri: str) -> Path:
    staging = Path(tempfile.mkdtemp(dir=_mkdir(target.parent), prefix=".staging-"))
    try:
        archive = staging / "archive"
        with open(archive, "wb") as fh:
            fetch(fh)
        if expected_sha256:
            digest = bundles.sha256_file(archive)
            if digest != expected_sha256.lower():
                raise BundleError(f"{uri}: sha256 {digest[:12]}… is not the pinned FACEMEND_MODEL_SHA256 {expected_sha256[:12]}…")
        unpacked = staging / "unpacked"
        unpacked.mkdir()
        _extract(archive, name, unpacked, uri)
        archive.unlink()
        return _publish(unpacked, staging, target, uri)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _extract(archive: Path, name: str, dest: Path, uri: str) -> None:
    try:
        if name.endswith(".zip"):
            with zipfile.ZipFile(archive) as z:
                root = dest.resolve()
                for member in z.namelist():
                    if root not in (dest / member).resolve().parents and (dest / member).resolve() != root:
                        raise BundleError(f"{uri}: archive member {member!r} would land outside the bundle")
                z.extractall(dest)
        else:
            with tarfile.open(archive) as t:
                # The "data" filter refuses absolute paths, .., links out and devices.
                t.extractall(dest, filter="data")
    except (tarfile.TarError, zipfile.BadZipFile, OSError) as exc:
        raise BundleError(f"{uri}: not a readable {Path(name).suffix} archive ({exc})") from None


def _publish(unpacked: Path, staging: Path, target: Path, uri: str) -> Path:
    """Verify the bundle (at the top or one folder down), then move it into the cache atomically."""
    found = [unpacked] if (unpacked / bundles.MANIFEST).exists() else [
        d for d in sorted(unpacked.iterdir()) if (d / bundles.MANIFEST).exists()
    ]
    if len(found) != 1:
        raise BundleError(f"{uri}: expected exactly one model bundle (a folder with {bundles.MANIFEST}), found {len(found)}")
    bundles.verify_bundle(found[0])
    final_staging = staging.parent / (staging.name + ".ready")
    os.replace(found[0], final_staging)
    try:
        os.replace(final_staging, target)
    except OSError:
        # Another process published the same slot first; theirs is as good as ours.
        shutil.rmtree(final_staging, ignore_errors=True)
    return bundles.verify_bundle(target).path
