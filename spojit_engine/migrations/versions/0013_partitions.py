"""The ledger's journal partitioned by workspace on PostgreSQL; postings name their workspace.

No ledger transaction spans two workspaces, so the tables that grow with history, ``entries``
and ``postings``, become ``PARTITION BY HASH (workspace_id)`` with ``PARTITIONS`` partitions:
every hot-path statement names its workspace and prunes to one partition, and each partition's
indexes hold only its workspaces' history.

- ``postings`` gains ``workspace_id`` (on SQLite too, filled from its entry, so both databases
  have one schema); a posting references its entry by ``(entry_id, workspace_id)``.
- A partitioned table's primary and UNIQUE keys must hold its partition key: ``entries`` is
  keyed ``(id, workspace_id)`` and its idempotency key is ``UNIQUE (key, workspace_id)``.
- A key still means one operation across the whole ledger, as it does on SQLite (a key used in
  another workspace is an ``IdempotencyConflict``, never a second posting): ``ledger_keys``,
  partitioned by the key's hash, holds each entry's key once. ``spojit_debit`` and the ledger's
  driver SQL write it in the same statement as the entry, so a used key fails that insert with
  the UNIQUE violation the ledger already turns into a replay or a conflict.
- The rollup rule's look-up of a node call's earlier entries names the workspace (a node call
  belongs to one), so it reads one partition: the trigger and ``spojit_debit`` are re-created
  from 0011's texts with that one change.

SQLite is unchanged in behaviour: one file, its entries' key UNIQUE as before.

Revision ID: 0013_partitions
Revises: 0012_hardening
"""

import importlib.util
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic import op

revision = "0013_partitions"
down_revision = "0012_hardening"
branch_labels = None
depends_on = None

PARTITIONS = 16  # hash partitions per table; a power of two, so each splits in two later

_NODE_CALL_LOOKUP = "FROM entries WHERE node_call = NEW.node_call"
_NODE_CALL_IN_WORKSPACE = (
    "FROM entries WHERE workspace_id = NEW.workspace_id AND node_call = NEW.node_call"
)
_KEY_INSERT = """    INSERT INTO ledger_keys (key, workspace_id) VALUES (p_key, p_workspace_id);
    INSERT INTO entries (workspace_id, key, kind,"""
_POSTING_INSERT = (
    "INSERT INTO postings (entry_id, grant_id, amount_ucr) VALUES (new_entry.id, ids[i], -part);",
    "INSERT INTO postings (entry_id, workspace_id, grant_id, amount_ucr)"
    " VALUES (new_entry.id, p_workspace_id, ids[i], -part);",
)

ENTRIES = """
CREATE TABLE entries (
    id integer NOT NULL DEFAULT nextval('entries_id_seq'),
    workspace_id varchar(32) NOT NULL REFERENCES workspaces (id),
    key varchar(200) NOT NULL,
    kind varchar(16) NOT NULL,
    amount_ucr bigint NOT NULL,
    held_ucr bigint NOT NULL,
    grant_id integer REFERENCES grants (id),
    hold_id integer REFERENCES holds (id),
    workflow varchar(128),
    node_type varchar(64),
    member_id varchar(32),
    test_run boolean NOT NULL,
    reason text,
    created_at timestamp NOT NULL,
    node_call varchar(200),
    CONSTRAINT entries_pkey PRIMARY KEY (id, workspace_id),
    CONSTRAINT entries_key_key UNIQUE (key, workspace_id)
) PARTITION BY HASH (workspace_id)
"""
POSTINGS = """
CREATE TABLE postings (
    id integer NOT NULL DEFAULT nextval('postings_id_seq'),
    entry_id integer NOT NULL,
    workspace_id varchar(32) NOT NULL,
    grant_id integer REFERENCES grants (id),
    amount_ucr bigint NOT NULL,
    CONSTRAINT postings_pkey PRIMARY KEY (id, workspace_id),
    CONSTRAINT postings_entry_fkey FOREIGN KEY (entry_id, workspace_id)
        REFERENCES entries (id, workspace_id)
) PARTITION BY HASH (workspace_id)
"""
LEDGER_KEYS = """
CREATE TABLE ledger_keys (
    key varchar(200) NOT NULL PRIMARY KEY,
    workspace_id varchar(32) NOT NULL REFERENCES workspaces (id)
) PARTITION BY HASH (key)
"""
INDEXES = (
    "CREATE INDEX ix_entries_workspace_created ON entries (workspace_id, created_at)",
    "CREATE INDEX ix_entries_node_call ON entries (node_call)",
    "CREATE INDEX ix_postings_entry ON postings (entry_id)",
    "CREATE INDEX ix_postings_grant ON postings (grant_id)",
)
_ENTRY_COLUMNS = (
    "id, workspace_id, key, kind, amount_ucr, held_ucr, grant_id, hold_id, workflow, node_type,"
    " member_id, test_run, reason, created_at, node_call"
)


