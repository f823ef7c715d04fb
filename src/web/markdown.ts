import MarkdownIt from 'markdown-it'

// Markdown to HTML for the UI (a project's README), on the server: markdown-it with raw HTML
// turned off, so a README's `<script>`, `<img onerror=…>` or `<iframe>` is text, and markdown-it's
// link check refuses `javascript:`, `vbscript:`, `file:` and (except images) `data:` URLs. What
// comes out is markdown-it's own tags and attributes only; the app's CSP (no inline script, images
// from this origin only) is a second line.

/** GitLab's flavour where markdown-it has it: tables, strikethrough, bare URLs as links. */
const md = new MarkdownIt({ html: false, linkify: true, typographer: false })

// Links leave for another site without the page's window or referrer.
const defaultLinkOpen = md.renderer.rules.link_open ?? ((tokens, idx, options, _env, self) => self.renderToken(tokens, idx, options))
md.renderer.rules.link_open = (tokens, idx, options, env, self) => {
  const token = tokens[idx]!
  const href = String(token.attrGet('href') ?? '')
  if (/^[a-z][a-z0-9+.-]*:/i.test(href)) token.attrSet('rel', 'nofollow noreferrer noopener')
  return defaultLinkOpen(tokens, idx, options, env, self)
}

export function renderMarkdown(text: string): string {
  return md.render(text)
}
