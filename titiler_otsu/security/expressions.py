"""What a request may put in `expression`: band math only, length-limited.

On top of rio-tiler's `validate_expression` (allowed AST nodes, numexpr functions only,
direct calls only), checked before any read:

* at most `max_length` characters (setting MAX_EXPRESSION_LENGTH);
* constants are numbers (no strings, bytes, None...);
* names are identifiers (band `b1`, asset `B08`), never starting with `_`;
* `**` between constants only with a literal base and a small literal exponent: numexpr
  evaluates constant sub-expressions with Python integers, so `9**9**9` would take the
  server's CPU for minutes;
* at most MAX_DEPTH levels of nesting; parse depth errors are a 400, not a crash.

May import: `errors`, `settings` and `security`.
"""

from __future__ import annotations

import ast
import re

from rio_tiler.errors import InvalidExpression
from rio_tiler.expression import get_expression_blocks, validate_expression

from titiler_otsu.errors import BadRequestError

#: Largest literal exponent in `constant ** constant`.
MAX_CONSTANT_EXPONENT = 64
#: Deepest nesting of operations (numexpr compiles recursively).
MAX_DEPTH = 100
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_HELP = (
    "Use band math: band names (b1, b2... or asset names), numbers, + - * / ** %, comparisons, "
    "& | ~ and numexpr functions such as where(), sqrt(), log(), abs()."
)


def _constant_only(node: ast.AST) -> bool:
    """Whether a sub-expression involves no band (numexpr folds it in Python)."""
    return not any(isinstance(n, ast.Name) for n in ast.walk(node))


def _literal(node: ast.AST) -> float | None:
    """The value of a plain (optionally signed) number literal, else None."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _literal(node.operand)
        return None if value is None else (-value if isinstance(node.op, ast.USub) else value)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return float(node.value)
    return None


def _depth(tree: ast.AST) -> int:
    """Nesting depth of a tree (iterative: safe on deep trees)."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return deepest


def _check_node(node: ast.AST, block: str) -> None:
    if isinstance(node, ast.Constant) and not isinstance(node.value, (int, float)):
        raise BadRequestError(f"Invalid expression '{block}': only numbers may be constants. {_HELP}")
    if isinstance(node, ast.Name) and not _NAME.match(node.id):
        raise BadRequestError(f"Invalid expression '{block}': '{node.id}' is not a band or asset name. {_HELP}")
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow) and _constant_only(node.right):
        exponent = _literal(node.right)
        if (
            exponent is None
            or abs(exponent) > MAX_CONSTANT_EXPONENT
            or (_constant_only(node.left) and _literal(node.left) is None)
        ):
            raise BadRequestError(
                f"Invalid expression '{block}': a constant power must be number ** number with an "
                f"exponent of at most {MAX_CONSTANT_EXPONENT} (write large numbers out, e.g. 1e30)."
            )


def check_expression(expression: str, max_length: int) -> str:
    """Validate a band-math expression (blocks separated by `;`); return it unchanged.

    Raises:
        BadRequestError: too long, not band math, or a disallowed construct (message says why).

    """
    if len(expression) > max_length:
        raise BadRequestError(
            f"expression is longer than {max_length} characters (setting MAX_EXPRESSION_LENGTH): simplify it."
        )
    blocks = [b.strip() for b in get_expression_blocks(expression) if b.strip()]
    if not blocks:
        raise BadRequestError(f"expression is empty. {_HELP}")
    for block in blocks:
        try:
            validate_expression(block)
            tree = ast.parse(block, mode="eval")
        except InvalidExpression as e:
            raise BadRequestError(f"Invalid expression '{block}': {e}. {_HELP}") from e
        except (RecursionError, MemoryError) as e:
            raise BadRequestError("expression is nested too deeply: simplify it.") from e
        if _depth(tree) > MAX_DEPTH:
            raise BadRequestError(f"expression is nested more than {MAX_DEPTH} levels deep: simplify it.")
        for node in ast.walk(tree):
            _check_node(node, block)
    return expression
