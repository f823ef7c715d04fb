// Renders a job log with ANSI SGR colours as DOM nodes. Log text only ever becomes text nodes
// (never markup), so whatever a job prints is shown, not interpreted.

const SGR = /\x1b\[([0-9;]*)m/g
// Other escapes (erase line \x1b[0K, cursor moves) and GitLab's collapsible-section markers carry no text.
const OTHER_CSI = /\x1b\[[0-9;?]*[A-Za-ln-z]/g
const SECTION = /section_(?:start|end):\d+:[A-Za-z0-9_.-]+(?:\[[^\]]*\])?\r?/g

export class AnsiRenderer {
  constructor(target) {
    this.target = target
    this.state = { fg: null, bg: null, bold: false, italic: false, underline: false }
    this.pending = ''
  }

  /** Appends a chunk; an escape sequence cut at the chunk's end waits for the next one. */
  write(chunk) {
    let text = this.pending + chunk
    this.pending = ''
    const cut = text.lastIndexOf('\x1b')
    if (cut >= 0 && !/^\x1b\[[0-9;?]*[A-Za-z]/.test(text.slice(cut)) && text.length - cut < 32) {
      this.pending = text.slice(cut)
      text = text.slice(0, cut)
    }
    text = text.replace(SECTION, '').replace(OTHER_CSI, '').replace(/\r\n/g, '\n').replace(/\r/g, '')
    let last = 0
    for (const m of text.matchAll(SGR)) {
      this.emit(text.slice(last, m.index))
      this.apply(m[1])
      last = m.index + m[0].length
    }
    this.emit(text.slice(last))
  }

  apply(params) {
    const codes = params === '' ? [0] : params.split(';').map(Number)
    for (let i = 0; i < codes.length; i++) {
      const c = codes[i]
      const s = this.state
      if (c === 0) Object.assign(s, { fg: null, bg: null, bold: false, italic: false, underline: false })
      else if (c === 1) s.bold = true
      else if (c === 3) s.italic = true
      else if (c === 4) s.underline = true
      else if (c === 22) s.bold = false
      else if (c === 23) s.italic = false
      else if (c === 24) s.underline = false
      else if (c >= 30 && c <= 37) s.fg = c - 30
      else if (c >= 90 && c <= 97) s.fg = c - 90 + 8
      else if (c === 39) s.fg = null
      else if (c >= 40 && c <= 47) s.bg = c - 40
      else if (c >= 100 && c <= 107) s.bg = c - 100
      else if (c === 49) s.bg = null
      else if ((c === 38 || c === 48) && codes[i + 1] === 5)
        i += 2 // 256 colours: not rendered
      else if ((c === 38 || c === 48) && codes[i + 1] === 2) i += 4 // true colour: not rendered
    }
  }

  emit(text) {
    if (!text) return
    const s = this.state
    const cls = [
      s.fg !== null && `ansi-fg-${s.fg}`,
      s.bg !== null && `ansi-bg-${s.bg}`,
      s.bold && 'ansi-bold',
      s.italic && 'ansi-italic',
      s.underline && 'ansi-underline',
    ].filter(Boolean)
    if (cls.length === 0) {
      this.target.append(document.createTextNode(text))
      return
    }
    const span = document.createElement('span')
    span.className = cls.join(' ')
    span.textContent = text
    this.target.append(span)
  }
}
