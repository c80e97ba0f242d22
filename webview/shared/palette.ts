// Distinct cluster colours that keep their contrast on light and dark themes.

export function clusterColors(count: number, dark: boolean): string[] {
  const golden = 137.508; // degrees: successive hues land far apart
  return Array.from({ length: count }, (_, i) => `hsl(${(i * golden) % 360}, ${dark ? 65 : 70}%, ${dark ? 62 : 42}%)`);
}

export function isDarkTheme(): boolean {
  return document.body.classList.contains('vscode-dark') || document.body.classList.contains('vscode-high-contrast');
}

/** A file URI under the images folder, each path segment encoded (names may hold spaces, #, ? or HTML). */
export function imageUrl(base: string, relativePath: string): string {
  return `${base}/${relativePath.split('/').map(encodeURIComponent).join('/')}`;
}

/** The same colours as clusterColors, as 0–255 RGB triples for WebGL. */
export function clusterRgb(count: number, dark: boolean): [number, number, number][] {
  const saturation = dark ? 0.65 : 0.7;
  const lightness = dark ? 0.62 : 0.42;
  return Array.from({ length: count }, (_, i) => {
    const hue = (i * 137.508) % 360;
    // HSL to RGB (CSS Color 4's formula).
    const chroma = saturation * Math.min(lightness, 1 - lightness);
    const channel = (n: number) => {
      const k = (n + hue / 30) % 12;
      return Math.round(255 * (lightness - chroma * Math.max(-1, Math.min(k - 3, 9 - k, 1))));
    };
    return [channel(0), channel(8), channel(4)];
  });
}
