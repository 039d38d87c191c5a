#!/usr/bin/env python3
"""The operator's console in a real browser: Debian's Chromium, driven by
selenium through the system's chromedriver, against `hub demo --console`.

Two demo runs, each left with something for an operator to do (`--no-fix`):

- daily summaries: a sales category the mapping lacks holds a restaurant's
  days. In the browser: sign in through the printed URL, see every
  connection checked, see every restaurant-day on the books calendar, open a
  day and compare its amounts with `hub reconcile --json`, map the held
  category and see its days post;
- per order: cash tenders mapped to an item QuickBooks lacks are refused and
  parked. The mapping is fixed with `hub connection map` (as an operator
  would), then in the browser the parked messages are redriven, after a
  confirmation, and seen posted.

Access, over plain HTTP (exact status codes): without a session a page sends
to the login page; the one-time sign-in token is refused when reused; a POST
without its CSRF token is refused with 403; a foreign `Host` is refused.

Every check reads the page's HTML, and each is also run on the same page with
its data taken out, where it must fail: a page that loses its data fails the
suite. Screenshots of each page go to `target/console-screens/`.

Run: `.venv-tools/bin/python xtask/console_test.py --hub target/debug/hub`
(`cargo xtask test` runs it). `--scale R D` instead times each page on a demo
of R restaurants x D days and prints the figures.
"""

from __future__ import annotations

import argparse
import decimal
import html.parser
import http.client
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("HUB_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("HUB_CHROMEDRIVER", "/usr/bin/chromedriver")
SCREENS = ROOT / "target" / "console-screens"
HUB = str(ROOT / "target" / "debug" / "hub")
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


# ---- A small DOM, so every check reads the HTML it is given ----


class Node:
    def __init__(self, tag: str, attrs: dict[str, str], parent: "Node | None"):
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node] = []
        self.text_parts: list[str] = []

    def text(self) -> str:
        return " ".join(
            " ".join(p.split()) for p in self._texts() if p.strip()
        ).strip()

    def _texts(self):
        yield from self.text_parts
        for c in self.children:
            yield from c._texts()

    def find_all(self, tag: str | None = None, **attrs: str) -> list["Node"]:
        out = []
        for c in self.children:
            want = {k.replace("_", "-"): v for k, v in attrs.items()}
            if (tag is None or c.tag == tag) and all(
                (c.attrs.get(k) == v) if v is not True else (k in c.attrs) for k, v in want.items()
            ):
                out.append(c)
            out.extend(c.find_all(tag, **attrs))
        return out

    def find(self, tag: str | None = None, **attrs: str) -> "Node | None":
        found = self.find_all(tag, **attrs)
        return found[0] if found else None


class Parser(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {}, None)
        self.cur = self.root

    def handle_starttag(self, tag, attrs):
        node = Node(tag, {k: (v if v is not None else "") for k, v in attrs}, self.cur)
        self.cur.children.append(node)
        if tag not in VOID:
            self.cur = node

    def handle_endtag(self, tag):
        n = self.cur
        while n is not None and n.tag != tag:
            n = n.parent
        if n is not None and n.parent is not None:
            self.cur = n.parent

    def handle_data(self, data):
        self.cur.text_parts.append(data)


def dom(page: str) -> Node:
    p = Parser()
    p.feed(page)
    return p.root


def without(page: str, pattern: str) -> str:
    """The page with the first element matching `pattern` (a regex for its
    opening tag, up to its closing `</td>` or `</tr>`) taken out."""
    m = re.search(pattern, page)
    if not m:
        raise AssertionError(f"nothing to take out: {pattern}")
    tag = re.match(r"<(\w+)", m.group(0)).group(1)
    end = page.index(f"</{tag}>", m.end()) + len(f"</{tag}>")
    return page[: m.start()] + page[end:]


# ---- The checks: each raises AssertionError saying what is missing ----


