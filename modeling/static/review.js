// Keys of a review card: 1-3 take a suggestion, Enter confirms, k keeps the given label, x excludes, s skips,
// u undoes, / searches every leaf. Without JavaScript the same form works with the mouse.
"use strict";
(function () {
  const form = document.getElementById("decide");
  const undo = document.getElementById("undo");
  const skip = document.getElementById("skip");
  const search = document.getElementById("search");
  const other = document.getElementById("other-choice");
  const choose = (key) => {
    const radio = form && form.querySelector(`input[type=radio][data-key="${key}"]`);
    if (radio) radio.checked = true;
    return Boolean(radio);
  };
  if (search) search.addEventListener("input", () => { other.checked = true; });
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target === search) {
      if (event.key === "Escape") search.blur();
      return; // Enter in the search field submits the form by itself
    }
    if (event.target.tagName === "INPUT" && event.target.type !== "radio") return;
    if (["BUTTON", "A"].includes(event.target.tagName) && event.key === "Enter") return; // the focused control's own
    if (["1", "2", "3", "k", "x"].includes(event.key)) {
      if (choose(event.key)) event.preventDefault();
    } else if (event.key === "Enter" && form) {
      event.preventDefault();
      form.requestSubmit();
    } else if (event.key === "s" && skip) {
      event.preventDefault();
      window.location.href = skip.href;
    } else if (event.key === "u" && undo) {
      event.preventDefault();
      undo.requestSubmit();
    } else if (event.key === "/" && search) {
      event.preventDefault();
      other.checked = true;
      search.focus();
    }
  });
})();
