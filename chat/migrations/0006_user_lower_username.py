"""Mentions look users up by their lower-case name (chat/writer/): an index on it, so that
the look-up reads the named users only, whatever the number of accounts."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0005_room_event_no_outbox_mark"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [
        migrations.RunSQL(
            "CREATE INDEX IF NOT EXISTS chat_user_lower_username ON auth_user (LOWER(username))",
            "DROP INDEX IF EXISTS chat_user_lower_username",
        ),
    ]
