from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from chat.asyncapi import asyncapi_view
from sphere import errors
from sphere.health import healthz
from sphere.metrics import metrics_view
from web.views import index

urlpatterns = [
    path("api/v1/", include("communities.api.urls")),
    path("api/v1/", include("chat.api.urls")),
    path("api/v1/", include("reach.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("api/asyncapi.json", asyncapi_view, name="asyncapi"),
    path("healthz", healthz),
    path("metrics", metrics_view),
    path(settings.ADMIN_PATH, admin.site.urls),
    path("", index, name="client"),
]

handler400 = errors.handler400
handler403 = errors.handler403
handler404 = errors.handler404
handler500 = errors.handler500
