"""Name scopes of elaboration: a file's top-level definitions (`ModuleScope`) and the local names of
one body (`Env`). A name is looked up in the body, its enclosing loops, the file, its imports, and
then among the built-ins (ops, functions, constants)."""

from __future__ import annotations

from cnnc.dsl import ast
from cnnc.dsl.records import field, record


@record(frozen=False, eq=False, slots=False)
class ModuleScope:
    """The top-level names of one file, and the files it imports (searched in order)."""

    key: str
    module: ast.Module
    defs: dict = field(default_factory=dict)
    imports: list = field(default_factory=list)
    values: dict = field(default_factory=dict)  # evaluated top-level lets
    evaluating: set = field(default_factory=set)
    duplicates: list = field(default_factory=list)

    def find(self, name: str):
        """The definition of `name` here or in an import, as (scope, item), or None."""
        if name in self.defs:
            return self, self.defs[name]
        for imported in self.imports:
            if name in imported.defs:
                return imported, imported.defs[name]
        return None


def module_scopes(program) -> dict[str, ModuleScope]:
    """Fresh scopes of every file of `program` (their values are evaluated anew), sharing each
    file's table of names, which is read only."""
    scopes = {}
    for key, module in program.modules.items():
        defs, duplicates = names_of(module)
        scopes[key] = ModuleScope(key, module, defs, duplicates=duplicates)
    for key, scope in scopes.items():
        scope.imports = [scopes[k] for k in program.imports.get(key, ())]
    return scopes


_NAMES: dict[int, tuple] = {}  # id(module) → (module, defs, duplicates), for the last files seen
_NAMES_KEPT = 64


def names_of(module: ast.Module) -> tuple[dict, list]:
    """(name → definition, definitions of a name taken before) of one file, made once per file:
    a command elaborates a file once per network, so a file of n networks would cost n² here."""
    hit = _NAMES.get(id(module))
    if hit is not None and hit[0] is module:
        return hit[1], hit[2]
    defs, duplicates = _names_table(module)
    if len(_NAMES) >= _NAMES_KEPT:
        _NAMES.clear()
    _NAMES[id(module)] = (module, defs, duplicates)
    return defs, duplicates


def _names_table(module: ast.Module) -> tuple[dict, list]:
    defs, duplicates = {}, []
    for item in module.items:
        if isinstance(item, ast.Import):
            continue
        if item.name in defs:
            duplicates.append(item)
        defs.setdefault(item.name, item)
    return defs, duplicates


@record(frozen=False, eq=False, slots=False)
class Env:
    """Local names of one body (parameters and `let`s), the input tensor, and a parent for loops."""

    module: ModuleScope
    vars: dict
    input: object = None  # Tensor, POISON or None outside blocks
    parent: Env | None = None
    loop_var: str | None = None  # the variable of the list comprehension this Env is one step of
    network: bool = False  # a network's body (its `input [...]` makes `in`)
    override: tuple | dict | None = (
        None  # `--input C,H,W` (or `name=C,H,W`, …): replaces the declared input
    )
    instance: bool = False  # a block's or network's body run as a layer: `in` is what it receives

    def get(self, name: str):
        value = self.local(name)
        if value is NOT_LOCAL:
            raise KeyError(name)
        return value

    def local(self, name: str):
        """The local value of `name` (this body or an enclosing loop), or `NOT_LOCAL`: no exception
        for the names that are not local (ops, blocks, built-ins), which are read as often."""
        env = self
        while env is not None:
            vars = env.vars
            if name in vars:
                return vars[name]
            env = env.parent
        return NOT_LOCAL

    def names(self) -> set[str]:
        out, env = set(), self
        while env is not None:
            out |= set(env.vars)
            env = env.parent
        return out


NOT_LOCAL = object()  # `Env.local`'s answer when a name is not local (a local value may be None)
