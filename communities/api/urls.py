from django.urls import path

import sphere.converters  # noqa: F401  (registers the id and code converters)
from communities.api import auth, communities, rooms

C = "communities/<slug:slug>"

urlpatterns = [
    path("auth/register", auth.RegisterView.as_view()),
    path("auth/token", auth.TokenView.as_view()),
    path("auth/login", auth.LoginView.as_view()),
    path("auth/logout", auth.LogoutView.as_view()),
    path("auth/ws-ticket", auth.WsTicketView.as_view()),
    path("me", auth.MeView.as_view()),
    path("communities/", communities.CommunityListView.as_view()),
    path(f"{C}/", communities.CommunityDetailView.as_view()),
    path(f"{C}/join", communities.JoinView.as_view()),
    path(f"{C}/leave", communities.LeaveView.as_view()),
    path(f"{C}/members/", communities.MemberListView.as_view()),
    path(f"{C}/members/<id:user_id>/", communities.MemberDetailView.as_view()),
    path(f"{C}/members/<id:user_id>/mute", communities.MuteView.as_view()),
    path(f"{C}/bans/", communities.BanListView.as_view()),
    path(f"{C}/bans/<id:user_id>/", communities.BanDetailView.as_view()),
    path(f"{C}/invites/", communities.InviteListView.as_view()),
    path(f"{C}/invites/<code:code>/", communities.InviteDetailView.as_view()),
    path("invites/<code:code>/accept", communities.InviteAcceptView.as_view()),
    path(f"{C}/join-requests/", communities.JoinRequestListView.as_view()),
    path(
        f"{C}/join-requests/<id:request_id>/approve", communities.JoinRequestApproveView.as_view()
    ),
    path(f"{C}/join-requests/<id:request_id>/deny", communities.JoinRequestDenyView.as_view()),
    path(f"{C}/audit-log/", communities.AuditLogView.as_view()),
    path(f"{C}/rooms/", rooms.CommunityRoomListView.as_view()),
    path("rooms/<id:room_id>/", rooms.RoomDetailView.as_view()),
    path("rooms/<id:room_id>/members", rooms.RoomMemberListView.as_view()),
    path("rooms/<id:room_id>/members/<id:user_id>", rooms.RoomMemberDetailView.as_view()),
]
