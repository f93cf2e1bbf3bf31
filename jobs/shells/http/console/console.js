// The web console (docs/reference/console.md): a page per hash route, drawn from the JSON API.
// Every value from the API reaches the page through textContent or an attribute, never as markup.
"use strict";

const SESSION_KEY = "export-jobs-console";
const POLL_MS = 2000;
const FINAL = new Set(["SUCCEEDED", "FAILED", "CANCELLED"]);
const STATUSES = ["NEW", "PROCESSING", "CANCELLING", "SUCCEEDED", "FAILED", "CANCELLED"];
const PAGE_SIZE = 20;
// "What to do" for each error code, as docs/reference/errors.md says it (tests/unit/test_console_remedies.py holds them equal).
const REMEDIES = {
  BAD_REQUEST: "Fix each listed value and send the request again.",
  NOT_FOUND: "Check the id, and --org/--sandbox or the x-gw-ims-org-id/x-sandbox-name headers.",
  CONFLICT: "Read the resource again (get) and decide; delete the definitions that use one before deleting it.",
  INVALID_LAKE: "Fix the config's dataset paths or the lake (for the demo, build the sample lake again: scripts/sample_lake.py), or create the job again with fields that exist.",
  INVALID_PQL: "Change the expression; the PQL subset lists what is supported.",
  INVALID_CONFIG: "Fix the file, or pass the right one with --conf PATH or EXPORT_JOBS_CONF (configuration); export-jobs config show prints what was read.",
  USAGE: "Use one of the pairs the message lists, or add the tenant to the config.",
  DESTINATION_SCHEMA_CONFLICT: "Export these fields to another dataset, or choose fields that fit.",
  DESTINATION_NOT_A_MIRROR: "Point the mirror at a new path, or declare the dataset mode = \"append\"; see mirror destinations.",
  IDENTITY_GRAPH: "Raise maxGraphIterations (configuration); see identity stitching.",
  INPUT_VERSION_GONE: "Keep both retentions above the age of the jobs you replay; see replays.",
  RUNNER_LOST: "Nothing if it will be retried (a retry never writes its batches twice); else create the job again. See runners, leases, cancels.",
  RUNNER_STOPPED: "Nothing: the next runner runs it from the start, and never writes its batches twice. See configuration.",
  SPARK_ANALYSIS: "Read the message and the callStack; compare the lake's tables with the job's fields.",
  EXPORT_FAILED: "Read the job's log (stderr of run, or the server's log); run the job again once the cause is fixed.",
};

// ------------------------------------------------------------------ the session and the API

function session() {
  const stored = sessionStorage.getItem(SESSION_KEY);
  return stored ? JSON.parse(stored) : null;
}

