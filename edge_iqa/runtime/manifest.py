"""``manifest.json`` as a typed, schema-versioned contract: one reader that validates
(:meth:`Manifest.from_dict`, used by :func:`edge_iqa.runtime.bundle.read_manifest`) and one writer
(:func:`edge_iqa.runtime.bundle.write_manifest`). Every reader of a bundle (verification, the
backends, the scorer's planning, the CLI, bench and scripts) takes a :class:`Manifest`.

Keys the runtime relies on are typed fields; everything else the exporter records (model, target,
graph, calibration, parity, accuracy, tools...) is informational and reached by key
(``manifest["accuracy"]``), always as a copy, so a Manifest never changes after it is read.

Torch-free.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from edge_iqa.errors import BundleError

MANIFEST_NAME = "manifest.json"
#: 2: an image input may take uint8 pixels (``io.inputs[i].dtype = "uint8"``, shape [batch, H, W, 3]),
#: normalised inside the network. Version-1 bundles (float32 rows) keep loading.
SCHEMA_VERSION = 2
REQUIRED_KEYS = ("schema_version", "runtime", "precision", "model_file", "io", "preprocess",
                 "output_transform", "files")


@dataclass(frozen=True)
class Manifest:
    """A bundle's manifest. Build one with :meth:`from_dict` (validates) or, for a network that is
    not on disk as a bundle (the torch backend's checkpoint or in-memory module), directly."""

    schema_version: int
    runtime: str
    precision: str
    model_file: str
    io: Mapping[str, Any]
    preprocess: Mapping[str, Any]
    output_transform: Mapping[str, Any]
    files: Mapping[str, Mapping[str, Any]]
    #: The other keys, as written (informational: model, target, runtime_options, accuracy, ...).
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: object, where: str = MANIFEST_NAME) -> Manifest:
        """Validate a parsed manifest (required keys, schema version, the model file listed with
        a checksum); BundleError naming ``where`` otherwise. The runtime, io and preprocessing are
        checked where they are used (backend registry, :func:`~edge_iqa.runtime.scorer.load`)."""
        if not isinstance(data, Mapping):
            raise BundleError(f"{where}: must hold a JSON object; re-export the bundle")
        missing = [key for key in REQUIRED_KEYS if key not in data]
        if missing:
            raise BundleError(f"{where}: lacks {', '.join(missing)}; re-export the bundle with this edge-iqa")
        version = data["schema_version"]
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise BundleError(f"{where}: invalid schema_version {version!r}; re-export the bundle")
        if version > SCHEMA_VERSION:
            raise BundleError(f"{where}: schema version {version} comes from a newer edge-iqa (this one reads "
                              f"<= {SCHEMA_VERSION}); upgrade edge-iqa or export with this version")
        if not isinstance(data["files"], Mapping) or not isinstance(data["model_file"], str) \
                or data["model_file"] not in data["files"]:
            raise BundleError(f"{where}: the model file is not listed with a checksum; re-export the bundle")
        data = copy.deepcopy(dict(data))
        return cls(**{key: data.pop(key) for key in REQUIRED_KEYS}, extra=data)

    def to_dict(self) -> dict[str, Any]:
        """The JSON document (a deep copy), required keys first."""
        return copy.deepcopy({**{key: getattr(self, key) for key in REQUIRED_KEYS}, **self.extra})

    # --- informational keys, read-only -----------------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        if key in REQUIRED_KEYS:
            return copy.deepcopy(getattr(self, key))
        return copy.deepcopy(self.extra[key])

    def __iter__(self) -> Iterator[str]:
        """The document's keys (required first), as a JSON object's."""
        return iter((*REQUIRED_KEYS, *self.extra))

    def __contains__(self, key: object) -> bool:
        return key in REQUIRED_KEYS or key in self.extra

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if key in self else default  # noqa: SIM401 - this is get()

    def section(self, key: str) -> dict[str, Any]:
        """An informational object (``model``, ``target``, ``runtime_options``...); {} when absent or
        not an object."""
        value = self.extra.get(key)
        return copy.deepcopy(dict(value)) if isinstance(value, Mapping) else {}

    def sha256(self, name: str) -> str:
        """The recorded sha256 of one of the bundle's files."""
        record = self.files.get(name)
        if not isinstance(record, Mapping) or not isinstance(record.get("sha256"), str):
            raise BundleError(f"the manifest records no checksum for {name}; re-export the bundle")
        return record["sha256"]

    @property
    def model_name(self) -> str | None:
        name = self.section("model").get("name")
        return name if isinstance(name, str) else None