def check_connections(page: str, expected: set[tuple[str, str]]) -> None:
    d = dom(page)
    rows = {(r.attrs["data-tenant"], r.attrs["data-connection"]): r for r in d.find_all("tr", data_tenant=True)}
    missing = sorted(expected - rows.keys())
    assert not missing, f"connections missing from the page: {missing}"
    for key, r in rows.items():
        state = r.find(data_field="state")
        assert state is not None and state.text() in {"healthy", "degraded", "unhealthy"}, (
            f"{key}: no checked state on the page ({state.text() if state else 'none'})"
        )


def calendar(page: str) -> dict[tuple[str, str], str]:
    d = dom(page)
    return {
        (c.attrs["data-tenant"], c.attrs["data-date"]): c.attrs["data-state"]
        for c in d.find_all("td", data_date=True)
    }


def check_calendar(page: str, expected: set[tuple[str, str]]) -> dict[tuple[str, str], str]:
    cells = calendar(page)
    missing = sorted(expected - cells.keys())
    assert not missing, f"restaurant-days missing from the calendar: {missing}"
    return cells


def check_day(page: str, reconciliation: dict) -> int:
    """Every location and destination of `hub reconcile --json` is on the day
    page with the same records, POS total, posted total and difference."""
    d = dom(page)
    checked = 0
    for loc in reconciliation["locations"]:
        for dest in loc["destinations"]:
            row = d.find("tr", data_location=loc["location"], data_destination=dest["destination"])
            assert row is not None, f"no row for {loc['location']} in {dest['destination']}"
            got = {f: row.find(data_field=f) for f in ("records", "pos_total", "posted_total", "difference")}
            assert all(v is not None for v in got.values()), f"fields missing: {got}"
            assert int(got["records"].text()) == loc["records"], (got["records"].text(), loc["records"])
            for field, want in (
                ("pos_total", loc["pos_total"]),
                ("posted_total", dest["posted_total"]),
                ("difference", dest["difference"]),
            ):
                have = decimal.Decimal(got[field].text())
                assert have == decimal.Decimal(want).quantize(decimal.Decimal("0.01")), (
                    f"{loc['location']} {dest['destination']} {field}: page {have}, hub reconcile {want}"
                )
                checked += 1
    assert checked > 0, "the reconciliation has no location to compare"
    return checked


def check_posted(page: str, day: str) -> None:
    d = dom(page)
    row = d.find("tr", data_day=day)
    assert row is not None, f"day {day} is not among the days posted again"
    outcome = row.find(data_field="outcome")
    assert outcome is not None and outcome.text().startswith("posted"), (
        f"day {day}: {outcome.text() if outcome else 'no outcome'}"
    )


def parked(page: str, queue: str) -> int:
    table = dom(page).find("table", data_queue=queue)
    return 0 if table is None else len(table.find_all("tr", data_id=True))


# ---- Processes and HTTP ----


def run_hub(args: list[str], data_dir: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, HUB_DATA_DIR=data_dir)
    env.pop("HUB_BACKEND", None)
    return subprocess.run([HUB, *args], env=env, capture_output=True, text=True, timeout=300)


class Demo:
    """`hub demo --console`, its JSON report and the console's URL."""

    def __init__(self, data_dir: str, *extra: str, timeout: float = 600):
        self.data_dir = data_dir
        self.log = open(os.path.join(data_dir, "demo.stderr"), "w")
        self.proc = subprocess.Popen(
            [HUB, "demo", "--json", "--console", "--data-dir", data_dir, *extra],
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            start_new_session=True,
        )
        lines: list[str] = []
        found: list[str] = []

        def read():
            for line in self.proc.stdout:
                if line.startswith("http://127.0.0.1:") and "/login?token=" in line:
                    found.append(line.strip())
                    return
                lines.append(line)

        t = threading.Thread(target=read, daemon=True)
        t.start()
        t.join(timeout)
        if not found:
            self.stop()
            raise AssertionError(
                f"the demo printed no console URL within {timeout:.0f}s; stderr:\n"
                + Path(data_dir, "demo.stderr").read_text()[-3000:]
            )
        self.report = json.loads("".join(lines))
        self.url = found[0]
        parsed = urllib.parse.urlsplit(self.url)
        self.port = parsed.port
        self.token = urllib.parse.parse_qs(parsed.query)["token"][0]

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()

    def days(self) -> set[tuple[str, str]]:
        return {(r["restaurant"], r["business_date"]) for r in self.report["rows"]}


