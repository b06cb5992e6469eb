"""The exceptions edge-iqa raises on purpose.

Everything a user can cause (a bad image, a stale bundle, a missing backend) raises a subclass of
:class:`EdgeIQAError`, whose message says what went wrong *and what to do*. Catch ``EdgeIQAError``
to handle all of them; anything else escaping the library is a bug.
"""

from __future__ import annotations


class EdgeIQAError(Exception):
    """Base class of every error edge-iqa raises deliberately."""


# --- inputs -------------------------------------------------------------------------------------
class ImageError(EdgeIQAError, ValueError):
    """An input image cannot be scored."""


class ImageDecodeError(ImageError):
    """The file or bytes are not a decodable image (missing, empty, truncated, corrupt, unknown format)."""


class ImageTooLargeError(ImageError):
    """The image declares more pixels than the configured limit (decompression-bomb guard)."""


class ImageTooSmallError(ImageError):
    """The image is smaller than the minimum side the preprocessing accepts."""


class ArrayInputError(ImageError, TypeError):
    """An in-memory array has the wrong dtype, shape, channel count or non-finite values."""


# --- models, checkpoints, datasets ---------------------------------------------------------------
class ModelNotFoundError(EdgeIQAError, KeyError):
    """No model of that name is registered."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class CheckpointError(EdgeIQAError):
    """A checkpoint is missing, unsafe (pickle with code), truncated or does not fit the model."""


class DatasetError(EdgeIQAError):
    """A dataset CSV / meta file is malformed or refers to missing images."""


# --- export, bundles, runtime --------------------------------------------------------------------
class TargetError(EdgeIQAError):
    """A target profile is unknown or invalid."""


class ExportError(EdgeIQAError):
    """Export, quantization or compilation failed; no bundle was written."""


class ParityError(ExportError):
    """The exported graph does not match PyTorch within the gate; no bundle was written."""


class AccuracyBudgetError(ExportError):
    """Quantization could not meet the accuracy budget; no bundle was written."""


class CompatibilityError(ExportError):
    """The exported graph uses something the target runtime cannot run."""


class BundleError(EdgeIQAError):
    """A bundle is missing files, tampered with, from a newer edge-iqa, or made for another runtime."""


class BackendUnavailableError(EdgeIQAError, ImportError):
    """The runtime backend a bundle needs is not installed on this machine."""


class EngineMismatchError(BundleError):
    """A cached TensorRT engine was built for another GPU, TensorRT version or precision."""


# --- collections ------------------------------------------------------------------------------------
class CollectionError(EdgeIQAError):
    """A collection job cannot start or go on: an input that matches nothing, an unreadable list, a
    table written by another bundle, a table another job is writing."""


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of a library's error message, bounded: backends quote it inside our own errors
    (their messages can be pages long, or quote corrupt bytes)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:limit]
