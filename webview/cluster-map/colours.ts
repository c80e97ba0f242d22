// Colours the map needs beyond the cluster palette: a ramp for continuous values, and the theme's hex colours as RGB.

export function rampRgb(value: number): [number, number, number] {
  // Low to high: a warm orange to a cool blue, readable on light and dark themes.
  const t = Math.min(1, Math.max(0, value));
  return [Math.round(230 - 190 * t), Math.round(110 + 40 * t), Math.round(40 + 190 * t)];
}

export function hexToRgb(colour: string): [number, number, number] {
  const match = /^#?([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})/i.exec(colour.trim());
  return match ? [parseInt(match[1], 16), parseInt(match[2], 16), parseInt(match[3], 16)] : [30, 30, 30];
}
