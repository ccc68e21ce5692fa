// The voicebot dashboard: campaigns with live progress, a campaign's report and calls, and one
// call's transcript and outcomes. It reads the /v1 API with the key the user pastes (kept in
// this tab's sessionStorage only); every value is put in the page as text, never as markup.

const KEY_STORAGE = "voicebot.apiKey";
const REFRESH_MS = 3000;

let refreshTimer = null;

// --- small helpers ---------------------------------------------------------------------------

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  for (const child of children.flat()) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const percent = (rate) => (rate === null || rate === undefined ? "–" : `${(rate * 100).toFixed(1)}%`);
const number = (value, digits = 1) =>
  value === null || value === undefined ? "–" : Number(value).toFixed(digits);
const when = (iso) => (iso ? new Date(iso).toLocaleString() : "–");

function say(message, { error = false } = {}) {
  const status = document.getElementById("status");
  status.textContent = message;
  status.classList.toggle("error", error);
}

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(path) {
  const key = sessionStorage.getItem(KEY_STORAGE);
  if (!key) throw new ApiError(0, "Paste an API key above to see campaigns and calls.");
  const response = await fetch(path, { headers: { Authorization: `Bearer ${key}` } });
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      const body = await response.json();
      const detail = body.detail;
      if (detail && typeof detail === "object" && detail.message) message = detail.message;
      else if (typeof detail === "string") message = detail;
    } catch {
      // not JSON: keep the status line
    }
    if (response.status === 401) message = `The API refused this key: ${message}`;
    if (response.status === 403) message = `This key's role may not see this: ${message}`;
    throw new ApiError(response.status, message);
  }
  return response.json();
}

// --- views -----------------------------------------------------------------------------------

function progressBar(done, total) {
  const share = total ? Math.round((done / total) * 100) : 0;
  return h(
    "div",
    { class: "progress", role: "progressbar", "aria-valuenow": share, "aria-valuemin": 0, "aria-valuemax": 100 },
    h("span", { style: null, "data-width": share }),
  );
}

function sizeBars(root) {
  // Widths are set from script (the page's CSP forbids inline style attributes).
  for (const bar of root.querySelectorAll(".progress > span[data-width]")) {
    bar.style.width = `${bar.dataset.width}%`;
  }
}

async function campaignsView() {
  const page = await api("/v1/campaigns?limit=100");
  const progress = await Promise.all(
    page.items.map((campaign) => api(`/v1/campaigns/${campaign.id}/progress`)),
  );
  const rows = page.items.map((campaign, i) => {
    const p = progress[i];
    const total = Object.values(p.callbacks).reduce((a, b) => a + b, 0);
    const done = (p.callbacks.done || 0) + (p.callbacks.cancelled || 0);
    return h(
      "tr",
      { "data-campaign": campaign.id },
      h("td", {}, h("a", { href: `#/campaigns/${campaign.id}` }, campaign.name)),
      h("td", {}, h("span", { class: `badge ${campaign.status}` }, campaign.status)),
      h("td", {}, campaign.dialog_id),
      h("td", { class: "number" }, p.contacts),
      h("td", {}, progressBar(done, total), h("small", {}, ` ${done} / ${total} call-backs done`)),
      h("td", { class: "number", "data-live": campaign.id }, p.live_calls),
    );
  });
  return [
    h("h1", {}, "Campaigns"),
    rows.length
      ? h(
          "table",
          { id: "campaigns" },
          h("thead", {}, h("tr", {}, ["Name", "Status", "Dialog", "Contacts", "Progress", "Live calls"].map((t) => h("th", {}, t)))),
          h("tbody", {}, rows),
        )
      : h("p", { class: "empty" }, "No campaigns yet."),
  ];
}

const METRICS = [
  ["attempts", "Calls placed", (v) => v],
  ["contact_rate", "Contact rate", percent],
  ["right_party_contact_rate", "Right-party contact rate", percent],
  ["promise_rate", "Promise rate", percent],
  ["complaint_rate", "Complaint rate", percent],
  ["opt_out_rate", "Opt-out rate", percent],
  ["attempts_per_contact", "Attempts per contact", (v) => number(v, 2)],
  ["average_call_seconds", "Average call (s)", (v) => number(v, 1)],
];

