"""The data contract: every source kind, column mapping, and each validation error with its message."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pytest

from pltv.config import SourceConfig
from pltv.errors import DataQualityError, SchemaError, SourceError
from pltv.features import default_as_of
from pltv.sources import open_source

SECRET_EMAIL = "jane.secret@example.com"
SECRET_PHONE = "+1 415 555 0199"


def _users(**extra) -> pd.DataFrame:
    base = pd.DataFrame(
        {
            "user_id": ["u1", "u2", "u3"],
            "signup_at": pd.to_datetime(
                ["2025-01-01 10:00", "2025-01-02 11:00", "2025-01-03 12:00"], utc=True
            ),
            "country": ["US", "GB", "US"],
            "email": [SECRET_EMAIL, None, "bob@example.org"],
            "phone": [SECRET_PHONE, None, None],
            "consent": [True, False, True],
        }
    )
    return base.assign(**extra)


def _transactions(**extra) -> pd.DataFrame:
    base = pd.DataFrame(
        {
            "transaction_id": ["t1", "t2", "t3", "t4"],
            "user_id": ["u1", "u1", "u2", "u3"],
            "occurred_at": pd.to_datetime(
                ["2025-01-01 11:00", "2025-01-05 00:00", "2025-01-02 12:00", "2025-01-04 00:00"], utc=True
            ),
            "revenue": [20.0, -5.0, 30.0, 12.5],
            "currency": ["USD"] * 4,
        }
    )
    return base.assign(**extra)


def _events() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": ["u1", "u1", "u2"],
            "occurred_at": pd.to_datetime(
                ["2025-01-01 10:05", "2025-01-01 10:06", "2025-01-02 11:30"], utc=True
            ),
            "event_name": ["session", "add_to_cart", "session"],
        }
    )


def _write_parquet_folder(root: Path, users, transactions, events=None, parts: int = 1) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    users.to_parquet(root / "users.parquet")
    tx_dir = root / "transactions"
    tx_dir.mkdir()
    for i in range(parts):
        transactions.iloc[i::parts].to_parquet(tx_dir / f"part-{i:03d}.parquet")
    if events is not None:
        events.to_parquet(root / "events.parquet")
    return root


def _write_csv_folder(root: Path, users, transactions) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    users.to_csv(root / "users.csv", index=False)
    transactions.to_csv(root / "transactions.csv", index=False)
    return root


def _write_duckdb(path: Path, users, transactions, events=None) -> Path:
    con = duckdb.connect(str(path))
    con.register("u", users)
    con.register("t", transactions)
    con.execute("CREATE TABLE users AS SELECT * FROM u")
    con.execute("CREATE TABLE transactions AS SELECT * FROM t")
    if events is not None:
        con.register("e", events)
        con.execute("CREATE TABLE events AS SELECT * FROM e")
    con.close()
    return path


def _net_by_user(source) -> dict[str, float]:
    return dict(source.con.execute("SELECT user_id, sum(revenue) FROM transactions GROUP BY 1").fetchall())


def test_parquet_folder_with_part_files_opens_with_canonical_types(tmp_path):
    """A warehouse export folder (single file + folder of parts) exposes typed canonical tables."""
    root = _write_parquet_folder(tmp_path / "src", _users(), _transactions(), _events(), parts=3)
    with open_source(root) as src:
        types = dict(src.con.execute("SELECT column_name, column_type FROM (DESCRIBE users)").fetchall())
        assert types["user_id"] == "VARCHAR"
        assert types["signup_at"] == "TIMESTAMP"
        assert types["consent"] == "BOOLEAN"
        assert _net_by_user(src) == {"u1": 15.0, "u2": 30.0, "u3": 12.5}
        assert src.has_events and src.quality.events == 3
        assert src.quality.users == 3 and src.quality.refund_rows == 1


def test_timestamps_are_converted_to_utc(tmp_path):
    """A timezone-aware signup time is stored as the same instant in UTC."""
    users = _users(signup_at=pd.to_datetime(["2025-01-01 12:00+02:00"] * 3, utc=True))
    root = _write_parquet_folder(tmp_path / "src", users, _transactions())
    with open_source(root) as src:
        (first,) = src.con.execute("SELECT min(signup_at) FROM users").fetchone()
    assert first == pd.Timestamp("2025-01-01 10:00").to_pydatetime()


def test_csv_folder_opens_and_parses_text_columns(tmp_path):
    """CSV exports (all text) are cast to the contract's types."""
    root = _write_csv_folder(tmp_path / "csv", _users(), _transactions())
    with open_source(root) as src:
        assert _net_by_user(src) == {"u1": 15.0, "u2": 30.0, "u3": 12.5}
        assert not src.has_events
        assert src.con.execute("SELECT count(*) FROM events").fetchone()[0] == 0


