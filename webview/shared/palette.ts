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
