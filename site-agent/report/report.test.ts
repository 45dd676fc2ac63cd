import { PNG } from 'pngjs';
import { describe, expect, it } from 'vitest';
import { CLASS_COLOURS, formatDistance, overlayPng, renderReportHtml } from './index.ts';

describe('console formatting', () => {
  it('distances carry their infinite entries: never a bare finite mean when some were infinite', () => {
    expect(formatDistance(2.0812, 0)).toBe('2.08');
    expect(formatDistance(2.0812, 3)).toBe('2.08 (+3 ∞)');
    expect(formatDistance(null, 4)).toBe('∞ (4)');
    expect(formatDistance(Number.NaN, 0)).toBe('n/a');
  });
});

describe('overlay PNG', () => {
  it('draws image | truth | prediction panels, labels in their class colour over the grey image', () => {
    const h = 4;
    const w = 4;
    const image = Float32Array.from({ length: h * w }, (_, i) => i);
    const truth = new Uint8Array(h * w);
    truth[0] = 1;
    const prediction = new Uint8Array(h * w);
    prediction[5] = 2;
    const png = PNG.sync.read(overlayPng({ image, height: h, width: w, truth, prediction }, 8));
    const scale = 2;
    const panel = w * scale + 4;
    expect(png.width).toBe(3 * w * scale + 2 * 4);
    expect(png.height).toBe(h * scale);
    const px = (x: number, y: number): number[] => [...png.data.subarray((y * png.width + x) * 4, (y * png.width + x) * 4 + 3)];
    expect(px(0, 0)).toEqual([0, 0, 0]); // darkest intensity, no label in the image panel
    const blend = (g: number, c: readonly number[]): number[] => c.map((v) => Math.round(0.5 * g + 0.5 * v));
    expect(px(panel, 0)).toEqual(blend(0, CLASS_COLOURS[0])); // truth panel: class 1 at (0, 0)
    const g5 = px(1 * scale, 1 * scale)[0];
    expect(px(2 * panel + 1 * scale, 1 * scale)).toEqual(blend(g5, CLASS_COLOURS[1])); // prediction panel: class 2 at (1, 1)
    // Without truth (an unlabeled target): two panels.
    expect(PNG.sync.read(overlayPng({ image, height: h, width: w, truth: null, prediction }, 8)).width).toBe(2 * w * scale + 4);
    expect(() => overlayPng({ image, height: h, width: w + 1, truth: null, prediction })).toThrow(RangeError);
  });
});

describe('HTML report', () => {
  it('is self-contained: uPlot inline, images as data URIs, no external script, style or image', () => {
    const html = renderReportHtml({
      title: 'a <b> report',
      charts: [{ title: 'Dice', xLabel: 'round', yLabel: 'Dice', x: [1, 2], series: [{ label: 'site-a', values: [0.1, null] }] }],
      tables: [{ caption: 't', head: ['site', 'HD95 mm'], rows: [['site-a', formatDistance(2, 1)]] }],
      overlays: [{ caption: 'o', png: overlayPng({ image: new Float32Array(4), height: 2, width: 2, truth: null, prediction: new Uint8Array(4) }) }],
    });
    expect(html).toContain('a &lt;b&gt; report');
    expect(html).toContain('uPlot');
    expect(html).toContain('2.00 (+1 ∞)');
    expect(html).toMatch(/<img alt="o" src="data:image\/png;base64,/);
    expect(html).not.toMatch(/<script[^>]+src=|<link[^>]+stylesheet|src="http/);
  });
});