def test_duckdb_file_source_opens_read_only(tmp_path):
    """A DuckDB database file with the three tables is a source, and is not modified."""
    path = _write_duckdb(tmp_path / "wh.duckdb", _users(), _transactions(), _events())
    before = path.stat().st_mtime_ns
    with open_source(path) as src:
        assert src.quality.transactions == 4
        assert src.has_events
    assert path.stat().st_mtime_ns == before


def test_column_mapping_renames_source_columns(tmp_path):
    """[source.columns] maps a warehouse's names onto the canonical ones."""
    users = _users().rename(columns={"signup_at": "signup_ts", "user_id": "customer_id"})
    tx = _transactions().rename(columns={"revenue": "amount", "user_id": "customer_id"})
    root = _write_parquet_folder(tmp_path / "src", users, tx)
    config = SourceConfig(
        path=str(root),
        columns={
            "users": {"signup_ts": "signup_at", "customer_id": "user_id"},
            "transactions": {"amount": "revenue", "customer_id": "user_id"},
        },
    )
    with open_source(config) as src:
        assert _net_by_user(src)["u1"] == 15.0


def test_mapping_of_a_column_that_does_not_exist_is_an_error(tmp_path):
    """A mapping naming an absent column says which table and column."""
    root = _write_parquet_folder(tmp_path / "src", _users(), _transactions())
    config = SourceConfig(path=str(root), columns={"users": {"signup_ts": "signup_at"}})
    with pytest.raises(SchemaError, match=r"table 'users'.*'signup_ts' not found"):
        open_source(config)


def test_missing_required_column_names_table_and_column(tmp_path):
    """A missing required column is named together with its table and the fix."""
    root = _write_parquet_folder(tmp_path / "src", _users().drop(columns="signup_at"), _transactions())
    with pytest.raises(SchemaError, match=r"table 'users' is missing required column\(s\) \['signup_at'\]"):
        open_source(root)


def test_missing_table_is_an_error(tmp_path):
    """A folder without transactions is rejected with what was expected."""
    root = tmp_path / "src"
    root.mkdir()
    _users().to_parquet(root / "users.parquet")
    with pytest.raises(SourceError, match=r"no table\(s\) \['transactions'\]"):
        open_source(root)


def test_nonexistent_path_is_an_error(tmp_path):
    """A path that does not exist is reported as such."""
    with pytest.raises(SourceError, match="does not exist"):
        open_source(tmp_path / "nope")


def test_unparseable_timestamp_names_table_column_and_row_key(tmp_path):
    """A timestamp that does not parse is reported with the row's key."""
    users = _users().astype({"signup_at": str})
    users.loc[1, "signup_at"] = "yesterday-ish"
    root = _write_csv_folder(tmp_path / "csv", users, _transactions())
    with pytest.raises(DataQualityError, match=r"table 'users', column 'signup_at'.*first user_id = u2"):
        open_source(root)


def test_duplicate_user_id_is_an_error(tmp_path):
    """users must hold one row per user_id."""
    users = _users()
    users.loc[2, "user_id"] = "u1"
    root = _write_parquet_folder(tmp_path / "src", users, _transactions())
    with pytest.raises(DataQualityError, match=r"table 'users', column 'user_id'.*first user_id = u1"):
        open_source(root)


