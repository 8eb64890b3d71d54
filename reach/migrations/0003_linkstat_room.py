from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("reach", "0002_table_names"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="linkstat",
            name="linkstat_link",
        ),
        migrations.AddField(
            model_name="linkstat",
            name="room_id",
            field=models.BigIntegerField(null=True),
        ),
        migrations.AddConstraint(
            model_name="linkstat",
            constraint=models.UniqueConstraint(
                fields=("community_id", "room_id", "digest"), name="linkstat_room_link"
            ),
        ),
    ]