class ApiError extends Error {
  constructor(status, body) {
    super(body && body.detail ? body.detail : `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

// The token travels as a header on every call, never in a URL or a cookie.
async function api(path, options = {}) {
  const who = options.as || session();
  const headers = {
    "Authorization": `Bearer ${who.token}`,
    "x-api-key": "export-jobs-console",
    "x-gw-ims-org-id": who.org,
    "x-sandbox-name": who.sandbox,
  };
  const init = {method: options.method || "GET", headers, credentials: "omit", cache: "no-store"};
  if (options.body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(options.body);
  }
  const response = await fetch(path, init);
  const text = await response.text();
  const body = text ? JSON.parse(text) : null;
  if (!response.ok) {
    if (response.status === 401 && !options.as) {
      signOut("The token is no longer accepted: sign in again.");
    }
    throw new ApiError(response.status, body);
  }
  return body;
}

// ------------------------------------------------------------------ building the DOM

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "on") {
      for (const [event, handler] of Object.entries(value)) node.addEventListener(event, handler);
    } else if (name === "class") {
      node.className = value;
    } else {
      node.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attributes = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  append(node, children);
  return node;
}

function time(ms) {
  return ms ? new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z") : "";
}

function duration(ms) {
  if (ms === undefined || ms === null) return "";
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

function badge(status) {
  return el("span", {class: `badge status-${String(status).toLowerCase()}`}, status);
}

function problemText(err) {
  if (!(err instanceof ApiError) || !err.body) return String(err.message || err);
  const details = (err.body.errors || []).map((p) => `${p.path}: ${p.message}`);
  return [err.body.detail, ...details].filter(Boolean).join("\n");
}

function errorBox(err) {
  return el("p", {class: "error", role: "alert"}, problemText(err));
}

function table(headings, rows, emptyText) {
  if (!rows.length) return el("p", {class: "empty"}, emptyText);
  return el("div", {class: "table-wrap"},
    el("table", {}, el("thead", {}, el("tr", {}, headings.map((h) => el("th", {}, h)))),
      el("tbody", {}, rows)));
}

function cells(label, ...children) {
  // data-label lets the phone layout show each cell under its heading.
  return el("td", {"data-label": label}, ...children);
}

// ------------------------------------------------------------------ routing

let generation = 0;  // bumped on every page change, so that a page's polls stop when it is left
let flash = "";  // a message for the next page (e.g. "Saved" once a new segment's page opens)

function page() {
  return document.getElementById("page");
}

function fill(node, ...children) {
  node.replaceChildren();
  return append(node, children);
}

function setPage(title, ...children) {
  document.title = `${title} · Export jobs console`;
  fill(page(), ...children);
}

function poll(forGeneration, fn) {
  setTimeout(() => {
    if (forGeneration === generation && session()) fn();
  }, POLL_MS);
}

const routes = [
  [/^#\/jobs\/(\d+)$/, (m) => jobPage(m[1])],
  [/^#\/jobs(?:\?status=([A-Z]+))?$/, (m) => jobsPage(m[1] || "")],
  [/^#\/segments\/new$/, () => segmentPage(null)],
  [/^#\/segments\/([0-9a-f-]+)$/, (m) => segmentPage(m[1])],
  [/^#\/segments$/, () => segmentsPage()],
  [/^#\/schedules$/, () => schedulesPage()],
  [/^#\/privacy$/, () => privacyPage()],
];

function route() {
  generation += 1;
  const signedIn = session();
  document.getElementById("sign-in").hidden = Boolean(signedIn);
  document.getElementById("nav").hidden = !signedIn;
  document.getElementById("sign-out").hidden = !signedIn;
  document.getElementById("who").textContent = signedIn ? `${signedIn.org} / ${signedIn.sandbox}` : "";
  if (!signedIn) {
    page().replaceChildren();
    document.getElementById("token").focus();
    return;
  }
  const hash = location.hash || "#/jobs";
  for (const link of document.querySelectorAll("#nav a")) {
    link.classList.toggle("active", hash.startsWith(`#/${link.dataset.page}`));
  }
  for (const [pattern, show] of routes) {
    const match = hash.match(pattern);
    if (match) {
      show(match);
      return;
    }
  }
  setPage("Not found", el("h1", {}, "Not found"), el("p", {}, "No such page: ", hash));
}

// ------------------------------------------------------------------ sign-in

async function signIn(event) {
  event.preventDefault();
  const form = event.target;
  const who = {token: form.token.value, org: form.org.value.trim(), sandbox: form.sandbox.value.trim()};
  const message = document.getElementById("sign-in-error");
  message.textContent = "";
  try {
    await api("/export/jobs?limit=1", {as: who});  // checks the token, org and sandbox at once
  } catch (err) {
    message.textContent = problemText(err);
    return;
  }
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(who));
  form.token.value = "";
  if (!location.hash) location.hash = "#/jobs";
  route();
}

function signOut(message) {
  sessionStorage.removeItem(SESSION_KEY);
  route();
  document.getElementById("sign-in-error").textContent = message || "";
}

// ------------------------------------------------------------------ jobs

const jobCursors = {status: null, stack: []};  // the cursors of the pages before this one

