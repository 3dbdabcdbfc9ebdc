"""The billed workspaces the node tests run in (helpers in ``node_billing``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from node_billing import Billed, billed_workspace

from spojit_engine import Engine


@pytest.fixture
def acme(sqlite_engine: Engine, prefect_harness: None) -> Iterator[Billed]:
    with billed_workspace(sqlite_engine) as billed:
        yield billed


@pytest.fixture
def acme_on_each_db(engine: Engine, prefect_harness: None) -> Iterator[Billed]:
    with billed_workspace(engine) as billed:
        yield billed
