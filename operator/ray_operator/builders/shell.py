"""Putting user-written values on a bash command line.

The `ray start` command runs under `/bin/bash -c`, and upstream pastes rayStartParams
values into it unquoted. Users rely on that: the custom `resources` param is written
pre-quoted (`'"{\\"TPU\\": 4}"'` in YAML, which bash turns into `{"TPU": 4}`), and
values refer to environment variables (`$REDIS_PASSWORD`). Other values were never
meant for a shell: `my value`, `a;b`, or raw JSON like `{"a": 1, "b": 2}`, which bash
would split or brace-expand.

So `shell_word` keeps a value as written when bash reads it as exactly one word with
no command substitution, globbing or brace expansion (quotes, backslash escapes and
plain `$NAME`/`${NAME}` references allowed), and single-quotes anything else so that
Ray receives it literally.
"""

from __future__ import annotations

import re
import shlex

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Outside quotes these split words, start other commands, redirect, glob, or expand.
_SPECIAL_UNQUOTED = frozenset(";&|()<>*?[{}`")


def _dollar_end(text: str, i: int) -> int | None:
    """`text[i]` is '$': the index after a harmless expansion (`$NAME`, `${NAME}`, a
    literal '$'), or None for command substitution, arithmetic or a complex `${...}`."""
    following = text[i + 1 : i + 2]
    if following == "(":
        return None
    if following == "{":
        end = text.find("}", i + 2)
        if end < 0 or not _NAME.fullmatch(text[i + 2 : end]):
            return None
        return end + 1
    return i + 1


def _double_quoted_end(text: str, i: int) -> int | None:
    """`text[i]` is '"': the index after the closing quote, or None if the quoted part
    is unterminated or runs a command."""
    i += 1
    while i < len(text):
        ch = text[i]
        if ch == '"':
            return i + 1
        if ch == "\\":
            i += 2
        elif ch == "`":
            return None
        elif ch == "$":
            end = _dollar_end(text, i)
            if end is None:
                return None
            i = end
        else:
            i += 1
    return None


def is_plain_word(text: str) -> bool:
    """True if bash reads `text` as one word without running or globbing anything."""
    i = 0
    while i < len(text):
        ch = text[i]
        end: int | None
        if ch == "'":
            close = text.find("'", i + 1)
            end = None if close < 0 else close + 1
        elif ch == '"':
            end = _double_quoted_end(text, i)
        elif ch == "\\":
            end = i + 2 if i + 1 < len(text) else None
        elif ch == "$":
            end = _dollar_end(text, i)
        elif ch.isspace() or ch in _SPECIAL_UNQUOTED:
            end = None
        else:
            end = i + 1
        if end is None:
            return False
        i = end
    return True


def shell_word(text: str) -> str:
    """`text` as written if it is a plain word (see module doc), else single-quoted."""
    return text if is_plain_word(text) else shlex.quote(text)


def unquote(text: str) -> str:
    """What a program receives for the word `shell_word(text)` (without expanding
    variables): used to read values such as the `resources` JSON."""
    if not is_plain_word(text):
        return text
    words = shlex.split(text)
    return words[0] if words else ""