async function jobsPage(status) {
  const mine = generation;
  if (jobCursors.status !== status) {
    jobCursors.status = status;
    jobCursors.stack = [];
  }
  const offset = jobCursors.stack.length ? jobCursors.stack[jobCursors.stack.length - 1] : null;
  const filter = el("select", {id: "status-filter", "aria-label": "Status",
    on: {change: (e) => { location.hash = e.target.value ? `#/jobs?status=${e.target.value}` : "#/jobs"; }}},
  el("option", {value: ""}, "All statuses"),
  STATUSES.map((s) => el("option", {value: s, selected: s === status}, s)));
  const body = el("div", {id: "jobs"}, el("p", {class: "hint"}, "Loading…"));
  setPage("Jobs", el("div", {class: "bar"}, el("h1", {}, "Export jobs"), filter), body);

  const refresh = async () => {
    const query = new URLSearchParams({limit: String(PAGE_SIZE)});
    if (status) query.set("status", status);
    if (offset) query.set("offset", offset);
    let answer;
    try {
      answer = await api(`/export/jobs?${query}`);
    } catch (err) {
      if (mine === generation) fill(body, errorBox(err));
      return;
    }
    if (mine !== generation) return;
    const rows = answer.records.map((job) => el("tr", {"data-job": job.id},
      cells("Job", el("a", {href: `#/jobs/${job.id}`}, `#${job.id}`)),
      cells("Status", badge(job.status)),
      cells("Stage", job.stage || ""),
      cells("Destination", job.destination ? job.destination.datasetId : job.jobType),
      cells("Profiles", job.metrics && job.metrics.totalExportedProfileCounter !== undefined
        ? job.metrics.totalExportedProfileCounter : ""),
      cells("Created", time(job.creationTime)),
      cells("Updated", time(job.updateTime))));
    const next = answer.link && answer.link.next ? new URL(answer.link.next, location.origin).searchParams.get("offset") : null;
    const pager = el("div", {class: "pager"},
      el("button", {type: "button", id: "previous-page", disabled: !jobCursors.stack.length,
        on: {click: () => { jobCursors.stack.pop(); route(); }}}, "← Newer"),
      el("button", {type: "button", id: "next-page", disabled: !next,
        on: {click: () => { jobCursors.stack.push(next); route(); }}}, "Older →"));
    fill(body,
      table(["Job", "Status", "Stage", "Destination", "Profiles", "Created", "Updated"], rows, "No jobs."),
      pager);
    // Keep watching while a listed job can still change, or while the first page may gain new jobs.
    if (answer.records.some((job) => !FINAL.has(job.status)) || !offset) poll(mine, refresh);
  };
  refresh();
}

function timeline(job) {
  // The record's own times: creation, the claim (totalTime's start once it ran), the export's span
  // (reading, merging, filtering, writing and any write-back) or a segment job's evaluation, the end.
  const total = job.metrics.totalTime || {};
  const claimed = job.status !== "NEW" && total.startTimeInMs !== job.creationTime ? total.startTimeInMs : null;
  const work = job.metrics.profileExportTime || job.metrics.profileSegmentationTime;
  const steps = [["Created", job.creationTime, null]];
  if (claimed) steps.push(["Claimed by a runner", claimed, null]);
  if (claimed && work) steps.push(["Planned", work.startTimeInMs, work.startTimeInMs - claimed]);
  if (work) {
    const what = job.metrics.profileExportTime
      ? (job.evaluationInfo && job.evaluationInfo.segmentation
        ? "Read, merged, evaluated, wrote and wrote back" : "Read, merged, filtered and wrote")
      : "Evaluated and wrote back";
    steps.push([what, work.endTimeInMs, work.totalTimeInMs]);
  }
  if (FINAL.has(job.status) && total.endTimeInMs) steps.push([`Finished: ${job.status}`, total.endTimeInMs, total.totalTimeInMs]);
  else if (!FINAL.has(job.status)) steps.push([job.stage ? `Now: ${job.stage}` : `Now: ${job.status}`, job.updateTime, null]);
  return el("ol", {class: "timeline", id: "timeline"}, steps.map(([label, at, took]) =>
    el("li", {}, el("span", {class: "when"}, time(at)), el("span", {class: "what"}, label),
      took !== null && took !== undefined ? el("span", {class: "took"}, duration(took)) : null)));
}

function barChart(title, counts, id) {
  const entries = Object.entries(counts || {}).sort((a, b) => b[1] - a[1]);
  if (!entries.length) return null;
  const max = Math.max(...entries.map(([, n]) => n), 1);
  const row = 22;
  const width = 420;
  const label = 130;
  const chart = svg("svg", {viewBox: `0 0 ${width} ${entries.length * row}`, width, height: entries.length * row,
    role: "img", class: "chart",
    "aria-label": title});
  entries.forEach(([name, n], i) => {
    const y = i * row;
    const bar = Math.max(((width - label - 60) * n) / max, 1);
    chart.append(
      svg("text", {x: label - 6, y: y + 15, "text-anchor": "end", class: "chart-label"}, name.length > 16 ? `${name.slice(0, 15)}…` : name),
      svg("rect", {x: label, y: y + 4, width: bar, height: row - 8, rx: 2, class: "chart-bar"}, svg("title", {}, `${name}: ${n}`)),
      svg("text", {x: label + bar + 4, y: y + 15, class: "chart-value"}, n));
  });
  return el("figure", {class: "card", id}, el("figcaption", {}, title), chart);
}

