"""Threads in the web client, in real headless Chromium against a real server
(docs/web-client.md, "Threads"): one user replies in a thread on another's message; the
other sees the root's "1 reply" and the Threads view's unread count live, opens the thread
from there, and reads the next reply live in the pane. Replies never enter the room's list."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.browser import chrome, require_browser
from tests.e2e.conftest import Server, api
from tests.e2e.test_web_client import account, bodies, say, sign_in

pytestmark = pytest.mark.timeout(240)


def message_id(browser: Any, body: str) -> int:
    """The id of the open room's message of that body, as the page holds it."""
    found = browser.execute_script(
        "const s = window.sphere.state; const log = s.logs.get(s.current);"
        "const m = log && log.ordered().find(x => x.body === arguments[0]);"
        "return m ? m.id : null",
        body,
    )
    assert found is not None, body
    return int(found)


def pane_bodies(browser: Any) -> list[str]:
    """The thread pane's delivered messages, the root first; [] while it is closed."""
    return list(
        browser.execute_script(
            "if (document.getElementById('thread').hidden) return [];"
            "return [...document.querySelectorAll('#thread-messages li.message:not(.pending)"
            " .body')].map(e => e.textContent)"
        )
    )


def replies_label(browser: Any, root: int) -> str:
    """The root's "N replies" in the room's list ("" without one)."""
    return str(
        browser.execute_script(
            "const b = document.querySelector(`#m-${arguments[0]} .replies`);"
            "return b ? b.textContent : ''",
            root,
        )
    )


def threads_view(browser: Any) -> tuple[dict[int, str], str]:
    """The sidebar's Threads view: root id -> unread badge ("0" without one), and the
    heading's total badge ("" when hidden)."""
    entries, badge = browser.execute_script(
        "const b = document.getElementById('threads-badge');"
        "return [[...document.querySelectorAll('#thread-list button.thread-entry')].map(e => "
        "[e.dataset.root, (e.querySelector('.unread') || {textContent: '0'}).textContent]),"
        "b.hidden ? '' : b.textContent]"
    )
    return {int(root): unread for root, unread in entries}, str(badge)


def focused(browser: Any) -> str:
    return str(browser.switch_to.active_element.get_attribute("id") or "")


