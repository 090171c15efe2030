// The wall's full-screen mode (readable from across the room): the Fullscreen API on the wall itself.
(function () {
  "use strict";
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-fullscreen]");
    if (!button) return;
    var target = document.querySelector(button.dataset.fullscreen);
    if (!target) return;
    if (document.fullscreenElement) {
      document.exitFullscreen();
    } else if (target.requestFullscreen) {
      target.requestFullscreen().catch(function () { target.classList.toggle("wall-fullscreen"); });
    } else {
      target.classList.toggle("wall-fullscreen");
    }
  });
  document.addEventListener("fullscreenchange", function () {
    var wall = document.getElementById("wall");
    var on = document.fullscreenElement === wall;
    if (wall) wall.classList.toggle("wall-fullscreen", on);
    document.querySelectorAll("[data-fullscreen]").forEach(function (button) { button.setAttribute("aria-pressed", String(on)); });
  });
})();
