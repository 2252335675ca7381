"""The UI's newer views in a real browser (headless Chromium driven by Selenium), against the real
binary: trace compare on two demo runs (healthy, then --broken, sharing a data dir), every view of
one trace on the demo trace and on 10,000 spans with no console error, the layered service graph
on a generated 30-service mesh (no overlapping nodes, from element boxes), the monitor page's
rates against the graph's, and the search page's error marks, time ticks and compare selection.

Time to first paint of each view is recorded to artifacts/ui/view-timing.json and printed; it is
reported (docs/performance.md), not asserted. MESHTRACE_UPDATE_DOC_IMAGES=1 refreshes the
screenshots under docs/images/."""
import json
import os
import statistics
import time

import pytest
import requests

from conftest import Collector, get_json, wait_until
from spans import new_rng
from test_mesh import EPHEMERAL, Mesh as RunningMesh
from ui.browser import ARTIFACTS, boxes, console_errors, dataset, light_theme, make_driver, overlapping, shot, wait
from ui.data import Mesh, SAMPLING_RATE, post_big_trace
from ui.mesh_gen import post_service_mesh

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

VIEWS = ["timeline", "graph", "flamegraph", "table", "stats", "json"]
TIMINGS = {}


# --- fixtures -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    driver = make_driver()
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def collector(tmp_path_factory):
    c = Collector(tmp_path_factory.mktemp("ui-views")).start()
    yield c
    c.stop()


@pytest.fixture(scope="module")
def data(collector):
    mesh = Mesh().build()
    mesh.post(collector.url("otlp", "/v1/traces"))
    big, big_spans = post_big_trace(collector.url("zipkin", "/api/v2/spans"), new_rng(4242))
    wait_until(lambda: len(get_json(collector.url("query", f"/api/traces/{big}"))["data"][0]["spans"]) == 10_000,
               timeout=120, message="10k-span trace stored")
    return {"mesh": mesh, "big": big, "big_spans": big_spans}


def _gateway_trace(mesh, want):
    """The example trace the demo printed, once `want(trace)` holds for its stored spans."""
    trace_id = mesh.wait_for(r"example trace: \S+/trace/([0-9a-f]+)", timeout=180).group(1)

    def ready():
        r = requests.get(f"{mesh.ui}/api/traces/{trace_id}", timeout=10)
        return r.status_code == 200 and want(r.json()["data"][0])
    # Generous: sidecars flush about once a second, and retry for up to 30 s.
    wait_until(ready, timeout=90, interval=0.5, message=f"the demo trace {trace_id}\n{mesh.log()[-3000:]}")
    return trace_id