def act(browser: Any, root: int, label: str) -> None:
    """Click one of a message's actions (shown on hover, always in the tab order)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    item = browser.find_element(By.ID, f"m-{root}")
    ActionChains(browser).move_to_element(item).perform()
    for button in item.find_elements(By.CSS_SELECTOR, ".actions button"):
        if button.text == label:
            button.click()
            return
    raise AssertionError(f"no {label!r} on message {root}")


def test_a_reply_in_thread_shows_live_on_the_root_in_the_pane_and_in_threads(
    server: Server,
) -> None:
    require_browser()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    _, ana_token, ana, ana_password = account(server, "ana")
    _, ben_token, ben, ben_password = account(server, "ben")
    status, community = api(server, "POST", "/api/v1/communities/", {"name": "Threads"}, ana_token)
    assert status == 201, community
    slug = community["slug"]
    assert api(server, "POST", f"/api/v1/communities/{slug}/join", None, ben_token)[0] == 200

    with chrome() as ana_browser, chrome() as ben_browser:
        ana_wait = sign_in(ana_browser, server, ana, ana_password)  # #general is open
        say(ana_browser, "Who is in for lunch?")
        ana_wait.until(lambda _: "Who is in for lunch?" in bodies(ana_browser))
        root = message_id(ana_browser, "Who is in for lunch?")
        ana_wait.until(lambda _: threads_view(ana_browser) == ({}, ""))

        # Ben: "Reply in thread" opens the labelled pane with focus in its composer.
        ben_wait = sign_in(ben_browser, server, ben, ben_password)
        ben_wait.until(lambda _: "Who is in for lunch?" in bodies(ben_browser))
        act(ben_browser, root, "Reply in thread")
        ben_wait.until(lambda _: pane_bodies(ben_browser) == ["Who is in for lunch?"])
        pane = ben_browser.find_element(By.ID, "thread")
        assert pane.get_attribute("aria-labelledby") == "thread-title"
        assert ben_browser.find_element(By.ID, "thread-title").text == "Thread"
        assert focused(ben_browser) == "thread-input"
        ben_browser.switch_to.active_element.send_keys("Me, at noon\n")
        ben_wait.until(
            lambda _: pane_bodies(ben_browser) == ["Who is in for lunch?", "Me, at noon"]
        )
        ben_wait.until(lambda _: replies_label(ben_browser, root) == "1 reply")
        assert bodies(ben_browser) == ["Who is in for lunch?"]

        # Ana, whose pane is closed: "1 reply" on the root, and the thread in her Threads
        # view (she wrote the root, so she follows it) with one unread reply.
        ana_wait.until(lambda _: replies_label(ana_browser, root) == "1 reply")
        ana_wait.until(lambda _: threads_view(ana_browser) == ({root: "1"}, "1"))
        assert bodies(ana_browser) == ["Who is in for lunch?"]
        assert pane_bodies(ana_browser) == []

        # Opening it from the Threads view reads it: 0 unread, here and on the server.
        ana_browser.find_element(
            By.CSS_SELECTOR, f"#thread-list button[data-root='{root}']"
        ).click()
        ana_wait.until(
            lambda _: pane_bodies(ana_browser) == ["Who is in for lunch?", "Me, at noon"]
        )
        assert focused(ana_browser) == "thread-input"
        ana_wait.until(lambda _: threads_view(ana_browser) == ({root: "0"}, ""))
        ana_wait.until(
            lambda _: (
                api(server, "GET", "/api/v1/me/threads", None, ana_token)[1]["results"][0]["unread"]
                == 0
            )
        )
        assert ana_browser.find_element(By.ID, "thread-follow").text == "Unfollow"

        # Ben's next reply comes live into Ana's open pane, never into the room's list.
        ben_browser.find_element(By.ID, "thread-input").send_keys("And me, at one\n")
        ana_wait.until(
            lambda _: (
                pane_bodies(ana_browser)
                == ["Who is in for lunch?", "Me, at noon", "And me, at one"]
            )
        )
        ana_wait.until(lambda _: replies_label(ana_browser, root) == "2 replies")
        assert bodies(ana_browser) == ["Who is in for lunch?"]
        assert bodies(ben_browser) == ["Who is in for lunch?"]
        ana_wait.until(lambda _: threads_view(ana_browser) == ({root: "0"}, ""))

        # Ana answers in the pane; Ben sees it in his.
        ana_browser.find_element(By.ID, "thread-input").send_keys("See you both\n")
        ben_wait.until(lambda _: pane_bodies(ben_browser)[-1:] == ["See you both"])
        ben_wait.until(lambda _: replies_label(ben_browser, root) == "3 replies")
        status, thread = api(server, "GET", f"/api/v1/messages/{root}/thread", None, ana_token)
        assert status == 200, thread
        assert [m["body"] for m in thread["results"]] == pane_bodies(ana_browser)[1:]
        status, page = api(server, "GET", "/api/v1/rooms/" + str(thread["root"]["room"]) +
                           "/messages", None, ana_token)  # fmt: skip
        assert [m["body"] for m in page["results"]] == ["Who is in for lunch?"]

        # Unfollow takes it off the Threads view; Follow brings it back.
        ana_browser.find_element(By.ID, "thread-follow").click()
        ana_wait.until(lambda _: threads_view(ana_browser) == ({}, ""))
        assert ana_browser.find_element(By.ID, "thread-follow").text == "Follow"
        ana_browser.find_element(By.ID, "thread-follow").click()
        ana_wait.until(lambda _: threads_view(ana_browser) == ({root: "0"}, ""))

        # Escape closes the pane, and focus goes back to where it was opened from.
        ana_browser.find_element(By.ID, "thread-input").send_keys(Keys.ESCAPE)
        ana_wait.until(lambda _: pane_bodies(ana_browser) == [])
        assert ana_browser.find_element(By.ID, "thread").is_displayed() is False
        assert ana_browser.switch_to.active_element.get_attribute("data-root") == str(root)
        # Ben closes his with the button: his "Reply in thread" was drawn again (the root's
        # summary changed), so focus goes to the room's message box.
        ben_browser.find_element(By.ID, "thread-close").click()
        ben_wait.until(lambda _: pane_bodies(ben_browser) == [])
        assert focused(ben_browser) == "composer-input"
