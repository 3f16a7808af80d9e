// The counter's scan: a reader types the card's 2D code into #card_payload, then Enter.
// A harmonised DataMatrix (TPH1|amc|convention|csr|member|from|until|mark|rows|...) fills
// the card fields; with several beneficiaries the pharmacist picks the patient first, and
// Enter waits for that choice. Nothing is sent anywhere from here: the server verifies the
// code's signatures at the lookup, as it does for a code typed by hand.
(function () {
  "use strict";
  var input = document.getElementById("card_payload");
  if (!input) { return; }
  var form = input.form;
  var box = document.getElementById("beneficiaires");
  var choices = box ? box.querySelector("[data-choices]") : null;
  var pending = false;
  var lastRead = null;

  function field(name) { return form.querySelector("[name='" + name + "']"); }
  function set(name, value) { var el = field(name); if (el) { el.value = value; } }
  function isoDay(text) { return text.slice(0, 4) + "-" + text.slice(4, 6) + "-" + text.slice(6, 8); }
  function frenchDay(text) { return text.slice(6, 8) + "/" + text.slice(4, 6) + "/" + text.slice(0, 4); }

  function rowsOf(text) {
    var parts = text.trim().split("|");
    if (parts.length < 9 || parts[0] !== "TPH1") { return null; }
    var rows = [];
    var items = parts[8].split(";");
    for (var i = 0; i < items.length; i++) {
      var m = /^([1-9])\.(\d{8}):/.exec(items[i]);
      if (!m) { return null; }
      rows.push({ rank: m[1], birth: m[2] });
    }
    return { amc: parts[1], member: parts[4], rows: rows };
  }

  function choose(row) {
    set("birth_date", isoDay(row.birth));
    set("birth_rank", row.rank);
    pending = false;
  }

  function offer(rows) {
    choices.textContent = "";
    rows.forEach(function (row, index) {
      var label = document.createElement("label");
      label.className = "box";
      var radio = document.createElement("input");
      radio.type = "radio";
      radio.name = "beneficiaire";
      radio.value = String(index);
      radio.addEventListener("change", function () { choose(row); });
      label.appendChild(radio);
      label.appendChild(document.createTextNode(
        " Rang " + row.rank + ", né(e) le " + frenchDay(row.birth)));
      choices.appendChild(label);
    });
    box.hidden = false;
    pending = true;
  }

  function read() {
    if (input.value === lastRead) { return; }  // Enter after the choice keeps it
    lastRead = input.value;
    var card = rowsOf(input.value);
    if (!card) { return; }
    set("amc_number", card.amc);
    set("member_number", card.member);
    set("nir", "");
    if (card.rows.length === 1) {
      if (box) { box.hidden = true; }
      choose(card.rows[0]);
    } else if (box && choices) {
      set("birth_date", "");
      set("birth_rank", "");
      offer(card.rows);
    }
  }

  input.addEventListener("input", read);
  input.addEventListener("keydown", function (event) {
    if (event.key !== "Enter") { return; }
    read();
    if (pending) {
      event.preventDefault();
      var first = choices.querySelector("input");
      if (first) { first.focus(); }
    }
  });
})();
