import sphere.converters  # noqa: F401  (registers the id and code converters)
from communities.api import auth, communities, dms, rooms, users
from sphere.routes import api_path

C = "communities/<slug:slug>"

urlpatterns = [
    api_path("auth/register", auth.RegisterView.as_view()),
    api_path("auth/token", auth.TokenView.as_view()),
    api_path("auth/login", auth.LoginView.as_view()),
    api_path("auth/logout", auth.LogoutView.as_view()),
    api_path("auth/ws-ticket", auth.WsTicketView.as_view()),
    api_path("me", auth.MeView.as_view()),
    api_path("communities/", communities.CommunityListView.as_view()),
    api_path(f"{C}/", communities.CommunityDetailView.as_view()),
    api_path(f"{C}/join", communities.JoinView.as_view()),
    api_path(f"{C}/leave", communities.LeaveView.as_view()),
    api_path(f"{C}/members/", communities.MemberListView.as_view()),
    api_path(f"{C}/members/<id:user_id>/", communities.MemberDetailView.as_view()),
    api_path(f"{C}/members/<id:user_id>/mute", communities.MuteView.as_view()),
    api_path(f"{C}/bans/", communities.BanListView.as_view()),
    api_path(f"{C}/bans/<id:user_id>/", communities.BanDetailView.as_view()),
    api_path(f"{C}/invites/", communities.InviteListView.as_view()),
    api_path(f"{C}/invites/<code:code>/", communities.InviteDetailView.as_view()),
    api_path("invites/<code:code>", communities.InvitePreviewView.as_view()),
    api_path("invites/<code:code>/accept", communities.InviteAcceptView.as_view()),
    api_path(f"{C}/join-requests/", communities.JoinRequestListView.as_view()),
    api_path(
        f"{C}/join-requests/<id:request_id>/approve", communities.JoinRequestApproveView.as_view()
    ),
    api_path(f"{C}/join-requests/<id:request_id>/deny", communities.JoinRequestDenyView.as_view()),
    api_path(f"{C}/audit-log/", communities.AuditLogView.as_view()),
    api_path(f"{C}/rooms/", rooms.CommunityRoomListView.as_view()),
    api_path("rooms/<id:room_id>/", rooms.RoomDetailView.as_view()),
    api_path("rooms/<id:room_id>/members", rooms.RoomMemberListView.as_view()),
    api_path("rooms/<id:room_id>/members/<id:user_id>", rooms.RoomMemberDetailView.as_view()),
    api_path("rooms/<id:room_id>/leave", dms.RoomLeaveView.as_view()),
    api_path("dms/", dms.DmCreateView.as_view()),
    api_path("users/", users.UserSearchView.as_view()),
]
