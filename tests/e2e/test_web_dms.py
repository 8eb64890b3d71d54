"""Direct messages in the web client, in real headless Chromium against a real server
(docs/web-client.md, "Direct messages"): one user starts a DM from a member list and the other
sees it arrive with an unread count and chats live; a group DM started from the picker grows
by one and loses one, and every member's header follows."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.browser import chrome, require_browser
from tests.e2e.conftest import Server, api
from tests.e2e.test_web_client import account, bodies, say, sign_in

pytestmark = pytest.mark.timeout(240)


def community_of(server: Server, owner_token: str, name: str, *tokens: str) -> str:
    """A public community of the owner, joined by the others; its slug."""
    status, community = api(server, "POST", "/api/v1/communities/", {"name": name}, owner_token)
    assert status == 201, community
    slug = str(community["slug"])
    for token in tokens:
        assert api(server, "POST", f"/api/v1/communities/{slug}/join", None, token)[0] == 200
    return slug


def current_room(browser: Any) -> dict[str, Any] | None:
    """The open room as the page holds it."""
    return browser.execute_script(
        "const s = window.sphere.state; return s.current === null ? null : "
        "(s.rooms.get(s.current) || null)"
    )


def dm_entries(browser: Any) -> dict[str, str]:
    """The sidebar's DMs: name -> unread badge ("0" without one)."""
    return dict(
        browser.execute_script(
            "return [...document.querySelectorAll('#dm-list button.room')].map(b => "
            "[b.querySelector('.name').textContent, "
            "(b.querySelector('.unread') || {textContent: '0'}).textContent])"
        )
    )


def open_dm(browser: Any, name: str) -> None:
    from selenium.webdriver.common.by import By

    for button in browser.find_elements(By.CSS_SELECTOR, "#dm-list button.room"):
        if button.find_element(By.CSS_SELECTOR, ".name").text == name:
            button.click()
            return
    raise AssertionError(f"no DM named {name!r} in {dm_entries(browser)}")


def header(browser: Any) -> tuple[str, str, bool, bool]:
    """(title, members line or "" when hidden, "Add people" shown, "Leave" shown)."""
    from selenium.webdriver.common.by import By

    people = browser.find_element(By.ID, "room-people")
    return (
        browser.find_element(By.ID, "room-title").text,
        people.text if people.is_displayed() else "",
        browser.find_element(By.ID, "add-people-button").is_displayed(),
        browser.find_element(By.ID, "leave-button").is_displayed(),
    )


