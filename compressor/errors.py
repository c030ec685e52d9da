"""The library's exception types: one base class, so callers and the CLI can catch user errors."""


class CompressorError(Exception):
    """Base class of every error the library raises for bad input, files or models."""


class BitstreamError(CompressorError):
    """A .bin that is damaged, truncated, of an unknown version, or claims an impossible size."""


class ModelMismatchError(BitstreamError):
    """A .bin written by other weights than the ones asked to decode it."""


class ModelError(CompressorError):
    """An unknown model name, or a checkpoint that is missing, malformed or tampered with."""


class ImageError(CompressorError):
    """An input that is not a readable image, or one that cannot be coded."""


class TokenFileError(CompressorError):
    """A token file or sidecar that is missing, malformed, or made by another model; token values out of range."""


class TrainingError(CompressorError):
    """A training run that cannot go on (non-finite loss, unreadable data)."""


class MissingExtraError(CompressorError):
    """A command that needs an optional dependency (an install extra) that is not installed."""


class DeviceError(CompressorError, ValueError):
    """A device that is not there or not supported ("cuda" on a machine without a GPU, "tpu")."""
