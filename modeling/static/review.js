// Keys of a review card: 1-3 take a suggestion, Enter confirms, k keeps the given label, x excludes, s skips,
// u undoes, / searches every leaf by name or path (arrows pick from the list, Enter files it, Escape leaves it).
// Without JavaScript the same form works with the mouse, the search taking a leaf's id.
"use strict";
(function () {
  const form = document.getElementById("decide");
  const undo = document.getElementById("undo");
  const skip = document.getElementById("skip");
  const search = document.getElementById("search");
  const other = document.getElementById("other-choice");
  const list = document.getElementById("leaf-list");
  const options = list ? Array.from(list.querySelectorAll("[role=option]")) : [];
  const haystacks = new Map(options.map((option) => [option, option.textContent.toLowerCase()]));
  let active = -1;

  const choose = (key) => {
    const radio = form && form.querySelector(`input[type=radio][data-key="${key}"]`);
    if (radio) radio.checked = true;
    return Boolean(radio);
  };
  const shown = () => options.filter((option) => !option.hidden);
  const highlight = (index) => {
    const visible = shown();
    options.forEach((option) => option.setAttribute("aria-selected", "false"));
    active = visible.length ? Math.max(0, Math.min(index, visible.length - 1)) : -1;
    if (active >= 0) {
      visible[active].setAttribute("aria-selected", "true");
      visible[active].scrollIntoView({ block: "nearest" });
      search.setAttribute("aria-activedescendant", visible[active].id);
    } else {
      search.removeAttribute("aria-activedescendant");
    }
  };
  const filter = () => {
    const words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    options.forEach((option) => {
      option.hidden = !words.every((word) => haystacks.get(option).includes(word));
    });
    list.hidden = words.length === 0 || shown().length === 0;
    search.setAttribute("aria-expanded", String(!list.hidden));
    highlight(0);
  };
  const pick = (option) => {
    search.value = option.dataset.leaf;
    other.checked = true;
    list.hidden = true;
    search.setAttribute("aria-expanded", "false");
  };

  if (search && list) {
    search.addEventListener("input", () => { other.checked = true; filter(); });
    list.addEventListener("mousedown", (event) => {
      const option = event.target.closest("[role=option]");
      if (option) { event.preventDefault(); pick(option); search.focus(); }
    });
  }
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target === search) {
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        event.preventDefault();
        if (list.hidden) filter();
        highlight(active + (event.key === "ArrowDown" ? 1 : -1));
      } else if (event.key === "Enter" && !list.hidden && active >= 0) {
        event.preventDefault(); // the highlighted leaf, not the letters typed, is filed
        pick(shown()[active]);
        form.requestSubmit();
      } else if (event.key === "Escape") {
        if (list.hidden) search.blur(); else { list.hidden = true; search.setAttribute("aria-expanded", "false"); }
      }
      return; // other keys type; Enter without a highlighted leaf submits the form by itself
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
