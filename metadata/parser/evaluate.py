"""A safe arithmetic evaluator for math-expression nodes: `ast` in, a number out, never eval/exec.

Only number literals, the names given, + - * / // % **, unary + -, parentheses and a few
numeric functions are accepted; anything else (attribute access, subscripts, comparisons,
strings, lambdas, comprehensions, unknown names or functions) raises UnsafeExpression. Sizes
are capped so that an expression in a prompt cannot stall the parser.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping
from typing import Any

Number = int | float

MAX_EXPRESSION_CHARS = 1000
MAX_NODES = 200
MAX_EXPONENT = 4000
MAX_INT_BITS = 4096

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
FUNCTIONS: dict[str, Callable[..., Any]] = {
    "min": min,
    "max": max,
    "round": round,
    "abs": abs,
    "floor": math.floor,
    "ceil": math.ceil,
    "int": int,
    "float": float,
}


class UnsafeExpression(ValueError):
    """The expression uses something outside the whitelist, or would be too large to compute."""


def safe_eval(expression: str, names: Mapping[str, Number]) -> Number:
    """The value of `expression` with `names` bound; UnsafeExpression for anything not allowed."""
    if not isinstance(expression, str) or len(expression) > MAX_EXPRESSION_CHARS:
        raise UnsafeExpression("the expression is not a string of a reasonable length")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as err:
        raise UnsafeExpression(f"not an expression: {err.msg}") from err
    if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
        raise UnsafeExpression("the expression is too long")
    try:
        return _checked(_eval(tree.body, names))
    except (ArithmeticError, TypeError, ValueError) as err:
        if isinstance(err, UnsafeExpression):
            raise
        raise UnsafeExpression(f"cannot compute: {err}") from err


def _eval(node: ast.AST, names: Mapping[str, Number]) -> Number:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise UnsafeExpression(f"only number literals are allowed, not {node.value!r}")
        return node.value
    if isinstance(node, ast.Name):
        if node.id not in names:
            raise UnsafeExpression(f"unknown name {node.id!r}")
        value = names[node.id]
        if not isinstance(value, (int, float)):
            raise UnsafeExpression(f"{node.id!r} is not a number")
        return value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left, names), _eval(node.right, names)
        if isinstance(node.op, ast.Pow):
            _check_power(left, right)
        return _checked(_BINARY[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _checked(_UNARY[type(node.op)](_eval(node.operand, names)))
    if isinstance(node, ast.Call):
        return _call(node, names)
    raise UnsafeExpression(f"{type(node).__name__} is not allowed")


def _call(node: ast.Call, names: Mapping[str, Number]) -> Number:
    if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS or node.keywords:
        raise UnsafeExpression("only min, max, round, abs, floor, ceil, int and float may be called")
    args = [_eval(arg, names) for arg in node.args]
    if not args:
        raise UnsafeExpression(f"{node.func.id}() needs an argument")
    result = FUNCTIONS[node.func.id](*args)
    if isinstance(result, bool) or not isinstance(result, (int, float)):
        raise UnsafeExpression(f"{node.func.id}() did not give a number")
    return _checked(result)


def _check_power(base: Number, exponent: Number) -> None:
    if abs(exponent) > MAX_EXPONENT:
        raise UnsafeExpression(f"exponent {exponent} is larger than {MAX_EXPONENT}")
    if (
        isinstance(base, int)
        and isinstance(exponent, int)
        and abs(base) > 1
        and base.bit_length() * exponent > MAX_INT_BITS
    ):
        raise UnsafeExpression("the power is too large")


def _checked(value: Number) -> Number:
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
        raise UnsafeExpression("the result is too large")
    if isinstance(value, float) and not math.isfinite(value):
        raise UnsafeExpression("the result is not finite")
    return value
