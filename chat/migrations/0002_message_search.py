"""A GIN index for message search on PostgreSQL.

Its expression is exactly what ``SearchVector("body", config="simple")`` renders (see
``chat.selectors.search``), so that the planner can match the search's WHERE clause against it.
Other databases search by substring and get no index. The index is not in the model's Meta:
it exists only on PostgreSQL, which the model state cannot express.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

INDEX = "chat_message_body_search"

CREATE = (
    f"CREATE INDEX IF NOT EXISTS {INDEX} ON chat_message "
    "USING gin (to_tsvector('simple'::regconfig, COALESCE(body, ''::text)))"
)
DROP = f"DROP INDEX IF EXISTS {INDEX}"


def create_index(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop_index(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("chat", "0001_messages")]

    operations = [
        migrations.RunPython(create_index, drop_index, elidable=False),
    ]
