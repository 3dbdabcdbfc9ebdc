"""The billing page a browser opens: ``GET /billing`` (Usage this period, View breakdown, Buy
credits — a static page that calls the JSON API with the member token the person pastes, kept in
``sessionStorage`` only), and ``GET /billing/success``, where Stripe Checkout returns the buyer:
it asks Stripe about the session and grants at once if it is paid, so credits land at whichever
comes first, this redirect or the webhook.
"""

from __future__ import annotations

from html import escape
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from spojit_engine.display import credits_text
from spojit_engine.errors import SpojitError, http_status
from spojit_engine.web.api import CLIENT_ERRORS
from spojit_engine.web.auth import EngineDep

router = APIRouter(tags=["billing page"], responses=CLIENT_ERRORS)


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    html = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(title)} · spojit</title><style>{_STYLE}</style></head>"
        f"<body><main><h1>{escape(title)}</h1>{body}</main></body></html>"
    )
    return HTMLResponse(html, status_code=status)


@router.get("/billing/success", response_class=HTMLResponse, summary="Stripe Checkout returns here")
async def checkout_success(
    engine: EngineDep,
    session_id: Annotated[str, Query(max_length=255)],
) -> HTMLResponse:
    try:
        order = await run_in_threadpool(engine.fulfil_checkout, session_id)
    except SpojitError as exc:
        return _page("Payment not recorded", f"<p>{escape(str(exc))}</p>", http_status(exc))
    if order.state in ("paid", "refunded", "disputed"):
        text = f"{credits_text(order.credits)} credits were added to your workspace."
        return _page("Payment received", f"<p>{escape(text)}</p>{_BACK}")
    text = (
        "Stripe is still processing the payment; the credits land as soon as it clears "
        f"(order {order.id} is {order.state})."
    )
    return _page("Payment processing", f"<p>{escape(text)}</p>{_BACK}")


@router.get("/billing", response_class=HTMLResponse, summary="The billing page")
def billing_page() -> HTMLResponse:
    return _page("Billing", _BILLING_BODY)


_BACK = "<p><a href='/billing'>Back to billing</a></p>"
_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2rem;color:#222}main{max-width:44rem}"
    "table{border-collapse:collapse}td,th{padding:.25rem .75rem;text-align:left}"
    "td.n{text-align:right}section{margin:1.5rem 0}button{margin:.25rem}"
)
_BILLING_BODY = """
<section id="login"><label>Member token <input id="token" type="password" size="40"></label>
<button id="use">Show billing</button></section>
<section id="card" hidden><h2>Usage this period</h2><table id="usage"></table>
<button id="show-breakdown">View breakdown</button><table id="breakdown"></table></section>
<section id="buy" hidden><h2>Buy credits</h2><p>Larger packs cost less per credit.</p>
<div id="packs"></div><p id="message"></p></section>
<script>
const $ = (id) => document.getElementById(id);
const token = () => sessionStorage.getItem("spojit-token") || "";
async function api(path, options = {}) {
  const headers = {"Authorization": "Bearer " + token(), "Content-Type": "application/json"};
  const response = await fetch(path, {...options, headers});
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}
function rows(table, pairs) {
  table.replaceChildren(...pairs.map(([k, v]) => {
    const tr = document.createElement("tr");
    const th = document.createElement("th"); th.textContent = k;
    const td = document.createElement("td"); td.textContent = v; td.className = "n";
    tr.append(th, td); return tr;
  }));
}
async function show() {
  try {
    const u = await api("/api/v1/usage");
    rows($("usage"), [["Credits consumed", u.consumed], ["Credits remaining", u.remaining],
      ["from allowance", u.allowance_remaining], ["from top-ups", u.topup_remaining],
      ["on hold", u.held], ["Resets on", u.resets_at.slice(0, 10)]]);
    $("card").hidden = false; $("buy").hidden = false;
    const packs = await api("/api/v1/packs");
    $("packs").replaceChildren(...packs.map((p) => {
      const b = document.createElement("button");
      b.textContent = `${p.name}: ${(p.price_cents / 100).toFixed(2)} ${p.currency.toUpperCase()}`;
      b.onclick = async () => {
        try {
          const body = JSON.stringify({pack: p.id});
          const s = await api("/api/v1/topups", {method: "POST", body});
          window.location = s.checkout_url;
        } catch (e) { $("message").textContent = e.message; }
      };
      return b;
    }));
  } catch (e) { $("message").textContent = e.message; $("buy").hidden = false; }
}
$("use").onclick = () => {
  sessionStorage.setItem("spojit-token", $("token").value.trim()); show();
};
$("show-breakdown").onclick = async () => {
  const b = await api("/api/v1/usage/breakdown");
  rows($("breakdown"), b.rows.map((r) =>
    [`${r.workflow || "-"} / ${r.node_type || "-"}${r.test_run ? " (test)" : ""}`, r.credits]));
};
if (new URLSearchParams(location.search).get("checkout") === "cancelled") {
  $("message").textContent = "Checkout cancelled; nothing was charged."; $("buy").hidden = false;
}
if (token()) show();
</script>
"""
