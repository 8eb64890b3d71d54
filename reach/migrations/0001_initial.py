# Link reach moved here from the fan-out app: the tables stay as they are (state only); the
# next migration gives them this app's names.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [("fanout", "0001_link_reach")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="LinkStat",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("community_id", models.BigIntegerField()),
                        ("digest", models.CharField(max_length=32)),
                        ("url", models.TextField()),
                        ("shares", models.BigIntegerField(default=0)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                    ],
                    options={
                        "db_table": "fanout_linkstat",
                        "constraints": [
                            models.UniqueConstraint(
                                fields=("community_id", "digest"), name="linkstat_link"
                            )
                        ],
                    },
                ),
                migrations.CreateModel(
                    name="LinkReader",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("user_id", models.BigIntegerField()),
                        (
                            "link",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="readers",
                                to="reach.linkstat",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "fanout_linkreader",
                        "constraints": [
                            models.UniqueConstraint(
                                fields=("link", "user_id"), name="linkreader_once"
                            )
                        ],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