function segmentCounts(bySegment) {
  // {segmentNs: {segmentId: rows}} → {segmentId: rows}, named with their namespace when there are several.
  const namespaces = Object.entries(bySegment || {});
  const flat = {};
  for (const [namespace, counts] of namespaces) {
    for (const [segment, rows] of Object.entries(counts)) {
      flat[namespaces.length > 1 ? `${namespace}:${segment}` : segment] = rows;
    }
  }
  return flat;
}

function errorsList(job) {
  if (!job.errors || !job.errors.length) return null;
  return el("section", {class: "card errors", id: "job-errors"}, el("h2", {}, "Errors"),
    job.errors.map((e) => el("div", {class: "job-error"},
      el("p", {}, el("code", {}, e.code), " ", e.msg),
      el("p", {class: "remedy"}, el("strong", {}, "What to do: "),
        REMEDIES[e.code] || "See the error codes in the documentation (docs/reference/errors.md)."))));
}

async function jobPage(id) {
  const mine = generation;
  const holder = el("div", {}, el("p", {class: "hint"}, "Loading…"));
  const message = el("p", {id: "cancel-message", role: "status"});  // outlives the redraws below
  setPage(`Job ${id}`, el("p", {}, el("a", {href: "#/jobs"}, "← Jobs")), holder);
  const refresh = async () => {
    let job;
    try {
      job = await api(`/export/jobs/${id}`);
    } catch (err) {
      if (mine === generation) fill(holder, errorBox(err));
      return;
    }
    if (mine !== generation) return;
    const cancel = ["NEW", "PROCESSING"].includes(job.status)
      ? el("button", {type: "button", id: "cancel", class: "danger", on: {click: async () => {
        try {
          const answer = await api(`/export/jobs/${id}`, {method: "DELETE"});
          message.textContent = answer.message;
        } catch (err) {
          message.textContent = problemText(err);
        }
        refresh();
      }}}, "Cancel job")
      : null;
    const counters = job.metrics || {};
    fill(holder,
      el("div", {class: "bar"}, el("h1", {}, `Job #${job.id}`), el("span", {id: "job-status"}, badge(job.status)), cancel),
      message,
      el("dl", {class: "facts"},
        el("dt", {}, "Stage"), el("dd", {id: "job-stage"}, job.stage || "—"),
        el("dt", {}, "Destination"), el("dd", {}, job.destination ? job.destination.datasetId : "(segment job)"),
        el("dt", {}, "Profiles exported"), el("dd", {}, counters.totalExportedProfileCounter ?? "—"),
        el("dt", {}, "Request"), el("dd", {}, job.requestId)),
      errorsList(job),
      (job.warnings || []).length ? el("section", {class: "card"}, el("h2", {}, "Warnings"),
        job.warnings.map((w) => el("p", {}, el("code", {}, w.code), ` at ${w.path}: ${w.msg}`))) : null,
      el("section", {class: "card"}, el("h2", {}, "Timeline"), timeline(job)),
      el("div", {class: "charts"},
        barChart("Exported profiles per namespace", counters.exportedProfileByNamespaceCounter, "chart-namespaces"),
        barChart("Rows per segment", segmentCounts(counters.exportedProfileBySegmentCounter), "chart-segments"),
        barChart("Segmented profiles per segment", counters.segmentedProfileCounter, "chart-segmented")),
      el("section", {class: "card"}, el("h2", {}, "Record"), el("pre", {class: "record", id: "job-record"}, JSON.stringify(job, null, 2))));
    if (!FINAL.has(job.status)) poll(mine, refresh);
  };
  refresh();
}

// ------------------------------------------------------------------ segments

