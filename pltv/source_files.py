"""Where a source's tables are and how DuckDB reads them: export folders (Parquet/CSV files or part-file
folders) and DuckDB database files, with CSV errors that name the table, file and line but never a row.

:func:`attach_raw` creates one ``raw_<table>`` view per table found; :mod:`pltv.sources` then maps,
checks and cleans them into the canonical tables.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

import duckdb

from pltv.errors import SourceError

TABLES = ("users", "transactions", "events")
_DUCKDB_SUFFIXES = (".duckdb", ".db", ".ddb")
_READERS = {".parquet": "read_parquet", ".csv": "read_csv"}  # export file suffix -> DuckDB reader
_CSV_DELIMITERS = (",", ";", "|", "\t")  # DuckDB's sniffer candidates
# parts of DuckDB's CSV errors that are safe to repeat (the rest can quote a row: personal data)
_CSV_LINE = re.compile(r"CSV Error on Line: (\d+)")
_CSV_FIELDS = re.compile(r"Expected Number of Columns: (\d+) Found: (\d+)")
_CSV_FILE = re.compile(r'^\s*file = (.+?)\s*$|sniffing file "(.+?)"', re.MULTILINE)


MEMORY_SHARE = 1 / 3  # of the machine's (or container's) memory for DuckDB; pandas and LightGBM get the rest


def machine_memory() -> int:
    """Bytes of memory this process may use: the machine's, or the container's limit when lower."""
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
    except OSError:
        return total
    return min(total, int(limit)) if limit.isdigit() else total


_SPILL_PREFIX = "pltv-duckdb-"  # + the owning process id + "-" + a random part


def _remove_orphaned_spills() -> None:
    """Remove spill folders whose process is gone: a killed run cannot remove its own (at 10M users it can
    hold gigabytes)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{_SPILL_PREFIX}*-*"):
        pid = folder.name[len(_SPILL_PREFIX) :].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)  # signal 0: only asks whether the process exists
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except PermissionError:
            continue  # another user's live process


