"""Issue 13, item 4, in a real Chromium against the real minerva-demo: Minerva.ReconnectingStream.

* The demo is killed (SIGKILL, like a crash) and started again on the same port: the page's stream is lost (the new
  process does not know it), the helper starts a new stream, its onstart hook sends `begin_chat` again, and a
  broadcast made after the restart by another client reaches the page. Every transport mode. The demo's own chat page
  (/chat, which uses the helper) does the same.
* The server's authorizer refuses the stream (`--require-cookie`, reason `sign in first`, application level): the page
  is told once and the helper makes no further request or WebSocket.
"""

import os
import signal
import subprocess
import time
import unittest

from test_browser import ENABLED, TRANSPORTS, Demo, make_browser, wait_for_http, wait_until


def restart(demo, sig=signal.SIGKILL):
    """Kills the demo's process with `sig` and starts the same command line again (same port); returns when it
    answers /healthz. The port may be briefly unavailable: retried until the new process stays up."""
    demo.process.send_signal(sig)
    demo.process.wait(timeout=10)
    deadline = time.monotonic() + 30
    while True:
        demo.process = subprocess.Popen(demo.process.args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for_http(demo.base + '/healthz', timeout=5)
            return
        except OSError:
            if demo.process.poll() is None or time.monotonic() > deadline:
                raise
            demo.process.wait()  # exited at once (port not free yet): try again


@unittest.skipUnless(ENABLED, 'set MINERVA_BROWSER_TESTS=1 (needs minerva-demo, chromium, chromium-driver, selenium)')
@unittest.skipIf(os.environ.get('MINERVA_SERVER_URL'), 'restarts a demo of its own')
class ReconnectingStreamTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.demo = Demo()
        cls.driver = make_browser()

    @classmethod
    def tearDownClass(cls):
        cls.driver.quit()
        cls.demo.stop()

    def rc(self, expression):
        return self.driver.execute_script('return window.rc.' + expression)

    def broadcast_from_another_client(self, text):
        """A plain ClientStream of the same page (not the helper's) joins the chat and broadcasts `text`."""
        self.driver.execute_script(
            "const t = openStream('long-poll'); t.stream.sendString('begin_chat');"
            f"t.stream.sendString('broadcast:' + {text!r}); window.other = t;")

    def test_the_helper_rejoins_after_the_server_restarts(self):
        for transport in TRANSPORTS:
            with self.subTest(transport=transport):
                self.driver.get(self.demo.base + '/static/harness.html')
                self.driver.execute_script(f'joinChatReconnecting({transport!r})')
                # Joined: its own broadcast comes back (begin_chat went first on the same stream).
                self.driver.execute_script("window.rc.helper.sendString('broadcast:before')")
                wait_until(lambda: any(s.endswith('|before') for s in self.rc('received')), 20, 'joined')
                restart(self.demo)
                wait_until(lambda: self.rc('starts') == [False, True], 60, 'a new stream and its onstart')
                resets = self.rc('resets')
                print(f'{transport}: resets {resets}; states {self.rc("states")}')
                self.assertEqual(resets, [['stream penalty reached limit', False, True]])
                wait_until(lambda: self.rc('helper.connectionState') == 'connected', 30, 'connected again')
                # The hook re-joined: the page's own broadcast on the new stream comes back...
                self.driver.execute_script("window.rc.helper.sendString('broadcast:me again')")
                wait_until(lambda: any(s.endswith('|me again') for s in self.rc('received')), 20, 're-joined')
                # ...and so does another client's, made after the restart.
                self.broadcast_from_another_client('after the restart')
                wait_until(lambda: any(s.endswith('|after the restart') for s in self.rc('received')), 20,
                           'a broadcast after the restart reaches the page')
                self.assertEqual(self.rc('helper.restarts'), 1)
                self.driver.execute_script('window.rc.helper.close(); window.other.stream.dispose()')

    def test_the_chat_page_rejoins_after_the_server_restarts(self):
        self.driver.get(self.demo.base + '/chat')
        state = lambda: self.driver.execute_script("return document.getElementById('state').dataset.state")
        messages = lambda: self.driver.execute_script(
            "return [...document.querySelectorAll('#messages li')].map((li) => li.textContent)")
        wait_until(lambda: state() == 'connected', 20, 'the chat page connects')
        restart(self.demo)
        wait_until(lambda: any('reconnecting' in m.lower() or 'rejoin' in m.lower() for m in messages()), 60,
                   'the page says it lost the stream')
        wait_until(lambda: state() == 'connected', 60, 'the chat page connects again')
        self.driver.execute_script(
            "window.t = new Minerva.ClientStream(new Minerva.HttpEndpoint('/_minerva/'), {transport: 'long-poll'});"
            "window.t.start(); window.t.sendString('begin_chat');"
            "window.t.sendString('broadcast:' + Minerva.JSON.asciify({name: 'bob', text: 'still here?', from: 'x'}))")
        wait_until(lambda: any('still here?' in m for m in messages()), 20, 'the broadcast reaches the chat page')
        self.driver.execute_script('window.t.dispose()')


@unittest.skipUnless(ENABLED, 'set MINERVA_BROWSER_TESTS=1 (needs minerva-demo, chromium, chromium-driver, selenium)')
@unittest.skipIf(os.environ.get('MINERVA_SERVER_URL'), 'starts a demo of its own with --require-cookie')
class ReconnectingStreamRefusedTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.demo = Demo(['--require-cookie', 'minerva_session'])
        cls.driver = make_browser()

    @classmethod
    def tearDownClass(cls):
        cls.driver.quit()
        cls.demo.stop()

    def test_an_authorizer_refusal_is_reported_once_and_not_retried(self):
        for transport in ('auto', 'long-poll'):
            with self.subTest(transport=transport):
                self.driver.get(self.demo.base + '/static/harness.html')
                self.driver.execute_script(f'joinChatReconnecting({transport!r})')
                rc = lambda expression: self.driver.execute_script('return window.rc.' + expression)
                wait_until(lambda: rc('resets.length') > 0, 20, 'the refusal')
                made = rc('fetches') + rc('sockets')
                # Well past several backoff delays (1 s, 2 s, 4 s): nothing more happens.
                time.sleep(8)
                self.assertEqual(rc('resets'), [['sign in first', True, False]])
                self.assertEqual(rc('starts'), [False])
                self.assertEqual(rc('fetches') + rc('sockets'), made, 'no request or WebSocket after the refusal')
                self.assertEqual(rc('helper.connectionState'), 'disconnected')
                self.assertIsNone(rc('helper.stream'))
                self.assertEqual(rc('received'), [])


if __name__ == '__main__':
    unittest.main()
