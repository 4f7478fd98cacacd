"""The one error hierarchy of the package.

    QAError                    anything the package raises on purpose
    ├── ConfigError            a setting is missing, unknown or of the wrong type
    ├── ExportError            a model file cannot be read or exported (qa models export-e5)
    ├── SourceError            an article source cannot be read (names path and line)
    ├── IndexUnavailableError  an index directory is missing, corrupt or unusable
    │   └── IndexMismatchError the index was built with another model or dimension
    ├── BuildLockedError       another reindex holds the index lock
    ├── RemovalRefusedError    a reindex would remove too many served articles (qa reindex --allow-removals)
    ├── DiskFullError          the disk (or quota) of an index filled up, or is too full to start a reindex
    ├── ClusterError           the Ray cluster of a reindex cannot be reached, has no room, or failed
    ├── LLMError               the model endpoint failed or answered unusably (answers fall back)
    ├── InvalidRequestError    a request's input is wrong (HTTP 400)
    ├── PayloadTooLargeError   a request body is over the configured limit (HTTP 413)
    ├── NotFoundError          a requested document does not exist (HTTP 404)
    ├── UnauthorizedError      an admin request without a valid token (HTTP 401)
    ├── TooManyRequestsError   a client has too many requests running at once (HTTP 429)
    ├── ServiceBusyError       no embedder was free in time for a question (HTTP 503)
    └── RequestTimeoutError    a request took longer than its limit (HTTP 503)

The HTTP layer maps these to status codes; scripts print the message and exit 1.
"""

from __future__ import annotations


class QAError(Exception):
    """Base class of every error the package raises on purpose."""


class ConfigError(QAError):
    """A setting is missing, unknown or of the wrong type."""


class ExportError(QAError):
    """A model file is missing or malformed, or an exported model folder cannot be written."""


class SourceError(QAError):
    """An article source cannot be read; the message names the path (and line)."""


class IndexUnavailableError(QAError):
    """An index directory is missing, corrupt or unusable."""


class IndexMismatchError(IndexUnavailableError):
    """The index was built with another embedding model or dimension."""


class BuildLockedError(QAError):
    """Another reindex holds the lock on the index."""


class RemovalRefusedError(QAError):
    """A reindex would remove more of the served articles than ``reindex.max_removed_share``
    (or, in a full rebuild with skipped input, any); nothing was published."""


class DiskFullError(QAError):
    """The disk (or quota) holding an index has too little room for a reindex, or filled
    up while it wrote; the message names the folder and the space left."""


class ClusterError(QAError):
    """The Ray cluster of a reindex cannot be reached, has no room for its embedders, or
    failed the run; the message names the cluster's address."""


class LLMError(QAError):
    """The model endpoint failed or answered unusably; the message never holds a key or URL."""


class InvalidRequestError(QAError):
    """The input of a request is wrong; the message says what."""


class PayloadTooLargeError(QAError):
    """A request body is over the configured size limit."""


class NotFoundError(QAError):
    """A requested document does not exist."""


class UnauthorizedError(QAError):
    """An administrative request came without a valid token."""


class TooManyRequestsError(QAError):
    """A client already has as many requests running as it may."""


class ServiceBusyError(QAError):
    """The embedder stayed busy with other questions for longer than a question may wait."""


class RequestTimeoutError(QAError):
    """A request took longer than the configured limit."""
