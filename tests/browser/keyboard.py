"""What axe cannot see: the keyboard's walk through a page (WCAG 2.4.3, 2.4.7).

The Tab key is pressed from the page's start until the focus comes back to an element it
has already visited: each element it stops on must show a focus indicator (an outline or
a box shadow, from the stylesheet's ``:focus-visible`` rules) and be on screen (the skip
link, off screen until focused, included). A failure is reported like an axe violation,
with the rule id ``tp-focus-visible``, impact ``serious``.
"""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page

RULE = "tp-focus-visible"
HELP = "Keyboard focus must be visible and on screen"
MAX_STOPS = 120

FOCUSED = """() => {
  const el = document.activeElement;
  if (!el || el === document.body || el === document.documentElement) return null;
  const describe = (node) => {
    if (node.id) return '#' + CSS.escape(node.id);
    const name = node.getAttribute('name');
    let text = node.tagName.toLowerCase() + (name ? `[name="${name}"]` : '');
    if (!name && node.parentElement) {
      const index = [...node.parentElement.children].indexOf(node) + 1;
      text = describe(node.parentElement) + ' > ' + text + `:nth-child(${index})`;
    }
    return text;
  };
  const style = getComputedStyle(el);
  const box = el.getBoundingClientRect();
  const outlined = style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0;
  const shadowed = style.boxShadow !== 'none';
  const onScreen = box.width > 0 && box.height > 0 && box.right > 0 && box.bottom > 0
    && box.left < window.innerWidth && box.top < window.innerHeight;
  return {target: describe(el), indicated: outlined || shadowed, onScreen};
}"""


def unfocusable_stops(page: Page) -> list[str]:
    """The Tab stops of ``page`` whose focus is not shown, or not on screen."""
    page.evaluate("() => { document.activeElement?.blur(); window.scrollTo(0, 0); }")
    # Start from the top: Chrome begins the walk where the last click or focus was.
    page.locator("body").click(position={"x": 1, "y": 1})
    seen: set[str] = set()
    faults: list[str] = []
    for _ in range(MAX_STOPS):
        page.keyboard.press("Tab")
        stop: dict[str, Any] | None = page.evaluate(FOCUSED)
        if stop is None:
            if seen:
                break
            continue
        target = str(stop["target"])
        if target in seen:
            break
        seen.add(target)
        if not stop["indicated"] or not stop["onScreen"]:
            faults.append(target)
    return faults
