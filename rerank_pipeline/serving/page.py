"""The search page: one self-contained HTML file. Clicking a result opens it and logs the click; going back to the
results logs the dwell time, from which the quick-back rate is computed."""

SEARCH_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>rerank-pipeline search</title>
<style>
 body{font-family:system-ui,sans-serif;max-width:760px;margin:2em auto;padding:0 1em;color:#222}
 form{display:flex;gap:.5em} input{flex:1;font-size:1.1em;padding:.4em} button{font-size:1.1em}
 ol{padding-left:1.5em} li{margin:.6em 0} a{color:#1a0dab;text-decoration:none;font-size:1.05em}
 .meta{color:#777;font-size:.8em} #doc{display:none;border:1px solid #ccc;padding:1em;margin-top:1em}
</style></head><body>
<h1>rerank-pipeline</h1>
<form id="search-form"><input id="q" name="q" placeholder="patagonia japan" autofocus><button id="go">Search</button></form>
<p class="meta" id="status"></p>
<ol id="results"></ol>
<div id="doc"><p id="doc-text"></p><button id="back">Back to results</button></div>
<script>
const session = localStorage.getItem("rerank-session") || crypto.randomUUID();
localStorage.setItem("rerank-session", session);
let current = null, opened = null;
function post(path, body) {
  return fetch(path, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body), keepalive: true});
}
document.getElementById("search-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const q = document.getElementById("q").value;
  const r = await fetch(`/search?k=10&session=${encodeURIComponent(session)}&q=${encodeURIComponent(q)}`);
  const data = await r.json();
  const list = document.getElementById("results");
  list.innerHTML = "";
  if (!r.ok) { document.getElementById("status").textContent = data.detail; return; }
  current = data;
  document.getElementById("status").textContent =
    `${data.results.length} results, ${Object.entries(data.timings_ms).map(([s, v]) => `${s} ${v.toFixed(1)} ms`).join(", ")}`;
  for (const hit of data.results) {
    const li = document.createElement("li");
    const a = document.createElement("a");
    a.href = "#"; a.className = "result"; a.dataset.id = hit.id; a.textContent = hit.text;
    a.addEventListener("click", async (ev) => {
      ev.preventDefault();
      await post("/click", {request_id: current.request_id, id: hit.id});
      opened = {id: hit.id, at: performance.now()};
      document.getElementById("doc-text").textContent = hit.text;
      document.getElementById("results").style.display = "none";
      document.getElementById("doc").style.display = "block";
    });
    const meta = document.createElement("div");
    meta.className = "meta"; meta.textContent = `${hit.id} · ${hit.score.toFixed(4)}`;
    li.append(a, meta); list.append(li);
  }
});
document.getElementById("back").addEventListener("click", async () => {
  if (opened) await post("/return", {request_id: current.request_id, id: opened.id, dwell_s: (performance.now() - opened.at) / 1000});
  opened = null;
  document.getElementById("doc").style.display = "none";
  document.getElementById("results").style.display = "block";
});
</script></body></html>
"""
