"""Browser tests for the JavaScript client (issue 5, item 4; issue 11): headless Chromium driven by Selenium against
the real minerva-demo on loopback (run-browser-tests.sh sets MINERVA_BROWSER_TESTS=1 and builds the demo).

Each test names the issue's requirement it covers:
  * echo of strings covering every restricted character and sizes up to 64 KiB (every transport: 'websocket',
    'auto' (WebSocket first), 'streaming', 'long-poll')
  * echo_twice; send_demo received complete and in order; reset_me reaching streamReset(reason, true)
  * two browser sessions chatting
  * recovery: lossy-proxy.mjs (10% of transport requests aborted, others delayed) between browser and server;
    2,000 strings each way, no loss, duplication or reordering
  * timing (printed, not asserted): 2,000 sequential echo round trips over each transport
  * issue 11: Chromium's own WebSocket against /_minerva/ws (no Minerva client); a proxy that kills WebSockets
    mid-stream and refuses upgrades for a while: 'auto' moves to HTTP streaming and back to WebSocket, and
    4,000 strings echo with no loss, duplication or reordering

Setup on a fresh Debian 12 machine: apt-get install chromium chromium-driver; pip install selenium.
Run: MINERVA_BROWSER_TESTS=1 python3 -m unittest Client/test/browser/test_browser.py -v
"""

import asyncio
import json
import os
import re
import socket
import subprocess
import threading
import time
import unittest
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, '..', '..', '..'))
ENABLED = os.environ.get('MINERVA_BROWSER_TESTS') == '1'
TRANSPORTS = ('websocket', 'auto', 'streaming', 'long-poll')
# Through lossy-proxy.mjs, which passes no WebSocket upgrades: 'auto' shows the fallback to HTTP streaming.
HTTP_TRANSPORTS = ('auto', 'streaming', 'long-poll')
# MINERVA_BROWSER_TRANSPORTS (comma-separated) limits the transports tried, e.g. `streaming,long-poll` behind a
# balancer that passes no WebSocket upgrades; the WebSocket-only tests then skip.
if os.environ.get('MINERVA_BROWSER_TRANSPORTS'):
    _only = os.environ['MINERVA_BROWSER_TRANSPORTS'].split(',')
    TRANSPORTS = tuple(t for t in TRANSPORTS if t in _only)
    HTTP_TRANSPORTS = tuple(t for t in HTTP_TRANSPORTS if t in _only)