def services_of(trace):
    return {trace["processes"][s["processID"]]["serviceName"] for s in trace["spans"]}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A healthy demo run, stopped, then a --broken one on the same data dir, left running: its
    UI holds a trace of each."""
    data_dir = str(tmp_path_factory.mktemp("demo-data"))
    runs = []
    try:
        healthy = RunningMesh(["demo", *EPHEMERAL, "--data-dir", data_dir, "--requests", "6", "--rate", "10"], tmp_path_factory.mktemp("healthy"))
        runs.append(healthy)
        good = _gateway_trace(healthy, lambda t: len(t["spans"]) >= 8 and "database" in services_of(t))
        assert healthy.stop() == 0, healthy.log()[-2000:]
        broken = RunningMesh(["demo", "--broken", *EPHEMERAL, "--data-dir", data_dir, "--requests", "6", "--rate", "10"],
                             tmp_path_factory.mktemp("broken"))
        runs.append(broken)
        # The demo prints the gateway trace with the most spans, which on this shared data dir is
        # the healthy run's: find a broken one (backend reached, database not) through the API.
        broken.wait_for(r"example trace: ", timeout=180)
        bad = None

        def broken_trace():
            nonlocal bad
            traces = get_json(f"{broken.ui}/api/traces", service="gateway", lookback="1h", limit="50")["data"]
            bad = next((t["traceID"] for t in traces if "backend" in services_of(t) and "database" not in services_of(t)), None)
            return bad is not None
        wait_until(broken_trace, timeout=90, interval=0.5, message=f"a broken demo trace\n{broken.log()[-3000:]}")
        yield {"ui": broken.ui, "healthy": good, "broken": bad}
    finally:
        for m in runs:
            if m.proc.poll() is None:
                try:
                    m.stop(timeout=30)
                except Exception:  # noqa: BLE001 - a stuck mesh is killed below
                    pass
            m.kill()


def no_console_errors(driver, where):
    errors = console_errors(driver)
    assert not errors, f"console errors on {where}: {errors}"


def open_view(driver, ui, trace_id, view, timeout=120):
    driver.get(f"{ui}/trace/{trace_id}?view={view}")
    wait(driver, timeout).until(lambda d: dataset(d, "viewRendered") == f"{trace_id}:{view}")
    return driver.execute_script("return window.__meshtraceView")


def check_view(driver, view, trace):
    """What each view must show for `trace` (the API's Jaeger JSON)."""
    spans = trace["spans"]
    procs = trace["processes"]
    pairs = {(procs[s["processID"]]["serviceName"], s["operationName"]) for s in spans}
    if view == "timeline":
        n = len(driver.find_elements(By.CSS_SELECTOR, "#waterfall .row"))
        assert n == len(spans) if len(spans) < 40 else 10 < n < 150
    elif view == "graph":
        nodes = driver.find_elements(By.CSS_SELECTOR, "#trace-graph-svg g.node")
        assert len(nodes) == len(pairs)
        got = {tuple(json.loads(n.get_attribute("data-node"))) for n in nodes}
        assert got == pairs
        assert driver.find_elements(By.CSS_SELECTOR, "#trace-graph-svg g.edge")
    elif view == "flamegraph":
        frames = driver.execute_script("return [...document.querySelectorAll('#flame-svg g.frame')].map(f => [f.dataset.spanId, +f.dataset.depth])")
        roots = [s["spanID"] for s in spans if not s["references"]]
        assert frames and [f for f in frames if f[1] == 0][0][0] in roots
    elif view == "table":
        shown = driver.execute_script("return [...document.querySelectorAll('#span-table .stable-row')].map(r => [+r.dataset.index, +r.dataset.duration])")
        shown.sort()
        durations = [d for _, d in shown]
        assert durations and durations == sorted(durations, reverse=True), "longest first by default"
        assert durations[0] == max(s["duration"] for s in spans)
    elif view == "stats":
        rows = driver.find_elements(By.CSS_SELECTOR, "#stats-table tbody tr")
        assert {r.get_attribute("data-service") for r in rows} == {p["serviceName"] for p in procs.values()}
    elif view == "json":
        target = spans[-1]["spanID"]
        box = driver.find_element(By.ID, "json-find")
        box.send_keys(target)
        box.send_keys("\n")
        wait(driver).until(lambda d: " of " in d.find_element(By.ID, "json-count").text)
        current = driver.find_element(By.CSS_SELECTOR, "#json-view li.current")
        assert target in current.text


# --- every view of one trace --------------------------------------------------------------------------

def test_every_view_renders_the_demo_trace(demo, browser):
    trace = get_json(f"{demo['ui']}/api/traces/{demo['healthy']}")["data"][0]
    browser.get(f"{demo['ui']}/search")
    light_theme(browser)
    console_errors(browser)
    for view in VIEWS:
        open_view(browser, demo["ui"], demo["healthy"], view)
        check_view(browser, view, trace)
        no_console_errors(browser, f"the demo trace's {view} view")
        assert browser.find_element(By.CSS_SELECTOR, f"#tab-{view}").get_attribute("aria-selected") == "true"
        if view != "json":
            shot(browser, f"trace-{view}.png", doc=view in ("graph", "flamegraph", "table"))
    shot(browser, "trace-json.png", doc=True)
    # The tabs switch in place and keep the URL in step.
    browser.find_element(By.ID, "tab-flamegraph").click()
    wait(browser).until(lambda d: "view=flamegraph" in d.current_url)
    root = browser.find_element(By.CSS_SELECTOR, "#flame-svg g.frame[data-depth='1']")
    browser.execute_script("arguments[0].dispatchEvent(new MouseEvent('click', {bubbles: true}))", root)
    wait(browser).until(lambda d: not d.find_element(By.ID, "flame-reset").get_attribute("disabled"))
    assert "Zoomed to" in browser.find_element(By.ID, "flame-where").text
    assert browser.find_element(By.ID, "details-title").text  # the clicked span's details
    no_console_errors(browser, "the flame graph after a zoom")


def test_every_view_renders_ten_thousand_spans(collector, data, browser):
    base = f"http://127.0.0.1:{collector.ports['query']}"
    trace = get_json(collector.url("query", f"/api/traces/{data['big']}"))["data"][0]
    browser.get(f"{base}/search")
    console_errors(browser)
    for view in VIEWS:
        runs = []
        for _ in range(3):
            browser.get("about:blank")
            runs.append(open_view(browser, base, data["big"], view))
        check_view(browser, view, trace)
        no_console_errors(browser, f"the 10k-span trace's {view} view")
        TIMINGS[f"trace-10k/{view}"] = {"firstPaintMs": statistics.median(r["sinceNavigationMs"] for r in runs),
                                        "mountMs": statistics.median(r["mountMs"] for r in runs), "runs": runs}
    # The table sorts by self time and by service on a click.
    open_view(browser, base, data["big"], "table")
    browser.find_element(By.CSS_SELECTOR, ".stable-head button[data-sort='self']").click()
    wait(browser).until(lambda d: "sort=self" in d.current_url)
    selfs = browser.execute_script("return [...document.querySelectorAll('#span-table .stable-row')].map(r => [+r.dataset.index, +r.dataset.self]).sort((a, b) => a[0] - b[0]).map(x => x[1])")
    assert selfs == sorted(selfs, reverse=True)
    shot(browser, "trace-10k-table.png")
    write_timings()


# --- compare ----------------------------------------------------------------------------------------

def test_compare_healthy_and_broken_demo_traces(demo, browser):
    ui, good, bad = demo["ui"], demo["healthy"], demo["broken"]
    # From the search page, as a user would: tick both, press Compare.
    browser.get(f"{ui}/search?service=gateway&lookback=1h&limit=50")
    light_theme(browser)
    wait(browser).until(lambda d: d.find_elements(By.CSS_SELECTOR, f"#trace-list .trace-item[data-trace-id='{good}']"))
    assert browser.find_element(By.ID, "compare-btn").get_attribute("disabled")
    for tid in (good, bad):
        browser.find_element(By.CSS_SELECTOR, f"#trace-list .trace-item[data-trace-id='{tid}'] input.pick").click()
    ticked = browser.execute_script("return [...document.querySelectorAll('#trace-list input.pick')].filter(b => b.checked).map(b => b.value)")
    assert sorted(ticked) == sorted([good, bad]), (ticked, browser.current_url, browser.save_screenshot("/tmp/cmpfail.png"))
    ticked = browser.execute_script("return [...document.querySelectorAll('#trace-list input.pick')].filter(b => b.checked).map(b => b.value)")
    assert sorted(ticked) == sorted([good, bad]), ticked
    wait(browser).until(lambda d: not d.find_element(By.ID, "compare-btn").get_attribute("disabled"))
    shot(browser, "search-compare.png", doc=True)
    browser.find_element(By.ID, "compare-btn").click()
    wait(browser, 90).until(lambda d: dataset(d, "compareRendered") == f"{good}...{bad}")
    assert browser.current_url.endswith(f"/trace/{good}...{bad}")
    rows = browser.execute_script(
        "return [...document.querySelectorAll('#diff .diff-row')].map(r => [r.dataset.presence, r.dataset.service, r.dataset.operation])")
    api = get_json(f"{ui}/api/meshtrace/compare", a=good, b=bad)
    assert len(rows) == len(api["nodes"]) == api["summary"]["nodes"]
    database = [r for r in rows if r[1] == "database"]
    assert database and all(p == "onlyA" for p, _, _ in database), rows
    # What the broken backend lost is only in A (its call to database and database's own span);
    # everything down to backend's server span is in both.
    only_a = {(s, o) for p, s, o in rows if p == "onlyA"}
    assert {s for s, _ in only_a} <= {"backend", "database"}, only_a
    assert ("backend", next(o for p, s, o in rows if p == "both" and s == "backend")) not in only_a
    assert any(p == "both" and s == "backend" for p, s, _ in rows)
    assert f"{api['summary']['onlyA']} only in A" in browser.find_element(By.ID, "compare-summary").text
    no_console_errors(browser, "the compare page")
    shot(browser, "compare.png", doc=True)
    # Changes only keeps the changed paths and the path to them.
    browser.find_element(By.ID, "compare-changes").click()
    wait(browser).until(lambda d: "changes=1" in d.current_url)
    kept = browser.execute_script("return [...document.querySelectorAll('#diff .diff-row')].map(r => r.dataset.presence)")
    assert "onlyA" in kept and len(kept) <= len(rows)
    # Swapped, the same spans are only in B.
    browser.find_element(By.ID, "compare-swap").click()
    wait(browser, 90).until(lambda d: dataset(d, "compareRendered") == f"{bad}...{good}")
    swapped = browser.execute_script("return [...document.querySelectorAll('#diff .diff-row')].map(r => [r.dataset.presence, r.dataset.service])")
    assert all(p == "onlyB" for p, s in swapped if s == "database") and any(s == "database" for _, s in swapped)


def test_compare_with_a_typical_trace(demo, browser):
    ui, good = demo["ui"], demo["healthy"]
    typical = get_json(f"{ui}/api/meshtrace/compare/typical/{good}", lookback="1h")
    assert typical["candidates"] >= 6 and typical["traceID"] != good
    browser.get(f"{ui}/trace/{good}")
    wait(browser).until(lambda d: dataset(d, "traceRendered") == good)
    browser.find_element(By.ID, "compare-typical").click()
    wait(browser, 90).until(lambda d: dataset(d, "compareRendered") == f"{good}...{typical['traceID']}")
    no_console_errors(browser, "compare with typical")


# --- service graph ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mesh30(tmp_path_factory):
    c = Collector(tmp_path_factory.mktemp("mesh30")).start()
    mesh = post_service_mesh(c.url("otlp", "/v1/traces"), 30)
    yield c, mesh
    c.stop()


def open_graph(driver, base, query="lookback=5m", count=None, timeout=120):
    driver.get(f"{base}/graph?{query}")
    light_theme(driver)
    wait(driver, timeout).until(lambda d: dataset(d, "graphLoaded") and d.find_elements(By.CSS_SELECTOR, "#graph-svg g.node")
                                and (count is None or len(d.find_elements(By.CSS_SELECTOR, "#graph-svg g.node")) == count))
    return driver.execute_script("return window.__meshtraceGraph")


def test_graph_lays_out_thirty_services_without_overlaps(mesh30, browser):
    c, mesh = mesh30
    base = f"http://127.0.0.1:{c.ports['query']}"
    console_errors(browser)
    open_graph(browser, base, count=30)
    no_console_errors(browser, "the 30-service graph")
    nodes = browser.execute_script(
        "return [...document.querySelectorAll('#graph-svg g.node')].map(g => { const b = (e) => { const r = e.getBoundingClientRect();"
        " return {x0: r.left, y0: r.top, x1: r.right, y1: r.bottom}; };"
        " return {id: g.dataset.node, type: g.dataset.type, layer: +g.dataset.layer, shape: b(g.querySelector('.shape')),"
        " name: b(g.querySelector('.node-name')), tag: g.querySelector('.shape').tagName}; })")
    assert len(nodes) == 30
    # No two nodes overlap: neither their shapes nor their name labels.
    for i, a in enumerate(nodes):
        for b in nodes[i + 1:]:
            for ka in ("shape", "name"):
                for kb in ("shape", "name"):
                    assert not overlapping(a[ka], b[kb]), f"{a['id']} {ka} overlaps {b['id']} {kb}: {a[ka]} {b[kb]}"
    # Layered left to right: the gateway first; most edges point right (one cycle goes back).
    by_id = {n["id"]: n for n in nodes}
    assert by_id["gateway"]["layer"] == 0 and len({n["layer"] for n in nodes}) >= 4
    edges = browser.execute_script("return [...document.querySelectorAll('#graph-svg g.edge')].map(e => [e.dataset.source, e.dataset.target, +e.dataset.rps, +e.dataset.errorRate, +(e.dataset.dots || 0), +(e.dataset.redDots || 0), +(e.dataset.dotRate || 0)])")
    assert {(a, b) for a, b, *_ in edges} == set(mesh["edges"])
    forward = sum(by_id[a]["layer"] < by_id[b]["layer"] for a, b, *_ in edges)
    assert forward >= len(edges) - 1
    # Gateway nodes are drawn as the legend draws them: a diamond.
    assert by_id["gateway"]["tag"] == "polygon" and by_id["gateway"]["type"] == "gateway"
    assert browser.find_element(By.CSS_SELECTOR, "#graph-legend [data-legend='gateway'] .shape").tag_name == "polygon"
    # Traffic animation: dots follow the rate, red ones the errors.
    if browser.find_element(By.ID, "graph-animate").is_selected():
        busiest = max(edges, key=lambda e: e[2])
        quietest = min(edges, key=lambda e: e[2])
        # Dots passing per second follow the rate: the busiest edge (15x the quietest) shows more.
        assert busiest[6] > 1.5 * quietest[6] > 0 and quietest[4] >= 1, (busiest, quietest)
        failing = [e for e in edges if e[3] > 0]
        assert failing and all(e[5] >= 1 for e in failing)
        assert all(e[5] == 0 for e in edges if e[3] == 0)
        assert len(browser.find_elements(By.CSS_SELECTOR, "#graph-svg .traffic .dot.err")) == sum(e[5] for e in edges)
    tall_graph_shot(browser, "graph-30.png")
    browser.find_element(By.ID, "graph-animate").click()
    wait(browser).until(lambda d: not d.find_elements(By.CSS_SELECTOR, "#graph-svg .traffic .dot"))
    # Edge labels: none by default on this many edges (they would hide the graph); rps, error %, none.
    assert not browser.find_elements(By.CSS_SELECTOR, "#graph-svg .edge-label")
    Select(browser.find_element(By.ID, "graph-labels")).select_by_value("rps")
    wait(browser).until(lambda d: "labels=rps" in d.current_url)
    labels = [t.text for t in browser.find_elements(By.CSS_SELECTOR, "#graph-svg .edge-label text")]
    assert len(labels) == len(edges) and all(t.endswith(" rps") for t in labels)
    Select(browser.find_element(By.ID, "graph-labels")).select_by_value("errors")
    wait(browser).until(lambda d: "labels=errors" in d.current_url)
    labels = [t.text for t in browser.find_elements(By.CSS_SELECTOR, "#graph-svg .edge-label text")]
    assert labels and all(t.endswith("%") for t in labels)
    Select(browser.find_element(By.ID, "graph-labels")).select_by_value("none")
    wait(browser).until(lambda d: not d.find_elements(By.CSS_SELECTOR, "#graph-svg .edge-label"))
    # Focus mode: a service, its callers and callees.
    target = next(n["id"] for n in nodes if n["layer"] == 1)
    neighbours = {b for a, b, *_ in edges if a == target} | {a for a, b, *_ in edges if b == target} | {target}
    node = browser.find_element(By.CSS_SELECTOR, f"#graph-svg g.node[data-node='{target}']")
    browser.execute_script("arguments[0].dispatchEvent(new MouseEvent('click', {bubbles: true}))", node)
    wait(browser).until(lambda d: d.find_element(By.ID, "graph-side-title").text.endswith(target))
    # The side panel's sparklines: rate, errors and p95 over the window.
    wait(browser).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#graph-trends svg.spark")) == 3)
    browser.find_element(By.ID, "graph-focus-btn").click()
    wait(browser).until(lambda d: f"focus={target}" in d.current_url)
    shown = {n.get_attribute("data-node") for n in browser.find_elements(By.CSS_SELECTOR, "#graph-svg g.node")}
    assert shown == neighbours
    shot(browser, "graph-focus.png", doc=True)
    browser.find_element(By.ID, "graph-unfocus").click()
    wait(browser).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#graph-svg g.node")) == 30)
    no_console_errors(browser, "the graph's controls")


def tall_graph_shot(driver, name):
    """The whole 30-service graph in one picture: the layout is taller than a 900 px window at
    the smallest zoom that keeps names readable, so the window grows for the shot and is fitted."""
    driver.set_window_size(1400, 1500)
    driver.find_element(By.ID, "graph-zoom-fit").click()
    shot(driver, name, doc=True)
    driver.set_window_size(1400, 900)
    driver.find_element(By.ID, "graph-zoom-fit").click()


def test_graph_paint_at_thirty_and_a_hundred_services(mesh30, browser, tmp_path):
    c, _ = mesh30
    big = Collector(tmp_path / "mesh100").start()
    try:
        post_service_mesh(big.url("otlp", "/v1/traces"), 100, seed=5)
        for name, col, count in (("graph-30", c, 30), ("graph-100", big, 100)):
            base = f"http://127.0.0.1:{col.ports['query']}"
            runs = []
            for _ in range(3):
                browser.get("about:blank")
                runs.append(open_graph(browser, base, count=count))
            no_console_errors(browser, name)
            TIMINGS[name] = {"firstPaintMs": statistics.median(r["sinceNavigationMs"] for r in runs),
                             "drawMs": statistics.median(r["drawMs"] for r in runs), "runs": runs}
        shot(browser, "graph-100.png")
    finally:
        big.stop()
    write_timings()


def test_per_operation_dependency_view(collector, data, browser):
    base = f"http://127.0.0.1:{collector.ports['query']}"
    api = get_json(collector.url("query", "/api/meshtrace/graph/operations"), lookback="5m")
    open_graph(browser, base, "lookback=5m&view=operations", count=len(api["nodes"]))
    assert browser.find_element(By.ID, "graph-view-operations").get_attribute("aria-selected") == "true"
    # Focus on payments' POST /pay: only the call paths through it remain.
    pay = json.dumps(["payments", "POST /pay"], separators=(",", ":"))
    node = next(n for n in browser.find_elements(By.CSS_SELECTOR, "#graph-svg g.node") if n.get_attribute("data-node") == pay)
    browser.execute_script("arguments[0].dispatchEvent(new MouseEvent('click', {bubbles: true}))", node)
    wait(browser).until(lambda d: d.find_element(By.ID, "graph-side-title").text == "POST /pay")
    browser.find_element(By.ID, "graph-focus-btn").click()
    focused = get_json(collector.url("query", "/api/meshtrace/graph/operations"), lookback="5m", service="payments", operation="POST /pay")
    wait(browser, 60).until(lambda d: "operation=POST" in d.current_url and len(d.find_elements(By.CSS_SELECTOR, "#graph-svg g.node")) == len(focused["nodes"]))
    shown = {tuple(json.loads(n.get_attribute("data-node"))) for n in browser.find_elements(By.CSS_SELECTOR, "#graph-svg g.node")}
    assert shown == {(n["service"], n["operation"]) for n in focused["nodes"]}
    assert ("orders", "GET /orders") not in shown and ("ingress", "GET /shop") in shown
    no_console_errors(browser, "the operations view")
    shot(browser, "graph-operations.png", doc=True)


# --- monitor ------------------------------------------------------------------------------------------

def test_monitor_shows_the_rates_the_graph_shows(collector, data, browser):
    base = f"http://127.0.0.1:{collector.ports['query']}"
    graph = get_json(collector.url("query", "/api/meshtrace/graph"), lookback="5m")
    nodes = {n["id"]: n for n in graph["nodes"]}
    browser.get(f"{base}/monitor?lookback=5m")
    light_theme(browser)
    wait(browser, 60).until(lambda d: dataset(d, "monitorLoaded") == "*")
    rows = browser.execute_script("return [...document.querySelectorAll('#monitor-services tbody tr')].map(r => [r.dataset.service, +r.dataset.rps, +r.dataset.errorRate, r.querySelector('.rps').textContent])")
    assert {r[0] for r in rows} == {"frontend", "orders", "payments", "reviews"}  # services that answer requests
    for service, rps, error_rate, text in rows:
        assert rps == pytest.approx(nodes[service]["rps"], rel=1e-3), service
        assert error_rate == pytest.approx(nodes[service]["errorRate"], rel=1e-3), service
    # Scaled by sampling.rate: 40 spans at 10% are 400 requests in 5 minutes.
    pay = next(r for r in rows if r[0] == "payments")
    assert pay[1] == pytest.approx(Mesh.REQUESTS / SAMPLING_RATE / 300, rel=1e-3) and pay[3] == "1.33/s"
    # The graph page draws the same number on the node.
    open_graph(browser, base)
    assert "1.33 rps" in browser.find_element(By.CSS_SELECTOR, "#graph-svg g.node[data-node='payments'] .node-rate").text
    # A service's charts and its operations; an operation opens its traces.
    browser.get(f"{base}/monitor?lookback=5m")
    wait(browser, 60).until(lambda d: dataset(d, "monitorLoaded") == "*")
    browser.find_element(By.CSS_SELECTOR, "#monitor-services tr[data-service='payments']").click()
    wait(browser, 60).until(lambda d: dataset(d, "monitorLoaded") == "payments")
    for chart in ("chart-rate", "chart-errors", "chart-latency"):
        assert browser.find_element(By.CSS_SELECTOR, f"#{chart} path.series").get_attribute("d")
    ticks = [t.text for t in browser.find_elements(By.CSS_SELECTOR, "#chart-rate text.axis")]
    assert len(ticks) == len(set(ticks))
    no_console_errors(browser, "the monitor page")
    shot(browser, "monitor.png", doc=True)
    browser.find_element(By.CSS_SELECTOR, "#monitor-operations a.op-link").click()
    wait(browser, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#trace-list .trace-item"))
    assert "service=payments" in browser.current_url and "operation=POST+%2Fpay" in browser.current_url.replace("%20", "+")


# --- search polish ------------------------------------------------------------------------------------

def test_search_marks_errors_and_has_unique_time_ticks(collector, data, browser):
    base = f"http://127.0.0.1:{collector.ports['query']}"
    browser.get(f"{base}/search?service=frontend&lookback=15m&limit=40")
    light_theme(browser)
    wait(browser, 60).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#trace-list .trace-item")) == 40)
    failing = {t for t, failed in data["mesh"].traces if failed}
    marked = set(browser.execute_script("return [...document.querySelectorAll('#scatter .dot-g')].filter(g => g.querySelector('circle.dot.err') && g.querySelector('.err-cross')).map(g => g.dataset.traceId)"))
    assert marked == failing
    ticks = [t.text for t in browser.find_elements(By.CSS_SELECTOR, "#scatter .x-tick")]
    assert len(ticks) >= 2 and len(ticks) == len(set(ticks)), ticks
    assert f"with errors ({len(failing)})" in browser.find_element(By.ID, "scatter-legend").text
    no_console_errors(browser, "search")
    shot(browser, "search-scatter.png", doc=True)


def write_timings():
    os.makedirs(ARTIFACTS, exist_ok=True)
    report = {"date": time.strftime("%Y-%m-%d %H:%M"), "load": os.getloadavg(), "cpus": os.cpu_count(), "timings": {
        k: {kk: vv for kk, vv in v.items() if kk != "runs"} for k, v in TIMINGS.items()}}
    with open(os.path.join(ARTIFACTS, "view-timing.json"), "w") as f:
        json.dump({**report, "raw": TIMINGS}, f, indent=2)
    print("\nUI paint timings:", json.dumps(report))