def _sibling(stem: str) -> ModuleType:
    """An earlier migration of this directory, for the texts it installed."""
    spec = importlib.util.spec_from_file_location(stem, Path(__file__).with_name(f"{stem}.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _partitions(table: str) -> list[str]:
    return [
        f"CREATE TABLE {table}_p{r:02d} PARTITION OF {table}"
        f" FOR VALUES WITH (MODULUS {PARTITIONS}, REMAINDER {r})"
        for r in range(PARTITIONS)
    ]


def _rollup_statements(lean: ModuleType, rollups: ModuleType, *, pruned: bool) -> list[str]:
    """0011's ``spojit_debit`` and 0010's usage_daily trigger function and trigger; ``pruned``:
    with the workspace named in the node-call look-up, and the key and posting writes of this
    revision."""
    function = lean.function_sql()
    (rule,) = [r for r in rollups.RULES if r.name == "spojit_rollup_usage_daily"]
    (ddl_function, _trigger) = [
        s for s in rollups.create_statements("postgresql") if rule.name in s
    ]
    if pruned:
        on = _NODE_CALL_IN_WORKSPACE
        function = function.replace(_NODE_CALL_LOOKUP.replace("NEW.", "new_entry."),
                                    on.replace("NEW.", "new_entry."))  # fmt: skip
        function = function.replace(
            "    INSERT INTO entries (workspace_id, key, kind,", _KEY_INSERT
        )
        function = function.replace(*_POSTING_INSERT)
        ddl_function = ddl_function.replace(_NODE_CALL_LOOKUP, on)
    return [
        function,
        ddl_function,
        f"ALTER FUNCTION {rule.name}() {lean.GENERIC}",
        *lean._daily_trigger(rollups, f"({rule.when}) AND {lean.POSTED}")[1:],
    ]


def _upgrade_postgresql() -> None:
    lean, rollups = _sibling("0011_lean_debit"), _sibling("0010_rollup_triggers")
    for table in ("entries", "postings"):
        op.execute(f"ALTER TABLE {table} RENAME TO {table}_unpartitioned")
        for index in ("pkey", "key_key"):
            op.execute(f"ALTER INDEX IF EXISTS {table}_{index} RENAME TO {table}_old_{index}")
    for index in ("ix_entries_workspace_created", "ix_entries_node_call", "ix_postings_entry",
                  "ix_postings_grant"):  # fmt: skip
        op.execute(f"DROP INDEX {index}")
    for statement in (ENTRIES, *_partitions("entries"), POSTINGS, *_partitions("postings"),
                      LEDGER_KEYS, *_partitions("ledger_keys")):  # fmt: skip
        op.execute(statement)
    op.execute(
        f"INSERT INTO entries ({_ENTRY_COLUMNS}) SELECT {_ENTRY_COLUMNS} FROM entries_unpartitioned"
    )
    op.execute(
        "INSERT INTO postings (id, entry_id, workspace_id, grant_id, amount_ucr)"
        " SELECT p.id, p.entry_id, e.workspace_id, p.grant_id, p.amount_ucr"
        " FROM postings_unpartitioned p JOIN entries_unpartitioned e ON e.id = p.entry_id"
    )
    op.execute("INSERT INTO ledger_keys (key, workspace_id) SELECT key, workspace_id FROM entries")
    for table in ("entries", "postings"):
        op.execute(f"ALTER SEQUENCE {table}_id_seq OWNED BY {table}.id")
    op.execute("DROP TABLE postings_unpartitioned")
    op.execute("DROP TABLE entries_unpartitioned")  # its trigger goes with it
    for statement in (*INDEXES, *_rollup_statements(lean, rollups, pruned=True)):
        op.execute(statement)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _upgrade_postgresql()
        return
    with op.batch_alter_table("postings") as batch:
        batch.add_column(sa.Column("workspace_id", sa.String(length=32), nullable=True))
    op.execute(
        "UPDATE postings SET workspace_id ="
        " (SELECT workspace_id FROM entries WHERE entries.id = postings.entry_id)"
    )
    with op.batch_alter_table("postings") as batch:
        batch.alter_column("workspace_id", existing_type=sa.String(length=32), nullable=False)


def _downgrade_postgresql() -> None:
    lean, rollups = _sibling("0011_lean_debit"), _sibling("0010_rollup_triggers")
    op.execute("DROP TABLE ledger_keys")
    for table in ("entries", "postings"):
        op.execute(f"ALTER TABLE {table} RENAME TO {table}_partitioned")
        for index in ("pkey", "key_key"):
            op.execute(f"ALTER INDEX IF EXISTS {table}_{index} RENAME TO {table}_new_{index}")
    for index in INDEXES:
        op.execute(f"DROP INDEX {index.split()[2]}")
    op.execute(
        "CREATE TABLE entries (LIKE entries_partitioned INCLUDING DEFAULTS, PRIMARY KEY (id),"
        " UNIQUE (key), FOREIGN KEY (workspace_id) REFERENCES workspaces (id),"
        " FOREIGN KEY (grant_id) REFERENCES grants (id),"
        " FOREIGN KEY (hold_id) REFERENCES holds (id))"
    )
    op.execute(
        "CREATE TABLE postings (id integer NOT NULL DEFAULT nextval('postings_id_seq') PRIMARY KEY,"
        " entry_id integer NOT NULL REFERENCES entries (id),"
        " grant_id integer REFERENCES grants (id), amount_ucr bigint NOT NULL)"
    )
    op.execute(f"INSERT INTO entries SELECT {_ENTRY_COLUMNS} FROM entries_partitioned")
    op.execute(
        "INSERT INTO postings (id, entry_id, grant_id, amount_ucr)"
        " SELECT id, entry_id, grant_id, amount_ucr FROM postings_partitioned"
    )
    for table in ("entries", "postings"):
        op.execute(f"ALTER SEQUENCE {table}_id_seq OWNED BY {table}.id")
    op.execute("DROP TABLE postings_partitioned")
    op.execute("DROP TABLE entries_partitioned")
    for statement in (*INDEXES, *_rollup_statements(lean, rollups, pruned=False)):
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _downgrade_postgresql()
        return
    with op.batch_alter_table("postings") as batch:
        batch.drop_column("workspace_id")
