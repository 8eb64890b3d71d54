"""The web client in real headless Chromium, against a real server: two browsers as two users
chat live; one goes offline while the other posts, comes back and shows every message once and
in order; a ban takes the room off the banned user's screen. The run also refreshes the
client's screenshot in docs/."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.browser import chrome, require_browser
from tests.e2e.conftest import ROOT, Server, api

pytestmark = pytest.mark.timeout(240)
SCREENSHOT = ROOT / "docs" / "web-client.png"
WAIT = 20


def account(server: Server, prefix: str) -> tuple[int, str, str, str]:
    """(id, token, username, password) of a new account."""
    name, password = f"{prefix}{secrets.token_hex(3)}", "web-" + secrets.token_hex(8)
    status, body = server.call(
        "POST", "/api/v1/auth/register", {"username": name, "password": password}
    )
    assert status == 201, body
    return body["user"]["id"], body["token"], name, password


def sign_in(browser: Any, server: Server, name: str, password: str) -> Any:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, WAIT)
    browser.get(server.base + "/")
    wait.until(ready.visibility_of_element_located((By.ID, "signin-username")))
    browser.find_element(By.ID, "signin-username").send_keys(name)
    browser.find_element(By.ID, "signin-password").send_keys(password)
    browser.find_element(By.CSS_SELECTOR, "button[value=login]").click()
    wait.until(ready.text_to_be_present_in_element((By.ID, "link-state"), "Live"))
    return wait


def say(browser: Any, text: str) -> None:
    from selenium.webdriver.common.by import By

    browser.find_element(By.ID, "composer-input").send_keys(text + "\n")


def bodies(browser: Any) -> list[str]:
    """The delivered messages on screen, top to bottom (not the ones still sending)."""
    return list(
        browser.execute_script(
            "return [...document.querySelectorAll('#messages li.message:not(.pending) .body')]"
            ".map(e => e.textContent)"
        )
    )


def reactions(browser: Any) -> list[str]:
    return list(
        browser.execute_script(
            "return [...document.querySelectorAll('#messages .reactions .chip')]"
            ".map(e => e.textContent)"
        )
    )


def network(browser: Any, online: bool) -> None:
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd(
        "Network.emulateNetworkConditions",
        {"offline": not online, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )


def test_two_users_chat_live_catch_up_in_order_and_a_ban_takes_the_room_away(
    server: Server,
) -> None:
    require_browser()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready

    ana_id, ana_token, ana, ana_password = account(server, "ana")
    ben_id, ben_token, ben, ben_password = account(server, "ben")
    status, community = api(server, "POST", "/api/v1/communities/", {"name": "Web room"}, ana_token)
    assert status == 201, community
    slug = community["slug"]
    assert api(server, "POST", f"/api/v1/communities/{slug}/join", None, ben_token)[0] == 200

    with chrome() as ana_browser, chrome() as ben_browser:
        ana_wait = sign_in(ana_browser, server, ana, ana_password)
        say(ana_browser, "Hello Ben")
        ana_wait.until(lambda _: "Hello Ben" in bodies(ana_browser))
        # A reaction before Ben arrives: his history page shows it, and the replay after his
        # reconnect below starts before it; it must still count once.
        status, rooms = api(server, "GET", f"/api/v1/communities/{slug}/rooms/", None, ana_token)
        room = rooms["results"][0]["id"]
        status, page = api(server, "GET", f"/api/v1/rooms/{room}/messages", None, ana_token)
        hello = page["results"][0]["id"]
        path = f"/api/v1/messages/{hello}/reactions/%F0%9F%91%8D/"
        assert api(server, "PUT", path, None, ana_token)[0] == 200

        ben_wait = sign_in(ben_browser, server, ben, ben_password)
        ben_wait.until(lambda _: "Hello Ben" in bodies(ben_browser))
        assert reactions(ben_browser) == ["👍 1"]
        say(ben_browser, "Hi Ana, all good here")
        ana_wait.until(lambda _: "Hi Ana, all good here" in bodies(ana_browser))

        network(ben_browser, online=False)
        ben_wait.until(ready.text_to_be_present_in_element((By.ID, "link-state"), "Offline"))
        missed = [f"while you were away {n}" for n in range(1, 6)]
        for text in missed:
            say(ana_browser, text)
        ana_wait.until(lambda _: bodies(ana_browser)[-1:] == missed[-1:])
        assert not any(text in bodies(ben_browser) for text in missed)
        network(ben_browser, online=True)
        ben_wait.until(ready.text_to_be_present_in_element((By.ID, "link-state"), "Live"))
        ben_wait.until(lambda _: missed[-1] in bodies(ben_browser))
        expected = ["Hello Ben", "Hi Ana, all good here", *missed]
        assert bodies(ben_browser) == expected  # every message, once, in order
        assert bodies(ana_browser) == expected
        assert reactions(ben_browser) == ["👍 1"]  # the replayed reaction applied once

        shot(ana_browser, SCREENSHOT)

        path = f"/api/v1/communities/{slug}/bans/"
        status, ban = api(server, "POST", path, {"user_id": ben_id, "reason": "test"}, ana_token)
        assert status == 201, ban
        ben_wait.until(
            lambda _: not ben_browser.find_elements(By.CSS_SELECTOR, "#room-list button.room")
        )
        ben_wait.until(ready.text_to_be_present_in_element((By.ID, "notice"), "banned"))
        assert ben_browser.find_element(By.ID, "composer").is_displayed() is False
        assert ana_id != ben_id


def shot(browser: Any, target: Path) -> None:
    """The client as a user sees it (members and who is online shown), for the README."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.find_element(By.ID, "members-button").click()
    WebDriverWait(browser, WAIT).until(
        lambda _: browser.find_elements(By.CSS_SELECTOR, "#member-list .dot.online")
    )
    ActionChains(browser).move_to_element(browser.find_element(By.ID, "room-title")).perform()
    browser.execute_script("document.activeElement && document.activeElement.blur()")
    target.parent.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(target))