def working_connection() -> tuple[duckdb.DuckDBPyConnection, Path]:
    """An in-memory DuckDB for a source's tables that spills to a private temp folder (returned, to be
    removed after closing) past :data:`MEMORY_SHARE` of memory. DuckDB's own default, 80 % of memory
    and spilling into ``./.tmp``, left no room for the feature frame: `pltv train` on a 10M-user export
    grew to 20.9 GB on a 24 GB machine and was killed by the OOM killer."""
    _remove_orphaned_spills()
    spill = Path(tempfile.mkdtemp(prefix=f"{_SPILL_PREFIX}{os.getpid()}-"))
    limit_mb = max(int(machine_memory() * MEMORY_SHARE) // 2**20, 256)
    con = duckdb.connect(config={"memory_limit": f"{limit_mb}MiB", "temp_directory": str(spill)})
    return con, spill


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _locate(folder: Path, table: str) -> tuple[str, list[Path]] | None:
    """DuckDB reader and files holding ``table`` in a warehouse-export folder, or None when absent.

    A table is one file or one folder of part files, all of one format: anything else would leave some
    files unread, so it is an error rather than a silent choice.
    """
    singles = [folder / f"{table}{suffix}" for suffix in _READERS if (folder / f"{table}{suffix}").is_file()]
    part_dir = folder / table
    if len(singles) + part_dir.is_dir() > 1:
        holders = [p.name for p in singles] + ([f"{table}/"] if part_dir.is_dir() else [])
        raise SourceError(
            f"folder {folder} holds table '{table}' more than once ({', '.join(holders)}); keep one file or "
            "one folder of part files per table"
        )
    if singles:
        return _READERS[singles[0].suffix], singles
    if not part_dir.is_dir():
        return None
    kinds = {
        suffix: parts
        for suffix in _READERS
        if (parts := sorted(p for p in part_dir.rglob(f"*{suffix}") if p.is_file()))
    }
    if not kinds:
        raise SourceError(f"folder {part_dir} holds no .parquet or .csv part files for table '{table}'")
    if len(kinds) > 1:
        found = ", ".join(f"{len(parts):,} {suffix}" for suffix, parts in kinds.items())
        raise SourceError(
            f"folder {part_dir} for table '{table}' mixes part file kinds ({found} files); keep one format "
            "per table (convert the other files or move them out)"
        )
    ((suffix, parts),) = kinds.items()
    return _READERS[suffix], parts


def _reader(reader: str, paths: list[Path]) -> str:
    listing = "[" + ", ".join(quote_literal(str(p)) for p in paths) + "]"
    if reader == "read_csv":
        # all columns as text: the contract's casts below report unparseable rows by key
        return f"read_csv({listing}, header = true, all_varchar = true, union_by_name = true)"
    return f"read_parquet({listing}, union_by_name = true)"


def _csv_line(message: str) -> tuple[int | None, tuple[int, int] | None]:
    """Line number and (expected, found) field counts from a DuckDB CSV error, never the line's content."""
    line = _CSV_LINE.search(message)
    fields = _CSV_FIELDS.search(message)
    return (
        int(line.group(1)) if line else None,
        (int(fields.group(1)), int(fields.group(2))) if fields else None,
    )


def _csv_first_bad_line(con, file: Path) -> tuple[int | None, tuple[int, int] | None]:
    """Re-read ``file`` with the dialect its header suggests (no sniffing) to find the first bad line."""
    try:
        with file.open(encoding="utf-8-sig", errors="replace", newline="") as handle:
            header = handle.readline()
    except OSError:
        return None, None
    delimiter = max(_CSV_DELIMITERS, key=header.count)
    names = next(csv.reader([header], delimiter=delimiter), [])
    if len(names) < 2 or len(set(names)) != len(names) or "" in names:
        return None, None
    columns = "{" + ", ".join(f"{quote_literal(name)}: 'VARCHAR'" for name in names) + "}"
    try:
        con.execute(
            f"SELECT count(*) FROM read_csv({quote_literal(str(file))}, header = true, auto_detect = false, "
            f"delim = {quote_literal(delimiter)}, quote = '\"', escape = '\"', columns = {columns})"
        ).fetchall()
    except duckdb.Error as exc:
        return _csv_line(str(exc))
    return None, None


def _csv_message(
    table: str, file: Path, line: int | None, fields: tuple[int, int] | None, *, dialect: bool
) -> str:
    where = f"table '{table}', file {file}"
    what = "the CSV dialect (delimiter, quote) could not be detected" if dialect else "malformed CSV"
    if line is not None:
        what += f"; first malformed line: {line}"
        if fields is not None:
            what += f" ({fields[1]} fields where the header has {fields[0]})"
    return (
        f"{where}: {what}; check for an unterminated quote or a line with extra or missing fields "
        "(the line itself is not shown: it may hold personal data)"
    )


def _check_csv_header(con, table: str, files: list[Path]) -> None:
    """A header read as one column holding delimiters means DuckDB's dialect sniffing failed: say so."""
    if not any(ch in column for column in describe_columns(con, f"raw_{table}") for ch in _CSV_DELIMITERS):
        return
    for file in files:
        columns = describe_columns(
            con, f"read_csv({quote_literal(str(file))}, header = true, all_varchar = true)"
        )
        if len(columns) == 1 and any(ch in next(iter(columns)) for ch in _CSV_DELIMITERS):
            raise SourceError(_csv_message(table, file, *_csv_first_bad_line(con, file), dialect=True))


def csv_error(con, csv_files: Mapping[str, list[Path]], exc: duckdb.Error) -> SourceError | None:
    """A DuckDB CSV error as table, file and line (without the row DuckDB quotes), or None if not one."""
    message = str(exc)
    named = {a or b for a, b in _CSV_FILE.findall(message)}
    for table, files in csv_files.items():
        for file in files:
            if str(file) in named:
                line, fields = _csv_line(message)
                if line is None:
                    line, fields = _csv_first_bad_line(con, file)
                return SourceError(_csv_message(table, file, line, fields, dialect="sniffing" in message))
    return None


def attach_raw(
    con: duckdb.DuckDBPyConnection, path: Path, csv_files: dict[str, list[Path]]
) -> dict[str, str]:
    """Create ``raw_<table>`` views; return table -> found, and fill ``csv_files`` (table -> CSV files)."""
    found: dict[str, str] = {}
    if path.is_dir():
        for table in TABLES:
            located = _locate(path, table)
            if located is None:
                continue
            reader, files = located
            if reader == "read_csv":
                csv_files[table] = files
            found[table] = _reader(reader, files)
            con.execute(f"CREATE OR REPLACE TEMP VIEW raw_{table} AS SELECT * FROM {found[table]}")
            if reader == "read_csv":
                _check_csv_header(con, table, files)
        return found
    if not path.is_file():
        raise SourceError(f"source {path} does not exist (expected a DuckDB file or an export folder)")
    if path.suffix.lower() not in _DUCKDB_SUFFIXES:
        raise SourceError(
            f"source {path} is a file but not a DuckDB database ({', '.join(_DUCKDB_SUFFIXES)}); "
            "for Parquet/CSV give the folder that holds users/transactions/events"
        )
    try:
        con.execute(f"ATTACH {quote_literal(str(path))} AS src (READ_ONLY)")
    except duckdb.Error as exc:
        raise SourceError(f"cannot open DuckDB source {path}: {type(exc).__name__}") from exc
    # table -> schemas holding it; names match case-insensitively, as DuckDB resolves them
    schemas: dict[str, list[tuple[str, str]]] = {}
    for schema, name in con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = 'src' "
        "UNION ALL SELECT schema_name, view_name FROM duckdb_views() WHERE database_name = 'src' ORDER BY 1"
    ).fetchall():
        schemas.setdefault(name.lower(), []).append((schema, name))
    for table in TABLES:
        holders = schemas.get(table, [])
        in_main = [holder for holder in holders if holder[0] == "main"]
        if len(in_main) == 1 or len(holders) == 1:
            schema, name = (in_main or holders)[0]
        elif holders:
            raise SourceError(
                f"source {path}: table '{table}' is ambiguous: not in schema main, but in each of schemas "
                f"{[schema for schema, _ in holders]}; move the one to use into schema main"
            )
        else:
            continue
        found[table] = f"src.{quote_ident(schema)}.{quote_ident(name)}"
        con.execute(f"CREATE OR REPLACE TEMP VIEW raw_{table} AS SELECT * FROM {found[table]}")
    return found


def describe_columns(con: duckdb.DuckDBPyConnection, relation: str) -> dict[str, str]:
    """Column name -> DuckDB type of a table, view or reader expression."""
    rows = con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
    return {row[0]: row[1] for row in rows}
