"""Inputs for the fuzzer: mutants of real programs (the zoo, the UI cases) and generated programs.

Every function takes a `random.Random` and returns .cnn text; nothing here imports cnnc's compiler, so
the same seed gives the same inputs whatever the registry holds (op names are passed in).
"""

from __future__ import annotations

import random
import re

CANARY = "cnnc-fuzz-canary"  # a payload that ran would create a file of this name in the sandbox

# Values that sit on rules' edges: zero, negatives, huge, non-integers, non-finite.
INTERESTING = (
    "0",
    "1",
    "-1",
    "2",
    "3",
    "7",
    "64",
    "255",
    "1000000",
    "3000000000",
    "2147483648",
    "9223372036854775808",
    "1" + "0" * 120,
    "0.0",
    "0.5",
    "-0.5",
    "2.0",
    "1e308",
    "1e999",
    "-1e999",
    "none",
    "true",
    "false",
    '"same"',
    "same",
    "[]",
    "[1, 2]",
    "[0, 0]",
    "[3, 1000000, 6, 3]",
)

# Text that must stay data wherever it lands: quotes, escapes, control characters, code.
PAYLOADS = (
    '"',
    "\\",
    "\n",
    "\r",
    "\x1b[31m",
    "\x00",
    "\u202e",
    "é",
    "\ud800".encode("utf-8", "surrogatepass").decode("latin-1"),
    f'"); __import__("os").system("touch {CANARY}") #',
    f"\\n__import__('os').system('touch {CANARY}')\\n",
    f'x"]; open("{CANARY}", "w") #',
    "class",
    "lambda",
    "None",
    "forward",
    "training",
    "__class__",
    "state_dict",
    "1abc",
    "a.b",
    "a..b",
)

SNIPPETS = (
    "->",
    ",",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ":",
    "=",
    "+",
    "*",
    "in",
    "return",
    "block",
    "network",
    "input",
    "import",
    "choice(",
    "for i in range(",
    "if",
    "then",
    "else",
    "concat(",
    "label(",
    " decide { ",
    '"stage1.0.k": ',
    '"',
    "#",
    "\n",
    "\t",
    "\r",
    "\ufeff",
    "\x1b",
    "\x00",
    "é",
    'import "/etc/passwd"\n',
    'import "../../../../etc/passwd"\n',
    'import "/proc/self/environ"\n',
    'import "/dev/zero"\n',
    'import "families"\n',
    "[x + x for x in range(1000) for y in range(1000)]",
    "pow(2, pow(2, 64))",
    "[ReLU for i in range(1000000)]",
    "a = a",
    "network n = n\n",
    "block P = P\n",
    '"\\ud800"',
    '"\\x"',
    '"é\\n"',
    "1" * 5000,
    "[1] + [1]",
    '"ab" * 1000000',
)

NUMBER = re.compile(r"(?<![A-Za-z_0-9.])\d+(?:\.\d+)?(?:e[+-]?\d+)?(?![A-Za-z_0-9])")
IDENT = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")
STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"')
TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|[A-Za-z_][A-Za-z_0-9]*|\d+(?:\.\d+)?|->|//|\S')
CALL = re.compile(r"\b([A-Z][A-Za-z0-9]*)\(")
LABEL = re.compile(r"\b([a-z_][A-Za-z0-9_]*):\s")


def mutate(
    rng: random.Random, text: str, corpus: list[str], ops: list[str], rounds: int = 0
) -> str:
    """One to three random edits of `text`."""
    for _ in range(rounds or rng.choice((1, 1, 1, 2, 3))):
        text = rng.choice(MUTATIONS)(rng, text, corpus, ops)
    return text


def _replace_match(rng, text, pattern, make) -> str:
    found = list(pattern.finditer(text))
    if not found:
        return text
    m = rng.choice(found)
    return text[: m.start()] + make(m) + text[m.end() :]


def m_number(rng, text, corpus, ops):
    return _replace_match(rng, text, NUMBER, lambda m: rng.choice(INTERESTING))


def m_op(rng, text, corpus, ops):
    return _replace_match(rng, text, CALL, lambda m: rng.choice(ops) + "(")


def m_keyword(rng, text, corpus, ops):
    """A keyword argument a user might try: torch's names, edge values, repeated ones."""
    names = (
        "in_channels",
        "in_features",
        "num_features",
        "eps",
        "p",
        "groups",
        "stride",
        "pad",
        "dilation",
        "bias",
        "momentum",
        "kernel_size",
        "negative_slope",
        "output_size",
        "ceil_mode",
        "like",
        "mode",
        "scale_factor",
        "size",
        "output_padding",
        "align_corners",
        "shape",
    )
    return _replace_match(
        rng, text, CALL, lambda m: f"{m.group(0)}{rng.choice(names)} = {rng.choice(INTERESTING)}, "
    )


def m_delete_token(rng, text, corpus, ops):
    return _replace_match(rng, text, TOKEN, lambda m: "")


def m_duplicate_token(rng, text, corpus, ops):
    return _replace_match(rng, text, TOKEN, lambda m: m.group(0) + " " + m.group(0))