def test_a_dm_from_the_member_list_arrives_unread_and_both_chat_live(server: Server) -> None:
    require_browser()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready

    ana_id, ana_token, ana, ana_password = account(server, "ana")
    ben_id, ben_token, ben, ben_password = account(server, "ben")
    community_of(server, ana_token, f"DM place {ana_id}", ben_token)

    with chrome() as ana_browser, chrome() as ben_browser:
        ben_wait = sign_in(ben_browser, server, ben, ben_password)  # #general is open
        assert dm_entries(ben_browser) == {}
        ana_wait = sign_in(ana_browser, server, ana, ana_password)

        # The members of #general (the community's): "Message" beside Ben, not beside Ana.
        ana_browser.find_element(By.ID, "members-button").click()
        message_ben = f"#member-list button[data-user='{ben_id}']"
        ana_wait.until(ready.element_to_be_clickable((By.CSS_SELECTOR, message_ben)))
        assert not ana_browser.find_elements(
            By.CSS_SELECTOR, f"#member-list button[data-user='{ana_id}']"
        )
        button = ana_browser.find_element(By.CSS_SELECTOR, message_ben)
        assert button.get_attribute("aria-label") == f"Message {ben}"
        button.click()
        ana_wait.until(lambda _: (current_room(ana_browser) or {}).get("kind") == "dm")
        dm = current_room(ana_browser)
        assert dm is not None
        assert [m["id"] for m in dm["members"]] == sorted([ana_id, ben_id])
        ana_wait.until(lambda _: header(ana_browser) == (ben, "", False, False))  # two: neither
        assert dm_entries(ana_browser) == {ben: "0"}

        say(ana_browser, "Hi Ben, just between us")
        ana_wait.until(lambda _: "Hi Ben, just between us" in bodies(ana_browser))

        # Ben's page: the DM arrived live (room.added) and counts the message as unread.
        ben_wait.until(lambda _: dm_entries(ben_browser) == {ana: "1"})
        assert bodies(ben_browser) == []  # #general is still the open room
        open_dm(ben_browser, ana)
        ben_wait.until(lambda _: "Hi Ben, just between us" in bodies(ben_browser))
        ben_wait.until(lambda _: dm_entries(ben_browser) == {ana: "0"})
        assert header(ben_browser) == (ana, "", False, False)
        assert (current_room(ben_browser) or {}).get("id") == dm["id"]

        say(ben_browser, "Hi Ana, got it")
        ana_wait.until(lambda _: "Hi Ana, got it" in bodies(ana_browser))
        assert bodies(ana_browser) == ["Hi Ben, just between us", "Hi Ana, got it"]
        ben_wait.until(lambda _: bodies(ben_browser) == bodies(ana_browser))

        # The same DM again (the server answers 200 with it): opened, not a second one.
        ben_browser.find_element(By.ID, "members-button").click()
        message_ana = f"#member-list button[data-user='{ana_id}']"
        ben_wait.until(ready.element_to_be_clickable((By.CSS_SELECTOR, message_ana)))
        ben_browser.find_element(By.CSS_SELECTOR, message_ana).click()
        ben_wait.until(lambda _: (current_room(ben_browser) or {}).get("id") == dm["id"])
        assert dm_entries(ben_browser) == {ana: "0"}


