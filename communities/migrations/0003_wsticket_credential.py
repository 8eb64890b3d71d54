from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("communities", "0002_room_access_version"),
    ]

    operations = [
        migrations.AddField(
            model_name="wsticket",
            name="credential",
            field=models.CharField(blank=True, default="", max_length=64),
        ),
    ]
