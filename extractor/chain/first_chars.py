"""A regex's first characters, to make a search over a long alternation skip positions where no match can start.

Python's ``re`` tries every alternative of ``\\b(?:presented|was admitted|...)\\b`` (with IGNORECASE) at every
position of the text. :func:`guarded` prefixes the pattern with a lookahead of the characters a match can start
with, computed from the parsed pattern (:func:`first_chars`): the matches are the same, found without trying the
alternatives where the text's character cannot start one (the narrative cues of ``calibration``: 14 -> 7 µs per
short entry). A pattern this cannot analyse is returned as it is.
"""

from __future__ import annotations

import logging
import re
from re import _constants as C  # noqa: N812 - the parser's opcodes
from re import _parser
from typing import Any

log = logging.getLogger(__name__)

_CATEGORIES = {C.CATEGORY_DIGIT: r"\d", C.CATEGORY_SPACE: r"\s", C.CATEGORY_WORD: r"\w"}


def first_chars(pattern: str, flags: int = 0) -> tuple[set[str], set[str]]:
    """(characters, class escapes such as ``\\d``) that every match of ``pattern`` starts with one of; raises
    ValueError when a match can be empty or the pattern holds a construct this does not follow (lookarounds,
    backreferences, negated classes...)."""
    chars, classes, nullable = _first(list(_parser.parse(pattern, flags)))
    if nullable:
        raise ValueError("the pattern can match the empty string")
    return chars, classes


def _first(items: list[Any]) -> tuple[set[str], set[str], bool]:
    chars: set[str] = set()
    classes: set[str] = set()
    for op, av in items:
        if op is C.AT:  # \b, ^, $: zero-width, the next item consumes the first character
            continue
        if op is C.LITERAL:
            chars.add(chr(av))
            return chars, classes, False
        if op is C.IN:
            for o, a in av:
                if o is C.LITERAL:
                    chars.add(chr(a))
                elif o is C.RANGE:
                    chars.update(chr(c) for c in range(a[0], a[1] + 1))
                elif o is C.CATEGORY and a in _CATEGORIES:
                    classes.add(_CATEGORIES[a])
                else:
                    raise ValueError(f"character class item {o}")
            return chars, classes, False
        if op is C.SUBPATTERN:
            sub: list[list[Any]] = [list(av[3])]
        elif op is C.BRANCH:
            sub = [list(alt) for alt in av[1]]
        elif op in (C.MAX_REPEAT, C.MIN_REPEAT):
            sub = [list(av[2])]
        else:
            raise ValueError(f"construct {op}")
        nullable = False
        for s in sub:
            c, k, n = _first(s)
            chars |= c
            classes |= k
            nullable |= n
        if op in (C.MAX_REPEAT, C.MIN_REPEAT) and av[0] == 0:
            nullable = True
        if not nullable:
            return chars, classes, False
    return chars, classes, True


def guarded(pattern: re.Pattern[str]) -> re.Pattern[str]:
    """``pattern`` with a lookahead of its first characters (same flags, so case folding is the pattern's own);
    ``pattern`` itself when its first characters cannot be worked out."""
    try:
        chars, classes = first_chars(pattern.pattern, pattern.flags)
    except (ValueError, re.error, TypeError, IndexError) as exc:
        log.debug("no first-character guard for %r: %s", pattern.pattern[:40], exc)
        return pattern
    charset = "".join(re.escape(c) for c in sorted(chars)) + "".join(sorted(classes))
    return re.compile(f"(?=[{charset}])(?:{pattern.pattern})", pattern.flags)
