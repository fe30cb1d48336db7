// Agent workspace: the contact's card arrives over server-sent events and is filled in place;
// the wrap-up countdown runs here. Every action is a plain form post (works without this file).
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const desk = document.querySelector("[data-desk]");
  if (!desk) return;
  const card = document.getElementById("card");
  const scriptBox = document.getElementById("script-box");
  const state = document.getElementById("agent-state");
  const ended = document.getElementById("call-ended");
  const noCall = document.getElementById("no-call");
  const wrapLeft = document.getElementById("wrap-left");
  const attempt = card.querySelector("input[name=attempt_id]");
  // Transfer: who can take the call changes by the second; the list is asked for again when a
  // call arrives and whenever the agent opens it.
  const transferForm = card.querySelector("form.transfer");
  const targets = transferForm.querySelector("select[name=target]");
  const noTargets = transferForm.querySelector("[data-transfer-empty]");
  const refreshTargets = async () => {
    const reply = await fetch("/workspace/transfer-targets", { headers: { Accept: "application/json" } });
    if (!reply.ok) return;
    const list = await reply.json();
    const chosen = targets.value;
    targets.replaceChildren(...list.map((t) => new Option(t.label, t.value, false, t.value === chosen)));
    noTargets.hidden = list.length > 0;
    transferForm.querySelector("button").disabled = list.length === 0;
  };
  targets.addEventListener("focus", refreshTargets);
  targets.addEventListener("mousedown", refreshTargets);
  const contactField = document.querySelector("input[name=contact_id]");

  // Callback times are typed in the agent's local time; the server needs its UTC offset.
  for (const input of document.querySelectorAll("input[name=tz_offset]")) {
    input.value = String(new Date().getTimezoneOffset());
  }

  const readyButton = document.querySelector("form[action='/workspace/ready'] button");
  const pauseButton = document.querySelector("form[action='/workspace/pause'] button");
  // The state as words and colour, and what the agent may press in it.
  const show = (name) => {
    state.textContent = desk.dataset[`label${name[0].toUpperCase()}${name.slice(1)}`];
    state.className = `state state-${name}`;
    readyButton.disabled = name === "free" || name === "talking";
    pauseButton.disabled = name === "talking";
  };

  let timer = 0;
  const countdown = (seconds) => {
    clearInterval(timer);
    let left = Math.ceil(seconds);
    const show = () => {
      if (left <= 0) {
        clearInterval(timer);
        wrapLeft.textContent = "";
        show("free");
        return;
      }
      wrapLeft.textContent = `${left} s`;
      left -= 1;
    };
    show();
    timer = setInterval(show, 1000);
  };
  if (desk.dataset.wrapLeft) countdown(parseFloat(desk.dataset.wrapLeft));

  const fill = (data) => {
    for (const el of card.querySelectorAll("[data-field]")) {
      const value = data[el.dataset.field] || "";
      el.textContent = value;
      const row = el.closest("[data-row]");
      if (row) row.hidden = !value;
    }
    document.getElementById("card-name").textContent = data.name || data.phone;
    attempt.value = data.attempt_id;
    // An inbound caller's call has no campaign outcome to choose: Ready ends the wrap-up.
    card.querySelector("form.dispositions").hidden = Boolean(data.queue);
    transferForm.hidden = Boolean(data.queue);  // a campaign call can be passed on
    if (contactField) contactField.value = data.contact_id || "";
    scriptBox.querySelector("[data-field=script]").textContent = data.script || "";
    scriptBox.hidden = !data.script;
    ended.hidden = true;
    noCall.hidden = true;
    card.hidden = false;
    for (const flash of document.querySelectorAll("main > .ok, main > .error")) flash.hidden = true;
    show("talking");
    clearInterval(timer);
    wrapLeft.textContent = "";
    card.focus();
  };

  const events = new EventSource("/workspace/events");
  const callEnded = (wrapSeconds) => {
    ended.hidden = false;
    transferForm.hidden = true;  // nothing left to pass on
    show("wrapping");
    if (!Number.isNaN(wrapSeconds)) countdown(wrapSeconds);
  };
  events.addEventListener("offer", (e) => {
    const push = JSON.parse(e.data);
    if (push.card.attempt_id === attempt.value && !card.hidden) return; // already shown
    fill(push.card);
    if (push.ended) callEnded(NaN);
    refreshTargets();
  });
  events.addEventListener("ended", (e) => {
    if (JSON.parse(e.data).attempt_id !== attempt.value) return;
    callEnded(parseFloat(desk.dataset.wrapS || ""));
  });
  events.addEventListener("disposed", (e) => {
    if (JSON.parse(e.data).attempt_id !== attempt.value) return;
    card.hidden = true;
    scriptBox.hidden = true;
    noCall.hidden = false;
  });
});
