import assert from 'node:assert/strict'
import { test } from 'node:test'
import { isWharfError } from '../core/errors.ts'
import { MarkdownRenderer, renderMarkdown } from './markdown.ts'

test('renderMarkdown: raw HTML is text, script URLs are refused, external links get rel', () => {
  const html = renderMarkdown('# T\n\n<b onclick="x()">b</b> [x](javascript:alert(1)) [y](https://example.com)\n')
  assert.match(html, /<h1>T<\/h1>/)
  assert.match(html, /&lt;b onclick=&quot;x\(\)&quot;&gt;b&lt;\/b&gt;/)
  assert.doesNotMatch(html, /href="javascript:/)
  assert.match(html, /<a href="https:\/\/example\.com" rel="nofollow noreferrer noopener">y<\/a>/)
})

test('MarkdownRenderer: a text over the time budget is refused without holding the event loop; the next one renders', async (t) => {
  const renderer = new MarkdownRenderer({ timeMs: 200 })
  t.after(() => renderer.close())
  assert.equal(await renderer.render('*warm*'), '<p><em>warm</em></p>\n')
  // A megabyte of `[` takes markdown-it seconds.
  let ticks = 0
  const ticker = setInterval(() => ticks++, 10)
  const started = Date.now()
  await assert.rejects(renderer.render('['.repeat(1 << 20)), (e: unknown) => {
    assert.ok(isWharfError(e) && e.code === 'TOO_LARGE', String(e))
    assert.match(e.message, /takes too long to render \(the limit is 0\.2 s\)/)
    return true
  })
  clearInterval(ticker)
  const elapsed = Date.now() - started
  assert.ok(elapsed < 2000, `refused after ${elapsed} ms`)
  assert.ok(ticks >= 5, `the event loop ran meanwhile (${ticks} ticks in ${elapsed} ms)`)
  // Queued behind it, and after it, texts render (in a new worker).
  const [a, b] = await Promise.all([renderer.render('a'), renderer.render('**b**')])
  assert.deepEqual([a, b], ['<p>a</p>\n', '<p><strong>b</strong></p>\n'])
})
