// The as-of slider: dragging shows the time it points at, letting go redraws the page there.
// Without JavaScript the date field and its button do the same.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const slider = document.getElementById("as-of-slider");
  const field = document.getElementById("as-of");
  if (!slider || !field) return;
  const local = (seconds) => new Date(seconds * 1000).toISOString().slice(0, 19);
  slider.addEventListener("input", () => { field.value = local(Number(slider.value)); });
  slider.addEventListener("change", () => {
    field.value = local(Number(slider.value));
    slider.form.requestSubmit();
  });
});
