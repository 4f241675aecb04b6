"""Readers for labelled data: a labelled CSV or a span JSONL file.

Both become a list of :class:`Example`. A file the harness cannot read raises :class:`DataError`, whose
message names the file and the (1-based, physical) line, so the CLI can print it and exit with status 2.

Labelled CSV
    a text column ``text`` or ``medical_entry``, gold columns ``illnesses`` and ``medicines`` holding
    ``|``-separated surface strings (empty = none), optional ``entry_id``; other columns are ignored.
Span JSONL (``.jsonl``)
    one object a line: ``{"entry_id"?, "text", "spans": [{"start", "end", "label"}]}`` with labels ILLNESS and
    MEDICINE, Python character offsets, end exclusive. Gold strings are the spans' surfaces, deduplicated.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

FIELDS: tuple[str, ...] = ("illness", "medicine")
LABEL_OF_FIELD: dict[str, str] = {"illness": "ILLNESS", "medicine": "MEDICINE"}
FIELD_OF_LABEL: dict[str, str] = {v: k for k, v in LABEL_OF_FIELD.items()}
TEXT_COLUMNS: tuple[str, ...] = ("text", "medical_entry")
GOLD_COLUMNS: dict[str, str] = {"illness": "illnesses", "medicine": "medicines"}


class DataError(ValueError):
    """Unreadable labelled data; ``str(err)`` is ``"FILE:LINE: message"``."""

    def __init__(self, path: str | Path, line: int | None, message: str) -> None:
        self.path = str(path)
        self.line = line
        self.message = message
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True, slots=True)
class Span:
    start: int
    end: int
    label: str  # ILLNESS | MEDICINE


@dataclass(frozen=True, slots=True)
class Example:
    entry_id: str
    text: str
    gold: dict[str, tuple[str, ...]]  # field -> gold surface strings (deduplicated, in file order)
    spans: tuple[Span, ...] | None  # gold spans (span JSONL only)
    line: int  # line of the file where the entry starts


@dataclass(frozen=True, slots=True)
class Dataset:
    path: str
    format: str  # "csv" | "jsonl"
    examples: list[Example]

    @property
    def has_spans(self) -> bool:
        return self.format == "jsonl"

    def __len__(self) -> int:
        return len(self.examples)


def _split_gold(value: str) -> tuple[str, ...]:
    out: list[str] = []
    for part in value.split("|"):
        part = part.strip()
        if part and part not in out:
            out.append(part)
    return tuple(out)


def _decode(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(path, None, "file not found") from None
    except IsADirectoryError:
        raise DataError(path, None, "is a directory, expected a labelled .csv or .jsonl file") from None
    except OSError as exc:
        raise DataError(path, None, f"cannot read: {exc.strerror}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise DataError(path, line, f"not valid UTF-8 (byte {exc.start})") from None


def read_csv(path: str | Path) -> Dataset:
    path = Path(path)
    content = _decode(path)
    reader = csv.reader(io.StringIO(content, newline=""), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise DataError(path, 1, "empty file: expected a header row") from None
    except csv.Error as exc:
        raise DataError(path, reader.line_num or 1, f"malformed CSV header: {exc}") from None
    header = [h.strip() for h in header]
    text_col = next((c for c in TEXT_COLUMNS if c in header), None)
    missing = [] if text_col else ["text (or medical_entry)"]
    missing += [col for col in GOLD_COLUMNS.values() if col not in header]
    if missing:
        raise DataError(
            path, 1, f"missing column(s) {', '.join(missing)}; header has: {', '.join(header) or '(nothing)'}"
        )
    assert text_col is not None
    index = {name: i for i, name in reversed(list(enumerate(header)))}  # first occurrence wins
    i_text = index[text_col]
    i_gold = {f: index[col] for f, col in GOLD_COLUMNS.items()}
    i_id = index.get("entry_id")
    examples: list[Example] = []
    row_no = 0
    while True:
        start_line = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise DataError(path, reader.line_num or start_line, f"malformed CSV: {exc}") from None
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # blank line
        row_no += 1
        if len(row) != len(header):
            raise DataError(path, start_line, f"row has {len(row)} field(s), the header has {len(header)}")
        entry_id = row[i_id].strip() if i_id is not None else ""
        examples.append(
            Example(
                entry_id=entry_id or f"row-{row_no}",
                text=row[i_text],
                gold={f: _split_gold(row[i]) for f, i in i_gold.items()},
                spans=None,
                line=start_line,
            )
        )
    return Dataset(str(path), "csv", examples)


def read_jsonl(path: str | Path) -> Dataset:
    path = Path(path)
    content = _decode(path)
    examples: list[Example] = []
    for line_no, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(path, line_no, f"invalid JSON: {exc.msg} (column {exc.colno})") from None
        if not isinstance(obj, dict):
            raise DataError(path, line_no, "expected a JSON object")
        text = obj.get("text")
        if not isinstance(text, str):
            raise DataError(path, line_no, 'missing or non-string "text"')
        spans_raw = obj.get("spans")
        if not isinstance(spans_raw, list):
            raise DataError(path, line_no, 'missing "spans" list')
        spans: list[Span] = []
        for k, s in enumerate(spans_raw):
            if not isinstance(s, dict):
                raise DataError(path, line_no, f"span {k} is not an object")
            start, end, label = s.get("start"), s.get("end"), s.get("label")
            if not (type(start) is int and type(end) is int and 0 <= start < end <= len(text)):
                raise DataError(
                    path,
                    line_no,
                    f"span {k} has bad offsets start={start!r} end={end!r} (text length {len(text)})",
                )
            if label not in FIELD_OF_LABEL:
                raise DataError(path, line_no, f"span {k} has label {label!r}, expected ILLNESS or MEDICINE")
            spans.append(Span(start, end, label))
        spans.sort(key=lambda s: (s.start, s.end, s.label))
        gold: dict[str, tuple[str, ...]] = {}
        for field in FIELDS:
            seen: list[str] = []
            for s in spans:
                if s.label == LABEL_OF_FIELD[field]:
                    surface = text[s.start : s.end]
                    if surface not in seen:
                        seen.append(surface)
            gold[field] = tuple(seen)
        entry_id = obj.get("entry_id")
        examples.append(
            Example(
                entry_id=str(entry_id) if entry_id not in (None, "") else f"line-{line_no}",
                text=text,
                gold=gold,
                spans=tuple(spans),
                line=line_no,
            )
        )
    return Dataset(str(path), "jsonl", examples)


def read_labelled(path: str | Path) -> Dataset:
    """Read a labelled CSV or, for a ``.jsonl``/``.ndjson`` name, a span JSONL file."""
    p = Path(path)
    if p.suffix.lower() in (".jsonl", ".ndjson"):
        return read_jsonl(p)
    return read_csv(p)


def filter_gold(dataset: Dataset, drop: dict[str, set[str]]) -> tuple[Dataset, int]:
    """The dataset without the gold items the service does not report (``drop``: field -> normalised strings,
    from lexicons/non_entities.tsv), and how many were removed. The same rows make the chain drop or move
    those entities, so both sides follow one definition (models/README.md, "What counts")."""
    from evaluation.scoring import normalize

    if not any(drop.values()):
        return dataset, 0
    removed = 0
    out: list[Example] = []
    for ex in dataset.examples:
        gold = {}
        for f, items in ex.gold.items():
            keep = tuple(g for g in items if normalize(g) not in drop.get(f, ()))
            removed += len(items) - len(keep)
            gold[f] = keep
        spans = ex.spans
        if spans is not None:
            spans = tuple(
                s for s in spans if normalize(ex.text[s.start : s.end]) not in drop.get(FIELD_OF_LABEL[s.label], ())
            )
        out.append(Example(ex.entry_id, ex.text, gold, spans, ex.line))
    return Dataset(dataset.path, dataset.format, out), removed
