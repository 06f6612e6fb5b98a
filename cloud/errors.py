"""AWS failures turned into the project's errors, each with a one-line reason.

Every failure of an AWS call (no credentials, access denied, throttling, an
image the service refuses, a region without the service, the network down)
becomes core.errors.BackendUnavailableError (exit code 4): the offline engines
stay usable, so the caller can say so and carry on. The reason names the
service and region and what to do; it never carries credentials or request
bodies (boto3's own messages do not contain them either).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from botocore import exceptions as bx

from core.errors import BackendUnavailableError

SERVICE_NAMES = {"rekognition": "Amazon Rekognition", "polly": "Amazon Polly", "s3": "Amazon S3"}

_ACCESS_DENIED = {"AccessDeniedException", "AccessDenied", "UnauthorizedOperation", "UnrecognizedClientException",
                  "InvalidSignatureException", "InvalidClientTokenId", "SignatureDoesNotMatch",
                  "ExpiredToken", "ExpiredTokenException"}
_THROTTLED = {"ThrottlingException", "Throttling", "ProvisionedThroughputExceededException",
              "TooManyRequestsException", "LimitExceededException", "ServiceQuotaExceededException"}
_CREDENTIALS = (bx.NoCredentialsError, bx.PartialCredentialsError, bx.ProfileNotFound,
                bx.SSOError, bx.TokenRetrievalError, bx.CredentialRetrievalError)
_NETWORK = (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ReadTimeoutError, bx.ConnectionClosedError)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def reason_for(exc: BaseException, service: str, region: str | None) -> str:
    """A one-line reason for an AWS failure, naming the service and region."""
    name = SERVICE_NAMES.get(service, service)
    where = f"{name} in {region}" if region else name
    if isinstance(exc, _CREDENTIALS):
        return (f"{name}: no usable AWS credentials ({_one_line(exc)}); set AWS_PROFILE, run `aws configure` "
                "or `aws sso login` (see docs/aws.md)")
    if isinstance(exc, bx.NoRegionError):
        return f"{name}: no AWS region set; choose one in settings, pass --region or set AWS_REGION"
    if isinstance(exc, _NETWORK):
        return (f"cannot reach {where} ({_one_line(exc)}); the network is down or the service "
                "is not offered in that region")
    if isinstance(exc, bx.ClientError):
        err = exc.response.get("Error", {})
        code = err.get("Code", "Unknown")
        message = _one_line(err.get("Message", "") or "")
        if code in _ACCESS_DENIED:
            op = exc.operation_name
            return (f"{where}: access denied for {op} ({code}); the IAM policy needs "
                    f"{service}:{op} (see docs/aws.md)")
        if code in _THROTTLED:
            return f"{where}: request rate exceeded ({code}) even after retries; try again in a minute"
        if code == "InvalidImageFormatException":
            return f"{where}: the service could not read the image sent ({message or code})"
        if code == "ImageTooLargeException":
            return f"{where}: image too large for the service ({message or code})"
        if code == "TextLengthExceededException":
            return f"{where}: narration text too long for one request ({message or code})"
        return f"{where}: {code}" + (f": {message}" if message else "")
    if isinstance(exc, bx.BotoCoreError):
        return f"{where}: {_one_line(exc)}"
    return f"{where}: {type(exc).__name__}: {_one_line(exc)}"


def as_unavailable(exc: BaseException, service: str, region: str | None) -> BackendUnavailableError:
    err = BackendUnavailableError(reason_for(exc, service, region))
    err.__cause__ = exc
    return err


@contextlib.contextmanager
def aws_errors(service: str, region: str | None) -> Iterator[None]:
    """Run AWS calls; any botocore failure leaves as BackendUnavailableError."""
    try:
        yield
    except (bx.BotoCoreError, bx.ClientError) as exc:
        raise as_unavailable(exc, service, region) from exc
