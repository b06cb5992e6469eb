"""The ``edge-iqa train`` command line that reproduces a :class:`TrainConfig` (recorded with shipped weights).

Every option whose value differs from the CLI default is written out, so the line re-creates the
run's configuration exactly (tested by parsing it back through the CLI). A field that the CLI does not
expose (``min_lr_ratio``) must be at its default, or the run cannot be replayed from the command line
and :func:`train_command_line` says so; ``progress`` only changes what is printed and is left out.
"""

from __future__ import annotations

import dataclasses
import shlex
from typing import Any

from edge_iqa.errors import EdgeIQAError

_NOT_ON_CLI = ("min_lr_ratio",)
_DISPLAY_ONLY = ("progress",)  # changes what is printed, not what is trained
_ALWAYS = ("model", "data", "out")


def train_command_line(config: Any) -> str:
    """``edge-iqa train ...`` for a ``TrainConfig`` (or its ``asdict`` form from metrics.json)."""
    from edge_iqa.train.loop import TrainConfig

    values = config if isinstance(config, dict) else dataclasses.asdict(config)
    default = dataclasses.asdict(TrainConfig())
    for name in _NOT_ON_CLI:
        if name in values and values[name] != default[name]:
            raise EdgeIQAError(f"{name}={values[name]!r} is not an `edge-iqa train` option; this run cannot be "
                               "replayed from the command line")
    args = ["edge-iqa", "train"]
    for field in dataclasses.fields(TrainConfig):
        name = field.name
        if name in _NOT_ON_CLI or name in _DISPLAY_ONLY or name not in values:
            continue
        value = values[name]
        if name == "loss":
            for term, weight in value.items():
                if weight != default["loss"].get(term):
                    args += [f"--loss-{term}", repr(float(weight))]
            continue
        if value == default[name] and name not in _ALWAYS:
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            args.append(flag if value else f"--no-{name.replace('_', '-')}")
        elif isinstance(value, list):
            for item in value:
                args += [flag, str(item)]
        elif value is None:
            raise EdgeIQAError(f"{name}=None differs from its default and has no command-line form")
        else:
            args += [flag, str(value)]
    return shlex.join(args)


__all__ = ["train_command_line"]
