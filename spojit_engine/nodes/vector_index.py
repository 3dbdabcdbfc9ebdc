"""``VectorIndex``: the passages a Knowledge node searches — ``(id, text)`` with one embedding each,
ranked by cosine similarity (``score`` in [-1, 1], higher is closer; ties broken by id — on
sqlite-vec, among the ``k`` nearest it returns, so a tie at the k-th place may pick either).

Two stores behind one face:
- **embedded** (the default): sqlite-vec's ``vec0`` virtual table in the index's own SQLite file,
  ``settings.home / "knowledge" / f"{name}.db"``, never the ledger's database. The connection
  comes from ``sqlean`` (the stdlib ``sqlite3`` of many Python builds cannot load extensions);
  one connection per operation, so a node may run in any Prefect worker thread.
- **PostgreSQL** (``database_url="postgresql://…"``): one table, ``spojit_knowledge_passages``,
  with the embedding as ``float8[]`` and cosine similarity computed in SQL (an exact scan).
  pgvector would be the faster choice but is not packaged for PostgreSQL 15 here; the table is
  created by the index (it is not ledger data, so it is not in the Alembic migrations).

Dimensions (and the embedding model, when given) are fixed by the first vectors added; a later
vector or query of another size or model is refused, since it would compare unlike spaces.
This module stores and searches only: it embeds nothing and bills nothing (``Knowledge`` does).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url

from spojit_engine.errors import InvalidInput
from spojit_engine.settings import get_settings

# Limits (module constants: they bound this module's own inputs).
K_MAX = 50  # passages one search returns
ADD_PASSAGES_MAX = 100  # passages one add (and one ingest call) writes
PASSAGE_CHARS_MAX = 4_000  # ≈ 1,000 tokens, so K_MAX passages fit one summarising prompt
PASSAGE_ID_CHARS_MAX = 256
DIMENSIONS_MAX = 8_192  # sqlite-vec's own ceiling for a float vector
INDEX_NAME_CHARS_MAX = 64
SQLITE_BUSY_TIMEOUT_SECONDS = 30.0

PG_TABLE = "spojit_knowledge_passages"


@dataclass(frozen=True, slots=True)
class Hit:
    id: str
    text: str
    score: float


@dataclass(frozen=True, slots=True)
class _Space:
    """What the stored vectors are: their size and, when known, the model that made them."""

    dimensions: int
    model: str | None


# Given the stored space (None while empty), a batch's size and model: the space to keep.
_SpaceChecker = Callable[[_Space | None, int, str | None], _Space]


def check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= K_MAX:
        raise InvalidInput(f"k must be a whole number from 1 to {K_MAX}, not {k!r}.")
    return k


def _check_name(name: str) -> str:
    ok = isinstance(name, str) and 1 <= len(name) <= INDEX_NAME_CHARS_MAX
    if not ok or not all(c.isascii() and (c.isalnum() or c in "-_") for c in name):
        raise InvalidInput(
            f"An index name is 1-{INDEX_NAME_CHARS_MAX} letters, digits, '-' or '_', not {name!r}."
        )
    return name


def _check_vector(vector: Sequence[float], what: str) -> list[float]:
    values = [float(v) for v in vector]
    if not 1 <= len(values) <= DIMENSIONS_MAX:
        raise InvalidInput(f"{what} has {len(values)} dimensions; 1-{DIMENSIONS_MAX} are allowed.")
    if not all(math.isfinite(v) for v in values):
        raise InvalidInput(f"{what} holds a value that is not a finite number.")
    if not any(values):
        raise InvalidInput(f"{what} is all zeros, so it has no direction to compare.")
    return values


def check_passages(ids: Sequence[str], texts: Sequence[str]) -> None:
    """Refuse a batch of passages the index would refuse, before anything is embedded."""
    if len(ids) != len(texts):
        raise InvalidInput(f"Passages need one id per text, not {len(ids)} for {len(texts)}.")
    if not 1 <= len(ids) <= ADD_PASSAGES_MAX:
        raise InvalidInput(f"One add writes 1-{ADD_PASSAGES_MAX} passages, not {len(ids)}.")
    for passage_id, passage in zip(ids, texts, strict=True):
        if not isinstance(passage_id, str) or not 1 <= len(passage_id) <= PASSAGE_ID_CHARS_MAX:
            raise InvalidInput(f"A passage id is a string of 1-{PASSAGE_ID_CHARS_MAX} characters.")
        if not isinstance(passage, str) or not passage.strip():
            raise InvalidInput(f"Passage {passage_id!r} has no text.")
        if len(passage) > PASSAGE_CHARS_MAX:
            raise InvalidInput(
                f"Passage {passage_id!r} has {len(passage)} characters; split it into passages "
                f"of at most {PASSAGE_CHARS_MAX}."
            )
    if len(set(ids)) != len(ids):
        raise InvalidInput("The passages of one add need unique ids.")


def _check_batch(
    ids: Sequence[str], texts: Sequence[str], vectors: Sequence[Sequence[float]]
) -> list[list[float]]:
    check_passages(ids, texts)
    if len(vectors) != len(ids):
        raise InvalidInput(f"add needs one vector per passage, not {len(vectors)} for {len(ids)}.")
    checked = [
        _check_vector(v, f"The vector of passage {i!r}") for i, v in zip(ids, vectors, strict=True)
    ]
    if len({len(v) for v in checked}) != 1:
        raise InvalidInput("The vectors of one add must all have the same number of dimensions.")
    return checked


def _check_space(name: str, space: _Space, dimensions: int, model: str | None) -> None:
    if dimensions != space.dimensions:
        raise InvalidInput(
            f"Index {name!r} holds {space.dimensions}-dimension vectors, not {dimensions}."
        )
    if model is not None and space.model is not None and model != space.model:
        raise InvalidInput(
            f"Index {name!r} holds {space.model} vectors; {model} vectors cannot be compared."
        )


class VectorIndex:
    """An index of passages: embedded sqlite-vec by default, PostgreSQL given ``database_url``
    (a SQLite URL keeps the embedded store: the index never shares the ledger's file)."""

    def __init__(
        self, name: str, *, database_url: str | None = None, path: Path | None = None
    ) -> None:
        self.name = _check_name(name)
        self._space: _Space | None = None  # fixed once set, so it is cached
        self._store: _SqliteVecStore | _PostgresStore
        if database_url and make_url(database_url).get_backend_name() == "postgresql":
            self._store = _PostgresStore(self.name, database_url)
        else:
            default = get_settings().home / "knowledge" / f"{self.name}.db"
            self._store = _SqliteVecStore(Path(path) if path else default)

    @property
    def backend(self) -> str:
        """``sqlite-vec`` or ``postgresql-float8``."""
        return self._store.backend

    @property
    def dimensions(self) -> int | None:
        space = self._known_space()
        return space.dimensions if space else None

    def add(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        vectors: Sequence[Sequence[float]],
        *,
        model: str | None = None,
    ) -> int:
        """Store passages (an existing id is replaced); returns how many were written."""
        checked = _check_batch(ids, texts, vectors)
        self._space = self._store.add(list(ids), list(texts), checked, model, self._checker)
        return len(checked)

    def search(self, vector: Sequence[float], k: int, *, model: str | None = None) -> list[Hit]:
        """The ``k`` passages closest to ``vector``, closest first (fewer if the index is small)."""
        check_k(k)
        query = _check_vector(vector, "The query vector")
        space = self._known_space()
        if space is None:
            return []
        _check_space(self.name, space, len(query), model)
        return self._store.search(query, k)

    def count(self) -> int:
        return self._store.count()

    def close(self) -> None:
        self._store.close()

    def _known_space(self) -> _Space | None:
        if self._space is None:
            self._space = self._store.space()
        return self._space

    def _checker(self, space: _Space | None, dimensions: int, model: str | None) -> _Space:
        """Run inside the store's write lock: the space the batch must fit, set if still empty."""
        if space is None:
            return _Space(dimensions, model)
        _check_space(self.name, space, dimensions, model)
        return space

    def __repr__(self) -> str:
        return f"VectorIndex({self.name!r}, {self.backend})"


class _SqliteVecStore:
    backend = "sqlite-vec"

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS passages "
                "(rowid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, text TEXT NOT NULL)"
            )
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")

    @contextmanager
    def _connect(self) -> Iterator[Any]:
        import sqlean
        import sqlite_vec

        conn = sqlean.connect(
            str(self.path), timeout=SQLITE_BUSY_TIMEOUT_SECONDS, isolation_level=None
        )
        try:
            conn.enable_load_extension(True)
            sqlite_vec.load(conn)
            conn.enable_load_extension(False)
            yield conn
        finally:
            conn.close()

    @staticmethod
    def _read_space(conn: Any) -> _Space | None:
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        if "dimensions" not in meta:
            return None
        return _Space(int(meta["dimensions"]), meta.get("model"))

    def space(self) -> _Space | None:
        with self._connect() as conn:
            return self._read_space(conn)

    def add(self, ids: list[str], texts: list[str], vectors: list[list[float]],
            model: str | None, checker: _SpaceChecker) -> _Space:  # fmt: skip
        import sqlite_vec

        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                before = self._read_space(conn)
                space = checker(before, len(vectors[0]), model)
                if before is None:
                    conn.execute(
                        "CREATE VIRTUAL TABLE vectors USING "
                        f"vec0(embedding float[{space.dimensions}] distance_metric=cosine)"
                    )
                    conn.executemany(
                        "INSERT INTO meta (key, value) VALUES (?, ?)",
                        [("dimensions", str(space.dimensions)), ("model", space.model)],
                    )
                for passage_id, passage, vector in zip(ids, texts, vectors, strict=True):
                    self._put(conn, passage_id, passage, sqlite_vec.serialize_float32(vector))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return space

    @staticmethod
    def _put(conn: Any, passage_id: str, passage: str, blob: bytes) -> None:
        """Insert a passage, or replace the text and vector of the one with this id."""
        row = conn.execute("SELECT rowid FROM passages WHERE id = ?", (passage_id,)).fetchone()
        if row is None:
            cursor = conn.execute(
                "INSERT INTO passages (id, text) VALUES (?, ?)", (passage_id, passage)
            )
            rowid = cursor.lastrowid
        else:
            rowid = row[0]
            conn.execute("UPDATE passages SET text = ? WHERE rowid = ?", (passage, rowid))
            conn.execute("DELETE FROM vectors WHERE rowid = ?", (rowid,))
        conn.execute("INSERT INTO vectors (rowid, embedding) VALUES (?, ?)", (rowid, blob))

    def search(self, query: list[float], k: int) -> list[Hit]:
        import sqlite_vec

        with self._connect() as conn:
            rows = conn.execute(
                "WITH knn AS (SELECT rowid, distance FROM vectors "
                "WHERE embedding MATCH ? AND k = ?) "
                "SELECT p.id, p.text, knn.distance FROM knn JOIN passages p ON p.rowid = knn.rowid "
                "ORDER BY knn.distance, p.id",
                (sqlite_vec.serialize_float32(query), k),
            ).fetchall()
        return [Hit(i, t, 1.0 - float(d)) for i, t, d in rows]

    def count(self) -> int:
        with self._connect() as conn:
            return int(conn.execute("SELECT count(*) FROM passages").fetchone()[0])

    def close(self) -> None:
        """Nothing is held open between operations."""


