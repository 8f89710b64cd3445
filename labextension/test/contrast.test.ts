// Unit tests of the WCAG contrast the UI test computes from rendered colours.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';

import { contrastRatio, effectiveBackground, parseColor, RGBA } from '../src/contrast';

const white: RGBA = [255, 255, 255, 1];
const black: RGBA = [0, 0, 0, 1];

describe('contrast', () => {
  it('parses computed colours', () => {
    assert.deepEqual(parseColor('rgb(1, 2, 3)'), [1, 2, 3, 1]);
    assert.deepEqual(parseColor('rgba(1, 2, 3, 0.5)'), [1, 2, 3, 0.5]);
    assert.deepEqual(parseColor('rgb(1 2 3 / 50%)'), [1, 2, 3, 0.5]);
    assert.deepEqual(parseColor('rgba(0, 0, 0, 0)'), [0, 0, 0, 0]);
    assert.equal(parseColor('color(srgb 1 0 0)'), null);
  });

  it('gives the WCAG ratios', () => {
    assert.equal(contrastRatio(black, white), 21);
    assert.equal(contrastRatio(white, white), 1);
    // #767676 on white is the classic just-passing grey (4.54:1)
    assert.ok(Math.abs(contrastRatio([118, 118, 118, 1], white) - 4.54) < 0.01);
    // the dark-theme badge: near-white on light green, about 1.3:1
    assert.ok(contrastRatio([230, 230, 230, 1], [165, 214, 167, 1]) < 1.5);
  });

  it('composes translucent text and backgrounds', () => {
    assert.ok(Math.abs(contrastRatio([0, 0, 0, 0.5], white) - contrastRatio([128, 128, 128, 1], white)) < 0.05);
    assert.deepEqual(
      effectiveBackground([
        [0, 0, 0, 0],
        [10, 20, 30, 1]
      ]),
      [10, 20, 30, 1]
    );
    assert.deepEqual(effectiveBackground([[0, 0, 0, 0]]), white);
  });
});
