"""The memory inspector in a real browser: headless Chromium (Selenium) against the app served
on real Redis, Milvus and Feast, with a trained model and generated users.

One module-scoped site: the small generated dataset ingested, trained and materialized; "ana"
told Engram she lives in Boston, then that she moved to Seattle (a superseded fact); the most
active generated user holds 600 memories (slot chains, expired intents, preferences, episodes),
whose page load is measured. Screenshots of each view land in test-artifacts/ui/
(ENGRAM_TEST_ARTIFACTS overrides), which the run keeps.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import statistics
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
from flask import Flask
from pymilvus import MilvusClient
from werkzeug.serving import BaseWSGIServer, make_server

from core.settings import Settings
from core.stores import feature_store, local_redis
from memory.embed import Embedder
from memory.extract import TextSignal
from memory.records import Memory
from pipelines.batch import run_ingest
from pipelines.generate import GenerateConfig, write_dataset
from pipelines.materialize import materialize_incremental
from ranking.fit import train_and_save
from ranking.ranker import load_ranker
from tests.conftest import PausableServer
from tests.feature_home import AS_OF
from tests.serving.conftest import API_KEYS, KEYS

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support import expected_conditions  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = (
    Path(
        os.environ.get("ENGRAM_TEST_ARTIFACTS")
        or Path(__file__).resolve().parents[2] / "test-artifacts"
    )
    / "ui"
)
REDIS_DB = 11
T1 = datetime(2026, 3, 1, 9, tzinfo=UTC)
T2 = datetime(2026, 6, 1, 9, tzinfo=UTC)
HEAVY_MEMORIES = 600
PAGE_LOAD_BUDGET_MS = 300


@dataclass
class Site:
    """The app served over HTTP, and who is planted in it."""

    base: str
    app: Flask
    heavy_user: str


def _text(event_id: str, user_id: str, at: datetime, text: str) -> TextSignal:
    return TextSignal(
        event_id=event_id,
        user_id=user_id,
        ts=at,
        type="message",
        text=text,
        speaker="user",
        session_id=f"s-{at.date()}",
    )


PLANTED = [
    _text("ana-1", "ana", T1, "I live in Boston."),
    _text("ana-2", "ana", T1, "I am vegetarian."),
    _text("ana-3", "ana", T2, "I just moved to Seattle."),
    _text("zed-1", "zed", T1, "I live in Denver."),
]


def _heavy_memories(user_id: str, now: datetime) -> list[Memory]:
    """600 memories over a year: two slot chains (each fact superseded by the next), intents
    (most expired), open preferences, and episodes."""
    start = now - timedelta(days=360)
    out: list[Memory] = []

    def add(kind: Any, text: str, at: datetime, **fields: Any) -> Memory:
        memory = Memory(
            memory_id=f"m-heavy-{len(out):04d}",
            user_id=user_id,
            kind=kind,
            text=text,
            confidence=0.8,
            valid_from=at,
            created_at=at,
            updated_at=at,
            source_event_ids=(f"heavy-e{len(out)}",),
            **fields,
        )
        out.append(memory)
        return memory

    for slot, (kind, values) in {
        "location": ("attribute", "city"),
        "employer": ("attribute", "company"),
    }.items():
        chain = [start + timedelta(days=12 * i) for i in range(30)]
        ids = [f"m-heavy-{len(out) + i:04d}" for i in range(30)]
        for i, at in enumerate(chain):
            last = i == len(chain) - 1
            add(
                kind,
                f"{slot.title()} is {values} {i}",
                at,
                slot=slot,
                value=f"{values} {i}",
                valid_to=None if last else chain[i + 1],
                superseded_by=None if last else ids[i + 1],
            )
    for i in range(80):
        at = start + timedelta(days=4 * i)
        add("intent", f"Wants to buy thing {i}", at, expires_at=at + timedelta(days=14))
    for i in range(100):
        add("preference", f"Likes topic {i}", start + timedelta(days=3 * i + 1))
    while len(out) < HEAVY_MEMORIES:
        i = len(out)
        add("episode", f"Said something number {i}", start + timedelta(hours=14 * i))
    return out


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory, redis_server: str, milvus_uri: str, minilm: Embedder
) -> Iterator[Site]:
    """The app on a free port (werkzeug, threaded) over a trained, materialized home."""
    from serving.app import create_app

    root = tmp_path_factory.mktemp("inspector")
    paths = write_dataset(root / "data", GenerateConfig.small())
    url = redis_server.rsplit("/", 1)[0] + f"/{REDIS_DB}"
    # Milvus calls time out after 5 s (2 s in production): the machine is shared and busy.
    settings = Settings(
        engram_home=root / "home",
        redis_url=url,
        milvus_uri=milvus_uri,
        engram_milvus_timeout_ms=5_000,
    )
    memories = f"t_ui_{uuid.uuid4().hex[:10]}"
    items = f"t_ui_items_{uuid.uuid4().hex[:8]}"
    with redis.Redis.from_url(url) as client:
        client.flushdb()
    with paths.signals.open("a", encoding="utf-8") as signals:  # their events are stored too
        for said in PLANTED:
            record = {
                "event_id": said.event_id,
                "user_id": said.user_id,
                "ts": said.ts.isoformat(),
                "type": said.type,
                "text": said.text,
                "context": {"speaker": said.speaker, "session_id": said.session_id},
            }
            signals.write(json.dumps(record) + "\n")
    run_ingest(settings, paths.signals, catalog=paths.catalog, as_of=AS_OF)
    train_and_save(settings, embedder=minilm, collection=items)
    store = feature_store.open_store(settings, url)
    feature_store.apply_repo(store, settings)
    with redis.Redis.from_url(url) as client:
        materialize_incremental(store, client, AS_OF)
    app = create_app(
        settings,
        {
            # The registry's latest version, as the app would load it, with the session's model.
            "ENGRAM_RANKER": load_ranker(settings, embedder=minilm),
            "ENGRAM_API_KEYS": API_KEYS,
            "ENGRAM_REFRESH": False,
            "ENGRAM_MEMORY_COLLECTION": memories,
            "ENGRAM_EMBEDDER": minilm,
        },
    )
    ext = app.extensions["engram"]
    service = ext.memories.get()
    service.remember(PLANTED)
    model = ext.ranking.model
    assert model is not None, "the trained model was not loaded"
    history = model.inputs.context.history  # type: ignore[attr-defined]
    heavy = max(history.users, key=lambda u: len(history.before(u, 2**62).items))
    planted = _heavy_memories(heavy, datetime.now(UTC))
    vectors = np.random.default_rng(17).normal(size=(len(planted), minilm.dim))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    service.store.write(planted, vectors.astype(np.float32))

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    server: BaseWSGIServer = make_server("127.0.0.1", local_redis.free_port(), app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Site(f"http://127.0.0.1:{server.server_port}", app, heavy)
    finally:
        server.shutdown()
        ext.close()
        client = MilvusClient(uri=milvus_uri)
        for name in (memories, items):
            if client.has_collection(name):
                client.drop_collection(name)
        client.close()
        with redis.Redis.from_url(url) as flush:
            flush.flushdb()


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    """Headless Chromium through chromedriver (Debian's chromium and chromium-driver)."""
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("chromium and chromedriver are not installed (infra/install-system.sh)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1000",
        "--disable-extensions",
        "--no-first-run",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    driver.implicitly_wait(5)  # an element of the next page, while it loads
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


def shoot(driver: WebDriver, name: str) -> None:
    """A screenshot of the whole page (up to 4,000 px high) into the artifacts folder."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 4000)}
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {"format": "png", "captureBeyondViewport": True, "clip": {**clip, "scale": 1}},
    )
    (ARTIFACTS / f"{name}.png").write_bytes(base64.b64decode(shot["data"]))


def sign_in(driver: WebDriver, site: Site, scope: str = "admin") -> None:
    """Log in through the form with the test key of `scope`."""
    driver.delete_all_cookies()
    driver.get(f"{site.base}/ui/login")
    driver.find_element(By.ID, "key").send_keys(KEYS[scope])
    driver.find_element(By.ID, "sign-in").click()
    WebDriverWait(driver, 10).until(
        expected_conditions.presence_of_element_located((By.ID, "find"))
    )


def absent(driver: WebDriver, element_id: str) -> bool:
    """True when the page has no such element, asked without the implicit wait."""
    driver.implicitly_wait(0)
    try:
        return not driver.find_elements(By.ID, element_id)
    finally:
        driver.implicitly_wait(5)


def shows(driver: WebDriver, element_id: str, text: str) -> None:
    """Wait (10 s) until the element shows the text: a page after a click may still load."""
    WebDriverWait(driver, 10, 0.1, (StaleElementReferenceException,)).until(
        expected_conditions.text_to_be_present_in_element((By.ID, element_id), text)
    )


def bars(driver: WebDriver) -> dict[str, str]:
    """memory text -> state, for every interval drawn on the timeline."""
    found = {}
    for bar in driver.find_elements(By.CSS_SELECTOR, "#timeline .bar"):
        title = bar.find_element(By.TAG_NAME, "title").get_attribute("textContent") or ""
        found[title.split(" (")[0].split(": ", 1)[-1]] = bar.get_attribute("data-state") or ""
    return found


def facts_listed(driver: WebDriver) -> list[str]:
    """The texts of the facts listed as true at the page's time (episodes left out)."""
    rows = driver.find_elements(By.CSS_SELECTOR, "#true-at tr[data-memory-id]")
    cells = [row.find_elements(By.TAG_NAME, "td") for row in rows]
    return [cell[1].text for cell in cells if cell[0].text != "episode"]


def test_no_page_without_a_key(site: Site, browser: WebDriver) -> None:
    browser.delete_all_cookies()
    browser.get(f"{site.base}/ui/users/ana")
    assert browser.find_elements(By.ID, "login") and absent(browser, "user-id")
    assert "Boston" not in browser.page_source
    shoot(browser, "00-login")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{site.base}/ui/users/ana", timeout=10)
    assert refused.value.code == 401
    cookie = refused.value.headers.get("Set-Cookie", "")
    assert not cookie or ("HttpOnly" in cookie and "SameSite=Strict" in cookie)
    form = urllib.parse.urlencode({"confirm": "ana"}).encode()
    with pytest.raises(urllib.error.HTTPError) as forged:
        urllib.request.urlopen(f"{site.base}/ui/users/ana/forget", data=form, timeout=10)
    assert forged.value.code == 401  # no session: nothing forgotten
    # A wrong key is refused; a read key sees pages but may not forget.
    browser.get(f"{site.base}/ui/login")
    browser.find_element(By.ID, "key").send_keys("x" * 24)
    browser.find_element(By.ID, "sign-in").click()
    shows(browser, "login", "unknown API key")
    sign_in(browser, site, "read")
    browser.get(f"{site.base}/ui/users/ana/forget")
    assert "lacks the 'admin' scope" in browser.find_element(By.ID, "error").text
    assert absent(browser, "forget-user")


def test_the_timeline_draws_the_superseded_fact_and_what_replaced_it(
    site: Site, browser: WebDriver
) -> None:
    sign_in(browser, site)
    browser.find_element(By.ID, "q").send_keys("ana", Keys.ENTER)
    browser.find_element(By.ID, "open-user").click()
    assert browser.find_element(By.ID, "user-id").text == "ana"
    drawn = bars(browser)
    boston = next(state for text, state in drawn.items() if "Boston" in text)
    seattle = next(state for text, state in drawn.items() if "Seattle" in text)
    assert (boston, seattle) == ("superseded", "open")
    assert browser.find_elements(By.CSS_SELECTOR, "#timeline line.supersede")
    facts = facts_listed(browser)
    assert "Moved to Seattle" in facts and not any("Boston" in fact for fact in facts)
    shoot(browser, "01-user-timeline")


def test_moving_the_as_of_control_shows_the_earlier_fact(site: Site, browser: WebDriver) -> None:
    sign_in(browser, site)
    browser.get(f"{site.base}/ui/users/ana")
    slider = browser.find_element(By.ID, "as-of-slider")
    slider.send_keys(Keys.HOME)  # the earliest memory: the day ana said she lived in Boston
    WebDriverWait(browser, 10).until(expected_conditions.url_contains("as_of="))
    shows(browser, "shown", "as Engram knew the user at")
    facts = facts_listed(browser)
    assert any("Boston" in fact for fact in facts) and not any("Seattle" in f for f in facts)
    assert "as Engram knew the user at" in browser.find_element(By.ID, "shown").text
    assert "Seattle" not in " ".join(bars(browser))  # learnt later: not drawn then
    shoot(browser, "02-as-of")


def test_search_shows_each_hits_score_parts(site: Site, browser: WebDriver) -> None:
    sign_in(browser, site)
    browser.get(f"{site.base}/ui/users/ana")
    browser.find_element(By.ID, "search-q").send_keys("which city did she move to", Keys.ENTER)
    shows(browser, "search", "score =")
    hits = browser.find_elements(By.CSS_SELECTOR, "#hits tr.hit")
    assert any("Moved to Seattle" in hit.text for hit in hits), browser.find_element(
        By.ID, "search"
    ).text
    first = hits[0]
    parts = {p.get_attribute("data-part") for p in first.find_elements(By.CSS_SELECTOR, ".part")}
    assert parts == {"dense", "lexical", "recency", "confidence"}
    shoot(browser, "03-search")


def test_a_memory_opens_with_its_fields_sources_and_history(site: Site, browser: WebDriver) -> None:
    sign_in(browser, site)
    browser.get(f"{site.base}/ui/users/ana")
    boston = next(
        bar
        for bar in browser.find_elements(By.CSS_SELECTOR, "#timeline .bar")
        if "Boston" in (bar.find_element(By.TAG_NAME, "title").get_attribute("textContent") or "")
    )
    browser.execute_script(
        "arguments[0].parentNode.dispatchEvent(new MouseEvent('click', {bubbles: true}))", boston
    )
    WebDriverWait(browser, 10).until(
        expected_conditions.presence_of_element_located((By.ID, "memory"))
    )
    page = browser.find_element(By.ID, "memory").text
    assert "Boston" in page and "superseded" in page
    assert browser.find_element(By.ID, "slot").text.startswith("location")
    assert "Seattle" in browser.find_element(By.ID, "replaced-by").text
    assert "I live in Boston." in browser.find_element(By.ID, "sources").text  # the stored event
    history = browser.find_element(By.ID, "history").text
    assert history.index("Boston") < history.index("Seattle")
    shoot(browser, "04-memory")


def test_features_activity_and_the_rankings_reasons(site: Site, browser: WebDriver) -> None:
    sign_in(browser, site)
    browser.get(f"{site.base}/ui/users/{site.heavy_user}")
    features = browser.find_element(By.ID, "features").text
    assert "events_7d" in features and "user_7d" in features
    assert browser.find_elements(By.CSS_SELECTOR, "#activity rect.col")
    items = browser.find_elements(By.CSS_SELECTOR, "#ranked details.reasons")
    assert len(items) == 10
    items[0].find_element(By.TAG_NAME, "summary").click()
    opened = items[0].text
    assert "Sources:" in opened
    assert len(items[0].find_elements(By.CSS_SELECTOR, "svg.contrib rect")) == 3
    assert len(browser.find_elements(By.CSS_SELECTOR, "#timeline .bar")) == HEAVY_MEMORIES
    states = [
        b.get_attribute("data-state")
        for b in browser.find_elements(By.CSS_SELECTOR, "#timeline .bar")
    ]
    assert {"open", "superseded", "expired"} <= set(states)
    shoot(browser, "05-features-ranking")


def test_a_user_page_with_600_memories_is_measured(site: Site, browser: WebDriver) -> None:
    """The page load of a user with 600 memories, written to ARTIFACTS/page-load.json. The
    300 ms target is a benchmark figure (docs/benchmarks.md), not a pass mark: a loaded CI
    machine must not fail the build on it; a page ten times over it does."""
    sign_in(browser, site)
    url = f"{site.base}/ui/users/{site.heavy_user}"
    browser.get(url)  # warm: the first read of each store
    loads, servers, parts = [], [], []
    for _ in range(7):
        browser.get(url)
        timing = browser.execute_script(
            "const t = performance.getEntriesByType('navigation')[0];"
            "return [t.loadEventEnd - t.startTime, t.responseStart - t.requestStart,"
            " Object.fromEntries(t.serverTiming.map(e => [e.name, e.duration])),"
            " t.domInteractive - t.responseEnd];"
        )
        loads.append(timing[0])
        servers.append(timing[1])
        parts.append({**timing[2], "parse": timing[3]})
    load, server = statistics.median(loads), statistics.median(servers)
    inside = {name: statistics.median(p[name] for p in parts) for name in parts[0]}
    print(
        f"\ninspector page, {HEAVY_MEMORIES} memories: load median {load:.0f} ms "
        f"(min {min(loads):.0f}, max {max(loads):.0f}), server median {server:.0f} ms "
        f"({', '.join(f'{k} {v:.0f}' for k, v in inside.items())} ms); "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    figures = {"memories": HEAVY_MEMORIES, "load_ms": loads, "server_ms": servers, "parts": parts}
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "page-load.json").write_text(json.dumps(figures, indent=2))
    assert load < 10 * PAGE_LOAD_BUDGET_MS


def test_bad_and_unknown_ids_and_a_down_store_are_messages(
    site: Site, browser: WebDriver, pausable_milvus: PausableServer
) -> None:
    sign_in(browser, site)
    browser.get(f"{site.base}/ui/users/no%20such%21")
    assert "is not a valid user id" in browser.find_element(By.ID, "error").text
    browser.get(f"{site.base}/ui/users/ana?as_of=yesterday")
    assert "as of:" in browser.find_element(By.ID, "error").text
    browser.get(f"{site.base}/ui/users/nobody-here")
    assert "Engram holds nothing about" in browser.find_element(By.ID, "empty").text
    shoot(browser, "06-empty-user")
    pausable_milvus.pause()
    try:
        browser.get(f"{site.base}/ui/users/{site.heavy_user}")
        memories = browser.find_element(By.ID, "memories").text
        assert "milvus is unavailable" in memories
        assert "events_7d" in browser.find_element(By.ID, "features").text  # Redis still answers
        assert "Traceback" not in browser.page_source
        shoot(browser, "07-degraded")
    finally:
        pausable_milvus.resume()


def test_forget_a_memory_then_the_whole_user(site: Site, browser: WebDriver) -> None:
    sign_in(browser, site)

    def memories_shown(driver: WebDriver) -> bool:
        driver.get(f"{site.base}/ui/users/ana")
        return "milvus is unavailable" not in driver.find_element(By.ID, "memories").text

    # The breaker lets Milvus be asked again 2 s after the pause of the test before.
    WebDriverWait(browser, 20, 0.5, (StaleElementReferenceException,)).until(memories_shown)
    row = next(
        r
        for r in browser.find_elements(By.CSS_SELECTOR, "#true-at tr[data-memory-id]")
        if "vegetarian" in r.text.lower()
    )
    row.find_element(By.TAG_NAME, "a").click()
    browser.find_element(By.ID, "forget-memory-button").click()
    notice = browser.find_element(By.CSS_SELECTOR, ".notice").text
    assert "deleted: Milvus removed 1 memory" in notice, notice
    assert "vegetarian" not in browser.find_element(By.ID, "true-at").text.lower()
    shoot(browser, "08-memory-forgotten")

    browser.get(f"{site.base}/ui/users/zed")
    browser.find_element(By.ID, "forget-user").click()
    browser.find_element(By.ID, "confirm-id").send_keys("zex")
    browser.find_element(By.ID, "forget-user-button").click()
    shows(browser, "confirm", "nothing was removed")
    browser.find_element(By.ID, "confirm-id").send_keys("zed")
    browser.find_element(By.ID, "forget-user-button").click()
    shows(browser, "forgotten", "What each store removed")
    removed = {
        cell.get_attribute("data-store"): int(cell.text)
        for cell in browser.find_elements(By.CSS_SELECTOR, "#removed td[data-store]")
    }
    assert removed["memories"] >= 2  # the fact and its episode
    shoot(browser, "09-user-forgotten")
    browser.get(f"{site.base}/ui/users/zed")
    assert browser.find_elements(By.ID, "empty")