def test_a_group_dm_grows_and_loses_a_member_and_every_header_follows(server: Server) -> None:
    require_browser()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ready

    ana_id, ana_token, ana, ana_password = account(server, "ana")
    ben_id, ben_token, ben, ben_password = account(server, "ben")
    cy_id, cy_token, cy, cy_password = account(server, "cy")
    dan_id, dan_token, dan, _ = account(server, "dan")
    eve_id, eve_token, eve, _ = account(server, "eve")
    community_of(
        server, ana_token, f"Group place {ana_id}", ben_token, cy_token, dan_token, eve_token
    )
    status, me = api(server, "PATCH", "/api/v1/me", {"dm_policy": "none"}, eve_token)
    assert status == 200, me

    def picked(browser: Any) -> list[str]:
        return list(
            browser.execute_script(
                "return [...document.querySelectorAll('#picker-list label')]"
                ".map(l => l.textContent)"
            )
        )

    def pick(browser: Any, wait: Any, name: str, user_id: int) -> None:
        """Filter the picker down to one user and tick them."""
        box = browser.find_element(By.ID, "picker-filter")
        box.clear()
        box.send_keys(name[:5])
        wait.until(lambda _: picked(browser) == [name])
        browser.find_element(By.CSS_SELECTOR, f"label[for='pick-{user_id}']").click()
        assert browser.find_element(By.ID, f"pick-{user_id}").is_selected()

    with chrome() as ana_browser, chrome() as ben_browser, chrome() as cy_browser:
        ben_wait = sign_in(ben_browser, server, ben, ben_password)
        cy_wait = sign_in(cy_browser, server, cy, cy_password)
        ana_wait = sign_in(ana_browser, server, ana, ana_password)

        # The picker is a labelled modal dialog; Escape closes it and gives focus back.
        new_dm = ana_browser.find_element(By.ID, "new-dm-button")
        new_dm.click()
        dialog = ana_browser.find_element(By.ID, "picker")
        ana_wait.until(lambda _: dialog.get_attribute("open") is not None)
        assert dialog.get_attribute("aria-labelledby") == "picker-title"
        assert ana_browser.switch_to.active_element.get_attribute("id") == "picker-filter"
        ana_wait.until(lambda _: sorted(picked(ana_browser)) == sorted([ben, cy, dan, eve]))
        ana_browser.switch_to.active_element.send_keys(Keys.ESCAPE)
        ana_wait.until(lambda _: dialog.get_attribute("open") is None)
        assert ana_browser.switch_to.active_element.get_attribute("id") == "new-dm-button"

        # Eve takes no DMs: the server's refusal shows in the dialog, which stays open.
        new_dm.click()
        ana_wait.until(lambda _: len(picked(ana_browser)) == 4)
        pick(ana_browser, ana_wait, eve, eve_id)
        ana_browser.find_element(By.ID, "picker-submit").click()
        status, refusal = api(server, "POST", "/api/v1/dms/", {"user_ids": [eve_id]}, ana_token)
        assert status == 403, refusal
        ana_wait.until(
            lambda _: ana_browser.find_element(By.ID, "picker-error").text == refusal["message"]
        )
        assert dialog.get_attribute("open") is not None
        ana_browser.find_element(By.CSS_SELECTOR, f"label[for='pick-{eve_id}']").click()

        # Ben and Cy, picked through the filter, then Start.
        pick(ana_browser, ana_wait, ben, ben_id)
        pick(ana_browser, ana_wait, cy, cy_id)
        assert ana_browser.find_element(By.ID, "picker-count").text == f"Picked: {ben}, {cy}"
        ana_browser.find_element(By.ID, "picker-submit").click()
        ana_wait.until(lambda _: dialog.get_attribute("open") is None)
        ana_wait.until(lambda _: len((current_room(ana_browser) or {}).get("members") or []) == 3)
        others = ", ".join(sorted([ben, cy]))
        assert header(ana_browser) == (others, f"Members: {others}, you", True, True)
        say(ana_browser, "Welcome, both")

        for browser, wait, other in (
            (ben_browser, ben_wait, cy),
            (cy_browser, cy_wait, ben),
        ):
            names = ", ".join(sorted([ana, other]))
            wait.until(lambda _, b=browser, n=names: dm_entries(b) == {n: "1"})
            open_dm(browser, names)
            wait.until(lambda _, b=browser: "Welcome, both" in bodies(b))
            assert header(browser) == (names, f"Members: {names}, you", True, True)

        # Ana adds Dan (one user): Ben's header follows live.
        ana_browser.find_element(By.ID, "add-people-button").click()
        ana_wait.until(lambda _: dialog.get_attribute("open") is not None)
        ana_wait.until(lambda _: sorted(picked(ana_browser)) == sorted([dan, eve]))  # not members
        pick(ana_browser, ana_wait, dan, dan_id)
        ana_browser.find_element(By.ID, "picker-submit").click()
        ana_wait.until(lambda _: dialog.get_attribute("open") is None)
        four = ", ".join(sorted([ana, cy, dan]))
        ben_wait.until(lambda _: header(ben_browser) == (four, f"Members: {four}, you", True, True))

        # Cy leaves: the DM leaves Cy's sidebar; Ana's and Ben's headers drop Cy.
        cy_browser.find_element(By.ID, "leave-button").click()
        cy_wait.until(lambda _: dm_entries(cy_browser) == {})
        cy_wait.until(ready.text_to_be_present_in_element((By.ID, "notice"), "you left"))
        assert cy_browser.find_element(By.ID, "composer").is_displayed() is False
        ana_others = ", ".join(sorted([ben, dan]))
        ana_wait.until(
            lambda _: header(ana_browser) == (ana_others, f"Members: {ana_others}, you", True, True)
        )
        ben_others = ", ".join(sorted([ana, dan]))
        ben_wait.until(
            lambda _: header(ben_browser) == (ben_others, f"Members: {ben_others}, you", True, True)
        )
        assert dm_entries(ben_browser) == {ben_others: "0"}
        status, page = api(server, "GET", "/api/v1/me/rooms", None, cy_token)
        assert status == 200
        assert all(r["kind"] != "dm" for r in page["results"])
