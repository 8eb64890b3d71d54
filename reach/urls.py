from django.urls import path

import sphere.converters  # noqa: F401  (registers the id and code converters)
from reach.api import ReachView

urlpatterns = [
    path("communities/<slug:slug>/reach", ReachView.as_view()),
]
