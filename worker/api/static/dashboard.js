/* The dashboard page's script (served by roi-worker api; docs/api.md, "The dashboard page").
 *
 * The server renders every figure; this script draws the charts (Plotly, served by the API
 * from the installed plotly package), sorts and filters the patterns table, and keeps the page
 * live: it reads GET /api/roi-tracking/live (server-sent events, through fetch so that a read
 * token can be sent) and, on each `summaries` event, fetches the page's sections again
 * (/fragments/...) and swaps them in, then redraws the charts from the JSON endpoints. When
 * the stream fails three times in a row it polls every ROI_DASHBOARD_REFRESH_SECONDS instead.
 *
 * Money: the API's decimal strings are shown as they are (digits grouped, a dollar sign added,
 * by string manipulation); no arithmetic is ever done on them here. Charts plot Number(...) of
 * them, and their hover labels show the strings.
 *
 * Settings come from data- attributes of <body>: no inline script (the page's CSP forbids it).
 */
"use strict";

(function () {
  const body = document.body;
  const config = {
    page: body.dataset.page,
    roi: body.dataset.roi,
    fragments: body.dataset.fragments,
    refreshMs: 1000 * Number(body.dataset.refreshSeconds || "5"),
    tokenRequired: body.dataset.tokenRequired === "true",
    patternId: body.dataset.patternId || "",
  };
  const TOKEN_KEY = "roi-worker-read-token";
  let token = config.tokenRequired ? sessionStorage.getItem(TOKEN_KEY) || "" : "";

  // ------------------------------------------------------------------ formatting (strings only)

  function grouped(text) {
    const found = /^(-?)([0-9]+)(\.[0-9]+)?$/.exec(String(text));
    if (!found) return String(text);
    const digits = found[2];
    const head = digits.length % 3 || 3;
    const groups = [digits.slice(0, head)];
    for (let i = head; i < digits.length; i += 3) groups.push(digits.slice(i, i + 3));
    return found[1] + groups.join(",") + (found[3] || "");
  }

  function money(text) {
    if (text === null || text === undefined) return "—";
    const shown = grouped(text);
    return shown.startsWith("-") ? "-$" + shown.slice(1) : "$" + shown;
  }

  // Exact order of two decimal strings ("" = no value, always last): no float involved.
  function compareDecimal(a, b) {
    if (a === b) return 0;
    if (a === "") return 1;
    if (b === "") return -1;
    const negA = a.startsWith("-");
    const negB = b.startsWith("-");
    if (negA !== negB) return negA ? -1 : 1;
    const magnitude = compareMagnitude(negA ? a.slice(1) : a, negB ? b.slice(1) : b);
    return negA ? -magnitude : magnitude;
  }

  function compareMagnitude(a, b) {
    const [intA, fracA = ""] = a.split(".");
    const [intB, fracB = ""] = b.split(".");
    const wholeA = intA.replace(/^0+/, "");
    const wholeB = intB.replace(/^0+/, "");
    if (wholeA.length !== wholeB.length) return wholeA.length < wholeB.length ? -1 : 1;
    if (wholeA !== wholeB) return wholeA < wholeB ? -1 : 1;
    const width = Math.max(fracA.length, fracB.length);
    const restA = fracA.padEnd(width, "0");
    const restB = fracB.padEnd(width, "0");
    return restA === restB ? 0 : restA < restB ? -1 : 1;
  }

  // ------------------------------------------------------------------ reading

  class Unauthorized extends Error {}
  class NotFound extends Error {}

  async function get(url, accept) {
    const headers = { Accept: accept };
    if (token) headers.Authorization = "Bearer " + token;
    const response = await fetch(url, { headers: headers, cache: "no-store" });
    if (response.status === 401) throw new Unauthorized("a read token is needed");
    if (response.status === 404) throw new NotFound("not found");
    if (!response.ok) throw new Error(url + " answered " + response.status);
    return response;
  }

  async function getJson(url) {
    return (await get(url, "application/json")).json();
  }

  async function getDocument(url) {
    const text = await (await get(url, "text/html")).text();
    return new DOMParser().parseFromString(text, "text/html");
  }

  function setReadAt(iso) {
    const element = document.getElementById("read-at");
    if (!element || !iso) return;
    element.dataset.readAt = iso;
    element.textContent = "Data read at " + iso.slice(11, 19) + " UTC";
  }

  function serverToday() {
    const readAt = document.getElementById("read-at").dataset.readAt;
    return readAt ? readAt.slice(0, 10) : new Date().toISOString().slice(0, 10);
  }

  function setLiveState(text) {
    const element = document.getElementById("live-state");
    if (element) element.textContent = text;
  }

  // ------------------------------------------------------------------ dates (never money)

  const DAY_MS = 86400000;

  function dayNumber(iso) {
    return Date.UTC(Number(iso.slice(0, 4)), Number(iso.slice(5, 7)) - 1, Number(iso.slice(8, 10))) / DAY_MS;
  }

  function isoOfDay(number) {
    return new Date(number * DAY_MS).toISOString().slice(0, 10);
  }

  const MAX_PERIODS = 400; // GET /savings lists at most 400 periods

  // The /savings query of a period button: the last N days by day, or all time (by week or
  // month when that is over 400 days).
  function savingsRange(period, firstDay) {
    const today = dayNumber(serverToday());
    if (period !== "all") return { unit: "day", from: isoOfDay(today - Number(period) + 1) };
    const first = firstDay ? Math.min(dayNumber(firstDay), today) : today;
    const days = today - first + 1;
    if (days <= MAX_PERIODS) return { unit: "day", from: isoOfDay(first) };
    if (days <= 7 * (MAX_PERIODS - 1)) return { unit: "week", from: isoOfDay(first) };
    return { unit: "month", from: isoOfDay(Math.max(first, today - 30 * (MAX_PERIODS - 2))) };
  }

  // ------------------------------------------------------------------ charts

  const PLOT_CONFIG = { displayModeBar: false, responsive: true };
  const GREEN = "#1b6e3a";
  const RED = "#b3261e";
  const BLUE = "#1f4e99";

  function baseLayout(yTitle) {
    return {
      height: 320,
      margin: { l: 70, r: 60, t: 10, b: 50 },
      paper_bgcolor: "#ffffff",
      plot_bgcolor: "#ffffff",
      font: { family: "system-ui, sans-serif", size: 13, color: "#1a1a1a" },
      yaxis: { title: { text: yTitle }, zeroline: true, zerolinecolor: "#595959" },
      legend: { orientation: "h", y: -0.25 },
      bargap: 0.2,
    };
  }

  async function plot(element, traces, layout, points) {
    await Plotly.react(element, traces, layout, PLOT_CONFIG);
    element.dataset.points = String(points);
    element.dataset.drawn = "true";
  }

  function fillRows(tbody, rows) {
    tbody.replaceChildren(
      ...rows.map(function (cells) {
        const row = document.createElement("tr");
        cells.forEach(function (cell) {
          const td = document.createElement("td");
          td.textContent = cell;
          row.appendChild(td);
        });
        return row;
      })
    );
  }

  let savingsPeriod = "30";

  async function drawSavings() {
    const chart = document.getElementById("savings-chart");
    if (!chart) return;
    const period = savingsPeriod;
    const range = savingsRange(period, chart.dataset.firstDay);
    const data = await getJson(
      config.roi + "/savings?period=" + range.unit + "&from=" + range.from
    );
    const periods = data.periods;
    const days = periods.map(function (p) { return p.first_day; });
    const bars = {
      type: "bar",
      name: "Net savings per " + range.unit,
      x: days,
      y: periods.map(function (p) { return Number(p.cost_saved_usd); }),
      text: periods.map(function (p) { return money(p.cost_saved_usd); }),
      textposition: "none",
      hovertemplate: "%{x}: %{text}<extra></extra>",
      marker: { color: periods.map(function (p) { return p.cost_saved_usd.startsWith("-") ? RED : GREEN; }) },
    };
    const line = {
      type: "scatter",
      mode: "lines",
      name: "Cumulative",
      x: days,
      y: periods.map(function (p) { return Number(p.cumulative_cost_saved_usd); }),
      text: periods.map(function (p) { return money(p.cumulative_cost_saved_usd); }),
      hovertemplate: "%{x}: %{text} so far<extra></extra>",
      line: { color: BLUE, width: 3 },
      yaxis: "y2",
    };
    const layout = baseLayout("Net savings per " + range.unit + " (USD)");
    layout.yaxis2 = { title: { text: "Cumulative (USD)" }, overlaying: "y", side: "right" };
    if (period !== savingsPeriod) return; // another button was pressed meanwhile
    chart.dataset.period = period;
    await plot(chart, [bars, line], layout, periods.length);
    chart.setAttribute(
      "aria-label",
      "Net savings per " + range.unit + " from " + data.first_day + " to " + data.last_day +
        " (bars) and cumulative (line): " + money(periods.length ? periods[periods.length - 1].cumulative_cost_saved_usd : "0") +
        " in all. The figures are in the table below."
    );
    fillRows(
      document.querySelector("#savings-table tbody"),
      periods.map(function (p) {
        const span = p.first_day === p.last_day ? p.first_day : p.first_day + " to " + p.last_day;
        return [span, grouped(p.executions), money(p.cost_saved_usd), money(p.cumulative_cost_saved_usd)];
      })
    );
  }

  async function drawHistory() {
    const chart = document.getElementById("pattern-history-chart");
    if (!chart) return;
    const today = dayNumber(serverToday());
    const first = chart.dataset.firstDay ? Math.max(dayNumber(chart.dataset.firstDay), today - MAX_PERIODS + 1) : today;
    const from = isoOfDay(Math.min(first, today));
    const data = await getJson(
      config.roi + "/savings?period=day&from=" + from + "&pattern_id=" + encodeURIComponent(chart.dataset.patternId)
    );
    const periods = data.periods;
    const days = periods.map(function (p) { return p.first_day; });
    const bars = {
      type: "bar",
      name: "Net savings per day",
      x: days,
      y: periods.map(function (p) { return Number(p.cost_saved_usd); }),
      text: periods.map(function (p) { return money(p.cost_saved_usd); }),
      textposition: "none",
      hovertemplate: "%{x}: %{text}<extra></extra>",
      marker: { color: periods.map(function (p) { return p.cost_saved_usd.startsWith("-") ? RED : GREEN; }) },
    };
    // The chart's line only: the share of a day's executions that succeeded (counts, not money).
    const rate = {
      type: "scatter",
      mode: "lines+markers",
      name: "Success rate",
      x: days,
      y: periods.map(function (p) { return p.executions ? (100 * p.successful_executions) / p.executions : null; }),
      text: periods.map(function (p) { return p.successful_executions + " of " + p.executions + " succeeded"; }),
      hovertemplate: "%{x}: %{text}<extra></extra>",
      connectgaps: false,
      line: { color: BLUE, width: 2 },
      yaxis: "y2",
    };
    const layout = baseLayout("Net savings per day (USD)");
    layout.yaxis2 = { title: { text: "Success rate (%)" }, overlaying: "y", side: "right", range: [0, 100] };
    await plot(chart, [bars, rate], layout, periods.length);
    fillRows(
      document.querySelector("#history-table tbody"),
      periods.map(function (p) {
        return [p.first_day, grouped(p.executions), grouped(p.successful_executions), money(p.cost_saved_usd)];
      })
    );
  }

  async function drawOutcomes() {
    const chart = document.getElementById("outcomes-chart");
    if (!chart) return;
    const names = ["success", "partial success", "failure", "error"];
    const counts = [chart.dataset.success, chart.dataset.partialSuccess, chart.dataset.failure, chart.dataset.error];
    const layout = baseLayout("Executions");
    layout.height = 260;
    layout.showlegend = false;
    await plot(
      chart,
      [{
        type: "bar",
        x: names,
        y: counts.map(Number),
        text: counts.map(grouped),
        textposition: "auto",
        hovertemplate: "%{x}: %{text}<extra></extra>",
        marker: { color: [GREEN, "#7a5a00", RED, "#5b2a86"] },
      }],
      layout,
      names.length
    );
  }

  // ------------------------------------------------------------------ the patterns table

  const RATING_ORDER = ["excellent", "good", "acceptable", "poor", "failed", "insufficient_data"];
  const STATUS_ORDER = ["on_track", "at_risk", "off_track", "insufficient_data", ""];
  const NUMERIC = ["success_rate", "wilson_lower_bound", "roi_percentage", "cost_saved_usd", "executions", "flags"];
  let sortColumn = "pattern_id";
  let sortDirection = "ascending";

  function cellValue(row, column) {
    const cell = row.querySelector('[data-column="' + column + '"]');
    return cell ? cell.dataset.value : "";
  }

  function compareRows(a, b) {
    const x = cellValue(a, sortColumn);
    const y = cellValue(b, sortColumn);
    let order;
    if (NUMERIC.includes(sortColumn)) {
      order = compareDecimal(x, y);
      if (x === "" || y === "") return order; // no value: last either way
    } else if (sortColumn === "rating") {
      order = RATING_ORDER.indexOf(x) - RATING_ORDER.indexOf(y);
    } else if (sortColumn === "snapshot_status") {
      order = STATUS_ORDER.indexOf(x) - STATUS_ORDER.indexOf(y);
    } else {
      order = x < y ? -1 : x > y ? 1 : 0;
    }
    if (order === 0) order = a.dataset.patternId < b.dataset.patternId ? -1 : 1;
    return sortDirection === "ascending" ? order : -order;
  }

  function applySort() {
    const tbody = document.getElementById("patterns-rows");
    if (!tbody) return;
    const rows = Array.from(tbody.querySelectorAll("tr[data-pattern-id]"));
    rows.sort(compareRows);
    rows.forEach(function (row) { tbody.appendChild(row); });
    document.querySelectorAll("#patterns-table th[data-column]").forEach(function (th) {
      th.setAttribute("aria-sort", th.dataset.column === sortColumn ? sortDirection : "none");
    });
  }

  function applyFilter() {
    const select = document.getElementById("rating-filter");
    const tbody = document.getElementById("patterns-rows");
    if (!select || !tbody) return;
    const rows = Array.from(tbody.querySelectorAll("tr[data-pattern-id]"));
    let shown = 0;
    rows.forEach(function (row) {
      const visible = !select.value || row.dataset.rating === select.value;
      row.hidden = !visible;
      if (visible) shown += 1;
    });
    const status = document.getElementById("patterns-shown");
    if (status) status.textContent = shown + " of " + rows.length + " patterns shown";
  }

  function setUpTable() {
    document.querySelectorAll("#patterns-table th[data-column] button").forEach(function (button) {
      button.addEventListener("click", function () {
        const column = button.closest("th").dataset.column;
        if (column === sortColumn) {
          sortDirection = sortDirection === "ascending" ? "descending" : "ascending";
        } else {
          sortColumn = column;
          sortDirection = NUMERIC.includes(column) ? "descending" : "ascending";
        }
        applySort();
      });
    });
    const select = document.getElementById("rating-filter");
    if (select) select.addEventListener("change", applyFilter);
    applySort();
    applyFilter();
  }

  function setUpPeriods() {
    document.querySelectorAll("button[data-period]").forEach(function (button) {
      button.addEventListener("click", function () {
        savingsPeriod = button.dataset.period;
        document.querySelectorAll("button[data-period]").forEach(function (other) {
          other.setAttribute("aria-pressed", String(other === button));
        });
        drawSavings().catch(showProblem);
      });
    });
  }

  // ------------------------------------------------------------------ refreshing

  function swap(doc, ids) {
    ids.forEach(function (id) {
      const fresh = doc.getElementById(id);
      const old = document.getElementById(id);
      if (fresh && old) old.replaceWith(document.importNode(fresh, true));
    });
  }

  async function drawAll() {
    if (config.page === "dashboard") {
      await drawSavings();
    } else if (config.page === "pattern") {
      await Promise.all([drawHistory(), drawOutcomes()]);
    }
  }

  async function readSections() {
    if (config.page === "dashboard") {
      const doc = await getDocument(config.fragments + "/dashboard");
      swap(doc, ["hero", "patterns-rows", "underperformers"]);
      const chart = document.getElementById("savings-chart");
      const freshChart = doc.getElementById("savings-chart");
      if (chart && freshChart) chart.dataset.firstDay = freshChart.dataset.firstDay;
      setReadAt(doc.getElementById("read-at").dataset.readAt);
      applySort();
      applyFilter();
    } else if (config.page === "pattern") {
      const doc = await getDocument(config.fragments + "/patterns/" + config.patternId);
      swap(doc, ["pattern-figures"]);
      setReadAt(doc.getElementById("read-at").dataset.readAt);
    }
  }

  let refreshing = false;
  let pending = false;

  async function refresh() {
    if (refreshing) {
      pending = true;
      return;
    }
    refreshing = true;
    try {
      await readSections();
      await drawAll();
      clearProblem();
    } catch (error) {
      showProblem(error);
    } finally {
      refreshing = false;
      if (pending) {
        pending = false;
        refresh();
      }
    }
  }

  function showProblem(error) {
    if (error instanceof Unauthorized) {
      askForToken("That token is not accepted: enter a read token.");
      return;
    }
    if (error instanceof NotFound && config.page === "pattern") {
      const figures = document.getElementById("pattern-figures");
      if (figures) figures.textContent = "No execution of this pattern is stored.";
      return;
    }
    setLiveState("(could not read the figures: " + error.message + ")");
  }

  function clearProblem() {
    if (document.getElementById("live-state").textContent.startsWith("(could not")) setLiveState("");
  }

  // ------------------------------------------------------------------ live

  let failures = 0;
  let polling = null;

  function poll() {
    if (polling) return;
    setLiveState("(refreshed every " + config.refreshMs / 1000 + " s)");
    polling = setInterval(refresh, config.refreshMs);
  }

  async function listen() {
    try {
      const headers = { Accept: "text/event-stream" };
      if (token) headers.Authorization = "Bearer " + token;
      const response = await fetch(config.roi + "/live", { headers: headers, cache: "no-store" });
      if (response.status === 401) throw new Unauthorized("a read token is needed");
      if (!response.ok || !response.body) throw new Error("live stream answered " + response.status);
      failures = 0;
      setLiveState("(live)");
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const chunk = await reader.read();
        if (chunk.done) break;
        buffer += chunk.value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const message = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = message.split("\n").find(function (line) { return line.startsWith("event:"); });
          if (event && event.slice(6).trim() === "summaries") refresh();
        }
      }
    } catch (error) {
      if (error instanceof Unauthorized) {
        askForToken("Enter a read token.");
        return;
      }
    }
    failures += 1;
    if (failures >= 3) {
      poll();
    } else {
      setLiveState("(reconnecting)");
      setTimeout(listen, 2000);
    }
  }

  // ------------------------------------------------------------------ read tokens

  function askForToken(message) {
    token = "";
    sessionStorage.removeItem(TOKEN_KEY);
    const form = document.getElementById("token-form");
    if (!form) return;
    form.hidden = false;
    document.getElementById("token-problem").textContent = message || "";
    setLiveState("(enter a read token)");
  }

  function setUpToken() {
    const form = document.getElementById("token-form");
    if (!form) return;
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      token = document.getElementById("token-input").value.trim();
      sessionStorage.setItem(TOKEN_KEY, token);
      form.hidden = true;
      start();
    });
  }

  // ------------------------------------------------------------------ start

  function start() {
    refresh().then(function () {
      if (token || !config.tokenRequired) listen(); // a refused token asked for another
    });
  }

  function main() {
    if (config.page === "not-found") return;
    setUpTable();
    setUpPeriods();
    setUpToken();
    if (config.tokenRequired && !token) {
      askForToken("");
      return;
    }
    if (config.tokenRequired) {
      start();
    } else {
      drawAll().catch(showProblem).then(listen);
    }
  }

  main();
})();
