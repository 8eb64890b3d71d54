import sphere.converters  # noqa: F401  (registers the id converter)
from chat.api import reports, threads, views
from sphere.routes import api_path

urlpatterns = [
    api_path("me/rooms", views.MyRoomsView.as_view()),
    api_path("rooms/<id:room_id>/messages", views.RoomMessagesView.as_view()),
    api_path("rooms/<id:room_id>/read", views.ReadView.as_view()),
    api_path("rooms/<id:room_id>/presence", views.PresenceView.as_view()),
    api_path("messages/<id:message_id>/", views.MessageDetailView.as_view()),
    api_path("messages/<id:message_id>/reactions/<str:emoji>/", views.ReactionView.as_view()),
    api_path("messages/<id:message_id>/report", views.ReportView.as_view()),
    api_path("messages/<id:message_id>/thread", threads.ThreadView.as_view()),
    api_path("messages/<id:message_id>/thread/read", threads.ThreadReadView.as_view()),
    api_path("messages/<id:message_id>/follow", threads.FollowView.as_view()),
    api_path("me/threads", threads.MyThreadsView.as_view()),
    api_path("search", views.SearchView.as_view()),
    api_path("communities/<slug:slug>/reports/", reports.ReportListView.as_view()),
    api_path("reports/<id:report_id>/resolve", reports.ReportResolveView.as_view()),
]