def test_mixed_currencies_are_an_error(tmp_path):
    """Revenue in several currencies cannot be summed: the found codes are listed."""
    tx = _transactions()
    tx.loc[3, "currency"] = "EUR"
    root = _write_parquet_folder(tmp_path / "src", _users(), tx)
    with pytest.raises(
        DataQualityError, match=r"column 'currency': found \['EUR', 'USD'\], expected only USD"
    ):
        open_source(root)


def test_unparseable_revenue_is_an_error(tmp_path):
    """A revenue that is not a number names the transaction id."""
    tx = _transactions().astype({"revenue": str})
    tx.loc[2, "revenue"] = "12,50 EUR"
    root = _write_csv_folder(tmp_path / "csv", _users(), tx)
    with pytest.raises(DataQualityError, match=r"column 'revenue'.*first transaction_id = t3"):
        open_source(root)


def test_semicolon_csv_with_decimal_commas_hints_at_the_separator(tmp_path):
    """A spreadsheet export (`;` between fields, `,` as decimal separator) says so instead of "not numbers"."""
    root = _write_csv_folder(tmp_path / "csv", _users(), _transactions())
    tx = _transactions().astype({"revenue": str})
    tx["revenue"] = tx["revenue"].str.replace(".", ",", regex=False)
    (root / "transactions.csv").write_text(tx.to_csv(index=False, sep=";"))
    with pytest.raises(DataQualityError, match=r"not numbers.*look like decimal commas.*decimal point"):
        open_source(root)


def test_a_bad_timestamp_hint_says_offsets_are_converted(tmp_path):
    """The hint asks for ISO 8601 and says zoned timestamps are converted to UTC (they are)."""
    users = _users().astype({"signup_at": str})
    users.loc[1, "signup_at"] = "31/01/2026"
    root = _write_csv_folder(tmp_path / "csv", users, _transactions())
    with pytest.raises(DataQualityError, match=r"ISO 8601.*\+01:00.*converted to UTC"):
        open_source(root)


@pytest.mark.parametrize("text", ["nan", "inf", "-Infinity", "1e400", "2e12"])
def test_non_finite_revenue_in_csv_is_an_error_naming_the_transaction(tmp_path, text):
    """nan, inf and overflowing amounts in a CSV are refused, naming transactions.revenue and the id."""
    tx = _transactions().astype({"revenue": str})
    tx.loc[2, "revenue"] = text
    root = _write_csv_folder(tmp_path / "csv", _users(), tx)
    with pytest.raises(
        DataQualityError,
        match=r"table 'transactions', column 'revenue'.*not finite.*first transaction_id = t3",
    ):
        open_source(root)


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), 1e308])
def test_non_finite_or_absurd_revenue_in_parquet_is_an_error(tmp_path, value):
    """inf and 1e308 (whose sums overflow) in a Parquet export are refused, naming the transaction id."""
    tx = _transactions()
    tx.loc[1, "revenue"] = value
    root = _write_parquet_folder(tmp_path / "pq", _users(), tx)
    with pytest.raises(DataQualityError, match=r"column 'revenue'.*first transaction_id = t2"):
        open_source(root)


def test_bad_rows_are_dropped_and_counted(tmp_path):
    """Duplicate ids, unknown users, rows before signup and null revenue are dropped and counted."""
    tx = _transactions()
    extra = pd.DataFrame(
        {
            "transaction_id": ["t1", "t9", "t10", "t11"],
            "user_id": ["u1", "ghost", "u3", "u2"],
            "occurred_at": pd.to_datetime(
                ["2025-01-01 11:00", "2025-01-05 00:00", "2024-12-01 00:00", "2025-01-06 00:00"], utc=True
            ),
            "revenue": [20.0, 99.0, 5.0, None],
            "currency": ["USD"] * 4,
        }
    )
    root = _write_parquet_folder(tmp_path / "src", _users(), pd.concat([tx, extra]))
    with open_source(root) as src:
        assert _net_by_user(src) == {"u1": 15.0, "u2": 30.0, "u3": 12.5}
        assert src.quality.dropped == {
            "transactions: before signup_at": 1,
            "transactions: duplicate transaction_id": 1,
            "transactions: null revenue": 1,
            "transactions: unknown user_id": 1,
        }
        assert src.quality.transactions_raw == 8