def http_request(port: int, method: str, path: str, headers: dict | None = None, body: str | None = None):
    h = {"Host": f"127.0.0.1:{port}", **(headers or {})}
    if body is not None:
        h.setdefault("Content-Type", "application/x-www-form-urlencoded")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read().decode("utf-8", "replace")
    finally:
        conn.close()


def browser(profile: str):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--window-size=1440,1000",
    ):
        opts.add_argument(a)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


def screenshot(driver, name: str) -> None:
    SCREENS.mkdir(parents=True, exist_ok=True)
    # The whole page: as tall as its content.
    height = driver.execute_script("return document.documentElement.scrollHeight") or 1000
    driver.set_window_size(1440, min(max(int(height) + 40, 600), 6000))
    driver.save_screenshot(str(SCREENS / f"{name}.png"))
    driver.set_window_size(1440, 1000)


def patient_wait(driver, timeout: float):
    """A wait that takes any WebDriver error as "not yet". While Chromium
    swaps one document for the next, a query can fail with an error other
    than the one asked about (no execution context, say); selenium's own
    conditions let such an error out, which fails a test on the timing of
    the swap. The wait asks again until its timeout instead, so a page that
    never comes still fails."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, ignored_exceptions=(WebDriverException,))


def wait_for(driver, css: str, timeout: float = 60):
    """The element `css` once the page the last click led to has it."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    return patient_wait(driver, timeout).until(ec.presence_of_element_located((By.CSS_SELECTOR, css)))


def click_through(driver, element, css: str, timeout: float = 60):
    """Clicks `element` and returns `css` from the page the click leads to:
    the page it was on must be gone first, or an element of the old page
    (the last flash, say) would be read as the answer."""
    from selenium.common.exceptions import StaleElementReferenceException

    old = driver.find_element("tag name", "html")
    element.click()

    def gone(_) -> bool:
        # Only "stale" says the old page is gone.
        try:
            old.is_enabled()
            return False
        except StaleElementReferenceException:
            return True

    patient_wait(driver, timeout).until(gone)
    return wait_for(driver, css, timeout)


def session_cookie(driver) -> str:
    for c in driver.get_cookies():
        if c["name"] == "hub_console":
            return f"hub_console={c['value']}"
    raise AssertionError(f"no session cookie after signing in: {driver.get_cookies()}")


# ---- The suite ----

STATE: dict = {}


def setUpModule():
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(path):
            raise RuntimeError(f"{path} is missing: install Debian's chromium and chromium-driver")
    STATE["tmp"] = tempfile.mkdtemp(prefix="hub-console-test-")
    daily = os.path.join(STATE["tmp"], "daily")
    per_order = os.path.join(STATE["tmp"], "per-order")
    os.makedirs(daily)
    os.makedirs(per_order)
    STATE["daily"] = Demo(daily, "--no-fix", "--days", "2", "--seed", "11")
    STATE["per_order"] = Demo(per_order, "--no-fix", "--posting", "per_order", "--seed", "12")
    STATE["driver"] = browser(os.path.join(STATE["tmp"], "chromium"))


def tearDownModule():
    d = STATE.get("driver")
    if d is not None:
        d.quit()
    for k in ("daily", "per_order"):
        if k in STATE:
            STATE[k].stop()
    shutil.rmtree(STATE.get("tmp", ""), ignore_errors=True)


