"""lme4-style mixed-model formulas.

A mixed-model formula such as::

    alsfrs_r ~ months * (anxiolytic + hypnotic) + age_at_dx + (months | patient_id)

is split here into its response, its fixed-effects part (handed to
`formulaic <https://matthewwardrop.github.io/formulaic/>`_ to build the
design matrix) and its random-effects terms ``(expr | group)``. This module
only reads text; design matrices are built in :mod:`alsfrs.matrices`.

Supported random-effects terms
------------------------------
``(1 | g)``
    random intercept;
``(x | g)``, ``(x + I(x^2) | g)``
    correlated random intercept and slopes (an unstructured covariance);
``(0 + x | g)``
    random slope without intercept;
``(x || g)``
    lme4's double bar: intercept and slopes uncorrelated (diagonal covariance),
    i.e. ``(1 | g) + (0 + x | g)``.

Several terms may be given as long as they share the **one** grouping factor
(``(1 | g) + (0 + x | g)``); two different grouping factors, nested (``a/b``)
or interacted (``a:b``) grouping factors are rejected.

Term naming follows R: the intercept is ``(Intercept)``, treatment-coded
factor columns are the variable name followed by the level (``sexM``),
interaction parts are joined by ``:`` in the order the variables first appear
in the formula, and powers inside ``I()`` are written with ``^``
(``I(months^2)``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from alsfrs.errors import Problem, ValidationError

__all__ = [
    "MixedFormula",
    "RandomTerm",
    "parse_formula",
    "r_column_name",
    "to_formulaic",
]

_IDENTIFIER = re.compile(r"^[A-Za-z_.][A-Za-z0-9_.]*$")
_ANSI = re.compile(r"\x1b\[[0-9;]*m|[⧛⧚]")


@dataclass(frozen=True)
class RandomTerm:
    """One random-effects term ``(expression | grouping)``.

    Attributes
    ----------
    expression : str
        The left-hand side in lme4 syntax, e.g. ``"months"`` or
        ``"0 + months"`` or ``"months + I(months^2)"``. An intercept is
        included unless removed with ``0 +`` or ``- 1``, as in lme4.
    grouping : str
        Name of the grouping column, e.g. ``"patient_id"``.
    correlated : bool
        ``True`` for ``|`` (unstructured covariance among the term's
        columns), ``False`` for lme4's ``||`` (independent columns).
    text : str
        The term as written, for messages.
    """

    expression: str
    grouping: str
    correlated: bool
    text: str

    @property
    def formulaic_expression(self) -> str:
        """The left-hand side in formulaic (Python) syntax."""
        return to_formulaic(self.expression)


@dataclass(frozen=True)
class MixedFormula:
    """A parsed lme4-style formula with a single grouping factor.

    Attributes
    ----------
    text : str
        The formula as given.
    response : str
        Name of the outcome column.
    fixed : str
        Right-hand side of the fixed-effects part in lme4 syntax (``"1"``
        when only random terms were given).
    random : tuple of RandomTerm
        The random-effects terms, in formula order.
    variable_order : tuple of str
        Variables (and ``I()`` expressions) in order of first appearance,
        used to order interaction names as R does.
    """

    text: str
    response: str
    fixed: str
    random: tuple[RandomTerm, ...]
    variable_order: tuple[str, ...] = field(default=())

    @property
    def grouping(self) -> str:
        """The single grouping factor."""
        return self.random[0].grouping

    @property
    def fixed_formulaic(self) -> str:
        """The fixed-effects right-hand side in formulaic syntax."""
        return to_formulaic(self.fixed)

    def __str__(self) -> str:
        return self.text


def to_formulaic(expression: str) -> str:
    """Translate lme4 syntax to formulaic syntax.

    Only ``^`` inside ``I(...)`` needs translating (R's power operator is
    Python's ``**``); outside ``I()``, ``(a + b)^2`` is an interaction
    operator in both languages.

    Parameters
    ----------
    expression : str
        Formula text in lme4 syntax.

    Returns
    -------
    str
        Formula text formulaic understands.
    """
    out = []
    i = 0
    n = len(expression)
    while i < n:
        m = re.match(r"I\s*\(", expression[i:])
        if m and (i == 0 or not (expression[i - 1].isalnum() or expression[i - 1] in "_.")):
            start = i + m.end()
            depth = 1
            j = start
            while j < n and depth:
                if expression[j] == "(":
                    depth += 1
                elif expression[j] == ")":
                    depth -= 1
                j += 1
            inner = expression[start : j - 1].replace("^", "**")
            out.append("I(" + inner + ")")
            i = j
        else:
            out.append(expression[i])
            i += 1
    return "".join(out)


def r_column_name(name: str, variable_order: tuple[str, ...] | list[str] = ()) -> str:
    """Convert a formulaic column name to R's ``model.matrix`` name.

    Parameters
    ----------
    name : str
        Column name produced by formulaic, e.g. ``"Intercept"``,
        ``"sex[T.M]"``, ``"site[T.bulbar]:months"``, ``"I(months ** 2)"``.
    variable_order : sequence of str, optional
        Variables in order of first appearance in the formula; interaction
        parts are re-ordered to this order, as R does.

    Returns
    -------
    str
        ``"(Intercept)"``, ``"sexM"``, ``"months:sitebulbar"``,
        ``"I(months^2)"``.
    """
    if name == "Intercept":
        return "(Intercept)"
    parts = _split_top(name, ":")
    converted = []
    for part in parts:
        variable, level = _split_level(part)
        variable_r = _r_expression(variable)
        converted.append((variable_r, variable_r + ("" if level is None else level)))
    if variable_order:
        rank = {v: k for k, v in enumerate(variable_order)}
        converted.sort(key=lambda vc: rank.get(vc[0], len(rank)))
    return ":".join(c for _, c in converted)


def _r_expression(expr: str) -> str:
    """Formulaic factor expression → R deparse (``x ** 2`` → ``x^2``)."""
    return re.sub(r"\s*\*\*\s*", "^", expr)


def _split_level(part: str) -> tuple[str, str | None]:
    """``"sex[T.M]"`` → ``("sex", "M")``; ``"sex[M]"`` → ``("sex", "M")``."""
    m = re.match(r"^(.*)\[(?:T\.)?(.*)\]$", part, flags=re.S)
    if m and part.count("[") >= 1 and not part.startswith("I("):
        return m.group(1), m.group(2)
    return part, None


def _split_top(text: str, sep: str) -> list[str]:
    """Split ``text`` on ``sep`` at bracket depth 0 (round and square)."""
    parts: list[str] = []
    depth = 0
    start = 0
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif depth == 0 and text.startswith(sep, i):
            parts.append(text[start:i])
            i += len(sep)
            start = i
            continue
        i += 1
    parts.append(text[start:])
    return parts


def _malformed(formula: str, message: str) -> ValidationError:
    return ValidationError(
        [Problem(rule="malformed_formula", message=f"{message} (formula: {formula!r})")],
        context="the model formula",
    )


def _balanced(text: str) -> bool:
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


def _strip_outer(text: str) -> str | None:
    """``"(a | b)"`` → ``"a | b"`` if the outer parentheses enclose everything."""
    text = text.strip()
    if not (text.startswith("(") and text.endswith(")")):
        return None
    depth = 0
    for k, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0 and k != len(text) - 1:
                return None
    return text[1:-1]


def _check_syntax(formula: str, rhs: str, what: str) -> None:
    from formulaic import Formula
    from formulaic.errors import FormulaSyntaxError

    try:
        Formula(to_formulaic(rhs))
    except FormulaSyntaxError as exc:
        msg = _ANSI.sub("", str(exc)).splitlines()[0]
        raise _malformed(formula, f"cannot read the {what} {rhs.strip()!r}: {msg}") from None
    except Exception as exc:
        raise _malformed(formula, f"cannot read the {what} {rhs.strip()!r}: {exc}") from None


def _variables_in_order(formula: str) -> tuple[str, ...]:
    """Variables and ``I()``/function-call factors in order of appearance."""
    tokens: list[str] = []
    text = formula
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch.isalpha() or ch in "_.":
            j = i
            while j < n and (text[j].isalnum() or text[j] in "_."):
                j += 1
            word = text[i:j]
            k = j
            while k < n and text[k] == " ":
                k += 1
            if k < n and text[k] == "(":
                depth = 0
                m = k
                while m < n:
                    if text[m] == "(":
                        depth += 1
                    elif text[m] == ")":
                        depth -= 1
                        if depth == 0:
                            break
                    m += 1
                call = text[i : m + 1]
                tokens.append(_r_expression(_normalise_call(call)))
                i = m + 1
                continue
            tokens.append(word)
            i = j
            continue
        if ch == "`":
            j = text.find("`", i + 1)
            j = n if j < 0 else j
            tokens.append(text[i + 1 : j])
            i = j + 1
            continue
        i += 1
    seen: dict[str, None] = {}
    for t in tokens:
        seen.setdefault(t, None)
    return tuple(seen)


def _normalise_call(call: str) -> str:
    """Normalise spacing of a call the way formulaic prints factors."""
    try:
        import ast

        return ast.unparse(ast.parse(to_formulaic(call), mode="eval"))
    except SyntaxError:
        return call


def parse_formula(formula: str) -> MixedFormula:
    """Parse an lme4-style mixed-model formula with one grouping factor.

    Parameters
    ----------
    formula : str
        E.g. ``"alsfrs_r ~ months * anxiolytic + (months | patient_id)"``.

    Returns
    -------
    MixedFormula
        Response, fixed-effects part and random-effects terms.

    Raises
    ------
    alsfrs.errors.ValidationError
        If the formula is malformed, has no random-effects term, or has more
        than one grouping factor (the rule ``"malformed_formula"``,
        ``"no_random_effects"``, ``"several_grouping_factors"`` or
        ``"unsupported_grouping"``).
    """
    if not isinstance(formula, str) or not formula.strip():
        raise _malformed(str(formula), "the formula must be a non-empty string")
    text = " ".join(formula.split())
    if not _balanced(text):
        raise _malformed(formula, "unbalanced parentheses")
    sides = _split_top(text, "~")
    if len(sides) != 2:
        raise _malformed(
            formula,
            "expected exactly one '~' separating the response from the terms"
            if len(sides) < 2
            else "more than one '~'",
        )
    response, rhs = sides[0].strip(), sides[1].strip()
    if not response:
        raise _malformed(formula, "no response (outcome) before '~'")
    if response.startswith("`") and response.endswith("`"):
        response = response[1:-1]
    elif not _IDENTIFIER.match(response):
        raise _malformed(
            formula,
            f"the response must be a column name, got {response!r} "
            "(transform the outcome in the data instead)",
        )
    if not rhs:
        raise _malformed(formula, "no terms after '~'")

    fixed_parts: list[str] = []
    random_terms: list[RandomTerm] = []
    for chunk in _split_top(rhs, "+"):
        piece = chunk.strip()
        if not piece:
            raise _malformed(formula, "a '+' with nothing on one side")
        if "|" not in piece:
            fixed_parts.append(piece)
            continue
        inner = _strip_outer(piece)
        if inner is None:
            raise _malformed(
                formula,
                f"a random-effects term must be written '(expression | group)', got {piece!r}",
            )
        double = _split_top(inner, "||")
        if len(double) == 2:
            lhs, group, correlated = double[0], double[1], False
        else:
            single = _split_top(inner, "|")
            if len(single) != 2:
                raise _malformed(formula, f"cannot read the random-effects term {piece!r}")
            lhs, group, correlated = single[0], single[1], True
        lhs, group = lhs.strip(), group.strip()
        if not lhs:
            raise _malformed(formula, f"no expression before '|' in {piece!r}")
        if not group:
            raise _malformed(formula, f"no grouping factor after '|' in {piece!r}")
        if group.startswith("`") and group.endswith("`"):
            group = group[1:-1]
        elif not _IDENTIFIER.match(group):
            raise ValidationError(
                [
                    Problem(
                        rule="unsupported_grouping",
                        message=(
                            f"the grouping factor {group!r} in {piece!r} is not a single "
                            "column; nested (a/b) or interacted (a:b) grouping factors are "
                            "not supported (one grouping factor only)"
                        ),
                    )
                ],
                context="the model formula",
            )
        _check_syntax(formula, lhs, "random-effects expression")
        random_terms.append(RandomTerm(lhs, group, correlated, piece))

    if not random_terms:
        raise ValidationError(
            [
                Problem(
                    rule="no_random_effects",
                    message=(
                        f"the formula {formula!r} has no random-effects term such as "
                        "'(months | patient_id)'; a linear mixed model needs one"
                    ),
                )
            ],
            context="the model formula",
        )
    groups = list(dict.fromkeys(t.grouping for t in random_terms))
    if len(groups) > 1:
        raise ValidationError(
            [
                Problem(
                    rule="several_grouping_factors",
                    message=(
                        f"the formula has {len(groups)} grouping factors ({', '.join(groups)}); "
                        "only one grouping factor is supported"
                    ),
                )
            ],
            context="the model formula",
        )
    fixed = " + ".join(fixed_parts) if fixed_parts else "1"
    _check_syntax(formula, fixed, "fixed-effects part")
    order = _variables_in_order(
        response + " ~ " + " + ".join(fixed_parts + [t.expression for t in random_terms])
    )
    return MixedFormula(
        text=text,
        response=response,
        fixed=fixed,
        random=tuple(random_terms),
        variable_order=order,
    )
