"""Typed errors at the service boundary.

Every error a user can cause or meet carries a ``user_message`` that pages and the CLI show
verbatim, so no caller ever needs to print a traceback or format an exception itself.
Messages never contain secrets: they are written here, not echoed from third parties.
"""

from __future__ import annotations


class StemDeckError(Exception):
    """Base of every expected failure; ``str(err)`` is safe to show to a user."""

    def __init__(self, user_message: str) -> None:
        super().__init__(user_message)
        self.user_message = user_message


class InputRejected(StemDeckError):
    """The audio (file or URL) cannot be used: wrong format, corrupt, too big, too long, silent."""


class FetchError(InputRejected):
    """A URL could not be fetched, or was refused by the address guard."""


class JobCancelled(StemDeckError):
    """Raised inside a running job when the user cancelled it; the worker records ``cancelled``."""

    def __init__(self) -> None:
        super().__init__("Cancelled by the user.")


class ProviderError(StemDeckError):
    """A separation provider failed; subclasses say why so the UI can say what to do."""


class MissingKey(ProviderError):
    """The provider needs an API key and none is configured."""


class AuthError(ProviderError):
    """The provider refused the key."""


class InsufficientCredits(ProviderError):
    """The account has too few credits for this job."""


class RateLimited(ProviderError):
    """Too many requests; ``retry_after`` is seconds when the provider said so."""

    def __init__(self, user_message: str, retry_after: float | None = None) -> None:
        super().__init__(user_message)
        self.retry_after = retry_after


class ProviderTimeout(ProviderError):
    """The provider did not answer, or the job did not finish, within the deadline."""


class ProviderUnavailable(ProviderError):
    """The provider answered 5xx or could not be reached."""


class MalformedResponse(ProviderError):
    """The provider answered something that does not match its documented contract."""
