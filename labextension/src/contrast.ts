/**
 * WCAG 2 contrast of rendered colours, as `getComputedStyle` gives them ("rgb(...)" /
 * "rgba(...)"). Used by the UI test to check the panel's badges in light and dark themes.
 * Pure code.
 */

export type RGBA = [number, number, number, number];

/** "rgb(1, 2, 3)" / "rgba(1, 2, 3, 0.5)" / "rgb(1 2 3 / 50%)" -> [r, g, b, a]; null otherwise. */
export function parseColor(css: string): RGBA | null {
  const m = /^rgba?\(\s*([\d.]+)[\s,]+([\d.]+)[\s,]+([\d.]+)(?:\s*[,/]\s*([\d.]+)(%?))?\s*\)$/i.exec(css.trim());
  if (!m) {
    return null;
  }
  let alpha = m[4] === undefined ? 1 : parseFloat(m[4]);
  if (m[5] === '%') {
    alpha /= 100;
  }
  return [parseFloat(m[1]), parseFloat(m[2]), parseFloat(m[3]), alpha];
}

/** `top` painted over an opaque `bottom`. */
export function over(top: RGBA, bottom: RGBA): RGBA {
  const a = top[3];
  return [0, 1, 2].map(i => top[i] * a + bottom[i] * (1 - a)).concat(1) as RGBA;
}

/** The colour a stack of backgrounds shows, innermost first (transparent layers let the next through). */
export function effectiveBackground(layers: RGBA[], base: RGBA = [255, 255, 255, 1]): RGBA {
  return layers.reduceRight((below, layer) => over(layer, below), base);
}

/** WCAG relative luminance of an opaque colour. */
export function luminance([r, g, b]: RGBA): number {
  const channel = (v: number) => {
    const c = v / 255;
    return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
  };
  return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
}

/** WCAG contrast ratio (1 to 21) of text colour `fg` (maybe translucent) on opaque `bg`. */
export function contrastRatio(fg: RGBA, bg: RGBA): number {
  const [l1, l2] = [luminance(over(fg, bg)), luminance(bg)].sort((a, b) => b - a);
  return (l1 + 0.05) / (l2 + 0.05);
}