def test_unread_counts_survive_a_reconnect_without_counting_twice(server: Server) -> None:
    require_browser()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready

    _, ana_token, _, _ = account(server, "ana")
    _, ben_token, ben, ben_password = account(server, "ben")
    status, community = api(server, "POST", "/api/v1/communities/", {"name": "Counts"}, ana_token)
    slug = community["slug"]
    assert api(server, "POST", f"/api/v1/communities/{slug}/join", None, ben_token)[0] == 200
    status, other = api(
        server, "POST", f"/api/v1/communities/{slug}/rooms/", {"name": "zz-side"}, ana_token
    )
    assert status == 201, other

    def unread() -> str:
        found = ben_browser.find_elements(
            By.CSS_SELECTOR, f"#room-list button[data-room='{other['id']}'] .unread"
        )
        return found[0].text if found else "0"

    def post(n: int) -> None:
        status, body = api(
            server, "POST", f"/api/v1/rooms/{other['id']}/messages",
            {"body": f"side {n}", "client_msg_id": f"s{n}"}, ana_token,
        )  # fmt: skip
        assert status == 201, body

    def room_button(room_id: int) -> Any:
        return ben_browser.find_element(
            By.CSS_SELECTOR, f"#room-list button[data-room='{room_id}']"
        )

    with chrome() as ben_browser:
        wait = sign_in(ben_browser, server, ben, ben_password)  # #general opens first
        general = int(ben_browser.execute_script("return window.sphere.state.current"))
        post(1)
        wait.until(lambda _: unread() == "1")
        room_button(other["id"]).click()  # read it: its log is kept, so a reconnect syncs it
        wait.until(lambda _: "side 1" in bodies(ben_browser))
        wait.until(lambda _: unread() == "0")
        room_button(general).click()
        network(ben_browser, online=False)
        wait.until(ready.text_to_be_present_in_element((By.ID, "link-state"), "Offline"))
        post(2)
        post(3)
        network(ben_browser, online=True)
        wait.until(ready.text_to_be_present_in_element((By.ID, "link-state"), "Live"))
        post(4)
        wait.until(lambda _: unread() == "3")
        # Two counted by hello, replayed by sync without counting again, and one live.
        assert unread() == "3"
