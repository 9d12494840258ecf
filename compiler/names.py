"""What a label may be: the one rule, shared by the elaborator (check time) and the lowerings.

A label becomes a module name, a `state_dict` key part and an attribute of generated Python, and
a `.cnn` file is untrusted data (STYLE §13). So each dot-separated part of a label is an ASCII
identifier or a number (`[A-Za-z_][A-Za-z0-9_-]*` or `[0-9]+`, as state_dict keys are: E0208; the
hyphen is there because torchvision's RegNet names its blocks `block1-0`), and
is neither a Python keyword nor an attribute every torch module already has (E0209): what
`cnnc check` accepts then compiles and runs in `cnnc.load`, the `.py` and the `.pt` alike.

The reserved names are listed here rather than read from torch, because the elaborator must not
import torch; a test compares the list with `dir()` of the modules the lowering makes.
"""

from __future__ import annotations

import keyword
import re
from functools import lru_cache

from cnnc.dsl.records import record

_PART = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*|[0-9]+")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

RULE = (
    "each part of a label (between dots) is an identifier (`[A-Za-z_][A-Za-z0-9_-]*`) or a number"
)

# Attributes of nn.Module, nn.Sequential and cnnc's block container: a submodule cannot take them.
_MODULE_WORDS = """
    T_destination _apply _backward_hooks _backward_pre_hooks _buffers _call_impl
    _compiled_call_impl _forward_hooks _forward_hooks_always_called _forward_hooks_with_kwargs
    _forward_pre_hooks _forward_pre_hooks_with_kwargs _get_backward_hooks _get_backward_pre_hooks
    _get_item_by_idx _get_name _is_full_backward_hook _load_from_state_dict
    _load_state_dict_post_hooks _load_state_dict_pre_hooks _maybe_warn_non_full_backward_hook
    _modules _named_members _non_persistent_buffers_set _parameters
    _register_load_state_dict_pre_hook _register_state_dict_hook _replicate_for_data_parallel
    _save_to_state_dict _slow_forward _state_dict_hooks _state_dict_pre_hooks _version
    _wrapped_call_impl add_module append apply bfloat16 block_args block_name buffers
    call_super_init children compile cpu cuda double dump_patches eval extend extra_repr float
    forward get_buffer get_extra_state get_parameter get_submodule half insert ipu
    load_state_dict modules mtia named_buffers named_children named_modules named_parameters
    parameters pop register_backward_hook register_buffer register_forward_hook
    register_forward_pre_hook register_full_backward_hook register_full_backward_pre_hook
    register_load_state_dict_post_hook register_load_state_dict_pre_hook register_module
    register_parameter register_state_dict_post_hook register_state_dict_pre_hook requires_grad_
    set_extra_state set_submodule share_memory state_dict to to_empty train training type xpu
    zero_grad
"""
MODULE_ATTRIBUTES = frozenset(_MODULE_WORDS.split())

# Attributes of the compiled network itself (a torch.fx GraphModule): taken at the top level only.
_NETWORK_WORDS = """
    _boxed_call _code _create_node_hooks _deepcopy_hooks _deepcopy_init _erase_node_hooks _graph
    _lineno_map _prologue_start _recompile_submodules _register_create_node_hook
    _register_deepcopy_hook _register_erase_node_hook _register_replace_node_hook _replace_hooks
    _repr_svg_ _set_replace_hook _tracer_cls _tracer_extras _unregister_create_node_hook
    _unregister_deepcopy_hook _unregister_erase_node_hook _unregister_replace_node_hook
    _wrapped_call add_submodule cnnc_graph cnnc_source cnnc_summary code
    delete_all_unused_submodules delete_submodule graph meta print_readable recompile shape_env
    to_folder
"""
NETWORK_ATTRIBUTES = frozenset(_NETWORK_WORDS.split())


@record
class Problem:
    """Why a label part cannot be a module name: a diagnostic code, the headline, and a fix."""

    code: str
    message: str
    help: str


# Keyed by the part alone, and the answer depends on nothing else (`_PART` is a constant), so a part
# seen before is not matched again: the elaborator checks every part of a label's path at each
# label. Bounded, since labels come from untrusted files. (The reserved words are not cached with
# it: they are a table a test may swap.)
@lru_cache(maxsize=4096)
def is_part(part: str) -> bool:
    """An identifier (hyphens allowed after the first character) or a number in ASCII: the whitelist
    of E0208."""
    return _PART.fullmatch(part) is not None


def is_attribute(part: str) -> bool:
    """May generated Python write `obj.part`? Not for keywords, numbers or non-ASCII text, nor
    for `__x` (mangled inside a class body): those go through `getattr(obj, 'part')`."""
    return (
        _IDENTIFIER.fullmatch(part) is not None
        and not keyword.iskeyword(part)
        and not part.startswith("__")
    )


def is_reserved(part: str, top_level: bool) -> bool:
    """Is `part` already an attribute of the module that would hold it?"""
    dunder = len(part) > 4 and part.startswith("__") and part.endswith("__")
    return dunder or part in MODULE_ATTRIBUTES or (top_level and network_attribute(part))


def network_attribute(part: str) -> bool:
    """`cnnc_*` is cnnc's own on the network (`cnnc_graph`, `cnnc_weights`, and those to come)."""
    return part in NETWORK_ATTRIBUTES or part.startswith("cnnc_")


def part_problem(part: str, top_level: bool) -> Problem | None:
    """The broken rule of one label part, or None. `top_level`: a direct child of the network."""
    if not is_part(part):
        return Problem(
            "E0208",
            f"the label {shown(part)} is not a name: {RULE}",
            f"write it with letters, digits and `_`, e.g. `{suggestion(part)}`",
        )
    if keyword.iskeyword(part):
        return Problem(
            "E0209",
            f"the label `{part}` is a Python keyword, so no generated code could name the module",
            f"choose another label, e.g. `{part}_layer`",
        )
    if is_reserved(part, top_level):
        owner = "the compiled network" if network_attribute(part) else "every torch module"
        return Problem(
            "E0209",
            f"the label `{part}` is taken: {owner} has an attribute `{part}`",
            f"choose another label, e.g. `{part.strip('_')}_layer`",
        )
    return None


def path_problem(path: tuple[str, ...]) -> Problem | None:
    """The first broken rule along a module path (its first part is a child of the network)."""
    for depth, part in enumerate(path):
        problem = part_problem(part, depth == 0)
        if problem is not None:
            return problem
    return None


def label_problem(label: str) -> Problem | None:
    """The broken rule of a label written with `label(text, layer)`, wherever it will be put."""
    if not isinstance(label, str):
        return None  # the caller reports a label that is not text
    for part in label.split("."):
        problem = part_problem(part, top_level=False)
        if problem is not None:
            return problem
    return None


def usable(name: str, top_level: bool) -> str:
    """An implicit name (a block's or op's lowercase name) made usable: `class` → `class_`."""
    return name if part_problem(name, top_level) is None else f"{name}_"


def shown(text: str, limit: int = 40) -> str:
    """A label as a message shows it: quoted, escaped (no raw control character), cut."""
    cut = text if len(text) <= limit else text[: limit - 1] + "…"
    return repr(cut)


def suggestion(part: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_]+", "_", part).strip("_") or "layer"
    return name if is_part(name) else f"layer_{name}"