@pytest.mark.parametrize(
    "breakage",
    ["duplicate_user", "bad_timestamp", "mixed_currency", "bad_boolean"],
)
def test_no_error_message_contains_a_raw_identifier(tmp_path, breakage):
    """Validation errors name keys and columns, never an email or phone value."""
    users, tx = _users(), _transactions()
    if breakage == "duplicate_user":
        users.loc[1, "user_id"] = "u1"
    elif breakage == "bad_timestamp":
        users = users.astype({"signup_at": str})
        users.loc[0, "signup_at"] = SECRET_EMAIL
    elif breakage == "mixed_currency":
        tx.loc[0, "currency"] = "EUR"
    else:
        users = users.astype({"consent": str})
        users.loc[0, "consent"] = SECRET_PHONE
    root = _write_csv_folder(tmp_path / "csv", users, tx)
    with pytest.raises(DataQualityError) as info:
        open_source(root)
    text = str(info.value)
    assert SECRET_EMAIL not in text and SECRET_PHONE not in text
    assert "table '" in text


def test_quality_summary_renders_counts(tmp_path):
    """The inspect summary shows users, payer share, refunds and drops."""
    root = _write_parquet_folder(tmp_path / "src", _users(), _transactions())
    with open_source(root) as src:
        text = src.quality.render()
    assert "users" in text and "payer share" in text and "refund rows" in text
    assert "100.0%" in text  # every user paid in this toy source
    assert SECRET_EMAIL not in text


def test_rows_dated_in_the_future_are_dropped_and_do_not_move_data_end(tmp_path):
    """Transactions and events after now (plus clock skew) are dropped, counted, and ignored by data_end."""
    tx = _transactions().astype({"occurred_at": str})
    stray_tx = pd.DataFrame(
        {
            "transaction_id": ["t8", "t9"],
            "user_id": ["u1", "u2"],
            "occurred_at": ["2099-01-01 00:00:00+00", "9999-12-31 00:00:00+00"],
            "revenue": [40.0, 50.0],
            "currency": ["USD", "USD"],
        }
    )
    events = _events().astype({"occurred_at": str})
    stray_event = pd.DataFrame(
        {"user_id": ["u3"], "occurred_at": ["2099-06-01 00:00:00+00"], "event_name": ["x"]}
    )
    root = _write_csv_folder(tmp_path / "csv", _users(), pd.concat([tx, stray_tx]))
    pd.concat([events, stray_event]).to_csv(root / "events.csv", index=False)
    with open_source(root) as src:
        assert _net_by_user(src) == {"u1": 15.0, "u2": 30.0, "u3": 12.5}
        assert src.quality.dropped == {
            "transactions: occurred_at in the future": 2,
            "events: occurred_at in the future (ignored)": 1,
        }
        assert src.quality.events == 3
        assert src.quality.data_end == pd.Timestamp("2025-01-05 00:00").to_pydatetime()
        assert default_as_of(src.quality.data_end) == pd.Timestamp("2025-01-06").to_pydatetime()


@pytest.mark.parametrize("kind", ["parquet", "csv"])
def test_signup_in_the_future_is_an_error_naming_the_user(tmp_path, kind):
    """A placeholder signup_at of 9999-12-31 is refused by user_id (no overflow further down)."""
    root = tmp_path / "src"
    root.mkdir()
    con = duckdb.connect()
    con.register("u", _users())
    con.register("t", _transactions())
    options = "(FORMAT parquet)" if kind == "parquet" else "(HEADER)"
    con.execute(
        "COPY (SELECT * REPLACE (CASE WHEN user_id = 'u2' THEN TIMESTAMPTZ '9999-12-31 00:00:00+00' "
        f"ELSE signup_at END AS signup_at) FROM u) TO '{root}/users.{kind}' {options}"
    )
    con.execute(f"COPY t TO '{root}/transactions.{kind}' {options}")
    con.close()
    with pytest.raises(
        DataQualityError, match=r"table 'users', column 'signup_at'.*future.*first user_id = u2"
    ):
        open_source(root)


