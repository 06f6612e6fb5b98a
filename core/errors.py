"""Errors that cross layer boundaries.

Every error carries the CLI exit code it maps to, so the CLI, the service and
the GUI can all report the same failure the same way without string matching.
"""

from __future__ import annotations


class FaceMendError(Exception):
    """Base class; `exit_code` follows the project convention (see README)."""

    exit_code = 1


class UsageError(FaceMendError):
    exit_code = 2


class BadInputError(FaceMendError):
    """Unreadable image or mask, no face, wrong sizes, corrupt bundle files."""

    exit_code = 3


class BackendUnavailableError(FaceMendError):
    exit_code = 4


class CancelledError(FaceMendError):
    exit_code = 5


class BundleError(BadInputError):
    """A model bundle that is missing, altered or of an unknown manifest version."""
