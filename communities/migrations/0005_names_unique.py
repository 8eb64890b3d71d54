"""The constraints behind docs/api.md's naming rules (rows made to fit by 0004): slugs unique
regardless of case, community names by their key, usernames regardless of case."""

from __future__ import annotations

import django.db.models.functions.text
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ("communities", "0004_community_name_key"),
    ]

    operations = [
        migrations.AddConstraint(
            model_name="community",
            constraint=models.UniqueConstraint(
                django.db.models.functions.text.Lower("slug"), name="community_slug_ci_unique"
            ),
        ),
        migrations.AddConstraint(
            model_name="community",
            constraint=models.UniqueConstraint(
                fields=("name_key",), name="community_name_key_unique"
            ),
        ),
        # Registration refuses a username another has in any case; this keeps two concurrent
        # registrations (or any other writer) to the same rule.
        migrations.RunSQL(
            "CREATE UNIQUE INDEX communities_user_username_ci_unique"
            " ON auth_user (LOWER(username))",
            "DROP INDEX IF EXISTS communities_user_username_ci_unique",
        ),
    ]
