"""The report queue in a real browser: a desk moderator signs in to the admin, opens the
queue, bans a reported message's author, and finds the act in the audit log."""

from __future__ import annotations

import secrets

import pytest

from tests.e2e.browser import chrome, require_browser
from tests.e2e.conftest import Server, api

pytestmark = pytest.mark.timeout(180)


def test_a_moderator_bans_a_reported_author_from_the_queue(server: Server) -> None:
    require_browser()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.select import Select
    from selenium.webdriver.support.ui import WebDriverWait

    owner, author, reporter = (server.register() for _ in range(3))
    moderator_name, password = "mod" + secrets.token_hex(4), "desk-" + secrets.token_hex(8)
    status, body = server.call(
        "POST", "/api/v1/auth/register", {"username": moderator_name, "password": password}
    )
    assert status == 201, body
    moderator_id, moderator_token = body["user"]["id"], body["token"]
    status, community = api(server, "POST", "/api/v1/communities/", {"name": "Desk"}, owner[1])
    slug = community["slug"]
    for _, token in (author, reporter, (moderator_id, moderator_token)):
        assert api(server, "POST", f"/api/v1/communities/{slug}/join", None, token)[0] == 200
    path = f"/api/v1/communities/{slug}/members/{moderator_id}/"
    assert api(server, "PATCH", path, {"role": "moderator"}, owner[1])[0] == 200
    status, rooms = api(server, "GET", f"/api/v1/communities/{slug}/rooms/", None, owner[1])
    room = rooms["results"][0]["id"]
    status, message = api(
        server, "POST", f"/api/v1/rooms/{room}/messages",
        {"body": "something nasty", "client_msg_id": "n1"}, author[1],
    )  # fmt: skip
    assert status == 201, message
    status, report = api(
        server, "POST", f"/api/v1/messages/{message['id']}/report", {"reason": "abuse"}, reporter[1]
    )
    assert status == 201, report
    server.cluster.manage("desk_moderator", moderator_name)

    with chrome() as browser:
        wait = WebDriverWait(browser, 20)
        browser.get(server.base + "/admin/login/?next=/admin/chat/report/")
        browser.find_element(By.NAME, "username").send_keys(moderator_name)
        browser.find_element(By.NAME, "password").send_keys(password)
        browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
        wait.until(ready.presence_of_element_located((By.ID, "result_list")))
        assert "something nasty" in browser.page_source
        browser.find_element(
            By.CSS_SELECTOR, f"input[name=_selected_action][value='{report['id']}']"
        ).click()
        Select(browser.find_element(By.NAME, "action")).select_by_value("ban_author")
        browser.find_element(By.CSS_SELECTOR, "button[name=index]").click()
        wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "ul.messagelist")))
        assert "Banned the author from the community." in browser.page_source
        browser.get(server.base + "/admin/communities/auditentry/?action=member.ban")
        wait.until(ready.presence_of_element_located((By.ID, "result_list")))
        rows = browser.find_element(By.ID, "result_list").text
        assert "member.ban" in rows
        assert moderator_name in rows

    status, bans = api(server, "GET", f"/api/v1/communities/{slug}/bans/", None, owner[1])
    assert [b["user"]["id"] for b in bans["results"]] == [author[0]]
