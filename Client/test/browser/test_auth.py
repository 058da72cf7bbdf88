"""Issue 13's embedding promises, in a real Chromium: a stream the server's authorizer refuses ends with the reason the
JavaScript client reports, and a page on another origin can use the endpoint with credentials (a session cookie
reaching the authorizer) exactly when the server allows it.

The endpoint demo runs with `--require-cookie minerva_session` (its `authorizeStream` refuses a new stream whose
request has no such cookie, reason `sign in first`). The cross-origin page is served by a second demo on another port
of `localhost`: another origin (CORS applies) but the same site, so the browser's host-only `localhost` cookie goes
with credentialed requests; HTTP transports are forced, since WebSocket handshakes are outside CORS.
"""

import json
import os
import time
import unittest

from test_browser import ENABLED, Demo, call, make_browser, wait_until

COOKIE = 'minerva_session'


def local(demo):
    return f'http://localhost:{demo.port}'


@unittest.skipUnless(ENABLED, 'set MINERVA_BROWSER_TESTS=1 (needs minerva-demo, chromium, chromium-driver, selenium)')
@unittest.skipIf(os.environ.get('MINERVA_SERVER_URL'), 'starts demos of its own with --require-cookie')
class AuthorizationAndCredentialsTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pages = Demo()  # serves the harness page on its own origin
        page_origin = local(cls.pages)
        cls.allowing = Demo(['--require-cookie', COOKIE, '--allowed-origin', page_origin, '--allow-credentials'])
        cls.not_allowing = Demo(['--require-cookie', COOKIE, '--allowed-origin', page_origin])
        cls.driver = make_browser()

    @classmethod
    def tearDownClass(cls):
        cls.driver.quit()
        for demo in (cls.pages, cls.allowing, cls.not_allowing):
            demo.stop()

    def setUp(self):
        self.driver.delete_all_cookies()

    def open_page(self, base):
        self.driver.get(base + '/static/harness.html')

    def set_session_cookie(self):
        # Host-only cookie for `localhost` (cookies ignore ports): set from a page of that host.
        self.driver.get(local(self.pages) + '/healthz')
        self.driver.add_cookie({'name': COOKIE, 'value': 'alice', 'path': '/'})

    def echo(self, transport, endpoint, options, seconds=15):
        """Starts a stream, sends `echo:hi`, waits for the echo or a reset; returns (received, resets, states)."""
        args = ', '.join(json.dumps(x) for x in (transport, endpoint, options))
        result = call(self.driver, f'new Promise((resolve) => {{ window.t = openStream({args});'
                                   ' window.t.stream.sendString("echo:hi"); resolve(); })')
        self.assertFalse(isinstance(result, dict) and 'error' in result, result)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            state = self.driver.execute_script('return [window.t.received, window.t.resets, window.t.states]')
            if state[0] or state[1]:
                return state
            time.sleep(0.05)
        return self.driver.execute_script('return [window.t.received, window.t.resets, window.t.states]')

    def test_a_stream_without_the_session_is_refused_with_the_reason(self):
        for transport in ('auto', 'streaming', 'long-poll'):
            self.open_page(local(self.allowing))
            received, resets, _ = self.echo(transport, None, {})
            self.assertEqual(received, [], transport)
            self.assertEqual(resets, [['sign in first', True]], transport)

    def test_a_stream_with_the_session_is_served(self):
        self.set_session_cookie()
        for transport in ('auto', 'streaming', 'long-poll'):
            self.open_page(local(self.allowing))
            received, resets, _ = self.echo(transport, None, {})
            self.assertEqual(resets, [], transport)
            self.assertEqual(received, ['hi'], transport)

    def test_another_origin_with_credentials_works_when_allowed(self):
        self.set_session_cookie()
        endpoint = local(self.allowing) + '/_minerva/'
        for transport in ('streaming', 'long-poll'):
            self.open_page(local(self.pages))
            received, resets, _ = self.echo(transport, endpoint, {'credentials': 'include'})
            self.assertEqual(resets, [], transport)
            self.assertEqual(received, ['hi'], transport)

    def test_another_origin_without_credentials_has_no_session(self):
        # Allowed origin, but the page does not send credentials: the cookie stays home, the authorizer says no.
        self.set_session_cookie()
        self.open_page(local(self.pages))
        received, resets, _ = self.echo('long-poll', local(self.allowing) + '/_minerva/', {})
        self.assertEqual(received, [])
        self.assertEqual(resets, [['sign in first', True]])

    def test_another_origin_with_credentials_is_refused_when_the_server_does_not_allow_them(self):
        # Without Access-Control-Allow-Credentials the browser withholds every answer from the page: no string, no
        # reset reason, and the stream never reports a connection.
        self.set_session_cookie()
        self.open_page(local(self.pages))
        received, resets, states = self.echo(
            'long-poll', local(self.not_allowing) + '/_minerva/', {'credentials': 'include'}, seconds=6)
        self.assertEqual(received, [])
        self.assertFalse(any(s.startswith('connected') for s in states), states)
        wait_until(lambda: self.driver.execute_script('return window.t.received.length') == 0, 1, 'nothing arrives')


if __name__ == '__main__':
    unittest.main()
