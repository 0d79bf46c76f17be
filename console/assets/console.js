// Clokio admin console: small enhancements over pages that work without it.
// No inline script anywhere (the CSP forbids it); everything here hangs off data attributes.
(function () {
  "use strict";

  // A page restored from the back/forward cache may show data of a session that has ended.
  window.addEventListener("pageshow", function (e) {
    if (e.persisted) { window.location.reload(); }
  });

  var csrf = document.body ? document.body.getAttribute("data-csrf") : null;

  // Copy buttons for secrets shown once.
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source || !navigator.clipboard) { return; }
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(source.textContent.trim()).then(function () {
        button.textContent = "Copied";
        setTimeout(function () { button.textContent = "Copy"; }, 2000);
      }, function () {
        button.textContent = "Select and copy";
      });
    });
  });

  // Attendance > Today: rows replaced as Server-Sent Events arrive; hours of working
  // employees keep moving between events.
  var board = document.querySelector("table[data-live]");
  if (board) {
    var body = board.tBodies[0];
    var state = document.getElementById("live-state");
    var stamp = function (row) { row.setAttribute("data-at", String(Date.now())); };
    var tally = function () {
      ["working", "on_break", "clocked_out", "not_in"].forEach(function (status) {
        var cell = document.querySelector('[data-tally="' + status + '"]');
        if (cell) {
          cell.textContent = String(body.querySelectorAll('tr[data-status="' + status + '"]').length);
        }
      });
    };
    var tick = function () {
      body.querySelectorAll('tr[data-status="working"]').forEach(function (row) {
        var net = parseFloat(row.getAttribute("data-net") || "0");
        var at = parseInt(row.getAttribute("data-at") || String(Date.now()), 10);
        var cell = row.querySelector(".hours");
        if (cell) { cell.textContent = (net + (Date.now() - at) / 3600000).toFixed(2); }
      });
    };
    Array.prototype.forEach.call(body.rows, stamp);
    setInterval(tick, 30000);

    var opened = false;
    var source = new EventSource(board.getAttribute("data-live"));
    source.addEventListener("open", function () {
      if (opened) { window.location.reload(); return; }
      opened = true;
      board.setAttribute("data-connected", "true");
    });
    source.addEventListener("error", function () {
      board.setAttribute("data-connected", "false");
      if (state) {
        state.textContent = source.readyState === EventSource.CLOSED
          ? "Live updates stopped. Reload the page to see the latest."
          : "Live updates paused: reconnecting…";
        state.classList.add("warning-text");
      }
    });
    source.addEventListener("row", function (e) {
      var update = JSON.parse(e.data);
      var template = document.createElement("template");
      template.innerHTML = update.html.trim();
      var row = template.content.firstElementChild;
      if (!row) { return; }
      stamp(row);
      var old = body.querySelector('tr[data-code="' + CSS.escape(update.code) + '"]');
      if (old) { old.replaceWith(row); } else { body.appendChild(row); }
      row.classList.add("changed");
      setTimeout(function () { row.classList.remove("changed"); }, 2000);
      tally();
      if (state) {
        state.textContent = "Updated " + new Date().toLocaleTimeString() + ": " +
          (row.querySelector(".name") || row).textContent.trim() + " is " +
          (row.querySelector(".badge") || row).textContent.trim().toLowerCase() + ".";
      }
    });
    source.addEventListener("reload", function () { window.location.reload(); });
    source.addEventListener("signed-out", function () {
      source.close();
      window.location.reload();
    });
  }

  // Webhook form: a live preview of what a sample clock-in would send.
  var form = document.getElementById("webhook-form");
  if (form && csrf) {
    var template = form.querySelector("#template");
    var platform = form.querySelector("#platform");
    var text = document.getElementById("preview-text");
    var bodyOut = document.getElementById("preview-body");
    var timer = null;
    var refresh = function () {
      var data = new URLSearchParams();
      data.set("platform", platform.value);
      data.set("template", template.value);
      fetch("/webhooks/preview", {
        method: "POST",
        headers: { "X-CSRF-Token": csrf, "Content-Type": "application/x-www-form-urlencoded" },
        body: data.toString(),
        credentials: "same-origin"
      }).then(function (res) {
        return res.json().then(function (json) { return { ok: res.ok, json: json }; });
      }).then(function (r) {
        if (r.ok) {
          text.classList.remove("error");
          text.textContent = r.json.text || "";
          bodyOut.textContent = r.json.body || "";
        } else {
          text.classList.add("error");
          text.textContent = r.json.error || "The preview is not available.";
          bodyOut.textContent = "";
        }
      }).catch(function () {
        text.classList.add("error");
        text.textContent = "The preview is not available right now.";
      });
    };
    var later = function () {
      if (timer) { clearTimeout(timer); }
      timer = setTimeout(refresh, 250);
    };
    template.addEventListener("input", later);
    platform.addEventListener("change", later);
    refresh();
  }
})();
