// The review desk's keys. Progressive: every page works without this file (links and forms).
// j/k move, Enter opens or confirms, 1-9 pick a label, / filters labels, n note, s skip,
// u queue, ? the keys.
"use strict";

(function () {
  const typing = (el) =>
    el && (el.isContentEditable || el.tagName === "TEXTAREA" || el.tagName === "SELECT" ||
      (el.tagName === "INPUT" && !["radio", "checkbox", "button", "submit"].includes(el.type)));

  const dialog = document.getElementById("keys");
  const toggleKeys = () => {
    if (!dialog) return;
    if (dialog.open) dialog.close(); else dialog.showModal();
  };
  document.querySelectorAll("[data-keys-open]").forEach((b) => b.addEventListener("click", toggleKeys));

  // One submission per form: a second Enter does not send the answer twice.
  document.querySelectorAll("form[method=post]").forEach((form) =>
    form.addEventListener("submit", () => {
      setTimeout(() => form.querySelectorAll("button").forEach((b) => { b.disabled = true; }), 0);
    }));

  const page = document.body.dataset.page;
  const handlers = { queue: queueKeys(), ticket: ticketKeys() }[page] || {};

  document.addEventListener("keydown", (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (ev.key === "?" && !typing(ev.target)) { ev.preventDefault(); toggleKeys(); return; }
    if (dialog && dialog.open) return;
    const special = handlers.inField && handlers.inField(ev);
    if (special || typing(ev.target)) return;
    const handle = handlers[ev.key];
    if (handle && handle(ev) !== false) ev.preventDefault();
  });

  function follow(key) {
    const link = document.querySelector(`a[data-key="${key}"]`);
    if (link) { window.location.href = link.href; return true; }
    return false;
  }

  function queueKeys() {
    const rows = Array.from(document.querySelectorAll("#queue tbody tr"));
    if (!rows.length) return {};
    let at = 0;
    const select = (n) => {
      rows[at].classList.remove("selected");
      at = Math.max(0, Math.min(rows.length - 1, n));
      rows[at].classList.add("selected");
      rows[at].scrollIntoView({ block: "nearest" });
    };
    select(0);
    rows.forEach((row, n) => row.addEventListener("click", (ev) => {
      if (ev.target.tagName !== "A") { select(n); window.location.href = row.dataset.href; }
    }));
    return {
      j: () => select(at + 1),
      k: () => select(at - 1),
      Enter: (ev) => {
        if (ev.target.closest && ev.target.closest("a, button")) return false;
        window.location.href = rows[at].dataset.href;
      },
    };
  }

  function ticketKeys() {
    const form = document.getElementById("answer");
    const skip = document.getElementById("skip");
    const filter = document.querySelector("[data-label-filter]");
    const note = document.querySelector("[data-note]");
    const choices = Array.from(document.querySelectorAll("#answer .choice"));
    const visible = () => choices.filter((c) => !c.hidden);
    const number = () => {
      choices.forEach((c) => { c.querySelector(".digit").textContent = ""; });
      visible().slice(0, 9).forEach((c, n) => { c.querySelector(".digit").textContent = String(n + 1); });
    };
    const pick = (n) => {
      const c = visible()[n];
      if (!c) return;
      const radio = c.querySelector("input");
      radio.checked = true;
      radio.focus();
    };
    const confirm = () => {
      if (!form) return;
      if (form.querySelector("input[name=label]:checked")) form.requestSubmit();
      else form.reportValidity();
    };
    if (filter) {
      filter.addEventListener("input", () => {
        const q = filter.value.trim().toLowerCase();
        choices.forEach((c) => { c.hidden = q !== "" && !c.dataset.label.toLowerCase().includes(q); });
        number();
      });
    }
    const keys = {
      j: () => follow("j"),
      k: () => follow("k"),
      u: () => follow("u"),
      n: () => { if (note) note.focus(); },
      s: () => { if (skip) skip.requestSubmit(); },
      "/": () => { if (filter) filter.focus(); },
      Enter: (ev) => {
        if (ev.target.closest && ev.target.closest("a, button")) return false;
        confirm();
      },
      inField: (ev) => {
        if (ev.target === filter && ev.key === "Enter") {
          ev.preventDefault();
          if (!visible().some((c) => c.querySelector("input").checked)) pick(0);
          filter.blur();
          return true;
        }
        if (typing(ev.target) && ev.key === "Escape") { ev.target.blur(); return true; }
        return false;
      },
    };
    for (let d = 1; d <= 9; d++) keys[String(d)] = () => pick(d - 1);
    return keys;
  }
})();