def test_table_folder_mixing_csv_and_parquet_parts_is_an_error(tmp_path):
    """CSV part files next to Parquet part files are not silently skipped: the folder and kinds are named."""
    root = _write_parquet_folder(tmp_path / "src", _users(), _transactions().iloc[:2])
    _transactions().iloc[2:].to_csv(root / "transactions" / "part-extra.csv", index=False)
    with pytest.raises(
        SourceError, match=r"transactions for table 'transactions' mixes part file kinds"
    ) as info:
        open_source(root)
    assert "1 .parquet, 1 .csv files" in str(info.value)


def test_table_both_as_file_and_as_folder_is_an_error(tmp_path):
    """users.parquet next to users.csv (or a users/ folder) is ambiguous: both holders are named."""
    root = _write_parquet_folder(tmp_path / "src", _users(), _transactions())
    _users().to_csv(root / "users.csv", index=False)
    with pytest.raises(SourceError, match=r"holds table 'users' more than once \(users.parquet, users.csv\)"):
        open_source(root)


def _assert_no_row_content(text: str, *values: str) -> None:
    for value in (SECRET_EMAIL, SECRET_PHONE, *values):
        assert value not in text


def test_csv_line_with_an_extra_field_names_table_file_and_line(tmp_path):
    """A users.csv line with one field too many is reported by table, file and line, without its content."""
    root = _write_csv_folder(tmp_path / "csv", _users(), _transactions())
    lines = (root / "users.csv").read_text().splitlines()
    lines[1] += ",extra-value"  # line 2 of the file: u1's row, which holds the secret email and phone
    (root / "users.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(SourceError, match=r"table 'users', file .*users\.csv: .*line: 2\b") as info:
        open_source(root)
    _assert_no_row_content(str(info.value), "extra-value", "u1,")


def test_csv_error_after_the_sniffed_sample_names_table_file_and_line(tmp_path):
    """A bad line far into a large CSV (read after dialect detection) is named by line, not quoted."""
    n = 30_000
    tx = pd.DataFrame(
        {
            "transaction_id": [f"t{i}" for i in range(n)],
            "user_id": ["u1"] * n,
            "occurred_at": ["2025-01-02 00:00:00"] * n,
            "revenue": ["1.0"] * n,
        }
    )
    tx.loc[n - 10, "user_id"] = f"{SECRET_EMAIL},{SECRET_PHONE}"  # written unquoted below: an extra field
    root = tmp_path / "csv"
    root.mkdir()
    _users().to_csv(root / "users.csv", index=False)
    (root / "transactions.csv").write_text(
        "transaction_id,user_id,occurred_at,revenue\n" + "\n".join(",".join(row) for row in tx.values) + "\n"
    )
    with pytest.raises(
        SourceError, match=rf"table 'transactions', file .*transactions\.csv: .*line: {n - 8}\b"
    ) as info:
        open_source(root)
    _assert_no_row_content(str(info.value), f"t{n - 10}")


def test_csv_header_read_as_one_column_says_the_dialect_was_not_detected(tmp_path):
    """An unterminated quote that makes DuckDB read the header as one column is named as a dialect problem."""
    root = _write_csv_folder(tmp_path / "csv", _users(), _transactions())
    lines = (root / "transactions.csv").read_text().splitlines()
    lines[3] += f',{SECRET_PHONE},"{SECRET_EMAIL}'  # line 4: extra fields, the last one's quote never closes
    (root / "transactions.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(SourceError) as info:
        open_source(root)
    text = str(info.value)
    assert "table 'transactions', file " in text and "transactions.csv" in text
    assert "dialect (delimiter, quote) could not be detected" in text and "line: 4" in text
    assert "missing required column" not in text
    _assert_no_row_content(text, "t3,")


def _write_duckdb_sql(path: Path, *statements: str) -> Path:
    con = duckdb.connect(str(path))
    con.register("u", _users())
    con.register("t", _transactions())
    for statement in statements:
        con.execute(statement)
    con.close()
    return path


def test_duckdb_tables_in_another_schema_are_found(tmp_path):
    """Tables that live only in one non-main schema (analytics.users) are read from there."""
    path = _write_duckdb_sql(
        tmp_path / "wh.duckdb",
        "CREATE SCHEMA analytics",
        "CREATE TABLE analytics.users AS SELECT * FROM u",
        "CREATE TABLE analytics.transactions AS SELECT * FROM t",
    )
    with open_source(path) as src:
        assert _net_by_user(src) == {"u1": 15.0, "u2": 30.0, "u3": 12.5}


def test_duckdb_table_names_match_case_insensitively(tmp_path):
    """USERS / TRANSACTIONS are the users / transactions tables, as DuckDB's own name lookup has it."""
    path = _write_duckdb_sql(
        tmp_path / "wh.duckdb",
        "CREATE TABLE USERS AS SELECT * FROM u",
        'CREATE TABLE "Transactions" AS SELECT * FROM t',
    )
    with open_source(path) as src:
        assert src.quality.users == 3 and src.quality.transactions == 4


def test_duckdb_table_in_several_schemas_but_not_main_is_an_error_naming_them(tmp_path):
    """Two candidate schemas and none in main: the error names the table and both schemas."""
    path = _write_duckdb_sql(
        tmp_path / "wh.duckdb",
        "CREATE SCHEMA a",
        "CREATE SCHEMA b",
        "CREATE TABLE a.users AS SELECT * FROM u",
        "CREATE TABLE b.users AS SELECT * FROM u",
        "CREATE TABLE transactions AS SELECT * FROM t",
    )
    with pytest.raises(SourceError, match=r"table 'users' is ambiguous.*schemas \['a', 'b'\]"):
        open_source(path)


def test_duckdb_table_in_main_wins_over_other_schemas(tmp_path):
    """main.users is the users table even when a staging schema holds another one."""
    path = _write_duckdb_sql(
        tmp_path / "wh.duckdb",
        "CREATE SCHEMA staging",
        "CREATE TABLE staging.users AS SELECT * FROM u LIMIT 1",
        "CREATE TABLE users AS SELECT * FROM u",
        "CREATE TABLE transactions AS SELECT * FROM t",
    )
    with open_source(path) as src:
        assert src.quality.users == 3


def test_all_transactions_unknown_with_user_id_types_differing_adds_a_type_hint(tmp_path):
    """users.user_id VARCHAR '1' vs transactions.user_id DOUBLE 1.0: the report names both types, no value."""
    users = _users(user_id=["1", "2", "3"])
    tx = _transactions(user_id=[1.0, 1.0, 2.0, 3.0])
    root = _write_parquet_folder(tmp_path / "src", users, tx)
    with open_source(root) as src:
        assert src.quality.transactions == 0
        assert src.quality.dropped == {"transactions: unknown user_id": 4}
        (note,) = src.quality.notes
        assert "DOUBLE in table 'transactions' but VARCHAR in table 'users'" in note
        assert "1.0" not in note
        assert note in src.quality.render()


def test_no_type_hint_when_some_transactions_match(tmp_path):
    """Ordinary unknown users (same key type) add no note."""
    tx = _transactions(user_id=["u1", "ghost", "u2", "u3"])
    root = _write_parquet_folder(tmp_path / "src", _users(), tx)
    with open_source(root) as src:
        assert src.quality.dropped == {"transactions: unknown user_id": 1}
        assert src.quality.notes == ()
