from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from communities.models import Community, Membership, Room

PASSWORD = "correct-horse-battery"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class CommunityFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Community

    slug = factory.Sequence(lambda n: f"community-{n}")
    name = factory.Sequence(lambda n: f"Community {n}")
    visibility = Community.Visibility.PUBLIC


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    community = factory.SubFactory(CommunityFactory)
    user = factory.SubFactory(UserFactory)
    role = "member"


class RoomFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Room

    community = factory.SubFactory(CommunityFactory)
    name = factory.Sequence(lambda n: f"room-{n}")