def m_insert(rng, text, corpus, ops):
    at = rng.randrange(len(text) + 1)
    return text[:at] + rng.choice(SNIPPETS + PAYLOADS) + text[at:]


def m_string(rng, text, corpus, ops):
    return _replace_match(rng, text, STRING, lambda m: '"' + _escape(rng.choice(PAYLOADS)) + '"')


def m_label(rng, text, corpus, ops):
    """Relabel a layer with a computed label whose text is hostile."""

    def make(m):
        return f'{m.group(1)}_x: label("{_escape(rng.choice(PAYLOADS))}", Identity) -> '

    return _replace_match(rng, text, LABEL, make)


def m_lines(rng, text, corpus, ops):
    lines = text.split("\n")
    i = rng.randrange(len(lines))
    choice = rng.randrange(3)
    if choice == 0:
        lines.insert(i, lines[i])
    elif choice == 1:
        del lines[i]
    else:
        other = rng.choice(corpus).split("\n")
        lines.insert(i, rng.choice(other))
    return "\n".join(lines)


def m_truncate(rng, text, corpus, ops):
    return text[: rng.randrange(len(text) + 1)]


def _escape(payload: str) -> str:
    """Half the time as a .cnn escape sequence, half the time raw (the parser must cope with both)."""
    return payload.replace("\\", "\\\\").replace('"', '\\"') if payload.isprintable() else payload


MUTATIONS = (
    m_number,
    m_number,
    m_number,
    m_op,
    m_keyword,
    m_delete_token,
    m_duplicate_token,
    m_insert,
    m_string,
    m_label,
    m_lines,
    m_truncate,
)


# --- generated programs ---------------------------------------------------------------------------

SIMPLE = ("ReLU", "ReLU6", "Sigmoid", "Tanh", "SiLU", "GELU", "Hardswish", "Identity", "BatchNorm")


def generate(rng: random.Random, ops: list[str]) -> str:
    """A small random program: a block or two and a network using them, mostly well-formed."""
    blocks = [_block(rng, k, ops) for k in range(rng.randrange(3))]
    c, h = rng.choice((1, 3, 4, 16)), rng.choice((1, 7, 16, 32, 33))
    body = _chain(rng, ops, [f"B{k}" for k in range(len(blocks))], depth=0)
    tail = rng.choice(("", " -> GlobalAvgPool -> Flatten -> fc: Linear(10)", " -> Flatten"))
    network = f"network net {{\n    input [{c}, {h}, {h}]\n    return in -> {body}{tail}\n}}\n"
    return "\n".join(blocks) + "\n" + network


def _block(rng, k: int, ops: list[str]) -> str:
    main = _chain(rng, ops, [], depth=1)
    merge = rng.choice(("(main + in)", "concat(main, in)", "main", "(main * in)"))
    return (
        f"block B{k}(w = {rng.choice((4, 8, 16))}, s = 1) {{\n    main = in -> {main}\n"
        f"    return {merge} -> ReLU\n}}\n"
    )


def _chain(rng, ops, blocks, depth: int) -> str:
    parts = [_layer(rng, ops, blocks, depth) for _ in range(rng.randrange(1, 5))]
    return " -> ".join(parts)


def _layer(rng, ops, blocks, depth: int) -> str:
    roll = rng.random()
    if roll < 0.1 and depth < 2:
        inner = _chain(rng, ops, blocks, depth + 1)
        return f"[{inner} for i in range({rng.choice((0, 1, 2, 3))})]"
    if roll < 0.18 and depth < 2:
        a, b = _chain(rng, ops, blocks, depth + 1), _chain(rng, ops, blocks, depth + 1)
        return f"concat(in -> {a}, in -> {b})" if depth else f"({a})"
    if roll < 0.25 and blocks:
        return f"{rng.choice(blocks)}({rng.choice((4, 8, 'w'))})"
    if roll < 0.3:
        return f'label("{_escape(rng.choice(PAYLOADS))}", {rng.choice(SIMPLE)})'
    layer = _op_call(rng, ops)
    if rng.random() < 0.3:
        label = rng.choice(("conv", "fc", "x1", "layer1", "class", "forward", "a_b", "stem"))
        return f"{label}: {layer}"
    return layer


def _op_call(rng, ops) -> str:
    name = rng.choice(ops)
    if name == "Conv" or rng.random() < 0.3:
        name = "Conv"
        args = [
            rng.choice(("4", "8", "16", "w", "0", "3")),
            rng.choice(("1", "3", "5", "[1, 3]", "0")),
        ]
        if rng.random() < 0.5:
            args.append(f"pad = {rng.choice(('0', '1', 'same', '2', '-1'))}")
        if rng.random() < 0.3:
            args.append(f"stride = {rng.choice(('1', '2', '3'))}")
        if rng.random() < 0.2:
            args.append(f"groups = {rng.choice(('1', '2', '4', '3'))}")
        return f"Conv({', '.join(args)})"
    if rng.random() < 0.5:
        return name
    return f"{name}({', '.join(rng.choice(INTERESTING) for _ in range(rng.randrange(1, 3)))})"
