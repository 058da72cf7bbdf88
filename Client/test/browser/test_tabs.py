"""Issue 14, the seed's tab-addict promise: one headless Chromium (one profile), 12 tabs of the demo's origin, each
running the client, each joining the chat (`begin_chat`) and broadcasting one message (`broadcast:`); every tab
receives all 12 broadcasts, and a 13th tab still loads a page of the site promptly. Chromium opens at most 6
HTTP/1.1 connections per host name (shared by all tabs), so this holds only if no tab's stream holds them:

* the default transport ('auto'): each stream is a WebSocket, outside that pool;
* WebSocket off ('streaming') and long-polling ('long-poll'), with the endpoint `http://%random%.localhost:PORT/
  _minerva/`: each stream sends its requests to random host names of its own (Chromium resolves `*.localhost` to
  the loopback address, no DNS needed), and the page (http://localhost:PORT) is allowed by the demo's
  `--allowed-origin 'http://*.localhost'` (CORS; the long-poll run also sends credentials, `--allow-credentials`);
* the deadlock the issue found (more than 6 tabs streaming to ONE host name, no %random%): every upload waits for a
  connection held by a streaming response. The client's detector (an upload without a response for 4 s) gives up
  streaming for short long-polls, says `stalled`, and every tab gets every broadcast; the same tabs with the detector
  off (`stallMs: 0`) do not get their uploads through (the control run).

Each run prints the per-tab figures the issue asks for: when each tab had all the broadcasts (seconds after the
first was sent), each tab's worst delivery latency (receipt minus that message's send, both by the browser's
clock), and the 13th tab's load time. Run by run-browser-tests.sh (MINERVA_BROWSER_TESTS=1) beside test_browser.py;
through nginx (scripts/run-nginx-tests.sh starts the demo with the same --allowed-origin) too.
"""

import time
import unittest
import urllib.parse

from test_browser import ENABLED, Demo, call, make_browser, wait_until

TABS = 12


