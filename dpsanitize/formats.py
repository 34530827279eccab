"""Structured inputs: sanitize named columns of CSV/TSV and named fields of JSON lines, keep the rest.

Only the text of the named columns (fields) is rewritten; every other byte of a record stays as it
came: the header, the other columns, the quoting of a CSV field (a quoted field stays quoted; an
unquoted one is quoted only if its new text needs it), JSON key order, spacing, escapes and
non-string values. A record is the privacy unit that a text line is: its named fields together
spend the per-line budget.

- ``csv``: RFC 4180 (``,``, ``"`` quotes doubled inside, line breaks inside quoted fields).
- ``tsv``: one record per line, fields split on tabs, no quoting (GLUE and most TSV exports).
- ``jsonl``: one JSON object per line; a field is a top-level key or a dotted path (``user.bio``);
  blank lines are kept.

Example::

    fmt = make_format("csv", columns=["review"], header=True)
    # sanitizer.sanitize_stream(src, dst, fmt=fmt)
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field

from .errors import InputDataError, InvalidParameter

FORMATS = ("auto", "text", "csv", "tsv", "jsonl", "parquet")
EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl",
              ".parquet": "parquet", ".pq": "parquet"}


def detect(path: str, fmt: str = "auto") -> str:
    """The format of ``path``: ``fmt`` unless it is auto, else by extension (``-``: text)."""
    if fmt != "auto":
        return fmt
    if path == "-":
        return "text"
    return EXTENSIONS.get(os.path.splitext(path)[1].lower(), "text")


def make_format(name: str, columns=(), header: bool = True):
    """A record format for ``name`` (None for plain text), validated against its columns."""
    if name == "text":
        if columns:
            raise InvalidParameter("--column needs --format csv, tsv, jsonl or parquet (or an "
                                   "input named *.csv, *.tsv, *.jsonl, *.parquet)")
        return None
    if not columns:
        raise InvalidParameter(f"--format {name} needs at least one --column (the text to "
                               f"sanitize); every other column is kept as it is")
    if name == "parquet":
        if not header:
            raise InvalidParameter("--no-header applies to csv and tsv only")
        from .parquet import ParquetFormat

        return ParquetFormat(tuple(columns))
    if name == "jsonl":
        if not header:
            raise InvalidParameter("--no-header applies to csv and tsv only")
        return JsonLines(tuple(columns))
    if name in ("csv", "tsv"):
        return Delimited(name, tuple(columns), header)
    raise InvalidParameter(f"unknown format {name}")


def check_encoding(encoding: str) -> None:
    """Record structure is found in bytes, so the encoding must keep ASCII as ASCII."""
    probe = ',\t"{}:\\\n\r'
    try:
        same = probe.encode(encoding) == probe.encode("ascii")
    except (LookupError, UnicodeError):
        same = False
    if not same:
        raise InvalidParameter(f"--encoding {encoding} is not ASCII-compatible; CSV, TSV and JSON "
                               f"lines need one (utf-8, latin-1, cp1252, ...)")


def lines_of(text: str) -> list[str]:
    """The lines of ``text`` with their endings, split at ``\n`` only (not at U+2028 & co.)."""
    lines = [line + "\n" for line in text.split("\n")]
    if lines[-1] == "\n":
        lines.pop()
    else:
        lines[-1] = lines[-1][:-1]
    return lines


def whole_lines(data: bytes, final: bool) -> tuple[int, int, int]:
    """``(end, records, lines)`` of the whole lines at the start of ``data`` (one record each)."""
    end = len(data) if final else data.rfind(b"\n") + 1
    n = data.count(b"\n", 0, end) + (1 if end and not data[:end].endswith(b"\n") else 0)
    return end, n, n


def where(record: int, line: int) -> str:
    return f"record {record}" + (f" (line {line})" if line != record else "")


@dataclass
class Position:
    """Where a block of whole records starts in its file."""

    line: int
    record: int


# --------------------------------------------------------------------------------------------
# CSV and TSV


@dataclass
class Delimited:
    """CSV (quoted fields) or TSV (no quoting); columns by header name, or 1-based with no header."""

    name: str
    columns: tuple
    header: bool = True
    indices: list[int] | None = None  # 0-based, resolved from the header or the column numbers
    multiline: bool = field(init=False)

    def __post_init__(self):
        self.delimiter = "," if self.name == "csv" else "\t"
        self.multiline = self.name == "csv"
        d = re.escape(self.delimiter)
        # a quoted field ("" inside), or an unquoted one (a lone \r inside is data)
        quoted = r'"[^"]*(?:""[^"]*)*"'
        unquoted = rf'[^"{d}\r\n](?:[^{d}\r\n]+|\r(?!\n))*'
        field = f"(?:{quoted}|{unquoted})?"
        self._field = re.compile(field)
        self._record_text = re.compile(rf"{field}(?:{d}{field})*(?:\r?\n|\Z)")
        as_bytes = f"{field}(?:{d}{field})*".encode()
        self._record = re.compile(as_bytes + rb"\r?\n")
        self._last_record = re.compile(as_bytes + rb"\Z")
        if not self.header:
            try:
                self.indices = list(dict.fromkeys(int(c) - 1 for c in self.columns))
            except ValueError:
                raise InvalidParameter("with --no-header, --column takes column numbers "
                                       "(1 = the first column)") from None
            if min(self.indices) < 0:
                raise InvalidParameter("column numbers start at 1")

    # -- main process: cut the input at record boundaries, read the header

    def complete(self, data: bytes, final: bool, at: Position) -> tuple[int, int, int]:
        """``(bytes of whole records, records, lines)`` at the start of ``data``."""
        if not self.multiline or b'"' not in data:  # no line break inside a record
            return whole_lines(data, final)
        pos = records = lines = 0
        match = self._record.match
        while True:
            m = match(data, pos)
            if m is None or m.end() == pos:
                break
            records += 1
            lines += data.count(b"\n", pos, m.end())
            pos = m.end()
        if final and pos < len(data):
            if not self._last_record.match(data, pos):
                raise InputDataError(f"{where(at.record + records, at.line + lines)}: does not "
                                     f"parse as CSV (an unclosed quote, or text after a closing "
                                     f"quote)")
            records, lines, pos = records + 1, lines + 1, len(data)
        return pos, records, lines

    def header_end(self, data: bytes) -> int:
        """Where the first record of ``data`` (whole records) ends."""
        m = self._record.match(data) if self.multiline else None
        return m.end() if m else (data.find(b"\n") + 1 or len(data))

    def bind_header(self, first_record: str) -> None:
        """Resolve --column names from the header record (record 1)."""
        if not self.header:
            return
        names = [self._unquote(f)[0] for f in self._fields(first_record.rstrip("\r\n"))]
        indices = []
        for column in self.columns:
            hits = [i for i, n in enumerate(names) if n == column] or \
                [i for i, n in enumerate(names) if n.strip() == column]
            if not hits:
                raise InputDataError(f"record 1 (the header): no column named {column!r} among "
                                     f"its {len(names)} columns")
            indices.extend(hits)
        self.indices = list(dict.fromkeys(indices))  # a column named twice is rewritten once

    # -- workers: rewrite the named columns of whole records

    def rewrite(self, text: str, at: Position, rewrite_records, counts) -> str:
        out, parsed, texts = self._parse(text, at)
        new_texts = rewrite_records(texts)
        for (fields, ending), old, new in zip(parsed, texts, new_texts):
            for i, before, after in zip(self.indices, old, new):
                if after != before:
                    fields[i] = self._quote(after, fields[i].startswith('"'))
            out.append(self.delimiter.join(fields) + ending)
        return "".join(out)

    def values(self, text: str, at: Position) -> list[list[str]]:
        """The --column values of each data record of a block (what ``rewrite`` rewrites)."""
        return self._parse(text, at)[2]

    def _parse(self, text: str, at: Position):
        """(the header if this block has it, [(fields, line ending)], [named values])."""
        records = self._split(text) if self.multiline else lines_of(text)
        start = 0
        out = []
        if at.record == 1 and self.header:  # the header is copied, never sanitized
            out.append(records[0])
            start = 1
        parsed = []
        line = at.line + (1 if start else 0)
        for k in range(start, len(records)):
            rec = records[k]
            body = rec.rstrip("\r\n")
            fields = self._fields(body)
            if len(fields) <= max(self.indices):
                raise InputDataError(f"{where(at.record + k, line)}: has {len(fields)} columns; "
                                     f"--column needs column {max(self.indices) + 1}")
            parsed.append((fields, rec[len(body):]))
            line += rec.count("\n")
        texts = [[self._unquote(fields[i])[0] for i in self.indices] for fields, _ in parsed]
        return out, parsed, texts

    def _split(self, text: str) -> list[str]:
        """Records of a block that holds whole CSV records only."""
        if '"' not in text:
            return lines_of(text)
        records, pos = [], 0
        pattern = self._record_text
        while pos < len(text):
            m = pattern.match(text, pos)
            end = m.end() if m and m.end() > pos else len(text)
            records.append(text[pos:end])
            pos = end
        return records

    def _fields(self, body: str) -> list[str]:
        if not self.multiline or '"' not in body:
            return body.split(self.delimiter)
        fields, pos = [], 0
        while True:
            m = self._field.match(body, pos)
            fields.append(m.group())
            pos = m.end()
            if pos >= len(body):
                return fields
            pos += 1  # the delimiter (complete() checked the record)
            if pos == len(body):
                fields.append("")
                return fields

    def _unquote(self, raw: str) -> tuple[str, bool]:
        if self.multiline and raw.startswith('"'):
            return raw[1:-1].replace('""', '"'), True
        return raw, False

    def _quote(self, text: str, was_quoted: bool) -> str:
        if not self.multiline:
            return text  # TSV: replacement words hold no tab or line break
        if was_quoted or any(c in text for c in (self.delimiter, '"', "\n", "\r")):
            return '"' + text.replace('"', '""') + '"'
        return text


# --------------------------------------------------------------------------------------------
# JSON lines


_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


@dataclass
class JsonLines:
    """One JSON object per line; fields by top-level key or dotted path."""

    columns: tuple
    multiline: bool = False
    header: bool = False

    def __post_init__(self):
        # "a.b" names key "a.b", or key "b" inside the object at key "a"
        self._paths = [tuple(p) for c in self.columns for p in {(c,), tuple(c.split("."))}]

    def complete(self, data: bytes, final: bool, at: Position) -> tuple[int, int, int]:
        return whole_lines(data, final)

    def bind_header(self, first_record: str) -> None:
        return None

    def rewrite(self, text: str, at: Position, rewrite_records, counts) -> str:
        lines = lines_of(text)
        spans = {}  # line index -> [(start, end, value), ...] for the non-blank lines
        for k, line in enumerate(lines):
            if not line.strip():
                continue
            found = []
            try:
                end = self._object(line, _WS.match(line).end(), self._paths, found, counts)
                if _WS.match(line, end).end() != len(line):
                    raise ValueError
            except (ValueError, IndexError):
                raise InputDataError(f"record {at.record + k}: not a JSON object on one "
                                     f"line") from None
            spans[k] = found
        new_texts = rewrite_records([[value for _, _, value in f] for f in spans.values()])
        for (k, found), new in zip(spans.items(), new_texts):
            if all(after == value for after, (_, _, value) in zip(new, found)):
                continue
            line, pieces, pos = lines[k], [], 0
            for (start, end, value), after in zip(found, new):
                raw = line[start:end]
                pieces += [line[pos:start], raw if after == value else
                           json.dumps(after, ensure_ascii="\\u" in raw)]
                pos = end
            lines[k] = "".join(pieces) + line[pos:]
        return "".join(lines)

    def _object(self, s: str, pos: int, paths, found: list, counts) -> int:
        """Walk the object at ``s[pos]``; collect the string values at ``paths``; its end."""
        if s[pos] != "{":
            raise ValueError
        pos = _WS.match(s, pos + 1).end()
        if s[pos] == "}":
            return pos + 1
        while True:
            if s[pos] != '"':
                raise ValueError
            key, pos = json.decoder.scanstring(s, pos + 1)
            pos = _WS.match(s, pos).end()
            if s[pos] != ":":
                raise ValueError
            pos = _WS.match(s, pos + 1).end()
            here = [p[1:] for p in paths if p[0] == key]
            deeper = [p for p in here if p]
            if deeper and s[pos] == "{":
                if len(deeper) < len(here):
                    counts.non_string += 1  # the key itself was named, and it holds an object
                pos = self._object(s, pos, deeper, found, counts)
            else:
                value, end = _DECODER.raw_decode(s, pos)
                if len(deeper) < len(here):
                    if isinstance(value, str):
                        found.append((pos, end, value))
                    else:
                        counts.non_string += 1
                pos = end
            pos = _WS.match(s, pos).end()
            if s[pos] == ",":
                pos = _WS.match(s, pos + 1).end()
                continue
            if s[pos] == "}":
                return pos + 1
            raise ValueError


# --------------------------------------------------------------------------------------------
# Blocks of whole records (main process)


def format_name(fmt) -> str:
    """The name of a record format (``text`` for None)."""
    return "text" if fmt is None else getattr(fmt, "name", "jsonl")


def cut(src, fmt, *, encoding: str, max_line_bytes: int, block: int, spans: bool = False):
    """``(first_line, data)`` for each block of one input: whole lines of text, whole records
    of ``fmt``, or a Parquet row group. With ``spans`` the blocks of a regular text file hold
    :class:`.stream.FileSpan`s (for worker processes, which read the bytes themselves)."""
    from .stream import FileSpan, read_chunks

    if getattr(fmt, "arrow", False):  # Parquet: a block is a row group (parquet.py)
        yield from fmt.chunks(src, spans)
        return
    raw = read_chunks(src, max_line_bytes, block)
    if fmt is not None:
        yield from record_chunks(raw, fmt, encoding, max_line_bytes)
        return
    where = FileSpan.source(src) if spans else None
    for first_line, chunk in raw:
        if where is not None:  # the chunks are contiguous: each starts where the last ended
            path, identity, offset = where
            where = path, identity, offset + len(chunk)
            chunk = FileSpan(path, offset, len(chunk), identity)
        yield first_line, chunk


def record_chunks(line_chunks, fmt, encoding: str, max_line_bytes: int):
    """Re-cut blocks of whole lines into blocks of whole records: ``(Position, bytes)``.

    A CSV record may span lines (a quoted field with line breaks); its start is carried into the
    next block. The header (CSV/TSV) is read here, so --column names are resolved before any
    block is rewritten; it stays in the first block, which copies it unchanged.
    """
    at = Position(1, 1)
    carry = b""
    ahead = iter(line_chunks)
    nxt = next(ahead, None)
    while nxt is not None:
        _, chunk = nxt
        nxt = next(ahead, None)
        data = carry + chunk if carry else chunk
        end, records, lines = fmt.complete(data, nxt is None, at)
        if at.record == 1 and end and fmt.header:
            head = data[:fmt.header_end(data)]
            try:
                fmt.bind_header(head.decode(encoding))
            except UnicodeDecodeError:
                raise InputDataError(f"record 1 (the header): not valid {encoding}") from None
        carry = data[end:]
        if len(carry) > max_line_bytes:
            raise InputDataError(f"{where(at.record + records, at.line + lines)}: longer than "
                                 f"--max-line-bytes ({max_line_bytes} bytes), or a quote that "
                                 f"is never closed")
        if end:
            yield Position(at.line, at.record), data[:end]
            at = Position(at.line + lines, at.record + records)


def read_columns(path: str, name: str, columns, *, header: bool = True,
                 encoding: str = "utf-8", max_line_bytes: int = 10 << 20) -> list[list[str]]:
    """The values of ``columns`` in every data record of a CSV or TSV file, in order."""
    from .stream import read_chunks

    fmt = make_format(name, columns, header=header)
    if not isinstance(fmt, Delimited):
        raise InvalidParameter("reading columns needs a CSV or TSV file")
    rows = []
    from .io import open_input

    with open_input(path) as f:
        for at, chunk in record_chunks(read_chunks(f, max_line_bytes), fmt, encoding,
                                       max_line_bytes):
            try:
                rows.extend(fmt.values(chunk.decode(encoding), at))
            except UnicodeDecodeError:
                raise InputDataError(f"{path}: not valid {encoding} near line {at.line}") from None
    return rows
