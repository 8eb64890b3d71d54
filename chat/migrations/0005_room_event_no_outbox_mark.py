"""Room events lose their outbox mark: the fan-out tier records what it has routed per room in
Redis, and its sweep compares that with the rooms' heads (docs/fanout.md)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0004_message_event_seq"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="roomevent",
            name="room_event_unpublished",
        ),
        migrations.RemoveField(
            model_name="roomevent",
            name="published_at",
        ),
    ]
