"""Link reach moved from the fan-out app to its own: the migration keeps every counted link."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Count

BEFORE = [("fanout", "0001_link_reach"), ("reach", None)]


def migrate(targets: list[tuple[str, str | None]]) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)


@pytest.mark.django_db(transaction=True)
def test_links_counted_before_the_move_are_still_counted_after_it() -> None:
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes()
    migrate(BEFORE)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO fanout_linkstat (community_id, digest, url, shares, created_at)"
                " VALUES (5, 'abc', 'https://a.example/x', 3, CURRENT_TIMESTAMP)"
            )
            cursor.execute("SELECT id FROM fanout_linkstat WHERE digest = 'abc'")
            link_id = cursor.fetchone()[0]
            for user_id in (1, 2):
                cursor.execute(
                    "INSERT INTO fanout_linkreader (link_id, user_id) VALUES (%s, %s)",
                    [link_id, user_id],
                )
    finally:
        migrate(latest)
    from reach.models import LinkStat

    link = LinkStat.objects.annotate(reach=Count("readers")).get(digest="abc")
    assert (link.url, link.shares, link.reach) == ("https://a.example/x", 3, 2)
