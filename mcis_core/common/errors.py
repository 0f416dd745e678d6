"""The errors a stage reports as one `error: ...` line (see `mcis_core.common.cli`)."""

from __future__ import annotations


class ConfigError(ValueError):
    """params.yaml has a missing, unknown, mistyped or out-of-range key."""


class DatasetError(RuntimeError):
    """Input data is missing, unreadable or inconsistent; the message names the file."""


class DownloadError(RuntimeError):
    """Every URL of a file failed, or retries ran out."""


class ChecksumError(DownloadError):
    """A downloaded file does not have the expected md5."""


class ArchiveError(RuntimeError):
    """An archive is corrupt, truncated or holds members that would escape the target."""


class WeightsError(RuntimeError):
    """Pretrained weights a configuration needs are not on this machine."""


EXPECTED_ERRORS = (ConfigError, DatasetError, DownloadError, ArchiveError, WeightsError)
