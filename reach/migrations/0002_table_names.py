from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("reach", "0001_initial")]

    operations = [
        migrations.AlterModelTable(name="linkstat", table=None),
        migrations.AlterModelTable(name="linkreader", table=None),
    ]
