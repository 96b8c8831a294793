"""Exceptions for programmer errors and bad input.

Business outcomes (declined, over limit, rate above cap) are values with a reason code, not
exceptions; see ``duowei.ledger.results`` for the ledger's.
"""


class DuoweiError(Exception):
    """Base class of every error this package raises on purpose."""


class InvalidInput(DuoweiError, ValueError):
    """Input that is malformed or out of range; nothing was changed."""


class NotFound(DuoweiError, LookupError):
    """A referenced object does not exist."""


class IntegrityError(DuoweiError):
    """Stored data failed a consistency or tamper check."""