function reportCards(totals) {
  const promised = Object.entries(totals.promised_amount || {})
    .map(([currency, amount]) => `${amount} ${currency}`)
    .join(", ");
  return h(
    "div",
    { class: "cards", id: "report" },
    METRICS.map(([field, label, show]) =>
      h("div", { class: "card", "data-metric": field }, h("div", { class: "label" }, label), h("div", { class: "value" }, show(totals[field]))),
    ),
    h("div", { class: "card", "data-metric": "promised_amount" }, h("div", { class: "label" }, "Promised"), h("div", { class: "value" }, promised || "–")),
  );
}

function dayChart(days) {
  if (!days || days.length === 0) return h("p", { class: "empty" }, "No calls placed yet.");
  const width = 640;
  const height = 180;
  const pad = 24;
  const top = Math.max(1, ...days.map((d) => d.attempts));
  const slot = (width - pad * 2) / days.length;
  const bar = Math.min(28, Math.max(2, slot / 2 - 2));
  const y = (value) => height - pad - ((height - pad * 2) * value) / top;
  const shapes = days.flatMap((day, i) => {
    const x = pad + i * slot;
    return [
      svg("rect", { class: "bar", x, y: y(day.attempts), width: bar, height: height - pad - y(day.attempts) },
        svg("title", {}, `${day.day}: ${day.attempts} calls`)),
      svg("rect", { class: "bar promised", x: x + bar + 2, y: y(day.contacts_promised), width: bar, height: height - pad - y(day.contacts_promised) },
        svg("title", {}, `${day.day}: ${day.contacts_promised} borrowers promised`)),
      svg("text", { x, y: height - 6 }, day.day.slice(5)),
    ];
  });
  return h(
    "div",
    { class: "chart", id: "day-chart" },
    svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "Calls and promises per day" },
      svg("text", { x: 2, y: 12 }, String(top)), shapes),
    h("div", { class: "legend" },
      h("span", {}, h("span", { class: "swatch attempts" }), "calls placed"),
      h("span", {}, h("span", { class: "swatch promised" }), "borrowers who promised")),
  );
}

function callsTable(calls) {
  if (calls.length === 0) return h("p", { class: "empty" }, "No calls yet.");
  return h(
    "table",
    { id: "calls" },
    h("thead", {}, h("tr", {}, ["Call", "Borrower", "Number", "Status", "Disposition", "Length (s)", "Placed"].map((t) => h("th", {}, t)))),
    h(
      "tbody",
      {},
      calls.map((call) =>
        h(
          "tr",
          { "data-call": call.id },
          h("td", {}, h("a", { href: `#/calls/${call.id}` }, `#${call.id}`)),
          h("td", {}, call.contact_name ?? "–"),
          h("td", {}, call.to_number),
          h("td", {}, call.status),
          h("td", {}, call.disposition ?? "–"),
          h("td", { class: "number" }, call.duration_seconds ?? "–"),
          h("td", {}, when(call.created_at)),
        ),
      ),
    ),
  );
}

async function campaignView(id) {
  const [campaign, progress, report, calls] = await Promise.all([
    api(`/v1/campaigns/${id}`),
    api(`/v1/campaigns/${id}/progress`),
    api(`/v1/reports/campaigns/${id}?group_by=day`),
    api(`/v1/calls?campaign_id=${id}&limit=50`),
  ]);
  return [
    h("p", {}, h("a", { href: "#/campaigns" }, "← Campaigns")),
    h("h1", {}, campaign.name, " ", h("span", { class: `badge ${campaign.status}` }, campaign.status)),
    h("dl", { class: "facts" },
      h("dt", {}, "Dialog"), h("dd", {}, campaign.dialog_id),
      h("dt", {}, "Calling window"), h("dd", {}, `${campaign.calling_window.start}–${campaign.calling_window.end} (borrower's time)`),
      h("dt", {}, "Live calls"), h("dd", { id: "live-calls" }, `${progress.live_calls} of ${campaign.concurrency_limit}`),
      h("dt", {}, "Call-backs"), h("dd", {}, Object.entries(progress.callbacks).map(([s, n]) => `${s} ${n}`).join(" · ") || "none")),
    h("h2", {}, "Report"),
    reportCards(report.totals),
    h("h2", {}, "Per day"),
    dayChart(report.days),
    h("h2", {}, "Latest calls"),
    callsTable(calls.items),
  ];
}

// An outcome's own fields sit beside these (the shape `voicebot chat --json` prints).
const OUTCOME_METADATA = new Set(["id", "type", "call_id", "contact_id", "contact_name", "campaign_id", "created_at", "promise_status"]);