async function segmentsPage() {
  const mine = generation;
  const body = el("div", {}, el("p", {class: "hint"}, "Loading…"));
  setPage("Segments", el("div", {class: "bar"}, el("h1", {}, "Segment definitions"),
    el("a", {href: "#/segments/new", class: "button", id: "new-segment"}, "New segment")), body);
  let answer;
  try {
    answer = await api("/segment/definitions?limit=100");
  } catch (err) {
    fill(body, errorBox(err));
    return;
  }
  if (mine !== generation) return;
  fill(body, table(["Name", "Expression", "Merge policy", "Updated"], answer.segments.map((s) =>
    el("tr", {"data-segment": s.id},
      cells("Name", el("a", {href: `#/segments/${s.id}`, class: "segment-name"}, s.name)),
      cells("Expression", el("code", {}, s.expression.value)),
      cells("Merge policy", s.mergePolicyId),
      cells("Updated", time(s.updateTime)))), "No segment definitions."));
}

function markedExpression(text, problem) {
  // The expression with the problem's characters marked, and a caret under its column.
  const end = Math.min(problem.offset + problem.length, text.length);
  const view = el("pre", {class: "pql-view", id: "pql-marker"},
    text.slice(0, problem.offset),
    el("mark", {class: "pql-error"}, text.slice(problem.offset, end) || " "),
    text.slice(end));
  return view;
}

async function segmentPage(id) {
  const mine = generation;
  let current = null;
  if (id) {
    try {
      current = await api(`/segment/definitions/${encodeURIComponent(id)}`);
    } catch (err) {
      setPage("Segment", errorBox(err));
      return;
    }
    if (mine !== generation) return;
  }
  const name = el("input", {id: "segment-name", required: true, value: current ? current.name : ""});
  const description = el("input", {id: "segment-description", value: current && current.description ? current.description : ""});
  const expression = el("textarea", {id: "pql", rows: 6, spellcheck: "false", required: true});
  expression.value = current ? current.expression.value : "";
  const verdict = el("div", {id: "pql-verdict", role: "status"});
  const saved = el("p", {id: "save-message", role: "status"}, flash);
  flash = "";
  const estimate = el("div", {id: "estimate", role: "status"});
  let checking = 0;

  const validate = async () => {
    const mineCheck = ++checking;
    const text = expression.value;
    if (!text.trim()) {
      verdict.replaceChildren();
      return;
    }
    const body = {expression: {type: "PQL", format: "pql/text", value: text}};
    if (current) Object.assign(body, {id, mergePolicyId: current.mergePolicyId});
    try {
      const answer = await api("/segment/definitions/validate", {method: "POST", body});
      if (mineCheck !== checking) return;
      if (answer.valid) {
        fill(verdict, el("p", {class: "ok"}, "✓ The expression is valid."));
      } else {
        const problem = answer.errors[0];
        fill(verdict,
          el("p", {class: "error", id: "pql-error"},
            el("span", {class: "position", id: "pql-position"}, `Line ${problem.line}, column ${problem.column}`), ": ",
            problem.message),
          markedExpression(text, problem));
      }
    } catch (err) {
      if (mineCheck === checking) fill(verdict, errorBox(err));
    }
  };
  let timer = null;
  expression.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(validate, 300);
  });

  const save = async (event) => {
    event.preventDefault();
    const body = {name: name.value, description: description.value || null,
      expression: {type: "PQL", format: "pql/text", value: expression.value}};
    try {
      const answer = id
        ? await api(`/segment/definitions/${encodeURIComponent(id)}`, {method: "PATCH", body})
        : await api("/segment/definitions", {method: "POST", body: {...body, schema: {name: "_xdm.context.profile"}}});
      saved.textContent = `Saved at ${time(answer.updateTime)}.`;
      if (!id) {
        flash = saved.textContent;
        location.hash = `#/segments/${answer.id}`;
      }
    } catch (err) {
      saved.textContent = problemText(err);
    }
  };

  const runEstimate = async () => {
    fill(estimate, el("p", {class: "hint"}, "Estimating on a sample…"));
    let preview;
    try {
      preview = await api("/preview", {method: "POST", body: {predicateExpression: expression.value}});
    } catch (err) {
      fill(estimate, errorBox(err));
      return;
    }
    const check = async () => {
      if (mine !== generation) return;
      let answer;
      try {
        answer = await api(`/estimate/${preview.previewId}`);
      } catch (err) {
        fill(estimate, errorBox(err));
        return;
      }
      if (answer.state === "FAILED") {
        fill(estimate, el("p", {class: "error"}, `The estimate failed: ${answer.error ? answer.error.msg : "see the server's log"}`));
      } else if (answer.estimatedSize !== undefined) {
        const interval = answer.confidenceInterval;
        fill(estimate, el("p", {class: "ok"},
          `About ${answer.estimatedSize} profiles (${interval.low}–${interval.high} at ${interval.level * 100}%), ` +
          `from ${answer.profilesReadSoFar} sampled profiles.`));
      } else {
        // The server's preview worker computes it (not a server started with --no-runner).
        fill(estimate, el("p", {class: "hint"}, `Estimate ${answer.state.toLowerCase()}: waiting for the server's preview worker…`));
        poll(mine, check);
      }
    };
    check();
  };

  setPage(current ? `Segment ${current.name}` : "New segment",
    el("p", {}, el("a", {href: "#/segments"}, "← Segments")),
    el("h1", {id: "segment-title"}, current ? current.name : "New segment"),
    el("form", {class: "card editor", id: "segment-form", on: {submit: save}},
      el("label", {}, "Name ", name),
      el("label", {}, "Description ", description),
      el("label", {}, "PQL expression ", expression),
      verdict,
      el("div", {class: "actions"},
        el("button", {type: "submit", id: "save-segment"}, "Save"),
        el("button", {type: "button", id: "estimate-segment", on: {click: runEstimate}}, "Estimate")),
      saved, estimate),
    current ? el("p", {class: "hint"}, "Id ", el("code", {}, current.id)) : null);
  if (expression.value) validate();
}

