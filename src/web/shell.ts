/** The one HTML page of the app; the modules render into <main>. `version` busts caches when the assets change. */
export function shellHtml(version: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Wharf</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/-/static/app.css?v=${version}">
<script type="module" src="/-/static/app.js?v=${version}"></script>
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header class="topbar">
  <a class="brand" href="/">Wharf</a>
  <nav id="nav" aria-label="Account"></nav>
</header>
<main id="main" tabindex="-1"><noscript><p>Wharf's web interface needs JavaScript. The REST API is at <code>/api/v4</code>.</p></noscript><p class="muted" id="loading">Loading…</p></main>
<div id="toast" role="status" aria-live="polite"></div>
</body>
</html>
`
}
