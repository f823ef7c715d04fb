// The worker side of MarkdownRenderer (./markdown.ts): renders one text at a time.
import { parentPort } from 'node:worker_threads'
import { renderMarkdown } from './markdown.ts'

const port = parentPort!
port.on('message', (m: { id: number; text: string }) => {
  // The time budget starts here: a new worker first loads its code.
  port.postMessage({ id: m.id, started: true })
  port.postMessage({ id: m.id, html: renderMarkdown(m.text) })
})