class T1SignIn(unittest.TestCase):
    def test_a_page_without_a_session_goes_to_the_login_page(self):
        demo = STATE["daily"]
        for path in ("/", "/books", "/dlq", "/mappings", "/alerts"):
            status, headers, _ = http_request(demo.port, "GET", path)
            self.assertEqual(status, 303, path)
            self.assertEqual(headers.get("location"), "/login", path)
        status, _, body = http_request(demo.port, "GET", "/login")
        self.assertEqual(status, 200)
        self.assertIn("Sign in", body)

    def test_b_the_printed_url_signs_in_once(self):
        demo, driver = STATE["daily"], STATE["driver"]
        driver.get(demo.url)
        self.assertTrue(driver.current_url.endswith(f":{demo.port}/"), driver.current_url)
        self.assertIn("Connections", driver.title)
        STATE["cookie"] = session_cookie(driver)
        # The same link again: spent.
        status, _, body = http_request(demo.port, "GET", f"/login?token={demo.token}")
        self.assertEqual(status, 403)
        self.assertIn("spent or wrong", body)
        # And no cookie came with the refusal.
        status, headers, _ = http_request(demo.port, "GET", f"/login?token={demo.token}")
        self.assertNotIn("set-cookie", {k.lower() for k in headers})

    def test_c_a_post_without_its_csrf_token_is_refused(self):
        demo = STATE["daily"]
        cookie = STATE["cookie"]
        status, _, body = http_request(demo.port, "POST", "/check", {"Cookie": cookie}, "")
        self.assertEqual(status, 403, body)
        self.assertIn("CSRF", body)
        status, _, _ = http_request(demo.port, "POST", "/check", {"Cookie": cookie}, "csrf=not-the-token")
        self.assertEqual(status, 403)
        # A page of the console is still served to the session.
        status, _, _ = http_request(demo.port, "GET", "/", {"Cookie": cookie})
        self.assertEqual(status, 200)

    def test_d_a_foreign_host_is_refused(self):
        demo = STATE["daily"]
        for host in (f"evil.example:{demo.port}", f"127.0.0.1.nip.io:{demo.port}", "127.0.0.1"):
            status, headers, body = http_request(
                demo.port, "GET", "/", {"Host": host, "Cookie": STATE["cookie"]}
            )
            self.assertEqual(status, 403, host)
            self.assertIn("not this console", body)
            self.assertNotIn("set-cookie", {k.lower() for k in headers})


