"""Band math with STAC asset names: `(B03-B08)/(B03+B08)`.

rio-tiler's multi-asset readers name the bands of the assets they read `b1, b2, ...` in the
order of `assets`. Users think in asset names, so an expression may name single-band assets
directly; this module finds the assets an expression needs and rewrites it to band names.

May import: `core`, `security`, `io`, `errors`, `settings`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from titiler_otsu.errors import BadRequestError

_NAME = re.compile(r"(?<![\w.])([A-Za-z_]\w*)(?!\w)(\s*\()?")
_BAND = re.compile(r"^b\d+$")


def _names(expression: str) -> list[str]:
    """Variable names of an expression (function names, followed by '(', excluded)."""
    return [m.group(1) for m in _NAME.finditer(expression) if not m.group(2)]


def resolve_expression(
    expression: str,
    available: Sequence[str],
    assets: Sequence[str] | None,
) -> tuple[list[str] | None, str]:
    """Assets to read and the expression in rio-tiler band names.

    Args:
        expression: rio-tiler expression; variables are asset names (`B08`) or band
            names (`b1`, in the order of `assets`).
        available: the source's asset names.
        assets: the assets the user asked for (None: the ones the expression names).

    Returns:
        tuple: (assets to read or None if unchanged, expression with `b{n}` names).

    Raises:
        BadRequestError: a name that is neither an asset nor a band of the assets read.

    """
    names = list(dict.fromkeys(_names(expression)))
    asset_names = [n for n in names if n in available]
    unknown = [n for n in names if n not in available and not _BAND.match(n)]
    if unknown:
        raise BadRequestError(
            f"Unknown asset {', '.join(repr(n) for n in unknown)} in expression. "
            f"Available assets: {', '.join(available)}."
        )
    if not asset_names:
        if assets is None:
            raise BadRequestError(
                "This expression names no asset: name assets in it (e.g. (B03-B08)/(B03+B08)) "
                "or pass them with `assets=`, in the order of b1, b2, ..."
            )
        return None, expression
    if assets is None:
        read = asset_names
    else:
        missing = [n for n in asset_names if n not in assets]
        if missing:
            raise BadRequestError(
                f"The expression names {', '.join(missing)} which is not in `assets`: add it or drop `assets=`."
            )
        read = list(assets)
    index = {name: f"b{i + 1}" for i, name in enumerate(read)}
    rewritten = _NAME.sub(lambda m: index.get(m.group(1), m.group(1)) + (m.group(2) or ""), expression)
    return read, rewritten
