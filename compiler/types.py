"""Types of graph values.

A `TensorType` is the shape of one sample, channels first and without the batch: `[C, H, W]` for
feature maps, `[N]` for vectors after Flatten. `ERROR` is the poison type: a node whose shape could not
be inferred has it, and it is compatible with everything downstream, so one mistake gives one message.
"""

from __future__ import annotations

import math

from cnnc.dsl.records import record

Shape = tuple[int, ...]


@record
class TensorType:
    shape: Shape

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def channels(self) -> int:
        return self.shape[0]

    @property
    def spatial(self) -> Shape:
        return self.shape[1:]

    def __str__(self) -> str:
        return "[" + ", ".join(str(d) for d in self.shape) + "]"

    def short(self) -> str:
        """`64×56×56`, as printed on diagrams and tables."""
        return "×".join(str(d) for d in self.shape)


@record
class ErrorType:
    """The poison type (see module docstring)."""

    def __str__(self) -> str:
        return "<error>"

    def short(self) -> str:
        return "?"


ERROR = ErrorType()
Type = TensorType | ErrorType


def is_error(t: Type) -> bool:
    return isinstance(t, ErrorType)
