# Link reach is the reach app's now (its tables were moved there, not dropped).

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("fanout", "0001_link_reach"), ("reach", "0001_initial")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="LinkReader"),
                migrations.DeleteModel(name="LinkStat"),
            ],
            database_operations=[],
        ),
    ]