RESTRICTED = ''.join(chr(c) for c in range(0x20, 0x7F))


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def wait_for_http(url, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


class Demo:
    """The release minerva-demo on a free loopback port (flags per issue 4; --static-dir is assumed), with
    MINERVA_DEMO_THREADS event loops (default 1). With MINERVA_SERVER_URL set (e.g. nginx in front of a demo that
    serves this folder with --static-dir, scripts/run-nginx-tests.sh), that server is used and nothing is started."""

    def __init__(self, extra_args=()):
        self.process = None
        if os.environ.get('MINERVA_SERVER_URL'):
            self.base = os.environ['MINERVA_SERVER_URL'].rstrip('/')
            url = urllib.parse.urlsplit(self.base)
            self.host, self.port = url.hostname, url.port or 80
            wait_for_http(self.base + '/healthz')
            return
        self.host = '127.0.0.1'
        self.port = free_port()
        binary = os.environ.get('MINERVA_DEMO_BINARY') or os.path.join(REPO, '.build', 'release', 'minerva-demo')
        threads = os.environ.get('MINERVA_DEMO_THREADS', '1')  # the suite runs with 1 and with 2 event loops
        # MINERVA_CLIENT_SCRIPT: serve this client file instead of the compiled-in copy (while editing the client).
        script = os.environ.get('MINERVA_CLIENT_SCRIPT')
        self.process = subprocess.Popen(
            [binary, '--host', '127.0.0.1', '--port', str(self.port), '--static-dir', HERE, '--threads', threads]
            + (['--client-script', script] if script else []) + list(extra_args),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.base = f'http://127.0.0.1:{self.port}'
        wait_for_http(self.base + '/healthz')

    def stop(self):
        if self.process:
            self.process.terminate()
            self.process.wait(timeout=10)


class Proxy:
    """lossy-proxy.mjs in front of the demo; serves the harness page too, so the page stays same-origin."""

    def __init__(self, target, abort=0.1, max_delay_ms=300, seed=1):
        self.process = subprocess.Popen(
            ['node', os.path.join(HERE, 'lossy-proxy.mjs'), '--target', target, '--abort', str(abort),
             '--max-delay-ms', str(max_delay_ms), '--seed', str(seed)],
            stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        self.base = line.strip().rsplit(' ', 1)[-1]

    def stop(self):
        """Stops the proxy and returns its counters (requests, abortedBefore, abortedDuring, delayed)."""
        self.process.terminate()
        output, _ = self.process.communicate(timeout=10)
        for line in output.splitlines():
            if line.startswith('lossy-proxy {'):
                return json.loads(line.split(' ', 1)[1])
        return {}


class WebSocketKillingProxy:
    """A TCP proxy (asyncio, real sockets, in a thread of the test process) in front of the demo. It passes every
    connection through byte for byte; it notes the connections whose first request is a WebSocket upgrade, and on
    command aborts them (no close frame: the TCP connection just dies) and refuses new upgrades (closes the
    connection as soon as the upgrade request arrives) until told to allow them again."""

    def __init__(self, target_port, target_host='127.0.0.1'):
        self.target_port = target_port
        self.target_host = target_host
        self.refusing = False
        self.upgraded = set()
        self.tasks = set()
        self.stats = {'connections': 0, 'upgrades': 0, 'killed': 0, 'refused': 0}
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run():
            asyncio.set_event_loop(self.loop)
            self.server = self.loop.run_until_complete(asyncio.start_server(self._handle, '127.0.0.1', 0))
            self.port = self.server.sockets[0].getsockname()[1]
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        ready.wait(10)
        self.base = f'http://127.0.0.1:{self.port}'

    async def _pipe(self, reader, writer):
        try:
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.transport.abort()

    async def _handle(self, reader, writer):
        self.tasks.add(asyncio.current_task())
        try:
            await self._proxy(reader, writer)
        finally:
            self.tasks.discard(asyncio.current_task())

    async def _proxy(self, reader, writer):
        self.stats['connections'] += 1
        head = b''
        try:
            while b'\r\n\r\n' not in head:
                chunk = await reader.read(65536)
                if not chunk:
                    writer.close()
                    return
                head += chunk
        except (ConnectionError, OSError):
            writer.transport.abort()
            return
        upgrade = re.search(rb'(?im)^upgrade:[ \t]*websocket', head.split(b'\r\n\r\n', 1)[0]) is not None
        if upgrade and self.refusing:
            self.stats['refused'] += 1
            writer.transport.abort()
            return
        up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
        up_writer.write(head)
        pair = (writer, up_writer)
        if upgrade:
            self.stats['upgrades'] += 1
            self.upgraded.add(pair)
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self.upgraded.discard(pair)

    def _kill(self):
        for client, upstream in list(self.upgraded):
            self.stats['killed'] += 1
            client.transport.abort()
            upstream.transport.abort()
        self.upgraded.clear()

    def kill_websockets(self, refuse):
        """Aborts every upgraded connection; with refuse, new upgrades are refused until allow_websockets()."""
        def act():
            self.refusing = refuse
            self._kill()
        self.loop.call_soon_threadsafe(act)

    def allow_websockets(self):
        self.loop.call_soon_threadsafe(lambda: setattr(self, 'refusing', False))

    async def _shutdown(self):
        self.server.close()
        self._kill()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    def stop(self):
        """Stops the proxy (every connection aborted) and returns its counters."""
        asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
        return dict(self.stats)


def wait_until(predicate, timeout, message):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError('timed out: ' + message)
        time.sleep(0.05)


def make_browser():
    from selenium import webdriver  # imported here so that the module loads without Selenium

    options = webdriver.ChromeOptions()
    for flag in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options)
    driver.set_script_timeout(300)
    return driver


def call(driver, expression):
    """Evaluates a promise-returning harness expression and returns its result."""
    return driver.execute_async_script(
        'const done = arguments[arguments.length - 1];'
        f'Promise.resolve({expression}).then(done, (e) => done({{error: String(e)}}));')


@unittest.skipUnless(ENABLED, 'set MINERVA_BROWSER_TESTS=1 (needs minerva-demo, chromium, chromium-driver, selenium)')
class BrowserTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.demo = Demo()
        cls.browser = make_browser()

    @classmethod
    def tearDownClass(cls):
        cls.browser.quit()
        cls.demo.stop()

    def open_harness(self, base=None):
        self.browser.get((base or self.demo.base) + '/static/harness.html')

    def test_echo_every_restricted_character_and_sizes(self):
        strings = [RESTRICTED, '', ' ', '~' * 10] + ['x' * n for n in (1, 1000, 16384, 65536)]
        for transport in TRANSPORTS:
            with self.subTest(transport=transport):
                self.open_harness()
                result = call(self.browser, f'echoAll({strings!r}, {transport!r})')
                self.assertEqual(result['resets'], [])
                self.assertEqual(result['received'], strings)
                expected = 'connected:' + ('websocket' if transport == 'auto' else transport)
                self.assertIn(expected, result['states'])
                if transport in ('websocket', 'auto'):
                    self.assertFalse([s for s in result['states'] if s.startswith('connected:') and s != expected],
                                     'a WebSocket straight to the demo works: no other transport is used')

    def test_echo_twice(self):
        for transport in TRANSPORTS:
            self.open_harness()
            result = call(self.browser, f"collect('echo_twice:hi', 2, {transport!r})")
            self.assertEqual(result['received'], ['hi', 'hi'])

    def test_send_demo_complete_and_in_order(self):
        expected = ['starting_send_demo'] + [
            ' '.join(['#%d' % i] * (5 * i)) for i in range(1, 21) for _ in range(i)]
        for transport in TRANSPORTS:
            self.open_harness()
            result = call(self.browser, f"collect('send_demo', {len(expected)}, {transport!r})")
            self.assertEqual(result['received'], expected)

    def test_reset_me_reaches_stream_reset(self):
        for transport in TRANSPORTS:
            self.open_harness()
            self.assertEqual(call(self.browser, f"resetMe('because', {transport!r})"), [['because', True]])

    def test_two_sessions_chat(self):
        other = make_browser()
        try:
            for driver in (self.browser, other):
                driver.get(self.demo.base + '/static/harness.html')
                driver.execute_script("joinChat('auto')")
            time.sleep(1)  # both have joined the room (begin_chat has no answer)
            self.browser.execute_script("chat.send('hello from A')")
            call(other, 'chat.whenCount(1)')
            received = other.execute_script('return chat.received')
            self.assertEqual(len(received), 1)
            self.assertTrue(received[0].startswith('TEXT|') and received[0].endswith('|hello from A'))
        finally:
            other.quit()

    def test_recovery_through_lossy_proxy(self):
        strings = [f'{i}:' + 'y' * (i % 300) for i in range(2000)]
        for transport in HTTP_TRANSPORTS:
            proxy = Proxy(self.demo.base, abort=0.1, max_delay_ms=100, seed=7)
            try:
                self.open_harness(proxy.base)
                # 4 strings every 10 ms: uploads and downloads spread over many requests, 10% of them aborted.
                result = call(self.browser, f'echoPaced({strings!r}, {transport!r}, 4, 10)')
            finally:
                stats = proxy.stop()
            print(f'lossy proxy over {transport}: {stats}')
            self.assertEqual(result['resets'], [])
            self.assertEqual(result['received'], strings)  # no loss, duplication or reordering
            if transport == 'auto':  # the proxy refuses upgrades: the WebSocket fails, HTTP streaming takes over
                self.assertIn('connected:streaming', result['states'])
                self.assertNotIn('connected:websocket', result['states'])
            # The run must really have gone through aborted requests, or it proves nothing.
            self.assertGreater(stats.get('abortedBefore', 0) + stats.get('abortedDuring', 0), 0)

    def test_timing_2000_round_trips(self):
        for transport in TRANSPORTS:
            self.open_harness()
            ms = call(self.browser, f'roundTrips(2000, {transport!r})')
            self.assertIsInstance(ms, (int, float))
            print(f'2000 echo round trips over {transport}: {ms:.0f} ms')

    @unittest.skipUnless('websocket' in TRANSPORTS, 'WebSocket not among MINERVA_BROWSER_TRANSPORTS')
    def test_chromium_websocket_against_the_server(self):
        """Chromium's own WebSocket, no Minerva client (issue 11, item 2): PROTOCOL.md 11.1 W1-W3 and W14."""
        self.open_harness()
        result = call(self.browser, 'rawWebSocket()')
        self.assertEqual(result.get('protocol'), 'minerva.v2', result)
        self.assertEqual(result['frames'], ['C', '|0A', '0N', 'hi ', '|1A', 'bye|1!', 'Y'])
        self.assertEqual(result['closeCode'], 1000)

    @unittest.skipUnless('websocket' in TRANSPORTS, 'WebSocket not among MINERVA_BROWSER_TRANSPORTS')
    def test_websockets_killed_mid_stream_switch_to_http_and_back(self):
        """A proxy kills the WebSockets mid-stream and refuses upgrades for a while: the stream moves to HTTP
        streaming and back to WebSocket, and 4,000 strings arrive once each, in order (issue 11)."""
        strings = [f'{i}:' + 'z' * (i % 200) for i in range(4000)]
        proxy = WebSocketKillingProxy(self.demo.port, self.demo.host)
        result = {'states': None}
        try:
            self.open_harness(proxy.base)
            # 3 strings every 10 ms: about 13 s of sending, so the stream is busy through every switch.
            self.browser.execute_script(
                f"startEchoPaced({strings!r}, 'auto', 3, 10, {{wsRetryMs: 500}})")
            run = lambda expression: self.browser.execute_script('return window.run.' + expression)
            wait_until(lambda: run('received.length') >= 300 and 'connected:websocket' in run('states'), 60,
                       'echoes over WebSocket')
            self.assertGreater(proxy.stats['upgrades'], 0)
            proxy.kill_websockets(refuse=True)
            killed_at = run('received.length')
            wait_until(lambda: 'connected:streaming' in run('states'), 30, 'the switch to HTTP streaming')
            wait_until(lambda: run('received.length') >= killed_at + 300, 30, 'echoes over HTTP')
            proxy.allow_websockets()
            wait_until(lambda: run('states').count('connected:websocket') >= 2, 60, 'the switch back to WebSocket')
            wait_until(lambda: run('done') or run('resets.length'), 120, 'all echoes')
            result = self.browser.execute_script('return window.run')
        finally:
            stats = proxy.stop()
        print(f'WebSocket-killing proxy: {stats}; connection states: {result["states"]}')
        self.assertEqual(result['resets'], [])
        self.assertEqual(result['received'], strings)  # no loss, duplication or reordering
        connected = [s for s in result['states'] if s.startswith('connected:')]
        first_http = connected.index('connected:streaming')
        self.assertIn('connected:websocket', connected[:first_http])
        self.assertIn('connected:websocket', connected[first_http:])
        self.assertGreater(stats['killed'], 0)
        self.assertGreater(stats['refused'], 0)


if __name__ == '__main__':
    unittest.main()
