"""One family for the errors a user can fix, and one way to say any error in a line.

Every error that bad input, a missing thing or an account setting causes derives from
:class:`AmcError`; :func:`user_message` turns any exception into the message the CLI prints and the
dashboard shows, secrets redacted.  Backends whose client library raises its own errors (botocore)
register an explainer for them, so this module imports no backend.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

Explainer = Callable[[BaseException], "str | None"]
_EXPLAINERS: list[Explainer] = []


class AmcError(Exception):
    """Something the user can fix; the message says what (and where)."""


def register_explainer(explainer: Explainer) -> None:
    """Teach :func:`user_message` a library's errors: ``explainer`` returns a sentence, or None."""
    if explainer not in _EXPLAINERS:
        _EXPLAINERS.append(explainer)


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every non-empty secret replaced by asterisks."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "****")
    return text


def user_message(exc: BaseException, secrets: Iterable[str | None] = (), one_line: bool = True) -> str:
    """What went wrong, for a person: the error's own words for the errors we raise, a sentence for a
    library's, ``Type: text`` for anything unexpected; on one line unless ``one_line`` is False."""
    text = None
    for explain in _EXPLAINERS:
        text = explain(exc)
        if text:
            break
    problems = getattr(exc, "problems", None)
    if not text and isinstance(problems, dict) and problems:  # every bad field named, one per clause
        text = "; ".join(f"{key}: {problem}" for key, problem in problems.items())
    if not text:
        if isinstance(exc, OSError) and exc.filename and exc.strerror:
            text = f"{exc.strerror}: {exc.filename}"
        elif isinstance(exc, (AmcError, OSError, ValueError, LookupError)):
            text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
        text = text or f"{type(exc).__name__}: {exc}".rstrip(": ")
    if one_line:
        text = " ".join(line.strip() for line in text.splitlines() if line.strip())
    return redact(text, secrets)


def is_expected(exc: BaseException) -> bool:
    """True for errors that bad input or the environment cause (shown without a traceback)."""
    return isinstance(exc, (AmcError, OSError, ValueError, LookupError)) or any(e(exc) for e in _EXPLAINERS)