class T2Pages(unittest.TestCase):
    def test_a_every_connection_is_shown_checked(self):
        demo, driver = STATE["daily"], STATE["driver"]
        listed = json.loads(run_hub(["connection", "list", "--json"], demo.data_dir).stdout)
        expected = {(c["tenant"], c["id"]) for c in listed}
        self.assertGreater(len(expected), 0)
        driver.get(f"http://127.0.0.1:{demo.port}/")
        page = driver.page_source
        check_connections(page, expected)
        screenshot(driver, "connections")
        # The check must fail on the page without one of its rows.
        first = sorted(expected)[0]
        with self.assertRaises(AssertionError):
            check_connections(without(page, rf'<tr data-tenant="{first[0]}" data-connection="{first[1]}"'), expected)
        # One click checks one connection now, with its own clients (each
        # of the demo's Square merchants is a sandbox of its own).
        for tenant, conn in sorted(k for k in expected if k[1] == "pos"):
            button = driver.find_element("css selector", f"button[data-check='{tenant}/{conn}']")
            flash = click_through(driver, button, ".flash").text
            self.assertTrue(flash.startswith(f"Checked {tenant}/{conn}: "), flash)
            self.assertNotIn("unreachable", flash)
        # And one checks every connection.
        button = driver.find_element("css selector", "form[action='/check'] button:not([data-check])")
        self.assertIn(f"Checked {len(expected)} connection(s)", click_through(driver, button, ".flash").text)

    def test_b_every_restaurant_day_is_on_the_calendar(self):
        demo, driver = STATE["daily"], STATE["driver"]
        expected = demo.days()
        self.assertEqual(len(expected), 4, expected)  # 2 restaurants x 2 days
        driver.get(f"http://127.0.0.1:{demo.port}/books")
        page = driver.page_source
        cells = check_calendar(page, expected)
        screenshot(driver, "books")
        # r01's days are held for mapping (the category the demo left out).
        held = {k for k, v in cells.items() if v == "held"}
        self.assertEqual(held, {k for k in expected if k[0] == "r01"}, cells)
        day = sorted(expected)[0]
        with self.assertRaises(AssertionError):
            check_calendar(without(page, rf'<td[^>]*data-tenant="{day[0]}"[^>]*data-date="{day[1]}"'), expected)

    def test_c_a_day_matches_hub_reconcile(self):
        demo, driver = STATE["daily"], STATE["driver"]
        tenant, date = sorted(k for k in demo.days() if k[0] == "r02")[0]
        driver.get(f"http://127.0.0.1:{demo.port}/books")
        link = driver.find_element("css selector", f"td[data-tenant='{tenant}'][data-date='{date}'] a")
        click_through(driver, link, "#summary")
        self.assertIn(f"{tenant} · {date}", driver.title)
        page = driver.page_source
        out = run_hub(["reconcile", "--tenant", tenant, "--date", date, "--json"], demo.data_dir)
        self.assertEqual(out.returncode, 0, out.stderr)
        reconciliation = json.loads(out.stdout)
        self.assertGreater(check_day(page, reconciliation), 0)
        # The journal's lines and the entry's id are there too.
        d = dom(page)
        self.assertTrue(d.find("table", data_location="pos"), "no journal table")
        entry = d.find(data_field="entry_id")
        self.assertTrue(entry is not None and entry.text() != "not posted", entry and entry.text())
        screenshot(driver, "day")
        with self.assertRaises(AssertionError):
            check_day(without(page, r'<td class="num" data-field="posted_total"'), reconciliation)
        wrong = page.replace('data-field="pos_total">', 'data-field="pos_total">9', 1)
        with self.assertRaises(AssertionError):
            check_day(wrong, reconciliation)

    def test_d_mapping_a_held_category_posts_its_days(self):
        demo, driver = STATE["daily"], STATE["driver"]
        held_days = sorted(d for (t, d) in demo.days() if t == "r01")
        driver.get(f"http://127.0.0.1:{demo.port}/mappings")
        screenshot(driver, "mappings")
        rows = driver.find_elements("css selector", "table.held[data-tenant='r01'] tr[data-key]")
        self.assertEqual(len(rows), 1, [r.text for r in rows])
        row = rows[0]
        self.assertTrue(row.get_attribute("data-key").startswith("sales:"))
        from selenium.webdriver.support.ui import Select

        select = Select(row.find_element("css selector", "select[name='account']"))
        income = [o for o in select.options if "(Income," in o.text]
        self.assertTrue(income, [o.text for o in select.options])
        select.select_by_value(income[0].get_attribute("value"))
        self.assertEqual(row.find_element("css selector", "input[name='from']").get_attribute("value"), held_days[0])
        click_through(driver, row.find_element("css selector", "button"), "#changes")
        page = driver.page_source
        for day in held_days:
            check_posted(page, day)
        screenshot(driver, "mapping-saved")
        with self.assertRaises(AssertionError):
            check_posted(without(page, rf'<tr data-day="{held_days[0]}"'), held_days[0])
        # The calendar holds no day any more.
        driver.get(f"http://127.0.0.1:{demo.port}/books")
        cells = check_calendar(driver.page_source, demo.days())
        self.assertFalse([k for k, v in cells.items() if v == "held"], cells)
        # And the hub agrees.
        out = run_hub(["reconcile", "--tenant", "r01", "--date", held_days[0], "--json"], demo.data_dir)
        self.assertTrue(json.loads(out.stdout)["reconciled"], out.stdout)

    def test_e_alerts_show_the_state_changes(self):
        demo, driver = STATE["daily"], STATE["driver"]
        driver.get(f"http://127.0.0.1:{demo.port}/alerts")
        rows = dom(driver.page_source).find("table", id="alerts")
        self.assertIsNotNone(rows, "no alert history after the demo's health check")
        self.assertTrue(rows.find_all("tr")[1:], "no alert rows")
        screenshot(driver, "alerts")