@unittest.skipUnless(ENABLED, 'set MINERVA_BROWSER_TESTS=1 (needs minerva-demo, chromium, chromium-driver, selenium)')
class DozenTabsTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.demo = Demo(['--allowed-origin', 'http://*.localhost', '--allow-credentials'])
        # The same server under the name `localhost`, so that the page's origin lies under *.localhost.
        cls.local = f'http://localhost:{urllib.parse.urlsplit(cls.demo.base).port}'
        cls.random_endpoint = cls.local.replace('//', '//%random%.') + '/_minerva/'

    @classmethod
    def tearDownClass(cls):
        cls.demo.stop()

    def setUp(self):
        # A fresh browser for every run: no connection of one run is left in the pool of the next.
        self.driver = make_browser()

    def tearDown(self):
        self.driver.quit()

    def chat(self, label, tabs, base, transport, endpoint=None, options=None, before_broadcast=None):
        """Opens `tabs` tabs of `base`/static/harness.html, starts a stream in each (transport, endpoint, options),
        joins the chat, broadcasts one message per tab and waits until every tab has every broadcast. Returns
        (handles, per-tab completion seconds, per-tab worst latency seconds)."""
        driver = self.driver
        handles = []
        # Every page first: while streams hold all connections to a host, no page of that host loads.
        for index in range(tabs):
            if index:
                driver.switch_to.new_window('tab')
            driver.get(base + '/static/harness.html')
            handles.append(driver.current_window_handle)
        args = ', '.join(repr(x) if x is not None else 'undefined' for x in (transport, endpoint))
        for handle in handles:
            driver.switch_to.window(handle)
            call(driver, 'new Promise((resolve) => {'
                         f' window.tab = openStream({args}, {options or {}});'
                         ' window.tab.times = {};'
                         ' const received = window.tab.stream.onstring;'
                         ' window.tab.stream.onstring = function (s) {'
                         '   const m = /^TEXT\\|\\d+\\|hello from tab (\\d+)$/.exec(s);'
                         '   if (m) window.tab.times[m[1]] = Date.now();'
                         '   received.call(this, s);'
                         ' };'
                         ' window.tab.stream.sendString("begin_chat"); setTimeout(resolve, 50); })')
        if before_broadcast:
            before_broadcast(handles)
        # Every tab's stream is connected (so it joined the chat) before anyone broadcasts.
        for handle in handles:
            driver.switch_to.window(handle)
            wait_until(lambda: driver.execute_script(
                'return window.tab.states.some((s) => s.startsWith("connected"))'), 60, label + ': a tab never connected')
        time.sleep(0.5)
        sent = []
        for index, handle in enumerate(handles):
            driver.switch_to.window(handle)
            sent.append(driver.execute_script(
                f'const at = Date.now(); window.tab.stream.sendString("broadcast:hello from tab {index}"); return at'))
        done, worst = [], []
        for handle in handles:
            driver.switch_to.window(handle)
            wait_until(lambda: driver.execute_script('return Object.keys(window.tab.times).length') >= tabs, 60,
                       label + ': a tab did not receive all the broadcasts')
            lines = driver.execute_script('return window.tab.received.filter((s) => s.startsWith("TEXT|"))')
            self.assertEqual(sorted(line.split('|', 2)[2] for line in lines),
                             sorted(f'hello from tab {i}' for i in range(tabs)))
            self.assertEqual(driver.execute_script('return window.tab.resets'), [])
            times = driver.execute_script('return window.tab.times')
            done.append((max(times.values()) - sent[0]) / 1000)
            worst.append(max(times[str(i)] - sent[i] for i in range(tabs)) / 1000)
        print(f'\n{label}: {tabs} tabs, every tab had all {tabs} broadcasts; per tab, seconds after the first was '
              f'sent: {" ".join(f"{t:.2f}" for t in done)}; worst latency per tab (s): '
              f'{" ".join(f"{t:.2f}" for t in worst)}')
        return handles, done, worst

    def load_13th(self, label, url):
        """Opens one more tab on `url` (a page of the origin); returns the seconds it took."""
        driver = self.driver
        driver.switch_to.new_window('tab')
        driver.set_page_load_timeout(10)  # a deadlock (no free connection) never loads
        started = time.monotonic()
        driver.get(url)
        took = time.monotonic() - started
        self.assertIn('ok', driver.page_source)
        print(f'{label}: the 13th tab loaded {url} in {took:.2f} s')
        return took

    def states(self, handles):
        out = []
        for handle in handles:
            self.driver.switch_to.window(handle)
            out.append(self.driver.execute_script('return window.tab.states'))
        return out

    def test_a_default_transport_a_dozen_tabs_chat_and_a_13th_loads_a_page(self):
        handles, _, _ = self.chat('default (auto: WebSocket)', TABS, self.demo.base, None)
        for states in self.states(handles):
            self.assertIn('connected:websocket', states)
        self.assertLess(self.load_13th('default (auto: WebSocket)', self.demo.base + '/healthz'), 5)

    def test_b_websocket_off_streaming_with_random_subdomains(self):
        handles, _, _ = self.chat('streaming, %random%', TABS, self.local, 'streaming', self.random_endpoint)
        for states in self.states(handles):
            self.assertIn('connected:streaming', states)
            self.assertNotIn('stalled', states)
        self.assertLess(self.load_13th('streaming, %random%', self.local + '/healthz'), 5)

    def test_c_long_poll_with_random_subdomains_and_credentials(self):
        handles, _, _ = self.chat('long-poll, %random%', TABS, self.local, 'long-poll', self.random_endpoint,
                                  {'credentials': 'include'})
        for states in self.states(handles):
            self.assertIn('connected:long-poll', states)
            self.assertNotIn('stalled', states)
        self.assertLess(self.load_13th('long-poll, %random%', self.local + '/healthz'), 5)

    def test_d_streaming_to_one_host_name_the_deadlock_detector_steps_in(self):
        # 8 tabs stream to one host name (no %random%): the first 6 streaming responses hold all 6 connections.
        tabs = 8

        def users_type(handles):
            # Every tab sends something (an upload); those of the 6 streaming tabs cannot get a connection.
            for index, handle in enumerate(handles):
                self.driver.switch_to.window(handle)
                self.driver.execute_script(f'window.tab.stream.sendString("echo:typed in tab {index}")')

        handles, _, _ = self.chat('streaming to one host name (deadlock before)', tabs, self.demo.base,
                                  'streaming', None, None, users_type)
        all_states = self.states(handles)
        stalled = [s for s in all_states if 'stalled' in s]
        self.assertGreaterEqual(len(stalled), tabs - 6, all_states)
        for states in stalled:
            self.assertIn('connected:long-poll', states[states.index('stalled'):], states)
        print(f'deadlock detector: {len(stalled)} of {tabs} tabs said "stalled" and went on with short long-polls')
        self.load_13th('streaming to one host name (deadlock before)', self.demo.base + '/healthz')

    def test_e_control_without_the_detector_the_same_tabs_deadlock(self):
        # The run above with the detector off (stallMs 0): no tab's upload gets through within 10 s.
        tabs = 8
        driver = self.driver
        handles = []
        for index in range(tabs):
            if index:
                driver.switch_to.new_window('tab')
            driver.get(self.demo.base + '/static/harness.html')
            handles.append(driver.current_window_handle)
        for index, handle in enumerate(handles):
            driver.switch_to.window(handle)
            driver.execute_script('window.tab = openStream("streaming", undefined, {stallMs: 0});'
                                  'window.tab.stream.sendString("begin_chat");')
        time.sleep(1)
        for index, handle in enumerate(handles):
            driver.switch_to.window(handle)
            driver.execute_script(f'window.tab.stream.sendString("echo:typed in tab {index}")')
        time.sleep(10)
        echoed = 0
        for index, handle in enumerate(handles):
            driver.switch_to.window(handle)
            echoed += f'typed in tab {index}' in driver.execute_script('return window.tab.received')
        print(f'\ncontrol, detector off: after 10 s, {echoed} of {tabs} tabs had their echo')
        self.assertLess(echoed, tabs)


if __name__ == '__main__':
    unittest.main()
