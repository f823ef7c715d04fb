import assert from 'node:assert/strict'
import { test } from 'node:test'
import { isInternalAddress, resolveTarget } from './outbound.ts'

const closed = { allowLocalNetwork: false, allowedHosts: [] }

test('only global unicast addresses count as outside; every special range is internal', () => {
  for (const a of [
    '127.0.0.1',
    '10.1.2.3',
    '172.16.0.1',
    '192.168.1.1',
    '169.254.169.254',
    '100.64.0.1',
    '0.0.0.0',
    '224.0.0.1',
    '::1',
    'fe80::1',
    'fd00::1',
    '::ffff:127.0.0.1',
    '::ffff:10.0.0.1',
    '::',
  ]) {
    assert.equal(isInternalAddress(a), true, a)
  }
  for (const a of ['8.8.8.8', '1.1.1.1', '2606:4700::1111', '::ffff:8.8.8.8']) assert.equal(isInternalAddress(a), false, a)
})

test("hook targets on the local network are refused in GitLab's words, unless allowed", async () => {
  for (const url of [
    'http://127.0.0.1:9/x',
    'http://localhost/hook',
    'http://169.254.169.254/latest/meta-data',
    'http://[::1]:80/',
    'http://10.0.0.1/',
    'http://0.0.0.0:8080/',
    'http://2130706433/',
  ]) {
    await assert.rejects(
      resolveTarget(url, closed),
      (e: Error & { code?: string }) => e.code === 'BAD_REQUEST' && /Requests to the local network are not allowed/.test(e.message),
      url,
    )
  }
  for (const url of ['ftp://example.com/', 'file:///etc/passwd', 'gopher://x/', 'not a url']) {
    await assert.rejects(resolveTarget(url, closed), /Only allowed schemes are http, https/, url)
  }
  await assert.rejects(resolveTarget('http://user:pw@8.8.8.8/', closed), /must not contain credentials/)
  assert.equal((await resolveTarget('http://8.8.8.8/hook', closed)).address, '8.8.8.8')
  assert.equal((await resolveTarget('http://127.0.0.1:9/x', { allowLocalNetwork: true, allowedHosts: [] })).address, '127.0.0.1')
  const listed = await resolveTarget('http://localhost:9/x', { allowLocalNetwork: false, allowedHosts: ['LOCALHOST'] })
  assert.equal(isInternalAddress(listed.address), true)
})
