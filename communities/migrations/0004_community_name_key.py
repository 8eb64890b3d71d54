"""Community names become unique by a normalized key, slugs regardless of case (docs/api.md).

Existing rows are made to fit before 0005 adds the constraints:

- a name whose key another, older community already holds gets `` (2)``, `` (3)``, … appended
  (a name is a label: changing it breaks nothing);
- slugs that differ only by case, or usernames that do, stop the migration with a message naming
  them: a slug is an address and a username a login, so an operator chooses which to change.
"""

from __future__ import annotations

import unicodedata
from collections import defaultdict
from typing import Any

from django.conf import settings
from django.db import migrations, models


def _key(name: str) -> str:
    # A frozen copy of communities.models.community_name_key (migrations keep their own).
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
    visible = "".join(ch for ch in folded if unicodedata.category(ch) != "Cf")
    return " ".join(visible.split())


def case_duplicates(values: list[str], what: str) -> str:
    """A sentence naming the ``values`` that differ only by case; empty if none do."""
    groups: dict[str, list[str]] = defaultdict(list)
    for value in values:
        groups[value.lower()].append(value)
    clashes = sorted(sorted(found) for found in groups.values() if len(found) > 1)
    if not clashes:
        return ""
    listed = "; ".join(", ".join(found) for found in clashes)
    return f"{what} must be unique regardless of case; these differ only by case: {listed}."


def fitted_names(names: list[str]) -> list[str]:
    """``names`` (oldest first) with `` (n)`` appended to each whose key an earlier one holds."""
    taken: set[str] = set()
    fitted = []
    for original in names:
        name, n = original, 1
        while _key(name) in taken:
            n += 1
            suffix = f" ({n})"
            name = original[: 100 - len(suffix)] + suffix
        taken.add(_key(name))
        fitted.append(name)
    return fitted


def forwards(apps: Any, schema_editor: Any) -> None:
    Community = apps.get_model("communities", "Community")
    User = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    problems = [
        case_duplicates(list(Community.objects.values_list("slug", flat=True)), "Community slugs"),
        case_duplicates(list(User.objects.values_list("username", flat=True)), "Usernames"),
    ]
    if any(problems):
        found = " ".join(problem for problem in problems if problem)
        raise RuntimeError(f"{found} Change all but one of each, then run migrate again.")
    communities = list(Community.objects.order_by("created_at", "pk"))
    for community, name in zip(
        communities, fitted_names([c.name for c in communities]), strict=True
    ):
        community.name, community.name_key = name, _key(name)
        community.save(update_fields=["name", "name_key"])


class Migration(migrations.Migration):
    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ("communities", "0003_wsticket_credential"),
    ]

    operations = [
        migrations.AddField(
            model_name="community",
            name="name_key",
            field=models.TextField(default="", editable=False),
        ),
        migrations.RunPython(forwards, migrations.RunPython.noop),
    ]