// ------------------------------------------------------------------ schedules and privacy

async function schedulesPage() {
  const mine = generation;
  const body = el("div", {}, el("p", {class: "hint"}, "Loading…"));
  setPage("Schedules", el("h1", {}, "Schedules"), body);
  const refresh = async () => {
    let answer;
    try {
      answer = await api("/config/schedules?limit=100");
    } catch (err) {
      fill(body, errorBox(err));
      return;
    }
    // Each active schedule's next run, asked for all at once; a schedule whose answer fails shows none.
    const next = await Promise.all(answer.records.map((s) => (s.state === "active"
      ? api(`/config/schedules/${encodeURIComponent(s.id)}/next-runs?count=1`).then((r) => r.nextRuns[0] || "", () => "")
      : Promise.resolve(""))));
    if (mine !== generation) return;
    const toggle = (s) => el("button", {type: "button", class: "toggle", on: {click: async () => {
      const state = s.state === "active" ? "inactive" : "active";
      try {
        await api(`/config/schedules/${encodeURIComponent(s.id)}`, {method: "PATCH", body: [{op: "replace", path: "/state", value: state}]});
      } catch (err) {
        body.prepend(errorBox(err));
        return;
      }
      refresh();
    }}}, s.state === "active" ? "Pause" : "Resume");
    fill(body, table(["Name", "Type", "When", "State", "Next run", "Last run", "Last job", ""], answer.records.map((s, i) =>
      el("tr", {"data-schedule": s.id},
        cells("Name", s.name || s.id),
        cells("Type", s.type),
        cells("When", el("code", {}, s.schedule || s.cron)),
        cells("State", s.state),
        cells("Next run", next[i] ? next[i].replace("T", " ") : "—"),
        cells("Last run", time(s.lastSlot)),
        cells("Last job", s.lastJobId ? el("a", {href: `#/jobs/${s.lastJobId}`}, `#${s.lastJobId}`) : ""),
        cells("", toggle(s)))), "No schedules."));
  };
  refresh();
}

async function privacyPage() {
  const mine = generation;
  const body = el("div", {}, el("p", {class: "hint"}, "Loading…"));
  setPage("Privacy", el("h1", {}, "Privacy requests"), body);
  let answer;
  try {
    answer = await api("/privacy/jobs?limit=100");
  } catch (err) {
    fill(body, errorBox(err));
    return;
  }
  if (mine !== generation) return;
  fill(body, table(["Job", "Regulation", "User", "Actions", "Status", "Created"], answer.jobs.map((j) =>
    el("tr", {},
      cells("Job", el("code", {}, j.jobId)),
      cells("Regulation", j.regulation),
      cells("User", j.user ? j.user.key : ""),
      cells("Actions", j.user && j.user.action ? j.user.action.join(", ") : ""),
      cells("Status", j.status),
      cells("Created", time(j.creationTime)))), "No privacy requests."));
}

// ------------------------------------------------------------------ start

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("sign-in").addEventListener("submit", signIn);
  document.getElementById("sign-out").addEventListener("click", () => signOut());
  window.addEventListener("hashchange", route);
  route();
});
