from django.db import migrations, models
from django.db.models import F


def backfill(apps, schema_editor):
    """Each message's last event: its message.new, or a later edit, deletion or reaction."""
    Message = apps.get_model("chat", "Message")
    RoomEvent = apps.get_model("chat", "RoomEvent")
    Message.objects.update(event_seq=F("seq"))
    last: dict[int, int] = {}
    events = RoomEvent.objects.exclude(type="message.new").values_list("type", "seq", "payload")
    for type_, seq, payload in events.iterator(chunk_size=2000):
        if type_ == "message.edited":
            message_id = (payload.get("message") or {}).get("id")
        else:
            message_id = payload.get("message_id")
        if isinstance(message_id, int) and seq > last.get(message_id, 0):
            last[message_id] = seq
    for message_id, seq in last.items():
        Message.objects.filter(pk=message_id, event_seq__lt=seq).update(event_seq=seq)


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0003_report_one_open"),
    ]

    operations = [
        migrations.AddField(
            model_name="message",
            name="event_seq",
            field=models.BigIntegerField(default=0),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