function outcomeLine(outcome) {
  const data = Object.entries(outcome)
    .filter(([name]) => !OUTCOME_METADATA.has(name))
    .map(([name, value]) => `${name}: ${Array.isArray(value) ? value.join(", ") : typeof value === "object" && value !== null ? JSON.stringify(value) : value}`)
    .join(" · ");
  const status = outcome.promise_status ? ` (${outcome.promise_status})` : "";
  return h("div", { class: `outcome ${outcome.type}`, "data-outcome": outcome.type }, h("strong", {}, outcome.type + status), data ? ` — ${data}` : "");
}

async function callView(id) {
  const call = await api(`/v1/calls/${id}`);
  return [
    h("p", {}, h("a", { href: `#/campaigns/${call.campaign_id}` }, "← Campaign")),
    h("h1", {}, `Call #${call.id}`),
    h("dl", { class: "facts" },
      h("dt", {}, "Borrower"), h("dd", { id: "borrower" }, call.contact_name ?? "–"),
      h("dt", {}, "Number"), h("dd", { id: "number" }, call.to_number),
      h("dt", {}, "Status"), h("dd", {}, `${call.status}${call.disposition ? ` → ${call.disposition}` : ""}`),
      h("dt", {}, "Placed"), h("dd", {}, when(call.created_at)),
      h("dt", {}, "Length"), h("dd", {}, call.duration_seconds === null ? "–" : `${call.duration_seconds} s`),
      h("dt", {}, "Dialog ended"), h("dd", {}, call.end_state ?? "–"),
      h("dt", {}, "Recording"), h("dd", {}, call.recording_url ? h("a", { href: call.recording_url, rel: "noreferrer" }, "listen") : "none"),
      call.stream_error ? [h("dt", {}, "Stream error"), h("dd", {}, call.stream_error)] : null),
    h("h2", {}, "Outcomes"),
    h("div", { id: "outcomes" }, call.outcomes.length ? call.outcomes.map(outcomeLine) : h("p", { class: "empty" }, "None recorded.")),
    h("h2", {}, "Transcript"),
    h(
      "div",
      { class: "transcript", id: "transcript" },
      call.transcript.length
        ? call.transcript.map((turn) =>
            h("div", { class: `turn ${turn.speaker}` },
              h("div", { class: "meta" }, `${turn.speaker}${turn.dtmf ? " (keypad)" : ""}${turn.confidence === null ? "" : ` · confidence ${number(turn.confidence, 2)}`}${turn.interrupted ? " · interrupted" : ""}`),
              turn.text))
        : h("p", { class: "empty" }, "No transcript."),
    ),
    h("h2", {}, "Carrier events"),
    h("ol", { id: "events" }, call.events.map((e) => h("li", {}, `${when(e.received_at)} ${e.kind} ${e.call_status ?? ""}${e.answered_by ? ` (${e.answered_by})` : ""}`))),
  ];
}

// --- routing ---------------------------------------------------------------------------------

function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/");
  if (parts[0] === "campaigns" && /^\d+$/.test(parts[1] || "")) return [() => campaignView(parts[1]), true];
  if (parts[0] === "calls" && /^\d+$/.test(parts[1] || "")) return [() => callView(parts[1]), false];
  return [campaignsView, true];
}

async function render() {
  clearTimeout(refreshTimer);
  const [view, live] = route();
  const target = document.getElementById("view");
  try {
    const content = await view();
    target.replaceChildren(...content);
    sizeBars(target);
    say("");
    if (live) refreshTimer = setTimeout(render, REFRESH_MS);
  } catch (error) {
    target.replaceChildren();
    say(error.message, { error: error instanceof ApiError && error.status !== 0 });
  }
}

function showKeyState() {
  const hasKey = Boolean(sessionStorage.getItem(KEY_STORAGE));
  document.getElementById("key-forget").hidden = !hasKey;
  document.getElementById("api-key").placeholder = hasKey ? "key in use (paste to replace)" : "vb_…";
}

document.getElementById("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = document.getElementById("api-key");
  const key = input.value.trim();
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  input.value = "";
  showKeyState();
  render();
});
document.getElementById("key-forget").addEventListener("click", () => {
  sessionStorage.removeItem(KEY_STORAGE);
  showKeyState();
  render();
});
window.addEventListener("hashchange", render);
showKeyState();
render();
