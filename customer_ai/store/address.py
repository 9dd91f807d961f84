"""Database addresses: read as libpq reads them, and shown without any part of a password.

A PostgreSQL URI is read by libpq differently from most URL parsers: libpq ends the user and password at the
*first* ``@`` that comes before any ``/``, where a URL parser ends them at the last ``@`` of the authority.  An
address on which the two readings disagree (a raw ``@`` or ``/`` in the password, say) is ambiguous: libpq would
take part of the password for the host or the database, and every message naming that host would print it.
Such an address is refused (:func:`ambiguous_address`), and :func:`mask_password` hides what either reading
takes for a password.
"""

from __future__ import annotations

import os
import re
from urllib.parse import unquote

__all__ = ["ambiguous_address", "mask_password", "postgres_location"]

URI_PREFIXES = ("postgresql://", "postgres://")
_HIDDEN = "***"
_SECRET = "password"  # any key holding it is a secret: password, sslpassword
_QUERY_KEY = re.compile(r"[?&]([^=&?]*)=")


def _password_span(rest: str, end: int) -> tuple[int, int] | None:
    """Return where the password lies in ``rest`` when the user and password end at ``end``, if there is one."""
    colon = rest.find(":", 0, end)
    return None if colon < 0 or colon + 1 == end else (colon + 1, end)


def _libpq_userinfo_end(rest: str) -> int:
    """Return where libpq ends a URI's user and password (the first ``@`` before any ``/``), or -1."""
    at, slash = rest.find("@"), rest.find("/")
    return at if at >= 0 and (slash < 0 or at < slash) else -1


def _uri_secret_spans(rest: str) -> list[tuple[int, int]]:
    """Return the spans of ``rest`` (a URI after ``scheme://``) that any reading takes for a secret."""
    ends = {_libpq_userinfo_end(rest), rest.rfind("@")} - {-1}  # libpq's reading and the last-@ one
    spans = [span for end in ends if (span := _password_span(rest, end))]
    for match in _QUERY_KEY.finditer(rest):
        if _SECRET in unquote(match.group(1)).lower():
            spans.append((match.end(), len(rest)))  # to the end: a raw '&' may be part of the value
    return spans


def _conninfo_secret_spans(text: str) -> list[tuple[int, int]]:
    """Return the spans of the secret values of a libpq ``key=value`` string, tokenised as libpq does.

    Values are bare (up to white space, a backslash escaping the next character) or single-quoted (a backslash
    escaping the next character).  From a point libpq could not parse, the rest counts as secret if it mentions a
    password.
    """
    spans, i, n = [], 0, len(text)
    while i < n:
        while i < n and text[i].isspace():
            i += 1
        if i == n:
            break
        start = i
        while i < n and text[i] != "=" and not text[i].isspace():
            i += 1
        key = text[start:i]
        while i < n and text[i].isspace():
            i += 1
        if i == n or text[i] != "=":
            return [*spans, *_suspect_rest(text, start)]  # libpq refuses the string from here on
        i += 1
        while i < n and text[i].isspace():
            i += 1
        value, quoted = i, i < n and text[i] == "'"
        i += quoted
        while i < n and (quoted or not text[i].isspace()):
            if text[i] == "\\":
                i += 1
            elif quoted and text[i] == "'":
                break
            i += 1
        if quoted and i >= n:  # an unterminated quote
            return [*spans, *_suspect_rest(text, value, key)]
        i += quoted
        if _SECRET in key.lower():
            spans.append((value, min(i, n)))
    return spans


def _suspect_rest(text: str, start: int, key: str = "") -> list[tuple[int, int]]:
    """Return the span from ``start`` to the end if it (or ``key``) mentions a password, else nothing."""
    return [(start, len(text))] if _SECRET in (key + text[start:]).lower() else []


def _hide(text: str, spans: list[tuple[int, int]]) -> str:
    """Return ``text`` with every span (merged where they overlap or touch) replaced by ``***``."""
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    out, done = [], 0
    for start, end in merged:
        out += [text[done:start], _HIDDEN]
        done = end
    return "".join(out) + text[done:]


def mask_password(address: str) -> str:
    """Return a database address with every part of its password replaced by ``***``.

    Whatever the address looks like, what libpq reads as the password, what a URL parser reads as one (up to the
    last ``@``), and the values of ``password`` and ``sslpassword`` parameters are hidden.

    Parameters
    ----------
    address : str
        A URI (``scheme://user:password@host/db?...``) or a libpq ``key=value`` string.
    """
    if "://" in address:
        prefix, rest = address.split("://", 1)
        return f"{prefix}://{_hide(rest, _uri_secret_spans(rest))}"
    return _hide(address, _conninfo_secret_spans(address))


def ambiguous_address(dsn: str) -> bool:
    """Whether libpq reads a PostgreSQL URI's user and password differently from a URL parser.

    libpq ends them at the first ``@`` before any ``/``; a URL parser at the last ``@``.  They disagree when the
    address holds a second raw ``@``, or an ``@`` after a ``/`` (a raw ``@`` or ``/`` in the password): libpq
    would then read part of the password as the host, port or database.  A ``key=value`` string is never
    ambiguous.
    """
    if not dsn.startswith(URI_PREFIXES):
        return False
    rest = dsn.split("://", 1)[1]
    return _libpq_userinfo_end(rest) != rest.rfind("@")


def ambiguity_message(dsn: str) -> str:
    """Say why an ambiguous address (:func:`ambiguous_address`) is refused, showing it only masked."""
    return (
        f"ambiguous PostgreSQL address {mask_password(dsn)!r}: libpq ends the user and password at the first '@' "
        "before any '/', so it would read part of them as the host or the database; percent-encode '@' as %40 "
        "(and '/' as %2F) in the user or password"
    )


def postgres_location(dsn: str) -> str:
    """Return ``host=... port=... dbname=...`` of a PostgreSQL address as libpq reads it (defaults filled in).

    An address libpq cannot parse, or an ambiguous one (:func:`ambiguous_address`), whose host or database may
    hold part of the password, is described by its masked text instead.
    """
    if ambiguous_address(dsn):
        return mask_password(dsn)
    try:
        from psycopg2.extensions import parse_dsn  # noqa: PLC0415 - the driver comes with the postgres extra

        params = parse_dsn(dsn)
    except Exception:  # an unparseable address, or no driver to read it: described by its masked text
        return mask_password(dsn)
    host = params.get("host") or params.get("hostaddr") or os.environ.get("PGHOST") or "localhost"
    port = params.get("port") or os.environ.get("PGPORT") or "5432"
    user = params.get("user") or os.environ.get("PGUSER")
    dbname = params.get("dbname") or os.environ.get("PGDATABASE") or user or "(default)"
    return f"host={host} port={port} dbname={dbname}"
