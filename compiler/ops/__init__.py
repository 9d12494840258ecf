"""The op registry: `spec.py` defines `OpSpec`, `REGISTRY` and their rules (read its docstring);
importing this package fills `REGISTRY` with every family's ops (one file per family).

The families import `spec`, never this package, so the registry forms no import cycle.
"""

from cnnc.compiler.ops import (  # noqa: F401  (each family fills REGISTRY)
    act,
    conv,
    extra,
    merge,
    norm,
    pool,
    reshape,
    resize,
)
from cnnc.compiler.ops.spec import *  # noqa: F403  (the registry's names, as `cnnc.compiler.ops.X`)
