"""Named text columns of Arrow data: find them, read them, rewrite them, put them back.

The floor below Parquet files and data frames: a column is a top-level name or a dotted path
into struct columns; values travel as Python lists (None for null); ``rewrite_values`` sends the
strings of many rows through one mechanism call (a row is one record of the per-line budget)
and keeps every other value, counting nulls and non-strings.

Example::

    paths = resolve_columns(table.schema, ["review", "user.bio"])
    values = [column_values(table, p) for p in paths]
    new = rewrite_values(block_rewriter, values, rng, counts)
    table = replace_columns(table, paths, new)
"""

from __future__ import annotations

import numpy as np

from .errors import InputDataError


def rewrite_values(sanitizer, values: list[list], rng, counts) -> list[list]:
    """``values[c][r]`` (column c, row r) with every string rewritten; a row is one record.

    Anything that is not a string is kept: nulls (None, NaN, pd.NA) count in ``counts.nulls``,
    other values in ``counts.non_string``. One vectorised mechanism call for all rows.
    """
    if not values or not values[0]:
        return [list(col) for col in values]
    _count_others(values, counts)
    if len(values) == 1:
        col = values[0]
        records = [[v] if isinstance(v, str) else [] for v in col]
        new = sanitizer.rewrite_records(records, rng, counts)
        return [[n[0] if n else v for v, n in zip(col, new)]]
    records = [[v for v in row if isinstance(v, str)] for row in zip(*values)]
    new = sanitizer.rewrite_records(records, rng, counts)
    out = [list(col) for col in values]
    for r, fields in enumerate(new):
        if fields:
            it = iter(fields)
            for c, col in enumerate(values):
                if isinstance(col[r], str):
                    out[c][r] = next(it)
    return out


def _count_others(values, counts) -> None:
    for col in values:
        others = [v for v in col if not isinstance(v, str)]
        if others:
            nulls = sum(map(_missing, others))
            counts.nulls += nulls
            counts.non_string += len(others) - nulls


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and v != v) or \
        type(v).__name__ in ("NAType", "NaTType")


def is_text_type(t) -> bool:
    import pyarrow as pa

    if pa.types.is_dictionary(t):
        t = t.value_type
    return pa.types.is_string(t) or pa.types.is_large_string(t) or \
        getattr(pa.types, "is_string_view", lambda _: False)(t)


def resolve_columns(schema, columns) -> list[tuple[str, ...]]:
    """Each column as a path of field names: a top-level name, or a dotted path into structs
    (``user.bio``). InputDataError (exit 65) for a missing or non-string column."""
    import pyarrow as pa

    paths = []
    for column in columns:
        path = (column,) if column in schema.names else tuple(column.split("."))
        fields = schema
        for name in path:
            names = [] if fields is None else [f.name for f in fields]
            if name not in names:
                raise InputDataError(f"no column named {column!r} among the "
                                     f"{len(schema.names)} top-level columns (a dotted name "
                                     f"is a path into struct columns)")
            t = fields.field(names.index(name)).type
            fields = t if pa.types.is_struct(t) else None
        if not is_text_type(t):
            raise InputDataError(f"column {column!r} has type {t}, not a string type; "
                                 f"only string columns can be sanitized")
        paths.append(path)
    return list(dict.fromkeys(paths))


def column_values(data, path) -> list:
    """The values at ``path`` of a Table or RecordBatch as Python objects (None for null; a
    null struct makes its fields null)."""
    import pyarrow as pa

    arr = data.column(path[0])
    for name in path[1:]:
        if isinstance(arr, pa.ChunkedArray):
            j = arr.type.get_field_index(name)
            arr = pa.chunked_array([c.flatten()[j] for c in arr.chunks],
                                   type=arr.type.field(j).type)
        else:
            arr = arr.flatten()[arr.type.get_field_index(name)]
    return arr.to_pylist()


def replace_columns(data, paths, new_values):
    """A new Table/RecordBatch like ``data`` with ``new_values[i]`` at ``paths[i]``."""
    import pyarrow as pa

    arrays = list(data.columns)
    for path, values in zip(paths, new_values):
        j = data.schema.get_field_index(path[0])
        top = arrays[j]
        if isinstance(top, pa.ChunkedArray):
            top = top.combine_chunks() if top.num_chunks != 1 else top.chunk(0)
        arrays[j] = _replace(top, path[1:], values)
    cls = pa.RecordBatch if isinstance(data, pa.RecordBatch) else pa.Table
    return cls.from_arrays(arrays, schema=data.schema)


def _replace(arr, rest, values):
    import pyarrow as pa

    if not rest:
        t = arr.type
        if pa.types.is_dictionary(t):
            return string_array(values, t.value_type).dictionary_encode().cast(t)
        return string_array(values, t)
    t = arr.type
    k = t.get_field_index(rest[0])
    children = [arr.field(i) for i in range(t.num_fields)]
    children[k] = _replace(arr.flatten()[k], rest[1:], values)
    mask = arr.is_null() if arr.null_count else None
    return pa.StructArray.from_arrays(children, fields=list(t), mask=mask)


def string_array(values: list, t):
    """An Arrow array of type ``t`` (string, large_string or string_view) from Python strings
    and Nones, built from buffers (``pa.array`` would import pandas to inspect a list)."""
    import pyarrow as pa

    n = len(values)
    encoded = [b"" if v is None else v.encode("utf-8", "surrogatepass") for v in values]
    data = b"".join(encoded)
    large = pa.types.is_large_string(t)
    if not large and len(data) >= 2**31:  # too long for 32-bit offsets: let pyarrow decide
        return pa.array(values, type=t)
    offsets = np.zeros(n + 1, dtype=np.int64 if large else np.int32)
    np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=n), out=offsets[1:])
    null = np.fromiter((v is None for v in values), dtype=bool, count=n)
    nulls = int(null.sum())
    validity = pa.py_buffer(np.packbits(~null, bitorder="little")) if nulls else None
    base = pa.large_string() if large else pa.string()
    arr = pa.Array.from_buffers(base, n, [validity, pa.py_buffer(offsets), pa.py_buffer(data)],
                                null_count=nulls)
    return arr if t == base else arr.cast(t)