class _PostgresStore:
    backend = "postgresql-float8"

    def __init__(self, name: str, database_url: str) -> None:
        from spojit_engine.db import make_engine

        self.name = name
        self.engine = make_engine(database_url)
        with self._connect() as conn, conn.begin():
            # Concurrent CREATE TABLE IF NOT EXISTS can still collide in the catalog: serialise.
            conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:t))"), {"t": PG_TABLE})
            conn.execute(text(
                f"CREATE TABLE IF NOT EXISTS {PG_TABLE} ("
                "index_name text NOT NULL, id text NOT NULL, text text NOT NULL, "
                "embedding float8[] NOT NULL, norm float8 NOT NULL CHECK (norm > 0), model text, "
                "PRIMARY KEY (index_name, id))"
            ))  # fmt: skip

    def _read_space(self, conn: Any) -> _Space | None:
        row = conn.execute(
            text(
                f"SELECT array_length(embedding, 1), model FROM {PG_TABLE} "
                "WHERE index_name = :n LIMIT 1"
            ),
            {"n": self.name},
        ).first()
        return None if row is None else _Space(int(row[0]), row[1])

    def _connect(self) -> Any:
        """A connection that waits out a restarting server, as the ledger's do (``db.connect``)."""
        from spojit_engine.db import connect

        return connect(self.engine)

    def space(self) -> _Space | None:
        with self._connect() as conn:
            return self._read_space(conn)

    def add(self, ids: list[str], texts: list[str], vectors: list[list[float]],
            model: str | None, checker: _SpaceChecker) -> _Space:  # fmt: skip
        with self._connect() as conn, conn.begin():
            # One writer per index at a time, so the first batch fixes the space for everyone.
            conn.execute(
                text("SELECT pg_advisory_xact_lock(hashtext(:k))"),
                {"k": f"{PG_TABLE}:{self.name}"},
            )
            space = checker(self._read_space(conn), len(vectors[0]), model)
            conn.execute(
                text(
                    f"INSERT INTO {PG_TABLE} (index_name, id, text, embedding, norm, model) "
                    "VALUES (:n, :id, :text, CAST(:v AS float8[]), :norm, :model) "
                    "ON CONFLICT (index_name, id) DO UPDATE SET text = excluded.text, "
                    "embedding = excluded.embedding, norm = excluded.norm, model = excluded.model"
                ),
                [
                    {"n": self.name, "id": i, "text": t, "v": v, "norm": _norm(v),
                     "model": space.model}
                    for i, t, v in zip(ids, texts, vectors, strict=True)
                ],
            )  # fmt: skip
        return space

    def search(self, query: list[float], k: int) -> list[Hit]:
        with self._connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT id, text, (SELECT sum(a * b) FROM unnest(embedding, "
                    "CAST(:q AS float8[])) AS t(a, b)) / (norm * :qnorm) AS score "
                    f"FROM {PG_TABLE} WHERE index_name = :n ORDER BY score DESC, id LIMIT :k"
                ),
                {"q": query, "qnorm": _norm(query), "n": self.name, "k": k},
            ).all()
        return [Hit(i, t, float(s)) for i, t, s in rows]

    def count(self) -> int:
        with self._connect() as conn:
            return int(
                conn.execute(
                    text(f"SELECT count(*) FROM {PG_TABLE} WHERE index_name = :n"),
                    {"n": self.name},
                ).scalar_one()
            )

    def close(self) -> None:
        self.engine.dispose()


def _norm(vector: Sequence[float]) -> float:
    return math.sqrt(math.fsum(v * v for v in vector))
