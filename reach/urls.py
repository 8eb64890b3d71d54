import sphere.converters  # noqa: F401  (registers the id and code converters)
from reach.api import ReachView
from sphere.routes import api_path

urlpatterns = [
    api_path("communities/<slug:slug>/reach", ReachView.as_view()),
]
