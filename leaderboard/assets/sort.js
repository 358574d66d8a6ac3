// Sortable tables without a server or a library: click a column header to sort by it, click again to
// reverse. Each cell may carry data-sort (a number or text) so that "1200 [900, 1500]" sorts by 1200;
// cells without a value ("–") always sort last. Runs from file:// too (no fetch, no modules).
(function () {
  "use strict";

  function keyOf(cell) {
    var raw = cell.getAttribute("data-sort");
    if (raw === null) raw = cell.textContent.trim();
    if (raw === "" || raw === "–") return { missing: true, num: NaN, text: "" };
    var num = Number(raw);
    return { missing: false, num: num, text: raw.toLowerCase() };
  }

  function compare(a, b, ascending) {
    if (a.missing || b.missing) return a.missing === b.missing ? 0 : (a.missing ? 1 : -1);
    var both = !isNaN(a.num) && !isNaN(b.num);
    var c = both ? a.num - b.num : (a.text < b.text ? -1 : a.text > b.text ? 1 : 0);
    return ascending ? c : -c;
  }

  function sortBy(table, index, header) {
    var ascending = header.getAttribute("aria-sort") !== "ascending";
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var keyed = rows.map(function (row, i) { return { row: row, key: keyOf(row.cells[index]), i: i }; });
    keyed.sort(function (x, y) { return compare(x.key, y.key, ascending) || x.i - y.i; });
    keyed.forEach(function (k) { body.appendChild(k.row); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) { th.removeAttribute("aria-sort"); });
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  }

  function init() {
    Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
      if (!table.tHead || !table.tBodies.length) return;
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, index) {
        var button = th.querySelector("button");
        if (!button) return;
        button.addEventListener("click", function () { sortBy(table, index, th); });
      });
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