class T3Redrive(unittest.TestCase):
    def test_a_parked_messages_are_redriven_and_posted(self):
        demo, driver = STATE["per_order"], STATE["driver"]
        left = demo.report["dead_letters_left"]
        self.assertGreater(left, 0, "the per-order demo left nothing parked")
        driver.get(demo.url)
        driver.get(f"http://127.0.0.1:{demo.port}/dlq")
        page = driver.page_source
        self.assertEqual(parked(page, "push"), left)
        self.assertIn("9999", page)  # the provider's words name the missing item
        screenshot(driver, "dlq")
        # The operator's fix, from the CLI: cash to the item QuickBooks has.
        out = run_hub(
            ["connection", "map", "--tenant", "r01", "--id", "pos", "--destination", "quickbooks", "tender:cash=38"],
            demo.data_dir,
        )
        self.assertEqual(out.returncode, 0, out.stderr)
        confirm = click_through(
            driver, driver.find_element("css selector", "a[href='/dlq/confirm?queue=push&all=true']"), "#confirm"
        )
        flash = click_through(driver, confirm, ".flash").text
        self.assertIn(f"{left} message(s) sent back to the push queue", flash)
        self.assertIn(f"{left} posted", flash)
        self.assertIn("0 parked again", flash)
        self.assertEqual(parked(driver.page_source, "push"), 0)
        screenshot(driver, "dlq-redriven")
        day = sorted(d for (t, d) in demo.days() if t == "r01")[0]
        out = run_hub(["reconcile", "--tenant", "r01", "--date", day, "--json"], demo.data_dir)
        self.assertTrue(json.loads(out.stdout)["reconciled"], out.stdout)


class T4Times(unittest.TestCase):
    def test_each_page_is_served_and_timed(self):
        demo = STATE["daily"]
        times = time_pages(demo, STATE["cookie"])
        self.assertEqual(len(times), 6)
        print(
            "\n    console page server time, demo scale (2 restaurants x 2 days), median of 5: "
            + ", ".join(f"{k} {v:.1f} ms" for k, v in times.items()),
            file=sys.stderr,
        )


# ---- Page times ----


def sign_in(demo: Demo) -> str:
    status, headers, _ = http_request(demo.port, "GET", f"/login?token={demo.token}")
    assert status == 303, status
    lowered = {k.lower(): v for k, v in headers.items()}
    return lowered["set-cookie"].split(";")[0]


def time_pages(demo: Demo, cookie: str, rounds: int = 5) -> dict[str, float]:
    """Each page's median time over `rounds` loopback GETs (the server's
    time, HTTP on loopback included)."""
    tenant, date = sorted(demo.days())[0]
    pages = {
        "connections": "/",
        "books": "/books",
        "day": f"/books/day?tenant={tenant}&date={date}",
        "dead letters": "/dlq",
        "mappings": "/mappings",
        "alerts": "/alerts",
    }
    out = {}
    for name, path in pages.items():
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            status, _, _ = http_request(demo.port, "GET", path, {"Cookie": cookie})
            times.append((time.perf_counter() - t0) * 1000)
            assert status == 200, (path, status)
        out[name] = statistics.median(times)
    return out


def main() -> int:
    global HUB
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hub", default=HUB)
    ap.add_argument("--scale", nargs=2, type=int, metavar=("RESTAURANTS", "DAYS"))
    args, rest = ap.parse_known_args()
    HUB = args.hub
    if args.scale:
        r, d = args.scale
        tmp = tempfile.mkdtemp(prefix="hub-console-time-")
        demo = Demo(tmp, "--restaurants", str(r), "--days", str(d), timeout=3600)
        try:
            times = time_pages(demo, sign_in(demo))
        finally:
            demo.stop()
            shutil.rmtree(tmp, ignore_errors=True)
        print(f"console page server time, median of 5, {r} restaurants x {d} days:")
        for k, v in times.items():
            print(f"  {k:<14} {v:8.1f} ms")
        print("figures: " + json.dumps({"restaurants": r, "days": d, "ms": times}))
        return 0
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__])
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    return 0 if result.wasSuccessful() and result.testsRun > 0 and not result.skipped else 1


if __name__ == "__main__":
    sys.exit(main())
