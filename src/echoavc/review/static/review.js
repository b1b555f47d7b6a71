/* echoavc review: sorting, filters, keyboard, frame players, box drawing. No libraries; all requests are
   JSON to the same server, which saves each answer at once. */
(function () {
  "use strict";
  function $(sel, root) { return (root || document).querySelector(sel); }
  function $$(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }
  function say(text, bad) { var m = $("#msg"); if (m) { m.textContent = text; m.className = bad ? "msg bad" : "msg"; } }
  function post(url, body) {
    return fetch(url, {method: "POST", headers: {"Content-Type": "application/json"}, credentials: "same-origin",
                       body: JSON.stringify(body || {})})
      .then(function (r) { return r.json().then(function (j) { if (!r.ok) throw new Error(j.error || r.status); return j; }); });
  }
  function typing(ev) { var t = ev.target.tagName; return t === "INPUT" || t === "SELECT" || t === "TEXTAREA"; }
  function recordExam(examId, decision, grade) {
    return post("/api/exam/" + encodeURIComponent(examId), {decision: decision, grade: grade === undefined ? null : grade})
      .then(function (j) { say("saved: " + j.decision + (j.grade !== null ? ", grade " + j.grade : "") + " (" + j.status + ")"); return j; })
      .catch(function (e) { say("not saved: " + e.message, true); throw e; });
  }
  function undo() {
    return post("/api/undo").then(function (j) { say(j.undone ? "undone" : "nothing to undo"); return j; })
      .catch(function (e) { say("undo failed: " + e.message, true); throw e; });
  }

  /* ---------------------------------------------------------------- the exam list */
  function listPage() {
    var table = $("#exams"), body = table.tBodies[0];
    var rows = function () { return $$("tr.exam-row", body).filter(function (r) { return !r.hidden; }); };
    var sel = 0;
    function select(i) {
      var rs = rows(); if (!rs.length) return;
      sel = Math.max(0, Math.min(i, rs.length - 1));
      $$("tr.exam-row.selected", body).forEach(function (r) { r.classList.remove("selected"); });
      rs[sel].classList.add("selected"); rs[sel].scrollIntoView({block: "nearest"});
      sessionStorage.setItem("echoavc-selected", rs[sel].dataset.exam);
    }
    function keyOf(td) {
      var v = td ? td.getAttribute("data-sort") : "";
      return {empty: v === "" || v === null, num: v !== "" && isFinite(v) ? parseFloat(v) : null, text: (v || "").toLowerCase()};
    }
    function sortBy(col, asc) {
      var ths = table.tHead.rows[0].cells;
      $$("th", table.tHead).forEach(function (o) { o.removeAttribute("aria-sort"); });
      ths[col].setAttribute("aria-sort", asc ? "ascending" : "descending");
      var list = $$("tr.exam-row", body).map(function (r, i) { return {r: r, k: keyOf(r.cells[col]), i: i}; });
      list.sort(function (a, b) {
        if (a.k.empty || b.k.empty) return a.k.empty === b.k.empty ? a.i - b.i : (a.k.empty ? 1 : -1);
        var c = (a.k.num !== null && b.k.num !== null) ? a.k.num - b.k.num : (a.k.text < b.k.text ? -1 : a.k.text > b.k.text ? 1 : 0);
        return (asc ? c : -c) || a.i - b.i;
      });
      list.forEach(function (x) { body.appendChild(x.r); });
      sessionStorage.setItem("echoavc-sort", JSON.stringify([col, asc]));
      select(0);
    }
    $$("th", table.tHead).forEach(function (th, col) {
      if (th.classList.contains("nosort")) return;
      th.title = "Click to sort"; th.tabIndex = 0;
      th.addEventListener("click", function () { sortBy(col, th.getAttribute("aria-sort") !== "ascending"); });
    });
    function filter() {
      var st = $("#f-status").value, dec = $("#f-decision").value, txt = $("#f-text").value.trim().toLowerCase();
      $$("tr.exam-row", body).forEach(function (r) {
        r.hidden = (st && r.dataset.status !== st) || (dec && r.dataset.decision !== dec) ||
                   (txt && r.dataset.exam.toLowerCase().indexOf(txt) < 0);
      });
      select(0);
    }
    ["#f-status", "#f-decision", "#f-text"].forEach(function (s) { $(s).addEventListener("input", filter); });
    $("#filters").addEventListener("submit", function (ev) { ev.preventDefault(); });
    var saved = sessionStorage.getItem("echoavc-sort");
    if (saved) { try { var p = JSON.parse(saved); sortBy(p[0], p[1]); } catch (e) { /* ignore a stale value */ } }
    var keep = sessionStorage.getItem("echoavc-selected"), start = 0;
    rows().forEach(function (r, i) { if (r.dataset.exam === keep) start = i; });
    select(start);
    $$("tr.exam-row", body).forEach(function (r) {
      r.addEventListener("click", function (ev) { if (ev.target.tagName !== "A" && ev.target.tagName !== "IMG") select(rows().indexOf(r)); });
    });
    document.addEventListener("keydown", function (ev) {
      if (typing(ev) || ev.ctrlKey || ev.metaKey || ev.altKey) return;
      var r = rows()[sel]; var k = ev.key;
      if (k === "j" || k === "ArrowDown") { select(sel + 1); ev.preventDefault(); }
      else if (k === "k" || k === "ArrowUp") { select(sel - 1); ev.preventDefault(); }
      else if (k === "Enter" && r) { location.href = r.dataset.url; }
      else if ((k === "c" || k === "y" || k === "n") && r) {
        var d = k === "y" ? "calcified" : k === "n" ? "not calcified" : r.dataset.modelDecision;
        if (!d || d === "undetermined") { say("nothing to confirm: give y or n", true); return; }
        recordExam(r.dataset.exam, d).then(function () { location.reload(); });
      } else if (k === "u") { undo().then(function () { location.reload(); }); }
    });
  }

  /* ---------------------------------------------------------------- the exam page */
  function Player(el, size) {
    var data = JSON.parse(el.dataset.clip), frames = data.frames, self = this;
    var img = $("img.frame", el), svg = $("svg.boxes", el), seek = $(".seek", el), info = $(".frame-info", el);
    var heat = $(".heat", el), viewSel = $(".view-select", el), play = $(".play", el);
    var rModel = $(".model-box", svg), rReview = $(".review-box", svg), rDraft = $(".draft-box", svg);
    var cursor = $(".cursor", el), xs = cursor ? JSON.parse(cursor.dataset.xs) : {};
    var timer = null, drag = null;
    this.i = data.start; this.el = el;
    function setRect(r, b) {
      if (!b) { r.setAttribute("visibility", "hidden"); return; }
      r.setAttribute("x", Math.min(b[0], b[2])); r.setAttribute("y", Math.min(b[1], b[3]));
      r.setAttribute("width", Math.abs(b[2] - b[0])); r.setAttribute("height", Math.abs(b[3] - b[1]));
      r.setAttribute("visibility", "visible");
    }
    this.current = function () { return frames[self.i]; };
    this.show = function (i) {
      self.i = (i + frames.length) % frames.length;
      var f = frames[self.i];
      img.src = (heat && heat.checked && f.overlay) ? f.overlay : (f.image || f.overlay);
      setRect(rModel, f.box ? null : f.model_box);
      setRect(rReview, f.box);
      seek.value = self.i;
      viewSel.value = f.wrong_view || "";
      var bits = ["frame " + f.frame_index + " (" + (self.i + 1) + "/" + frames.length + ")", f.status_text || f.status];
      if (f.probability !== null && f.probability !== undefined) bits.push("P=" + f.probability.toFixed(2));
      if (f.view) bits.push("view " + f.view);
      if (f.phase) bits.push("phase " + f.phase);
      if (f.box) bits.push("box: yours");
      if (f.wrong_view) bits.push("marked wrong view (" + f.wrong_view + ")");
      if (f.driving) bits.push("drives the exam");
      info.textContent = bits.join(" \u00b7 ");
      el.classList.toggle("wrong", !!f.wrong_view);
      if (cursor && xs[f.frame_index] !== undefined) { cursor.setAttribute("x1", xs[f.frame_index]); cursor.setAttribute("x2", xs[f.frame_index]); }
    };
    this.toggle = function () {
      if (timer) { clearInterval(timer); timer = null; play.textContent = "Play"; el.classList.remove("playing"); }
      else { timer = setInterval(function () { self.show(self.i + 1); }, 120); play.textContent = "Pause"; el.classList.add("playing"); }
    };
    this.stop = function () { if (timer) self.toggle(); };
    this.heat = function () { if (heat) { heat.checked = !heat.checked; self.show(self.i); } };
    this.markView = function (v) {
      var f = frames[self.i];
      return post("/api/view", {source_sha256: data.sha, frame_index: f.frame_index, view: v || null})
        .then(function () { f.wrong_view = v || null; self.show(self.i); say(v ? "frame " + f.frame_index + " marked wrong view (" + v + ")" : "wrong-view mark removed"); })
        .catch(function (e) { say("not saved: " + e.message, true); });
    };
    play.addEventListener("click", function () { self.toggle(); });
    seek.addEventListener("input", function () { self.stop(); self.show(parseInt(seek.value, 10)); });
    if (heat) heat.addEventListener("change", function () { self.show(self.i); });
    viewSel.addEventListener("change", function () { self.markView(viewSel.value); });
    function point(ev) {
      var r = svg.getBoundingClientRect();
      return [(ev.clientX - r.left) / r.width * size, (ev.clientY - r.top) / r.height * size];
    }
    svg.addEventListener("mousedown", function (ev) {
      if (ev.button !== 0) return;
      ev.preventDefault(); self.stop(); Player.active = self;
      var f = frames[self.i], b = f.box || f.model_box, p = point(ev);
      var inside = b && p[0] >= Math.min(b[0], b[2]) && p[0] <= Math.max(b[0], b[2]) && p[1] >= Math.min(b[1], b[3]) && p[1] <= Math.max(b[1], b[3]);
      drag = {start: p, move: inside ? b.slice() : null, box: null};
    });
    window.addEventListener("mousemove", function (ev) {
      if (!drag) return;
      var p = point(ev), dx = p[0] - drag.start[0], dy = p[1] - drag.start[1];
      drag.box = drag.move ? [drag.move[0] + dx, drag.move[1] + dy, drag.move[2] + dx, drag.move[3] + dy]
                           : [drag.start[0], drag.start[1], p[0], p[1]];
      setRect(rDraft, drag.box);
    });
    window.addEventListener("mouseup", function () {
      if (!drag) return;
      var d = drag; drag = null; setRect(rDraft, null);
      if (!d.box || Math.abs(d.box[2] - d.box[0]) < 2 || Math.abs(d.box[3] - d.box[1]) < 2) return;
      var f = frames[self.i];
      post("/api/box", {source_sha256: data.sha, frame_index: f.frame_index, box: d.box})
        .then(function (j) { f.box = j.box; self.show(self.i); say("box saved on frame " + f.frame_index + ": " + j.box.map(function (v) { return v.toFixed(0); }).join(", ")); })
        .catch(function (e) { say("box not saved: " + e.message, true); });
    });
    el.addEventListener("click", function () { Player.active = self; });
    this.show(this.i);
  }

  function examPage() {
    var root = $("#exam"), examId = root.dataset.exam, size = parseInt(root.dataset.size, 10);
    var players = $$(".clip", root).filter(function (c) { return $(".player", c); }).map(function (c) { return new Player(c, size); });
    Player.active = players[0] || null;
    var grade = $("#grade");
    function record(decision, g) { return recordExam(examId, decision, g).then(function () { location.reload(); }); }
    function confirm() {
      var d = root.dataset.modelDecision;
      if (!d || d === "undetermined") { say("nothing to confirm: give y or n", true); return; }
      record(d, grade.value === "" ? null : parseInt(grade.value, 10));
    }
    $$("button[data-act]", root).forEach(function (b) {
      b.addEventListener("click", function () {
        var a = b.dataset.act;
        if (a === "confirm") confirm();
        else if (a === "undo") undo().then(function () { location.reload(); });
        else record(a, null);
      });
    });
    grade.addEventListener("change", function () {
      if (grade.value === "") return;
      var g = parseInt(grade.value, 10); record(g > 0 ? "calcified" : "not calcified", g);
    });
    document.addEventListener("keydown", function (ev) {
      if (typing(ev) || ev.ctrlKey || ev.metaKey || ev.altKey) return;
      var k = ev.key, p = Player.active;
      if (k === "j" || k === "ArrowDown") { if (root.dataset.next) location.href = root.dataset.next; }
      else if (k === "k" || k === "ArrowUp") { if (root.dataset.prev) location.href = root.dataset.prev; }
      else if (k === "c") confirm();
      else if (k === "y") record("calcified", null);
      else if (k === "n") record("not calcified", null);
      else if (k >= "0" && k <= "3") { grade.value = k; grade.dispatchEvent(new Event("change")); }
      else if (k === "u") undo().then(function () { location.reload(); });
      else if (k === " " && p) { p.toggle(); ev.preventDefault(); }
      else if ((k === "." || k === "ArrowRight") && p) { p.stop(); p.show(p.i + 1); }
      else if ((k === "," || k === "ArrowLeft") && p) { p.stop(); p.show(p.i - 1); }
      else if (k === "h" && p) p.heat();
      else if (k === "w" && p) p.markView(p.current().wrong_view ? "" : "other");
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    if ($("#exams")) listPage();
    if ($("#exam")) examPage();
  });
})();
