"""One boto3 session and its clients, shared by every AWS feature.

Credentials come only from boto3's standard chain (environment, shared
config/credentials files, a named profile, SSO, instance roles): the app never
asks for keys and never stores them. Endpoints follow boto3's own settings,
so `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_POLLY` (or `endpoint_url` in a
profile) point the app at a local stand-in such as a moto server.

Nothing connects until a client is first needed: creating `AwsClients` costs
nothing, which keeps the offline paths free of AWS.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

from core.errors import BackendUnavailableError

RETRY_MODES = ("standard", "adaptive")


@dataclass(frozen=True)
class AwsSettings:
    """What the user chooses; None means "whatever boto3 resolves"."""

    region: str | None = None
    profile: str | None = None
    retry_mode: str = "standard"  # botocore: standard, or adaptive (client-side rate limiting)
    max_attempts: int = 4  # including the first; standard mode backs off between them
    connect_timeout: float = 5.0
    read_timeout: float = 30.0


def _endpoint_overridden(service: str) -> bool:
    # Only read to decide whether the region check below applies; boto3 itself
    # applies these settings.
    env_name = "AWS_ENDPOINT_URL_" + service.upper().replace("-", "_")
    return bool(os.environ.get("AWS_ENDPOINT_URL") or os.environ.get(env_name))


class AwsClients:
    """Lazily built boto3 session and clients (thread-safe; clients are shared,
    as boto3 documents them to be)."""

    def __init__(self, settings: AwsSettings | None = None, session=None):
        self.settings = settings or AwsSettings()
        if self.settings.retry_mode not in RETRY_MODES:
            raise ValueError(f"retry_mode must be one of {RETRY_MODES}")
        self._session = session
        self._clients: dict[str, object] = {}
        self._lock = threading.Lock()

    @property
    def session(self):
        with self._lock:
            if self._session is None:
                import boto3
                from botocore.exceptions import ProfileNotFound

                try:
                    self._session = boto3.Session(profile_name=self.settings.profile or None,
                                                  region_name=self.settings.region or None)
                except ProfileNotFound as exc:
                    raise BackendUnavailableError(
                        f"AWS profile {self.settings.profile!r} not found in ~/.aws/config; "
                        "choose another profile or run `aws configure --profile NAME`") from exc
            return self._session

    @property
    def region(self) -> str | None:
        """The region calls go to: settings, else boto3's (AWS_DEFAULT_REGION, profile), else AWS_REGION."""
        # AWS_REGION is the cross-SDK variable; boto3 itself reads only AWS_DEFAULT_REGION.
        return self.settings.region or self.session.region_name or os.environ.get("AWS_REGION") or None

    def require_region(self, service: str) -> str:
        """The region for `service`, or BackendUnavailableError saying why there is none."""
        from cloud.errors import SERVICE_NAMES

        name = SERVICE_NAMES.get(service, service)
        region = self.region
        if not region:
            raise BackendUnavailableError(
                f"{name}: no AWS region set; choose one in settings, pass --region or set AWS_REGION")
        if not _endpoint_overridden(service):
            known = {r for p in self.session.get_available_partitions()
                     for r in self.session.get_available_regions(service, p)}
            if known and region not in known:
                raise BackendUnavailableError(
                    f"{name} is not offered in region {region}; choose one of {', '.join(sorted(known)[:12])}, …")
        return region

    def has_credentials(self) -> bool:
        """Whether the standard chain finds credentials (no network call for
        keys and profiles; SSO may refresh a token)."""
        try:
            return self.session.get_credentials() is not None
        except Exception:  # noqa: BLE001 - a broken profile or expired SSO token counts as none
            return False

    def client(self, service: str):
        """The shared client for `service`, created on first use."""
        with self._lock:
            existing = self._clients.get(service)
        if existing is not None:
            return existing
        from botocore.config import Config

        region = self.require_region(service)
        s = self.settings
        config = Config(
            region_name=region,
            retries={"mode": s.retry_mode, "total_max_attempts": s.max_attempts},
            connect_timeout=s.connect_timeout,
            read_timeout=s.read_timeout,
            user_agent_appid="facemend",
        )
        client = self.session.client(service, config=config)
        with self._lock:
            return self._clients.setdefault(service, client)
